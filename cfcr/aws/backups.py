"""etcd backups on AWS: the S3 bucket the control plane writes snapshots to, the key that
encrypts them, and the one role that may write them (docs/backups.md).

- **Bucket** ``<cluster>-etcd-backups-<account>-<region>-an``, in the account's own regional
  namespace (S3's account-regional namespace: no other account can take the name, and the
  name follows from the cluster, the account and the region, so nodes, the restore procedure
  and the docs can all name it without a lookup; regions without that namespace get the same
  name without ``-an`` in the global one). Public access blocked, ACLs off (bucket owner
  enforced), versioning on, default encryption SSE-KMS with the backup key (S3 Bucket Keys
  on), a lifecycle rule that expires snapshots after ``etcdBackups.retentionDays`` and
  noncurrent versions 7 days later, and a bucket policy that refuses plain HTTP and any
  upload naming another encryption key.
- **Key**: a KMS key of its own, rotated yearly; not the secrets key, which goes with
  ``pulumi destroy``: a snapshot is worth only as long as its key lives.
- **Retained on purpose**: the bucket, its settings and the key carry ``retain_on_delete``,
  so ``pulumi destroy`` (even after ``pulumi state unprotect --all``) leaves them, and the
  snapshots with them; docs/backups.md gives the commands that remove them. They carry
  ``cfcr.io/cluster`` and ``cfcr.io/retained`` but not the ``kubernetes.io/cluster/<cluster>``
  ownership tag: no controller of the cluster acts on them, and they outlive it.
- **Writer role** ``<cluster>-etcd-backup-<region>`` (an explicit name, so a node can name its
  ARN): ``s3:PutObject`` on ``etcd/<cluster>/*`` of the bucket and ``kms:GenerateDataKey`` for
  it through S3, nothing else: it can neither read, list nor delete a snapshot. Only the
  control-plane members' roles may assume it (its trust policy names them by ARN, and their
  own ``etcd-backup`` policy allows ``sts:AssumeRole`` on it and nothing of S3; identity.py).
  Versioning keeps what an overwrite would replace.
- ``etcdBackups.existingBucket``: no bucket and no key are created; the writer role may write
  the prefix of that bucket and generate data keys for it through S3 with whichever key the
  bucket's default encryption names; its owner sets retention and access.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi_aws import iam, kms, s3

from cfcr.aws.node_hook import ACCOUNT_PLACEHOLDER, S3SnapshotTarget
from cfcr.aws.names import NAME_LIMITS, check_name, fit, replace_first
from cfcr.aws.tags import base_tags, partition_of
from cfcr.config import ClusterSpec
from cfcr.node.backup import SNAPSHOT_ROOT, snapshot_prefix

ROLE = "aws:iam/role:Role"
BUCKET_LIMIT = 63
"""S3 general purpose bucket names: 3-63 characters (S3 User Guide, bucket naming rules)."""
NONCURRENT_DAYS = 7
"""Days an expired or overwritten snapshot stays recoverable as a noncurrent version."""
NO_ACCOUNT_REGIONAL_NAMESPACE = frozenset({"me-south-1", "me-central-1"})
"""Regions where S3 offers no account regional namespace (S3 User Guide, "Namespaces for
general purpose buckets"): the bucket is created in the global namespace there."""
RETAINED_TAG = "cfcr.io/retained"
"""Tag of what ``pulumi destroy`` leaves on purpose (value: why)."""


def account_regional(region: str) -> bool:
    """Whether S3 offers the account regional namespace in ``region``."""
    return region not in NO_ACCOUNT_REGIONAL_NAMESPACE


def bucket_name(cluster: str, region: str, account: str = ACCOUNT_PLACEHOLDER) -> str:
    """``<cluster>-etcd-backups-<account>-<region>-an`` (``-an``: the account regional
    namespace), the cluster part shortened with a hash where the whole would pass 63
    characters; ``account`` may be :data:`ACCOUNT_PLACEHOLDER` for a node to fill in."""
    suffix = f"-{'0' * 12}-{region}" + ("-an" if account_regional(region) else "")
    head = fit(f"{cluster}-etcd-backups", BUCKET_LIMIT - len(suffix), keep="-etcd-backups")
    return f"{head}-{account}-{region}" + ("-an" if account_regional(region) else "")


def writer_role_name(cluster: str, region: str) -> str:
    """``<cluster>-etcd-backup-<region>``, shortened with a hash to IAM's 64 characters: role
    names are global to the account, so two same-named clusters in two regions get two."""
    keep = f"-etcd-backup-{region}"
    return check_name(ROLE, fit(f"{cluster}{keep}", NAME_LIMITS[ROLE].max_length, keep=keep))


def snapshot_target(spec: ClusterSpec) -> S3SnapshotTarget | None:
    """What a control-plane node needs to upload (bucket, writer role), or None when
    ``etcdBackups.enabled`` is false."""
    assert spec.name is not None, "load_spec names every cluster"
    if not spec.etcd_backups.enabled:
        return None
    bucket = spec.etcd_backups.existing_bucket or bucket_name(spec.name, spec.region)
    return S3SnapshotTarget(bucket=bucket, writer_role=writer_role_name(spec.name, spec.region))


def account_of(arn: str) -> str:
    """The account id field of an ARN."""
    parts = arn.split(":")
    if len(parts) < 6 or not parts[4]:
        raise ValueError(f"not an ARN with an account: {arn!r}")
    return parts[4]


def bucket_arn(region: str, bucket: str) -> str:
    """``arn:<partition>:s3:::<bucket>``."""
    return f"arn:{partition_of(region)}:s3:::{bucket}"


def writer_trust_policy(region: str, account: str, control_plane_role_arns: Sequence[str]) -> dict[str, Any]:
    """Who may assume the writer role: the control-plane members' roles, by ARN (the account is
    the principal and ``aws:PrincipalArn`` names the roles, so a member role re-created under the
    same name is trusted again, where a role principal would have pinned its old unique id)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ControlPlaneMembers", "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": f"arn:{partition_of(region)}:iam::{account}:root"},
            "Condition": {"ArnEquals": {"aws:PrincipalArn": sorted(control_plane_role_arns)}},
        }],
    }


def writer_policy(region: str, bucket: str, cluster: str, key_arn: str | None) -> dict[str, Any]:
    """What the writer role may do: put objects under ``etcd/<cluster>/`` of ``bucket``, and
    have S3 generate data keys for that bucket (``key_arn``: the backup key; None for an
    existing bucket, whose default encryption picks the key)."""
    arn = bucket_arn(region, bucket)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "WriteSnapshots", "Effect": "Allow", "Action": "s3:PutObject",
             "Resource": f"{arn}/{snapshot_prefix(cluster)}/*"},
            {"Sid": "EncryptSnapshotsThroughS3", "Effect": "Allow", "Action": "kms:GenerateDataKey",
             "Resource": key_arn or "*",
             "Condition": {
                 "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                 # with S3 Bucket Keys the context is the bucket, without them the object
                 "StringLike": {"kms:EncryptionContext:aws:s3:arn": [arn, f"{arn}/{snapshot_prefix(cluster)}/*"]},
             }},
        ],
    }


def bucket_policy(region: str, bucket: str, key_arn: str) -> dict[str, Any]:
    """Refuse plain HTTP to anyone, and any upload that names an encryption other than the
    backup key (an upload that names none gets the bucket's default: that key)."""
    arn = bucket_arn(region, bucket)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "DenyPlainHttp", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            {"Sid": "DenyOtherEncryption", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
             "Resource": f"{arn}/*",
             "Condition": {"Null": {"s3:x-amz-server-side-encryption": "false"},
                           "StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn}}},
        ],
    }


def lifecycle_rules(cluster: str, retention_days: int) -> list[s3.BucketLifecycleConfigurationRuleArgs]:
    """Expire snapshots ``retention_days`` after they were taken and noncurrent versions
    :data:`NONCURRENT_DAYS` later; drop delete markers left alone and unfinished uploads."""
    prefix = s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=f"{snapshot_prefix(cluster)}/")
    return [
        s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-etcd-snapshots", status="Enabled", filter=prefix,
            expiration=s3.BucketLifecycleConfigurationRuleExpirationArgs(days=retention_days),
            noncurrent_version_expiration=s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=NONCURRENT_DAYS),
            abort_incomplete_multipart_upload=s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=1),
        ),
        s3.BucketLifecycleConfigurationRuleArgs(
            id="remove-expired-delete-markers", status="Enabled", filter=prefix,
            expiration=s3.BucketLifecycleConfigurationRuleExpirationArgs(expired_object_delete_marker=True),
        ),
    ]


