"""metrics-server: the resource metrics API (``metrics.k8s.io``) behind HPA and ``kubectl top``.

Two replicas with a disruption budget. It verifies kubelets' serving certificates (issued
through CSRs that :mod:`cfcr.addons.csr_approver` approves), so no ``--kubelet-insecure-tls``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from cfcr import channels
from cfcr.addons.base import ChartAddon, ChartSpec
from cfcr.addons.images import ImageRewriter, ImageSlot, slot_values
from cfcr.config import ClusterSpec
from cfcr.util import deep_merge

SLOTS = (ImageSlot(("image", "repository"), "registry.k8s.io/metrics-server/metrics-server"),)


def metrics_server_chart(spec: ClusterSpec, rewriter: ImageRewriter) -> ChartSpec:
    pin = channels.resolve(spec.kubernetes.version).addon("metrics-server")
    values: dict[str, Any] = {
        "replicas": 2,
        "priorityClassName": "system-cluster-critical",
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
        "args": ["--kubelet-preferred-address-types=InternalIP"],
    }
    values = deep_merge(values, slot_values(SLOTS, rewriter))
    chart = ChartSpec.pinned("metrics-server", pin, "kube-system", values, rewriter)
    return chart.with_values(spec.addons.extra_values.get("metrics-server", {}))


@dataclass
class MetricsServerArgs:
    """Inputs of :class:`MetricsServer`."""

    spec: ClusterSpec
    """The cluster spec (mirrors, ``addons.extraValues["metrics-server"]``)."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What every object waits for (the readiness gate, the CNI)."""


class MetricsServer(ChartAddon):
    """metrics-server (``cfcr:addons:MetricsServer``)."""

    TYPE = "cfcr:addons:MetricsServer"

    def __init__(self, name: str, args: MetricsServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        rewriter = ImageRewriter.for_spec(args.spec)
        super().__init__(name, [], [metrics_server_chart(args.spec, rewriter)], opts, args.depends_on)
