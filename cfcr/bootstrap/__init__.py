"""The cloud-neutral cluster bootstrap: PKI + per-role secrets + user-data."""

from cfcr.bootstrap.component import (
    ClusterBootstrap,
    ClusterBootstrapArgs,
    default_secret_id,
    pki_inputs,
    role_secrets,
)

__all__ = ["ClusterBootstrap", "ClusterBootstrapArgs", "default_secret_id", "pki_inputs", "role_secrets"]
