"""Machine images: Canonical's current Ubuntu LTS from the Azure Marketplace, or the image the
spec names (``cfcr:image.id``).

An image is written as one string: a Marketplace URN ``publisher:offer:sku:version``
(``Canonical:ubuntu-24_04-lts:server:latest``, as ``az vm image list --urn`` prints it), or an
ARM id (``/subscriptions/.../images/<name>``, a Compute Gallery image or version). Version
``latest`` is resolved by Azure when a VM or scale-set instance is created: a member keeps the
build it was created with until it is replaced, and a scale set's new instances take the newest
build (no Pulumi diff, so no rolling replacement when Canonical publishes one); pin a version or
an image id to move the members on purpose (docs/azure.md).
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import compute

from cfcr.machine_images import MachineImages

PUBLISHER = "Canonical"
"""Canonical's Marketplace publisher."""
LATEST = "latest"


def ubuntu_urn(release: str, architecture: str) -> str:
    """The Marketplace URN of Ubuntu ``release`` (``24.04``) server for ``amd64`` or ``arm64``:
    ``Canonical:ubuntu-24_04-lts:server:latest`` (arm64: SKU ``server-arm64``; Canonical's offer
    names since 22.04, ``az vm image list --publisher Canonical``; the 26.04 name follows the same
    pattern, not yet confirmed from a published image). The ``server`` SKUs are generation 2
    images, which Trusted Launch needs."""
    if architecture not in ("amd64", "arm64"):
        raise ValueError(f"architecture {architecture!r}: expected amd64 or arm64")
    sku = "server" if architecture == "amd64" else "server-arm64"
    return f"{PUBLISHER}:ubuntu-{release.replace('.', '_')}-lts:{sku}:{LATEST}"


def image_reference(image: str) -> compute.ImageReferenceArgs:
    """``image`` (a URN or an ARM id) as a VM's ``imageReference``; ``ValueError`` naming
    ``cfcr:image.id`` for anything else."""
    if image.startswith("/subscriptions/"):
        return compute.ImageReferenceArgs(id=image)
    parts = image.split(":")
    if len(parts) != 4 or not all(parts):
        raise ValueError(f"cfcr:image.id: got {image!r}; on azure give a Marketplace URN publisher:offer:sku:version "
                         "(e.g. Canonical:ubuntu-24_04-lts:server:latest) or an image's ARM id (/subscriptions/...)")
    publisher, offer, sku, version = parts
    return compute.ImageReferenceArgs(publisher=publisher, offer=offer, sku=sku, version=version)


class Images(MachineImages):
    """Images per architecture: the Ubuntu LTS URN, or ``cfcr:image.id``."""

    def lookup(self, release: str, architecture: str, opts: pulumi.InvokeOutputOptions) -> pulumi.Output[str]:
        """Canonical's URN for ``release`` and ``architecture`` (version ``latest``, resolved by Azure)."""
        return pulumi.Output.from_input(ubuntu_urn(release, architecture))
