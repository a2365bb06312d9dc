"""Versions of the addon charts and images the channel data does not carry (yet).

Each pin names where it was read. They belong in ``cfcr/channels/releases.yaml`` next to
the CNI and cloud pins; they live here until the channel schema grows the fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from cfcr.channels import parse_version


@dataclass(frozen=True)
class ChartPin:
    """A Helm chart pinned by cfcr."""

    repo: str
    """Helm repository URL."""
    chart: str
    """Chart name."""
    version: str
    """Chart version."""
    source: str
    """Where the version was read, and what is unconfirmed."""


METRICS_SERVER = ChartPin(
    "https://kubernetes-sigs.github.io/metrics-server/", "metrics-server", "3.13.0",
    "metrics-server chart 3.13.0 (metrics-server v0.8.0), installed by several public programs in the code index",
)
CSR_APPROVER = ChartPin(
    "https://postfinance.github.io/kubelet-csr-approver", "kubelet-csr-approver", "1.2.11",
    "postfinance kubelet-csr-approver chart 1.2.11, fetched by version in public install scripts (code index)",
)
CLUSTER_AUTOSCALER = ChartPin(
    "https://kubernetes.github.io/autoscaler", "cluster-autoscaler", "9.59.0",
    "cluster-autoscaler chart 9.59.0, installed with an explicit image tag in public programs (code index)",
)
FLUENT_BIT = ChartPin(
    "https://fluent.github.io/helm-charts", "fluent-bit", "0.57.9",
    "fluent-bit chart 0.57.9, pulled by version in a public air-gap guide (code index)",
)
VPA = ChartPin(
    "https://charts.fairwinds.com/stable", "vpa", "4.11.0",
    "Fairwinds vpa chart 4.11.0, installed by version in a public program (code index)",
)
EBS_CSI_CHART_VERSION = "2.59.0"
"""NOT confirmed: the channel pins driver v1.59.0 with a null chart version. The chart's
changelog shows chart 2.N tracking driver 1.N (2.26.x/1.26.x, 2.27.0/1.27.0), so 2.59.0 is
inferred; move it into the channel once read from the chart's own Chart.yaml."""

CLUSTER_AUTOSCALER_IMAGE = "registry.k8s.io/autoscaling/cluster-autoscaler"
CLUSTER_AUTOSCALER_TAGS: dict[str, str] = {
    "1.35": "v1.35.2",
    "1.36": "v1.36.1",
}
"""cluster-autoscaler release per Kubernetes minor (CA's minor must match the cluster's):
both tags with digests in a public decision record (code index). No 1.37 release was found."""


def cluster_autoscaler_tag(kubernetes_version: str) -> tuple[str, bool]:
    """``(tag, exact)``: the CA release of this minor, or the newest older one (exact False)."""
    major, minor, _ = parse_version(kubernetes_version)
    key = f"{major}.{minor}"
    if key in CLUSTER_AUTOSCALER_TAGS:
        return CLUSTER_AUTOSCALER_TAGS[key], True
    older = [k for k in CLUSTER_AUTOSCALER_TAGS if int(k.split(".")[1]) < minor]
    if not older:
        raise ValueError(f"no cluster-autoscaler release known for Kubernetes {key}")
    best = max(older, key=lambda k: int(k.split(".")[1]))
    return CLUSTER_AUTOSCALER_TAGS[best], False
