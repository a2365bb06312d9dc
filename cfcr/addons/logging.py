"""Optional log shipping: fluent-bit on every node with the output the config names.

Container log rotation (``containerLogMaxSize``/``containerLogMaxFiles``) is the kubelet's
job and lives in the KubeletConfiguration (:mod:`cfcr.node.kubelet`), on whether or not
fluent-bit runs.
"""

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

NAMESPACE = "cfcr-logging"
SLOTS = (ImageSlot(("image", "repository"), "cr.fluentbit.io/fluent/fluent-bit"),)


def output_section(output: dict[str, str]) -> str:
    """The classic-format ``[OUTPUT]`` section."""
    width = max(len(k) for k in output)
    return "[OUTPUT]\n" + "".join(f"    {k.ljust(width)} {v}\n" for k, v in output.items())


def logging_objects(spec: ClusterSpec) -> list[dict[str, Any]]:
    # fluent-bit reads /var/log on the host: privileged namespace, and only it lives there.
    return [namespace(NAMESPACE, "privileged")]


def logging_chart(spec: ClusterSpec, rewriter: ImageRewriter) -> ChartSpec:
    pin = channels.resolve(spec.kubernetes.version).addon("fluent-bit")
    values: dict[str, Any] = {
        "kind": "DaemonSet",
        "priorityClassName": "system-node-critical",
        "tolerations": [{"operator": "Exists"}],
        "config": {"outputs": output_section(spec.addons.logging.output)},
    }
    values = deep_merge(values, slot_values(SLOTS, rewriter))
    chart = ChartSpec.pinned("fluent-bit", pin, NAMESPACE, values, rewriter)
    return chart.with_values(spec.addons.extra_values.get("logging", {}))


@dataclass
class LoggingArgs:
    """Inputs of :class:`Logging`."""

    spec: ClusterSpec
    """The cluster spec (``addons.logging.output``, mirrors, ``addons.extraValues["logging"]``)."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What every object waits for (the readiness gate, the CNI)."""


class Logging(ChartAddon):
    """fluent-bit (``cfcr:addons:Logging``)."""

    TYPE = "cfcr:addons:Logging"

    def __init__(self, name: str, args: LoggingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        rewriter = ImageRewriter.for_spec(args.spec)
        super().__init__(name, logging_objects(args.spec), [logging_chart(args.spec, rewriter)], opts, args.depends_on)
