"""What a change to a resource's inputs does at ``pulumi up``: update it in place, replace it, or
roll a node pool's machines. The providers' replace-on-change knowledge for the machines and their
disks, as the providers document it, plus the ``replaceOnChanges`` cfcr itself sets.

The SDKs do not ship their schemas' ``forceNew`` flags (pulumi_aws 7 carries only the docstrings),
so the table below is written down from the registry pages in each rule's ``source``; a type not
listed here updates in place as far as this module knows, and ``cfcr diff`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

AWS_INSTANCE = "aws:ec2/instance:Instance"
AWS_LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
AWS_GROUP = "aws:autoscaling/group:Group"
GCP_INSTANCE = "gcp:compute/instance:Instance"
GCP_TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
GCP_GROUP = "gcp:compute/instanceGroupManager:InstanceGroupManager"
AZURE_VM = "azure-native:compute:VirtualMachine"
AZURE_SCALE_SET = "azure-native:compute:VirtualMachineScaleSet"

MEMBER_TYPES = frozenset({AWS_INSTANCE, GCP_INSTANCE, AZURE_VM})
"""Machine types cfcr uses for control-plane members (named ``<cluster>-cp-<i>``)."""
POOL_GROUP_TYPES = frozenset({AWS_GROUP, GCP_GROUP, AZURE_SCALE_SET})
"""The group that runs a node pool's machines and rolls them when their template changes."""

ANY = "*"


@dataclass(frozen=True)
class Rule:
    """``replaces``: input paths whose change replaces the resource (``*``: any change);
    ``rolls``: paths whose change rolls the machines of a pool group (new template, same group)."""

    replaces: tuple[str, ...]
    source: str
    rolls: tuple[str, ...] = ()


