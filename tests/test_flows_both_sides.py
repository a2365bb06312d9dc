"""Both sides of every access rule, from the render: each rule of each stack's network is
needed by a flow (take it away and a named flow is blocked), and nothing is open beyond the
flows (add or widen a rule and the check names it). Nothing here is a literal address or
port of a stack: rules, groups, CIDRs and flows all come from the render and the spec."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable
from typing import Any

import pytest

from cfcr.flows import check_rows
from cfcr.flows.model import cluster_flows
from tests.test_flows import INGRESS, SG, STACKS, Renders, Row, blocked, of_type

AWS_STACKS = [s for s, _ in STACKS if s.startswith("aws-")]


_RENDERS = Renders()
"""Each stack rendered once for this module (the mutation table below reads it too)."""


@pytest.fixture(scope="module")
def renders() -> Renders:
    return _RENDERS


def _rules(rows: list[Row]) -> list[Row]:
    return of_type(rows, INGRESS)


def _group_id(rows: list[Row], suffix: str) -> str:
    """The id of the security group whose name ends with ``-suffix``."""
    (group,) = [g for g in of_type(rows, SG) if g["name"].endswith(f"-{suffix}")]
    return str(group["id"])


def _members(spec: Any) -> int:
    return int(spec.control_plane.count)


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_nothing_is_open_beyond_the_flows(renders: Renders, stack: str) -> None:
    report = renders.check(stack)
    assert report.results, "the stack has a network to check"
    assert report.exposures == [], report.format()


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_every_ingress_rule_is_needed_by_a_flow(renders: Renders, stack: str) -> None:
    """Take away any one ingress rule and some flow is blocked -- the public API's rule for the
    operators' CIDRs included (its flow is ``api-public:<cidr>``)."""
    spec, _ = renders.get(stack)
    rows = renders.rows(stack)
    rules = _rules(rows)
    assert rules
    unneeded = []
    for rule in rules:
        inputs = rule["inputs"]
        self_rule = inputs.get("referencedSecurityGroupId") == inputs["securityGroupId"]
        if self_rule and _members(spec) == 1 and rule["name"].startswith(f"{spec.name}-cp-"):
            continue  # one member: its group admits only itself
        report = renders.check(stack, [r for r in rows if r is not rule])
        if not blocked(report):
            unneeded.append(rule["name"])
        cidr = inputs.get("cidrIpv4") or inputs.get("cidrIpv6")
        if cidr and spec.networking.api_public and cidr in [str(c) for c in spec.networking.api_allowed_cidrs]:
            assert f"api-public:{cidr}" in blocked(report), report.format()
    assert not unneeded, f"rules no flow needs: {unneeded}"


def test_operators_lose_a_public_api_without_their_rule(renders: Renders) -> None:
    """The audit's case: only the VPC could reach a public API once the rules for
    apiAllowedCidrs were gone, and nothing noticed."""
    spec, _ = renders.get("aws-stable")
    assert spec.networking.api_public and spec.networking.api_allowed_cidrs
    rows = renders.rows("aws-stable")
    allowed = {str(c) for c in spec.networking.api_allowed_cidrs}
    kept = [r for r in rows if not (r["type"] == INGRESS and r["inputs"].get("cidrIpv4") in allowed)]
    assert len(kept) == len(rows) - len(allowed)
    report = renders.check("aws-stable", kept)
    assert blocked(report) == {f"api-public:{c}" for c in allowed}, report.format()
    assert not report.ok


def test_a_private_api_needs_its_rule_for_the_network(renders: Renders) -> None:
    spec, _ = renders.get("aws-edge")
    assert not spec.networking.api_public
    rows = renders.rows("aws-edge")
    report = renders.check("aws-edge", [r for r in rows if not r["name"].endswith("-api-lb-from-vpc")])
    assert "api-private:network" in blocked(report), report.format()


# --------------------------------------------------------------------------- more than needed

Mutation = Callable[[list[Row]], tuple[list[Row], str]]


def _add(rows: list[Row], target: str, name: str, **inputs: Any) -> tuple[list[Row], str]:
    group = _group_id(rows, target)
    row = {"type": INGRESS, "name": name, "id": f"{name}-id", "urn": name, "parent": None, "dependencies": [],
           "inputs": {"securityGroupId": group, **inputs}, "outputs": {}}
    return [*rows, row], name


def _change(rows: list[Row], suffix: str, **inputs: Any) -> tuple[list[Row], str]:
    out = copy.deepcopy(rows)
    (rule,) = [r for r in _rules(out) if r["name"].endswith(f"-{suffix}")]
    rule["inputs"].update(inputs)
    return out, str(rule["name"])


