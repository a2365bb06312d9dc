"""Azure's naming rules: Key Vault names are 3-24 characters of letters, digits and '-', start
with a letter, end with a letter or digit, hold no '--', and are global (a deleted vault's name
stays reserved while it is soft-deleted); user-assigned identity names 3-128 characters of
letters, digits, '-' and '_', starting with a letter or digit."""

from __future__ import annotations

import re

from cfcr.names import fit_name

NAME_MAX = 80
"""Longest name of a network resource (virtual network 64; subnet, network security group and
its rules, application security group, NAT gateway, public IP address 80)."""
VNET_NAME_MAX = 64
RESOURCE_GROUP_MAX = 90
KEY_VAULT_MAX = 24
IDENTITY_MAX = 128


def resource_name(logical: str, *, limit: int = NAME_MAX, keep: str = "") -> str:
    """An explicit Azure resource name for ``logical`` (shortened with a hash past ``limit``)."""
    return fit_name(logical, limit, keep=keep)


def key_vault_name(cluster: str, suffix: str = "") -> str:
    """The cluster's Key Vault: ``<cluster>-<suffix>`` (``suffix`` random, kept in state) cut to
    24 characters, or ``<cluster>-kv`` without a suffix (the bootstrap-only contract)."""
    tail = suffix or "kv"
    if not re.fullmatch(r"[A-Za-z0-9]+", tail) or len(tail) > KEY_VAULT_MAX - 2:
        raise ValueError(f"key_vault_name: suffix {suffix!r} must be 1-{KEY_VAULT_MAX - 2} letters or digits")
    head = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9-]", "-", cluster)).strip("-")
    if not head[:1].isalpha():
        head = f"k{head}"
    head = head[:KEY_VAULT_MAX - len(tail) - 1].rstrip("-")
    return f"{head}-{tail}"


def identity_name(cluster: str, slug: str) -> str:
    """The user-assigned identity of role ``slug`` (``control-plane-0``, ``worker-general``) in
    ``cluster``: ``<cluster>-<slug>``, shortened with a hash past 128 characters."""
    return fit_name(f"{cluster}-{slug}", IDENTITY_MAX, keep=f"-{slug}" if len(slug) < 64 else "")
