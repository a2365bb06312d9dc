"""How the flow check reads AWS's rendered network (:mod:`cfcr.flows`).

From the render's rows (``resources.json``: type, name, ``id``, ``inputs``, ``outputs``):

- **machines**: control-plane instances (``cfcr.io/member`` tag) and auto scaling groups
  (``cfcr.io/pool`` tag) with their security groups (the instance's, else its launch
  template's) and subnets;
- **security groups and rules**: ``aws:vpc`` ingress/egress rules, ``aws:ec2`` security group
  rules and inline rules. As the provider does, a group has no egress rule but those written
  (it deletes AWS's default allow-all);
- **routes**: each subnet's route table (its association, else the VPC's main table, which
  cfcr leaves with the local route only) and its ``0.0.0.0/0`` route: a NAT gateway (which
  must sit in a subnet routed to an internet gateway; packets then arrive with its Elastic
  IP) or an internet gateway. Subnets that are not in the render (an existing VPC) have
  unknown routes;
- **load balancers**: scheme, subnets, security groups, listeners, target groups (port,
  health check, client IP preservation) and registered instances;
- **Services' load balancers**: the cloud controller manager admits their probes itself, in
  the one security group of each node tagged ``kubernetes.io/cluster/<cluster>``;
- **names**: records of private hosted zones, followed through aliases and CNAMEs to a load
  balancer (by its ``dnsName``) or an address;
- **air-gapped**: VPC endpoints (service, type, private DNS, subnets, security groups, route
  tables, with their separate association resources), the internet gateways and public NAT
  gateways (an air-gapped VPC has none), whether the VPC resolves private names (DNS support
  and DNS hostnames, as the provider defaults them), and each subnet's route table.
  :func:`private_services` says which services each need of an air-gapped cluster calls
  (:mod:`cfcr.aws.endpoints`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from cfcr.aws.tags import cluster_tag_key
from cfcr.config import ClusterSpec
from cfcr.flows.facts import PrivateServices
from cfcr.flows.network import (
    Address,
    HealthCheck,
    Listener,
    LoadBalancer,
    Machine,
    Network,
    Resolution,
    Route,
    Rule,
    ServiceEndpoint,
    Subnet,
)

Row = Mapping[str, Any]

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ROUTE = "aws:ec2/route:Route"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
MAIN_ASSOCIATION = "aws:ec2/mainRouteTableAssociation:MainRouteTableAssociation"
IGW = "aws:ec2/internetGateway:InternetGateway"
EGRESS_ONLY_IGW = "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway"
VPC_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
ENDPOINT_ROUTE_TABLE = "aws:ec2/vpcEndpointRouteTableAssociation:VpcEndpointRouteTableAssociation"
ENDPOINT_SUBNET = "aws:ec2/vpcEndpointSubnetAssociation:VpcEndpointSubnetAssociation"
ENDPOINT_GROUP = "aws:ec2/vpcEndpointSecurityGroupAssociation:VpcEndpointSecurityGroupAssociation"
NAT = "aws:ec2/natGateway:NatGateway"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
INSTANCE = "aws:ec2/instance:Instance"
ASG = "aws:autoscaling/group:Group"
LB = "aws:lb/loadBalancer:LoadBalancer"
CLUSTER_TAG_PREFIX = cluster_tag_key("")
"""``kubernetes.io/cluster/``: the tag the cloud controller manager finds a node's security group by."""
LISTENER = "aws:lb/listener:Listener"
ATTACHMENT = "aws:lb/targetGroupAttachment:TargetGroupAttachment"
ZONE = "aws:route53/zone:Zone"
ZONE_ASSOCIATION = "aws:route53/zoneAssociation:ZoneAssociation"
RECORD = "aws:route53/record:Record"

_PROTOCOLS = {"-1": "all", "all": "all", "6": "tcp", "tcp": "tcp", "17": "udp", "udp": "udp", "1": "icmp",
              "icmp": "icmp", "58": "icmpv6", "icmpv6": "icmpv6"}


def _inputs(row: Row) -> Mapping[str, Any]:
    value = row.get("inputs") or {}
    return value if isinstance(value, Mapping) else {}


def _outputs(row: Row) -> Mapping[str, Any]:
    value = row.get("outputs") or {}
    return value if isinstance(value, Mapping) else {}


