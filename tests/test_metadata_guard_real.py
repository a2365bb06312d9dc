"""The metadata guard (cfcr/node/metadata_guard.py) for real, in network namespaces, laid out
as on GCE: a 'gce' namespace stands for the VPC's side, where the metadata server answers at
``169.254.169.254`` (and another service at ``192.0.2.20``), both reached through the node's
gateway, so not local addresses of the node; a 'node' namespace with its NIC (``ens4``) routed
to it; a 'pod' namespace routed through the node as a CNI routes its pods (a veth pair, the
pod's default route via the node). The node's ``filter FORWARD`` accepts everything first, as
Calico's rules do ahead of anything appended.

The node runs the guard script exactly as GCP's user-data renders it. Before it, the pod reaches
the metadata server (so the drill can fail); after it the pod does not, while the node itself
(and so any host-network pod, which shares its namespace) still does, and the pod's other
forwarded traffic still passes.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cfcr.gcp.node_hook import GcpNodeHook
from cfcr.node.metadata_guard import GUARD_CHAIN, GUARD_SCRIPT, GUARD_SERVICE, guard_files
from tests.support.netns import available, run
from tests.support.tools import needs

reason = available()
if reason is not None:
    pytest.skip(reason, allow_module_level=True)

METADATA = "169.254.169.254"
OUTSIDE = "192.0.2.20"


@dataclass
class Drill:
    node: str
    pod: str
    gce: str
    servers: list[subprocess.Popen[bytes]]

    def get(self, netns: str, address: str) -> str | None:
        """The body of ``http://address/`` from ``netns``, or None when nothing answers in 3 s."""
        out = run("ip", "netns", "exec", netns, "curl", "-sS", "--max-time", "3", f"http://{address}/",
                  check=False, timeout=15)
        return out.stdout if out.returncode == 0 else None


def _serve(netns: str, address: str, root: Path, body: str, port: int = 80) -> subprocess.Popen[bytes]:
    root.mkdir()
    (root / "index.html").write_text(body)
    server = subprocess.Popen(["ip", "netns", "exec", netns, "python3", "-m", "http.server", str(port), "--bind", address,
                               "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        if run("ip", "netns", "exec", netns, "curl", "-sS", "--max-time", "1", f"http://{address}:{port}/",
               check=False).returncode == 0:
            return server
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"no HTTP server on {address} in {netns}")


