"""Machine images: Canonical's current Ubuntu LTS on GCE, from its image family in the
``ubuntu-os-cloud`` project, or the image the spec names (``cfcr:image.id``: a self link,
``projects/P/global/images/NAME`` or ``.../family/F``)."""

from __future__ import annotations

import pulumi
from pulumi_gcp import compute

from cfcr.machine_images import MachineImages

UBUNTU_PROJECT = "ubuntu-os-cloud"
"""Canonical's public image project on GCE."""


def ubuntu_family(release: str, architecture: str) -> str:
    """The image family of Ubuntu ``release`` (``24.04``) for ``amd64`` or ``arm64``:
    ``ubuntu-2404-lts-amd64`` (Canonical's family names on GCE; the 26.04 name follows the same
    pattern, not yet confirmed from a published image)."""
    if architecture not in ("amd64", "arm64"):
        raise ValueError(f"architecture {architecture!r}: expected amd64 or arm64")
    return f"ubuntu-{release.replace('.', '')}-lts-{architecture}"


class Images(MachineImages):
    """Image self links per architecture: the Ubuntu family's current image, or ``cfcr:image.id``."""

    def lookup(self, release: str, architecture: str, opts: pulumi.InvokeOutputOptions) -> pulumi.Output[str]:
        """The current image of Canonical's family for ``release`` and ``architecture``."""
        found = compute.get_image_output(family=ubuntu_family(release, architecture), project=UBUNTU_PROJECT,
                                         opts=opts)
        return found.self_link
