"""Host settings every node needs: kernel modules, sysctls, swap off, CIS kernel defaults.

The kubelet runs with ``protectKernelDefaults: true``: it refuses to start unless the
kernel tunables it cares about already hold the values it expects, so they are set here
(and persist in ``/etc/sysctl.d``) before the kubelet ever starts.
"""

from __future__ import annotations

MODULES_LOAD_PATH = "/etc/modules-load.d/cfcr.conf"
SYSCTL_PATH = "/etc/sysctl.d/90-cfcr.conf"

KERNEL_MODULES: tuple[str, ...] = ("overlay", "br_netfilter")
"""Loaded at boot and now: overlayfs for containerd, bridge netfilter for Service traffic."""

NETWORK_SYSCTLS: dict[str, str] = {
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
}
"""Routing and bridged traffic through iptables (kube-proxy, CNIs)."""

KUBELET_PROTECTED_SYSCTLS: dict[str, str] = {
    "vm.overcommit_memory": "1",
    "vm.panic_on_oom": "0",
    "kernel.panic": "10",
    "kernel.panic_on_oops": "1",
    "kernel.keys.root_maxkeys": "1000000",
    "kernel.keys.root_maxbytes": "25000000",
}
"""The values the kubelet checks when ``protectKernelDefaults`` is true."""

HARDENING_SYSCTLS: dict[str, str] = {
    "fs.inotify.max_user_instances": "8192",
    "fs.inotify.max_user_watches": "524288",
    "kernel.dmesg_restrict": "1",
    "kernel.kptr_restrict": "2",
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.default.accept_redirects": "0",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.all.accept_source_route": "0",
    "net.ipv4.conf.all.log_martians": "1",
}
"""Generic host hardening plus inotify headroom for many pods."""


def modules_load_conf() -> str:
    """``/etc/modules-load.d/cfcr.conf``."""
    return "".join(f"{m}\n" for m in KERNEL_MODULES)


def sysctl_conf() -> str:
    """``/etc/sysctl.d/90-cfcr.conf``."""
    lines = ["# cfcr: Kubernetes networking, kubelet protectKernelDefaults, hardening"]
    for table in (NETWORK_SYSCTLS, KUBELET_PROTECTED_SYSCTLS, HARDENING_SYSCTLS):
        lines += [f"{k} = {v}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def host_files() -> dict[str, tuple[str, str]]:
    """path -> (content, mode) of the host configuration files."""
    return {
        MODULES_LOAD_PATH: (modules_load_conf(), "0644"),
        SYSCTL_PATH: (sysctl_conf(), "0644"),
    }
