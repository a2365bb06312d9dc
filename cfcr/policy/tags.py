"""Required tags (AWS, Azure) and labels (GCP) on every taggable cloud resource, and in the
bootstrap summary's tags. Provider-level default tags / labels count."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel

from cfcr.policy.base import CfcrResourcePolicy, Reporter, Resource, Setting, string_list
from cfcr.policy.common import as_list, get
from cfcr.policy import types as t

TAGGABLE: dict[str, str] = {
    t.BOOTSTRAP: "tags",
    # AWS
    t.AWS_INSTANCE: "tags",
    t.AWS_LAUNCH_TEMPLATE: "tags",
    t.AWS_VOLUME: "tags",
    t.AWS_SECURITY_GROUP: "tags",
    t.AWS_ASG: "tags",
    t.AWS_LB: "tags",
    "aws:ec2/vpc:Vpc": "tags",
    "aws:ec2/subnet:Subnet": "tags",
    "aws:ec2/natGateway:NatGateway": "tags",
    "aws:ec2/eip:Eip": "tags",
    "aws:ec2/internetGateway:InternetGateway": "tags",
    "aws:ec2/routeTable:RouteTable": "tags",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "tags",
    "aws:lb/targetGroup:TargetGroup": "tags",
    "aws:secretsmanager/secret:Secret": "tags",
    "aws:iam/role:Role": "tags",
    "aws:kms/key:Key": "tags",
    "aws:s3/bucket:Bucket": "tags",
    # GCP (labels)
    t.GCP_INSTANCE: "labels",
    t.GCP_INSTANCE_TEMPLATE: "labels",
    t.GCP_REGION_INSTANCE_TEMPLATE: "labels",
    t.GCP_DISK: "labels",
    t.GCP_REGION_DISK: "labels",
    "gcp:compute/forwardingRule:ForwardingRule": "labels",
    "gcp:secretmanager/secret:Secret": "labels",
    # Azure
    t.AZ_VM: "tags",
    t.AZ_VMSS: "tags",
    t.AZ_DISK: "tags",
    t.AZ_NSG: "tags",
    "azure-native:resources:ResourceGroup": "tags",
    "azure-native:network:VirtualNetwork": "tags",
    "azure-native:network:LoadBalancer": "tags",
    "azure-native:network:PublicIPAddress": "tags",
    "azure-native:keyvault:Vault": "tags",
}
"""Resource type -> the property holding its tags or labels."""


def _tags_of(res: Resource) -> dict[str, str]:
    field = TAGGABLE[res.type]
    raw = res.props.get(field)
    tags: dict[str, str] = {}
    if isinstance(raw, Mapping):
        tags.update({str(k): str(v) for k, v in raw.items()})
    else:  # the ASG's list of {key, value, propagateAtLaunch}
        for item in as_list(raw):
            if isinstance(item, Mapping) and "key" in item:
                tags[str(item["key"])] = str(item.get("value", ""))
    defaults = get(res.provider_props, "defaultTags", "tags") or get(res.provider_props, "defaultLabels")
    if isinstance(defaults, Mapping):
        for key, value in defaults.items():
            tags.setdefault(str(key), str(value))
    return tags


def _check_tags(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    tags = _tags_of(res)
    missing = [str(k) for k in as_list(cfg["requiredTags"]) if not tags.get(str(k), "").strip()]
    if missing:
        word = "labels" if TAGGABLE[res.type] == "labels" else "tags"
        report(f"missing {word}: {', '.join(missing)}")


required_tags = CfcrResourcePolicy(
    "required-tags",
    "Every taggable cloud resource carries the required tags (labels on GCP).",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=TAGGABLE,
    clouds=("aws", "gcp", "azure"),
    check=_check_tags,
    settings=[Setting("requiredTags", string_list("Tag (label) keys every resource must carry.",
                                                  ["owner", "cost-centre"]))],
    remediation="Set them in cfcr:tags; cfcr puts them on every resource.",
)
