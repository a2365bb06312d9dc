"""etcd backups: the config, the AWS resources a render builds (bucket, key, writer role and
who may assume it, evaluated with the IAM evaluator), what each node role receives, the AWS
upload hook run against a stand-in ``aws`` command, and the restore procedure
``python -m cfcr etcd-restore`` writes. The script's etcd part runs on a real etcd in
tests/test_backup_real.py.

With backups on, the control-plane user-data of the default stack does not fit AWS's 16 KB today
(see ``test_backups_fit_the_aws_user_data_limit``): the renders here lift that limit, which is
checked there and in tests/test_node_userdata.py, so that the rest can be checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cfcr.aws.backups import (
    NONCURRENT_DAYS,
    RETAINED_TAG,
    bucket_name,
    writer_role_name,
)
from cfcr.aws.node_hook import ACCOUNT_PLACEHOLDER, S3SnapshotTarget, AwsNodeHook
from cfcr.cli import main as cli
from cfcr.config import ConfigError, load_spec, read_stack_config
from cfcr.config.backups import calendar_ok
from cfcr.etcd_restore import (
    BUMP_REVISION,
    RestoreError,
    member_plans,
    restore_args,
    restore_script,
    runbook,
    start_script,
)
from cfcr.node import Role
from cfcr.node import UserDataLimit
from cfcr.node.backup import BACKUP_HOOK_PATH, BACKUP_SCRIPT, backup_files, snapshot_prefix
from cfcr.render import RenderResult, render_stack, unwrap
from cfcr.render.mocks import RecordingMonitor
from cfcr.render.aws import ACCOUNT
from tests.support.aws_render import aws_identities
from tests.support.iam import Decision, Request, evaluate
from tests.support.tools import needs
from tests.support.validators import load_cloud_config, shellcheck_failures, shellcheck_text_failures
from tests.test_aws_cluster import inputs, of_type

STACK = "aws-stable"
RETENTION = 9
BUCKET = "aws:s3/bucket:Bucket"
ROLE = "aws:iam/role:Role"


def stack_config(**backups: Any) -> dict[str, Any]:
    return {**read_stack_config(STACK), "cfcr:etcdBackups": {"enabled": True, **backups}}


def one(result: RenderResult, token: str) -> dict[str, Any]:
    found = of_type(result, token)
    assert len(found) == 1, [r.name for r in found]
    return inputs(found[0])


@pytest.fixture(scope="module")
def options() -> dict[tuple[str, str], tuple[bool, bool]]:
    """(type, name) -> (protect, retainOnDelete) as each registration asked the engine."""
    return {}


def _render(config: dict[str, Any], options: dict[tuple[str, str], tuple[bool, bool]] | None = None) -> RenderResult:
    """The stack rendered with backups on and AWS's user-data limit lifted (module docstring)."""
    original = RecordingMonitor.RegisterResource

    def spy(self: RecordingMonitor, request: Any) -> Any:
        if options is not None:
            options[(request.type, request.name)] = (bool(request.protect), bool(request.retainOnDelete))
        return original(self, request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AwsNodeHook, "user_data_limit", UserDataLimit(10**6, gzip=True))
        patch.setattr(RecordingMonitor, "RegisterResource", spy)
        return render_stack(STACK, None, config=config)


@pytest.fixture(scope="module")
def render(options: dict[tuple[str, str], tuple[bool, bool]]) -> RenderResult:
    return _render(stack_config(retentionDays=RETENTION), options)


@pytest.fixture(scope="module")
def cluster() -> str:
    spec = load_spec(read_stack_config(STACK), STACK)
    assert spec.name is not None
    return spec.name


# ============================================================================ config


def test_backups_are_on_by_default_with_the_documented_defaults() -> None:
    on = load_spec(read_stack_config(STACK), STACK).etcd_backups
    assert (on.enabled, on.schedule, on.retention_days, on.existing_bucket) == (True, "*:0/30", 14, None)
    off = {**read_stack_config(STACK), "cfcr:etcdBackups": {"enabled": False}}
    assert load_spec(off, STACK).etcd_backups.enabled is False


