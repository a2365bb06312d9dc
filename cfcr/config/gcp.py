"""Settings only the GCP cluster reads (``cfcr:gcp``)."""

from __future__ import annotations

from pydantic import Field

from cfcr.config.values import Ipv4Cidr, Model

KMS_KEY_PATTERN = r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$"
"""A Cloud KMS key's resource name."""


class GcpConfig(Model):
    """GCP-only settings; setting them for another cloud is an error."""

    protect_etcd_disks: bool = Field(
        True, description="Protect the etcd disks from deletion (destroy then needs `pulumi state unprotect`)."
    )
    disk_kms_key: str | None = Field(
        None,
        pattern=KMS_KEY_PATTERN,
        description="Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for every persistent disk "
        "instead of Google-managed encryption; the Compute Engine service agent must be able to use it.",
    )
    proxy_only_subnet_cidr: Ipv4Cidr | None = Field(
        None,
        description="Range of the region's proxy-only subnet, which the internal API load balancer's proxies "
        "use: default the first /23 of the node CIDR's second half when cfcr creates the network; required "
        "with networking.existingNetwork, whose region must already have one.",
    )
    api_dns_zone: str | None = Field(
        None,
        pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="Cloud DNS public managed zone (its name) in which to create networking.apiDnsName as an A "
        "record of the API's public address.",
    )
