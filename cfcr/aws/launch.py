"""What every VM of the cluster launches with, control plane and workers alike: IMDSv2 only
with a hop limit of 1 (pods cannot reach instance credentials), an encrypted gp3 root
volume, the user-data of its role (base64; gzip bytes stay gzip), and the cluster's tags."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import pulumi
from pulumi_aws import ec2

ROOT_DEVICE = "/dev/sda1"
"""Root device name of Canonical's Ubuntu AMIs."""


def metadata_options() -> ec2.LaunchTemplateMetadataOptionsArgs:
    """IMDSv2 required, one hop, no instance tags in metadata."""
    return ec2.LaunchTemplateMetadataOptionsArgs(
        http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1,
        instance_metadata_tags="disabled",
    )


def root_volume(size_gb: int, kms_key_id: pulumi.Input[str] | None) -> ec2.LaunchTemplateBlockDeviceMappingArgs:
    """Encrypted gp3 root volume, deleted with the instance."""
    return ec2.LaunchTemplateBlockDeviceMappingArgs(
        device_name=ROOT_DEVICE,
        ebs=ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
            volume_size=size_gb, volume_type="gp3", encrypted="true", kms_key_id=kms_key_id,
            delete_on_termination="true",
        ),
    )


def encode_user_data(data: pulumi.Output[bytes]) -> pulumi.Output[str]:
    """Base64 of the exact user-data bytes (EC2 decodes it; cloud-init ungzips if needed)."""
    return data.apply(lambda raw: base64.b64encode(raw).decode())


def tag_specifications(tags: Mapping[str, str]) -> list[ec2.LaunchTemplateTagSpecificationArgs]:
    """Tags for the instance, its volumes and its network interface."""
    return [ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=dict(tags))
            for kind in ("instance", "volume", "network-interface")]
