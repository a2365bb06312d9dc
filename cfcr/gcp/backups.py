"""etcd backups on GCP: the Cloud Storage bucket the control plane writes snapshots to, and who
may write them (docs/backups.md).

- **Bucket** ``<cluster>-etcd-backups-<hash>``: Cloud Storage names are global across every
  project, so an 8-hex-digit hash of the project and the cluster follows the name (stable: the
  nodes, the restore procedure and the docs name it without a lookup; the same cluster name in
  two projects gets two buckets). In the cluster's region; uniform bucket-level access (IAM
  only, no ACLs); public access prevention enforced; versioning on; a lifecycle rule deletes a
  snapshot ``etcdBackups.retentionDays`` after it was written and a noncurrent version 7 days
  after it became one. Encrypted at rest by Google (the default); inside the snapshot,
  Kubernetes Secrets are encrypted again with the cluster's own key.
- **Retained on purpose**: the bucket carries ``retain_on_delete`` and ``force_destroy``
  false, so ``pulumi destroy`` (even after ``pulumi state unprotect --all``) leaves it and the
  snapshots in it; docs/backups.md gives the commands that remove it. Labelled
  ``cfcr-cluster`` and ``cfcr-retained: etcd-backups``.
- **Writers**: the control-plane members' service accounts, each with
  ``roles/storage.objectCreator`` on the bucket under an IAM condition that admits object names
  under ``etcd/<cluster>/`` only: create, nothing else (no read, list, overwrite or delete).
  Workers get nothing. The members upload with their own metadata-server token
  (``cfcr.gcp.node_hook``): GCP has no role to assume, and a condition narrows the grant.
- ``etcdBackups.existingBucket``: no bucket is created; the members get the same conditional
  grant on that bucket (which must use uniform bucket-level access for the condition to hold);
  its owner sets retention and access.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
from pulumi_gcp import storage

from cfcr.config import ClusterSpec
from cfcr.config.topology import control_plane_members
from cfcr.gcp.labels import base_labels
from cfcr.gcp.node_hook import GcsSnapshotTarget
from cfcr.names import fit_name
from cfcr.node.backup import snapshot_prefix

BUCKET_LIMIT = 63
"""Cloud Storage bucket names without dots: 3-63 characters (Cloud Storage, "Bucket names")."""
HASH_LENGTH = 8
NONCURRENT_DAYS = 7
"""Days an expired snapshot stays recoverable as a noncurrent version."""
RETAINED_LABEL = "cfcr-retained"
"""Label of what ``pulumi destroy`` leaves on purpose (value: why)."""
WRITER_ROLE = "roles/storage.objectCreator"
IAP_SSH_RANGE = "35.235.240.0/20"
"""Where Identity-Aware Proxy's TCP forwarding connects from (IAP documentation, "Using IAP for
TCP forwarding"): the restore procedure's temporary SSH rule admits this range alone."""


def bucket_name(cluster: str, project: str) -> str:
    """``<cluster>-etcd-backups-<hash>``: the hash (8 hex digits of SHA-256 of
    ``<project>/<cluster>``) keeps the name apart in Cloud Storage's global namespace; the
    cluster part is shortened (with a hash of its own) where the whole would pass 63 characters.
    ``ValueError`` for a name Cloud Storage refuses (it may not contain ``google``)."""
    digest = hashlib.sha256(f"{project}/{cluster}".encode()).hexdigest()[:HASH_LENGTH]
    suffix = f"-{digest}"
    head = fit_name(f"{cluster}-etcd-backups", BUCKET_LIMIT - len(suffix), keep="-etcd-backups")
    name = f"{head}{suffix}"
    if "google" in name or name.startswith("goog"):
        raise ValueError(f"cfcr:name {cluster!r}: the backup bucket {name!r} would contain 'google', which "
                         "Cloud Storage refuses; rename the cluster or set etcdBackups.existingBucket")
    return name


def snapshot_target(spec: ClusterSpec, project: str) -> GcsSnapshotTarget | None:
    """What a control-plane node needs to upload (the bucket), or None when
    ``etcdBackups.enabled`` is false."""
    assert spec.name is not None, "load_spec names every cluster"
    if not spec.etcd_backups.enabled:
        return None
    return GcsSnapshotTarget(bucket=spec.etcd_backups.existing_bucket or bucket_name(spec.name, project))


