"""How the flow check reads GCP's rendered network (:mod:`cfcr.flows`).

From the render's rows (type, name, ``id``, ``inputs``, ``outputs``):

- **machines**: control-plane instances (label ``cfcr-member``) and node pools (the managed
  instance groups' templates, label ``cfcr-pool``), with their service account (the firewall
  group: cfcr's rules target service accounts), subnetwork and address;
- **rules**: ``gcp:compute/firewall:Firewall`` ingress allow rules, one per target service
  account (a rule with no target applies to every instance); GCP's implied rules allow every
  egress and deny every other ingress;
- **routes**: a subnetwork named by a Cloud NAT (``RouterNat``) leaves through it, with an
  address Google assigns; any other subnetwork has only the network's default route to the
  default internet gateway, which serves VMs with an external address alone; a subnetwork
  not in the render (an existing network) is unknown;
- **load balancers**: forwarding rules, through a target TCP proxy (internal proxy: packets
  reach the servers from the proxy-only subnet) or straight to a backend service
  (passthrough: client addresses preserved), its backends' instance groups and members
  (``InstanceGroupMembership``), named port and health check; health checks come from
  Google's probe ranges;
- **names**: A records of private Cloud DNS zones, to a forwarding rule's address;
- **pool health**: each group's autohealing health check, from Google's probe ranges;
- **Services' load balancers**: the cloud controller manager creates the firewall rules of
  each Service, its health checks' from Google's ranges too, for the nodes' network tag
  (``node-tags`` of its cloud config, :mod:`cfcr.gcp.addon_profile`): none of cfcr's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
from cfcr.gcp.security import HEALTH_CHECK_RANGES, PASSTHROUGH_HEALTH_CHECK_RANGES

Row = Mapping[str, Any]

NETWORK = "gcp:compute/network:Network"
SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
NAT = "gcp:compute/routerNat:RouterNat"
FIREWALL = "gcp:compute/firewall:Firewall"
INSTANCE = "gcp:compute/instance:Instance"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
GROUP_MANAGER = "gcp:compute/instanceGroupManager:InstanceGroupManager"
INSTANCE_GROUP = "gcp:compute/instanceGroup:InstanceGroup"
MEMBERSHIP = "gcp:compute/instanceGroupMembership:InstanceGroupMembership"
FORWARDING_RULE = "gcp:compute/forwardingRule:ForwardingRule"
TCP_PROXY = "gcp:compute/regionTargetTcpProxy:RegionTargetTcpProxy"
BACKEND_SERVICE = "gcp:compute/regionBackendService:RegionBackendService"
REGION_HEALTH_CHECK = "gcp:compute/regionHealthCheck:RegionHealthCheck"
HEALTH_CHECK = "gcp:compute/healthCheck:HealthCheck"
MANAGED_ZONE = "gcp:dns/managedZone:ManagedZone"
RECORD_SET = "gcp:dns/recordSet:RecordSet"
PROXY_PURPOSE = "REGIONAL_MANAGED_PROXY"


def _get(row: Row, key: str) -> Any:
    """An input, else the provider's output of that name."""
    inputs = row.get("inputs") or {}
    value = inputs.get(key) if isinstance(inputs, Mapping) else None
    if value is None:
        outputs = row.get("outputs") or {}
        value = outputs.get(key) if isinstance(outputs, Mapping) else None
    return value


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _keys(row: Row) -> set[str]:
    """Every reference the row is known by: id, self link, unique self link, name."""
    out = {str(row["id"])} if row.get("id") else set()
    for key in ("selfLink", "selfLinkUnique", "name"):
        value = _get(row, key)
        if value:
            out.add(str(value))
    if row.get("id"):
        out.add(f"https://www.googleapis.com/compute/v1/{row['id']}")
    return out


def _short(reference: Any) -> str:
    """The last path element of a self link or id (a name)."""
    return str(reference or "").split("?")[0].rstrip("/").rsplit("/", 1)[-1]


