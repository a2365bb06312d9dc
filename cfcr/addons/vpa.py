"""Optional Vertical Pod Autoscaler (recommender, updater, admission controller)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from cfcr import channels
from cfcr.addons.base import ChartAddon, ChartSpec, namespace
from cfcr.addons.images import ImageRewriter, ImageSlot, slot_values
from cfcr.config import ClusterSpec
from cfcr.util import deep_merge

NAMESPACE = "cfcr-vpa"
SLOTS = (
    ImageSlot(("recommender", "image", "repository"), "registry.k8s.io/autoscaling/vpa-recommender"),
    ImageSlot(("updater", "image", "repository"), "registry.k8s.io/autoscaling/vpa-updater"),
    ImageSlot(("admissionController", "image", "repository"), "registry.k8s.io/autoscaling/vpa-admission-controller"),
)


def vpa_objects(spec: ClusterSpec) -> list[dict[str, Any]]:
    return [namespace(NAMESPACE, "baseline")]


def vpa_chart(spec: ClusterSpec, rewriter: ImageRewriter) -> ChartSpec:
    pin = channels.resolve(spec.kubernetes.version).addon("vpa")
    values: dict[str, Any] = {
        "recommender": {"enabled": True},
        "updater": {"enabled": True},
        "admissionController": {"enabled": True},
    }
    values = deep_merge(values, slot_values(SLOTS, rewriter))
    chart = ChartSpec.pinned("vpa", pin, NAMESPACE, values, rewriter)
    return chart.with_values(spec.addons.extra_values.get("vpa", {}))


@dataclass
class VpaArgs:
    """Inputs of :class:`Vpa`."""

    spec: ClusterSpec
    """The cluster spec (mirrors, ``addons.extraValues["vpa"]``)."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What every object waits for (the readiness gate, the CNI)."""


class Vpa(ChartAddon):
    """The Vertical Pod Autoscaler (``cfcr:addons:Vpa``)."""

    TYPE = "cfcr:addons:Vpa"

    def __init__(self, name: str, args: VpaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        rewriter = ImageRewriter.for_spec(args.spec)
        super().__init__(name, vpa_objects(args.spec), [vpa_chart(args.spec, rewriter)], opts, args.depends_on)