def writer_condition(bucket: str, cluster: str) -> storage.BucketIAMMemberConditionArgs:
    """The IAM condition of the writers' grant: objects under ``etcd/<cluster>/`` of ``bucket``."""
    return storage.BucketIAMMemberConditionArgs(
        title="etcd-snapshots-only",
        description=f"cfcr {cluster}: create etcd snapshots under {snapshot_prefix(cluster)}/",
        expression=(f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/'
                    f'{snapshot_prefix(cluster)}/")'),
    )


def lifecycle_rules(cluster: str, retention_days: int) -> list[storage.BucketLifecycleRuleArgs]:
    """Delete snapshots ``retention_days`` after they were written (they become noncurrent
    versions) and noncurrent versions :data:`NONCURRENT_DAYS` days later."""
    prefix = [f"{snapshot_prefix(cluster)}/"]
    delete = storage.BucketLifecycleRuleActionArgs(type="Delete")
    return [
        storage.BucketLifecycleRuleArgs(action=delete, condition=storage.BucketLifecycleRuleConditionArgs(
            age=retention_days, with_state="LIVE", matches_prefixes=prefix)),
        storage.BucketLifecycleRuleArgs(action=delete, condition=storage.BucketLifecycleRuleConditionArgs(
            days_since_noncurrent_time=NONCURRENT_DAYS, with_state="ARCHIVED", matches_prefixes=prefix)),
    ]


@dataclass(frozen=True)
class EtcdBackups:
    """The backup storage of one cluster."""

    bucket_name: pulumi.Output[str]
    """The bucket snapshots go to (created, or ``etcdBackups.existingBucket``)."""
    bucket: storage.Bucket | None
    """The bucket cfcr created (None with an existing bucket); retained on destroy."""
    writers: list[storage.BucketIAMMember]
    """One conditional ``objectCreator`` grant per control-plane service account."""


