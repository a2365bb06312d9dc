"""The network-flow check (cfcr.flows, cfcr.aws.flows, ``cfcr flows``) over every stack's render,
and the AWS network defects it found: nodes could not reach a public API, metrics-server could
not reach kubelets. Addresses, ids and names are read from the renders, never written here."""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cfcr.cli import main
from cfcr.config import ClusterSpec, load_spec, load_stack, read_stack_config
from cfcr.flows import (
    FlowReport,
    Placement,
    check_result,
    check_rows,
    facts_of,
    read_render_dir,
    rows_of,
)
from cfcr.flows.facts import NodeRole
from cfcr.render import RenderResult, render_stack
from cfcr.render.mocks import is_secret

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
BROKEN = "aws-no-egress"


def _stacks(project: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (project / "stacks").glob("Pulumi.*.yaml"))


STACKS = [(s, ROOT) for s in _stacks(ROOT)] + [(s, TESTS) for s in _stacks(TESTS)]
Row = dict[str, Any]


class Renders:
    """Each stack rendered once per module (a render takes seconds)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[ClusterSpec, RenderResult]] = {}

    def get(self, stack: str) -> tuple[ClusterSpec, RenderResult]:
        if stack not in self._cache:
            project = dict((s, p) for s, p in STACKS)[stack]
            project_dir = None if project == ROOT else project
            spec = load_stack(stack, project_dir)
            self._cache[stack] = (spec, render_stack(stack, None, project_dir=project_dir))
        return self._cache[stack]

    def rows(self, stack: str) -> list[Row]:
        return rows_of(self.get(stack)[1].resources)

    def check(self, stack: str, rows: list[Row] | None = None) -> FlowReport:
        spec, result = self.get(stack)
        return check_rows(spec, rows if rows is not None else self.rows(stack), result.user_data, stack=stack)


@pytest.fixture(scope="module")
def renders() -> Renders:
    return Renders()


def of_type(rows: list[Row], token: str) -> list[Row]:
    return [r for r in rows if r["type"] == token]


def named(rows: list[Row], token: str, name: str) -> Row:
    (row,) = [r for r in of_type(rows, token) if r["name"] == name]
    return row


def statuses(report: FlowReport) -> dict[str, str]:
    return {r.flow.id: r.status for r in report.results}


def blocked(report: FlowReport) -> set[str]:
    return {r.flow.id for r in report.blocked}


LB = "aws:lb/loadBalancer:LoadBalancer"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
RECORD = "aws:route53/record:Record"


# --------------------------------------------------------------------------- every stack


@pytest.mark.parametrize(("stack", "project"), STACKS, ids=[s for s, _ in STACKS])
def test_every_stack_of_every_cloud(renders: Renders, stack: str, project: Path) -> None:
    spec, _ = renders.get(stack)
    report = renders.check(stack)
    if stack == BROKEN:
        assert not report.ok
        return
    assert report.ok and report.problem is None, report.format()
    assert not report.unverified, report.format()
    assert len(report.passed) == len(report.results) > 15


def test_the_flow_list(renders: Renders) -> None:
    """Each node group to the API (inside and through the Service), each load balancer to the API
    servers, operators to the public API, the kubelets, etcd, the CNI's ports, egress."""
    spec, result = renders.get("aws-stable")
    facts = facts_of(spec, renders.rows("aws-stable"), result.user_data)
    ids = set(statuses(renders.check("aws-stable")))
    groups = ["control-plane", *(f"pool/{p.name}" for p in spec.node_pools)]
    expected = {
        *(f"{kind}:{g}" for kind in ("api-internal", "api-service", "kubelet-apiserver", "kubelet-metrics",
                                     "egress-secrets", "egress-images", "egress-packages") for g in groups),
        *(f"{kind}:pool/{p.name}" for kind in ("node-health", "service-lb-health") for p in spec.node_pools),
        "api-lb-forward", "api-lb-health", "etcd-client", "etcd-peer", "egress-cloud-api:control-plane",
        *(f"api-public:{c}" for c in spec.networking.api_allowed_cidrs),
        *(f"cni:{p.protocol}/{p.from_port}" for p, _ in facts.cni_ports),
    }
    assert ids == expected
    assert facts.api_host == f"api.{spec.name}.cfcr.internal" and facts.api_port == 6443
    assert [r.role for r in facts.roles] == [*(f"control-plane-{i}" for i in range(spec.control_plane.count)),
                                             *(f"worker-{p.name}" for p in spec.node_pools)]


