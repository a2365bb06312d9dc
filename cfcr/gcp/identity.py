"""Identities: one service account per role (each control-plane member, each worker pool), so a
role's token reads its own secrets and nothing else (``secrets.py`` grants each secret to its
readers' accounts).

- **Workers** get no project role at all: their account exists to read their pool's secrets.
- **The control-plane members** get one custom role, at project level, holding what the cloud
  controller manager, the PD CSI driver and cluster-autoscaler call (:data:`CONTROL_PLANE_PERMISSIONS`),
  and ``roles/iam.serviceAccountUser`` on each worker account: attaching a disk to a VM that
  runs as another account acts as that account, so the PD CSI driver fails without it.
- The custom role's id ends in a random suffix kept in state: a deleted custom role stays
  soft-deleted for 7 days and its id cannot be reused meanwhile, so a destroyed cluster could
  not be re-created under the same name otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_random as random
from pulumi_gcp import projects, serviceaccount

from cfcr.config import ClusterSpec
from cfcr.gcp.names import account_id, custom_role_id

CCM_PERMISSIONS = (
    # nodes: addresses, zones and existence of the VMs
    "compute.instances.get", "compute.instances.list", "compute.zones.get", "compute.zones.list",
    "compute.regions.get",
    # Services of type LoadBalancer: addresses, forwarding rules, target pools, health checks, firewalls
    "compute.addresses.create", "compute.addresses.delete", "compute.addresses.get", "compute.addresses.list",
    "compute.addresses.use",
    "compute.forwardingRules.create", "compute.forwardingRules.delete", "compute.forwardingRules.get",
    "compute.forwardingRules.list", "compute.forwardingRules.setLabels", "compute.forwardingRules.use",
    "compute.targetPools.addInstance", "compute.targetPools.create", "compute.targetPools.delete",
    "compute.targetPools.get", "compute.targetPools.removeInstance", "compute.targetPools.use",
    "compute.httpHealthChecks.create", "compute.httpHealthChecks.delete", "compute.httpHealthChecks.get",
    "compute.httpHealthChecks.update", "compute.httpHealthChecks.useReadOnly",
    "compute.healthChecks.create", "compute.healthChecks.delete", "compute.healthChecks.get",
    "compute.healthChecks.update", "compute.healthChecks.useReadOnly",
    "compute.regionBackendServices.create", "compute.regionBackendServices.delete",
    "compute.regionBackendServices.get", "compute.regionBackendServices.update", "compute.regionBackendServices.use",
    "compute.instanceGroups.create", "compute.instanceGroups.delete", "compute.instanceGroups.update",
    "compute.instanceGroups.use",
    "compute.firewalls.create", "compute.firewalls.delete", "compute.firewalls.get", "compute.firewalls.update",
    "compute.networks.get", "compute.networks.updatePolicy", "compute.subnetworks.get", "compute.subnetworks.use",
    "compute.instances.use",
    "compute.regionOperations.get", "compute.globalOperations.get", "compute.zoneOperations.get",
)
"""What cloud-provider-gcp's controllers call (node lifecycle and Service load balancers; the
route controller stays off: the CNI routes pods)."""

PD_CSI_PERMISSIONS = (
    "compute.disks.create", "compute.disks.createSnapshot", "compute.disks.delete", "compute.disks.get",
    "compute.disks.list", "compute.disks.resize", "compute.disks.setLabels", "compute.disks.use",
    "compute.instances.attachDisk", "compute.instances.detachDisk", "compute.instances.get",
    "compute.snapshots.create", "compute.snapshots.delete", "compute.snapshots.get", "compute.snapshots.list",
    "compute.snapshots.setLabels", "compute.snapshots.useReadOnly",
    "compute.diskTypes.get", "compute.zones.list", "compute.zoneOperations.get",
)
"""What the PD CSI driver's controller calls (the project's README: roles/compute.storageAdmin
narrowed to disks and snapshots, plus attach and detach)."""

AUTOSCALER_PERMISSIONS = (
    "compute.instanceGroupManagers.get", "compute.instanceGroupManagers.list", "compute.instanceGroupManagers.update",
    "compute.instanceGroups.get", "compute.instanceGroups.list",
    "compute.instanceTemplates.get", "compute.instanceTemplates.list",
    "compute.instances.get", "compute.instances.list",
    "compute.machineTypes.get", "compute.machineTypes.list", "compute.zones.list", "compute.zoneOperations.get",
)
"""What cluster-autoscaler's GCE provider calls (read the groups and templates, resize, delete
chosen instances)."""

CONTROL_PLANE_PERMISSIONS: tuple[str, ...] = tuple(sorted(set(CCM_PERMISSIONS + PD_CSI_PERMISSIONS
                                                              + AUTOSCALER_PERMISSIONS)))
"""The control plane's custom role."""
SERVICE_ACCOUNT_USER = "roles/iam.serviceAccountUser"
ROLE_SUFFIX_BYTES = 3
"""Random bytes (hex) at the end of the custom role's id."""


