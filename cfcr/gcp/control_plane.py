"""The control plane: one Compute Engine instance per member, named as the member (the Node
name and the CCM's instance name agree), at the member's reserved internal address, in its
zone; and one pd-ssd etcd disk per member that outlives the instance.

- **Hardened**: Shielded VM (secure boot, vTPM, integrity monitoring), no public address,
  project-wide SSH keys blocked, serial port off; the user-data holds no secret (nodes read
  theirs from Secret Manager).
- **Self-healing**: host maintenance live-migrates a member, a host failure restarts it
  (``automatic_restart``): same instance, address and disk.
- **Replacement**: a change of the member's user-data replaces the instance (cloud-init runs
  once per instance), deleted before its successor is created (the address and name are
  taken until then); the etcd disk is re-attached as device ``etcd``
  (``/dev/disk/by-id/google-etcd``), and the member rejoins with its data.
- **One member at a time**: member ``i + 1``'s instance waits for member ``i``'s
  :class:`~cfcr.bootstrap.rollout.MemberGate` (healthy etcd membership, Node Ready).
- **Images**: when the image floats (the Ubuntu family), members ignore later image changes,
  so a new Ubuntu build never replaces every member on some ``pulumi up``; pin
  ``cfcr:image.id`` to move them (docs/gcp.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_gcp import compute

from cfcr.bootstrap.rollout import MemberGate
from cfcr.config import DEFAULT_CONTROL_PLANE_SIZE, ClusterSpec
from cfcr.config.topology import control_plane_members, zones
from cfcr.gcp.labels import ROLE_LABEL, base_labels, node_tag
from cfcr.gcp.names import resource_name

ETCD_DEVICE_NAME = "etcd"
"""The etcd disk's device name: Compute Engine shows it as ``/dev/disk/by-id/google-etcd``."""
BOOT_DISK_TYPE = "pd-balanced"
ETCD_DISK_TYPE = "pd-ssd"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
"""The VMs' OAuth scope: IAM decides what each account may do, not scopes (Google's advice)."""


