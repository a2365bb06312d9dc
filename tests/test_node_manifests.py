"""The control-plane files cfcr.node renders: etcd static Pod and flags, audit policy,
encryption config, admission config.

The etcd Pod is checked against the Kubernetes OpenAPI schema of the channel's version
(strict: unknown fields fail). The audit Policy, EncryptionConfiguration and
AdmissionConfiguration are not in those schemas, so their shape is asserted here, and
the audit policy's first-match rules are evaluated on typical requests.
"""

from __future__ import annotations

import base64
import dataclasses
import fnmatch
import os
from collections import Counter
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cfcr.channels import ImageVersion, Release, resolve
from cfcr.config import ClusterSpec, load_spec
from cfcr.node import paths
from cfcr.node.admission import admission_config
from cfcr.node.audit import audit_policy
from cfcr.node.encryption import (
    KEY_PLACEHOLDER,
    encryption_config_template,
    render_encryption_config,
)
from cfcr.node.etcd import (
    ETCD_CIPHER_SUITES,
    etcd_args,
    etcd_quota_bytes,
    etcd_static_pod,
    initial_cluster,
)
from cfcr.config.topology import ControlPlaneMember

BASE = {"cfcr:cloud": "aws", "cfcr:region": "us-east-1"}


def make_spec(count: int = 3, **extra: Any) -> ClusterSpec:
    cfg: dict[str, Any] = {**BASE, "cfcr:controlPlane": {"count": count}}
    cfg.update({f"cfcr:{k}": v for k, v in extra.items()})
    return load_spec(cfg, "prod")


def make_members(count: int) -> list[ControlPlaneMember]:
    return [ControlPlaneMember(f"cfcr-prod-cp-{i}", f"10.0.{i}.10") for i in range(count)]


def flag_map(args: list[str]) -> dict[str, str]:
    names = [a[2:].split("=", 1)[0] for a in args]
    dupes = [n for n, c in Counter(names).items() if c > 1]
    assert not dupes, f"duplicate flags: {dupes}"
    assert all(a.startswith("--") and "=" in a for a in args)
    return dict(a[2:].split("=", 1) for a in args)


def with_etcd(release: Release, version: str) -> Release:
    return dataclasses.replace(release, etcd=ImageVersion(version=version, source="test"))


# --------------------------------------------------------------------------- etcd Pod


@pytest.mark.parametrize("channel", ["stable", "edge"])
@pytest.mark.parametrize("count", [1, 3, 5])
def test_etcd_pod_validates_strictly_for_the_channels_kubernetes(channel: str, count: int) -> None:
    spec = make_spec(count)
    release = resolve(channel)
    members = make_members(count)
    for i in range(count):
        pod = etcd_static_pod(spec, release, members, i)
        try:
            kubernetes_validate.validate(pod, release.kubernetes.version, strict=True)
        except kubernetes_validate.ValidationError as exc:  # keep the message short
            pytest.fail(f"member {i}: {str(exc).splitlines()[0]}")
        # What the kubelet reads is YAML: the dict must survive a round trip.
        assert yaml.safe_load(yaml.safe_dump(pod)) == pod


