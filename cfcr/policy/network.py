"""Network policies: etcd only from the control plane, the API only from allowed CIDRs (and from
inside the virtual network only when an Azure cluster's API is private), no SSH
or RDP from the internet, no other ingress from the whole internet, no GCP rule from outside
without targets, and private DNS on every AWS
interface endpoint (so calls to an AWS service never leave by its public addresses).

Every cloud's firewall shape is first normalised into :class:`IngressRule` (ports, CIDR-like
sources, identity-based peers), so each policy is written once for AWS security groups and
their rules, GCP firewalls and Azure network security groups and rules.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyResource, ReportViolation

from cfcr.policy.base import CfcrResourcePolicy, CfcrStackPolicy, Reporter, Resource, Setting, string_list
from cfcr.policy.common import PRIVATE_RANGES, as_bool, as_list, as_number, get, is_world, within_any
from cfcr.policy.types import (
    AWS_SECURITY_GROUP,
    AWS_SG_INGRESS_RULE,
    AWS_SG_RULE,
    AZ_CLUSTER,
    AZ_LOAD_BALANCER,
    AZ_NSG,
    AZ_SECURITY_RULE,
    FIREWALLS,
    GCP_FIREWALL,
)

PortRange = tuple[int, int]
ALL_PORTS: tuple[PortRange, ...] = ((0, 65535),)
_ICMP = {"icmp", "icmpv6", "58", "1", "ipv6-icmp"}
_ALL_PROTOCOLS = {"-1", "all", "*"}
_INTERNAL_TAGS = {"virtualnetwork", "azureloadbalancer"}


@dataclass(frozen=True)
class Peer:
    """An identity-based source: a security group, network tag, service account or ASG."""

    kind: str
    value: str
    same_as_target: bool
    """True when the source is the very group the rule protects (e.g. AWS ``self``)."""


@dataclass(frozen=True)
class IngressRule:
    """One allow rule for inbound traffic, whatever the cloud."""

    label: str
    """Where the rule is, for messages: ``ingress[0]``, ``securityRules[allow-api]``, ..."""
    ports: tuple[PortRange, ...]
    """Inclusive TCP/UDP port ranges; ``ALL_PORTS`` for every port."""
    sources: tuple[str, ...] = ()
    """CIDRs (or Azure service tags such as ``Internet``, ``VirtualNetwork``)."""
    peers: tuple[Peer, ...] = field(default_factory=tuple)

    def covers(self, port: int) -> bool:
        """True if traffic to ``port`` matches the rule."""
        return any(lo <= port <= hi for lo, hi in self.ports)

    def covers_any(self, ports: Sequence[int]) -> list[int]:
        """The members of ``ports`` the rule lets through."""
        return [p for p in ports if self.covers(p)]

    def reaches_beyond(self, exempt: set[int]) -> bool:
        """True if the rule opens a port outside ``exempt``."""
        for lo, hi in self.ports:
            if hi - lo + 1 > len(exempt):
                return True
            if any(p not in exempt for p in range(lo, hi + 1)):
                return True
        return False

    def port_text(self) -> str:
        """``all ports`` or ``22, 2379-2380``."""
        if self.ports == ALL_PORTS:
            return "all ports"
        return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ports)


def _port(value: Any) -> int | None:
    number = as_number(value)
    return None if number is None else int(number)


def _aws_ports(protocol: Any, from_port: Any, to_port: Any) -> tuple[PortRange, ...] | None:
    proto = str(protocol if protocol is not None else "-1").lower()
    if proto in _ICMP:
        return None
    if proto in _ALL_PROTOCOLS:
        return ALL_PORTS
    lo, hi = _port(from_port), _port(to_port)
    if lo is None and hi is None:
        return ALL_PORTS
    lo = lo if lo is not None else hi
    hi = hi if hi is not None else lo
    assert lo is not None and hi is not None
    if lo < 0 or hi < 0:
        return ALL_PORTS
    return ((lo, hi),)


def _range_text(text: str) -> PortRange | None:
    text = text.strip()
    if text in {"*", ""}:
        return ALL_PORTS[0]
    lo, _, hi = text.partition("-")
    try:
        return int(lo), int(hi or lo)
    except ValueError:
        return None


def _same(a: Sequence[PolicyResource] | None, b: Sequence[PolicyResource] | None) -> bool:
    """True when two properties came from the same resources (stack validation only)."""
    if not a or not b:
        return False
    return {r.urn for r in a} == {r.urn for r in b}


def ingress_rules(type_token: str, props: Mapping[str, Any],
                  deps: Mapping[str, Sequence[PolicyResource]] | None = None) -> list[IngressRule]:
    """Every inbound allow rule of a firewall resource. ``deps`` (the property dependencies a
    stack validation has) lets a rule's source group be recognised as its own target group."""
    deps = deps or {}
    rules: list[IngressRule] = []
    if type_token == AWS_SECURITY_GROUP:
        for i, rule in enumerate(as_list(props.get("ingress"))):
            ports = _aws_ports(get(rule, "protocol"), get(rule, "fromPort"), get(rule, "toPort"))
            if ports is None:
                continue
            peers = [Peer("security group", str(g), False) for g in as_list(get(rule, "securityGroups"))]
            if as_bool(get(rule, "self")):
                peers.append(Peer("security group", "self", True))
            peers += [Peer("prefix list", str(p), False) for p in as_list(get(rule, "prefixListIds"))]
            sources = [*as_list(get(rule, "cidrBlocks")), *as_list(get(rule, "ipv6CidrBlocks"))]
            rules.append(IngressRule(f"ingress[{i}]", ports, tuple(map(str, sources)), tuple(peers)))
    elif type_token == AWS_SG_RULE:
        if str(props.get("type", "")).lower() != "ingress":
            return []
        ports = _aws_ports(props.get("protocol"), props.get("fromPort"), props.get("toPort"))
        if ports is None:
            return []
        peers = []
        if as_bool(props.get("self")):
            peers.append(Peer("security group", "self", True))
        source = props.get("sourceSecurityGroupId")
        if source:
            same = source == props.get("securityGroupId") or _same(deps.get("sourceSecurityGroupId"),
                                                                    deps.get("securityGroupId"))
            peers.append(Peer("security group", str(source), same))
        peers += [Peer("prefix list", str(p), False) for p in as_list(props.get("prefixListIds"))]
        sources = [*as_list(props.get("cidrBlocks")), *as_list(props.get("ipv6CidrBlocks"))]
        rules.append(IngressRule("rule", ports, tuple(map(str, sources)), tuple(peers)))
    elif type_token == AWS_SG_INGRESS_RULE:
        ports = _aws_ports(props.get("ipProtocol"), props.get("fromPort"), props.get("toPort"))
        if ports is None:
            return []
        peers = []
        source = props.get("referencedSecurityGroupId")
        if source:
            same = source == props.get("securityGroupId") or _same(deps.get("referencedSecurityGroupId"),
                                                                    deps.get("securityGroupId"))
            peers.append(Peer("security group", str(source), same))
        if props.get("prefixListId"):
            peers.append(Peer("prefix list", str(props["prefixListId"]), False))
        sources = [str(s) for s in (props.get("cidrIpv4"), props.get("cidrIpv6")) if s]
        rules.append(IngressRule("rule", ports, tuple(sources), tuple(peers)))
    elif type_token == GCP_FIREWALL:
        rules.extend(_gcp_rules(props))
    elif type_token == AZ_NSG:
        for i, rule in enumerate(as_list(props.get("securityRules"))):
            if isinstance(rule, Mapping):
                rules.extend(_azure_rule(rule, f"securityRules[{rule.get('name', i)}]"))
    elif type_token == AZ_SECURITY_RULE:
        rules.extend(_azure_rule(props, "rule"))
    return rules


