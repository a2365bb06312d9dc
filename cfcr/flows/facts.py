"""What a render says about the cluster's nodes, cloud-neutrally: the roles (one user-data per
control-plane member and per pool), the API endpoint in kubeadm's config, each role's taints
and labels, where metrics-server may be scheduled, and the hosts nodes download from.

Everything here is read from the render itself (user-data and the chart rows), so the flow
list follows what the nodes are really given, not a second copy of the node layer's rules.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from cfcr.cni_ports import node_ports
from cfcr.config import ClusterSpec
from cfcr.config.topology import api_endpoint
from cfcr.constants import API_PORT, EXCLUDE_FROM_LOAD_BALANCERS_LABEL
from cfcr.flows.model import Ports

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
"""kubeadm's default for a control-plane node that names no taints."""
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Chart")
_ROLE = re.compile(r"^(control-plane-(?P<index>\d+)|worker-(?P<pool>.+))$")


@dataclass(frozen=True)
class NodeRole:
    """One user-data role: a control-plane member or a pool."""

    role: str
    """``control-plane-<i>`` or ``worker-<pool>``."""
    pool: str | None
    """The pool's name; None for a control-plane member."""
    node_name: str | None
    """The member's etcd member name (None for pools: their nodes are named by the host)."""
    taints: tuple[tuple[str, str, str], ...]
    """(key, value, effect) of every taint the kubelet registers with."""
    labels: Mapping[str, str]
    """Labels the node carries (kubelet ``--node-labels``, kubeadm's control-plane labels, os and arch)."""
    api_endpoint: str | None
    """``host:port`` of the API as this role's kubeadm config names it."""

    @property
    def control_plane(self) -> bool:
        return self.pool is None


@dataclass(frozen=True)
class Placement:
    """Where a workload may be scheduled: its node selector, required node affinity and tolerations."""

    name: str
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    required_terms: tuple[Mapping[str, Any], ...] = ()
    """``nodeSelectorTerms`` of required node affinity (any term may match)."""

    def allows(self, node: NodeRole) -> bool:
        """True if the scheduler may put the workload on ``node``."""
        if any(node.labels.get(k) != v for k, v in self.node_selector.items()):
            return False
        if self.required_terms and not any(_term_matches(t, node.labels) for t in self.required_terms):
            return False
        for key, value, effect in node.taints:
            if effect in ("NoSchedule", "NoExecute") and not any(
                _tolerates(t, key, value, effect) for t in self.tolerations
            ):
                return False
        return True


def _tolerates(toleration: Mapping[str, Any], key: str, value: str, effect: str) -> bool:
    if toleration.get("effect") not in (None, "", effect):
        return False
    operator = toleration.get("operator") or "Equal"
    if not toleration.get("key"):
        return operator == "Exists"
    if toleration.get("key") != key:
        return False
    return operator == "Exists" or str(toleration.get("value") or "") == value


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for expr in term.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), [str(v) for v in expr.get("values") or []]
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


@dataclass(frozen=True)
class PrivateServices:
    """What an air-gapped cluster needs of the cloud's private endpoints (the cloud says which
    services serve each need: ``cfcr.<cloud>.flows.private_services``)."""

    needs: Mapping[str, tuple[str, ...]]
    """A need (:data:`~cfcr.flows.model.NEED_SECRETS`, ``NEED_CLOUD_API``, ``NEED_SESSIONS``) ->
    the services that serve it."""
    assumed: bool = False
    """The network's owner provides the endpoints (AWS: ``cfcr:aws.vpcEndpoints: existing``):
    the check takes them as present, saying so."""
    assumption: str = ""
    """The setting that makes the assumption, for messages."""


@dataclass(frozen=True)
class ClusterFacts:
    """The cloud-neutral facts :func:`cfcr.flows.model.cluster_flows` builds the flow list from."""

    cluster: str
    cloud: str
    roles: tuple[NodeRole, ...]
    api_host: str
    api_port: int
    api_public: bool
    api_allowed_cidrs: tuple[str, ...]
    cni: str
    cni_ports: tuple[tuple[Ports, str], ...]
    """What the CNI, as the addons layer configures it, needs between nodes (port, purpose)."""
    metrics_server: Placement | None
    """metrics-server's placement, if the render deploys it."""
    registry_hosts: tuple[str, ...] = ()
    """Registries the nodes' containerd config names (for messages)."""
    mirror_hosts: tuple[str, ...] = ()
    """Hosts the nodes download binaries from (for messages)."""
    image_hosts: tuple[str, ...] = ()
    """Where containerd really pulls images from: the registries' mirrors, else the registries."""
    download_hosts: tuple[str, ...] = ()
    """Where cloud-init really downloads from: the binaries' and checksums' hosts, the apt archives."""
    private: PrivateServices | None = None
    """An air-gapped cluster's needs of the cloud's private endpoints; None when the network has
    a way to the internet (``networking.airGapped`` off)."""

    @property
    def air_gapped(self) -> bool:
        return self.private is not None

    @property
    def members(self) -> list[NodeRole]:
        return [r for r in self.roles if r.control_plane]

    @property
    def pools(self) -> list[str]:
        return [r.pool for r in self.roles if r.pool is not None]

    def role(self, name: str) -> NodeRole:
        return next(r for r in self.roles if r.role == name)

    def endpoint_of(self, pool: str | None) -> tuple[str, int]:
        """(host, port) of the API as the kubeadm config of the control plane (``pool`` None) or
        of a pool names it; the cluster's when the role names none."""
        for r in self.roles:
            if r.pool == pool and r.api_endpoint:
                host, _, port = r.api_endpoint.rpartition(":")
                if host and port.isdigit():
                    return host, int(port)
        return self.api_host, self.api_port

    def may_run(self, placement: Placement) -> list[NodeRole]:
        return [r for r in self.roles if placement.allows(r)]


