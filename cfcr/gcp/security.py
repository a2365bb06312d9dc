"""Firewall, least privilege: ingress rules that name **service accounts**, never network
tags (any user allowed to edit an instance may change its tags; a VM's service account takes
``iam.serviceAccounts.actAs`` to change). GCP denies all other ingress and allows all egress
(its implied rules): nodes pull images and packages and call Google's APIs.

| port | protocol | to | from |
|---|---|---|---|
| 6443 | tcp | control plane | ``apiAllowedCidrs`` (public API: the passthrough load balancer keeps client addresses) |
| 6443 | tcp | control plane | Google's health checkers, the proxy-only subnet (the internal API load balancer's proxies) |
| 6443 | tcp | control plane | control plane, workers (the ``kubernetes`` Service) |
| 2379-2380 | tcp | control plane | control plane (etcd client and peer) |
| 10250 | tcp | every node | control plane (API server), the pools metrics-server may run on |
| 10256 | tcp | workers | Google's health checkers (the pools' autohealing check: kube-proxy's ``/livez``; 10250 when Cilium replaces kube-proxy) |
| CNI ports | per CNI | every node | every node |

No port 22 anywhere. The flow check (``cfcr flows``, :mod:`cfcr.gcp.flows`) proves every needed
flow gets through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_gcp import compute

from cfcr.cni_ports import node_ports
from cfcr.config import ClusterSpec
from cfcr.constants import API_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT, KUBELET_PORT
from cfcr.gcp.names import resource_name

HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
"""Where Google's health checkers and proxy load balancers' front ends connect from (Cloud Load
Balancing docs, "Health checks overview": probe IP ranges)."""
PASSTHROUGH_HEALTH_CHECK_RANGES = ("35.191.0.0/16", "209.85.152.0/22", "209.85.204.0/22")
"""Where health checks of an external passthrough network load balancer come from (same page)."""
KUBE_PROXY_HEALTH_PORT = 10256
"""kube-proxy's health port (``/livez``, ``/healthz``) (cfcr.addons.kube_proxy binds it on every address)."""
MAX_SERVICE_ACCOUNTS = 10
"""Most service accounts one firewall rule may name as sources or targets (VPC quotas)."""


def metrics_server_pools(spec: ClusterSpec) -> list[str]:
    """The pools metrics-server may run on: with it enabled, those without a NoSchedule or
    NoExecute taint (it tolerates none); its scrapes of every kubelet leave from there."""
    if not spec.addons.metrics_server:
        return []
    return [p.name for p in spec.node_pools
            if not any(t.effect in ("NoSchedule", "NoExecute") for t in p.taints)]


def node_health_port(spec: ClusterSpec) -> tuple[str, int, str | None]:
    """The workers' autohealing check: (protocol, port, path). kube-proxy's ``/livez`` says the
    node's Service routing runs (not ``/healthz``, which fails on purpose while a node is being
    drained or deleted, KEP-3836: autohealing would recreate a node cluster-autoscaler is
    draining); with Cilium's kube-proxy replacement there is no kube-proxy, so a TCP check of
    the kubelet's port says the kubelet runs."""
    if spec.cni == "cilium" and spec.cilium_kube_proxy_replacement:
        return "TCP", KUBELET_PORT, None
    return "HTTP", KUBE_PROXY_HEALTH_PORT, "/livez"


@dataclass
class Firewall:
    """The cluster's firewall rules; machines wait for them."""

    rules: list[compute.Firewall]


def build_firewall(name: str, spec: ClusterSpec, project: str, network: pulumi.Input[str], proxy_cidr: str,
                   control_plane: Sequence[pulumi.Output[str]], workers: Mapping[str, pulumi.Output[str]],
                   parent: pulumi.Resource) -> Firewall:
    """Every ingress rule, for the members' (``control_plane``) and pools' (``workers``: pool
    name -> e-mail) service accounts."""
    child = pulumi.ResourceOptions(parent=parent)
    nodes = [*control_plane, *workers.values()]
    if len(nodes) > MAX_SERVICE_ACCOUNTS:
        raise ValueError(
            f"cfcr:nodePools: {len(workers)} pools and {len(control_plane)} control-plane members make "
            f"{len(nodes)} service accounts; a GCP firewall rule names at most {MAX_SERVICE_ACCOUNTS}: use fewer pools")
    rules: list[compute.Firewall] = []

    def rule(suffix: str, description: str, allows: list[compute.FirewallAllowArgs], targets: Sequence[pulumi.Output[str]],
             *, ranges: Sequence[str] = (), sources: Sequence[pulumi.Output[str]] = ()) -> None:
        rules.append(compute.Firewall(
            f"{name}-{suffix}",
            name=resource_name(f"{name}-{suffix}"),
            project=project,
            network=network,
            direction="INGRESS",
            priority=1000,
            description=f"cfcr {spec.name}: {description}",
            allows=allows,
            source_ranges=list(ranges) or None,
            source_service_accounts=list(sources) or None,
            target_service_accounts=list(targets),
            log_config=compute.FirewallLogConfigArgs(metadata="EXCLUDE_ALL_METADATA"),
            opts=child,
        ))

    def tcp(*ports: str) -> list[compute.FirewallAllowArgs]:
        return [compute.FirewallAllowArgs(protocol="tcp", ports=list(ports))]

    api = str(API_PORT)
    if spec.networking.api_public:
        rule("api-from-clients", "Kubernetes API from the allowed CIDRs (through the public load balancer)",
             tcp(api), control_plane, ranges=list(dict.fromkeys(spec.networking.api_allowed_cidrs)))
    balancer_ranges = [*HEALTH_CHECK_RANGES, *(PASSTHROUGH_HEALTH_CHECK_RANGES if spec.networking.api_public else ()),
                       proxy_cidr]
    rule("api-from-lb", "Kubernetes API from the load balancers' proxies and health checks",
         tcp(api), control_plane, ranges=list(dict.fromkeys(balancer_ranges)))
    rule("api-from-nodes", "Kubernetes API from the nodes (the kubernetes Service)", tcp(api), control_plane,
         sources=nodes)
    rule("etcd", "etcd client and peer, between members", tcp(f"{ETCD_CLIENT_PORT}-{ETCD_PEER_PORT}"),
         control_plane, sources=control_plane)
    scrapers = [workers[p] for p in metrics_server_pools(spec) if p in workers]
    rule("kubelet", "kubelet API from the API servers and metrics-server", tcp(str(KUBELET_PORT)), nodes,
         sources=[*control_plane, *scrapers])
    _, port, _ = node_health_port(spec)
    if workers:
        rule("node-health", "the pools' autohealing health check", tcp(str(port)), list(workers.values()),
             ranges=list(HEALTH_CHECK_RANGES))
    cni = node_ports(spec.cni)
    if cni:
        allows: list[compute.FirewallAllowArgs] = []
        for p in cni:
            allows.append(compute.FirewallAllowArgs(protocol=p.protocol,
                                                    ports=None if p.protocol == "icmp" else [str(p.port)]))
        rule("cni", f"{spec.cni} between nodes", allows, nodes, sources=nodes)
    return Firewall(rules=rules)
