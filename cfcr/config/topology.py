"""Where things sit: zones, subnets and the control-plane members' fixed addresses.

Derived from the spec alone, so every cloud lays out the same plan: the node network is cut
into eight equal blocks; block ``i`` is zone ``i``'s private (node) subnet and block ``4+i``
its public (load balancer / NAT) subnet. Control-plane member ``i`` lives in zone
``i % zones`` at a fixed address, so etcd's static membership names every member up front
and a replaced VM comes back at the same address with the same certificates.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cfcr.config.schema import ClusterSpec
from cfcr.pki.specs import ControlPlaneMember

DEFAULT_ZONE_COUNT = 3
MAX_ZONES = 4
FIRST_MEMBER_OFFSET = 10  # clouds reserve the first few addresses of a subnet (AWS 4, Azure 4, GCP 2)


@dataclass(frozen=True)
class ZonePlan:
    """One zone's share of the node network."""

    index: int
    """Position of the zone (0-based); zone names come from config or the cloud."""
    name: str | None
    """Zone name when the config fixes it; ``None`` lets the cloud layer pick."""
    private_cidr: str
    """Subnet for nodes."""
    public_cidr: str
    """Subnet for the public load balancer and NAT."""


def zone_count(spec: ClusterSpec) -> int:
    """How many zones the cluster spreads over."""
    return len(spec.control_plane.zones) or DEFAULT_ZONE_COUNT


def zones(spec: ClusterSpec) -> list[ZonePlan]:
    """The per-zone subnet plan."""
    network = ipaddress.IPv4Network(spec.networking.node_cidr)
    blocks = list(network.subnets(prefixlen_diff=3))
    count = min(zone_count(spec), MAX_ZONES)
    names: list[str | None] = list(spec.control_plane.zones) or [None] * count
    return [ZonePlan(i, names[i], str(blocks[i]), str(blocks[MAX_ZONES + i])) for i in range(count)]


def member_name(spec: ClusterSpec, index: int) -> str:
    """Stable node and etcd member name of control-plane member ``index``."""
    return f"{spec.name}-cp-{index}"


def control_plane_members(spec: ClusterSpec) -> list[ControlPlaneMember]:
    """Every control-plane member with its fixed private address."""
    plan = zones(spec)
    members = []
    for i in range(spec.control_plane.count):
        zone = plan[i % len(plan)]
        subnet = ipaddress.IPv4Network(zone.private_cidr)
        address = subnet.network_address + FIRST_MEMBER_OFFSET + i // len(plan)
        members.append(ControlPlaneMember(name=member_name(spec, i), address=str(address)))
    return members


def member_zone(spec: ClusterSpec, index: int) -> ZonePlan:
    """The zone control-plane member ``index`` lives in."""
    plan = zones(spec)
    return plan[index % len(plan)]
