"""etcd on the control plane: the flags of each static member and its static Pod.

cfcr runs etcd itself (kubeadm sees it as *external* etcd) as a static Pod on every
control-plane node. The manifest rendered here names every member in ``--initial-cluster``
with ``--initial-cluster-state=new``: what a new cluster's members boot with, together,
without discovery and without one node waiting on another.

Security: TLS with client-certificate authentication on the client port (2379) and
the peer port (2380), certificates only from the etcd CA (auto-TLS off), TLS 1.2 or
newer with AEAD cipher suites, metrics and health over plain HTTP on loopback only
(``127.0.0.1:2381``), where the kubelet's probes reach them.

Day 2: a member's data lives on its own persistent disk, mounted by the boot script at
:data:`~cfcr.node.paths.ETCD_DATA_DIR`; etcd reads ``--initial-cluster*`` only when it
bootstraps an *empty* data directory. What a member with a blank disk does in a cluster that
exists (removed and added again, added when the control plane grew) is decided at boot by
``cfcr/node/scripts/member.sh``, which then rewrites those two flags of this manifest from
etcd's own answer (docs/control-plane.md).

Pure functions, no Pulumi.
"""

from __future__ import annotations

import ipaddress
import posixpath
from collections.abc import Sequence
from typing import Any

from cfcr.mirrors import Mirrors
from cfcr.channels import Release
from cfcr.config import ClusterSpec
from cfcr.constants import ETCD_CLIENT_PORT, ETCD_PEER_PORT
from cfcr.node.paths import ETCD_DATA_DIR, ETCD_PKI_DIR
from cfcr.config.topology import ControlPlaneMember

__all__ = [
    "CLIENT_PORT",
    "ETCD_CIPHER_SUITES",
    "METRICS_PORT",
    "PEER_PORT",
    "PRIORITY_SYSTEM_NODE_CRITICAL",
    "etcd_args",
    "etcd_flag_map",
    "etcd_probe_paths",
    "etcd_quota_bytes",
    "etcd_static_pod",
    "initial_cluster",
    "member_client_url",
    "member_peer_url",
]

CLIENT_PORT = ETCD_CLIENT_PORT
"""etcd client port (TLS, client-certificate auth)."""
PEER_PORT = ETCD_PEER_PORT
"""etcd peer port (TLS, client-certificate auth)."""
METRICS_PORT = 2381
"""Plain-HTTP metrics and health endpoints, bound to loopback only."""

PRIORITY_SYSTEM_NODE_CRITICAL = 2000001000
"""Value of the built-in ``system-node-critical`` PriorityClass. Static Pods skip
admission, so the kubelet only knows the priority (for eviction ordering) if the
manifest carries it; the mirror Pod passes the Priority plugin since it matches."""

ETCD_CIPHER_SUITES: tuple[str, ...] = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
)
"""TLS 1.2 suites etcd may negotiate: forward-secret ECDHE with AEAD ciphers only, for
ECDSA and RSA certificates alike (``pki.keyAlgorithm`` may be either). TLS 1.3 suites
are not configurable in Go and are always strong."""

_GIB = 1024**3
_MAX_QUOTA_BYTES = 8 * _GIB
"""etcd's documented ceiling for a sane backend quota."""
_QUOTA_SHARE_OF_DISK = 0.4
"""The db may take 40% of the disk: a defragmentation writes a full copy beside it,
and WAL files and snapshots need the rest."""

_PKI = ETCD_PKI_DIR


def _url_host(address: str) -> str:
    """``address`` as a URL host: IPv6 literals in brackets."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


def member_peer_url(member: ControlPlaneMember) -> str:
    """``https://<address>:2380``."""
    return f"https://{_url_host(member.address)}:{PEER_PORT}"


def member_client_url(member: ControlPlaneMember) -> str:
    """``https://<address>:2379``."""
    return f"https://{_url_host(member.address)}:{CLIENT_PORT}"


def initial_cluster(members: Sequence[ControlPlaneMember]) -> str:
    """``name=https://addr:2380,...`` for every member, in the given (stable) order."""
    return ",".join(f"{m.name}={member_peer_url(m)}" for m in members)


