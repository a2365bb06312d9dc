"""The API endpoint: Standard load balancers in front of the members' API servers.

- **Nodes** use ``api.<cluster>.cfcr.internal``, an A record in a private DNS zone linked to the
  virtual network, for an **internal Standard load balancer** whose frontend has a fixed address
  in the control-plane subnet (:func:`internal_address`).
- **Clients** (``apiPublic``) use a **public Standard load balancer** on a Standard static
  public IP (zone-redundant over the cluster's zones). Azure's load balancers keep the client's
  address, so the security group admits exactly ``apiAllowedCidrs`` (``security.py``).
- Both probe **HTTPS ``/readyz``** on 6443 (anonymous access to it stays with the API server's
  defaults) every 5 s, out after 2 failures; rules reset idle TCP connections after 30 minutes
  (``kubectl`` watches), and the public rule takes no outbound SNAT (outbound goes through the
  NAT gateway, ``network.py``).
- Every member's NIC IP configuration is in both backend pools (``control_plane.py``).

**Hairpin.** An Azure load balancer does not deliver a backend's packets to its own frontend
back to that backend, nor to another: a member calling the internal frontend times out ("a
backend VM cannot reach its own internal load balancer frontend", Azure Load Balancer's
troubleshooting guide; CAPZ#2434, #2047). As CAPZ does, **members never use the load
balancer**: on a member the API name resolves to ``127.0.0.1`` (an ``/etc/hosts`` line written
on every boot before anything starts, :class:`cfcr.node.context.LocalApiOnMembers`, which
Azure's node hook has), so its kubelet, kube-proxy, the member scripts and the kubeadm phases
reach its own API server, whose serving certificate names the API name. Workers, which are no
backend, use the internal load balancer. The member's own API server answers once its etcd has
quorum, which is what every member's work waits for anyway.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import network as azure_network
from pulumi_azure_native import privatedns

from cfcr.azure.names import resource_name
from cfcr.azure.network import ResourceGroup, after, control_plane_range
from cfcr.azure.tags import ROLE_TAG, base_tags
from cfcr.config import ClusterSpec
from cfcr.constants import API_PORT, private_api_name

READYZ = "/readyz"
BACKEND_POOL = "members"
FRONTEND = "api"
PROBE = "readyz"
RULE = "api"
PROBE_INTERVAL_SECONDS = 5
PROBE_THRESHOLD = 2
IDLE_TIMEOUT_MINUTES = 30
"""Azure's longest TCP idle timeout on a load-balancing rule (watches stay open)."""
INTERNAL_ADDRESS_OFFSET = 4
"""The internal frontend: the control-plane subnet's first usable address (Azure reserves the
first four; members start at 10)."""
DNS_TTL = 30


def internal_address(spec: ClusterSpec) -> str:
    """The internal load balancer's fixed frontend address."""
    return str(ipaddress.IPv4Network(control_plane_range(spec)).network_address + INTERNAL_ADDRESS_OFFSET)


def load_balancer_id(subscription_id: str, group: str, lb_name: str) -> str:
    """A load balancer's ARM id (its rules name its own frontend, pool and probe by id)."""
    return (f"/subscriptions/{subscription_id}/resourceGroups/{group}/providers/Microsoft.Network/"
            f"loadBalancers/{lb_name}")


@dataclass
class ApiLoadBalancer:
    """The API's load balancers and names."""

    private_name: str
    """``api.<cluster>.cfcr.internal``, what nodes use."""
    internal_address: str
    """The internal frontend's fixed address."""
    public_address: pulumi.Output[str] | None
    """The public address (None for an internal API)."""
    public_name: pulumi.Output[str] | None
    """What clients use: ``apiDnsName`` or the public address (None for an internal API)."""
    backend_pools: list[pulumi.Output[str]]
    """The backend pools' ARM ids; every member's NIC IP configuration joins each."""
    load_balancers: list[azure_network.LoadBalancer] = field(default_factory=list)
    """Internal first, then public; member gates wait for them."""
    ready: list[pulumi.Resource] = field(default_factory=list)
    """What machines wait for (the load balancers, the DNS record and its zone link)."""


