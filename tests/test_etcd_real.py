"""A real 3-member etcd from cfcr's rendered flags and real certificates from cfcr's PKI.

The etcd, etcdctl and etcdutl are the channel's (built by ``python3 dev.py tools``).
Members: ``t-cp-0..2`` on 127.0.0.11-13 (their own "node loopback" on 127.0.0.21-23).
See ``tests/support/etcd_cluster.py`` for the only changes made to the rendered flags.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cfcr.channels import parse_version, resolve
from cfcr.config import ClusterSpec, load_spec
from cfcr.node.etcd import etcd_args
from cfcr.config.topology import ControlPlaneMember
from cfcr.pki.specs import PkiInputs
from tests.support.etcd_cluster import (
    EtcdCluster,
    EtcdTestError,
    etcd_version,
    known_flags,
    restore_snapshot,
)
from tests.support.tools import require_tool
from tests.support.x509 import IssuedPki, issue_all

pytestmark = pytest.mark.slow

MEMBERS = [ControlPlaneMember(f"t-cp-{i}", f"127.0.0.{11 + i}") for i in range(3)]


@pytest.fixture(scope="module")
def spec() -> ClusterSpec:
    return load_spec({"cfcr:cloud": "aws", "cfcr:region": "us-east-1",
                      "cfcr:controlPlane": {"count": 3}}, "etcdtest")


@pytest.fixture(autouse=True, scope="module")
def _real_etcd(spec: ClusterSpec) -> None:
    """The spec's channel's etcd, etcdctl and etcdutl are built (else skip; under CI=true, fail)."""
    for binary in ("etcd", "etcdctl", "etcdutl"):
        require_tool(binary, resolve(spec.kubernetes.version).etcd_version)


@pytest.fixture(scope="module")
def pki(spec: ClusterSpec) -> IssuedPki:
    assert spec.name is not None
    return issue_all(PkiInputs(cluster_name=spec.name, control_plane_nodes=MEMBERS))


@pytest.fixture(scope="module")
def foreign_pki() -> IssuedPki:
    """Another cluster's PKI: same names and addresses, different CAs."""
    return issue_all(PkiInputs(cluster_name="other", control_plane_nodes=MEMBERS))


@pytest.fixture
def cluster(tmp_path: Path, spec: ClusterSpec, pki: IssuedPki) -> Iterator[EtcdCluster]:
    with EtcdCluster(tmp_path / "cluster", spec, MEMBERS, pki) as c:
        c.start()
        c.wait_healthy()
        yield c


def _member_list(c: EtcdCluster) -> list[list[str]]:
    out = c.etcdctl("member", "list", "-w", "simple").stdout
    return [[f.strip() for f in line.split(",")] for line in out.strip().splitlines()]


def test_every_rendered_flag_runs_on_the_channels_etcd(
        tmp_path: Path, spec: ClusterSpec, pki: IssuedPki) -> None:
    c = EtcdCluster(tmp_path / "c", spec, MEMBERS, pki)
    # The members run the etcd of the spec's channel, with that channel's flag dialect.
    assert c.release.version == resolve("stable").version
    assert etcd_version(c.etcd) == parse_version(c.release.etcd_version)
    rendered = etcd_args(spec, MEMBERS, 0, c.release)
    # Nothing is dropped: the member runs exactly the rendered flags (paths re-rooted).
    assert [a.split("=", 1)[0] for a in c.members[0].args] == [a.split("=", 1)[0] for a in rendered]
    kept = {a[2:].split("=", 1)[0] for a in c.members[0].args}
    unknown = kept - known_flags(c.etcd)
    assert not unknown, f"rendered flags the channel's etcd does not know: {sorted(unknown)}"
    for tls_flag in ("client-cert-auth", "peer-client-cert-auth", "cert-file", "key-file",
                     "trusted-ca-file", "peer-cert-file", "peer-key-file",
                     "peer-trusted-ca-file", "auto-tls", "peer-auto-tls", "cipher-suites"):
        assert tls_flag in kept