def _check_members(members: Sequence[ControlPlaneMember], member_index: int) -> None:
    if not members:
        raise ValueError("etcd needs at least one member")
    if not 0 <= member_index < len(members):
        raise ValueError(f"member_index {member_index} is out of range for {len(members)} members")
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ValueError(f"etcd member names must be unique: {names}")
    addresses = [m.address for m in members]
    if len(set(addresses)) != len(addresses):
        raise ValueError(f"etcd member addresses must be unique: {addresses}")
    for m in members:
        if not m.name or not m.address:
            raise ValueError(f"etcd member needs a name and an address: {m!r}")
        if "," in m.name or "=" in m.name:
            raise ValueError(f"etcd member name {m.name!r} may not contain ',' or '='")


def etcd_quota_bytes(spec: ClusterSpec) -> int:
    """Backend quota: 40% of the member's etcd disk, at most 8 GiB (20 GiB disk -> 8 GiB)."""
    disk = spec.control_plane.etcd_disk_gb * _GIB
    return min(_MAX_QUOTA_BYTES, int(disk * _QUOTA_SHARE_OF_DISK))


def _etcd_minor(release: Release | None) -> tuple[int, int]:
    if release is None:
        return (3, 6)
    major, minor, *_ = (int(p) for p in release.etcd_version.split("."))
    if (major, minor) < (3, 5):
        raise ValueError(f"etcd {release.etcd_version} is too old; cfcr supports etcd 3.5 and newer")
    return (major, minor)


def etcd_flag_map(
    spec: ClusterSpec,
    members: Sequence[ControlPlaneMember],
    member_index: int,
    etcd_version: tuple[int, int] = (3, 6),
) -> dict[str, str]:
    """The flags of member ``member_index`` as an ordered ``{flag: value}`` (no dashes).

    cfcr's defaults come first in a fixed order; ``spec.components.etcd.extra_args``
    then override a default in place (the user wins) or are appended in the user's
    order. Each flag appears exactly once.

    ``etcd_version`` (major, minor) picks flag names: etcd 3.6 replaced the
    ``--experimental-*`` corruption-check and watch-progress flags by feature gates and
    plain flags, which 3.5 does not know.
    """
    _check_members(members, member_index)
    if not spec.name:
        raise ValueError("the cluster spec has no name (load it with cfcr.config.load_spec)")
    me = members[member_index]
    client_url = member_client_url(me)
    peer_url = member_peer_url(me)
    flags: dict[str, str] = {
        "name": me.name,
        "data-dir": ETCD_DATA_DIR,
        # Clients on this node use loopback; other nodes use the member's address. Only
        # the address is advertised: a loopback URL in the member list would send a
        # client that syncs endpoints to whichever member runs on *its* host.
        "listen-client-urls": f"https://127.0.0.1:{CLIENT_PORT},{client_url}",
        "advertise-client-urls": client_url,
        "listen-peer-urls": peer_url,
        "initial-advertise-peer-urls": peer_url,
        "initial-cluster": initial_cluster(members),
        # Read only when the data dir is empty; a member with data rejoins as itself. A blank
        # member of a running cluster gets ``existing`` from member.sh at boot.
        "initial-cluster-state": "new",
        "initial-cluster-token": spec.name,
        "client-cert-auth": "true",
        "cert-file": f"{_PKI}/server.crt",
        "key-file": f"{_PKI}/server.key",
        "trusted-ca-file": f"{_PKI}/ca.crt",
        "peer-client-cert-auth": "true",
        "peer-cert-file": f"{_PKI}/peer.crt",
        "peer-key-file": f"{_PKI}/peer.key",
        "peer-trusted-ca-file": f"{_PKI}/ca.crt",
        "auto-tls": "false",
        "peer-auto-tls": "false",
        "tls-min-version": "TLS1.2",
        "cipher-suites": ",".join(ETCD_CIPHER_SUITES),
        "listen-metrics-urls": f"http://127.0.0.1:{METRICS_PORT}",
        "snapshot-count": "10000",
        "quota-backend-bytes": str(etcd_quota_bytes(spec)),
        "pre-vote": "true",
    }
    if etcd_version >= (3, 6):
        flags["feature-gates"] = "InitialCorruptCheck=true,CompactHashCheck=true"
        flags["watch-progress-notify-interval"] = "5s"
    else:
        flags["experimental-initial-corrupt-check"] = "true"
        flags["experimental-compact-hash-check-enabled"] = "true"
        flags["experimental-watch-progress-notify-interval"] = "5s"
    for flag, value in spec.components.etcd.extra_args.items():
        flags[flag] = value  # dict assignment: replaces in place, or appends
    return flags


