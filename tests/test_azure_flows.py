"""The flow check on Azure (cfcr.azure.flows): the network and security group cfcr builds
(cfcr.azure.network, cfcr.azure.security), with machines, API load balancers and the private zone
wired as an Azure cluster wires them (members' NICs with fixed addresses in the control-plane
subnet and the internal load balancer's backend pool, a scale set per pool in the workers'
subnet), pass every flow of the model with nothing open beyond them; removing one rule blocks
exactly the flows that need it. Roles, user-data and addons come from the azure-stable render."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable
from typing import Any

import pulumi
import pytest
from pulumi_azure_native import compute, privatedns
from pulumi_azure_native import network as azure_network

from cfcr.azure.flows import read_network
from cfcr.azure.network import Network, build_network, control_plane_range, resource_group
from cfcr.azure.security import Security, build_security
from cfcr.azure.tags import MEMBER_TAG, POOL_TAG
from cfcr.config import ClusterSpec
from cfcr.config.topology import api_endpoint, control_plane_members
from cfcr.constants import API_PORT
from cfcr.flows import FlowReport, check_rows, rows_of
from cfcr.flows.facts import HELM_TYPES
from tests.test_azure_network import Holder
from tests.test_flows import Renders, blocked

Row = dict[str, Any]
RULE = "azure-native:network:SecurityRule"
SUB = "/subscriptions/s-1/resourceGroups/{group}/providers/Microsoft.Network/loadBalancers/{lb}"


def api_lb(name: str, spec: ClusterSpec, group: str, frontend: azure_network.FrontendIPConfigurationArgs,
           parent: pulumi.Resource) -> tuple[azure_network.LoadBalancer, str]:
    """A Standard load balancer with one frontend, the members' pool, an HTTPS /readyz probe and
    a 6443 rule; returns it and its pool's ARM id."""
    lb_id = SUB.format(group=group, lb=name)
    lb = azure_network.LoadBalancer(
        name, load_balancer_name=name, resource_group_name=group, location=spec.region,
        sku=azure_network.LoadBalancerSkuArgs(name="Standard"),
        frontend_ip_configurations=[frontend],
        backend_address_pools=[azure_network.BackendAddressPoolArgs(name="members")],
        probes=[azure_network.ProbeArgs(name="readyz", protocol="Https", port=API_PORT, request_path="/readyz",
                                        interval_in_seconds=15)],
        load_balancing_rules=[azure_network.LoadBalancingRuleArgs(
            name="api", protocol="Tcp", frontend_port=API_PORT, backend_port=API_PORT,
            frontend_ip_configuration=azure_network.SubResourceArgs(id=f"{lb_id}/frontendIPConfigurations/api"),
            backend_address_pool=azure_network.SubResourceArgs(id=f"{lb_id}/backendAddressPools/members"),
            probe=azure_network.SubResourceArgs(id=f"{lb_id}/probes/readyz"))],
        opts=pulumi.ResourceOptions(parent=parent))
    return lb, f"{lb_id}/backendAddressPools/members"


