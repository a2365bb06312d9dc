"""Cluster-shape policies, read from the bootstrap component's summary inputs:
the Kubernetes version, the control-plane count, and the CNI's network-policy support."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel

from cfcr import channels
from cfcr.policy.base import CfcrResourcePolicy, Reporter, Resource, Setting, boolean, integer, string_list
from cfcr.policy.common import as_bool, as_number, fmt_number
from cfcr.policy.types import BOOTSTRAP

ALL_CLOUDS = ("aws", "gcp", "azure")


def supported_window(minors_behind_stable: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(oldest, newest) ``(major, minor)`` inside the channels' window: from ``minors_behind_stable``
    minors before the stable channel up to the newest channel."""
    pinned = [channels.parse_version(v) for v in channels.CHANNELS.values()]
    stable = channels.parse_version(channels.CHANNELS["stable"])
    newest = max((p[0], p[1]) for p in pinned)
    return (stable[0], max(0, stable[1] - minors_behind_stable)), newest


def _check_version(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    version = res.props.get("kubernetesVersion")
    if not isinstance(version, str):
        report("the cluster summary names no kubernetesVersion")
        return
    known = channels.known_versions()
    if version not in known:
        report(f"Kubernetes {version} is not a release the channels know ({', '.join(known)})")
        return
    lo, hi = supported_window(int(cfg["minorsBehindStable"]))
    major, minor, _ = channels.parse_version(version)
    if not lo <= (major, minor) <= hi:
        report(f"Kubernetes {version} is outside the supported window {lo[0]}.{lo[1]} to {hi[0]}.{hi[1]} "
               f"(stable {channels.CHANNELS['stable']}, at most {cfg['minorsBehindStable']} minor(s) behind)")
        return
    if not cfg["allowEdge"] and (major, minor) > channels.parse_version(channels.CHANNELS["stable"])[:2]:
        report(f"Kubernetes {version} is newer than the stable channel ({channels.CHANNELS['stable']}) "
               "and this pack does not allow edge")


kubernetes_version = CfcrResourcePolicy(
    "kubernetes-version",
    "The cluster runs a Kubernetes release inside the channels' supported window.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[BOOTSTRAP],
    clouds=ALL_CLOUDS,
    check=_check_version,
    settings=[
        Setting("minorsBehindStable", integer("How many minors older than the stable channel's are still allowed.", 1)),
        Setting("allowEdge", boolean("Allow releases newer than stable (the edge channel).", True)),
    ],
    remediation="Set cfcr:kubernetes.version to stable, edge or a version listed in cfcr/channels/releases.yaml.",
)


def _check_control_plane(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    count = as_number(res.props.get("controlPlaneCount"))
    if count is None:
        report("the cluster summary names no controlPlaneCount")
        return
    if count % 2 != 1:
        report(f"{fmt_number(count)} control-plane nodes: etcd needs an odd number of members")
    production = as_bool(res.props.get("production")) or False
    minimum = int(cfg["productionMinimum"])
    if production and count < minimum:
        report(f"a production cluster with {fmt_number(count)} control-plane node(s): at least {minimum} "
               "are needed to survive the loss of one")


control_plane_count = CfcrResourcePolicy(
    "control-plane-count",
    "The control plane has an odd number of nodes, and at least three when the stack is production.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[BOOTSTRAP],
    clouds=ALL_CLOUDS,
    check=_check_control_plane,
    settings=[Setting("productionMinimum", integer("Fewest control-plane nodes of a production stack.", 3, 1))],
    remediation="Set cfcr:controlPlane.count to 3 or 5 (or cfcr:production to false for a development stack).",
)


def _check_cni(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    cni = res.props.get("cni")
    if isinstance(cni, str) and cni in cfg["cnisWithoutNetworkPolicy"]:
        report(f"CNI {cni} does not enforce NetworkPolicy: pods can reach every other pod")


cni_network_policy = CfcrResourcePolicy(
    "cni-network-policy",
    "The cluster's CNI enforces Kubernetes NetworkPolicy.",
    enforcement=EnforcementLevel.ADVISORY,
    resource_types=[BOOTSTRAP],
    clouds=ALL_CLOUDS,
    check=_check_cni,
    settings=[Setting("cnisWithoutNetworkPolicy",
                      string_list("CNIs that do not enforce NetworkPolicy.", ["flannel"]))],
    remediation="Use calico, canal or cilium (cfcr:cni).",
)