def _gcp_rules(props: Mapping[str, Any]) -> Iterator[IngressRule]:
    if str(props.get("direction") or "INGRESS").upper() != "INGRESS" or as_bool(props.get("disabled")):
        return
    ranges = [str(r) for r in as_list(props.get("sourceRanges"))]
    tags = [str(t) for t in as_list(props.get("sourceTags"))]
    accounts = [str(a) for a in as_list(props.get("sourceServiceAccounts"))]
    if not ranges and not tags and not accounts:
        ranges = ["0.0.0.0/0"]  # GCP's default source for an ingress rule
    target_tags = {str(t) for t in as_list(props.get("targetTags"))}
    target_accounts = {str(a) for a in as_list(props.get("targetServiceAccounts"))}
    peers = [Peer("network tag", t, t in target_tags) for t in tags]
    peers += [Peer("service account", a, a in target_accounts) for a in accounts]
    for i, allow in enumerate(as_list(props.get("allows"))):
        proto = str(get(allow, "protocol") or "all").lower()
        if proto in _ICMP:
            continue
        ports_raw = [str(p) for p in as_list(get(allow, "ports"))]
        if proto in _ALL_PROTOCOLS or not ports_raw:
            ports: tuple[PortRange, ...] = ALL_PORTS
        else:
            parsed = [_range_text(p) for p in ports_raw]
            ports = tuple(p for p in parsed if p is not None) or ALL_PORTS
        yield IngressRule(f"allows[{i}]", ports, tuple(ranges), tuple(peers))


