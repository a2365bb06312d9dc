"""aws-node-termination-handler (NTH) in queue-processor mode: drain a node before AWS takes it.

The AWS layer (``cfcr.aws.termination``) gives every pool a termination lifecycle hook and
sends lifecycle, spot interruption, rebalance, instance state-change and scheduled-maintenance
events to one SQS queue per cluster. NTH reads that queue, cordons and drains the node the
event names and completes the lifecycle hook, so a leaving instance is emptied first.

* Queue mode: ``enableSqsTerminationDraining`` with the queue's URL and the region; one
  replica (the chart's default: replicas are stateless and would race on the same events).
* Every instance of the cluster's groups is handled: ``checkTagBeforeDraining: false`` (the
  queue only receives the cluster's events, so no ``aws-node-termination-handler/managed``
  tag is needed on the groups); a message for an instance that is no Node is dropped
  (``deleteSqsMsgIfNodeNotFound``) rather than retried forever.
* Nodes are found by ``spec.providerID`` (``useProviderId``): cfcr's node names are not the
  instances' private DNS names, which NTH looks for otherwise, while every kubelet registers
  with ``--provider-id=aws:///<zone>/<instance id>``.
* Credentials: the control plane's instance profile carries NTH's permissions, and with the
  IMDSv2 hop limit of 1 only host-network processes reach them. So NTH runs on the
  control-plane nodes (node selector and toleration) with ``system-cluster-critical``
  priority, and on the host network: the chart's queue-mode Deployment has no value for
  that, so :func:`~cfcr.addons.cloud.host_network_transform` sets it (and ``dnsPolicy:
  Default``). Its health port (:data:`PROBES_PORT`) then listens on the node; the local
  kubelet probes it and no security group opens it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from cfcr import channels
from cfcr.addons.base import CONTROL_PLANE_LABEL, CONTROL_PLANE_TOLERATIONS, ChartAddon, ChartSpec
from cfcr.addons.cloud import CloudFacts, host_network_transform
from cfcr.addons.images import ImageRewriter, ImageSlot, slot_values
from cfcr.channels import Release
from cfcr.config import ClusterSpec
from cfcr.util import deep_merge

RELEASE = "aws-node-termination-handler"
"""Release name; the chart names its queue-mode Deployment after it."""
NAMESPACE = "kube-system"
PROBES_PORT = 8080
"""The chart's default health port; a host port on the control-plane node it runs on."""
SLOTS = (ImageSlot(("image", "repository"), "public.ecr.aws/aws-ec2/aws-node-termination-handler"),)


def termination_handler_chart(spec: ClusterSpec, release: Release, facts: CloudFacts,
                              rewriter: ImageRewriter) -> ChartSpec:
    """The NTH chart in queue-processor mode. ``facts.termination_queue_url`` (which may be an
    Output) is set last, unless ``extraValues["termination-handler"]`` names another queue."""
    if not facts.profile.termination_handler:
        raise ValueError(f"aws-node-termination-handler runs on aws only, not {facts.cloud}")
    if facts.termination_queue_url is None:
        raise ValueError("aws-node-termination-handler needs the termination queue's URL (CloudFacts.termination_queue_url)")
    pin = release.addon("aws-node-termination-handler")
    values: dict[str, Any] = {
        "enableSqsTerminationDraining": True,
        "awsRegion": facts.region,
        "checkTagBeforeDraining": False,
        "deleteSqsMsgIfNodeNotFound": True,
        "useProviderId": True,
        "replicas": 1,
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {CONTROL_PLANE_LABEL: ""},
        "tolerations": CONTROL_PLANE_TOLERATIONS,
        "probes": {"httpGet": {"port": PROBES_PORT}},
    }
    values = deep_merge(values, slot_values(SLOTS, rewriter))
    chart = ChartSpec.pinned(RELEASE, pin, NAMESPACE, values, rewriter)
    chart = chart.with_values(spec.addons.extra_values.get("termination-handler", {}))
    if "queueURL" not in chart.values:
        # after the merge: deep_merge copies values, and an Output must not be deep-copied
        chart.values["queueURL"] = facts.termination_queue_url
    return chart


def termination_transforms() -> list[pulumi.ResourceTransform]:
    """NTH's queue-mode Deployment onto the host network (the chart has no value for it)."""
    return [host_network_transform(RELEASE)]


@dataclass
class TerminationHandlerArgs:
    """Inputs of :class:`TerminationHandler`."""

    spec: ClusterSpec
    """The cluster spec (mirrors, ``addons.extraValues["termination-handler"]``)."""
    facts: CloudFacts
    """The cloud (its addon profile must allow the handler), the region and
    ``termination_queue_url`` (required)."""
    release: Release | None = None
    """The channel release (the handler's chart); default: the spec's."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What every object waits for (the readiness gate, the CNI)."""


class TerminationHandler(ChartAddon):
    """aws-node-termination-handler in queue mode (``cfcr:addons:TerminationHandler``)."""

    TYPE = "cfcr:addons:TerminationHandler"

    def __init__(self, name: str, args: TerminationHandlerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        spec = args.spec
        release = args.release or channels.resolve(spec.kubernetes.version)
        rewriter = ImageRewriter.for_spec(spec)
        super().__init__(name, [], [termination_handler_chart(spec, release, args.facts, rewriter)], opts,
                         args.depends_on, termination_transforms())
