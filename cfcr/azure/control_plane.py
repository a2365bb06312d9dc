"""The control plane: one zonal VM per member, named as the member (its computer name is the
Node name), on a NIC with the member's fixed private address, and one Premium SSD etcd disk per
member that outlives the VM.

- **Hardened**: Trusted Launch (secure boot, vTPM), encryption at host (temporary disk and
  caches encrypted too), no public address, password login off; the VM's only identity is the
  member's user-assigned one (``identity.py``); its custom data holds no secret (the node
  reads its secrets from Key Vault, ``secrets.py``).
- **Custom data** is the member's cloud-init document (``ClusterBootstrap.user_data``, gzip
  when it must: :func:`cfcr.node.render_user_data` keeps it within the 65,535 decoded bytes Azure
  takes, the node hook's limit) with the scripts and every key fetched at boot from Key Vault:
  nothing in ``userData``, which every process on the VM can read through IMDS.
- **Replacement**: custom data cannot change on an existing VM and cloud-init runs once per
  instance, so new custom data replaces the VM, deleted first (its name and NIC are taken until
  then); the NIC, with the address and the load balancers' pools, stays, and the etcd disk is
  detached, not deleted (``deleteOption: Detach``), then attached to the successor at LUN 0
  (``/dev/disk/azure/scsi1/lun0``): the member rejoins with its data.
- **The etcd disk** is its own resource, protected (``pulumi destroy`` stops at it until
  ``pulumi state unprotect``; ``cfcr:azure.protectEtcdDisks: false`` turns that off), in the member's zone, host caching off (etcd's writes are
  synchronous).
- **One member at a time**: member ``i + 1``'s VM waits for member ``i``'s
  :class:`~cfcr.bootstrap.rollout.MemberGate`, which waits for the VM's ``vmId``: a VM recreated
  under the member's name (and so the same resource id and provider ID) is known by it.
- **SSH**: Azure requires a key or a password on a Linux VM. cfcr gives an RSA key that lives
  only in the stack's state (as a secret): no SSH is opened anywhere (``security.py``); use
  ``az vm run-command`` or Bastion.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_tls as tls
from pulumi_azure_native import compute
from pulumi_azure_native import network as azure_network

from cfcr.azure.image import image_reference
from cfcr.azure.names import resource_name
from cfcr.azure.tags import MEMBER_TAG, ROLE_TAG, base_tags
from cfcr.bootstrap.rollout import MemberGate
from cfcr.config import DEFAULT_CONTROL_PLANE_SIZE, ClusterSpec
from cfcr.config.topology import control_plane_members

ETCD_LUN = 0
"""The etcd disk's LUN: Azure's udev rules show it as ``/dev/disk/azure/scsi1/lun0``."""
DISK_SKU = "Premium_LRS"
ADMIN_USER = "cfcr"
SSH_KEY_BITS = 3072
CUSTOM_DATA_MAX = 65535
"""Azure's limit on custom data, decoded."""


def custom_data(raw: bytes, role: str) -> str:
    """``raw`` user-data as a VM's ``customData`` (base64); ``ValueError`` naming the role past
    Azure's 65,535 decoded bytes."""
    if len(raw) > CUSTOM_DATA_MAX:
        raise ValueError(f"{role}: custom data is {len(raw)} bytes; Azure takes at most {CUSTOM_DATA_MAX}")
    return base64.b64encode(raw).decode()


def trusted_launch() -> compute.SecurityProfileArgs:
    """Trusted Launch with secure boot and vTPM, and encryption at host."""
    return compute.SecurityProfileArgs(
        security_type="TrustedLaunch",
        uefi_settings=compute.UefiSettingsArgs(secure_boot_enabled=True, v_tpm_enabled=True),
        encryption_at_host=True,
    )


def linux_configuration(ssh_public_key: pulumi.Input[str]) -> compute.LinuxConfigurationArgs:
    """No password login; the state-only key (module docstring); the Azure agent (extensions,
    the Application Health extension of the pools)."""
    return compute.LinuxConfigurationArgs(
        disable_password_authentication=True,
        provision_vm_agent=True,
        ssh=compute.SshConfigurationArgs(public_keys=[compute.SshPublicKeyArgs(
            key_data=ssh_public_key, path=f"/home/{ADMIN_USER}/.ssh/authorized_keys")]),
    )


