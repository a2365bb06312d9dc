"""etcd backups against a real etcd: the node's own backup script (cfcr/node/scripts/etcd-backup.sh)
on a real 3-member etcd 3.6 started from cfcr's rendered flags and certificates, and the restore
the procedure of ``python -m cfcr etcd-restore`` runs (its ``etcdutl snapshot restore``
arguments), into fresh members that then serve every key written before the snapshot. The
tests share one cluster and run in file order: the last two kill its leader, then restore it.

Only the cloud is stood in for: ``cfcr_backup_upload`` copies the snapshot into a directory
instead of S3, except in the test of the timer as shipped, where the AWS hook's own upload goes
to an AWS API emulator (moto; tests/support/awsemu.py, and tests/test_aws_node_hook_real.py). The binaries are the
channel's etcd, etcdctl and etcdutl (``python3 dev.py tools``); members ``bkp-cp-0..2`` listen on
127.0.0.11-13 (the loopback lock of tests/support/etcd_cluster.py serialises runs).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from cfcr.channels import resolve
from cfcr.config import ClusterSpec, load_spec
from cfcr.etcd_restore import BUMP_REVISION, member_plans, restore_args
from cfcr.node import Role
from cfcr.node.backup import snapshot_prefix
from cfcr.node.delivered import delivered_scripts, script_text
from cfcr.config.topology import ControlPlaneMember
from cfcr.pki.specs import PkiInputs
from tests.support.etcd_cluster import EtcdCluster, Member
from tests.support.tools import needs
from tests.support.x509 import IssuedPki, issue_all
from tests.test_etcd_real import _real_etcd  # noqa: F401 - fixture: the spec's etcd, etcdctl, etcdutl built

pytestmark = pytest.mark.slow

SCRIPTS = Path(__file__).resolve().parents[1] / "cfcr" / "node" / "scripts"
MEMBERS = [ControlPlaneMember(f"bkp-cp-{i}", f"127.0.0.{11 + i}") for i in range(3)]
KEYS = {f"/registry/cfcr-backup/{i:03d}": f"value-{i}" for i in range(100)}
STAMP = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<member>[a-z0-9-]+)\.db$")


@pytest.fixture(scope="module")
def spec() -> ClusterSpec:
    return load_spec({"cfcr:cloud": "aws", "cfcr:region": "us-east-1", "cfcr:name": "bkp",
                      "cfcr:controlPlane": {"count": 3}, "cfcr:etcdBackups": {"enabled": True}}, "bkp")


@pytest.fixture(scope="module")
def pki(spec: ClusterSpec) -> IssuedPki:
    assert spec.name is not None
    return issue_all(PkiInputs(cluster_name=spec.name, control_plane_nodes=MEMBERS))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, spec: ClusterSpec, pki: IssuedPki) -> Iterator[EtcdCluster]:
    """One cluster for the module (a restored 3-member etcd takes ~15 s to pass its initial
    corruption check): the tests run in file order, the last two change it (a leader killed,
    then the whole cluster gone and restored)."""
    with EtcdCluster(tmp_path_factory.mktemp("cluster"), spec, MEMBERS, pki) as c:
        c.start()
        c.wait_healthy()
        for n, (key, value) in enumerate(KEYS.items()):  # through every member in turn
            c.etcdctl("put", key, value, endpoints=c.members[n % 3].endpoint)
        yield c


def backup_shell(c: EtcdCluster, member: Member, script: str, *, uploads: Path | None = None,
                 tools: bool = True, extra: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in bash after sourcing the node's lib.sh and etcd-backup.sh, as ``member``'s
    node: its certificates, its etcd, its data directory; the upload hook copies into ``uploads``."""
    path = ["/usr/bin", "/bin"]
    if tools:
        path = [str(c.etcdctl_binary.parent), str(c.etcdutl.parent), *path]
    upload = ('cfcr_backup_upload() { mkdir -p "$(dirname "$UPLOADS/$2")" && cp "$1" "$UPLOADS/$2"; }'
              if uploads else "cfcr_backup_upload() { return 1; }")
    env = {"PATH": ":".join(path), "UPLOADS": str(uploads or ""), **(extra or {})}
    program = "\n".join([
        f". {shlex.quote(str(SCRIPTS / 'lib.sh'))}",
        f". {shlex.quote(str(SCRIPTS / 'etcd-backup.sh'))}",
        f"CFCR_ETCD_PKI_DIR={shlex.quote(str(member.pki_dir / 'etcd'))}",
        f"CFCR_BACKUP_ETCD_URL={shlex.quote(member.endpoint)}",
        f"CFCR_ETCD_DATA_DIR={shlex.quote(str(member.data_dir))}",
        f"CFCR_MEMBER={shlex.quote(member.spec.name)}",
        f"CFCR_BACKUP_PREFIX={shlex.quote(snapshot_prefix('bkp'))}",
        upload,
        script,
    ])
    return subprocess.run(["bash", "-c", program], capture_output=True, text=True, env=env, timeout=60, check=False)