def hardened_metadata(user_data: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Instance metadata of every cluster VM: its user-data, project SSH keys blocked, serial port off."""
    return {"user-data": user_data, "block-project-ssh-keys": "TRUE", "serial-port-enable": "FALSE",
            **(extra or {})}


def shielded() -> compute.InstanceShieldedInstanceConfigArgs:
    """Secure boot, vTPM and integrity monitoring."""
    return compute.InstanceShieldedInstanceConfigArgs(enable_secure_boot=True, enable_vtpm=True,
                                                      enable_integrity_monitoring=True)


def provider_id(project: str, zone: pulumi.Input[str], name: str) -> pulumi.Output[str]:
    """``gce://<project>/<zone>/<instance>``, as the kubelet registers it."""
    return pulumi.Output.concat("gce://", project, "/", zone, "/", name)


@dataclass(frozen=True)
class MemberMachine:
    """The machine of one control-plane member: its instance, etcd disk and rollout gate."""

    name: str
    """Node, instance and etcd member name (``<cluster>-cp-<i>``)."""
    address: str
    """Its reserved internal address."""
    disk: compute.Disk
    """The etcd data disk."""
    instance: compute.Instance | None = None
    gate: MemberGate | None = None


def build_etcd_disks(name: str, spec: ClusterSpec, project: str, zone_names: Sequence[pulumi.Input[str]],
                     parent: pulumi.Resource) -> list[MemberMachine]:
    """One pd-ssd disk per member in the member's zone, protected by default (``cfcr:gcp.protectEtcdDisks``)."""
    plan = zones(spec)
    out = []
    for i, member in enumerate(control_plane_members(spec)):
        disk = compute.Disk(
            f"{name}-cp-{i}-etcd",
            name=resource_name(f"{member.name}-etcd"),
            project=project,
            zone=zone_names[i % len(plan)],
            type=ETCD_DISK_TYPE,
            size=spec.control_plane.etcd_disk_gb,
            disk_encryption_key=compute.DiskDiskEncryptionKeyArgs(kms_key_self_link=spec.gcp.disk_kms_key)
            if spec.gcp.disk_kms_key else None,
            labels=base_labels(spec, **{ROLE_LABEL: "etcd", "cfcr-member": member.name}),
            description=f"cfcr {spec.name}: etcd data of {member.name}",
            opts=pulumi.ResourceOptions(parent=parent, protect=spec.gcp.protect_etcd_disks),
        )
        out.append(MemberMachine(name=member.name, address=member.address, disk=disk))
    return out


def build_control_plane_instances(
    name: str,
    spec: ClusterSpec,
    project: str,
    members: Sequence[MemberMachine],
    *,
    user_data: Sequence[pulumi.Output[bytes]],
    image: pulumi.Input[str],
    image_floats: bool,
    subnetwork: pulumi.Input[str],
    accounts: Sequence[pulumi.Output[str]],
    instance_groups: Sequence[compute.InstanceGroup],
    zone_names: Sequence[pulumi.Input[str]],
    depends_on: Sequence[pulumi.Resource],
    gate_after: Sequence[pulumi.Resource],
    parent: pulumi.Resource,
    api_server_url: pulumi.Input[str],
    admin_kubeconfig: pulumi.Input[str],
) -> list[MemberMachine]:
    """Reserved address, instance, instance group membership and rollout gate per member, each
    member's instance after the previous member's gate. ``accounts`` are the members' service
    account e-mails; ``gate_after`` what the gates wait for besides the member (the load
    balancers' backend services)."""
    plan = zones(spec)
    size = spec.control_plane.size or DEFAULT_CONTROL_PLANE_SIZE["gcp"]
    kms = spec.gcp.disk_kms_key
    out: list[MemberMachine] = []
    for i, member in enumerate(members):
        k = i % len(plan)
        address = compute.Address(
            f"{name}-cp-{i}-address",
            name=resource_name(f"{member.name}-address"),
            project=project,
            region=spec.region,
            address_type="INTERNAL",
            subnetwork=subnetwork,
            address=member.address,
            description=f"cfcr {spec.name}: control-plane member {member.name}",
            opts=pulumi.ResourceOptions(parent=parent),
        )
        previous = [out[-1].gate] if out and out[-1].gate is not None else []
        instance = compute.Instance(
            f"{name}-cp-{i}",
            name=member.name,
            project=project,
            zone=zone_names[k],
            machine_type=size,
            description=f"cfcr {spec.name} control-plane member {member.name}",
            boot_disk=compute.InstanceBootDiskArgs(
                auto_delete=True,
                initialize_params=compute.InstanceBootDiskInitializeParamsArgs(
                    image=image, size=spec.control_plane.root_disk_gb, type=BOOT_DISK_TYPE,
                    labels=base_labels(spec, **{ROLE_LABEL: "control-plane"}),
                ),
                kms_key_self_link=kms,
            ),
            attached_disks=[compute.InstanceAttachedDiskArgs(
                source=member.disk.self_link, device_name=ETCD_DEVICE_NAME, mode="READ_WRITE", kms_key_self_link=kms,
            )],
            network_interfaces=[compute.InstanceNetworkInterfaceArgs(subnetwork=subnetwork, network_ip=address.address)],
            service_account=compute.InstanceServiceAccountArgs(email=accounts[i], scopes=SCOPES),
            shielded_instance_config=shielded(),
            metadata=user_data[i].apply(lambda raw: hardened_metadata(raw.decode())),
            scheduling=compute.InstanceSchedulingArgs(on_host_maintenance="MIGRATE", automatic_restart=True,
                                                      provisioning_model="STANDARD"),
            labels=base_labels(spec, **{ROLE_LABEL: "control-plane", "cfcr-member": member.name}),
            tags=[node_tag(str(spec.name))],
            allow_stopping_for_update=True,
            deletion_protection=False,
            opts=pulumi.ResourceOptions(
                parent=parent,
                depends_on=[*depends_on, address, *previous],
                # cloud-init runs once per instance: new user-data is a new instance (other metadata,
                # such as the keys `gcloud compute ssh` adds, changes in place)
                replace_on_changes=['metadata["user-data"]'],
                # the name and address are taken until the old one is gone
                delete_before_replace=True,
                ignore_changes=["bootDisk.initializeParams.image"] if image_floats else None,
            ),
        )
        membership = compute.InstanceGroupMembership(
            f"{name}-cp-{i}-api",
            project=project,
            zone=zone_names[k],
            instance_group=instance_groups[k].name,
            instance=instance.self_link,
            opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
        )
        gate = MemberGate(
            f"{name}-cp-{i}-ready",
            member=member.name,
            node_name=member.name,
            provider_id=provider_id(project, zone_names[k], member.name),
            # the provider ID outlives the instance (its name): the gate waits for this instance's id
            machine=instance.instance_id,
            api_server_url=api_server_url,
            kubeconfig=admin_kubeconfig,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[membership, *gate_after]),
        )
        out.append(MemberMachine(name=member.name, address=member.address, disk=member.disk,
                                 instance=instance, gate=gate))
    return out
