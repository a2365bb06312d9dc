"""The architecture picture of a render: ``architecture.dot`` and ``architecture.svg`` in the render
directory. Components (the cluster, its network, the API load balancers, every control-plane
member, every node pool, the secret store, the addons, the backups bucket) drawn from the render's
resources, and one edge per flow of :func:`cfcr.flows.model.cluster_flows` (the list
``cfcr flows`` checks), labelled with its ports.

The .dot is written with the ``graphviz`` package; the SVG needs Graphviz's ``dot`` program and is
skipped without it (``cfcr render`` then says so).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import graphviz  # type: ignore[import-untyped]  # no stubs nor py.typed (0.21)

from cfcr.flows import model
from cfcr.review.machines import COUNTERS
from cfcr.review.replace import MEMBER_TYPES

if TYPE_CHECKING:
    from cfcr.config.schema import ClusterSpec

DOT_FILE = "architecture.dot"
SVG_FILE = "architecture.svg"
NETWORKS = {"aws:ec2/vpc:Vpc", "gcp:compute/network:Network", "azure-native:network:VirtualNetwork"}
SUBNETS = {"aws:ec2/subnet:Subnet", "gcp:compute/subnetwork:Subnetwork", "azure-native:network:Subnet"}
NATS = {"aws:ec2/natGateway:NatGateway", "gcp:compute/routerNat:RouterNat", "azure-native:network:NatGateway"}
BUCKETS = {"aws:s3/bucket:Bucket", "gcp:storage/bucket:Bucket", "azure-native:storage:StorageAccount"}
SECRETS = {"aws": ("aws:secretsmanager/secret:Secret", "Secrets Manager"),
           "gcp": ("gcp:secretmanager/secret:Secret", "Secret Manager"),
           "azure": ("azure-native:keyvault:Secret", "Key Vault")}
_MEMBER = re.compile(r"-cp-(\d+)$")


def _clusters_of(node: str) -> set[str]:
    """The picture's clusters a node is drawn in (an edge may not point at a cluster holding its other end)."""
    if node.startswith("member-"):
        return {"cluster_cp", "cluster_nodes"}
    if node.startswith("pool-"):
        return {"cluster_pools", "cluster_nodes"}
    return {"cluster_api"} if node.startswith("lb-") else set()


def _api_load_balancers(cloud: str, rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, bool]]:
    """``(name, public)`` of each load balancer (forwarding rule on GCP) in front of the API."""
    out: list[tuple[str, bool]] = []
    for r in rows:
        i = r.get("inputs") or {}
        if r["type"] == "aws:lb/loadBalancer:LoadBalancer" and "-api" in r["name"]:
            out.append((r["name"], not i.get("internal")))
        elif r["type"] == "gcp:compute/forwardingRule:ForwardingRule" and "-api" in r["name"]:
            out.append((r["name"], i.get("loadBalancingScheme") == "EXTERNAL"))
        elif r["type"] == "azure-native:network:LoadBalancer" and "-api" in r["name"]:
            public = any(f.get("publicIPAddress") for f in i.get("frontendIPConfigurations") or [])
            out.append((r["name"], public))
    return out


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text)