class _Reader:
    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = rows
        self.by_key: dict[str, Row] = {}
        for r in rows:
            if str(r.get("type", "")).startswith("gcp:"):
                for k in _keys(r):
                    self.by_key.setdefault(k, r)

    def of(self, *types: str) -> list[Row]:
        return [r for r in self.rows if r.get("type") in types]

    def find(self, reference: Any, *types: str) -> Row | None:
        if reference is None:
            return None
        row = self.by_key.get(str(reference)) or self.by_key.get(str(reference).split("?")[0])
        if row is None:
            name = _short(reference)
            matches = [r for r in self.of(*types) if str(_get(r, "name")) == name]
            row = matches[0] if len(matches) == 1 else None
        return row if row is not None and (not types or row.get("type") in types) else None

    # ---------------------------------------------------------------- subnets

    def subnets(self) -> dict[str, Subnet]:
        nats = self.of(NAT)
        out: dict[str, Subnet] = {}
        for r in self.of(SUBNETWORK):
            name = str(r["name"])
            cidr = _get(r, "ipCidrRange")
            if _get(r, "purpose") == PROXY_PURPOSE:
                route = Route("none", f"{name} is the proxy-only subnet: no machine lives in it")
            else:
                route = self._route(r, nats)
            subnet = Subnet(id=str(r["id"]), label=f"subnetwork {name} ({cidr})", cidr=str(cidr) if cidr else None,
                            internet=route)
            for k in _keys(r):
                out.setdefault(k, subnet)
        return out

    def _route(self, subnet: Row, nats: list[Row]) -> Route:
        keys = _keys(subnet)
        for nat in nats:
            mode = str(_get(nat, "sourceSubnetworkIpRangesToNat") or "")
            named = [str(s.get("name")) for s in (_get(nat, "subnetworks") or []) if isinstance(s, Mapping)]
            if mode.startswith("ALL_SUBNETWORKS") or any(n in keys for n in named):
                return Route("nat", f"Cloud NAT {nat['name']}",
                             Address(f"an address Cloud NAT {nat['name']} is given", public=True, cloud_assigned=True))
        return Route("gateway", "the network's default route to the default internet gateway")

    # ---------------------------------------------------------------- machines

    def _account(self, row: Row) -> str | None:
        account = _get(row, "serviceAccount")
        if isinstance(account, Mapping) and account.get("email"):
            return str(account["email"])
        return None

    def _interface(self, row: Row) -> Mapping[str, Any]:
        interfaces = _get(row, "networkInterfaces") or []
        return interfaces[0] if interfaces and isinstance(interfaces[0], Mapping) else {}

    def _subnet_key(self, nic: Mapping[str, Any], subnets: Mapping[str, Subnet]) -> tuple[str, ...]:
        ref = nic.get("subnetwork")
        if ref is None:
            return ()
        known = subnets.get(str(ref))
        return (known.id,) if known else (str(ref),)

    def machines(self, subnets: Mapping[str, Subnet]) -> list[Machine]:
        out: list[Machine] = []
        for r in self.of(INSTANCE):
            labels = _get(r, "labels") or {}
            member = labels.get("cfcr-member")
            if not member:
                continue
            nic = self._interface(r)
            account = self._account(r)
            out.append(Machine(
                label=f"instance {r['name']}", groups=frozenset([account] if account else []),
                subnets=self._subnet_key(nic, subnets), address=nic.get("networkIp"),
                member=str(_get(r, "name") or member), public_address=bool(nic.get("accessConfigs")),
            ))
        pools: dict[str, Machine] = {}
        for g in self.of(GROUP_MANAGER):
            template = self._template(g)
            if template is None:
                continue
            pool = (_get(template, "labels") or {}).get("cfcr-pool")
            if not pool or pool in pools:
                continue
            nic = self._interface(template)
            account = self._account(template)
            pools[pool] = Machine(
                label=f"pool {pool} (instance template {template['name']})",
                groups=frozenset([account] if account else []), subnets=self._subnet_key(nic, subnets),
                pool=str(pool), public_address=bool(nic.get("accessConfigs")),
            )
        return out + list(pools.values())

    def _template(self, group: Row) -> Row | None:
        versions = _get(group, "versions") or []
        for v in versions:
            if isinstance(v, Mapping):
                found = self.find(v.get("instanceTemplate"), TEMPLATE)
                if found is not None:
                    return found
        return None

    # ---------------------------------------------------------------- firewall

    def rules(self, groups: set[str]) -> list[Rule]:
        out: list[Rule] = []
        for r in self.of(FIREWALL):
            if str(_get(r, "direction") or "INGRESS") != "INGRESS" or _get(r, "disabled"):
                continue
            targets = [str(t) for t in (_get(r, "targetServiceAccounts") or [])]
            if not targets and not _get(r, "targetTags"):
                targets = sorted(groups)  # no target: every instance of the network
            cidrs = tuple(str(c) for c in (_get(r, "sourceRanges") or []))
            peers = tuple(str(s) for s in (_get(r, "sourceServiceAccounts") or []))
            for allow in _get(r, "allows") or []:
                protocol = str(allow.get("protocol", "all")).lower()
                protocol = "all" if protocol in ("all", "-1") else protocol
                spans: list[tuple[int | None, int | None]] = []
                for p in allow.get("ports") or []:
                    first, _, last = str(p).partition("-")
                    spans.append((_int(first), _int(last or first)))
                if not spans:
                    spans = [(None, None)]
                for target in targets:
                    for lo, hi in spans:
                        out.append(Rule(name=str(r["name"]), group=target, direction="ingress", protocol=protocol,
                                        from_port=lo, to_port=hi, cidrs=cidrs, peer_groups=peers))
        for g in sorted(groups):
            out.append(Rule(name="GCP's implied allow-egress rule", group=g, direction="egress", protocol="all",
                            cidrs=("0.0.0.0/0",)))
        return out

    # ---------------------------------------------------------------- load balancers

    def _check(self, reference: Any) -> HealthCheck | None:
        row = self.find(reference, REGION_HEALTH_CHECK, HEALTH_CHECK)
        if row is None:
            return None
        for key, protocol in (("httpsHealthCheck", "HTTPS"), ("httpHealthCheck", "HTTP"), ("tcpHealthCheck", "TCP")):
            spec = _get(row, key)
            if isinstance(spec, Mapping) and _int(spec.get("port")) is not None:
                return HealthCheck(protocol, int(spec["port"]), spec.get("requestPath"))
        return None

    def _members(self, group: Row) -> tuple[list[str], int | None]:
        port = None
        for named in _get(group, "namedPorts") or []:
            port = _int(named.get("port"))
        keys = _keys(group)
        members = []
        for m in self.of(MEMBERSHIP):
            if str(_get(m, "instanceGroup")) in keys or self.find(_get(m, "instanceGroup"), INSTANCE_GROUP) is group:
                instance = self.find(_get(m, "instance"), INSTANCE)
                if instance is not None:
                    members.append(str(_get(instance, "name")))
        for ref in _get(group, "instances") or []:
            instance = self.find(ref, INSTANCE)
            if instance is not None:
                members.append(str(_get(instance, "name")))
        return members, port

    def load_balancers(self, subnets: Mapping[str, Subnet]) -> list[LoadBalancer]:
        proxies = [s for s in self.of(SUBNETWORK) if _get(s, "purpose") == PROXY_PURPOSE]
        out = []
        for fr in self.of(FORWARDING_RULE):
            scheme = str(_get(fr, "loadBalancingScheme") or "EXTERNAL")
            backend_ref = _get(fr, "backendService")
            proxy = None
            if backend_ref is None:
                proxy = self.find(_get(fr, "target"), TCP_PROXY)
                backend_ref = _get(proxy, "backendService") if proxy is not None else None
            backend = self.find(backend_ref, BACKEND_SERVICE)
            port = _int(str(_get(fr, "portRange") or "").partition("-")[0]) or _int(
                (_get(fr, "ports") or [None])[0])
            if backend is None or port is None:
                continue
            targets: list[str] = []
            target_port: int | None = None
            for b in _get(backend, "backends") or []:
                group = self.find(b.get("group"), INSTANCE_GROUP)
                if group is not None:
                    names, named_port = self._members(group)
                    targets += names
                    target_port = target_port or named_port
            checks = _get(backend, "healthChecks")
            check = self._check(checks[0] if isinstance(checks, list) and checks else checks)
            passthrough = proxy is None
            internal = scheme != "EXTERNAL" and scheme != "EXTERNAL_MANAGED"
            lb_subnets: tuple[str, ...] = ()
            if not passthrough:
                lb_subnets = tuple(str(p["id"]) for p in proxies) or ("the region's proxy-only subnet",)
            out.append(LoadBalancer(
                id=str(fr["id"]), label=f"forwarding rule {fr['name']} ({scheme.lower()})", internal=internal,
                groups=frozenset(), subnets=lb_subnets, dns_name=None,
                listeners=(Listener(port=port, protocol="TCP", target_group=f"backend service {backend['name']}",
                                    targets=tuple(dict.fromkeys(targets)), target_port=target_port or port,
                                    health_check=check, preserve_client_ip=passthrough),),
                health_check_sources=PASSTHROUGH_HEALTH_CHECK_RANGES if passthrough and not internal
                else HEALTH_CHECK_RANGES,
            ))
        return out

    # ---------------------------------------------------------------- names

    def private_names(self, lbs: Sequence[LoadBalancer]) -> dict[str, Resolution]:
        by_address: dict[str, LoadBalancer] = {}
        for fr in self.of(FORWARDING_RULE):
            address = _get(fr, "ipAddress")
            lb = next((x for x in lbs if x.id == str(fr["id"])), None)
            if address and lb is not None:
                by_address[str(address)] = lb
        private_zones = {str(_get(z, "name")): z for z in self.of(MANAGED_ZONE)
                         if str(_get(z, "visibility") or "public") == "private"}
        out: dict[str, Resolution] = {}
        for rec in self.of(RECORD_SET):
            zone = private_zones.get(str(_get(rec, "managedZone")))
            if zone is None or str(_get(rec, "type")) != "A":
                continue
            name = str(_get(rec, "name") or "").lower().rstrip(".")
            data = [str(a) for a in (_get(rec, "rrdatas") or [])]
            if not data:
                continue
            lb = by_address.get(data[0])
            chain = (f"{name} (private zone {zone['name']})", f"A {data[0]}",
                     *([f"forwarding rule of {lb.label}"] if lb else []))
            out[name] = Resolution(chain=chain, load_balancer=lb, address=None if lb else data[0])
        return out

    # ---------------------------------------------------------------- pools

    def pool_health(self) -> dict[str, PoolHealth]:
        out: dict[str, PoolHealth] = {}
        for g in self.of(GROUP_MANAGER):
            template = self._template(g)
            pool = (_get(template, "labels") or {}).get("cfcr-pool") if template is not None else None
            policy = _get(g, "autoHealingPolicies")
            if isinstance(policy, list):
                policy = policy[0] if policy else None
            if not pool or not isinstance(policy, Mapping):
                continue
            check = self._check(policy.get("healthCheck"))
            if check is not None:
                out.setdefault(str(pool), PoolHealth(check, HEALTH_CHECK_RANGES))
        return out


