"""Approves kubelet serving-certificate CSRs, safely (always installed).

Kubelets ask for serving certificates through CSRs (``serverTLSBootstrap``) and
kube-controller-manager does not approve those; without an approver ``kubectl logs/exec``
and metrics-server fail. postfinance's kubelet-csr-approver approves a
``kubernetes.io/kubelet-serving`` CSR only when it comes from ``system:node:<name>``, the
name matches the node-name pattern, the certificate's IP addresses lie inside the node
network and its DNS name (one allowed) starts with the node name and resolves to them — where
the cloud's node names resolve cluster-wide (``CloudAddonProfile.node_names_resolve``: not GCP's
bare instance names in a zonal-DNS project; there the name is not resolved).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from cfcr import channels
from cfcr.addons.base import CONTROL_PLANE_TOLERATIONS, ChartAddon, ChartSpec
from cfcr.addons.cloud import addon_profile
from cfcr.addons.images import ImageRewriter, ImageSlot, slot_values
from cfcr.config import ClusterSpec
from cfcr.util import deep_merge

SLOTS = (ImageSlot(("image", "repository"), "ghcr.io/postfinance/kubelet-csr-approver"),)



def node_name_pattern(spec: ClusterSpec) -> str:
    """``addons.nodeNamePattern``, or the names the cloud's machines register with (its addon profile)."""
    return spec.addons.node_name_pattern or addon_profile(spec.cloud).node_name_pattern


def csr_approver_chart(spec: ClusterSpec, rewriter: ImageRewriter) -> ChartSpec:
    pin = channels.resolve(spec.kubernetes.version).addon("kubelet-csr-approver")
    values: dict[str, Any] = {
        "providerRegex": node_name_pattern(spec),
        "providerIpPrefixes": [spec.networking.node_cidr],
        "allowedDnsNames": 1,
        "bypassDnsResolution": not addon_profile(spec.cloud).node_names_resolve,
        "bypassHostnameCheck": False,
        "maxExpirationSeconds": str(spec.pki.leaf_validity_hours * 3600),
        "replicas": 1,
        "tolerations": CONTROL_PLANE_TOLERATIONS,
    }
    values = deep_merge(values, slot_values(SLOTS, rewriter))
    chart = ChartSpec.pinned("kubelet-csr-approver", pin, "kube-system", values, rewriter)
    return chart.with_values(spec.addons.extra_values.get("csr-approver", {}))


@dataclass
class CsrApproverArgs:
    """Inputs of :class:`CsrApprover`."""

    spec: ClusterSpec
    """The cluster spec (cloud, node network, leaf validity, ``addons.nodeNamePattern``, mirrors,
    ``addons.extraValues["csr-approver"]``)."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What every object waits for (the readiness gate, the CNI)."""


class CsrApprover(ChartAddon):
    """kubelet-csr-approver (``cfcr:addons:CsrApprover``)."""

    TYPE = "cfcr:addons:CsrApprover"

    def __init__(self, name: str, args: CsrApproverArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        rewriter = ImageRewriter.for_spec(args.spec)
        super().__init__(name, [], [csr_approver_chart(args.spec, rewriter)], opts, args.depends_on)
