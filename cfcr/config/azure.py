"""Settings only the Azure cluster reads (``cfcr:azure``)."""

from __future__ import annotations

from pydantic import Field

from cfcr.config.values import Model


class AzureConfig(Model):
    """Azure-only settings; setting them for another cloud is an error."""

    protect_etcd_disks: bool = Field(
        True, description="Protect the etcd disks from deletion (destroy then needs `pulumi state unprotect`)."
    )
