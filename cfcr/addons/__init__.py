"""Kubernetes addons, applied through pulumi-kubernetes once the API answers.

``ClusterAddons`` installs them all for a cfcr cluster; each addon is also a component of
its own that installs on any conformant cluster with a ``kubernetes`` provider passed in
``opts`` (see docs/addons.md)::

    from cfcr.addons import ClusterAddons, ClusterAddonsArgs, CloudFacts
"""

from cfcr.addons.autoscaler import ClusterAutoscaler
from cfcr.addons.base import AddonArgs, ChartSpec
from cfcr.addons.cloud import CloudFacts, CloudIntegration, CloudIntegrationArgs, NodeGroup
from cfcr.addons.cni import Cni, CniArgs, CniLock
from cfcr.addons.component import ClusterAddons, ClusterAddonsArgs
from cfcr.addons.coredns import CoreDns, CoreDnsArgs
from cfcr.addons.csr_approver import CsrApprover
from cfcr.addons.gate import ApiNotReadyError, ReadinessGate, wait_until_ready
from cfcr.addons.kube_proxy import KubeProxy, KubeProxyArgs
from cfcr.addons.logging import Logging
from cfcr.addons.metrics_server import MetricsServer
from cfcr.addons.provider import cluster_provider
from cfcr.addons.rbac import RbacArgs, RbacPersonas
from cfcr.addons.termination import TerminationHandler
from cfcr.addons.vpa import Vpa
from cfcr.cni_ports import NodePort, node_ports

__all__ = [
    "AddonArgs",
    "ApiNotReadyError",
    "ChartSpec",
    "CloudFacts",
    "CloudIntegration",
    "CloudIntegrationArgs",
    "ClusterAddons",
    "ClusterAddonsArgs",
    "ClusterAutoscaler",
    "Cni",
    "CniArgs",
    "CniLock",
    "CoreDns",
    "CoreDnsArgs",
    "CsrApprover",
    "KubeProxy",
    "KubeProxyArgs",
    "Logging",
    "MetricsServer",
    "NodeGroup",
    "NodePort",
    "RbacArgs",
    "RbacPersonas",
    "ReadinessGate",
    "TerminationHandler",
    "Vpa",
    "cluster_provider",
    "node_ports",
    "wait_until_ready",
]
