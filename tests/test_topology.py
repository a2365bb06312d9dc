"""The address plan: zones, subnets and fixed control-plane addresses."""

from __future__ import annotations

import ipaddress

import pytest

from cfcr.config import load_spec
from cfcr.config.topology import control_plane_members, zones


@pytest.mark.parametrize("count", [1, 3, 5])
def test_members_are_spread_over_zones_inside_their_subnets(count: int) -> None:
    spec = load_spec({"cfcr:cloud": "aws", "cfcr:region": "us-east-1", "cfcr:controlPlane": {"count": count}}, "t")
    members = control_plane_members(spec)
    assert [m.name for m in members] == [f"cfcr-t-cp-{i}" for i in range(count)]
    assert len({m.address for m in members}) == count
    plan = zones(spec)
    for i, member in enumerate(members):
        zone = plan[i % len(plan)]
        assert zone.index == i % 3
        assert ipaddress.ip_address(member.address) in ipaddress.ip_network(zone.private_cidr)


def test_subnets_lie_in_the_node_network_and_do_not_overlap() -> None:
    spec = load_spec({"cfcr:cloud": "gcp", "cfcr:region": "europe-west4", "cfcr:networking": {"nodeCidr": "10.8.0.0/16"}}, "t")
    node = ipaddress.ip_network("10.8.0.0/16")
    nets = [ipaddress.ip_network(c) for z in zones(spec) for c in (z.private_cidr, z.public_cidr)]
    assert all(n.subnet_of(node) for n in nets)  # type: ignore[arg-type]
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def test_addresses_are_stable_across_runs_and_zone_names_follow_config() -> None:
    config = {"cfcr:cloud": "azure", "cfcr:region": "westeurope", "cfcr:controlPlane": {"count": 3, "zones": ["1", "2", "3"]}}
    first = control_plane_members(load_spec(config, "t"))
    assert first == control_plane_members(load_spec(config, "t"))
    assert [z.name for z in zones(load_spec(config, "t"))] == ["1", "2", "3"]
