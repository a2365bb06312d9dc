"""GCP persistent-disk policies over the whole stack: etcd's disks are SSDs, and customer-managed
keys, once a stack uses them, are on every disk.

Google encrypts every persistent disk at rest; a stack that names a Cloud KMS key
(``cfcr:gcp.diskKmsKey``) wants that key on every disk, and one disk left on Google's key is
the mistake to catch. The bootstrap summary carries the configured key as ``diskKmsKey``
when the stack sets one; without it the policy holds every disk to the keys the stack's other
disks use (all or none).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyResource, ReportViolation

from cfcr.policy.base import CfcrStackPolicy, Setting, string_list
from cfcr.policy.common import as_list, get
from cfcr.policy.types import (
    BOOTSTRAP,
    GCP_DISK,
    GCP_INSTANCE,
    GCP_INSTANCE_TEMPLATE,
    GCP_REGION_DISK,
    GCP_REGION_INSTANCE_TEMPLATE,
)

GCP_PROVIDER_DEFAULT_DISK_TYPE = "pd-standard"
"""The disk type pulumi-gcp gives a ``compute.Disk`` without ``type`` (the API's default)."""

_TEMPLATES = (GCP_INSTANCE_TEMPLATE, GCP_REGION_INSTANCE_TEMPLATE)
ETCD_LABEL = ("cfcr-role", "etcd")
"""The label cfcr puts on etcd's disks (cfcr/gcp/control_plane.py)."""


def _short_type(value: Any) -> str:
    """``pd-ssd`` from ``pd-ssd`` or ``.../zones/z/diskTypes/pd-ssd``; the provider's default when unset."""
    text = str(value or "").strip()
    return text.rsplit("/", 1)[-1] if text else GCP_PROVIDER_DEFAULT_DISK_TYPE


def _etcd_disk_urns(resources: Sequence[PolicyResource], devices: Sequence[str]) -> set[str]:
    """Disks that hold etcd: labelled ``cfcr-role: etcd``, named ``*-etcd``, or attached to an
    instance under an etcd device name (found through the instance's property dependencies, or
    by the disk's name or self link)."""
    disks = {r.urn: r for r in resources if r.resource_type in (GCP_DISK, GCP_REGION_DISK)}
    found = {urn for urn, d in disks.items()
             if d.name.endswith("-etcd") or get(d.props, "labels", ETCD_LABEL[0]) == ETCD_LABEL[1]}
    for inst in (r for r in resources if r.resource_type == GCP_INSTANCE):
        attached = [a for a in as_list(inst.props.get("attachedDisks")) if isinstance(a, Mapping)]
        etcd = [a for a in attached if str(a.get("deviceName") or "") in devices]
        if not etcd:
            continue
        deps = [d for d in inst.property_dependencies.get("attachedDisks", []) if d.urn in disks]
        if len(deps) == 1 and len(attached) == 1:
            found.add(deps[0].urn)
            continue
        for a in etcd:
            source = str(a.get("source") or "")
            for urn, d in disks.items():
                names = {str(d.props.get(k)) for k in ("name", "selfLink", "id") if d.props.get(k)}
                if source and (source in names or source.rsplit("/", 1)[-1] in names):
                    found.add(urn)
    return found


def _check_etcd_disks(resources: Sequence[PolicyResource], cfg: Mapping[str, Any], report: ReportViolation) -> None:
    allowed = [str(t) for t in as_list(cfg["etcdDiskTypes"])]
    devices = [str(d) for d in as_list(cfg["etcdDeviceNames"])]
    by_urn = {r.urn: r for r in resources}
    for urn in sorted(_etcd_disk_urns(resources, devices)):
        kind = _short_type(by_urn[urn].props.get("type"))
        if kind not in allowed:
            report(f"etcd's disk is {kind}; etcd needs the fsync latency of {', '.join(allowed)}", urn)
    for tpl in (r for r in resources if r.resource_type in _TEMPLATES):
        for i, disk in enumerate(as_list(tpl.props.get("disks"))):
            if str(get(disk, "deviceName") or "") in devices:
                kind = _short_type(get(disk, "diskType"))
                if kind not in allowed:
                    report(f"disks[{i}] (etcd) is {kind}; etcd needs the fsync latency of {', '.join(allowed)}",
                           tpl.urn)


etcd_disk_ssd = CfcrStackPolicy(
    "etcd-disk-ssd",
    "etcd's GCP persistent disks are SSDs (pd-ssd or faster), never pd-standard or pd-balanced.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=(GCP_DISK, GCP_REGION_DISK, GCP_INSTANCE, *_TEMPLATES),
    clouds=("gcp",),
    check=_check_etcd_disks,
    settings=[
        Setting("etcdDiskTypes", string_list(
            "Disk types etcd may live on.", ["pd-ssd", "pd-extreme", "hyperdisk-balanced", "hyperdisk-extreme"])),
        Setting("etcdDeviceNames", string_list(
            "Device names under which etcd's disk is attached (cfcr: etcd, /dev/disk/by-id/google-etcd).",
            ["etcd"])),
    ],
    remediation="Give etcd's disk type pd-ssd (cfcr does).",
)


# ----------------------------------------------------------------------------- customer-managed keys


def _key(value: Any) -> str | None:
    """A KMS key name without a ``/cryptoKeyVersions/N`` suffix; None when unset."""
    text = str(value or "").strip()
    if not text:
        return None
    return text.split("/cryptoKeyVersions/", 1)[0]


def disk_keys(r: PolicyResource) -> Iterator[tuple[str, str | None]]:
    """``(property path, KMS key or None)`` of every disk a GCP resource creates."""
    props = r.props
    if r.resource_type in (GCP_DISK, GCP_REGION_DISK):
        yield "diskEncryptionKey.kmsKeySelfLink", _key(get(props, "diskEncryptionKey", "kmsKeySelfLink"))
    elif r.resource_type == GCP_INSTANCE:
        boot = props.get("bootDisk")
        if isinstance(boot, Mapping) and not boot.get("source"):  # a disk it creates, not one it attaches
            yield "bootDisk.kmsKeySelfLink", _key(boot.get("kmsKeySelfLink"))
    elif r.resource_type in _TEMPLATES:
        for i, disk in enumerate(as_list(props.get("disks"))):
            if isinstance(disk, Mapping) and not disk.get("source"):
                yield f"disks[{i}].diskEncryptionKey.kmsKeySelfLink", _key(get(disk, "diskEncryptionKey",
                                                                                 "kmsKeySelfLink"))


def _check_keys(resources: Sequence[PolicyResource], cfg: Mapping[str, Any], report: ReportViolation) -> None:
    summary = next((r for r in resources if r.resource_type == BOOTSTRAP), None)
    configured = _key(summary.props.get("diskKmsKey")) if summary is not None else None
    sites = [(r, path, key) for r in resources for path, key in disk_keys(r)]
    used = sorted({key for _, _, key in sites if key})
    for r, path, key in sites:
        if configured:
            if key != configured:
                report(f"{path} is {key or 'unset'}; the stack's key (cfcr:gcp.diskKmsKey) is {configured}", r.urn)
        elif used and key is None:
            report(f"{path} is unset while the stack's other disks use {', '.join(used)}: this disk is on "
                   "Google's key", r.urn)


gcp_disk_keys = CfcrStackPolicy(
    "gcp-disk-keys",
    "GCP disks use the stack's Cloud KMS key (cfcr:gcp.diskKmsKey) when it names one; otherwise all of a "
    "stack's disks use a customer-managed key or none does.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=(BOOTSTRAP, GCP_DISK, GCP_REGION_DISK, GCP_INSTANCE, *_TEMPLATES),
    clouds=("gcp",),
    check=_check_keys,
    remediation="Set the key on every disk: Disk.diskEncryptionKey.kmsKeySelfLink, Instance.bootDisk.kmsKeySelfLink, "
                "template disks[].diskEncryptionKey.kmsKeySelfLink.",
)
