"""cluster-autoscaler, wired to the node pools of the clouds whose addon profile gives its values
(AWS, GCP and Azure).

AWS: discovery by the ASG tags ``k8s.io/cluster-autoscaler/enabled`` and
``k8s.io/cluster-autoscaler/<cluster>`` (the AWS layer puts them on every pool's ASG, with
the pool's min and max on the ASG itself). Where the facts say ``autoscaler_auto_discovery=False``
(GCP's profile does), explicit ``--nodes=MIN:MAX:NAME`` per group of
:class:`~cfcr.addons.cloud.CloudFacts` (the chart's ``autoscalingGroups``, which it writes as
``--nodes`` for every provider): on GCP one per pool and zone, named by the zonal MIG's URL
(``https://www.googleapis.com/compute/v1/projects/P/zones/Z/instanceGroups/NAME``), the only
form its GCE provider takes; the similar zonal groups of a pool are balanced
(``--balance-similar-node-groups``), and a group scaled to zero is sized from its instance
template's ``kube-env`` metadata. On Azure one ``--nodes=MIN:MAX:<scale set name>`` per pool
(:func:`cfcr.azure.addon_profile.autoscaler_values`). The image's minor matches the cluster's
Kubernetes minor.

It runs on the control-plane nodes with host networking (the chart's ``hostNetwork`` and
``dnsPolicy`` values): its credentials are the control plane's (AWS instance profile, GCP
service account, Azure managed identity), from the instance metadata, which only host-network processes reach (the
IMDSv2 hop limit of 1 on AWS; the metadata guards on GCP). It needs nothing inbound from
other nodes (its health and metrics port, 8085, is probed by the local kubelet), so the
firewalls open nothing for it.

The cloud's values may add flags (``extraArgs``): on an air-gapped AWS network, the static
instance type list (:func:`cfcr.aws.addon_profile.autoscaler_values`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from cfcr import channels
from cfcr.addons.base import CONTROL_PLANE_LABEL, CONTROL_PLANE_TOLERATIONS, ChartAddon, ChartSpec
from cfcr.addons.cloud import HOST_NETWORK_DNS_POLICY, CloudFacts
from cfcr.addons.images import ImageRewriter
from cfcr.channels import Release
from cfcr.config import ClusterSpec


def discovery_tags(cluster_name: str) -> list[str]:
    return ["k8s.io/cluster-autoscaler/enabled", f"k8s.io/cluster-autoscaler/{cluster_name}"]


def autoscaler_chart(spec: ClusterSpec, release: Release, facts: CloudFacts, rewriter: ImageRewriter) -> ChartSpec:
    cloud_values = facts.profile.autoscaler_values
    if cloud_values is None:
        raise ValueError(f"cluster-autoscaler is not wired for {facts.cloud} yet (its addon profile gives no values)")
    pin = release.addon("cluster-autoscaler")
    repository, tag = pin.images[0].rsplit(":", 1)
    cloud = cloud_values(facts)
    values: dict[str, Any] = {
        **cloud,
        "image": {"repository": rewriter.repository(repository), "tag": tag},
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {CONTROL_PLANE_LABEL: ""},
        "tolerations": CONTROL_PLANE_TOLERATIONS,
        "hostNetwork": True,
        "dnsPolicy": HOST_NETWORK_DNS_POLICY,
        "extraArgs": {"balance-similar-node-groups": True, "skip-nodes-with-local-storage": False,
                      "expander": "least-waste", **cloud.get("extraArgs", {})},
    }
    if facts.autoscaler_auto_discovery:
        values["autoDiscovery"] = {"clusterName": facts.cluster_name, "tags": discovery_tags(facts.cluster_name)}
    else:
        values["autoscalingGroups"] = [
            {"name": g.name, "minSize": g.min_size, "maxSize": g.max_size} for _, g in sorted(facts.node_groups.items())
        ]
    chart = ChartSpec.pinned("cluster-autoscaler", pin, "kube-system", values, rewriter)
    return chart.with_values(spec.addons.extra_values.get("autoscaler", {}))


@dataclass
class ClusterAutoscalerArgs:
    """Inputs of :class:`ClusterAutoscaler`."""

    spec: ClusterSpec
    """The cluster spec (mirrors, ``addons.extraValues["autoscaler"]``)."""
    facts: CloudFacts
    """The cloud (its addon profile gives the autoscaler's cloud values), the cluster name and
    the node groups."""
    release: Release | None = None
    """The channel release (the autoscaler's chart and image); default: the spec's."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What every object waits for (the readiness gate, the CNI)."""


class ClusterAutoscaler(ChartAddon):
    """cluster-autoscaler (``cfcr:addons:ClusterAutoscaler``)."""

    TYPE = "cfcr:addons:ClusterAutoscaler"

    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        spec = args.spec
        release = args.release or channels.resolve(spec.kubernetes.version)
        rewriter = ImageRewriter.for_spec(spec)
        super().__init__(name, [], [autoscaler_chart(spec, release, args.facts, rewriter)], opts, args.depends_on)