def test_schema_validation_is_strict_so_the_test_can_fail() -> None:
    pod = etcd_static_pod(make_spec(), resolve("stable"), make_members(3), 0)
    pod["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, resolve("stable").kubernetes.version, strict=True)


def test_etcd_pod_shape() -> None:
    spec, release, members = make_spec(), resolve("stable"), make_members(3)
    pod = etcd_static_pod(spec, release, members, 1)
    assert pod["metadata"]["namespace"] == "kube-system"
    assert pod["metadata"]["name"] == "etcd"
    assert pod["metadata"]["labels"] == {"component": "etcd", "tier": "control-plane"}
    podspec = pod["spec"]
    assert podspec["hostNetwork"] is True
    assert podspec["priorityClassName"] == "system-node-critical"
    assert podspec["priority"] == 2000001000
    (c,) = podspec["containers"]
    assert c["image"] == release.etcd_image
    assert c["command"][0] == "etcd"
    assert c["command"][1:] == etcd_args(spec, members, 1, release)
    assert c["resources"]["requests"].keys() == {"cpu", "memory"}
    assert "limits" not in c["resources"]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in sc or sc["privileged"] is False

    # Every path the flags name is mounted, from the host path of the same name.
    volumes = {v["name"]: v["hostPath"]["path"] for v in podspec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for m in c["volumeMounts"]:
        assert volumes[m["name"]] == m["mountPath"]
    flags = flag_map(c["command"][1:])
    assert paths.ETCD_DATA_DIR in mounts and not mounts[paths.ETCD_DATA_DIR].get("readOnly")
    assert mounts[paths.ETCD_PKI_DIR]["readOnly"] is True
    for f in ("cert-file", "key-file", "trusted-ca-file", "peer-cert-file", "peer-key-file",
              "peer-trusted-ca-file"):
        assert os.path.dirname(flags[f]) == paths.ETCD_PKI_DIR


def test_etcd_probes_follow_the_channels_etcd_version() -> None:
    spec, members = make_spec(), make_members(3)
    release = resolve("stable")
    assert release.etcd_version.startswith("3.6.")
    c = etcd_static_pod(spec, release, members, 0)["spec"]["containers"][0]
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = c[probe]["httpGet"]
        assert (get["host"], get["port"], get["scheme"]) == ("127.0.0.1", 2381, "HTTP")
    assert flag_map(c["command"][1:])["feature-gates"] == "InitialCorruptCheck=true,CompactHashCheck=true"

    old = with_etcd(release, "3.5.21-0")
    c = etcd_static_pod(spec, old, members, 0)["spec"]["containers"][0]
    health = "/health?exclude=NOSPACE&serializable=true"
    assert c["livenessProbe"]["httpGet"]["path"] == health
    assert c["startupProbe"]["httpGet"]["path"] == health
    assert c["image"] == "registry.k8s.io/etcd:3.5.21-0"
    flags = flag_map(c["command"][1:])
    assert "feature-gates" not in flags  # etcd 3.5 has no feature gates
    assert flags["experimental-initial-corrupt-check"] == "true"
    kubernetes_validate.validate(etcd_static_pod(spec, old, members, 0), "1.36.0", strict=True)

    with pytest.raises(ValueError, match="too old"):
        etcd_static_pod(spec, with_etcd(release, "3.4.23-0"), members, 0)


# --------------------------------------------------------------------------- etcd flags


@pytest.mark.parametrize("count", [1, 3, 5])
def test_etcd_flags_per_member(count: int) -> None:
    spec, members = make_spec(count), make_members(count)
    everyone = ",".join(f"{m.name}=https://{m.address}:2380" for m in members)
    rendered = [flag_map(etcd_args(spec, members, i)) for i in range(count)]
    for i, (m, f) in enumerate(zip(members, rendered, strict=True)):
        assert f["name"] == m.name
        assert f["data-dir"] == "/var/lib/etcd"
        assert f["listen-client-urls"].split(",") == ["https://127.0.0.1:2379", f"https://{m.address}:2379"]
        assert f["advertise-client-urls"] == f"https://{m.address}:2379"
        assert f["listen-peer-urls"] == f["initial-advertise-peer-urls"] == f"https://{m.address}:2380"
        assert f["initial-cluster"] == everyone
        assert f["initial-cluster-state"] == "new"
        assert f["initial-cluster-token"] == spec.name == "cfcr-prod"
        assert f["listen-metrics-urls"] == "http://127.0.0.1:2381"
        for on in ("client-cert-auth", "peer-client-cert-auth"):
            assert f[on] == "true"
        for off in ("auto-tls", "peer-auto-tls"):
            assert f[off] == "false"
        assert f["cert-file"] == "/etc/kubernetes/pki/etcd/server.crt"
        assert f["key-file"] == "/etc/kubernetes/pki/etcd/server.key"
        assert f["trusted-ca-file"] == f["peer-trusted-ca-file"] == "/etc/kubernetes/pki/etcd/ca.crt"
        assert f["peer-cert-file"] == "/etc/kubernetes/pki/etcd/peer.crt"
        assert f["peer-key-file"] == "/etc/kubernetes/pki/etcd/peer.key"
        assert f["tls-min-version"] == "TLS1.2"
        suites = f["cipher-suites"].split(",")
        assert suites == list(ETCD_CIPHER_SUITES)
        assert all("ECDHE" in s and ("GCM" in s or "CHACHA20" in s) for s in suites)
        assert int(f["snapshot-count"]) > 0 and int(f["quota-backend-bytes"]) > 0
    # Only the member's own identity differs between members.
    differing = {k for k in rendered[0] if any(r[k] != rendered[0][k] for r in rendered)}
    if count > 1:
        assert differing == {"name", "listen-client-urls", "advertise-client-urls",
                             "listen-peer-urls", "initial-advertise-peer-urls"}
    # Rendering is deterministic (stable names and order across runs).
    assert etcd_args(spec, members, 0) == etcd_args(spec, list(members), 0)


def test_user_extra_args_win_and_are_not_duplicated() -> None:
    spec = make_spec(3, components={"etcd": {"extraArgs": {
        "snapshot-count": "5000", "heartbeat-interval": "250", "election-timeout": "2500"}}})
    members = make_members(3)
    args = etcd_args(spec, members, 0)
    f = flag_map(args)  # asserts no duplicates
    assert f["snapshot-count"] == "5000"
    assert f["heartbeat-interval"] == "250" and f["election-timeout"] == "2500"
    default = etcd_args(make_spec(3), members, 0)
    # An override keeps the default's place; new flags follow the defaults.
    assert args.index("--snapshot-count=5000") == next(
        i for i, a in enumerate(default) if a.startswith("--snapshot-count="))
    assert args[-2:] == ["--heartbeat-interval=250", "--election-timeout=2500"]
    assert len(args) == len(default) + 2


def test_user_can_move_the_data_dir_and_the_mount_follows() -> None:
    spec = make_spec(3, components={"etcd": {"extraArgs": {"data-dir": "/var/lib/etcd/data"}}})
    pod = etcd_static_pod(spec, resolve("stable"), make_members(3), 0)
    c = pod["spec"]["containers"][0]
    assert "--data-dir=/var/lib/etcd/data" in c["command"]
    assert "/var/lib/etcd/data" in {m["mountPath"] for m in c["volumeMounts"]}
    types = {v["hostPath"]["path"]: v["hostPath"]["type"] for v in pod["spec"]["volumes"]}
    assert types["/var/lib/etcd/data"] == "DirectoryOrCreate"
    default = etcd_static_pod(make_spec(3), resolve("stable"), make_members(3), 0)
    # The default data dir is the etcd disk's mount point: never created on the root disk.
    assert {v["hostPath"]["path"]: v["hostPath"]["type"] for v in default["spec"]["volumes"]}[
        "/var/lib/etcd"] == "Directory"


def test_ipv6_members_are_bracketed_in_urls() -> None:
    members = [ControlPlaneMember("a", "fd00::1"), ControlPlaneMember("b", "fd00::2"),
               ControlPlaneMember("c", "cp-c.example.internal")]
    assert initial_cluster(members) == (
        "a=https://[fd00::1]:2380,b=https://[fd00::2]:2380,c=https://cp-c.example.internal:2380")
    f = flag_map(etcd_args(make_spec(3), members, 1))
    assert f["advertise-client-urls"] == "https://[fd00::2]:2379"


def test_bad_membership_is_refused() -> None:
    spec = make_spec(3)
    with pytest.raises(ValueError, match="out of range"):
        etcd_args(spec, make_members(3), 3)
    with pytest.raises(ValueError, match="unique"):
        etcd_args(spec, [ControlPlaneMember("a", "10.0.0.1"), ControlPlaneMember("a", "10.0.0.2")], 0)
    with pytest.raises(ValueError, match="unique"):
        etcd_args(spec, [ControlPlaneMember("a", "10.0.0.1"), ControlPlaneMember("b", "10.0.0.1")], 0)
    with pytest.raises(ValueError):
        etcd_args(spec, [], 0)


def test_quota_leaves_room_on_the_etcd_disk() -> None:
    assert etcd_quota_bytes(make_spec(3)) == 8 * 1024**3  # default 20 GiB disk
    small = make_spec(3, controlPlane={"count": 3, "etcdDiskGb": 10})
    assert etcd_quota_bytes(small) == 4 * 1024**3
    big = make_spec(3, controlPlane={"count": 3, "etcdDiskGb": 500})
    assert etcd_quota_bytes(big) == 8 * 1024**3


# --------------------------------------------------------------------------- audit


AUDIT_LEVELS = {"None", "Metadata", "Request", "RequestResponse"}
AUDIT_RULE_KEYS = {"level", "users", "userGroups", "verbs", "resources", "namespaces",
                   "nonResourceURLs", "omitStages", "omitManagedFields"}
AUDIT_STAGES = {"RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"}


def audit_level(policy: dict[str, Any], *, user: str = "alice", groups: tuple[str, ...] = (),
                verb: str = "get", group: str = "", resource: str | None = None,
                namespace: str = "", url: str | None = None) -> str:
    """First-match evaluation of an audit Policy, as the API server does it."""
    for rule in policy["rules"]:
        if "users" in rule and user not in rule["users"]:
            continue
        if "userGroups" in rule and not set(groups) & set(rule["userGroups"]):
            continue
        if "verbs" in rule and verb not in rule["verbs"]:
            continue
        if url is not None:
            if "resources" in rule or "namespaces" in rule:
                continue
            if "nonResourceURLs" in rule and not any(
                    url == p or (p.endswith("*") and url.startswith(p[:-1]))
                    for p in rule["nonResourceURLs"]):
                continue
        else:
            if "nonResourceURLs" in rule:
                continue
            if "namespaces" in rule and namespace not in rule["namespaces"]:
                continue
            if "resources" in rule and not any(
                    gr.get("group", "") == group and any(fnmatch.fnmatchcase(resource or "", r)
                                                         for r in gr.get("resources", ["*"]))
                    for gr in rule["resources"]):
                continue
        level: str = rule["level"]
        return level
    return "None"


def test_audit_policy_shape() -> None:
    policy = audit_policy()
    assert policy["apiVersion"] == "audit.k8s.io/v1"
    assert policy["kind"] == "Policy"
    assert policy["omitStages"] == ["RequestReceived"]
    assert set(policy) <= {"apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"}
    assert policy["rules"], "an empty policy logs nothing"
    for rule in policy["rules"]:
        assert set(rule) <= AUDIT_RULE_KEYS, rule
        assert rule["level"] in AUDIT_LEVELS
        assert rule["level"] != "RequestResponse", "responses may carry secrets"
        assert set(rule.get("omitStages", [])) <= AUDIT_STAGES
        assert not ("nonResourceURLs" in rule and ("resources" in rule or "namespaces" in rule))
        for gr in rule.get("resources", []):
            assert set(gr) <= {"group", "resources", "resourceNames"}
            assert isinstance(gr["group"], str)
    assert policy["rules"][-1] == {"level": "Metadata"}, "catch-all must be last"
    assert yaml.safe_load(yaml.safe_dump(policy)) == policy
    assert audit_policy() is not policy  # fresh object, callers may mutate


@pytest.mark.parametrize(("request_", "level"), [
    (dict(verb="create", resource="secrets", namespace="default"), "Metadata"),
    (dict(verb="get", resource="secrets", namespace="kube-system"), "Metadata"),
    (dict(verb="update", resource="configmaps", namespace="default"), "Metadata"),
    (dict(verb="create", group="authentication.k8s.io", resource="tokenreviews"), "Metadata"),
    (dict(verb="create", resource="serviceaccounts/token", namespace="default"), "Metadata"),
    (dict(verb="create", resource="pods/exec", namespace="default"), "Metadata"),
    (dict(verb="create", group="apps", resource="deployments", namespace="default"), "Request"),
    (dict(verb="delete", resource="pods", namespace="default"), "Request"),
    (dict(verb="patch", resource="nodes"), "Request"),
    (dict(verb="list", resource="pods", namespace="default"), "Metadata"),
    (dict(verb="watch", group="apps", resource="deployments"), "Metadata"),
    (dict(verb="get", url="/healthz"), "None"),
    (dict(verb="get", url="/livez/etcd"), "None"),
    (dict(verb="get", url="/readyz"), "None"),
    (dict(verb="get", url="/version"), "None"),
    (dict(verb="get", url="/apis/apps/v1"), "Metadata"),
    (dict(verb="create", resource="events", namespace="default"), "None"),
    (dict(user="system:kube-proxy", verb="watch", group="discovery.k8s.io",
          resource="endpointslices"), "None"),
    (dict(user="system:node:n1", groups=("system:nodes",), verb="get", resource="nodes"), "None"),
    (dict(user="system:node:n1", groups=("system:nodes",), verb="update",
          group="coordination.k8s.io", resource="leases", namespace="kube-node-lease"), "None"),
    (dict(user="system:kube-scheduler", verb="update", group="coordination.k8s.io",
          resource="leases", namespace="kube-system"), "None"),
    # the same lease write by anyone else is audited
    (dict(user="mallory", verb="update", group="coordination.k8s.io",
          resource="leases", namespace="kube-system"), "Request"),
    # nodes reading secrets are audited (not swallowed by the node noise rule)
    (dict(user="system:node:n1", groups=("system:nodes",), verb="get", resource="secrets",
          namespace="default"), "Metadata"),
])
def test_audit_policy_levels(request_: dict[str, Any], level: str) -> None:
    assert audit_level(audit_policy(), **request_) == level


# --------------------------------------------------------------------------- encryption


def test_encryption_config_template_structure() -> None:
    text = encryption_config_template()
    assert text.count(KEY_PLACEHOLDER) == 1
    assert KEY_PLACEHOLDER == "@ENCRYPTION_KEY@"
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == "apiserver.config.k8s.io/v1"
    assert doc["kind"] == "EncryptionConfiguration"
    (entry,) = doc["resources"]
    assert entry["resources"] == ["secrets"]
    first, *rest = entry["providers"]
    (name,) = first
    assert name in {"aescbc", "secretbox"}, "the first provider is the one that encrypts"
    assert first[name] == {"keys": [{"name": "key1", "secret": KEY_PLACEHOLDER}]}
    assert rest == [{"identity": {}}], "identity last, only to read data written before"


def test_encryption_config_with_a_real_key() -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    text = encryption_config_template().replace(KEY_PLACEHOLDER, key)  # what the boot script does
    assert text == render_encryption_config(key)
    doc = yaml.safe_load(text)
    provider = doc["resources"][0]["providers"][0]
    (secret,) = [k["secret"] for p in provider.values() for k in p["keys"]]
    assert secret == key and len(base64.b64decode(secret)) == 32
    with pytest.raises(ValueError):
        render_encryption_config(base64.b64encode(os.urandom(16)).decode())


# --------------------------------------------------------------------------- admission


def test_admission_config_without_entries_holds_the_pod_security_defaults() -> None:
    cfg = admission_config(make_spec(3))
    assert [p["name"] for p in cfg["plugins"]] == ["PodSecurity"]
    defaults = cfg["plugins"][0]["configuration"]["defaults"]
    assert (defaults["enforce"], defaults["warn"], defaults["audit"]) == ("baseline", "restricted", "restricted")


def test_admission_config_passes_entries_through_untouched() -> None:
    entries = [
        {"name": "EventRateLimit", "path": "/etc/kubernetes/admission/eventratelimit.yaml"},
        {"name": "PodSecurity", "configuration": {
            "apiVersion": "pod-security.admission.config.k8s.io/v1",
            "kind": "PodSecurityConfiguration",
            "defaults": {"enforce": "baseline", "enforce-version": "latest",
                         "audit": "restricted", "warn": "restricted"},
            "exemptions": {"usernames": [], "runtimeClasses": [], "namespaces": ["kube-system"]}}},
    ]
    spec = make_spec(3, admission={"plugins": ["EventRateLimit"], "configuration": entries})
    cfg = admission_config(spec)
    assert cfg is not None
    # the user's PodSecurity entry replaces cfcr's default; every entry passes through untouched
    assert cfg == {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AdmissionConfiguration",
                   "plugins": entries}
    cfg["plugins"][1]["configuration"]["defaults"]["enforce"] = "privileged"
    assert spec.admission.configuration[1]["configuration"]["defaults"]["enforce"] == "baseline"
    fresh = admission_config(spec)
    assert yaml.safe_load(yaml.safe_dump(fresh)) == fresh


# --------------------------------------------------------------------------- paths


def test_shared_paths() -> None:
    assert paths.PKI_DIR == "/etc/kubernetes/pki"
    assert paths.ETCD_PKI_DIR == "/etc/kubernetes/pki/etcd"
    assert paths.MANIFESTS_DIR == "/etc/kubernetes/manifests"
    assert paths.ETCD_DATA_DIR == "/var/lib/etcd"
    assert paths.SECRETS_DIR == "/etc/cfcr/secrets"
    for name in ("AUDIT_POLICY_PATH", "AUDIT_LOG_PATH", "ENCRYPTION_CONFIG_PATH",
                 "ADMISSION_CONFIG_PATH", "KUBEADM_CONFIG_PATH"):
        assert getattr(paths, name).startswith("/"), name
    # The API server mounts these directories; they must not overlap the PKI or each other.
    dirs = [os.path.dirname(getattr(paths, n)) for n in (
        "AUDIT_POLICY_PATH", "AUDIT_LOG_PATH", "ENCRYPTION_CONFIG_PATH", "ADMISSION_CONFIG_PATH")]
    assert len(set(dirs)) == len(dirs)
    assert not any(d.startswith(paths.PKI_DIR) for d in dirs)
