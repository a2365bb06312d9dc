"""CIS Kubernetes Benchmark (kube-bench ``cfg/cis-1.12``) items that cfcr's rendered
configuration decides. Each test id carries the benchmark id; a test fails when the
rendered config would fail kube-bench's check for that id.

Every check is shown to bite: for every id, :data:`VIOLATIONS` holds a configuration that
breaks that item (a user override where the config lets a user break it, else the rendered
files with the one field changed) and the check itself must say False there, while the checks
it does not concern keep holding.

Items not here are decided elsewhere: kubeadm's own defaults (1.2.4, 1.2.22-1.2.26,
1.3.4, 1.3.5: certificate flags kubeadm always sets from the PKI layout), the etcd
static pod (section 2, tests of ``cfcr.node.etcd``), policies (section 5).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pytest
import yaml

from cfcr.channels import resolve
from cfcr.config import ClusterSpec
from cfcr.node import Role, render_user_data

from test_node_userdata import load, make_ctx, make_hook, make_spec, write_files

# kube-bench cis-1.12 valid_elements for 1.2.29 (API server) and 4.2.12 (kubelet).
API_STRONG = set(
    "TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256,"
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,"
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,"
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,"
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256".split(","))
KUBELET_STRONG = set(
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,"
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".split(","))
ANONYMOUS_PATHS = {"/livez", "/readyz", "/healthz", "/api/v1/namespaces/kube-public/configmaps/cluster-info"}
"""1.2.1: what anonymous requests may reach (health and discovery, as CIS allows)."""
EVENT_QPS_FLOOR = 5
"""4.2.8 "Ensure that the --event-qps argument is set to 0 or a level which ensures appropriate
event capture": setting it "too low could result in relevant events not being logged, however
the unlimited setting of 0 could result in a denial of service on the kubelet" (CIS Kubernetes
Benchmark, rationale and impact; its stated default level is 5). cfcr takes the bounded choice:
an explicit level of at least that default; 0 (unlimited) is refused for the DoS the benchmark
names."""
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
BOOTSTRAP = "/usr/local/lib/cfcr/bootstrap.sh"
CLUSTER_CA = "/etc/kubernetes/pki/ca.crt"


class Rendered:
    """One control-plane member's and one worker's rendered files and kubeadm docs."""

    def __init__(self, spec: ClusterSpec | None = None) -> None:
        spec = spec or make_spec("aws", 3)
        release = resolve(spec.kubernetes.version)
        ctx = make_ctx(spec)
        self.cp = write_files(load(render_user_data(spec, release, ctx, Role.control_plane(0), make_hook("aws"))))
        self.worker = write_files(load(render_user_data(spec, release, ctx, Role.worker("default"), make_hook("aws"))))
        docs = {d["kind"]: d for d in yaml.safe_load_all(self.cp["/etc/cfcr/kubeadm.yaml.tmpl"]["content"])}
        cluster = docs["ClusterConfiguration"]
        self.api = {a["name"]: a["value"] for a in cluster["apiServer"]["extraArgs"]}
        self.kcm = {a["name"]: a["value"] for a in cluster["controllerManager"]["extraArgs"]}
        self.sched = {a["name"]: a["value"] for a in cluster["scheduler"]["extraArgs"]}
        self.kubelet: dict[str, Any] = docs["KubeletConfiguration"]
        self.kubelet_flags = {a["name"]: a["value"] for a in docs["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"]}
        join = yaml.safe_load(self.worker["/etc/cfcr/kubeadm.yaml.tmpl"]["content"])
        self.worker_kubelet_flags = {a["name"]: a["value"] for a in join["nodeRegistration"]["kubeletExtraArgs"]}
        self.bootstrap = self.cp[BOOTSTRAP]["content"]
        self.worker_bootstrap = self.worker[BOOTSTRAP]["content"]
        authn = self.cp.get("/etc/kubernetes/authn/config.yaml")  # absent when the user drives anonymous auth
        self.authn: dict[str, Any] = yaml.safe_load(authn["content"]) if authn else {}
        self.etcd_pod = yaml.safe_load(self.cp["/etc/kubernetes/manifests/etcd.yaml"]["content"])


@pytest.fixture(scope="module")
def r() -> Rendered:
    return Rendered()


# ----------------------------------------------------------------------------- precise readers


def _csv(value: object) -> list[str]:
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def _octal(mode: object) -> int | None:
    text = str(mode)
    return int(text, 8) if re.fullmatch(r"0?[0-7]{3}", text) else None


def at_most(mode: object, ceiling: int) -> bool:
    """Whether a mode grants nothing beyond ``ceiling`` (CIS: "ceiling or more restrictive")."""
    value = _octal(mode)
    return value is not None and value & ~ceiling == 0


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(duration: object) -> float | None:
    """A Go duration (``5m0s``, ``60s``) in seconds; None when it is not one."""
    text = str(duration)
    if text == "0":
        return 0.0
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def node_env(files: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``/etc/cfcr/node.env`` as the shell sees it."""
    out: dict[str, str] = {}
    for line in files["/etc/cfcr/node.env"]["content"].splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = " ".join(shlex.split(value)) if value else ""
    return out


