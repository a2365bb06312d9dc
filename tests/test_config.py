"""The stack config: defaults, and one clear error per bad input (key, value, what is allowed)."""

from __future__ import annotations

import ast
import inspect
import json
import sys
from types import FrameType, ModuleType
from typing import Any

import pytest

from cfcr import channels
from cfcr.config import ConfigError, addons, backups, checks, load_spec, schema, values

BASE: dict[str, Any] = {"cfcr:cloud": "aws", "cfcr:region": "us-east-1"}


def spec_with(**overrides: Any) -> dict[str, Any]:
    return {**BASE, **{f"cfcr:{k}": v for k, v in overrides.items()}}


def test_defaults() -> None:
    spec = load_spec(BASE, "dev")
    assert spec.name == "cfcr-dev"
    assert spec.control_plane.count == 3
    assert spec.cni == "calico"
    assert spec.kubernetes.version == "stable"
    assert [p.name for p in spec.node_pools] == ["default"]
    assert spec.networking.api_public is False
    assert spec.pki.ca_validity_hours == 87600 and spec.pki.leaf_validity_hours == 8760


def test_provider_namespaces_are_left_to_providers() -> None:
    spec = load_spec({**BASE, "aws:region": "us-east-1", "gcp:project": "x"}, "dev")
    assert spec.cloud == "aws"


def test_json_text_values_as_the_pulumi_runtime_passes_them() -> None:
    spec = load_spec(spec_with(controlPlane='{"count": 5}', production="true"), "dev")
    assert spec.control_plane.count == 5 and spec.production is True


def test_taints_and_labels_parse() -> None:
    spec = load_spec(
        spec_with(nodePools=[{"name": "gpu", "labels": {"example.com/gpu": "a100"}, "taints": ["gpu=true:NoSchedule", "dedicated:NoExecute"]}]),
        "dev",
    )
    pool = spec.node_pools[0]
    assert [str(t) for t in pool.taints] == ["gpu=true:NoSchedule", "dedicated:NoExecute"]


def test_channel_names_and_exact_versions_resolve() -> None:
    for version in [*channels.CHANNELS, *channels.known_versions()]:
        assert load_spec(spec_with(kubernetes={"version": version}), "dev").kubernetes.version == version