def machines(name: str, spec: ClusterSpec, group: str, net: Network, sec: Security, parent: pulumi.Resource) -> None:
    """What cfcr.azure.Cluster wires around the network: the internal (and public) API load
    balancers, the private zone, one NIC and VM per member, one scale set per pool."""
    child = pulumi.ResourceOptions(parent=parent)
    internal_ip = str(ipaddress.ip_network(control_plane_range(spec)).network_address + 4)
    _, pool = api_lb(f"{name}-api-internal", spec, group, azure_network.FrontendIPConfigurationArgs(
        name="api", subnet=azure_network.SubnetArgs(id=net.control_plane_subnet), private_ip_address=internal_ip,
        private_ip_allocation_method="Static"), parent)
    pools = [pool]
    if spec.networking.api_public:
        ip = azure_network.PublicIPAddress(f"{name}-api-ip", public_ip_address_name=f"{name}-api-ip",
                                           resource_group_name=group, sku=azure_network.PublicIPAddressSkuArgs(
                                               name="Standard"), public_ip_allocation_method="Static", opts=child)
        _, public_pool = api_lb(f"{name}-api-public", spec, group, azure_network.FrontendIPConfigurationArgs(
            name="api", public_ip_address=azure_network.PublicIPAddressArgs(id=ip.id)), parent)
        pools.append(public_pool)
    zone = api_endpoint(spec).split(".", 1)[1]
    privatedns.PrivateZone(f"{name}-zone", private_zone_name=zone, resource_group_name=group, location="Global",
                           opts=child)
    privatedns.VirtualNetworkLink(f"{name}-zone-link", private_zone_name=zone, resource_group_name=group,
                                  location="Global", registration_enabled=False,
                                  virtual_network=privatedns.SubResourceArgs(id=net.vnet_id), opts=child)
    privatedns.PrivateRecordSet(f"{name}-api-record", private_zone_name=zone, resource_group_name=group,
                                record_type="A", relative_record_set_name="api", ttl=30,
                                a_records=[privatedns.ARecordArgs(ipv4_address=internal_ip)], opts=child)
    nsg = azure_network.NetworkSecurityGroupArgs(id=sec.security_group.id) if net.security_group_on_nics else None
    for m in control_plane_members(spec):
        nic = azure_network.NetworkInterface(
            f"{m.name}-nic", network_interface_name=f"{m.name}-nic", resource_group_name=group,
            network_security_group=nsg,
            ip_configurations=[azure_network.NetworkInterfaceIPConfigurationArgs(
                name="ipconfig", primary=True, subnet=azure_network.SubnetArgs(id=net.control_plane_subnet),
                private_ip_address=m.address, private_ip_allocation_method="Static",
                application_security_groups=[azure_network.ApplicationSecurityGroupArgs(id=sec.control_plane.id)],
                load_balancer_backend_address_pools=[azure_network.BackendAddressPoolArgs(id=p) for p in pools])],
            opts=child)
        compute.VirtualMachine(m.name, vm_name=m.name, resource_group_name=group, tags={MEMBER_TAG: m.name},
                               network_profile=compute.NetworkProfileArgs(
                                   network_interfaces=[compute.NetworkInterfaceReferenceArgs(id=nic.id, primary=True)]),
                               opts=child)
    for p in spec.node_pools:
        compute.VirtualMachineScaleSet(
            f"{name}-{p.name}", vm_scale_set_name=f"{name}-{p.name}", resource_group_name=group,
            tags={POOL_TAG: p.name},
            virtual_machine_profile=compute.VirtualMachineScaleSetVMProfileArgs(
                network_profile=compute.VirtualMachineScaleSetNetworkProfileArgs(network_interface_configurations=[
                    compute.VirtualMachineScaleSetNetworkConfigurationArgs(
                        name="nic", primary=True, network_security_group=compute.SubResourceArgs(
                            id=sec.security_group.id) if net.security_group_on_nics else None,
                        ip_configurations=[compute.VirtualMachineScaleSetIPConfigurationArgs(
                            name="ipconfig", primary=True, subnet=compute.ApiEntityReferenceArgs(id=net.workers_subnet),
                            application_security_groups=[compute.SubResourceArgs(id=sec.workers.id)])])])),
            opts=child)


def cluster_rows(spec: ClusterSpec) -> list[Row]:
    from cfcr.render import run_program

    def program() -> None:
        assert spec.name is not None
        holder = Holder(spec.name)
        group = resource_group(spec.name, spec, holder)
        sec = build_security(spec.name, spec, group, holder)
        net = build_network(spec.name, spec, group, sec.security_group.id, holder)
        machines(spec.name, spec, f"{spec.name}-rg", net, sec, holder)

    monitor, _, _ = run_program(program, project="cfcr", stack="azure-stable")
    return rows_of(monitor.recorded)


class Azure:
    """The azure-stable render (roles, user-data, addons) and the network rows of a spec like it."""

    def __init__(self) -> None:
        self.renders = Renders()
        self.rows: dict[str, list[Row]] = {}

    def metrics_server(self) -> list[Row]:
        """The metrics-server chart as the addons layer renders it (taken from the GCP render: the
        Azure render builds the bootstrap alone so far, and its placement is cloud-neutral)."""
        rows = [r for r in self.renders.rows("gcp-stable") if r["type"] in HELM_TYPES
                and str(r["inputs"].get("chart", "")).endswith("metrics-server")]
        assert len(rows) == 1
        return rows

    def spec(self, variant: str) -> ClusterSpec:
        spec, _ = self.renders.get("azure-stable")
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
            self.rows[variant] = rows_of(result.resources) + self.metrics_server() + cluster_rows(spec)
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


@pytest.mark.parametrize("variant", ["private", "public", "cilium"])
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
