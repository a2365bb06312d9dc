"""The AWS node hook (cfcr/aws/node_hook.py) as a node runs it: its rendered files
(``/etc/cfcr/secrets.sh``, ``join-access.sh``, ``backup.sh``, ``identity.sh``, from the very
renderers user-data uses) sourced in bash after the node library, the real curl, jq and python3,
against a real AWS API emulator (moto's server) and an IMDSv2 stand-in on loopback
(tests/support/awsemu.py).

moto authenticates every request here: the instance's credentials are an ``AssumeRole``
session moto issued for the instance's role, served by the IMDS stand-in; moto recomputes each
SigV4 signature and refuses a wrong key, a wrong secret or a missing or wrong session token,
then evaluates the caller's IAM policies by action (by bucket and key for S3; Secrets Manager
and EC2 actions only against ``*``, so those roles allow ``*``). What moto cannot tell, the
tests read from the recorded requests: that the session token and the S3 hash and checksum
headers are among the signed headers, and that the hash and checksum are the body's. A wrapper
before curl, jq and python3 on PATH logs every command line they get: no credential, token or
secret value may appear in one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cfcr.aws.node_hook import AwsNodeHook, S3SnapshotTarget
from cfcr.node.backup import backup_hook_script
from cfcr.node.secrets import SecretFile, render_secrets_script
from cfcr.node.userdata import identity_script, join_access_script
from tests.support.tools import needs

pytest.importorskip("moto", reason="moto[server] (the AWS API emulator) is in the test extra: pip install -e '.[test]'")
if shutil.which("python3") is None:
    pytest.skip("python3 is not on PATH: the hook parses XML answers with it", allow_module_level=True)

from tests.support.awsemu import ACCOUNT, REGION, Credentials, Imds, MotoAws  # noqa: E402

LIB = Path(__file__).resolve().parents[1] / "cfcr" / "node" / "scripts" / "lib.sh"
CLUSTER = "c1"
JOIN, JOINED = f"{CLUSTER}-general-join", f"{CLUSTER}-general-joined"
BUCKET = f"{CLUSTER}-etcd-backups-{ACCOUNT}-{REGION}-an"
WRITER = f"{CLUSTER}-etcd-backup-{REGION}"
SECRET_VALUE = 'line one\nline "two" \\ $HOME `x`\n'


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(actions: list[str], resource: str = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resource}


@dataclass
class Account:
    """The emulated account, seeded, and the node's view of it."""

    aws: MotoAws
    imds: Imds
    admin: tuple[str, str]
    roles: dict[str, Credentials]
    """Role name -> an AssumeRole session moto issued for it (what IMDS serves an instance of that role)."""
    secret_arns: dict[str, str]
    instances: dict[str, dict[str, str]]
    """Label -> {"id", "ip", "association"}."""

    def client(self, service: str) -> Any:
        return self.aws.client(service, self.admin)

    def as_role(self, role: str) -> None:
        """The instance's profile is ``role``'s from now on."""
        self.imds.serve(role, self.roles[role])

    def association(self, label: str) -> tuple[str, str]:
        """(association id, profile name) of the instance ``label`` now."""
        found = self.client("ec2").describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [self.instances[label]["id"]]}])["IamInstanceProfileAssociations"]
        (one,) = found
        return one["AssociationId"], one["IamInstanceProfile"]["Arn"].rsplit("/", 1)[-1]