@dataclass(frozen=True)
class EtcdBackups:
    """The backup storage of one cluster."""

    bucket_name: pulumi.Output[str]
    """The bucket snapshots go to (created, or ``etcdBackups.existingBucket``)."""
    writer_role: iam.Role
    """The role that may write snapshots and nothing else."""
    key: kms.Key | None
    """The backup key (None with an existing bucket)."""
    bucket: s3.Bucket | None
    """The bucket cfcr created (None with an existing bucket)."""
    retained: list[pulumi.Resource]
    """What ``pulumi destroy`` leaves on purpose."""


def build_etcd_backups(name: str, spec: ClusterSpec, control_plane_role_arns: Sequence[pulumi.Output[str]],
                       parent: pulumi.Resource) -> EtcdBackups | None:
    """Bucket, key and writer role of the cluster component ``name`` (children of ``parent``);
    None when ``etcdBackups.enabled`` is false. ``control_plane_role_arns``: the members' roles,
    which alone may assume the writer role."""
    target = snapshot_target(spec)
    if target is None:
        return None
    assert spec.name is not None
    cluster, region = spec.name, spec.region
    account = control_plane_role_arns[0].apply(account_of)
    child = pulumi.ResourceOptions(parent=parent)
    keep = pulumi.ResourceOptions(parent=parent, retain_on_delete=True)
    tags = {**base_tags(spec, f"{name}-etcd-backups", owned=False), RETAINED_TAG: "etcd-backups"}
    key: kms.Key | None = None
    bucket: s3.Bucket | None = None
    retained: list[pulumi.Resource] = []
    if spec.etcd_backups.existing_bucket:
        name_of_bucket: pulumi.Output[str] = pulumi.Output.from_input(spec.etcd_backups.existing_bucket)
    else:
        key = kms.Key(
            f"{name}-etcd-backups",
            description=f"cfcr {cluster}: etcd snapshots in S3 (retained after destroy)",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=keep,
        )
        regional = account_regional(region)
        bucket = s3.Bucket(
            f"{name}-etcd-backups",
            bucket=account.apply(lambda acct: bucket_name(cluster, region, acct)),
            bucket_namespace="account-regional" if regional else None,
            force_destroy=False,
            tags=tags,
            opts=keep,
        )
        name_of_bucket = bucket.bucket
        owner = s3.BucketOwnershipControls(
            f"{name}-etcd-backups", bucket=bucket.id,
            rule=s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"), opts=keep)
        public = s3.BucketPublicAccessBlock(
            f"{name}-etcd-backups", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=keep)
        versioning = s3.BucketVersioning(
            f"{name}-etcd-backups", bucket=bucket.id,
            versioning_configuration=s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"), opts=keep)
        encryption = s3.BucketServerSideEncryptionConfiguration(
            f"{name}-etcd-backups", bucket=bucket.id,
            rules=[s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=(
                    s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms", kms_master_key_id=key.arn)),
                bucket_key_enabled=True,
            )],
            opts=keep)
        lifecycle = s3.BucketLifecycleConfiguration(
            f"{name}-etcd-backups", bucket=bucket.id,
            rules=lifecycle_rules(cluster, spec.etcd_backups.retention_days),
            opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=True, depends_on=[versioning]))
        policy = s3.BucketPolicy(
            f"{name}-etcd-backups", bucket=bucket.id,
            policy=pulumi.Output.all(bucket.bucket, key.arn).apply(
                lambda v: json.dumps(bucket_policy(region, str(v[0]), str(v[1])))),
            opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=True, depends_on=[public]))
        retained = [key, bucket, owner, public, versioning, encryption, lifecycle, policy]

    role_name = target.writer_role
    role = iam.Role(
        f"{name}-etcd-backup",
        name=role_name,
        description=f"cfcr {cluster}: writes etcd snapshots to s3://.../{snapshot_prefix(cluster)}/ and nothing else",
        assume_role_policy=pulumi.Output.all(account, *control_plane_role_arns).apply(
            lambda v: json.dumps(writer_trust_policy(region, str(v[0]), [str(a) for a in v[1:]]))),
        max_session_duration=3600,
        tags=base_tags(spec, f"{name}-etcd-backup"),
        opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=replace_first(role_name)),
    )
    key_arn: pulumi.Input[str | None] = key.arn if key is not None else None
    iam.RolePolicy(
        f"{name}-etcd-backup-write",
        role=role.id,
        name="write-etcd-snapshots",
        policy=pulumi.Output.all(name_of_bucket, key_arn).apply(
            lambda v: json.dumps(writer_policy(region, str(v[0]), cluster, v[1]))),
        opts=child,
    )
    return EtcdBackups(bucket_name=name_of_bucket, writer_role=role, key=key, bucket=bucket, retained=retained)


