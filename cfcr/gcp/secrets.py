"""Secret delivery: one Secret Manager secret per ClusterBootstrap secret, stored in the
cluster's region only, each readable by the service accounts of the roles that need it and by
nobody else (``roles/secretmanager.secretAccessor`` on the secret, never on the project).
Nodes read them with their metadata server token at boot (``cfcr.gcp.node_hook``). Secret
Manager keeps at most 64 KiB per version: bootstrap material is far below.

The join token rotates: every control-plane member's account also holds
``roles/secretmanager.secretVersionManager`` on the join token's secret, and on no other: it adds
the new token as a version and destroys the versions it supersedes (destroyed versions are not
billed; enabled and disabled ones are, each month). The first version, Pulumi's, stays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_gcp import secretmanager

from cfcr.bootstrap.component import default_secret_id
from cfcr.config import ClusterSpec
from cfcr.gcp.labels import base_labels
from cfcr.node.secrets import BOOTSTRAP_TOKEN_KEY

SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"
SECRET_VERSION_MANAGER = "roles/secretmanager.secretVersionManager"
"""Add, list, disable, enable and destroy a secret's versions, never read them: what the control
plane's join-token rotation needs (``cfcr_gcp_secret_add``), granted on that secret only."""
MAX_VERSION_BYTES = 65536
"""Secret Manager's limit on one version's payload."""


@dataclass(frozen=True)
class SecretStore:
    """The cluster's secrets."""

    secrets: dict[str, secretmanager.Secret]
    """Secret id -> the secret."""
    versions: list[pulumi.Resource]
    """The values and their access grants; VMs wait for them, so a node never boots before its
    secrets exist and it may read them."""


def build_secret_store(name: str, spec: ClusterSpec, project: str, values: Mapping[str, pulumi.Output[str]],
                       readers: Mapping[str, Sequence[str]], emails: Mapping[str, pulumi.Output[str]],
                       parent: pulumi.Resource) -> SecretStore:
    """A secret, its version and one accessor grant per reader, for each entry of ``values``
    (id -> value); ``readers`` maps a secret id to the role slugs that read it, ``emails`` a role
    slug to its service account's e-mail. The join token's secret also gets one version-manager
    grant per control-plane member (``control-plane-<i>`` in ``emails``): the members rotate it."""
    assert spec.name is not None, "load_spec names every cluster"
    join_token = default_secret_id(spec.name, BOOTSTRAP_TOKEN_KEY)
    rotators = sorted(slug for slug in emails if slug.startswith("control-plane-"))
    child = pulumi.ResourceOptions(parent=parent)
    secrets: dict[str, secretmanager.Secret] = {}
    versions: list[pulumi.Resource] = []
    for secret_id in sorted(values):
        roles = sorted(readers.get(secret_id, ()))
        if not roles:
            raise ValueError(f"secret {secret_id} has no reader; ClusterBootstrap.readers: {sorted(readers)}")
        secret = secretmanager.Secret(
            secret_id,
            project=project,
            secret_id=secret_id,
            replication=secretmanager.SecretReplicationArgs(
                user_managed=secretmanager.SecretReplicationUserManagedArgs(
                    replicas=[secretmanager.SecretReplicationUserManagedReplicaArgs(location=spec.region)],
                ),
            ),
            labels=base_labels(spec),
            deletion_protection=spec.production,
            opts=child,
        )
        value: pulumi.Input[str] = values[secret_id]

        def fits(text: str, sid: str = secret_id) -> str:
            if len(text.encode()) > MAX_VERSION_BYTES:
                raise ValueError(f"secret {sid}: {len(text.encode())} bytes exceed Secret Manager's "
                                 f"{MAX_VERSION_BYTES} per version")
            return text

        versions.append(secretmanager.SecretVersion(
            secret_id,
            secret=secret.id,
            secret_data=pulumi.Output.secret(value).apply(fits),
            opts=child,
        ))
        for slug in roles:
            versions.append(secretmanager.SecretIamMember(
                f"{secret_id}-{slug}",
                project=project,
                secret_id=secret.secret_id,
                role=SECRET_ACCESSOR,
                member=emails[slug].apply(lambda e: f"serviceAccount:{e}"),
                opts=child,
            ))
        if secret_id == join_token:
            for slug in rotators:
                versions.append(secretmanager.SecretIamMember(
                    f"{secret_id}-{slug}-rotates",
                    project=project,
                    secret_id=secret.secret_id,
                    role=SECRET_VERSION_MANAGER,
                    member=emails[slug].apply(lambda e: f"serviceAccount:{e}"),
                    opts=child,
                ))
        secrets[secret_id] = secret
    return SecretStore(secrets=secrets, versions=versions)
