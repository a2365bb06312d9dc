"""Upgrade plans: the ``pulumi up`` steps that take a cluster from one version to another.

Pure data, no Pulumi and no stack config (``cfcr.config`` imports the channels, not the other
way): callers pass the control-plane member names and the node pool names. A plan is the
list of one-minor (or patch) steps the skew policy allows (:mod:`cfcr.channels.skew`), and
for each step what rolls, in which order, and what each machine does::

    plan = plan_upgrade("1.35.8", "edge", members=["c-cp-0", "c-cp-1", "c-cp-2"], pools=["general"])
    print(format_plan(plan, cluster="c"))

``python -m cfcr upgrade-plan --stack NAME [--to VERSION|CHANNEL] [--from VERSION]`` prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .model import CHANNELS, Release, UnknownReleaseError, parse_version, resolve
from .skew import MAX_KUBELET_MINOR_LAG, UPGRADES_DOC, check_ccm_skew, decide_upgrade

__all__ = [
    "PinChange",
    "UpgradePlan",
    "UpgradePlanError",
    "UpgradeStep",
    "format_plan",
    "plan_upgrade",
]


class UpgradePlanError(ValueError):
    """A version or channel the plan cannot start from or go to (the message lists the known ones)."""


@dataclass(frozen=True)
class PinChange:
    """A pinned component whose version a step changes."""

    component: str
    """What it is: ``etcd``, ``CoreDNS``, ``containerd``..."""
    before: str
    """The version before the step."""
    after: str
    """The version after it."""


@dataclass(frozen=True)
class UpgradeStep:
    """One ``pulumi up``: the whole cluster from one version to the next allowed one."""

    number: int
    """1-based position in the plan."""
    from_version: str
    """Exact version before the step."""
    to_version: str
    """Exact version after it."""
    kind: Literal["patch", "minor"]
    """A patch (same minor) or a one-minor step."""
    setting: str
    """What to put in the stack config for this step (``cfcr:kubernetes.version to ...``)."""
    control_plane: tuple[str, ...]
    """Control-plane members, in the order they are replaced: one at a time."""
    member_operations: tuple[str, ...]
    """What each member does, in order, before the next one starts."""
    node_pools: tuple[str, ...]
    """Node pools that roll once the whole control plane has."""
    pool_operations: tuple[str, ...]
    """What happens to each node of a pool, in order."""
    addons: str
    """What the addons do in this step."""
    pins: tuple[PinChange, ...]
    """Pinned components whose version changes (empty when a release is unknown here)."""
    warnings: tuple[str, ...] = ()
    """What the target release pins outside the version skew policy (a cloud controller manager
    more than a minor behind the API server), for the plan's cloud (or every cloud)."""


@dataclass(frozen=True)
class UpgradePlan:
    """How to take a cluster from ``current`` to ``target``, or why it cannot be done."""

    current: str
    """Exact version the cluster runs."""
    target: str
    """Exact version asked for."""
    possible: bool
    """False for a downgrade, a major change, or a minor cfcr has no release of."""
    direct: bool
    """True when one ``pulumi up`` may go straight to ``target`` (or nothing is to do)."""
    reason: str
    """The skew policy's verdict on going straight from ``current`` to ``target``."""
    steps: tuple[UpgradeStep, ...]
    """The ``pulumi up`` runs, in order (empty when nothing is to do or it is impossible)."""


def _exact(value: str, what: str, *, known_only: bool) -> str:
    """The exact version ``value`` (a channel or a version) names; :class:`UpgradePlanError` if none."""
    try:
        return resolve(value).version
    except UnknownReleaseError as err:
        if not known_only:
            try:
                return "%d.%d.%d" % parse_version(value)
            except ValueError:
                pass
        raise UpgradePlanError(f"{what}: {err}") from None


def _setting(version: str) -> str:
    channels = [name for name, v in sorted(CHANNELS.items()) if v == version]
    alias = f" (or {' / '.join(channels)})" if channels else ""
    return f"cfcr:kubernetes.version to {version}{alias}"


def _release(version: str) -> Release | None:
    try:
        return resolve(version)
    except UnknownReleaseError:
        return None


