"""``Cluster``: a whole cfcr cluster on GCP.

Built in one direction: network -> zones -> service accounts -> firewall -> API load
balancers and private DNS -> etcd disks -> ClusterBootstrap (PKI, secrets, user-data) ->
secrets and their grants -> control-plane members, one after the other's rollout gate ->
node pools, after the last member's gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_gcp import compute

from cfcr import channels
from cfcr.bootstrap import ClusterBootstrap, ClusterBootstrapArgs
from cfcr.bootstrap.version import KubernetesVersion
from cfcr.cluster_component import ClusterComponent
from cfcr.config import ClusterSpec
from cfcr.config.topology import control_plane_members, pool_share, zones
from cfcr.constants import API_PORT
from cfcr.gcp.api_lb import build_api_load_balancer
from cfcr.gcp.backups import build_etcd_backups
from cfcr.gcp.control_plane import build_control_plane_instances, build_etcd_disks
from cfcr.gcp.contract import ETCD_DISK_DEVICE, node_hook, project
from cfcr.gcp.security import build_firewall
from cfcr.gcp.identity import build_identities
from cfcr.gcp.image import Images
from cfcr.gcp.network import build_network
from cfcr.gcp.node_pool import NodePool, NodePoolArgs
from cfcr.gcp.secrets import build_secret_store
from cfcr.node.context import Role

TYPE_TOKEN = "cfcr:gcp:Cluster"


@dataclass(frozen=True)
class ClusterArgs:
    """Arguments of ``Cluster``."""

    spec: ClusterSpec
    """The validated cluster spec (``cfcr.config.load_spec``); ``cloud`` must be ``gcp``; its
    ``cfcr:gcp`` settings (``spec.gcp``) apply."""
    project: str | None = None
    """The project to build in; None: the provider's ``gcp:project``."""


def zone_names(spec: ClusterSpec, project_id: str, parent: pulumi.Resource) -> list[pulumi.Output[str]]:
    """The cluster's zones: ``controlPlane.zones``, or the region's first zones that are up."""
    plan = zones(spec)
    if all(z.name for z in plan):
        return [pulumi.Output.from_input(str(z.name)) for z in plan]
    found = compute.get_zones_output(project=project_id, region=spec.region, status="UP",
                                     opts=pulumi.InvokeOutputOptions(parent=parent))

    def pick(names: list[str], k: int) -> str:
        ordered = sorted(names)
        if len(ordered) < len(plan):
            raise ValueError(f"cfcr:region: {spec.region} has {len(ordered)} zones up ({ordered}); the cluster needs "
                             f"{len(plan)}: set cfcr:controlPlane.zones")
        return ordered[k]

    def zone_at(k: int) -> pulumi.Output[str]:
        return found.names.apply(lambda names: pick(list(names), k))

    return [zone_at(k) for k in range(len(plan))]


