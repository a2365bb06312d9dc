"""Version-skew policy: which upgrades cfcr performs, and which kubelets may join.

Follows the upstream Kubernetes version-skew policy as kubeadm enforces it:
the control plane moves one minor at a time and before the nodes; a kubelet
is never newer than the API server and at most three minors older.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .model import CHANNELS, UnknownReleaseError, known_versions, parse_version, resolve

__all__ = [
    "MAX_CONTROLLER_MINOR_LAG",
    "MAX_KUBELET_MINOR_LAG",
    "ClusterVersions",
    "SkewDecision",
    "UpgradeDecision",
    "VersionRefusal",
    "ccm_minor",
    "check_ccm_skew",
    "check_kubelet_skew",
    "check_upgrade",
    "check_version_change",
    "decide_upgrade",
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

    Both may be exact versions or channel names, and both must be known to the channels.
    Refuses unknown versions, any downgrade, and skipping a minor (listing the stepping
    stones the channels know in ``steps``). Patch upgrades and single-minor upgrades are
    allowed. See :func:`decide_upgrade` for exact versions the channels need not know.
    """
    try:
        cur = resolve(current).version
        tgt = resolve(target).version
    except UnknownReleaseError as err:
        return UpgradeDecision(
            allowed=False,
            reason=f"cannot plan an upgrade from {current} to {target}: {err}",
        )
    decision = decide_upgrade(cur, tgt)
    if decision.allowed and not decision.steps:
        return UpgradeDecision(True, f"the cluster is already at {tgt} (asked {current} to {target}); nothing to do", [])
    return decision


def decide_upgrade(current: str, target: str) -> UpgradeDecision:
    """Decide an in-place move between two exact versions.

    ``current`` need not be in the channels (the version a cluster was deployed with may
    have left the release data since); stepping stones for a skipped minor are the newest
    patches the channels know. Refused: any downgrade, minor or patch (etcd does not go
    back on the same data, and kubeadm only ever moves a cluster one minor: cfcr keeps one
    direction), a major change, and a skipped minor.
    """
    cv, tv = parse_version(current), parse_version(target)
    cur, tgt = "%d.%d.%d" % cv, "%d.%d.%d" % tv
    if cv == tv:
        return UpgradeDecision(True, f"the cluster is already at {tgt}; nothing to do", [])
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


# --- a deployed cluster against its next deploy -------------------------------


@dataclass(frozen=True)
class ClusterVersions:
    """The Kubernetes versions one deploy of a cluster runs (exact versions)."""

    control_plane: str
    """The API server's (and every control-plane component's) version."""
    kubelets: Mapping[str, str] = field(default_factory=dict)
    """Node pool name -> the kubelet version its nodes run."""


@dataclass(frozen=True)
class VersionRefusal:
    """Why a deploy must not go ahead, and what would work instead."""

    subject: str
    """``controlPlane`` or ``kubelets.<pool>``: which version breaks the policy."""
    reason: str
    """The versions, the rule broken and the steps that would work, in one message."""


UPGRADES_DOC = "docs/upgrades.md"
"""Where the skew policy and the upgrade procedure are written down."""


def _setting(version: str) -> str:
    """How to ask for ``version`` in the stack config (naming a channel that resolves to it)."""
    channels = [name for name, v in sorted(CHANNELS.items()) if v == version]
    alias = f" (or {' / '.join(channels)})" if channels else ""
    return f"cfcr:kubernetes.version to {version}{alias}"


def _requested(requested: str | None, version: str) -> str:
    if requested and requested.strip().lstrip("v") != version:
        return f" (cfcr:kubernetes.version {requested!r} resolves to {version})"
    return ""


