"""The flows a working cluster needs, listed once and cloud-neutrally.

A :class:`Flow` names a source, a destination, the protocol and port(s), and why a cluster
needs it. Sources and destinations are roles (:class:`Endpoint`), not addresses: "the
control plane", "pool general", "nodes that may run metrics-server", "the API name as it
resolves inside the network", "the internet". A cloud's reader (``cfcr.<cloud>.flows``)
says which machines, groups, subnets, routes and load balancers stand behind them in a
render, and :mod:`cfcr.flows.evaluate` decides whether each flow gets through.

:func:`cluster_flows` builds the list from :class:`~cfcr.flows.facts.ClusterFacts` (what the
render says about the nodes: roles, the API name in kubeadm's config, taints, labels, where
metrics-server may run) and the spec (CNI, whether the API is public and to whom). Besides the
cluster's own traffic, it lists what the cloud sends to the nodes: the pools' health checks
(``node-health:pool/<p>``) and the probes of Services' load balancers on the NodePort range
(``service-lb-health:<group>``, for every group that may be their backend); the network says
whether the cluster's rules must admit them or the cloud does so itself.

On an air-gapped network (:attr:`ClusterFacts.private`) the egress flows keep their ids but go
to the cloud's services through private endpoints (:class:`CloudService`, the services the
cloud names for each need) and to the site's mirrors over the site's network
(:class:`SiteMirrors`), never to the internet; every node also reaches the cloud's session
service (``egress-sessions:<group>``), the only way onto a node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from cfcr.constants import (
    API_PORT,
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
    EXCLUDE_FROM_LOAD_BALANCERS_LABEL,
    KUBELET_PORT,
    NODE_PORTS,
)

if TYPE_CHECKING:
    from cfcr.flows.facts import ClusterFacts


@dataclass(frozen=True)
class Ports:
    """A protocol and a port range; for ICMP, ``from_port`` is the type and ``to_port`` the code."""

    protocol: Literal["tcp", "udp", "icmp"]
    from_port: int
    to_port: int

    @classmethod
    def tcp(cls, port: int, last: int | None = None) -> Ports:
        return cls("tcp", port, port if last is None else last)

    @classmethod
    def udp(cls, port: int) -> Ports:
        return cls("udp", port, port)

    @classmethod
    def icmp(cls, icmp_type: int, code: int = 0) -> Ports:
        return cls("icmp", icmp_type, code)

    @classmethod
    def of(cls, protocol: str, port: int) -> Ports:
        """One port of ``tcp`` or ``udp``, or ICMP type ``port`` (code 0)."""
        if protocol == "tcp":
            return cls.tcp(port)
        if protocol == "udp":
            return cls.udp(port)
        if protocol == "icmp":
            return cls.icmp(port)
        raise ValueError(f"protocol {protocol!r}: expected tcp, udp or icmp")

    def text(self) -> str:
        if self.protocol == "icmp":
            return f"icmp type {self.from_port} code {self.to_port}"
        if self.from_port == self.to_port:
            return f"{self.protocol}/{self.from_port}"
        return f"{self.protocol}/{self.from_port}-{self.to_port}"


# --------------------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class NodeSet:
    """Every control-plane member (``pool`` None) or every node of one pool."""

    pool: str | None = None

    def text(self) -> str:
        return "control plane" if self.pool is None else f"pool {self.pool}"

    def key(self) -> str:
        return "control-plane" if self.pool is None else f"pool/{self.pool}"


@dataclass(frozen=True)
class AllNodes:
    """Every node, control plane and pools."""

    def text(self) -> str:
        return "every node"


@dataclass(frozen=True)
class NodesRunning:
    """The nodes a workload may be scheduled on (its pod traffic to a node address is
    masqueraded to the node's own address, so the node is the source a firewall sees)."""

    workload: str

    def text(self) -> str:
        return f"nodes that may run {self.workload}"


@dataclass(frozen=True)
class ApiServers:
    """The API servers, each on its control-plane member's own address."""

    def text(self) -> str:
        return "API servers"


@dataclass(frozen=True)
class ApiName:
    """The API endpoint nodes use, as ``host`` resolves from inside the network."""

    host: str

    def text(self) -> str:
        return f"{self.host} (resolved inside the network)"


@dataclass(frozen=True)
class PublicApi:
    """The API endpoint on the internet (an internet-facing load balancer)."""

    def text(self) -> str:
        return "the public API endpoint"


@dataclass(frozen=True)
class PrivateApi:
    """The API endpoint inside the network (an internal load balancer)."""

    def text(self) -> str:
        return "the private API endpoint"


@dataclass(frozen=True)
class NetworkClients:
    """Any address of the cluster's network: operators' and CI hosts inside it (a bastion,
    the machine that runs ``pulumi up`` against a private API)."""

    def text(self) -> str:
        return "hosts inside the network"


@dataclass(frozen=True)
class ApiLoadBalancers:
    """Every load balancer that serves the API."""

    def text(self) -> str:
        return "API load balancers"


@dataclass(frozen=True)
class ExternalClients:
    """Clients in a network outside the cluster (operators)."""

    cidr: str

    def text(self) -> str:
        return self.cidr


@dataclass(frozen=True)
class Internet:
    """A service on the internet, by what it is (the hosts are for the reader)."""

    service: str
    hosts: tuple[str, ...] = ()

    def text(self) -> str:
        return f"{self.service} ({', '.join(self.hosts)})" if self.hosts else self.service


@dataclass(frozen=True)
class CloudService:
    """Services of the cloud reached through the network's private endpoints (an air-gapped
    network), by what they are for and which services they are."""

    what: str
    services: tuple[str, ...]

    def text(self) -> str:
        return f"{self.what} through private endpoints ({', '.join(self.services)})"


@dataclass(frozen=True)
class SiteMirrors:
    """The site's mirrors, reached over the site's own network, never the internet (an
    air-gapped network); the hosts come from the render."""

    what: str
    hosts: tuple[str, ...] = ()

    def text(self) -> str:
        hosts = f" ({', '.join(self.hosts)})" if self.hosts else ""
        return f"{self.what} on the site's network{hosts}"


@dataclass(frozen=True)
class PoolHealthCheckers:
    """The cloud's probes of a pool's machines, where the cloud heals a pool by a health check
    over the network (GCP's managed instance group autohealing); the port is the network's."""

    def text(self) -> str:
        return "the cloud's health checkers of the pool"


@dataclass(frozen=True)
class ServiceProbes:
    """The health probes of the load balancers the cloud controller manager makes for Services of
    type LoadBalancer: to a Service's NodePort (``externalTrafficPolicy: Cluster``) or its
    ``healthCheckNodePort`` (``Local``) on every backend node. Where they come from, and whether
    the cluster's own rules or the controller (for each Service) admit them, is the network's."""

    def text(self) -> str:
        return "the health probes of Services' load balancers"


Endpoint = (NodeSet | AllNodes | NodesRunning | ApiServers | ApiName | PublicApi | PrivateApi | NetworkClients
            | ApiLoadBalancers | ExternalClients | Internet | CloudService | SiteMirrors | PoolHealthCheckers
            | ServiceProbes)


@dataclass(frozen=True)
class Flow:
    """One connection a working cluster needs."""

    id: str
    """Short, stable id (``etcd-peer``, ``api-internal:pool/general``)."""
    source: Endpoint
    destination: Endpoint
    ports: tuple[Ports, ...]
    reason: str
    """Why a cluster needs it."""
    health_check: bool = False
    """For load balancer flows: the health check's port and protocol instead of the listener's."""

    def text(self) -> str:
        ports = ", ".join(p.text() for p in self.ports) or "(the check's own port)"
        return f"{self.source.text()} -> {self.destination.text()} {ports}"


# --------------------------------------------------------------------------- the list

NEED_SECRETS = "secrets"
"""An air-gapped cluster's need: every node reads its secrets (the cloud names the services)."""
NEED_CLOUD_API = "cloud-api"
"""An air-gapped cluster's need: the controllers on the control plane call the cloud's APIs."""
NEED_SESSIONS = "sessions"
"""An air-gapped cluster's need: operators reach every node through the cloud's session service
(cfcr opens no SSH)."""

SECRET_STORE = "secret store"
IMAGE_REGISTRIES = "image registries"
PACKAGE_MIRRORS = "package and binary mirrors"
CLOUD_APIS = "cloud APIs"
SESSIONS = "session service"


def cluster_flows(facts: ClusterFacts) -> list[Flow]:
    """Every flow the cluster of ``facts`` needs, in a stable order."""
    groups = [NodeSet(None), *(NodeSet(p) for p in facts.pools)]
    flows: list[Flow] = []
    for g in groups:
        host, api_port = facts.endpoint_of(g.pool)
        flows.append(Flow(
            f"api-internal:{g.key()}", g, ApiName(host), (Ports.tcp(api_port),),
            "kubelets, kubeadm and the CNI agents reach the API at the endpoint of their kubeadm config",
        ))
    for g in groups:
        flows.append(Flow(
            f"api-service:{g.key()}", g, ApiServers(), (Ports.tcp(API_PORT),),
            "pods and host-network agents reach the API through the `kubernetes` Service, whose "
            "endpoints are the API servers' own addresses",
        ))
    flows.append(Flow("api-lb-forward", ApiLoadBalancers(), ApiServers(), (Ports.tcp(API_PORT),),
                      "the load balancer forwards API connections to every API server"))
    flows.append(Flow("api-lb-health", ApiLoadBalancers(), ApiServers(), (Ports.tcp(API_PORT),),
                      "the load balancer sends traffic only to API servers whose /readyz passes",
                      health_check=True))
    if facts.api_public:
        for cidr in facts.api_allowed_cidrs:
            flows.append(Flow(f"api-public:{cidr}", ExternalClients(cidr), PublicApi(), (Ports.tcp(API_PORT),),
                              "operators in networking.apiAllowedCidrs use the public API endpoint"))
    else:
        flows.append(Flow("api-private:network", NetworkClients(), PrivateApi(), (Ports.tcp(API_PORT),),
                          "with a private API, operators and `pulumi up` (the addons) reach it from inside the network"))
        for cidr in facts.api_allowed_cidrs:
            flows.append(Flow(f"api-private:{cidr}", ExternalClients(cidr), PrivateApi(), (Ports.tcp(API_PORT),),
                              "clients in networking.apiAllowedCidrs (peered or VPN networks) use the private API "
                              "endpoint"))
    for g in groups:
        flows.append(Flow(
            f"kubelet-apiserver:{g.key()}", ApiServers(), g, (Ports.tcp(KUBELET_PORT),),
            "the API server calls kubelets for exec, logs, port-forward and attach",
        ))
    if facts.metrics_server is not None:
        for g in groups:
            flows.append(Flow(
                f"kubelet-metrics:{g.key()}", NodesRunning("metrics-server"), g, (Ports.tcp(KUBELET_PORT),),
                "metrics-server scrapes every kubelet's resource metrics (kubectl top, autoscalers)",
            ))
    for pool in facts.pools:
        flows.append(Flow(
            f"node-health:pool/{pool}", PoolHealthCheckers(), NodeSet(pool), (),
            "where the cloud heals a pool by a health check over the network, the check reaches every node "
            "(a node it cannot reach is replaced again and again)",
        ))
    for g in groups:
        roles = facts.members if g.pool is None else [r for r in facts.roles if r.pool == g.pool]
        if roles and all(EXCLUDE_FROM_LOAD_BALANCERS_LABEL in r.labels for r in roles):
            continue  # no backend of a Service's load balancer (kubeadm's label on the control plane)
        flows.append(Flow(
            f"service-lb-health:{g.key()}", ServiceProbes(), g, (Ports.tcp(*NODE_PORTS),),
            "the load balancer of a Service of type LoadBalancer sends traffic only to nodes whose probe of "
            "the Service's NodePort (healthCheckNodePort with externalTrafficPolicy Local) passes",
        ))
    cp = NodeSet(None)
    flows.append(Flow("etcd-client", cp, cp, (Ports.tcp(ETCD_CLIENT_PORT),),
                      "API servers reach every etcd member (--etcd-servers lists them all)"))
    flows.append(Flow("etcd-peer", cp, cp, (Ports.tcp(ETCD_PEER_PORT),),
                      "etcd members replicate to each other (static membership)"))
    for port, purpose in facts.cni_ports:
        flows.append(Flow(f"cni:{port.protocol}/{port.from_port}", AllNodes(), AllNodes(), (port,),
                          f"{facts.cni}: {purpose}, between every pair of nodes"))
    if facts.private is not None:
        flows += _air_gapped_egress(facts, groups)
        return flows
    egress = [
        ("egress-secrets", Internet(SECRET_STORE), (Ports.tcp(443),),
         "a node fetches its role's keys and tokens at boot and on renewal"),
        ("egress-images", Internet(IMAGE_REGISTRIES, facts.registry_hosts), (Ports.tcp(443),),
         "containerd pulls the pause, control-plane, CNI and addon images"),
        ("egress-packages", Internet(PACKAGE_MIRRORS, facts.mirror_hosts), (Ports.tcp(443), Ports.tcp(80)),
         "cloud-init installs packages (apt over http) and the pinned, checksummed binaries"),
    ]
    for kind, dest, ports, reason in egress:
        for g in groups:
            flows.append(Flow(f"{kind}:{g.key()}", g, dest, ports, reason))
    flows.append(Flow("egress-cloud-api:control-plane", cp, Internet(CLOUD_APIS), (Ports.tcp(443),),
                      "the cloud controller manager, CSI controller, cluster-autoscaler and termination "
                      "handler run on the control plane and call the cloud's APIs"))
    return flows


def _air_gapped_egress(facts: ClusterFacts, groups: list[NodeSet]) -> list[Flow]:
    """An air-gapped cluster's egress: the same ids, to the cloud's private endpoints and the
    site's mirrors instead of the internet, and every node to the cloud's session service."""
    assert facts.private is not None
    needs = facts.private.needs
    flows: list[Flow] = []
    egress: list[tuple[str, Endpoint, tuple[Ports, ...], str]] = []
    if needs.get(NEED_SECRETS):
        egress.append(("egress-secrets", CloudService(SECRET_STORE, needs[NEED_SECRETS]), (Ports.tcp(443),),
                       "a node fetches its role's keys and tokens at boot and on renewal"))
    egress += [
        ("egress-images", SiteMirrors(IMAGE_REGISTRIES, facts.image_hosts), (Ports.tcp(443),),
         "containerd pulls the pause, control-plane, CNI and addon images from the site's mirrors"),
        ("egress-packages", SiteMirrors(PACKAGE_MIRRORS, facts.download_hosts), (Ports.tcp(443), Ports.tcp(80)),
         "cloud-init installs packages (apt over http) and the pinned, checksummed binaries from the site's mirrors"),
    ]
    if needs.get(NEED_SESSIONS):
        egress.append(("egress-sessions", CloudService(SESSIONS, needs[NEED_SESSIONS]), (Ports.tcp(443),),
                       "operators reach every node through the cloud's session service (cfcr opens no SSH), "
                       "and the restore runbook runs its commands through it"))
    for kind, dest, ports, reason in egress:
        for g in groups:
            flows.append(Flow(f"{kind}:{g.key()}", g, dest, ports, reason))
    if needs.get(NEED_CLOUD_API):
        flows.append(Flow("egress-cloud-api:control-plane", NodeSet(None), CloudService(CLOUD_APIS, needs[NEED_CLOUD_API]),
                          (Ports.tcp(443),),
                          "the cloud controller manager, CSI controller, cluster-autoscaler, termination handler "
                          "and etcd backups run on the control plane and call the cloud's APIs"))
    return flows