def _azure_rule(rule: Mapping[str, Any], label: str) -> Iterator[IngressRule]:
    if str(rule.get("direction", "")).lower() != "inbound" or str(rule.get("access", "")).lower() != "allow":
        return
    if str(rule.get("protocol", "*")).lower() in _ICMP:
        return
    texts = [str(p) for p in [rule.get("destinationPortRange"), *as_list(rule.get("destinationPortRanges"))] if p]
    parsed = [_range_text(t) for t in texts] or [ALL_PORTS[0]]
    ports = tuple(p for p in parsed if p is not None) or ALL_PORTS
    if (0, 65535) in ports:
        ports = ALL_PORTS
    sources = [str(s) for s in [rule.get("sourceAddressPrefix"), *as_list(rule.get("sourceAddressPrefixes"))] if s]
    targets = {str(get(a, "id")) for a in as_list(rule.get("destinationApplicationSecurityGroups"))}
    peers = [Peer("application security group", str(get(a, "id")), str(get(a, "id")) in targets)
             for a in as_list(rule.get("sourceApplicationSecurityGroups"))]
    if not sources and not peers:
        sources = ["*"]
    yield IngressRule(label, ports, tuple(sources), tuple(peers))


def _internal(source: str, extra: Sequence[str] = ()) -> bool:
    return source.strip().lower() in _INTERNAL_TAGS or within_any(source, [*PRIVATE_RANGES, *extra])


def _ints(values: Any) -> list[int]:
    return [int(v) for v in as_list(values) if as_number(v) is not None]


# ----------------------------------------------------------------------------- API


GOOGLE_LB_RANGES: tuple[str, ...] = (
    "35.191.0.0/16", "130.211.0.0/22", "209.85.152.0/22", "209.85.204.0/22",
)
"""Where Google's load-balancer health checks (and its proxy load balancers' front ends) come from;
a GCP firewall must admit them to the API port. Source: cloud.google.com/load-balancing/docs/health-check-concepts
("Probe IP ranges and firewall rules")."""