# (id, overrides, expected key, a fragment of what is allowed)
_V = {"version": "1.36.6"}
_M = {"files": "https://f.example.com", "registry": "https://r.example.com", "apt": "http://a.example.com/ubuntu"}
BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown-top-key", {"controlplane": {"count": 3}}, "cfcr:controlplane", "did you mean 'controlPlane'"),
    ("unknown-nested-key", {"controlPlane": {"cout": 3}}, "cfcr:controlPlane.cout", "allowed keys here"),
    ("unknown-cloud", {"cloud": "ibm"}, "cfcr:cloud", "'aws', 'gcp' or 'azure'"),
    ("unknown-version", {"kubernetes": {"version": "1.20.0"}}, "cfcr:kubernetes.version", "a channel"),
    ("unknown-channel", {"kubernetes": {"version": "beta"}}, "cfcr:kubernetes.version", "stable"),
    ("even-control-plane", {"controlPlane": {"count": 2}}, "cfcr:controlPlane.count", "1, 3 or 5"),
    ("four-control-plane", {"controlPlane": {"count": 4}}, "cfcr:controlPlane.count", "1, 3 or 5"),
    ("seven-control-plane", {"controlPlane": {"count": 7}}, "cfcr:controlPlane.count", "1, 3 or 5"),
    ("count-wrong-type", {"controlPlane": {"count": "three"}}, "cfcr:controlPlane.count", "1, 3 or 5"),
    ("bad-cni", {"cni": "weave"}, "cfcr:cni", "'flannel', 'canal', 'calico', 'cilium' or 'none'"),
    ("pod-cidr-not-cidr", {"networking": {"podCidr": "10.244.0.0"}}, "cfcr:networking.podCidr", "prefix length"),
    ("pod-cidr-garbage", {"networking": {"podCidr": "ten.0.0.0/8"}}, "cfcr:networking.podCidr", "must be a CIDR"),
    ("pod-cidr-host-bits", {"networking": {"podCidr": "10.244.1.0/16"}}, "cfcr:networking.podCidr", "host bits"),
    ("pod-service-overlap", {"networking": {"podCidr": "10.96.0.0/16"}}, "cfcr:networking.serviceCidr", "must not overlap"),
    ("pod-node-overlap", {"networking": {"nodeCidr": "10.244.0.0/20"}}, "cfcr:networking.nodeCidr", "must not overlap"),
    ("service-node-overlap", {"networking": {"nodeCidr": "10.100.0.0/16"}}, "cfcr:networking.nodeCidr", "must not overlap"),
    ("service-cidr-too-small", {"networking": {"serviceCidr": "10.96.0.0/28"}}, "cfcr:networking.serviceCidr", "too small"),
    ("service-cidr-too-large", {"networking": {"serviceCidr": "100.64.0.0/10"}}, "cfcr:networking.serviceCidr", "too large"),
    ("ipv6-service-cidr", {"networking": {"serviceCidr": "fd00::/108"}}, "cfcr:networking.serviceCidr", "IPv4"),
    ("pod-cidr-too-small-for-pools", {"networking": {"podCidr": "10.244.0.0/22"}, "nodePools": [{"name": "a", "maxSize": 10}]}, "cfcr:networking.podCidr", "too small"),
    ("mask-not-longer-than-pod-prefix", {"networking": {"podCidr": "10.244.0.0/24"}}, "cfcr:networking.nodeCidrMaskSize", "longer than"),
    ("bad-cluster-domain", {"networking": {"clusterDomain": "Cluster_Local"}}, "cfcr:networking.clusterDomain", "DNS name"),
    ("bad-allowed-cidr", {"networking": {"apiAllowedCidrs": ["203.0.113.7/24"]}}, "cfcr:networking.apiAllowedCidrs[0]", "host bits"),
    ("public-api-without-cidrs", {"networking": {"apiPublic": True}}, "cfcr:networking.apiAllowedCidrs", "must list"),
    ("bad-label-key", {"nodePools": [{"name": "a", "labels": {"bad key!": "x"}}]}, "cfcr:nodePools[0].labels.bad key!", "label key"),
    ("bad-label-value", {"nodePools": [{"name": "a", "labels": {"tier": "-front"}}]}, "cfcr:nodePools[0].labels.tier", "label value"),
    ("restricted-label-prefix", {"nodePools": [{"name": "a", "labels": {"kubernetes.io/role": "x"}}]}, "cfcr:nodePools[0].labels.kubernetes.io/role", "NodeRestriction"),
    ("node-role-label", {"nodePools": [{"name": "a", "labels": {"node-role.kubernetes.io/worker": ""}}]}, "cfcr:nodePools[0].labels.node-role.kubernetes.io/worker", "NodeRestriction"),
    ("bad-taint-effect", {"nodePools": [{"name": "a", "taints": ["gpu=true:Never"]}]}, "cfcr:nodePools[0].taints[0]", "NoSchedule"),
    ("bad-taint-syntax", {"nodePools": [{"name": "a", "taints": ["gpu=true"]}]}, "cfcr:nodePools[0].taints[0]", "key=value:Effect"),
    ("duplicate-taint", {"nodePools": [{"name": "a", "taints": ["a=1:NoSchedule", "a=2:NoSchedule"]}]}, "cfcr:nodePools[0].taints", "once"),
    ("duplicate-pool", {"nodePools": [{"name": "a"}, {"name": "a"}]}, "cfcr:nodePools[1].name", "unique"),
    ("bad-pool-name", {"nodePools": [{"name": "Big_Pool"}]}, "cfcr:nodePools[0].name", "DNS label"),
    ("min-over-max", {"nodePools": [{"name": "a", "minSize": 5, "maxSize": 3}]}, "cfcr:nodePools[0].minSize", "at most maxSize (3)"),
    ("desired-outside", {"nodePools": [{"name": "a", "minSize": 1, "maxSize": 3, "desiredSize": 9}]}, "cfcr:nodePools[0].desiredSize", "between"),
    ("negative-min", {"nodePools": [{"name": "a", "minSize": -1}]}, "cfcr:nodePools[0].minSize", "greater than or equal to 0"),
    ("bad-architecture", {"nodePools": [{"name": "a", "architecture": "x86_64"}]}, "cfcr:nodePools[0].architecture", "'amd64' or 'arm64'"),
    ("no-pools", {"nodePools": []}, "cfcr:nodePools", "at least one"),
    ("bad-region", {"region": "moon-1"}, "cfcr:region", "AWS region"),
    ("zone-not-in-region", {"controlPlane": {"zones": ["us-west-2a"]}}, "cfcr:controlPlane.zones[0]", "us-east-1a"),
    ("duplicate-zone", {"controlPlane": {"zones": ["us-east-1a", "us-east-1a"]}}, "cfcr:controlPlane.zones", "once"),
    ("leaf-outlives-ca", {"pki": {"caValidityHours": 8760, "leafValidityHours": 17520}}, "cfcr:pki.leafValidityHours", "caValidityHours"),
    ("renewal-not-before-expiry", {"pki": {"leafValidityHours": 720, "earlyRenewalHours": 720}}, "cfcr:pki.earlyRenewalHours", "shorter than"),
    ("signing-generation-untrusted", {"pki": {"caGenerations": [1], "signingGeneration": 2}}, "cfcr:pki.signingGeneration", "trusted"),
    ("three-generations", {"pki": {"caGenerations": [1, 2, 3]}}, "cfcr:pki.caGenerations", "at most 2"),
    ("user-in-system-masters", {"pki": {"users": [{"name": "ops", "groups": ["system:masters"]}]}}, "cfcr:pki.users[0].groups", "break-glass"),
    ("reserved-user", {"pki": {"users": [{"name": "admin", "groups": ["viewers"]}]}}, "cfcr:pki.users[0].name", "reserved"),
    ("byo-ca-not-pem", {"pki": {"byoCa": {"certificate": "hello", "privateKey": "-----BEGIN PRIVATE KEY-----"}}}, "cfcr:pki.byoCa.certificate", "PEM"),
    ("flag-with-dashes", {"components": {"apiServer": {"extraArgs": {"--profiling": "false"}}}}, "cfcr:components.apiServer.extraArgs.--profiling", "without leading dashes"),
    ("kubelet-config-kind", {"components": {"kubelet": {"config": {"kind": "Foo"}}}}, "cfcr:components.kubelet.config.kind", "leave it out"),
    ("mirror-not-url", {"registryMirrors": {"registry.k8s.io": ["mirror.local"]}}, "cfcr:registryMirrors.registry.k8s.io[0]", "URL"),
    ("kube-proxy-replacement-without-cilium", {"cni": "calico", "ciliumKubeProxyReplacement": True}, "cfcr:ciliumKubeProxyReplacement", "cilium"),
    ("missing-region", {"region": None}, "cfcr:region", "required"),
    ("aws-settings-on-gcp", {"cloud": "gcp", "region": "europe-west4", "aws": {"terminationQueue": False}}, "cfcr:aws", "AWS-only"),
    ("dns-zone-without-name", {"aws": {"apiDnsZoneId": "Z0123456789ABC"}}, "cfcr:aws.apiDnsZoneId", "apiDnsName"),
    ("bad-dns-zone-id", {"aws": {"apiDnsZoneId": "zone-1"}}, "cfcr:aws.apiDnsZoneId", "pattern"),
    ("existing-bucket-on-azure", {"cloud": "azure", "region": "westeurope", "etcdBackups": {"existingBucket": "corp-backups"}}, "cfcr:etcdBackups.existingBucket", "not on azure"),
    ("gcp-settings-on-aws", {"gcp": {"protectEtcdDisks": False}}, "cfcr:gcp", "GCP-only"),
    ("azure-settings-on-gcp", {"cloud": "gcp", "region": "europe-west4", "azure": {"protectEtcdDisks": False}}, "cfcr:azure", "Azure-only"),
    ("azure-protect-not-boolean", {"cloud": "azure", "region": "westeurope", "azure": {"protectEtcdDisks": "maybe"}}, "cfcr:azure.protectEtcdDisks", "boolean"),
    ("azure-unknown-setting", {"cloud": "azure", "region": "westeurope", "azure": {"protectEtcdDisk": False}}, "cfcr:azure.protectEtcdDisk", "protectEtcdDisks"),
    ("gcp-dns-zone-without-name", {"cloud": "gcp", "region": "europe-west4", "gcp": {"apiDnsZone": "example-zone"}},
     "cfcr:gcp.apiDnsZone", "apiDnsName"),
    ("gcp-existing-network-without-proxy-subnet", {"cloud": "gcp", "region": "europe-west4", "networking": {
        "existingNetwork": {"networkId": "projects/p/global/networks/n", "subnetIds": ["projects/p/regions/europe-west4/subnetworks/s"]}}},
     "cfcr:gcp.proxyOnlySubnetCidr", "proxy-only subnet"),
    ("gcp-bad-kms-key", {"cloud": "gcp", "region": "europe-west4", "gcp": {"diskKmsKey": "my-key"}}, "cfcr:gcp.diskKmsKey", "pattern"),
    ("etcd-backups-retention-with-existing-bucket", {"etcdBackups": {"existingBucket": "my-bucket", "retentionDays": 30}}, "cfcr:etcdBackups.retentionDays", "lifecycle rule"),
    ("etcd-backups-bad-schedule", {"etcdBackups": {"schedule": "every hour"}}, "cfcr:etcdBackups.schedule", "OnCalendar"),
    ("etcd-backups-bad-bucket", {"etcdBackups": {"existingBucket": "s3://my-bucket"}}, "cfcr:etcdBackups.existingBucket", "bucket name"),
    ("etcd-backups-gcs-bucket-on-aws", {"etcdBackups": {"existingBucket": "my_bucket"}}, "cfcr:etcdBackups.existingBucket", "S3 bucket name on aws"),
    ("two-file-mirrors", {"mirrors": {"files": "https://files.example.com"}, "registryMirrors": {"github.com": ["https://gh.example.com"]}},
     "cfcr:registryMirrors.github.com", "one file mirror applies"),
    ("air-gapped-without-apt-mirror", {"networking": {"airGapped": True}, "kubernetes": _V, "mirrors": {"files": "https://f.example.com",
     "registry": "https://r.example.com"}}, "cfcr:mirrors.apt", "must be set with networking.airGapped"),
    ("air-gapped-on-a-channel", {"networking": {"airGapped": True}, "mirrors": _M, "kubernetes": {"version": "stable"}},
     "cfcr:kubernetes.version", "must be an exact version with networking.airGapped"),
    ("registry-mirror-over-http", {"mirrors": {"registry": "http://registry.example.com"}}, "cfcr:mirrors.registry", "https://"),
    ("ca-bundle-not-pem", {"mirrors": {"caBundle": "not a certificate"}}, "cfcr:mirrors.caBundle", "PEM certificates"),
    ("registry-mirror-not-url", {"mirrors": {"registry": "registry.example.com"}}, "cfcr:mirrors.registry", "http:// or https:// URL"),
    ("admission-entry-without-name", {"admission": {"configuration": [{"configuration": {}}]}}, "cfcr:admission.configuration[0]", "`name`"),
    ("addons-bad-psa-level", {"addons": {"podSecurity": {"enforce": "strict"}}}, "cfcr:addons.podSecurity.enforce", "'privileged', 'baseline' or 'restricted'"),
    ("addons-bad-psa-version", {"addons": {"podSecurity": {"version": "1.36"}}}, "cfcr:addons.podSecurity.version", "latest"),
    ("addons-bad-exempt-namespace", {"addons": {"podSecurity": {"exemptNamespaces": ["Kube_System"]}}}, "cfcr:addons.podSecurity.exemptNamespaces[0]", "DNS label"),
    ("addons-bad-persona", {"addons": {"rbacGroups": {"ops": "root"}}}, "cfcr:addons.rbacGroups.ops", "'cluster-admin', 'platform-operator' or 'viewer'"),
    ("addons-bad-log-size", {"addons": {"containerLogMaxSize": "10MB"}}, "cfcr:addons.containerLogMaxSize", "10Mi"),
    ("addons-too-few-log-files", {"addons": {"containerLogMaxFiles": 1}}, "cfcr:addons.containerLogMaxFiles", "greater than or equal to 2"),
    ("addons-logging-output-without-name", {"addons": {"logging": {"output": {"Match": "*"}}}}, "cfcr:addons.logging.output", "`Name`"),
    ("addons-bad-node-name-pattern", {"addons": {"nodeNamePattern": "([a-z"}}, "cfcr:addons.nodeNamePattern", "regular expression"),
    ("addons-unknown-chart-values", {"addons": {"extraValues": {"istio": {}}}}, "cfcr:addons.extraValues", "allowed: cni"),
    ("addons-unknown-key", {"addons": {"metricServer": False}}, "cfcr:addons.metricServer", "metricsServer"),
    ("duplicate-ca-generation", {"pki": {"caGenerations": [1, 1]}}, "cfcr:pki.caGenerations", "distinct"),
    ("duplicate-user", {"pki": {"users": [{"name": "ops", "groups": ["a"]}, {"name": "ops", "groups": ["b"]}]}},
     "cfcr:pki.users[1].name", "unique"),
    ("tag-key-too-long", {"tags": {"k" * 64: "v"}}, "cfcr:tags", "1-63 characters"),
    ("bad-label-prefix", {"nodePools": [{"name": "a", "labels": {"Bad_Prefix/tier": "x"}}]},
     "cfcr:nodePools[0].labels.Bad_Prefix/tier", "DNS subdomain"),
    ("flag-not-a-flag-name", {"components": {"apiServer": {"extraArgs": {"Profiling": "false"}}}},
     "cfcr:components.apiServer.extraArgs.Profiling", "command-line flag name"),
    ("byo-ca-key-not-pem", {"pki": {"byoCa": {"certificate": "-----BEGIN CERTIFICATE-----", "privateKey": "hello"}}},
     "cfcr:pki.byoCa.privateKey", "PEM private key"),
    ("air-gapped-public-api", {"mirrors": _M, "kubernetes": _V, "networking": {"airGapped": True, "apiPublic": True, "apiAllowedCidrs": ["198.51.100.0/24"]}},
     "cfcr:networking.apiPublic", "must be false with networking.airGapped: true"),
    ("air-gapped-single-nat", {"mirrors": _M, "kubernetes": _V, "networking": {"airGapped": True, "natGateways": "single"}},
     "cfcr:networking.natGateways", "none, or leave it unset"),
    ("air-gapped-nat-per-zone", {"mirrors": _M, "kubernetes": _V, "networking": {"airGapped": True, "natGateways": "perZone"}},
     "cfcr:networking.natGateways", "none, or leave it unset"),
    ("air-gapped-public-subnets", {"mirrors": _M, "kubernetes": _V, "networking": {"airGapped": True, "existingNetwork": {
        "networkId": "vpc-1", "subnetIds": ["subnet-a"], "publicSubnetIds": ["subnet-p"]}}},
     "cfcr:networking.existingNetwork.publicSubnetIds", "must be empty"),
    ("air-gapped-on-gcp", {"cloud": "gcp", "region": "europe-west4", "networking": {"airGapped": True}},
     "cfcr:networking.airGapped", "aws only"),
    ("vpc-endpoints-without-air-gap", {"aws": {"vpcEndpoints": "managed"}}, "cfcr:aws.vpcEndpoints",
     "only with networking.airGapped: true"),
    ("existing-vpc-endpoints-in-a-created-vpc", {"mirrors": _M, "kubernetes": _V, "networking": {"airGapped": True}, "aws": {"vpcEndpoints": "existing"}},
     "cfcr:aws.vpcEndpoints", "needs networking.existingNetwork"),
    ("bad-vpc-endpoints", {"mirrors": _M, "kubernetes": _V, "networking": {"airGapped": True}, "aws": {"vpcEndpoints": "byo"}}, "cfcr:aws.vpcEndpoints",
     "'managed' or 'existing'"),
]