def chmods(script: str, env: Mapping[str, str]) -> list[tuple[int, int, list[str]]]:
    """Every ``chmod MODE TARGET...`` the script executes: (line number, mode, targets with
    ``$VAR``/``${VAR}`` taken from ``env``). Comments and other commands are not chmods."""
    out = []
    for number, line in enumerate(script.splitlines()):
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if len(words) >= 3 and words[0] == "chmod" and _octal(words[1]) is not None:
            targets = [re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), w) for w in words[2:]]
            out.append((number, int(words[1], 8), targets))
    return out


def first_call(script: str, command: str) -> int | None:
    """Line number of the first executed line that runs ``command``."""
    for number, line in enumerate(script.splitlines()):
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words and words[0] == command:
            return number
    return None


def chmodded(script: str, env: Mapping[str, str], path: str, ceiling: int, after: str | None = None) -> bool:
    """Whether the script sets ``path`` to ``ceiling`` or stricter (after running ``after``)."""
    start = -1
    if after is not None:
        found = first_call(script, after)
        if found is None:
            return False
        start = found
    return any(number > start and mode & ~ceiling == 0 and any(fnmatch.fnmatchcase(path, t) for t in targets)
               for number, mode, targets in chmods(script, env))


def secret_modes(script: str) -> dict[str, int]:
    """Destination path -> mode of every entry of ``CFCR_SECRETS`` (``'key|path|mode'``)."""
    body = re.search(r"^CFCR_SECRETS=\((.*?)^\)", script, re.S | re.M)
    if body is None:
        return {}
    out = {}
    for entry in shlex.split(body.group(1), comments=True):
        _, path, mode = entry.split("|")
        value = _octal(mode)
        out[path] = -1 if value is None else value
    return out


def etcd_data_dir(r: Rendered) -> str | None:
    for arg in r.etcd_pod["spec"]["containers"][0]["command"]:
        if arg.startswith("--data-dir="):
            return str(arg.removeprefix("--data-dir="))
    return None


def pki_files(r: Rendered, suffix: str) -> dict[str, int]:
    return {p: m for p, m in secret_modes(r.cp["/etc/cfcr/secrets.sh"]["content"]).items() if p.endswith(suffix)}


def feature_gates(flags: Mapping[str, str]) -> dict[str, str]:
    return dict(g.split("=", 1) for g in _csv(flags.get("feature-gates")) if "=" in g)


def anonymous_limited(r: Rendered) -> bool:
    anonymous = r.authn.get("anonymous") or {}
    if not anonymous.get("enabled"):
        return True
    paths = [c.get("path") for c in anonymous.get("conditions") or []]
    return bool(paths) and set(paths) <= ANONYMOUS_PATHS