def _check_api(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    api_ports = _ints(cfg["apiPorts"])
    allowed = [str(c) for c in as_list(cfg["apiAllowedCidrs"])]
    google = GOOGLE_LB_RANGES if res.type == GCP_FIREWALL else ()
    for rule in ingress_rules(res.type, res.props):
        hit = rule.covers_any(api_ports)
        if not hit:
            continue
        for source in rule.sources:
            if is_world(source):
                report(f"{rule.label}: the API (port {hit[0]}) is open to {source}")
            elif allowed and not _internal(source, google) and not within_any(source, allowed):
                report(f"{rule.label}: the API (port {hit[0]}) is open to {source}, which is not inside the "
                       f"allowed CIDRs ({', '.join(allowed)})")


NETWORK_SETTINGS_API = [
    Setting("apiPorts", {"type": "array", "items": {"type": "integer"}, "default": [6443],
                         "description": "Ports the Kubernetes API listens on."}),
    Setting("apiAllowedCidrs", string_list(
        "Public CIDRs allowed to reach the API (private address space always is). Empty: any source but "
        "the whole internet; set it to hold every stack to the security team's list.", [])),
]

api_allowed_cidrs = CfcrResourcePolicy(
    "api-allowed-cidrs",
    "The Kubernetes API is reachable only from private networks and the allowed CIDRs.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=FIREWALLS,
    clouds=("aws", "gcp", "azure"),
    check=_check_api,
    settings=NETWORK_SETTINGS_API,
    remediation="List the operators' CIDRs in cfcr:networking.apiAllowedCidrs and in this policy's apiAllowedCidrs.",
)


# ----------------------------------------------------------------------------- SSH


def _check_ssh(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    ssh_ports = _ints(cfg["sshPorts"])
    rdp_ports = _ints(cfg["rdpPorts"])
    allowed = [str(c) for c in as_list(cfg["sshAllowedCidrs"])]
    for rule in ingress_rules(res.type, res.props):
        hit = rule.covers_any([*ssh_ports, *rdp_ports])
        if not hit:
            continue
        what = "SSH" if hit[0] in ssh_ports else "RDP"
        for source in rule.sources:
            if is_world(source) or not _internal(source, allowed):
                report(f"{rule.label}: {what} (port {hit[0]}) is open to {source} on the internet")


no_ssh_from_internet = CfcrResourcePolicy(
    "no-ssh-from-internet",
    "SSH and RDP are not reachable from the internet.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=FIREWALLS,
    clouds=("aws", "gcp", "azure"),
    check=_check_ssh,
    settings=[
        Setting("sshPorts", {"type": "array", "items": {"type": "integer"}, "default": [22],
                             "description": "Ports sshd listens on."}),
        Setting("rdpPorts", {"type": "array", "items": {"type": "integer"}, "default": [3389],
                             "description": "Remote Desktop ports (judged like SSH)."}),
        Setting("sshAllowedCidrs", string_list("Public CIDRs allowed to reach SSH and RDP (e.g. a bastion).", [])),
    ],
    remediation="Reach nodes through the cloud's session service (SSM, IAP, Bastion) or a private network.",
)


# ----------------------------------------------------------------------------- anything else from 0.0.0.0/0


def _check_world(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    exempt = {*_ints(cfg["allowedPublicPorts"]), *_ints(cfg["portsWithTheirOwnPolicy"])}
    for rule in ingress_rules(res.type, res.props):
        world = [s for s in rule.sources if is_world(s)]
        if world and rule.reaches_beyond(exempt):
            report(f"{rule.label}: {rule.port_text()} open to {', '.join(world)}")


no_world_ingress = CfcrResourcePolicy(
    "no-world-ingress",
    "No firewall rule admits traffic from 0.0.0.0/0 or ::/0 (beyond the ports explicitly allowed).",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=FIREWALLS,
    clouds=("aws", "gcp", "azure"),
    check=_check_world,
    settings=[
        Setting("allowedPublicPorts", {"type": "array", "items": {"type": "integer"}, "default": [],
                                       "description": "Ports that may be open to the whole internet."}),
        Setting("portsWithTheirOwnPolicy", {
            "type": "array", "items": {"type": "integer"}, "default": [22, 3389, 6443, 2379, 2380],
            "description": "Ports judged by api-allowed-cidrs, no-ssh-from-internet and "
                           "etcd-control-plane-only instead (so one rule is reported once)."}),
    ],
    remediation="Narrow the rule's sources to the networks that need it.",
)


# ----------------------------------------------------------------------------- a private API stays private


def _check_private_api(resources: Sequence[PolicyResource], cfg: Mapping[str, Any], report: ReportViolation) -> None:
    clusters = [r for r in resources if r.resource_type == AZ_CLUSTER]
    if not clusters or any(as_bool(c.props.get("apiPublic")) is not False for c in clusters):
        return  # a public API (or one not known yet) is api-allowed-cidrs' to judge
    api_ports = _ints(cfg["apiPorts"])
    for r in resources:
        if r.resource_type in (AZ_NSG, AZ_SECURITY_RULE):
            for rule in ingress_rules(r.resource_type, r.props):
                hit = rule.covers_any(api_ports)
                outside = [s for s in rule.sources if not _internal(s)]
                if hit and outside:
                    report(f"{rule.label}: the API (port {hit[0]}) is open to {', '.join(outside)}, outside the "
                           "virtual network, but the cluster's apiPublic is false", r.urn)
        elif r.resource_type == AZ_LOAD_BALANCER:
            public = {str(get(f, "name")) for f in as_list(r.props.get("frontendIPConfigurations"))
                      if get(f, "publicIPAddress") is not None or get(f, "publicIPPrefix") is not None}
            for i, rule in enumerate(as_list(r.props.get("loadBalancingRules"))):
                port = _port(get(rule, "frontendPort"))
                frontend = str(get(rule, "frontendIPConfiguration", "id") or "").rsplit("/", 1)[-1]
                # a rule that names no frontend (not known yet) is judged by the public ones there are
                if public and (port in api_ports or port == 0) and (frontend in public or not frontend):
                    report(f"loadBalancingRules[{i}] forwards the API (port {port}) from a public frontend, "
                           "but the cluster's apiPublic is false", r.urn)


api_private_unless_public = CfcrStackPolicy(
    "api-private-unless-public",
    "When the Azure cluster's API is private (apiPublic false), no NSG rule admits a source from outside "
    "the virtual network to it and no public load-balancer frontend forwards it.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=(AZ_CLUSTER, AZ_NSG, AZ_SECURITY_RULE, AZ_LOAD_BALANCER),
    clouds=("azure",),
    check=_check_private_api,
    settings=[NETWORK_SETTINGS_API[0]],
    remediation="Keep the API's NSG rules to VirtualNetwork, AzureLoadBalancer and private ranges, and its load "
                "balancer internal, or set cfcr:networking.apiPublic with apiAllowedCidrs.",
)


# ----------------------------------------------------------------------------- GCP rules without targets


def _check_targets(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    if res.type != GCP_FIREWALL:
        return
    if as_list(res.props.get("targetTags")) or as_list(res.props.get("targetServiceAccounts")):
        return
    for rule in ingress_rules(res.type, res.props):
        outside = [s for s in rule.sources if not _internal(s)]
        if outside:
            report(f"{rule.label}: {rule.port_text()} open to {', '.join(outside)} on every instance of the "
                   "network (no targetServiceAccounts or targetTags)")


gcp_firewall_targets = CfcrResourcePolicy(
    "gcp-firewall-targets",
    "A GCP firewall rule that admits sources outside private address space names its targets (service "
    "accounts or tags): a rule without targets applies to every instance of the network.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[GCP_FIREWALL],
    clouds=("gcp",),
    check=_check_targets,
    remediation="Set targetServiceAccounts (cfcr targets its rules by service account) on the rule.",
)


# ----------------------------------------------------------------------------- etcd


def etcd_findings(type_token: str, props: Mapping[str, Any], cfg: Mapping[str, Any],
                  deps: Mapping[str, Sequence[PolicyResource]] | None = None) -> list[str]:
    """Why a firewall resource lets something other than the control plane reach etcd."""
    etcd_ports = _ints(cfg["etcdPorts"])
    allowed = [str(c) for c in as_list(cfg["etcdAllowedCidrs"])]
    found: list[str] = []
    for rule in ingress_rules(type_token, props, deps):
        hit = rule.covers_any(etcd_ports)
        if not hit:
            continue
        where = f"{rule.label}: etcd (port {', '.join(map(str, hit))})"
        for source in rule.sources:
            if not within_any(source, allowed):
                found.append(f"{where} is open to {source}")
        for peer in rule.peers:
            if not peer.same_as_target:
                found.append(f"{where} is open to {peer.kind} {peer.value}, not the control plane's own group")
    return found


def _check_etcd(resources: Sequence[PolicyResource], cfg: Mapping[str, Any], report: ReportViolation) -> None:
    for r in resources:
        if r.resource_type in FIREWALLS:
            for message in etcd_findings(r.resource_type, r.props, cfg, r.property_dependencies):
                report(message, r.urn)


etcd_control_plane_only = CfcrStackPolicy(
    "etcd-control-plane-only",
    "etcd's client and peer ports admit only the control plane itself.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=FIREWALLS,
    clouds=("aws", "gcp", "azure"),
    check=_check_etcd,
    settings=[
        Setting("etcdPorts", {"type": "array", "items": {"type": "integer"}, "default": [2379, 2380],
                              "description": "etcd client and peer ports."}),
        Setting("etcdAllowedCidrs", string_list(
            "CIDRs that hold only control-plane nodes (e.g. their own subnets); other CIDR sources fail.", [])),
    ],
    remediation="Open etcd ports only from the control plane's own group (AWS self / same security group, "
                "GCP source tags or service accounts equal to the targets, Azure the same application security "
                "group) or from etcdAllowedCidrs.",
)


# ----------------------------------------------------------------------------- private endpoints

AWS_VPC_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"


def _check_private_dns(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    # the provider's default type is Gateway (no DNS of its own); an Interface endpoint's private
    # DNS is off unless set
    if str(res.props.get("vpcEndpointType") or "Gateway").lower() != "interface":
        return
    enabled = as_bool(res.props.get("privateDnsEnabled"))
    if enabled is not True:
        report(f"interface endpoint for {res.props.get('serviceName') or 'a service'} has privateDnsEnabled "
               f"{'unset' if enabled is None else 'false'}: clients calling the service's usual name reach its "
               f"public addresses instead (through a NAT, or not at all)")


private_endpoints_private_dns = CfcrResourcePolicy(
    "private-endpoints-private-dns",
    "Every AWS interface VPC endpoint has private DNS on, so the service's usual name resolves to it inside the VPC.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=(AWS_VPC_ENDPOINT,),
    clouds=("aws",),
    check=_check_private_dns,
    remediation="Set privateDnsEnabled: true on the endpoint (the VPC needs DNS support and DNS hostnames on).",
)