def _get(row: Row, key: str) -> Any:
    """An input, else the provider's output of that name."""
    value = _inputs(row).get(key)
    return _outputs(row).get(key) if value is None else value


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _ids(row: Row) -> set[str]:
    """Every id the row is known by (its id, its ARN)."""
    out = {str(row["id"])} if row.get("id") else set()
    arn = _outputs(row).get("arn")
    if arn:
        out.add(str(arn))
    return out


def _dns(name: Any) -> str:
    text = str(name or "").lower().rstrip(".")
    return text[len("dualstack."):] if text.startswith("dualstack.") else text


def _tags(row: Row) -> dict[str, str]:
    tags = _inputs(row).get("tags")
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    if isinstance(tags, list):  # auto scaling group tags
        return {str(t.get("key")): str(t.get("value")) for t in tags if isinstance(t, Mapping)}
    return {}


class _Reader:
    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = rows
        self.by_id: dict[str, Row] = {}
        for row in rows:
            for rid in _ids(row):
                self.by_id.setdefault(rid, row)

    def of(self, *types: str) -> list[Row]:
        return [r for r in self.rows if r.get("type") in types]

    def name(self, rid: Any) -> str:
        row = self.by_id.get(str(rid))
        return str(row["name"]) if row else str(rid)

    # ------------------------------------------------------------------ routes

    def route_tables(self) -> tuple[dict[str, str], dict[str, list[Mapping[str, Any]]], str | None]:
        """subnet -> route table, route table -> its routes, and the VPC's main table if rendered."""
        assoc = {str(_get(r, "subnetId")): str(_get(r, "routeTableId")) for r in self.of(ASSOCIATION)
                 if _get(r, "subnetId")}
        routes: dict[str, list[Mapping[str, Any]]] = {}
        for table in self.of(ROUTE_TABLE):
            for rid in _ids(table):
                routes.setdefault(rid, [])
            for inline in _inputs(table).get("routes") or []:
                if isinstance(inline, Mapping):
                    routes.setdefault(str(table.get("id")), []).append(
                        {**inline, "destinationCidrBlock": inline.get("cidrBlock")})
        for route in self.of(ROUTE):
            routes.setdefault(str(_get(route, "routeTableId")), []).append({**_inputs(route), "__name": route["name"]})
        main = next((str(_get(r, "routeTableId")) for r in self.of(MAIN_ASSOCIATION)), None)
        return assoc, routes, main

    def subnets(self) -> dict[str, Subnet]:
        assoc, routes, main = self.route_tables()
        rows = {str(r["id"]): r for r in self.of(SUBNET)}
        out: dict[str, Subnet] = {}

        def route_of(sid: str, depth: int = 0) -> Route:
            table = assoc.get(sid) or main
            label = rows[sid]["name"] if sid in rows else sid
            if table is None:
                if sid not in rows:
                    return Route("unknown", f"subnet {sid} is not in the render (an existing subnet): its routes "
                                            f"are not known")
                return Route("none", f"subnet {label} has no route table association, so it uses the VPC's main "
                                     f"route table, which holds only the local route")
            default = next((r for r in routes.get(table, []) if r.get("destinationCidrBlock") == "0.0.0.0/0"), None)
            table_name = self.name(table)
            if default is None:
                if table not in routes:
                    return Route("unknown", f"route table {table} is not in the render")
                return Route("none", f"route table {table_name} of subnet {label} has no default route (0.0.0.0/0)")
            nat_id, gateway = default.get("natGatewayId"), default.get("gatewayId")
            if nat_id:
                nat = self.by_id.get(str(nat_id))
                if nat is None:
                    return Route("unknown", f"route table {table_name} sends 0.0.0.0/0 to NAT gateway {nat_id}, "
                                            f"which is not in the render")
                if str(_get(nat, "connectivityType") or "public") == "private":
                    return Route("none", f"route table {table_name} sends 0.0.0.0/0 to NAT gateway {nat['name']}, "
                                         f"a private NAT (no internet)")
                nat_subnet = str(_get(nat, "subnetId"))
                behind = route_of(nat_subnet, depth + 1) if depth < 3 else Route("none", "a routing loop")
                if behind.kind != "gateway":
                    return Route("unknown" if behind.kind == "unknown" else "none", f"route table {table_name} sends 0.0.0.0/0 to NAT gateway {nat['name']}, "
                                       f"but the NAT's subnet cannot reach the internet: {behind.detail}")
                eip = self.by_id.get(str(_get(nat, "allocationId")))
                ip = _outputs(eip).get("publicIp") if eip else None
                where = f"Elastic IP {eip['name']}" if eip else "an address AWS assigns"
                source = Address(f"the public address of NAT gateway {nat['name']} ({ip or where})",
                                 (f"{ip}/32",) if ip else (), public=True, cloud_assigned=not ip)
                return Route("nat", f"NAT gateway {nat['name']} (route table {table_name})", source)
            gateway_row = self.by_id.get(str(gateway)) if gateway else None
            if gateway and (str(gateway).startswith("igw-") or (gateway_row or {}).get("type") == IGW):
                return Route("gateway", f"internet gateway {self.name(gateway)} (route table {table_name})")
            target = next((f"{k} {v}" for k, v in default.items()
                           if k.endswith("Id") and k != "routeTableId" and v), None)
            return Route("unknown", f"route table {table_name} sends 0.0.0.0/0 to {target or 'an unknown target'}; "
                                    f"what lies beyond it is not in the render", site=target is not None)

        for sid, row in rows.items():
            public_ips = bool(_bool(_get(row, "mapPublicIpOnLaunch")))
            table = assoc.get(sid) or main
            out[sid] = Subnet(sid, str(row["name"]), str(_get(row, "cidrBlock")) if _get(row, "cidrBlock") else None,
                              route_of(sid), public_ips=public_ips, route_table=table if table in routes else None)
        return out

    def route_table_labels(self) -> dict[str, str]:
        return {rid: str(t["name"]) for t in self.of(ROUTE_TABLE) for rid in _ids(t)}

    # ------------------------------------------------------------------ air-gapped

    def service_endpoints(self) -> list[ServiceEndpoint]:
        """Every VPC endpoint, with what its separate association resources add."""
        extra: dict[str, dict[str, list[str]]] = {}
        for token, key, field in ((ENDPOINT_ROUTE_TABLE, "routeTableId", "routeTableIds"),
                                  (ENDPOINT_SUBNET, "subnetId", "subnetIds"),
                                  (ENDPOINT_GROUP, "securityGroupId", "securityGroupIds")):
            for a in self.of(token):
                extra.setdefault(str(_get(a, "vpcEndpointId")), {}).setdefault(field, []).append(str(_get(a, key)))
        out = []
        for row in self.of(VPC_ENDPOINT):
            added: dict[str, list[str]] = {}
            for rid in _ids(row):
                for field, values in extra.get(rid, {}).items():
                    added.setdefault(field, []).extend(values)

            def listed(field: str, row: Row = row, added: dict[str, list[str]] = added) -> tuple[str, ...]:
                return tuple(dict.fromkeys([*(str(v) for v in _get(row, field) or []), *added.get(field, [])]))

            # the provider's defaults: a Gateway endpoint, private DNS off
            kind = str(_get(row, "vpcEndpointType") or "Gateway").lower()
            if kind not in ("interface", "gateway"):
                continue  # a Gateway Load Balancer endpoint serves no AWS API
            out.append(ServiceEndpoint(
                service=endpoint_service(str(_get(row, "serviceName") or "")), label=str(row["name"]),
                kind="interface" if kind == "interface" else "gateway",
                private_dns=bool(_bool(_get(row, "privateDnsEnabled"))), subnets=listed("subnetIds"),
                groups=frozenset(listed("securityGroupIds")), route_tables=listed("routeTableIds"),
            ))
        return out

    def private_dns(self) -> bool | None:
        """DNS support and DNS hostnames of the rendered VPC (the provider's defaults: support on,
        host names off); None when the VPC is not in the render."""
        vpcs = self.of(VPC)
        if not vpcs:
            return None
        support, hostnames = _bool(_get(vpcs[0], "enableDnsSupport")), _bool(_get(vpcs[0], "enableDnsHostnames"))
        return support is not False and hostnames is True

    # ------------------------------------------------------------------ firewall

    def rules(self) -> list[Rule]:
        out: list[Rule] = []

        def add(name: str, group: Any, direction: str, protocol: Any, lo: Any, hi: Any,
                cidrs: Sequence[Any], peers: Sequence[Any]) -> None:
            proto = _PROTOCOLS.get(str(protocol if protocol is not None else "-1").lower(), str(protocol))
            out.append(Rule(name, str(group), "ingress" if direction == "ingress" else "egress", proto,
                            None if proto == "all" else _int(lo), None if proto == "all" else _int(hi),
                            tuple(str(c) for c in cidrs if c), tuple(str(p) for p in peers if p)))

        for r in self.of(SG_INGRESS, SG_EGRESS):
            i = _inputs(r)
            add(r["name"], i.get("securityGroupId"), "ingress" if r["type"] == SG_INGRESS else "egress",
                i.get("ipProtocol"), i.get("fromPort"), i.get("toPort"), [i.get("cidrIpv4"), i.get("cidrIpv6")],
                [i.get("referencedSecurityGroupId")])
        for r in self.of(SG_RULE):
            i = _inputs(r)
            peers = [i.get("sourceSecurityGroupId")] + ([i.get("securityGroupId")] if _bool(i.get("self")) else [])
            add(r["name"], i.get("securityGroupId"), str(i.get("type")), i.get("protocol"), i.get("fromPort"),
                i.get("toPort"), [*(i.get("cidrBlocks") or []), *(i.get("ipv6CidrBlocks") or [])], peers)
        for g in self.of(SECURITY_GROUP):
            for direction in ("ingress", "egress"):
                for k, rule in enumerate(_inputs(g).get(direction) or []):
                    if not isinstance(rule, Mapping):
                        continue
                    peers = list(rule.get("securityGroups") or []) + ([g.get("id")] if _bool(rule.get("self")) else [])
                    add(f"{g['name']}.{direction}[{k}]", g.get("id"), direction, rule.get("protocol"),
                        rule.get("fromPort"), rule.get("toPort"),
                        [*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])], peers)
        return out

    # ------------------------------------------------------------------ machines

    def _template(self, spec: Any) -> Row | None:
        if not isinstance(spec, Mapping):
            return None
        lt = spec.get("id") or spec.get("launchTemplateId")
        return self.by_id.get(str(lt)) if lt else None

    @staticmethod
    def _template_groups(template: Row | None) -> tuple[set[str], bool | None]:
        if template is None:
            return set(), None
        i = _inputs(template)
        groups = {str(g) for g in i.get("vpcSecurityGroupIds") or []}
        public: bool | None = None
        for nic in i.get("networkInterfaces") or []:
            if isinstance(nic, Mapping):
                groups |= {str(g) for g in nic.get("securityGroups") or []}
                public = _bool(nic.get("associatePublicIpAddress"))
        return groups, public

    def machines(self, subnets: Mapping[str, Subnet]) -> list[Machine]:
        out: list[Machine] = []
        mapped = {sid for sid, s in subnets.items() if s.public_ips}
        for r in self.of(INSTANCE):
            i = _inputs(r)
            tags = _tags(r)
            groups = {str(g) for g in i.get("vpcSecurityGroupIds") or []}
            lt_groups, lt_public = self._template_groups(self._template(i.get("launchTemplate")))
            groups = groups or lt_groups
            public = _bool(i.get("associatePublicIpAddress"))
            public = lt_public if public is None else public
            subnet = str(i.get("subnetId") or "")
            out.append(Machine(
                label=str(r["name"]), groups=frozenset(groups), subnets=(subnet,) if subnet else (),
                address=str(i["privateIp"]) if i.get("privateIp") else None,
                member=tags.get("cfcr.io/member"), pool=tags.get("cfcr.io/pool"),
                public_address=bool(public) if public is not None else subnet in mapped,
            ))
        for r in self.of(ASG):
            i = _inputs(r)
            tags = _tags(r)
            spec = i.get("launchTemplate") or (((i.get("mixedInstancesPolicy") or {}).get("launchTemplate") or {})
                                               .get("launchTemplateSpecification"))
            groups, public = self._template_groups(self._template(spec))
            subnets_of = tuple(str(s) for s in i.get("vpcZoneIdentifiers") or [])
            pool = tags.get("cfcr.io/pool")
            out.append(Machine(
                label=f"pool {pool} ({r['name']})" if pool else str(r["name"]), groups=frozenset(groups),
                subnets=subnets_of, pool=pool,
                public_address=bool(public) if public is not None else any(s in mapped for s in subnets_of),
            ))
        return out

    def service_probes_opened_by(self, machines: Sequence[Machine]) -> str:
        """How the cloud controller manager admits the probes of Services' load balancers: it
        adds rules for each Service to the one security group of every node tagged
        ``kubernetes.io/cluster/<cluster>``; empty when a node has none or several (it then
        cannot choose, and the probes stay out)."""
        tagged = {str(g.get("id")) for g in self.of(SECURITY_GROUP)
                  if any(k.startswith(CLUSTER_TAG_PREFIX) for k in _tags(g))}
        if not machines or any(len(m.groups & tagged) != 1 for m in machines):
            return ""
        names = ", ".join(sorted({str(g["name"]) for g in self.of(SECURITY_GROUP) if str(g.get("id")) in tagged}))
        return (f"the AWS cloud controller manager admits them itself, for each Service, with rules it adds to the "
                f"node's one security group tagged {CLUSTER_TAG_PREFIX}<cluster> ({names})")

    # ------------------------------------------------------------------ load balancers

    def load_balancers(self) -> list[LoadBalancer]:
        members = {str(r.get("id")): _tags(r).get("cfcr.io/member") or str(r["name"]) for r in self.of(INSTANCE)}
        targets: dict[str, list[str]] = {}
        for a in self.of(ATTACHMENT):
            targets.setdefault(str(_get(a, "targetGroupArn")), []).append(
                members.get(str(_get(a, "targetId")), str(_get(a, "targetId"))))
        listeners: dict[str, list[Listener]] = {}
        for row in self.of(LISTENER):
            i = _inputs(row)
            for action in i.get("defaultActions") or []:
                if not isinstance(action, Mapping) or action.get("type") != "forward":
                    continue
                arns = [action.get("targetGroupArn")] + [
                    g.get("arn") for g in ((action.get("forward") or {}).get("targetGroups") or [])
                    if isinstance(g, Mapping)]
                for arn in (a for a in arns if a):
                    tg = self.by_id.get(str(arn))
                    if tg is None:
                        continue
                    t = _inputs(tg)
                    port = _int(t.get("port")) or 0
                    hc = t.get("healthCheck") or {}
                    check = None
                    if _bool(hc.get("enabled")) is not False:
                        hc_port = _int(hc.get("port")) if str(hc.get("port") or "traffic-port") != "traffic-port" else port
                        check = HealthCheck(str(hc.get("protocol") or t.get("protocol") or "TCP"), hc_port or port,
                                            hc.get("path"))
                    preserve = _bool(t.get("preserveClientIp"))
                    if preserve is None:  # AWS's default: on for instance targets over TCP
                        preserve = str(t.get("targetType") or "instance") == "instance"
                    ids = _ids(tg)
                    registered = tuple(m for rid in ids for m in targets.get(rid, []))
                    listeners.setdefault(str(i.get("loadBalancerArn")), []).append(Listener(
                        port=_int(i.get("port")) or 0, protocol=str(i.get("protocol") or ""),
                        target_group=f"target group {tg['name']}", targets=registered, target_port=port,
                        health_check=check, preserve_client_ip=preserve,
                    ))
        out = []
        for row in self.of(LB):
            i = _inputs(row)
            subnets = [str(s) for s in i.get("subnets") or []] + [
                str(m.get("subnetId")) for m in i.get("subnetMappings") or [] if isinstance(m, Mapping)]
            own = [x for rid in _ids(row) for x in listeners.get(rid, [])]
            out.append(LoadBalancer(
                id=str(row.get("id")), label=str(row["name"]), internal=bool(_bool(i.get("internal"))),
                groups=frozenset(str(g) for g in i.get("securityGroups") or []), subnets=tuple(subnets),
                dns_name=_dns(_outputs(row).get("dnsName")) or None, listeners=tuple(own),
            ))
        return out

    # ------------------------------------------------------------------ names

    def private_names(self, lbs: Sequence[LoadBalancer]) -> dict[str, Resolution]:
        associated = {str(_get(a, "zoneId")) for a in self.of(ZONE_ASSOCIATION)}
        zones: dict[str, str] = {}
        for z in self.of(ZONE):
            zid = str(_outputs(z).get("zoneId") or z.get("id"))
            if _inputs(z).get("vpcs") or zid in associated or str(z.get("id")) in associated:
                zones[zid] = _dns(_get(z, "name"))
                zones[str(z.get("id"))] = zones[zid]
        records: dict[str, Mapping[str, Any]] = {}
        for r in self.of(RECORD):
            i = _inputs(r)
            zone = zones.get(str(i.get("zoneId")))
            if zone is None:
                continue
            name = _dns(i.get("name"))
            if name != zone and not name.endswith("." + zone):
                name = f"{name}.{zone}"
            records[name] = {**i, "__zone": zone}
        by_dns = {lb.dns_name: lb for lb in lbs if lb.dns_name}

        def resolve(name: str, depth: int = 0) -> Resolution:
            record = records[name]
            first = f"{name} (private zone {record['__zone']})"

            def follow(target: str, how: str) -> Resolution:
                """A name that points at ``target`` (an alias or a CNAME): a load balancer, or
                another record of the render, or nothing the render knows."""
                lb = by_dns.get(target)
                if lb is not None:
                    return Resolution((first, f"{how} {target}", f"load balancer {lb.label}"), load_balancer=lb)
                if target in records and depth < 5:
                    inner = resolve(target, depth + 1)
                    return Resolution((first, *inner.chain), inner.load_balancer, inner.address)
                return Resolution((first, f"{how} {target}, which is not in the render"))

            aliases = [a for a in record.get("aliases") or [] if isinstance(a, Mapping)]
            if aliases:
                return follow(_dns(aliases[0].get("name")), "alias of")
            values = [str(v) for v in record.get("records") or []]
            if str(record.get("type")).upper() == "CNAME" and values:
                return follow(_dns(values[0]), "CNAME")
            return Resolution((first, f"address {values[0]}" if values else "no value"),
                              address=values[0] if values else None)

        return {name: resolve(name) for name in records}