SERVICE_PROBES = ("the GCE cloud controller manager admits them itself, for each Service, with firewall rules "
                  "from Google's health-check ranges to the nodes' network tag (node-tags of its cloud config)")
"""How the probes of Services' load balancers get in on GCP."""


def read_network(rows: Sequence[Row]) -> Network | None:
    """The GCP network of a render, or None when it has no GCP machines."""
    reader = _Reader(rows)
    if not reader.of(INSTANCE, GROUP_MANAGER):
        return None
    subnets = reader.subnets()
    machines = reader.machines(subnets)
    groups = {g for m in machines for g in m.groups}
    networks = reader.of(NETWORK)
    label = f"VPC network {networks[0]['name']}" if networks else "an existing VPC network"
    lbs = reader.load_balancers(subnets)
    unique = {s.id: s for s in subnets.values()}
    cidrs = tuple(s.cidr for s in unique.values() if s.cidr) if networks else ()
    return Network(
        cloud="gcp",
        label=label,
        machines=machines,
        subnets=subnets,
        group_labels={g: f"service account {g.split('@')[0]}" for g in groups},
        rules=reader.rules(groups),
        load_balancers=lbs,
        private_names=reader.private_names(lbs),
        group_noun="firewall (by service account)",
        cidrs=cidrs,
        icmp_by_type=False,  # a GCP firewall rule allows ICMP as a whole or not at all
        pool_health=reader.pool_health(),
        service_probes_opened_by=SERVICE_PROBES,
    )
