"""The Azure node hook (cfcr/azure/node_hook.py) as a node runs it: its rendered files
(``/etc/cfcr/secrets.sh`` with ``cfcr_secret_store``, ``join-access.sh``, ``identity.sh`` and
``backup.sh`` with ``cfcr_backup_upload``, from
the very renderers user-data uses) sourced in bash after the node library, the real curl and jq,
against a stand-in for IMDS, Key Vault, ARM and Blob Storage on loopback (tests/support/azureapi.py: it checks
the metadata header, the token IMDS issued and its audience, the identity's roles on each secret,
and answers 403 while a role assignment propagates). A wrapper before curl and jq on PATH logs
every command line they get: no token and no secret value may appear in one."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cfcr.azure.node_hook import (
    BACKUP_ACCOUNT_TAG,
    BLOB_API,
    STORAGE_AUDIENCE,
    CLIENT_ID_TAG,
    CLUSTER_TAG,
    ROLE_TAG,
    VAULT_TAG,
    AzureNodeHook,
    BlobSnapshotTarget,
)
from cfcr.node.backup import backup_hook_script
from cfcr.node.secrets import SecretFile, render_secrets_script
from cfcr.node.userdata import identity_script, join_access_script
from tests.support.azureapi import (
    ARM_AUDIENCE,
    BACKUP_ACCOUNT,
    OFFICER,
    USER,
    VAULT_AUDIENCE,
    VM_ID,
    AzureApi,
    Instance,
    Request,
    ScaleSet,
)
from tests.support.tools import needs
from tests.support.validators import shellcheck_text_failures

LIB = Path(__file__).resolve().parents[1] / "cfcr" / "node" / "scripts" / "lib.sh"
CLUSTER = "c1"
CP_CLIENT, CP_PRINCIPAL = "11111111-0000-0000-0000-00000000c11d", "aaaaaaaa-0000-0000-0000-0000000000cp"
WORKER_CLIENT, WORKER_PRINCIPAL = "22222222-0000-0000-0000-00000000c11d", "bbbbbbbb-0000-0000-0000-0000000000wk"
TOKEN_SECRET = f"{CLUSTER}-bootstrap-token"
CA_SECRET = f"{CLUSTER}-ca-crt"
CA_VALUE = '-----BEGIN CERTIFICATE-----\nline "two" \\ $HOME `x` %s\n-----END CERTIFICATE-----\n\n'
FIRST_TOKEN = "abcdef.0123456789abcdef"
CONTAINER = "etcd-backups"
HOOK = AzureNodeHook(cluster=CLUSTER, backups=BlobSnapshotTarget(container=CONTAINER))
LOGGED = ("curl", "jq", "python3")
WORKER_TAGS = {CLUSTER_TAG: CLUSTER, ROLE_TAG: "worker"}


def _vm_tags(client: str) -> dict[str, str]:
    return {VAULT_TAG: "c1-kv-0a1b2c", CLIENT_ID_TAG: client, CLUSTER_TAG: CLUSTER, BACKUP_ACCOUNT_TAG: BACKUP_ACCOUNT}


@pytest.fixture
def api() -> Iterator[AzureApi]:
    with AzureApi(
        identities={CP_CLIENT: CP_PRINCIPAL},
        tags=_vm_tags(CP_CLIENT),
        secrets={CA_SECRET: [CA_VALUE], TOKEN_SECRET: [FIRST_TOKEN]},
        grants={CA_SECRET: {CP_PRINCIPAL: {USER}, WORKER_PRINCIPAL: {USER}},
                TOKEN_SECRET: {CP_PRINCIPAL: {USER, OFFICER}, WORKER_PRINCIPAL: {USER}}},
        arm_readers={CP_PRINCIPAL},
        containers={CONTAINER},
        blob_writers={CP_PRINCIPAL: (CONTAINER, f"etcd/{CLUSTER}/")},
        scale_sets=[
            ScaleSet("c1-general", WORKER_TAGS, [
                Instance("c1-general000000", "2026-12-01T06:00:00.5+00:00"),
                Instance("c1-general000001", "2026-12-01T07:00:00Z", "Creating"),
                Instance("c1-general000002", "2026-12-01T07:30:00Z", "Deleting"),
            ]),
            ScaleSet("c1-gpu", WORKER_TAGS, [Instance("C1-GPU000000", "2026-12-02T00:00:00Z"),
                                             Instance("c1-gpu000001", "2026-12-02T01:00:00Z"),
                                             Instance("c1-gpu000002", "2026-12-02T02:00:00Z")]),
            ScaleSet("c2-general", {CLUSTER_TAG: "c2", ROLE_TAG: "worker"}, [Instance("c2-general000000", "2026-12-01T00:00:00Z")]),
            ScaleSet("c1-untagged", {CLUSTER_TAG: CLUSTER}, [Instance("c1-untagged000000", "2026-12-01T00:00:00Z")]),
        ],
    ) as stand_in:
        yield stand_in


def _node_files(tmp_path: Path, hook: AzureNodeHook = HOOK) -> Path:
    files = [SecretFile("ca.crt", "/etc/kubernetes/pki/ca.crt", "0644", CA_SECRET),
             SecretFile("bootstrap-token", "/etc/cfcr/secrets/bootstrap-token", "0600", TOKEN_SECRET),
             SecretFile("missing", "/etc/cfcr/secrets/missing", "0600", f"{CLUSTER}-nope")]
    root = tmp_path / "node"
    (root / "bin").mkdir(parents=True)
    (root / "secrets.sh").write_text(render_secrets_script(files, hook, {"bootstrap-token": TOKEN_SECRET}))
    (root / "join-access.sh").write_text(join_access_script(hook.revoke_command(), hook.candidate_command()))
    (root / "identity.sh").write_text(identity_script(hook.provider_id_command(), hook.machine_id_command()))
    upload = hook.snapshot_upload_command()
    (root / "backup.sh").write_text(backup_hook_script(CLUSTER, upload) if upload else "")
    log = shlex.quote(str(root / "argv.log"))
    for program in LOGGED:
        wrapper = root / "bin" / program
        wrapper.write_text(f"#!/bin/bash\nprintf '%s\\0' \"$0\" \"$@\" >>{log}\nprintf '\\n' >>{log}\n"
                           f"exec {shutil.which(program)} \"$@\"\n")
        wrapper.chmod(0o755)
    return root


def _run(root: Path, api: AzureApi, script: str, stdin: bytes = b"",
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """``script`` in bash as the node's scripts run: ``set -euo pipefail``, lib.sh, the hook's files."""
    program = (f"set -euo pipefail\n. {shlex.quote(str(LIB))}\n"
               + "".join(f". {shlex.quote(str(root / f))}\n" for f in ("secrets.sh", "join-access.sh", "identity.sh", "backup.sh"))
               + script + "\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "CFCR_AZURE_"))}
    environment.update(api.node_env() if env is None else env)
    environment["PATH"] = f"{root / 'bin'}:{environment['PATH']}"
    return subprocess.run(["bash", "-c", program], input=stdin, capture_output=True, env=environment, timeout=120,
                          check=False)


def _assert_nothing_secret_on_command_lines(root: Path, api: AzureApi, *values: bytes) -> None:
    lines = (root / "argv.log").read_bytes()
    assert b"curl" in lines, "the wrappers saw the hook's calls"
    assert api.tokens, "tokens were issued"
    for token in api.tokens:
        assert token.encode() not in lines, "an access token reached a command line"
    for value in values:
        assert value not in lines, f"{value[:12]!r}... reached a command line"


def _vault_requests(api: AzureApi) -> list[str]:
    return [f"{r.method} {r.path.split('?')[0]}" for r in api.requests if r.path.startswith("/secrets/")]


# ============================================================================ reading secrets


@needs("curl", "jq")
def test_a_secret_is_read_with_the_identity_the_vm_tag_names(api: AzureApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    result = _run(root, api, "cfcr_secret_fetch ca.crt")
    assert result.returncode == 0, result.stderr
    assert result.stdout == CA_VALUE.encode(), "exactly the secret's text, trailing newlines too"
    tokens = [r for r in api.requests if r.path.startswith("/metadata/identity/")]
    assert tokens and all(r.headers["Metadata"] == "true" for r in tokens)
    assert f"client_id={CP_CLIENT}" in tokens[0].path and "resource=https%3A%2F%2Fvault.azure.net" in tokens[0].path
    (read,) = [r for r in api.requests if r.path.startswith("/secrets/")]
    assert read.path == f"/secrets/{CA_SECRET}?api-version=7.4"
    assert api.tokens[read.headers["Authorization"].removeprefix("Bearer ")] == (CP_PRINCIPAL, VAULT_AUDIENCE)
    _assert_nothing_secret_on_command_lines(root, api, b"line \"two\"")


@needs("curl", "jq")
def test_the_hooks_own_vault_and_client_id_win_over_tags(api: AzureApi, tmp_path: Path) -> None:
    api.tags = {}
    root = _node_files(tmp_path, AzureNodeHook(vault_name="kv1", client_id=CP_CLIENT, cluster=CLUSTER))
    result = _run(root, api, "cfcr_secret_fetch bootstrap-token")
    assert result.returncode == 0 and result.stdout == FIRST_TOKEN.encode(), result.stderr
    assert not any("tagsList" in r.path for r in api.requests), "no tag lookup when the hook names both"
    untagged = _run(_node_files(tmp_path / "b"), api, "cfcr_secret_fetch ca.crt")
    assert untagged.returncode != 0 and f"no {VAULT_TAG} tag".encode() in untagged.stderr, untagged.stderr


@needs("curl", "jq")
def test_a_worker_reads_what_it_is_granted_and_no_other_identity_gets_a_token(api: AzureApi, tmp_path: Path) -> None:
    api.identities, api.tags = {WORKER_CLIENT: WORKER_PRINCIPAL}, _vm_tags(WORKER_CLIENT)
    root = _node_files(tmp_path)
    assert _run(root, api, "cfcr_secret_fetch ca.crt").stdout == CA_VALUE.encode()
    api.tags = _vm_tags(CP_CLIENT)  # a tag naming an identity the VM does not hold
    start = len(api.requests)
    other = _run(root, api, "cfcr_secret_fetch ca.crt")
    assert other.returncode != 0 and b"no access token from the instance metadata service" in other.stderr, other.stderr
    assert all(r.path.startswith("/metadata/") for r in api.requests[start:]), "no Key Vault call without a token"


@needs("curl", "jq")
def test_a_403_is_waited_out_while_the_role_assignment_propagates(api: AzureApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    api.propagation[(CP_PRINCIPAL, CA_SECRET)] = 2
    result = _run(root, api, "cfcr_secret_fetch ca.crt")
    assert result.returncode == 0 and result.stdout == CA_VALUE.encode(), result.stderr
    assert _vault_requests(api) == [f"GET /secrets/{CA_SECRET}"] * 3
    assert result.stderr.count(b"waiting") == 2 and b"for role assignments to propagate" in result.stderr


@needs("curl", "jq")
def test_a_denial_that_outlasts_the_wait_fails_saying_why(api: AzureApi, tmp_path: Path) -> None:
    """No grant at all (the worker and the control plane's join token write), and one that does
    not apply within ``CFCR_AZURE_RBAC_WAIT`` (6 s here: 2 + 4 s of backoff, three requests)."""
    api.identities, api.tags = {WORKER_CLIENT: WORKER_PRINCIPAL}, _vm_tags(WORKER_CLIENT)
    api.grants[CA_SECRET].pop(WORKER_PRINCIPAL)
    root = _node_files(tmp_path)
    started = time.monotonic()
    denied = _run(root, api, "cfcr_secret_fetch ca.crt")
    assert denied.returncode != 0 and denied.stdout == b""
    assert time.monotonic() - started >= 6, "it waited with backoff"
    assert _vault_requests(api) == [f"GET /secrets/{CA_SECRET}"] * 3
    assert b"still denies secrets/c1-ca-crt after 6s (Forbidden/ForbiddenByRbac: Caller is not authorized" in denied.stderr
    assert b"may not have the role" in denied.stderr, denied.stderr


@needs("curl", "jq")
def test_a_missing_secret_fails_at_once_and_server_errors_are_retried(api: AzureApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    api.grants[f"{CLUSTER}-nope"] = {CP_PRINCIPAL: {USER}}  # granted, then deleted: no grant would be a 403
    missing = _run(root, api, "cfcr_secret_fetch missing")
    assert missing.returncode != 0 and missing.stdout == b""
    assert b"Azure error (HTTP 404): SecretNotFound: A secret with (name/id) c1-nope" in missing.stderr, missing.stderr
    assert _vault_requests(api) == [f"GET /secrets/{CLUSTER}-nope"], "no waiting on a 404"
    api.fail_next = [503, 429]
    assert _run(root, api, "cfcr_secret_fetch ca.crt").stdout == CA_VALUE.encode()
    api.fail_next = [503, 503, 503]
    failed = _run(root, api, "cfcr_secret_fetch ca.crt")
    assert failed.returncode != 0 and b"Azure error (HTTP 503): ServiceUnavailable: injected fault" in failed.stderr


@needs("curl", "jq")
def test_the_stand_in_refuses_what_azure_refuses(api: AzureApi) -> None:
    """The checks can fail: no metadata header, a proxied IMDS request, a forged token, a token for
    another audience."""
    def status(*args: str) -> str:
        return subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args],
                              capture_output=True, text=True, check=False).stdout

    token_url = f"{api.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
    assert status(token_url) == "400"
    assert status("-H", "Metadata: true", "-H", "X-Forwarded-For: 10.0.0.1", token_url) == "400"
    assert status("-H", "Authorization: Bearer forged", f"{api.url}/secrets/{CA_SECRET}?api-version=7.4") == "401"
    arm = subprocess.run(["curl", "-sS", "-H", "Metadata: true", token_url.replace("vault.azure.net", "management.azure.com%2F")],
                         capture_output=True, text=True, check=False).stdout
    wrong_audience = arm.split('"access_token": "')[1].split('"')[0]
    assert api.tokens[wrong_audience] == (CP_PRINCIPAL, ARM_AUDIENCE)
    assert status("-H", f"Authorization: Bearer {wrong_audience}", f"{api.url}/secrets/{CA_SECRET}?api-version=7.4") == "401"


# ============================================================================ the join token's rotation


@needs("curl", "jq")
def test_a_stored_token_becomes_the_current_version(api: AzureApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    stored = _run(root, api, "cfcr_secret_store bootstrap-token", stdin=b"fedcba.9876543210fedcba")
    assert stored.returncode == 0, stored.stderr
    assert api.secrets[TOKEN_SECRET] == [FIRST_TOKEN, "fedcba.9876543210fedcba"], "a new version; the old one kept"
    (put,) = [r for r in api.requests if r.method == "PUT"]
    assert put.path == f"/secrets/{TOKEN_SECRET}?api-version=7.4" and put.headers["Content-Type"] == "application/json"
    fetched = _run(root, api, "cfcr_secret_fetch bootstrap-token")
    assert fetched.stdout == b"fedcba.9876543210fedcba"
    _assert_nothing_secret_on_command_lines(root, api, b"fedcba.9876543210fedcba", FIRST_TOKEN.encode())


@needs("curl", "jq")
def test_a_worker_cannot_store_the_join_token(api: AzureApi, tmp_path: Path) -> None:
    api.identities, api.tags = {WORKER_CLIENT: WORKER_PRINCIPAL}, _vm_tags(WORKER_CLIENT)
    root = _node_files(tmp_path)
    refused = _run(root, api, "cfcr_secret_store bootstrap-token", stdin=b"ffffff.ffffffffffffffff")
    assert refused.returncode != 0 and b"secrets/setSecret/action" in refused.stderr, refused.stderr
    assert api.secrets[TOKEN_SECRET] == [FIRST_TOKEN]


@needs("curl", "jq")
def test_revoking_reads_the_provider_ids_and_changes_nothing(api: AzureApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    ids = b"azure:///subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachineScaleSets/c1-general/virtualMachines/0\n"
    result = _run(root, api, "cfcr_revoke_join_access", stdin=ids * 3)
    assert result.returncode == 0 and result.stderr == b"" and api.requests == []


@needs("curl", "jq")
def test_join_candidates(api: AzureApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)

    def candidate(name: str) -> subprocess.CompletedProcess[bytes]:
        return _run(root, api, f"cfcr_join_candidate {shlex.quote(name)}")

    def epoch(text: str) -> bytes:
        return f"{int(datetime.datetime.fromisoformat(text.replace('Z', '+00:00')).timestamp())}\n".encode()

    running = candidate("c1-general000000")
    assert running.returncode == 0 and running.stdout == epoch("2026-12-01T06:00:00+00:00"), running.stderr
    assert candidate("c1-general000001").stdout == epoch("2026-12-01T07:00:00Z"), "a VM being created"
    assert candidate("c1-gpu000000").stdout == epoch("2026-12-02T00:00:00Z"), "computer names compare lower case"
    assert candidate("c1-gpu000002").stdout == epoch("2026-12-02T02:00:00Z"), "found on the second page"
    for refused in ("c1-general000002", "c2-general000000", "c1-untagged000000", "c1-cp-0", "nobody",
                    "C1-GENERAL000000", "x;y", ""):
        result = candidate(refused)
        assert result.returncode != 0 and result.stdout == b"", refused
    listings = [r.path for r in api.requests if r.path.startswith("/subscriptions/")]
    assert any("$skiptoken=2" in p for p in listings), "nextLink followed"
    arm_tokens = {api.principal_of(r) for r in api.requests if r.path.startswith("/subscriptions/")}
    assert arm_tokens == {CP_PRINCIPAL}
    _assert_nothing_secret_on_command_lines(root, api)


@needs("curl", "jq")
def test_no_arm_role_no_candidate_and_no_cluster_no_candidate(api: AzureApi, tmp_path: Path) -> None:
    api.arm_readers = set()
    root = _node_files(tmp_path)
    refused = _run(root, api, "cfcr_join_candidate c1-general000000")
    assert refused.returncode != 0 and b"Azure error (HTTP 403): AuthorizationFailed" in refused.stderr, refused.stderr
    nameless = _node_files(tmp_path / "b", AzureNodeHook())
    api.arm_readers = {CP_PRINCIPAL}
    result = _run(nameless, api, "cfcr_join_candidate c1-general000000")
    assert result.returncode != 0 and b"names no cluster" in result.stderr


# ============================================================================ identity


@needs("curl")
def test_provider_and_machine_ids_come_from_imds(api: AzureApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    provider = _run(root, api, "cfcr_provider_id")
    assert provider.returncode == 0 and provider.stdout.decode() == f"azure://{api.resource_id}\n", provider.stderr
    machine = _run(root, api, "cfcr_machine_id")
    assert machine.returncode == 0 and machine.stdout.decode() == f"{VM_ID}\n", machine.stderr
    dead = _run(root, api, "cfcr_provider_id", env={**api.node_env(), "AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9"})
    assert dead.returncode != 0


@needs("shellcheck")
def test_the_rendered_files_pass_shellcheck(tmp_path: Path) -> None:
    root = _node_files(tmp_path, AzureNodeHook(vault_name="kv1", client_id=CP_CLIENT, cluster=CLUSTER,
                                               backups=BlobSnapshotTarget(CONTAINER, "acct1")))
    texts = {f: (root / f).read_text() for f in ("secrets.sh", "join-access.sh", "identity.sh", "backup.sh")}
    assert "cfcr_backup_upload()" in texts["backup.sh"]
    assert shellcheck_text_failures(texts, tmp_path) == []


# ============================================================================ etcd snapshots


def _snapshot(tmp_path: Path, size: int = 300_000) -> Path:
    path = tmp_path / "snapshot.db"
    path.write_bytes(os.urandom(size))
    return path


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _puts(api: AzureApi) -> list[Request]:
    return [r for r in api.requests if r.path.startswith("/blob/")]


@needs("curl", "jq")
def test_a_snapshot_is_put_as_a_block_blob_with_the_members_storage_token(api: AzureApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    snapshot = _snapshot(tmp_path)
    key = f"etcd/{CLUSTER}/20261201T200000Z-c1-cp-0.db"
    result = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} {key}")
    assert result.returncode == 0, result.stderr
    assert api.blobs[f"{CONTAINER}/{key}"] == snapshot.read_bytes()
    (put,) = _puts(api)
    assert put.method == "PUT" and put.path == f"/blob/{BACKUP_ACCOUNT}/{CONTAINER}/{key}", "the account from the VM's tag"
    assert put.headers["x-ms-blob-type"] == "BlockBlob" and put.headers["x-ms-version"] == BLOB_API
    assert put.headers["Content-MD5"] == _md5(snapshot.read_bytes()) and put.headers["If-None-Match"] == "*"
    assert re.fullmatch(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT", put.headers["x-ms-date"])
    assert api.tokens[put.headers["Authorization"].removeprefix("Bearer ")] == (CP_PRINCIPAL, STORAGE_AUDIENCE)
    tokens = [r.path for r in api.requests if r.path.startswith("/metadata/identity/")]
    assert f"client_id={CP_CLIENT}" in tokens[-1] and "resource=https%3A%2F%2Fstorage.azure.com%2F" in tokens[-1]
    _assert_nothing_secret_on_command_lines(root, api)


@needs("curl", "jq")
def test_the_upload_is_refused_without_the_role_and_outside_the_prefix(api: AzureApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    snapshot = _snapshot(tmp_path, 1000)
    outside = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/c2/x.db")
    assert outside.returncode != 0, "the role's condition admits etcd/c1/ only"
    assert b"refuses etcd/c2/x.db in container etcd-backups (AuthorizationPermissionMismatch: This request is not " \
           b"authorized" in outside.stderr and b"may not write etcd snapshots" in outside.stderr, outside.stderr
    assert len(_puts(api)) == 1, "a 403 is not retried"
    api.identities, api.tags = {WORKER_CLIENT: WORKER_PRINCIPAL}, _vm_tags(WORKER_CLIENT)
    worker = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/y.db")
    assert worker.returncode != 0 and b"AuthorizationPermissionMismatch" in worker.stderr, "no role, no upload"
    assert api.blobs == {}
    api.identities, api.tags = {CP_CLIENT: CP_PRINCIPAL}, {k: v for k, v in _vm_tags(CP_CLIENT).items()
                                                          if k != BACKUP_ACCOUNT_TAG}
    untagged = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/y.db")
    assert untagged.returncode != 0 and f"no {BACKUP_ACCOUNT_TAG} tag".encode() in untagged.stderr
    named = _node_files(tmp_path / "b", AzureNodeHook(cluster=CLUSTER, backups=BlobSnapshotTarget(CONTAINER, "other1")))
    elsewhere = _run(named, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/y.db")
    assert elsewhere.returncode != 0 and b"ResourceNotFound" in elsewhere.stderr, "the hook's own account wins"
    bad_key = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} 'etcd/{CLUSTER}/a b.db'")
    assert bad_key.returncode != 0 and b"characters the upload does not encode" in bad_key.stderr


@needs("curl", "jq")
def test_a_snapshot_is_never_overwritten_and_a_corrupted_body_is_refused(api: AzureApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    snapshot = _snapshot(tmp_path, 5000)
    key = f"etcd/{CLUSTER}/a.db"
    assert _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} {key}").returncode == 0
    first = api.blobs[f"{CONTAINER}/{key}"]
    snapshot.write_bytes(os.urandom(5000))
    again = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} {key}")
    assert again.returncode != 0 and b"Azure error (HTTP 409): BlobAlreadyExists" in again.stderr, again.stderr
    assert api.blobs[f"{CONTAINER}/{key}"] == first
    api.corrupt_next_upload = True
    corrupted = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/b.db")
    assert corrupted.returncode != 0 and b"Azure error (HTTP 400): Md5Mismatch" in corrupted.stderr, corrupted.stderr
    assert f"{CONTAINER}/etcd/{CLUSTER}/b.db" not in api.blobs


@needs("curl", "jq")
def test_an_answer_without_the_snapshots_md5_fails_the_upload(api: AzureApi, tmp_path: Path) -> None:
    """The client's own check of the answer: a store that kept other bytes (it echoes their MD5)."""
    root = _node_files(tmp_path)
    snapshot = _snapshot(tmp_path, 2000)
    script = (f"curl() {{ command curl \"$@\"; local rc=$?; local i; for ((i = 1; i <= $#; i++)); do "
              f"[ \"${{!i}}\" != -D ] || {{ i=$((i + 1)); sed -i 's/^Content-MD5: .*/Content-MD5: AAAAAAAAAAAAAAAAAAAAAA==/' \"${{!i}}\"; }}; "
              f"done; return $rc; }}\ncfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/c.db")
    result = _run(root, api, script)
    assert result.returncode != 0 and b"kept etcd/c1/c.db with another MD5" in result.stderr, result.stderr


@needs("curl", "jq")
def test_server_errors_are_retried_and_a_dead_endpoint_fails(api: AzureApi, tmp_path: Path) -> None:
    root = _node_files(tmp_path)
    snapshot = _snapshot(tmp_path, 4000)
    api.fail_next = [503, 500]
    ok = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/r.db")
    assert ok.returncode == 0, ok.stderr
    assert [r.method for r in _puts(api)] == ["PUT"] * 3 and api.blobs[f"{CONTAINER}/etcd/{CLUSTER}/r.db"] == snapshot.read_bytes()
    api.fail_next = [503, 503, 503]
    failed = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/s.db")
    assert failed.returncode != 0 and b"Azure error (HTTP 503)" in failed.stderr
    dead = _run(root, api, f"cfcr_backup_upload {shlex.quote(str(snapshot))} etcd/{CLUSTER}/t.db",
                env={**api.node_env(), "CFCR_AZURE_BLOB_URL": "http://127.0.0.1:9"})
    assert dead.returncode != 0


@needs("curl")
def test_the_blob_stand_in_refuses_what_azure_refuses(api: AzureApi) -> None:
    def status(*args: str) -> str:
        return subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary", "x",
                               *args], capture_output=True, text=True, check=False).stdout

    url = f"{api.url}/blob/{BACKUP_ACCOUNT}/{CONTAINER}/etcd/{CLUSTER}/x.db"
    assert status("-H", "Authorization: SharedKey acct:sig", url) == "403"
    assert status(url) == "401"
    token_url = f"{api.url}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com%2F"
    answer = subprocess.run(["curl", "-sS", "-H", "Metadata: true", token_url], capture_output=True, text=True, check=False)
    token = json.loads(answer.stdout)["access_token"]
    bearer = f"Authorization: Bearer {token}"
    assert status("-H", bearer, "-H", "x-ms-blob-type: BlockBlob", url) == "400", "no x-ms-version"
    assert status("-H", bearer, "-H", "x-ms-version: 2017-04-17", "-H", "x-ms-blob-type: BlockBlob", url) == "400"
    assert status("-H", bearer, "-H", f"x-ms-version: {BLOB_API}", url) == "400", "no blob type"
    assert status("-H", bearer, "-H", f"x-ms-version: {BLOB_API}", "-H", "x-ms-blob-type: BlockBlob", url) == "201"
    assert status("-H", bearer, "-H", f"x-ms-version: {BLOB_API}", "-H", "x-ms-blob-type: BlockBlob",
                  "-H", "Content-MD5: AAAAAAAAAAAAAAAAAAAAAA==", url) == "400"
