"""A minimal Kubernetes API client from a kubeconfig: TLS with the kubeconfig's CA and client
certificate (or bearer token), JSON in and out. Used by the harness's kubelet stand-in, which
must speak to the API as a node does, with the node's own credential."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ApiError(RuntimeError):
    """The API server answered with an error status."""

    def __init__(self, status: int, body: str, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


def _material(entry: dict[str, Any], data_key: str, file_key: str, root: Path | None) -> bytes | None:
    if entry.get(data_key):
        return base64.b64decode(entry[data_key])
    if entry.get(file_key):
        path = Path(entry[file_key])
        if root is not None and path.is_absolute():
            path = root / str(path).lstrip("/")
        return path.read_bytes()
    return None


@dataclass
class KubeClient:
    """One kubeconfig context's server and credentials."""

    server: str
    context: ssl.SSLContext
    token: str | None = None
    hosts: dict[str, str] | None = None
    """Name -> address from the node's own ``/etc/hosts`` (a node resolves the server's name
    there first, as glibc does with ``files`` before ``dns``)."""

    @classmethod
    def from_kubeconfig(cls, path: Path, root: Path | None = None) -> KubeClient:
        """Read ``path`` (its file references resolve inside ``root`` when given)."""
        doc = yaml.safe_load(path.read_text())
        contexts = {c["name"]: c["context"] for c in doc["contexts"]}
        context = contexts[doc.get("current-context") or next(iter(contexts))]
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in doc["users"] if u["name"] == context["user"])
        ca = _material(cluster, "certificate-authority-data", "certificate-authority", root)
        ssl_context = ssl.create_default_context(cadata=ca.decode() if ca else None)
        cert = _material(user, "client-certificate-data", "client-certificate", root)
        key = _material(user, "client-key-data", "client-key", root)
        if cert and key:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "c").write_bytes(cert)
                (Path(tmp) / "k").write_bytes(key)
                ssl_context.load_cert_chain(str(Path(tmp) / "c"), str(Path(tmp) / "k"))
        return cls(str(cluster["server"]), ssl_context, user.get("token"), _hosts(root) if root is not None else None)

    def request(self, method: str, path: str, body: Any = None, *,
                content_type: str = "application/json", timeout: float = 15.0) -> Any:
        """``method path`` with a JSON ``body``; the decoded JSON answer, or :class:`ApiError`."""
        url = urllib.parse.urlsplit(self.server)
        conn = _Connection(url.hostname or "", url.port or 443, context=self.context, timeout=timeout)
        conn.address = (self.hosts or {}).get(url.hostname or "")
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            text = response.read().decode()
        finally:
            conn.close()
        if response.status >= 300:
            raise ApiError(response.status, text, f"{method} {path}")
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)


def _hosts(root: Path) -> dict[str, str]:
    """The first address of each name in ``root``'s ``/etc/hosts``."""
    path = root / "etc" / "hosts"
    out: dict[str, str] = {}
    for line in (path.read_text().splitlines() if path.exists() else []):
        fields = line.split("#", 1)[0].split()
        for name in fields[1:]:
            out.setdefault(name, fields[0])
    return out


class _Connection(http.client.HTTPSConnection):
    """HTTPS to the server's name (SNI and certificate check), connected to ``address`` when the
    node's /etc/hosts names one."""

    address: str | None = None

    def connect(self) -> None:
        if self.address is None:
            super().connect()
            return
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
