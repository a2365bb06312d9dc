"""Settings only the AWS cluster reads (``cfcr:aws``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cfcr.config.values import Model


class AwsConfig(Model):
    """AWS-only settings; setting them for another cloud is an error."""

    api_dns_zone_id: str | None = Field(
        None,
        pattern=r"^Z[A-Z0-9]{1,32}$",
        description="Route53 public hosted zone in which to create networking.apiDnsName (e.g. Z0123456789ABC).",
    )
    ebs_kms_key_id: str | None = Field(
        None, description="KMS key (id or ARN) for the EBS volumes instead of the account's aws/ebs key."
    )
    protect_etcd_volumes: bool = Field(
        True, description="Protect the etcd volumes from deletion (destroy then needs `pulumi state unprotect`)."
    )
    termination_queue: bool = Field(
        True, description="Create the SQS queue and EventBridge rules aws-node-termination-handler drains nodes from."
    )
    vpc_endpoints: Literal["managed", "existing"] = Field(
        "managed",
        description="With networking.airGapped: `managed` creates the VPC endpoints the cluster calls; `existing`: "
        "the existing network has them already (private DNS on), cfcr creates none.",
    )
