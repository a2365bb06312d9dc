"""The network: the cluster's resource group (or an existing one), a virtual network with one
subnet for the control plane and one for the workers, and a NAT gateway with a Standard static
public IP for the nodes' way to the internet; or an existing virtual network and subnets.

Azure subnets are regional (one subnet spans every zone), so, as on GCP, the zone plan's private
blocks (:func:`cfcr.config.topology.zones`, which place the control-plane members' fixed
addresses) all lie in the first half of the node CIDR, which is the control-plane subnet; the
second half is the workers' subnet (Azure's public load balancer and NAT gateway take no subnet,
so the plan's public blocks are free for them).

Both subnets have ``defaultOutboundAccess`` off: Azure retired default outbound access for new
virtual networks (2025-09-30), and an implicit outbound address is neither stable nor the
cluster's. Outbound goes through the NAT gateway, attached to both subnets, and both subnets
carry the cluster's network security group (:mod:`cfcr.azure.security`).

``natGateways``: ``none`` builds no NAT gateway (nodes then reach nothing outside the virtual
network); ``single`` and ``perZone`` both build one NAT gateway with no zone: a subnet takes one
NAT gateway and Azure subnets span every zone, so there is no NAT gateway per zone to build
(Azure places a gateway without a zone in one zone of its choosing).

An existing network (``networking.existingNetwork``) is used as it is: cfcr changes none of its
subnets, so the security group goes on each node's network interface instead
(:attr:`Network.security_group_on_nics`), and its way out is its owner's.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import network as azure_network
from pulumi_azure_native import resources

from cfcr.config import ClusterSpec
from cfcr.azure.names import RESOURCE_GROUP_MAX, VNET_NAME_MAX, resource_name
from cfcr.azure.tags import ROLE_TAG, base_tags

_SUBNET_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)/providers/Microsoft\.Network/"
    r"virtualNetworks/(?P<vnet>[^/]+)(/subnets/(?P<subnet>[^/]+))?$", re.IGNORECASE)
"""An ARM id of a virtual network, or of one of its subnets."""


def control_plane_range(spec: ClusterSpec) -> str:
    """The control-plane subnet's range: the first half of the node CIDR (it holds every zone's
    private block, so every member's fixed address)."""
    network = ipaddress.IPv4Network(spec.networking.node_cidr)
    return str(next(network.subnets(prefixlen_diff=1)))


def workers_range(spec: ClusterSpec) -> str:
    """The workers' subnet's range: the second half of the node CIDR."""
    network = ipaddress.IPv4Network(spec.networking.node_cidr)
    return str(list(network.subnets(prefixlen_diff=1))[1])


def after(resource: pulumi.Resource, value: str) -> pulumi.Output[str]:
    """``value`` (a name cfcr chose), as an Output that depends on ``resource``: a child names its
    parent resource by the name cfcr gave it, and is created after it."""
    return resource.urn.apply(lambda _: value)


@dataclass(frozen=True)
class ArmId:
    """The parts of a virtual network's or subnet's ARM id."""

    subscription: str
    resource_group: str
    vnet: str
    subnet: str | None


def parse_arm_id(key: str, value: str, *, subnet: bool) -> ArmId:
    """``value`` (of config key ``key``) as an ARM id of a virtual network, or of a subnet;
    ``ValueError`` naming the key, the value and the form allowed."""
    match = _SUBNET_ID.match(value)
    if match is None or (match.group("subnet") is None) == subnet:
        form = ("/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Network/virtualNetworks/<vnet>"
                + ("/subnets/<subnet>" if subnet else ""))
        raise ValueError(f"cfcr:{key}: got {value!r}; on azure give the ARM id of a "
                         f"{'subnet' if subnet else 'virtual network'}: {form}")
    return ArmId(match.group("subscription"), match.group("group"), match.group("vnet"), match.group("subnet"))


@dataclass
class ResourceGroup:
    """The resource group every resource of the cluster goes in."""

    name: pulumi.Output[str]
    """Its name, as an Output that depends on the group when cfcr creates it."""
    created: resources.ResourceGroup | None
    """The group cfcr created; None for an existing one."""


