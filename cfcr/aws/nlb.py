"""The API endpoint: a network load balancer on TCP 6443, health-checked on the API server's
``/readyz``, cross-zone, behind its own security group; a private hosted zone that gives it
the stable name every node uses; and, optionally, a record under the operator's own name.

The endpoint never changes when control-plane VMs are replaced: the NLB and its names stay,
only the target group's members change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import lb, route53

from cfcr.aws.security import API_PORT
from cfcr.aws.tags import base_tags
from cfcr.config import ClusterSpec

INTERNAL_API_DOMAIN = "cfcr.internal"
"""Parent domain of each cluster's private hosted zone (``<cluster>.cfcr.internal``)."""


def private_zone_name(cluster: str) -> str:
    """The cluster's private hosted zone: one per cluster, so clusters can share a VPC."""
    return f"{cluster}.{INTERNAL_API_DOMAIN}"


def private_api_name(cluster: str) -> str:
    """``api.<cluster>.cfcr.internal``: the stable API name nodes use (and the kubeadm endpoint)."""
    return f"api.{private_zone_name(cluster)}"


@dataclass(frozen=True)
class ApiLoadBalancer:
    """The API endpoint's resources and names."""

    load_balancer: lb.LoadBalancer
    """The network load balancer."""
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
    """Listener and records; VMs wait for them (the API name resolves when nodes boot)."""


def build_api_load_balancer(
    name: str,
    spec: ClusterSpec,
    vpc_id: pulumi.Input[str],
    subnet_ids: Sequence[pulumi.Input[str]],
    security_group_id: pulumi.Input[str],
    parent: pulumi.Resource,
    public_zone_id: pulumi.Input[str] | None = None,
) -> ApiLoadBalancer:
    """NLB, target group, listener, private zone and records, as children of ``parent``."""
    assert spec.name is not None
    child = pulumi.ResourceOptions(parent=parent)
    internal = not spec.networking.api_public
    nlb = lb.LoadBalancer(
        f"{name}-api",
        load_balancer_type="network",
        internal=internal,
        subnets=list(subnet_ids),
        security_groups=[security_group_id],
        enable_cross_zone_load_balancing=True,
        ip_address_type="ipv4",
        tags=base_tags(spec, f"{name}-api"),
        opts=child,
    )
    target_group = lb.TargetGroup(
        f"{name}-api",
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
        tags=base_tags(spec, f"{name}-api"),
        opts=child,
    )
    listener = lb.Listener(
        f"{name}-api",
        load_balancer_arn=nlb.arn,
        port=API_PORT,
        protocol="TCP",
        default_actions=[lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)],
        tags=base_tags(spec, f"{name}-api"),
        opts=child,
    )
    zone = route53.Zone(
        f"{name}-internal",
        name=private_zone_name(spec.name),
        comment=f"cfcr {spec.name}: the API's stable private name",
        vpcs=[route53.ZoneVpcArgs(vpc_id=vpc_id, vpc_region=spec.region)],
        force_destroy=True,
        tags=base_tags(spec, f"{name}-internal"),
        opts=child,
    )
    alias = [route53.RecordAliasArgs(name=nlb.dns_name, zone_id=nlb.zone_id, evaluate_target_health=True)]
    private_record = route53.Record(
        f"{name}-api-private", zone_id=zone.zone_id, name=private_api_name(spec.name), type="A",
        aliases=alias, opts=child,
    )
    ready: list[pulumi.Resource] = [listener, private_record]
    public_name: pulumi.Output[str] | None = None
    if spec.networking.api_dns_name and public_zone_id is not None:
        ready.append(route53.Record(
            f"{name}-api-public", zone_id=public_zone_id, name=spec.networking.api_dns_name, type="A",
            aliases=alias, opts=child,
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
    )
