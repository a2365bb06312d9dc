"""etcd backups on Azure: the storage account and blob container the control plane writes
snapshots to, and who may write them (docs/backups.md, docs/azure-backups.md).

- **Resource group of its own**, ``<cluster>-etcd-backups-<suffix>-rg``: deleting the cluster's
  resource group deletes everything in it, so the account must live elsewhere to outlive the
  cluster. ``<suffix>`` is random (8 hex digits, kept in state), as is the account's.
- **Storage account** ``<cluster letters and digits, at most 12>etcd<suffix>`` (Azure: 3-24
  lowercase letters and digits, global): StorageV2, zone-redundant where the cluster has zones
  (locally redundant otherwise), HTTPS only, TLS 1.2 at least, no public blob access, **no shared
  key** (account keys and SAS signed with them are refused: Entra ID and RBAC only, and user
  delegation SAS, which Entra ID signs), Entra ID the portal's default, no cross-tenant
  replication. Encrypted at rest by Microsoft (the default); inside the snapshot, Kubernetes
  Secrets are encrypted again with the cluster's own key.
- **Blob service**: versioning on, soft delete of blobs and containers for
  :data:`SOFT_DELETE_DAYS` days. A **lifecycle policy** deletes a snapshot
  ``etcdBackups.retentionDays`` after it was written, and a previous version
  ``retentionDays`` + :data:`NONCURRENT_DAYS` days after its creation (Azure counts a version's age
  from when it was written, not from when it stopped being current: so an expired snapshot stays
  recoverable about :data:`NONCURRENT_DAYS` days, as on AWS and GCP).
- **Container** :data:`CONTAINER`, private (no anonymous access).
- **Retained on purpose**: the resource group, the account, its blob service settings, the
  container and the lifecycle policy carry ``retain_on_delete``, so ``pulumi destroy`` (even
  after ``pulumi state unprotect --all``) leaves them and the snapshots in them; tagged
  ``cfcr-retained: etcd-backups``. docs/azure-backups.md gives the commands that remove them.
- **Writers**: the control-plane members' user-assigned identities, each assigned a custom role
  that holds two data actions, write a blob and add a block (:data:`WRITER_DATA_ACTIONS`), at the
  container's scope, under a role assignment condition that admits blob paths under
  ``etcd/<cluster>/`` only. No read, list or delete: a member cannot read or remove a snapshot,
  and an overwrite keeps the old bytes as a previous version, which it cannot delete. The
  built-in "Storage Blob Data Contributor" would also read, list and delete every blob.
  Workers get nothing. The members upload with their own IMDS token (``cfcr.azure.node_hook``);
  the account's name reaches them as the VM tag ``cfcr-etcd-backup-account``.
- ``etcdBackups.existingBucket`` is refused on Azure (``cfcr.config.checks``): a blob store is an
  account and a container, which one bucket name does not say.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_random as random
from pulumi_azure_native import authorization, resources, storage

from cfcr.azure.identity import role_definition_id
from cfcr.azure.names import RESOURCE_GROUP_MAX, resource_name
from cfcr.azure.node_hook import BlobSnapshotTarget
from cfcr.azure.tags import base_tags
from cfcr.config import ClusterSpec
from cfcr.config.topology import control_plane_members
from cfcr.node.backup import snapshot_prefix

CONTAINER = "etcd-backups"
"""The blob container of every cluster's snapshots (in the cluster's own account)."""
ACCOUNT_MAX = 24
"""Storage account names: 3-24 lowercase letters and digits, unique across Azure."""
ACCOUNT_HEAD_MAX = 12
SUFFIX_BYTES = 4
"""Random bytes (8 hex digits) at the end of the account's and the resource group's names."""
SOFT_DELETE_DAYS = 7
"""Days a deleted blob or container stays recoverable."""
NONCURRENT_DAYS = 7
"""Days an expired snapshot stays recoverable as a previous version."""
RETAINED_TAG = "cfcr-retained"
"""Tag of what ``pulumi destroy`` leaves on purpose (value: why)."""
WRITER_DATA_ACTIONS = (
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
)
"""What the writer role may do: Put Blob (and Put Block) — nothing else."""
_PATH = "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers/blobs:path]"


def storage_account_name(cluster: str, suffix: str) -> str:
    """``<cluster>etcd<suffix>``: the cluster's lowercase letters and digits (at most 12, ``cfcr``
    when it has none), ``etcd`` and the random ``suffix`` (8 lowercase hex digits)."""
    if not re.fullmatch(r"[0-9a-f]{8}", suffix):
        raise ValueError(f"storage_account_name: suffix {suffix!r} must be 8 lowercase hex digits")
    head = re.sub(r"[^a-z0-9]", "", cluster.lower())[:ACCOUNT_HEAD_MAX] or "cfcr"
    name = f"{head}etcd{suffix}"
    assert 3 <= len(name) <= ACCOUNT_MAX, name
    return name


def backup_group_name(cluster: str, suffix: str) -> str:
    """The backup resource group: ``<cluster>-etcd-backups-<suffix>-rg`` (at most 90 characters)."""
    return resource_name(f"{cluster}-etcd-backups-{suffix}-rg", limit=RESOURCE_GROUP_MAX, keep=f"-etcd-backups-{suffix}-rg")


def snapshot_target(spec: ClusterSpec) -> BlobSnapshotTarget | None:
    """What a control-plane member needs to upload (the container; the account from its VM's
    tag), or None when ``etcdBackups.enabled`` is false."""
    if not spec.etcd_backups.enabled:
        return None
    return BlobSnapshotTarget(container=CONTAINER)


def writer_condition(cluster: str) -> str:
    """The role assignment condition (version 2.0) of the writers: writes admitted only for blob
    paths under ``etcd/<cluster>/`` (Azure ABAC for Blob Storage; ``blobs:path`` is the blob's
    name within the container)."""
    actions = " AND ".join(f"!(ActionMatches{{'{a}'}})" for a in WRITER_DATA_ACTIONS)
    return f"(({actions}) OR ({_PATH} StringLike '{snapshot_prefix(cluster)}/*'))"


def lifecycle_policy(cluster: str, retention_days: int) -> storage.ManagementPolicySchemaArgs:
    """Delete snapshots ``retention_days`` after they were written, previous versions
    ``retention_days`` + :data:`NONCURRENT_DAYS` after theirs (module docstring)."""
    return storage.ManagementPolicySchemaArgs(rules=[storage.ManagementPolicyRuleArgs(
        name="expire-etcd-snapshots",
        type="Lifecycle",
        enabled=True,
        definition=storage.ManagementPolicyDefinitionArgs(
            filters=storage.ManagementPolicyFilterArgs(
                blob_types=["blockBlob"], prefix_match=[f"{CONTAINER}/{snapshot_prefix(cluster)}/"]),
            actions=storage.ManagementPolicyActionArgs(
                base_blob=storage.ManagementPolicyBaseBlobArgs(
                    delete=storage.DateAfterModificationArgs(days_after_creation_greater_than=retention_days)),
                version=storage.ManagementPolicyVersionArgs(
                    delete=storage.DateAfterCreationArgs(
                        days_after_creation_greater_than=retention_days + NONCURRENT_DAYS)),
            ),
        ),
    )])


@dataclass(frozen=True)
class EtcdBackups:
    """The backup storage of one cluster."""

    account_name: pulumi.Output[str]
    """The storage account (the members' ``cfcr-etcd-backup-account`` tag)."""
    container_name: pulumi.Output[str]
    """The container snapshots go to."""
    resource_group_name: pulumi.Output[str]
    """The backup resource group."""
    account: storage.StorageAccount
    container: storage.BlobContainer
    retained: list[pulumi.Resource]
    """What ``pulumi destroy`` leaves on purpose."""
    grants: list[pulumi.Resource]
    """The writer role and its assignments; the members wait for them."""


def build_etcd_backups(name: str, spec: ClusterSpec, subscription_id: pulumi.Input[str],
                       member_principal_ids: Sequence[pulumi.Input[str]],
                       zone_names: Sequence[str], parent: pulumi.Resource,
                       tags: Mapping[str, str] | None = None) -> EtcdBackups | None:
    """The backup resource group, account, container, lifecycle policy and the writers' role of
    the cluster component ``name`` (children of ``parent``); None when ``etcdBackups.enabled`` is
    false. The writer role is defined in the backups' resource group and assignable there only
    (a custom role is assignable only within its assignable scopes, and the container it is
    assigned on lives there); ``member_principal_ids``: the members' identities, which alone may
    write snapshots."""
    if snapshot_target(spec) is None:
        return None
    assert spec.name is not None, "load_spec names every cluster"
    cluster = spec.name
    child = pulumi.ResourceOptions(parent=parent)
    keep = pulumi.ResourceOptions(parent=parent, retain_on_delete=True)
    retained_tags = {**(tags or base_tags(spec)), RETAINED_TAG: "etcd-backups"}
    suffix = random.RandomId(f"{name}-etcd-backups-suffix", byte_length=SUFFIX_BYTES, opts=child)
    group = resources.ResourceGroup(
        f"{name}-etcd-backups",
        resource_group_name=suffix.hex.apply(lambda h: backup_group_name(cluster, h)),
        location=spec.region,
        tags=retained_tags,
        opts=keep,
    )
    zoned = bool(zone_names) and all(zone_names)
    account = storage.StorageAccount(
        f"{name}-etcd-backups",
        account_name=suffix.hex.apply(lambda h: storage_account_name(cluster, h)),
        resource_group_name=group.name,
        location=spec.region,
        kind=storage.Kind.STORAGE_V2,
        sku=storage.SkuArgs(name=storage.SkuName.STANDARD_ZRS if zoned else storage.SkuName.STANDARD_LRS),
        access_tier=storage.AccessTier.HOT,
        enable_https_traffic_only=True,
        minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
        allow_blob_public_access=False,
        allow_shared_key_access=False,
        default_to_o_auth_authentication=True,
        allow_cross_tenant_replication=False,
        is_hns_enabled=False,
        tags=retained_tags,
        opts=keep,
    )
    service = storage.BlobServiceProperties(
        f"{name}-etcd-backups",
        account_name=account.name,
        resource_group_name=group.name,
        blob_services_name="default",
        is_versioning_enabled=True,
        delete_retention_policy=storage.DeleteRetentionPolicyArgs(enabled=True, days=SOFT_DELETE_DAYS),
        container_delete_retention_policy=storage.DeleteRetentionPolicyArgs(enabled=True, days=SOFT_DELETE_DAYS),
        opts=keep,
    )
    container = storage.BlobContainer(
        f"{name}-etcd-backups",
        account_name=account.name,
        resource_group_name=group.name,
        container_name=CONTAINER,
        public_access=storage.PublicAccess.NONE,
        opts=keep,
    )
    policy = storage.ManagementPolicy(
        f"{name}-etcd-backups",
        account_name=account.name,
        resource_group_name=group.name,
        management_policy_name="default",
        policy=lifecycle_policy(cluster, spec.etcd_backups.retention_days),
        opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=True, depends_on=[service]),
    )
    role_guid = random.RandomUuid(f"{name}-etcd-writer-role-id", opts=child)
    role = authorization.RoleDefinition(
        f"{name}-etcd-backup-writer",
        scope=group.id,  # assignable where it is assigned: the container, in the backups' own group
        role_definition_id=role_guid.result,
        role_name=suffix.hex.apply(lambda h: f"cfcr {cluster} etcd snapshot writer {h}"),
        description=f"cfcr {cluster}: writes etcd snapshots (blobs) and nothing else: no read, list or delete",
        role_type="CustomRole",
        assignable_scopes=[group.id],
        permissions=[authorization.PermissionArgs(actions=[], data_actions=list(WRITER_DATA_ACTIONS))],
        opts=child,
    )
    grants: list[pulumi.Resource] = [role]
    for index, principal in enumerate(member_principal_ids):
        grants.append(authorization.RoleAssignment(
            f"{name}-etcd-backup-writer-{index}",
            scope=container.id,
            role_definition_id=pulumi.Output.all(subscription_id, role_guid.result).apply(
                lambda v: role_definition_id(str(v[0]), str(v[1]))),
            principal_id=principal,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            condition=writer_condition(cluster),
            condition_version="2.0",
            description=f"cfcr {cluster}: control-plane-{index} writes etcd snapshots under {snapshot_prefix(cluster)}/",
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[role]),
        ))
    return EtcdBackups(account_name=account.name, container_name=container.name, resource_group_name=group.name,
                       account=account, container=container, retained=[group, account, service, container, policy],
                       grants=grants)


