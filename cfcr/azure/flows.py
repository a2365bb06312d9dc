"""How the flow check reads Azure's rendered network (:mod:`cfcr.flows`).

From the render's rows (type, name, ``id``, ``inputs``, ``outputs``); a reference is an ARM id
or, under the mock runtime, the row's ``id``, and an ARM id is matched by its last segment to the
resource cfcr named so:

- **machines**: control-plane VMs (tag ``cfcr-member``) with their NICs (``NetworkInterface``
  rows, or NIC configurations inside the VM) and pools' scale sets (tag ``cfcr-pool``, their NIC
  configurations); a machine's groups are the application security groups of its IP
  configuration, the network security group that filters it (its NIC's, else its subnet's) and
  the virtual network (:data:`VNET_GROUP`);
- **rules**: ``SecurityRule`` rows and rules inline in a ``NetworkSecurityGroup``, plus Azure's
  default rules, decided in priority order: an allow rule keeps what no rule of higher priority
  denies (ports and protocols are cut out of it; a deny whose sources only partly overlap the
  allow's is not cut, so the allow is read wider than it is). A rule for ``*`` (or the virtual
  network) applies to every machine its security group filters; a rule for application security
  groups to their members. ``AzureLoadBalancer`` is 168.63.129.16, ``Internet`` and ``*`` every
  address, ``VirtualNetwork`` the virtual network's ranges and every machine in it. A machine
  filtered by two security groups (its subnet's and its NIC's) is read with its NIC's;
- **routes**: a subnet with a NAT gateway leaves through it, with its public IP (an address Azure
  assigns: unknown to the render); a subnet without one and with ``defaultOutboundAccess`` off has
  no way out; otherwise the render cannot tell (default outbound access, retired for new networks);
- **load balancers**: one per frontend IP configuration: internal (a subnet) or public (a public
  IP), its load-balancing rules, backend pools (members join through their NICs' IP
  configurations) and probes; Azure's load balancers keep client addresses, have no security
  group of their own, and probe from 168.63.129.16;
- **names**: A records of private DNS zones linked to the virtual network;
- **pool health**: a scale set's ``healthProbe`` (a load balancer probe); the Application Health
  extension checks from inside the VM, with no network traffic;
- **Services' load balancers** (the cloud controller manager's, not in the render) probe from
  168.63.129.16 as well; the cluster's rules must admit them (cfcr's final deny overrides
  ``AllowAzureLoadBalancerInBound``, and the controller's rules admit only the Services' clients).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cfcr.azure.security import LOAD_BALANCER_PROBE_ADDRESS
from cfcr.azure.tags import MEMBER_TAG, POOL_TAG
from cfcr.flows.network import (
    Address,
    HealthCheck,
    Listener,
    LoadBalancer,
    Machine,
    Network,
    PoolHealth,
    Resolution,
    Route,
    Rule,
    Subnet,
)

Row = Mapping[str, Any]

VNET = "azure-native:network:VirtualNetwork"
SUBNET = "azure-native:network:Subnet"
NAT = "azure-native:network:NatGateway"
PUBLIC_IP = "azure-native:network:PublicIPAddress"
NSG = "azure-native:network:NetworkSecurityGroup"
RULE = "azure-native:network:SecurityRule"
ASG = "azure-native:network:ApplicationSecurityGroup"
NIC = "azure-native:network:NetworkInterface"
LB = "azure-native:network:LoadBalancer"
VM = "azure-native:compute:VirtualMachine"
VMSS = "azure-native:compute:VirtualMachineScaleSet"
ZONE = "azure-native:privatedns:PrivateZone"
LINK = "azure-native:privatedns:VirtualNetworkLink"
RECORD = "azure-native:privatedns:PrivateRecordSet"

NAME_KEYS = {
    VNET: "virtualNetworkName", SUBNET: "subnetName", NAT: "natGatewayName", PUBLIC_IP: "publicIpAddressName",
    NSG: "networkSecurityGroupName", RULE: "securityRuleName", ASG: "applicationSecurityGroupName",
    NIC: "networkInterfaceName", LB: "loadBalancerName", VM: "vmName", VMSS: "vmScaleSetName",
    ZONE: "privateZoneName",
}
"""The input that holds each type's explicit name."""
PROBE_SOURCES = (f"{LOAD_BALANCER_PROBE_ADDRESS}/32",)
VNET_GROUP = "VirtualNetwork"
"""Every machine's group: what a rule naming the ``VirtualNetwork`` tag admits."""
ANYWHERE = "0.0.0.0/0"
EVERY = ("*", "any", "internet", ANYWHERE)
DEFAULT_RULES = (
    ("AllowVnetInBound", 65000, "Inbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    ("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "AzureLoadBalancer", "*"),
    ("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*"),
    ("AllowVnetOutBound", 65000, "Outbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    ("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", "Internet"),
    ("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*"),
)
"""Azure's default rules of every security group (name, priority, direction, access, source, destination)."""
PROTOCOLS = ("tcp", "udp", "icmp")


def _get(row: Row | None, key: str) -> Any:
    """An input, else the provider's output of that name."""
    if row is None:
        return None
    inputs = row.get("inputs") or {}
    value = inputs.get(key) if isinstance(inputs, Mapping) else None
    if value is None:
        outputs = row.get("outputs") or {}
        value = outputs.get(key) if isinstance(outputs, Mapping) else None
    return value


def _ref(value: Any) -> str | None:
    """A reference: a ``{"id": ...}`` sub-resource or an id."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return str(value) if value else None


def _short(reference: str) -> str:
    return reference.rstrip("/").rsplit("/", 1)[-1]


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _within(inner: str, outers: Iterable[str]) -> bool:
    a = _cidr(inner)
    for o in outers:
        b = _cidr(o)
        if a is not None and b is not None and a.version == b.version and a.subnet_of(b):  # type: ignore[arg-type]
            return True
    return False


@dataclass(frozen=True)
class _Nic:
    """What the check needs of one NIC (or NIC configuration): its first IP configuration's."""

    subnet: str | None
    address: str | None
    asgs: tuple[str, ...]
    nsg: str | None
    pools: tuple[str, ...]
    """Backend pool references."""
    public: bool


@dataclass(frozen=True)
class _Piece:
    """A part of an NSG rule: one protocol, one port span, one source and one destination."""

    name: str
    nsg: str
    priority: int
    direction: str
    allow: bool
    protocol: str
    lo: int
    hi: int
    source: str
    destination: str


@dataclass
class _Frontend:
    lb: Row
    name: str
    subnet: str | None
    address: str | None
    public: bool
    listeners: list[Listener] = field(default_factory=list)


class _Reader:
    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = rows
        self.by_id: dict[str, Row] = {}
        for r in rows:
            if str(r.get("type", "")).startswith("azure-native:") and r.get("id"):
                self.by_id.setdefault(str(r["id"]), r)
        vnets = self.of(VNET)
        self.vnet = vnets[0] if vnets else None
        space = _get(self.vnet, "addressSpace") or {}
        self.cidrs: tuple[str, ...] = tuple(str(c) for c in _list(space.get("addressPrefixes")))

    def of(self, *types: str) -> list[Row]:
        return [r for r in self.rows if r.get("type") in types]

    def name(self, row: Row) -> str:
        return str(_get(row, NAME_KEYS.get(str(row.get("type")), "name")) or _get(row, "name") or row.get("name"))

    def find(self, reference: Any, *types: str) -> Row | None:
        ref = _ref(reference)
        if ref is None:
            return None
        row = self.by_id.get(ref)
        if row is None:
            matches = [r for r in self.of(*types) if self.name(r) == _short(ref)]
            row = matches[0] if len(matches) == 1 else None
        return row if row is not None and (not types or row.get("type") in types) else None

    def key(self, reference: Any, *types: str) -> str | None:
        """The row id a reference resolves to, else the reference itself."""
        row = self.find(reference, *types)
        return str(row["id"]) if row is not None else _ref(reference)

    # ---------------------------------------------------------------- subnets

    def subnets(self) -> dict[str, Subnet]:
        out: dict[str, Subnet] = {}
        for r in self.of(SUBNET):
            cidr = _get(r, "addressPrefix") or (_list(_get(r, "addressPrefixes")) or [None])[0]
            label = f"subnet {self.name(r)} ({cidr})"
            out[str(r["id"])] = Subnet(id=str(r["id"]), label=label, cidr=str(cidr) if cidr else None,
                                       internet=self._route(r))
        return out

    def _route(self, subnet: Row) -> Route:
        nat_ref = _ref(_get(subnet, "natGateway"))
        if nat_ref:
            nat = self.find(nat_ref, NAT)
            if nat is None:
                return Route("unknown", f"NAT gateway {nat_ref} is not in the render")
            ips = [self.find(p, PUBLIC_IP) for p in _list(_get(nat, "publicIpAddresses"))]
            known = [str(_get(p, "ipAddress")) for p in ips if p is not None and _get(p, "ipAddress")]
            names = ", ".join(self.name(p) for p in ips if p is not None) or "none in the render"
            if not ips and not _list(_get(nat, "publicIpPrefixes")):
                return Route("none", f"NAT gateway {self.name(nat)} has no public IP")
            source = Address(f"the public IP of NAT gateway {self.name(nat)} ({', '.join(known) or names})",
                             tuple(f"{a}/32" for a in known), public=True, cloud_assigned=not known)
            return Route("nat", f"NAT gateway {self.name(nat)}", source)
        if _get(subnet, "defaultOutboundAccess") is False:
            return Route("none", "no NAT gateway, and default outbound access is off")
        return Route("unknown", "no NAT gateway; whether Azure's default outbound access (retired for new "
                                "virtual networks) still serves the subnet is not in the render")

    # ---------------------------------------------------------------- machines

    def _ip_config(self, configs: Any, nsg: str | None) -> _Nic:
        ipc = next((c for c in _list(configs) if isinstance(c, Mapping) and c.get("primary")), None) or next(
            (c for c in _list(configs) if isinstance(c, Mapping)), {})
        subnet = self.key(ipc.get("subnet"), SUBNET)
        asgs = tuple(k for k in (self.key(a, ASG) for a in _list(ipc.get("applicationSecurityGroups"))) if k)
        pools = tuple(p for p in (_ref(b) for b in _list(ipc.get("loadBalancerBackendAddressPools"))) if p)
        public = bool(ipc.get("publicIPAddress") or ipc.get("publicIPAddressConfiguration"))
        if nsg is None and subnet is not None:
            nsg = self.key(_get(self.find(subnet, SUBNET), "networkSecurityGroup"), NSG)
        return _Nic(subnet=subnet, address=ipc.get("privateIPAddress"), asgs=asgs, nsg=nsg, pools=pools,
                    public=public)

    def _nics_of(self, profile: Any) -> list[_Nic]:
        """The NICs of a VM's or scale set's network profile (referenced, or configured inline)."""
        profile = profile if isinstance(profile, Mapping) else {}
        out: list[_Nic] = []
        for ref in _list(profile.get("networkInterfaces")):
            nic = self.find(ref, NIC)
            if nic is not None:
                out.append(self._ip_config(_get(nic, "ipConfigurations"),
                                           self.key(_get(nic, "networkSecurityGroup"), NSG)))
        for conf in _list(profile.get("networkInterfaceConfigurations")):
            if isinstance(conf, Mapping):
                out.append(self._ip_config(conf.get("ipConfigurations"),
                                           self.key(conf.get("networkSecurityGroup"), NSG)))
        return out

    def machines(self) -> tuple[list[Machine], dict[str, list[str]]]:
        """The machines, and each backend pool reference's members (by member name)."""
        out: list[Machine] = []
        pools: dict[str, list[str]] = {}
        for r in self.of(VM):
            member = (_get(r, "tags") or {}).get(MEMBER_TAG)
            nics = self._nics_of(_get(r, "networkProfile")) if member else []
            if not nics:
                continue
            nic = nics[0]
            for p in nic.pools:
                pools.setdefault(p, []).append(str(member))
            out.append(Machine(label=f"virtual machine {self.name(r)}", groups=self._groups(nic),
                               subnets=(nic.subnet,) if nic.subnet else (), address=nic.address,
                               member=str(member), public_address=nic.public))
        for r in self.of(VMSS):
            pool = (_get(r, "tags") or {}).get(POOL_TAG)
            profile = (_get(r, "virtualMachineProfile") or {}).get("networkProfile")
            nics = self._nics_of(profile) if pool else []
            if not nics:
                continue
            nic = nics[0]
            out.append(Machine(label=f"pool {pool} (scale set {self.name(r)})", groups=self._groups(nic),
                               subnets=(nic.subnet,) if nic.subnet else (), pool=str(pool), public_address=nic.public))
        return out, pools

    @staticmethod
    def _groups(nic: _Nic) -> frozenset[str]:
        return frozenset([*nic.asgs, *([nic.nsg] if nic.nsg else []), VNET_GROUP])

    # ---------------------------------------------------------------- rules

    def _pieces(self) -> list[_Piece]:
        raw: list[tuple[str, str, Mapping[str, Any]]] = []  # (nsg id, rule name, fields)
        nsgs = self.of(NSG)
        for n in nsgs:
            for inline in _list(_get(n, "securityRules")):
                if isinstance(inline, Mapping):
                    raw.append((str(n["id"]), str(inline.get("name")), inline))
            for name, priority, direction, access, source, destination in DEFAULT_RULES:
                raw.append((str(n["id"]), f"Azure's default rule {name}", {
                    "priority": priority, "direction": direction, "access": access, "protocol": "*",
                    "sourceAddressPrefix": source, "destinationAddressPrefix": destination,
                    "destinationPortRange": "*"}))
        for r in self.of(RULE):
            nsg = self.find(_get(r, "networkSecurityGroupName"), NSG)
            if nsg is not None:
                raw.append((str(nsg["id"]), self.name(r), {**(r.get("outputs") or {}), **(r.get("inputs") or {})}))
        out: list[_Piece] = []
        for nsg_id, name, f in raw:
            protocol = str(f.get("protocol") or "*").lower()
            protocol = "all" if protocol in ("*", "all") else protocol
            spans: list[tuple[int, int]] = []
            for p in [f.get("destinationPortRange"), *_list(f.get("destinationPortRanges"))]:
                if p is None:
                    continue
                first, _, last = str(p).partition("-")
                lo, hi = (0, 65535) if str(p) == "*" else (_int(first), _int(last or first))
                if lo is not None and hi is not None:
                    spans.append((lo, hi))
            sources = self._endpoints(f, "source")
            destinations = self._endpoints(f, "destination")
            for lo, hi in spans or [(0, 65535)]:
                for s in sources:
                    for d in destinations:
                        out.append(_Piece(name, nsg_id, _int(f.get("priority")) or 0, str(f.get("direction")),
                                          str(f.get("access")).lower() == "allow", protocol, lo, hi, s, d))
        return out

    def _endpoints(self, f: Mapping[str, Any], side: str) -> list[str]:
        """A rule's sources or destinations: ``asg:<id>`` or an address prefix or service tag."""
        out = [f"asg:{self.key(a, ASG)}" for a in _list(f.get(f"{side}ApplicationSecurityGroups"))]
        prefixes = [f.get(f"{side}AddressPrefix"), *_list(f.get(f"{side}AddressPrefixes"))]
        out += [str(p) for p in prefixes if p]
        return out or ["*"]

    def _covers(self, deny: str, other: str) -> bool:
        """Does a deny's source (destination) ``deny`` hold every address of ``other``?"""
        d, o = deny.lower(), other.lower()
        if d in ("*", "any", ANYWHERE) or d == o:
            return True
        if d == "virtualnetwork":
            return o.startswith("asg:") or (bool(self.cidrs) and _within(o, self.cidrs))
        if d == "internet":
            net = _cidr(o)
            return net is not None and net.is_global
        if d == "azureloadbalancer":
            return _within(o, PROBE_SOURCES)
        return _cidr(d) is not None and _within(o, [d])

    @staticmethod
    def _cut(piece: _Piece, deny: _Piece) -> list[_Piece]:
        """``piece`` less what ``deny`` (same sources and destinations) denies of its ports."""
        if deny.protocol != "all" and piece.protocol == "all":
            return [q for p in PROTOCOLS for q in _Reader._cut(
                _Piece(**{**piece.__dict__, "protocol": p}), deny)]
        if deny.protocol not in ("all", piece.protocol):
            return [piece]
        if piece.protocol == "icmp" or piece.protocol == "all":
            return []  # the deny covers every protocol (or ICMP as a whole): nothing is left
        left = []
        if piece.lo < deny.lo:
            left.append(_Piece(**{**piece.__dict__, "hi": min(piece.hi, deny.lo - 1)}))
        if piece.hi > deny.hi:
            left.append(_Piece(**{**piece.__dict__, "lo": max(piece.lo, deny.hi + 1)}))
        return left if (piece.lo <= deny.hi and deny.lo <= piece.hi) else [piece]

    def effective(self) -> list[_Piece]:
        """The allow pieces no deny of higher priority takes away."""
        pieces = self._pieces()
        out: list[_Piece] = []
        for allow in (p for p in pieces if p.allow):
            alive = [allow]
            denies = sorted((p for p in pieces if not p.allow and p.nsg == allow.nsg and p.direction == allow.direction
                             and p.priority < allow.priority), key=lambda p: p.priority)
            for deny in denies:
                if not (self._covers(deny.source, allow.source) and self._covers(deny.destination, allow.destination)):
                    continue
                alive = [q for p in alive for q in self._cut(p, deny)]
            out += alive
        return out

    def _peer(self, token: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(cidrs, peer groups) a source (or destination) stands for."""
        low = token.lower()
        if token.startswith("asg:"):
            return (), (token[4:],)
        if low in EVERY:
            return (ANYWHERE,), ()
        if low == "virtualnetwork":
            return self.cidrs, (VNET_GROUP,)
        if low == "azureloadbalancer":
            return PROBE_SOURCES, ()
        if _cidr(token) is not None:
            return (str(_cidr(token)),), ()
        return (), (f"service tag {token}",)

    def rules(self, machines: list[Machine]) -> tuple[list[Rule], dict[str, set[str]]]:
        """Every effective allow rule, and the extra groups (an address range a rule is for) of
        each machine label."""
        out: list[Rule] = []
        extra: dict[str, set[str]] = {}
        for p in self.effective():
            inbound = p.direction.lower() == "inbound"
            target, peer = (p.destination, p.source) if inbound else (p.source, p.destination)
            if target.startswith("asg:"):
                group = target[4:]
            elif target.lower() in ("*", "any", "virtualnetwork", ANYWHERE):
                group = p.nsg
            else:  # an address range: the machines of this security group inside it
                group = f"{p.nsg} for {target}"
                for m in machines:
                    where = [f"{m.address}/32"] if m.address else []
                    if p.nsg in m.groups and where and all(_within(w, [target]) for w in where):
                        extra.setdefault(m.label, set()).add(group)
            cidrs, peers = self._peer(peer)
            full = p.lo == 0 and p.hi == 65535
            out.append(Rule(name=p.name, group=group, direction="ingress" if inbound else "egress",
                            protocol=p.protocol, from_port=None if full or p.protocol == "icmp" else p.lo,
                            to_port=None if full or p.protocol == "icmp" else p.hi, cidrs=cidrs, peer_groups=peers))
        return out, extra

    # ---------------------------------------------------------------- load balancers

    def frontends(self, members_of: Mapping[str, list[str]]) -> list[_Frontend]:
        out: list[_Frontend] = []
        for lb in self.of(LB):
            lb_name = self.name(lb)
            fronts: dict[str, _Frontend] = {}
            for fe in _list(_get(lb, "frontendIPConfigurations")):
                if isinstance(fe, Mapping) and fe.get("name"):
                    fronts[str(fe["name"])] = _Frontend(
                        lb, str(fe["name"]), self.key(fe.get("subnet"), SUBNET), fe.get("privateIPAddress"),
                        bool(fe.get("publicIPAddress") or fe.get("publicIPPrefix")))
            probes: dict[str, HealthCheck] = {}
            for pr in _list(_get(lb, "probes")):
                port = _int(pr.get("port")) if isinstance(pr, Mapping) else None
                if port is not None:
                    probes[str(pr.get("name"))] = HealthCheck(str(pr.get("protocol") or "Tcp").upper(), port,
                                                              pr.get("requestPath"))
            for rule in _list(_get(lb, "loadBalancingRules")):
                if not isinstance(rule, Mapping):
                    continue
                front = fronts.get(_short(_ref(rule.get("frontendIPConfiguration")) or ""))
                port = _int(rule.get("frontendPort"))
                if front is None or port is None:
                    continue
                pool_refs = [r for r in [_ref(rule.get("backendAddressPool")),
                                         *(_ref(b) for b in _list(rule.get("backendAddressPools")))] if r]
                targets: list[str] = []
                for ref in pool_refs:
                    targets += self._pool_members(lb, ref, members_of)
                probe = probes.get(_short(_ref(rule.get("probe")) or ""))
                front.listeners.append(Listener(
                    port=port, protocol=str(rule.get("protocol") or "Tcp").upper(),
                    target_group=f"backend pool {', '.join(_short(r) for r in pool_refs) or '(none)'} of {lb_name}",
                    targets=tuple(dict.fromkeys(targets)), target_port=_int(rule.get("backendPort")) or port,
                    health_check=probe, preserve_client_ip=not rule.get("enableFloatingIP")))
            out += fronts.values()
        return out

    def _pool_members(self, lb: Row, pool_ref: str, members_of: Mapping[str, list[str]]) -> list[str]:
        """Members whose NICs name backend pool ``pool_ref`` of ``lb``."""
        pool = _short(pool_ref)
        lb_keys = {str(lb["id"]), self.name(lb)}
        out: list[str] = []
        for ref, members in members_of.items():
            owner, _, name = ref.partition("/backendAddressPools/")
            if name.rstrip("/") == pool and (owner in lb_keys or _short(owner) in lb_keys):
                out += members
        return out

    def load_balancers(self, fronts: list[_Frontend]) -> list[LoadBalancer]:
        return [LoadBalancer(
            id=f"{f.lb['id']}/{f.name}",
            label=f"load balancer {self.name(f.lb)} frontend {f.name} ({'public' if f.public else 'internal'})",
            internal=not f.public, groups=frozenset(), subnets=(f.subnet,) if f.subnet and not f.public else (),
            dns_name=None, listeners=tuple(f.listeners), health_check_sources=PROBE_SOURCES,
        ) for f in fronts]

    # ---------------------------------------------------------------- names

    def private_names(self, fronts: list[_Frontend], lbs: list[LoadBalancer]) -> dict[str, Resolution]:
        vnet_keys = {str(self.vnet["id"]), self.name(self.vnet)} if self.vnet is not None else set()
        linked: set[str] = set()
        for link in self.of(LINK):
            target = _ref(_get(link, "virtualNetwork")) or ""
            if not vnet_keys or target in vnet_keys or _short(target) in vnet_keys:
                linked.add(str(_get(link, "privateZoneName")))
        by_address = {str(f.address): lb for f, lb in zip(fronts, lbs, strict=True) if f.address and not f.public}
        out: dict[str, Resolution] = {}
        for rec in self.of(RECORD):
            zone = str(_get(rec, "privateZoneName"))
            if str(_get(rec, "recordType")) != "A" or zone not in linked:
                continue
            relative = str(_get(rec, "relativeRecordSetName") or "@")
            name = (zone if relative == "@" else f"{relative}.{zone}").lower().rstrip(".")
            data = [str(a.get("ipv4Address")) for a in _list(_get(rec, "aRecords"))
                    if isinstance(a, Mapping) and a.get("ipv4Address")]
            if not data:
                continue
            lb = by_address.get(data[0])
            chain = (f"{name} (private zone {zone})", f"A {data[0]}", *([f"frontend of {lb.label}"] if lb else []))
            out[name] = Resolution(chain=chain, load_balancer=lb, address=None if lb else data[0])
        return out

    # ---------------------------------------------------------------- pools

    def pool_health(self) -> dict[str, PoolHealth]:
        out: dict[str, PoolHealth] = {}
        for r in self.of(VMSS):
            pool = (_get(r, "tags") or {}).get(POOL_TAG)
            profile = (_get(r, "virtualMachineProfile") or {}).get("networkProfile") or {}
            ref = _ref(profile.get("healthProbe")) if isinstance(profile, Mapping) else None
            if not pool or not ref:
                continue
            owner, _, probe = ref.partition("/probes/")
            lb = self.find(owner, LB)
            for pr in _list(_get(lb, "probes")):
                if isinstance(pr, Mapping) and str(pr.get("name")) == probe and _int(pr.get("port")) is not None:
                    check = HealthCheck(str(pr.get("protocol") or "Tcp").upper(), int(pr["port"]), pr.get("requestPath"))
                    out[str(pool)] = PoolHealth(check, PROBE_SOURCES)
        return out


def read_network(rows: Sequence[Row]) -> Network | None:
    """The Azure network of a render, or None when it has no Azure machines."""
    reader = _Reader(rows)
    if not reader.of(VM, VMSS):
        return None
    subnets = reader.subnets()
    machines, members_of = reader.machines()
    rules, extra = reader.rules(machines)
    machines = [Machine(**{**m.__dict__, "groups": m.groups | extra.get(m.label, set())}) for m in machines]
    fronts = reader.frontends(members_of)
    lbs = reader.load_balancers(fronts)
    labels: dict[str, str] = {VNET_GROUP: "the virtual network (VirtualNetwork)"}
    for r in reader.of(ASG):
        labels[str(r["id"])] = f"application security group {reader.name(r)}"
    for r in reader.of(NSG):
        labels[str(r["id"])] = f"network security group {reader.name(r)}"
    label = f"virtual network {reader.name(reader.vnet)}" if reader.vnet is not None else "an existing virtual network"
    return Network(
        cloud="azure",
        label=label,
        machines=machines,
        subnets=subnets,
        group_labels=labels,
        rules=rules,
        load_balancers=lbs,
        private_names=reader.private_names(fronts, lbs),
        group_noun="network security group",
        cidrs=reader.cidrs,
        icmp_by_type=False,  # an Azure rule admits ICMP as a whole or not at all
        pool_health=reader.pool_health(),
        service_probe_sources=PROBE_SOURCES,  # Services' load balancers probe from 168.63.129.16 too
    )
