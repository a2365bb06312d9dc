"""The site's mirrors (``cfcr:mirrors``): where a node fetches what cfcr would otherwise fetch
from the internet. ``cfcr.mirrors`` turns this section into the one mapping every renderer
uses; ``docs/airgapped.md`` walks a site through filling them."""

from __future__ import annotations

from pydantic import Field

from cfcr.config.values import Model, Url


class MirrorsConfig(Model):
    """The site's file, registry and package mirrors; each one, when set, replaces every public
    origin of its kind in user-data, manifests and chart references."""

    files: Url | None = Field(
        None,
        description="File mirror for the node binaries and checksum files: `https://HOST/PATH` is fetched as "
                    "`<files>/HOST/PATH` (e.g. https://files.example.com/cfcr).",
    )
    registry: Url | None = Field(
        None,
        description="OCI registry for every image and chart: image `HOST/REPO:TAG` is pulled as "
                    "`<registry>/HOST/REPO:TAG`, chart `NAME` as `oci://<registry>/charts/NAME` "
                    "(e.g. https://registry.example.com/cfcr).",
    )
    apt: Url | None = Field(
        None,
        description="Ubuntu archive mirror (the primary and security pockets) for the packages the boot installs "
                    "(e.g. http://apt.example.com/ubuntu).",
    )

    @property
    def complete(self) -> bool:
        """True when every kind of mirror is set (what an air-gapped network needs)."""
        return None not in (self.files, self.registry, self.apt)
