"""A cloud's rendered network, as the flow evaluator queries it.

Each cloud's reader (``cfcr.<cloud>.flows.read_network``) turns a render's rows into one
:class:`Network`: the machines (by user-data role) with their firewall groups, subnets and
addresses; each subnet's way to the internet; every firewall rule; the load balancers with
their listeners, targets and health checks; and what names resolve to from inside. The
model is cloud-neutral: a *group* is an AWS security group, a GCP network tag or service
account, an Azure application security group; a rule allows traffic in or out of a group,
from or to CIDRs or other groups; firewalls are stateful.

An air-gapped network adds the private endpoints of the cloud's services
(:class:`ServiceEndpoint`), whether the network resolves their private names, and its
internet gateways (there must be none).

Whatever a render cannot tell (an existing subnet's routes, an address the cloud assigns)
stays unknown: the evaluator then says UNVERIFIED, never PASS. (Two things the cluster's config
states to be the site's are taken as given, and the verdict says "assumed:": the routes to an
air-gapped site's mirrors, and endpoints an existing network already has.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from cfcr.flows.model import Ports

Ternary = bool | None
"""True, False, or None when the render cannot tell."""


def _net(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def _subnet_of(inner: ipaddress.IPv4Network | ipaddress.IPv6Network,
               outer: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False


@dataclass(frozen=True)
class Address:
    """Where a packet comes from or goes to, as a firewall sees it."""

    label: str
    """For messages: ``10.0.0.10``, ``an address of subnet x (10.0.0.0/19)``, ``the public address of NAT y``."""
    networks: tuple[str, ...] = ()
    """CIDRs the address lies in (any one of them); empty when unknown (an address the cloud assigns)."""
    groups: frozenset[str] = frozenset()
    """Firewall groups of the interface the packet leaves from (only for addresses inside the network)."""
    public: bool = False
    """An internet address (a NAT's, an operator's)."""
    cloud_assigned: bool = False
    """A public address the cloud assigns from its own pool when the resource is created (a NAT's
    Elastic IP, unknown to the render): no operator's CIDR holds it, only a rule that names it
    (or the whole internet) admits it."""

    def within(self, cidr: str) -> Ternary:
        """True if the address certainly lies in ``cidr``, False if certainly not, None if unknown."""
        target = _net(cidr)
        if target.prefixlen == 0:
            return all(_net(n).version == target.version for n in self.networks) if self.networks else True
        if not self.networks:
            return False if self.cloud_assigned else None
        if all(_subnet_of(_net(n), target) for n in self.networks):
            return True
        overlap = [_net(n).version == target.version and _net(n).overlaps(target) for n in self.networks]
        return None if any(overlap) else False


@dataclass(frozen=True)
class Rule:
    """One allow rule of a firewall group."""

    name: str
    """The rule's resource name (for messages)."""
    group: str
    """The group it belongs to."""
    direction: Literal["ingress", "egress"]
    protocol: str
    """``tcp``, ``udp``, ``icmp`` or ``all``."""
    from_port: int | None = None
    """First port (ICMP type); None for every port."""
    to_port: int | None = None
    """Last port (ICMP code); None for every port."""
    cidrs: tuple[str, ...] = ()
    peer_groups: tuple[str, ...] = ()
    """Groups whose members the rule admits (ingress) or may reach (egress)."""

    def covers(self, ports: Ports) -> bool:
        if self.protocol == "all":
            return True
        if self.protocol != ports.protocol:
            return False
        if ports.protocol == "icmp":
            return self.from_port in (None, -1, ports.from_port) and self.to_port in (None, -1, ports.to_port)
        lo, hi = self.span()
        return lo <= ports.from_port and ports.to_port <= hi

    def span(self) -> tuple[int, int]:
        """First and last port of a tcp or udp rule (a missing or negative bound is open)."""
        lo = self.from_port if self.from_port is not None and self.from_port >= 0 else 0
        hi = self.to_port if self.to_port is not None and self.to_port >= 0 else 65535
        return lo, hi

    def matches(self, peer: Address) -> Ternary:
        """Does the rule admit (or let out to) ``peer``?"""
        if peer.groups & set(self.peer_groups):
            return True
        if peer.networks and self.cidrs and all(
                any(_subnet_of(_net(n), _net(c)) for c in self.cidrs) for n in peer.networks):
            return True  # each range the address may lie in is within one of the rule's CIDRs
        verdicts = [peer.within(c) for c in self.cidrs]
        if any(v is True for v in verdicts):
            return True
        if any(v is None for v in verdicts):
            return None
        return False

    def sources_text(self) -> str:
        return ", ".join([*self.cidrs, *self.peer_groups]) or "nothing"