def _control_plane_refusal(deployed: str, target: str, requested: str | None) -> VersionRefusal | None:
    decision = decide_upgrade(deployed, target)
    if decision.allowed:
        return None
    dv, tv = parse_version(deployed), parse_version(target)
    head = (f"the cluster is deployed at Kubernetes {deployed} (recorded in the stack's state) and this deploy "
            f"asks for {target}{_requested(requested, target)}")
    if tv < dv:
        kind = "a minor" if tv[:2] < dv[:2] else "a patch"
        works = (
            f"keep {deployed}: set {_setting(deployed)}; to run an older Kubernetes, build a fresh "
            f"cluster at that version and restore an etcd snapshot into it"
        )
        rule = (f"that is {kind} downgrade, and cfcr only moves a cluster forward (etcd does not go back "
                "on the same data, and Kubernetes supports no downgrade in place)")
    elif tv[0] != dv[0]:
        rule = "that changes the major version, which no Kubernetes upgrade path supports"
        works = f"keep {deployed}: set {_setting(deployed)}"
    else:
        skipped = ", ".join(f"{dv[0]}.{m}" for m in range(dv[1] + 1, tv[1]))
        rule = f"that skips {skipped}: the control plane moves one minor at a time"
        hops = [_newest_patch(dv[0], m) or f"{dv[0]}.{m}.x" for m in range(dv[1] + 1, tv[1])] + [target]
        works = "one `pulumi up` per minor: " + "; then ".join(
            f"set {_setting(v)} and run `pulumi up`" for v in hops)
        missing = [h for h in hops if h.endswith(".x")]
        if missing:
            works += (f" (cfcr has no release of {', '.join(m[:-2] for m in missing)} yet: add the newest patch "
                      "to cfcr/channels/releases.yaml first)")
    return VersionRefusal(
        "controlPlane",
        f"cfcr refuses this deploy: {head}; {rule}. Steps that would work: {works}. "
        f"See `python -m cfcr upgrade-plan` and {UPGRADES_DOC}.",
    )


def _kubelet_refusal(pool: str, control_plane: str, kubelet: str, *, waiting: bool) -> VersionRefusal | None:
    decision = check_kubelet_skew(control_plane, kubelet)
    if decision.allowed:
        return None
    rule = (f"a kubelet is never newer than the API server and at most {MAX_KUBELET_MINOR_LAG} minors "
            "older (the Kubernetes version-skew policy)")
    kv: tuple[int, int, int] | None
    av: tuple[int, int, int] | None
    try:
        kv, av = parse_version(kubelet), parse_version(control_plane)
    except ValueError:  # check_kubelet_skew said so in its reason
        kv = av = None
    if kv is None or av is None or kv[0] != av[0]:
        head, works = decision.reason, f"run pool {pool} at the control plane's version, {control_plane}"
    elif waiting:
        head = (f"node pool {pool} keeps kubelet {kubelet} until it rolls, after the control plane reaches "
                f"{control_plane}: {av[1] - kv[1]} minors behind in between")
        works = (f"upgrade the control plane only as far as {av[0]}.{kv[1] + MAX_KUBELET_MINOR_LAG} "
                 f"while pool {pool} runs {kubelet}, or upgrade pool {pool} first")
        if kv[:2] > av[:2]:
            head = (f"node pool {pool} keeps kubelet {kubelet} until it rolls, newer than the API server "
                    f"{control_plane} the control plane moves to first")
            works = f"keep the control plane at {kubelet} or newer"
    elif kv[:2] > av[:2]:
        head = f"node pool {pool} would run kubelet {kubelet}, newer than the API server {control_plane}"
        works = f"upgrade the control plane to {kubelet} first, or keep pool {pool} at {control_plane}"
    else:
        head = (f"node pool {pool} would run kubelet {kubelet}, {av[1] - kv[1]} minors behind the API "
                f"server {control_plane}")
        works = f"run pool {pool} within {MAX_KUBELET_MINOR_LAG} minors of {control_plane}"
    return VersionRefusal(
        f"kubelets.{pool}",
        f"cfcr refuses this deploy: {head}; {rule}. Steps that would work: {works}. "
        f"See {UPGRADES_DOC}.",
    )


