"""Azure's side of the cloud contract (:class:`cfcr.clouds.CloudPackage`): the registry finds
``CLOUD`` here for ``cfcr:cloud: azure``. The package builds the cluster's bootstrap alone for
now (:mod:`cfcr.bootstrap.standalone`); ``cfcr.azure.Cluster`` replaces it in ``build``."""

from __future__ import annotations

from cfcr.azure.addon_profile import PROFILE
from cfcr.azure.names import key_vault_name
from cfcr.azure.node_hook import AzureNodeHook
from cfcr.bootstrap.standalone import EXPORTS
from cfcr.clouds import BootstrapOnlyCloud
from cfcr.config import ClusterSpec

ETCD_DISK_DEVICE = "/dev/disk/azure/scsi1/lun0"
"""The etcd data disk at LUN 0 (the Azure udev rules' stable path)."""


def node_hook(spec: ClusterSpec) -> AzureNodeHook:
    """Key Vault with the VM's managed identity."""
    assert spec.name is not None, "load_spec names every cluster"
    return AzureNodeHook(vault_name=key_vault_name(spec.name), cluster=spec.name)


CLOUD = BootstrapOnlyCloud(name="azure", hook_type=AzureNodeHook, addon_profile=PROFILE, exports=EXPORTS,
                           etcd_disk_device=ETCD_DISK_DEVICE, hook_for=node_hook)
"""The contract's entry point for ``cfcr:cloud: azure``."""