def architecture(spec: ClusterSpec, rows: Sequence[Mapping[str, Any]], user_data: Mapping[str, bytes | str],
                 flows: Sequence[model.Flow] | None = None) -> graphviz.Digraph:
    """The picture's graph; ``flows`` default to the render's own (:func:`cfcr.flows.model.cluster_flows`)."""
    if flows is None:
        from cfcr.flows.check import facts_of

        flows = model.cluster_flows(facts_of(spec, rows, user_data))
    from cfcr.channels import resolve

    cloud = spec.cloud
    version = resolve(spec.kubernetes.version).version
    counts = COUNTERS[cloud][0]([dict(r) for r in rows])
    sizes = {name: c.key.split("/", 1)[1] for c in counts if c.key.startswith("instance/") for name in c.resources}
    g = graphviz.Digraph("architecture", graph_attr={
        "rankdir": "LR", "compound": "true", "fontname": "Helvetica", "fontsize": "11", "newrank": "true",
        "label": f"cfcr {spec.name}: {cloud} {spec.region}, Kubernetes {version}, CNI {spec.cni}; "
                 f"{len(flows)} flows (cfcr flows)", "labelloc": "t"},
        node_attr={"shape": "box", "style": "rounded,filled", "fillcolor": "white", "fontname": "Helvetica",
                   "fontsize": "10"},
        edge_attr={"fontname": "Helvetica", "fontsize": "8"})
    members = sorted((r for r in rows if r["type"] in MEMBER_TYPES and _MEMBER.search(r["name"])),
                     key=lambda r: int(_MEMBER.search(r["name"]).group(1)))  # type: ignore[union-attr]
    lbs = _api_load_balancers(cloud, rows)
    network = next((r["name"] for r in rows if r["type"] in NETWORKS), None)
    subnets = sum(1 for r in rows if r["type"] in SUBNETS)
    nat = next((r["name"] for r in rows if r["type"] in NATS), None)
    outside: dict[str, str] = {}

    with g.subgraph(name="cluster_cluster", graph_attr={"label": f"Cluster {spec.name}", "style": "rounded",
                                                        "bgcolor": "#f7f7f7"}) as c:
        with c.subgraph(name="cluster_network", graph_attr={
                "label": f"network {network or '(existing)'}: {subnets} subnets" + (f", NAT {nat}" if nat else ""),
                "style": "rounded", "bgcolor": "#eef4fb"}) as net:
            with net.subgraph(name="cluster_api", graph_attr={"label": "API load balancers", "style": "rounded",
                                                              "bgcolor": "#fff7e6"}) as api:
                for name, public in lbs:
                    api.node(f"lb-{_safe(name)}", f"{'public' if public else 'internal'} API LB\n{name}")
            with net.subgraph(name="cluster_nodes", graph_attr={"label": "nodes", "style": "rounded"}) as ns:
                with ns.subgraph(name="cluster_cp", graph_attr={
                        "label": f"control plane: {len(members)} member{'s' if len(members) != 1 else ''}, etcd on each", "style": "rounded",
                        "bgcolor": "#e8f5e9"}) as cp:
                    for i, m in enumerate(members):
                        cp.node(f"member-{i}", f"control-plane-{i}\n{m['name']}\n{sizes.get(m['name'], '')}")
                with ns.subgraph(name="cluster_pools", graph_attr={"label": "node pools", "style": "rounded",
                                                                   "bgcolor": "#e3f2fd"}) as pools:
                    for p in spec.node_pools:
                        desired = p.desired_size if p.desired_size is not None else p.min_size
                        size = next((v for k, v in sizes.items() if k.endswith(f"-{p.name}") or f"-{p.name}-z" in k), "")
                        pools.node(f"pool-{_safe(p.name)}", f"pool {p.name}\n{size} x {desired} "
                                   f"({p.min_size}..{p.max_size}){', spot' if p.spot else ''}")
            net.node("network-clients", "hosts inside the network", shape="note")
        secret_type, store = SECRETS[cloud]
        n_secrets = sum(1 for r in rows if r["type"] == secret_type)
        c.node("secret-store", f"secret store\n{store}: {n_secrets} secrets", shape="cylinder")
        addons = sorted({r["type"].rsplit(":", 1)[-1] for r in rows if r["type"].startswith("cfcr:addons:")}
                        - {"ClusterAddons"})
        if addons:
            c.node("addons", "addons\n" + "\n".join(addons), shape="component")
        bucket = next((r["name"] for r in rows if r["type"] in BUCKETS), None)
        if bucket:
            c.node("backups", f"etcd backups\n{bucket}", shape="cylinder")
            if members:
                g.edge("member-0", "backups", ltail="cluster_cp", style="dotted", label="snapshots", id="backups")

    def place(ep: Any) -> tuple[str, str | None]:
        if isinstance(ep, (model.ApiServers,)) or (isinstance(ep, model.NodeSet) and ep.pool is None):
            return "member-0", "cluster_cp"
        if isinstance(ep, model.NodeSet):
            return f"pool-{_safe(ep.pool or '')}", None
        if isinstance(ep, (model.AllNodes, model.NodesRunning)):
            return (f"pool-{_safe(spec.node_pools[0].name)}" if spec.node_pools else "member-0"), "cluster_nodes"
        if isinstance(ep, (model.ApiName, model.PrivateApi, model.PublicApi, model.ApiLoadBalancers)) and lbs:
            want_public = isinstance(ep, model.PublicApi)
            name = next((n for n, pub in lbs if pub == want_public), lbs[0][0])
            return f"lb-{_safe(name)}", "cluster_api" if isinstance(ep, model.ApiLoadBalancers) else None
        if isinstance(ep, model.NetworkClients):
            return "network-clients", None
        if isinstance(ep, model.Internet) and ep.service == model.SECRET_STORE:
            return "secret-store", None
        key = ep.text()
        if key not in outside:
            outside[key] = f"outside-{len(outside)}"
            shape = "ellipse" if isinstance(ep, (model.ExternalClients,)) else "box"
            g.node(outside[key], key if len(key) < 48 else key[:45] + "...", shape=shape, fillcolor="#fafafa")
        return outside[key], None

    among_members: list[str] = []
    for f in flows:
        (tail, tail_cluster), (head, head_cluster) = place(f.source), place(f.destination)
        attrs = {"id": f"flow-{_safe(f.id)}", "tooltip": f"{f.id}: {f.reason}",
                 "label": ", ".join(p.text() for p in f.ports) or "health"}
        if tail == head:  # a flow within one group: drawn between two of its machines
            candidates = [f"member-{i}" for i in range(len(members))]
            if tail_cluster == "cluster_nodes":
                candidates += [f"pool-{_safe(p.name)}" for p in spec.node_pools]
            head = next((n for n in candidates if n != tail), tail)  # one member: a loop on it
        if tail_cluster and tail_cluster not in _clusters_of(head):
            attrs["ltail"] = tail_cluster
        if head_cluster and head_cluster not in _clusters_of(tail):
            attrs["lhead"] = head_cluster
        if f.id.startswith("egress-"):
            attrs.update(style="dashed", color="#777777")
        elif f.health_check or f.id.startswith(("node-health", "service-lb-health")):
            attrs.update(style="dotted", color="#999999")
        g.edge(tail, head, **attrs)
        if tail == "member-0" and head == "member-1":
            among_members.append(attrs["label"])
    if among_members and len(members) > 2:
        # the flows among the members, drawn between member-0 and member-1 above: the rest of the
        # ring once, with every such flow's ports, so each member is seen in them
        label = ", ".join(dict.fromkeys(among_members))
        for i in range(1, len(members)):
            g.edge(f"member-{i}", f"member-{(i + 1) % len(members)}", label=label,
                   tooltip="the flows among the members (as member-0 -> member-1)")
    return g


def write_picture(out_dir: Path, spec: ClusterSpec, rows: Sequence[Mapping[str, Any]],
                  user_data: Mapping[str, bytes | str]) -> list[Path]:
    """Write architecture.dot, and architecture.svg when Graphviz's ``dot`` is installed; the files written."""
    graph = architecture(spec, rows, user_data)
    dot_path = out_dir / DOT_FILE
    dot_path.write_text(graph.source)
    written = [dot_path]
    dot = shutil.which("dot")
    if dot:
        svg = subprocess.run([dot, "-Tsvg"], input=graph.source.encode(), capture_output=True, check=True).stdout
        (out_dir / SVG_FILE).write_bytes(svg)
        written.append(out_dir / SVG_FILE)
    return written
