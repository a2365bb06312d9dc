"""The deployed Kubernetes version, remembered in state: a deploy the skew policy forbids is refused.

``KubernetesVersion`` is a ``pulumi.dynamic.Resource`` whose inputs are the control plane's
version, each node pool's kubelet version and what the stack config asked for (a channel or a
version). Its provider's ``check`` runs in every preview, for every resource, before any step
executes: it compares the old inputs (what is deployed, from state) with the new ones through
:func:`cfcr.channels.check_version_change`, and answers a check failure naming both versions,
the rule broken and the steps that would work. So ``pulumi up``, which previews first, stops
before anything changes. Under ``pulumi up --skip-preview`` the engine still checks each
resource before its step; every control-plane machine and every node pool depends on the
record, so no machine changes before the record has passed its check and been updated.

A first deploy (no olds) checks only the new versions' own skew. The record never replaces:
``diff`` reports a change when a version changes and ``update`` stores it.

Pools follow the cluster's version today (``cfcr:nodePools`` has no per-pool version), so
:func:`cluster_versions` gives every pool the control plane's version; the record already
keeps one per pool for when they may differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult
from pulumi.runtime import rpc

from cfcr import channels
from cfcr.channels import ClusterVersions, check_version_change
from cfcr.config import ClusterSpec

CONTROL_PLANE = "controlPlane"
KUBELETS = "kubelets"
REQUESTED = "requested"


class SkewPolicyError(RuntimeError):
    """An update the skew policy forbids reached the provider (its check normally stops it first)."""


def cluster_versions(spec: ClusterSpec) -> ClusterVersions:
    """The exact versions a deploy of ``spec`` runs: the control plane's and each pool's kubelet."""
    version = channels.resolve(spec.kubernetes.version).version
    return ClusterVersions(control_plane=version, kubelets={p.name: version for p in spec.node_pools})


def _known(value: Any) -> bool:
    return isinstance(value, str) and value != rpc.UNKNOWN


def versions_from(props: Mapping[str, Any]) -> ClusterVersions | None:
    """The versions recorded in a property bag (olds or news); None when absent or not yet known."""
    control_plane = props.get(CONTROL_PLANE)
    kubelets = props.get(KUBELETS)
    if not _known(control_plane):
        return None
    pools = kubelets if isinstance(kubelets, Mapping) else {}
    return ClusterVersions(str(control_plane), {str(k): str(v) for k, v in pools.items() if _known(v)})


def refusals(olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[CheckFailure]:
    """The check failures of a deploy of ``news`` over ``olds`` (empty: go ahead)."""
    target = versions_from(news)
    if target is None:  # not known yet (preview of a computed input): checked again at update
        return []
    requested = news.get(REQUESTED)
    found = check_version_change(versions_from(olds), target, str(requested) if _known(requested) else None)
    # property "" makes the engine print "<type> resource '<name>' has a problem: <reason>"
    return [CheckFailure("", refusal.reason) for refusal in found]


def _outs(props: Mapping[str, Any]) -> dict[str, Any]:
    return {
        CONTROL_PLANE: props[CONTROL_PLANE],
        KUBELETS: dict(props.get(KUBELETS) or {}),
        REQUESTED: props.get(REQUESTED),
    }


class KubernetesVersionProvider(ResourceProvider):
    """Dynamic provider of :class:`KubernetesVersion`: the skew policy in ``check``; no cloud calls."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, refusals(olds, news))

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="kubernetes-version", outs=_outs(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in (CONTROL_PLANE, KUBELETS, REQUESTED) if (olds.get(k) or None) != (news.get(k) or None)]
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        found = refusals(olds, news)
        if found:  # check() stops this first; never record a version the policy forbids
            raise SkewPolicyError(" ".join(f.reason for f in found))
        return UpdateResult(outs=_outs(news))


class KubernetesVersion(Resource, module="cfcr", name="KubernetesVersion"):
    """The cluster's deployed Kubernetes versions, in state; refuses a deploy the skew policy forbids.

    Type token ``pulumi-python:dynamic/cfcr:KubernetesVersion`` (a dynamic resource's token
    always starts ``pulumi-python:dynamic``). Inputs and outputs: ``controlPlane`` (exact
    version), ``kubelets`` (pool -> exact version), ``requested`` (``cfcr:kubernetes.version``).
    """

    def __init__(self, name: str, versions: ClusterVersions, requested: str | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            KubernetesVersionProvider(),
            name,
            {CONTROL_PLANE: versions.control_plane, KUBELETS: dict(versions.kubelets), REQUESTED: requested},
            opts,
        )

    @classmethod
    def for_spec(cls, name: str, spec: ClusterSpec, opts: pulumi.ResourceOptions | None = None) -> KubernetesVersion:
        """The record of ``spec``'s versions, named ``<name>-kubernetes-version``."""
        return cls(f"{name}-kubernetes-version", cluster_versions(spec), spec.kubernetes.version, opts)
