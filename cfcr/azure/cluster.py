"""``Cluster``: a whole cfcr cluster on Azure.

Built in one direction: subscription and tenant -> resource group -> network security group
and application security groups -> virtual network, subnets, NAT gateway -> user-assigned
identities and the control plane's custom role -> API load balancers and private DNS -> etcd
disks -> etcd backup storage and its writers' role (``backups.py``) -> ClusterBootstrap (PKI, secrets, user-data) -> Key Vault, secrets and their grants ->
control-plane members, one after the other's rollout gate -> node pools (scale sets), after
the last member's gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import authorization

from cfcr import channels
from cfcr.azure.api_lb import build_api_load_balancer
from cfcr.azure.backups import build_etcd_backups
from cfcr.azure.contract import ETCD_DISK_DEVICE, node_hook
from cfcr.azure.control_plane import build_control_plane_vms, build_etcd_disks, ssh_key
from cfcr.azure.identity import build_identities
from cfcr.azure.image import Images, image_reference
from cfcr.azure.network import build_network, resource_group
from cfcr.azure.node_hook import BACKUP_ACCOUNT_TAG
from cfcr.azure.node_pool import NodePool, NodePoolArgs
from cfcr.azure.secrets import build_secret_store
from cfcr.azure.security import build_security
from cfcr.azure.tags import base_tags
from cfcr.bootstrap import ClusterBootstrap, ClusterBootstrapArgs
from cfcr.bootstrap.version import KubernetesVersion
from cfcr.cluster_component import ClusterComponent
from cfcr.config import ClusterSpec
from cfcr.config.topology import control_plane_members, pool_share, zones
from cfcr.constants import API_PORT
from cfcr.node.context import Role

TYPE_TOKEN = "cfcr:azure:Cluster"
DEFAULT_ZONES = ("1", "2", "3")
"""Azure's zone names in a region with availability zones."""


def zone_names(spec: ClusterSpec) -> list[str]:
    """The cluster's zones: ``controlPlane.zones``, else Azure's ``1``, ``2``, ``3`` (one per
    zone of the plan). A region without zones takes ``controlPlane.zones: [""]``: no zone."""
    return [z.name if z.name is not None else DEFAULT_ZONES[z.index % len(DEFAULT_ZONES)] for z in zones(spec)]


@dataclass(frozen=True)
class ClusterArgs:
    """Arguments of ``Cluster``."""

    spec: ClusterSpec
    """The validated cluster spec (``cfcr.config.load_spec``); ``cloud`` must be ``azure``."""


