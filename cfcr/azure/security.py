"""The network security group, least privilege: one security group for the cluster, on both
subnets (or on every NIC of an existing network), whose rules name two **application security
groups**, "control plane" and "workers", that each node's NIC joins. Rules are separate
``SecurityRule`` resources (never inline as well: pulumi-azure-native#3359).

Azure's default rules admit everything from the virtual network (``AllowVnetInBound``, 65000)
and from the load balancer's probes (``AllowAzureLoadBalancerInBound``, 65001); cfcr's deny at
4096, the lowest priority a rule may have, comes before both, so only the rules below let
anything in. Priorities 500-4095 stay free for the rules the cloud controller manager adds for
Services of type LoadBalancer; those admit the Services' clients, not the load balancer's probes
(cloud-provider-azure relies on ``AllowAzureLoadBalancerInBound`` for them), so rule 180 admits
the probes: to a Service's NodePort (``externalTrafficPolicy: Cluster``, cloud-provider-azure's
default ``clusterServiceLoadBalancerHealthProbeMode: servicenodeport``) or its
``healthCheckNodePort`` (``Local``), both in the NodePort range, on the workers only (kubeadm
labels the control plane ``node.kubernetes.io/exclude-from-external-load-balancers``).

| priority | port | protocol | to | from |
|---|---|---|---|---|
| 100 | 22 | tcp | every node | the internet: **denied** |
| 110 | 6443 | tcp | control plane | ``apiAllowedCidrs`` (the API load balancers keep client addresses) |
| 120 | 6443 | tcp | control plane | the node CIDR, with a private API (hosts inside the network) |
| 130 | 6443 | tcp | control plane | ``AzureLoadBalancer`` (the API load balancers' ``/readyz`` probes) |
| 140 | 6443 | tcp | control plane | control plane, workers (the ``kubernetes`` Service, the internal load balancer) |
| 150 | 2379-2380 | tcp | control plane | control plane (etcd client and peer) |
| 160 | 10250 | tcp | every node | control plane (API server) |
| 170 | 10250 | tcp | every node | workers, when a pool may run metrics-server |
| 180 | 30000-32767 | tcp | workers | ``AzureLoadBalancer`` (the probes of Services' load balancers), when a pool may be their backend |
| 200+ | CNI ports | per CNI | every node | every node |
| 4096 | all | all | every node | anything: **denied** |

Outbound keeps Azure's defaults (to the virtual network and the internet): nodes pull images
and packages and call Azure's APIs. The flow check (``cfcr flows``, :mod:`cfcr.azure.flows`)
proves every needed flow gets through and nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import network as azure_network

from cfcr.azure.names import resource_name
from cfcr.azure.network import ResourceGroup, after
from cfcr.azure.tags import ROLE_TAG, base_tags
from cfcr.cni_ports import node_ports
from cfcr.config import ClusterSpec
from cfcr.constants import (
    API_PORT,
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
    EXCLUDE_FROM_LOAD_BALANCERS_LABEL,
    KUBELET_PORT,
    NODE_PORTS,
)

LOAD_BALANCER_TAG = "AzureLoadBalancer"
"""The service tag of Azure's load balancer probes (they come from 168.63.129.16)."""
LOAD_BALANCER_PROBE_ADDRESS = "168.63.129.16"
"""Where Azure's load balancer health probes come from (the ``AzureLoadBalancer`` tag)."""
INTERNET_TAG = "Internet"
SSH_PORT = 22
DENY_ALL_PRIORITY = 4096
"""The lowest priority a rule may have: overrides only Azure's default rules (65000 and up)."""
CNI_FIRST_PRIORITY = 200
PROTOCOLS = {"tcp": "Tcp", "udp": "Udp", "icmp": "Icmp"}
"""cfcr's protocol names as Azure's (an Azure rule admits ICMP as a whole: no single types)."""


def metrics_server_pools(spec: ClusterSpec) -> list[str]:
    """The pools metrics-server may run on: with it enabled, those without a NoSchedule or
    NoExecute taint (it tolerates none); its scrapes of every kubelet leave from there."""
    if not spec.addons.metrics_server:
        return []
    return [p.name for p in spec.node_pools
            if not any(t.effect in ("NoSchedule", "NoExecute") for t in p.taints)]


def service_backend_pools(spec: ClusterSpec) -> list[str]:
    """The pools whose nodes may be backends of a Service's load balancer: those without the
    ``node.kubernetes.io/exclude-from-external-load-balancers`` label."""
    return [p.name for p in spec.node_pools if EXCLUDE_FROM_LOAD_BALANCERS_LABEL not in p.labels]


@dataclass
class Security:
    """The cluster's network security group and application security groups."""

    security_group: azure_network.NetworkSecurityGroup
    security_group_name: str
    """Its name (``securityGroupName`` of the cloud provider's config: where the cloud controller
    manager adds the rules of Services of type LoadBalancer)."""
    control_plane: azure_network.ApplicationSecurityGroup
    """What every control-plane NIC's IP configuration joins."""
    workers: azure_network.ApplicationSecurityGroup
    """What every pool's NIC IP configuration joins."""
    rules: list[azure_network.SecurityRule] = field(default_factory=list)
    """Every rule; machines wait for them."""


