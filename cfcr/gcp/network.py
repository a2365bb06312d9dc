"""The network: a custom-mode VPC network, one regional subnetwork for every node (private
Google access on, so nodes without public addresses reach Google's APIs), the proxy-only
subnet the internal API load balancer's proxies connect from, and a Cloud Router with Cloud NAT
for the nodes' way to the internet; or an existing network and subnetwork.

GCP subnetworks are regional: one subnetwork spans every zone, so the zone plan's private
blocks (:func:`cfcr.config.topology.zones`, which place the control-plane members' addresses)
all lie in the first half of the node CIDR, which is the node subnetwork's range. The second
half holds the proxy-only subnet (``cfcr:gcp.proxyOnlySubnetCidr``).

``natGateways``: ``none`` builds no NAT (nodes then reach only Google's APIs, through private
Google access); ``single`` and ``perZone`` both build one Cloud NAT, which is a regional,
software-defined service with no zonal single point of failure.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
from pulumi_gcp import compute

from cfcr.config import ClusterSpec
from cfcr.config.topology import MAX_ZONES
from cfcr.gcp.names import resource_name

PROXY_SUBNET_PREFIX = 23
"""The proxy-only subnet's size (Google's recommendation for regional Envoy-based load balancers)."""


def node_range(spec: ClusterSpec) -> str:
    """The node subnetwork's range: the first half of the node CIDR."""
    network = ipaddress.IPv4Network(spec.networking.node_cidr)
    return str(next(network.subnets(prefixlen_diff=1)))


def proxy_range(spec: ClusterSpec) -> str:
    """The proxy-only subnet's range: ``cfcr:gcp.proxyOnlySubnetCidr``, or the first /23 of the
    node CIDR's second half."""
    if spec.gcp.proxy_only_subnet_cidr:
        return spec.gcp.proxy_only_subnet_cidr
    network = ipaddress.IPv4Network(spec.networking.node_cidr)
    blocks = list(network.subnets(prefixlen_diff=3))
    second_half = blocks[MAX_ZONES]
    return str(next(second_half.subnets(new_prefix=max(PROXY_SUBNET_PREFIX, second_half.prefixlen))))


@dataclass
class Network:
    """What the rest of the cluster needs of its network."""

    network: pulumi.Output[str]
    """The network's self link (or the existing network's id as given)."""
    subnetwork: pulumi.Output[str]
    """The node subnetwork's self link (or the existing one's id)."""
    network_cidr: str | None
    """The node subnetwork's range; None for an existing subnetwork (not in the render)."""
    proxy_cidr: str
    """The proxy-only subnet's range."""
    ready: list[pulumi.Resource] = field(default_factory=list)
    """What machines wait for (subnets, NAT)."""


def build_network(name: str, spec: ClusterSpec, project: str, parent: pulumi.Resource) -> Network:
    """The cluster's network, or the existing one (``networking.existingNetwork``)."""
    child = pulumi.ResourceOptions(parent=parent)
    existing = spec.networking.existing_network
    if existing is not None:
        if len(existing.subnet_ids) != 1:
            raise ValueError(
                f"cfcr:networking.existingNetwork.subnetIds: got {existing.subnet_ids}; on gcp give exactly one "
                "subnetwork (GCP subnetworks are regional: one serves every zone)")
        return Network(network=pulumi.Output.from_input(existing.network_id),
                       subnetwork=pulumi.Output.from_input(existing.subnet_ids[0]),
                       network_cidr=None, proxy_cidr=proxy_range(spec))
    network = compute.Network(
        name,
        name=resource_name(name),
        project=project,
        auto_create_subnetworks=False,
        routing_mode="REGIONAL",
        description=f"cfcr {spec.name}",
        opts=child,
    )
    nodes = compute.Subnetwork(
        f"{name}-nodes",
        name=resource_name(f"{name}-nodes"),
        project=project,
        region=spec.region,
        network=network.id,
        ip_cidr_range=node_range(spec),
        private_ip_google_access=True,
        description=f"cfcr {spec.name}: every node",
        opts=child,
    )
    proxy = compute.Subnetwork(
        f"{name}-proxy",
        name=resource_name(f"{name}-proxy"),
        project=project,
        region=spec.region,
        network=network.id,
        ip_cidr_range=proxy_range(spec),
        purpose="REGIONAL_MANAGED_PROXY",
        role="ACTIVE",
        description=f"cfcr {spec.name}: the internal API load balancer's proxies",
        opts=child,
    )
    ready: list[pulumi.Resource] = [nodes, proxy]
    if spec.networking.nat_gateways != "none":
        router = compute.Router(
            f"{name}-router",
            name=resource_name(f"{name}-router"),
            project=project,
            region=spec.region,
            network=network.id,
            description=f"cfcr {spec.name}: Cloud NAT",
            opts=child,
        )
        nat = compute.RouterNat(
            f"{name}-nat",
            name=resource_name(f"{name}-nat"),
            project=project,
            region=spec.region,
            router=router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
            subnetworks=[compute.RouterNatSubnetworkArgs(
                name=nodes.id, source_ip_ranges_to_nats=["ALL_IP_RANGES"],
            )],
            log_config=compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=child,
        )
        ready.append(nat)
    return Network(network=network.self_link, subnetwork=nodes.self_link, network_cidr=node_range(spec),
                   proxy_cidr=proxy_range(spec), ready=ready)
