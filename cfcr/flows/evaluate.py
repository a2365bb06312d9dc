"""Decide, for each flow, whether a rendered network lets it through, and say why not.

A packet gets through when the source's firewall groups let it out, a route carries it (inside
the network always; to the internet only through a NAT or, for machines with a public
address, an internet gateway), and the destination's groups let it in *as it arrives*: with
the source's private address and groups inside the network, with the NAT's public address
after a NAT. A name is followed to what it resolves to inside the network; a load balancer
needs a listener on the port, the API servers registered as targets, and, when it preserves
client addresses, targets that admit the clients. The cloud's probes (a pool's health check, the
probes of Services' load balancers) must be admitted from where the network says they come
from, unless the network says the cloud checks without traffic or opens them itself.

An air-gapped network (:attr:`ClusterFacts.private`) must have no way to the internet: no
internet gateway, no default route to one or to a NAT. Its nodes reach the cloud's services
through private endpoints (an interface endpoint with private DNS, admitting them on 443, or a
gateway endpoint on their subnet's route table) and the site's mirrors over the site's own
network. The mirrors are known by name only and the routes to them are the site's, so those
flows pass on what the render shows (no internet, egress allowed) and say "assumed:" for the
rest; endpoints an existing network already has are taken as present the same way.

Every verdict is PASS, BLOCKED (with the reason) or UNVERIFIED (the render cannot tell, e.g.
an existing subnet's routes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from cfcr.flows.facts import ClusterFacts
from cfcr.flows.model import (
    AllNodes,
    CloudService,
    SiteMirrors,
    ApiLoadBalancers,
    ApiName,
    ApiServers,
    Endpoint,
    ExternalClients,
    Flow,
    Internet,
    NetworkClients,
    NodeSet,
    NodesRunning,
    PoolHealthCheckers,
    Ports,
    PrivateApi,
    PublicApi,
    ServiceProbes,
)
from cfcr.flows.network import Address, LoadBalancer, Machine, Network, Rule, ServiceEndpoint, Ternary

Status = Literal["PASS", "BLOCKED", "UNVERIFIED"]


@dataclass(frozen=True)
class Verdict:
    ok: Ternary
    why: str


@dataclass(frozen=True)
class Use:
    """An ingress rule that let a flow's packets in (or may have: ``ok`` None)."""

    rule: Rule
    ports: Ports
    peer: Address
    ok: Ternary


@dataclass(frozen=True)
class FlowResult:
    """One flow's verdict."""

    flow: Flow
    status: Status
    details: tuple[str, ...]
    """Why it is blocked or unverified; for a pass, how it gets through."""


def _status(verdicts: Sequence[Verdict]) -> Status:
    if any(v.ok is False for v in verdicts):
        return "BLOCKED"
    if any(v.ok is None for v in verdicts):
        return "UNVERIFIED"
    return "PASS"


def _details(verdicts: Sequence[Verdict], status: Status) -> tuple[str, ...]:
    want: Ternary = {"BLOCKED": False, "UNVERIFIED": None, "PASS": True}[status]
    return tuple(dict.fromkeys(v.why for v in verdicts if v.ok is want))


