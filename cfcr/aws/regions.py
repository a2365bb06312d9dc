"""The AWS regions, from the ``pulumi_aws.Region`` enum the provider SDK ships (read by
:mod:`cfcr.config.regions`, which checks ``cfcr:region``)."""

from __future__ import annotations

from importlib.metadata import version

import pulumi_aws


def sdk_regions() -> tuple[tuple[str, ...], str]:
    """Every region name of the enum, sorted, and where the list comes from."""
    return tuple(sorted(r.value for r in pulumi_aws.Region)), f"the pulumi_aws.Region enum of pulumi-aws {version('pulumi-aws')}"
