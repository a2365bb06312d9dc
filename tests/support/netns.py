"""A private network of hosts on one machine: Linux network namespaces on a bridge.

The control-plane harness gives every node of a render its own network namespace with the
very address the render gives it (``10.0.0.10`` for member 0 of the default stack), so
certificates, flags, kubeconfigs and etcd URLs run unchanged: no address or port is
rewritten, and each node has its own loopback (``127.0.0.1:2379``, ``:10257``, ``:10259``).

Layout: one namespace ``<prefix>-net`` holds a bridge; each host namespace is joined to it by
a veth pair and gets its addresses as ``/32`` plus a route to the node network over the
bridge. The load balancer and other network services (the instance metadata service) are
hosts like the others. Names resolve through ``/etc/netns/<namespace>/hosts``, which
``ip netns exec`` mounts over ``/etc/hosts`` for the commands it runs.

Needs root and iproute2. Everything is removed on :meth:`Network.close`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

NETNS_ETC = Path("/etc/netns")


class NetnsError(RuntimeError):
    """A namespace command failed."""


def run(*cmd: str, check: bool = True, input: str | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a command, raising :class:`NetnsError` with its output when it fails."""
    out = subprocess.run(list(cmd), capture_output=True, text=True, input=input, timeout=timeout)
    if check and out.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)} exited {out.returncode}: {out.stderr.strip() or out.stdout.strip()}")
    return out


def available() -> str | None:
    """None when network namespaces can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command (Debian iproute2) is missing"
    probe = f"cfcr-probe-{os.getpid()}"
    out = run("ip", "netns", "add", probe, check=False)
    if out.returncode != 0:
        return f"ip netns add failed: {out.stderr.strip()}"
    run("ip", "netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    """One host of the network: a namespace and its addresses."""

    name: str
    """Short name (``cp-0``, ``worker-0``, ``lb``)."""
    netns: str
    """The network namespace."""
    addresses: list[str]
    """IPv4 addresses on its interface (the first is its primary)."""

    @property
    def address(self) -> str:
        return self.addresses[0]

    def command(self, *cmd: str) -> list[str]:
        """``cmd`` run inside this host's namespace (with its ``/etc/hosts``)."""
        return ["ip", "netns", "exec", self.netns, *cmd]


@dataclass
class Network:
    """Hosts on one bridged network, with a shared ``/etc/hosts``."""

    prefix: str
    """Namespace name prefix, unique per run (``cfcr<pid>``)."""
    cidr: str
    """The node network (routes for it go over the bridge)."""
    hosts: dict[str, Host] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    """DNS name -> address, written to every host's ``/etc/hosts``."""
    _bridge_ns: str = ""

    def __post_init__(self) -> None:
        self._bridge_ns = f"{self.prefix}-net"
        run("ip", "netns", "add", self._bridge_ns)
        self._in_bridge("ip", "link", "set", "lo", "up")
        self._in_bridge("ip", "link", "add", "br0", "type", "bridge")
        self._in_bridge("ip", "link", "set", "br0", "up")

    def _in_bridge(self, *cmd: str) -> None:
        run("ip", "netns", "exec", self._bridge_ns, *cmd)

    def add_host(self, name: str, addresses: Sequence[str], loopback: Sequence[str] = ()) -> Host:
        """A new host with ``addresses`` on its bridged interface and ``loopback`` addresses
        (such as the metadata service's link-local one) on its own loopback."""
        index = len(self.hosts)
        netns = f"{self.prefix}-{name}"
        inside, outside = "eth0", f"v{index}"
        run("ip", "netns", "add", netns)
        # the pair is born inside the host's namespace, its peer moved straight to the bridge's:
        # no interface ever appears in the machine's own namespace
        run("ip", "-n", netns, "link", "add", inside, "type", "veth", "peer", "name", outside,
            "netns", self._bridge_ns)
        self._in_bridge("ip", "link", "set", outside, "master", "br0")
        self._in_bridge("ip", "link", "set", outside, "up")
        ns = ["ip", "netns", "exec", netns]
        run(*ns, "ip", "link", "set", "lo", "up")
        run(*ns, "ip", "link", "set", inside, "up")
        for address in addresses:
            run(*ns, "ip", "addr", "add", f"{address}/32", "dev", inside)
        for address in loopback:
            run(*ns, "ip", "addr", "add", f"{address}/32", "dev", "lo")
        run(*ns, "ip", "route", "add", self.cidr, "dev", inside, "scope", "link", "src", addresses[0])
        host = Host(name, netns, list(addresses))
        self.hosts[name] = host
        self._write_hosts(host)
        return host

    def set_names(self, names: Mapping[str, str]) -> None:
        """DNS: ``names`` (name -> address) in every host's ``/etc/hosts``."""
        self.names.update(names)
        for host in self.hosts.values():
            self._write_hosts(host)

    def hosts_file(self) -> str:
        """The ``/etc/hosts`` text every host sees."""
        lines = ["127.0.0.1 localhost", "::1 localhost"]
        lines += [f"{address} {name}" for name, address in sorted(self.names.items())]
        return "\n".join(lines) + "\n"

    def _write_hosts(self, host: Host) -> None:
        directory = NETNS_ETC / host.netns
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts").write_text(self.hosts_file())

    def close(self) -> None:
        """Remove every namespace (their veths go with them) and their hosts files."""
        for host in self.hosts.values():
            run("ip", "netns", "del", host.netns, check=False)
            shutil.rmtree(NETNS_ETC / host.netns, ignore_errors=True)
        run("ip", "netns", "del", self._bridge_ns, check=False)
        self.hosts.clear()
