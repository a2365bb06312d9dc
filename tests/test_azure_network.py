"""The Azure network and security group, built in isolation under the mock runtime
(cfcr.azure.network, cfcr.azure.security): subnets without default outbound access behind one
NAT gateway with a Standard static IP, the security group on both subnets, application security
groups for the control plane and the workers, SSH denied from the internet, 6443 only from the
allowed CIDRs, the nodes and Azure's load balancer probes, the NodePort range to the workers from
the probes of Services' load balancers; an existing network is used as given."""

from __future__ import annotations

import ipaddress
from typing import Any

import pulumi
import pytest

from cfcr.azure.network import (
    Network,
    build_network,
    control_plane_range,
    resource_group,
    workers_range,
)
from cfcr.azure.security import Security, build_security
from cfcr.config import ClusterSpec, load_spec
from cfcr.config.topology import control_plane_members
from cfcr.render import RecordingMonitor, run_program, unwrap

SUBNET = "azure-native:network:Subnet"
RULE = "azure-native:network:SecurityRule"
NAT = "azure-native:network:NatGateway"
PUBLIC_IP = "azure-native:network:PublicIPAddress"
ASG = "azure-native:network:ApplicationSecurityGroup"
RG = "azure-native:resources:ResourceGroup"
VNET_ID = "/subscriptions/s-1/resourceGroups/shared-net/providers/Microsoft.Network/virtualNetworks/hub"


class Holder(pulumi.ComponentResource):
    """Stands for the cluster component the pieces are children of."""

    def __init__(self, name: str) -> None:
        super().__init__("cfcr:azure:Cluster", name)


def make_spec(**overrides: Any) -> ClusterSpec:
    return load_spec({"cloud": "azure", "region": "westeurope", **overrides}, "dev")


def build(spec: ClusterSpec, existing_group: str | None = None) -> tuple[RecordingMonitor, tuple[Network, Security]]:
    def program() -> tuple[Network, Security]:
        assert spec.name is not None
        holder = Holder(spec.name)
        group = resource_group(spec.name, spec, holder, existing=existing_group)
        security = build_security(spec.name, spec, group, holder)
        return build_network(spec.name, spec, group, security.security_group.id, holder), security

    monitor, result, _ = run_program(program, project="cfcr", stack="dev")
    return monitor, result


def inputs(monitor: RecordingMonitor, token: str) -> dict[str, dict[str, Any]]:
    return {r.name: unwrap(r.inputs) for r in monitor.by_type(token)}


def rules(monitor: RecordingMonitor) -> dict[str, dict[str, Any]]:
    return {name.removeprefix("cfcr-dev-"): r for name, r in inputs(monitor, RULE).items()}


def asg_ids(monitor: RecordingMonitor) -> dict[str, str]:
    return {r.name.removeprefix("cfcr-dev-").removesuffix("-asg"): str(r.id) for r in monitor.by_type(ASG)}


def sources(rule: dict[str, Any]) -> set[str]:
    return {*(a["id"] for a in rule.get("sourceApplicationSecurityGroups") or []),
            *([rule["sourceAddressPrefix"]] if rule.get("sourceAddressPrefix") else []),
            *(rule.get("sourceAddressPrefixes") or [])}


def targets(rule: dict[str, Any]) -> set[str]:
    return {a["id"] for a in rule.get("destinationApplicationSecurityGroups") or []} or {
        rule.get("destinationAddressPrefix")}


@pytest.fixture(scope="module")
def public() -> RecordingMonitor:
    return build(make_spec(networking={"apiPublic": True, "apiAllowedCidrs": ["203.0.113.0/24", "198.51.100.7/32"]}))[0]


def test_subnets_have_no_default_outbound_access_and_leave_through_one_nat_gateway(public: RecordingMonitor) -> None:
    subnets = inputs(public, SUBNET)
    (nat_id,) = [str(r.id) for r in public.by_type(NAT)]
    (nat,) = inputs(public, NAT).values()
    (ip_row,) = public.by_type(PUBLIC_IP)
    ip = unwrap(ip_row.inputs)
    assert sorted(subnets) == ["cfcr-dev-control-plane", "cfcr-dev-workers"]
    for s in subnets.values():
        assert s["defaultOutboundAccess"] is False
        assert s["natGateway"] == {"id": nat_id}
        assert s["networkSecurityGroup"]["id"] == "cfcr-dev-nsg-id"
    assert nat["sku"] == {"name": "Standard"} and nat["publicIpAddresses"] == [{"id": str(ip_row.id)}]
    assert ip["sku"]["name"] == "Standard" and ip["publicIPAllocationMethod"] == "Static"