class Cluster(ClusterComponent[NodePool]):
    """A self-managed, upstream Kubernetes cluster on Azure (kubeadm), highly available and self-healing."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        spec = args.spec
        if spec.cloud != "azure":
            raise ValueError(f"cfcr:cloud: got {spec.cloud!r}; cfcr.azure.Cluster builds azure clusters")
        assert spec.name is not None, "load_spec names every cluster"
        if spec.image.id is not None:
            image_reference(spec.image.id)  # a clear error for a malformed cfcr:image.id, before any resource
        release = channels.resolve(spec.kubernetes.version)
        super().__init__(TYPE_TOKEN, name, {
            "location": spec.region,
            "kubernetesVersion": release.kubernetes.version,
            "controlPlaneCount": spec.control_plane.count,
            "apiPublic": spec.networking.api_public,
            "existingNetwork": spec.networking.existing_network is not None,
            "natGateways": spec.networking.nat_gateways,
            "tags": dict(spec.tags),
        }, opts)
        child = pulumi.ResourceOptions(parent=self)
        client = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        subscription_id, tenant_id = client.subscription_id, client.tenant_id
        members = control_plane_members(spec)
        slugs = [Role.control_plane(i).slug for i in range(len(members))] + \
                [Role.worker(p.name).slug for p in spec.node_pools]
        zone_list = zone_names(spec)
        tags = base_tags(spec)

        group = resource_group(name, spec, self)
        assert group.created is not None
        security = build_security(name, spec, group, self)
        net = build_network(name, spec, group, security.security_group.id, self)
        identities = build_identities(name, spec, subscription_id, group.name, group.created.id, spec.region, slugs,
                                      self, tags=tags)
        api = build_api_load_balancer(name, spec, group, subscription_id, net.control_plane_subnet, net.vnet_id,
                                      [z for z in zone_list if z], self)
        disks = build_etcd_disks(name, spec, group.name, zone_list, self)
        control_plane_slugs = slugs[:len(members)]
        backups = build_etcd_backups(name, spec, subscription_id,
                                     [identities.principal_id(slug) for slug in control_plane_slugs], zone_list, self,
                                     tags=tags)
        self.bootstrap = ClusterBootstrap(
            name,
            ClusterBootstrapArgs(
                spec=spec,
                api_endpoint=api.private_name,
                members=members,
                hook=node_hook(spec),
                etcd_disk_devices=[ETCD_DISK_DEVICE] * len(members),
                extra_api_names=(api.public_address.apply(lambda a: [a]) if api.public_address is not None else []),
            ),
            opts=child,
        )
        store = build_secret_store(name, spec, subscription_id, tenant_id, group.name, spec.region,
                                   self.bootstrap.secrets, self.bootstrap.readers, identities.principal_ids(), self,
                                   tags=tags)
        images = Images(spec, self)
        self.version_record = KubernetesVersion.for_spec(name, spec, opts=child)
        key = ssh_key(name, self)
        nsg_on_nics = security.security_group.id if net.security_group_on_nics else None
        boot_deps: list[pulumi.Resource] = [*net.ready, *security.rules, *identities.grants, *store.grants,
                                            *api.ready, self.version_record]
        self.private_api_server_url = f"https://{api.private_name}:{API_PORT}"
        self.api_server_url, self.admin_kubeconfig = self.bootstrap.client_endpoint(api.public_name)
        backup_tags: dict[str, pulumi.Input[str]] = (
            {BACKUP_ACCOUNT_TAG: backups.account_name} if backups is not None else {})
        machines = build_control_plane_vms(
            name, spec, group.name, disks,
            user_data=[self.bootstrap.user_data[slug] for slug in control_plane_slugs],
            image=images.image(spec.control_plane.architecture),
            subnet=net.control_plane_subnet,
            application_security_group=security.control_plane.id,
            security_group=nsg_on_nics,
            backend_pools=api.backend_pools,
            identities=[identities.resource_id(slug) for slug in control_plane_slugs],
            machine_tags=[{**identities.machine_tags(spec.name, slug, store.vault_name), **backup_tags}
                          for slug in control_plane_slugs],
            ssh_public_key=key.public_key_openssh,
            depends_on=[*boot_deps, *(backups.grants if backups is not None else [])],
            gate_after=api.load_balancers,
            parent=self,
            api_server_url=self.api_server_url,
            admin_kubeconfig=self.admin_kubeconfig,
        )
        control_plane_rolled = [m.gate for m in machines[-1:] if m.gate is not None]
        vms = [m.vm for m in machines if m.vm is not None]
        self.node_pools = {}
        for index, pool in enumerate(spec.node_pools):
            slug = Role.worker(pool.name).slug
            self.node_pools[pool.name] = NodePool(
                f"{name}-{pool.name}",
                NodePoolArgs(
                    spec=spec,
                    pool=pool,
                    resource_group_name=group.name,
                    user_data=self.bootstrap.user_data[slug],
                    image=images.image(pool.architecture),
                    zones=[z for z in pool_share(spec, pool, index, zone_list) if z],
                    subnet=net.workers_subnet,
                    application_security_group=security.workers.id,
                    identity=identities.resource_id(slug),
                    machine_tags=identities.machine_tags(spec.name, slug, store.vault_name),
                    ssh_public_key=key.public_key_openssh,
                    security_group=nsg_on_nics,
                    depends_on=[*boot_deps, *control_plane_rolled],
                ),
                opts=child,
            )
        self.control_plane_machines = list(vms)
        self.control_plane_rolled = list(control_plane_rolled)
        outputs: dict[str, Any] = {
            "adminKubeconfig": self.admin_kubeconfig,
            "apiServerUrl": self.api_server_url,
            "privateApiServerUrl": self.private_api_server_url,
            "apiLoadBalancerAddress": api.public_address if api.public_address is not None else api.internal_address,
            "internalApiLoadBalancerAddress": api.internal_address,
            "caBundle": self.bootstrap.pki.ca_bundle,
            "subscriptionId": subscription_id,
            "resourceGroup": group.name,
            "virtualNetwork": net.vnet_name,
            "workersSubnet": net.workers_subnet_name,
            "securityGroup": security.security_group_name,
            "keyVault": store.vault_name,
            "nodePoolScaleSets": {p: np.scale_set_name for p, np in self.node_pools.items()},
            "identityClientIds": pulumi.Output.all(**{slug: identities.client_id(slug) for slug in slugs}).apply(
                lambda ids: {k: str(v) for k, v in ids.items()}),
            # vmIds: a member recreated under its name has a new one (the addons' gate waits again)
            "controlPlaneInstanceIds": pulumi.Output.all(*[vm.vm_id for vm in vms]).apply(
                lambda ids: [str(i) for i in ids]),
            "etcdDiskIds": pulumi.Output.all(*[m.disk.id for m in disks]).apply(lambda ids: [str(i) for i in ids]),
        }
        if backups is not None:
            outputs["etcdBackupAccount"] = backups.account_name
            outputs["etcdBackupContainer"] = backups.container_name
            outputs["etcdBackupResourceGroup"] = backups.resource_group_name
        self.outputs = outputs
        self.register_outputs(outputs)