def test_cni_ports_follow_the_addons_and_match_the_firewall_table(renders: Renders) -> None:
    """The flow check's CNI flows (``cni:<proto>/<port>``, from ``cfcr.addons.cni.node_ports``)
    are the ports the rendered CNI configuration really uses, as tests/support/cni_ports.py reads
    them from the stack's chart values and manifest patches (not from another product table);
    the security groups are held against the same in tests/test_cni_ports.py."""
    from tests.support.cni_ports import Opening, cni_uses, rows_of as cni_rows_of

    checked: set[str] = set()
    for stack, project in STACKS:
        declared = load_stack(stack, None if project == ROOT else project)
        if declared.cloud != "aws" or declared.cni in checked:
            continue
        checked.add(declared.cni)
        spec, result = renders.get(stack)
        facts = facts_of(spec, renders.rows(stack), result.user_data)
        flows = {Opening(p.protocol, p.from_port, p.to_port) for p, _ in facts.cni_ports}
        assert flows == cni_uses(spec.cni, cni_rows_of(result.resources)), stack
    assert checked == {"flannel", "canal", "calico", "cilium", "none"}


# --------------------------------------------------------------------------- defect: the API from nodes


def test_nodes_reach_a_public_api_through_an_internal_load_balancer(renders: Renders) -> None:
    """apiPublic: the private name aliased the internet-facing NLB, node packets left through
    the NAT and arrived from its public address, which the NLB's group does not admit. Now an
    internal NLB in the node subnets, with its own target group and group, serves the nodes."""
    spec, result = renders.get("aws-stable")
    assert spec.networking.api_public
    rows = renders.rows("aws-stable")
    report = renders.check("aws-stable")
    for group in ["control-plane", *(f"pool/{p.name}" for p in spec.node_pools)]:
        assert report.status_of(f"api-internal:{group}") == "PASS", report.format()
    public = named(rows, LB, f"{spec.name}-api")
    internal = named(rows, LB, f"{spec.name}-api-int")
    assert public["inputs"]["internal"] is False and internal["inputs"]["internal"] is True
    node_subnets = {r["inputs"]["subnetId"] for r in of_type(rows, "aws:ec2/instance:Instance")}
    for pool in of_type(rows, "aws:autoscaling/group:Group"):
        node_subnets |= set(pool["inputs"]["vpcZoneIdentifiers"])
    assert set(internal["inputs"]["subnets"]) == node_subnets
    (record,) = [r for r in of_type(rows, RECORD) if r["inputs"]["name"] == f"api.{spec.name}.cfcr.internal"]
    assert record["inputs"]["aliases"][0]["name"] == internal["outputs"]["dnsName"]
    # its own target group, every member registered, health-checked like the public one
    listeners = {r["inputs"]["loadBalancerArn"]: r for r in of_type(rows, "aws:lb/listener:Listener")}
    groups = {r["id"]: r for r in of_type(rows, "aws:lb/targetGroup:TargetGroup")}
    public_tg = groups[listeners[public["id"]]["inputs"]["defaultActions"][0]["targetGroupArn"]]
    internal_tg = groups[listeners[internal["id"]]["inputs"]["defaultActions"][0]["targetGroupArn"]]
    assert public_tg["id"] != internal_tg["id"]
    assert internal_tg["inputs"]["healthCheck"] == public_tg["inputs"]["healthCheck"]
    assert internal_tg["inputs"]["healthCheck"]["protocol"] == "HTTPS"
    instances = {r["id"] for r in of_type(rows, "aws:ec2/instance:Instance")}
    attached: dict[str, set[str]] = {}
    for a in of_type(rows, "aws:lb/targetGroupAttachment:TargetGroupAttachment"):
        attached.setdefault(a["inputs"]["targetGroupArn"], set()).add(a["inputs"]["targetId"])
    assert attached == {public_tg["id"]: instances, internal_tg["id"]: instances}
    # the internet-facing NLB admits the allowed CIDRs only; the internal one only the node groups
    sg_names = {r["id"]: r["name"] for r in of_type(rows, SG)}
    rules = of_type(rows, INGRESS)
    (public_sg,) = public["inputs"]["securityGroups"]
    (internal_sg,) = internal["inputs"]["securityGroups"]
    assert public_sg != internal_sg
    allowed = {str(ipaddress.ip_network(c)) for c in spec.networking.api_allowed_cidrs}
    assert {r["inputs"].get("cidrIpv4") for r in rules if r["inputs"]["securityGroupId"] == public_sg} == allowed
    sources = {sg_names[r["inputs"]["referencedSecurityGroupId"]] for r in rules
               if r["inputs"]["securityGroupId"] == internal_sg}
    assert sources == {f"{spec.name}-control-plane", f"{spec.name}-worker"}
    # exported, and the public name stays in the serving certificate (test_aws_cluster checks the SAN)
    assert result.exports["internalApiLoadBalancerDnsName"] == internal["outputs"]["dnsName"]
    assert result.exports["apiLoadBalancerDnsName"] == public["outputs"]["dnsName"]