def build_security(name: str, spec: ClusterSpec, group: ResourceGroup, parent: pulumi.Resource) -> Security:
    """The security group ``<name>-nsg`` with every rule, and the two application security groups."""
    child = pulumi.ResourceOptions(parent=parent)
    tags = base_tags(spec, **{ROLE_TAG: "network"})
    asgs = {
        role: azure_network.ApplicationSecurityGroup(
            f"{name}-{role}-asg",
            application_security_group_name=resource_name(f"{name}-{role}-asg", keep=f"-{role}-asg"),
            resource_group_name=group.name,
            location=spec.region,
            tags=tags,
            opts=child,
        )
        for role in ("control-plane", "workers")
    }
    nsg_name = resource_name(f"{name}-nsg", keep="-nsg")
    nsg = azure_network.NetworkSecurityGroup(
        f"{name}-nsg",
        network_security_group_name=nsg_name,
        resource_group_name=group.name,
        location=spec.region,
        tags=tags,
        opts=child,
    )
    cp, workers = asgs["control-plane"], asgs["workers"]
    nodes = [cp, workers]
    rules: list[azure_network.SecurityRule] = []

    def rule(suffix: str, priority: int, description: str, protocol: str, ports: str, *,
             to: Sequence[azure_network.ApplicationSecurityGroup] = (),
             sources: Sequence[azure_network.ApplicationSecurityGroup] = (), prefixes: Sequence[str] = (),
             access: str = "Allow") -> None:
        rule_name = resource_name(f"{name}-{suffix}", keep=f"-{suffix}")
        rules.append(azure_network.SecurityRule(
            f"{name}-{suffix}",
            security_rule_name=rule_name,
            network_security_group_name=after(nsg, nsg_name),
            resource_group_name=group.name,
            priority=priority,
            direction="Inbound",
            access=access,
            protocol=protocol,
            description=f"cfcr {spec.name}: {description}",
            source_port_range="*",
            source_address_prefix=prefixes[0] if len(prefixes) == 1 else None,
            source_address_prefixes=list(prefixes) if len(prefixes) > 1 else None,
            source_application_security_groups=[azure_network.ApplicationSecurityGroupArgs(id=s.id)
                                                for s in sources] or None,
            destination_port_range=ports,
            destination_address_prefix=None if to else "*",
            destination_application_security_groups=[azure_network.ApplicationSecurityGroupArgs(id=t.id)
                                                     for t in to] or None,
            opts=child,
        ))

    api = str(API_PORT)
    rule("deny-ssh-from-internet", 100, "no SSH from the internet (cfcr opens no SSH anywhere)", "Tcp",
         str(SSH_PORT), prefixes=[INTERNET_TAG], access="Deny")
    allowed = list(dict.fromkeys(str(c) for c in spec.networking.api_allowed_cidrs))
    if allowed:
        rule("api-from-clients", 110, "Kubernetes API from the allowed CIDRs (the load balancers keep client "
             "addresses)", "Tcp", api, to=[cp], prefixes=allowed)
    if not spec.networking.api_public:
        rule("api-from-network", 120, "Kubernetes API from hosts inside the network (the private API)", "Tcp",
             api, to=[cp], prefixes=[spec.networking.node_cidr])
    rule("api-from-lb", 130, "the API load balancers' /readyz probes", "Tcp", api, to=[cp],
         prefixes=[LOAD_BALANCER_TAG])
    rule("api-from-nodes", 140, "Kubernetes API from the nodes (the kubernetes Service, the internal load "
         "balancer)", "Tcp", api, to=[cp], sources=nodes)
    rule("etcd", 150, "etcd client and peer, between members", "Tcp", f"{ETCD_CLIENT_PORT}-{ETCD_PEER_PORT}",
         to=[cp], sources=[cp])
    rule("kubelet-from-control-plane", 160, "kubelet API from the API servers", "Tcp", str(KUBELET_PORT),
         to=nodes, sources=[cp])
    if metrics_server_pools(spec):
        rule("kubelet-from-workers", 170, "kubelet API from metrics-server on the workers", "Tcp",
             str(KUBELET_PORT), to=nodes, sources=[workers])
    if service_backend_pools(spec):
        rule("nodeports-from-lb", 180, "the probes of Services' load balancers (NodePorts, healthCheckNodePorts)",
             "Tcp", f"{NODE_PORTS[0]}-{NODE_PORTS[1]}", to=[workers], prefixes=[LOAD_BALANCER_TAG])
    for i, p in enumerate(node_ports(spec.cni)):
        rule(f"cni-{p.name or p.protocol + str(p.port)}", CNI_FIRST_PRIORITY + i, f"{spec.cni} {p.purpose}, between "
             "nodes", PROTOCOLS[p.protocol], "*" if p.protocol == "icmp" else str(p.port), to=nodes, sources=nodes)
    rule("deny-all-inbound", DENY_ALL_PRIORITY, "nothing else from anywhere (before Azure's AllowVnetInBound "
         "and AllowAzureLoadBalancerInBound)", "*", "*", prefixes=["*"], access="Deny")
    return Security(security_group=nsg, security_group_name=nsg_name, control_plane=cp, workers=workers,
                    rules=rules)
