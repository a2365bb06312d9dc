"""Disk policies over the whole stack: etcd's disks are SSDs (GCP, Azure), Azure etcd disks cannot
be exported or deleted with their VM, and GCP customer-managed keys, once a stack uses them, are
on every disk.

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
    AZ_DISK,
    AZ_VM,
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
AZURE_DEFAULT_DISK_SKU = "Standard_LRS"
"""The SKU Azure gives a managed disk created without ``sku`` (Disks - Create Or Update, REST API)."""
AZURE_SSD_SKUS = ("Premium_LRS", "Premium_ZRS", "PremiumV2_LRS", "UltraSSD_LRS")
"""Azure managed-disk SKUs that are Premium SSD or faster (StandardSSD and Standard HDD are not)."""
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
    skus = [str(k) for k in as_list(cfg["azureEtcdDiskSkus"])]
    for disk in azure_etcd_disks(resources):
        sku = str(get(disk.props, "sku", "name") or AZURE_DEFAULT_DISK_SKU)
        if sku not in skus:
            report(f"etcd's disk is {sku}; etcd needs the fsync latency of {', '.join(skus)}", disk.urn)


etcd_disk_ssd = CfcrStackPolicy(
    "etcd-disk-ssd",
    "etcd's disks are SSDs: GCP pd-ssd or faster (never pd-standard or pd-balanced), Azure Premium SSD or "
    "faster (never Standard).",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=(GCP_DISK, GCP_REGION_DISK, GCP_INSTANCE, *_TEMPLATES, AZ_DISK),
    clouds=("gcp", "azure"),
    check=_check_etcd_disks,
    settings=[
        Setting("etcdDiskTypes", string_list(
            "Disk types etcd may live on.", ["pd-ssd", "pd-extreme", "hyperdisk-balanced", "hyperdisk-extreme"])),
        Setting("etcdDeviceNames", string_list(
            "Device names under which etcd's disk is attached (cfcr: etcd, /dev/disk/by-id/google-etcd).",
            ["etcd"])),
        Setting("azureEtcdDiskSkus", string_list(
            "Azure managed-disk SKUs etcd may live on.", AZURE_SSD_SKUS)),
    ],
    remediation="Give etcd's disk type pd-ssd on GCP, sku Premium_LRS (or Premium_ZRS, PremiumV2_LRS, "
                "UltraSSD_LRS) on Azure (cfcr does).",
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


# ----------------------------------------------------------------------------- Azure etcd disks protected


def azure_etcd_disks(resources: Sequence[PolicyResource]) -> list[PolicyResource]:
    """Azure managed disks that hold etcd: tagged ``cfcr-role: etcd`` or named ``*-etcd``
    (cfcr/azure names and tags them so)."""
    return [r for r in resources if r.resource_type == AZ_DISK
            and (r.name.endswith("-etcd") or get(r.props, "tags", ETCD_LABEL[0]) == ETCD_LABEL[1])]


def _attached(vm: PolicyResource, disk: PolicyResource) -> list[tuple[int, Mapping[str, Any]]]:
    """``(index, dataDisks entry)`` of the VM's data disks that attach ``disk`` (by the disk's id
    through a property dependency, or by its name at the end of ``managedDisk.id``)."""
    name = str(disk.props.get("diskName") or disk.name)
    by_dependency = any(d.urn == disk.urn for d in vm.property_dependencies.get("storageProfile", []))
    data = [(i, d) for i, d in enumerate(as_list(get(vm.props, "storageProfile", "dataDisks")))
            if isinstance(d, Mapping)]
    named = [(i, d) for i, d in data
             if str(get(d, "managedDisk", "id") or "").rstrip("/").rsplit("/", 1)[-1].lower() == name.lower()]
    if named:
        return named
    attaching = [(i, d) for i, d in data if str(d.get("createOption") or "").lower() == "attach"]
    return attaching if by_dependency and len(attaching) == 1 else []


def _check_etcd_protected(resources: Sequence[PolicyResource], cfg: Mapping[str, Any],
                          report: ReportViolation) -> None:
    vms = [r for r in resources if r.resource_type == AZ_VM]
    for disk in azure_etcd_disks(resources):
        access = str(disk.props.get("networkAccessPolicy") or "AllowAll")
        if access.lower() != "denyall":
            report(f"etcd's disk has networkAccessPolicy {access}: a SAS URL can export every Secret of the "
                   "cluster; use DenyAll", disk.urn)
        public = str(disk.props.get("publicNetworkAccess") or "Enabled")
        if public.lower() != "disabled":
            report(f"etcd's disk has publicNetworkAccess {public}; use Disabled", disk.urn)
        for vm in vms:
            for i, entry in _attached(vm, disk):
                if str(entry.get("deleteOption") or "Detach").lower() == "delete":
                    report(f"storageProfile.dataDisks[{i}] (etcd's disk {disk.name}) has deleteOption Delete: "
                           "replacing the VM destroys the member's data; use Detach", vm.urn)


azure_etcd_disk_protected = CfcrStackPolicy(
    "azure-etcd-disk-protected",
    "Azure etcd disks cannot be exported (networkAccessPolicy DenyAll, publicNetworkAccess Disabled) and "
    "outlive their VM (dataDisks deleteOption Detach).",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=(AZ_DISK, AZ_VM),
    clouds=("azure",),
    check=_check_etcd_protected,
    remediation="On etcd's Disk: networkAccessPolicy DenyAll, publicNetworkAccess Disabled; on the VM's data "
                "disk: deleteOption Detach (cfcr does all three).",
)
