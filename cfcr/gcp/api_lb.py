"""The API endpoint: what clients and nodes reach the API servers through.

- **Nodes and members** use ``api.<cluster>.cfcr.internal``, an A record in a private Cloud DNS
  zone of the network, for a **regional internal proxy network load balancer**: its proxies (in
  the proxy-only subnet) open a new connection to a healthy API server. A passthrough internal
  load balancer is not used: GCP delivers a backend's own packets to its load balancer's address
  straight back to itself, healthy or not, so a member (or a joining one) calling the API
  through it is answered by its own, maybe not yet running, API server.
- **Clients** (``apiPublic``) use a **regional external passthrough network load balancer** on
  a static address: packets keep the client's address, so the firewall admits exactly
  ``apiAllowedCidrs`` on the members (``security.py``). Members never call this address.
- Both check **HTTPS ``/readyz``** on 6443 (anonymous access to it is kept by the API server's
  defaults; cfcr's RBAC does not remove ``system:public-info-viewer``). Backends are one
  unmanaged instance group per zone holding that zone's members (named port ``apiserver``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_gcp import compute, dns

from cfcr.config import ClusterSpec
from cfcr.constants import API_PORT, private_api_name
from cfcr.gcp.labels import base_labels
from cfcr.gcp.names import resource_name

API_PORT_NAME = "apiserver"
READYZ = "/readyz"
MAX_CONNECTIONS_PER_MEMBER = 10000
"""The proxies' connection target per API server (a proxy backend in CONNECTION mode needs one;
a target, not a cap: above it the proxies spread connections to the other members first)."""
INTERNAL_ADDRESS_OFFSET = 5
"""The internal API address: this many addresses into the node subnetwork (members start at 10)."""


def internal_address(network_cidr: str | None) -> str | None:
    """The internal load balancer's fixed address in a subnetwork cfcr creates; None (GCP picks) otherwise."""
    if network_cidr is None:
        return None
    return str(ipaddress.IPv4Network(network_cidr).network_address + INTERNAL_ADDRESS_OFFSET)


@dataclass
class ApiLoadBalancer:
    """The API's load balancers and names."""

    private_name: str
    """``api.<cluster>.cfcr.internal``, what nodes use."""
    internal_address: pulumi.Output[str]
    """The internal load balancer's address."""
    public_address: pulumi.Output[str] | None
    """The public load balancer's address (None for an internal API)."""
    public_name: pulumi.Output[str] | None
    """What clients use: ``apiDnsName`` or the public address (None for an internal API)."""
    instance_groups: list[compute.InstanceGroup]
    """One unmanaged instance group per zone; each member joins its zone's (``control_plane.py``)."""
    backends: list[pulumi.Resource] = field(default_factory=list)
    """The backend services; member gates wait for them."""
    ready: list[pulumi.Resource] = field(default_factory=list)
    """What machines wait for (the DNS record, forwarding rules)."""


