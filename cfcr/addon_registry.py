"""The addon registry: one row per addon a cfcr cluster installs, the one table every layer reads.

Pure data, no Pulumi, nothing imported from cfcr at run time, so the lowest layers can read it:

* :mod:`cfcr.channels` takes ``ADDON_NAMES`` from it: ``releases.yaml`` must pin exactly the
  registry's charts under ``addons`` (:data:`ADDON_PINS`);
* :mod:`cfcr.config` takes ``CHART_KEYS`` from it: the keys ``addons.extraValues`` accepts
  (:data:`CHART_KEYS`);
* :class:`cfcr.addons.ClusterAddons` walks :data:`ADDONS` in order and builds each enabled row
  with the component :data:`cfcr.addons.registry.COMPONENTS` maps its name to.

Adding an addon: its pin in ``releases.yaml`` (if it is a pinned chart), one row here, and its
module in ``cfcr/addons`` registered in ``cfcr/addons/registry.py`` (see docs/addons.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from cfcr.config import ClusterSpec

NETWORK = "cni"
"""The row whose component the ``after="network"`` rows wait for (with the readiness gate)."""


class AddonProfileFacts(Protocol):
    """What enablement rules read of a cloud's addon profile
    (:class:`cfcr.addons.cloud.CloudAddonProfile` is one)."""

    @property
    def autoscaler_values(self) -> object | None:
        """cluster-autoscaler's cloud values; None: not wired for the cloud yet."""

    @property
    def termination_handler(self) -> bool:
        """Whether aws-node-termination-handler applies (given a termination queue)."""


class AddonFacts(Protocol):
    """What enablement rules read of the cloud (:class:`cfcr.addons.CloudFacts` is one)."""

    @property
    def cloud(self) -> str:
        """aws, gcp or azure."""

    @property
    def termination_queue_url(self) -> object | None:
        """The termination queue's URL, or None."""

    @property
    def profile(self) -> AddonProfileFacts:
        """The cloud's addon profile."""


def kube_proxy_replaced(spec: ClusterSpec) -> bool:
    """True when the CNI replaces kube-proxy (Cilium with ``ciliumKubeProxyReplacement``)."""
    return spec.cni == "cilium" and spec.cilium_kube_proxy_replacement


def _always(spec: ClusterSpec) -> bool:
    return True


def _anywhere(facts: AddonFacts) -> bool:
    return True


@dataclass(frozen=True)
class AddonRow:
    """One addon: what it is called, what pins it, what configures it, when it runs."""

    name: str
    """The addon's name: its component is ``<ClusterAddons name>-<name>``, and
    ``cfcr.addons.registry.COMPONENTS[name]`` builds it."""
    description: str
    """One line: what it installs."""
    after: Literal["gate", "network"]
    """What every object of it waits for: the readiness gate only (``gate``), or the gate and
    the pod network (``network``: the :data:`NETWORK` row's component)."""
    pin: str | None = None
    """Its chart's name under ``addons`` in ``cfcr/channels/releases.yaml``; None when the chart
    is pinned elsewhere (``cni``, ``cloud``) or the addon is authored objects only."""
    pin_rank: int | None = None
    """Where :data:`ADDON_PINS` (and the channel listing, and messages) list the pin; None:
    after the ranked pins, in table order."""
    chart_keys: tuple[str, ...] = ()
    """Its keys of ``addons.extraValues`` (Helm values merged over cfcr's)."""
    chart_rank: int | None = None
    """Where :data:`CHART_KEYS` (and messages) list the keys; None: after the ranked keys, in
    table order."""
    config: str | None = None
    """The ``cfcr:addons`` setting that turns it on or off, if any (documentation)."""
    wanted: Callable[[ClusterSpec], bool] = _always
    """Whether the spec asks for it (pure)."""
    supported: Callable[[AddonFacts], bool] = _anywhere
    """Whether the cloud can run it (pure); a wanted, unsupported addon is skipped."""
    unsupported_warning: str | None = None
    """Warned (``{cloud}`` filled in) when the addon is wanted and the cloud cannot run it;
    None: skipped silently."""

    def enabled(self, spec: ClusterSpec, facts: AddonFacts) -> bool:
        """Whether :class:`cfcr.addons.ClusterAddons` installs it."""
        return self.wanted(spec) and self.supported(facts)


