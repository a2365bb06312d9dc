"""Version-skew policy: which upgrades cfcr performs, and which kubelets may join.

Follows the upstream Kubernetes version-skew policy as kubeadm enforces it:
the control plane moves one minor at a time and before the nodes; a kubelet
is never newer than the API server and at most three minors older.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import UnknownReleaseError, known_versions, parse_version, resolve

__all__ = [
    "MAX_KUBELET_MINOR_LAG",
    "SkewDecision",
    "UpgradeDecision",
    "check_kubelet_skew",
    "check_upgrade",
    "upgrade_order",
]

MAX_KUBELET_MINOR_LAG = 3
"""How many minors a kubelet may lag behind the API server."""


@dataclass(frozen=True)
class UpgradeDecision:
    """Whether an in-place upgrade from one version to another is allowed."""

    allowed: bool
    """True when cfcr will perform the upgrade as one step."""
    reason: str
    """A sentence naming both versions."""
    steps: list[str] = field(default_factory=list)
    """Versions to roll through in order (the target last); empty when nothing to do."""


@dataclass(frozen=True)
class SkewDecision:
    """Whether a kubelet version may run against an API server version."""

    allowed: bool
    """True when the pair is within the supported skew."""
    reason: str
    """A sentence naming both versions."""


def upgrade_order() -> list[str]:
    """Order in which an upgrade rolls: the control plane first, then the node pools."""
    return ["control-plane", "nodes"]


def _newest_patch(major: int, minor: int) -> str | None:
    candidates = [v for v in known_versions() if parse_version(v)[:2] == (major, minor)]
    return candidates[-1] if candidates else None


def check_upgrade(current: str, target: str) -> UpgradeDecision:
    """Decide whether a cluster at ``current`` may be upgraded to ``target``.

    Both may be exact versions or channel names. Refuses unknown versions,
    any downgrade, and skipping a minor (listing the stepping stones the
    channels know in ``steps``). Patch upgrades and single-minor upgrades
    are allowed.
    """
    try:
        cur = resolve(current).version
        tgt = resolve(target).version
    except UnknownReleaseError as err:
        return UpgradeDecision(
            allowed=False,
            reason=f"cannot plan an upgrade from {current} to {target}: {err}",
        )
    cv, tv = parse_version(cur), parse_version(tgt)
    if cv == tv:
        return UpgradeDecision(True, f"the cluster is already at {tgt} (asked {current} to {target}); nothing to do", [])
    if tv < cv:
        kind = "minor" if tv[:2] < cv[:2] else "patch"
        return UpgradeDecision(
            False,
            f"downgrading from {cur} to {tgt} is refused: Kubernetes does not support "
            f"{kind} downgrades in place; restore from an etcd backup instead",
        )
    if tv[0] != cv[0]:
        return UpgradeDecision(False, f"upgrading across major versions from {cur} to {tgt} is not supported")
    if tv[:2] == cv[:2]:
        return UpgradeDecision(True, f"patch upgrade from {cur} to {tgt} is allowed", [tgt])
    if tv[1] == cv[1] + 1:
        return UpgradeDecision(True, f"minor upgrade from {cur} to {tgt} is allowed (one minor)", [tgt])
    steps: list[str] = []
    missing: list[str] = []
    for minor in range(cv[1] + 1, tv[1]):
        stone = _newest_patch(cv[0], minor)
        if stone is None:
            missing.append(f"{cv[0]}.{minor}")
        else:
            steps.append(stone)
    steps.append(tgt)
    reason = (
        f"upgrading from {cur} to {tgt} skips {tv[1] - cv[1] - 1} minor version(s); "
        f"Kubernetes upgrades one minor at a time, so upgrade through {' -> '.join(steps)}"
    )
    if missing:
        reason += f" (no release data for {', '.join(missing)}; add it before upgrading)"
    return UpgradeDecision(False, reason, steps)


def check_kubelet_skew(apiserver: str, kubelet: str) -> SkewDecision:
    """Decide whether a kubelet at ``kubelet`` may run against ``apiserver``.

    Versions need not be in the channels (nodes in the wild may run any
    patch). The kubelet must not be a newer minor than the API server and
    may be at most ``MAX_KUBELET_MINOR_LAG`` minors older.
    """
    try:
        av, kv = parse_version(apiserver), parse_version(kubelet)
    except ValueError as err:
        return SkewDecision(False, f"cannot compare kubelet {kubelet} with API server {apiserver}: {err}")
    if av[0] != kv[0]:
        return SkewDecision(False, f"kubelet {kubelet} and API server {apiserver} differ in major version")
    lag = av[1] - kv[1]
    if lag < 0:
        return SkewDecision(
            False,
            f"kubelet {kubelet} is newer than API server {apiserver}; upgrade the control plane first",
        )
    if lag > MAX_KUBELET_MINOR_LAG:
        return SkewDecision(
            False,
            f"kubelet {kubelet} is {lag} minors older than API server {apiserver}; "
            f"at most {MAX_KUBELET_MINOR_LAG} are supported",
        )
    return SkewDecision(True, f"kubelet {kubelet} may run against API server {apiserver} ({lag} minor(s) behind)")