def test_an_internal_api_keeps_one_load_balancer(renders: Renders) -> None:
    spec, result = renders.get("aws-edge")
    assert not spec.networking.api_public
    rows = renders.rows("aws-edge")
    (nlb,) = of_type(rows, LB)
    assert nlb["name"] == f"{spec.name}-api" and nlb["inputs"]["internal"] is True
    assert result.exports["internalApiLoadBalancerDnsName"] == nlb["outputs"]["dnsName"]


def test_the_check_finds_nodes_sent_to_the_internet_facing_load_balancer(renders: Renders) -> None:
    """The defect as it was: alias the private name to the internet-facing NLB again."""
    spec, _ = renders.get("aws-stable")
    rows = copy.deepcopy(renders.rows("aws-stable"))
    public = named(rows, LB, f"{spec.name}-api")
    (record,) = [r for r in of_type(rows, RECORD) if r["inputs"]["name"] == f"api.{spec.name}.cfcr.internal"]
    record["inputs"]["aliases"][0]["name"] = public["outputs"]["dnsName"]
    report = renders.check("aws-stable", rows)
    assert blocked(report) == {"api-internal:control-plane", *(f"api-internal:pool/{p.name}" for p in spec.node_pools)}
    why = " ".join(d for r in report.blocked for d in r.details)
    nat = of_type(rows, "aws:ec2/natGateway:NatGateway")[0]["name"]
    assert f"NAT gateway {nat}" in why and f"{spec.name}-api-lb admits tcp/6443 only from" in why


