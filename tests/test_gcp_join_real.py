"""The GCP node hook's join access (cfcr/gcp/node_hook.py) as a control-plane member runs it: its
rendered ``/etc/cfcr/secrets.sh`` (with ``cfcr_secret_store``) and ``join-access.sh``, from the
very renderers user-data uses, sourced in bash after the node library, the real curl, jq and
python3, against stand-ins for the metadata server, Secret Manager and Compute Engine on loopback
(tests/support/gcpapi.py behind tests/support/gcpjoinapi.py: they check the bearer token the
metadata server issued and the caller's roles on the secret or the project). A wrapper before
curl, jq and python3 on PATH logs every command line they get: no token and no join token may
appear in one. And the GCP stacks' renders: the control plane rotates the join token."""

from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from cfcr.bootstrap.component import default_secret_id
from cfcr.config import load_stack
from cfcr.gcp.labels import label_text
from cfcr.gcp.node_hook import GcpNodeHook
from cfcr.gcp.secrets import SECRET_ACCESSOR, SECRET_VERSION_MANAGER
from cfcr.node.delivered import script_text
from cfcr.node.paths import LIB_DIR, NODE_ENV_PATH, SYSTEMD_DIR
from cfcr.node.secrets import BOOTSTRAP_TOKEN_KEY, SecretFile, render_secrets_script
from cfcr.node.userdata import JOIN_ACCESS_SCRIPT_PATH, SECRETS_SCRIPT_PATH, join_access_script
from cfcr.render import RenderResult, render_stack, unwrap
from tests.support.gcpapi import PROJECT, GcpApi
from tests.support.gcpjoinapi import GcpJoinApi, Instance, crc32c
from tests.support.tools import needs
from tests.support.validators import load_cloud_config, shellcheck_text_failures

if shutil.which("python3") is None:
    pytest.skip("python3 is not on PATH: the hook computes the version's CRC32C with it", allow_module_level=True)

LIB = Path(__file__).resolve().parents[1] / "cfcr" / "node" / "scripts" / "lib.sh"
CLUSTER = "c1"
TOKEN_SECRET = f"{CLUSTER}-bootstrap-token"
CP_SA = f"{CLUSTER}-cp-0@{PROJECT}.iam.gserviceaccount.com"
WORKER_SA = f"{CLUSTER}-w-general@{PROJECT}.iam.gserviceaccount.com"
FIRST_TOKEN = b"abcdef.0123456789abcdef"
HOOK = GcpNodeHook(project=PROJECT, cluster=CLUSTER)
LOGGED = ("curl", "jq", "python3")
WORKER_LABELS = {"cfcr-cluster": CLUSTER, "cfcr-role": "worker", "cfcr-pool": "general"}


@pytest.fixture
def join() -> Iterator[GcpJoinApi]:
    with GcpApi(service_account=CP_SA, secrets={TOKEN_SECRET: FIRST_TOKEN},
                accessors={TOKEN_SECRET: {CP_SA, WORKER_SA}}) as api:
        stand_in = GcpJoinApi(
            api=api,
            grants={TOKEN_SECRET: {CP_SA: {SECRET_VERSION_MANAGER}, WORKER_SA: {SECRET_ACCESSOR}}},
            compute_listers={CP_SA},
            instances=[
                Instance("c1-general-z0-ab12", "europe-west4-a", "RUNNING", WORKER_LABELS),
                Instance("c1-general-z1-cd34", "europe-west4-b", "PROVISIONING", WORKER_LABELS, "2026-12-01T06:00:00.500Z"),
                Instance("c1-general-z2-ef56", "europe-west4-c", "STAGING", WORKER_LABELS),
                Instance("c1-general-z0-dead", "europe-west4-a", "TERMINATED", WORKER_LABELS),
                Instance("c1-general-z1-stop", "europe-west4-b", "STOPPING", WORKER_LABELS),
                Instance("c1-cp-0", "europe-west4-a", "RUNNING", {"cfcr-cluster": CLUSTER, "cfcr-role": "control-plane"}),
                Instance("c2-general-z0-ab12", "europe-west4-a", "RUNNING", {**WORKER_LABELS, "cfcr-cluster": "c2"}),
                Instance("c1-unlabelled", "europe-west4-a", "RUNNING", {"cfcr-cluster": CLUSTER}),
            ])
        with stand_in:
            yield stand_in


