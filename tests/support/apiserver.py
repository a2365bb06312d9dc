"""One real kube-apiserver on one real etcd, on loopback: seconds to start, no root.

For tests of code that talks to the Kubernetes API (the ``cfcr smoke`` adapter,
``cfcr/smoke/kube.py``) and needs a real API server's answers, not the whole control plane of a
render (:mod:`tests.support.controlplane`, minutes and root)::

    from tests.support.apiserver import ApiServer
    with ApiServer.start(tmp_path) as api:
        api.kubeconfig        # system:masters (cfcr's super-admin certificate), server 127.0.0.1
        api.client.get("/api/v1/namespaces/default")   # tests.support.kubeapi.KubeClient

The programs are the stable channel's ``etcd`` and ``kube-apiserver`` (built by
``python3 dev.py tools``; call ``tests.support.tools.require_tool`` first). The certificates are
cfcr's own PKI issued for a single member at ``127.0.0.1`` (:func:`tests.support.x509.issue_all`),
in kubeadm's layout. Every port is a free one chosen at start, so runs never collide.

No controller, scheduler or kubelet runs: a deleted namespace stays ``Terminating``, nothing
creates a namespace's default ServiceAccount, a Pod runs only where a test says it does, and a
Node is whatever a test registers.
"""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cfcr.config.topology import ControlPlaneMember
from cfcr.pki.specs import PkiInputs
from tests.support.controlplane import Process, tail
from tests.support.kubeapi import KubeClient
from tests.support.tools import tool_path
from tests.support.x509 import issue_all

LOOPBACK = "127.0.0.1"
MEMBER = ControlPlaneMember("smoke-api", LOOPBACK)
SERVICE_CIDR = "10.96.0.0/12"


class ApiServerError(RuntimeError):
    """The API server did not come up; carries the logs' tails."""


def free_port() -> int:
    """A loopback TCP port nothing is bound to now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def closed_port() -> socket.socket:
    """A socket bound to a loopback port that does not listen: a connection to its port is
    refused for as long as the socket stays open (close it when done)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((LOOPBACK, 0))
    return s


def kubeconfig(server: str, ca: str, cert: str, key: str, user: str) -> str:
    """A kubeconfig with the client certificate embedded."""
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": user,
        "clusters": [{"name": "smoke-api", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": user, "context": {"cluster": "smoke-api", "user": user}}],
    })


@dataclass
class ApiServer:
    """The running pair; :meth:`start` makes one, :meth:`close` (or ``with``) ends it."""

    workdir: Path
    port: int
    kubeconfig: Path
    processes: list[Process] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def client(self) -> KubeClient:
        """A plain client (:mod:`tests.support.kubeapi`) as system:masters."""
        return KubeClient.from_kubeconfig(self.kubeconfig)

    @classmethod
    def start(cls, workdir: Path, timeout: float = 60.0) -> ApiServer:
        """Issue the PKI, start etcd and the API server under ``workdir``, wait for ``/readyz``."""
        pki = issue_all(PkiInputs(cluster_name="smoke-api", control_plane_nodes=[MEMBER], service_cidr=SERVICE_CIDR))
        pki_dir = workdir / "pki"
        pki.write_pki(pki_dir, "control-plane", MEMBER.name)
        data = workdir / "etcd"
        data.mkdir(mode=0o700)
        etcd_client, etcd_peer, port = free_port(), free_port(), free_port()
        path = workdir / "super-admin.kubeconfig"
        path.write_text(kubeconfig(f"https://{LOOPBACK}:{port}", pki.ca_bundle, pki.cert("super-admin"),
                                   pki.key("super-admin"), "super-admin"))
        path.chmod(0o600)
        api = cls(workdir, port, path)
        try:
            etcd_url = f"https://{LOOPBACK}:{etcd_client}"
            peer_url = f"http://{LOOPBACK}:{etcd_peer}"
            api.spawn("etcd", [
                str(tool_path("etcd")), f"--name={MEMBER.name}", f"--data-dir={data}",
                f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster={MEMBER.name}={peer_url}", "--initial-cluster-state=new",
                "--client-cert-auth=true", f"--trusted-ca-file={pki_dir}/etcd/ca.crt",
                f"--cert-file={pki_dir}/etcd/server.crt", f"--key-file={pki_dir}/etcd/server.key"])
            api.spawn("kube-apiserver", [
                str(tool_path("kube-apiserver")), f"--advertise-address={LOOPBACK}", f"--bind-address={LOOPBACK}",
                f"--secure-port={port}", f"--etcd-servers={etcd_url}", f"--etcd-cafile={pki_dir}/etcd/ca.crt",
                f"--etcd-certfile={pki_dir}/apiserver-etcd-client.crt",
                f"--etcd-keyfile={pki_dir}/apiserver-etcd-client.key",
                f"--client-ca-file={pki_dir}/ca.crt",
                f"--tls-cert-file={pki_dir}/apiserver.crt", f"--tls-private-key-file={pki_dir}/apiserver.key",
                f"--kubelet-client-certificate={pki_dir}/apiserver-kubelet-client.crt",
                f"--kubelet-client-key={pki_dir}/apiserver-kubelet-client.key",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki_dir}/sa.pub",
                f"--service-account-signing-key-file={pki_dir}/sa.key",
                f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=Node,RBAC",
                # a loopback address is no valid endpoint of the kubernetes Service: do not publish it
                "--endpoint-reconciler-type=none"])
            api.wait_ready(timeout)
        except BaseException:
            api.close()
            raise
        return api

    def spawn(self, name: str, cmd: list[str]) -> Process:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as handle:
            popen = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=self.workdir,
                                     env={"PATH": "/usr/bin:/bin"}, start_new_session=True)
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def wait_ready(self, timeout: float) -> None:
        """Until ``GET /readyz`` answers 200 to the super-admin."""
        context = self.client.context
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            dead = [p.name for p in self.processes if not p.alive()]
            if dead:
                raise ApiServerError(f"{', '.join(dead)} exited\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.server}/readyz", context=context, timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ssl.SSLError, ConnectionError, TimeoutError) as exc:
                last = str(exc)
            time.sleep(0.3)
        raise ApiServerError(f"the API server was not ready after {timeout:.0f}s ({last})\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{tail(p.log)}" for p in self.processes)

    def close(self) -> None:
        """Stop every process (the API server first)."""
        for process in reversed(self.processes):
            process.stop(timeout=10)

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ApiServer", "ApiServerError", "closed_port", "free_port", "kubeconfig"]