def _pins(before: Release | None, after: Release, cloud: str | None = None) -> tuple[PinChange, ...]:
    if before is None:
        return ()
    pairs = [
        ("etcd", before.etcd_version, after.etcd_version),
        ("CoreDNS", before.coredns.version, after.coredns.version),
        ("pause", before.pause.version, after.pause.version),
        *[(name, before.components[name].version, after.components[name].version)
          for name in sorted(after.components) if name in before.components],
    ]
    # the addons' and clouds' images: a chart that keeps its version can still move an image
    # (cluster-autoscaler's image follows the Kubernetes minor)
    def images(release: Release) -> dict[str, str]:
        found = {f"{name} image": image for name, chart in release.addons.items() for image in chart.images}
        for name, parts in release.clouds.items():
            if cloud in (None, name):
                found[f"{name} cloud controller manager"] = parts.ccm.image
                found[f"{name} CSI driver"] = parts.csi.image
        return found

    old_images, new_images = images(before), images(after)
    pairs += [(name, old_images[name].rpartition(":")[2], image.rpartition(":")[2])
              for name, image in sorted(new_images.items()) if name in old_images]
    pairs += [(f"{name} chart", before.addons[name].version, chart.version)
              for name, chart in sorted(after.addons.items()) if name in before.addons]
    return tuple(PinChange(name, old, new) for name, old, new in pairs if old != new)


def _member_operations(release: Release) -> tuple[str, ...]:
    v = release.version
    verified = ("checked against the checksums cfcr pins" if release.kubernetes.tarball.checksum_source == "pinned"
                else "checked against the publisher's digest file, fetched over TLS: cfcr pins none for it")
    return (
        f"its VM is replaced by one that boots Kubernetes {v} (the binaries {verified}), "
        "at the member's fixed address",
        f"the new VM mounts the member's own etcd disk, which outlives the VM, and etcd {release.etcd_version} "
        "rejoins as the same member with its data",
        f"`kubeadm init --config` writes the {v} static Pods (kube-apiserver, kube-controller-manager, "
        "kube-scheduler, etcd) from the cluster's pre-generated certificates; the replaced VM's Node is "
        "deleted and the kubelet registers it again",
        "the member's rollout gate: `pulumi up` waits until the member is a voter of a healthy etcd and has "
        "recorded its new machine in kube-system before it replaces the next member (etcd never loses more "
        "than one voter at a time)",
    )


def _pool_operations(release: Release) -> tuple[str, ...]:
    v = release.version
    return (
        f"the pool's machine template moves to Kubernetes {v}; the pool replaces its nodes a few at a time",
        "each old node is cordoned and drained (its Pods evicted, respecting PodDisruptionBudgets) "
        "before its VM goes",
        f"each new node joins with `kubeadm join` and runs kubelet {v}",
    )


def _step(number: int, before: str, after: Release, members: Sequence[str], pools: Sequence[str],
          cloud: str | None = None) -> UpgradeStep:
    same_minor = parse_version(before)[:2] == parse_version(after.version)[:2]
    return UpgradeStep(
        number=number,
        from_version=before,
        to_version=after.version,
        kind="patch" if same_minor else "minor",
        setting=_setting(after.version),
        control_plane=tuple(members),
        member_operations=_member_operations(after),
        node_pools=tuple(pools),
        pool_operations=_pool_operations(after),
        addons=(f"once the API answers (the readiness gate), the addons take {after.version}'s pins "
                "(kube-proxy, CoreDNS, the CNI chart, the cloud controller manager and CSI driver)"),
        pins=_pins(_release(before), after, cloud),
        warnings=_warnings(after, cloud),
    )


def _warnings(release: Release, cloud: str | None) -> tuple[str, ...]:
    found = []
    for name, parts in sorted(release.clouds.items()):
        decision = check_ccm_skew(release.version, parts.ccm.image)
        if cloud in (None, name) and not decision.allowed:
            found.append(f"{name}: {decision.reason} (cfcr/channels/releases.yaml says why it is pinned)")
    return tuple(found)


