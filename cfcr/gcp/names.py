"""Names GCP holds to its limits: resource names are RFC 1035 labels of at most 63 characters,
service account ids 6 to 30, custom role ids letters, digits, ``_`` and ``.`` up to 64."""

from __future__ import annotations

import re

from cfcr.names import fit_name

NAME_MAX = 63
ACCOUNT_ID_MAX = 30


def resource_name(logical: str, *, keep: str = "") -> str:
    """An explicit GCP resource name for ``logical`` (shortened with a hash past 63 characters)."""
    return fit_name(logical, NAME_MAX, keep=keep)


def account_id(cluster: str, role: str) -> str:
    """The service account id of ``role`` in ``cluster`` (``<cluster>-<role>``, at most 30
    characters, at least 6)."""
    name = fit_name(f"{cluster}-{role}", ACCOUNT_ID_MAX, keep=f"-{role}" if len(role) < 12 else "")
    return name if len(name) >= 6 else f"{name}-sa"[:ACCOUNT_ID_MAX]


def custom_role_id(cluster: str, role: str, suffix: str) -> str:
    """A custom role id: ``cfcr_<cluster>_<role>_<suffix>`` with ``-`` as ``_`` (custom role ids
    allow no ``-``), at most 64 characters."""
    base = re.sub(r"[^A-Za-z0-9_.]", "_", f"cfcr_{cluster}_{role}")
    return fit_name(f"{base}_{suffix}", 64, keep=f"_{suffix}").replace("-", "_")
