"""The other side of the flow check: what a rendered network admits that no flow needs.

The flows (:mod:`cfcr.flows.model`) say what must get through; every ingress rule of every
firewall group must be there for one of them. While the evaluator decides the flows, it notes
each ingress rule that let a flow's packets in, with the ports and the peer it admitted
(:class:`~cfcr.flows.evaluate.Use`). A rule then *exposes* something when, for one of its
peers (a CIDR or a group):

* no flow came in through it at all;
* it opens ports (or protocols, or ICMP types) beyond the ones the flows used;
* its CIDR is wider than the addresses the flows certainly came from (``0.0.0.0/0`` where
  operators sit in ``203.0.113.0/24``; ``10.0.0.0/20`` where only one member sits in it).

Ports are judged against every flow that may have come in through the rule. A CIDR only ever
*maybe* used (clients the render cannot place, e.g. an existing network's ranges) is not judged
for width.

Egress is left out: the nodes' egress is open by design (images, packages, cloud APIs); what
an attacker on a node can *reach* is decided by the ingress rules of what it targets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cfcr.flows.evaluate import Evaluator, Use
from cfcr.flows.model import Ports
from cfcr.flows.network import Rule


@dataclass(frozen=True)
class Exposure:
    """Traffic one rule admits from one of its peers that no flow of the cluster needs."""

    rule: Rule
    group: str
    """The group's name in the render."""
    peer: str
    """The CIDR, or the peer group's name."""
    admits: str
    """What it admits beyond need: ``tcp/22``, ``every protocol and port``, ``all of 0.0.0.0/0``."""
    why: str

    def text(self) -> str:
        return f"rule {self.rule.name}: {self.group} admits {self.admits} from {self.peer}: {self.why}"


def _rule_ports(rule: Rule) -> str:
    if rule.protocol == "all":
        return "every protocol and port"
    if rule.protocol == "icmp":
        if rule.from_port in (None, -1):
            return "every ICMP type"
        if rule.to_port in (None, -1):
            return f"icmp type {rule.from_port}, every code"
        return Ports.icmp(rule.from_port, int(rule.to_port)).text()
    return _range(rule.protocol, *rule.span())


def _range(protocol: str, lo: int, hi: int) -> str:
    return f"{protocol}/{lo}" if lo == hi else f"{protocol}/{lo}-{hi}"


def _ports_beyond(rule: Rule, used: Sequence[Ports], icmp_by_type: bool = True) -> str | None:
    """What ``rule`` opens that none of ``used`` needed, as text; None when nothing (an ICMP
    rule, where the firewall cannot admit single types, opens only what it must)."""
    if rule.protocol == "icmp" and not icmp_by_type:
        return None
    if rule.protocol == "icmp":
        # the flows name exact ICMP types and codes: a rule for any type or code is wider
        return _rule_ports(rule) if rule.from_port in (None, -1) or rule.to_port in (None, -1) else None
    if rule.protocol == "all":
        return _rule_ports(rule)
    lo, hi = rule.span()
    gaps: list[tuple[int, int]] = []
    start = lo
    for p in sorted((p for p in used if p.protocol == rule.protocol), key=lambda p: p.from_port):
        if p.from_port > start:
            gaps.append((start, min(p.from_port - 1, hi)))
        start = max(start, p.to_port + 1)
        if start > hi:
            break
    if start <= hi:
        gaps.append((start, hi))
    if not gaps:
        return None
    return ", ".join(_range(rule.protocol, a, b) for a, b in gaps)


def _covered(networks: Iterable[str], cidr: str) -> bool:
    """Do ``networks`` together hold every address of ``cidr``?"""
    target = ipaddress.ip_network(cidr, strict=False)
    first, last = int(target.network_address), int(target.broadcast_address)
    spans = []
    for text in networks:
        n = ipaddress.ip_network(text, strict=False)
        if n.version == target.version:
            lo, hi = max(first, int(n.network_address)), min(last, int(n.broadcast_address))
            if lo <= hi:
                spans.append((lo, hi))
    reached = first
    for lo, hi in sorted(spans):
        if lo > reached:
            return False
        reached = max(reached, hi + 1)
    return reached > last


def _peers(rule: Rule) -> list[tuple[str, str]]:
    return [("cidr", c) for c in rule.cidrs] + [("group", g) for g in rule.peer_groups]


def _only_itself(evaluator: Evaluator, group: str) -> bool:
    members = [m for m in evaluator.net.machines if group in m.groups]
    return len(members) == 1 and members[0].address is not None


def _uses_of(uses: Sequence[Use], rule: Rule, kind: str, peer: str) -> list[Use]:
    if kind == "group":
        return [u for u in uses if u.rule == rule and peer in u.peer.groups]
    return [u for u in uses if u.rule == rule and u.peer.within(peer) is not False]


def exposures(evaluator: Evaluator) -> list[Exposure]:
    """What the network of ``evaluator`` admits beyond the flows it has evaluated."""
    net = evaluator.net
    out: list[Exposure] = []
    for rule in (r for r in net.rules if r.direction == "ingress"):
        group = net.group(rule.group)
        for kind, peer in _peers(rule):
            name = peer if kind == "cidr" else net.group(peer)
            if kind == "group" and peer == rule.group and _only_itself(evaluator, peer):
                continue  # one machine admitting its own group admits only itself
            used = _uses_of(evaluator.uses, rule, kind, peer)
            if not used:
                out.append(Exposure(rule, group, name, _rule_ports(rule), "no flow of the cluster comes in this way"))
                continue
            needed = list(dict.fromkeys(u.ports for u in used))
            beyond = _ports_beyond(rule, needed, net.icmp_by_type)
            if beyond is not None:
                out.append(Exposure(rule, group, name, beyond,
                                    f"the flows through it need only {', '.join(p.text() for p in needed)}"))
            certain = [u for u in used if u.ok is True]
            if kind == "cidr" and certain:
                # its width is judged by the clients certainly inside it; a rule only ever
                # *maybe* used (clients the render cannot place) is not judged for width
                sources = list(dict.fromkeys(n for u in certain for n in u.peer.networks))
                if not _covered(sources, peer):
                    out.append(Exposure(rule, group, name, f"all of {peer}",
                                        f"the flows through it come from {', '.join(sources) or 'no known address'}"))
    return out
