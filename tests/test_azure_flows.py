"""The flow check on Azure (cfcr.azure.flows): the whole program (cfcr.azure.Cluster and the
addons) rendered for azure-stable and two variants of it (a public API; Cilium) passes every flow
of the model with nothing open beyond them; removing one rule blocks exactly the flows that need
it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from cfcr.azure.flows import read_network
from cfcr.config import ClusterSpec
from cfcr.config.topology import control_plane_members
from cfcr.flows import FlowReport, check_rows, rows_of
from tests.test_flows import Renders, blocked

Row = dict[str, Any]
RULE = "azure-native:network:SecurityRule"


def program_rows(spec: ClusterSpec) -> list[Row]:
    """The rows of the program (``cfcr.program.build``) for ``spec``, rendered offline."""
    from cfcr.program import build
    from cfcr.render import run_program

    monitor, _, _ = run_program(lambda: build(spec), project="cfcr", stack="azure-stable")
    return rows_of(monitor.recorded)


class Azure:
    """The azure-stable render (roles and user-data) and the program's rows for each variant."""

    def __init__(self) -> None:
        self.renders = Renders()
        self.rows: dict[str, list[Row]] = {}

    def spec(self, variant: str) -> ClusterSpec:
        spec, _ = self.renders.get("azure-stable")
        if variant == "private":
            net = spec.networking.model_copy(update={"api_public": False, "api_allowed_cidrs": []})
            return spec.model_copy(update={"networking": net})
        if variant == "public":
            net = spec.networking.model_copy(update={"api_public": True,
                                                     "api_allowed_cidrs": ["203.0.113.0/24"]})
            return spec.model_copy(update={"networking": net})
        if variant == "cilium":
            return spec.model_copy(update={"cni": "cilium"})
        return spec

    def check(self, variant: str, change: Callable[[list[Row]], None] | None = None) -> FlowReport:
        spec = self.spec(variant)
        _, result = self.renders.get("azure-stable")
        if variant not in self.rows:
            self.rows[variant] = rows_of(result.resources) if variant == "stack" else program_rows(spec)
        rows = copy.deepcopy(self.rows[variant])
        if change is not None:
            change(rows)
        return check_rows(spec, rows, result.user_data, stack="azure-stable")


@pytest.fixture(scope="module")
def azure() -> Azure:
    return Azure()


def drop(rows: list[Row], suffix: str, token: str = RULE) -> None:
    before = len(rows)
    rows[:] = [r for r in rows if not (r["type"] == token and r["name"].endswith(suffix))]
    assert len(rows) < before, f"no {token} ends with {suffix}"


@pytest.mark.parametrize("variant", ["stack", "private", "public", "cilium"])
def test_every_flow_passes_with_nothing_open(azure: Azure, variant: str) -> None:
    report = azure.check(variant)
    assert report.problem is None and report.network is not None
    assert report.ok and not report.unverified and not report.exposures, report.format()
    assert len(report.passed) == len(report.results) > 15
    network = read_network(azure.rows[variant])
    assert network is not None and network.cloud == "azure"
    spec = azure.spec(variant)
    assert sorted(m.member for m in network.machines if m.member) == sorted(
        m.name for m in control_plane_members(spec))


def test_without_the_etcd_rule_the_members_cannot_form_a_cluster(azure: Azure) -> None:
    assert blocked(azure.check("private", lambda rows: drop(rows, "-etcd"))) == {"etcd-client", "etcd-peer"}


def test_without_the_probe_rule_the_load_balancer_sees_no_api_server(azure: Azure) -> None:
    assert blocked(azure.check("private", lambda rows: drop(rows, "-api-from-lb"))) == {"api-lb-health"}


def test_without_the_nodes_rule_nodes_reach_no_api(azure: Azure) -> None:
    found = blocked(azure.check("public", lambda rows: drop(rows, "-api-from-nodes")))
    assert {f.split(":")[0] for f in found} == {"api-internal", "api-service"}
    # with a private API, the rule for hosts inside the network admits the nodes as well
    assert not blocked(azure.check("private", lambda rows: drop(rows, "-api-from-nodes")))