def build_etcd_backups(name: str, spec: ClusterSpec, project: str,
                       control_plane_sa_emails: Sequence[pulumi.Input[str]],
                       parent: pulumi.Resource) -> EtcdBackups | None:
    """The bucket and its writers' grants of the cluster component ``name`` (children of
    ``parent``); None when ``etcdBackups.enabled`` is false. ``control_plane_sa_emails``: the
    members' service accounts, which alone may write (create) snapshots."""
    target = snapshot_target(spec, project)
    if target is None:
        return None
    assert spec.name is not None
    cluster = spec.name
    bucket: storage.Bucket | None = None
    if spec.etcd_backups.existing_bucket:
        name_of_bucket: pulumi.Output[str] = pulumi.Output.from_input(target.bucket)
    else:
        bucket = storage.Bucket(
            f"{name}-etcd-backups",
            name=target.bucket,
            project=project,
            location=spec.region.upper(),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning=storage.BucketVersioningArgs(enabled=True),
            lifecycle_rules=lifecycle_rules(cluster, spec.etcd_backups.retention_days),
            force_destroy=False,
            labels=base_labels(spec, **{RETAINED_LABEL: "etcd-backups"}),
            opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=True),
        )
        name_of_bucket = bucket.name
    writers = [
        storage.BucketIAMMember(
            f"{name}-etcd-backup-writer-{index}",
            bucket=name_of_bucket,
            role=WRITER_ROLE,
            member=pulumi.Output.concat("serviceAccount:", email),
            condition=writer_condition(target.bucket, cluster),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for index, email in enumerate(control_plane_sa_emails)
    ]
    return EtcdBackups(bucket_name=name_of_bucket, bucket=bucket, writers=writers)


@dataclass(frozen=True)
class OperatorCommands:
    """The gcloud commands of the restore procedure (``cfcr.etcd_restore.runbook``); a
    :class:`cfcr.clouds.RestoreCommands`.

    A step runs on a member over SSH through Identity-Aware Proxy (``gcloud compute ssh
    --tunnel-through-iap``): the members have no public address and no SSH rule, and project SSH
    keys are blocked, so gcloud puts the operator's key in the instance's metadata (or OS Login
    is used where the project enables it). The operator opens SSH from IAP's range to the
    control plane for the restore (:attr:`before_steps`) and closes it after (:attr:`after_steps`).
    """

    project: str
    bucket: str
    prefix: str
    """``etcd/<cluster>``."""
    cluster: str
    members: tuple[str, ...]
    """The members' instance names (the first one's network takes the SSH rule)."""

    @property
    def firewall_rule(self) -> str:
        """The temporary rule's name."""
        return fit_name(f"{self.cluster}-restore-iap-ssh", 63)

    @property
    def list_and_presign(self) -> list[str]:
        """List the snapshots (the newest last), then a one-hour signed URL for the chosen one.
        Signing needs a service account's key: the operator impersonates one that may read the
        bucket (``roles/storage.objectViewer``) and that they may impersonate
        (``roles/iam.serviceAccountTokenCreator``)."""
        return [
            f"BUCKET={self.bucket}",
            f"gcloud storage ls \"gs://$BUCKET/{self.prefix}/\" --project {self.project}"
            "      # <UTC time>-<member>.db, newest last",
            "SIGNER=<a service account that may read the bucket, which you may impersonate>",
            f"URL=$(gcloud storage sign-url \"gs://$BUCKET/{self.prefix}/<UTC time>-<member>.db\" --project {self.project} "
            "--duration 1h --impersonate-service-account \"$SIGNER\" --format 'value(signed_url)')",
        ]

    @property
    def step_file_suffix(self) -> None:
        """The script itself is what runs (sent to ``sudo bash -s`` over SSH)."""
        return None

    def member_step_file(self, script: str) -> None:
        """No file of the cloud's own: the script runs as it is."""
        return None

    @property
    def step_output_hint(self) -> str:
        """Each step's log next to its script, once the background sessions are done."""
        return "run `wait`, then read each step's .log next to its script"

    def _zone(self, member: str) -> str:
        return (f"ZONE=$(gcloud compute instances list --project {self.project} --filter 'name=({member})' "
                "--format 'value(zone.basename())')")

    def _ssh(self, member: str) -> str:
        return f"gcloud compute ssh {member} --project {self.project} --zone \"$ZONE\" --tunnel-through-iap"

    @property
    def before_steps(self) -> list[str]:
        """Admit SSH from Identity-Aware Proxy to the control plane (its service accounts only),
        for the restore: created here, deleted in :attr:`after_steps`; then one interactive
        ``true`` on every member, which makes the operator's key, accepts the host keys and
        proves the way works before anything stops (the steps themselves run unattended)."""
        first = self.members[0]
        describe = (f"gcloud compute instances describe {first} --project {self.project} "
                    f"--zone \"$(gcloud compute instances list --project {self.project} "
                    f"--filter 'name=({first})' --format 'value(zone.basename())')\"")
        checks = [line for member in self.members for line in (self._zone(member), f"{self._ssh(member)} --command true")]
        return [
            f"NETWORK=$({describe} --format 'value(networkInterfaces[0].network.basename())')",
            "ACCOUNTS=$(gcloud compute instances list --project " + self.project
            + f" --filter 'labels.cfcr-cluster={self.cluster} AND labels.cfcr-role=control-plane'"
            " --format 'value(serviceAccounts[0].email)' | sort -u | paste -sd, -)",
            f"gcloud compute firewall-rules create {self.firewall_rule} --project {self.project} --network \"$NETWORK\" "
            f"--direction INGRESS --action ALLOW --rules tcp:22 --source-ranges {IAP_SSH_RANGE} "
            "--target-service-accounts \"$ACCOUNTS\"",
            *checks,
        ]

    @property
    def after_steps(self) -> list[str]:
        """Close SSH again."""
        return [f"gcloud compute firewall-rules delete {self.firewall_rule} --project {self.project} --quiet"]

    def run_on_member(self, member: str, parameters: Path) -> list[str]:
        """Run a step's script on ``member``'s instance (its name) as root, over SSH through IAP, in
        the background (step 2 must run on every member at once: each waits for etcd's quorum),
        its output in ``<script>.log``."""
        return [
            self._zone(member),
            f"{self._ssh(member)} --command 'sudo bash -s' <{parameters} >{parameters}.log 2>&1 &",
        ]


def operator_commands(spec: ClusterSpec, project: str) -> OperatorCommands:
    """The restore procedure's gcloud commands for ``spec``'s cluster in ``project``."""
    assert spec.name is not None
    target = GcsSnapshotTarget(bucket=spec.etcd_backups.existing_bucket or bucket_name(spec.name, project))
    return OperatorCommands(project=project, bucket=target.bucket, prefix=snapshot_prefix(spec.name),
                            cluster=spec.name, members=tuple(m.name for m in control_plane_members(spec)))


__all__ = [
    "EtcdBackups", "IAP_SSH_RANGE", "NONCURRENT_DAYS", "OperatorCommands", "RETAINED_LABEL", "WRITER_ROLE",
    "bucket_name", "build_etcd_backups", "lifecycle_rules", "operator_commands", "snapshot_target",
    "writer_condition",
]
