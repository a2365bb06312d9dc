"""Object storage policies: every S3 bucket and Azure storage account of a stack keeps the public
out and speaks TLS only (cfcr's buckets and accounts hold etcd snapshots: every Secret of the
cluster)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyResource, ReportViolation

from cfcr.policy.base import CfcrStackPolicy
from cfcr.policy.common import as_bool, as_list
from cfcr.policy.types import AZ_BLOB_CONTAINER, AZ_STORAGE_ACCOUNT

AWS_BUCKET = "aws:s3/bucket:Bucket"
AWS_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
AWS_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
PUBLIC_ACCESS_SETTINGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
AZURE_TLS_VERSIONS = ("TLS1_0", "TLS1_1", "TLS1_2", "TLS1_3")
"""azure-native's MinimumTlsVersion values, oldest first."""


def _of_bucket(setting: PolicyResource, bucket: PolicyResource) -> bool:
    """Whether a bucket-level resource (``bucket`` input) is about ``bucket``: it took the
    bucket's id (a property dependency), or names the same bucket."""
    if any(d.urn == bucket.urn for d in setting.property_dependencies.get("bucket", [])):
        return True
    name = setting.props.get("bucket")
    return name is not None and name in (bucket.props.get("bucket"), bucket.props.get("id"))


def denies_plain_http(document: Any) -> bool | None:
    """Whether a bucket policy denies every request without TLS (``aws:SecureTransport`` false)
    to everyone, for every action; None when the document is not known yet (a preview)."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return False
    if not isinstance(document, Mapping):
        return None
    for statement in as_list(document.get("Statement")):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Deny":
            continue
        if statement.get("Principal") not in ("*", {"AWS": "*"}):
            continue
        if not {"s3:*", "*"} & set(as_list(statement.get("Action"))):
            continue
        condition = statement.get("Condition")
        if isinstance(condition, Mapping) and list(condition) == ["Bool"] and isinstance(condition["Bool"], Mapping) \
                and as_bool(condition["Bool"].get("aws:SecureTransport")) is False:
            return True
    return False


def _check_buckets(resources: Sequence[PolicyResource], cfg: Mapping[str, Any], report: ReportViolation) -> None:
    blocks = [r for r in resources if r.resource_type == AWS_PUBLIC_ACCESS_BLOCK]
    policies = [r for r in resources if r.resource_type == AWS_BUCKET_POLICY]
    for bucket in (r for r in resources if r.resource_type == AWS_BUCKET):
        mine = [b for b in blocks if _of_bucket(b, bucket)]
        if not mine:
            report("no public access block: set all of " + ", ".join(PUBLIC_ACCESS_SETTINGS), bucket.urn)
        for block in mine:
            off = [k for k in PUBLIC_ACCESS_SETTINGS if as_bool(block.props.get(k)) is not True]
            if off:
                report(f"public access block leaves {', '.join(off)} off", block.urn)
        decided = [denies_plain_http(p.props.get("policy")) for p in policies if _of_bucket(p, bucket)]
        if None not in decided and True not in decided:
            report("no bucket policy denies requests without TLS (Deny s3:* to * when aws:SecureTransport is "
                   "false)", bucket.urn)


def _check_storage_accounts(resources: Sequence[PolicyResource], report: ReportViolation) -> None:
    for account in (r for r in resources if r.resource_type == AZ_STORAGE_ACCOUNT):
        props = account.props
        if as_bool(props.get("allowBlobPublicAccess")) is not False:
            report("allowBlobPublicAccess is not false: a container can be made public", account.urn)
        if as_bool(props.get("enableHttpsTrafficOnly")) is False:
            report("enableHttpsTrafficOnly is false: requests without TLS are served", account.urn)
        tls = str(props.get("minimumTlsVersion") or "")
        if tls.upper() not in AZURE_TLS_VERSIONS[2:]:
            report(f"minimumTlsVersion is {tls or 'unset'}; TLS1_2 at least", account.urn)
    for container in (r for r in resources if r.resource_type == AZ_BLOB_CONTAINER):
        access = str(container.props.get("publicAccess") or "None")
        if access.lower() != "none":
            report(f"publicAccess is {access}: anyone can read the container's blobs", container.urn)


def _check_object_storage(resources: Sequence[PolicyResource], cfg: Mapping[str, Any],
                          report: ReportViolation) -> None:
    _check_buckets(resources, cfg, report)
    _check_storage_accounts(resources, report)


object_storage_private = CfcrStackPolicy(
    "object-storage-private",
    "Every S3 bucket blocks public access (all four settings) and refuses requests without TLS; every Azure "
    "storage account forbids public blob access, serves HTTPS only with TLS 1.2 or later, and no container is "
    "public.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=(AWS_BUCKET, AWS_PUBLIC_ACCESS_BLOCK, AWS_BUCKET_POLICY, AZ_STORAGE_ACCOUNT, AZ_BLOB_CONTAINER),
    clouds=("aws", "azure"),
    check=_check_object_storage,
    remediation="Give the bucket an aws.s3.BucketPublicAccessBlock with the four settings true, and a bucket "
                "policy that denies s3:* to everyone when aws:SecureTransport is false (cfcr.aws.backups does both); "
                "give the storage account allowBlobPublicAccess: false, enableHttpsTrafficOnly: true, "
                "minimumTlsVersion: TLS1_2.",
)