def _load_balancer(name: str, spec: ClusterSpec, group: ResourceGroup, subscription_id: pulumi.Input[str],
                   frontend: azure_network.FrontendIPConfigurationArgs, *, public: bool,
                   parent: pulumi.Resource) -> tuple[azure_network.LoadBalancer, pulumi.Output[str]]:
    """One Standard load balancer: its frontend, the members' pool, the ``/readyz`` probe and the
    6443 rule; and its pool's ARM id."""
    lb_name = resource_name(name)
    lb_id = pulumi.Output.all(subscription_id, group.name).apply(
        lambda v: load_balancer_id(str(v[0]), str(v[1]), lb_name))
    lb = azure_network.LoadBalancer(
        name,
        load_balancer_name=lb_name,
        resource_group_name=group.name,
        location=spec.region,
        sku=azure_network.LoadBalancerSkuArgs(name="Standard", tier="Regional"),
        frontend_ip_configurations=[frontend],
        backend_address_pools=[azure_network.BackendAddressPoolArgs(name=BACKEND_POOL)],
        probes=[azure_network.ProbeArgs(name=PROBE, protocol="Https", port=API_PORT, request_path=READYZ,
                                        interval_in_seconds=PROBE_INTERVAL_SECONDS, probe_threshold=PROBE_THRESHOLD)],
        load_balancing_rules=[azure_network.LoadBalancingRuleArgs(
            name=RULE,
            protocol="Tcp",
            frontend_port=API_PORT,
            backend_port=API_PORT,
            frontend_ip_configuration=azure_network.SubResourceArgs(
                id=lb_id.apply(lambda i: f"{i}/frontendIPConfigurations/{FRONTEND}")),
            backend_address_pool=azure_network.SubResourceArgs(
                id=lb_id.apply(lambda i: f"{i}/backendAddressPools/{BACKEND_POOL}")),
            probe=azure_network.SubResourceArgs(id=lb_id.apply(lambda i: f"{i}/probes/{PROBE}")),
            idle_timeout_in_minutes=IDLE_TIMEOUT_MINUTES,
            enable_tcp_reset=True,
            # outbound leaves through the NAT gateway, never the API's public address
            disable_outbound_snat=True if public else None,
            load_distribution="Default",
        )],
        tags=base_tags(spec, **{ROLE_TAG: "control-plane"}),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return lb, lb_id.apply(lambda i: f"{i}/backendAddressPools/{BACKEND_POOL}")


def build_api_load_balancer(name: str, spec: ClusterSpec, group: ResourceGroup, subscription_id: pulumi.Input[str],
                            control_plane_subnet: pulumi.Input[str], vnet_id: pulumi.Input[str],
                            zone_names: Sequence[str], parent: pulumi.Resource) -> ApiLoadBalancer:
    """The internal load balancer and its private DNS name; the public one when ``apiPublic``."""
    assert spec.name is not None, "load_spec names every cluster"
    child = pulumi.ResourceOptions(parent=parent)
    tags = base_tags(spec, **{ROLE_TAG: "control-plane"})
    address = internal_address(spec)
    internal, internal_pool = _load_balancer(
        f"{name}-api-internal", spec, group, subscription_id,
        azure_network.FrontendIPConfigurationArgs(
            name=FRONTEND, subnet=azure_network.SubnetArgs(id=control_plane_subnet), private_ip_address=address,
            private_ip_allocation_method="Static", private_ip_address_version="IPv4",
            zones=list(zone_names) or None),
        public=False, parent=parent)
    private = private_api_name(spec.name)
    zone_name = private.split(".", 1)[1]
    zone = privatedns.PrivateZone(
        f"{name}-zone",
        private_zone_name=zone_name,
        resource_group_name=group.name,
        location="Global",
        tags=tags,
        opts=child,
    )
    link = privatedns.VirtualNetworkLink(
        f"{name}-zone-link",
        virtual_network_link_name=resource_name(f"{name}-vnet-link", keep="-vnet-link"),
        private_zone_name=after(zone, zone_name),
        resource_group_name=group.name,
        location="Global",
        registration_enabled=False,
        virtual_network=privatedns.SubResourceArgs(id=vnet_id),
        tags=tags,
        opts=child,
    )
    record = privatedns.PrivateRecordSet(
        f"{name}-api-record",
        private_zone_name=after(zone, zone_name),
        resource_group_name=group.name,
        record_type="A",
        relative_record_set_name=private.split(".", 1)[0],
        ttl=DNS_TTL,
        a_records=[privatedns.ARecordArgs(ipv4_address=address)],
        opts=child,
    )
    result = ApiLoadBalancer(private_name=private, internal_address=address, public_address=None, public_name=None,
                             backend_pools=[internal_pool], load_balancers=[internal], ready=[internal, link, record])
    if spec.networking.api_public:
        ip_name = resource_name(f"{name}-api-ip", keep="-api-ip")
        ip = azure_network.PublicIPAddress(
            f"{name}-api-ip",
            public_ip_address_name=ip_name,
            resource_group_name=group.name,
            location=spec.region,
            sku=azure_network.PublicIPAddressSkuArgs(name="Standard", tier="Regional"),
            public_ip_allocation_method="Static",
            public_ip_address_version="IPv4",
            zones=list(zone_names) or None,
            tags=tags,
            opts=child,
        )
        public, public_pool = _load_balancer(
            f"{name}-api-public", spec, group, subscription_id,
            azure_network.FrontendIPConfigurationArgs(
                name=FRONTEND, public_ip_address=azure_network.PublicIPAddressArgs(id=ip.id)),
            public=True, parent=parent)
        result.backend_pools.append(public_pool)
        result.load_balancers.append(public)
        result.ready.append(public)
        result.public_address = ip.ip_address.apply(lambda a: str(a or ""))
        result.public_name = (pulumi.Output.from_input(spec.networking.api_dns_name) if spec.networking.api_dns_name
                              else result.public_address)
    return result