def etcd_args(
    spec: ClusterSpec,
    members: Sequence[ControlPlaneMember],
    member_index: int,
    release: Release | None = None,
) -> list[str]:
    """``--flag=value`` arguments of etcd member ``member_index`` (see :func:`etcd_flag_map`).

    ``release`` picks the flag dialect of the channel's etcd; without it, etcd 3.6.
    """
    flags = etcd_flag_map(spec, members, member_index, _etcd_minor(release))
    return [f"--{flag}={value}" for flag, value in flags.items()]


def etcd_probe_paths(release: Release) -> tuple[str, str]:
    """(liveness path, readiness/startup path) on the metrics port for the channel's etcd.

    etcd 3.6 serves ``/livez`` and ``/readyz``; 3.5 only ``/health``, asked to ignore
    the NOSPACE alarm (a full db is not cured by a restart) and to answer from the
    local member (serializable) so one slow peer does not restart everyone.
    """
    if _etcd_minor(release) >= (3, 6):
        return "/livez", "/readyz"
    health = "/health?exclude=NOSPACE&serializable=true"
    return health, health


def _probe(path: str, failure_threshold: int) -> dict[str, Any]:
    return {
        "httpGet": {"host": "127.0.0.1", "port": METRICS_PORT, "path": path, "scheme": "HTTP"},
        "initialDelaySeconds": 10,
        "periodSeconds": 10,
        "timeoutSeconds": 15,
        "failureThreshold": failure_threshold,
    }


def etcd_static_pod(
    spec: ClusterSpec,
    release: Release,
    members: list[ControlPlaneMember],
    member_index: int,
) -> dict[str, Any]:
    """The etcd static Pod of member ``member_index`` (for ``MANIFESTS_DIR/etcd.yaml``).

    Host network; ``system-node-critical``; the channel's etcd image; probes on the
    loopback metrics port (``/livez`` + ``/readyz`` for etcd 3.6, ``/health`` for 3.5);
    hostPath mounts of the data dir (read-write; the boot script mounts the member's
    disk there first) and of the etcd certificates (read-only); resource requests and
    no limits (an OOM-killed etcd costs quorum). The container runs without any Linux
    capability, without privilege escalation, on a read-only root filesystem, with the
    runtime's default seccomp profile. It keeps UID 0 (as kubeadm's etcd does) so that
    the root-owned data disk and 0600 keys stay readable with all capabilities dropped.
    """
    flags = etcd_flag_map(spec, members, member_index, _etcd_minor(release))
    live, ready = etcd_probe_paths(release)
    data_dir = flags["data-dir"]

    mounts: list[dict[str, Any]] = [
        {"name": "etcd-data", "mountPath": data_dir},
        {"name": "etcd-certs", "mountPath": _PKI, "readOnly": True},
    ]
    volumes: list[dict[str, Any]] = [
        # The default dir is the boot script's mount point: it must exist, never be created
        # on the root disk. A user-chosen dir (e.g. below the mount) may be created.
        {"name": "etcd-data", "hostPath": {
            "path": data_dir, "type": "Directory" if data_dir == ETCD_DATA_DIR else "DirectoryOrCreate"}},
        {"name": "etcd-certs", "hostPath": {"path": _PKI, "type": "Directory"}},
    ]
    wal_dir = flags.get("wal-dir")
    if wal_dir and not posixpath.normpath(wal_dir).startswith(posixpath.normpath(data_dir) + "/"):
        mounts.append({"name": "etcd-wal", "mountPath": wal_dir})
        volumes.append({"name": "etcd-wal", "hostPath": {"path": wal_dir, "type": "DirectoryOrCreate"}})

    me = members[member_index]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "etcd",
            "namespace": "kube-system",
            "labels": {"component": "etcd", "tier": "control-plane"},
            "annotations": {
                "kubeadm.kubernetes.io/etcd.advertise-client-urls": flags["advertise-client-urls"],
                "cfcr.io/etcd-member": me.name,
            },
        },
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "priority": PRIORITY_SYSTEM_NODE_CRITICAL,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "etcd",
                    "image": Mirrors.of(spec).image(release.etcd_image),
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["etcd", *(f"--{k}={v}" for k, v in flags.items())],
                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                    "livenessProbe": _probe(live, 8),
                    "readinessProbe": _probe(ready, 3),
                    "startupProbe": _probe(ready, 24),
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "privileged": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "volumeMounts": mounts,
                }
            ],
            "volumes": volumes,
        },
    }
