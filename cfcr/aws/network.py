"""The VPC: private subnets for nodes and public subnets for the API load balancer and NAT,
one pair per zone of the topology plan; or an existing VPC and subnets, untouched.

Air-gapped (``cfcr:networking.airGapped``): private subnets and their route tables only; no
internet gateway, no public subnet or route table, no NAT, no Elastic IP. The nodes reach the
cloud's APIs through VPC endpoints (:mod:`cfcr.aws.endpoints`, built once the security groups
exist) and everything else from the site's mirrors, over the site's own routing."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
from pulumi_aws import ec2, get_availability_zones_output

from cfcr.aws.tags import base_tags
from cfcr.config import ClusterSpec
from cfcr.config.topology import ZonePlan, control_plane_members, zones
from cfcr.config.topology import ControlPlaneMember

INTERNAL_ELB_TAG = "kubernetes.io/role/internal-elb"
PUBLIC_ELB_TAG = "kubernetes.io/role/elb"


@dataclass(frozen=True)
class Network:
    """What the rest of the cluster needs from the network, by zone index."""

    vpc_id: pulumi.Output[str]
    """The VPC."""
    vpc_cidr: pulumi.Output[str]
    """The VPC's primary CIDR (the API and node traffic allowed from inside)."""
    zone_names: list[pulumi.Output[str]]
    """Availability zone of each zone index."""
    private_subnet_ids: list[pulumi.Output[str]]
    """Node subnet of each zone index."""
    private_route_table_ids: list[pulumi.Output[str]]
    """Route table of each node subnet cfcr created (a gateway endpoint's routes go there);
    empty for an existing network, whose routes cfcr never changes."""
    public_subnet_ids: list[pulumi.Output[str]]
    """Public (load balancer / NAT) subnet of each zone index; empty when there are none."""
    created: bool
    """True when cfcr created (and owns) the network."""
    ready: list[pulumi.Resource] = field(default_factory=list)
    """Resources a VM must wait for to have egress at boot (routes, NAT); the VPC endpoints of an
    air-gapped network are :attr:`cfcr.aws.endpoints.Endpoints.ready`."""


def zone_names(spec: ClusterSpec, plan: list[ZonePlan], parent: pulumi.Resource) -> list[pulumi.Output[str]]:
    """Zone names from config, else the region's first available zones."""
    if all(z.name for z in plan):
        return [pulumi.Output.from_input(str(z.name)) for z in plan]
    available = get_availability_zones_output(
        state="available", region=spec.region, opts=pulumi.InvokeOutputOptions(parent=parent)
    )

    def pick(index: int) -> pulumi.Output[str]:
        def choose(names: list[str]) -> str:
            if len(names) <= index:
                raise ValueError(
                    f"cfcr:controlPlane.zones: region {spec.region} offers {len(names)} zones, "
                    f"the plan needs {len(plan)}; list the zones explicitly"
                )
            return names[index]

        return available.names.apply(choose)

    return [pick(z.index) for z in plan]


def build_network(name: str, spec: ClusterSpec, parent: pulumi.Resource) -> Network:
    """Create the VPC of ``spec`` (or look up the existing one) as children of ``parent``."""
    plan = zones(spec)
    if spec.networking.existing_network is not None:
        return _existing(name, spec, plan, parent)
    return _create(name, spec, plan, parent)