class Evaluator:
    """Evaluates flows against one :class:`Network`, with the cluster's :class:`ClusterFacts`."""

    def __init__(self, network: Network, facts: ClusterFacts) -> None:
        self.net = network
        self.facts = facts
        self.noun = network.group_noun
        self.uses: list[Use] = []
        """Every ingress rule that admitted (or may have admitted) a flow's packets, as evaluated."""

    # ------------------------------------------------------------------ addresses

    def address(self, m: Machine, subnet: str | None = None) -> Address:
        """``m``'s private address as a firewall sees it (from one of its subnets)."""
        if m.address:
            return Address(f"{m.label} ({m.address})", (f"{m.address}/32",), m.groups)
        subnets = [subnet] if subnet else list(m.subnets)
        cidrs = [self.net.subnet(s).cidr for s in subnets]
        where = ", ".join(self.net.subnet(s).label for s in subnets)
        networks = tuple(c for c in cidrs if c) if all(cidrs) else ()
        return Address(f"{m.label} in {where}", networks, m.groups)

    def lb_address(self, lb: LoadBalancer) -> Address:
        cidrs = [self.net.subnet(s).cidr for s in lb.subnets]
        networks = tuple(c for c in cidrs if c) if all(cidrs) else ()
        return Address(f"load balancer {lb.label}", networks, lb.groups)

    # ------------------------------------------------------------------ firewall

    def allows(self, groups: frozenset[str], direction: Literal["ingress", "egress"], ports: Ports,
               peer: Address, what: str) -> Verdict:
        """Do ``groups``' rules let ``ports`` in from (out to) ``peer``?"""
        if not groups:
            return Verdict(True, f"{what} has no {self.noun}: nothing filters it")
        names = ", ".join(self.net.group(g) for g in sorted(groups))
        covering = [r for r in self.net.rules_of(groups, direction) if r.covers(ports)]
        hits = [(r, r.matches(peer)) for r in covering]
        if direction == "ingress":
            self.uses += [Use(r, ports, peer, v) for r, v in hits if v is not False]
        preposition = "from" if direction == "ingress" else "to"
        yes = [r for r, v in hits if v is True]
        if yes:
            word = "in" if direction == "ingress" else "out"
            return Verdict(True, f"{self.noun} {names} lets {ports.text()} {word} {preposition} {peer.label} "
                                 f"(rule {yes[0].name})")
        maybe = [r for r, v in hits if v is None]
        if maybe:
            return Verdict(None, f"cannot tell from the render whether rule {maybe[0].name} of {names} "
                                 f"({maybe[0].sources_text()}) covers {peer.label}")
        verb = "admits" if direction == "ingress" else "lets out"
        if covering:
            peers = ", ".join(dict.fromkeys(self._peer_text(r.cidrs, r.peer_groups) for r in covering))
            return Verdict(False, f"{self.noun} {names} {verb} {ports.text()} only {preposition} {peers}, "
                                  f"not {peer.label}")
        return Verdict(False, f"{self.noun} {names} has no {direction} rule for {ports.text()} "
                              f"({preposition} {peer.label})")

    def _peer_text(self, cidrs: Iterable[str], groups: Iterable[str]) -> str:
        return ", ".join([*cidrs, *(self.net.group(g) for g in groups)]) or "nothing"

    def node_to_node(self, src: Machine, dst: Machine, ports: Ports) -> list[Verdict]:
        """Inside the network: ``src`` lets it out to ``dst``'s address, ``dst`` lets ``src``'s in."""
        seen = self.address(src)
        target = self.address(dst)
        return [self._prefix(f"{src.label} -> {dst.label}", [
            self.allows(src.groups, "egress", ports, target, src.label),
            self.allows(dst.groups, "ingress", ports, seen, dst.label),
        ])]

    @staticmethod
    def _prefix(where: str, verdicts: Sequence[Verdict]) -> Verdict:
        status = _status(verdicts)
        details = _details(verdicts, status)
        ok: Ternary = {"PASS": True, "BLOCKED": False, "UNVERIFIED": None}[status]
        return Verdict(ok, f"{where}: " + "; ".join(details))

    # ------------------------------------------------------------------ routes

    def to_internet(self, m: Machine, subnet: str, ports: Ports) -> tuple[Verdict, Address | None]:
        """Can ``m`` (in ``subnet``) send ``ports`` to the internet, and with what address does it arrive?"""
        sub = self.net.subnet(subnet)
        anywhere = Address("the internet", ("0.0.0.0/0",), public=True)
        egress = self.allows(m.groups, "egress", ports, anywhere, m.label)
        route = sub.internet
        where = f"{m.label} in {sub.label}"
        arrival: Address | None = None
        if route.kind == "nat":
            path = Verdict(True, f"{where} leaves through {route.detail}")
            arrival = route.source
        elif route.kind == "gateway":
            if m.public_address:
                path = Verdict(True, f"{where} leaves through {route.detail} with its own public address")
                arrival = Address(f"the public address of {m.label}", (), public=True)
            else:
                path = Verdict(False, f"{where}: the subnet routes to {route.detail}, but {m.label} has no "
                                      f"public address, so nothing comes back (a private subnet needs a NAT)")
        elif route.kind == "none":
            path = Verdict(False, f"{where}: no way to the internet: {route.detail}")
        else:
            path = Verdict(None, f"{where}: {route.detail}")
        if egress.ok is not True:
            path = self._prefix(f"{m.label} -> internet", [egress, path])
        return path, arrival

    # ------------------------------------------------------------------ air-gapped

    def no_internet(self, m: Machine, subnet: str) -> list[Verdict]:
        """An air-gapped network's promise, for ``m`` in ``subnet``: no internet gateway or public
        NAT gateway in the network, and no default route to one."""
        out = [Verdict(False, f"air-gapped, but {self.net.label} has {gw}") for gw in self.net.internet_gateways]
        route = self.net.subnet(subnet).internet
        if route.kind in ("nat", "gateway"):
            out.append(Verdict(False, f"air-gapped, but 0.0.0.0/0 goes to the internet: {route.detail}"))
        elif route.kind == "unknown" and not route.site:
            out.append(Verdict(None, f"cannot tell that nothing leaves for the internet: {route.detail}"))
        elif not out:
            how = f"0.0.0.0/0 stays in the site's network ({route.detail})" if route.site else (
                f"nothing leaves for the internet ({route.detail})")
            out.append(Verdict(True, how))
        return out

    def to_service(self, m: Machine, subnet: str, service: str, ports: Ports) -> Verdict:
        """``m`` (in ``subnet``) reaches ``service`` through its private endpoint, with no way to
        the internet: the endpoint exists, the service's name resolves to it (interface) or the
        subnet's route table is routed to it (gateway), and the firewall groups on both sides
        let ``ports`` through."""
        sub = self.net.subnet(subnet)
        steps = self.no_internet(m, subnet)
        private = self.facts.private
        if private is not None and private.assumed:
            inside = Address(f"the {service} endpoint of {self.net.label}", tuple(self.net.cidrs))
            steps.append(self.allows(m.groups, "egress", ports, inside, m.label))
            steps.append(Verdict(True, f"assumed: the network's own {service} endpoint, with private DNS "
                                       f"({private.assumption})"))
            return self._prefix(f"{m.label} in {sub.label} -> {service}", steps)
        endpoints = [e for e in self.net.service_endpoints if e.service == service]
        if not endpoints and subnet not in self.net.subnets:
            steps.append(Verdict(None, f"the render has no private endpoint for {service}, and {sub.label} is not in "
                                       f"it: an existing network's own endpoints and routes are not known"))
        elif not endpoints:
            steps.append(Verdict(False, f"{self.net.label} has no private endpoint for {service}: without the "
                                        f"internet, nothing answers its name"))
        else:
            e = endpoints[0]
            steps += self._interface(m, subnet, e, ports) if e.kind == "interface" else self._gateway(m, subnet, e, ports)
        return self._prefix(f"{m.label} in {sub.label} -> {service}", steps)

    def _interface(self, m: Machine, subnet: str, e: ServiceEndpoint, ports: Ports) -> list[Verdict]:
        steps: list[Verdict] = []
        if e.private_dns is False:
            steps.append(Verdict(False, f"endpoint {e.label} has private DNS off: {e.service}'s name resolves to "
                                        f"its public addresses, which nothing routes"))
        elif e.private_dns is None:
            steps.append(Verdict(None, f"cannot tell from the render whether endpoint {e.label} has private DNS"))
        if self.net.private_dns is False:
            steps.append(Verdict(False, f"{self.net.label} does not resolve private names (DNS support and DNS "
                                        f"hostnames must be on): {e.service}'s name does not reach endpoint {e.label}"))
        elif self.net.private_dns is None:
            steps.append(Verdict(None, f"cannot tell from the render whether {self.net.label} resolves private "
                                       f"names (DNS support and DNS hostnames)"))
        if not e.subnets:
            steps.append(Verdict(False, f"endpoint {e.label} has no address in any subnet"))
            return steps
        cidrs = [self.net.subnet(s).cidr for s in e.subnets]
        target = Address(f"endpoint {e.label}", tuple(c for c in cidrs if c) if all(cidrs) else (), e.groups)
        steps.append(self.allows(m.groups, "egress", ports, target, m.label))
        if not e.groups:
            steps.append(Verdict(None, f"endpoint {e.label} names no {self.noun}: it gets the network's default "
                                       f"one, whose rules the check does not read"))
        else:
            steps.append(self.allows(e.groups, "ingress", ports, self.address(m, subnet), f"endpoint {e.label}"))
        return steps

    def _gateway(self, m: Machine, subnet: str, e: ServiceEndpoint, ports: Ports) -> list[Verdict]:
        sub = self.net.subnet(subnet)
        service = Address(f"{e.service}'s addresses (routed to endpoint {e.label})", public=True)
        steps = [self.allows(m.groups, "egress", ports, service, m.label)]
        if sub.route_table is None:
            steps.append(Verdict(None, f"the route table of {sub.label} is not in the render: cannot tell whether "
                                       f"it routes {e.service} to endpoint {e.label}"))
        elif sub.route_table in e.route_tables:
            steps.append(Verdict(True, f"route table {self.net.route_table_label(sub.route_table)} of {sub.label} "
                                       f"routes {e.service} to gateway endpoint {e.label}"))
        else:
            steps.append(Verdict(False, f"route table {self.net.route_table_label(sub.route_table)} of {sub.label} "
                                        f"is not routed to gateway endpoint {e.label}, so {e.service} is out of reach"))
        return steps

    def to_site(self, m: Machine, subnet: str, dst: SiteMirrors, ports: Ports) -> Verdict:
        """``m`` (in ``subnet``) reaches the site's mirrors over the site's own network: nothing
        leaves for the internet, and ``m``'s groups let ``ports`` out to them. Their addresses
        are not known (only their names), and the routes to them are the site's: what the render
        cannot show is said as an assumption ("assumed:")."""
        sub = self.net.subnet(subnet)
        hosts = ", ".join(dst.hosts) or "the hosts the nodes are given"
        steps = self.no_internet(m, subnet)
        steps.append(self.allows(m.groups, "egress", ports, Address(f"the site's mirrors ({hosts})"), m.label))
        route = sub.internet
        if route.kind == "none":
            steps.append(Verdict(True, f"assumed: the site routes its mirrors ({hosts}) to {sub.label}; the render "
                                       f"shows no route beyond the network"))
        elif route.site:
            steps.append(Verdict(True, f"{hosts} over the site's network: {route.detail}"))
        return self._prefix(f"{m.label} in {sub.label} -> {dst.what}", steps)

    # ------------------------------------------------------------------ endpoints

    def machines(self, endpoint: Endpoint) -> tuple[list[Machine], list[Verdict]]:
        """The machines standing behind a node endpoint, and a verdict for each role with none."""
        if isinstance(endpoint, NodeSet):
            roles = self.facts.members if endpoint.pool is None else [
                r for r in self.facts.roles if r.pool == endpoint.pool]
        elif isinstance(endpoint, AllNodes):
            roles = list(self.facts.roles)
        elif isinstance(endpoint, ApiServers):
            roles = self.facts.members
        elif isinstance(endpoint, NodesRunning):
            placement = self.facts.metrics_server
            roles = self.facts.may_run(placement) if placement else []
            if not roles:
                return [], [Verdict(False, f"no node may run {endpoint.workload}: every role's taints or node "
                                           f"selector exclude it")]
        else:
            raise TypeError(f"{endpoint!r} is not a set of nodes")
        found: list[Machine] = []
        missing: list[Verdict] = []
        for role in roles:
            ms = [m for m in self.net.machines
                  if (role.pool is not None and m.pool == role.pool)
                  or (role.pool is None and m.member is not None and m.member == role.node_name)]
            if not ms:
                missing.append(Verdict(False, f"no machine in the render is {role.role} "
                                              f"({role.node_name or 'pool ' + str(role.pool)})"))
            found += ms
        return found, missing

    # ------------------------------------------------------------------ flows

    def evaluate(self, flow: Flow) -> FlowResult:
        verdicts = self._verdicts(flow)
        if not verdicts:
            verdicts = [Verdict(True, "nothing to connect")]
        status = _status(verdicts)
        return FlowResult(flow, status, _details(verdicts, status))

    def _verdicts(self, flow: Flow) -> list[Verdict]:
        src, dst = flow.source, flow.destination
        if isinstance(dst, ApiName):
            return self._api_name(flow, dst)
        if isinstance(src, ApiLoadBalancers):
            return self._lb_to_servers(flow)
        if isinstance(src, PoolHealthCheckers):
            return self._pool_health(flow)
        if isinstance(src, ServiceProbes):
            return self._service_probes(flow)
        if isinstance(dst, PublicApi):
            assert isinstance(src, ExternalClients)
            return self._public_api(flow, src)
        if isinstance(dst, PrivateApi):
            assert isinstance(src, (ExternalClients, NetworkClients))
            return self._private_api(flow, src)
        if isinstance(dst, (CloudService, SiteMirrors)):
            sources, missing = self.machines(src)
            out = list(missing)
            for m in sources:
                for sid in m.subnets:
                    if isinstance(dst, CloudService):
                        out += [self.to_service(m, sid, service, ports) for service in dst.services
                                for ports in flow.ports]
                    else:
                        out += [self.to_site(m, sid, dst, ports) for ports in flow.ports]
            return out
        if isinstance(dst, Internet):
            sources, missing = self.machines(src)
            out = list(missing)
            for m in sources:
                for sid in m.subnets:
                    for ports in flow.ports:
                        out.append(self.to_internet(m, sid, ports)[0])
            return out
        sources, missing_src = self.machines(src)
        targets, missing_dst = self.machines(dst)
        out = [*missing_src, *missing_dst]
        pairs = [(s, d) for s in sources for d in targets if s is not d or s.address is None]
        if not pairs and not out:
            return [Verdict(True, "one machine only: the traffic stays on the host")]
        for s, d in pairs:
            for ports in flow.ports:
                out += self.node_to_node(s, d, ports)
        return out

    def _api_name(self, flow: Flow, dst: ApiName) -> list[Verdict]:
        sources, out = self.machines(flow.source)
        name = dst.host.lower().rstrip(".")
        resolution = self.net.private_names.get(name)
        if resolution is None:
            return [*out, Verdict(False, f"{dst.host} has no record in a private zone of {self.net.label}: "
                                         f"nodes cannot resolve it")]
        chain = " -> ".join(resolution.chain)
        ports = flow.ports[0]
        lb = resolution.load_balancer
        if lb is None:
            hit = [m for m in self.net.machines if m.address and m.address == resolution.address]
            if not hit:
                return [*out, Verdict(None, f"{chain}: not a machine or load balancer of the render")]
            for m in sources:
                out += self.node_to_node(m, hit[0], ports)
            return out
        listener = lb.listener(ports.from_port)
        if listener is None:
            return [*out, Verdict(False, f"{chain}: load balancer {lb.label} has no listener on {ports.text()}")]
        if not listener.targets:
            return [*out, Verdict(False, f"{chain}: {listener.target_group} has no API server registered")]
        kind = "internal" if lb.internal else "internet-facing"
        for m in sources:
            for sid in m.subnets:
                where = f"{m.label} in {self.net.subnet(sid).label}"
                steps: list[Verdict] = []
                if lb.internal:
                    seen: Address | None = self.address(m, sid)
                    assert seen is not None
                    steps.append(self.allows(m.groups, "egress", ports, self.lb_address(lb), m.label))
                else:
                    leave, seen = self.to_internet(m, sid, ports)
                    steps.append(leave)
                    if seen is None and leave.ok is not False:
                        steps.append(Verdict(None, "the address packets arrive with is unknown"))
                if seen is not None:
                    steps.append(self.allows(lb.groups, "ingress", ports, seen, f"load balancer {lb.label}"))
                    if listener.preserve_client_ip:
                        steps += self._targets_admit(lb, listener.targets, listener.target_port, seen)
                status = _status(steps)
                detail = "; ".join(_details(steps, status))
                ok: Ternary = {"PASS": True, "BLOCKED": False, "UNVERIFIED": None}[status]
                out.append(Verdict(ok, f"{where}: {chain} ({kind} load balancer {lb.label}); {detail}"))
        return out

    def _targets_admit(self, lb: LoadBalancer, members: Sequence[str], port: int, client: Address) -> list[Verdict]:
        out = []
        for t in self.net.members(members):
            v = self.allows(t.groups, "ingress", Ports.tcp(port), client, t.label)
            out.append(Verdict(v.ok, f"{lb.label} preserves client addresses, so {v.why}"))
        return out

    def api_load_balancers(self, port: int) -> list[LoadBalancer]:
        return [lb for lb in self.net.load_balancers if lb.listener(port) is not None]

    def _lb_to_servers(self, flow: Flow) -> list[Verdict]:
        port = flow.ports[0].from_port
        lbs = self.api_load_balancers(port)
        if not lbs:
            return [Verdict(False, f"no load balancer of {self.net.label} listens on {flow.ports[0].text()}")]
        members = [str(r.node_name) for r in self.facts.members]
        out: list[Verdict] = []
        for lb in lbs:
            listener = lb.listener(port)
            assert listener is not None
            missing = [r for r in members if r not in listener.targets]
            if missing:
                out.append(Verdict(False, f"{lb.label}: {', '.join(missing)} not registered in {listener.target_group}"))
            if flow.health_check:
                check = listener.health_check
                if check is None:
                    out.append(Verdict(False, f"{listener.target_group} has no health check"))
                    continue
                ports = Ports.tcp(check.port)
                how = f"health check {check.text()}"
            else:
                ports = Ports.tcp(listener.target_port)
                how = f"forward to {ports.text()}"
            source = self.lb_address(lb)
            if flow.health_check and lb.health_check_sources:
                source = Address(f"{lb.label}'s health checkers ({', '.join(lb.health_check_sources)})",
                                 lb.health_check_sources)
            for t in self.net.members(listener.targets):
                steps = [self.allows(lb.groups, "egress", ports, self.address(t), f"load balancer {lb.label}")]
                if listener.preserve_client_ip and not flow.health_check:
                    steps.append(Verdict(True, "client addresses preserved: each client flow checks the targets"))
                else:
                    steps.append(self.allows(t.groups, "ingress", ports, source, t.label))
                out.append(self._prefix(f"{lb.label} {how} -> {t.label}", steps))
        return out

    def _pool_health(self, flow: Flow) -> list[Verdict]:
        assert isinstance(flow.destination, NodeSet) and flow.destination.pool is not None
        pool = flow.destination.pool
        health = self.net.pool_health.get(pool)
        if health is None:
            return [Verdict(True, f"{self.net.cloud} checks pool {pool}'s machines without network traffic")]
        targets, out = self.machines(flow.destination)
        source = Address(f"the health checkers ({', '.join(health.sources)})", health.sources)
        ports = Ports.tcp(health.check.port)
        for t in targets:
            out.append(self._prefix(f"health check {health.check.text()} -> {t.label}",
                                    [self.allows(t.groups, "ingress", ports, source, t.label)]))
        return out

    def _service_probes(self, flow: Flow) -> list[Verdict]:
        """The probes of Services' load balancers reach every node of the flow's group on the
        NodePort range: admitted by the nodes' own rules from where the probes come from, or
        by the rules the cloud controller manager adds for each Service."""
        targets, out = self.machines(flow.destination)
        sources = self.net.service_probe_sources
        if not sources:
            if self.net.service_probes_opened_by:
                return [*out, Verdict(True, self.net.service_probes_opened_by)]
            return [*out, Verdict(None, f"the render does not say where the probes of {self.net.cloud}'s "
                                        f"Service load balancers come from, or who admits them")]
        source = Address(f"the Service load balancers' probes ({', '.join(sources)})", sources)
        for t in targets:
            out.append(self._prefix(f"probes -> {t.label}", [
                self.allows(t.groups, "ingress", ports, source, t.label) for ports in flow.ports]))
        return out

    def _public_api(self, flow: Flow, src: ExternalClients) -> list[Verdict]:
        ports = flow.ports[0]
        lbs = [lb for lb in self.api_load_balancers(ports.from_port) if not lb.internal]
        if not lbs:
            return [Verdict(False, f"no internet-facing load balancer of {self.net.label} listens on {ports.text()}")]
        client = Address(f"operators in {src.cidr}", (src.cidr,), public=True)
        out: list[Verdict] = []
        for lb in lbs:
            listener = lb.listener(ports.from_port)
            assert listener is not None
            steps = []
            for sid in lb.subnets:
                route = self.net.subnet(sid).internet
                if route.kind == "gateway":
                    continue
                ok: Ternary = None if route.kind == "unknown" else False
                steps.append(Verdict(ok, f"{lb.label} sits in {self.net.subnet(sid).label}, which does not route "
                                         f"to an internet gateway ({route.detail})"))
            steps.append(self.allows(lb.groups, "ingress", ports, client, f"load balancer {lb.label}"))
            if listener.preserve_client_ip:
                steps += self._targets_admit(lb, listener.targets, listener.target_port, client)
            out.append(self._prefix(f"{src.cidr} -> {lb.label}", steps))
        return out


    def _private_api(self, flow: Flow, src: ExternalClients | NetworkClients) -> list[Verdict]:
        ports = flow.ports[0]
        lbs = [lb for lb in self.api_load_balancers(ports.from_port) if lb.internal]
        if not lbs:
            return [Verdict(False, f"no internal load balancer of {self.net.label} listens on {ports.text()}")]
        if isinstance(src, ExternalClients):
            clients = [Address(f"clients in {src.cidr}", (src.cidr,))]
        else:  # one client per address range (an address lies in one family); unknown ranges stay unknown
            clients = [Address(f"hosts in {c}", (c,)) for c in self.net.cidrs] or [
                Address(f"hosts inside {self.net.label}")]
        out: list[Verdict] = []
        for lb in lbs:
            listener = lb.listener(ports.from_port)
            assert listener is not None
            for client in clients:
                steps = [self.allows(lb.groups, "ingress", ports, client, f"load balancer {lb.label}")]
                if listener.preserve_client_ip:
                    steps += self._targets_admit(lb, listener.targets, listener.target_port, client)
                out.append(self._prefix(f"{client.label} -> {lb.label}", steps))
        return out


def evaluate(network: Network, facts: ClusterFacts, flows: Sequence[Flow]) -> list[FlowResult]:
    """Every flow's verdict against ``network``."""
    evaluator = Evaluator(network, facts)
    return [evaluator.evaluate(f) for f in flows]
