"""Secret delivery: one Secrets Manager secret per ClusterBootstrap secret, encrypted with the
cluster's own KMS key (rotation on). Nodes read them with their instance role at boot
(``cfcr.aws.node_hook``); IAM (``identity.py``) decides who reads which."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_aws import kms, secretsmanager

from cfcr.aws.names import check_name
from cfcr.aws.tags import base_tags
from cfcr.config import ClusterSpec


@dataclass(frozen=True)
class SecretStore:
    """The cluster's KMS key and secrets."""

    key: kms.Key
    """Customer-managed key (annual rotation) that encrypts every secret."""
    secrets: dict[str, secretsmanager.Secret]
    """Secret id (its name in Secrets Manager) -> the secret."""
    versions: list[secretsmanager.SecretVersion]
    """The values; VMs wait for them, so a node never boots before its secrets exist."""


def recovery_window_days(spec: ClusterSpec) -> int:
    """Production stacks keep deleted secrets recoverable for 30 days; others delete at once,
    so that a destroyed test cluster can be re-created under the same name."""
    return 30 if spec.production else 0


def build_secret_store(name: str, spec: ClusterSpec, values: Mapping[str, pulumi.Output[str]],
                       parent: pulumi.Resource) -> SecretStore:
    """A KMS key and one secret + version per entry of ``values`` (id -> secret value)."""
    child = pulumi.ResourceOptions(parent=parent)
    key = kms.Key(
        f"{name}-secrets",
        description=f"cfcr {spec.name}: node bootstrap secrets",
        enable_key_rotation=True,
        deletion_window_in_days=7 if not spec.production else 30,
        tags=base_tags(spec, f"{name}-secrets"),
        opts=child,
    )
    kms.Alias(f"{name}-secrets", name=check_name("aws:kms/alias:Alias", f"alias/cfcr/{spec.name}/secrets"),
              target_key_id=key.key_id, opts=child)
    secrets: dict[str, secretsmanager.Secret] = {}
    versions: list[secretsmanager.SecretVersion] = []
    for secret_id in sorted(values):
        value: pulumi.Input[str] = values[secret_id]
        secret = secretsmanager.Secret(
            secret_id,
            name=check_name("aws:secretsmanager/secret:Secret", secret_id),
            description=f"cfcr {spec.name} node bootstrap material",
            kms_key_id=key.arn,
            recovery_window_in_days=recovery_window_days(spec),
            tags=base_tags(spec, secret_id),
            opts=child,
        )
        versions.append(secretsmanager.SecretVersion(
            secret_id,
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(value),
            opts=child,
        ))
        secrets[secret_id] = secret
    return SecretStore(key=key, secrets=secrets, versions=versions)
