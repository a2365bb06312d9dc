"""Security groups, least privilege: one for the API load balancer, one for the control plane,
one for workers, and, when the API is public, one for the internal API load balancer nodes
use. Rules are separate resources so groups may name each other without cycles.

What is open, and to whom:

| port | protocol | to | from |
|---|---|---|---|
| 6443 | tcp | load balancer | ``apiAllowedCidrs`` (+ the VPC CIDR when the API is internal) |
| 6443 | tcp | internal load balancer (public API only) | control plane, workers |
| 6443 | tcp | control plane | load balancer(s), control plane, workers |
| 2379-2380 | tcp | control plane | control plane (etcd client and peer) |
| 10250 | tcp | control plane, workers | control plane (API server), workers (metrics-server) |
| CNI ports | per CNI | control plane, workers | control plane, workers |

No port 22 anywhere (Session Manager instead). Node egress is open: nodes pull images and
packages and call AWS APIs; on an air-gapped network too, where the route tables (no internet
gateway, no NAT) are the boundary and the mirrors are known by name only (:mod:`cfcr.aws.endpoints`). A load balancer's group lets out only 6443 to the control plane.
The flow check (``cfcr flows``, :mod:`cfcr.flows`) proves every needed flow gets through.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
from pulumi_aws import ec2, vpc

from cfcr.aws.tags import base_tags
from cfcr.cni_ports import node_ports
from cfcr.config import ClusterSpec
from cfcr.constants import API_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT, KUBELET_PORT


@dataclass(frozen=True)
class PortRule:
    """One ingress port range of a CNI, opened between nodes."""

    name: str
    """Short stable name (part of the rule's resource name)."""
    protocol: str
    """``tcp``, ``udp``, ``icmp`` or an IP protocol number (``4`` for IP-in-IP)."""
    from_port: int | None
    """First port (ICMP type for icmp; None for protocols without ports)."""
    to_port: int | None
    """Last port (ICMP code for icmp)."""


def cni_port_rules(cni: str) -> tuple[PortRule, ...]:
    """The ingress rules between nodes for ``cni``, from :func:`cfcr.cni_ports.node_ports` (the
    one table the chart values read too): a port is a one-port range; ICMP is its type with
    code 0."""
    return tuple(
        PortRule(p.name, p.protocol, p.port, 0 if p.protocol == "icmp" else p.port) for p in node_ports(cni)
    )


CNI_PORTS: dict[str, tuple[PortRule, ...]] = {cni: cni_port_rules(cni) for cni in ("flannel", "canal", "calico", "cilium")}
"""The rules of each CNI (``none`` opens nothing)."""


@dataclass(frozen=True)
class SecurityGroups:
    """The cluster's security groups."""

    load_balancer: ec2.SecurityGroup
    """On the API network load balancer."""
    control_plane: ec2.SecurityGroup
    """On every control-plane instance (tagged for the cloud controller manager)."""
    worker: ec2.SecurityGroup
    """On every worker instance (tagged for the cloud controller manager)."""
    internal_load_balancer: ec2.SecurityGroup | None
    """On the internal API load balancer nodes use when the API is public; None otherwise (the
    one load balancer is internal then, and nodes use it)."""
    rules: list[pulumi.Resource]
    """Every rule; VMs wait for them, so a node never boots into a half-open firewall."""


def _cidr_args(cidr: str) -> dict[str, str]:
    net = ipaddress.ip_network(cidr, strict=False)
    return {"cidr_ipv6": str(net)} if net.version == 6 else {"cidr_ipv4": str(net)}


def _slug(cidr: str) -> str:
    return cidr.replace("/", "-").replace(":", "-").replace(".", "-")


def build_security_groups(name: str, spec: ClusterSpec, vpc_id: pulumi.Input[str], vpc_cidr: pulumi.Input[str],
                          parent: pulumi.Resource) -> SecurityGroups:
    """Create the three groups and their rules as children of ``parent``."""
    assert spec.name is not None
    child = pulumi.ResourceOptions(parent=parent)

    def group(suffix: str, description: str, cluster_owned: bool) -> ec2.SecurityGroup:
        tags = base_tags(spec, f"{name}-{suffix}", owned=cluster_owned)
        if not cluster_owned:
            tags.pop(f"kubernetes.io/cluster/{spec.name}", None)
        return ec2.SecurityGroup(f"{name}-{suffix}", vpc_id=vpc_id, description=description,
                                 revoke_rules_on_delete=True, tags=tags, opts=child)

    # The CCM wants exactly one group per instance tagged kubernetes.io/cluster/<name>: the
    # node groups carry it, the load balancer's does not.
    public = spec.networking.api_public
    lb = group("api-lb", "cfcr API load balancer: 6443 from the allowed CIDRs" + ("" if public else " and the VPC"),
               False)
    cp = group("control-plane", "cfcr control plane", True)
    worker = group("worker", "cfcr workers", True)
    internal_lb = group("api-lb-int", "cfcr internal API load balancer: 6443 from the nodes", False) if public else None
    rules: list[pulumi.Resource] = []

    def ingress(rule_name: str, target: ec2.SecurityGroup, protocol: str, from_port: int | None,
                to_port: int | None, *, source: ec2.SecurityGroup | None = None, cidr: pulumi.Input[str] | None = None,
                description: str) -> None:
        v4: pulumi.Input[str] | None = None
        v6: pulumi.Input[str] | None = None
        if isinstance(cidr, str):
            v4, v6 = _cidr_args(cidr).get("cidr_ipv4"), _cidr_args(cidr).get("cidr_ipv6")
        else:
            v4 = cidr
        rules.append(vpc.SecurityGroupIngressRule(
            f"{name}-{rule_name}", security_group_id=target.id, ip_protocol=protocol, from_port=from_port,
            to_port=to_port, description=description, cidr_ipv4=v4, cidr_ipv6=v6,
            referenced_security_group_id=source.id if source is not None else None, opts=child,
        ))

    # API: allowed CIDRs to the load balancer (and the VPC when it is internal: nodes use it). An
    # internet-facing NLB's name resolves to public addresses inside the VPC too, so node traffic
    # would leave through the NAT and arrive from its public address: when the API is public,
    # nodes use an internal NLB of their own instead, open to the node groups only.
    for cidr in dict.fromkeys(spec.networking.api_allowed_cidrs):
        ingress(f"api-lb-from-{_slug(cidr)}", lb, "tcp", API_PORT, API_PORT, cidr=cidr,
                description="Kubernetes API from an allowed CIDR")
    if not public:
        ingress("api-lb-from-vpc", lb, "tcp", API_PORT, API_PORT, cidr=vpc_cidr,
                description="Kubernetes API from the VPC")
    balancers = [("api-lb", lb, "load balancer")]
    if internal_lb is not None:
        balancers.append(("api-lb-int", internal_lb, "internal load balancer"))
        ingress("api-lb-int-from-cp", internal_lb, "tcp", API_PORT, API_PORT, source=cp,
                description="Kubernetes API from the control plane")
        ingress("api-lb-int-from-worker", internal_lb, "tcp", API_PORT, API_PORT, source=worker,
                description="Kubernetes API from workers")
    for prefix, balancer, what in balancers:
        rules.append(vpc.SecurityGroupEgressRule(
            f"{name}-{prefix}-to-control-plane", security_group_id=balancer.id, ip_protocol="tcp",
            from_port=API_PORT, to_port=API_PORT, referenced_security_group_id=cp.id,
            description="forward and health-check to the API servers", opts=child,
        ))
        suffix = prefix.removeprefix("api-")
        ingress(f"cp-api-from-{suffix}", cp, "tcp", API_PORT, API_PORT, source=balancer,
                description=f"API from the {what}")
    ingress("cp-api-from-cp", cp, "tcp", API_PORT, API_PORT, source=cp, description="API from the control plane")
    ingress("cp-api-from-worker", cp, "tcp", API_PORT, API_PORT, source=worker, description="API from workers")
    # etcd: client and peer, control plane only.
    ingress("cp-etcd-from-cp", cp, "tcp", ETCD_CLIENT_PORT, ETCD_PEER_PORT, source=cp, description="etcd client and peer")
    # kubelet API: the API server (exec, logs, port-forward) on the control plane, and metrics-server,
    # a Deployment on workers whose scrapes of node addresses leave masqueraded as its worker's.
    ingress("cp-kubelet-from-cp", cp, "tcp", KUBELET_PORT, KUBELET_PORT, source=cp, description="kubelet from the control plane")
    ingress("worker-kubelet-from-cp", worker, "tcp", KUBELET_PORT, KUBELET_PORT, source=cp, description="kubelet from the control plane")
    ingress("cp-kubelet-from-worker", cp, "tcp", KUBELET_PORT, KUBELET_PORT, source=worker,
            description="kubelet from metrics-server on workers")
    ingress("worker-kubelet-from-worker", worker, "tcp", KUBELET_PORT, KUBELET_PORT, source=worker,
            description="kubelet from metrics-server on workers")
    # CNI: between every pair of nodes.
    for port in cni_port_rules(spec.cni):
        for target_name, target in (("cp", cp), ("worker", worker)):
            for source_name, source in (("cp", cp), ("worker", worker)):
                ingress(f"{target_name}-{spec.cni}-{port.name}-from-{source_name}", target, port.protocol,
                        port.from_port, port.to_port, source=source, description=f"{spec.cni} {port.name}")
    # Egress: anywhere (images, packages, AWS APIs).
    for node_name, node in (("cp", cp), ("worker", worker)):
        for family, cidr in (("v4", "0.0.0.0/0"), ("v6", "::/0")):
            rules.append(vpc.SecurityGroupEgressRule(
                f"{name}-{node_name}-egress-{family}", security_group_id=node.id, ip_protocol="-1",
                description="all egress", cidr_ipv4=_cidr_args(cidr).get("cidr_ipv4"),
                cidr_ipv6=_cidr_args(cidr).get("cidr_ipv6"), opts=child,
            ))
    return SecurityGroups(load_balancer=lb, control_plane=cp, worker=worker, internal_load_balancer=internal_lb,
                          rules=rules)