@pytest.mark.parametrize(("backups", "key", "words"), [
    ({"schedule": "every hour"}, "cfcr:etcdBackups.schedule", "OnCalendar"),
    ({"schedule": "*-*-* 25:00"}, "cfcr:etcdBackups.schedule", "OnCalendar"),
    ({"retentionDays": 0}, "cfcr:etcdBackups.retentionDays", "greater than or equal to 1"),
    ({"existingBucket": "s3://my-bucket/etcd"}, "cfcr:etcdBackups.existingBucket", "bucket name"),
    ({"existingBucket": "my-bucket", "retentionDays": 30}, "cfcr:etcdBackups.retentionDays", "lifecycle rule"),
    ({"retention": 3}, "cfcr:etcdBackups.retention", "did you mean 'retentionDays'"),
])
def test_a_bad_backup_setting_names_its_key(backups: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_spec(stack_config(**backups), STACK)
    (problem,) = caught.value.problems
    assert problem.key == key and words in problem.allowed, problem


def test_azure_takes_backups_by_default_and_refuses_an_existing_bucket() -> None:
    """Azure writes to the storage account cfcr creates (cfcr/azure/backups.py): an existing bucket
    name is refused there; backups off leave no timer on its nodes."""
    with pytest.raises(ConfigError, match=r"cfcr:etcdBackups.existingBucket: .*not on azure"):
        load_spec({"cfcr:cloud": "azure", "cfcr:region": "westeurope",
                   "cfcr:etcdBackups": {"existingBucket": "corp-backups"}}, "a")
    spec = load_spec({"cfcr:cloud": "azure", "cfcr:region": "westeurope", "cfcr:etcdBackups": {"enabled": True}}, "a")
    assert spec.etcd_backups.enabled
    config = {**read_stack_config("azure-stable"), "cfcr:etcdBackups": {"enabled": False}}
    result = render_stack("azure-stable", None, config=config)
    for data in result.user_data.values():
        assert_no_backup_on_the_node(data)


CALENDARS = ["*:0/30", "hourly", "daily", "*:00/15", "02:00", "*-*-* 02:00:00", "Mon..Fri *-*-* 03:15",
             "Sat,Sun 04:00", "Mon *-*-* 00:00:00 UTC", "2026-*-01 00:00", "*:0,30", "Mon", "minutely",
             "*~07/1", "*-*-* 00:00:30.5",
             "every hour", "*:0/30 foo", "00:61", "*-*-* 25:00", "*-13-01 00:00", "*:0/0", "", "hourly daily"]


def test_the_schedule_check_agrees_with_systemd() -> None:
    """Our check against systemd's own parser, both ways (when systemd-analyze is here)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    for expression in CALENDARS:
        systemd = subprocess.run([analyze, "calendar", expression], capture_output=True, check=False).returncode == 0
        assert calendar_ok(expression) == systemd, expression


# ============================================================================ names


def test_bucket_and_role_names_fit_for_the_longest_cluster_and_region() -> None:
    cluster = "c" * 62 + "z"
    for region in ("us-east-1", "ap-southeast-4", "me-central-1"):
        name = bucket_name(cluster, region, "123456789012")
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", name), name
        assert name.endswith(f"-123456789012-{region}" + ("" if region.startswith("me-") else "-an")), name
        assert len(writer_role_name(cluster, region)) <= 64
    assert bucket_name("cfcr-aws-stable", "us-east-1") == f"cfcr-aws-stable-etcd-backups-{ACCOUNT_PLACEHOLDER}-us-east-1-an"
    assert bucket_name(cluster, "us-east-1", "1" * 12) != bucket_name(cluster[:-1] + "y", "us-east-1", "1" * 12)
    assert writer_role_name("c", "us-east-1") != writer_role_name("c", "us-west-2")


# ============================================================================ the AWS render


def test_one_bucket_in_the_accounts_regional_namespace_private_versioned_and_encrypted(
        render: RenderResult, cluster: str) -> None:
    bucket = one(render, BUCKET)
    assert bucket["bucket"] == bucket_name(cluster, "us-east-1", ACCOUNT)
    assert bucket["bucketNamespace"] == "account-regional" and bucket["forceDestroy"] is False
    assert "kubernetes.io/cluster/" + cluster not in bucket["tags"], "no controller of the cluster acts on it"
    assert bucket["tags"][RETAINED_TAG] == "etcd-backups" and bucket["tags"]["owner"] == "platform-team"
    bucket_id = str(of_type(render, BUCKET)[0].id)
    public = one(render, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert public["bucket"] == bucket_id
    assert all(public[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                           "restrictPublicBuckets"))
    assert one(render, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")["rule"] == {
        "objectOwnership": "BucketOwnerEnforced"}
    assert one(render, "aws:s3/bucketVersioning:BucketVersioning")["versioningConfiguration"]["status"] == "Enabled"
    keys = {r.name: r for r in of_type(render, "aws:kms/key:Key")}
    backup_key = keys[f"{cluster}-etcd-backups"]
    assert inputs(backup_key)["enableKeyRotation"] is True
    (rule,) = one(render, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")[
        "rules"]
    assert rule["bucketKeyEnabled"] is True
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms", "kmsMasterKeyId": backup_key.outputs["arn"]}, "the backup key, not the secrets key"


def test_the_lifecycle_keeps_snapshots_for_the_retention_then_noncurrent_versions_a_week(
        render: RenderResult, cluster: str) -> None:
    rules = {r["id"]: r for r in one(render, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["rules"]}
    prefix = {"prefix": f"etcd/{cluster}/"}
    expire = rules["expire-etcd-snapshots"]
    assert expire["status"] == "Enabled" and expire["filter"] == prefix
    assert expire["expiration"] == {"days": RETENTION}
    assert expire["noncurrentVersionExpiration"] == {"noncurrentDays": NONCURRENT_DAYS}
    assert expire["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}
    markers = rules["remove-expired-delete-markers"]
    assert markers["filter"] == prefix and markers["expiration"] == {"expiredObjectDeleteMarker": True}


def _bucket_policy(render: RenderResult) -> list[dict[str, Any]]:
    """The bucket policy's statements, evaluated as an identity policy: each is Principal '*'."""
    document = json.loads(one(render, "aws:s3/bucketPolicy:BucketPolicy")["policy"])
    statements = document["Statement"]
    assert all(s.pop("Principal") == "*" for s in statements)
    return [{"Version": "2012-10-17", "Statement": statements}]


def test_the_bucket_refuses_plain_http_and_uploads_naming_another_key(render: RenderResult, cluster: str) -> None:
    policy = _bucket_policy(render)
    bucket = one(render, BUCKET)["bucket"]
    obj = f"arn:aws:s3:::{bucket}/etcd/{cluster}/x.db"
    key = next(r for r in of_type(render, "aws:kms/key:Key") if r.name.endswith("-etcd-backups")).outputs["arn"]
    tls = {"aws:SecureTransport": "true"}
    assert evaluate(policy, Request("s3:GetObject", obj, {"aws:SecureTransport": "false"})) is Decision.EXPLICIT_DENY
    assert evaluate(policy, Request("s3:GetObject", obj, tls)) is not Decision.EXPLICIT_DENY
    assert evaluate(policy, Request("s3:PutObject", obj, tls)) is not Decision.EXPLICIT_DENY, "the default applies"
    own = {**tls, "s3:x-amz-server-side-encryption": "aws:kms", "s3:x-amz-server-side-encryption-aws-kms-key-id": key}
    assert evaluate(policy, Request("s3:PutObject", obj, own)) is not Decision.EXPLICIT_DENY
    for other in ({"s3:x-amz-server-side-encryption": "AES256"},
                  {"s3:x-amz-server-side-encryption": "aws:kms"},  # no key named: aws/s3
                  {"s3:x-amz-server-side-encryption": "aws:kms",
                   "s3:x-amz-server-side-encryption-aws-kms-key-id": key.replace(key[-4:], "0000")}):
        assert evaluate(policy, Request("s3:PutObject", obj, {**tls, **other})) is Decision.EXPLICIT_DENY, other


def _writer(render: RenderResult, cluster: str) -> tuple[dict[str, Any], dict[str, Any]]:
    roles = [r for r in of_type(render, ROLE) if r.name == f"{cluster}-etcd-backup"]
    assert len(roles) == 1
    role = inputs(roles[0])
    (policy,) = [inputs(p) for p in of_type(render, "aws:iam/rolePolicy:RolePolicy") if p.name == f"{cluster}-etcd-backup-write"]
    return role, policy


def test_the_writer_role_may_put_snapshots_under_the_prefix_and_nothing_else(render: RenderResult, cluster: str) -> None:
    role, policy = _writer(render, cluster)
    assert role["name"] == writer_role_name(cluster, "us-east-1")
    document = json.loads(policy["policy"])
    assert [(s["Action"], s["Effect"]) for s in document["Statement"]] == [
        ("s3:PutObject", "Allow"), ("kms:GenerateDataKey", "Allow")]
    bucket = one(render, BUCKET)["bucket"]
    key = next(r for r in of_type(render, "aws:kms/key:Key") if r.name.endswith("-etcd-backups")).outputs["arn"]
    secrets_key = next(r for r in of_type(render, "aws:kms/key:Key") if r.name.endswith("-secrets")).outputs["arn"]
    mine = f"arn:aws:s3:::{bucket}/etcd/{cluster}/20260101T000000Z-{cluster}-cp-0.db"
    docs = [document]
    assert evaluate(docs, Request("s3:PutObject", mine)) is Decision.ALLOW
    for action in ("s3:GetObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl",
                   "s3:ListBucket", "s3:PutBucketPolicy", "s3:PutLifecycleConfiguration", "s3:GetObjectVersion"):
        for resource in (mine, f"arn:aws:s3:::{bucket}"):
            assert evaluate(docs, Request(action, resource)) is not Decision.ALLOW, (action, resource)
    for elsewhere in (f"arn:aws:s3:::{bucket}/etcd/other-cluster/x.db", f"arn:aws:s3:::{bucket}/x.db",
                      f"arn:aws:s3:::other-bucket/etcd/{cluster}/x.db"):
        assert evaluate(docs, Request("s3:PutObject", elsewhere)) is not Decision.ALLOW, elsewhere
    through_s3 = {"kms:ViaService": "s3.us-east-1.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}"}
    assert evaluate(docs, Request("kms:GenerateDataKey", key, through_s3)) is Decision.ALLOW
    assert evaluate(docs, Request("kms:GenerateDataKey", key, {**through_s3, "kms:ViaService": "ec2.us-east-1.amazonaws.com"})) is not Decision.ALLOW
    assert evaluate(docs, Request("kms:GenerateDataKey", key, {**through_s3, "kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::other"})) is not Decision.ALLOW
    assert evaluate(docs, Request("kms:GenerateDataKey", secrets_key, through_s3)) is not Decision.ALLOW
    assert evaluate(docs, Request("kms:Decrypt", key, through_s3)) is not Decision.ALLOW


def test_only_the_control_plane_roles_may_assume_the_writer(render: RenderResult, cluster: str) -> None:
    role, _ = _writer(render, cluster)
    ids = aws_identities(render.resources)
    members = sorted(arn for name, arn in ids.role_arns.items() if re.fullmatch(rf"{re.escape(cluster)}-cp-\d", name))
    assert len(members) == 3, ids.role_arns
    (trust,) = json.loads(role["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"} and trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"ArnEquals": {"aws:PrincipalArn": members}}
    # the ARN AWS gives a role named explicitly (the render's stand-in builds IAM ARNs from the
    # logical name, which for this role differs from its name)
    writer_arn = f"arn:aws:iam::{ACCOUNT}:role/{role['name']}"
    for name, policies in ids.role_policies.items():
        may = evaluate(list(policies.values()), Request("sts:AssumeRole", writer_arn)) is Decision.ALLOW
        assert may == (ids.role_arns[name] in members), name
        if may:  # and nothing else of STS
            assert evaluate(list(policies.values()), Request("sts:AssumeRole", writer_arn.replace(
                role["name"], "some-other-role"))) is not Decision.ALLOW


def test_no_role_but_the_writer_holds_any_s3_right(render: RenderResult, cluster: str) -> None:
    ids = aws_identities(render.resources)
    role, _ = _writer(render, cluster)
    bucket = one(render, BUCKET)["bucket"]
    for name, policies in ids.role_policies.items():
        actions = [a for doc in policies.values() for s in doc["Statement"] if s["Effect"] == "Allow"
                   for a in ([s["Action"]] if isinstance(s.get("Action"), str) else s.get("Action", []))]
        if name == role["name"]:
            continue
        assert not [a for a in actions if a.lower().startswith("s3:") or a == "*"], (name, actions)
        for action in ("s3:PutObject", "s3:GetObject", "s3:ListBucket"):
            for resource in (f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/etcd/{cluster}/x.db"):
                assert evaluate(list(policies.values()), Request(action, resource)) is not Decision.ALLOW


def test_the_backups_outlive_destroy_and_the_writer_does_not(
        render: RenderResult, options: dict[tuple[str, str], tuple[bool, bool]], cluster: str) -> None:
    kept = {(t, n) for (t, n), (_, retain) in options.items() if retain}
    assert kept == {
        ("aws:kms/key:Key", f"{cluster}-etcd-backups"),
        *{(t, f"{cluster}-etcd-backups") for t in (
            BUCKET, "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "aws:s3/bucketVersioning:BucketVersioning",
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "aws:s3/bucketPolicy:BucketPolicy")},
    }, "exactly the snapshots' storage and key are retained"
    assert options[(ROLE, f"{cluster}-etcd-backup")] == (False, False)
    cluster_outputs = next(r for r in render.resources if r.type == "cfcr:aws:Cluster").registered_outputs
    assert unwrap(cluster_outputs["etcdBackupBucket"]) == one(render, BUCKET)["bucket"]


def test_an_existing_bucket_gets_only_the_writer(cluster: str) -> None:
    result = _render(stack_config(existingBucket="company-etcd-backups"))
    assert not of_type(result, BUCKET) and not [r for r in result.resources if r.type.startswith("aws:s3/")]
    assert not [r for r in of_type(result, "aws:kms/key:Key") if r.name.endswith("-etcd-backups")]
    _, policy = _writer(result, cluster)
    document = json.loads(policy["policy"])
    assert document["Statement"][0]["Resource"] == f"arn:aws:s3:::company-etcd-backups/etcd/{cluster}/*"
    assert document["Statement"][1]["Resource"] == "*", "the bucket's own default key, through S3 only"
    hook = load_cloud_config(result.user_data["control-plane-0"])
    files = {f["path"]: f["content"] for f in hook["write_files"]}
    assert 'url="https://company-etcd-backups.s3.' in files[BACKUP_HOOK_PATH]


def test_backups_off_build_nothing_of_them() -> None:
    result = render_stack(STACK, None, config={**read_stack_config(STACK), "cfcr:etcdBackups": {"enabled": False}})
    assert not [r for r in result.resources if r.type.startswith("aws:s3/") or r.name.endswith("-etcd-backup")]
    for data in result.user_data.values():
        assert_no_backup_on_the_node(data)


# ============================================================================ the nodes


def assert_no_backup_on_the_node(data: bytes) -> None:
    """No backup timer, service or hook in the user-data, no backup script among the secrets it
    fetches (bootstrap.sh enables the timer only where the unit is)."""
    files = {f["path"]: f.get("content", "") for f in load_cloud_config(data)["write_files"]}
    assert not [p for p in files if "etcd-backup" in p or p == BACKUP_HOOK_PATH], sorted(files)
    assert "etcd-backup" not in files["/etc/cfcr/secrets.sh"]


def _files(data: bytes) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in load_cloud_config(data)["write_files"]}


def test_every_member_and_no_worker_runs_the_timer_on_the_schedule(render: RenderResult, cluster: str) -> None:
    for role, data in render.user_data.items():
        files = _files(data)
        doc = load_cloud_config(data)
        if not role.startswith("control-plane-"):
            assert BACKUP_SCRIPT not in files and BACKUP_HOOK_PATH not in files, role
            continue
        timer = files["/etc/systemd/system/cfcr-etcd-backup.timer"]["content"]
        assert "OnCalendar=*:0/30\n" in timer and "RandomizedDelaySec" not in timer
        assert BACKUP_SCRIPT not in files, "the script travels through the secret store"
        assert f"'script/etcd-backup.sh|{BACKUP_SCRIPT}|0700'" in files["/etc/cfcr/secrets.sh"]["content"]
        assert files[BACKUP_HOOK_PATH]["permissions"] == "0600"
        # enabled by the boot once etcd-backup.sh has come with the secrets, never before
        assert "cfcr-etcd-backup.timer" not in str(doc["runcmd"])
        assert "systemctl enable --now cfcr-etcd-backup.timer" in files["/usr/local/lib/cfcr/bootstrap.sh"]["content"]
        hook = files[BACKUP_HOOK_PATH]["content"]
        assert f"CFCR_BACKUP_PREFIX={snapshot_prefix(cluster)}\n" in hook
        # the node names the bucket and role the render builds (the account read at run time)
        bucket = one(render, BUCKET)["bucket"].replace(ACCOUNT, "$account")
        assert f'url="https://{bucket}.s3.' in hook and f'/{bucket}/$2"' in hook
        assert f'role/{_writer(render, cluster)[0]["name"]}"' in hook


@needs("shellcheck")
def test_the_backup_files_pass_shellcheck(render: RenderResult, tmp_path: Path) -> None:
    failures = shellcheck_failures("control-plane-0", render.user_data["control-plane-0"], tmp_path)
    assert not failures, "\n".join(failures)
    assert BACKUP_HOOK_PATH in _files(render.user_data["control-plane-0"])


def test_a_hook_without_object_storage_gets_no_timer() -> None:
    spec = load_spec(stack_config(), STACK)
    target = S3SnapshotTarget(bucket="b", writer_role="r")
    assert backup_files(spec, Role.control_plane(0), AwsNodeHook(region="us-east-1", backups=target))
    assert not backup_files(spec, Role.control_plane(0), AwsNodeHook(region="us-east-1"))
    assert not backup_files(spec, Role.worker("general"), AwsNodeHook(region="us-east-1", backups=target))
    off = load_spec({**read_stack_config(STACK), "cfcr:etcdBackups": {"enabled": False}}, STACK)
    assert not backup_files(off, Role.control_plane(0), AwsNodeHook(region="us-east-1", backups=target))


def test_backups_are_on_by_default_and_fit_the_aws_user_data_limit() -> None:
    """The script travels through the secret store (cfcr/node/delivered.py); only the hook and the
    timer are in user-data, which must stay under AWS's 16 KB (the render refuses otherwise)."""
    spec = load_spec(read_stack_config(STACK), STACK)
    assert spec.etcd_backups.enabled
    render_stack(STACK, None, config=read_stack_config(STACK))


# ============================================================================ the AWS upload hook, run
# cfcr_backup_upload runs against an AWS API emulator (moto: STS and S3, the writer's session,
# the object's bytes and checksum, the 5 GiB guard) in tests/test_aws_node_hook_real.py.


# ============================================================================ the restore procedure


def test_each_member_restores_as_its_rendered_etcd(render: RenderResult) -> None:
    spec = load_spec(stack_config(), STACK)
    plans = member_plans(spec)
    assert [p.name for p in plans] == [m["name"] for m in render.exports["controlPlaneMembers"]]
    for plan in plans:
        pod = render.manifests[f"static-pods/{plan.name}/etcd.yaml"]
        flags = dict(a[2:].split("=", 1) for a in pod["spec"]["containers"][0]["command"][1:])
        args = restore_args(plan, "/s.db", "/d")
        given = dict(zip(args[3::2], args[4::2], strict=False))
        for flag in ("name", "initial-cluster", "initial-cluster-token", "initial-advertise-peer-urls"):
            assert given[f"--{flag}"] == flags[flag], flag
        assert given["--bump-revision"] == str(BUMP_REVISION) and args[-1] == "--mark-compacted"


@needs("shellcheck")
def test_the_restore_scripts_pass_shellcheck_and_stop_before_they_touch_data(tmp_path: Path) -> None:
    spec = load_spec(stack_config(), STACK)
    url = "https://bucket.s3.us-east-1.amazonaws.com/etcd/x.db?X-Amz-Algorithm=AWS4&X-Amz-Signature=ab'cd"
    texts = {f"restore-{i}": restore_script(spec, i, url) for i in range(3)}
    texts.update({f"start-{i}": start_script(spec, i) for i in range(3)})
    assert not shellcheck_text_failures(texts, tmp_path)
    script = texts["restore-1"]
    order = [script.index(s) for s in ("sha256sum --check", "snapshot status", "mv \"/etc/kubernetes/manifests/",
                                        "still runs: not restoring", "snapshot restore", "member.before-restore")]
    assert order == sorted(order), "verify, stop, restore, then swap"
    # the URL reaches the script as one quoted word
    assert subprocess.run(["bash", "-c", script.split("\n")[7] + "\nprintf %s \"$snapshot_url\""],
                          capture_output=True, text=True, check=True).stdout == url
    with pytest.raises(RestoreError, match="members 0 to 2"):
        restore_script(spec, 3, url)


def test_the_cli_writes_every_members_kit_and_the_procedure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["etcd-restore", "--stack", STACK]) == 0
    first = capsys.readouterr().out
    spec = load_spec(stack_config(), STACK)
    assert spec.name is not None
    assert f'BUCKET="{spec.name}-etcd-backups-$(aws sts get-caller-identity --query Account --output text)-us-east-1-an"' in first
    assert f'aws s3 presign "s3://$BUCKET/etcd/{spec.name}/' in first
    out = tmp_path / "kit"
    assert cli(["etcd-restore", "--stack", STACK, "--snapshot-url", "https://x/y.db?sig=1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for plan in member_plans(spec):
        assert f"Values={plan.name} " in text and f"file://{out}/restore-{plan.name}.json" in text
        params = json.loads((out / f"restore-{plan.name}.json").read_text())
        assert params["commands"] == restore_script(spec, plan.index, "https://x/y.db?sig=1").rstrip("\n").split("\n")
        assert params["commands"][0] == "#!/bin/bash"
    assert text.index("restore-") < text.index("start-"), "every member restores before any starts"
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir())
    assert cli(["etcd-restore", "--stack", STACK, "--out", str(out)]) == 2


def test_the_restore_needs_a_cloud_with_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cloud stores snapshots now (Azure's runbook is built); a cloud package that gives
    no restore commands is refused by name."""
    from cfcr import clouds

    spec = load_spec({"cfcr:cloud": "azure", "cfcr:region": "westeurope"}, "az")
    assert "az storage blob" in json.dumps(runbook(spec), default=str)
    monkeypatch.setattr(type(clouds.package("azure")), "restore_commands", lambda self, spec: None)
    with pytest.raises(RestoreError, match="cfcr:cloud is azure: its cloud package stores no etcd snapshots"):
        runbook(spec)


def test_docs_describe_what_the_program_does() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "backups.md").read_text()
    for needle in ("etcdBackups", "python -m cfcr etcd-restore", "aws s3api delete-objects",
                   "aws kms schedule-key-deletion", "aws s3 rb", "--bump-revision", RETAINED_TAG):
        assert needle in doc, needle
    assert os.path.basename(BACKUP_SCRIPT) in doc


# ============================================================================ the pack and cloud-init


def test_the_policy_pack_passes_with_backups_on(render: RenderResult) -> None:
    from cfcr.policy.runner import run_pack

    report = run_pack(render.resources, stack=STACK, user_data=render.user_data)
    assert not report.mandatory, report.format()
    tagged = {v.resource for v in report.violations if v.policy == "required-tags"}
    assert not [u for u in tagged if u and "s3/bucket" in u]


@needs("cloud-init")
def test_the_control_plane_user_data_with_backups_passes_cloud_init_schema(render: RenderResult, tmp_path: Path) -> None:
    from tests.support.validators import cloud_init_failures

    failures = cloud_init_failures("control-plane-0", render.user_data["control-plane-0"], tmp_path)
    assert not failures, failures


def _policy_resource(type_token: str, name: str, props: dict[str, Any],
                     deps: dict[str, list[Any]] | None = None) -> Any:
    from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions

    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
    return PolicyResource(type_token, props, f"urn:pulumi:s::p::{type_token}::{name}", name, opts, None, None, [],
                          deps or {})


def _storage_findings(resources: list[Any]) -> list[tuple[str, str | None]]:
    from pulumi_policy import StackValidationArgs

    from cfcr.policy import CfcrStackPolicy, policy

    found: list[tuple[str, str | None]] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append((message, urn))

    check = policy("object-storage-private")
    assert isinstance(check, CfcrStackPolicy)
    check.validate(StackValidationArgs(resources, None), report)
    return found


def test_the_storage_policy_refuses_a_public_or_plain_http_bucket() -> None:
    tls_only = json.dumps({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                                          "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
                                          "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
    bucket = _policy_resource(BUCKET, "b", {"bucket": "b"})
    block = {k: True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")}
    good = [bucket,
            _policy_resource("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "b", {"bucket": "x", **block},
                             {"bucket": [bucket]}),
            _policy_resource("aws:s3/bucketPolicy:BucketPolicy", "b", {"bucket": "b", "policy": tls_only})]
    assert _storage_findings(good) == []
    assert [m for m, _ in _storage_findings(good[:1] + good[2:])] == [
        "no public access block: set all of blockPublicAcls, blockPublicPolicy, ignorePublicAcls, restrictPublicBuckets"]
    leaky = _policy_resource("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "b",
                             {"bucket": "b", **block, "restrictPublicBuckets": False})
    assert [m for m, _ in _storage_findings([bucket, leaky, good[2]])] == [
        "public access block leaves restrictPublicBuckets off"]
    for weaker in ({"Effect": "Allow"}, {"Principal": {"AWS": "arn:aws:iam::1:root"}}, {"Action": "s3:GetObject"},
                   {"Condition": {"Bool": {"aws:SecureTransport": "true"}}}):
        statement = {**json.loads(tls_only)["Statement"][0], **weaker}
        policy_doc = _policy_resource("aws:s3/bucketPolicy:BucketPolicy", "b",
                                      {"bucket": "b", "policy": json.dumps({"Statement": [statement]})})
        assert [m for m, _ in _storage_findings([bucket, good[1], policy_doc])] == [
            "no bucket policy denies requests without TLS (Deny s3:* to * when aws:SecureTransport is false)"], weaker
    unknown = _policy_resource("aws:s3/bucketPolicy:BucketPolicy", "b", {"bucket": "b", "policy": None})
    assert _storage_findings([bucket, good[1], unknown]) == [], "a preview's unknown document is not judged"
    other = _policy_resource(BUCKET, "c", {"bucket": "c"})
    assert {u for _, u in _storage_findings([*good, other])} == {other.urn}, "each bucket needs its own"