# ============================================================================ restore procedure


def _tag_query(cluster: str, **tags: str) -> str:
    checks = " && ".join(f"tags.\"{k}\"=='{v}'" for k, v in {"cfcr-cluster": cluster, **tags}.items())
    return f"[?{checks}].name | [0]"


@dataclass(frozen=True)
class OperatorCommands:
    """The Azure CLI commands of the restore procedure (``cfcr.etcd_restore.runbook``); a
    :class:`cfcr.clouds.RestoreCommands`.

    The operator signs in with ``az login`` as someone who holds "Storage Blob Data Reader" on the
    container (list, read, and the user delegation key that signs the download URL: the account
    takes no shared key) and may run commands on the members' VMs
    (``Microsoft.Compute/virtualMachines/runCommand/action``, in "Virtual Machine Contributor").
    A step runs on a member with ``az vm run-command invoke`` (the VM agent; the members have no
    public address and no SSH rule)."""

    cluster: str
    resource_group: str
    """The cluster's resource group (the members' VMs)."""
    container: str
    prefix: str
    """``etcd/<cluster>``."""

    @property
    def list_and_presign(self) -> list[str]:
        """Find the account by its tags, list the snapshots (the newest last), then a one-hour
        user delegation SAS URL for the chosen one."""
        query = _tag_query(self.cluster, **{RETAINED_TAG: "etcd-backups"})
        return [
            f"ACCOUNT=$(az storage account list --query {_sh(query)} -o tsv)"
            "      # or: pulumi stack output etcdBackupAccount",
            f"az storage blob list --auth-mode login --account-name \"$ACCOUNT\" --container-name {self.container} "
            f"--prefix {self.prefix}/ --query '[].name' -o tsv | sort      # <UTC time>-<member>.db, newest last",
            "EXPIRY=$(date -u -d '+1 hour' '+%Y-%m-%dT%H:%MZ')",
            f"URL=$(az storage blob generate-sas --auth-mode login --as-user --account-name \"$ACCOUNT\" "
            f"--container-name {self.container} --name \"{self.prefix}/<UTC time>-<member>.db\" --permissions r "
            "--expiry \"$EXPIRY\" --https-only --full-uri -o tsv)",
        ]

    @property
    def step_file_suffix(self) -> str:
        """Run Command script files: ``.run-command.sh``."""
        return ".run-command.sh"

    def member_step_file(self, script: str) -> tuple[str, str]:
        """The step's script as a Run Command script: a POSIX shell stub that writes the bash script
        (base64) to a file and runs it with bash, whatever shell the agent uses."""
        return self.step_file_suffix, run_command_script(script)

    @property
    def step_output_hint(self) -> str:
        """Run Command's stdout and stderr, in each step's .log once the background commands end."""
        return "run `wait`, then read each step's .log next to its script (Run Command's [stdout] and [stderr])"

    def run_on_member(self, member: str, parameters: Path) -> list[str]:
        """Run a step's script on ``member``'s VM (its name) as root with Run Command, in the
        background (step 2 must run on every member at once: each waits for etcd's quorum)."""
        return [
            f"az vm run-command invoke --resource-group {self.resource_group} --name {member} "
            f"--command-id RunShellScript --scripts @{parameters} --query 'value[0].message' -o tsv "
            f">{parameters}.log 2>&1 &",
        ]


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def run_command_script(script: str) -> str:
    """``script`` (bash) as a Run Command script (:meth:`OperatorCommands.member_step_file`)."""
    encoded = base64.b64encode(script.encode()).decode()
    return "\n".join([
        "#!/bin/sh",
        "# cfcr etcd restore step: the bash script below (base64), run with bash",
        "f=$(mktemp) || exit 1",
        f"echo '{encoded}' | base64 -d >\"$f\" || exit 1",
        "bash \"$f\"",
        "rc=$?",
        "rm -f \"$f\"",
        "exit \"$rc\"",
        "",
    ])


def operator_commands(spec: ClusterSpec) -> OperatorCommands:
    """The restore procedure's Azure CLI commands for ``spec``'s cluster."""
    assert spec.name is not None
    members = control_plane_members(spec)
    assert members, "a cluster has members"
    return OperatorCommands(cluster=spec.name, resource_group=resource_name(f"{spec.name}-rg", limit=RESOURCE_GROUP_MAX,
                                                                            keep="-rg"),
                            container=CONTAINER, prefix=snapshot_prefix(spec.name))


__all__ = [
    "ACCOUNT_MAX", "CONTAINER", "EtcdBackups", "NONCURRENT_DAYS", "OperatorCommands", "RETAINED_TAG",
    "SOFT_DELETE_DAYS", "WRITER_DATA_ACTIONS", "backup_group_name", "build_etcd_backups", "lifecycle_policy",
    "operator_commands", "run_command_script", "snapshot_target", "storage_account_name", "writer_condition",
]
