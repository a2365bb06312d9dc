"""Azure's naming rules."""

from __future__ import annotations


def key_vault_name(cluster: str) -> str:
    """The cluster's Key Vault: names are 3-24 characters of letters, digits and '-'."""
    return cluster[:21].rstrip("-") + "-kv"