def leader_statuses(c: EtcdCluster) -> dict[str, int]:
    out = {}
    for m in c.members:
        result = backup_shell(c, m, "status=0; leader_status || status=$?; echo \"status=$status\"")
        found = re.search(r"status=(\d)", result.stdout)
        assert found, result.stderr
        out[m.spec.name] = int(found.group(1))
    return out


def take_backup(c: EtcdCluster, uploads: Path) -> tuple[Member, Path]:
    """The backup step as the timer runs it on every member: only the leader uploads."""
    for m in c.members:
        result = backup_shell(c, m, "status=0; leader_status || status=$?; "
                                    "if [ $status = 0 ]; then backup_once; else echo skipped $status; fi",
                              uploads=uploads)
        assert result.returncode == 0, f"{m.spec.name}: {result.stdout}\n{result.stderr}\n{c.logs()}"
    files = sorted(uploads.rglob("*.db"))
    assert len(files) == 1, files
    name = STAMP.match(files[0].name)
    assert name, files[0].name
    member = next(m for m in c.members if m.spec.name == name["member"])
    return member, files[0]


# ============================================================================ the leader alone


def test_exactly_the_leader_takes_the_snapshot(cluster: EtcdCluster, tmp_path: Path) -> None:
    ids = cluster.member_ids()
    leader = cluster.wait_leader(cluster.members)
    statuses = leader_statuses(cluster)
    assert sorted(statuses.values()) == [0, 1, 1], statuses
    (mine,) = [name for name, status in statuses.items() if status == 0]
    assert ids[mine] == leader, "the script's leader is etcd's leader"

    member, snapshot = take_backup(cluster, tmp_path / "bucket")
    assert member.spec.name == mine
    assert snapshot.relative_to(tmp_path / "bucket").parent.as_posix() == snapshot_prefix("bkp")
    # the local copy went with the run
    assert not list(member.data_dir.glob(".cfcr-backup.*")), list(member.data_dir.iterdir())
    status = subprocess.run([str(cluster.etcdutl), "snapshot", "status", str(snapshot), "-w", "json"],
                            capture_output=True, text=True, check=True)
    assert json.loads(status.stdout)["totalKey"] >= len(KEYS)


def test_a_member_that_cannot_reach_its_etcd_fails_loudly(cluster: EtcdCluster) -> None:
    m = cluster.members[0]
    assert backup_shell(cluster, m, "leader_status").returncode in (0, 1), "it answers while it runs"
    unreachable = backup_shell(cluster, m, "CFCR_BACKUP_ETCD_URL=https://127.0.0.1:1; leader_status")
    assert unreachable.returncode == 2


# ============================================================================ as shipped

def _writer_account(aws: Any, spec: ClusterSpec) -> tuple[Any, str]:
    """moto seeded as the render builds the account: the backup bucket, the writer role that may
    put snapshots under the cluster's prefix, and a control-plane role whose sessions may assume
    it. Returns (the control plane's session credentials, the bucket)."""
    from tests.support.awsemu import ACCOUNT, REGION, Credentials

    iam = aws.client("iam")
    trust_ec2 = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    writer = f"bkp-etcd-backup-{spec.region}"
    iam.create_role(RoleName="bkp-control-plane", AssumeRolePolicyDocument=trust_ec2)
    iam.put_role_policy(RoleName="bkp-control-plane", PolicyName="assume", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Resource": f"arn:aws:iam::{ACCOUNT}:role/{writer}"}]}))
    iam.create_role(RoleName=writer, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:sts::{ACCOUNT}:assumed-role/bkp-control-plane/i-bkp"},
         "Action": "sts:AssumeRole"}]}))
    bucket = f"bkp-etcd-backups-{ACCOUNT}-{spec.region}-an"
    iam.put_role_policy(RoleName=writer, PolicyName="put", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject",
                                                "Resource": f"arn:aws:s3:::{bucket}/etcd/bkp/*"}]}))
    aws.client("s3").create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    c = aws.client("sts").assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/bkp-control-plane",
                                      RoleSessionName="i-bkp")["Credentials"]
    return Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]), bucket


def shipped_user_data(spec: ClusterSpec, index: int) -> bytes:
    """Member ``index``'s user-data as the AWS cluster renders it, with backups (AWS's 16 KB
    lifted: what this test checks is the files, tests/test_backup.py the size)."""
    from cfcr.node import NodeContext, UserDataLimit, render_user_data
    from cfcr.pki.specs import credentials_for_role, materials_for_role

    keys = set(credentials_for_role("control-plane")) | set(materials_for_role("worker"))
    for m in MEMBERS:
        keys |= set(materials_for_role("control-plane", m.name))
    ctx = NodeContext(api_endpoint="api.bkp.cfcr.internal", control_plane_members=MEMBERS,
                      secret_ids={k: "bkp-" + k.replace("/", "-") for k in keys})
    return render_user_data(spec, resolve(spec.kubernetes.version), ctx, Role.control_plane(index), _hook(spec),
                            UserDataLimit(10**6, gzip=True))


