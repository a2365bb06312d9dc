"""GCP's side of the cloud contract (:class:`cfcr.clouds.CloudPackage`): the registry finds
``CLOUD`` here for ``cfcr:cloud: gcp``."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from cfcr.addons.cloud import NodeGroup
from cfcr.clouds import BuiltCluster, CloudPackageData
from cfcr.config import ClusterSpec
from cfcr.gcp.addon_profile import PROFILE
from cfcr.gcp.backups import OperatorCommands, operator_commands
from cfcr.gcp.node_hook import GcpNodeHook

ETCD_DISK_DEVICE = "/dev/disk/by-id/google-etcd"
"""The etcd disk attached with device name ``etcd`` (GCE names it ``google-<device name>``)."""

EXPORTS: tuple[str, ...] = (
    "apiServerUrl",
    "privateApiServerUrl",
    "apiLoadBalancerAddress",
    "internalApiLoadBalancerAddress",
    "adminKubeconfig",
    "project",
    "network",
    "subnetwork",
    "nodePoolGroupUrls",
    "serviceAccounts",
    "controlPlaneInstanceIds",
    "etcdDiskIds",
    "etcdBackupBucket",
)
"""The outputs a GCP cluster adds to the common ones (``etcdBackupBucket`` only with backups)."""


def project(spec: ClusterSpec) -> str:
    """The project that holds the cluster: ``gcp:project``, or ``<cluster>-project``."""
    return pulumi.Config("gcp").get("project") or f"{spec.name}-project"


def node_hook(spec: ClusterSpec, project_id: str | None = None) -> GcpNodeHook:
    """Secret Manager with the VM's service account; etcd snapshots to the cluster's bucket."""
    from cfcr.gcp.backups import snapshot_target

    project_id = project_id or project(spec)
    return GcpNodeHook(project=project_id, cluster=str(spec.name), backups=snapshot_target(spec, project_id))


@dataclass(frozen=True)
class GcpCloud(CloudPackageData):
    """``cfcr.gcp`` behind the cloud contract."""

    def node_hook(self, spec: ClusterSpec) -> GcpNodeHook:
        """Secret Manager with the VM's service account, provider ID from the metadata server."""
        return node_hook(spec)

    def restore_commands(self, spec: ClusterSpec) -> OperatorCommands:
        """Cloud Storage for the snapshots, SSH through IAP on the members
        (:func:`cfcr.gcp.backups.operator_commands`)."""
        return operator_commands(spec, project(spec))

    def build(self, spec: ClusterSpec) -> BuiltCluster:
        """``cfcr.gcp.Cluster`` from the spec and its ``cfcr:gcp`` settings."""
        from cfcr.gcp.cluster import Cluster, ClusterArgs

        assert spec.name is not None, "load_spec names every cluster"
        cluster = Cluster(spec.name, ClusterArgs(spec=spec))
        groups = {f"{p.name}/{k}": NodeGroup(url, low, high)
                  for p in spec.node_pools
                  for k, (url, (low, high)) in enumerate(zip(cluster.node_pools[p.name].group_urls,
                                                             cluster.node_pools[p.name].sizes))}
        return BuiltCluster.of(cluster, EXPORTS, groups)


CLOUD = GcpCloud(name="gcp", hook_type=GcpNodeHook, addon_profile=PROFILE, exports=EXPORTS,
                 etcd_disk_device=ETCD_DISK_DEVICE)
"""The contract's entry point for ``cfcr:cloud: gcp``."""
