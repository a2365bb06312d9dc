"""A real etcd cluster on loopback, started from cfcr's rendered flags and certificates.

The binaries are the real etcd, etcdctl and etcdutl of the spec's channel, built from Go
modules by ``python3 dev.py tools`` (found through ``tests/support/tools.py``). Each member
runs the flags ``cfcr.node.etcd.etcd_args`` renders for it for that channel, with only
these changes, all forced by running several "nodes" in one host:

* host paths move under a temporary directory: the data dir and the certificate paths
  (``/etc/kubernetes/pki/...``) are re-rooted per member;
* the node-local loopback ``127.0.0.1`` (the extra client listener and the metrics
  listener) becomes a per-member loopback address (:data:`NODE_LOOPBACK`), because three
  members cannot all bind ``127.0.0.1:2379``/``:2381`` on one host.

Every rendered flag is passed, including every TLS flag: a flag the channel's etcd does
not know makes the member exit, and the test fail. Certificates are real X.509 issued
from cfcr's PKI specs by ``tests.support.x509``.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cfcr.channels import Release, resolve
from cfcr.config import ClusterSpec
from cfcr.node.etcd import CLIENT_PORT, METRICS_PORT, PEER_PORT, etcd_args
from cfcr.node.paths import ETCD_DATA_DIR, PKI_DIR
from cfcr.config.topology import ControlPlaneMember
from tests.support.tools import tool_path
from tests.support.x509 import IssuedPki

ETCD = tool_path("etcd")
ETCDCTL = tool_path("etcdctl")
ETCDUTL = tool_path("etcdutl")
"""The stable channel's etcd binaries. A cluster runs those of its spec's channel
(:attr:`EtcdCluster.release`); tests call ``tests.support.tools.require_tool`` first."""

NODE_LOOPBACK = "127.0.0.1"
"""The loopback address the rendered flags use for node-local listeners."""


LOCK_FILE = Path("/tmp/cfcr-etcd-loopback.lock")
"""Every cluster here binds the same loopback addresses and ports; test runs in other
processes (a colleague's ``pytest``, a parallel CI job) take turns through this lock."""


class EtcdTestError(RuntimeError):
    """The cluster did not reach the expected state in time; carries the members' logs."""


class LoopbackLock:
    """An exclusive ``flock`` on :data:`LOCK_FILE`, waited for with a timeout."""

    def __init__(self, timeout: float = 180.0) -> None:
        self.timeout = timeout
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise EtcdTestError(
                        f"{LOCK_FILE} held for {self.timeout}s by another etcd test run") from None
                time.sleep(0.2)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@functools.cache
def known_flags(binary: Path) -> frozenset[str]:
    """Flag names (without dashes) the etcd ``binary`` accepts, from its ``--help``."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    names: set[str] = set()
    for line in (out.stdout + out.stderr).splitlines():
        stripped = line.strip()
        if stripped.startswith("--"):
            names.add(stripped[2:].split()[0].split("=")[0].strip("'"))
    return frozenset(names)


def etcd_version(binary: Path) -> tuple[int, int, int]:
    """Version of the etcd ``binary``."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    for line in out.stdout.splitlines():
        if line.startswith("etcd Version:"):
            major, minor, patch = line.split(":", 1)[1].strip().split(".")[:3]
            return int(major), int(minor), int(patch.split("-")[0])
    raise RuntimeError(f"cannot read the version of {binary}: {out.stdout!r}")


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_ports_free(endpoints: Sequence[tuple[str, int]], timeout: float = 10.0) -> None:
    """Wait until every ``(host, port)`` can be bound; fail clearly if one stays busy."""
    deadline = time.monotonic() + timeout
    busy = list(endpoints)
    while busy:
        busy = [e for e in busy if not port_free(*e)]
        if not busy:
            return
        if time.monotonic() > deadline:
            raise EtcdTestError(f"ports still in use (another etcd test running?): {busy}")
        time.sleep(0.2)


def rewrite_flags(
    args: Sequence[str],
    *,
    data_dir: Path,
    pki_dir: Path,
    node_loopback: str,
) -> list[str]:
    """The rendered flags with host paths and the node loopback moved (module docstring)."""
    kept: list[str] = []
    for arg in args:
        name, sep, value = arg[2:].partition("=")
        assert arg.startswith("--") and sep, f"unexpected flag shape {arg!r}"
        if value == ETCD_DATA_DIR:
            value = str(data_dir)
        elif value.startswith(PKI_DIR + "/"):
            value = str(pki_dir / value[len(PKI_DIR) + 1 :])
        elif name in ("listen-client-urls", "listen-metrics-urls"):
            value = value.replace(f"://{NODE_LOOPBACK}:", f"://{node_loopback}:")
        kept.append(f"--{name}={value}")
    return kept


@dataclass
class Member:
    """One running (or stopped) etcd member."""

    spec: ControlPlaneMember
    root: Path
    node_loopback: str
    binary: Path
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def log_path(self) -> Path:
        return self.root / "etcd.log"

    @property
    def endpoint(self) -> str:
        return f"https://{self.spec.address}:{CLIENT_PORT}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.node_loopback}:{METRICS_PORT}"

    def ports(self) -> list[tuple[str, int]]:
        a = self.spec.address
        return [(a, CLIENT_PORT), (a, PEER_PORT), (self.node_loopback, CLIENT_PORT),
                (self.node_loopback, METRICS_PORT)]

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.spec.name} is already running")
        wait_ports_free(self.ports())
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.binary, *self.args], stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},  # no ETCD_* leaks in
            start_new_session=True,
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL, as a VM that vanishes."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        self._signal(signal.SIGTERM)

    def _signal(self, sig: signal.Signals) -> None:
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.proc = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class EtcdCluster:
    """Members of ``members`` as real etcd processes under ``root``.

    Use as a context manager (or call :meth:`close`): every process is stopped on exit.
    """

    def __init__(self, root: Path, spec: ClusterSpec, members: Sequence[ControlPlaneMember],
                 pki: IssuedPki, *, loopback_base: int = 21) -> None:
        self.release: Release = resolve(spec.kubernetes.version)
        """The spec's channel: its etcd version picks the binaries and the flag dialect."""
        self.etcd = tool_path("etcd", self.release.etcd_version)
        self.etcdctl_binary = tool_path("etcdctl", self.release.etcd_version)
        self.etcdutl = tool_path("etcdutl", self.release.etcd_version)
        if not self.etcd.is_file():
            raise RuntimeError(f"{self.etcd} is not built: run `python3 dev.py tools`")
        self.root = root
        self._lock = LoopbackLock()
        self.spec = spec
        self.pki = pki
        self.client_pki = root / "client-pki"
        pki.write_pki(self.client_pki, "control-plane", members[0].name)
        self.members: list[Member] = []
        for i, m in enumerate(members):
            mroot = root / m.name
            mroot.mkdir(parents=True, exist_ok=True)
            member = Member(m, mroot, f"127.0.0.{loopback_base + i}", self.etcd)
            pki.write_pki(member.pki_dir, "control-plane", m.name)
            member.data_dir.mkdir(mode=0o700, exist_ok=True)
            member.args = rewrite_flags(
                etcd_args(spec, list(members), i, self.release), data_dir=member.data_dir,
                pki_dir=member.pki_dir, node_loopback=member.node_loopback)
            self.members.append(member)

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start every member (taking the loopback lock first)."""
        for m in self.members:
            self.start_member(m)

    def start_member(self, member: Member) -> None:
        """Start (or restart) one member; the loopback lock is held until :meth:`close`."""
        self._lock.acquire()
        member.start()

    def close(self) -> None:
        """Kill every member and release the loopback lock."""
        try:
            for m in self.members:
                m.kill()
        finally:
            self._lock.release()

    def logs(self) -> str:
        return "\n".join(f"--- {m.spec.name} ---\n{m.log_tail()}" for m in self.members)

    # -- clients -------------------------------------------------------------------

    def client_cert(self, which: str = "healthcheck-client") -> tuple[Path, Path]:
        """(cert, key) of a client the etcd CA issued: ``healthcheck-client`` or
        ``apiserver-etcd-client``."""
        base = self.client_pki / ("etcd/healthcheck-client" if which == "healthcheck-client"
                                  else "apiserver-etcd-client")
        return base.with_suffix(".crt"), base.with_suffix(".key")

    @property
    def ca_file(self) -> Path:
        return self.client_pki / "etcd" / "ca.crt"

    def endpoints(self, members: Sequence[Member] | None = None) -> str:
        return ",".join(m.endpoint for m in (members if members is not None else self.members))

    def etcdctl(self, *args: str, endpoints: str | None = None,
                cert: tuple[Path, Path] | None = None, ca: Path | None = None,
                timeout: float = 15.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``etcdctl`` (API v3) with a client certificate (default: healthcheck-client)
        and CA (default: the cluster's etcd CA); :meth:`etcdctl_raw` connects without."""
        c = cert or self.client_cert()
        return self.etcdctl_raw(
            *args, endpoints=endpoints or self.endpoints(),
            tls=["--cacert", str(ca or self.ca_file), "--cert", str(c[0]), "--key", str(c[1])],
            timeout=timeout, check=check)

    def etcdctl_raw(self, *args: str, endpoints: str, tls: Sequence[str],
                    timeout: float = 15.0, check: bool = True,
                    command_timeout: str = "5s") -> subprocess.CompletedProcess[str]:
        """Run ``etcdctl`` with exactly the TLS options ``tls``."""
        cmd = [str(self.etcdctl_binary), "--endpoints", endpoints, "--dial-timeout=2s",
               f"--command-timeout={command_timeout}", *tls, *args]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as exc:
            raise EtcdTestError(f"etcdctl timed out: {cmd}\n{self.logs()}") from exc
        if check and out.returncode != 0:
            raise EtcdTestError(
                f"etcdctl failed ({out.returncode}): {' '.join(args)}\n{out.stderr}\n{self.logs()}")
        return out

    def wait_healthy(self, members: Sequence[Member] | None = None, timeout: float = 20.0) -> None:
        """Wait until each of ``members`` (default all) answers a linearizable read."""
        targets = list(members if members is not None else self.members)
        deadline = time.monotonic() + timeout
        pending = targets
        while pending:
            for m in pending:
                if m.proc is not None and m.proc.poll() is not None:
                    raise EtcdTestError(f"{m.spec.name} exited ({m.proc.returncode})\n{self.logs()}")
            pending = [m for m in pending if self.etcdctl(
                "endpoint", "health", endpoints=m.endpoint, check=False, timeout=10).returncode != 0]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise EtcdTestError(
                    f"not healthy after {timeout}s: {[m.spec.name for m in pending]}\n{self.logs()}")
            time.sleep(0.3)

    def member_ids(self) -> dict[str, int]:
        """Member name -> member id, from ``member list``."""
        out = json.loads(self.etcdctl("member", "list", "-w", "json").stdout)
        return {m["name"]: int(m["ID"]) for m in out["members"] if m.get("name")}

    def leader(self, members: Sequence[Member] | None = None) -> int | None:
        """Leader id as seen by ``members`` (default all), or None if they disagree or
        have none."""
        targets = list(members if members is not None else self.members)
        out = self.etcdctl("endpoint", "status", "-w", "json", endpoints=self.endpoints(targets),
                           check=False, timeout=10)
        if out.returncode != 0:
            return None
        leaders = {int(s["Status"].get("leader", 0)) for s in json.loads(out.stdout)}
        return leaders.pop() if len(leaders) == 1 and 0 not in leaders else None

    def wait_leader(self, members: Sequence[Member], timeout: float = 15.0) -> int:
        """Wait until ``members`` agree on a leader that is one of them; its id."""
        ids = self.member_ids()
        wanted = {ids[m.spec.name] for m in members}
        deadline = time.monotonic() + timeout
        while True:
            leader = self.leader(members)
            if leader in wanted:
                assert leader is not None
                return leader
            if time.monotonic() > deadline:
                raise EtcdTestError(f"no leader among {[m.spec.name for m in members]}\n{self.logs()}")
            time.sleep(0.2)

    def get_all(self, prefix: str, endpoints: str | None = None,
                serializable: bool = False) -> dict[str, str]:
        """Every key under ``prefix`` with its value."""
        args = ["get", prefix, "--prefix"]
        if serializable:
            args.append("--consistency=s")
        out = self.etcdctl(*args, endpoints=endpoints).stdout.splitlines()
        return dict(zip(out[0::2], out[1::2], strict=True))


def restore_snapshot(snapshot: Path, *, data_dir: Path, member: ControlPlaneMember,
                     cluster_token: str, args: Sequence[str],
                     etcdutl: Path = ETCDUTL) -> subprocess.CompletedProcess[str]:
    """Restore ``snapshot`` into the empty ``data_dir`` as the single member ``member``
    with ``etcdutl snapshot restore``. ``args`` are the member's rendered flags; the peer
    URL and cluster come from them."""
    flags = dict(a[2:].split("=", 1) for a in args)
    cmd = [str(etcdutl), "snapshot", "restore", str(snapshot), "--data-dir", str(data_dir),
           "--name", member.name, "--initial-cluster", flags["initial-cluster"],
           "--initial-advertise-peer-urls", flags["initial-advertise-peer-urls"],
           "--initial-cluster-token", cluster_token]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env, check=False)
