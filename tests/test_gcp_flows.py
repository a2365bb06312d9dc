"""The flow check on GCP renders (cfcr.gcp.flows): both GCP stacks pass every flow with nothing
open beyond them, and breaking the render piece by piece blocks exactly the flows that need the
piece (or opens what a rule adds). Rows are the render's own; each test changes one thing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from cfcr.flows import FlowReport, check_rows, rows_of
from cfcr.gcp.flows import read_network
from tests.test_flows import Renders, blocked

Row = dict[str, Any]
FIREWALL = "gcp:compute/firewall:Firewall"


@pytest.fixture(scope="module")
def renders() -> Renders:
    return Renders()


def check(renders: Renders, stack: str, change: Callable[[list[Row]], None]) -> FlowReport:
    spec, result = renders.get(stack)
    rows = copy.deepcopy(rows_of(result.resources))
    change(rows)
    return check_rows(spec, rows, result.user_data, stack=stack)


def rule(rows: list[Row], suffix: str) -> Row:
    (found,) = [r for r in rows if r["type"] == FIREWALL and r["name"].endswith(suffix)]
    return found


def drop(rows: list[Row], token: str, suffix: str = "") -> None:
    rows[:] = [r for r in rows if not (r["type"] == token and r["name"].endswith(suffix))]


@pytest.mark.parametrize("stack", ["gcp-stable", "gcp-edge"])
def test_both_gcp_stacks_pass_every_flow_with_nothing_open(renders: Renders, stack: str) -> None:
    report = renders.check(stack)
    assert report.ok and not report.unverified and not report.exposures, report.format()
    network = read_network(renders.rows(stack))
    assert network is not None and network.cloud == "gcp"
    spec, _ = renders.get(stack)
    assert sorted(m.member for m in network.machines if m.member) == sorted(
        f"{spec.name}-cp-{i}" for i in range(spec.control_plane.count))
    assert sorted(m.pool for m in network.machines if m.pool) == sorted(p.name for p in spec.node_pools)


def test_without_the_etcd_rule_the_members_cannot_form_a_cluster(renders: Renders) -> None:
    report = check(renders, "gcp-stable", lambda rows: drop(rows, FIREWALL, "-etcd"))
    assert blocked(report) == {"etcd-client", "etcd-peer"}


def test_without_cloud_nat_nodes_cannot_pull_or_fetch(renders: Renders) -> None:
    report = check(renders, "gcp-stable", lambda rows: drop(rows, "gcp:compute/routerNat:RouterNat"))
    assert {f.split(":")[0] for f in blocked(report)} == {
        "egress-secrets", "egress-images", "egress-packages", "egress-cloud-api"}
    assert "default internet gateway" in report.format()


def test_the_internal_proxy_needs_its_proxy_only_range_on_the_members(renders: Renders) -> None:
    spec, _ = renders.get("gcp-stable")

    def narrow(rows: list[Row]) -> None:
        r = rule(rows, "-api-from-lb")
        r["inputs"]["sourceRanges"] = [c for c in r["inputs"]["sourceRanges"] if not c.startswith("10.")]
    report = check(renders, "gcp-stable", narrow)
    assert "api-lb-forward" in blocked(report)
    assert "api-internal:pool/general" not in blocked(report), "nodes reach the proxy; the proxy is what is refused"


def test_the_health_checks_need_googles_probe_ranges(renders: Renders) -> None:
    def narrow(rows: list[Row]) -> None:
        r = rule(rows, "-api-from-lb")
        r["inputs"]["sourceRanges"] = [c for c in r["inputs"]["sourceRanges"] if c.startswith("10.")]
    report = check(renders, "gcp-stable", narrow)
    assert "api-lb-health" in blocked(report)

    def no_node_health(rows: list[Row]) -> None:
        drop(rows, FIREWALL, "-node-health")
    assert blocked(check(renders, "gcp-stable", no_node_health)) == {"node-health:pool/general"}


def test_a_private_record_to_an_unknown_address_passes_no_node_group(renders: Renders) -> None:
    def elsewhere(rows: list[Row]) -> None:
        (record,) = [r for r in rows if r["type"] == "gcp:dns/recordSet:RecordSet" and "internal" in r["name"]]
        record["inputs"]["rrdatas"] = ["10.0.99.99"]
    report = check(renders, "gcp-stable", elsewhere)
    internal = [r for r in report.results if r.flow.id.startswith("api-internal")]
    assert len(internal) == 2 and all(r.status == "UNVERIFIED" for r in internal)
    assert all("not a machine or load balancer of the render" in d for r in internal for d in r.details)


def test_public_clients_are_admitted_by_the_members_own_firewall(renders: Renders) -> None:
    spec, _ = renders.get("gcp-stable")
    cidr = spec.networking.api_allowed_cidrs[0]
    report = check(renders, "gcp-stable", lambda rows: drop(rows, FIREWALL, "-api-from-clients"))
    assert blocked(report) == {f"api-public:{cidr}"}


def test_a_rule_opening_ssh_to_the_world_is_reported_open(renders: Renders) -> None:
    def ssh(rows: list[Row]) -> None:
        extra = copy.deepcopy(rule(rows, "-kubelet"))
        extra["name"] = extra["name"].replace("-kubelet", "-ssh")
        extra["urn"] += "-ssh"
        extra["inputs"].pop("sourceServiceAccounts", None)
        extra["inputs"]["sourceRanges"] = ["0.0.0.0/0"]
        extra["inputs"]["allows"] = [{"protocol": "tcp", "ports": ["22"]}]
        rows.append(extra)
    report = check(renders, "gcp-stable", ssh)
    assert not report.ok and not report.blocked
    assert any(e.rule.name.endswith("-ssh") and "tcp/22" in e.admits for e in report.exposures)


def test_a_kubelet_rule_from_a_pool_metrics_server_cannot_run_on_is_open(renders: Renders) -> None:
    spec, _ = renders.get("gcp-edge")

    def widen(rows: list[Row]) -> None:
        r = rule(rows, "-kubelet")
        r["inputs"]["sourceServiceAccounts"] = [*r["inputs"]["sourceServiceAccounts"],
                                                f"{spec.name}-w-spot@example-project.iam.gserviceaccount.com"]
    report = check(renders, "gcp-edge", widen)
    assert report.exposures and all("w-spot" in e.peer and e.rule.name.endswith("-kubelet") for e in report.exposures)
