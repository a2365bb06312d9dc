"""Key Vault policies: the vault that holds a cluster's keys authorizes through Azure RBAC (so
each identity can be given one secret, not the vault), keeps deleted secrets recoverable (soft
delete, a minimum retention) and, on a production stack, cannot be purged before the retention
ends (purge protection).

Purge protection cannot be turned off once on and keeps the vault's name taken until the
retention ends, so cfcr turns it on only where ``cfcr:production`` says so; the bootstrap summary
(``cfcr:bootstrap:ClusterBootstrap`` inputs) carries that flag to the policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyResource, ReportViolation

from cfcr.policy.base import CfcrStackPolicy, Setting, boolean, integer
from cfcr.policy.common import as_bool, as_number, fmt_number, get
from cfcr.policy.types import AZ_KEY_VAULT, BOOTSTRAP

AZURE_MIN_SOFT_DELETE_DAYS = 7
"""The shortest soft-delete retention Key Vault accepts (7 to 90 days; learn.microsoft.com/azure/
key-vault/general/soft-delete-overview)."""


def _check_vaults(resources: Sequence[PolicyResource], cfg: Mapping[str, Any], report: ReportViolation) -> None:
    summary = next((r for r in resources if r.resource_type == BOOTSTRAP), None)
    production = summary is not None and as_bool(summary.props.get("production")) is True
    purge_needed = production or bool(cfg["purgeProtectionOutsideProduction"])
    minimum = int(cfg["minSoftDeleteRetentionDays"])
    for vault in (r for r in resources if r.resource_type == AZ_KEY_VAULT):
        props = get(vault.props, "properties")
        props = props if isinstance(props, Mapping) else {}
        if as_bool(props.get("enableRbacAuthorization")) is not True:
            report("properties.enableRbacAuthorization is not true: access policies grant a whole vault, never "
                   "one secret", vault.urn)
        if as_bool(props.get("enableSoftDelete")) is False:
            report("properties.enableSoftDelete is false: a deleted secret is gone at once", vault.urn)
        days = as_number(props.get("softDeleteRetentionInDays"))
        if days is not None and days < minimum:
            report(f"properties.softDeleteRetentionInDays is {fmt_number(days)}; at least {minimum}", vault.urn)
        if purge_needed and as_bool(props.get("enablePurgeProtection")) is not True:
            why = "the stack is production" if production else "purgeProtectionOutsideProduction is set"
            report(f"properties.enablePurgeProtection is not true ({why}): anyone with the vault's purge right "
                   "can destroy the cluster's keys for good", vault.urn)


key_vault_hardened = CfcrStackPolicy(
    "key-vault-hardened",
    "Azure Key Vaults authorize with Azure RBAC, keep soft delete on, and have purge protection on when the "
    "stack is production.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=(BOOTSTRAP, AZ_KEY_VAULT),
    clouds=("azure",),
    check=_check_vaults,
    settings=[
        Setting("minSoftDeleteRetentionDays", integer(
            "Shortest soft-delete retention a vault may have (Azure accepts 7 to 90).",
            AZURE_MIN_SOFT_DELETE_DAYS, AZURE_MIN_SOFT_DELETE_DAYS)),
        Setting("purgeProtectionOutsideProduction", boolean(
            "Require purge protection on every stack's vaults, not only production stacks' (it cannot be "
            "turned off, and keeps a destroyed vault's name taken for the retention).", False)),
    ],
    remediation="properties {enableRbacAuthorization: true, enableSoftDelete: true, enablePurgeProtection: true "
                "on production stacks} (cfcr.azure.secrets does).",
)