def plan_upgrade(current: str, target: str, *, members: Sequence[str], pools: Sequence[str],
                 cloud: str | None = None) -> UpgradePlan:
    """Plan the upgrade of a cluster at ``current`` to ``target``.

    ``target`` is a channel or a version the channels know; ``current`` may also be an exact
    version they no longer know (a cluster deployed before a channel moved on). ``members``
    are the control-plane member names in replacement order, ``pools`` the node pool names;
    ``cloud`` limits the cloud images a step lists to that cloud's (default: every cloud's).
    Raises :class:`UpgradePlanError` for an unknown or malformed version.
    """
    cur = _exact(current, f"cannot plan from {current!r}", known_only=False)
    tgt = _exact(target, f"cannot plan to {target!r}", known_only=True)
    decision = decide_upgrade(cur, tgt)
    # a skipped minor's stepping stones; none for a downgrade or a major change
    hops = list(decision.steps)
    chain = [parse_version(v) for v in [cur, *hops]]
    possible = decision.allowed or (
        bool(hops) and all(b[0] == a[0] and b[1] - a[1] <= 1 for a, b in zip(chain, chain[1:])))
    if not possible:
        hops = []
    steps: list[UpgradeStep] = []
    before = cur
    for number, hop in enumerate(hops, start=1):
        release = resolve(hop)
        steps.append(_step(number, before, release, members, pools, cloud))
        before = release.version
    return UpgradePlan(current=cur, target=tgt, possible=possible, direct=decision.allowed,
                       reason=decision.reason, steps=tuple(steps))


def format_plan(plan: UpgradePlan, cluster: str | None = None) -> str:
    """The plan as text for an operator: numbered steps, what rolls and in which order."""
    who = f" for {cluster}" if cluster else ""
    lines = [f"Upgrade plan{who}: Kubernetes {plan.current} -> {plan.target}"]
    if not plan.possible:
        lines.append(f"Not possible: {plan.reason}.")
        lines.append(f"See {UPGRADES_DOC} (rollback).")
        return "\n".join(lines) + "\n"
    if not plan.steps:
        lines.append(f"Nothing to do: the cluster would stay at {plan.target}.")
        return "\n".join(lines) + "\n"
    count = len(plan.steps)
    if plan.direct:
        lines.append(f"One step: {plan.reason}.")
    else:
        lines.append(f"A single `pulumi up` to {plan.target} is refused ({plan.reason}).")
        lines.append(f"Take {count} steps, one `pulumi up` each, in this order; the kubelets stay within "
                     f"{MAX_KUBELET_MINOR_LAG} minors of the API server and never ahead of it throughout.")
    for step in plan.steps:
        lines += ["", f"Step {step.number} of {count}: {step.from_version} -> {step.to_version} ({step.kind})",
                  f"  Set {step.setting} in the stack config; `pulumi preview` shows the roll; then `pulumi up`."]
        if len(step.control_plane) == 1:
            lines.append(f"  1. Control plane: {step.control_plane[0]}, the only member: the API and etcd are down "
                         "while it is replaced (3 or 5 members keep them up). The member:")
        else:
            lines.append(f"  1. Control plane, one member at a time (etcd quorum kept): "
                         f"{', then '.join(step.control_plane)}. Each member, before the next starts:")
        lines += [f"       {chr(ord('a') + i)}. {op}" for i, op in enumerate(step.member_operations)]
        if step.node_pools:
            lines.append(f"  2. Then, once the whole control plane runs {step.to_version}, node pools "
                         f"{', '.join(step.node_pools)} roll (drain before a node goes). Each node:")
            lines += [f"       {chr(ord('a') + i)}. {op}" for i, op in enumerate(step.pool_operations)]
        else:
            lines.append("  2. No node pools to roll.")
        lines.append(f"  3. Addons: {step.addons}.")
        lines += [f"  Warning: {warning}." for warning in step.warnings]
        if step.pins:
            lines.append("  Pins that change: " + ", ".join(f"{p.component} {p.before} -> {p.after}" for p in step.pins)
                         + ".")
    lines += ["", f"How each roll works, and the rollback stance: {UPGRADES_DOC}."]
    return "\n".join(lines) + "\n"
