"""A platform team's own Pulumi program that uses cfcr's public components.

It builds two things, both from the typed API (``cfcr.aws`` and ``cfcr.addons``):

1. ``payments``: a cfcr ``Cluster`` and its ``ClusterAddons`` in a VPC the network team owns. The program creates no
   VPC and no subnets; the VPC and the private subnets come from config (``vpcId``,
   ``subnetIds``), as the network team's stack outputs them, and cfcr runs in its
   existing-network mode (``networking.existingNetwork``).
2. ``tools``: cfcr's addons (``ClusterAddons``) on a cluster cfcr did not build, reached with
   a kubeconfig from config (``toolsKubeconfig``, a secret). Its pod network is its own
   (``cni: none``), so cfcr installs the rest: kube-proxy, CoreDNS, the CSR approver, the
   AWS cloud controller and EBS CSI driver, metrics-server, the cluster-autoscaler and RBAC.

Config (namespace ``platform-cluster``, see Pulumi.dev.yaml and README.md): ``region``,
``vpcId``, ``subnetIds``, ``apiAllowedCidrs``, ``toolsKubeconfig``, ``toolsApiServerUrl``,
``toolsNodeGroups``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from cfcr.addons import ClusterAddons, ClusterAddonsArgs, CloudFacts, NodeGroup
from cfcr.aws import Cluster, ClusterArgs
from cfcr.config import ClusterSpec, load_spec


@dataclass(frozen=True)
class PlatformConfig:
    """What this program reads from its stack config."""

    region: str
    """AWS region of both clusters."""
    vpc_id: str
    """The network team's VPC the ``payments`` cluster goes into."""
    subnet_ids: list[str]
    """Its private subnets, one per zone: nodes, control plane and the internal API load balancer."""
    api_allowed_cidrs: list[str]
    """Who may reach the ``payments`` API besides its nodes (the VPN, CI runners)."""
    tools_kubeconfig: pulumi.Output[str]
    """Admin kubeconfig of the ``tools`` cluster (a secret)."""
    tools_api_server_url: str
    """``https://host:6443`` of the ``tools`` cluster, as its nodes reach it (kube-proxy uses it)."""
    tools_node_groups: dict[str, NodeGroup]
    """Pool name -> the ``tools`` cluster's auto scaling group, for the cluster-autoscaler."""

    @classmethod
    def read(cls) -> PlatformConfig:
        """Read and check the config; a missing key fails with its name before any resource."""
        config = pulumi.Config()
        groups = config.require_object("toolsNodeGroups")
        return cls(
            region=config.require("region"),
            vpc_id=config.require("vpcId"),
            subnet_ids=list(config.require_object("subnetIds")),
            api_allowed_cidrs=list(config.get_object("apiAllowedCidrs") or []),
            tools_kubeconfig=config.require_secret("toolsKubeconfig"),
            tools_api_server_url=config.require("toolsApiServerUrl"),
            tools_node_groups={
                pool: NodeGroup(g["name"], int(g["minSize"]), int(g["maxSize"])) for pool, g in groups.items()
            },
        )


def payments_spec(cfg: PlatformConfig) -> ClusterSpec:
    """The ``payments`` cluster: 3 control-plane members, one pool, in the existing VPC."""
    return load_spec(
        {
            "cloud": "aws",
            "region": cfg.region,
            "name": "payments",
            "production": True,
            "kubernetes": {"version": "stable"},
            "controlPlane": {"count": 3},
            "nodePools": [{"name": "apps", "minSize": 3, "maxSize": 12}],
            "networking": {
                "existingNetwork": {"networkId": cfg.vpc_id, "subnetIds": cfg.subnet_ids},
                "apiAllowedCidrs": cfg.api_allowed_cidrs,
            },
            "pki": {"users": [{"name": "payments-oncall", "groups": ["payments:operators"]}]},
            "tags": {"owner": "platform-team"},
        },
        stack=pulumi.get_stack(),
    )


def tools_spec(cfg: PlatformConfig) -> ClusterSpec:
    """What the addons need to know of the ``tools`` cluster (cfcr builds none of its machines)."""
    return load_spec(
        {
            "cloud": "aws",
            "region": cfg.region,
            "name": "tools",
            "cni": "none",  # the cluster's own pod network stays
            "nodePools": [
                {"name": pool, "minSize": g.min_size, "maxSize": g.max_size}
                for pool, g in cfg.tools_node_groups.items()
            ],
            "addons": {"rbacGroups": {"platform-operators": "platform-operator"}},
        },
        stack=pulumi.get_stack(),
    )


def payments_addons(spec: ClusterSpec, cluster: Cluster) -> ClusterAddons:
    """The addons of ``payments``, wired to its API and machines as ``cfcr.program`` wires them."""
    groups = {p.name: NodeGroup(cluster.node_pools[p.name].asg_name, p.min_size, p.max_size)
              for p in spec.node_pools}
    return ClusterAddons(
        "payments-addons",
        ClusterAddonsArgs(
            spec=spec,
            kubeconfig=cluster.admin_kubeconfig,
            api_server_url=cluster.private_api_server_url,
            gate_url=cluster.api_server_url,
            gate_after=[*cluster.control_plane_machines, *cluster.control_plane_rolled],
            gate_machines=cluster.control_plane_instance_ids,
            cloud=CloudFacts.from_spec(spec, groups, termination_queue_url=cluster.termination_queue_url),
        ),
        opts=pulumi.ResourceOptions(parent=cluster),
    )


def build(cfg: PlatformConfig) -> tuple[Cluster, ClusterAddons]:
    """The ``payments`` cluster with its addons, and the addons of ``tools``."""
    spec = payments_spec(cfg)
    payments = Cluster("payments", ClusterArgs(spec=spec))
    payments_addons(spec, payments)
    spec = tools_spec(cfg)
    tools = ClusterAddons(
        "tools-addons",
        ClusterAddonsArgs(
            spec=spec,
            kubeconfig=cfg.tools_kubeconfig,
            api_server_url=cfg.tools_api_server_url,
            cloud=CloudFacts.from_spec(spec, cfg.tools_node_groups),
            gate=False,  # the cluster is up already; its kubeconfig need not carry a client certificate
        ),
    )
    return payments, tools


payments, tools = build(PlatformConfig.read())
pulumi.export("paymentsApiServerUrl", payments.api_server_url)
pulumi.export("paymentsKubeconfig", payments.admin_kubeconfig)
pulumi.export("paymentsSubnetIds", payments.private_subnet_ids)
pulumi.export("toolsAddons", sorted(tools.addons))