def _api_cidr_rule(rows: list[Row]) -> str:
    (rule,) = [r for r in _rules(rows) if r["inputs"].get("cidrIpv4") and r["name"].split("-api-lb-from-")[-1][0].isdigit()]
    return str(rule["name"]).split("-api-lb-", 1)[1]


def _member_slice(rows: list[Row], prefix: int) -> str:
    """The /``prefix`` around the first control-plane member's fixed address (from the render)."""
    (first, *_) = sorted(str(r["inputs"]["privateIp"]) for r in of_type(rows, "aws:ec2/instance:Instance"))
    return str(ipaddress.ip_network(f"{first}/{prefix}", strict=False))


def _allowed_half(rows: list[Row]) -> str:
    """The first half of the operators' CIDR the public API admits (from the render)."""
    cidr = next(r["inputs"]["cidrIpv4"] for r in _rules(rows) if r["name"].endswith("-api-lb-" + _api_cidr_rule(rows)))
    return str(next(ipaddress.ip_network(cidr).subnets(prefixlen_diff=1)))


MUTATIONS: dict[str, tuple[Mutation, str | Callable[[list[Row]], set[str]]]] = {
    "ssh from the internet to the workers": (
        lambda rows: _add(rows, "worker", "extra-ssh", ipProtocol="tcp", fromPort=22, toPort=22, cidrIpv4="0.0.0.0/0"),
        "tcp/22"),
    "etcd from the workers": (
        lambda rows: _add(rows, "control-plane", "extra-etcd", ipProtocol="tcp", fromPort=2379, toPort=2379,
                          referencedSecurityGroupId=_group_id(rows, "worker")),
        "tcp/2379"),
    "the kubelet rule widened to every port": (
        lambda rows: _change(rows, "cp-kubelet-from-worker", toPort=65535), "tcp/10251-65535"),
    "the public API opened to the internet": (
        lambda rows: _change(rows, "api-lb-" + _api_cidr_rule(rows), cidrIpv4="0.0.0.0/0"), "all of 0.0.0.0/0"),
    "every protocol between workers": (
        lambda rows: _change(rows, "worker-calico-vxlan-from-worker", ipProtocol="-1"), "every protocol and port"),
    "every ICMP type from the control plane": (
        lambda rows: _add(rows, "worker", "extra-icmp", ipProtocol="icmp", fromPort=-1, toPort=-1,
                          referencedSecurityGroupId=_group_id(rows, "control-plane")),
        "every ICMP type"),
    # rules some flows may use (their clients partly inside the CIDR): still judged
    "every protocol from a slice of the network around a member": (
        lambda rows: _add(rows, "control-plane", "extra-slice", ipProtocol="-1", cidrIpv4=_member_slice(rows, 20)),
        lambda rows: {"every protocol and port", "all of " + _member_slice(rows, 20)}),
    "every port from part of the operators' CIDR": (
        lambda rows: _add(rows, "api-lb", "extra-half", ipProtocol="tcp", fromPort=0, toPort=65535,
                          cidrIpv4=_allowed_half(rows)),
        "tcp/0-6442, tcp/6444-65535"),
}


def renders_rows() -> list[Row]:
    return _RENDERS.rows("aws-stable")


@pytest.mark.parametrize("case", list(MUTATIONS))
def test_a_rule_added_or_widened_beyond_need_is_named(case: str) -> None:
    mutate, admits = MUTATIONS[case]
    original = renders_rows()
    rows, rule = mutate(original)
    report = _RENDERS.check("aws-stable", rows)
    wanted = {admits} if isinstance(admits, str) else admits(original)
    assert {e.rule.name for e in report.exposures} == {rule}, report.format()
    assert {e.admits for e in report.exposures} == wanted, report.format()
    assert not report.ok and f"OPEN       rule {rule}:" in report.format()
    assert not report.blocked, "the flows themselves still get through"


def test_the_flows_decide_what_may_be_open(renders: Renders) -> None:
    """Without the flows for metrics-server, its kubelet rules are open beyond need: the
    exposure side is the flow list's complement, not a list of its own."""
    spec, result = renders.get("aws-stable")
    rows = renders.rows("aws-stable")
    import cfcr.flows.check as check

    def without_metrics(facts: Any) -> Any:
        return [f for f in cluster_flows(facts) if not f.id.startswith("kubelet-metrics:")]

    original = check.cluster_flows
    check.cluster_flows = without_metrics  # type: ignore[assignment]
    try:
        report = check_rows(spec, rows, result.user_data, stack="aws-stable")
    finally:
        check.cluster_flows = original
    assert {e.rule.name.removeprefix(f"{spec.name}-") for e in report.exposures} == {
        "cp-kubelet-from-worker", "worker-kubelet-from-worker"}, report.format()