def _create(name: str, spec: ClusterSpec, plan: list[ZonePlan], parent: pulumi.Resource) -> Network:
    child = pulumi.ResourceOptions(parent=parent)
    names = zone_names(spec, plan, parent)
    vpc = ec2.Vpc(
        f"{name}-vpc",
        cidr_block=spec.networking.node_cidr,
        # the private hosted zone of the API name and the endpoints' private DNS names need both
        enable_dns_support=True,
        enable_dns_hostnames=True,
        tags=base_tags(spec, f"{name}-vpc"),
        opts=child,
    )
    # CIS: the VPC's default security group allows nothing.
    ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, tags=base_tags(spec, f"{name}-default"), opts=child)
    private: list[ec2.Subnet] = []
    for zone in plan:
        i = zone.index
        private.append(ec2.Subnet(
            f"{name}-private-{i}", vpc_id=vpc.id, cidr_block=zone.private_cidr, availability_zone=names[i],
            map_public_ip_on_launch=False, tags={**base_tags(spec, f"{name}-private-{i}"), INTERNAL_ELB_TAG: "1"},
            opts=child,
        ))
    public, nats, ready = ([], [], []) if spec.networking.air_gapped else _internet(name, spec, plan, names, vpc, parent)
    tables: list[ec2.RouteTable] = []
    for zone in plan:
        i = zone.index
        rt = ec2.RouteTable(f"{name}-private-{i}", vpc_id=vpc.id, tags=base_tags(spec, f"{name}-private-{i}"), opts=child)
        tables.append(rt)
        assoc = ec2.RouteTableAssociation(f"{name}-private-{i}", subnet_id=private[i].id, route_table_id=rt.id, opts=child)
        ready.append(assoc)
        if nats:
            nat = nats[i] if len(nats) > 1 else nats[0]
            ready.append(ec2.Route(
                f"{name}-private-{i}-default", route_table_id=rt.id, destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat.id, opts=child,
            ))
    return Network(
        vpc_id=vpc.id,
        vpc_cidr=vpc.cidr_block,
        zone_names=names,
        private_subnet_ids=[s.id for s in private],
        private_route_table_ids=[t.id for t in tables],
        public_subnet_ids=[s.id for s in public],
        created=True,
        ready=ready,
    )


def _internet(name: str, spec: ClusterSpec, plan: list[ZonePlan], names: list[pulumi.Output[str]], vpc: ec2.Vpc,
              parent: pulumi.Resource) -> tuple[list[ec2.Subnet], list[ec2.NatGateway], list[pulumi.Resource]]:
    """The way to the internet: the internet gateway, a public subnet per zone on its route table,
    and the NAT gateways ``natGateways`` asks for (in the public subnets, each with an Elastic IP).
    Returns the public subnets, the NAT gateways, and what a VM waits for (the public default route)."""
    child = pulumi.ResourceOptions(parent=parent)
    igw = ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=base_tags(spec, f"{name}-igw"), opts=child)
    public_rt = ec2.RouteTable(f"{name}-public", vpc_id=vpc.id, tags=base_tags(spec, f"{name}-public"), opts=child)
    public_default = ec2.Route(
        f"{name}-public-default", route_table_id=public_rt.id, destination_cidr_block="0.0.0.0/0",
        gateway_id=igw.id, opts=child,
    )
    public: list[ec2.Subnet] = []
    for zone in plan:
        i = zone.index
        pub = ec2.Subnet(
            f"{name}-public-{i}", vpc_id=vpc.id, cidr_block=zone.public_cidr, availability_zone=names[i],
            map_public_ip_on_launch=False, tags={**base_tags(spec, f"{name}-public-{i}"), PUBLIC_ELB_TAG: "1"},
            opts=child,
        )
        ec2.RouteTableAssociation(f"{name}-public-{i}", subnet_id=pub.id, route_table_id=public_rt.id, opts=child)
        public.append(pub)
    nat_mode = spec.networking.nat_gateways
    nats: list[ec2.NatGateway] = []
    nat_zones = [] if nat_mode == "none" else ([0] if nat_mode == "single" else [z.index for z in plan])
    for i in nat_zones:
        eip = ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=base_tags(spec, f"{name}-nat-{i}"),
                      opts=pulumi.ResourceOptions(parent=parent, depends_on=[igw]))
        nats.append(ec2.NatGateway(
            f"{name}-nat-{i}", allocation_id=eip.id, subnet_id=public[i].id, connectivity_type="public",
            tags=base_tags(spec, f"{name}-nat-{i}"), opts=pulumi.ResourceOptions(parent=parent, depends_on=[igw]),
        ))
    return public, nats, [public_default]