_SERVICE_NAME = re.compile(r"^(?:cn\.)?com\.amazonaws\.(?:vpce\.)?[a-z]{2}(?:-[a-z]+)+-\d+\.(?P<service>.+)$")


def endpoint_service(service_name: str) -> str:
    """``com.amazonaws.<region>.<service>`` -> the service (``ecr.dkr``); other names as given."""
    match = _SERVICE_NAME.match(service_name)
    return match.group("service") if match else service_name


def private_services(spec: ClusterSpec) -> PrivateServices:
    """What an air-gapped cluster of ``spec`` needs of AWS's endpoints (:mod:`cfcr.aws.endpoints`)."""
    from cfcr.aws.endpoints import private_services as needs

    existing = spec.aws.vpc_endpoints == "existing"
    return PrivateServices(needs(spec), assumed=existing,
                           assumption="cfcr:aws.vpcEndpoints: existing" if existing else "")


def read_network(rows: Sequence[Row]) -> Network | None:
    """The network of an AWS render; None when it has no network resources at all."""
    reader = _Reader(rows)
    if not reader.of(SECURITY_GROUP, SUBNET, LB, INSTANCE, ASG):
        return None
    subnets = reader.subnets()
    lbs = reader.load_balancers()
    vpcs = reader.of(VPC)
    cidrs: tuple[str, ...] = ()
    if vpcs:
        label = f"VPC {vpcs[0]['name']} ({_get(vpcs[0], 'cidrBlock')})"
        cidrs = tuple(str(c) for c in [_get(vpcs[0], "cidrBlock"), _get(vpcs[0], "ipv6CidrBlock")] if c)
    else:
        vpc_ids = {str(_get(g, "vpcId")) for g in reader.of(SECURITY_GROUP) if _get(g, "vpcId")}
        label = f"existing VPC {', '.join(sorted(vpc_ids)) or '(unknown)'}"
    machines = reader.machines(subnets)
    return Network(
        cloud="aws",
        label=label,
        machines=machines,
        subnets=subnets,
        group_labels={str(g.get("id")): str(g["name"]) for g in reader.of(SECURITY_GROUP)},
        rules=reader.rules(),
        load_balancers=lbs,
        private_names=reader.private_names(lbs),
        group_noun="security group",
        cidrs=cidrs,
        service_endpoints=reader.service_endpoints(),
        internet_gateways=[f"internet gateway {r['name']}" for r in reader.of(IGW, EGRESS_ONLY_IGW)] + [
            f"NAT gateway {r['name']}" for r in reader.of(NAT)
            if str(_get(r, "connectivityType") or "public") != "private"],
        private_dns=reader.private_dns(),
        route_table_labels=reader.route_table_labels(),
        service_probes_opened_by=reader.service_probes_opened_by(machines),
    )
