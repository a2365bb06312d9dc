"""GCP's side of the cloud contract (:class:`cfcr.clouds.CloudPackage`): the registry finds
``CLOUD`` here for ``cfcr:cloud: gcp``. The package builds the cluster's bootstrap alone for
now (:mod:`cfcr.bootstrap.standalone`); ``cfcr.gcp.Cluster`` replaces it in ``build``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from cfcr.addons.cloud import CloudAddonProfile
from cfcr.bootstrap.standalone import EXPORTS, build_bootstrap_only
from cfcr.clouds import BuiltCluster
from cfcr.config import ClusterSpec
from cfcr.gcp.addon_profile import PROFILE
from cfcr.gcp import node_hook as hook_module
from cfcr.gcp.node_hook import GcpNodeHook
from cfcr.node.context import UserDataLimit

ETCD_DISK_DEVICE = "/dev/disk/by-id/google-etcd"
"""The etcd disk attached with device name ``etcd`` (GCE names it ``google-<device name>``)."""


def project(spec: ClusterSpec) -> str:
    """The project that owns the cluster's secrets: ``gcp:project``, or ``<cluster>-project``."""
    return pulumi.Config("gcp").get("project") or f"{spec.name}-project"


@dataclass(frozen=True)
class GcpCloud:
    """``cfcr.gcp`` behind the cloud contract."""

    name: str = "gcp"
    """``cfcr:cloud``."""
    etcd_disk_device: str | None = ETCD_DISK_DEVICE
    """:data:`ETCD_DISK_DEVICE`."""
    addon_profile: CloudAddonProfile = PROFILE
    """The GCE CCM, the PD StorageClass."""
    exports: Sequence[str] = EXPORTS
    """The bootstrap's outputs."""

    @property
    def user_data_limit(self) -> UserDataLimit:
        """256 KB in one metadata value (no gzip). (the node hook's, read when asked)"""
        return hook_module.USER_DATA_LIMIT

    def node_hook(self, spec: ClusterSpec) -> GcpNodeHook:
        """Secret Manager with the VM's service account."""
        return GcpNodeHook(project=project(spec))

    def restore_commands(self, spec: ClusterSpec) -> None:
        """No etcd snapshots on this cloud yet."""
        return None

    def build(self, spec: ClusterSpec) -> BuiltCluster:
        """The bootstrap alone (no machines yet)."""
        bootstrap, outputs = build_bootstrap_only(spec, self.node_hook(spec), ETCD_DISK_DEVICE)
        return BuiltCluster(bootstrap=bootstrap, exports=outputs)


CLOUD = GcpCloud()
"""The contract's entry point for ``cfcr:cloud: gcp``."""