def _node_files(tmp_path: Path, hook: GcpNodeHook = HOOK) -> Path:
    files = [SecretFile("bootstrap-token", "/etc/cfcr/secrets/bootstrap-token", "0600", TOKEN_SECRET)]
    root = tmp_path / "node"
    (root / "bin").mkdir(parents=True)
    (root / "secrets.sh").write_text(render_secrets_script(files, hook, {"bootstrap-token": TOKEN_SECRET}))
    (root / "join-access.sh").write_text(join_access_script(hook.revoke_command(), hook.candidate_command()))
    log = shlex.quote(str(root / "argv.log"))
    for program in LOGGED:
        wrapper = root / "bin" / program
        wrapper.write_text(f"#!/bin/bash\nprintf '%s\\0' \"$0\" \"$@\" >>{log}\nprintf '\\n' >>{log}\n"
                           f"exec {shutil.which(program)} \"$@\"\n")
        wrapper.chmod(0o755)
    return root


def _run(root: Path, join: GcpJoinApi, script: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """``script`` in bash as the control plane's scripts run: ``set -euo pipefail``, lib.sh, the hook's files."""
    program = (f"set -euo pipefail\n. {shlex.quote(str(LIB))}\n"
               + "".join(f". {shlex.quote(str(root / f))}\n" for f in ("secrets.sh", "join-access.sh"))
               + script + "\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("GCE_", "CLOUDSDK_", "STORAGE_"))}
    environment.update(join.node_env())
    environment["PATH"] = f"{root / 'bin'}:{environment['PATH']}"
    return subprocess.run(["bash", "-c", program], input=stdin, capture_output=True, env=environment, timeout=120,
                          check=False)


def _store(root: Path, join: GcpJoinApi, value: bytes) -> subprocess.CompletedProcess[bytes]:
    return _run(root, join, "cfcr_secret_store bootstrap-token", stdin=value)


def _fetch(root: Path, join: GcpJoinApi) -> bytes:
    result = _run(root, join, "cfcr_secret_fetch bootstrap-token")
    assert result.returncode == 0, result.stderr
    return result.stdout


def _assert_nothing_secret_on_command_lines(root: Path, join: GcpJoinApi, *values: bytes) -> None:
    lines = (root / "argv.log").read_bytes()
    assert b"curl" in lines and join.api.tokens
    for token in join.api.tokens:
        assert token.encode() not in lines, "an access token reached a command line"
    for value in values:
        assert value not in lines, f"{value[:12]!r}... reached a command line"


def test_the_stand_ins_crc32c_is_castagnolis() -> None:
    assert crc32c(b"123456789") == 0xE3069283, "RFC 3720's check value"
    assert crc32c(b"") == 0


# ============================================================================ store (rotation)


@needs("curl", "jq")
def test_a_stored_token_is_the_next_fetch_and_superseded_versions_are_destroyed(join: GcpJoinApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    assert _fetch(root, join) == FIRST_TOKEN
    tokens = [b"a1b2c3.a1b2c3d4e5f60718", b"d4e5f6.0f1e2d3c4b5a6978", b"0a0b0c.ffeeddccbbaa9988"]
    for n, token in enumerate(tokens, start=2):
        result = _store(root, join, token)
        assert result.returncode == 0 and result.stdout == b"", result.stderr
        assert _fetch(root, join) == token, "the new version is latest"
        assert join.states(TOKEN_SECRET) == {1: "ENABLED", **{k: "DESTROYED" for k in range(2, n)}, n: "ENABLED"}, \
            "Pulumi's first version and the new one stay; the ones between are destroyed"
    adds = [r for r in join.requests if r.path.endswith(":addVersion")]
    assert len(adds) == 3
    for add, token in zip(adds, tokens):
        body = json.loads(add.body)
        assert add.method == "POST" and add.headers["Content-Type"] == "application/json"
        assert add.path == f"/v1/projects/{PROJECT}/secrets/{TOKEN_SECRET}:addVersion"
        assert body["payload"]["dataCrc32c"] == str(crc32c(token)), "the stand-in checked it; it is the data's"
        assert join.api.tokens[add.headers["Authorization"].removeprefix("Bearer ")] == CP_SA
    _assert_nothing_secret_on_command_lines(root, join, *tokens, FIRST_TOKEN)


@needs("curl", "jq")
def test_the_version_list_is_followed_over_pages(join: GcpJoinApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    join.grants[TOKEN_SECRET][CP_SA] = {"roles/secretmanager.secretVersionAdder"}
    for n in range(4):  # an adder only: versions pile up, the store still succeeds and says so
        result = _store(root, join, f"tok{n:03d}.0123456789abcdef".encode())
        assert result.returncode == 0, result.stderr
        assert b"kept the versions before it" in result.stderr and b"secretmanager.versions.list" in result.stderr
    assert join.states(TOKEN_SECRET) == dict.fromkeys(range(1, 6), "ENABLED")
    join.grants[TOKEN_SECRET][CP_SA] = {SECRET_VERSION_MANAGER}
    join.page_size = 2
    result = _store(root, join, b"last00.0123456789abcdef")
    assert result.returncode == 0 and result.stderr == b"", result.stderr
    assert join.states(TOKEN_SECRET) == {1: "ENABLED", **dict.fromkeys(range(2, 6), "DESTROYED"), 6: "ENABLED"}
    lists = [r for r in join.requests if r.path.split("?")[0].endswith("/versions") and r.method == "GET"]
    assert len(lists) >= 3 and "pageToken=" in lists[-1].path, "every page of the list"
    assert _fetch(root, join) == b"last00.0123456789abcdef"


@needs("curl", "jq")
def test_a_workers_token_cannot_add_a_version(join: GcpJoinApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    join.api.service_account = WORKER_SA  # a joined worker keeps reading the token, never writes it
    assert _fetch(root, join) == FIRST_TOKEN
    result = _store(root, join, b"evil00.0123456789abcdef")
    assert result.returncode != 0
    assert b"GCP error (HTTP 403): PERMISSION_DENIED: Permission 'secretmanager.versions.add'" in result.stderr, \
        result.stderr
    assert join.states(TOKEN_SECRET) == {1: "ENABLED"} and _fetch(root, join) == FIRST_TOKEN


@needs("curl", "jq")
def test_a_failed_add_stores_nothing_and_says_why(join: GcpJoinApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    join.api.secrets.pop(TOKEN_SECRET)
    result = _store(root, join, b"a1b2c3.a1b2c3d4e5f60718")
    assert result.returncode != 0 and b"HTTP 404" in result.stderr, result.stderr


# ============================================================================ revoke and candidates


@needs("curl", "jq")
def test_revoking_reads_the_provider_ids_and_changes_nothing(join: GcpJoinApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    ids = "".join(f"gce://{PROJECT}/europe-west4-a/c1-general-z0-{n:04x}\n" for n in range(5000)).encode()
    result = _run(root, join, "cfcr_revoke_join_access", stdin=ids)
    assert result.returncode == 0 and result.stdout == b"" and result.stderr == b""
    assert join.requests == [] and join.api.requests == [], "GCP cannot change a running VM's account: no call"


def _epoch(rfc3339: str) -> int:
    return int(datetime.datetime.fromisoformat(rfc3339).timestamp())


@needs("curl", "jq")
def test_join_candidates(join: GcpJoinApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)

    def candidate(name: str, hook_root: Path = root) -> int:
        result = _run(hook_root, join, f"cfcr_join_candidate {shlex.quote(name)}")
        assert result.returncode in (0, 1), result.stderr
        created = next((i.created for i in join.instances if i.name == name and i.status != "TERMINATED"), None)
        if result.returncode == 0:  # the instance's creationTimestamp, in epoch seconds
            assert created is not None and result.stdout == f"{_epoch(created)}\n".encode(), result.stdout
        else:
            assert result.stdout == b"", result.stdout
        return result.returncode

    for name in ("c1-general-z0-ab12", "c1-general-z1-cd34", "c1-general-z2-ef56"):
        assert candidate(name) == 0, f"{name}: a pool VM being created or running"
    for name in ("c1-cp-0", "c1-general-z0-dead", "c1-general-z1-stop", "c2-general-z0-ab12", "c1-unlabelled",
                 "c1-general-z0-gone"):
        assert candidate(name) == 1, f"{name}: a member, a stopped, terminated, foreign, unlabelled or deleted VM"
    calls = len(join.requests)
    for name in ("", "C1-GENERAL-Z0-AB12", "c1-general-z0-ab12.europe-west4-a.c.p.internal",
                 'x" OR name = "c1-general-z0-ab12', "-c1", "a" * 64, "c1 general"):
        assert candidate(name) == 1, name
    assert len(join.requests) == calls, "a name that is no instance name is refused before any call"
    lists = [r for r in join.requests if "/aggregated/instances" in r.path]
    filters = [parse_qs(urlsplit(r.path).query)["filter"] for r in lists]
    assert filters and all(f == [f'name = "{n}"'] for f, n in zip(filters, ("c1-general-z0-ab12", "c1-general-z1-cd34")))
    assert len(filters) == 9 and all(len(f) == 1 and re.fullmatch(r'name = "c[12]-[a-z0-9-]+"', f[0]) for f in filters)
    # every page of the answer is read: the match is on the last
    join.page_size = 1
    join.instances.insert(0, Instance("c1-general-z0-ab12", "europe-west4-c", "TERMINATED", WORKER_LABELS))
    join.instances[1].created = "2026-11-29T23:59:59.000-08:00"  # the running one: its time is printed
    assert candidate("c1-general-z0-ab12") == 0
    assert any("pageToken=1" in r.path for r in join.requests)
    # a hook that names no cluster approves nobody
    assert candidate("c1-general-z0-ab12", _node_files(tmp_path / "nameless", GcpNodeHook(project=PROJECT))) == 1
    _assert_nothing_secret_on_command_lines(root, join)


@needs("curl", "jq")
def test_a_workers_token_cannot_list_instances_and_no_one_is_approved(join: GcpJoinApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    join.api.service_account = WORKER_SA
    result = _run(root, join, "cfcr_join_candidate c1-general-z0-ab12")
    assert result.returncode != 0
    assert b"HTTP 403" in result.stderr and b"compute.instances.list" in result.stderr, result.stderr


# ============================================================================ the GCP stacks' renders


@pytest.fixture(scope="module")
def gcp_stable() -> RenderResult:
    return render_stack("gcp-stable", None, show_secrets=True)


def _user_data(result: RenderResult) -> dict[str, dict[str, str]]:
    """Instance or template name -> {path: content} of its user-data's files."""
    out = {}
    for r in result.resources:
        if r.type in ("gcp:compute/instance:Instance", "gcp:compute/instanceTemplate:InstanceTemplate"):
            metadata = unwrap(r.inputs)["metadata"]  # type: ignore[index]
            doc = load_cloud_config(metadata["user-data"].encode())
            out[r.name] = {f["path"]: f["content"] for f in doc.get("write_files", [])}
    return out


def test_the_gcp_control_plane_rotates_the_join_token_and_checks_candidates(gcp_stable: RenderResult) -> None:
    spec = load_stack("gcp-stable")
    assert spec.name is not None
    files = _user_data(gcp_stable)
    members = {n: f for n, f in files.items() if f.get(f"{LIB_DIR}/bootstrap.sh") and JOIN_ACCESS_SCRIPT_PATH in f}
    assert len(members) == spec.control_plane.count and len(files) > len(members)
    for name, written in files.items():
        assert "CFCR_JOIN_ROTATION=1" in written[NODE_ENV_PATH].splitlines(), name
    for name, written in members.items():
        assert f"{SYSTEMD_DIR}/cfcr-join-credentials.timer" in written, name
        access = written[JOIN_ACCESS_SCRIPT_PATH]
        assert f"--arg cluster {label_text(spec.name)}" in access and '.labels["cfcr-role"] == "worker"' in access
        assert "cfcr_gcp_secret_add" in written[SECRETS_SCRIPT_PATH] and "cfcr_secret_store()" in written[SECRETS_SCRIPT_PATH]
    for name in set(files) - set(members):
        assert JOIN_ACCESS_SCRIPT_PATH not in files[name] and "cfcr_secret_store()" not in files[name][SECRETS_SCRIPT_PATH]
    # the join-credentials script travels in the store, for the members only
    token = default_secret_id(spec.name, BOOTSTRAP_TOKEN_KEY)
    grants = [unwrap(r.inputs) for r in gcp_stable.resources if r.type == "gcp:secretmanager/secretIamMember:SecretIamMember"]
    script = default_secret_id(spec.name, "script/join-credentials.sh")
    readers = {g["member"] for g in grants if g["secretId"] == script}  # type: ignore[index]
    assert len(readers) == spec.control_plane.count and all("-cp-" in m for m in readers)
    managers = [g for g in grants if g["role"] == SECRET_VERSION_MANAGER]  # type: ignore[index]
    assert {g["secretId"] for g in managers} == {token}, "version manager on the join token only"  # type: ignore[index]
    assert {g["member"] for g in managers} == readers, "every member, and no worker"  # type: ignore[index]


@needs("shellcheck")
def test_the_gcp_join_files_pass_shellcheck(gcp_stable: RenderResult, tmp_path: Path) -> None:
    texts = {f"{name}:{path}": (text if text.startswith("#!") else "#!/bin/bash\n" + text)
             for name, written in _user_data(gcp_stable).items() for path, text in written.items()
             if path in (JOIN_ACCESS_SCRIPT_PATH, SECRETS_SCRIPT_PATH)}
    texts["join-credentials.sh"] = script_text("join-credentials.sh")
    assert len(texts) > 3
    failures = shellcheck_text_failures(texts, tmp_path)
    assert not failures, "\n".join(failures)
