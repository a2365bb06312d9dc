"""The site's mirrors (``cfcr:mirrors``): where a node fetches what cfcr would otherwise fetch
from the internet. ``cfcr.mirrors`` turns this section into the one mapping every renderer
uses; ``docs/airgapped.md`` walks a site through filling them."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from cfcr.config.values import Model, Url

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")


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

    ca_bundle: str | None = Field(
        None,
        description="PEM certificates of the CA(s) that sign the mirrors' TLS certificates; every node trusts them "
                    "(cloud-init ca_certs) before it fetches anything.",
    )

    @field_validator("registry")
    @classmethod
    def _registry_https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("must be an https:// URL: containerd pulls the rewritten image names and Helm "
                             "installs the charts over TLS (trust a private CA with mirrors.caBundle)")
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _pem_bundle(cls, value: str | None) -> str | None:
        if value is not None:
            certs = _PEM.findall(value)
            if not certs or _PEM.sub("", value).strip():
                raise ValueError("must be one or more PEM certificates (-----BEGIN CERTIFICATE----- ... "
                                 "-----END CERTIFICATE-----) and nothing else")
        return value

    def certificates(self) -> list[str]:
        """The PEM certificates of ``ca_bundle``, one per entry (cloud-init's ``ca_certs.trusted``)."""
        return [c.strip() + "\n" for c in _PEM.findall(self.ca_bundle or "")]

    @property
    def complete(self) -> bool:
        """True when every kind of mirror is set (what an air-gapped network needs)."""
        return None not in (self.files, self.registry, self.apt)