CHECKS: dict[str, tuple[str, Callable[[Rendered], bool]]] = {
    # 1.1 control-plane files
    "1.1.7": ("etcd pod spec file 0600", lambda r: at_most(r.cp["/etc/kubernetes/manifests/etcd.yaml"]["permissions"], 0o600)),
    "1.1.8": ("etcd pod spec file root:root", lambda r: r.cp["/etc/kubernetes/manifests/etcd.yaml"]["owner"] == "root:root"),
    "1.1.11": ("etcd data dir 0700", lambda r: (d := etcd_data_dir(r)) is not None
               and chmodded(r.bootstrap, node_env(r.cp), d, 0o700)),
    "1.1.13": ("admin.conf / super-admin.conf 0600", lambda r: all(
        chmodded(r.bootstrap, node_env(r.cp), f"/etc/kubernetes/{c}", 0o600, after="run_kubeadm")
        for c in ("admin.conf", "super-admin.conf"))),
    "1.1.21": ("PKI keys 0600", lambda r: bool(keys := pki_files(r, ".key"))
               and all(m >= 0 and m & ~0o600 == 0 for m in keys.values())),
    "1.1.20": ("PKI certificates 0644", lambda r: bool(certs := pki_files(r, ".crt"))
               and all(m >= 0 and m & ~0o644 == 0 for m in certs.values())),
    # 1.2 API server
    "1.2.1": ("anonymous auth limited to health and discovery paths", lambda r:
              r.api.get("anonymous-auth", "false") == "false"
              and r.api.get("authentication-config") == "/etc/kubernetes/authn/config.yaml"
              and "/etc/kubernetes/authn/config.yaml" in r.cp and anonymous_limited(r)),
    "1.2.2": ("no --token-auth-file", lambda r: "token-auth-file" not in r.api),
    "1.2.3": ("DenyServiceExternalIPs", lambda r: "DenyServiceExternalIPs" in _csv(r.api.get("enable-admission-plugins"))),
    "1.2.5": ("--kubelet-certificate-authority", lambda r: r.api.get("kubelet-certificate-authority") == CLUSTER_CA),
    "1.2.6": ("authorization-mode not AlwaysAllow", lambda r: bool(_csv(r.api.get("authorization-mode")))
              and "AlwaysAllow" not in _csv(r.api.get("authorization-mode"))),
    "1.2.7": ("authorization-mode includes Node", lambda r: "Node" in _csv(r.api.get("authorization-mode"))),
    "1.2.8": ("authorization-mode includes RBAC", lambda r: "RBAC" in _csv(r.api.get("authorization-mode"))),
    "1.2.10": ("AlwaysAdmit not enabled", lambda r: "AlwaysAdmit" not in _csv(r.api.get("enable-admission-plugins"))),
    "1.2.12": ("ServiceAccount not disabled", lambda r: "ServiceAccount" not in _csv(r.api.get("disable-admission-plugins"))),
    "1.2.13": ("NamespaceLifecycle not disabled", lambda r: "NamespaceLifecycle" not in _csv(r.api.get("disable-admission-plugins"))),
    "1.2.14": ("NodeRestriction", lambda r: "NodeRestriction" in _csv(r.api.get("enable-admission-plugins"))),
    "1.2.15": ("API server profiling false", lambda r: r.api.get("profiling") == "false"),
    "1.2.16": ("audit-log-path", lambda r: str(r.api.get("audit-log-path", "")).startswith("/")),
    "1.2.17": ("audit-log-maxage >= 30", lambda r: (_int(r.api.get("audit-log-maxage")) or 0) >= 30),
    "1.2.18": ("audit-log-maxbackup >= 10", lambda r: (_int(r.api.get("audit-log-maxbackup")) or 0) >= 10),
    "1.2.19": ("audit-log-maxsize >= 100", lambda r: (_int(r.api.get("audit-log-maxsize")) or 0) >= 100),
    "1.2.20": ("request-timeout set to a positive duration", lambda r: (seconds(r.api.get("request-timeout")) or 0) > 0),
    "1.2.21": ("service-account-lookup true", lambda r: r.api.get("service-account-lookup") == "true"),
    "1.2.27": ("encryption-provider-config where the boot writes it", lambda r:
               r.api.get("encryption-provider-config") == node_env(r.cp).get("CFCR_ENCRYPTION_CONFIG") is not None),
    "1.2.29": ("API server strong ciphers only", lambda r: bool(c := _csv(r.api.get("tls-cipher-suites")))
               and set(c) <= API_STRONG),
    "1.2.30": ("service-account-extend-token-expiration false", lambda r: r.api.get("service-account-extend-token-expiration") == "false"),
    # 1.3 controller manager
    "1.3.1": ("terminated-pod-gc-threshold set", lambda r: (_int(r.kcm.get("terminated-pod-gc-threshold")) or 0) > 0),
    "1.3.2": ("controller-manager profiling false", lambda r: r.kcm.get("profiling") == "false"),
    "1.3.3": ("use-service-account-credentials true", lambda r: r.kcm.get("use-service-account-credentials") == "true"),
    "1.3.6": ("RotateKubeletServerCertificate not disabled", lambda r:
              feature_gates(r.kcm).get("RotateKubeletServerCertificate", "true") == "true"),
    "1.3.7": ("controller-manager bind-address 127.0.0.1", lambda r: r.kcm.get("bind-address") == "127.0.0.1"),
    # 1.4 scheduler
    "1.4.1": ("scheduler profiling false", lambda r: r.sched.get("profiling") == "false"),
    "1.4.2": ("scheduler bind-address 127.0.0.1", lambda r: r.sched.get("bind-address") == "127.0.0.1"),
    # 4.1 worker node files
    "4.1.1": ("kubelet unit files 0600", lambda r: all(
        at_most(r.worker[p]["permissions"], 0o600) for p in ("/etc/systemd/system/kubelet.service",
                                                           "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"))),
    "4.1.2": ("kubelet unit files root:root", lambda r: all(
        r.worker[p]["owner"] == "root:root" for p in ("/etc/systemd/system/kubelet.service",
                                                      "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"))),
    "4.1.5": ("kubelet.conf 0600", lambda r: chmodded(r.worker_bootstrap, node_env(r.worker), KUBELET_CONF, 0o600,
                                                       after="run_kubeadm")),
    "4.1.9": ("kubelet config.yaml 0600", lambda r: chmodded(r.worker_bootstrap, node_env(r.worker), KUBELET_CONFIG,
                                                              0o600, after="run_kubeadm")),
    # 4.2 kubelet
    "4.2.1": ("kubelet anonymous auth false", lambda r: r.kubelet.get("authentication", {}).get("anonymous", {}).get("enabled") is False),
    "4.2.2": ("kubelet authorization Webhook", lambda r: r.kubelet.get("authorization", {}).get("mode") == "Webhook"),
    "4.2.3": ("kubelet client CA file", lambda r: r.kubelet.get("authentication", {}).get("x509", {}).get("clientCAFile") == CLUSTER_CA),
    "4.2.4": ("kubelet readOnlyPort 0", lambda r: r.kubelet.get("readOnlyPort") == 0),
    "4.2.5": ("streamingConnectionIdleTimeout not 0", lambda r: (seconds(r.kubelet.get("streamingConnectionIdleTimeout")) or 0) > 0),
    "4.2.6": ("makeIPTablesUtilChains true", lambda r: r.kubelet.get("makeIPTablesUtilChains") is True),
    "4.2.7": ("no --hostname-override", lambda r: "hostname-override" not in r.kubelet_flags
              and "hostname-override" not in r.worker_kubelet_flags),
    "4.2.8": (f"eventRecordQPS set, bounded and >= {EVENT_QPS_FLOOR}", lambda r:
              (_int(r.kubelet.get("eventRecordQPS")) or 0) >= EVENT_QPS_FLOOR),
    "4.2.10": ("rotateCertificates true", lambda r: r.kubelet.get("rotateCertificates") is True),
    "4.2.11": ("RotateKubeletServerCertificate not disabled; serving certs from CSRs", lambda r:
               (r.kubelet.get("featureGates") or {}).get("RotateKubeletServerCertificate", True) is True
               and r.kubelet.get("serverTLSBootstrap") is True),
    "4.2.12": ("kubelet strong ciphers only", lambda r: bool(c := list(r.kubelet.get("tlsCipherSuites") or []))
               and set(c) <= KUBELET_STRONG),
    "4.2.13": ("podPidsLimit set", lambda r: (_int(r.kubelet.get("podPidsLimit")) or 0) > 0),
    "4.2.14": ("seccompDefault true", lambda r: r.kubelet.get("seccompDefault") is True),
    # Older benchmarks' kubelet item (cis-1.8..1.10 4.2.6), kept as cfcr hardening.
    "cfcr-protectKernelDefaults": ("protectKernelDefaults true", lambda r: r.kubelet.get("protectKernelDefaults") is True),
}