def role_account(slug: str) -> str:
    """The short role part of a service account id: ``cp-0`` for ``control-plane-0``, ``w-<pool>``."""
    if slug.startswith("control-plane-"):
        return "cp-" + slug.removeprefix("control-plane-")
    return "w-" + slug.removeprefix("worker-")


@dataclass
class Identities:
    """The cluster's service accounts."""

    accounts: dict[str, serviceaccount.Account]
    """Role slug (``control-plane-0``, ``worker-general``) -> its service account."""
    grants: list[pulumi.Resource] = field(default_factory=list)
    """The role bindings; machines wait for them."""

    def email(self, slug: str) -> pulumi.Output[str]:
        """The service account e-mail of role ``slug``."""
        return self.accounts[slug].email

    @property
    def control_plane(self) -> list[serviceaccount.Account]:
        """The members' accounts, in member order."""
        return [a for s, a in sorted(self.accounts.items(), key=lambda kv: _member_index(kv[0]))
                if s.startswith("control-plane-")]

    def workers(self) -> dict[str, serviceaccount.Account]:
        """Pool name -> its account."""
        return {s.removeprefix("worker-"): a for s, a in self.accounts.items() if s.startswith("worker-")}


def _member_index(slug: str) -> int:
    return int(slug.rsplit("-", 1)[1]) if slug.startswith("control-plane-") else 1 << 30


def build_identities(name: str, spec: ClusterSpec, project: str, slugs: Sequence[str],
                     parent: pulumi.Resource) -> Identities:
    """A service account per role slug; the control plane's custom role and bindings."""
    assert spec.name is not None
    child = pulumi.ResourceOptions(parent=parent)
    accounts: dict[str, serviceaccount.Account] = {}
    for slug in slugs:
        accounts[slug] = serviceaccount.Account(
            f"{name}-{slug}",
            account_id=account_id(spec.name, role_account(slug)),
            display_name=f"cfcr {spec.name} {slug}",
            description=f"cfcr {spec.name}: the {slug} machines (reads its own secrets only)",
            project=project,
            opts=child,
        )
    identities = Identities(accounts=accounts)
    members = identities.control_plane
    if not members:
        return identities
    suffix = random.RandomId(f"{name}-cp-role-suffix", byte_length=ROLE_SUFFIX_BYTES, opts=child)
    role = projects.IAMCustomRole(
        f"{name}-control-plane",
        project=project,
        role_id=suffix.hex.apply(lambda h: custom_role_id(str(spec.name), "control_plane", h)),
        title=f"cfcr {spec.name} control plane",
        description="cloud controller manager, PD CSI driver and cluster-autoscaler of a cfcr cluster",
        permissions=list(CONTROL_PLANE_PERMISSIONS),
        stage="GA",
        opts=child,
    )
    for index, account in enumerate(members):
        identities.grants.append(projects.IAMMember(
            f"{name}-cp-{index}-role",
            project=project,
            role=role.name,
            member=account.email.apply(lambda e: f"serviceAccount:{e}"),
            opts=child,
        ))
        for pool, worker in identities.workers().items():
            identities.grants.append(serviceaccount.IAMMember(
                f"{name}-cp-{index}-acts-as-{pool}",
                service_account_id=worker.name,
                role=SERVICE_ACCOUNT_USER,
                member=account.email.apply(lambda e: f"serviceAccount:{e}"),
                opts=child,
            ))
    return identities


def readers_of(readers: Mapping[str, Sequence[str]], secret_id: str) -> list[str]:
    """The role slugs that read ``secret_id``."""
    return sorted(readers.get(secret_id, ()))
