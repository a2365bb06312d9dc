"""Azure's side of the cloud contract (:class:`cfcr.clouds.CloudPackage`): the registry finds
``CLOUD`` here for ``cfcr:cloud: azure``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi

from cfcr.addons.cloud import NodeGroup
from cfcr.azure.addon_profile import PROFILE
from cfcr.azure.node_hook import AzureNodeHook
from cfcr.clouds import BuiltCluster, CloudPackageData
from cfcr.config import ClusterSpec

if TYPE_CHECKING:
    from cfcr.azure.backups import OperatorCommands

ETCD_DISK_DEVICE = "/dev/disk/azure/scsi1/lun0"
"""The etcd data disk at LUN 0 (the Azure udev rules' stable path)."""

EXPORTS: tuple[str, ...] = (
    "apiServerUrl",
    "privateApiServerUrl",
    "apiLoadBalancerAddress",
    "internalApiLoadBalancerAddress",
    "adminKubeconfig",
    "subscriptionId",
    "resourceGroup",
    "virtualNetwork",
    "workersSubnet",
    "securityGroup",
    "keyVault",
    "nodePoolScaleSets",
    "identityClientIds",
    "controlPlaneInstanceIds",
    "etcdDiskIds",
    "etcdBackupAccount",
    "etcdBackupContainer",
    "etcdBackupResourceGroup",
)
"""The outputs an Azure cluster adds to the common ones."""


def cloud_names(spec: ClusterSpec, outputs: Mapping[str, Any], tenant_id: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """The names ``azure.json`` and cluster-autoscaler read (:func:`cfcr.azure.addon_profile.cloud_config_defaults`),
    under their ``azure.json`` keys: from the cluster's outputs (``outputs``), the tenant from
    the provider's client config; the virtual network's group is the cluster's, or, on an
    existing network, the one its ARM id names."""
    from cfcr.azure.network import parse_arm_id

    existing = spec.networking.existing_network
    vnet_group = (parse_arm_id("networking.existingNetwork.networkId", existing.network_id, subnet=False).resource_group
                  if existing is not None else outputs["resourceGroup"])
    return {
        "tenantId": tenant_id,
        "subscriptionId": outputs["subscriptionId"],
        "resourceGroup": outputs["resourceGroup"],
        "vnetName": outputs["virtualNetwork"],
        "vnetResourceGroup": vnet_group,
        "subnetName": outputs["workersSubnet"],
        "securityGroupName": outputs["securityGroup"],
    }


def node_hook(spec: ClusterSpec) -> AzureNodeHook:
    """Key Vault with the VM's user-assigned identity; the vault's name (it ends in a random
    suffix kept in state) and the identity's client id come from the VM's tags
    (:meth:`cfcr.azure.identity.Identities.machine_tags`); etcd snapshots go to the backup
    container (``cfcr.azure.backups``), in the account the members' tag names."""
    from cfcr.azure.backups import snapshot_target

    assert spec.name is not None, "load_spec names every cluster"
    return AzureNodeHook(cluster=spec.name, backups=snapshot_target(spec))


@dataclass(frozen=True)
class AzureCloud(CloudPackageData):
    """``cfcr.azure`` behind the cloud contract."""

    def node_hook(self, spec: ClusterSpec) -> AzureNodeHook:
        """Key Vault with the VM's managed identity, provider ID and vmId from IMDS."""
        return node_hook(spec)

    def restore_commands(self, spec: ClusterSpec) -> OperatorCommands:
        """The Azure CLI commands of the restore runbook (``cfcr.azure.backups``)."""
        from cfcr.azure.backups import operator_commands

        return operator_commands(spec)

    def build(self, spec: ClusterSpec) -> BuiltCluster:
        """``cfcr.azure.Cluster`` from the spec."""
        from pulumi_azure_native import authorization

        from cfcr.azure.cluster import Cluster, ClusterArgs

        assert spec.name is not None, "load_spec names every cluster"
        cluster = Cluster(spec.name, ClusterArgs(spec=spec))
        groups = {p.name: NodeGroup(cluster.node_pools[p.name].scale_set_name, *cluster.node_pools[p.name].sizes)
                  for p in spec.node_pools}
        client = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=cluster))
        return BuiltCluster.of(cluster, EXPORTS, groups,
                               cloud_names=cloud_names(spec, cluster.outputs, client.tenant_id))


CLOUD = AzureCloud(name="azure", hook_type=AzureNodeHook, addon_profile=PROFILE, exports=EXPORTS,
                   etcd_disk_device=ETCD_DISK_DEVICE)
"""The contract's entry point for ``cfcr:cloud: azure``."""