ADDONS: tuple[AddonRow, ...] = (
    AddonRow("cni", "The pod network of `cfcr:cni` (flannel, canal, calico, cilium or none).", "gate",
             chart_keys=("cni",), chart_rank=0),
    AddonRow("kube-proxy", "kube-proxy, unless Cilium replaces it.", "gate",
             wanted=lambda spec: not kube_proxy_replaced(spec)),
    AddonRow("coredns", "CoreDNS, the cluster DNS.", "network"),
    AddonRow("csr-approver", "kubelet-csr-approver: approves kubelet serving-certificate CSRs, safely.", "network",
             pin="kubelet-csr-approver", pin_rank=1, chart_keys=("csr-approver",), chart_rank=2),
    AddonRow("cloud", "The cloud controller manager, the CSI driver and the default StorageClass.", "network",
             chart_keys=("ccm", "csi"), chart_rank=3),
    AddonRow("rbac", "RBAC personas for `addons.rbacGroups`.", "gate"),
    AddonRow("metrics-server", "metrics-server, the resource metrics API.", "network",
             pin="metrics-server", pin_rank=0, chart_keys=("metrics-server",), chart_rank=1,
             config="metricsServer", wanted=lambda spec: spec.addons.metrics_server),
    AddonRow("autoscaler", "cluster-autoscaler, wired to the node pools.", "network",
             pin="cluster-autoscaler", pin_rank=2, chart_keys=("autoscaler",), chart_rank=4,
             config="autoscaler", wanted=lambda spec: spec.addons.autoscaler,
             supported=lambda facts: facts.profile.autoscaler_values is not None,
             unsupported_warning="cfcr: cluster-autoscaler is not wired for {cloud} yet; skipped"),
    AddonRow("termination-handler", "aws-node-termination-handler in queue mode (a cloud with a termination queue).",
             "network", pin="aws-node-termination-handler", pin_rank=5, chart_keys=("termination-handler",),
             chart_rank=5,
             supported=lambda facts: facts.profile.termination_handler and facts.termination_queue_url is not None),
    AddonRow("logging", "fluent-bit on every node, shipping container logs.", "network",
             pin="fluent-bit", pin_rank=3, chart_keys=("logging",), chart_rank=6,
             config="logging.enabled", wanted=lambda spec: spec.addons.logging.enabled),
    AddonRow("vpa", "The Vertical Pod Autoscaler.", "network",
             pin="vpa", pin_rank=4, chart_keys=("vpa",), chart_rank=7,
             config="vpa", wanted=lambda spec: spec.addons.vpa),
)
"""Every addon, in the order :class:`cfcr.addons.ClusterAddons` builds them."""


def _ranked(rows: tuple[AddonRow, ...], rank: Callable[[AddonRow], int | None]) -> list[AddonRow]:
    """``rows`` by rank, the unranked after the ranked, in table order."""
    order = {id(row): i for i, row in enumerate(rows)}
    return sorted(rows, key=lambda row: (rank(row) is None, rank(row) or 0, order[id(row)]))


ADDON_PINS: tuple[str, ...] = tuple(
    row.pin for row in _ranked(ADDONS, lambda row: row.pin_rank) if row.pin is not None
)
"""The charts ``releases.yaml`` pins under ``addons``: exactly these (``cfcr.channels.ADDON_NAMES``)."""

CHART_KEYS: tuple[str, ...] = tuple(
    key for row in _ranked(ADDONS, lambda row: row.chart_rank) for key in row.chart_keys
)
"""The keys of ``addons.extraValues`` (``cfcr.config.addons.CHART_KEYS``)."""

BY_NAME: dict[str, AddonRow] = {row.name: row for row in ADDONS}
"""The rows by name."""
