"""What a render builds that costs money, counted from its resources.json rows, per cloud: machines
(members at one each, node pools at their size at creation), their disks, load balancers, NAT,
public addresses, secrets, keys and DNS zones. Each count names the price key it is billed under
(cfcr/review/prices/<cloud>.yaml) and the resource types it accounts for."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cfcr.assets.refs import walk
from typing import Any

Row = dict[str, Any]

AZURE_PREMIUM_TIERS = ((4, "P1"), (8, "P2"), (16, "P3"), (32, "P4"), (64, "P6"), (128, "P10"), (256, "P15"),
                       (512, "P20"), (1024, "P30"), (2048, "P40"), (4096, "P50"))
"""Premium SSD tiers by size in GiB: a disk is billed as the smallest tier that holds it."""


@dataclass
class Count:
    """``quantity`` of price ``key`` (machines, GiB, addresses...) for ``what``, from ``resources``."""

    key: str
    quantity: float
    what: str
    resources: list[str] = field(default_factory=list)
    spot: bool = False


def _num(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _strings(value: Any) -> Iterator[str]:
    return (node for node in walk(value) if isinstance(node, str))


ONE_EACH: dict[str, tuple[str, str]] = {
    "aws:ec2/natGateway:NatGateway": ("nat-gateway", "NAT gateway"),
    "aws:ec2/eip:Eip": ("public-ipv4", "elastic IP"),
    "aws:secretsmanager/secret:Secret": ("secret", "Secrets Manager secret"),
    "aws:kms/key:Key": ("kms-key", "KMS key"),
    "aws:route53/zone:Zone": ("dns-zone", "Route53 hosted zone"),
    "gcp:secretmanager/secretVersion:SecretVersion": ("secret-version", "Secret Manager version"),
    "gcp:dns/managedZone:ManagedZone": ("dns-zone", "Cloud DNS zone"),
    "azure-native:network:NatGateway": ("nat-gateway", "NAT gateway"),
    "azure-native:network:PublicIPAddress": ("public-ipv4", "public IP"),
    "azure-native:privatedns:PrivateZone": ("dns-zone", "private DNS zone"),
}
"""Types priced one unit each: resource type -> (price key, what it is)."""


def _one_each(r: dict[str, Any]) -> list[Count]:
    """The row as one unit of its :data:`ONE_EACH` price (empty for another type)."""
    single = ONE_EACH.get(r["type"])
    return [Count(single[0], 1, single[1], [r["name"]])] if single else []


def _pool_size(inputs: dict[str, Any], key: str) -> float:
    return _num(inputs.get(key), _num(inputs.get("minSize")))


def aws(rows: list[Row]) -> list[Count]:
    templates = {r["id"]: r for r in rows if r["type"] == "aws:ec2/launchTemplate:LaunchTemplate"}
    out: list[Count] = []

    def machines(template: Row | None, n: float, what: str, name: str, type_override: str | None, spot: bool) -> None:
        inputs = (template or {}).get("inputs") or {}
        size = type_override or inputs.get("instanceType") or "unknown"
        out.append(Count(f"instance/{size}", n, what, [name], spot))
        for device in inputs.get("blockDeviceMappings") or []:
            ebs = device.get("ebs") or {}
            out.append(Count(f"disk/{ebs.get('volumeType', 'gp2')}", n * _num(ebs.get("volumeSize"), 8), f"{what}: root disks",
                             [name]))
        if (inputs.get("monitoring") or {}).get("enabled"):
            out.append(Count("monitoring/detailed", n, f"{what}: detailed monitoring", [name]))

    for r in rows:
        i, name, t = r.get("inputs") or {}, r["name"], r["type"]
        out += _one_each(r)
        if t == "aws:ec2/instance:Instance":
            lt = templates.get((i.get("launchTemplate") or {}).get("id"))
            machines(lt, 1, "control-plane member" if "-cp-" in name else "instance", name, i.get("instanceType"), False)
        elif t == "aws:autoscaling/group:Group":
            mixed = i.get("mixedInstancesPolicy") or {}
            spec = (mixed.get("launchTemplate") or {})
            lt_id = (i.get("launchTemplate") or {}).get("id") or (spec.get("launchTemplateSpecification") or {}).get(
                "launchTemplateId")
            override = next((o.get("instanceType") for o in spec.get("overrides") or [] if o.get("instanceType")), None)
            spot = mixed != {} and _num((mixed.get("instancesDistribution") or {}).get(
                "onDemandPercentageAboveBaseCapacity"), 100) == 0
            machines(templates.get(lt_id), _pool_size(i, "desiredCapacity"), f"node pool {name}", name, override, spot)
        elif t == "aws:ebs/volume:Volume":
            out.append(Count(f"disk/{i.get('type', 'gp2')}", _num(i.get("size")), "volume", [name]))
        elif t == "aws:lb/loadBalancer:LoadBalancer":
            out.append(Count(f"load-balancer/{i.get('loadBalancerType', 'application')}", 1, "load balancer", [name]))
            if not i.get("internal"):
                zones = len(i.get("subnets") or i.get("subnetMappings") or [])
                out.append(Count("public-ipv4", zones, "internet-facing load balancer, one per zone", [name]))
        elif t == "aws:ec2/vpcEndpoint:VpcEndpoint" and i.get("vpcEndpointType") == "Interface":
            out.append(Count("vpc-endpoint/interface", len(i.get("subnetIds") or []), "interface endpoint, per zone",
                             [name]))
    return out


AWS_TYPES = frozenset({"aws:ec2/instance:Instance", "aws:autoscaling/group:Group", "aws:ebs/volume:Volume",
                       "aws:ec2/natGateway:NatGateway", "aws:ec2/eip:Eip", "aws:lb/loadBalancer:LoadBalancer",
                       "aws:ec2/vpcEndpoint:VpcEndpoint", "aws:secretsmanager/secret:Secret", "aws:kms/key:Key",
                       "aws:route53/zone:Zone", "aws:ec2/launchTemplate:LaunchTemplate"})


def gcp(rows: list[Row]) -> list[Count]:
    templates = [r for r in rows if r["type"] == "gcp:compute/instanceTemplate:InstanceTemplate"]
    out: list[Count] = []
    vms = 0.0
    rules = [r["name"] for r in rows if r["type"] == "gcp:compute/forwardingRule:ForwardingRule"]
    for r in rows:
        i, name, t = r.get("inputs") or {}, r["name"], r["type"]
        out += _one_each(r)
        if t == "gcp:compute/instance:Instance":
            spot = (i.get("scheduling") or {}).get("provisioningModel") == "SPOT"
            out.append(Count(f"instance/{str(i.get('machineType')).rsplit('/', 1)[-1]}", 1,
                             "control-plane member" if "-cp-" in name else "instance", [name], spot))
            disk = (i.get("bootDisk") or {}).get("initializeParams") or {}
            out.append(Count(f"disk/{disk.get('type', 'pd-standard')}", _num(disk.get("size"), 10), "boot disk", [name]))
            vms += 1
        elif t == "gcp:compute/instanceGroupManager:InstanceGroupManager":
            refs = set(_strings(i.get("versions")))
            template = next((tp for tp in templates if refs & (set(_strings(tp.get("outputs"))) | {tp.get("id")})), None)
            ti = (template or {}).get("inputs") or {}
            n = _num(i.get("targetSize"))
            spot = (ti.get("scheduling") or {}).get("provisioningModel") == "SPOT"
            pool = (template or {}).get("name", name)
            out.append(Count(f"instance/{str(ti.get('machineType', 'unknown')).rsplit('/', 1)[-1]}", n,
                             f"node pool {pool}", [name], spot))
            for disk in ti.get("disks") or []:
                out.append(Count(f"disk/{disk.get('diskType', 'pd-standard')}", n * _num(disk.get("diskSizeGb"), 10),
                                 f"node pool {pool}: disks", [name]))
            vms += n
        elif t == "gcp:compute/disk:Disk":
            out.append(Count(f"disk/{i.get('type', 'pd-standard')}", _num(i.get("size"), 10), "disk", [name]))
        elif t == "gcp:compute/address:Address" and i.get("addressType", "EXTERNAL") == "EXTERNAL":
            out.append(Count("public-ipv4", 1, "external address", [name]))
    if rules:
        out.append(Count("forwarding-rules", 1, f"forwarding rules (the first 5 of {len(rules)})", rules))
        if len(rules) > 5:
            out.append(Count("forwarding-rule-extra", len(rules) - 5, "forwarding rules beyond 5", rules[5:]))
    for r in rows:
        if r["type"] == "gcp:compute/routerNat:RouterNat":
            i = r.get("inputs") or {}
            out.append(Count("nat-gateway", vms, "Cloud NAT, per VM using it", [r["name"]]))
            ips = len(i.get("natIps") or []) or 1
            out.append(Count("nat-ip", ips, "Cloud NAT address(es)", [r["name"]]))
    return out


GCP_TYPES = frozenset({"gcp:compute/instance:Instance", "gcp:compute/instanceGroupManager:InstanceGroupManager",
                       "gcp:compute/disk:Disk", "gcp:compute/address:Address", "gcp:compute/forwardingRule:ForwardingRule",
                       "gcp:secretmanager/secretVersion:SecretVersion", "gcp:dns/managedZone:ManagedZone",
                       "gcp:compute/routerNat:RouterNat", "gcp:compute/instanceTemplate:InstanceTemplate"})


def premium_tier(size_gb: float) -> str:
    """The Premium SSD tier a disk of ``size_gb`` is billed as."""
    return next((tier for limit, tier in AZURE_PREMIUM_TIERS if size_gb <= limit), "P50+")


def _azure_disk(account: str, size: float) -> str:
    return f"disk/{account}/{premium_tier(size)}" if account.startswith("Premium") else f"disk/{account}"


def azure(rows: list[Row]) -> list[Count]:
    out: list[Count] = []
    for r in rows:
        i, name, t = r.get("inputs") or {}, r["name"], r["type"]
        out += _one_each(r)
        if t == "azure-native:compute:VirtualMachine":
            spot = i.get("priority") == "Spot"
            out.append(Count(f"instance/{(i.get('hardwareProfile') or {}).get('vmSize')}", 1,
                             "control-plane member" if "-cp-" in name else "virtual machine", [name], spot))
            disk = (i.get("storageProfile") or {}).get("osDisk") or {}
            account = (disk.get("managedDisk") or {}).get("storageAccountType", "Premium_LRS")
            out.append(Count(_azure_disk(account, _num(disk.get("diskSizeGB"), 30)), 1, "OS disk", [name]))
        elif t == "azure-native:compute:VirtualMachineScaleSet":
            sku = i.get("sku") or {}
            profile = i.get("virtualMachineProfile") or {}
            n = _num(sku.get("capacity"))
            out.append(Count(f"instance/{sku.get('name')}", n, f"node pool {name}", [name],
                             profile.get("priority") == "Spot"))
            disk = (profile.get("storageProfile") or {}).get("osDisk") or {}
            account = (disk.get("managedDisk") or {}).get("storageAccountType", "Premium_LRS")
            out.append(Count(_azure_disk(account, _num(disk.get("diskSizeGB"), 30)), n, f"node pool {name}: OS disks",
                             [name]))
        elif t == "azure-native:compute:Disk":
            out.append(Count(_azure_disk((i.get("sku") or {}).get("name", "Premium_LRS"), _num(i.get("diskSizeGB"))), 1,
                             "disk", [name]))
        elif t == "azure-native:network:LoadBalancer":
            out.append(Count(f"load-balancer/{str((i.get('sku') or {}).get('name', 'Standard')).lower()}", 1,
                             "load balancer", [name]))
    return out


AZURE_TYPES = frozenset({"azure-native:compute:VirtualMachine", "azure-native:compute:VirtualMachineScaleSet",
                         "azure-native:compute:Disk", "azure-native:network:LoadBalancer",
                         "azure-native:network:NatGateway", "azure-native:network:PublicIPAddress",
                         "azure-native:privatedns:PrivateZone"})

COUNTERS: dict[str, tuple[Callable[[list[Row]], list[Count]], frozenset[str]]] = {
    "aws": (aws, AWS_TYPES), "gcp": (gcp, GCP_TYPES), "azure": (azure, AZURE_TYPES)}
"""Per cloud: the counter and the resource types it accounts for."""