_AWS_INSTANCE_DOC = "https://www.pulumi.com/registry/packages/aws/api-docs/ec2/instance/"
RULES: dict[str, Rule] = {
    # userData/userDataBase64 replace only with userDataReplaceOnChange (else stop/start); cfcr puts the
    # user-data on the launch template, whose new version (launchTemplate.version) replaces the
    # instance; instanceType stops and starts it. (cfcr/aws/control_plane.py: "a template change")
    AWS_INSTANCE: Rule(("ami", "availabilityZone", "subnetId", "privateIp", "keyName", "placementGroup", "tenancy",
                        "hostId", "launchTemplate", "networkInterfaces", "ebsBlockDevices", "ephemeralBlockDevices",
                        "cpuOptions", "hibernation", "enclaveOptions"), _AWS_INSTANCE_DOC),
    # every other change makes a new version of the same template
    AWS_LAUNCH_TEMPLATE: Rule(("name", "namePrefix"),
                              "https://www.pulumi.com/registry/packages/aws/api-docs/ec2/launchtemplate/"),
    AWS_GROUP: Rule(("name", "namePrefix"), "https://www.pulumi.com/registry/packages/aws/api-docs/autoscaling/group/",
                    rolls=("launchTemplate", "mixedInstancesPolicy")),
    "aws:ebs/volume:Volume": Rule(("availabilityZone", "encrypted", "kmsKeyId", "snapshotId", "outpostArn"),
                                  "https://www.pulumi.com/registry/packages/aws/api-docs/ebs/volume/"),
    "aws:ec2/volumeAttachment:VolumeAttachment": Rule(
        (ANY,), "https://www.pulumi.com/registry/packages/aws/api-docs/ec2/volumeattachment/"),
    "aws:ec2/subnetCidrReservation:SubnetCidrReservation": Rule(
        (ANY,), "https://www.pulumi.com/registry/packages/aws/api-docs/ec2/subnetcidrreservation/"),
    "aws:lb/targetGroupAttachment:TargetGroupAttachment": Rule(
        (ANY,), "https://www.pulumi.com/registry/packages/aws/api-docs/lb/targetgroupattachment/"),
    # metadata.user-data: cfcr's replace_on_changes (cfcr/gcp/control_plane.py); machineType updates
    # in place with allowStoppingForUpdate
    GCP_INSTANCE: Rule(("name", "zone", "bootDisk", "scratchDisks", "metadata.user-data", "project"),
                       "https://www.pulumi.com/registry/packages/gcp/api-docs/compute/instance/"),
    # an instance template is immutable: any change is a new template (namePrefix: created first)
    GCP_TEMPLATE: Rule((ANY,), "https://www.pulumi.com/registry/packages/gcp/api-docs/compute/instancetemplate/"),
    GCP_GROUP: Rule(("name", "zone", "project"),
                    "https://www.pulumi.com/registry/packages/gcp/api-docs/compute/instancegroupmanager/",
                    rolls=("versions",)),
    "gcp:compute/disk:Disk": Rule(("name", "zone", "type", "image", "snapshot", "physicalBlockSizeBytes", "project"),
                                  "https://www.pulumi.com/registry/packages/gcp/api-docs/compute/disk/"),
    # osProfile.customData: cfcr's replace_on_changes (cfcr/azure/control_plane.py); a new size resizes
    AZURE_VM: Rule(("vmName", "location", "resourceGroupName", "zones", "osProfile.customData",
                    "osProfile.computerName", "osProfile.adminUsername"),
                   "https://www.pulumi.com/registry/packages/azure-native/api-docs/compute/virtualmachine/"),
    AZURE_SCALE_SET: Rule(("vmScaleSetName", "location", "resourceGroupName", "zones"),
                          "https://www.pulumi.com/registry/packages/azure-native/api-docs/compute/virtualmachinescaleset/",
                          rolls=("virtualMachineProfile", "sku.name")),
    # the tls provider's resources are immutable: every argument forces a new key or certificate, so
    # a changed validity, subject or key algorithm re-issues the certificate (a CA's: a CA rotation)
    **{f"tls:index/{kind}": Rule((ANY,), "https://registry.terraform.io/providers/hashicorp/tls/latest/docs")
       for kind in ("privateKey:PrivateKey", "selfSignedCert:SelfSignedCert", "locallySignedCert:LocallySignedCert",
                    "certRequest:CertRequest")},
    "aws:iam/role:Role": Rule(("name", "namePrefix", "path"),
                              "https://www.pulumi.com/registry/packages/aws/api-docs/iam/role/"),
    "aws:iam/instanceProfile:InstanceProfile": Rule(
        ("name", "namePrefix", "path"), "https://www.pulumi.com/registry/packages/aws/api-docs/iam/instanceprofile/"),
    "aws:secretsmanager/secret:Secret": Rule(
        ("name", "namePrefix"), "https://www.pulumi.com/registry/packages/aws/api-docs/secretsmanager/secret/"),
    "aws:ec2/subnet:Subnet": Rule(("vpcId", "cidrBlock", "availabilityZone", "availabilityZoneId", "outpostArn"),
                                  "https://www.pulumi.com/registry/packages/aws/api-docs/ec2/subnet/"),
    "aws:ec2/securityGroup:SecurityGroup": Rule(
        ("name", "namePrefix", "description", "vpcId"),
        "https://www.pulumi.com/registry/packages/aws/api-docs/ec2/securitygroup/"),
    "azure-native:compute:Disk": Rule(("diskName", "location", "resourceGroupName", "zones", "creationData"),
                                      "https://www.pulumi.com/registry/packages/azure-native/api-docs/compute/disk/"),
}


def _under(path: str, prefix: str) -> bool:
    return prefix == ANY or path == prefix or path.startswith((prefix + ".", prefix + "["))


def replacing(type_: str, changed: list[str], inputs: dict[str, object] | None = None) -> list[str]:
    """The changed input paths that replace a resource of ``type_``."""
    rule = RULES.get(type_)
    if rule is None:
        return []
    hits = [p for p in changed if any(_under(p, r) for r in rule.replaces)]
    if type_ == AWS_INSTANCE and (inputs or {}).get("userDataReplaceOnChange"):
        hits += [p for p in changed if _under(p, "userData") or _under(p, "userDataBase64")]
    return hits


def rolling(type_: str, changed: list[str]) -> list[str]:
    """The changed input paths that roll the machines of a pool group of ``type_``."""
    rule = RULES.get(type_)
    return [p for p in changed if rule and any(_under(p, r) for r in rule.rolls)]


def known(type_: str) -> bool:
    """Whether this module knows the type's replacing inputs."""
    return type_ in RULES