@dataclass(frozen=True)
class Route:
    """How a subnet reaches the internet (its default route)."""

    kind: Literal["nat", "gateway", "none", "unknown"]
    """``nat``: through a NAT with its own public address; ``gateway``: straight to an internet
    gateway (only machines with a public address get out); ``none``: no way out;
    ``unknown``: the render does not show it."""
    detail: str
    """What the route is, or why there is none."""
    source: Address | None = None
    """For ``nat``: the address packets arrive with on the internet."""
    site: bool = False
    """For ``unknown``: the default route goes to a target of the site's own network (a transit
    gateway, a virtual private gateway, a peering), not to an internet gateway or a NAT."""


@dataclass(frozen=True)
class Subnet:
    id: str
    label: str
    cidr: str | None
    internet: Route
    public_ips: bool = False
    """Machines launched here get a public address unless they say otherwise."""
    route_table: str | None = None
    """The route table the subnet uses, when the render shows it."""


@dataclass(frozen=True)
class Machine:
    """A control-plane member, or all the nodes of a pool (alike but for the subnet they land in)."""

    label: str
    groups: frozenset[str]
    subnets: tuple[str, ...]
    address: str | None = None
    """The fixed private address (control-plane members)."""
    member: str | None = None
    """The control-plane member (node and etcd name) it is."""
    pool: str | None = None
    """The pool whose nodes it stands for."""
    public_address: bool = False
    """The machine gets a public address of its own."""


@dataclass(frozen=True)
class HealthCheck:
    protocol: str
    port: int
    path: str | None = None

    def text(self) -> str:
        return f"{self.protocol} {self.port}{self.path or ''}"


@dataclass(frozen=True)
class Listener:
    """A load balancer's listener and where it forwards."""

    port: int
    protocol: str
    target_group: str
    """Label of the target group (for messages)."""
    targets: tuple[str, ...]
    """Control-plane members registered as targets (by member name)."""
    target_port: int
    health_check: HealthCheck | None
    preserve_client_ip: bool
    """True: targets see the client's address; False: the load balancer's own."""


@dataclass(frozen=True)
class PoolHealth:
    """How the cloud checks a pool's machines over the network (to heal the pool)."""

    check: HealthCheck
    sources: tuple[str, ...]
    """The address ranges the probes come from (any one of them)."""


@dataclass(frozen=True)
class LoadBalancer:
    id: str
    label: str
    internal: bool
    groups: frozenset[str]
    """Firewall groups on the load balancer; empty when it has none (it then admits anything)."""
    subnets: tuple[str, ...]
    dns_name: str | None
    listeners: tuple[Listener, ...]
    health_check_sources: tuple[str, ...] = ()
    """The address ranges the health checks come from (any one of them) when not the load
    balancer's own subnets (GCP's probes come from Google's ranges)."""

    def listener(self, port: int) -> Listener | None:
        return next((x for x in self.listeners if x.port == port), None)


@dataclass(frozen=True)
class Resolution:
    """What a name resolves to from inside the network."""

    chain: tuple[str, ...]
    """Each step, for messages: ``api.x (private zone x)``, ``alias of y.elb.amazonaws.com``."""
    load_balancer: LoadBalancer | None = None
    address: str | None = None


