"""The GCP node hook (cfcr/gcp/node_hook.py) as a node runs it: its rendered files
(``/etc/cfcr/secrets.sh``, ``backup.sh``, ``identity.sh``, from the very renderers user-data
uses) sourced in bash after the node library, the real curl, jq, base64 and python3, against a
stand-in for the metadata server, Secret Manager and Cloud Storage on loopback
(tests/support/gcpapi.py: it checks the metadata header, the bearer token the metadata server
issued, the caller's roles and the upload's ``x-goog-hash``). A wrapper before curl, jq and
python3 on PATH logs every command line they get: no token and no secret value may appear in one.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cfcr.gcp.node_hook import GcpNodeHook, GcsSnapshotTarget
from cfcr.node.backup import backup_hook_script
from cfcr.node.secrets import SecretFile, render_secrets_script
from cfcr.node.userdata import identity_script
from tests.support.gcpapi import INSTANCE, INSTANCE_ID, PROJECT, ZONE, GcpApi
from tests.support.tools import needs

if shutil.which("python3") is None:
    pytest.skip("python3 is not on PATH: the hook computes the snapshot's MD5 with it", allow_module_level=True)

LIB = Path(__file__).resolve().parents[1] / "cfcr" / "node" / "scripts" / "lib.sh"
CLUSTER = "c1"
BUCKET = f"{CLUSTER}-etcd-backups-0a1b2c3d"
CP_SA = f"{CLUSTER}-cp@{PROJECT}.iam.gserviceaccount.com"
WORKER_SA = f"{CLUSTER}-general@{PROJECT}.iam.gserviceaccount.com"
SECRET_VALUE = b'line one\nline "two" \\ $HOME `x`\n\x00\xff binary tail\n'
HOOK = GcpNodeHook(project=PROJECT, backups=GcsSnapshotTarget(bucket=BUCKET))
LOGGED = ("curl", "jq", "python3")


@pytest.fixture
def api() -> Iterator[GcpApi]:
    with GcpApi(service_account=CP_SA,
                secrets={"c1-ca-crt": SECRET_VALUE, "c1-bootstrap-token": b"abcdef.0123456789abcdef"},
                accessors={"c1-ca-crt": {CP_SA, WORKER_SA}, "c1-bootstrap-token": {CP_SA}},
                creators={BUCKET: {CP_SA: f"etcd/{CLUSTER}/"}}) as stand_in:
        yield stand_in


def _node_files(tmp_path: Path, hook: GcpNodeHook = HOOK) -> Path:
    files = [SecretFile("ca.crt", "/etc/kubernetes/pki/ca.crt", "0644", "c1-ca-crt"),
             SecretFile("bootstrap-token", "/etc/cfcr/secrets/bootstrap-token", "0600", "c1-bootstrap-token"),
             SecretFile("by-name", "/etc/cfcr/secrets/by-name", "0600", f"projects/{PROJECT}/secrets/c1-ca-crt"),
             SecretFile("missing", "/etc/cfcr/secrets/missing", "0600", "c1-nope")]
    root = tmp_path / "node"
    (root / "bin").mkdir(parents=True)
    (root / "secrets.sh").write_text(render_secrets_script(files, hook))
    upload = hook.snapshot_upload_command()
    (root / "backup.sh").write_text(backup_hook_script(CLUSTER, upload) if upload else "")
    (root / "identity.sh").write_text(identity_script(hook.provider_id_command(), hook.machine_id_command()))
    log = shlex.quote(str(root / "argv.log"))
    for program in LOGGED:
        wrapper = root / "bin" / program
        wrapper.write_text(f"#!/bin/bash\nprintf '%s\\0' \"$0\" \"$@\" >>{log}\nprintf '\\n' >>{log}\n"
                           f"exec {shutil.which(program)} \"$@\"\n")
        wrapper.chmod(0o755)
    return root


def _run(root: Path, api: GcpApi, script: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """``script`` in bash as the node's scripts run: ``set -euo pipefail``, lib.sh, then the hook's files."""
    program = (f"set -euo pipefail\n. {shlex.quote(str(LIB))}\n"
               + "".join(f". {shlex.quote(str(root / f))}\n" for f in ("secrets.sh", "backup.sh", "identity.sh"))
               + script + "\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GCE_", "CLOUDSDK_", "STORAGE_"))}
    environment.update(api.node_env() if env is None else env)
    environment["PATH"] = f"{root / 'bin'}:{environment['PATH']}"
    return subprocess.run(["bash", "-c", program], capture_output=True, env=environment, timeout=120, check=False)


def _assert_no_token_on_command_lines(root: Path, api: GcpApi, *values: bytes) -> None:
    lines = (root / "argv.log").read_bytes()
    assert b"curl" in lines, "the wrappers saw the hook's calls"
    assert api.tokens, "tokens were issued"
    for token in api.tokens:
        assert token.encode() not in lines, "an access token reached a command line"
    for value in values:
        assert value not in lines, f"{value[:12]!r}... reached a command line"


# ============================================================================ Secret Manager


@needs("curl", "jq")
def test_a_secret_is_read_with_the_vms_token(api: GcpApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    result = _run(root, api, "cfcr_secret_fetch ca.crt")
    assert result.returncode == 0, result.stderr
    assert result.stdout == SECRET_VALUE, "exactly the secret's bytes"
    token, access = api.requests
    assert token.path == "/computeMetadata/v1/instance/service-accounts/default/token"
    assert token.headers["Metadata-Flavor"] == "Google"
    assert access.path == f"/v1/projects/{PROJECT}/secrets/c1-ca-crt/versions/latest:access"
    assert api.tokens[access.headers["Authorization"].removeprefix("Bearer ")] == CP_SA
    _assert_no_token_on_command_lines(root, api, b"line one")
    by_name = _run(root, api, "cfcr_secret_fetch by-name")
    assert by_name.returncode == 0 and by_name.stdout == SECRET_VALUE, by_name.stderr


@needs("curl", "jq")
def test_secret_manager_errors_are_reported_and_fail(api: GcpApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    missing = _run(root, api, "cfcr_secret_fetch missing")
    assert missing.returncode != 0 and missing.stdout == b""
    assert b"GCP error (HTTP 404): NOT_FOUND: Secret [projects/" in missing.stderr, missing.stderr
    api.service_account = WORKER_SA  # a worker may read the CA, not the control plane's token
    assert _run(root, api, "cfcr_secret_fetch ca.crt").stdout == SECRET_VALUE
    denied = _run(root, api, "cfcr_secret_fetch bootstrap-token")
    assert denied.returncode != 0 and denied.stdout == b""
    assert b"PERMISSION_DENIED" in denied.stderr and b"secretmanager.versions.access" in denied.stderr, denied.stderr
    api.service_account = None  # a VM without a service account gets no token
    start = len(api.requests)
    none = _run(root, api, "cfcr_secret_fetch ca.crt")
    assert none.returncode != 0 and b"no access token from the metadata server" in none.stderr, none.stderr
    assert all(r.path.startswith("/computeMetadata/") for r in api.requests[start:]), "no API call without a token"


@needs("curl", "jq")
def test_the_stand_in_refuses_what_google_refuses(api: GcpApi, tmp_path: Path) -> None:
    """The checks can fail: no metadata header, a proxied metadata request, a token the metadata
    server never issued."""
    plain = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                            f"{api.url}/computeMetadata/v1/instance/service-accounts/default/token"],
                           capture_output=True, text=True, check=False)
    assert plain.stdout == "403"
    proxied = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Metadata-Flavor: Google",
                              "-H", "X-Forwarded-For: 10.0.0.1", f"{api.url}/computeMetadata/v1/instance/name"],
                             capture_output=True, text=True, check=False)
    assert proxied.stdout == "403"
    forged = subprocess.run(["curl", "-sS", "-H", "Authorization: Bearer ya29.forged",
                             f"{api.url}/v1/projects/{PROJECT}/secrets/c1-ca-crt/versions/latest:access"],
                            capture_output=True, text=True, check=False)
    assert "UNAUTHENTICATED" in forged.stdout


@needs("curl", "jq")
def test_server_errors_are_retried(api: GcpApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    api.fail_next = [503, 429]
    result = _run(root, api, "cfcr_secret_fetch ca.crt")
    assert result.returncode == 0 and result.stdout == SECRET_VALUE, result.stderr
    assert [r.path.endswith(":access") for r in api.requests].count(True) == 3
    api.fail_next = [503, 503, 503]
    failed = _run(root, api, "cfcr_secret_fetch ca.crt")
    assert failed.returncode != 0 and b"GCP error (HTTP 503): UNAVAILABLE: injected fault" in failed.stderr


@needs("curl", "jq")
def test_each_endpoint_variable_is_honoured(api: GcpApi, tmp_path: Path) -> None:
    """Every call goes where its variable says (a dead port elsewhere): the metadata server
    (``GCE_METADATA_HOST``) and Secret Manager (``CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER``)."""
    root = _node_files(tmp_path)
    env = api.node_env()
    dead_metadata = _run(root, api, "cfcr_secret_fetch ca.crt", env={**env, "GCE_METADATA_HOST": "127.0.0.1:9"})
    assert dead_metadata.returncode != 0
    dead_api = _run(root, api, "cfcr_secret_fetch ca.crt",
                    env={**env, "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": "http://127.0.0.1:9/"})
    assert dead_api.returncode != 0
    assert not any(r.path.endswith(":access") for r in api.requests), "neither reached the stand-in's Secret Manager"


# ============================================================================ provider ID


@needs("curl")
def test_the_provider_id_comes_from_the_metadata_server(api: GcpApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    result = _run(root, api, "cfcr_provider_id")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"gce://{PROJECT}/{ZONE}/{INSTANCE}\n"
    assert all(r.headers.get("Metadata-Flavor") == "Google" for r in api.requests)


@needs("curl")
def test_the_machine_id_is_the_instance_id_from_the_metadata_server(api: GcpApi, tmp_path: Path) -> None:
    """What a replaced member records for its rollout gate: the instance's numeric id."""
    root = _node_files(tmp_path)
    result = _run(root, api, "cfcr_machine_id")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"{INSTANCE_ID}\n"