def test_admitting_the_nat_address_would_also_do(renders: Renders) -> None:
    """CAPA's way (admit the NAT's Elastic IP on the public NLB) passes too, once the address is known."""
    spec, _ = renders.get("aws-stable")
    rows = copy.deepcopy(renders.rows("aws-stable"))
    public = named(rows, LB, f"{spec.name}-api")
    (record,) = [r for r in of_type(rows, RECORD) if r["inputs"]["name"] == f"api.{spec.name}.cfcr.internal"]
    record["inputs"]["aliases"][0]["name"] = public["outputs"]["dnsName"]
    address = str(next(iter(ipaddress.ip_network("198.51.100.0/24").hosts())))  # a documentation address
    for eip in of_type(rows, "aws:ec2/eip:Eip"):
        eip["outputs"]["publicIp"] = address
    (group,) = public["inputs"]["securityGroups"]
    rows.append({"urn": "urn:test:nat-rule", "type": INGRESS, "name": "admit-the-nat", "parent": None,
                 "dependencies": [], "id": "sgr-test", "outputs": {},
                 "inputs": {"securityGroupId": group, "ipProtocol": "tcp", "fromPort": 6443, "toPort": 6443,
                            "cidrIpv4": f"{address}/32"}})
    report = renders.check("aws-stable", rows)
    assert not report.blocked, report.format()
    # nodes no longer use the internal load balancer: the rules that admit them to it are open beyond need
    assert {e.rule.name for e in report.exposures} == {
        f"{spec.name}-api-lb-int-from-cp", f"{spec.name}-api-lb-int-from-worker"}


# --------------------------------------------------------------------------- defect: metrics-server


def test_metrics_server_reaches_every_kubelet(renders: Renders) -> None:
    """metrics-server is a Deployment on workers (the control plane's taint keeps it off), and its
    scrapes of node addresses arrive from its worker: 10250 admits the workers' group too."""
    for stack in [s for s, p in STACKS if p == ROOT and s.startswith("aws-")]:
        spec, result = renders.get(stack)
        facts = facts_of(spec, renders.rows(stack), result.user_data)
        assert facts.metrics_server is not None
        runs_on = {r.role for r in facts.may_run(facts.metrics_server)}
        assert runs_on == {f"worker-{p.name}" for p in spec.node_pools}, stack
        report = renders.check(stack)
        for group in ["control-plane", *(f"pool/{p.name}" for p in spec.node_pools)]:
            assert report.status_of(f"kubelet-metrics:{group}") == "PASS", (stack, report.format())


