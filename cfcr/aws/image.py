"""Machine images: Canonical's current Ubuntu LTS, looked up through Canonical's public SSM
parameter, or the AMI id the spec names."""

from __future__ import annotations

import pulumi
from pulumi_aws import ssm

from cfcr.config import ClusterSpec

UBUNTU_PARAMETER = "/aws/service/canonical/ubuntu/server/{release}/stable/current/{arch}/hvm/ebs-gp3/ami-id"
"""Canonical's SSM parameter naming the current AMI of a release and architecture."""


def ubuntu_parameter(release: str, architecture: str) -> str:
    """The SSM parameter of Ubuntu ``release`` (``24.04``) for ``amd64`` or ``arm64``."""
    if architecture not in ("amd64", "arm64"):
        raise ValueError(f"architecture {architecture!r}: expected amd64 or arm64")
    return UBUNTU_PARAMETER.format(release=release, arch=architecture)


class Images:
    """AMI ids per architecture, looked up once each."""

    def __init__(self, spec: ClusterSpec, parent: pulumi.Resource) -> None:
        self._spec = spec
        self._parent = parent
        self._cache: dict[str, pulumi.Output[str]] = {}

    @property
    def pinned(self) -> bool:
        """True when the spec names the AMI (``cfcr:image.id``)."""
        return self._spec.image.id is not None

    def ami(self, architecture: str) -> pulumi.Output[str]:
        """The AMI for ``architecture``: ``cfcr:image.id`` if set, else Canonical's current one."""
        if self._spec.image.id is not None:
            return pulumi.Output.from_input(self._spec.image.id)
        if architecture not in self._cache:
            parameter = ssm.get_parameter_output(
                name=ubuntu_parameter(self._spec.image.ubuntu_release, architecture),
                region=self._spec.region,
                opts=pulumi.InvokeOutputOptions(parent=self._parent),
            )
            # the AMI id is public: insecure_value keeps it out of Pulumi's secrets
            self._cache[architecture] = parameter.insecure_value
        return self._cache[architecture]
