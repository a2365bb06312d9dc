"""Tags on every Azure resource: the user's ``cfcr:tags`` and the cluster's own.

The machines carry what the flow check (:mod:`cfcr.azure.flows`) knows them by: a
control-plane VM ``cfcr-member: <member name>``, a pool's scale set ``cfcr-pool: <pool>``.
Azure tag names take at most 512 characters and none of ``<>%&\\?/``; values at most 256.
"""

from __future__ import annotations

import re

from cfcr.config import ClusterSpec

CLUSTER_TAG = "cfcr-cluster"
"""The tag that names the cluster a resource belongs to."""
ROLE_TAG = "cfcr-role"
"""``control-plane``, ``worker`` or ``network``."""
MEMBER_TAG = "cfcr-member"
"""On a control-plane VM: its member (etcd and node) name."""
POOL_TAG = "cfcr-pool"
"""On a pool's scale set: the pool's name."""
_FORBIDDEN = re.compile(r"[<>%&\\?/]")


def tag_name(key: str) -> str:
    """``key`` as an Azure tag name: the characters Azure refuses become ``_``, at most 512."""
    return _FORBIDDEN.sub("_", key)[:512]


def base_tags(spec: ClusterSpec, **extra: str) -> dict[str, str]:
    """The user's tags and ``cfcr-cluster: <cluster>``, plus ``extra`` (``_`` in a key as ``-``)."""
    assert spec.name is not None, "load_spec names every cluster"
    tags = {tag_name(k): v[:256] for k, v in spec.tags.items()}
    tags[CLUSTER_TAG] = spec.name
    for k, v in extra.items():
        tags[tag_name(k.replace("_", "-"))] = v[:256]
    return tags
