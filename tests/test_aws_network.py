"""cfcr.aws with an existing VPC, and the pure helpers of the AWS layer."""

from __future__ import annotations

from typing import Any

import pytest

from cfcr.aws.control_plane import etcd_disk_path
from cfcr.aws.image import ubuntu_parameter
from cfcr.aws.network import check_member_in_subnet
from cfcr.aws.node_pool import autoscaler_tags
from cfcr.aws.security import CNI_PORTS
from cfcr.aws.tags import partition_of
from cfcr.config import load_spec
from cfcr.render import RecordingMonitor, run_program, unwrap

EXISTING = {
    "networkId": "vpc-0123456789abcdef0",
    "subnetIds": ["subnet-0000000000000000a", "subnet-0000000000000000b", "subnet-0000000000000000c"],
    "publicSubnetIds": ["subnet-1000000000000000a", "subnet-1000000000000000b"],
}


def build(config: dict[str, Any]) -> RecordingMonitor:
    from cfcr import program

    spec = load_spec({"cfcr:cloud": "aws", "cfcr:region": "eu-central-1", **config}, "byo")
    monitor, _, _ = run_program(lambda: program.build(spec), project="cfcr", stack="byo",
                                config={"aws:region": "eu-central-1"})
    return monitor


def test_existing_vpc_creates_no_network() -> None:
    monitor = build({"cfcr:networking": {"existingNetwork": EXISTING, "apiPublic": True,
                                         "apiAllowedCidrs": ["198.51.100.0/24"]}})
    for token in ("aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/internetGateway:InternetGateway",
                  "aws:ec2/natGateway:NatGateway", "aws:ec2/routeTable:RouteTable", "aws:ec2/route:Route",
                  "aws:ec2/eip:Eip", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"):
        assert monitor.by_type(token) == [], token
    instances = [unwrap(r.inputs) for r in monitor.by_type("aws:ec2/instance:Instance")]
    assert [i["subnetId"] for i in instances] == EXISTING["subnetIds"]
    groups = [unwrap(r.inputs) for r in monitor.by_type("aws:ec2/securityGroup:SecurityGroup")]
    assert {g["vpcId"] for g in groups} == {EXISTING["networkId"]}
    nlb = unwrap(monitor.by_type("aws:lb/loadBalancer:LoadBalancer")[0].inputs)
    assert nlb["subnets"] == EXISTING["publicSubnetIds"] and nlb["internal"] is False
    (pool,) = [unwrap(r.inputs) for r in monitor.by_type("aws:autoscaling/group:Group")]
    assert pool["vpcZoneIdentifiers"] == EXISTING["subnetIds"]


def test_internal_api_on_existing_vpc_uses_the_node_subnets() -> None:
    monitor = build({"cfcr:networking": {"existingNetwork": {**EXISTING, "publicSubnetIds": []}}})
    nlb = unwrap(monitor.by_type("aws:lb/loadBalancer:LoadBalancer")[0].inputs)
    assert nlb["internal"] is True and nlb["subnets"] == EXISTING["subnetIds"]


def test_public_api_on_existing_vpc_needs_public_subnets() -> None:
    with pytest.raises(Exception, match="existingNetwork.publicSubnetIds"):
        build({"cfcr:networking": {"existingNetwork": {**EXISTING, "publicSubnetIds": []}, "apiPublic": True,
                                   "apiAllowedCidrs": ["198.51.100.0/24"]}})


@pytest.mark.parametrize(("mode", "count"), [("none", 0), ("single", 1), ("perZone", 3)])
def test_nat_gateways(mode: str, count: int) -> None:
    monitor = build({"cfcr:networking": {"natGateways": mode}, "cfcr:controlPlane": {"count": 1},
                     "cfcr:nodePools": [{"name": "a"}]})
    assert len(monitor.by_type("aws:ec2/natGateway:NatGateway")) == count
    routes = [unwrap(r.inputs) for r in monitor.by_type("aws:ec2/route:Route")]
    assert sum(1 for r in routes if r.get("natGatewayId")) == (0 if count == 0 else 3)


def test_zones_come_from_the_region_when_not_configured() -> None:
    monitor = build({"cfcr:controlPlane": {"count": 3}})
    zones = sorted({unwrap(r.inputs)["availabilityZone"] for r in monitor.by_type("aws:ec2/subnet:Subnet")})
    assert zones == ["eu-central-1a", "eu-central-1b", "eu-central-1c"]


def test_pinned_image_is_used_as_is() -> None:
    monitor = build({"cfcr:image": {"id": "ami-0abcdef0123456789"}, "cfcr:controlPlane": {"count": 1}})
    for r in monitor.by_type("aws:ec2/launchTemplate:LaunchTemplate"):
        assert unwrap(r.inputs)["imageId"] == "ami-0abcdef0123456789"


def test_member_outside_its_subnet_is_a_clear_error() -> None:
    check_member_in_subnet("c-cp-0", "10.0.0.10", "subnet-a", "10.0.0.0/19")
    check_member_in_subnet("c-cp-0", "10.0.0.10", "subnet-a", None)
    with pytest.raises(ValueError, match=r"existingNetwork.subnetIds.*10\.0\.0\.10.*subnet-a"):
        check_member_in_subnet("c-cp-0", "10.0.0.10", "subnet-a", "172.16.0.0/20")


def test_pure_helpers() -> None:
    assert etcd_disk_path("vol-0123456789abcdef0") == "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"
    assert ubuntu_parameter("24.04", "arm64") == "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id"
    with pytest.raises(ValueError):
        ubuntu_parameter("24.04", "x86_64")
    assert partition_of("cn-north-1") == "aws-cn" and partition_of("us-gov-west-1") == "aws-us-gov"
    assert partition_of("eu-west-1") == "aws"


def test_autoscaler_tags_for_scale_from_zero() -> None:
    spec = load_spec({"cfcr:cloud": "aws", "cfcr:region": "us-east-1", "cfcr:name": "c1",
                      "cfcr:nodePools": [{"name": "gpu", "labels": {"example.com/gpu": "a100"},
                                          "taints": ["nvidia.com/gpu=present:NoSchedule"]}]}, "x")
    tags = autoscaler_tags(spec, spec.node_pools[0])
    assert tags == {
        "k8s.io/cluster-autoscaler/enabled": "true",
        "k8s.io/cluster-autoscaler/c1": "owned",
        "k8s.io/cluster-autoscaler/node-template/label/example.com/gpu": "a100",
        "k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu": "present:NoSchedule",
    }


@pytest.mark.parametrize("public", [True, False])
def test_security_groups_open_exactly_the_documented_table(public: bool) -> None:
    """Every ingress rule, rule for rule, is a row of the table in cfcr/aws/security.py: 6443
    to the load balancers from their clients and to the control plane from the balancers and
    the nodes; etcd (2379-2380) on the control plane from itself; the kubelet (10250) on every
    node from the nodes; the CNI's ports between nodes. No rule opens a wider range (a kubelet
    rule reaching 10257/10259 would hand workers the controller manager and the scheduler)."""
    networking: dict[str, Any] = {"apiPublic": True, "apiAllowedCidrs": ["198.51.100.0/24"]} if public else {}
    monitor = build({"cfcr:networking": networking, "cfcr:cni": "flannel", "cfcr:controlPlane": {"count": 1}})
    groups = {gid: next(k for k in ("api-lb-int", "api-lb", "control-plane", "worker") if name.endswith(k))
              for gid, name in ((str(r.id), r.name) for r in monitor.by_type("aws:ec2/securityGroup:SecurityGroup"))}
    found: set[tuple[Any, ...]] = set()
    for r in monitor.by_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        rule = unwrap(r.inputs)
        source = groups.get(str(rule.get("referencedSecurityGroupId"))) or rule.get("cidrIpv4") or rule.get("cidrIpv6")
        found.add((groups[str(rule["securityGroupId"])], rule["ipProtocol"], rule.get("fromPort"), rule.get("toPort"),
                   source))
    nodes = ("control-plane", "worker")
    expected = {("control-plane", "tcp", 6443, 6443, s) for s in ("api-lb", *nodes)}
    expected |= {("control-plane", "tcp", 2379, 2380, "control-plane")}
    expected |= {(t, "tcp", 10250, 10250, s) for t in nodes for s in nodes}
    expected |= {(t, p.protocol, p.from_port, p.to_port, s) for p in CNI_PORTS["flannel"] for t in nodes for s in nodes}
    if public:
        expected |= {("api-lb", "tcp", 6443, 6443, "198.51.100.0/24")}
        expected |= {("api-lb-int", "tcp", 6443, 6443, s) for s in nodes}
        expected |= {("control-plane", "tcp", 6443, 6443, "api-lb-int")}
    else:
        (vpc,) = monitor.by_type("aws:ec2/vpc:Vpc")
        expected |= {("api-lb", "tcp", 6443, 6443, unwrap(vpc.inputs)["cidrBlock"])}
    assert found == expected, (sorted(found - expected), sorted(expected - found))
