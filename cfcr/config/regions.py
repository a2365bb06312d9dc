"""The real regions of each cloud, and the provider's own region key that must agree with ``cfcr:region``.

AWS: the ``pulumi_aws.Region`` enum the provider SDK ships. GCP and Azure: their SDKs ship no
list, so ``regions.yaml`` (next to this file) holds each list with its source page and date.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cfcr.config.errors import NAMESPACE, Problem

CLOUD_NAMES = {"aws": "AWS", "gcp": "GCP", "azure": "Azure"}
_A = {"aws": "an", "gcp": "a", "azure": "an"}
PROVIDER_REGION_KEYS = {"aws": "aws:region", "gcp": "gcp:region", "azure": "azure-native:location"}
"""The key each cloud's Pulumi provider reads its region from, as stack files set it."""


@dataclass(frozen=True)
class Regions:
    """One cloud's regions and where the list comes from."""

    names: tuple[str, ...]
    source: str


@functools.cache
def cloud_regions(cloud: str) -> Regions | None:
    """The regions of ``cloud`` (``aws``, ``gcp``, ``azure``); ``None`` for AWS without its SDK
    (cfcr[aws] not installed: the render stops on that, naming the extra)."""
    if cloud == "aws":
        try:
            from cfcr.aws.regions import sdk_regions
        except ModuleNotFoundError:
            return None
        return Regions(*sdk_regions())
    data: dict[str, Any] = yaml.safe_load((Path(__file__).with_name("regions.yaml")).read_text())
    entry = data[cloud]
    return Regions(tuple(sorted(entry["regions"])), f"{entry['source']} ({entry['date']})")


def normal(cloud: str, region: str) -> str:
    """A region as the provider compares it: Azure takes ``West Europe`` for ``westeurope``."""
    return region.replace(" ", "").lower() if cloud == "azure" else region


def region_problem(cloud: str, region: str) -> Problem | None:
    """Why ``region`` is not one of ``cloud``'s regions, or ``None``."""
    known = cloud_regions(cloud)
    if known is None or normal(cloud, region) in known.names:
        return None
    other = next((c for c in CLOUD_NAMES if c != cloud and (r := cloud_regions(c)) is not None
                  and normal(c, region) in r.names), None)
    near = difflib.get_close_matches(normal(cloud, region), known.names, n=1)
    hint = (f"it is {_A[other]} {CLOUD_NAMES[other]} region (cfcr:cloud is {cloud}); " if other
            else f"did you mean {near[0]!r}? " if near else "")
    return Problem(f"{NAMESPACE}:region", region,
                   f"not {_A[cloud]} {CLOUD_NAMES[cloud]} region; {hint}allowed: {', '.join(known.names)} "
                   f"(source: {known.source})")


def provider_region_problem(cloud: str, region: str, config: dict[str, Any]) -> Problem | None:
    """The provider's own region key (``aws:region``, ``gcp:region``, ``azure-native:location``)
    when set to another region than ``cfcr:region``: the provider would build there."""
    key = PROVIDER_REGION_KEYS[cloud]
    value = config.get(key)
    if value is None or normal(cloud, str(value)) == normal(cloud, region):
        return None
    return Problem(key, value, f"must equal cfcr:region ({region!r}): the {CLOUD_NAMES[cloud]} provider "
                               "builds where this key says (set both to the same region, or leave this one unset)")
