"""Where things sit: zones, subnets and the control-plane members' fixed addresses.

Derived from the spec alone, so every cloud lays out the same plan: the node network is cut
into eight equal blocks; block ``i`` is zone ``i``'s private (node) subnet and block ``4+i``
its public (load balancer / NAT) subnet. Control-plane member ``i`` lives in zone
``i % zones`` at a fixed address, so etcd's static membership names every member up front
and a replaced VM comes back at the same address with the same certificates.

Member names (``<cluster>-cp-<i>``) are node names, etcd member names and certificate SANs,
so each must be a DNS label (at most 63 characters); :func:`fit_name` shortens the cluster
part of a longer one with a hash, and leaves every name that fits as it is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from cfcr.config.schema import ClusterSpec, NodePoolConfig
from cfcr.constants import private_api_name
from cfcr.names import fit_name

__all__ = ["DNS_LABEL_MAX", "ControlPlaneMember", "ZonePlan", "api_endpoint", "control_plane_members", "fit_name", "zones"]

DEFAULT_ZONE_COUNT = 3
MAX_ZONES = 4
FIRST_MEMBER_OFFSET = 10  # clouds reserve the first few addresses of a subnet (AWS 4, Azure 4, GCP 2)
DNS_LABEL_MAX = 63
"""Longest DNS label (RFC 1035 2.3.4): a Kubernetes node name's label, an etcd member name, a SAN label."""


@dataclass(frozen=True)
class ControlPlaneMember:
    """One control-plane node, which is also one static etcd member."""

    name: str
    """The etcd member name, e.g. ``prod-cp-0`` (also the Node's name unless ``node_name`` is set)."""
    address: str
    """The address peers and clients use to reach it: an IP address or a DNS name."""
    node_name: str | None = None
    """The Kubernetes Node name its kubelet registers: the host name its cloud gives the VM
    (on AWS ``ip-10-0-0-10``), so that kubelet serving certificates name what the network
    resolves. None: the member name."""

    @property
    def kubelet_name(self) -> str:
        """The Node name (``node_name`` or the member name)."""
        return self.node_name or self.name


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
    """Stable node and etcd member name of control-plane member ``index``: ``<cluster>-cp-<i>``,
    a DNS label; a cluster name too long for that is shortened with a hash (:func:`fit_name`)."""
    assert spec.name is not None, "load_spec names every cluster"
    suffix = f"-cp-{index}"
    return fit_name(f"{spec.name}{suffix}", DNS_LABEL_MAX, keep=suffix)


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


def api_endpoint(spec: ClusterSpec) -> str:
    """The API host name every node and kubeconfig uses: ``networking.apiDnsName``, or
    ``api.<cluster>.cfcr.internal`` in the cluster's private zone."""
    assert spec.name is not None, "load_spec names every cluster"
    return spec.networking.api_dns_name or private_api_name(spec.name)


T = TypeVar("T")


def pool_share(spec: ClusterSpec, pool: NodePoolConfig, index: int, per_zone: Sequence[T]) -> list[T]:
    """The entries of ``per_zone`` (one per zone of :func:`zones`: subnets, zone names) for the
    pool's zones, all of them when the pool names none; ``ValueError`` naming
    ``cfcr:nodePools[index].zones`` for a zone the control plane does not use."""
    if not pool.zones:
        return list(per_zone)
    by_name = {z.name: z.index for z in zones(spec) if z.name}
    missing = [z for z in pool.zones if z not in by_name]
    if missing:
        raise ValueError(
            f"cfcr:nodePools[{index}].zones: got {missing}; allowed: the control plane's zones "
            f"(cfcr:controlPlane.zones: {sorted(by_name)})"
        )
    return [per_zone[by_name[z]] for z in dict.fromkeys(pool.zones)]