def test_static_members_form_quorum_and_serve_reads_and_writes(cluster: EtcdCluster) -> None:
    rows = _member_list(cluster)
    assert sorted(r[2] for r in rows) == [m.name for m in MEMBERS]
    assert all(r[1] == "started" for r in rows)
    # Members advertise their own address only, over TLS.
    assert sorted(r[4] for r in rows) == [f"https://{m.address}:2379" for m in MEMBERS]
    assert sorted(r[3] for r in rows) == [f"https://{m.address}:2380" for m in MEMBERS]

    cluster.etcdctl("put", "/cfcr/hello", "world", endpoints=cluster.members[0].endpoint)
    # Read through another member, with the API server's client certificate.
    got = cluster.etcdctl("get", "/cfcr/hello", "--print-value-only",
                          endpoints=cluster.members[2].endpoint,
                          cert=cluster.client_cert("apiserver-etcd-client")).stdout.strip()
    assert got == "world"
    # Plain-HTTP health lives on the (node-)loopback metrics listener only.
    for m in cluster.members:
        with urllib.request.urlopen(f"{m.metrics_url}/health", timeout=5) as r:
            assert r.status == 200 and b'"health":"true"' in r.read().replace(b" ", b"")


def _all_logs(c: EtcdCluster) -> str:
    return "".join(m.log_path.read_text(errors="replace") for m in c.members)


def test_client_without_certificate_is_refused(cluster: EtcdCluster) -> None:
    out = cluster.etcdctl_raw("put", "/cfcr/anon", "x", endpoints=cluster.endpoints(),
                              tls=["--cacert", str(cluster.ca_file)], check=False,
                              command_timeout="2s")
    assert out.returncode != 0
    assert "didn't provide a certificate" in _all_logs(cluster)  # refused for that reason
    assert cluster.etcdctl("get", "/cfcr/anon", "--print-value-only").stdout.strip() == ""