def test_placement_follows_taints_tolerations_and_selectors() -> None:
    cp = NodeRole("control-plane-0", None, "cp-0", (("node-role.kubernetes.io/control-plane", "", "NoSchedule"),),
                  {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/os": "linux"}, None)
    spot = NodeRole("worker-spot", "spot", None, (("capacity", "spot", "PreferNoSchedule"),),
                    {"kubernetes.io/arch": "arm64"}, None)
    gpu = NodeRole("worker-gpu", "gpu", None, (("gpu", "true", "NoSchedule"),), {"kubernetes.io/arch": "amd64"}, None)
    anywhere = Placement("x")
    assert [anywhere.allows(r) for r in (cp, spot, gpu)] == [False, True, False]
    tolerant = Placement("x", tolerations=({"operator": "Exists"},))
    assert all(tolerant.allows(r) for r in (cp, spot, gpu))
    on_cp = Placement("x", node_selector={"node-role.kubernetes.io/control-plane": ""},
                      tolerations=({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},))
    assert [on_cp.allows(r) for r in (cp, spot, gpu)] == [True, False, False]
    arm = Placement("x", required_terms=({"matchExpressions": [
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]},))
    assert [arm.allows(r) for r in (cp, spot, gpu)] == [False, True, False]


# --------------------------------------------------------------------------- one rule less


def _without(rows: list[Row], token: str, name: str) -> list[Row]:
    named(rows, token, name)  # exists
    return [r for r in rows if not (r["type"] == token and r["name"] == name)]


@pytest.mark.parametrize(("rule", "flows"), [
    ("cp-etcd-from-cp", {"etcd-client", "etcd-peer"}),
    ("cp-api-from-worker", {"api-service:pool/general"}),
    ("api-lb-int-from-worker", {"api-internal:pool/general"}),
    ("cp-kubelet-from-worker", {"kubelet-metrics:control-plane"}),
    ("worker-kubelet-from-cp", {"kubelet-apiserver:pool/general"}),
    ("worker-calico-vxlan-from-cp", {"cni:udp/4789"}),
    ("cp-api-from-lb", {"api-lb-forward", "api-lb-health"}),
])
def test_removing_one_rule_blocks_exactly_its_flows(renders: Renders, rule: str, flows: set[str]) -> None:
    spec, _ = renders.get("aws-stable")
    rows = _without(renders.rows("aws-stable"), INGRESS, f"{spec.name}-{rule}")
    report = renders.check("aws-stable", rows)
    assert blocked(report) == flows, report.format()
    assert not report.ok
    reasons = " ".join(d for r in report.blocked for d in r.details)
    assert "security group" in reasons and ("admits" in reasons or "has no ingress rule" in reasons)


def test_removing_a_route_or_a_registration_blocks_its_flows(renders: Renders) -> None:
    spec, _ = renders.get("aws-stable")
    rows = renders.rows("aws-stable")
    no_nat = [r for r in rows if not (r["type"] == "aws:ec2/route:Route" and r["inputs"].get("natGatewayId"))]
    assert blocked(renders.check("aws-stable", no_nat)) == {
        f"{kind}:{g}" for kind in ("egress-secrets", "egress-images", "egress-packages")
        for g in ["control-plane", *(f"pool/{p.name}" for p in spec.node_pools)]} | {"egress-cloud-api:control-plane"}
    no_igw = [r for r in rows if not (r["type"] == "aws:ec2/route:Route" and r["inputs"].get("gatewayId"))]
    report = renders.check("aws-stable", no_igw)
    assert {"egress-secrets:control-plane", *(f"api-public:{c}" for c in spec.networking.api_allowed_cidrs)} <= blocked(report)
    assert "NAT's subnet cannot reach the internet" in " ".join(d for r in report.blocked for d in r.details)
    unregistered = _without(rows, "aws:lb/targetGroupAttachment:TargetGroupAttachment", f"{spec.name}-cp-1-api-int")
    report = renders.check("aws-stable", unregistered)
    assert blocked(report) == {"api-lb-forward", "api-lb-health"}
    assert f"{spec.name}-cp-1 not registered" in " ".join(report.blocked[0].details)


def test_the_cloud_controller_manager_admits_the_service_load_balancers_probes_on_aws_and_gcp(
        renders: Renders) -> None:
    """AWS and GCP: the controller opens each Service's probes itself (no cfcr rule needs to); on
    AWS only through the one security group of each node tagged kubernetes.io/cluster/<cluster>,
    so a node without one leaves the flow unverified, never passed."""
    for stack, how in (("aws-stable", "security group tagged kubernetes.io/cluster/"),
                       ("gcp-stable", "firewall rules from Google's health-check ranges")):
        report = renders.check(stack)
        probes = [r for r in report.results if r.flow.id.startswith("service-lb-health:")]
        assert probes and all(r.status == "PASS" and how in " ".join(r.details) for r in probes), stack
        assert not any(r.flow.id == "service-lb-health:control-plane" for r in report.results), (
            "kubeadm labels the control plane exclude-from-external-load-balancers")
    spec, _ = renders.get("aws-stable")
    rows = renders.rows("aws-stable")
    for r in rows:
        if r["type"] == SG and r["name"] == f"{spec.name}-worker":
            r["inputs"]["tags"] = {k: v for k, v in r["inputs"]["tags"].items()
                                   if not k.startswith("kubernetes.io/cluster/")}
    report = renders.check("aws-stable", rows)
    assert {r.flow.id for r in report.unverified} == {f"service-lb-health:pool/{p.name}" for p in spec.node_pools}
    assert not report.blocked


def test_a_pool_labelled_out_of_the_load_balancers_needs_no_probes() -> None:
    from cfcr.flows.facts import ClusterFacts
    from cfcr.flows.model import cluster_flows

    def role(pool: str | None, labels: dict[str, str]) -> NodeRole:
        return NodeRole(f"worker-{pool}" if pool else "control-plane-0", pool, None if pool else "cp-0", (), labels,
                        None)
    facts = ClusterFacts("c", "azure", (
        role(None, {"node.kubernetes.io/exclude-from-external-load-balancers": ""}),
        role("general", {}),
        role("edge", {"node.kubernetes.io/exclude-from-external-load-balancers": "true"})),
        "api.c.cfcr.internal", 6443, False, (), "none", (), None)
    assert [f.id for f in cluster_flows(facts) if f.id.startswith("service-lb-health:")] == [
        "service-lb-health:pool/general"]


# --------------------------------------------------------------------------- the broken stack


def test_a_vpc_without_egress_fails_naming_the_egress_flows(renders: Renders) -> None:
    """tests/stacks/Pulumi.aws-no-egress.yaml: `natGateways: none` on a created VPC."""
    spec, _ = renders.get(BROKEN)
    assert spec.networking.nat_gateways == "none" and spec.networking.existing_network is None
    report = renders.check(BROKEN)
    groups = ["control-plane", *(f"pool/{p.name}" for p in spec.node_pools)]
    assert blocked(report) == {f"{kind}:{g}" for kind in ("egress-secrets", "egress-images", "egress-packages")
                               for g in groups} | {"egress-cloud-api:control-plane"}
    for r in report.blocked:
        assert all("no default route (0.0.0.0/0)" in d for d in r.details), r.details
    assert not report.unverified


def test_an_existing_vpc_leaves_its_routes_unverified_not_blocked() -> None:
    """cfcr does not see an existing VPC's routes: the egress flows are UNVERIFIED, the rest pass."""
    from tests.test_aws_network import EXISTING  # the existing network's ids are config, not render output

    raw = {**read_stack_config("aws-stable"),
           "cfcr:networking": {"apiPublic": True, "apiAllowedCidrs": ["198.51.100.0/24"], "existingNetwork": EXISTING}}
    spec = load_spec(raw, "byo")
    report = check_result(spec, render_stack("byo", None, config=raw))
    assert report.ok and not report.blocked, report.format()
    assert {r.flow.id for r in report.unverified} == {
        *(f"{k}:{g}" for k in ("egress-secrets", "egress-images", "egress-packages")
          for g in ["control-plane", *(f"pool/{p.name}" for p in spec.node_pools)]),
        "egress-cloud-api:control-plane", "api-public:198.51.100.0/24"}
    assert all("not in the render" in d for r in report.unverified for d in r.details)


# --------------------------------------------------------------------------- clouds without a reader


def test_a_cloud_with_network_resources_but_no_reader_fails(renders: Renders, monkeypatch: pytest.MonkeyPatch) -> None:
    import cfcr.flows.check as check

    spec, result = renders.get("azure-stable")
    rows = renders.rows("azure-stable")
    assert check_rows(spec, rows, result.user_data).ok
    monkeypatch.setattr(check, "reader_for", lambda cloud: None)  # as if cfcr/azure/flows.py were missing
    report = check_rows(spec, rows, result.user_data)
    assert report.failed and not report.ok
    assert report.problem is not None and "azure-native:network:VirtualNetwork" in report.problem
    assert "no flow reader for azure" in report.problem
    assert "FAILED" in report.format()
    bare = [r for r in rows if not str(r["type"]).startswith("azure-native:")]
    report = check_rows(spec, bare, result.user_data)
    assert report.ok and report.problem is not None and "no network layer rendered for azure" in report.problem


# --------------------------------------------------------------------------- rows, renders on disk, the command


def test_rows_carry_id_and_outputs_masked_like_inputs(renders: Renders) -> None:
    from cfcr.render.writer import resource_entries

    _, result = renders.get("aws-stable")
    masked = resource_entries(result.resources, show_secrets=False)
    shown = resource_entries(result.resources, show_secrets=True)
    secrets = 0
    for record, row, plain in zip(result.resources, masked, shown, strict=True):
        assert row["id"] == record.id and plain["id"] == record.id
        assert set(row["outputs"]) == set(record.outputs)
        for key, value in record.outputs.items():
            if is_secret(value):
                secrets += 1
                assert row["outputs"][key] == "[secret]", (record.name, key)
                assert plain["outputs"][key] != "[secret]"
        if not record.custom:
            assert row["id"] is None and row["outputs"] == {}
    assert secrets > 10
    assert "PRIVATE KEY" not in json.dumps(masked)
    sgs = {r["outputs"].get("arn") for r in masked if r["type"] == SG}
    assert None not in sgs and all(r["id"].startswith("sg-") for r in masked if r["type"] == SG)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("aws-stable")
    render_stack("aws-stable", out)
    yield out


def test_a_render_on_disk_checks_like_the_records(renders: Renders, written: Path) -> None:
    spec, _ = renders.get("aws-stable")
    rows, user_data = read_render_dir(written)
    on_disk = check_rows(spec, rows, user_data, stack="aws-stable")
    assert statuses(on_disk) == statuses(renders.check("aws-stable"))
    assert set(user_data) == {f"control-plane-{i}" for i in range(spec.control_plane.count)} | {
        f"worker-{p.name}" for p in spec.node_pools}


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def call(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return call


def test_cli_passes_a_good_stack_from_its_render(run: Run, written: Path) -> None:
    code, out, _ = run("flows", "--stack", "aws-stable", "--render", str(written))
    assert code == 0
    assert out.startswith("flows of stack aws-stable (aws, VPC ")
    lines = [line for line in out.splitlines()[1:] if line and not line.startswith(" ")]
    assert lines and all(line.startswith("PASS") for line in lines)
    assert "etcd-peer" in out and "needed:" in out and "how:" not in out
    code, verbose, _ = run("flows", "--stack", "aws-stable", "--render", str(written), "-v")
    assert code == 0 and "how:" in verbose


def test_cli_fails_the_broken_stack_naming_the_flows(run: Run) -> None:
    code, out, _ = run("flows", "--stack", BROKEN, "--project-dir", str(TESTS))
    assert code == 1
    blocked_lines = [line.split()[1] for line in out.splitlines() if line.startswith("BLOCKED")]
    assert "egress-secrets:control-plane" in blocked_lines and "egress-images:pool/general" in blocked_lines
    assert "why: " in out and "no default route" in out


@pytest.mark.parametrize("stack", ["azure-stable", "azure-edge"])
def test_cli_passes_every_flow_of_the_azure_stacks(run: Run, stack: str) -> None:
    code, out, _ = run("flows", "--stack", stack)
    results = [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].isupper()
               and line.split()[0] in ("PASS", "BLOCKED", "UNVERIFIED", "FAILED")]
    assert code == 0 and results and set(results) == {"PASS"}, out
    assert "nothing open beyond them" in out and f"flows: {len(results)} PASS;" in out


def test_cli_refuses_a_missing_or_stale_render(run: Run, tmp_path: Path) -> None:
    code, _, err = run("flows", "--stack", "aws-stable", "--render", str(tmp_path))
    assert code == 2 and "resources.json" in err
    (tmp_path / "resources.json").write_text(json.dumps([{"urn": "u", "type": "t", "name": "n", "inputs": {}}]))
    code, _, err = run("flows", "--stack", "aws-stable", "--render", str(tmp_path))
    assert code == 2 and "render the stack again" in err


def test_the_broken_stack_is_valid_config() -> None:
    """Config accepts it (the flow check, not config, rejects it)."""
    raw = yaml.safe_load((TESTS / "stacks" / f"Pulumi.{BROKEN}.yaml").read_text())["config"]
    assert load_spec(raw, BROKEN).networking.nat_gateways == "none"
