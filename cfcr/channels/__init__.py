"""Release channels: pinned versions and checksums per Kubernetes release, and skew rules.

Pure data and small functions, no Pulumi resources::

    from cfcr.channels import resolve, check_upgrade, plan_upgrade
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
    CloudComponents,
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
from .plan import PinChange, UpgradePlan, UpgradePlanError, UpgradeStep, format_plan, plan_upgrade
from .skew import (
    MAX_KUBELET_MINOR_LAG,
    ClusterVersions,
    SkewDecision,
    UpgradeDecision,
    VersionRefusal,
    check_kubelet_skew,
    check_upgrade,
    check_version_change,
    decide_upgrade,
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
    "ClusterVersions",
    "ChecksumAlgorithm",
    "CloudComponent",
    "CloudComponents",
    "CloudIntegration",
    "ADDON_NAMES",
    "CniChart",
    "HelmChart",
    "ImageVersion",
    "KubernetesRelease",
    "PinChange",
    "Release",
    "ReleaseDataError",
    "SkewDecision",
    "UnknownArchitectureError",
    "UnknownReleaseError",
    "UpgradeDecision",
    "UpgradePlan",
    "UpgradePlanError",
    "UpgradeStep",
    "VersionRefusal",
    "check_kubelet_skew",
    "check_upgrade",
    "check_version_change",
    "decide_upgrade",
    "format_plan",
    "known_versions",
    "parse_version",
    "plan_upgrade",
    "registries",
    "resolve",
    "upgrade_order",
]
