"""VPC endpoints of an air-gapped network (``cfcr:networking.airGapped``): how nodes and the
controllers on the control plane reach AWS's APIs with no internet gateway and no NAT.

Exactly the services the cluster calls, each for a named reason (:func:`endpoint_services`):

=====================  ===========  ===========================================================
service                kind         who calls it, and when
=====================  ===========  ===========================================================
secretsmanager         interface    every node reads its role's keys and tokens at boot and on
                                    renewal; the control plane rotates the join token
ec2                    interface    the cloud controller manager (node addresses and zones, the
                                    security groups of Service load balancers), the EBS CSI
                                    controller (volumes) and the join-access hook (instance
                                    profile associations), all on the control plane
elasticloadbalancing   interface    the cloud controller manager: Services of type LoadBalancer
autoscaling            interface    cluster-autoscaler (``addons.autoscaler``) scales the pools'
                                    groups; aws-node-termination-handler (``aws.terminationQueue``)
                                    completes their lifecycle hooks
sqs                    interface    aws-node-termination-handler reads the termination queue
                                    (``aws.terminationQueue``)
sts                    interface    an etcd snapshot upload reads the account id and assumes the
                                    backup writer role (``etcdBackups.enabled``); the regional
                                    endpoint, as every call here
s3                     gateway      the snapshot itself (``etcdBackups.enabled``): routes on the
                                    node route tables, no charge
ssm, ssmmessages       interface    Session Manager, the only way onto a node (no SSH), and the
                                    restore runbook's commands; the instance profiles grant
                                    ``ssm:UpdateInstanceInformation`` and ``ssmmessages:*`` only
=====================  ===========  ===========================================================

Not created, and why: **kms** -- no node or controller calls KMS itself: Secrets Manager, EBS
and S3 call it on the caller's behalf (the grants say ``kms:ViaService``), inside AWS, never
through the VPC; **ec2messages** -- the agent's older command channel, which the instance
profiles do not grant (``ssmmessages`` carries the session and the commands); **logs** -- no
addon writes to CloudWatch Logs (fluent-bit's output is the site's, and no role grants
``logs:*``); **ecr.api / ecr.dkr** -- images come from the site's mirrors (``cfcr:mirrors``),
and no role grants ECR.

Interface endpoints have private DNS on (the SDKs and the CLI keep calling
``<service>.<region>.amazonaws.com``, which then resolves to the endpoint's addresses inside
the VPC; the VPC needs DNS support and DNS hostnames, on for a VPC cfcr creates and checked on
an existing one), sit in the node subnets (one network interface per zone), and share one
security group, ``<cluster>-endpoints``, that admits TCP 443 from the control-plane and worker
groups and nothing else. The S3 gateway endpoint adds its routes to the node route tables cfcr
created; an existing network's routes are the site's (cfcr changes none: route S3 yourself).
``cfcr:aws.vpcEndpoints: existing`` says the existing network has all of them already: cfcr
creates none, and the flow check takes them as present.

Every VM waits for the endpoints (:attr:`Endpoints.ready`), so the first secret fetch at boot
finds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_aws import ec2, vpc

from cfcr.aws.network import Network
from cfcr.aws.tags import base_tags
from cfcr.config import ClusterSpec
from cfcr.flows.model import NEED_CLOUD_API, NEED_SECRETS, NEED_SESSIONS

HTTPS_PORT = 443


@dataclass(frozen=True)
class EndpointService:
    """One AWS service the cluster calls, and why."""

    service: str
    """The service's endpoint name: ``secretsmanager``, ``s3`` (``com.amazonaws.<region>.<service>``)."""
    gateway: bool
    """A gateway endpoint (routes on the node route tables) instead of an interface endpoint."""
    need: str
    """The flow that needs it (:data:`cfcr.flows.model.NEED_SECRETS`, ``NEED_CLOUD_API``, ``NEED_SESSIONS``)."""
    why: str
    """Who calls it, for messages and docs."""

    @property
    def slug(self) -> str:
        """The service in resource names (``ecr.api`` -> ``ecr-api``)."""
        return self.service.replace(".", "-")


def endpoint_services(spec: ClusterSpec) -> list[EndpointService]:
    """The services ``spec``'s cluster calls (the module docstring's table), in a stable order."""
    out = [
        EndpointService("secretsmanager", False, NEED_SECRETS,
                        "every node reads its role's keys and tokens; the control plane rotates the join token"),
        EndpointService("ec2", False, NEED_CLOUD_API,
                        "the cloud controller manager, the EBS CSI controller and the join-access hook"),
        EndpointService("elasticloadbalancing", False, NEED_CLOUD_API,
                        "the cloud controller manager's Service load balancers"),
    ]
    callers = [who for who, on in (("cluster-autoscaler", spec.addons.autoscaler),
                                   ("aws-node-termination-handler", spec.aws.termination_queue)) if on]
    if callers:
        out.append(EndpointService("autoscaling", False, NEED_CLOUD_API,
                                   f"{' and '.join(callers)} (the pools' auto scaling groups)"))
    if spec.aws.termination_queue:
        out.append(EndpointService("sqs", False, NEED_CLOUD_API, "aws-node-termination-handler reads its queue"))
    if spec.etcd_backups.enabled:
        out.append(EndpointService("sts", False, NEED_CLOUD_API,
                                   "an etcd snapshot upload assumes the backup writer role"))
        out.append(EndpointService("s3", True, NEED_CLOUD_API, "the etcd snapshots"))
    out.append(EndpointService("ssm", False, NEED_SESSIONS, "Session Manager registers every node"))
    out.append(EndpointService("ssmmessages", False, NEED_SESSIONS,
                               "Session Manager's shells, port forwards and commands"))
    return out