@dataclass(frozen=True)
class OperatorCommands:
    """The AWS CLI commands of the restore procedure (``cfcr.etcd_restore.runbook``)."""

    region: str
    bucket: str
    """The bucket, as a shell word (the account read with ``sts get-caller-identity``)."""
    prefix: str
    """``etcd/<cluster>``."""

    @property
    def list_and_presign(self) -> list[str]:
        """List the snapshots (the newest last), then a one-hour download URL for the chosen one."""
        region = self.region
        return [
            f"BUCKET={self.bucket}",
            f"aws s3 ls \"s3://$BUCKET/{self.prefix}/\" --region {region}      # <UTC time>-<member>.db, newest last",
            f"URL=$(aws s3 presign \"s3://$BUCKET/{self.prefix}/<UTC time>-<member>.db\" --region {region} "
            "--expires-in 3600)",
        ]

    @property
    def step_file_suffix(self) -> str:
        """Run Command parameter files: ``.json``."""
        return ".json"

    def member_step_file(self, script: str) -> tuple[str, str] | None:
        """The step's script as ``AWS-RunShellScript`` parameters: (file suffix, content)."""
        return self.step_file_suffix, run_command_parameters(script)

    @property
    def step_output_hint(self) -> str:
        """Run Command's invocations or the Session Manager console."""
        return "aws ssm list-command-invocations --details, or the output in the Session Manager console"

    def run_on_member(self, member: str, parameters: Path) -> list[str]:
        """Run a step's script on ``member``'s instance (found by its ``cfcr.io/member`` tag) with
        Run Command (Session Manager's agent; no SSH)."""
        region = self.region
        return [
            f"ID=$(aws ec2 describe-instances --region {region} --filters Name=tag:cfcr.io/member,Values={member} "
            "Name=instance-state-name,Values=running --query 'Reservations[].Instances[].InstanceId' --output text)",
            f"aws ssm send-command --region {region} --instance-ids \"$ID\" --document-name AWS-RunShellScript "
            f"--parameters file://{parameters} --query Command.CommandId --output text",
        ]