def _hook(spec: ClusterSpec) -> object:
    from cfcr.aws.backups import snapshot_target
    from cfcr.aws.node_hook import AwsNodeHook

    return AwsNodeHook(region="us-east-1", cluster="bkp", backups=snapshot_target(spec))


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="chrooting into a node root needs root and unshare")
def test_the_timer_run_as_shipped_uploads_one_snapshot_through_the_writer(
        cluster: EtcdCluster, spec: ClusterSpec, tmp_path: Path) -> None:
    """Every member runs /usr/local/lib/cfcr/etcd-backup.sh from its rendered user-data, chrooted
    into a root holding exactly those files, its certificates and its etcd data directory; the
    cloud is an AWS API emulator (moto, which checks every signature) and an IMDSv2 stand-in on
    loopback, named by the SDKs' variables. The leader's snapshot reaches the bucket the render
    names, through the writer role's session; the others upload nothing."""
    pytest.importorskip("moto", reason="moto[server] (the AWS API emulator) is in the test extra")
    from tests.support.awsemu import Imds, MotoAws
    from tests.support.noderoot import ENTER_SCRIPT
    from tests.support.validators import load_cloud_config

    enter = tmp_path / "enter.sh"
    enter.write_text(ENTER_SCRIPT)
    enter.chmod(0o755)
    leader = {v: k for k, v in cluster.member_ids().items()}[cluster.wait_leader(cluster.members)]
    roots = {}
    with MotoAws() as aws, Imds() as imds:
        instance, bucket = _writer_account(aws, spec)
        imds.serve("bkp-control-plane", instance)
        aws.enforce_auth()
        for i, m in enumerate(cluster.members):
            root = tmp_path / m.spec.name
            for entry in load_cloud_config(shipped_user_data(spec, i))["write_files"]:
                target = root / entry["path"].lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(entry["content"])
                target.chmod(int(entry["permissions"], 8))
            # the control plane's scripts come from the secret store (cfcr/node/delivered.py), as
            # fetch_all_secrets writes them
            for script in delivered_scripts(spec, Role.control_plane(i), _hook(spec)):
                target = root / script.path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(script_text(script.name))
                target.chmod(int(script.mode, 8))
            for d in ("var/lib/cfcr", "var/log", "tmp", "usr/local/bin"):
                (root / d).mkdir(parents=True, exist_ok=True)
            (root / "var/lib/cfcr/bootstrapped").write_text("now\n")
            binds = [f"{m.pki_dir}:/etc/kubernetes/pki", f"{m.data_dir}:/var/lib/etcd",
                     f"{cluster.etcdctl_binary}:/usr/local/bin/etcdctl", f"{cluster.etcdutl}:/usr/local/bin/etcdutl"]
            start = len(aws.requests)
            run = subprocess.run(
                ["unshare", "--mount", "--uts", "--propagation", "private", str(enter), str(root), m.spec.name,
                 *binds, "--", "/usr/bin/env", f"CFCR_BACKUP_ETCD_URL={m.endpoint}", f"AWS_ENDPOINT_URL={aws.url}",
                 f"AWS_EC2_METADATA_SERVICE_ENDPOINT={imds.url}", "/usr/local/lib/cfcr/etcd-backup.sh"],
                capture_output=True, text=True, timeout=60, check=False)
            assert run.returncode == 0, f"{m.spec.name}: {run.stdout}\n{run.stderr}"
            roots[m.spec.name] = (run.stderr, aws.requests[start:])
        aws.stop_enforcing()  # the uploads were checked; read back what they stored
        stored = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]
        (key,) = stored
        snapshot = tmp_path / "stored.db"
        snapshot.write_bytes(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    for name, (log, calls) in roots.items():
        if name != leader:
            assert not calls and "not the etcd leader" in log, (name, log)
            continue
        assert re.fullmatch(rf"etcd/bkp/\d{{8}}T\d{{6}}Z-{name}\.db", key), key
        assert [c.scope[2] for c in calls] == ["sts", "sts", "s3"]
        assert calls[1].form["RoleArn"] == [f"arn:aws:iam::123456789012:role/bkp-etcd-backup-{spec.region}"]
        assert calls[1].form["RoleSessionName"] == [name]
        assert calls[2].access_key != instance.access_key_id, "the writer's session puts the object"
        status = subprocess.run([str(cluster.etcdutl), "snapshot", "status", str(snapshot), "-w", "json"],
                                capture_output=True, text=True, check=True)
        assert json.loads(status.stdout)["totalKey"] >= len(KEYS)
        assert f"etcd snapshot stored as {key}" in log


# ============================================================================ the check


def test_the_integrity_check_refuses_a_damaged_snapshot(cluster: EtcdCluster, tmp_path: Path) -> None:
    _, snapshot = take_backup(cluster, tmp_path / "bucket")
    m = cluster.members[0]

    def check(path: Path) -> subprocess.CompletedProcess[str]:
        # without etcdutl on PATH: the script's own check (what a node without etcdutl runs) decides
        return backup_shell(cluster, m, f"snapshot_check {shlex.quote(str(path))}", tools=False)

    assert check(snapshot).returncode == 0, check(snapshot).stderr
    flipped = tmp_path / "flipped.db"
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    result = check(flipped)
    assert result.returncode == 1 and "SHA-256 mismatch" in result.stderr, result.stderr
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(snapshot.read_bytes()[:-100])
    result = check(truncated)
    assert result.returncode == 1 and "not a bbolt database" in result.stderr, result.stderr
    other = tmp_path / "other.db"
    other.write_bytes(b"\0" * 16384 + bytes(32))
    result = check(other)
    assert result.returncode == 1 and "no bbolt magic" in result.stderr, result.stderr
    # etcdutl agrees: a damaged snapshot does not restore
    restore = subprocess.run([str(cluster.etcdutl), "snapshot", "restore", str(flipped), "--data-dir",
                              str(tmp_path / "never")], capture_output=True, text=True, check=False)
    assert restore.returncode != 0


def test_a_snapshot_that_fails_the_check_is_not_uploaded(cluster: EtcdCluster, tmp_path: Path) -> None:
    leader = cluster.wait_leader(cluster.members)
    ids = {v: k for k, v in cluster.member_ids().items()}
    m = next(x for x in cluster.members if x.spec.name == ids[leader])
    result = backup_shell(cluster, m, "snapshot_check() { return 1; }; backup_once", uploads=tmp_path / "bucket")
    assert result.returncode == 1 and "integrity check" in result.stderr, result.stderr
    assert not (tmp_path / "bucket").exists()
    assert not list(m.data_dir.glob(".cfcr-backup.*"))


def test_after_the_leader_changes_the_new_leader_takes_it(cluster: EtcdCluster) -> None:
    old = cluster.wait_leader(cluster.members)
    ids = {v: k for k, v in cluster.member_ids().items()}
    survivors = [m for m in cluster.members if m.spec.name != ids[old]]
    next(m for m in cluster.members if m.spec.name == ids[old]).kill()
    new = cluster.wait_leader(survivors)
    statuses = leader_statuses(cluster)
    assert statuses[ids[old]] == 2, "a member whose etcd is down says so"
    assert statuses[ids[new]] == 0 and sorted(statuses.values()) == [0, 1, 2], statuses


# ============================================================================ the restore


@needs("curl")
def test_the_snapshot_restores_into_fresh_members_that_serve_every_key(
        cluster: EtcdCluster, tmp_path: Path, spec: ClusterSpec, pki: IssuedPki) -> None:
    before = cluster.get_all("/registry/")
    assert set(KEYS) <= set(before)
    _, snapshot = take_backup(cluster, tmp_path / "bucket")
    cluster.etcdctl("put", "/registry/cfcr-backup/after-snapshot", "lost")  # not in the snapshot
    cluster.close()  # the whole control plane is gone

    # a fresh control plane from the same render: each member restores the snapshot with the
    # arguments `cfcr etcd-restore` writes into its step-1 script, then starts from its flags
    with EtcdCluster(tmp_path / "restored", spec, MEMBERS, pki) as restored:
        for plan, m in zip(member_plans(spec, MEMBERS), restored.members, strict=True):
            assert plan.name == m.spec.name
            shutil.rmtree(m.data_dir)
            out = subprocess.run([str(restored.etcdutl), *restore_args(plan, str(snapshot), str(m.data_dir))],
                                 capture_output=True, text=True, timeout=60, check=False,
                                 env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            assert out.returncode == 0, out.stderr
        restored.start()
        restored.wait_healthy()
        assert restored.get_all("/registry/") == before  # nothing lost, nothing invented
        status = json.loads(restored.etcdctl("endpoint", "status", "-w", "json",
                                             endpoints=restored.members[0].endpoint).stdout)
        assert int(status[0]["Status"]["header"]["revision"]) > BUMP_REVISION, "watchers must relist"
        assert sorted(restored.member_ids()) == sorted(m.name for m in MEMBERS)
        restored.etcdctl("put", "/registry/cfcr-backup/after-restore", "ok")  # and it takes writes