@pytest.fixture
def drill(tmp_path: Path) -> Iterator[Drill]:
    prefix = f"cfcrmg{os.getpid()}"
    node, pod, gce = f"{prefix}-node", f"{prefix}-pod", f"{prefix}-gce"
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for ns in (node, pod, gce):
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        # the VPC side: the metadata server and another service, behind the node's gateway 10.0.0.1
        run("ip", "-n", gce, "link", "add", "eth0", "type", "veth", "peer", "name", "ens4", "netns", node)
        run("ip", "-n", gce, "addr", "add", "10.0.0.1/24", "dev", "eth0")
        run("ip", "-n", gce, "link", "set", "eth0", "up")
        for address in (METADATA, OUTSIDE):
            run("ip", "-n", gce, "addr", "add", f"{address}/32", "dev", "lo")
        run("ip", "-n", gce, "route", "add", "10.244.0.0/16", "via", "10.0.0.10")
        # the node: its NIC, forwarding on, a Calico-like ACCEPT first in filter FORWARD
        run("ip", "-n", node, "addr", "add", "10.0.0.10/24", "dev", "ens4")
        run("ip", "-n", node, "link", "set", "ens4", "up")
        run("ip", "-n", node, "route", "add", "default", "via", "10.0.0.1")
        run("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        run("ip", "netns", "exec", node, "iptables", "-w", "-I", "FORWARD", "-j", "ACCEPT")
        # the pod: a veth to the node, its default route through it
        run("ip", "-n", pod, "link", "add", "eth0", "type", "veth", "peer", "name", "cali0", "netns", node)
        run("ip", "-n", pod, "addr", "add", "10.244.1.5/24", "dev", "eth0")
        run("ip", "-n", pod, "link", "set", "eth0", "up")
        run("ip", "-n", pod, "route", "add", "default", "via", "10.244.1.1")
        run("ip", "-n", node, "addr", "add", "10.244.1.1/24", "dev", "cali0")
        run("ip", "-n", node, "link", "set", "cali0", "up")
        servers.append(_serve(gce, METADATA, tmp_path / "metadata", "metadata"))
        servers.append(_serve(gce, OUTSIDE, tmp_path / "outside", "outside"))
        # the network resolver shares the metadata address on GCE: a TCP listener on port 53 stands for it
        servers.append(_serve(gce, METADATA, tmp_path / "dns", "dns", port=53))
        yield Drill(node, pod, gce, servers)
    finally:
        for server in servers:
            server.kill()
            server.wait()
        for ns in (node, pod, gce):
            run("ip", "netns", "del", ns, check=False)


@needs("ip", "iptables", "curl")
def test_pods_lose_the_metadata_server_the_node_keeps_it(drill: Drill, tmp_path: Path) -> None:
    files = guard_files(GcpNodeHook(project="p"))
    script, mode = files[GUARD_SCRIPT]
    assert mode == "0700"
    # before the guard: the pod reaches the metadata server through the node (the drill can fail)
    assert drill.get(drill.pod, METADATA) == "metadata"
    assert drill.get(drill.pod, OUTSIDE) == "outside"
    (tmp_path / "guard.sh").write_text(script)
    for _ in range(2):  # idempotent: a second run (every boot) adds nothing
        run("ip", "netns", "exec", drill.node, "bash", str(tmp_path / "guard.sh"))
    rules = run("ip", "netns", "exec", drill.node, "iptables", "-w", "-t", "mangle", "-S", "FORWARD").stdout
    assert rules.count(f"-d {METADATA}/32") == 1, rules
    assert rules.splitlines()[1].startswith(f"-A FORWARD -d {METADATA}/32"), "first in mangle FORWARD"
    assert drill.get(drill.pod, METADATA) is None, "a pod reaches the metadata server"
    assert drill.get(drill.node, METADATA) == "metadata", "the node (and host-network pods) keep it"
    assert drill.get(drill.pod, OUTSIDE) == "outside", "other forwarded traffic passes"
    assert drill.get(drill.pod, f"{METADATA}:53") == "dns", "the resolver's port stays open to pods (CoreDNS)"
    chain = run("ip", "netns", "exec", drill.node, "iptables", "-w", "-t", "mangle", "-S", GUARD_CHAIN).stdout
    assert [line.split(" -m comment")[0] for line in chain.splitlines()[1:]] == [
        f"-A {GUARD_CHAIN} -p udp -m udp --dport 53", f"-A {GUARD_CHAIN} -p tcp -m tcp --dport 53",
        f"-A {GUARD_CHAIN}"], chain
    local = run("ip", "-n", drill.node, "route", "get", METADATA).stdout
    assert "via 10.0.0.1 dev ens4" in local, f"the metadata server is not the node's own address: {local}"


def test_the_guard_unit_comes_before_containerd_and_the_kubelet() -> None:
    files = guard_files(GcpNodeHook(project="p"))
    unit = files[f"/etc/systemd/system/{GUARD_SERVICE}"][0]
    assert "Before=containerd.service kubelet.service" in unit and "RemainAfterExit=yes" in unit
    assert f"ExecStart={GUARD_SCRIPT}" in unit
    for guarded in ("containerd.service", "kubelet.service"):
        dropin = files[f"/etc/systemd/system/{guarded}.d/10-cfcr-metadata-guard.conf"][0]
        assert f"Requires={GUARD_SERVICE}" in dropin and f"After={GUARD_SERVICE}" in dropin
    assert guard_files(object()) == {}, "a hook without MetadataGuard gets nothing"