# --------------------------------------------------------------------------- reading a render


def plain_user_data(data: bytes | str) -> str:
    """User-data as cloud-init reads it (gunzipped)."""
    raw = data.encode() if isinstance(data, str) else data
    return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()


def _document(user_data: bytes | str) -> dict[str, Any]:
    """The cloud-config document of a user-data (empty when it is not one)."""
    try:
        doc = yaml.safe_load(plain_user_data(user_data))
    except yaml.YAMLError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _files(user_data: bytes | str | Mapping[str, Any]) -> dict[str, str]:
    doc = user_data if isinstance(user_data, Mapping) else _document(user_data)
    return {str(f.get("path")): str(f.get("content") or "") for f in doc.get("write_files") or [] if isinstance(f, dict)}


def _kubeadm_docs(files: Mapping[str, str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for content in files.values():
        if "kubeadm.k8s.io/" not in content:
            continue
        try:
            docs += [d for d in yaml.safe_load_all(content) if isinstance(d, dict)]
        except yaml.YAMLError:
            continue
    return docs


def _env(files: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, content in files.items():
        if not path.endswith(".env"):
            continue
        for line in content.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.startswith("CFCR_"):
                out[key] = value.strip("'\"")
    return out


def node_role(role: str, files: Mapping[str, str]) -> NodeRole:
    """What one role's user-data (its files, by path) says about its nodes."""
    match = _ROLE.match(role)
    if match is None:
        raise ValueError(f"user-data role {role!r}: expected control-plane-<i> or worker-<pool>")
    pool = match.group("pool")
    docs = _kubeadm_docs(files)
    env = _env(files)
    registration: dict[str, Any] = {}
    endpoint: str | None = None
    for doc in docs:
        kind = doc.get("kind")
        if kind in ("InitConfiguration", "JoinConfiguration"):
            registration = doc.get("nodeRegistration") or {}
        if kind == "ClusterConfiguration" and doc.get("controlPlaneEndpoint"):
            endpoint = str(doc["controlPlaneEndpoint"])
        if kind == "JoinConfiguration":
            found = ((doc.get("discovery") or {}).get("bootstrapToken") or {}).get("apiServerEndpoint")
            endpoint = endpoint or (str(found) if found else None)
    taints_raw = registration.get("taints")
    if taints_raw is None and pool is None:
        taints_raw = [CONTROL_PLANE_TAINT]
    taints = tuple((str(t.get("key")), str(t.get("value") or ""), str(t.get("effect"))) for t in taints_raw or [])
    labels: dict[str, str] = {"kubernetes.io/os": "linux"}
    if env.get("CFCR_ARCH"):
        labels["kubernetes.io/arch"] = env["CFCR_ARCH"]
    for arg in registration.get("kubeletExtraArgs") or []:
        if isinstance(arg, dict) and arg.get("name") == "node-labels":
            for pair in str(arg.get("value") or "").split(","):
                key, _, value = pair.partition("=")
                if key:
                    labels[key] = value
    if pool is None:  # kubeadm's mark-control-plane phase
        labels[CONTROL_PLANE_LABEL] = ""
        labels[EXCLUDE_FROM_LOAD_BALANCERS_LABEL] = ""
    # a member is known by its etcd member name (the machines carry it); its Node name is the
    # host name its cloud gives it
    name = env.get("CFCR_MEMBER") or registration.get("name") or env.get("CFCR_NODE_NAME") or None
    return NodeRole(role, pool, str(name) if name else None, taints, labels, endpoint)


def chart_placement(rows: Sequence[Mapping[str, Any]], chart: str) -> Placement | None:
    """The placement of a Helm chart's workload from its values in the render; None if not deployed."""
    for row in rows:
        if row.get("type") not in HELM_TYPES:
            continue
        inputs = row.get("inputs") or {}
        if str(inputs.get("chart") or "").rstrip("/").rsplit("/", 1)[-1] != chart:
            continue
        values = inputs.get("values") or {}
        if not isinstance(values, dict):
            values = {}
        affinity = ((values.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution") or {}
        return Placement(
            name=chart,
            node_selector={str(k): str(v) for k, v in (values.get("nodeSelector") or {}).items()},
            tolerations=tuple(t for t in values.get("tolerations") or [] if isinstance(t, dict)),
            required_terms=tuple(t for t in affinity.get("nodeSelectorTerms") or [] if isinstance(t, dict)),
        )
    return None


def _hosts(files_by_role: Mapping[str, Mapping[str, str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(registries, download hosts) named in the nodes' user-data."""
    registries: set[str] = set()
    mirrors: set[str] = set()
    for files in files_by_role.values():
        for path, content in files.items():
            if path.startswith("/etc/containerd/certs.d/"):
                registries.add(path.split("/")[4])
                mirrors.update(h for h in re.findall(r"https?://([^/\"':]+)", content))
            elif path.endswith("artifacts.list"):
                for line in content.splitlines():
                    fields = line.split("|")
                    if len(fields) > 2 and not line.startswith("#"):
                        host = urlsplit(fields[2]).hostname
                        if host:
                            mirrors.add(host)
            elif path.endswith("containerd/config.toml"):
                registries.update(re.findall(r'sandbox\s*=\s*"([^/"]+)/', content))
    return tuple(sorted(registries)), tuple(sorted(mirrors))


_MIRROR_HOST = re.compile(r'^\s*\[host\."https?://([^/"\':]+)', re.MULTILINE)


def fetch_hosts(docs_by_role: Mapping[str, Mapping[str, Any]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(image hosts, download hosts): where the nodes really fetch from, as their user-data says.
    Images: each registry's mirrors (the ``[host."..."]`` entries of its containerd
    ``hosts.toml``), or the registry itself when it has none (its ``server`` is only the
    fallback when mirrors are named). Downloads: the hosts of the pinned binaries and their
    checksum files (``artifacts.list``) and of cloud-init's apt archives."""
    images: set[str] = set()
    downloads: set[str] = set()
    for doc in docs_by_role.values():
        files = _files(doc)
        named: set[str] = set()
        for path, content in files.items():
            if path.startswith("/etc/containerd/certs.d/"):
                named.add(path.split("/")[4])
                images.update(_MIRROR_HOST.findall(content) or [path.split("/")[4]])
            elif path.endswith("containerd/config.toml"):
                sandbox = set(re.findall(r'sandbox\s*=\s*"([^/"]+)/', content))
                images.update(sandbox - named)
            elif path.endswith("artifacts.list"):
                for line in content.splitlines():
                    fields = line.split("|")
                    if line.startswith("#") or len(fields) < 3:
                        continue
                    urls = [fields[2], *(fields[5:6] if len(fields) > 5 else [])]
                    downloads.update(h for h in (urlsplit(u).hostname for u in urls if u and u != "-") if h)
        apt = doc.get("apt")
        for key in ("primary", "security"):
            for entry in (apt.get(key) if isinstance(apt, Mapping) else None) or []:
                host = urlsplit(str(entry.get("uri") or "")).hostname if isinstance(entry, Mapping) else None
                if host:
                    downloads.add(host)
    return tuple(sorted(images)), tuple(sorted(downloads))


def read_facts(spec: ClusterSpec, rows: Sequence[Mapping[str, Any]], user_data: Mapping[str, bytes | str],
               private: PrivateServices | None = None) -> ClusterFacts:
    """The facts of a render: ``rows`` as in resources.json, ``user_data`` by role; ``private``:
    what an air-gapped cluster needs of the cloud's endpoints (None when it is not air-gapped)."""
    assert spec.name is not None
    docs = {role: _document(data) for role, data in user_data.items()}  # each user-data parsed once
    files = {role: _files(doc) for role, doc in docs.items()}
    roles = tuple(node_role(role, files[role]) for role in sorted(files, key=_order))
    endpoints = [r.api_endpoint for r in roles if r.api_endpoint]
    if not endpoints:
        endpoints = [f"{api_endpoint(spec)}:{API_PORT}"]
    endpoint = endpoints[0]
    host, _, port = endpoint.rpartition(":")
    cni_ports = tuple((Ports.of(p.protocol, p.port), p.purpose) for p in node_ports(spec.cni))
    registries, mirrors = _hosts(files)
    image_hosts, download_hosts = fetch_hosts(docs)
    return ClusterFacts(
        cluster=spec.name,
        cloud=spec.cloud,
        roles=roles,
        api_host=host or endpoint,
        api_port=int(port) if port.isdigit() else API_PORT,
        api_public=spec.networking.api_public,
        api_allowed_cidrs=tuple(dict.fromkeys(str(c) for c in spec.networking.api_allowed_cidrs)),
        cni=spec.cni,
        cni_ports=cni_ports,
        metrics_server=chart_placement(rows, "metrics-server"),
        registry_hosts=registries,
        mirror_hosts=mirrors,
        image_hosts=image_hosts,
        download_hosts=download_hosts,
        private=private,
    )


def _order(role: str) -> tuple[int, int, str]:
    match = _ROLE.match(role)
    if match and match.group("index") is not None:
        return (0, int(match.group("index")), role)
    return (1, 0, role)
