"""Machine policies: instance metadata locked down, verified boot (Shielded VM / Trusted
Launch) and every disk encrypted — on instances, templates and scale sets of each cloud."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel

from cfcr.policy.base import CfcrResourcePolicy, Reporter, Resource, Setting, boolean, integer, string_list
from cfcr.policy.common import as_bool, as_list, as_number, fmt_number, get
from cfcr.policy.types import (
    AWS_INSTANCE,
    AWS_LAUNCH_TEMPLATE,
    AWS_VOLUME,
    AZ_DISK,
    AZ_NIC,
    AZ_VM,
    AZ_VMSS,
    GCP_DISK,
    GCP_INSTANCE,
    GCP_INSTANCE_TEMPLATE,
    GCP_REGION_DISK,
    GCP_REGION_INSTANCE_TEMPLATE,
)

GCP_MACHINES = (GCP_INSTANCE, GCP_INSTANCE_TEMPLATE, GCP_REGION_INSTANCE_TEMPLATE)


def azure_security_profile(res: Resource) -> Mapping[str, Any]:
    """``securityProfile`` of a VM, or of a scale set's ``virtualMachineProfile``."""
    path = ("virtualMachineProfile", "securityProfile") if res.type == AZ_VMSS else ("securityProfile",)
    profile = get(res.props, *path)
    return profile if isinstance(profile, Mapping) else {}


def _from_template(res: Resource) -> bool:
    """True for an AWS instance launched from a launch template."""
    return bool(get(res.props, "launchTemplate", "id") or get(res.props, "launchTemplate", "name"))


# ----------------------------------------------------------------------------- metadata


