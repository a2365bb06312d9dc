"""The API endpoint: a network load balancer on TCP 6443, health-checked on the API server's
``/readyz``, cross-zone, behind its own security group; a private hosted zone that gives it
the stable name every node uses; and, optionally, a record under the operator's own name.
When the API is public, a second, internal NLB in the private subnets serves the nodes: the
private name aliases it (an internet-facing NLB's name resolves to public addresses even
inside the VPC, and node traffic would leave through the NAT).

The endpoint never changes when control-plane VMs are replaced: the NLB and its names stay,
only the target group's members change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import lb, route53

from cfcr.aws.names import physical_name, replace_first
from cfcr.aws.tags import base_tags
from cfcr.config import ClusterSpec
from cfcr.constants import API_PORT, private_api_name, private_zone_name

LB_TYPE = "aws:lb/loadBalancer:LoadBalancer"
TG_TYPE = "aws:lb/targetGroup:TargetGroup"


@dataclass(frozen=True)
class ApiLoadBalancer:
    """The API endpoint's resources and names."""

    load_balancer: lb.LoadBalancer
    """The network load balancer (internet-facing when the API is public)."""
    target_group: lb.TargetGroup
    """Control-plane instances, health-checked on HTTPS ``/readyz``."""
    dns_name: pulumi.Output[str]
    """The NLB's generated DNS name (goes into the serving certificate)."""
    private_name: str
    """``api.<cluster>.cfcr.internal``."""
    public_name: pulumi.Output[str] | None
    """The name clients outside the VPC use (``apiDnsName`` or the NLB's own), for an
    internet-facing endpoint; None for an internal one."""
    ready: list[pulumi.Resource]
    """Listeners and records; VMs wait for them (the API name resolves when nodes boot)."""
    internal_load_balancer: lb.LoadBalancer | None = None
    """When the API is public: the internal NLB in the private subnets that nodes use (the
    private name aliases it); None when the one NLB is internal already."""
    internal_target_group: lb.TargetGroup | None = None
    """The internal NLB's own target group (an NLB target group belongs to one load balancer):
    every control-plane instance is registered in both (``build_control_plane_instances``)."""

    @property
    def internal_dns_name(self) -> pulumi.Output[str]:
        """DNS name of the load balancer nodes reach the API through (what the private name aliases)."""
        return self.internal_load_balancer.dns_name if self.internal_load_balancer is not None else self.dns_name


def _balancer(name: str, spec: ClusterSpec, vpc_id: pulumi.Input[str], subnet_ids: Sequence[pulumi.Input[str]],
              security_group_id: pulumi.Input[str], internal: bool,
              child: pulumi.ResourceOptions, keep: str) -> tuple[lb.LoadBalancer, lb.TargetGroup, lb.Listener]:
    """One NLB on 6443 with its target group and listener, all named ``name``. ELB and target
    group names hold 32 characters: past that they get an explicit name that fits
    (:func:`cfcr.aws.names.physical_name`, keeping ``keep``), else Pulumi names them as before."""
    lb_name = physical_name(LB_TYPE, name, keep=keep)
    tg_name = physical_name(TG_TYPE, name, keep=keep)
    nlb = lb.LoadBalancer(
        name,
        name=lb_name,
        load_balancer_type="network",
        internal=internal,
        # an existing network may list fewer subnets than zones (zone i uses subnet i % n): one each
        subnets=pulumi.Output.all(*subnet_ids).apply(lambda ids: [str(i) for i in dict.fromkeys(ids)]),
        security_groups=[security_group_id],
        enable_cross_zone_load_balancing=True,
        ip_address_type="ipv4",
        tags=base_tags(spec, name),
        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(delete_before_replace=replace_first(lb_name))),
    )
    target_group = lb.TargetGroup(
        name,
        name=tg_name,
        port=API_PORT,
        protocol="TCP",
        target_type="instance",
        vpc_id=vpc_id,
        # without client IP preservation a control-plane node can reach the API through the
        # NLB even when the NLB picks that same node (no hairpin drop), and the control
        # plane's security group can name the NLB's
        preserve_client_ip="false",
        deregistration_delay=30,
        health_check=lb.TargetGroupHealthCheckArgs(
            protocol="HTTPS", port=str(API_PORT), path="/readyz", interval=10, timeout=6,
            healthy_threshold=2, unhealthy_threshold=2, matcher="200",
        ),
        tags=base_tags(spec, name),
        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(delete_before_replace=replace_first(tg_name))),
    )
    listener = lb.Listener(
        name,
        load_balancer_arn=nlb.arn,
        port=API_PORT,
        protocol="TCP",
        default_actions=[lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)],
        tags=base_tags(spec, name),
        opts=child,
    )
    return nlb, target_group, listener