SITE_MIRRORS = {"files": "https://files.example.com", "registry": "https://registry.example.com", "apt": "http://apt.example.com/ubuntu"}


def test_an_air_gapped_network_has_no_nat_and_a_private_api() -> None:
    """The other way round: what airGapped accepts. natGateways left unset becomes none (the
    default stays single elsewhere); none said explicitly, an existing network without public
    subnets, and the site's own endpoints on it, all pass."""
    spec = load_spec(spec_with(mirrors=SITE_MIRRORS, kubernetes={"version": "1.36.6"}, networking={"airGapped": True}), "dev")
    assert spec.networking.air_gapped and spec.networking.nat_gateways == "none" and not spec.networking.api_public
    assert spec.aws.vpc_endpoints == "managed"
    assert load_spec(BASE, "dev").networking.nat_gateways == "single"
    assert load_spec(spec_with(mirrors=SITE_MIRRORS, kubernetes={"version": "1.36.6"}, networking={"airGapped": True, "natGateways": "none"}), "dev").networking.nat_gateways == "none"
    existing = {"networkId": "vpc-1", "subnetIds": ["subnet-a"], "publicSubnetIds": []}
    spec = load_spec(spec_with(mirrors=SITE_MIRRORS, kubernetes={"version": "1.36.6"}, networking={"airGapped": True, "existingNetwork": existing},
                               aws={"vpcEndpoints": "existing"}), "dev")
    assert spec.aws.vpc_endpoints == "existing" and spec.networking.existing_network is not None
    with pytest.raises(ConfigError, match=r"cfcr:mirrors\.apt: got None; must be set with networking\.airGapped"):
        load_spec(spec_with(mirrors={**SITE_MIRRORS, "apt": None}, kubernetes={"version": "1.36.6"},
                            networking={"airGapped": True}), "dev")


