"""Kubernetes addons, applied through pulumi-kubernetes once the API answers.

``ClusterAddons`` installs them all for a cfcr cluster; each addon is also a component of
its own that installs on any conformant cluster with a ``kubernetes`` provider passed in
``opts`` (see docs/addons.md)::

    from cfcr.addons import ClusterAddons, ClusterAddonsArgs, CloudFacts
"""

from cfcr.addons.autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from cfcr.addons.base import AddonArgs, ChartSpec
from cfcr.addons.cloud import CloudFacts, CloudIntegration, CloudIntegrationArgs, NodeGroup
from cfcr.addons.cni import Cni, CniArgs, CniLock
from cfcr.addons.component import ClusterAddons, ClusterAddonsArgs
from cfcr.addons.coredns import CoreDns, CoreDnsArgs
from cfcr.addons.csr_approver import CsrApprover, CsrApproverArgs
from cfcr.addons.gate import ApiNotReadyError, ReadinessGate, wait_until_ready
from cfcr.addons.kube_proxy import KubeProxy, KubeProxyArgs
from cfcr.addons.logging import Logging, LoggingArgs
from cfcr.addons.metrics_server import MetricsServer, MetricsServerArgs
from cfcr.addons.provider import cluster_provider
from cfcr.addons.registry import COMPONENTS, AddonComponent, AddonInputs
from cfcr.addons.rbac import RbacArgs, RbacPersonas
from cfcr.addons.termination import TerminationHandler, TerminationHandlerArgs
from cfcr.addons.vpa import Vpa, VpaArgs
from cfcr.cni_ports import NodePort, node_ports

__all__ = [
    "AddonArgs",
    "AddonComponent",
    "AddonInputs",
    "ApiNotReadyError",
    "COMPONENTS",
    "ChartSpec",
    "CloudFacts",
    "CloudIntegration",
    "CloudIntegrationArgs",
    "ClusterAddons",
    "ClusterAddonsArgs",
    "ClusterAutoscaler",
    "ClusterAutoscalerArgs",
    "Cni",
    "CniArgs",
    "CniLock",
    "CoreDns",
    "CoreDnsArgs",
    "CsrApprover",
    "CsrApproverArgs",
    "KubeProxy",
    "KubeProxyArgs",
    "Logging",
    "LoggingArgs",
    "MetricsServer",
    "MetricsServerArgs",
    "NodeGroup",
    "NodePort",
    "RbacArgs",
    "RbacPersonas",
    "ReadinessGate",
    "TerminationHandler",
    "TerminationHandlerArgs",
    "Vpa",
    "VpaArgs",
    "cluster_provider",
    "node_ports",
    "wait_until_ready",
]