def _seed(aws: MotoAws, imds: Imds) -> Account:
    iam = aws.client("iam")
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=_policy(_allow(["*"])))
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    admin = (key["AccessKeyId"], key["SecretAccessKey"])
    trust_ec2 = _policy({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"})
    bucket_objects = f"arn:aws:s3:::{BUCKET}/etcd/{CLUSTER}/*"
    writer_arn = f"arn:aws:iam::{ACCOUNT}:role/{WRITER}"
    roles = {
        "control-plane": [_allow(["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue",
                                  "ec2:DescribeIamInstanceProfileAssociations", "ec2:DescribeInstances",
                                  "ec2:ReplaceIamInstanceProfileAssociation", "iam:PassRole"]),
                          _allow(["sts:AssumeRole"], writer_arn)],
        "worker-join": [_allow(["secretsmanager:GetSecretValue"])],
        "worker-joined": [_allow(["ec2:DescribeInstances"])],
        "nothing": [_allow(["ec2:DescribeRegions"])],
    }
    for name, statements in roles.items():
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_ec2)
        iam.put_role_policy(RoleName=name, PolicyName="node", PolicyDocument=_policy(*statements))
    # the writer trusts the control-plane role's sessions only (moto matches the session's ARN)
    iam.create_role(RoleName=WRITER, AssumeRolePolicyDocument=_policy({
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:sts::{ACCOUNT}:assumed-role/control-plane/i-cp"},
        "Action": "sts:AssumeRole"}))
    iam.put_role_policy(RoleName=WRITER, PolicyName="put", PolicyDocument=_policy(_allow(["s3:PutObject"], bucket_objects)))
    for profile, role in ((JOIN, "worker-join"), (JOINED, "worker-joined"), (f"{CLUSTER}-cp", "control-plane"),
                          ("other-join", "worker-join")):
        iam.create_instance_profile(InstanceProfileName=profile)
        iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    sts = aws.client("sts", admin)
    sessions = {}
    for role in roles:
        c = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName="i-cp")["Credentials"]
        sessions[role] = Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])

    sm = aws.client("secretsmanager", admin)
    arns = {name: sm.create_secret(Name=f"{CLUSTER}-{name}", SecretString=value)["ARN"]
            for name, value in (("ca-crt", SECRET_VALUE), ("bootstrap-token", "abcdef.0123456789abcdef"))}
    aws.client("s3", admin).create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})

    ec2 = aws.client("ec2", admin)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    owned = {"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"}
    layout = {  # label: (address, profile, tags, stopped)
        "joining": ("10.0.1.11", JOIN, [owned, {"Key": "cfcr.io/role", "Value": "worker"}], False),
        "joining-unlisted": ("10.0.1.12", JOIN, [owned, {"Key": "cfcr.io/role", "Value": "worker"}], False),
        "joined": ("10.0.1.13", JOINED, [owned, {"Key": "cfcr.io/role", "Value": "worker"}], False),
        "foreign-profile": ("10.0.1.14", "other-join", [owned, {"Key": "cfcr.io/role", "Value": "worker"}], False),
        "control-plane-tag": ("10.0.1.15", JOIN, [owned, {"Key": "cfcr.io/role", "Value": "control-plane"}], False),
        "other-cluster": ("10.0.1.16", JOIN, [{"Key": "kubernetes.io/cluster/c2", "Value": "owned"},
                                              {"Key": "cfcr.io/role", "Value": "worker"}], False),
        "stopped": ("10.0.1.17", JOIN, [owned, {"Key": "cfcr.io/role", "Value": "worker"}], True),
        "joining-2": ("10.0.1.18", JOIN, [owned, {"Key": "cfcr.io/role", "Value": "worker"}], False),
    }
    instances = {}
    for label, (address, profile, tags, stopped) in layout.items():
        (instance,) = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress=address,
                                        IamInstanceProfile={"Name": profile},
                                        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])["Instances"]
        if stopped:
            ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
        instances[label] = {"id": instance["InstanceId"], "ip": address}
    account = Account(aws, imds, admin, sessions, arns, instances)
    for label in instances:
        instances[label]["association"] = account.association(label)[0]
    aws.enforce_auth()
    return account


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
    with MotoAws() as aws, Imds() as imds:
        yield _seed(aws, imds)


@pytest.fixture
def cp(account: Account) -> Account:
    account.as_role("control-plane")
    return account


HOOK = AwsNodeHook(region=REGION, cluster=CLUSTER, joined_profiles={JOIN: JOINED},
                   backups=S3SnapshotTarget(bucket=f"{CLUSTER}-etcd-backups-@ACCOUNT@-{REGION}-an", writer_role=WRITER))

LOGGED = ("curl", "jq", "python3")