def check_version_change(
    deployed: ClusterVersions | None,
    target: ClusterVersions,
    requested: str | None = None,
) -> list[VersionRefusal]:
    """Every reason a deploy of ``target`` onto a cluster running ``deployed`` must not go ahead.

    ``deployed`` is None on the first deploy: only the target's own skew is checked. The
    control plane may stay, take a newer patch or the next minor; a skipped minor, any
    downgrade (patch ones too) and a major change are refused, naming the steps that work.
    Every pool's kubelet must be within the skew policy of the target control plane, and a
    pool that keeps running its deployed kubelets while the control plane rolls first must
    stay within it too. ``requested`` is what the stack config asked for (a channel name),
    to say what it resolved to. Empty list: go ahead.
    """
    refusals: list[VersionRefusal] = []
    control_plane = None
    if deployed is not None:
        control_plane = _control_plane_refusal(deployed.control_plane, target.control_plane, requested)
        if control_plane is not None:
            refusals.append(control_plane)
    for pool, kubelet in sorted(target.kubelets.items()):
        refusal = _kubelet_refusal(pool, target.control_plane, kubelet, waiting=False)
        # the window while the control plane has moved and the pool has not (only when the
        # control plane may move at all: otherwise its refusal is the one to fix first)
        if refusal is None and control_plane is None and deployed is not None and pool in deployed.kubelets:
            old = deployed.kubelets[pool]
            if old != kubelet and deployed.control_plane != target.control_plane:
                refusal = _kubelet_refusal(pool, target.control_plane, old, waiting=True)
        if refusal is not None:
            refusals.append(refusal)
    return refusals


MAX_CONTROLLER_MINOR_LAG = 1
"""How many minors kube-controller-manager, kube-scheduler and the cloud controller manager may
lag behind the API server; none of them may be newer (the Kubernetes version skew policy,
https://kubernetes.io/releases/version-skew-policy/#kube-controller-manager-kube-scheduler-and-cloud-controller-manager)."""

_CCM_TAG = re.compile(r":v(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")


def ccm_minor(image: str) -> tuple[int, int] | None:
    """The Kubernetes (major, minor) a cloud controller manager image is built for, from its tag:
    ``v1.35.2`` (cloud-provider-aws, cloud-provider-azure) -> (1, 35), ``v36.0.7``
    (cloud-provider-gcp tags ``v<Kubernetes minor>.<minor>.<patch>``) -> (1, 36); None for a tag
    of neither shape (a digest, ``latest``)."""
    match = _CCM_TAG.search(image)
    if match is None:
        return None
    first, second = int(match.group(1)), int(match.group(2))
    return (1, second) if first == 1 else (1, first)


def check_ccm_skew(kubernetes_version: str, image: str) -> SkewDecision:
    """Whether the cloud controller manager ``image`` may run against API servers at
    ``kubernetes_version``: not newer, at most :data:`MAX_CONTROLLER_MINOR_LAG` minor older."""
    built = ccm_minor(image)
    api = parse_version(kubernetes_version)[:2]
    tag = image.rpartition(":")[2]
    if built is None:
        return SkewDecision(True, f"the cloud controller manager {tag}'s Kubernetes minor is not in its tag; not checked")
    if built > api:
        return SkewDecision(False, f"the cloud controller manager {tag} (Kubernetes {built[0]}.{built[1]}) is newer "
                                   f"than the API server {kubernetes_version}: the skew policy forbids it")
    lag = api[1] - built[1] if built[0] == api[0] else MAX_CONTROLLER_MINOR_LAG + 1
    if lag > MAX_CONTROLLER_MINOR_LAG:
        return SkewDecision(False, f"the cloud controller manager {tag} (Kubernetes {built[0]}.{built[1]}) is {lag} "
                                   f"minors behind the API server {kubernetes_version}: the skew policy allows "
                                   f"{MAX_CONTROLLER_MINOR_LAG}")
    return SkewDecision(True, f"the cloud controller manager {tag} is within the skew policy of {kubernetes_version}")
