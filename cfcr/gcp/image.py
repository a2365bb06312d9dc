"""Machine images: Canonical's current Ubuntu LTS on GCE, from its image family in the
``ubuntu-os-cloud`` project, or the image the spec names (``cfcr:image.id``: a self link,
``projects/P/global/images/NAME`` or ``.../family/F``)."""

from __future__ import annotations

import pulumi
from pulumi_gcp import compute

from cfcr.config import ClusterSpec

UBUNTU_PROJECT = "ubuntu-os-cloud"
"""Canonical's public image project on GCE."""


def ubuntu_family(release: str, architecture: str) -> str:
    """The image family of Ubuntu ``release`` (``24.04``) for ``amd64`` or ``arm64``:
    ``ubuntu-2404-lts-amd64`` (Canonical's family names on GCE; the 26.04 name follows the same
    pattern, not yet confirmed from a published image)."""
    if architecture not in ("amd64", "arm64"):
        raise ValueError(f"architecture {architecture!r}: expected amd64 or arm64")
    return f"ubuntu-{release.replace('.', '')}-lts-{architecture}"


class Images:
    """Image self links per architecture, looked up once each."""

    def __init__(self, spec: ClusterSpec, parent: pulumi.Resource) -> None:
        self._spec = spec
        self._parent = parent
        self._cache: dict[str, pulumi.Output[str]] = {}

    @property
    def pinned(self) -> bool:
        """True when the spec names the image (``cfcr:image.id``)."""
        return self._spec.image.id is not None

    def image(self, architecture: str) -> pulumi.Output[str]:
        """The image for ``architecture``: ``cfcr:image.id`` if set, else the family's current image."""
        if self._spec.image.id is not None:
            return pulumi.Output.from_input(self._spec.image.id)
        if architecture not in self._cache:
            found = compute.get_image_output(
                family=ubuntu_family(self._spec.image.ubuntu_release, architecture),
                project=UBUNTU_PROJECT,
                opts=pulumi.InvokeOutputOptions(parent=self._parent),
            )
            self._cache[architecture] = found.self_link
        return self._cache[architecture]