@dataclass(frozen=True)
class ServiceEndpoint:
    """A private endpoint of one of the cloud's services inside the network (AWS: a VPC endpoint).

    An *interface* endpoint has addresses in subnets, behind firewall groups; with private DNS,
    the service's usual name resolves to those addresses inside the network. A *gateway*
    endpoint is a route: the route tables it is attached to send the service's addresses to it."""

    service: str
    """The service (``secretsmanager``, ``s3``)."""
    label: str
    """The endpoint's name in the render."""
    kind: Literal["interface", "gateway"]
    private_dns: Ternary = None
    """Interface: the service's name resolves to the endpoint inside the network."""
    subnets: tuple[str, ...] = ()
    """Interface: the subnets of its addresses."""
    groups: frozenset[str] = frozenset()
    """Interface: its firewall groups."""
    route_tables: tuple[str, ...] = ()
    """Gateway: the route tables routed to it."""


@dataclass
class Network:
    """A cloud's rendered network, in the terms the evaluator needs."""

    cloud: str
    label: str
    """``VPC x (10.0.0.0/16)``."""
    machines: list[Machine]
    subnets: dict[str, Subnet]
    group_labels: dict[str, str]
    """Group id -> its name in the render."""
    rules: list[Rule]
    load_balancers: list[LoadBalancer]
    private_names: dict[str, Resolution]
    """Every name with a record in a private zone the network resolves (lowercase, no final dot)."""
    group_noun: str = "firewall group"
    """What the cloud calls a group, for messages (``security group``)."""
    cidrs: tuple[str, ...] = ()
    """The network's own address ranges; empty when the render does not show them (an existing network)."""
    notes: list[str] = field(default_factory=list)
    service_endpoints: list[ServiceEndpoint] = field(default_factory=list)
    """The private endpoints of the cloud's services in the network."""
    internet_gateways: list[str] = field(default_factory=list)
    """The network's ways to the internet in the render, labelled (``internet gateway x``,
    ``NAT gateway y``): an air-gapped network has none."""
    private_dns: Ternary = None
    """The network resolves private names of endpoints (AWS: the VPC's DNS support and DNS
    hostnames); None when the render does not show it (an existing network)."""
    route_table_labels: dict[str, str] = field(default_factory=dict)
    """Route table id -> its name in the render."""
    icmp_by_type: bool = True
    """The firewall can admit single ICMP types; False where a rule admits all of ICMP or none
    (GCP), so an ICMP rule is not judged wider than the ICMP types the flows use."""
    pool_health: dict[str, PoolHealth] = field(default_factory=dict)
    """Pool name -> the cloud's network health check of its machines; a pool without one is
    checked by the cloud without network traffic (AWS's EC2 status checks)."""
    service_probe_sources: tuple[str, ...] = ()
    """Where the health probes of Services' load balancers come from, where the cluster's own
    rules must admit them on the NodePort range (Azure: 168.63.129.16, the ``AzureLoadBalancer``
    tag, which cfcr's final deny would drop); empty where the cloud opens them itself."""
    service_probes_opened_by: str = ""
    """How the cloud controller manager admits those probes itself, for each Service (AWS: rules
    in the node security groups; GCP: firewall rules for the nodes' network tag); empty where
    the cluster's rules must (:attr:`service_probe_sources`)."""

    def group(self, gid: str) -> str:
        return self.group_labels.get(gid, gid)

    def route_table_label(self, rid: str) -> str:
        return self.route_table_labels.get(rid, rid)

    def rules_of(self, groups: frozenset[str], direction: str) -> list[Rule]:
        return [r for r in self.rules if r.group in groups and r.direction == direction]

    def members(self, names: Iterable[str]) -> list[Machine]:
        wanted = set(names)
        return [m for m in self.machines if m.member is not None and m.member in wanted]

    def subnet(self, sid: str) -> Subnet:
        return self.subnets.get(sid) or Subnet(sid, sid, None, Route(
            "unknown", f"subnet {sid} is not in the render (an existing subnet): its routes are not known"))