@pytest.mark.parametrize("check_id", list(CHECKS), ids=[f"{k} {v[0]}" for k, v in CHECKS.items()])
def test_cis(r: Rendered, check_id: str) -> None:
    description, check = CHECKS[check_id]
    assert check(r) is True, f"CIS {check_id}: {description}"


# ----------------------------------------------------------------------------- each check bites


@dataclass(frozen=True)
class Violation:
    """A configuration that breaks one CIS item: the user's config, or the rendered files with
    one field changed where no config can break it."""

    check_id: str
    how: str
    config: Mapping[str, Any] | None = None
    """``make_spec`` keyword overrides (a user's stack config)."""
    mutate: Callable[[Rendered], None] | None = None
    """A change to a deep copy of the default render."""
    also: frozenset[str] = field(default_factory=frozenset)
    """Other items the same change necessarily breaks."""


def api(**flags: str) -> dict[str, Any]:
    return {"components": {"apiServer": {"extraArgs": flags}}}


def kcm(**flags: str) -> dict[str, Any]:
    return {"components": {"controllerManager": {"extraArgs": flags}}}


def sched(**flags: str) -> dict[str, Any]:
    return {"components": {"scheduler": {"extraArgs": flags}}}


def kubelet(**config: Any) -> dict[str, Any]:
    return {"components": {"kubelet": {"config": config}}}


