"""Secret delivery: one Key Vault per cluster, one Key Vault secret per ClusterBootstrap secret,
each readable by the identities of the roles that need it and by nobody else ("Key Vault
Secrets User" on the secret, never on the vault). Nodes read them with their user-assigned
identity's token at boot (``cfcr.azure.node_hook``). Key Vault keeps at most 25 KB per secret
value: bootstrap material is far below.

- **RBAC, not access policies** (``enableRbacAuthorization``): access policies are per vault
  (every reader would read every secret); RBAC roles can be assigned on a single secret.
- **Soft delete** is always on (Azure enforces it on new vaults); retention is 90 days (Azure's
  maximum) for ``cfcr:production`` stacks and 7 days (its minimum) otherwise.
- **Purge protection** follows ``cfcr:production``: on, a deleted vault and its secrets cannot be
  purged before the retention ends, by anyone; enabling it cannot be undone, so it stays unset
  (Azure takes no ``false``) elsewhere, where a destroyed cluster's vault may be purged at once.
- **The vault's name ends in a random suffix** kept in state: a soft-deleted vault keeps its
  name, which is global, for the retention period, so a destroyed cluster could not be created
  again under its name otherwise (pulumi-azure-native#1174).
- The program writes the secrets through ARM (``Microsoft.KeyVault/vaults/secrets/write``, a
  management-plane action), so the deploying identity needs no data-plane role.

The join token rotates: every control-plane member's identity also holds "Key Vault Secrets
Officer" on the join token's secret, and on no other: it writes the new token as the secret's
new version (``PUT secrets/<name>``). Key Vault bills operations, not stored versions, so the
superseded versions stay; Pulumi writes its own value again only when that value changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi_azure_native import authorization, keyvault

from cfcr.azure.identity import role_definition_id
from cfcr.azure.names import key_vault_name
from cfcr.bootstrap.component import default_secret_id
from cfcr.config import ClusterSpec
from cfcr.node.secrets import BOOTSTRAP_TOKEN_KEY

SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
"""Built-in role "Key Vault Secrets User": read secret contents (``secrets/getSecret/action``)."""
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
"""Built-in role "Key Vault Secrets Officer": every action on secrets, granted on the join token's
secret only, for the rotation (``secrets/setSecret/action``)."""
MAX_SECRET_BYTES = 25 * 1024
"""Key Vault's limit on a secret's value ("Azure Key Vault service limits": 25k bytes)."""
SUFFIX_BYTES = 3
"""Random bytes (hex) at the end of the vault's name."""
PRODUCTION_RETENTION_DAYS = 90
OTHER_RETENTION_DAYS = 7


@dataclass(frozen=True)
class SecretStore:
    """The cluster's vault and secrets."""

    vault: keyvault.Vault
    """The cluster's Key Vault."""
    vault_name: pulumi.Output[str]
    """Its name (the VMs' ``cfcr-key-vault`` tag, ``cfcr.azure.node_hook.VAULT_TAG``)."""
    secrets: dict[str, keyvault.Secret]
    """Secret name -> the secret."""
    grants: list[pulumi.Resource]
    """The values' access grants; VMs wait for them, so a node never boots before its secrets
    exist and it may read them (it still waits out their propagation: ``cfcr.azure.node_hook``)."""


def build_secret_store(name: str, spec: ClusterSpec, subscription_id: pulumi.Input[str],
                       tenant_id: pulumi.Input[str], resource_group_name: pulumi.Input[str],
                       location: pulumi.Input[str], values: Mapping[str, pulumi.Output[str]],
                       readers: Mapping[str, Sequence[str]], principal_ids: Mapping[str, pulumi.Output[str]],
                       parent: pulumi.Resource, tags: Mapping[str, str] | None = None) -> SecretStore:
    """The vault, then a secret and one "Secrets User" assignment per reader, for each entry of
    ``values`` (secret name -> value); ``readers`` maps a secret name to the role slugs that read
    it, ``principal_ids`` a role slug to its identity's principal id. The join token's secret also
    gets one "Secrets Officer" assignment per control-plane member (``control-plane-<i>``)."""
    assert spec.name is not None, "load_spec names every cluster"
    cluster = spec.name
    join_token = default_secret_id(cluster, BOOTSTRAP_TOKEN_KEY)
    rotators = sorted(slug for slug in principal_ids if slug.startswith("control-plane-"))
    child = pulumi.ResourceOptions(parent=parent)
    suffix = random.RandomId(f"{name}-kv-suffix", byte_length=SUFFIX_BYTES, opts=child)
    vault = keyvault.Vault(
        f"{name}-kv",
        vault_name=suffix.hex.apply(lambda h: key_vault_name(cluster, h)),
        resource_group_name=resource_group_name,
        location=location,
        properties=keyvault.VaultPropertiesArgs(
            tenant_id=tenant_id,
            sku=keyvault.SkuArgs(family=keyvault.SkuFamily.A, name=keyvault.SkuName.STANDARD),
            enable_rbac_authorization=True,
            enable_soft_delete=True,
            soft_delete_retention_in_days=PRODUCTION_RETENTION_DAYS if spec.production else OTHER_RETENTION_DAYS,
            enable_purge_protection=True if spec.production else None,
            enabled_for_deployment=False,
            enabled_for_disk_encryption=False,
            enabled_for_template_deployment=False,
        ),
        tags=dict(tags or {}),
        opts=child,
    )
    user_role = pulumi.Output.from_input(subscription_id).apply(lambda s: role_definition_id(s, SECRETS_USER))
    officer_role = pulumi.Output.from_input(subscription_id).apply(lambda s: role_definition_id(s, SECRETS_OFFICER))
    secrets: dict[str, keyvault.Secret] = {}
    grants: list[pulumi.Resource] = []
    for secret_name in sorted(values):
        roles = sorted(readers.get(secret_name, ()))
        if not roles:
            raise ValueError(f"secret {secret_name} has no reader; ClusterBootstrap.readers: {sorted(readers)}")
        unknown = [slug for slug in roles if slug not in principal_ids]
        if unknown:
            raise ValueError(f"secret {secret_name}: readers {unknown} have no identity; identities: {sorted(principal_ids)}")

        def fits(text: str, sid: str = secret_name) -> str:
            if len(text.encode()) > MAX_SECRET_BYTES:
                raise ValueError(f"secret {sid}: {len(text.encode())} bytes exceed Key Vault's {MAX_SECRET_BYTES} per secret")
            return text

        value: pulumi.Input[str] = values[secret_name]
        secret = keyvault.Secret(
            secret_name,
            resource_group_name=resource_group_name,
            vault_name=vault.name,
            secret_name=secret_name,
            properties=keyvault.SecretPropertiesArgs(
                value=pulumi.Output.secret(value).apply(fits),
                content_type="text/plain",
            ),
            tags=dict(tags or {}),
            opts=child,
        )
        secrets[secret_name] = secret
        assignments = [(slug, "reads", user_role) for slug in roles]
        if secret_name == join_token:
            assignments += [(slug, "rotates", officer_role) for slug in rotators]
        for slug, verb, role in assignments:
            grants.append(authorization.RoleAssignment(
                f"{secret_name}-{slug}" + ("-rotates" if verb == "rotates" else ""),
                scope=secret.id,
                role_definition_id=role,
                principal_id=principal_ids[slug],
                principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
                description=f"cfcr {cluster}: {slug} {verb} {secret_name}",
                opts=child,
            ))
    return SecretStore(vault=vault, vault_name=vault.name, secrets=secrets, grants=grants)
