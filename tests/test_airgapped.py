"""An air-gapped AWS network (``cfcr:networking.airGapped``): what is built (no internet
gateway, NAT, public subnet or route; VPC endpoints for exactly the services the cluster
calls, admitting the node groups on 443 only), that every VM waits for the endpoints, and the
flow check: it passes the render, and fails it once an endpoint, a rule, private DNS or the
VPC's DNS goes, or a way to the internet comes back. The stack is built in code from
``aws-stable`` with ``networking: {airGapped: true}``; ids, names and addresses come from the
render."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from cfcr.addons.autoscaler import autoscaler_chart
from cfcr.addons.cloud import CloudFacts
from cfcr.addons.images import ImageRewriter
from cfcr import channels
from cfcr.aws.addon_profile import STATIC_INSTANCE_LIST
from cfcr.aws.endpoints import endpoint_services, one_per_zone, private_services, service_name
from cfcr.aws.network import check_private_dns
from cfcr.config import ClusterSpec, load_spec, read_stack_config
from cfcr.aws.flows import read_network
from cfcr.flows import FlowReport, check_rows, cluster_flows, evaluate, facts_of, rows_of
from cfcr.flows.facts import fetch_hosts
from cfcr.flows.model import NEED_CLOUD_API, NEED_SECRETS, NEED_SESSIONS, CloudService, Internet, SiteMirrors
from cfcr.policy.runner import check_stack
from cfcr.render import RenderResult, render_stack
from tests.test_aws_network import EXISTING

STACK = "airgapped"
MIRRORS = {"files": "https://files.example.com", "registry": "https://registry.example.com", "apt": "http://apt.example.com/ubuntu"}
RAW: dict[str, Any] = {**read_stack_config("aws-stable"), "cfcr:networking": {"airGapped": True}, "cfcr:mirrors": MIRRORS,
                       "cfcr:kubernetes": {"version": "1.36.6"}}
Row = dict[str, Any]

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ROUTE = "aws:ec2/route:Route"
LB = "aws:lb/loadBalancer:LoadBalancer"

INTERFACE_SERVICES = {"secretsmanager", "ec2", "elasticloadbalancing", "autoscaling", "sqs", "sts", "ssm", "ssmmessages"}
"""What aws-stable's cluster calls (autoscaler, termination queue and etcd backups on), each
through an interface endpoint; S3 (the snapshots) through a gateway endpoint."""


@pytest.fixture(scope="module")
def rendered() -> tuple[ClusterSpec, RenderResult]:
    return load_spec(RAW, STACK), render_stack(STACK, None, config=RAW)


@pytest.fixture(scope="module")
def rows(rendered: tuple[ClusterSpec, RenderResult]) -> list[Row]:
    return rows_of(rendered[1].resources)


def of_type(rows: list[Row], token: str) -> list[Row]:
    return [r for r in rows if r["type"] == token]


def named(rows: list[Row], token: str, suffix: str) -> Row:
    (row,) = [r for r in of_type(rows, token) if r["name"].endswith(suffix)]
    return row


def check(rendered: tuple[ClusterSpec, RenderResult], rows: list[Row]) -> FlowReport:
    spec, result = rendered
    return check_rows(spec, rows, result.user_data, stack=STACK)


def blocked(report: FlowReport) -> set[str]:
    return {r.flow.id for r in report.blocked}


def groups_of(spec: ClusterSpec) -> list[str]:
    return ["control-plane", *(f"pool/{p.name}" for p in spec.node_pools)]


# --------------------------------------------------------------------------- what is built


def test_no_way_to_the_internet_is_built(rendered: tuple[ClusterSpec, RenderResult], rows: list[Row]) -> None:
    spec, result = rendered
    assert spec.networking.nat_gateways == "none" and not spec.networking.api_public
    for token in ("aws:ec2/internetGateway:InternetGateway", "aws:ec2/natGateway:NatGateway", "aws:ec2/eip:Eip", ROUTE):
        assert of_type(rows, token) == [], token
    subnets = of_type(rows, SUBNET)
    assert len(subnets) == 3 and all("-private-" in s["name"] for s in subnets)
    assert all(s["inputs"]["mapPublicIpOnLaunch"] is False for s in subnets)
    tables = of_type(rows, ROUTE_TABLE)
    assert sorted(t["name"] for t in tables) == sorted(s["name"] for s in subnets)
    assert all(not t["inputs"].get("routes") for t in tables)
    assert {a["inputs"]["subnetId"] for a in of_type(rows, ASSOCIATION)} == {s["id"] for s in subnets}
    (vpc,) = of_type(rows, VPC)
    assert vpc["inputs"]["enableDnsSupport"] is True and vpc["inputs"]["enableDnsHostnames"] is True
    (nlb,) = of_type(rows, LB)
    assert nlb["inputs"]["internal"] is True and set(nlb["inputs"]["subnets"]) == {s["id"] for s in subnets}
    assert result.exports["publicSubnetIds"] == []


def test_endpoints_for_exactly_the_services_the_cluster_calls(rendered: tuple[ClusterSpec, RenderResult],
                                                              rows: list[Row]) -> None:
    spec, _ = rendered
    endpoints = {r["name"].removeprefix(f"{spec.name}-endpoint-"): r for r in of_type(rows, ENDPOINT)}
    assert set(endpoints) == INTERFACE_SERVICES | {"s3"}
    private = {s["id"] for s in of_type(rows, SUBNET)}
    group = named(rows, SG, "-endpoints")["id"]
    for service, row in endpoints.items():
        inputs = row["inputs"]
        assert inputs["serviceName"] == f"com.amazonaws.{spec.region}.{service}"
        assert inputs["tags"]["Name"] == f"{spec.name}-endpoint-{service}"
        if service == "s3":
            assert inputs["vpcEndpointType"] == "Gateway"
            assert set(inputs["routeTableIds"]) == {t["id"] for t in of_type(rows, ROUTE_TABLE)}
            continue
        assert inputs["vpcEndpointType"] == "Interface" and inputs["privateDnsEnabled"] is True, service
        assert sorted(inputs["subnetIds"]) == sorted(private), service  # one network interface per zone
        assert inputs["securityGroupIds"] == [group], service


def test_the_endpoints_group_admits_443_from_the_node_groups_only(rendered: tuple[ClusterSpec, RenderResult],
                                                                   rows: list[Row]) -> None:
    spec, _ = rendered
    group = named(rows, SG, "-endpoints")
    names = {r["id"]: r["name"] for r in of_type(rows, SG)}
    rules = {(names[r["inputs"]["referencedSecurityGroupId"]], r["inputs"]["ipProtocol"], r["inputs"]["fromPort"],
              r["inputs"]["toPort"], r["inputs"].get("cidrIpv4")) for r in of_type(rows, INGRESS)
             if r["inputs"]["securityGroupId"] == group["id"]}
    assert rules == {(f"{spec.name}-control-plane", "tcp", 443, 443, None), (f"{spec.name}-worker", "tcp", 443, 443, None)}
    assert not [r for r in of_type(rows, EGRESS) if r["inputs"]["securityGroupId"] == group["id"]]
    assert not group["inputs"].get("ingress") and not group["inputs"].get("egress")
    assert f"kubernetes.io/cluster/{spec.name}" not in group["inputs"]["tags"]  # the CCM's one group per instance


def test_every_machine_waits_for_the_endpoints(rendered: tuple[ClusterSpec, RenderResult]) -> None:
    """The first secret fetch at boot goes through the secretsmanager endpoint: every instance
    and every pool's group waits for every endpoint and the endpoint group's rules."""
    spec, result = rendered
    records = result.resources
    needed = {r.urn for r in records if r.type == ENDPOINT or (r.type == INGRESS and "-endpoints-from-" in r.name)}
    assert len(needed) == len(INTERFACE_SERVICES) + 1 + 2
    machines = [r for r in records if r.type in ("aws:ec2/instance:Instance", "aws:autoscaling/group:Group")]
    assert len(machines) == spec.control_plane.count + len(spec.node_pools)
    for machine in machines:
        assert needed <= set(machine.dependencies), (machine.name, sorted(needed - set(machine.dependencies)))


def test_endpoint_services_follow_the_features() -> None:
    """Only what something calls: the autoscaling endpoint for cluster-autoscaler or the
    termination handler, sqs for the termination queue, sts and s3 for etcd backups; never kms,
    ec2messages, logs or ECR (the module docstring says why)."""
    def services(**config: Any) -> set[str]:
        raw = {"cfcr:cloud": "aws", "cfcr:region": "eu-central-1", "cfcr:networking": {"airGapped": True},
               "cfcr:mirrors": MIRRORS, "cfcr:kubernetes": {"version": "1.36.6"}, **{f"cfcr:{k}": v for k, v in config.items()}}
        return {s.service for s in endpoint_services(load_spec(raw, "x"))}

    always = {"secretsmanager", "ec2", "elasticloadbalancing", "ssm", "ssmmessages"}
    assert services() == always | {"autoscaling", "sqs", "sts", "s3"}
    bare = services(addons={"autoscaler": False}, aws={"terminationQueue": False}, etcdBackups={"enabled": False})
    assert bare == always
    assert services(addons={"autoscaler": False}, etcdBackups={"enabled": False}) == always | {"autoscaling", "sqs"}
    assert services(aws={"terminationQueue": False}, etcdBackups={"enabled": False}) == always | {"autoscaling"}
    assert not {"kms", "ec2messages", "logs", "ecr.api", "ecr.dkr"} & services()
    spec = load_spec({"cfcr:cloud": "aws", "cfcr:region": "eu-central-1", "cfcr:networking": {"airGapped": True},
                      "cfcr:mirrors": MIRRORS, "cfcr:kubernetes": {"version": "1.36.6"}}, "x")
    assert private_services(spec) == {NEED_SECRETS: ("secretsmanager",),
                                      NEED_CLOUD_API: ("ec2", "elasticloadbalancing", "autoscaling", "sqs", "sts", "s3"),
                                      NEED_SESSIONS: ("ssm", "ssmmessages")}
    assert private_services(load_spec({"cfcr:cloud": "aws", "cfcr:region": "eu-central-1"}, "x")) == {}
    assert service_name("us-gov-west-1", "sts") == "com.amazonaws.us-gov-west-1.sts"


def test_one_interface_per_zone_and_the_vpc_dns_check() -> None:
    assert one_per_zone(["subnet-a", "subnet-b", "subnet-c", "subnet-a"], ["z1", "z1", "z2", "z1"]) == [
        "subnet-a", "subnet-c"]
    assert check_private_dns("vpc-1", True, True) == "vpc-1"
    assert check_private_dns("vpc-1", None, None) == "vpc-1"  # a lookup that says nothing is not held against it
    with pytest.raises(ValueError, match=r"existingNetwork.networkId: VPC vpc-1 has enableDnsHostnames off.*airGapped"):
        check_private_dns("vpc-1", True, False)


def test_an_existing_network_gets_endpoints_in_its_subnets_and_no_route() -> None:
    from cfcr.render import unwrap
    from cfcr.render.aws import aws_invoke
    from tests.test_aws_network import build

    existing = {**EXISTING, "publicSubnetIds": []}
    monitor = build({"cfcr:networking": {"airGapped": True, "existingNetwork": existing}, "cfcr:mirrors": MIRRORS,
                     "cfcr:kubernetes": {"version": "1.36.6"}})
    for token in (VPC, SUBNET, ROUTE_TABLE, ROUTE, "aws:ec2/internetGateway:InternetGateway"):
        assert monitor.by_type(token) == [], token
    endpoints = [unwrap(r.inputs) for r in monitor.by_type(ENDPOINT)]
    assert {e["serviceName"].rsplit(".", 1)[-1] for e in endpoints} == INTERFACE_SERVICES  # no S3 gateway: its routes are the site's
    # the zone each subnet is in, as the (stand-in) subnet lookup answers
    zones = [aws_invoke("aws:ec2/getSubnet:getSubnet", {"id": s, "region": "eu-central-1"})["availabilityZone"]
             for s in existing["subnetIds"]]
    for e in endpoints:
        assert e["vpcId"] == EXISTING["networkId"] and e["privateDnsEnabled"] is True
        assert e["subnetIds"] == one_per_zone(existing["subnetIds"], zones)
    none = build({"cfcr:networking": {"airGapped": True, "existingNetwork": existing},
                  "cfcr:aws": {"vpcEndpoints": "existing"}, "cfcr:mirrors": MIRRORS,
                  "cfcr:kubernetes": {"version": "1.36.6"}})
    assert none.by_type(ENDPOINT) == [] and not [r for r in none.by_type(SG) if r.name.endswith("-endpoints")]


def test_cluster_autoscaler_uses_its_static_instance_list_when_air_gapped(
        rendered: tuple[ClusterSpec, RenderResult]) -> None:
    spec, _ = rendered
    release = channels.resolve(spec.kubernetes.version)
    values = autoscaler_chart(spec, release, CloudFacts.from_spec(spec), ImageRewriter({})).values
    assert values["extraArgs"][STATIC_INSTANCE_LIST] is True
    assert values["extraArgs"]["expander"] == "least-waste"  # cfcr's own flags stay
    online = load_spec(read_stack_config("aws-stable"), "aws-stable")
    values = autoscaler_chart(online, release, CloudFacts.from_spec(online), ImageRewriter({})).values
    assert STATIC_INSTANCE_LIST not in values["extraArgs"]


def test_the_policy_pack_passes() -> None:
    report = check_stack(STACK, stack_config=RAW)
    assert report.mandatory == [], report.format()
    assert report.checked > 20


# --------------------------------------------------------------------------- the flow check


def test_the_flow_check_passes_every_flow(rendered: tuple[ClusterSpec, RenderResult], rows: list[Row]) -> None:
    spec, result = rendered
    report = check(rendered, rows)
    assert report.ok and not report.unverified and not report.exposures, report.format()
    facts = facts_of(spec, rows, result.user_data)
    assert facts.air_gapped
    egress = {r.flow.id: r for r in report.results if r.flow.id.startswith("egress-")}
    assert set(egress) == {*(f"{k}:{g}" for k in ("egress-secrets", "egress-images", "egress-packages", "egress-sessions")
                             for g in groups_of(spec)), "egress-cloud-api:control-plane"}
    assert not [r for r in report.results if isinstance(r.flow.destination, Internet)]
    for flow_id, r in egress.items():
        kind = SiteMirrors if flow_id.startswith(("egress-images", "egress-packages")) else CloudService
        assert isinstance(r.flow.destination, kind), flow_id
    cloud = egress["egress-cloud-api:control-plane"].flow.destination
    assert isinstance(cloud, CloudService) and set(cloud.services) == INTERFACE_SERVICES - {
        "secretsmanager", "ssm", "ssmmessages"} | {"s3"}
    # the mirrors' routes are the site's: the verdict says what it takes as given
    mirrors = egress["egress-images:pool/general"]
    assert all("nothing leaves for the internet" in d and "assumed: the site routes its mirrors" in d
               for d in mirrors.details)
    assert "routes s3 to gateway endpoint" in " ".join(egress["egress-cloud-api:control-plane"].details)


def test_every_endpoint_rule_is_needed_by_a_flow(rendered: tuple[ClusterSpec, RenderResult], rows: list[Row]) -> None:
    spec, _ = rendered
    needs = {"cp": {"egress-secrets:control-plane", "egress-sessions:control-plane", "egress-cloud-api:control-plane"},
             "worker": {f"{k}:pool/{p.name}" for k in ("egress-secrets", "egress-sessions") for p in spec.node_pools}}
    for short, flows in needs.items():
        rule = named(rows, INGRESS, f"-endpoints-from-{short}")
        report = check(rendered, [r for r in rows if r is not rule])
        assert blocked(report) == flows, report.format()
        other = "worker" if short == "cp" else "control-plane"
        assert f"{spec.name}-endpoints admits tcp/443 only from {spec.name}-{other}" in " ".join(
            d for r in report.blocked for d in r.details)


Mutation = Callable[[list[Row]], list[Row]]


def _drop_endpoint(service: str) -> Mutation:
    def mutate(rows: list[Row]) -> list[Row]:
        (row,) = [r for r in of_type(rows, ENDPOINT) if r["name"].endswith(f"-endpoint-{service}")]
        return [r for r in rows if r is not row]
    return mutate


def _endpoint_input(service: str, key: str, value: Any) -> Mutation:
    """Set an endpoint's input (and the provider's echo of it); None: leave it unset."""
    def mutate(rows: list[Row]) -> list[Row]:
        (row,) = [r for r in of_type(rows, ENDPOINT) if r["name"].endswith(f"-endpoint-{service}")]
        for side in ("inputs", "outputs"):
            row[side].pop(key, None)
            if value is not None:
                row[side][key] = value
        return rows
    return mutate


def _vpc_dns_hostnames_off(rows: list[Row]) -> list[Row]:
    (vpc,) = of_type(rows, VPC)
    vpc["inputs"]["enableDnsHostnames"] = vpc["outputs"]["enableDnsHostnames"] = False
    return rows


def _internet_gateway(rows: list[Row]) -> list[Row]:
    (vpc,) = of_type(rows, VPC)
    return [*rows, {"urn": "urn:test:igw", "type": "aws:ec2/internetGateway:InternetGateway", "name": "an-igw",
                    "parent": None, "dependencies": [], "id": "igw-0123456789abcdef0", "outputs": {},
                    "inputs": {"vpcId": vpc["id"]}}]


def _default_route(target: dict[str, str]) -> Mutation:
    def mutate(rows: list[Row]) -> list[Row]:
        table = of_type(rows, ROUTE_TABLE)[0]
        return [*rows, {"urn": "urn:test:route", "type": ROUTE, "name": "a-default-route", "parent": None,
                        "dependencies": [], "id": "r-test", "outputs": {},
                        "inputs": {"routeTableId": table["id"], "destinationCidrBlock": "0.0.0.0/0", **target}}]
    return mutate


def _nat_gateway(rows: list[Row]) -> list[Row]:
    subnet = of_type(rows, SUBNET)[1]
    rows = [*rows, {"urn": "urn:test:nat", "type": "aws:ec2/natGateway:NatGateway", "name": "a-nat", "parent": None,
                    "dependencies": [], "id": "nat-0123456789abcdef0", "outputs": {},
                    "inputs": {"subnetId": subnet["id"], "connectivityType": "public"}}]
    return _default_route({"natGatewayId": "nat-0123456789abcdef0"})(rows)


EVERY_EGRESS = ("egress-secrets", "egress-images", "egress-packages", "egress-sessions")


@pytest.mark.parametrize(("case", "mutate", "expect", "why"), [
    ("no secretsmanager endpoint", _drop_endpoint("secretsmanager"), "secrets", "has no private endpoint for secretsmanager"),
    ("no ssmmessages endpoint", _drop_endpoint("ssmmessages"), "sessions", "has no private endpoint for ssmmessages"),
    ("no sqs endpoint", _drop_endpoint("sqs"), "cloud-api", "has no private endpoint for sqs"),
    ("no s3 gateway", _drop_endpoint("s3"), "cloud-api", "has no private endpoint for s3"),
    ("s3 not on the route tables", _endpoint_input("s3", "routeTableIds", []), "cloud-api",
     "is not routed to gateway endpoint"),
    ("ec2 without private DNS", _endpoint_input("ec2", "privateDnsEnabled", False), "cloud-api", "private DNS off"),
    ("secretsmanager without private DNS (the provider's default)", _endpoint_input("secretsmanager", "privateDnsEnabled", None),
     "secrets", "private DNS off"),
    ("secretsmanager in no subnet", _endpoint_input("secretsmanager", "subnetIds", []), "secrets", "no address in any subnet"),
    ("VPC without DNS hostnames", _vpc_dns_hostnames_off, "every-service", "does not resolve private names"),
    ("an internet gateway", _internet_gateway, "everything", "has internet gateway an-igw"),
    # (every group has a machine in the subnet of that route table: pools span every zone, member 0 is in it)
    ("a default route to an internet gateway", _default_route({"gatewayId": "igw-0123456789abcdef0"}), "everything",
     "0.0.0.0/0 goes to the internet: internet gateway"),
    ("a NAT gateway and a route to it", _nat_gateway, "everything", "has NAT gateway a-nat"),
])
def test_the_flow_check_fails_a_broken_render(rendered: tuple[ClusterSpec, RenderResult], rows: list[Row], case: str,
                                              mutate: Mutation, expect: str, why: str) -> None:
    spec, _ = rendered
    report = check(rendered, mutate(copy.deepcopy(rows)))
    assert not report.ok, case
    groups = groups_of(spec)
    expected = {
        "secrets": {f"egress-secrets:{g}" for g in groups},
        "sessions": {f"egress-sessions:{g}" for g in groups},
        "cloud-api": {"egress-cloud-api:control-plane"},
        "every-service": {f"{k}:{g}" for k in ("egress-secrets", "egress-sessions") for g in groups}
        | {"egress-cloud-api:control-plane"},
        "everything": {f"{k}:{g}" for k in EVERY_EGRESS for g in groups} | {"egress-cloud-api:control-plane"},
    }[expect]
    assert blocked(report) == expected, report.format()
    assert why in " ".join(d for r in report.blocked for d in r.details), report.format()


def test_an_existing_network_is_unverified_not_blocked_and_its_own_endpoints_are_assumed() -> None:
    """cfcr sees neither an existing network's routes nor its DNS attributes: the egress flows
    are UNVERIFIED, never BLOCKED; with ``vpcEndpoints: existing`` the endpoints are taken as
    present, and the verdict says so."""
    for mode in ("managed", "existing"):
        raw = {**RAW, "cfcr:networking": {"airGapped": True, "existingNetwork": {**EXISTING, "publicSubnetIds": []}},
               "cfcr:aws": {"vpcEndpoints": mode}}
        spec = load_spec(raw, STACK)
        result = render_stack(STACK, None, config=raw)
        report = check_rows(spec, rows_of(result.resources), result.user_data, stack=STACK)
        assert not report.blocked, report.format()
        unverified = {r.flow.id for r in report.unverified}
        assert {f"{k}:{g}" for k in EVERY_EGRESS for g in groups_of(spec)} <= unverified
        details = " ".join(d for r in report.unverified for d in r.details)
        assert "its routes are not known" in details
        assert "private endpoint for secretsmanager" not in details
        assert ("DNS support and DNS hostnames" in details) is (mode == "managed")
        # cfcr adds no route to an existing network: S3's gateway is the site's to give
        assert ("the render has no private endpoint for s3" in details) is (mode == "managed")
        assert bool(of_type(rows_of(result.resources), ENDPOINT)) is (mode == "managed")


def test_endpoints_the_network_already_has_are_taken_as_present(rendered: tuple[ClusterSpec, RenderResult],
                                                                 rows: list[Row]) -> None:
    """``vpcEndpoints: existing``: without one endpoint in the render, every flow still passes,
    saying what it assumed; without the assumption, they are blocked."""
    spec, result = rendered
    bare = [r for r in rows if r["type"] != ENDPOINT]
    network = read_network(bare)
    assert network is not None and network.service_endpoints == []
    facts = facts_of(spec, bare, result.user_data)
    assert facts.private is not None
    assumed = dataclasses.replace(facts, private=dataclasses.replace(
        facts.private, assumed=True, assumption="cfcr:aws.vpcEndpoints: existing"))
    results = evaluate(network, assumed, cluster_flows(assumed))
    assert all(r.status == "PASS" for r in results), [(r.flow.id, r.details) for r in results if r.status != "PASS"]
    (secrets,) = [r for r in results if r.flow.id == "egress-secrets:control-plane"]
    assert all("assumed: the network's own secretsmanager endpoint, with private DNS "
               "(cfcr:aws.vpcEndpoints: existing)" in d for d in secrets.details)
    plain = evaluate(network, facts, cluster_flows(facts))
    assert {r.flow.id for r in plain if r.status == "BLOCKED"} == {
        f"{k}:{g}" for k in ("egress-secrets", "egress-sessions") for g in groups_of(spec)} | {
        "egress-cloud-api:control-plane"}


def test_the_mirror_flows_name_where_nodes_really_fetch_from() -> None:
    """A registry's mirrors, not its upstream fallback (``server``); a registry without mirrors
    itself; the binaries', checksums' and apt archives' hosts."""
    hosts_toml = ('server = "https://registry-1.docker.io"\n\n[host."https://registry.corp.example/v2/cfcr/docker.io"]\n'
                  '  capabilities = [\'pull\', \'resolve\']\n')
    doc = {
        "apt": {"primary": [{"arches": ["default"], "uri": "http://apt.corp.example/ubuntu"}]},
        "write_files": [
            {"path": "/etc/containerd/certs.d/docker.io/hosts.toml", "content": hosts_toml},
            {"path": "/etc/containerd/certs.d/quay.io/hosts.toml", "content": 'server = "https://quay.io"\n'},
            {"path": "/etc/containerd/config.toml", "content": 'sandbox = "registry.k8s.io/pause:3.10"\n'},
            {"path": "/etc/cfcr/artifacts.list", "content": "# name|version|url\n"
             "runc|1.5.2|https://files.corp.example/runc.amd64|sha256|abc|-\n"
             "kubernetes|1.36.6|https://files.corp.example/k.tgz|sha512|-|https://sums.corp.example/k.tgz.sha512\n"},
        ],
    }
    assert fetch_hosts({"worker-a": doc}) == (("quay.io", "registry.corp.example", "registry.k8s.io"),
                                              ("apt.corp.example", "files.corp.example", "sums.corp.example"))