def _set(path: str, key: str, value: str, side: str = "cp") -> Callable[[Rendered], None]:
    def mutate(r: Rendered) -> None:
        getattr(r, side)[path][key] = value
    return mutate


def _edit(attribute: str, old: str, new: str) -> Callable[[Rendered], None]:
    def mutate(r: Rendered) -> None:
        text = getattr(r, attribute)
        assert text.count(old) == 1, f"{old!r} not once in {attribute}"
        setattr(r, attribute, text.replace(old, new))
    return mutate


def _edit_file(path: str, old: str, new: str) -> Callable[[Rendered], None]:
    def mutate(r: Rendered) -> None:
        text = r.cp[path]["content"]
        assert text.count(old) == 1, f"{old!r} not once in {path}"
        r.cp[path]["content"] = text.replace(old, new)
    return mutate


def _anonymous_everywhere(r: Rendered) -> None:
    r.authn["anonymous"]["conditions"] = []


CHMOD_CONFS = 'chmod 0600 "$CFCR_KUBERNETES_DIR"/*.conf "$CFCR_KUBELET_DIR/config.yaml"'
VIOLATIONS: list[Violation] = [
    Violation("1.1.7", "etcd pod spec world-readable", mutate=_set("/etc/kubernetes/manifests/etcd.yaml", "permissions", "0644")),
    Violation("1.1.8", "etcd pod spec owned by a user", mutate=_set("/etc/kubernetes/manifests/etcd.yaml", "owner", "ubuntu:ubuntu")),
    Violation("1.1.11", "etcd data dir 0755", mutate=_edit("bootstrap", 'chmod 0700 "$CFCR_ETCD_DATA_DIR"',
                                                            'chmod 0755 "$CFCR_ETCD_DATA_DIR"')),
    Violation("1.1.11", "etcd data dir chmod commented out", mutate=_edit(
        "bootstrap", 'chmod 0700 "$CFCR_ETCD_DATA_DIR"', '# chmod 0700 "$CFCR_ETCD_DATA_DIR"')),
    Violation("1.1.13", "kubeconfig chmod gone", mutate=_edit("bootstrap", CHMOD_CONFS, "true")),
    Violation("1.1.13", "kubeconfig chmod 0644", mutate=_edit(
        "bootstrap", CHMOD_CONFS, 'chmod 0644 "$CFCR_KUBERNETES_DIR"/*.conf "$CFCR_KUBELET_DIR/config.yaml"')),
    Violation("1.1.21", "a key 0640", mutate=_edit_file("/etc/cfcr/secrets.sh", "'ca.key|/etc/kubernetes/pki/ca.key|0600'",
                                                        "'ca.key|/etc/kubernetes/pki/ca.key|0640'")),
    Violation("1.1.20", "a certificate 0666", mutate=_edit_file("/etc/cfcr/secrets.sh", "'ca.crt|/etc/kubernetes/pki/ca.crt|0644'",
                                                                "'ca.crt|/etc/kubernetes/pki/ca.crt|0666'")),
    Violation("1.2.1", "anonymous-auth flag on", api(**{"anonymous-auth": "true"})),
    Violation("1.2.1", "anonymous allowed on every path", mutate=_anonymous_everywhere),
    Violation("1.2.2", "a static token file", api(**{"token-auth-file": "/etc/kubernetes/tokens.csv"})),
    Violation("1.2.3", "plugins without DenyServiceExternalIPs", api(**{"enable-admission-plugins": "NodeRestriction"})),
    Violation("1.2.5", "another kubelet CA", api(**{"kubelet-certificate-authority": "/etc/kubernetes/pki/other.crt"})),
    Violation("1.2.6", "AlwaysAllow", api(**{"authorization-mode": "AlwaysAllow"}), also=frozenset({"1.2.7", "1.2.8"})),
    Violation("1.2.7", "RBAC only", api(**{"authorization-mode": "RBAC"})),
    Violation("1.2.8", "Node only", api(**{"authorization-mode": "Node"})),
    Violation("1.2.10", "AlwaysAdmit", api(**{"enable-admission-plugins": "DenyServiceExternalIPs,NodeRestriction,AlwaysAdmit"})),
    Violation("1.2.12", "ServiceAccount disabled", api(**{"disable-admission-plugins": "ServiceAccount"})),
    Violation("1.2.13", "NamespaceLifecycle disabled", api(**{"disable-admission-plugins": "NamespaceLifecycle"})),
    Violation("1.2.14", "plugins without NodeRestriction", api(**{"enable-admission-plugins": "DenyServiceExternalIPs"})),
    Violation("1.2.15", "profiling on", api(profiling="true")),
    Violation("1.2.16", "no audit log", api(**{"audit-log-path": ""})),
    Violation("1.2.17", "7 days of audit", api(**{"audit-log-maxage": "7"})),
    Violation("1.2.18", "3 audit backups", api(**{"audit-log-maxbackup": "3"})),
    Violation("1.2.19", "10 MB audit files", api(**{"audit-log-maxsize": "10"})),
    Violation("1.2.20", "no request timeout", api(**{"request-timeout": "0s"})),
    Violation("1.2.21", "no service-account lookup", api(**{"service-account-lookup": "false"})),
    Violation("1.2.27", "no encryption at rest", api(**{"encryption-provider-config": ""})),
    Violation("1.2.29", "a CBC cipher", api(**{"tls-cipher-suites": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA"})),
    Violation("1.2.30", "extended token expiry", api(**{"service-account-extend-token-expiration": "true"})),
    Violation("1.3.1", "no pod GC threshold", kcm(**{"terminated-pod-gc-threshold": "0"})),
    Violation("1.3.2", "controller-manager profiling on", kcm(profiling="true")),
    Violation("1.3.3", "shared controller credentials", kcm(**{"use-service-account-credentials": "false"})),
    Violation("1.3.6", "serving cert rotation off", kcm(**{"feature-gates": "RotateKubeletServerCertificate=false"})),
    Violation("1.3.7", "controller-manager on every address", kcm(**{"bind-address": "0.0.0.0"})),
    Violation("1.4.1", "scheduler profiling on", sched(profiling="true")),
    Violation("1.4.2", "scheduler on every address", sched(**{"bind-address": "0.0.0.0"})),
    Violation("4.1.1", "kubelet unit 0644", mutate=_set("/etc/systemd/system/kubelet.service", "permissions", "0644", "worker")),
    Violation("4.1.1", "kubelet drop-in 0644", mutate=_set(
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", "permissions", "0644", "worker")),
    Violation("4.1.2", "kubelet drop-in owned by a user", mutate=_set(
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf", "owner", "ubuntu:ubuntu", "worker")),
    Violation("4.1.5", "kubelet.conf left out of the chmod", mutate=_edit(
        "worker_bootstrap", CHMOD_CONFS, 'chmod 0600 "$CFCR_KUBERNETES_DIR/admin.conf" "$CFCR_KUBELET_DIR/config.yaml"')),
    Violation("4.1.5", "the chmod commented out", mutate=_edit("worker_bootstrap", CHMOD_CONFS, "# " + CHMOD_CONFS),
              also=frozenset({"4.1.9"})),
    Violation("4.1.9", "config.yaml left out of the chmod", mutate=_edit(
        "worker_bootstrap", CHMOD_CONFS, 'chmod 0600 "$CFCR_KUBERNETES_DIR"/*.conf')),
    Violation("4.1.9", "the chmod before kubeadm writes the file", mutate=_edit(
        "worker_bootstrap", "  run_kubeadm\n  " + CHMOD_CONFS, "  " + CHMOD_CONFS + "\n  run_kubeadm"),
        also=frozenset({"4.1.5"})),
    Violation("4.2.1", "anonymous kubelet", kubelet(authentication={"anonymous": {"enabled": True}})),
    Violation("4.2.2", "kubelet AlwaysAllow", kubelet(authorization={"mode": "AlwaysAllow"})),
    Violation("4.2.3", "no client CA", kubelet(authentication={"x509": {"clientCAFile": ""}})),
    Violation("4.2.4", "read-only port", kubelet(readOnlyPort=10255)),
    Violation("4.2.5", "no idle timeout", kubelet(streamingConnectionIdleTimeout="0s")),
    Violation("4.2.5", "no idle timeout, Go style", kubelet(streamingConnectionIdleTimeout="0m0s")),
    Violation("4.2.6", "no iptables util chains", kubelet(makeIPTablesUtilChains=False)),
    Violation("4.2.7", "hostname override", {"components": {"kubelet": {"extraArgs": {"hostname-override": "node-1"}}}}),
    Violation("4.2.8", "unlimited events", kubelet(eventRecordQPS=0)),
    Violation("4.2.8", "one event a second", kubelet(eventRecordQPS=1)),
    Violation("4.2.10", "no client cert rotation", kubelet(rotateCertificates=False)),
    Violation("4.2.11", "serving cert rotation gate off", kubelet(featureGates={"RotateKubeletServerCertificate": False})),
    Violation("4.2.11", "self-signed serving cert", kubelet(serverTLSBootstrap=False)),
    Violation("4.2.12", "a CBC cipher", kubelet(tlsCipherSuites=["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                                                                 "TLS_RSA_WITH_AES_128_CBC_SHA"])),
    Violation("4.2.13", "unlimited pids", kubelet(podPidsLimit=-1)),
    Violation("4.2.14", "no default seccomp", kubelet(seccompDefault=False)),
    Violation("cfcr-protectKernelDefaults", "kernel defaults unprotected", kubelet(protectKernelDefaults=False)),
]


@lru_cache(maxsize=None)
def _rendered_with(config: str) -> Rendered:
    return Rendered(make_spec("aws", 3, **json.loads(config)))


def violated(base: Rendered, violation: Violation) -> Rendered:
    """The render that breaks ``violation.check_id``."""
    if violation.config is not None:
        return copy.deepcopy(_rendered_with(json.dumps(violation.config, sort_keys=True)))
    assert violation.mutate is not None
    bad = copy.deepcopy(base)
    violation.mutate(bad)
    return bad


def test_every_check_has_a_violating_case() -> None:
    assert {v.check_id for v in VIOLATIONS} == set(CHECKS)
    for v in VIOLATIONS:
        assert (v.config is None) != (v.mutate is None), v
        assert v.also <= set(CHECKS) - {v.check_id}, v


@pytest.mark.parametrize("violation", VIOLATIONS, ids=[f"{v.check_id} {v.how}" for v in VIOLATIONS])
def test_each_check_fails_on_a_configuration_that_violates_it(r: Rendered, violation: Violation) -> None:
    """The check says False on the violating render; the other checks still hold there (but
    those the same change necessarily breaks), so each check reads its own item."""
    bad = violated(r, violation)
    description, check = CHECKS[violation.check_id]
    assert check(bad) is False, f"CIS {violation.check_id} ({description}) passes with {violation.how}"
    failing = {cid for cid, (_, c) in CHECKS.items() if not c(bad)}
    assert failing == {violation.check_id, *violation.also}, failing