class Cluster(ClusterComponent[NodePool]):
    """A self-managed, upstream Kubernetes cluster on GCP (kubeadm), highly available and self-healing."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        spec = args.spec
        if spec.cloud != "gcp":
            raise ValueError(f"cfcr:cloud: got {spec.cloud!r}; cfcr.gcp.Cluster builds gcp clusters")
        assert spec.name is not None, "load_spec names every cluster"
        release = channels.resolve(spec.kubernetes.version)
        project_id = args.project or project(spec)
        super().__init__(TYPE_TOKEN, name, {
            "project": project_id,
            "region": spec.region,
            "kubernetesVersion": release.kubernetes.version,
            "controlPlaneCount": spec.control_plane.count,
            "apiPublic": spec.networking.api_public,
            "existingNetwork": spec.networking.existing_network is not None,
            "natGateways": spec.networking.nat_gateways,
            "labels": dict(spec.tags),
        }, opts)
        child = pulumi.ResourceOptions(parent=self)
        members = control_plane_members(spec)
        slugs = [Role.control_plane(i).slug for i in range(len(members))] + \
                [Role.worker(p.name).slug for p in spec.node_pools]

        network = build_network(name, spec, project_id, self)
        zone_list = zone_names(spec, project_id, self)
        identities = build_identities(name, spec, project_id, slugs, self)
        member_emails = [a.email for a in identities.control_plane]
        firewall = build_firewall(name, spec, project_id, network.network, network.proxy_cidr, member_emails,
                                  {pool: a.email for pool, a in identities.workers().items()}, self)
        api = build_api_load_balancer(name, spec, project_id, zone_list, network.network, network.subnetwork,
                                      network.network_cidr, network.ready, self)
        disks = build_etcd_disks(name, spec, project_id, zone_list, self)
        hook = node_hook(spec, project_id)
        self.bootstrap = ClusterBootstrap(
            name,
            ClusterBootstrapArgs(
                spec=spec,
                api_endpoint=api.private_name,
                members=members,
                hook=hook,
                etcd_disk_devices=[ETCD_DISK_DEVICE] * len(members),
                extra_api_names=(api.public_address.apply(lambda a: [a]) if api.public_address is not None else []),
            ),
            opts=child,
        )
        emails = {slug: identities.email(slug) for slug in slugs}
        store = build_secret_store(name, spec, project_id, self.bootstrap.secrets, self.bootstrap.readers, emails, self)
        # etcd snapshots: the bucket outlives the cluster; only the members may write to it
        backups = build_etcd_backups(name, spec, project_id, member_emails, self)
        images = Images(spec, self)
        self.version_record = KubernetesVersion.for_spec(name, spec, opts=child)
        boot_deps: list[pulumi.Resource] = [*network.ready, *firewall.rules, *store.versions, *identities.grants,
                                            *api.ready, self.version_record]
        self.private_api_server_url = f"https://{api.private_name}:{API_PORT}"
        self.api_server_url, self.admin_kubeconfig = self.bootstrap.client_endpoint(api.public_name)
        machines = build_control_plane_instances(
            name, spec, project_id, disks,
            user_data=[self.bootstrap.user_data[f"control-plane-{i}"] for i in range(len(disks))],
            image=images.image(spec.control_plane.architecture),
            image_floats=not images.pinned,
            subnetwork=network.subnetwork,
            accounts=member_emails,
            instance_groups=api.instance_groups,
            zone_names=zone_list,
            depends_on=boot_deps,
            gate_after=api.backends,
            parent=self,
            api_server_url=self.api_server_url,
            admin_kubeconfig=self.admin_kubeconfig,
        )
        control_plane_rolled = [m.gate for m in machines[-1:] if m.gate is not None]
        instances = [m.instance for m in machines if m.instance is not None]
        workers = identities.workers()
        self.node_pools = {}
        for index, pool in enumerate(spec.node_pools):
            self.node_pools[pool.name] = NodePool(
                f"{name}-{pool.name}",
                NodePoolArgs(
                    spec=spec,
                    pool=pool,
                    project=project_id,
                    user_data=self.bootstrap.user_data[f"worker-{pool.name}"],
                    image=images.image(pool.architecture),
                    zones=pool_share(spec, pool, index, zone_list),
                    subnetwork=network.subnetwork,
                    service_account=workers[pool.name].email,
                    depends_on=[*boot_deps, *control_plane_rolled],
                ),
                opts=child,
            )
        self.control_plane_machines = list(instances)
        self.control_plane_rolled = list(control_plane_rolled)
        outputs: dict[str, Any] = {
            "adminKubeconfig": self.admin_kubeconfig,
            "apiServerUrl": self.api_server_url,
            "privateApiServerUrl": self.private_api_server_url,
            "apiLoadBalancerAddress": api.public_address if api.public_address is not None else api.internal_address,
            "internalApiLoadBalancerAddress": api.internal_address,
            "caBundle": self.bootstrap.pki.ca_bundle,
            "project": project_id,
            "network": network.network,
            "subnetwork": network.subnetwork,
            "nodePoolGroupUrls": pulumi.Output.all(**{
                pool: pulumi.Output.all(*np.group_urls) for pool, np in self.node_pools.items()
            }).apply(lambda urls: {k: [str(u) for u in v] for k, v in urls.items()}),
            "serviceAccounts": pulumi.Output.all(**emails).apply(lambda e: {k: str(v) for k, v in e.items()}),
            "controlPlaneInstanceIds": pulumi.Output.all(*[i.instance_id for i in instances]).apply(
                lambda ids: [str(i) for i in ids]),
            "etcdDiskIds": pulumi.Output.all(*[m.disk.id for m in disks]).apply(lambda ids: [str(i) for i in ids]),
        }
        if backups is not None:
            outputs["etcdBackupBucket"] = backups.bucket_name
        self.outputs = outputs
        self.register_outputs(outputs)