@pytest.mark.parametrize(("overrides", "key", "allowed"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_gives_one_clear_error(overrides: dict[str, Any], key: str, allowed: str) -> None:
    config = spec_with(**overrides)
    config = {k: v for k, v in config.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        load_spec(config, "dev")
    problems = caught.value.problems
    assert len(problems) == 1, str(caught.value)
    assert problems[0].key == key, str(caught.value)
    assert allowed in problems[0].allowed, str(caught.value)
    # the message a user sees names the key and what is allowed
    assert key in str(caught.value) and allowed in str(caught.value)


def test_missing_required_key_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_spec({"cfcr:cloud": "aws"}, "dev")
    assert [p.key for p in caught.value.problems] == ["cfcr:region"]
    assert "required" in caught.value.problems[0].allowed


def test_several_faults_are_all_reported_in_one_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_spec(spec_with(cni="weave", controlPlane={"count": 2}), "dev")
    assert sorted(p.key for p in caught.value.problems) == ["cfcr:cni", "cfcr:controlPlane.count"]


# Where the config layer turns bad input into an error: every ``yield Problem(...)`` of the
# cross-key rules and every ``raise ValueError(...)`` of the field validators.
ERROR_SITES: dict[ModuleType, str] = {checks: "yield", values: "raise", schema: "raise", addons: "raise",
                                      backups: "raise"}


def error_sites(module: ModuleType, kind: str) -> dict[int, str]:
    """Line -> source of each error the module can give, read from its code (not a count)."""
    source = inspect.getsource(module)
    lines = source.splitlines()
    out = {}
    for node in ast.walk(ast.parse(source)):
        made: ast.expr | None
        if kind == "yield" and isinstance(node, ast.Yield):
            made = node.value
        elif kind == "raise" and isinstance(node, ast.Raise):
            made = node.exc
        else:
            continue
        if isinstance(made, ast.Call) and isinstance(made.func, ast.Name) and made.func.id in ("Problem", "ValueError"):
            out[node.lineno] = lines[node.lineno - 1].strip()
    return out


def lines_run(config: dict[str, Any], files: set[str]) -> set[tuple[str, int]]:
    """(file, line) of every line of ``files`` that validating ``config`` runs."""
    ran: set[tuple[str, int]] = set()

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename not in files:
            return None

        def line(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "line":
                ran.add((frame.f_code.co_filename, frame.f_lineno))
            return line
        return line

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        load_spec(config, "dev")
    except ConfigError:
        pass
    finally:
        sys.settrace(previous)
    return ran


def test_every_error_the_config_can_give_has_a_bad_case() -> None:
    """Each cross-key rule's problem and each field validator's error is what some BAD case
    runs into, so a rule that stops firing fails that case (and no rule goes untested)."""
    sites = {(str(module.__file__), line): f"{module.__name__}:{line}: {text}"
             for module, kind in ERROR_SITES.items() for line, text in error_sites(module, kind).items()}
    assert len({f for f, _ in sites}) == len(ERROR_SITES)  # every module has errors to give
    files = {f for f, _ in sites}
    reached: set[tuple[str, int]] = set()
    for _, overrides, _, _ in BAD:
        config = {k: v for k, v in spec_with(**overrides).items() if v is not None}
        reached |= lines_run(config, files)
    missing = sorted(text for site, text in sites.items() if site not in reached)
    assert missing == [], "errors no BAD case triggers:\n" + "\n".join(missing)
    for rule in checks.CHECKS:  # every cross-key rule is among them
        first, last = rule.__code__.co_firstlineno, max(line for *_, line in rule.__code__.co_lines() if line)
        assert any(first <= line <= last for (f, line) in sites if f == checks.__file__), rule.__name__


def test_the_bad_cases_are_distinct() -> None:
    assert len({c[0] for c in BAD}) == len(BAD)
    assert len({json.dumps(c[1], sort_keys=True) for c in BAD}) == len(BAD)