def ssh_key(name: str, parent: pulumi.Resource) -> tls.PrivateKey:
    """The cluster's state-only SSH key (module docstring)."""
    return tls.PrivateKey(f"{name}-ssh", algorithm="RSA", rsa_bits=SSH_KEY_BITS,
                          opts=pulumi.ResourceOptions(parent=parent))


@dataclass(frozen=True)
class MemberMachine:
    """The machine of one control-plane member: its NIC, VM, etcd disk and rollout gate."""

    name: str
    """Node, VM and etcd member name (``<cluster>-cp-<i>``)."""
    address: str
    """Its fixed private address."""
    zone: str
    """Its availability zone (``1``, ``2``, ``3``), or empty in a region without zones."""
    disk: compute.Disk
    """The etcd data disk."""
    nic: azure_network.NetworkInterface | None = None
    vm: compute.VirtualMachine | None = None
    gate: MemberGate | None = None


def build_etcd_disks(name: str, spec: ClusterSpec, group: pulumi.Input[str], zone_names: Sequence[str],
                     parent: pulumi.Resource) -> list[MemberMachine]:
    """One Premium SSD per member, in the member's zone, protected unless ``cfcr:azure.protectEtcdDisks`` is false."""
    out = []
    for i, member in enumerate(control_plane_members(spec)):
        zone = zone_names[i % len(zone_names)] if zone_names else ""
        disk = compute.Disk(
            f"{name}-cp-{i}-etcd",
            disk_name=resource_name(f"{member.name}-etcd", keep="-etcd"),
            resource_group_name=group,
            location=spec.region,
            sku=compute.DiskSkuArgs(name=DISK_SKU),
            creation_data=compute.CreationDataArgs(create_option="Empty"),
            disk_size_gb=spec.control_plane.etcd_disk_gb,
            zones=[zone] if zone else None,
            network_access_policy="DenyAll",
            public_network_access="Disabled",
            tags=base_tags(spec, **{ROLE_TAG: "etcd", MEMBER_TAG: member.name}),
            opts=pulumi.ResourceOptions(parent=parent, protect=spec.azure.protect_etcd_disks),
        )
        out.append(MemberMachine(name=member.name, address=member.address, zone=zone, disk=disk))
    return out