def build_api_load_balancer(
    name: str,
    spec: ClusterSpec,
    vpc_id: pulumi.Input[str],
    subnet_ids: Sequence[pulumi.Input[str]],
    security_group_id: pulumi.Input[str],
    parent: pulumi.Resource,
    public_zone_id: pulumi.Input[str] | None = None,
    *,
    internal_subnet_ids: Sequence[pulumi.Input[str]] = (),
    internal_security_group_id: pulumi.Input[str] | None = None,
) -> ApiLoadBalancer:
    """NLB(s), target group(s), listener(s), private zone and records, as children of ``parent``.

    When the API is public, ``subnet_ids`` are public subnets and a second, internal NLB goes
    into ``internal_subnet_ids`` (the nodes' private subnets) behind
    ``internal_security_group_id``: the private name aliases it, as kOps' ``api.internal``. An
    internet-facing NLB's name resolves to public addresses inside the VPC too, so nodes would
    otherwise leave through the NAT and arrive with its public address.
    """
    assert spec.name is not None
    child = pulumi.ResourceOptions(parent=parent)
    internal = not spec.networking.api_public
    nlb, target_group, listener = _balancer(f"{name}-api", spec, vpc_id, subnet_ids, security_group_id, internal,
                                            child, keep="-api")
    ready: list[pulumi.Resource] = [listener]
    inner: lb.LoadBalancer | None = None
    inner_group: lb.TargetGroup | None = None
    if not internal:
        if not internal_subnet_ids or internal_security_group_id is None:
            raise ValueError("a public API needs internal_subnet_ids and internal_security_group_id for the "
                             "internal load balancer nodes use")
        # "-api-int", short: ELB and target group names hold 32 characters, and Pulumi adds 8
        inner, inner_group, inner_listener = _balancer(f"{name}-api-int", spec, vpc_id, internal_subnet_ids,
                                                       internal_security_group_id, True, child, keep="-api-int")
        ready.append(inner_listener)
    zone = route53.Zone(
        f"{name}-internal",
        name=private_zone_name(spec.name),
        comment=f"cfcr {spec.name}: the API's stable private name",
        vpcs=[route53.ZoneVpcArgs(vpc_id=vpc_id, vpc_region=spec.region)],
        force_destroy=True,
        tags=base_tags(spec, f"{name}-internal"),
        opts=child,
    )
    nodes_use = inner if inner is not None else nlb
    private_record = route53.Record(
        f"{name}-api-private", zone_id=zone.zone_id, name=private_api_name(spec.name), type="A",
        aliases=[route53.RecordAliasArgs(name=nodes_use.dns_name, zone_id=nodes_use.zone_id,
                                         evaluate_target_health=True)],
        opts=child,
    )
    ready.append(private_record)
    public_name: pulumi.Output[str] | None = None
    if spec.networking.api_dns_name and public_zone_id is not None:
        ready.append(route53.Record(
            f"{name}-api-public", zone_id=public_zone_id, name=spec.networking.api_dns_name, type="A",
            aliases=[route53.RecordAliasArgs(name=nlb.dns_name, zone_id=nlb.zone_id, evaluate_target_health=True)],
            opts=child,
        ))
    if not internal:
        public_name = (pulumi.Output.from_input(spec.networking.api_dns_name) if spec.networking.api_dns_name
                       else nlb.dns_name)
    return ApiLoadBalancer(
        load_balancer=nlb,
        target_group=target_group,
        dns_name=nlb.dns_name,
        private_name=private_api_name(spec.name),
        public_name=public_name,
        ready=ready,
        internal_load_balancer=inner,
        internal_target_group=inner_group,
    )
