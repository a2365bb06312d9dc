"""etcd backups on GCP (cfcr/gcp/backups.py): the bucket's name, the Cloud Storage bucket and the
writers' grants as the mock runtime records them, what a member's user-data carries for them,
and the restore procedure's gcloud commands. The upload itself runs against a stand-in for
Cloud Storage in tests/test_gcp_node_hook_real.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pulumi
import pytest

from cfcr.config import load_spec, read_stack_config
from cfcr.gcp.backups import (
    IAP_SSH_RANGE,
    NONCURRENT_DAYS,
    RETAINED_LABEL,
    WRITER_ROLE,
    bucket_name,
    build_etcd_backups,
    operator_commands,
    snapshot_target,
)
from cfcr.gcp.node_hook import GcpNodeHook, GcsSnapshotTarget
from cfcr.node.backup import backup_hook_script
from cfcr.node.metadata_guard import GUARD_SCRIPT, guard_files
from cfcr.render.mocks import RecordingMonitor
from tests.support.pulumi_mocks import MockRecording, pulumi_mocks, run_program
from tests.support.tools import needs
from tests.support.validators import shellcheck_text_failures

__all__ = ["pulumi_mocks"]  # the fixture

STACK = "gcp-stable"
PROJECT = "example-project"
BUCKET = "gcp:storage/bucket:Bucket"
MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
EMAILS = [f"c-cp-{i}@{PROJECT}.iam.gserviceaccount.com" for i in range(3)]


def spec_with(**backups: Any) -> Any:
    config = {**read_stack_config(STACK), "cfcr:etcdBackups": {"enabled": True, **backups}}
    return load_spec(config, STACK)


def _build(pulumi_mocks: MockRecording, spec: Any, retained: dict[str, bool]) -> Any:
    original = RecordingMonitor.RegisterResource

    def spy(self: RecordingMonitor, request: Any) -> Any:
        retained[request.name] = bool(request.retainOnDelete)
        return original(self, request)

    def program() -> Any:
        parent = pulumi.ComponentResource("test:index:Parent", "parent")
        return build_etcd_backups(spec.name, spec, PROJECT, EMAILS, parent)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RecordingMonitor, "RegisterResource", spy)
        return run_program(program)


def test_the_bucket_name_is_global_stable_and_fits() -> None:
    name = bucket_name("prod", PROJECT)
    assert re.fullmatch(r"prod-etcd-backups-[0-9a-f]{8}", name)
    assert name == bucket_name("prod", PROJECT), "stable"
    assert name != bucket_name("prod", "other-project"), "another project's cluster of that name gets another"
    long = bucket_name("c" * 60, PROJECT)
    assert len(long) == 63 and re.fullmatch(r"c+-[0-9a-f]{8}-etcd-backups-[0-9a-f]{8}", long), long
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]", long)
    with pytest.raises(ValueError, match="'google'.*existingBucket"):
        bucket_name("google-prod", PROJECT)


def test_the_target_follows_the_config() -> None:
    spec = spec_with()
    assert snapshot_target(spec, PROJECT) == GcsSnapshotTarget(bucket_name(spec.name, PROJECT))
    assert snapshot_target(spec_with(existingBucket="corp-backups"), PROJECT) == GcsSnapshotTarget("corp-backups")
    assert snapshot_target(spec_with(enabled=False), PROJECT) is None


def test_one_private_versioned_bucket_with_retention_kept_on_destroy(pulumi_mocks: MockRecording) -> None:
    spec = spec_with(retentionDays=9)
    retained: dict[str, bool] = {}
    built = _build(pulumi_mocks, spec, retained)
    (bucket,) = pulumi_mocks.by_type(BUCKET)
    args = bucket.inputs
    assert args["name"] == bucket_name(spec.name, PROJECT) and args["project"] == PROJECT
    assert args["location"] == spec.region.upper()
    assert args["uniformBucketLevelAccess"] is True and args["publicAccessPrevention"] == "enforced"
    assert args["versioning"] == {"enabled": True}
    assert args["forceDestroy"] is False
    assert args["labels"][RETAINED_LABEL] == "etcd-backups" and args["labels"]["cfcr-cluster"] == spec.name
    prefix = [f"etcd/{spec.name}/"]
    assert [(r["action"]["type"], r["condition"]) for r in args["lifecycleRules"]] == [
        ("Delete", {"age": 9, "withState": "LIVE", "matchesPrefixes": prefix}),
        ("Delete", {"daysSinceNoncurrentTime": NONCURRENT_DAYS, "withState": "ARCHIVED", "matchesPrefixes": prefix}),
    ]
    assert retained[bucket.name] is True, "pulumi destroy leaves the bucket"
    assert built is not None and built.bucket is not None


def test_only_the_members_may_create_snapshots_under_the_prefix(pulumi_mocks: MockRecording) -> None:
    spec = spec_with()
    retained: dict[str, bool] = {}
    _build(pulumi_mocks, spec, retained)
    grants = pulumi_mocks.by_type(MEMBER)
    assert sorted(g.inputs["member"] for g in grants) == sorted(f"serviceAccount:{e}" for e in EMAILS)
    bucket = bucket_name(spec.name, PROJECT)
    for grant in grants:
        assert grant.inputs["role"] == WRITER_ROLE == "roles/storage.objectCreator"
        assert grant.inputs["bucket"] == bucket
        assert grant.inputs["condition"]["expression"] == \
            f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/etcd/{spec.name}/")'
        assert retained[grant.name] is False, "the grants go with the cluster"


def test_an_existing_bucket_gets_only_the_grants(pulumi_mocks: MockRecording) -> None:
    spec = spec_with(existingBucket="corp-backups")
    built = _build(pulumi_mocks, spec, {})
    assert pulumi_mocks.by_type(BUCKET) == [] and built.bucket is None
    assert {g.inputs["bucket"] for g in pulumi_mocks.by_type(MEMBER)} == {"corp-backups"}


def test_backups_off_build_nothing(pulumi_mocks: MockRecording) -> None:
    assert _build(pulumi_mocks, spec_with(enabled=False), {}) is None
    assert pulumi_mocks.by_type(BUCKET) == [] and pulumi_mocks.by_type(MEMBER) == []


# ============================================================================ node side


def test_a_member_with_a_target_gets_the_upload_and_a_worker_does_not() -> None:
    from cfcr.node.backup import BACKUP_HOOK_PATH, backup_files
    from cfcr.node.context import Role

    spec = spec_with()
    hook = GcpNodeHook(project=PROJECT, backups=snapshot_target(spec, PROJECT))
    member = backup_files(spec, Role.control_plane(0), hook)
    assert f"/upload/storage/v1/b/{bucket_name(spec.name, PROJECT)}/o?uploadType=media" in member[BACKUP_HOOK_PATH][0]
    assert backup_files(spec, Role.worker("general"), hook) == {}
    assert backup_files(spec, Role.control_plane(0), GcpNodeHook(project=PROJECT)) == {}


@needs("shellcheck")
def test_the_gcp_node_files_pass_shellcheck(tmp_path: Path) -> None:
    from cfcr.node.secrets import SecretFile, render_secrets_script
    from cfcr.node.userdata import identity_script

    hook = GcpNodeHook(project=PROJECT, backups=GcsSnapshotTarget("b"))
    upload = hook.snapshot_upload_command()
    assert upload is not None
    texts = {
        "secrets.sh": render_secrets_script([SecretFile("ca.crt", "/x/ca.crt", "0644", "c-ca-crt")], hook),
        "backup.sh": backup_hook_script("c", upload),
        "identity.sh": identity_script(hook.provider_id_command()),
        "metadata-guard.sh": guard_files(hook)[GUARD_SCRIPT][0],
    }
    assert shellcheck_text_failures(texts, tmp_path) == []


# ============================================================================ restore procedure


def test_the_restore_commands_list_sign_and_reach_members_through_iap() -> None:
    spec = spec_with()
    ops = operator_commands(spec, PROJECT)
    bucket = bucket_name(spec.name, PROJECT)
    listing = "\n".join(ops.list_and_presign)
    assert f"BUCKET={bucket}" in listing
    assert f'gcloud storage ls "gs://$BUCKET/etcd/{spec.name}/" --project {PROJECT}' in listing
    assert "gcloud storage sign-url" in listing and "--duration 1h" in listing
    assert "--impersonate-service-account" in listing and "URL=$(" in listing
    assert ops.step_file_suffix is None and ops.member_step_file("echo") is None
    member = f"{spec.name}-cp-1"
    run = "\n".join(ops.run_on_member(member, Path("/kit/restore-x.sh")))
    assert f"gcloud compute ssh {member} --project {PROJECT}" in run and "--tunnel-through-iap" in run
    assert "--command 'sudo bash -s' </kit/restore-x.sh >/kit/restore-x.sh.log 2>&1 &" in run
    opened = "\n".join(ops.before_steps)
    assert f"--source-ranges {IAP_SSH_RANGE}" in opened and "--rules tcp:22" in opened
    assert "--target-service-accounts" in opened and "0.0.0.0/0" not in opened
    assert opened.count("--tunnel-through-iap --command true") == spec.control_plane.count, "every way tried first"
    assert ops.after_steps == [f"gcloud compute firewall-rules delete {ops.firewall_rule} --project {PROJECT} --quiet"]
    assert operator_commands(spec_with(existingBucket="corp-backups"), PROJECT).bucket == "corp-backups"


def test_the_runbook_opens_ssh_before_the_steps_and_closes_it_after(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    import cfcr.etcd_restore as restore

    spec = spec_with()
    ops = operator_commands(spec, PROJECT)
    monkeypatch.setattr(restore, "restore_commands", lambda s: ops)
    text = restore.runbook(spec, "https://storage.googleapis.com/x?X-Goog-Signature=s", tmp_path)
    create, ssh, delete = (text.index(ops.before_steps[2]), text.index("--command 'sudo bash -s'"),
                           text.index(ops.after_steps[0]))
    assert create < ssh < delete
    assert text.count("--command 'sudo bash -s'") == 2 * spec.control_plane.count