def test_client_certificate_from_another_ca_is_refused(
        cluster: EtcdCluster, foreign_pki: IssuedPki, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign_pki.write_pki(foreign, "control-plane", MEMBERS[0].name)
    # Trust the real server (our CA) but present the other cluster's client certificate.
    out = cluster.etcdctl_raw(
        "put", "/cfcr/foreign", "x", endpoints=cluster.endpoints(),
        tls=["--cacert", str(cluster.ca_file),
             "--cert", str(foreign / "apiserver-etcd-client.crt"),
             "--key", str(foreign / "apiserver-etcd-client.key")], check=False,
        command_timeout="2s")
    assert out.returncode != 0
    assert "certificate signed by unknown authority" in _all_logs(cluster)
    assert cluster.etcdctl("get", "/cfcr/foreign", "--print-value-only").stdout.strip() == ""


def _tls_exchange(host: str, port: int, ca: Path, cert: tuple[Path, Path] | None,
                  tls12_ciphers: str | None = None) -> bytes:
    """TLS to ``host:port``, one HTTP request, the first bytes of the answer.

    A refused handshake raises (TLS 1.2, or TLS 1.3 on the first read) or, when the
    server just hangs up, yields ``b""``."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if tls12_ciphers is not None:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(tls12_ciphers)
    with socket.create_connection((host, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(f"GET /version HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            return s.recv(4096)


def test_peer_port_requires_a_certificate_from_the_etcd_ca(
        cluster: EtcdCluster, foreign_pki: IssuedPki, tmp_path: Path) -> None:
    m = cluster.members[0]
    own = (m.pki_dir / "etcd/peer.crt", m.pki_dir / "etcd/peer.key")
    assert _tls_exchange(m.spec.address, 2380, cluster.ca_file, own).startswith(b"HTTP/1.1 200")

    foreign = tmp_path / "foreign"
    foreign_pki.write_pki(foreign, "control-plane", m.spec.name)
    bad = (foreign / "etcd/peer.crt", foreign / "etcd/peer.key")
    for cert in (None, bad):
        try:
            answer = _tls_exchange(m.spec.address, 2380, cluster.ca_file, cert)
        except (ssl.SSLError, ConnectionError):
            continue
        assert answer == b"", f"peer port answered a client with cert {cert}: {answer[:80]!r}"


def test_weak_tls12_cipher_suites_are_refused(cluster: EtcdCluster) -> None:
    m = cluster.members[0]
    cert = cluster.client_cert()
    # ECDHE + AES-GCM (rendered) is accepted over TLS 1.2 ...
    assert _tls_exchange(m.spec.address, 2379, cluster.ca_file, cert,
                         tls12_ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
    # ... CBC suites are not (not in --cipher-suites).
    with pytest.raises(ssl.SSLError):
        _tls_exchange(m.spec.address, 2379, cluster.ca_file, cert,
                      tls12_ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA")


def test_losing_one_member_keeps_quorum_and_it_catches_up_from_its_data(
        cluster: EtcdCluster) -> None:
    cluster.etcdctl("put", "/cfcr/before", "1")
    # Lose the leader: the hardest single loss (an election must happen).
    ids = cluster.member_ids()
    leader = cluster.wait_leader(cluster.members)
    lost = next(m for m in cluster.members if ids[m.spec.name] == leader)
    survivors = [m for m in cluster.members if m is not lost]
    lost.kill()
    new_leader = cluster.wait_leader(survivors)  # the 2 survivors still make a quorum
    assert new_leader != leader

    for i in range(20):  # writes succeed with 2 of 3
        cluster.etcdctl("put", f"/cfcr/during/{i:02d}", str(i), endpoints=cluster.endpoints(survivors))
    assert lost.data_dir.joinpath("member").is_dir()  # the "disk" outlives the process

    # Same rendered flags (initial-cluster-state=new), existing data dir: it rejoins.
    cluster.start_member(lost)
    cluster.wait_healthy([lost])
    deadline = time.monotonic() + 15
    while True:  # a local (serializable) read proves the member itself has the data
        local = cluster.get_all("/cfcr/", endpoints=lost.endpoint, serializable=True)
        if len(local) == 21 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert local["/cfcr/before"] == "1"
    assert {k: v for k, v in local.items() if k.startswith("/cfcr/during/")} == {
        f"/cfcr/during/{i:02d}": str(i) for i in range(20)}
    assert len(_member_list(cluster)) == 3


def test_snapshot_restores_every_key_into_a_fresh_single_member(
        cluster: EtcdCluster, tmp_path: Path, spec: ClusterSpec, pki: IssuedPki) -> None:
    expected = {f"/cfcr/backup/{i:03d}": f"value-{i}" for i in range(200)}
    for n, (k, v) in enumerate(expected.items()):  # through every member in turn
        cluster.etcdctl("put", k, v, endpoints=cluster.members[n % 3].endpoint)
    expected.update({"/cfcr/config/blob": "x" * 50_000})
    cluster.etcdctl("put", "/cfcr/config/blob", "x" * 50_000)
    before = cluster.get_all("/cfcr/")
    assert set(expected) <= set(before)

    snap = tmp_path / "snapshot.db"
    cluster.etcdctl("snapshot", "save", str(snap), endpoints=cluster.members[1].endpoint)
    assert snap.stat().st_size > 0
    cluster.close()  # the whole cluster is gone

    # Disaster recovery: one fresh member from our rendered 1-member flags, same certs.
    with EtcdCluster(tmp_path / "restored", spec, MEMBERS[:1], pki) as restored:
        m = restored.members[0]
        shutil.rmtree(m.data_dir)  # restore wants to create the data dir itself
        assert spec.name is not None
        out = restore_snapshot(snap, data_dir=m.data_dir, member=m.spec,
                               cluster_token=spec.name, args=m.args, etcdutl=restored.etcdutl)
        assert out.returncode == 0, out.stderr
        restored.start_member(m)
        restored.wait_healthy()
        after = restored.get_all("/cfcr/")
        assert after == before  # nothing lost, nothing invented
        rows = _member_list(restored)
        assert [r[2] for r in rows] == [MEMBERS[0].name]
        restored.etcdctl("put", "/cfcr/after-restore", "ok")  # and it takes writes


def test_cluster_helper_fails_loudly_when_a_member_cannot_start(
        tmp_path: Path, spec: ClusterSpec, pki: IssuedPki) -> None:
    """Guard the harness itself: a member with a broken cert must not look healthy."""
    with EtcdCluster(tmp_path / "broken", spec, MEMBERS[:1], pki) as c:
        m = c.members[0]
        (m.pki_dir / "etcd/server.key").write_text("not a key\n")
        c.start_member(m)
        with pytest.raises(EtcdTestError):
            c.wait_healthy(timeout=3)
    assert not m.running()