def _node_files(tmp_path: Path, account: Account, hook: AwsNodeHook = HOOK) -> Path:
    """The hook's files, as user-data writes them on a control-plane member, and wrappers that
    log the command lines of curl, jq and python3 before running them."""
    files = [SecretFile("ca.crt", "/etc/kubernetes/pki/ca.crt", "0644", account.secret_arns["ca-crt"]),
             SecretFile("bootstrap-token", "/etc/cfcr/secrets/bootstrap-token", "0600", account.secret_arns["bootstrap-token"]),
             SecretFile("missing", "/etc/cfcr/secrets/missing", "0600", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:nope")]
    root = tmp_path / "node"
    (root / "bin").mkdir(parents=True)
    (root / "secrets.sh").write_text(render_secrets_script(files, hook, {"bootstrap-token": account.secret_arns["bootstrap-token"]}))
    (root / "join-access.sh").write_text(join_access_script(hook.revoke_command(), hook.candidate_command()))
    upload = hook.snapshot_upload_command()
    assert upload is not None
    (root / "backup.sh").write_text(backup_hook_script(CLUSTER, upload))
    (root / "identity.sh").write_text(identity_script(hook.provider_id_command()))
    for program in LOGGED:
        wrapper = root / "bin" / program
        wrapper.write_text(f"#!/bin/bash\nprintf '%s\\0' \"$0\" \"$@\" >>{shlex.quote(str(root / 'argv.log'))}\n"
                           f"printf '\\n' >>{shlex.quote(str(root / 'argv.log'))}\nexec {shutil.which(program)} \"$@\"\n")
        wrapper.chmod(0o755)
    return root


def _run(root: Path, account: Account, script: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """``script`` in bash as the node's scripts run: ``set -euo pipefail``, lib.sh, then the hook's files."""
    program = (f"set -euo pipefail\n. {shlex.quote(str(LIB))}\n"
               + "".join(f". {shlex.quote(str(root / f))}\n" for f in ("secrets.sh", "join-access.sh", "backup.sh",
                                                                        "identity.sh"))
               + script + "\n")
    environment = account.aws.node_env(account.imds, **env)
    environment["PATH"] = f"{root / 'bin'}:{environment['PATH']}"
    return subprocess.run(["bash", "-c", program], input=stdin, capture_output=True, text=True, env=environment,
                          timeout=60, check=False)


def _command_lines(root: Path) -> str:
    log = root / "argv.log"
    return log.read_text() if log.exists() else ""


def _assert_nothing_secret_on_command_lines(root: Path, account: Account, *values: str) -> None:
    lines = _command_lines(root)
    assert "curl" in lines, "the wrappers saw the hook's calls"
    for creds in account.roles.values():
        for secret in (creds.secret_access_key, creds.token):
            assert secret not in lines, "a credential reached a command line"
    for value in values:
        assert value not in lines, f"{value[:12]}... reached a command line"


# ============================================================================ Secrets Manager


@needs("curl", "jq")
def test_a_secret_is_read_with_the_instance_credentials(cp: Account, tmp_path: Path) -> None:
    root = _node_files(tmp_path, cp)
    start = len(cp.aws.requests)
    result = _run(root, cp, "cfcr_secret_fetch ca.crt")
    assert result.returncode == 0, result.stderr
    assert result.stdout == SECRET_VALUE + "\n", "the SecretString, as the CLI's text output printed it"
    (call,) = cp.aws.requests[start:]
    assert call.headers["X-Amz-Target"] == "secretsmanager.GetSecretValue"
    assert call.scope[1:3] == [REGION, "secretsmanager"]
    assert call.access_key == cp.roles["control-plane"].access_key_id
    assert call.headers["X-Amz-Security-Token"] == cp.roles["control-plane"].token
    assert {"host", "x-amz-date", "x-amz-security-token", "x-amz-target"} <= set(call.signed_headers)
    _assert_nothing_secret_on_command_lines(root, cp, "line one")
    assert not cp.imds.refused, "every metadata read carried the IMDSv2 token"


@needs("curl", "jq")
def test_a_secret_is_written_from_standard_input(cp: Account, tmp_path: Path) -> None:
    root = _node_files(tmp_path, cp)
    token = "ghijkl.0123456789ghijkl"
    start = len(cp.aws.requests)
    result = _run(root, cp, "printf '%s' \"$(cat)\" | cfcr_secret_store bootstrap-token", stdin=token)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    (put,) = cp.aws.requests[start:]
    stored = cp.client("secretsmanager").get_secret_value(SecretId=cp.secret_arns["bootstrap-token"])["SecretString"]
    assert stored == token, "exactly the bytes on stdin"
    assert put.headers["X-Amz-Target"] == "secretsmanager.PutSecretValue"
    assert "x-amz-security-token" in put.signed_headers
    _assert_nothing_secret_on_command_lines(root, cp, token)
    refused = _run(root, cp, "echo x | cfcr_secret_store ca.crt")
    assert refused.returncode == 1 and "may not store ca.crt" in refused.stderr


@needs("curl", "jq")
def test_aws_errors_are_reported_and_fail(cp: Account, tmp_path: Path) -> None:
    root = _node_files(tmp_path, cp)
    missing = _run(root, cp, "cfcr_secret_fetch missing")
    assert missing.returncode != 0 and missing.stdout == ""
    assert "ResourceNotFoundException" in missing.stderr, missing.stderr
    cp.as_role("nothing")
    denied = _run(root, cp, "cfcr_secret_fetch ca.crt")
    assert denied.returncode != 0 and denied.stdout == ""
    assert "AccessDenied" in denied.stderr and "secretsmanager:GetSecretValue" in denied.stderr, denied.stderr


@needs("curl", "jq")
@pytest.mark.parametrize("tamper", ["token", "secret", "no-token"])
def test_moto_refuses_a_request_signed_or_sent_wrongly(cp: Account, tmp_path: Path, tamper: str) -> None:
    """The check can fail: a wrong session token, a wrong secret key, or credentials without
    their session token are refused by the emulator, and the hook says so."""
    root = _node_files(tmp_path, cp)
    good = cp.roles["control-plane"]
    bad = {"token": Credentials(good.access_key_id, good.secret_access_key, good.token[:-4] + "AAAA"),
           "secret": Credentials(good.access_key_id, ("y" if good.secret_access_key[0] == "x" else "x")
                                 + good.secret_access_key[1:], good.token),
           "no-token": Credentials(good.access_key_id, good.secret_access_key, "")}[tamper]
    cp.imds.serve("control-plane", bad)
    if tamper == "no-token":  # the hook refuses credentials without a token before any request
        start = len(cp.aws.requests)
        result = _run(root, cp, "cfcr_secret_fetch ca.crt")
        assert result.returncode != 0 and "no credentials in the instance metadata" in result.stderr, result.stderr
        assert len(cp.aws.requests) == start
        # and moto refuses the same request sent without the token
        (root / "cfg").write_text(f'user = "{good.access_key_id}:{good.secret_access_key}"\n')
        raw = subprocess.run(["curl", "-sS", "-K", str(root / "cfg"), "--aws-sigv4", f"aws:amz:{REGION}:secretsmanager",
                              "-H", "X-Amz-Target: secretsmanager.GetSecretValue",
                              "-H", "Content-Type: application/x-amz-json-1.1",
                              "--data-binary", json.dumps({"SecretId": cp.secret_arns["ca-crt"]}), cp.aws.url + "/"],
                             capture_output=True, text=True, check=False)
        assert "InvalidClientTokenId" in raw.stdout or "SignatureDoesNotMatch" in raw.stdout, raw.stdout
        return
    result = _run(root, cp, "cfcr_secret_fetch ca.crt")
    assert result.returncode != 0 and result.stdout == ""
    assert ("InvalidClientTokenId" if tamper == "token" else "SignatureDoesNotMatch") in result.stderr, result.stderr


@needs("curl", "jq")
def test_a_service_endpoint_variable_wins_over_the_general_one(cp: Account, tmp_path: Path) -> None:
    root = _node_files(tmp_path, cp)
    dead = "http://127.0.0.1:9"
    assert _run(root, cp, "cfcr_secret_fetch ca.crt", AWS_ENDPOINT_URL=dead).returncode != 0
    result = _run(root, cp, "cfcr_secret_fetch ca.crt", AWS_ENDPOINT_URL=dead,
                  AWS_ENDPOINT_URL_SECRETS_MANAGER=cp.aws.url + "/")
    assert result.returncode == 0, result.stderr


# ============================================================================ join access (EC2)


def _provider_ids(account: Account, *labels: str) -> str:
    return "".join(f"aws:///{REGION}b/{account.instances[label]['id']}\n" for label in labels)


@needs("curl", "jq")
def test_revoking_swaps_join_profiles_only_in_batches_and_pages(cp: Account, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """150 ids that name no instance sort before the real ones, so those come in the second batch
    of 100; moto pages associations by 2 here (AWS pages as it likes), so the hook must follow
    NextToken. Only instances still holding a join profile named in the hook get the joined one."""
    from moto.ec2.models.iam_instance_profile import IamInstanceProfileAssociationBackend

    describe = IamInstanceProfileAssociationBackend.describe_iam_instance_profile_associations

    def paged(self: Any, association_ids: Any, filters: Any = None, max_results: Any = 100, next_token: Any = None) -> Any:
        return describe(self, association_ids, filters, 2, next_token)

    monkeypatch.setattr(IamInstanceProfileAssociationBackend, "describe_iam_instance_profile_associations", paged)
    root = _node_files(tmp_path, cp)
    before = {label: cp.association(label) for label in cp.instances}
    listed = ["joining", "joined", "foreign-profile", "joining-2", "stopped"]
    unknown = "".join(f"aws:///{REGION}a/i-00000000{n:09x}\n" for n in range(150))
    start = len(cp.aws.requests)
    result = _run(root, cp, "cfcr_revoke_join_access", stdin=unknown + _provider_ids(cp, *listed) + "garbage\n")
    assert result.returncode == 0, result.stderr
    calls = [r.form for r in cp.aws.requests[start:]]
    assert [c["Action"][0] for c in calls] == ["DescribeIamInstanceProfileAssociations"] * 4 \
        + ["ReplaceIamInstanceProfileAssociation"] * 3, "two batches, the second in three pages, three swaps"
    assert [len([k for k in c if k.startswith("Filter.2.Value.")]) for c in calls[:4]] == [100, 55, 55, 55]
    assert ["NextToken" in c for c in calls[:4]] == [False, False, True, True]
    after = {label: cp.association(label) for label in cp.instances}
    swapped = {label for label in cp.instances if after[label][1] != before[label][1]}
    assert swapped == {"joining", "joining-2", "stopped"}
    assert all(after[label][1] == JOINED for label in swapped)
    assert after["joined"] == before["joined"] and after["foreign-profile"] == before["foreign-profile"]
    assert after["joining-unlisted"] == before["joining-unlisted"], "only the ids on stdin"
    assert sorted(result.stdout.splitlines()) == sorted(
        f"{before[label][0]}: {JOIN} -> {JOINED}" for label in swapped)
    _assert_nothing_secret_on_command_lines(root, cp)
    # the joined role may not do it: the failure is AWS's, reported
    cp.as_role("worker-joined")
    denied = _run(root, cp, "cfcr_revoke_join_access", stdin=_provider_ids(cp, "joining-unlisted"))
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr, denied.stderr
    assert cp.association("joining-unlisted") == before["joining-unlisted"]


@needs("curl", "jq")
def test_join_candidates(cp: Account, tmp_path: Path) -> None:
    root = _node_files(tmp_path, cp)

    def candidate(name: str) -> int:
        result = _run(root, cp, f"cfcr_join_candidate {shlex.quote(name)}")
        assert result.returncode in (0, 1), result.stderr
        if result.returncode == 0:  # it prints the VM's launch time: moto's, now
            assert abs(int(result.stdout) - time.time()) < 3600, result.stdout
        else:
            assert result.stdout == "", result.stdout
        return result.returncode

    node = cp.instances["joining-unlisted"]
    ip_name = "ip-" + node["ip"].replace(".", "-")
    assert candidate(ip_name) == 0
    assert candidate(f"{ip_name}.{REGION}.compute.internal") == 0
    assert candidate(node["id"]) == 0
    # moto's DescribeInstances shows the profile an instance was launched with, not a replaced
    # association, so "joined" is an instance launched with the joined profile
    for label in ("joined", "foreign-profile", "control-plane-tag", "other-cluster", "stopped"):
        other = cp.instances[label]
        assert candidate("ip-" + other["ip"].replace(".", "-")) == 1, label
    for name in ("ip-10-0-1-99", "ip-10-0-1-11&Action=x", "node-1", "i-zzz", ""):
        assert candidate(name) == 1, name
    assert AwsNodeHook(region=REGION, cluster=CLUSTER).candidate_command().count(") ;;") == 0, \
        "a hook without join profiles approves nobody"


# ============================================================================ snapshots (STS + S3)


@needs("curl", "jq")
def test_the_snapshot_goes_to_s3_with_the_writer_role_only(cp: Account, tmp_path: Path) -> None:
    root = _node_files(tmp_path, cp)
    snapshot = tmp_path / "snapshot.db"
    snapshot.write_bytes(os.urandom(300_000) + b"etcd")
    key = f"etcd/{CLUSTER}/20260101T000000Z-{CLUSTER}-cp-0.db"
    start = len(cp.aws.requests)
    result = _run(root, cp, f"cfcr_backup_upload {shlex.quote(str(snapshot))} {key}", CFCR_MEMBER=f"{CLUSTER}-cp-0")
    assert result.returncode == 0, result.stderr
    calls = cp.aws.requests[start:]
    body = cp.client("s3").get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert body["Body"].read() == snapshot.read_bytes()
    assert [c.scope[2] for c in calls] == ["sts", "sts", "s3"]
    identity, assume, put = calls
    instance = cp.roles["control-plane"]
    assert identity.access_key == assume.access_key == instance.access_key_id
    assert put.access_key != instance.access_key_id and put.access_key.startswith("ASIA"), "the writer's session"
    assert put.headers["X-Amz-Security-Token"] not in (instance.token, "")
    assert put.method == "PUT" and put.path == f"/{BUCKET}/{key}"
    digest = hashlib.sha256(snapshot.read_bytes())
    assert put.headers["X-Amz-Content-Sha256"] == digest.hexdigest()
    assert put.headers["X-Amz-Checksum-Sha256"] == base64.b64encode(digest.digest()).decode()
    assert body["ChecksumSHA256"] == base64.b64encode(digest.digest()).decode()
    assert {"host", "x-amz-content-sha256", "x-amz-checksum-sha256", "x-amz-sdk-checksum-algorithm", "x-amz-date",
            "x-amz-security-token"} <= set(put.signed_headers)
    assert not any(h.lower().startswith("x-amz-server-side-encryption") for h in put.headers), "the bucket's default"
    _assert_nothing_secret_on_command_lines(root, cp, put.headers["X-Amz-Security-Token"])
    assert assume.form["RoleSessionName"] == [f"{CLUSTER}-cp-0"] and assume.form["DurationSeconds"] == ["900"]
    from moto.sts.models import sts_backends

    assert any(r.session_name == f"{CLUSTER}-cp-0" and r.role_arn.endswith(f":role/{WRITER}")
               for r in sts_backends[ACCOUNT]["aws"].assumed_roles)


@needs("curl", "jq")
def test_the_upload_fails_where_the_writer_may_not_write(cp: Account, tmp_path: Path) -> None:
    root = _node_files(tmp_path, cp)
    snapshot = tmp_path / "snapshot.db"
    snapshot.write_bytes(b"etcd")
    denied = _run(root, cp, f"cfcr_backup_upload {shlex.quote(str(snapshot))} other/{CLUSTER}/x.db")
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr, denied.stderr
    cp.as_role("worker-join")  # may not assume the writer
    refused = _run(root, cp, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/y.db")
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr, refused.stderr
    keys = [o["Key"] for o in cp.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert f"other/{CLUSTER}/x.db" not in keys and f"etcd/{CLUSTER}/y.db" not in keys


@needs("curl", "jq")
def test_the_upload_refuses_what_one_put_cannot_take(cp: Account, tmp_path: Path) -> None:
    root = _node_files(tmp_path, cp)
    big = tmp_path / "big.db"
    with big.open("wb") as handle:
        handle.truncate(5 * 1024**3 + 1)  # sparse
    start = len(cp.aws.requests)
    result = _run(root, cp, f"cfcr_backup_upload {shlex.quote(str(big))} etcd/{CLUSTER}/big.db")
    assert result.returncode == 1 and "single upload" in result.stderr
    assert len(cp.aws.requests) == start, "refused before any request"


# ============================================================================ identity


@needs("curl", "jq")
def test_the_provider_id_comes_from_imdsv2(cp: Account, tmp_path: Path) -> None:
    root = _node_files(tmp_path, cp)
    result = _run(root, cp, "cfcr_provider_id")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"aws:///{cp.imds.zone}/{cp.imds.instance_id}\n"


# ============================================================================ the drills' stand-in


@needs("curl", "jq")
def test_the_drill_harness_stand_in_answers_the_hook(tmp_path: Path) -> None:
    """The control-plane drills' AWS stand-in (tests/support/awsapi.py, judged by the render's
    IAM) speaks the protocols the hook speaks: the same rendered functions, pointed at it."""
    import threading

    from tests.support.awsapi import Cloud, server

    allow_all = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{CLUSTER}-bootstrap-token-AbCdEf"
    state = tmp_path / "state.json"
    Cloud(state).save({
        "region": REGION, "account": ACCOUNT, "log": [],
        "instances": {
            "127.0.0.1": {"id": "i-0aaaaaaaaaaaaaaaa", "profile": "cp", "association": "iip-assoc-cp", "tags": {},
                          "launched": "2026-11-30T08:00:00.000Z"},
            "10.0.1.11": {"id": "i-0bbbbbbbbbbbbbbbb", "profile": JOIN, "association": "iip-assoc-w",
                          "tags": {f"kubernetes.io/cluster/{CLUSTER}": "owned", "cfcr.io/role": "worker"},
                          "launched": "2026-11-30T09:30:00.000Z"}},
        "secrets": {"tok": {"arn": arn, "value": "abcdef.0123456789abcdef"}},
        "policies": {"cp": [allow_all], JOIN: [], JOINED: []},
        "profile_arns": {p: f"arn:aws:iam::{ACCOUNT}:instance-profile/{p}" for p in ("cp", JOIN, JOINED)},
        "role_arns": {p: f"arn:aws:iam::{ACCOUNT}:role/{p}" for p in ("cp", JOIN, JOINED)},
    })
    stand_in = server(Cloud(state), ("127.0.0.1", 0))
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    try:
        with Imds() as imds:
            imds.serve("cp", Credentials("ASIAPLACEHOLDER", "secret", "token"))
            account = Account(MotoAws.__new__(MotoAws), imds, ("", ""), {}, {"ca-crt": "tok", "bootstrap-token": "tok"}, {})
            account.aws.url = f"http://127.0.0.1:{stand_in.server_address[1]}"
            root = _node_files(tmp_path, account)
            assert _run(root, account, "cfcr_secret_fetch bootstrap-token").stdout == "abcdef.0123456789abcdef\n"
            stored = _run(root, account, "printf new.value | cfcr_secret_store bootstrap-token")
            assert stored.returncode == 0, stored.stderr
            assert Cloud(state).load()["secrets"]["tok"]["value"] == "new.value"
            joining = _run(root, account, "cfcr_join_candidate ip-10-0-1-11")
            assert joining.returncode == 0 and joining.stdout == "1796031000\n", "its launch time, epoch seconds"
            revoked = _run(root, account, "cfcr_revoke_join_access", stdin="aws:///x/i-0bbbbbbbbbbbbbbbb\n")
            assert revoked.stdout == f"iip-assoc-w: {JOIN} -> {JOINED}\n", revoked.stderr
            assert Cloud(state).load()["instances"]["10.0.1.11"]["profile"] == JOINED
            assert _run(root, account, "cfcr_join_candidate ip-10-0-1-11").returncode == 1
            missing = _run(root, account, "cfcr_secret_fetch missing")
            assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr
    finally:
        stand_in.shutdown()
        stand_in.server_close()
