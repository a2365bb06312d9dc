"""Azure's side of the cloud contract (:class:`cfcr.clouds.CloudPackage`): the registry finds
``CLOUD`` here for ``cfcr:cloud: azure``. The package builds the cluster's bootstrap alone for
now (:mod:`cfcr.bootstrap.standalone`); ``cfcr.azure.Cluster`` replaces it in ``build``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cfcr.addons.cloud import CloudAddonProfile
from cfcr.azure.addon_profile import PROFILE
from cfcr.azure.names import key_vault_name
from cfcr.azure import node_hook as hook_module
from cfcr.azure.node_hook import AzureNodeHook
from cfcr.bootstrap.standalone import EXPORTS, build_bootstrap_only
from cfcr.clouds import BuiltCluster
from cfcr.config import ClusterSpec
from cfcr.node.context import UserDataLimit

ETCD_DISK_DEVICE = "/dev/disk/azure/scsi1/lun0"
"""The etcd data disk at LUN 0 (the Azure udev rules' stable path)."""


@dataclass(frozen=True)
class AzureCloud:
    """``cfcr.azure`` behind the cloud contract."""

    name: str = "azure"
    """``cfcr:cloud``."""
    etcd_disk_device: str | None = ETCD_DISK_DEVICE
    """:data:`ETCD_DISK_DEVICE`."""
    addon_profile: CloudAddonProfile = PROFILE
    """The Azure CCM, the Azure Disk CSI driver and StorageClass."""
    exports: Sequence[str] = EXPORTS
    """The bootstrap's outputs."""

    @property
    def user_data_limit(self) -> UserDataLimit:
        """64 KB of custom data (gzip allowed). (the node hook's, read when asked)"""
        return hook_module.USER_DATA_LIMIT

    def node_hook(self, spec: ClusterSpec) -> AzureNodeHook:
        """Key Vault with the VM's managed identity."""
        assert spec.name is not None, "load_spec names every cluster"
        return AzureNodeHook(vault_name=key_vault_name(spec.name))

    def restore_commands(self, spec: ClusterSpec) -> None:
        """No etcd snapshots on this cloud yet."""
        return None

    def build(self, spec: ClusterSpec) -> BuiltCluster:
        """The bootstrap alone (no machines yet)."""
        bootstrap, outputs = build_bootstrap_only(spec, self.node_hook(spec), ETCD_DISK_DEVICE)
        return BuiltCluster(bootstrap=bootstrap, exports=outputs)


CLOUD = AzureCloud()
"""The contract's entry point for ``cfcr:cloud: azure``."""
