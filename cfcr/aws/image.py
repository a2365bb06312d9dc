"""Machine images: Canonical's current Ubuntu LTS, looked up through Canonical's public SSM
parameter, or the AMI id the spec names."""

from __future__ import annotations

import pulumi
from pulumi_aws import ssm

from cfcr.machine_images import MachineImages

UBUNTU_PARAMETER = "/aws/service/canonical/ubuntu/server/{release}/stable/current/{arch}/hvm/ebs-gp3/ami-id"
"""Canonical's SSM parameter naming the current AMI of a release and architecture."""


def ubuntu_parameter(release: str, architecture: str) -> str:
    """The SSM parameter of Ubuntu ``release`` (``24.04``) for ``amd64`` or ``arm64``."""
    if architecture not in ("amd64", "arm64"):
        raise ValueError(f"architecture {architecture!r}: expected amd64 or arm64")
    return UBUNTU_PARAMETER.format(release=release, arch=architecture)


class Images(MachineImages):
    """AMI ids per architecture: Canonical's SSM parameter, or ``cfcr:image.id``."""

    def lookup(self, release: str, architecture: str, opts: pulumi.InvokeOutputOptions) -> pulumi.Output[str]:
        """Canonical's current AMI, from its public SSM parameter in the cluster's region."""
        parameter = ssm.get_parameter_output(name=ubuntu_parameter(release, architecture), region=self._spec.region,
                                             opts=opts)
        # the AMI id is public: insecure_value keeps it out of Pulumi's secrets
        return parameter.insecure_value

    def ami(self, architecture: str) -> pulumi.Output[str]:
        """The AMI for ``architecture`` (:meth:`MachineImages.image`)."""
        return self.image(architecture)