def test_the_subnets_split_the_node_cidr_and_the_control_plane_one_holds_every_member() -> None:
    spec = make_spec(controlPlane={"count": 5, "zones": ["1", "2", "3"]}, networking={"nodeCidr": "10.20.0.0/20"})
    monitor, (net, _) = build(spec)
    subnets = inputs(monitor, SUBNET)
    assert subnets["cfcr-dev-control-plane"]["addressPrefix"] == control_plane_range(spec) == "10.20.0.0/21"
    assert subnets["cfcr-dev-workers"]["addressPrefix"] == workers_range(spec) == "10.20.8.0/21"
    cp = ipaddress.ip_network(control_plane_range(spec))
    assert all(ipaddress.ip_address(m.address) in cp for m in control_plane_members(spec))
    assert net.control_plane_cidr == "10.20.0.0/21" and not net.security_group_on_nics
    # one subnet at a time (Azure refuses concurrent subnet writes on one virtual network)
    (workers,) = [r for r in monitor.by_type(SUBNET) if r.name.endswith("-workers")]
    assert monitor.urn_of(SUBNET, "cfcr-dev-control-plane") in workers.dependencies


def test_no_nat_gateway_when_asked_for_none() -> None:
    monitor, (net, _) = build(make_spec(networking={"natGateways": "none"}))
    assert not monitor.by_type(NAT) and not monitor.by_type(PUBLIC_IP) and net.nat_public_ip is None
    assert all("natGateway" not in s and s["defaultOutboundAccess"] is False for s in inputs(monitor, SUBNET).values())


def test_ssh_is_denied_from_the_internet_and_everything_else_below_the_allows(public: RecordingMonitor) -> None:
    r = rules(public)
    ssh = r["deny-ssh-from-internet"]
    assert (ssh["access"], ssh["protocol"], ssh["destinationPortRange"], ssh["sourceAddressPrefix"]) == (
        "Deny", "Tcp", "22", "Internet")
    allows = [x for x in r.values() if x["access"] == "Allow"]
    assert ssh["priority"] < min(x["priority"] for x in allows)
    assert not any(x["destinationPortRange"] in ("22", "*") for x in allows if x["protocol"] == "Tcp")
    assert not any(sources(x) & {"Internet", "*", "0.0.0.0/0"} for x in allows), "no allow from the internet"
    everything = r["deny-all-inbound"]
    assert (everything["access"], everything["sourceAddressPrefix"], everything["protocol"], everything["priority"]) == (
        "Deny", "*", "*", 4096)
    assert max(x["priority"] for x in allows) < 500, "500-4095 stay free for the cloud controller manager's rules"
    assert all(x["direction"] == "Inbound" for x in r.values())


def test_6443_only_from_the_allowed_cidrs_the_nodes_and_the_load_balancer_probes(public: RecordingMonitor) -> None:
    ids = asg_ids(public)
    api = {name: x for name, x in rules(public).items() if x["access"] == "Allow" and x["destinationPortRange"] == "6443"}
    assert all(targets(x) == {ids["control-plane"]} for x in api.values())
    assert set().union(*(sources(x) for x in api.values())) == {
        "203.0.113.0/24", "198.51.100.7/32", "AzureLoadBalancer", ids["control-plane"], ids["workers"]}


def test_a_private_api_admits_the_network_not_the_internet() -> None:
    monitor, _ = build(make_spec(networking={"nodeCidr": "10.8.0.0/16"}))
    api = {n: x for n, x in rules(monitor).items() if x["access"] == "Allow" and x["destinationPortRange"] == "6443"}
    assert sorted(api) == ["api-from-lb", "api-from-network", "api-from-nodes"]
    assert sources(api["api-from-network"]) == {"10.8.0.0/16"}


def test_etcd_only_between_members_and_kubelet_from_what_needs_it(public: RecordingMonitor) -> None:
    ids = asg_ids(public)
    r = rules(public)
    assert (r["etcd"]["destinationPortRange"], sources(r["etcd"]), targets(r["etcd"])) == (
        "2379-2380", {ids["control-plane"]}, {ids["control-plane"]})
    kubelet = {n: x for n, x in r.items() if x["destinationPortRange"] == "10250"}
    assert {n: sources(x) for n, x in kubelet.items()} == {
        "kubelet-from-control-plane": {ids["control-plane"]}, "kubelet-from-workers": {ids["workers"]}}
    # metrics-server off: no kubelet rule from the workers
    quiet, _ = build(make_spec(addons={"metricsServer": False}))
    assert "kubelet-from-workers" not in rules(quiet)


