"""``ClusterAddons`` (``cfcr:addons:ClusterAddons``): every addon of a cfcr cluster, in order.

readiness gate -> provider -> then the rows of the addon registry (:data:`cfcr.addon_registry.ADDONS`)
in order: CNI, kube-proxy (unless Cilium replaces it), CoreDNS, CSR approver, cloud integration,
RBAC personas, metrics-server, autoscaler, termination handler (AWS, with a queue), logging, VPA;
each one whose rule says it runs, built by its component (:data:`cfcr.addons.registry.COMPONENTS`)
and named ``<name>-<row name>``.
Every object depends on the gate; everything that needs pods to run also waits for the CNI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import pulumi

from cfcr import channels
from cfcr.addon_registry import ADDONS, NETWORK
from cfcr.addons.autoscaler import ClusterAutoscaler
from cfcr.addons.base import Addon
from cfcr.addons.cloud import CloudFacts, CloudIntegration
from cfcr.addons.cni import Cni
from cfcr.addons.coredns import CoreDns
from cfcr.addons.csr_approver import CsrApprover
from cfcr.addons.gate import ReadinessGate
from cfcr.addons.kube_proxy import KubeProxy
from cfcr.addons.logging import Logging
from cfcr.addons.metrics_server import MetricsServer
from cfcr.addons.provider import cluster_provider
from cfcr.addons.rbac import RbacPersonas
from cfcr.addons.registry import COMPONENTS, AddonInputs
from cfcr.addons.termination import TerminationHandler
from cfcr.addons.vpa import Vpa
from cfcr.config import ClusterSpec

T = TypeVar("T", bound=Addon)


@dataclass
class ClusterAddonsArgs:
    """Inputs of :class:`ClusterAddons`."""

    spec: ClusterSpec
    """The validated cluster spec."""
    kubeconfig: pulumi.Input[str]
    """The admin kubeconfig (a secret); its client certificate also opens the readiness gate."""
    api_server_url: str
    """``https://<api endpoint>:6443`` as the nodes reach it (kube-proxy and Cilium use it)."""
    cloud: CloudFacts
    """Region, cluster name, node groups, cloud config and the termination queue."""
    gate_url: pulumi.Input[str] | None = None
    """Where this program reaches the API (the public endpoint when the API is public); the
    readiness gate polls it. Default: ``api_server_url``."""
    gate_after: Sequence[pulumi.Resource] = ()
    """What the readiness gate waits for before its clock starts: the control-plane machines
    (their boot is what the gate's timeout measures) and the last member gate (an update that
    replaces members is done with them)."""
    gate_machines: pulumi.Input[Sequence[str]] = ()
    """The control-plane machines' ids: when they change (an update replaced a member), the
    readiness gate waits for the API again before any addon changes."""
    gate: bool = True
    """Wait for ``/readyz`` before anything (turn off only for clusters known to be up)."""


class ClusterAddons(pulumi.ComponentResource):
    """Every addon of the cluster, applied once the API answers."""

    def __init__(self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cfcr:addons:ClusterAddons", name, None, opts)
        spec = args.spec
        release = channels.resolve(spec.kubernetes.version)
        self.gate: ReadinessGate | None = None
        gated: list[pulumi.Resource] = []
        if args.gate:
            self.gate = ReadinessGate(
                f"{name}-readiness-gate", args.gate_url or args.api_server_url, args.kubeconfig,
                timeout_seconds=spec.addons.gate_timeout_minutes * 60,
                machines=args.gate_machines,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.gate_after)),
            )
            gated = [self.gate]
        self.provider = cluster_provider(f"{name}-k8s", args.kubeconfig, args.cloud.cluster_name,
                                         parent=self, depends_on=gated)
        child = pulumi.ResourceOptions(parent=self, provider=self.provider)
        self.addons: dict[str, Addon] = {}  # row name -> its component, in build order
        for row in ADDONS:
            if not row.wanted(spec):
                continue
            if not row.supported(args.cloud):
                if row.unsupported_warning is not None:
                    pulumi.log.warn(row.unsupported_warning.format(cloud=args.cloud.cloud), self)
                continue
            after = gated if row.after == "gate" else [*gated, self.addons[NETWORK]]
            inputs = AddonInputs(spec, args.api_server_url, release, args.cloud, after)
            self.addons[row.name] = COMPONENTS[row.name].build(f"{name}-{row.name}", inputs, child)
        self.cni = self._addon("cni", Cni)
        self.kube_proxy = self._optional("kube-proxy", KubeProxy)
        self.coredns = self._addon("coredns", CoreDns)
        self.csr_approver = self._addon("csr-approver", CsrApprover)
        self.cloud = self._addon("cloud", CloudIntegration)
        self.rbac = self._addon("rbac", RbacPersonas)
        self.metrics_server = self._optional("metrics-server", MetricsServer)
        self.autoscaler = self._optional("autoscaler", ClusterAutoscaler)
        self.termination_handler = self._optional("termination-handler", TerminationHandler)
        self.logging = self._optional("logging", Logging)
        self.vpa = self._optional("vpa", Vpa)
        self.register_outputs({"cni": spec.cni, "kubeProxy": self.kube_proxy is not None,
                               "terminationHandler": self.termination_handler is not None})

    def _optional(self, name: str, kind: type[T]) -> T | None:
        addon = self.addons.get(name)
        if addon is not None and not isinstance(addon, kind):
            raise TypeError(f"addon {name} is a {type(addon).__name__}, not a {kind.__name__}")
        return addon

    def _addon(self, name: str, kind: type[T]) -> T:
        addon = self._optional(name, kind)
        if addon is None:
            raise KeyError(f"addon {name} was not installed")
        return addon
