"""The readiness gate's polling, against a real local HTTPS server that demands a client
certificate signed by the cluster CA (503 first, then 200); and the CNI lock's provider."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cfcr.addons.cni import CniChangeError, CniLockProvider
from cfcr.addons.gate import (
    ACCESS_REVIEW_PATH,
    ApiNotReadyError,
    ClientCredentials,
    ReadinessGateProvider,
    credentials_from_kubeconfig,
    wait_until_ready,
)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _issue(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
           *, ca: bool = False, server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
    elif server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class Pki:
    def __init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _issue(_name("cluster-ca"), self.ca_key, _name("cluster-ca"), self.ca_key, ca=True)
        self.server_key = ec.generate_private_key(ec.SECP256R1())
        self.server = _issue(_name("kube-apiserver"), self.server_key, self.ca.subject, self.ca_key, server=True)
        self.client_key = ec.generate_private_key(ec.SECP256R1())
        self.client = _issue(_name("admin", "kubeadm:cluster-admins"), self.client_key, self.ca.subject, self.ca_key)

    def creds(self) -> ClientCredentials:
        return ClientCredentials(_pem(self.ca), _pem(self.client), _key_pem(self.client_key))


class _Handler(http.server.BaseHTTPRequestHandler):
    answers: list[int] = []
    allowed: list[bool] = []
    seen: list[tuple[str, str | None]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        peer = self.connection.getpeercert()  # type: ignore[attr-defined]
        subject = dict(x[0] for x in peer["subject"]) if peer else {}
        type(self).seen.append((self.path, subject.get("commonName")))
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert review["spec"]["resourceAttributes"] == {"verb": "*", "group": "*", "resource": "*"}
        allowed = type(self).allowed.pop(0) if type(self).allowed else True
        body = json.dumps({**review, "status": {"allowed": allowed, "reason": "" if allowed else "no RBAC policy matched"}}).encode()
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        peer = self.connection.getpeercert()  # type: ignore[attr-defined]
        subject = dict(x[0] for x in peer["subject"]) if peer else {}
        type(self).seen.append((self.path, subject.get("commonName")))
        status = type(self).answers.pop(0) if type(self).answers else 200
        body = b"ok" if status == 200 else b"[-]etcd failed: reason withheld"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def pki() -> Pki:
    return Pki()


@pytest.fixture
def server(pki: Pki, tmp_path: Path) -> Iterator[tuple[str, type[_Handler]]]:
    (tmp_path / "ca.crt").write_text(_pem(pki.ca))
    (tmp_path / "server.crt").write_text(_pem(pki.server))
    (tmp_path / "server.key").write_text(_key_pem(pki.server_key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    context.load_verify_locations(tmp_path / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED  # the API server's client-certificate check
    handler = type("Handler", (_Handler,), {"answers": [], "allowed": [], "seen": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_waits_through_503_until_ready(pki: Pki, server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.answers[:] = [503, 503, 200]
    seen = wait_until_ready(url, pki.creds(), timeout_seconds=30, interval_seconds=0.05)
    assert seen == "HTTP 200 ok"
    assert [p for p, _ in handler.seen] == ["/readyz"] * 3 + [ACCESS_REVIEW_PATH]
    assert {cn for _, cn in handler.seen} == {"admin"}, "the admin client certificate was presented"


def test_ready_is_not_enough_until_the_admin_is_authorized(pki: Pki, server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.allowed[:] = [False, False, True]
    seen = wait_until_ready(url, pki.creds(), timeout_seconds=30, interval_seconds=0.05)
    assert seen == "HTTP 200 ok"
    assert [p for p, _ in handler.seen].count(ACCESS_REVIEW_PATH) == 3
    handler.allowed[:] = [False] * 100
    with pytest.raises(ApiNotReadyError, match="not cluster-admin yet"):
        wait_until_ready(url, pki.creds(), timeout_seconds=0.3, interval_seconds=0.05)


def test_times_out_naming_the_endpoint_and_last_status(pki: Pki, server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.answers[:] = [503] * 100
    with pytest.raises(ApiNotReadyError) as caught:
        wait_until_ready(url, pki.creds(), timeout_seconds=0.3, interval_seconds=0.05)
    message = str(caught.value)
    assert f"{url}/readyz" in message and "HTTP 503" in message and "etcd failed" in message


def test_a_server_outside_the_cluster_ca_is_refused(pki: Pki, server: tuple[str, type[_Handler]]) -> None:
    url, _ = server
    other = Pki()
    creds = ClientCredentials(_pem(other.ca), _pem(pki.client), _key_pem(pki.client_key))
    with pytest.raises(ApiNotReadyError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        wait_until_ready(url, creds, timeout_seconds=0.2, interval_seconds=0.05)


def test_without_a_client_certificate_the_server_refuses(pki: Pki, server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    stranger = Pki()  # a client cert from another CA: the server's client-cert check refuses it
    creds = ClientCredentials(_pem(pki.ca), _pem(stranger.client), _key_pem(stranger.client_key))
    with pytest.raises(ApiNotReadyError, match="last seen"):
        wait_until_ready(url, creds, timeout_seconds=0.2, interval_seconds=0.05)
    assert handler.seen == []


def test_unreachable_endpoint_reports_the_connection_error(pki: Pki) -> None:
    with pytest.raises(ApiNotReadyError, match=r"https://127\.0\.0\.1:9/readyz.*(Connection|refused)"):
        wait_until_ready("https://127.0.0.1:9", pki.creds(), timeout_seconds=0.2, interval_seconds=0.05)


def _kubeconfig(url: str, pki: Pki) -> str:
    b64 = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "admin@c",
        "clusters": [{"name": "c", "cluster": {"server": url, "certificate-authority-data": b64(_pem(pki.ca))}}],
        "users": [{"name": "admin", "user": {"client-certificate-data": b64(_pem(pki.client)),
                                              "client-key-data": b64(_key_pem(pki.client_key))}}],
        "contexts": [{"name": "admin@c", "context": {"cluster": "c", "user": "admin"}}],
    })


def test_provider_create_and_credential_change(pki: Pki, server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    kubeconfig = _kubeconfig(url, pki)
    assert credentials_from_kubeconfig(kubeconfig)[0] == url
    handler.answers[:] = [503, 200]
    provider = ReadinessGateProvider()
    created = provider.create({"url": url, "kubeconfig": kubeconfig, "timeoutSeconds": 30})
    assert created.outs is not None and created.outs["lastSeen"] == "HTTP 200 ok"
    assert "kubeconfig" not in created.outs, "the credential is not kept in state"
    same = provider.diff(created.id, created.outs, {"url": url, "kubeconfig": kubeconfig})
    assert same.changes is False
    rotated = _kubeconfig(url, Pki())
    assert provider.diff(created.id, created.outs, {"url": url, "kubeconfig": rotated}).changes is True
    # a member replaced (its machine's id changed): the gate waits again, and keeps the new ids
    machines = {"url": url, "kubeconfig": kubeconfig, "timeoutSeconds": 30, "machines": ["i-0a", "i-0b"]}
    assert provider.diff(created.id, created.outs, machines).changes is True
    handler.answers[:] = [503, 503, 200]
    updated = provider.update(created.id, created.outs, machines)
    assert updated.outs is not None and updated.outs["machines"] == ["i-0a", "i-0b"]
    assert updated.outs["lastSeen"] == "HTTP 200 ok" and not handler.answers, "it polled until ready"
    assert provider.diff(created.id, updated.outs, machines).changes is False
    assert provider.diff(created.id, updated.outs, {**machines, "machines": ["i-0c", "i-0b"]}).changes is True


def test_cni_lock_refuses_a_change_with_the_procedure() -> None:
    provider = CniLockProvider()
    created = provider.create({"cni": "calico"})
    assert created.outs == {"cni": "calico"}
    assert provider.diff(created.id, created.outs, {"cni": "calico"}).changes is False
    with pytest.raises(CniChangeError) as caught:
        provider.diff(created.id, created.outs, {"cni": "cilium"})
    assert "from calico to cilium" in str(caught.value)
    assert "docs/addons.md#changing-the-cni" in str(caught.value)
    with pytest.raises(CniChangeError):
        provider.update(created.id, created.outs, {"cni": "flannel"})


def test_an_unresolvable_name_says_where_pulumi_must_run(pki: Pki) -> None:
    with pytest.raises(ApiNotReadyError, match="resolves only inside the cluster's network"):
        wait_until_ready("https://api.nowhere.cfcr.internal:6443", pki.creds(), timeout_seconds=0.2,
                         interval_seconds=0.05)
