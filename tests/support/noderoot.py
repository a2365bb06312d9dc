"""A node's root file system, built from its rendered user-data, and how to run in it.

A :class:`NodeRoot` is a directory that stands for a VM's ``/``: every ``write_files`` entry of
the role's ``#cloud-config`` is written into it with its mode, as cloud-init writes it, and
the programs the node would install (kubeadm, kubelet's siblings, etcd, the cloud CLI) are
placed where the boot script puts them (``/usr/local/bin``). Commands run there with
:meth:`NodeRoot.command`: inside the node's network namespace, in a private mount namespace
and UTS namespace (its own host name), chrooted into the root, with the machine's ``/usr``,
``/etc/ssl``, ``/proc``, ``/dev`` and ``/sys`` mounted in read-only or as they are.

So the node's own scripts (``lib.sh``, ``bootstrap.sh``), kubeadm and the control-plane
components run with the exact absolute paths the render gives them: no path is rewritten.
The mounts live in the command's own mount namespace and vanish with it.

A node's cloud calls go to the harness's AWS stand-in (:mod:`tests.support.awsapi`), which
answers as the node's current instance profile may be answered: every command runs with the
root's :attr:`NodeRoot.env` (``AWS_ENDPOINT_URL``, the SDKs' variable the node hook honours).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.netns import Host
from tests.support.validators import load_cloud_config as cloud_config

HARNESS_DIR = "/var/lib/cfcr-harness"
"""Where the harness keeps its own files inside a node root (never a path cfcr uses)."""

ENTER_SCRIPT = textwrap.dedent("""\
    #!/bin/bash
    # enter ROOT HOSTNAME [SRC:DST ...] -- CMD ARGS...
    # Runs CMD chrooted into ROOT with the host's read-only /usr, /etc/ssl, and /proc, /dev,
    # /sys; each SRC:DST binds a host path (or a path inside ROOT when SRC starts with @)
    # at DST inside ROOT, as a kubelet mounts a hostPath volume. Must run in its own mount
    # and UTS namespaces (unshare --mount --uts); nothing here outlives the command.
    set -euo pipefail
    root=$1 name=$2
    shift 2
    mount --make-rprivate /
    bind_ro() { # SRC DST
      [ -e "$1" ] || return 0
      if [ -d "$1" ]; then mkdir -p "$2"; else mkdir -p "$(dirname "$2")"; [ -e "$2" ] || : >"$2"; fi
      mount --rbind "$1" "$2"
      mount -o remount,bind,ro "$2" 2>/dev/null || true
    }
    for d in usr/bin usr/sbin usr/lib usr/lib64 usr/libexec usr/share usr/include etc/ssl etc/ca-certificates etc/alternatives; do
      bind_ro "/$d" "$root/$d"
    done
    for d in bin sbin lib lib64; do
      if [ -L "/$d" ]; then [ -e "$root/$d" ] || ln -s "$(readlink "/$d")" "$root/$d"; else bind_ro "/$d" "$root/$d"; fi
    done
    mkdir -p "$root/proc" "$root/dev" "$root/sys" "$root/tmp" "$root/run"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --rbind /sys "$root/sys"
    while [ "$1" != "--" ]; do
      src=${1%%:*} dst=${1#*:}
      case "$src" in @*) src="$root${src#@}" ;; esac
      if [ -d "$src" ]; then mkdir -p "$root$dst"; else mkdir -p "$(dirname "$root$dst")"; [ -e "$root$dst" ] || : >"$root$dst"; fi
      mount --bind "$src" "$root$dst"
      shift
    done
    shift
    hostname "$name"
    export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
    exec chroot "$root" "$@"
""")


@dataclass
class NodeRoot:
    """A node's ``/`` on this machine; see the module docstring."""

    path: Path
    """The directory standing for ``/``."""
    host: Host
    """The node's network host (namespace and addresses)."""
    hostname: str
    """The host name the cloud gives the VM."""
    enter: Path
    """The enter script (outside the root)."""
    binaries: dict[str, Path] = field(default_factory=dict)
    """Program name -> host path, bound at ``/usr/local/bin/<name>`` in every command."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables of every :meth:`command` (the cloud's endpoints)."""

    @classmethod
    def create(cls, path: Path, host: Host, hostname: str, user_data: bytes, binaries: Mapping[str, Path],
               hosts_file: str) -> NodeRoot:
        """Write the role's files as cloud-init would, and the harness's own few."""
        path.mkdir(parents=True, exist_ok=True)
        enter = path.parent / "enter.sh"
        if not enter.exists():
            enter.write_text(ENTER_SCRIPT)
            enter.chmod(0o755)
        root = cls(path, host, hostname, enter, dict(binaries))
        for entry in cloud_config(user_data).get("write_files", []):
            root.write(entry["path"], entry.get("content", ""), int(str(entry.get("permissions", "0644")), 8))
        for name in ("passwd", "group", "nsswitch.conf"):
            if Path("/etc", name).exists():
                root.write(f"/etc/{name}", Path("/etc", name).read_text(), 0o644)
        root.write("/etc/hosts", hosts_file, 0o644)
        root.write("/etc/hostname", hostname + "\n", 0o644)
        for d in ("/usr/local/bin", "/usr/local/sbin", "/var/lib", "/var/log", "/var/cache", "/run", "/tmp", "/root"):
            (path / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (path / "tmp").chmod(0o1777)
        return root

    def file(self, node_path: str) -> Path:
        """The host path of ``node_path`` inside this root."""
        assert node_path.startswith("/"), node_path
        return self.path / node_path.lstrip("/")

    def write(self, node_path: str, content: str | bytes, mode: int = 0o644) -> Path:
        """Write ``content`` at ``node_path`` with ``mode`` (parents 0755, as cloud-init does)."""
        target = self.file(node_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        target.write_bytes(data)
        target.chmod(mode)
        return target

    def read(self, node_path: str) -> str:
        return self.file(node_path).read_text()

    def exists(self, node_path: str) -> bool:
        return self.file(node_path).exists()

    def enter_prefix(self) -> list[str]:
        """The command prefix that enters this node, to which bind mounts (``SRC:DST``), ``--``
        and the command are appended (the kubelet stand-in starts static pods with it)."""
        mounts = [f"{src}:/usr/local/bin/{name}" for name, src in sorted(self.binaries.items())]
        return self.host.command("unshare", "--mount", "--uts", "--propagation", "private",
                                 str(self.enter), str(self.path), self.hostname, *mounts)

    def command(self, *cmd: str, binds: Sequence[tuple[str, str]] = ()) -> list[str]:
        """``cmd`` as this node runs it: its namespace, its host name, chrooted in its root.
        ``binds`` are ``(source, destination)`` pairs; a source starting with ``@`` is a path
        inside this root (a static pod's hostPath volume)."""
        env = [f"{k}={v}" for k, v in sorted(self.env.items())]
        return [*self.enter_prefix(), *(f"{src}:{dst}" for src, dst in binds), "--",
                *(["/usr/bin/env", *env] if env else []), *cmd]