def build_api_load_balancer(name: str, spec: ClusterSpec, project: str, zone_names: Sequence[pulumi.Input[str]],
                            network: pulumi.Input[str], subnetwork: pulumi.Input[str], network_cidr: str | None,
                            proxy_subnet: Sequence[pulumi.Resource], parent: pulumi.Resource) -> ApiLoadBalancer:
    """Health check, per-zone instance groups (each member joins its zone's with an
    ``InstanceGroupMembership``: ``control_plane.py``), the internal proxy load balancer and
    private DNS, and the public passthrough load balancer when the API is public."""
    assert spec.name is not None
    child = pulumi.ResourceOptions(parent=parent)
    region = spec.region
    labels = base_labels(spec)
    health = compute.RegionHealthCheck(
        f"{name}-api",
        name=resource_name(f"{name}-api"),
        project=project,
        region=region,
        description=f"cfcr {spec.name}: the API server's readiness",
        check_interval_sec=5,
        timeout_sec=3,
        healthy_threshold=2,
        unhealthy_threshold=3,
        https_health_check=compute.RegionHealthCheckHttpsHealthCheckArgs(port=API_PORT, request_path=READYZ),
        log_config=compute.RegionHealthCheckLogConfigArgs(enable=False),
        opts=child,
    )
    groups = []
    # a group per zone that holds a member (one member: one group)
    for k, zone in enumerate(list(zone_names)[:spec.control_plane.count]):
        groups.append(compute.InstanceGroup(
            f"{name}-api-z{k}",
            name=resource_name(f"{name}-api-z{k}"),
            project=project,
            zone=zone,
            network=network,
            description=f"cfcr {spec.name}: the control-plane members of one zone",
            named_ports=[compute.InstanceGroupNamedPortArgs(name=API_PORT_NAME, port=API_PORT)],
            opts=child,
        ))
    # internal: a regional internal proxy network load balancer (no hairpin to self)
    internal = compute.RegionBackendService(
        f"{name}-api-int",
        name=resource_name(f"{name}-api-int"),
        project=project,
        region=region,
        protocol="TCP",
        load_balancing_scheme="INTERNAL_MANAGED",
        port_name=API_PORT_NAME,
        health_checks=health.id,
        timeout_sec=3600,
        connection_draining_timeout_sec=30,
        # CONNECTION, as the external backend service's: GCE refuses two backend services on one
        # instance group with different balancing modes (a VM belongs to one load-balanced group)
        backends=[compute.RegionBackendServiceBackendArgs(group=g.self_link, balancing_mode="CONNECTION",
                                                          max_connections_per_instance=MAX_CONNECTIONS_PER_MEMBER,
                                                          capacity_scaler=1.0) for g in groups],
        description=f"cfcr {spec.name}: the API servers, for the nodes",
        opts=child,
    )
    proxy = compute.RegionTargetTcpProxy(
        f"{name}-api-int",
        name=resource_name(f"{name}-api-int"),
        project=project,
        region=region,
        backend_service=internal.id,
        description=f"cfcr {spec.name}: the API servers, for the nodes",
        opts=child,
    )
    fixed = internal_address(network_cidr)
    address = compute.Address(
        f"{name}-api-int",
        name=resource_name(f"{name}-api-int"),
        project=project,
        region=region,
        address_type="INTERNAL",
        subnetwork=subnetwork,
        address=fixed,
        description=f"cfcr {spec.name}: the internal API address",
        labels=labels,
        opts=child,
    )
    internal_rule = compute.ForwardingRule(
        f"{name}-api-int",
        name=resource_name(f"{name}-api-int"),
        project=project,
        region=region,
        load_balancing_scheme="INTERNAL_MANAGED",
        ip_protocol="TCP",
        ip_address=address.address,
        port_range=str(API_PORT),
        target=proxy.id,
        network=network,
        subnetwork=subnetwork,
        labels=labels,
        description=f"cfcr {spec.name}: the API servers, for the nodes",
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(proxy_subnet)),
    )
    private = private_api_name(spec.name)
    private_zone = dns.ManagedZone(
        f"{name}-internal",
        name=resource_name(f"{name}-internal"),
        project=project,
        dns_name=private.split(".", 1)[1] + ".",
        visibility="private",
        private_visibility_config=dns.ManagedZonePrivateVisibilityConfigArgs(
            networks=[dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=network)],
        ),
        description=f"cfcr {spec.name}: the cluster's private names",
        labels=labels,
        force_destroy=True,
        opts=child,
    )
    record = dns.RecordSet(
        f"{name}-api-internal",
        project=project,
        managed_zone=private_zone.name,
        name=private + ".",
        type="A",
        ttl=60,
        rrdatas=[address.address],
        opts=child,
    )
    backends: list[pulumi.Resource] = [internal]
    ready: list[pulumi.Resource] = [internal_rule, record]
    public_address: pulumi.Output[str] | None = None
    public_name: pulumi.Output[str] | None = None
    if spec.networking.api_public:
        external = compute.RegionBackendService(
            f"{name}-api",
            name=resource_name(f"{name}-api"),
            project=project,
            region=region,
            protocol="TCP",
            load_balancing_scheme="EXTERNAL",
            health_checks=health.id,
            connection_draining_timeout_sec=30,
            backends=[compute.RegionBackendServiceBackendArgs(group=g.self_link, balancing_mode="CONNECTION")
                      for g in groups],
            description=f"cfcr {spec.name}: the API servers, for clients",
            opts=child,
        )
        static = compute.Address(
            f"{name}-api",
            name=resource_name(f"{name}-api"),
            project=project,
            region=region,
            address_type="EXTERNAL",
            network_tier="PREMIUM",
            description=f"cfcr {spec.name}: the public API address",
            labels=labels,
            opts=child,
        )
        rule = compute.ForwardingRule(
            f"{name}-api",
            name=resource_name(f"{name}-api"),
            project=project,
            region=region,
            load_balancing_scheme="EXTERNAL",
            ip_protocol="TCP",
            ip_address=static.address,
            ports=[str(API_PORT)],
            backend_service=external.id,
            network_tier="PREMIUM",
            labels=labels,
            description=f"cfcr {spec.name}: the API servers, for clients",
            opts=child,
        )
        backends.append(external)
        ready.append(rule)
        public_address = static.address
        public_name = static.address
        if spec.networking.api_dns_name:
            public_name = pulumi.Output.from_input(spec.networking.api_dns_name)
            if spec.gcp.api_dns_zone:
                dns.RecordSet(
                    f"{name}-api-public",
                    project=project,
                    managed_zone=spec.gcp.api_dns_zone,
                    name=spec.networking.api_dns_name.rstrip(".") + ".",
                    type="A",
                    ttl=60,
                    rrdatas=[static.address],
                    opts=child,
                )
    return ApiLoadBalancer(private_name=private, internal_address=address.address, public_address=public_address,
                           public_name=public_name, instance_groups=groups, backends=backends, ready=ready)
