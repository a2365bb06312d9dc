"""``ClusterAddons`` (``cfcr:addons:ClusterAddons``): every addon of a cfcr cluster, in order.

readiness gate -> provider -> CNI -> kube-proxy (unless Cilium replaces it), CoreDNS,
CSR approver, cloud integration, metrics-server, autoscaler, termination handler (AWS, with a
queue), RBAC personas, logging, VPA.
Every object depends on the gate; everything that needs pods to run also waits for the CNI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from cfcr import channels
from cfcr.addons.autoscaler import ClusterAutoscaler
from cfcr.addons.base import AddonArgs
from cfcr.addons.cloud import CloudFacts, CloudIntegration, CloudIntegrationArgs
from cfcr.addons.cni import Cni, CniArgs
from cfcr.addons.coredns import CoreDns, CoreDnsArgs
from cfcr.addons.csr_approver import CsrApprover
from cfcr.addons.gate import ReadinessGate
from cfcr.addons.kube_proxy import KubeProxy, KubeProxyArgs
from cfcr.addons.logging import Logging
from cfcr.addons.metrics_server import MetricsServer
from cfcr.addons.provider import cluster_provider
from cfcr.addons.rbac import RbacArgs, RbacPersonas
from cfcr.addons.termination import TerminationHandler
from cfcr.addons.vpa import Vpa
from cfcr.config import ClusterSpec


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
    (their boot is what the gate's timeout measures)."""
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
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.gate_after)),
            )
            gated = [self.gate]
        self.provider = cluster_provider(f"{name}-k8s", args.kubeconfig, args.cloud.cluster_name,
                                         parent=self, depends_on=gated)
        child = pulumi.ResourceOptions(parent=self, provider=self.provider)
        self.cni = Cni(f"{name}-cni", CniArgs(spec, args.api_server_url, release, gated), child)
        networked = [*gated, self.cni]
        self.kube_proxy: KubeProxy | None = None
        if not self.cni.plan.replaces_kube_proxy:
            self.kube_proxy = KubeProxy(f"{name}-kube-proxy", KubeProxyArgs(spec, args.api_server_url, release, gated), child)
        self.coredns = CoreDns(f"{name}-coredns", CoreDnsArgs(spec, release, networked), child)
        self.csr_approver = CsrApprover(f"{name}-csr-approver", AddonArgs(spec, networked), child)
        self.cloud = CloudIntegration(f"{name}-cloud", CloudIntegrationArgs(spec, args.cloud, release, networked), child)
        self.rbac = RbacPersonas(f"{name}-rbac", RbacArgs(spec, gated), child)
        self.metrics_server: MetricsServer | None = None
        if spec.addons.metrics_server:
            self.metrics_server = MetricsServer(f"{name}-metrics-server", AddonArgs(spec, networked), child)
        self.autoscaler: ClusterAutoscaler | None = None
        if spec.addons.autoscaler and args.cloud.profile.autoscaler_values is not None:
            self.autoscaler = ClusterAutoscaler(f"{name}-autoscaler", spec, args.cloud, release, child, networked)
        elif spec.addons.autoscaler:
            pulumi.log.warn(f"cfcr: cluster-autoscaler is not wired for {args.cloud.cloud} yet; skipped", self)
        self.termination_handler: TerminationHandler | None = None
        if args.cloud.profile.termination_handler and args.cloud.termination_queue_url is not None:
            self.termination_handler = TerminationHandler(f"{name}-termination-handler", spec, args.cloud, release,
                                                          child, networked)
        self.logging: Logging | None = None
        if spec.addons.logging.enabled:
            self.logging = Logging(f"{name}-logging", AddonArgs(spec, networked), child)
        self.vpa: Vpa | None = None
        if spec.addons.vpa:
            self.vpa = Vpa(f"{name}-vpa", AddonArgs(spec, networked), child)
        self.register_outputs({"cni": spec.cni, "kubeProxy": self.kube_proxy is not None,
                               "terminationHandler": self.termination_handler is not None})
