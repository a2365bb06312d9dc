"""Registry mirrors for the images cfcr deploys.

Two layers, each complete for its own job:

* On nodes cfcr builds, containerd's ``hosts.toml`` (``cfcr.node.containerd``) sends every
  pull of a mirrored registry to the mirror first and falls back to the upstream: that
  covers every image any workload pulls, by its original name.
* Explicit rewriting (this module), on when ``cfcr:mirrors.registry`` is set (every registry
  host then lives under it, :mod:`cfcr.mirrors`), or when ``cfcr:registryMirrors`` names a
  mirror and ``addons.rewriteImages`` is true: every image reference cfcr itself deploys names the
  first mirror. It makes the render show what is pulled, and it is what makes the addons
  work against a mirror on clusters cfcr did not build (no containerd config of ours
  there). Authored objects are rewritten in their builders; charts through their image
  values (each chart module lists its image slots); operator-made images through the
  operator's registry setting (Calico's ``Installation.registry``); the one upstream
  manifest cfcr applies (canal) through a Pulumi transform (:func:`rewrite_pod_images`).

The rewrite rule: a mirror URL ``https://host[:port][/v2][/path]`` becomes the image
prefix ``host[:port][/path]``, which replaces the registry host; the repository path and
tag stay. ``https://mirror.example.com/v2/registry.k8s.io`` turns
``registry.k8s.io/coredns/coredns:v1.14.2`` into
``mirror.example.com/registry.k8s.io/coredns/coredns:v1.14.2``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cfcr.mirrors import DEFAULT_REGISTRY, Mirrors, mirror_prefix, split_image

if TYPE_CHECKING:
    from cfcr.config import ClusterSpec

__all__ = ["DEFAULT_REGISTRY", "ImageRewriter", "ImageSlot", "mirror_prefix", "prefixes", "rewrite_pod_images",
           "slot_values", "split_image"]

MirrorsLike = Mirrors | Mapping[str, Sequence[str]]


def prefixes(mirrors: MirrorsLike) -> dict[str, str]:
    """Registry host -> image prefix of its first ``cfcr:registryMirrors`` mirror."""
    return Mirrors.coerce(mirrors).image_prefixes()


@dataclass(frozen=True)
class ImageRewriter:
    """Rewrites image references to their registry's mirror; a no-op without mirrors."""

    prefixes: Mapping[str, str]
    """Registry host -> prefix replacing it (``cfcr:registryMirrors``)."""
    registry_prefix: str | None = None
    """``cfcr:mirrors.registry``'s prefix: every other registry host ``H`` becomes ``<prefix>/H``."""

    @classmethod
    def from_spec(cls, mirrors: MirrorsLike, enabled: bool = True) -> ImageRewriter:
        """From the mirrors; ``enabled`` (``addons.rewriteImages``) governs the per-host mirrors
        only: a site registry mirror (``cfcr:mirrors.registry``) always rewrites."""
        m = Mirrors.coerce(mirrors)
        return cls(m.image_prefixes() if enabled else {}, m.registry_prefix)

    @classmethod
    def for_spec(cls, spec: ClusterSpec) -> ImageRewriter:
        """The rewriter of a cluster spec (its mirrors and ``addons.rewriteImages``)."""
        return cls.from_spec(Mirrors.of(spec), spec.addons.rewrite_images)

    @property
    def active(self) -> bool:
        return bool(self.prefixes or self.registry_prefix)

    def registry(self, registry: str) -> str | None:
        """The prefix replacing a whole registry, or None when it is not mirrored."""
        if registry in self.prefixes:
            return self.prefixes[registry]
        return f"{self.registry_prefix}/{registry}" if self.registry_prefix else None

    def image(self, image: str) -> str:
        """``image`` with its registry replaced by the mirror's prefix (when mirrored)."""
        registry, path, suffix = split_image(image)
        prefix = self.registry(registry)
        return f"{prefix}/{path}{suffix}" if prefix else image

    def repository(self, repository: str) -> str:
        """A repository without tag (chart ``image.repository`` values)."""
        return self.image(repository)


@dataclass(frozen=True)
class ImageSlot:
    """Where a chart takes an image repository in its values, and the chart's default."""

    path: tuple[str, ...]
    """Values keys down to the repository string, e.g. ``("image", "repository")``."""
    repository: str
    """The repository the chart uses when the value is unset (fully qualified)."""


def slot_values(slots: Sequence[ImageSlot], rewriter: ImageRewriter) -> dict[str, Any]:
    """Values that point every slot at its mirror (empty when nothing is mirrored)."""
    out: dict[str, Any] = {}
    for slot in slots:
        rewritten = rewriter.repository(slot.repository)
        if rewritten == slot.repository:
            continue
        node = out
        for key in slot.path[:-1]:
            node = node.setdefault(key, {})
        node[slot.path[-1]] = rewritten
    return out


_POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def rewrite_pod_images(obj: Mapping[str, Any], rewriter: ImageRewriter) -> dict[str, Any]:
    """A copy of a Kubernetes object with every container image of its pod spec rewritten."""
    out = copy.deepcopy(dict(obj))
    path = _POD_TEMPLATE_PATHS.get(str(out.get("kind", "")))
    if path is None or not rewriter.active:
        return out
    node: Any = out
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return out
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in node.get(field) or []:
            if isinstance(container, dict) and isinstance(container.get("image"), str):
                container["image"] = rewriter.image(container["image"])
    return out