def private_services(spec: ClusterSpec) -> dict[str, tuple[str, ...]]:
    """What each flow of an air-gapped cluster needs: :data:`~cfcr.flows.model.NEED_SECRETS` and
    the other needs -> the services (empty when the network is not air-gapped)."""
    if not spec.networking.air_gapped:
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for s in endpoint_services(spec):
        out[s.need] = (*out.get(s.need, ()), s.service)
    return out


def service_name(region: str, service: str) -> str:
    """``com.amazonaws.<region>.<service>``, the endpoint service of an AWS service. (China's
    regions name some services ``cn.com.amazonaws.<region>.<service>``: not confirmed here.)"""
    return f"com.amazonaws.{region}.{service}"


def one_per_zone(subnet_ids: Sequence[str], zones: Sequence[str]) -> list[str]:
    """The first subnet of each zone, in order: an interface endpoint takes one subnet per zone
    (an existing network may list several subnets of one zone)."""
    seen: dict[str, str] = {}
    for sid, zone in zip(subnet_ids, zones, strict=True):
        seen.setdefault(str(zone), str(sid))
    return list(dict.fromkeys(seen.values()))


@dataclass(frozen=True)
class Endpoints:
    """The VPC endpoints of an air-gapped network and their security group."""

    security_group: ec2.SecurityGroup
    """``<cluster>-endpoints``: TCP 443 from the node groups, on every interface endpoint."""
    endpoints: dict[str, ec2.VpcEndpoint]
    """Service (``secretsmanager``) -> its endpoint."""
    rules: list[pulumi.Resource] = field(default_factory=list)
    """The security group's rules."""

    @property
    def ready(self) -> list[pulumi.Resource]:
        """What a VM waits for: every endpoint and rule, so the first secret fetch at boot works."""
        return [*self.endpoints.values(), *self.rules]


def build_endpoints(name: str, spec: ClusterSpec, network: Network, node_groups: Mapping[str, ec2.SecurityGroup],
                    parent: pulumi.Resource) -> Endpoints | None:
    """The endpoints of :func:`endpoint_services` as children of ``parent``, admitting the groups
    ``node_groups`` (short name -> group: ``cp``, ``worker``); None when the network is not
    air-gapped or the existing network has its own (``cfcr:aws.vpcEndpoints: existing``)."""
    if not spec.networking.air_gapped or spec.aws.vpc_endpoints == "existing":
        return None
    child = pulumi.ResourceOptions(parent=parent)
    group = ec2.SecurityGroup(
        f"{name}-endpoints", vpc_id=network.vpc_id, revoke_rules_on_delete=True,
        description="cfcr VPC endpoints: 443 from the nodes", tags=base_tags(spec, f"{name}-endpoints", owned=False),
        opts=child,
    )
    rules: list[pulumi.Resource] = [
        vpc.SecurityGroupIngressRule(
            f"{name}-endpoints-from-{short}", security_group_id=group.id, ip_protocol="tcp", from_port=HTTPS_PORT,
            to_port=HTTPS_PORT, referenced_security_group_id=source.id,
            description="AWS APIs through the VPC endpoints", opts=child,
        )
        for short, source in node_groups.items()
    ]
    count = len(network.private_subnet_ids)
    subnets = pulumi.Output.all(*network.private_subnet_ids, *network.zone_names).apply(
        lambda values: one_per_zone(values[:count], values[count:]))
    endpoints: dict[str, ec2.VpcEndpoint] = {}
    for s in endpoint_services(spec):
        label = f"{name}-endpoint-{s.slug}"
        if s.gateway:
            if not network.created:
                continue  # an existing network's routes are the site's
            endpoints[s.service] = ec2.VpcEndpoint(
                label, vpc_id=network.vpc_id, service_name=service_name(spec.region, s.service),
                vpc_endpoint_type="Gateway", route_table_ids=network.private_route_table_ids,
                tags=base_tags(spec, label), opts=child,
            )
            continue
        endpoints[s.service] = ec2.VpcEndpoint(
            label, vpc_id=network.vpc_id, service_name=service_name(spec.region, s.service),
            vpc_endpoint_type="Interface", private_dns_enabled=True, subnet_ids=subnets,
            security_group_ids=[group.id], tags=base_tags(spec, label), opts=child,
        )
    return Endpoints(security_group=group, endpoints=endpoints, rules=rules)
