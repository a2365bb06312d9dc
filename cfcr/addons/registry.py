"""The components of the addon registry's rows: name -> the component and how its Args are made.

:data:`cfcr.addon_registry.ADDONS` (pure data) says which addons exist, in which order, when
they run and what pins and configures them; this module says which
:class:`~cfcr.addons.base.Addon` builds each, and how :class:`~cfcr.addons.ClusterAddons`'s
inputs become that addon's typed Args. ``ClusterAddons`` walks the rows and calls
:meth:`AddonComponent.build` for each enabled one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pulumi

from cfcr.addons.autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from cfcr.addons.base import Addon
from cfcr.addons.cloud import CloudFacts, CloudIntegration, CloudIntegrationArgs
from cfcr.addons.cni import Cni, CniArgs
from cfcr.addons.coredns import CoreDns, CoreDnsArgs
from cfcr.addons.csr_approver import CsrApprover, CsrApproverArgs
from cfcr.addons.kube_proxy import KubeProxy, KubeProxyArgs
from cfcr.addons.logging import Logging, LoggingArgs
from cfcr.addons.metrics_server import MetricsServer, MetricsServerArgs
from cfcr.addons.rbac import RbacArgs, RbacPersonas
from cfcr.addons.termination import TerminationHandler, TerminationHandlerArgs
from cfcr.addons.vpa import Vpa, VpaArgs
from cfcr.channels import Release
from cfcr.config import ClusterSpec

A = TypeVar("A")


@dataclass(frozen=True)
class AddonInputs:
    """What :class:`~cfcr.addons.ClusterAddons` knows, from which each addon's Args are made."""

    spec: ClusterSpec
    """The validated cluster spec."""
    api_server_url: str
    """``https://<api endpoint>:6443`` as the nodes reach it."""
    release: Release
    """The channel release of ``spec.kubernetes.version``."""
    cloud: CloudFacts
    """Region, cluster name, node groups, cloud config and the termination queue."""
    depends_on: Sequence[pulumi.Resource]
    """What the addon's objects wait for (the row's ``after``: the gate, or the gate and the CNI)."""


@dataclass(frozen=True)
class AddonComponent(Generic[A]):
    """An addon component class and the factory of its Args."""

    component: Callable[[str, A, pulumi.ResourceOptions | None], Addon]
    """The component class (its constructor takes ``(name, args, opts)``)."""
    args: Callable[[AddonInputs], A]
    """Its Args, from what ``ClusterAddons`` knows."""

    def build(self, name: str, inputs: AddonInputs, opts: pulumi.ResourceOptions | None) -> Addon:
        """The component named ``name``."""
        return self.component(name, self.args(inputs), opts)


COMPONENTS: Mapping[str, AddonComponent[Any]] = {
    "cni": AddonComponent(Cni, lambda i: CniArgs(i.spec, i.api_server_url, i.release, i.depends_on)),
    "kube-proxy": AddonComponent(KubeProxy, lambda i: KubeProxyArgs(i.spec, i.api_server_url, i.release, i.depends_on)),
    "coredns": AddonComponent(CoreDns, lambda i: CoreDnsArgs(i.spec, i.release, i.depends_on)),
    "csr-approver": AddonComponent(CsrApprover, lambda i: CsrApproverArgs(i.spec, i.depends_on)),
    "cloud": AddonComponent(CloudIntegration, lambda i: CloudIntegrationArgs(i.spec, i.cloud, i.release, i.depends_on)),
    "rbac": AddonComponent(RbacPersonas, lambda i: RbacArgs(i.spec, i.depends_on)),
    "metrics-server": AddonComponent(MetricsServer, lambda i: MetricsServerArgs(i.spec, i.depends_on)),
    "autoscaler": AddonComponent(ClusterAutoscaler,
                                 lambda i: ClusterAutoscalerArgs(i.spec, i.cloud, i.release, i.depends_on)),
    "termination-handler": AddonComponent(TerminationHandler,
                                          lambda i: TerminationHandlerArgs(i.spec, i.cloud, i.release, i.depends_on)),
    "logging": AddonComponent(Logging, lambda i: LoggingArgs(i.spec, i.depends_on)),
    "vpa": AddonComponent(Vpa, lambda i: VpaArgs(i.spec, i.depends_on)),
}
"""Registry row name (:data:`cfcr.addon_registry.ADDONS`) -> its component."""
