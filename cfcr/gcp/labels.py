"""Labels on every GCP resource: the user's ``cfcr:tags`` and the cluster's own, in the form GCP
accepts (keys and values of lowercase letters, digits, ``_`` and ``-``, at most 63 characters;
keys start with a letter). A tag that does not fit is rewritten, never dropped, the same way
every time."""

from __future__ import annotations

import re

from cfcr.config import ClusterSpec
from cfcr.names import fit_name

CLUSTER_LABEL = "cfcr-cluster"
"""The label that names the cluster a resource belongs to."""
ROLE_LABEL = "cfcr-role"
"""``control-plane`` or ``worker``."""
LABEL_MAX = 63


def label_text(value: str, *, key: bool = False) -> str:
    """``value`` as a GCP label key or value: lowercased, other characters as ``_``, at most 63
    characters (a key that does not start with a letter gets ``k_`` in front)."""
    text = re.sub(r"[^a-z0-9_-]", "_", value.lower())
    if key and not re.match(r"^[a-z]", text):
        text = f"k_{text}"
    return fit_name(text, LABEL_MAX)


def base_labels(spec: ClusterSpec, **extra: str) -> dict[str, str]:
    """The user's tags and ``cfcr-cluster: <cluster>``, plus ``extra``, as GCP labels."""
    assert spec.name is not None, "load_spec names every cluster"
    labels = {label_text(k, key=True): label_text(v) for k, v in spec.tags.items()}
    labels[CLUSTER_LABEL] = label_text(spec.name)
    for k, v in extra.items():
        labels[label_text(k.replace("_", "-"), key=True)] = label_text(v)
    return labels


def node_tag(cluster: str) -> str:
    """The network tag every node of ``cluster`` carries (``<cluster>-node``): what the firewall
    rules the cloud controller manager creates for Services of type LoadBalancer target. cfcr's
    own rules target service accounts, which only IAM can change."""
    return fit_name(f"{label_text(cluster)}-node", LABEL_MAX, keep="-node").replace("_", "-")
