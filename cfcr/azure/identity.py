"""Identities: one user-assigned managed identity per role (each control-plane member, each worker
pool), so a role's token reads its own secrets and nothing else (``secrets.py`` grants each
secret to its readers' identities).

- **User-assigned, never system-assigned**: a system-assigned identity exists only once its VM
  does, so it cannot be granted Key Vault access before the VM boots and reads its secrets
  (CAPZ PR #2189 moved to user-assigned identities for this reason).
- **Workers** get no ARM role at all: their identity exists to read their pool's secrets
  (cloud-node-manager reads what it needs from IMDS, ``useInstanceMetadata``).
- **The control-plane members** get one custom role, scoped to the cluster's resource group (and
  assignable there only), holding what cloud-provider-azure's controller manager, the Azure Disk
  CSI driver's controller and cluster-autoscaler's ``vmss`` provider call
  (:data:`CONTROL_PLANE_ACTIONS`); kOps and CAPZ grant Contributor, which also lets a member
  rewrite every VM, disk, vault and network of the group and read storage keys.
- The custom role's GUID and its name (unique in the tenant) come from random values kept in
  state, so two clusters of one name in one tenant, or a re-created one, never collide.
- Role assignments say ``principalType: ServicePrincipal``: ARM then does not look the new
  identity up in Entra ID, whose replication lags behind (the "PrincipalNotFound" failure of
  assignments made right after the identity; Azure RBAC documentation, "Assign roles to a new
  service principal").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_random as random
from pulumi_azure_native import authorization, managedidentity

from cfcr.azure.names import identity_name
from cfcr.azure.node_hook import CLIENT_ID_TAG, CLUSTER_TAG, ROLE_TAG, VAULT_TAG
from cfcr.config import ClusterSpec

CCM_ACTIONS = (
    # Services of type LoadBalancer: the load balancers, their pools, public IPs and NSG rules
    "Microsoft.Network/loadBalancers/read", "Microsoft.Network/loadBalancers/write",
    "Microsoft.Network/loadBalancers/delete",
    "Microsoft.Network/loadBalancers/backendAddressPools/read",
    "Microsoft.Network/loadBalancers/backendAddressPools/write",
    "Microsoft.Network/loadBalancers/backendAddressPools/delete",
    # putting scale-set instances into a Service's pool: ARM checks join on the pool (a
    # LinkedAuthorizationFailed otherwise, cloud-provider-azure issue #1999) and on the
    # application security groups the instances' IP configurations already name
    "Microsoft.Network/loadBalancers/backendAddressPools/join/action",
    "Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action",
    "Microsoft.Network/loadBalancers/inboundNatRules/join/action",
    "Microsoft.Network/publicIPAddresses/read", "Microsoft.Network/publicIPAddresses/write",
    "Microsoft.Network/publicIPAddresses/delete", "Microsoft.Network/publicIPAddresses/join/action",
    "Microsoft.Network/networkSecurityGroups/read", "Microsoft.Network/networkSecurityGroups/write",
    "Microsoft.Network/networkSecurityGroups/join/action",
    "Microsoft.Network/applicationSecurityGroups/joinNetworkSecurityRule/action",
    "Microsoft.Network/virtualNetworks/read", "Microsoft.Network/virtualNetworks/subnets/read",
    "Microsoft.Network/virtualNetworks/subnets/join/action",
    # nodes: the VMs and scale-set instances, their addresses, zones and sizes; adding them to pools
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachineScaleSets/read", "Microsoft.Compute/virtualMachineScaleSets/write",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/write",
    "Microsoft.Compute/virtualMachineScaleSets/virtualmachines/instanceView/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces/ipconfigurations/publicipaddresses/read",
    "Microsoft.Network/networkInterfaces/read", "Microsoft.Network/networkInterfaces/write",
    "Microsoft.Network/networkInterfaces/join/action",
    "Microsoft.Compute/locations/vmSizes/read", "Microsoft.Compute/locations/operations/read",
)
"""What cloud-provider-azure's controllers call, from its permission list
(kubernetes-sigs/cloud-provider-azure, ``content/en/topics/azure-permissions.md``), less what cfcr
does not use: storage accounts (Azure File is not deployed), route tables (the CNI routes pods;
``configureCloudRoutes`` stays off), private link services (an opt-in Service annotation),
public IP prefixes of other groups and ``manualupgrade`` (Kubernetes 1.11-1.14 only)."""

DISK_CSI_ACTIONS = (
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Compute/disks/read", "Microsoft.Compute/disks/write", "Microsoft.Compute/disks/delete",
    "Microsoft.Compute/locations/DiskOperations/read",
    "Microsoft.Compute/snapshots/read", "Microsoft.Compute/snapshots/write", "Microsoft.Compute/snapshots/delete",
    "Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines/write",
    "Microsoft.Compute/virtualMachineScaleSets/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/write",
    "Microsoft.Compute/locations/vmSizes/read", "Microsoft.Compute/locations/operations/read",
)
"""What the Azure Disk CSI driver's controller calls (kubernetes-sigs/azuredisk-csi-driver,
``docs/driver-parameters.md``, "required permissions for CSI driver controller": ``disks/*``,
``snapshots/*``, the VMs' and scale sets' reads, attach by writing the VM or instance), with
the wildcards spelled out as the actions they stand for."""

AUTOSCALER_ACTIONS = (
    "Microsoft.Compute/virtualMachineScaleSets/read", "Microsoft.Compute/virtualMachineScaleSets/write",
    "Microsoft.Compute/virtualMachineScaleSets/delete/action",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualmachines/instanceView/read",
    "Microsoft.Compute/locations/vmSizes/read", "Microsoft.Compute/locations/operations/read",
)
"""What cluster-autoscaler's Azure ``vmss`` provider calls (kubernetes/autoscaler,
``cluster-autoscaler/cloudprovider/azure``: it lists the group's scale sets and their instances,
sets a scale set's capacity and deletes chosen instances, ``delete/action``). Its README grants
Contributor; these are the calls behind it."""

CONTROL_PLANE_ACTIONS: tuple[str, ...] = tuple(sorted(set(CCM_ACTIONS + DISK_CSI_ACTIONS + AUTOSCALER_ACTIONS),
                                                      key=str.lower))
"""The control plane's custom role (the join candidate check, ``cfcr.azure.node_hook``, needs only
the scale-set reads it already holds)."""
ROLE_SUFFIX_BYTES = 3
"""Random bytes (hex) at the end of the custom role's name."""


def role_definition_id(subscription_id: str, guid: str) -> str:
    """A role definition's id as role assignments name it (built-in or custom)."""
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


@dataclass
class Identities:
    """The cluster's user-assigned identities."""

    identities: dict[str, managedidentity.UserAssignedIdentity]
    """Role slug (``control-plane-0``, ``worker-general``) -> its identity."""
    grants: list[pulumi.Resource] = field(default_factory=list)
    """The control plane's role definition and assignments; machines wait for them."""

    def client_id(self, slug: str) -> pulumi.Output[str]:
        """The client id of role ``slug``'s identity (what IMDS takes, and the VM's tag)."""
        return self.identities[slug].client_id

    def principal_id(self, slug: str) -> pulumi.Output[str]:
        """The principal (object) id of role ``slug``'s identity (what role assignments name)."""
        return self.identities[slug].principal_id

    def resource_id(self, slug: str) -> pulumi.Output[str]:
        """The ARM id of role ``slug``'s identity (what a VM's ``identity.userAssignedIdentities`` lists)."""
        return self.identities[slug].id

    def machine_tags(self, cluster: str, slug: str, vault_name: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
        """The tags a VM or scale set of role ``slug`` carries for its node hook
        (``cfcr.azure.node_hook``): the cluster and role (the join candidate check lists worker
        scale sets by them), the vault and the client id of the role's identity (IMDS shows the
        tags to the VM: neither is a secret)."""
        return {CLUSTER_TAG: cluster, ROLE_TAG: "control-plane" if slug.startswith("control-plane-") else "worker",
                VAULT_TAG: vault_name, CLIENT_ID_TAG: self.client_id(slug)}

    def principal_ids(self) -> dict[str, pulumi.Output[str]]:
        """Role slug -> principal id, for :func:`cfcr.azure.secrets.build_secret_store`."""
        return {slug: identity.principal_id for slug, identity in self.identities.items()}

    @property
    def control_plane(self) -> list[managedidentity.UserAssignedIdentity]:
        """The members' identities, in member order."""
        return [i for s, i in sorted(self.identities.items(), key=lambda kv: _member_index(kv[0]))
                if s.startswith("control-plane-")]

    def workers(self) -> dict[str, managedidentity.UserAssignedIdentity]:
        """Pool name -> its identity."""
        return {s.removeprefix("worker-"): i for s, i in self.identities.items() if s.startswith("worker-")}


def _member_index(slug: str) -> int:
    return int(slug.rsplit("-", 1)[1]) if slug.startswith("control-plane-") else 1 << 30


def build_identities(name: str, spec: ClusterSpec, subscription_id: pulumi.Input[str],
                     resource_group_name: pulumi.Input[str], resource_group_id: pulumi.Input[str],
                     location: pulumi.Input[str], slugs: Sequence[str], parent: pulumi.Resource,
                     tags: Mapping[str, str] | None = None) -> Identities:
    """A user-assigned identity per role slug in the cluster's resource group; the control plane's
    custom role, defined and assigned at the group's scope."""
    assert spec.name is not None, "load_spec names every cluster"
    child = pulumi.ResourceOptions(parent=parent)
    identities: dict[str, managedidentity.UserAssignedIdentity] = {}
    for slug in slugs:
        identities[slug] = managedidentity.UserAssignedIdentity(
            f"{name}-{slug}",
            resource_name_=identity_name(spec.name, slug),
            resource_group_name=resource_group_name,
            location=location,
            tags={**(tags or {}), "cfcr-role-slug": slug},
            opts=child,
        )
    result = Identities(identities=identities)
    members = [slug for slug in slugs if slug.startswith("control-plane-")]
    if not members:
        return result
    guid = random.RandomUuid(f"{name}-cp-role-id", opts=child)
    suffix = random.RandomId(f"{name}-cp-role-suffix", byte_length=ROLE_SUFFIX_BYTES, opts=child)
    role = authorization.RoleDefinition(
        f"{name}-control-plane",
        scope=resource_group_id,
        role_definition_id=guid.result,
        role_name=suffix.hex.apply(lambda h: f"cfcr {spec.name} control plane {h}"),
        description="cloud-provider-azure, the Azure Disk CSI driver and cluster-autoscaler of a cfcr cluster",
        role_type="CustomRole",
        assignable_scopes=[resource_group_id],
        permissions=[authorization.PermissionArgs(actions=list(CONTROL_PLANE_ACTIONS))],
        opts=child,
    )
    result.grants.append(role)
    for slug in sorted(members, key=_member_index):
        result.grants.append(authorization.RoleAssignment(
            f"{name}-{slug}-role",
            scope=resource_group_id,
            role_definition_id=pulumi.Output.all(subscription_id, guid.result).apply(
                lambda v: role_definition_id(str(v[0]), str(v[1]))),
            principal_id=identities[slug].principal_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            description=f"cfcr {spec.name}: {slug} runs the cloud controller manager, disk CSI and autoscaler",
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[role]),
        ))
    return result
