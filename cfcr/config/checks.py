"""Rules that span several keys. Pure: a ClusterSpec in, a list of problems out."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterator

from cfcr import channels
from cfcr.config.backups import bucket_name_ok
from cfcr.config.errors import NAMESPACE, Problem
from cfcr.config.regions import region_problem
from cfcr.config.schema import ClusterSpec
from cfcr.constants import RESERVED_USER_NAMES

MIN_SERVICE_ADDRESSES = 256
MAX_SERVICE_PREFIX = 12  # kube-apiserver refuses IPv4 service ranges larger than a /12

def _zone_ok(cloud: str, region: str, zone: str) -> bool:
    if cloud == "aws":
        return re.fullmatch(re.escape(region) + r"[a-z]", zone) is not None
    if cloud == "gcp":
        return re.fullmatch(re.escape(region) + r"-[a-z]", zone) is not None
    return zone in {"1", "2", "3"}


_ZONE_FORMAT = {
    "aws": "a zone of the region, like {region}a",
    "gcp": "a zone of the region, like {region}-a",
    "azure": "an availability zone number: 1, 2 or 3",
}


def _key(path: str) -> str:
    return f"{NAMESPACE}:{path}"


Check = Callable[[ClusterSpec], Iterator[Problem]]


def _version(spec: ClusterSpec) -> Iterator[Problem]:
    try:
        channels.resolve(spec.kubernetes.version)
    except channels.UnknownReleaseError:
        yield Problem(
            _key("kubernetes.version"),
            spec.kubernetes.version,
            f"allowed: a channel ({', '.join(sorted(channels.CHANNELS))}) or a known version "
            f"({', '.join(channels.known_versions())})",
        )


def _region_and_zones(spec: ClusterSpec) -> Iterator[Problem]:
    wrong = region_problem(spec.cloud, spec.region)
    if wrong is not None:
        yield wrong
        return
    allowed = _ZONE_FORMAT[spec.cloud].format(region=spec.region)
    sources: list[tuple[str, list[str]]] = [("controlPlane.zones", spec.control_plane.zones)]
    sources += [(f"nodePools[{i}].zones", p.zones) for i, p in enumerate(spec.node_pools)]
    for path, zones in sources:
        for i, zone in enumerate(zones):
            if not _zone_ok(spec.cloud, spec.region, zone):
                yield Problem(_key(f"{path}[{i}]"), zone, f"must be {allowed}")
        dupes = sorted(z for z, n in Counter(zones).items() if n > 1)
        if dupes:
            yield Problem(_key(path), zones, f"each zone may appear once; repeated: {', '.join(dupes)}")


def _networks(spec: ClusterSpec) -> Iterator[Problem]:
    net = spec.networking
    pod = ipaddress.IPv4Network(net.pod_cidr)
    svc = ipaddress.IPv4Network(net.service_cidr)
    node = ipaddress.IPv4Network(net.node_cidr)
    named = [("networking.podCidr", pod), ("networking.serviceCidr", svc), ("networking.nodeCidr", node)]
    for i, (a_key, a) in enumerate(named):
        for b_key, b in named[i + 1 :]:
            if a.overlaps(b):
                yield Problem(_key(b_key), str(b), f"must not overlap {_key(a_key)} ({a})")
    if svc.prefixlen < MAX_SERVICE_PREFIX:
        yield Problem(_key("networking.serviceCidr"), str(svc), f"too large: the prefix must be /{MAX_SERVICE_PREFIX} or longer")
    elif svc.num_addresses < MIN_SERVICE_ADDRESSES:
        yield Problem(
            _key("networking.serviceCidr"),
            str(svc),
            f"too small: at least {MIN_SERVICE_ADDRESSES} addresses (/24 or shorter prefix)",
        )
    if pod.prefixlen >= net.node_cidr_mask_size:
        yield Problem(
            _key("networking.nodeCidrMaskSize"),
            net.node_cidr_mask_size,
            f"must be longer than the pod network's prefix /{pod.prefixlen}",
        )
    else:
        slices = 2 ** (net.node_cidr_mask_size - pod.prefixlen)
        most_nodes = spec.control_plane.count + sum(p.max_size for p in spec.node_pools)
        if most_nodes > slices:
            yield Problem(
                _key("networking.podCidr"),
                str(pod),
                f"too small: /{net.node_cidr_mask_size} per node gives {slices} node slices but the pools "
                f"may grow to {most_nodes} nodes; use a larger pod network or a longer nodeCidrMaskSize",
            )
    if net.api_public and not net.api_allowed_cidrs:
        yield Problem(
            _key("networking.apiAllowedCidrs"),
            [],
            "must list the CIDRs allowed to reach the API when networking.apiPublic is true",
        )


def _pools(spec: ClusterSpec) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, pool in enumerate(spec.node_pools):
        if pool.name in seen:
            yield Problem(_key(f"nodePools[{i}].name"), pool.name, "pool names must be unique")
        seen.add(pool.name)
        if pool.min_size > pool.max_size:
            yield Problem(_key(f"nodePools[{i}].minSize"), pool.min_size, f"must be at most maxSize ({pool.max_size})")
        elif pool.desired_size is not None and not pool.min_size <= pool.desired_size <= pool.max_size:
            yield Problem(
                _key(f"nodePools[{i}].desiredSize"),
                pool.desired_size,
                f"must lie between minSize ({pool.min_size}) and maxSize ({pool.max_size})",
            )
        keys = Counter(t.key + ":" + t.effect for t in pool.taints)
        for dup in sorted(k for k, n in keys.items() if n > 1):
            yield Problem(_key(f"nodePools[{i}].taints"), dup, "each taint key and effect may appear once")
    if not spec.node_pools:
        yield Problem(_key("nodePools"), [], "at least one node pool is required")


def _pki(spec: ClusterSpec) -> Iterator[Problem]:
    pki = spec.pki
    if pki.leaf_validity_hours > pki.ca_validity_hours:
        yield Problem(
            _key("pki.leafValidityHours"),
            pki.leaf_validity_hours,
            f"must not exceed pki.caValidityHours ({pki.ca_validity_hours})",
        )
    if pki.early_renewal_hours >= pki.leaf_validity_hours:
        yield Problem(
            _key("pki.earlyRenewalHours"),
            pki.early_renewal_hours,
            f"must be shorter than pki.leafValidityHours ({pki.leaf_validity_hours})",
        )
    if len(set(pki.ca_generations)) != len(pki.ca_generations):
        yield Problem(_key("pki.caGenerations"), pki.ca_generations, "generations must be distinct")
    if pki.signing_generation not in pki.ca_generations:
        yield Problem(
            _key("pki.signingGeneration"),
            pki.signing_generation,
            f"must be one of the trusted pki.caGenerations {pki.ca_generations}",
        )
    seen: set[str] = set()
    for i, user in enumerate(pki.users):
        if user.name in RESERVED_USER_NAMES:
            yield Problem(
                _key(f"pki.users[{i}].name"), user.name, f"reserved; not one of {', '.join(sorted(RESERVED_USER_NAMES))}"
            )
        elif user.name in seen:
            yield Problem(_key(f"pki.users[{i}].name"), user.name, "user names must be unique")
        seen.add(user.name)
        if "system:masters" in user.groups:
            yield Problem(
                _key(f"pki.users[{i}].groups"),
                user.groups,
                "system:masters is reserved for the break-glass super-admin; use kubeadm:cluster-admins or an RBAC group",
            )


def _addons(spec: ClusterSpec) -> Iterator[Problem]:
    if spec.cilium_kube_proxy_replacement and spec.cni != "cilium":
        yield Problem(
            _key("ciliumKubeProxyReplacement"),
            True,
            f"only allowed with cni: cilium (cni is {spec.cni})",
        )


def _passthrough(spec: ClusterSpec) -> Iterator[Problem]:
    for field in ("apiVersion", "kind"):
        if field in spec.components.kubelet.config:
            yield Problem(
                _key(f"components.kubelet.config.{field}"),
                spec.components.kubelet.config[field],
                "set by cfcr for the channel's kubelet; leave it out",
            )
    for i, entry in enumerate(spec.admission.configuration):
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            yield Problem(
                _key(f"admission.configuration[{i}]"),
                entry,
                "each entry needs a `name` (the plugin) and a `configuration` or `path`",
            )
    for key in spec.tags:
        if not key or len(key) > 63:
            yield Problem(_key("tags"), key, "tag keys must be 1-63 characters")


def _cloud_only(spec: ClusterSpec) -> Iterator[Problem]:
    if spec.cloud != "aws" and spec.aws.model_fields_set:
        yield Problem(_key("aws"), spec.aws.model_dump(by_alias=True, exclude_unset=True),
                      f"AWS-only settings; cloud is {spec.cloud}")
    if spec.cloud != "gcp" and spec.gcp.model_fields_set:
        yield Problem(_key("gcp"), spec.gcp.model_dump(by_alias=True, exclude_unset=True),
                      f"GCP-only settings; cloud is {spec.cloud}")
    if spec.cloud != "azure" and spec.azure.model_fields_set:
        yield Problem(_key("azure"), spec.azure.model_dump(by_alias=True, exclude_unset=True),
                      f"Azure-only settings; cloud is {spec.cloud}")
    if spec.gcp.api_dns_zone and not spec.networking.api_dns_name:
        yield Problem(_key("gcp.apiDnsZone"), spec.gcp.api_dns_zone,
                      "needs networking.apiDnsName: the name to create in that zone")
    if spec.cloud == "gcp" and spec.networking.existing_network is not None and not spec.gcp.proxy_only_subnet_cidr:
        yield Problem(_key("gcp.proxyOnlySubnetCidr"), None,
                      "an existing network needs the range of its region's proxy-only subnet (the internal API "
                      "load balancer's proxies connect from it): give that subnet's CIDR")
    if spec.aws.api_dns_zone_id and not spec.networking.api_dns_name:
        yield Problem(_key("aws.apiDnsZoneId"), spec.aws.api_dns_zone_id,
                      "needs networking.apiDnsName: the name to create in that zone")


def _etcd_backups(spec: ClusterSpec) -> Iterator[Problem]:
    backups = spec.etcd_backups
    if spec.cloud == "azure" and backups.existing_bucket:
        yield Problem(_key("etcdBackups.existingBucket"), backups.existing_bucket,
                      "not on azure: cfcr creates the cluster's storage account and container (a bucket name "
                      "does not say both); leave it unset")
    if spec.cloud == "aws" and backups.existing_bucket and not bucket_name_ok(backups.existing_bucket):
        yield Problem(_key("etcdBackups.existingBucket"), backups.existing_bucket,
                      "must be an S3 bucket name on aws: 3-63 lowercase letters, digits, '.' or '-', starting and "
                      "ending with a letter or digit")
    if backups.existing_bucket and "retention_days" in backups.model_fields_set:
        yield Problem(_key("etcdBackups.retentionDays"), backups.retention_days,
                      f"applies only to the bucket cfcr creates; set a lifecycle rule on "
                      f"etcdBackups.existingBucket ({backups.existing_bucket}) yourself, and leave this unset")


def _air_gapped(spec: ClusterSpec) -> Iterator[Problem]:
    """An air-gapped network has no way to the internet: no public API, no NAT, no public subnets,
    and every mirror set (a node would otherwise fetch from the internet at boot)."""
    net = spec.networking
    if not net.air_gapped:
        if "vpc_endpoints" in spec.aws.model_fields_set:
            yield Problem(_key("aws.vpcEndpoints"), spec.aws.vpc_endpoints,
                          "applies only with networking.airGapped: true (leave it unset otherwise)")
        return
    if spec.cloud != "aws":
        yield Problem(_key("networking.airGapped"), True,
                      f"air-gapped networks are built on aws only so far; cloud is {spec.cloud}")
        return
    if net.api_public:
        yield Problem(_key("networking.apiPublic"), True,
                      "must be false with networking.airGapped: true (an air-gapped API is private only)")
    if "nat_gateways" in net.model_fields_set and net.nat_gateways != "none":
        yield Problem(_key("networking.natGateways"), net.nat_gateways,
                      "allowed with networking.airGapped: true: none, or leave it unset (no NAT, no way to the internet)")
    existing = net.existing_network
    if existing is not None and existing.public_subnet_ids:
        yield Problem(_key("networking.existingNetwork.publicSubnetIds"), existing.public_subnet_ids,
                      "must be empty with networking.airGapped: true (nothing of the cluster is public)")
    if spec.aws.vpc_endpoints == "existing" and existing is None:
        yield Problem(_key("aws.vpcEndpoints"), "existing",
                      "needs networking.existingNetwork: a VPC cfcr creates has no endpoints but the ones cfcr "
                      "creates (allowed here: managed)")
    if spec.kubernetes.version in channels.CHANNELS:
        yield Problem(_key("kubernetes.version"), spec.kubernetes.version,
                      f"must be an exact version with networking.airGapped: true (today's {spec.kubernetes.version} is "
                      f"{channels.CHANNELS[spec.kubernetes.version]}): a cfcr release that moves the channel would roll "
                      "nodes onto assets the site has not mirrored")
    for kind in ("files", "registry", "apt"):
        if getattr(spec.mirrors, kind) is None:
            yield Problem(_key(f"mirrors.{kind}"), None,
                          "must be set with networking.airGapped: true: nodes have no way to the internet, so every "
                          "file, image, chart and package comes from the site's mirrors (docs/airgapped.md)")


def _mirrors(spec: ClusterSpec) -> Iterator[Problem]:
    if spec.mirrors.files:
        for host in ("dl.k8s.io", "github.com"):
            if host in spec.registry_mirrors:
                yield Problem(_key(f"registryMirrors.{host}"), spec.registry_mirrors[host],
                              f"cfcr:mirrors.files ({spec.mirrors.files}) already serves every file: "
                              f"remove this key (one file mirror applies)")


CHECKS: tuple[Check, ...] = (_version, _region_and_zones, _networks, _pools, _pki, _addons, _passthrough, _cloud_only,
                             _etcd_backups, _mirrors, _air_gapped)


def check(spec: ClusterSpec) -> list[Problem]:
    """Every cross-key problem in ``spec``; empty when the spec is sound."""
    return [problem for rule in CHECKS for problem in rule(spec)]