def _check_metadata(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    if res.type in (AWS_INSTANCE, AWS_LAUNCH_TEMPLATE):
        options = get(res.props, "metadataOptions")
        if not isinstance(options, Mapping) and res.type == AWS_INSTANCE and _from_template(res):
            return  # the launch template's metadataOptions apply, and are checked there
        if not isinstance(options, Mapping):
            report("metadataOptions is not set: IMDSv1 stays enabled and the hop limit unbounded")
            return
        if str(options.get("httpEndpoint", "enabled")).lower() == "disabled":
            return
        if str(options.get("httpTokens", "")).lower() != "required":
            report(f"metadataOptions.httpTokens is {options.get('httpTokens')!r}: require IMDSv2 ('required')")
        hops = as_number(options.get("httpPutResponseHopLimit"))
        limit = int(cfg["awsMaxHopLimit"])
        if hops is None or hops > limit:
            shown = "unset" if hops is None else fmt_number(hops)
            report(f"metadataOptions.httpPutResponseHopLimit is {shown}: at most {limit} keeps pods "
                   "from the instance's credentials")
    elif res.type in GCP_MACHINES:
        metadata = get(res.props, "metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}
        for key in as_list(cfg["gcpRequiredMetadata"]):
            if as_bool(metadata.get(key)) is not True:
                report(f"metadata {key!r} is {metadata.get(key)!r}; it must be 'true'")
        for key in ("serial-port-enable",):
            if as_bool(metadata.get(key)) is True:
                report(f"metadata {key!r} is true: the serial console is reachable")
        for key in as_list(cfg["gcpForbiddenMetadata"]):
            if key in metadata:
                report(f"metadata has {key!r}: SSH keys on the machine bypass the blocked project keys")
    elif res.type in (AZ_VM, AZ_VMSS) and cfg["azureRequireProxyAgent"]:
        agent = get(azure_security_profile(res), "proxyAgentSettings")
        if as_bool(get(agent, "enabled")) is not True:
            report("securityProfile.proxyAgentSettings.enabled is not true: the instance metadata service "
                   "is open to every process (Metadata Security Protocol off)")
        elif str(get(agent, "mode") or "Enforce").lower() != "enforce":
            report(f"securityProfile.proxyAgentSettings.mode is {get(agent, 'mode')!r}; use 'Enforce'")


instance_metadata = CfcrResourcePolicy(
    "instance-metadata-locked-down",
    "Instance metadata is locked down: IMDSv2 with hop limit 1 on AWS; project SSH keys blocked, no instance "
    "SSH keys and the serial port off on GCP; the Metadata Security Protocol on Azure (when enabled in config).",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[AWS_INSTANCE, AWS_LAUNCH_TEMPLATE, *GCP_MACHINES, AZ_VM, AZ_VMSS],
    clouds=("aws", "gcp", "azure"),
    check=_check_metadata,
    settings=[
        Setting("awsMaxHopLimit", integer("Highest allowed IMDSv2 response hop limit on AWS.", 1, 1)),
        Setting("gcpRequiredMetadata", {
            "type": "array", "items": {"type": "string"},
            "default": ["block-project-ssh-keys"],
            "description": "GCP metadata keys that must be 'true'."}),
        Setting("gcpForbiddenMetadata", string_list(
            "GCP metadata keys that must be absent (instance SSH keys).", ["ssh-keys", "sshKeys"])),
        Setting("azureRequireProxyAgent", boolean(
            "Require Azure's Metadata Security Protocol (securityProfile.proxyAgentSettings) in Enforce mode. "
            "Azure has no hop limit; this is its only per-VM control of the metadata service.", False)),
    ],
    remediation="AWS: metadataOptions {httpTokens: required, httpPutResponseHopLimit: 1}; GCP: metadata "
                "block-project-ssh-keys 'TRUE', no ssh-keys, serial-port-enable 'FALSE'; Azure: proxyAgentSettings.",
)


# ----------------------------------------------------------------------------- verified boot


def _check_boot(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    if res.type in GCP_MACHINES:
        shielded = get(res.props, "shieldedInstanceConfig")
        if not isinstance(shielded, Mapping):
            report("shieldedInstanceConfig is not set: Secure Boot is off")
            return
        for key in ("enableSecureBoot", "enableVtpm", "enableIntegrityMonitoring"):
            if as_bool(shielded.get(key)) is not True:
                report(f"shieldedInstanceConfig.{key} is {shielded.get(key)!r}; it must be true")
    elif res.type in (AZ_VM, AZ_VMSS):
        profile = azure_security_profile(res)
        kind = str(profile.get("securityType") or "")
        if kind.lower() not in {"trustedlaunch", "confidentialvm"}:
            report(f"securityProfile.securityType is {kind or 'unset'!r}: use TrustedLaunch")
            return
        uefi = get(profile, "uefiSettings")
        if as_bool(get(uefi, "secureBootEnabled")) is not True:
            report("securityProfile.uefiSettings.secureBootEnabled is not true")
        if as_bool(get(uefi, "vTpmEnabled")) is not True:
            report("securityProfile.uefiSettings.vTpmEnabled is not true")


verified_boot = CfcrResourcePolicy(
    "verified-boot",
    "Machines boot verified: GCP Shielded VM (Secure Boot, vTPM, integrity monitoring), Azure Trusted "
    "Launch (Secure Boot, vTPM). AWS offers no per-instance switch for it.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[*GCP_MACHINES, AZ_VM, AZ_VMSS],
    clouds=("gcp", "azure"),
    check=_check_boot,
    remediation="GCP: shieldedInstanceConfig {enableSecureBoot, enableVtpm, enableIntegrityMonitoring: true}; "
                "Azure: securityProfile {securityType: TrustedLaunch, uefiSettings {secureBootEnabled, "
                "vTpmEnabled: true}} with a Gen2 image.",
)


# ----------------------------------------------------------------------------- disks


def _aws_block_devices(res: Resource, by_default: bool) -> list[str]:
    problems: list[str] = []
    if res.type == AWS_VOLUME:
        if as_bool(res.props.get("encrypted")) is not True:
            problems.append("encrypted is not true")
        return problems
    if res.type == AWS_INSTANCE:
        root = res.props.get("rootBlockDevice")
        value = as_bool(get(root, "encrypted"))
        # an instance launched from a template gets its root volume from the (checked) template
        from_template = root is None and _from_template(res)
        if value is False or (value is None and not by_default and not from_template):
            problems.append("rootBlockDevice.encrypted is not true")
        for i, dev in enumerate(as_list(res.props.get("ebsBlockDevices"))):
            value = as_bool(get(dev, "encrypted"))
            if value is False or (value is None and not by_default):
                problems.append(f"ebsBlockDevices[{i}].encrypted is not true")
        return problems
    mappings = [m for m in as_list(res.props.get("blockDeviceMappings")) if get(m, "ebs") is not None]
    if not mappings and not by_default:
        problems.append("blockDeviceMappings declares no encrypted EBS root volume")
    for i, mapping in enumerate(mappings):
        value = as_bool(get(mapping, "ebs", "encrypted"))
        if value is False or (value is None and not by_default):
            problems.append(f"blockDeviceMappings[{i}].ebs.encrypted is not true")
    return problems


def _gcp_cmek(res: Resource) -> list[str]:
    def has_key(block: Any, *names: str) -> bool:
        return any(get(block, name, "kmsKeySelfLink") or get(block, name) for name in names)

    if res.type in (GCP_DISK, GCP_REGION_DISK):
        return [] if has_key(res.props, "diskEncryptionKey") else ["diskEncryptionKey names no KMS key"]
    if res.type == GCP_INSTANCE:
        boot = res.props.get("bootDisk")
        if not (get(boot, "kmsKeySelfLink") or get(boot, "diskEncryptionKeyRaw")):
            return ["bootDisk names no KMS key (kmsKeySelfLink)"]
        return []
    return [f"disks[{i}].diskEncryptionKey names no KMS key"
            for i, disk in enumerate(as_list(res.props.get("disks")))
            if not get(disk, "diskEncryptionKey", "kmsKeySelfLink")]


def _check_disks(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    problems: list[str] = []
    if res.type in (AWS_INSTANCE, AWS_LAUNCH_TEMPLATE, AWS_VOLUME):
        problems = _aws_block_devices(res, bool(cfg["awsEncryptionByDefault"]))
    elif res.type in (*GCP_MACHINES, GCP_DISK, GCP_REGION_DISK):
        # Google encrypts every persistent disk at rest; customer-managed keys only when asked for.
        problems = _gcp_cmek(res) if cfg["gcpRequireCustomerManagedKeys"] else []
    elif res.type in (AZ_VM, AZ_VMSS):
        if as_bool(azure_security_profile(res).get("encryptionAtHost")) is not True:
            problems = ["securityProfile.encryptionAtHost is not true: the temp disk and caches are not encrypted"]
    elif res.type == AZ_DISK:
        kind = str(get(res.props, "encryption", "type") or "")
        if cfg["azureRequireCustomerManagedKeys"] and "customerkey" not in kind.lower():
            problems = [f"encryption.type is {kind or 'unset'!r}: a customer-managed key is required"]
    for problem in problems:
        report(problem)


disks_encrypted = CfcrResourcePolicy(
    "disks-encrypted",
    "Every disk is encrypted: EBS encryption on AWS, encryption at host on Azure machines (managed disks "
    "are always encrypted at rest), and optionally customer-managed keys on GCP and Azure disks.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[AWS_INSTANCE, AWS_LAUNCH_TEMPLATE, AWS_VOLUME, *GCP_MACHINES, GCP_DISK, GCP_REGION_DISK,
                    AZ_VM, AZ_VMSS, AZ_DISK],
    clouds=("aws", "gcp", "azure"),
    check=_check_disks,
    settings=[
        Setting("awsEncryptionByDefault", boolean(
            "The AWS account turns on EBS encryption by default, so an unset 'encrypted' is accepted "
            "(an explicit false never is).", False)),
        Setting("gcpRequireCustomerManagedKeys", boolean("Require a Cloud KMS key on every GCP disk.", False)),
        Setting("azureRequireCustomerManagedKeys", boolean("Require a customer-managed key on Azure disks.", False)),
    ],
    remediation="AWS: encrypted: true on every EBS device and volume; Azure: securityProfile.encryptionAtHost.",
)


# ----------------------------------------------------------------------------- public addresses


def _azure_public_ips(res: Resource) -> list[str]:
    """Paths of the public addresses an Azure NIC, VM (inline NICs) or scale set gives machines."""
    if res.type == AZ_NIC:
        return [f"ipConfigurations[{get(c, 'name') or i}].publicIPAddress"
                for i, c in enumerate(as_list(res.props.get("ipConfigurations"))) if get(c, "publicIPAddress")]
    base = ("virtualMachineProfile", "networkProfile") if res.type == AZ_VMSS else ("networkProfile",)
    found = []
    for n, nic in enumerate(as_list(get(res.props, *base, "networkInterfaceConfigurations"))):
        for i, config in enumerate(as_list(get(nic, "ipConfigurations"))):
            if get(config, "publicIPAddressConfiguration"):
                found.append(f"{'.'.join(base)}.networkInterfaceConfigurations[{get(nic, 'name') or n}]"
                             f".ipConfigurations[{get(config, 'name') or i}].publicIPAddressConfiguration")
    return found


def _check_public_ip(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    if res.type in (AZ_VM, AZ_VMSS, AZ_NIC):
        for path in _azure_public_ips(res):
            report(f"{path} gives the machine a public address; cluster machines reach the internet through "
                   "the NAT gateway and are reached through the load balancers")
        return
    for i, nic in enumerate(as_list(res.props.get("networkInterfaces"))):
        for key in ("accessConfigs", "ipv6AccessConfigs"):
            if as_list(get(nic, key)):
                report(f"networkInterfaces[{i}].{key} gives the machine an external address; cluster machines "
                       "reach the internet through Cloud NAT and are reached through the load balancers")


no_public_ip = CfcrResourcePolicy(
    "no-public-ip",
    "Cluster machines have no public address: no accessConfigs on GCP network interfaces, no public IP on "
    "Azure network interfaces, VMs or scale sets.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[*GCP_MACHINES, AZ_VM, AZ_VMSS, AZ_NIC],
    clouds=("gcp", "azure"),
    check=_check_public_ip,
    remediation="GCP: leave networkInterfaces[].accessConfigs empty (egress through Cloud NAT); Azure: no "
                "publicIPAddress on ipConfigurations (egress through the NAT gateway).",
)
