"""The mirror mapping: from every public origin cfcr fetches from to where the site serves it.

One pure object, :class:`Mirrors`, built from a spec (:meth:`Mirrors.of`), answers for every
renderer that fetches something:

* **files** (node binaries, checksum files, etcdutl for a restore): with ``cfcr:mirrors.files``
  set, ``https://HOST/PATH`` becomes ``<files>/HOST/PATH``; otherwise the per-host
  ``cfcr:registryMirrors`` keys ``dl.k8s.io`` / ``github.com`` replace ``https://HOST``;
* **images**: with ``cfcr:mirrors.registry`` set, ``HOST/REPO:TAG`` becomes
  ``<registry prefix>/HOST/REPO:TAG`` for every registry host (the layout registry sync tools
  such as ``crane``/``skopeo`` and registry proxy projects produce), and containerd gets a
  ``hosts.toml`` per known registry host that sends pulls of the original names there too;
  otherwise ``cfcr:registryMirrors`` names per-host pull-through caches;
* **charts**: with ``cfcr:mirrors.registry`` set, every chart, from a Helm repository or an OCI
  registry, is installed from ``oci://<registry prefix>/charts/<chart>`` at the same version;
* **OS packages**: with ``cfcr:mirrors.apt`` set, cloud-init's primary and security archives.

The registry prefix of a URL ``https://host[:port][/v2][/path]`` is ``host[:port][/path]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from cfcr.config import ClusterSpec

BINARY_MIRROR_HOSTS = ("dl.k8s.io", "github.com")
"""``cfcr:registryMirrors`` keys that mirror binary downloads rather than image registries
(containerd leaves them out of its registry hosts)."""

DEFAULT_REGISTRY = "docker.io"
"""The registry of a short image name (``nginx``, ``flannel/flannel``), as containerd resolves it."""

CHARTS_PATH = "charts"
"""Repository path, under the registry mirror, of every chart (``oci://<prefix>/charts/<chart>``)."""


def split_image(image: str) -> tuple[str, str, str]:
    """``(registry, repository path, suffix)`` of an image reference; the suffix is the
    ``:tag`` and/or ``@digest`` part. Short Docker Hub names get ``docker.io`` (and
    ``library/`` for official images), as containerd resolves them."""
    name, at, digest = image.partition("@")
    suffix = f"@{digest}" if at else ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
        suffix = f":{tag}{suffix}"
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest, suffix
    path = name if slash else f"library/{name}"
    return DEFAULT_REGISTRY, path, suffix


def split_tag(image: str) -> tuple[str, str]:
    """``(repository, tag)`` of an image reference; the tag is ``""`` when there is none (a
    ``@digest`` reference keeps its digest in the repository part)."""
    if "@" in image:
        return image, ""
    name, sep, tag = image.rpartition(":")
    return (name, tag) if sep and "/" not in tag else (image, "")


def _registry_path(url: str) -> tuple[str, str]:
    """``(scheme://netloc, path)`` of a registry URL, the path without slashes or a leading ``v2``."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    if path == "v2" or path.startswith("v2/"):
        path = path[3:]
    return f"{parts.scheme}://{parts.netloc}", path


def mirror_prefix(url: str) -> str:
    """The image prefix a registry URL stands for: ``https://m.example.com/v2/k8s`` ->
    ``m.example.com/k8s``."""
    root, path = _registry_path(url)
    host = root.split("://", 1)[1]
    return f"{host}/{path}" if path else host


def registry_host_url(url: str) -> tuple[str, bool]:
    """containerd's ``[host."…"]`` URL for a mirror URL, and whether it needs ``override_path``.

    containerd appends ``/v2`` to a host URL unless ``override_path`` is set, so a mirror that
    serves a registry under a path (``https://m.example.com/v2/registry.k8s.io``, what the
    image prefix ``m.example.com/registry.k8s.io`` resolves to) is written with its ``/v2``
    and ``override_path = true``; a bare host is written as given."""
    root, path = _registry_path(url)
    return (f"{root}/v2/{path}", True) if path else (root, False)


@dataclass(frozen=True)
class Mirrors:
    """Where the site serves what cfcr fetches (see the module docstring); empty: the origins."""

    files: str | None = None
    """``cfcr:mirrors.files``: base URL of the file mirror."""
    registry: str | None = None
    """``cfcr:mirrors.registry``: URL of the OCI registry mirror of every image and chart."""
    apt: str | None = None
    """``cfcr:mirrors.apt``: Ubuntu archive mirror."""
    per_host: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """``cfcr:registryMirrors``: registry (or ``dl.k8s.io``/``github.com``) host -> mirror URLs."""

    @classmethod
    def of(cls, spec: ClusterSpec) -> Mirrors:
        """The mirrors of ``spec`` (``cfcr:mirrors`` and ``cfcr:registryMirrors``)."""
        m = spec.mirrors
        return cls(files=m.files, registry=m.registry, apt=m.apt, per_host=dict(spec.registry_mirrors))

    @classmethod
    def coerce(cls, value: Mirrors | Mapping[str, Sequence[str]]) -> Mirrors:
        """``value`` itself, or a bare ``cfcr:registryMirrors`` mapping (the former argument)."""
        return value if isinstance(value, Mirrors) else cls(per_host=dict(value))

    @property
    def active(self) -> bool:
        """True when any mirror is configured."""
        return bool(self.files or self.registry or self.apt or self.per_host)

    # ------------------------------------------------------------------ files
    def file_url(self, url: str) -> str:
        """``url`` as the node fetches it."""
        parts = urlsplit(url)
        if self.files and parts.scheme == "https" and parts.netloc:
            rest = url[len(f"https://{parts.netloc}"):]
            return f"{self.files.rstrip('/')}/{parts.netloc}{rest}"
        for host in BINARY_MIRROR_HOSTS:
            prefix = f"https://{host}/"
            urls = self.per_host.get(host) or []
            if url.startswith(prefix) and urls:
                return urls[0].rstrip("/") + "/" + url[len(prefix):]
        return url

    # ------------------------------------------------------------------ images
    @property
    def registry_prefix(self) -> str | None:
        """The image prefix of ``cfcr:mirrors.registry`` (None when unset)."""
        return mirror_prefix(self.registry) if self.registry else None

    def image(self, image: str) -> str:
        """``image`` as a node pulls it by name: under the registry mirror when one is set
        (per-host pull-through caches are containerd's business, :meth:`containerd_hosts`)."""
        prefix = self.registry_prefix
        if not prefix:
            return image
        registry, path, suffix = split_image(image)
        return f"{prefix}/{registry}/{path}{suffix}"

    def registry_host(self, registry: str) -> str:
        """Where a node pulls the images of ``registry`` from (kubeadm's ``imageRepository``):
        ``<registry prefix>/<registry>`` with a registry mirror, else ``registry``."""
        prefix = self.registry_prefix
        return f"{prefix}/{registry}" if prefix else registry

    def image_prefixes(self) -> dict[str, str]:
        """Registry host -> image prefix of its first ``cfcr:registryMirrors`` mirror."""
        return {host: mirror_prefix(urls[0]) for host, urls in sorted(self.per_host.items())
                if urls and host not in BINARY_MIRROR_HOSTS}

    def containerd_hosts(self, registries: Sequence[str]) -> dict[str, list[str]]:
        """Registry host -> mirror URLs for containerd's ``hosts.toml``: the per-host mirrors,
        and, with a registry mirror, ``<registry>/v2/<host>`` for each of ``registries``."""
        out = {h: list(urls) for h, urls in sorted(self.per_host.items()) if h not in BINARY_MIRROR_HOSTS}
        if self.registry:
            root, path = _registry_path(self.registry)
            base = f"{root}/v2" + (f"/{path}" if path else "")
            for host in sorted(set(registries)):
                out.setdefault(host, []).insert(0, f"{base}/{host}")
        return dict(sorted(out.items()))

    # ------------------------------------------------------------------ charts
    def chart(self, repo: str, chart: str) -> tuple[str, str]:
        """``(repo, chart)`` of a chart as Helm installs it: unchanged without a registry mirror,
        else ``("oci://<prefix>/charts", chart)``."""
        if not self.registry:
            return repo, chart
        return f"oci://{self.registry_prefix}/{CHARTS_PATH}", chart

    # ------------------------------------------------------------------ OS packages
    def apt_config(self) -> dict[str, Any] | None:
        """cloud-init's ``apt`` module settings for the archive mirror (None when unset)."""
        if not self.apt:
            return None
        archive = [{"arches": ["default"], "uri": self.apt}]
        return {"preserve_sources_list": False, "primary": archive, "security": archive}