def test_the_service_load_balancers_probes_reach_the_workers_on_the_nodeport_range(public: RecordingMonitor) -> None:
    """cfcr's deny at 4096 overrides AllowAzureLoadBalancerInBound: the probes of Services' load
    balancers (NodePorts, healthCheckNodePorts) need their own rule, to the workers only."""
    ids = asg_ids(public)
    r = rules(public)
    probes = r["nodeports-from-lb"]
    assert (probes["access"], probes["protocol"], probes["destinationPortRange"], sources(probes), targets(probes)) == (
        "Allow", "Tcp", "30000-32767", {"AzureLoadBalancer"}, {ids["workers"]})
    assert probes["priority"] < r["deny-all-inbound"]["priority"]
    # no pool may be a backend: no rule
    excluded, _ = build(make_spec(nodePools=[{"name": "edge", "labels": {
        "node.kubernetes.io/exclude-from-external-load-balancers": "true"}}]))
    assert "nodeports-from-lb" not in rules(excluded)


@pytest.mark.parametrize("cni", ["calico", "cilium", "flannel", "none"])
def test_the_cnis_ports_between_nodes_only(cni: str) -> None:
    from cfcr.cni_ports import node_ports

    monitor, _ = build(make_spec(cni=cni))
    ids = asg_ids(monitor)
    cni_rules = {n: x for n, x in rules(monitor).items() if n.startswith("cni-")}
    want = {(p.protocol.capitalize(), "*" if p.protocol == "icmp" else str(p.port)) for p in node_ports(cni)}
    assert {(x["protocol"], x["destinationPortRange"]) for x in cni_rules.values()} == want
    assert all(sources(x) == targets(x) == set(ids.values()) for x in cni_rules.values())


def test_names_are_stable_and_prefixed_by_the_cluster(public: RecordingMonitor) -> None:
    for token, key in ((RG, "resourceGroupName"), (ASG, "applicationSecurityGroupName"), (SUBNET, "subnetName"),
                       (RULE, "securityRuleName"), (NAT, "natGatewayName")):
        for name, x in inputs(public, token).items():
            assert x[key] == name and name.startswith("cfcr-dev-")
    monitor, _ = build(make_spec(name="c" * 63))
    asgs = [x["applicationSecurityGroupName"] for x in inputs(monitor, ASG).values()]
    assert all(len(n) <= 80 for n in asgs) and any(len(n) == 80 for n in asgs), "the longest are shortened"
    assert sorted(n.rsplit("-", 2)[-2] for n in asgs) == ["plane", "workers"]
    (vnet,) = inputs(monitor, "azure-native:network:VirtualNetwork").values()
    assert len(vnet["virtualNetworkName"]) <= 64 and vnet["virtualNetworkName"].endswith("-vnet")


def test_an_existing_resource_group_is_used_not_created() -> None:
    monitor, _ = build(make_spec(), existing_group="team-rg")
    assert not monitor.by_type(RG)
    assert {x["resourceGroupName"] for t in (SUBNET, RULE, ASG) for x in inputs(monitor, t).values()} == {"team-rg"}


def test_an_existing_network_is_used_as_given_with_the_security_group_on_the_nics() -> None:
    subnets = [f"{VNET_ID}/subnets/cp", f"{VNET_ID}/subnets/nodes"]
    spec = make_spec(networking={"existingNetwork": {"networkId": VNET_ID, "subnetIds": subnets}})
    monitor, (net, security) = build(spec)
    assert not monitor.by_type(SUBNET) and not monitor.by_type(NAT) and not monitor.by_type(
        "azure-native:network:VirtualNetwork")
    assert net.security_group_on_nics and net.control_plane_cidr is None
    assert monitor.by_type(RULE), "the security group and its rules are still the cluster's"
    one = make_spec(networking={"existingNetwork": {"networkId": VNET_ID, "subnetIds": subnets[:1]}})
    assert build(one)[1][0].security_group_on_nics


@pytest.mark.parametrize(("existing", "message"), [
    ({"networkId": VNET_ID, "subnetIds": [f"{VNET_ID}/subnets/a", f"{VNET_ID}/subnets/b", f"{VNET_ID}/subnets/c"]},
     "cfcr:networking.existingNetwork.subnetIds: got"),
    ({"networkId": "hub", "subnetIds": [f"{VNET_ID}/subnets/a"]}, "cfcr:networking.existingNetwork.networkId: got 'hub'"),
    ({"networkId": VNET_ID, "subnetIds": ["/subscriptions/s-1/resourceGroups/other/providers/Microsoft.Network/"
                                          "virtualNetworks/spoke/subnets/a"]}, "allowed: subnets of"),
    ({"networkId": VNET_ID, "subnetIds": [f"{VNET_ID}/subnets/a"], "publicSubnetIds": [f"{VNET_ID}/subnets/b"]},
     "cfcr:networking.existingNetwork.publicSubnetIds"),
])
def test_an_existing_network_that_does_not_fit_is_refused_naming_the_key(existing: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        build(make_spec(networking={"existingNetwork": existing}))
