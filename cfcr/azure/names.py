"""Azure's naming rules."""

from __future__ import annotations

from cfcr.names import fit_name

NAME_MAX = 80
"""Longest name of a network resource (virtual network 64; subnet, network security group and
its rules, application security group, NAT gateway, public IP address 80)."""
VNET_NAME_MAX = 64
RESOURCE_GROUP_MAX = 90


def resource_name(logical: str, *, limit: int = NAME_MAX, keep: str = "") -> str:
    """An explicit Azure resource name for ``logical`` (shortened with a hash past ``limit``)."""
    return fit_name(logical, limit, keep=keep)


def key_vault_name(cluster: str) -> str:
    """The cluster's Key Vault: names are 3-24 characters of letters, digits and '-'."""
    return cluster[:21].rstrip("-") + "-kv"