# ============================================================================ snapshots (Cloud Storage)


def _snapshot(tmp_path: Path, size: int = 300_000) -> Path:
    snapshot = tmp_path / "snapshot.db"
    snapshot.write_bytes(os.urandom(size) + b"etcd")
    return snapshot


@needs("curl", "jq")
def test_the_snapshot_goes_to_cloud_storage_checked(api: GcpApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    snapshot = _snapshot(tmp_path, 3_000_000)
    key = f"etcd/{CLUSTER}/20260101T000000Z-{CLUSTER}-cp-0.db"
    result = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} {key}")
    assert result.returncode == 0, result.stderr
    assert api.objects[(BUCKET, key)] == snapshot.read_bytes()
    (upload,) = [r for r in api.requests if r.method == "POST"]
    assert upload.path == (f"/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name="
                           f"etcd%2F{CLUSTER}%2F20260101T000000Z-{CLUSTER}-cp-0.db")
    md5 = base64.b64encode(hashlib.md5(snapshot.read_bytes()).digest()).decode()
    assert upload.headers["x-goog-hash"] == f"md5={md5}"
    assert upload.headers["Content-Type"] == "application/octet-stream"
    assert api.tokens[upload.headers["Authorization"].removeprefix("Bearer ")] == CP_SA
    _assert_no_token_on_command_lines(root, api)