def build_control_plane_vms(
    name: str,
    spec: ClusterSpec,
    group: pulumi.Input[str],
    members: Sequence[MemberMachine],
    *,
    user_data: Sequence[pulumi.Output[bytes]],
    image: pulumi.Input[str],
    subnet: pulumi.Input[str],
    application_security_group: pulumi.Input[str],
    security_group: pulumi.Input[str] | None,
    backend_pools: Sequence[pulumi.Input[str]],
    identities: Sequence[pulumi.Input[str]],
    machine_tags: Sequence[Mapping[str, pulumi.Input[str]]],
    ssh_public_key: pulumi.Input[str],
    depends_on: Sequence[pulumi.Resource],
    gate_after: Sequence[pulumi.Resource],
    parent: pulumi.Resource,
    api_server_url: pulumi.Input[str],
    admin_kubeconfig: pulumi.Input[str],
) -> list[MemberMachine]:
    """NIC, VM and rollout gate per member, each member's VM after the previous member's gate.
    ``identities`` are the members' user-assigned identities' ARM ids, ``machine_tags`` their
    node hook's tags (:meth:`cfcr.azure.identity.Identities.machine_tags`); ``security_group``
    the network security group's id when it goes on the NICs (an existing network);
    ``gate_after`` what the gates wait for besides the member (the load balancers)."""
    size = spec.control_plane.size or DEFAULT_CONTROL_PLANE_SIZE["azure"]
    out: list[MemberMachine] = []
    for i, member in enumerate(members):
        tags = base_tags(spec, **{ROLE_TAG: "control-plane"})
        nic = azure_network.NetworkInterface(
            f"{name}-cp-{i}-nic",
            network_interface_name=resource_name(f"{member.name}-nic", keep="-nic"),
            resource_group_name=group,
            location=spec.region,
            network_security_group=azure_network.NetworkSecurityGroupArgs(id=security_group)
            if security_group is not None else None,
            ip_configurations=[azure_network.NetworkInterfaceIPConfigurationArgs(
                name="ipconfig",
                primary=True,
                subnet=azure_network.SubnetArgs(id=subnet),
                private_ip_address=member.address,
                private_ip_allocation_method="Static",
                private_ip_address_version="IPv4",
                application_security_groups=[azure_network.ApplicationSecurityGroupArgs(id=application_security_group)],
                load_balancer_backend_address_pools=[azure_network.BackendAddressPoolArgs(id=p) for p in backend_pools],
            )],
            tags={**tags, MEMBER_TAG: member.name},
            opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
        )
        previous = [out[-1].gate] if out and out[-1].gate is not None else []
        vm = compute.VirtualMachine(
            f"{name}-cp-{i}",
            vm_name=member.name,
            resource_group_name=group,
            location=spec.region,
            zones=[member.zone] if member.zone else None,
            hardware_profile=compute.HardwareProfileArgs(vm_size=size),
            identity=compute.VirtualMachineIdentityArgs(type=compute.ResourceIdentityType.USER_ASSIGNED,
                                                        user_assigned_identities=[identities[i]]),
            security_profile=trusted_launch(),
            storage_profile=compute.StorageProfileArgs(
                image_reference=pulumi.Output.from_input(image).apply(image_reference),
                os_disk=compute.OSDiskArgs(
                    name=resource_name(f"{member.name}-os", keep="-os"),
                    create_option="FromImage",
                    caching=compute.CachingTypes.READ_WRITE,
                    delete_option="Delete",
                    disk_size_gb=spec.control_plane.root_disk_gb,
                    managed_disk=compute.ManagedDiskParametersArgs(storage_account_type=DISK_SKU),
                ),
                data_disks=[compute.DataDiskArgs(
                    lun=ETCD_LUN,
                    create_option="Attach",
                    caching=compute.CachingTypes.NONE,
                    delete_option="Detach",
                    managed_disk=compute.ManagedDiskParametersArgs(id=member.disk.id),
                )],
            ),
            os_profile=compute.OSProfileArgs(
                computer_name=member.name,
                admin_username=ADMIN_USER,
                custom_data=user_data[i].apply(functools.partial(custom_data, role=f"control-plane-{i}")),
                linux_configuration=linux_configuration(ssh_public_key),
                allow_extension_operations=True,
            ),
            network_profile=compute.NetworkProfileArgs(network_interfaces=[
                compute.NetworkInterfaceReferenceArgs(id=nic.id, primary=True, delete_option="Detach")]),
            diagnostics_profile=compute.DiagnosticsProfileArgs(
                boot_diagnostics=compute.BootDiagnosticsArgs(enabled=True)),
            priority="Regular",
            tags={**tags, MEMBER_TAG: member.name, **machine_tags[i]},
            opts=pulumi.ResourceOptions(
                parent=parent,
                depends_on=[*depends_on, nic, member.disk, *previous],
                # custom data is immutable and cloud-init runs once per VM: new custom data is a new VM
                replace_on_changes=["osProfile.customData"],
                # the name, the NIC and the etcd disk are taken until the old VM is gone
                delete_before_replace=True,
            ),
        )
        gate = MemberGate(
            f"{name}-cp-{i}-ready",
            member=member.name,
            node_name=member.name,
            provider_id=pulumi.Output.concat("azure://", vm.id),
            # the resource id (so the provider ID) outlives the VM: the gate waits for this VM's vmId
            machine=vm.vm_id,
            api_server_url=api_server_url,
            kubeconfig=admin_kubeconfig,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[vm, *gate_after]),
        )
        out.append(MemberMachine(name=member.name, address=member.address, zone=member.zone, disk=member.disk,
                                 nic=nic, vm=vm, gate=gate))
    return out