def test_public_clients_need_their_rule_on_the_members(azure: Azure) -> None:
    assert blocked(azure.check("public", lambda rows: drop(rows, "-api-from-clients"))) == {"api-public:203.0.113.0/24"}
    assert blocked(azure.check("private", lambda rows: drop(rows, "-api-from-network"))) == {"api-private:network"}


def test_the_kubelet_rules(azure: Azure) -> None:
    assert {f.split(":")[0] for f in blocked(azure.check("private", lambda rows: drop(
        rows, "-kubelet-from-control-plane")))} == {"kubelet-apiserver"}
    assert {f.split(":")[0] for f in blocked(azure.check("private", lambda rows: drop(
        rows, "-kubelet-from-workers")))} == {"kubelet-metrics"}


def test_without_the_nodeports_rule_no_service_load_balancer_sees_a_worker(azure: Azure) -> None:
    """The final deny overrides AllowAzureLoadBalancerInBound: without rule 180 the probes of
    every Service's load balancer (168.63.129.16, on the NodePort range) are dropped."""
    report = azure.check("private", lambda rows: drop(rows, "-nodeports-from-lb"))
    assert blocked(report) == {"service-lb-health:pool/general"}
    assert "tcp/30000-32767" in report.format()
    # the control plane is no backend (kubeadm's exclude-from-external-load-balancers label)
    assert not any(r.flow.id == "service-lb-health:control-plane" for r in report.results)


def test_each_cni_port_needs_its_rule(azure: Azure) -> None:
    assert blocked(azure.check("private", lambda rows: drop(rows, "-cni-vxlan"))) == {"cni:udp/8472"}
    assert blocked(azure.check("cilium", lambda rows: drop(rows, "-cni-icmp-echo"))) == {"cni:icmp/8"}


def test_without_the_nat_gateway_nodes_cannot_pull_or_fetch(azure: Azure) -> None:
    def no_nat(rows: list[Row]) -> None:
        for r in rows:
            if r["type"] == "azure-native:network:Subnet":
                r["inputs"].pop("natGateway", None)
                r["outputs"].pop("natGateway", None)
    report = azure.check("private", no_nat)
    assert {f.split(":")[0] for f in blocked(report)} == {
        "egress-secrets", "egress-images", "egress-packages", "egress-cloud-api"}
    assert "default outbound access is off" in report.format()


def test_without_the_final_deny_azures_default_rules_open_everything_between_nodes(azure: Azure) -> None:
    report = azure.check("private", lambda rows: drop(rows, "-deny-all-inbound"))
    assert not report.blocked and not report.ok
    opened = {e.rule.name for e in report.exposures if e.admits == "every protocol and port"}
    assert opened == {"Azure's default rule AllowVnetInBound", "Azure's default rule AllowAzureLoadBalancerInBound"}


def test_a_rule_allowing_ssh_from_the_internet_is_shadowed_by_the_deny_or_reported_open(azure: Azure) -> None:
    def ssh(priority: int) -> Callable[[list[Row]], None]:
        def change(rows: list[Row]) -> None:
            (etcd,) = [r for r in rows if r["type"] == RULE and r["name"].endswith("-etcd")]
            extra = copy.deepcopy(etcd)
            extra["name"] = extra["inputs"]["securityRuleName"] = etcd["name"].replace("-etcd", "-ssh")
            extra["urn"] += "-ssh"
            extra["id"] += "-ssh"
            for side in ("inputs", "outputs"):
                extra[side].pop("sourceApplicationSecurityGroups")
                extra[side].update(sourceAddressPrefix="Internet", destinationPortRange="22", priority=priority)
            rows.append(extra)
        return change
    assert azure.check("private", ssh(300)).ok, "the deny at 100 takes SSH from the internet away"
    report = azure.check("private", ssh(50))
    assert not report.ok and not report.blocked
    assert any(e.rule.name.endswith("-ssh") and "tcp/22" in e.admits for e in report.exposures)