@needs("curl", "jq")
def test_a_corrupted_upload_fails(api: GcpApi, tmp_path: Path) -> None:
    """A body damaged on the way: Cloud Storage refuses it against ``x-goog-hash``; and where the
    service kept a damaged body anyway, the hook's own check of the answer's ``md5Hash`` fails."""
    root = _node_files(tmp_path)
    snapshot = _snapshot(tmp_path)
    api.corrupt_next = True
    refused = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/a.db")
    assert refused.returncode != 0 and b"GCP error (HTTP 400)" in refused.stderr and b"MD5" in refused.stderr
    assert (BUCKET, f"etcd/{CLUSTER}/a.db") not in api.objects
    api.corrupt_next, api.skip_hash_check = True, True
    kept = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/b.db")
    assert kept.returncode != 0, "the answer's md5Hash is not the file's"
    assert b"Cloud Storage kept etcd/c1/b.db with another size or MD5" in kept.stderr, kept.stderr


@needs("curl", "jq")
def test_the_upload_fails_where_the_vm_may_not_write(api: GcpApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    snapshot = _snapshot(tmp_path, 10)
    outside = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} other/{CLUSTER}/x.db")
    assert outside.returncode != 0 and b"storage.objects.create" in outside.stderr, outside.stderr
    ok = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/x.db")
    assert ok.returncode == 0, ok.stderr
    again = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/x.db")
    assert again.returncode != 0 and b"storage.objects.delete" in again.stderr, "no overwrite"
    api.service_account = WORKER_SA
    worker = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/y.db")
    assert worker.returncode != 0 and b"HTTP 403" in worker.stderr
    bad_key = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} 'etcd/{CLUSTER}/a&b.db'")
    assert bad_key.returncode != 0 and b"characters the upload does not encode" in bad_key.stderr
    assert set(api.objects) == {(BUCKET, f"etcd/{CLUSTER}/x.db")}


@needs("curl", "jq")
def test_the_storage_variable_is_honoured(api: GcpApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    snapshot = _snapshot(tmp_path, 10)
    env = {**api.node_env(), "STORAGE_EMULATOR_HOST": api.host}  # no scheme: http, as the libraries take it
    assert _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/s.db", env=env).returncode == 0
    dead = {**api.node_env(), "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9"}
    assert _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/t.db", env=dead).returncode != 0
    assert set(api.objects) == {(BUCKET, f"etcd/{CLUSTER}/s.db")}


def test_no_target_no_upload() -> None:
    assert GcpNodeHook(project=PROJECT).snapshot_upload_command() is None