def check_member_in_subnet(member: str, address: str, subnet_id: str, cidr: str | None) -> None:
    """A control-plane member's fixed address must lie in the subnet it is placed in."""
    if cidr and ipaddress.ip_address(address) not in ipaddress.ip_network(cidr):
        raise ValueError(
            f"cfcr:networking.existingNetwork.subnetIds: {member} has the fixed address {address} "
            f"(from cfcr:networking.nodeCidr), outside subnet {subnet_id} ({cidr}); set nodeCidr so that "
            f"block i of its /{ipaddress.ip_network(cidr).prefixlen} split holds subnet i's range, or list "
            f"subnets whose ranges match the plan"
        )


def _existing(name: str, spec: ClusterSpec, plan: list[ZonePlan], parent: pulumi.Resource) -> Network:
    existing = spec.networking.existing_network
    assert existing is not None
    if spec.networking.api_public and not existing.public_subnet_ids:
        raise ValueError(
            "cfcr:networking.existingNetwork.publicSubnetIds: got []; a public API load balancer "
            "(cfcr:networking.apiPublic: true) needs public subnets"
        )
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    vpc = ec2.get_vpc_output(id=existing.network_id, region=spec.region, opts=invoke)
    subnet_ids = list(existing.subnet_ids)
    lookups = [ec2.get_subnet_output(id=sid, region=spec.region, opts=invoke) for sid in subnet_ids]
    members = control_plane_members(spec)
    private: list[pulumi.Output[str]] = []
    names: list[pulumi.Output[str]] = []
    for zone in plan:
        k = zone.index % len(subnet_ids)
        sid, subnet = subnet_ids[k], lookups[k]
        in_zone = [m for j, m in enumerate(members) if j % len(plan) == zone.index]

        def checked(cidr: str | None, sid: str = sid, in_zone: list[ControlPlaneMember] = in_zone) -> str:
            for m in in_zone:
                check_member_in_subnet(m.name, m.address, sid, cidr)
            return sid

        private.append(subnet.cidr_block.apply(checked))
        names.append(subnet.availability_zone)
    vpc_id = pulumi.Output.from_input(existing.network_id)
    if spec.networking.air_gapped:
        # the endpoints' private DNS names resolve only in a VPC with DNS support and hostnames
        vpc_id = pulumi.Output.all(vpc.enable_dns_support, vpc.enable_dns_hostnames).apply(
            lambda flags: check_private_dns(existing.network_id, flags[0], flags[1]))
    return Network(
        vpc_id=vpc_id,
        vpc_cidr=vpc.cidr_block,
        zone_names=names,
        private_subnet_ids=private,
        private_route_table_ids=[],
        public_subnet_ids=[pulumi.Output.from_input(s) for s in existing.public_subnet_ids],
        created=False,
    )


def check_private_dns(vpc_id: str, dns_support: bool | None, dns_hostnames: bool | None) -> str:
    """``vpc_id`` when the VPC resolves the endpoints' private DNS names (DNS support and DNS
    hostnames on; AWS PrivateLink Guide, "DNS attributes for your VPC"); a clear error otherwise.
    A value the lookup did not give (None) is not held against the VPC."""
    off = [attribute for attribute, value in (("enableDnsSupport", dns_support), ("enableDnsHostnames", dns_hostnames))
           if value is False]
    if off:
        raise ValueError(
            f"cfcr:networking.existingNetwork.networkId: VPC {vpc_id} has {' and '.join(off)} off; an air-gapped "
            f"cluster (cfcr:networking.airGapped: true) reaches AWS through endpoints whose private DNS names "
            f"resolve only with both on: turn them on (aws ec2 modify-vpc-attribute)"
        )
    return vpc_id
