"""Every policy of the pack, in report order, and the pack's configuration defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel

from cfcr.policy.base import CfcrPolicy
from cfcr.policy.bootstrap import audit_logging, no_key_material, secrets_encrypted
from cfcr.policy.certificates import certificate_keys, certificate_validity
from cfcr.policy.cluster import cni_network_policy, control_plane_count, kubernetes_version
from cfcr.policy.disks import azure_etcd_disk_protected, etcd_disk_ssd, gcp_disk_keys
from cfcr.policy.hosts import disks_encrypted, instance_metadata, no_public_ip, verified_boot
from cfcr.policy.identity import no_basic_project_roles, secret_access_least_privilege
from cfcr.policy.network import (
    api_allowed_cidrs,
    api_private_unless_public,
    etcd_control_plane_only,
    gcp_firewall_targets,
    no_ssh_from_internet,
    no_world_ingress,
    private_endpoints_private_dns,
)
from cfcr.policy.pools import (
    azure_scale_set_no_overprovision,
    azure_scale_set_upgrades,
    node_pool_max_size,
    node_pools_roll_without_capacity_loss,
    node_pools_self_heal,
    node_pools_zonal,
)
from cfcr.policy.storage import object_storage_private
from cfcr.policy.tags import required_tags
from cfcr.policy.vaults import key_vault_hardened

PACK_NAME = "cfcr"
"""Name of the policy pack (as in ``policy/PulumiPolicy.yaml``)."""

POLICIES: tuple[CfcrPolicy, ...] = (
    kubernetes_version,
    control_plane_count,
    etcd_control_plane_only,
    api_allowed_cidrs,
    no_world_ingress,
    no_ssh_from_internet,
    api_private_unless_public,
    gcp_firewall_targets,
    private_endpoints_private_dns,
    instance_metadata,
    no_public_ip,
    verified_boot,
    disks_encrypted,
    gcp_disk_keys,
    etcd_disk_ssd,
    azure_etcd_disk_protected,
    no_key_material,
    secrets_encrypted,
    audit_logging,
    cni_network_policy,
    node_pools_self_heal,
    node_pools_roll_without_capacity_loss,
    node_pools_zonal,
    azure_scale_set_upgrades,
    azure_scale_set_no_overprovision,
    node_pool_max_size,
    certificate_validity,
    certificate_keys,
    object_storage_private,
    key_vault_hardened,
    secret_access_least_privilege,
    no_basic_project_roles,
    required_tags,
)

BY_NAME: Mapping[str, CfcrPolicy] = {p.name: p for p in POLICIES}
assert len(BY_NAME) == len(POLICIES), "policy names must be unique"


def policy(name: str) -> CfcrPolicy:
    """The policy called ``name`` (``KeyError`` listing the names otherwise)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no policy {name!r}; policies: {', '.join(BY_NAME)}") from None


def default_level(p: CfcrPolicy) -> EnforcementLevel:
    """The enforcement level a policy has unless the pack's config changes it."""
    return p.enforcement_level or EnforcementLevel.ADVISORY


def default_config() -> dict[str, dict[str, Any]]:
    """The whole pack's config with every default, in the shape of a policy config file."""
    return {
        p.name: {"enforcementLevel": default_level(p).value, **p.config()}
        for p in POLICIES
    }