def run_command_parameters(script: str, timeout_seconds: int = 1800) -> str:
    """A script as ``AWS-RunShellScript`` parameters (``--parameters file://...``)."""
    return json.dumps({"commands": script.rstrip("\n").split("\n"), "executionTimeout": [str(timeout_seconds)]},
                      indent=2) + "\n"


def operator_commands(spec: ClusterSpec) -> OperatorCommands:
    """The restore procedure's AWS commands for ``spec``'s cluster."""
    assert spec.name is not None
    existing = spec.etcd_backups.existing_bucket
    bucket = existing or bucket_name(spec.name, spec.region).replace(
        ACCOUNT_PLACEHOLDER, "$(aws sts get-caller-identity --query Account --output text)")
    return OperatorCommands(region=spec.region, bucket=f"\"{bucket}\"", prefix=snapshot_prefix(spec.name))


__all__ = [
    "OperatorCommands", "operator_commands", "run_command_parameters",
    "EtcdBackups", "NONCURRENT_DAYS", "RETAINED_TAG", "SNAPSHOT_ROOT", "account_regional", "bucket_arn",
    "bucket_name", "bucket_policy", "build_etcd_backups", "lifecycle_rules", "snapshot_target", "writer_policy",
    "writer_role_name", "writer_trust_policy",
]
