"""Release channels: pinned versions and checksums per Kubernetes release, and skew rules.

Pure data and small functions, no Pulumi resources::

    from cfcr.channels import resolve, check_upgrade
    rel = resolve("stable")
    rel.kubernetes.url("arm64"), rel.kubernetes.checksum("arm64")
    rel.component("containerd").checksum("amd64")
"""

from .model import (
    ARCHITECTURES,
    CHANNELS,
    Architecture,
    Artifact,
    ChartRef,
    Checksum,
    ChecksumAlgorithm,
    CloudComponent,
    CloudIntegration,
    ADDON_NAMES,
    CniChart,
    HelmChart,
    ImageVersion,
    KubernetesRelease,
    Release,
    ReleaseDataError,
    UnknownArchitectureError,
    UnknownReleaseError,
    known_versions,
    parse_version,
    registries,
    resolve,
)
from .skew import (
    MAX_KUBELET_MINOR_LAG,
    SkewDecision,
    UpgradeDecision,
    check_kubelet_skew,
    check_upgrade,
    upgrade_order,
)

__all__ = [
    "ARCHITECTURES",
    "CHANNELS",
    "MAX_KUBELET_MINOR_LAG",
    "Architecture",
    "Artifact",
    "ChartRef",
    "Checksum",
    "ChecksumAlgorithm",
    "CloudComponent",
    "CloudIntegration",
    "ADDON_NAMES",
    "CniChart",
    "HelmChart",
    "ImageVersion",
    "KubernetesRelease",
    "Release",
    "ReleaseDataError",
    "SkewDecision",
    "UnknownArchitectureError",
    "UnknownReleaseError",
    "UpgradeDecision",
    "check_kubelet_skew",
    "check_upgrade",
    "known_versions",
    "parse_version",
    "registries",
    "resolve",
    "upgrade_order",
]