def resource_group(name: str, spec: ClusterSpec, parent: pulumi.Resource, *,
                   existing: str | None = None) -> ResourceGroup:
    """The cluster's resource group ``<name>-rg`` in ``spec.region``, or the ``existing`` one by
    name (one that someone else owns and cfcr must not delete)."""
    if existing is not None:
        return ResourceGroup(name=pulumi.Output.from_input(existing), created=None)
    group_name = resource_name(f"{name}-rg", limit=RESOURCE_GROUP_MAX, keep="-rg")
    group = resources.ResourceGroup(
        f"{name}-rg",
        resource_group_name=group_name,
        location=spec.region,
        tags=base_tags(spec, **{ROLE_TAG: "network"}),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return ResourceGroup(name=after(group, group_name), created=group)


@dataclass
class Network:
    """What the rest of the cluster needs of its network."""

    vnet_id: pulumi.Output[str]
    """The virtual network's id."""
    vnet_name: pulumi.Output[str]
    """The virtual network's name (``vnetName`` of the cloud provider's config)."""
    vnet_resource_group: pulumi.Output[str]
    """The virtual network's resource group (``vnetResourceGroup``)."""
    control_plane_subnet: pulumi.Output[str]
    """The control-plane subnet's id (members' NICs and the internal API load balancer's frontend)."""
    workers_subnet: pulumi.Output[str]
    """The workers' subnet's id (the pools' scale sets)."""
    workers_subnet_name: pulumi.Output[str]
    """The workers' subnet's name (``subnetName``: where the cloud provider puts internal load balancers)."""
    control_plane_cidr: str | None
    """The control-plane subnet's range; None for an existing subnet (not in the render)."""
    workers_cidr: str | None
    """The workers' subnet's range; None for an existing subnet."""
    security_group_on_nics: bool
    """True when the subnets do not carry the cluster's network security group (an existing
    network): every NIC (VM and scale set) must then name it itself."""
    nat_public_ip: azure_network.PublicIPAddress | None = None
    """The NAT gateway's public address (nodes' traffic reaches the internet from it); None
    without a NAT gateway."""
    ready: list[pulumi.Resource] = field(default_factory=list)
    """What machines wait for (subnets, NAT gateway)."""


def existing_network(spec: ClusterSpec) -> Network:
    """The existing virtual network and subnets of ``networking.existingNetwork``: one subnet for
    every node, or two (the control plane's, then the workers')."""
    existing = spec.networking.existing_network
    assert existing is not None
    key = "networking.existingNetwork"
    vnet = parse_arm_id(f"{key}.networkId", existing.network_id, subnet=False)
    if existing.public_subnet_ids:
        raise ValueError(f"cfcr:{key}.publicSubnetIds: got {existing.public_subnet_ids}; on azure leave it empty "
                         "(a public load balancer takes no subnet)")
    if len(existing.subnet_ids) not in (1, 2):
        raise ValueError(f"cfcr:{key}.subnetIds: got {existing.subnet_ids}; on azure give one subnet (every node) "
                         "or two (the control plane's, then the workers'): Azure subnets span every zone")
    subnets = [parse_arm_id(f"{key}.subnetIds", s, subnet=True) for s in existing.subnet_ids]
    for s, text in zip(subnets, existing.subnet_ids, strict=True):
        if (s.subscription.lower(), s.resource_group.lower(), s.vnet.lower()) != (
                vnet.subscription.lower(), vnet.resource_group.lower(), vnet.vnet.lower()):
            raise ValueError(f"cfcr:{key}.subnetIds: got {text!r}; allowed: subnets of {key}.networkId "
                             f"({existing.network_id})")
    cp, workers = existing.subnet_ids[0], existing.subnet_ids[-1]
    workers_name = subnets[-1].subnet
    assert workers_name is not None
    return Network(
        vnet_id=pulumi.Output.from_input(existing.network_id),
        vnet_name=pulumi.Output.from_input(vnet.vnet),
        vnet_resource_group=pulumi.Output.from_input(vnet.resource_group),
        control_plane_subnet=pulumi.Output.from_input(cp),
        workers_subnet=pulumi.Output.from_input(workers),
        workers_subnet_name=pulumi.Output.from_input(workers_name),
        control_plane_cidr=None,
        workers_cidr=None,
        security_group_on_nics=True,
    )


def build_network(name: str, spec: ClusterSpec, group: ResourceGroup, security_group: pulumi.Input[str],
                  parent: pulumi.Resource) -> Network:
    """The cluster's virtual network in ``group``, its subnets carrying ``security_group`` (the
    network security group's id, :func:`cfcr.azure.security.build_security`), or the existing
    network (``networking.existingNetwork``)."""
    if spec.networking.existing_network is not None:
        return existing_network(spec)
    child = pulumi.ResourceOptions(parent=parent)
    tags = base_tags(spec, **{ROLE_TAG: "network"})
    vnet_name = resource_name(f"{name}-vnet", limit=VNET_NAME_MAX, keep="-vnet")
    vnet = azure_network.VirtualNetwork(
        f"{name}-vnet",
        virtual_network_name=vnet_name,
        resource_group_name=group.name,
        location=spec.region,
        address_space=azure_network.AddressSpaceArgs(address_prefixes=[spec.networking.node_cidr]),
        tags=tags,
        opts=child,
    )
    nat: azure_network.NatGateway | None = None
    public_ip: azure_network.PublicIPAddress | None = None
    if spec.networking.nat_gateways != "none":
        public_ip = azure_network.PublicIPAddress(
            f"{name}-nat-ip",
            public_ip_address_name=resource_name(f"{name}-nat-ip", keep="-nat-ip"),
            resource_group_name=group.name,
            location=spec.region,
            sku=azure_network.PublicIPAddressSkuArgs(name="Standard", tier="Regional"),
            public_ip_allocation_method="Static",
            public_ip_address_version="IPv4",
            tags=tags,
            opts=child,
        )
        nat = azure_network.NatGateway(
            f"{name}-nat",
            nat_gateway_name=resource_name(f"{name}-nat", keep="-nat"),
            resource_group_name=group.name,
            location=spec.region,
            sku=azure_network.NatGatewaySkuArgs(name="Standard"),
            public_ip_addresses=[azure_network.SubResourceArgs(id=public_ip.id)],
            idle_timeout_in_minutes=4,
            tags=tags,
            opts=child,
        )
    ready: list[pulumi.Resource] = [*(r for r in (nat,) if r is not None)]
    subnets: dict[str, azure_network.Subnet] = {}
    previous: list[pulumi.Resource] = []
    for role, cidr in (("control-plane", control_plane_range(spec)), ("workers", workers_range(spec))):
        subnet_name = resource_name(f"{name}-{role}", keep=f"-{role}")
        subnets[role] = azure_network.Subnet(
            f"{name}-{role}",
            subnet_name=subnet_name,
            resource_group_name=group.name,
            virtual_network_name=after(vnet, vnet_name),
            address_prefix=cidr,
            default_outbound_access=False,
            nat_gateway=azure_network.SubResourceArgs(id=nat.id) if nat is not None else None,
            network_security_group=azure_network.NetworkSecurityGroupArgs(id=security_group),
            # one subnet at a time: Azure refuses a second PUT on a virtual network's subnets while
            # one runs (AnotherOperationInProgress, pulumi-azure-native#699, #1024)
            opts=pulumi.ResourceOptions(parent=parent, depends_on=previous),
        )
        previous = [subnets[role]]
        ready.append(subnets[role])
    workers = subnets["workers"]
    return Network(
        vnet_id=vnet.id,
        vnet_name=after(vnet, vnet_name),
        vnet_resource_group=group.name,
        control_plane_subnet=subnets["control-plane"].id,
        workers_subnet=workers.id,
        workers_subnet_name=after(workers, resource_name(f"{name}-workers", keep="-workers")),
        control_plane_cidr=control_plane_range(spec),
        workers_cidr=workers_range(spec),
        security_group_on_nics=False,
        nat_public_ip=public_ip,
        ready=ready,
    )
