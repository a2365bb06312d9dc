"""CIS Kubernetes Benchmark (kube-bench ``cfg/cis-1.12``) items that cfcr's rendered
configuration decides. Each test id carries the benchmark id; a test fails when the
rendered config would fail kube-bench's check for that id.

Items not here are decided elsewhere: kubeadm's own defaults (1.2.4, 1.2.22-1.2.26,
1.3.4, 1.3.5: certificate flags kubeadm always sets from the PKI layout), the etcd
static pod (section 2, tests of ``cfcr.node.etcd``), policies (section 5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from cfcr.channels import resolve
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


class Rendered:
    """One control-plane member's and one worker's rendered files and kubeadm docs."""

    def __init__(self) -> None:
        spec = make_spec("aws", 3)
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
        self.bootstrap = self.cp["/usr/local/lib/cfcr/bootstrap.sh"]["content"]
        self.authn = yaml.safe_load(self.cp["/etc/kubernetes/authn/config.yaml"]["content"])


@pytest.fixture(scope="module")
def r() -> Rendered:
    return Rendered()


def _plugins(value: str) -> list[str]:
    return value.split(",")


CHECKS: dict[str, tuple[str, Callable[[Rendered], bool]]] = {
    # 1.1 control-plane files
    "1.1.7": ("etcd pod spec file 0600", lambda r: r.cp["/etc/kubernetes/manifests/etcd.yaml"]["permissions"] == "0600"),
    "1.1.8": ("etcd pod spec file root:root", lambda r: r.cp["/etc/kubernetes/manifests/etcd.yaml"]["owner"] == "root:root"),
    "1.1.11": ("etcd data dir 0700", lambda r: 'chmod 0700 "$CFCR_ETCD_DATA_DIR"' in r.bootstrap),
    "1.1.13": ("admin.conf / super-admin.conf 0600", lambda r: "chmod 0600 /etc/kubernetes/*.conf" in r.bootstrap),
    "1.1.21": ("PKI keys 0600", lambda r: all(
        line.endswith("|0600'") for line in r.cp["/etc/cfcr/secrets.sh"]["content"].splitlines()
        if line.strip().startswith("'") and ".key|" in line)),
    "1.1.20": ("PKI certificates 0644", lambda r: all(
        line.endswith("|0644'") for line in r.cp["/etc/cfcr/secrets.sh"]["content"].splitlines()
        if line.strip().startswith("'") and ".crt|" in line)),
    # 1.2 API server
    "1.2.1": ("anonymous auth limited to health and discovery paths", lambda r:
              "anonymous-auth" not in r.api and r.api["authentication-config"] == "/etc/kubernetes/authn/config.yaml"
              and {c["path"] for c in r.authn["anonymous"]["conditions"]}
              <= {"/livez", "/readyz", "/healthz", "/api/v1/namespaces/kube-public/configmaps/cluster-info"}),
    "1.2.2": ("no --token-auth-file", lambda r: "token-auth-file" not in r.api),
    "1.2.3": ("DenyServiceExternalIPs", lambda r: "DenyServiceExternalIPs" in _plugins(r.api["enable-admission-plugins"])),
    "1.2.5": ("--kubelet-certificate-authority", lambda r: r.api["kubelet-certificate-authority"] == "/etc/kubernetes/pki/ca.crt"),
    "1.2.6": ("authorization-mode not AlwaysAllow", lambda r: "AlwaysAllow" not in r.api["authorization-mode"].split(",")),
    "1.2.7": ("authorization-mode includes Node", lambda r: "Node" in r.api["authorization-mode"].split(",")),
    "1.2.8": ("authorization-mode includes RBAC", lambda r: "RBAC" in r.api["authorization-mode"].split(",")),
    "1.2.10": ("AlwaysAdmit not enabled", lambda r: "AlwaysAdmit" not in _plugins(r.api["enable-admission-plugins"])),
    "1.2.12": ("ServiceAccount not disabled", lambda r: "ServiceAccount" not in r.api.get("disable-admission-plugins", "")),
    "1.2.13": ("NamespaceLifecycle not disabled", lambda r: "NamespaceLifecycle" not in r.api.get("disable-admission-plugins", "")),
    "1.2.14": ("NodeRestriction", lambda r: "NodeRestriction" in _plugins(r.api["enable-admission-plugins"])),
    "1.2.15": ("API server profiling false", lambda r: r.api["profiling"] == "false"),
    "1.2.16": ("audit-log-path", lambda r: r.api["audit-log-path"] == "/var/log/kubernetes/audit/audit.log"),
    "1.2.17": ("audit-log-maxage >= 30", lambda r: int(r.api["audit-log-maxage"]) >= 30),
    "1.2.18": ("audit-log-maxbackup >= 10", lambda r: int(r.api["audit-log-maxbackup"]) >= 10),
    "1.2.19": ("audit-log-maxsize >= 100", lambda r: int(r.api["audit-log-maxsize"]) >= 100),
    "1.2.20": ("request-timeout set", lambda r: r.api["request-timeout"] == "60s"),
    "1.2.21": ("service-account-lookup true", lambda r: r.api["service-account-lookup"] == "true"),
    "1.2.27": ("encryption-provider-config", lambda r: r.api["encryption-provider-config"] == "/etc/kubernetes/encryption/config.yaml"),
    "1.2.29": ("API server strong ciphers only", lambda r: set(r.api["tls-cipher-suites"].split(",")) <= API_STRONG),
    "1.2.30": ("service-account-extend-token-expiration false", lambda r: r.api["service-account-extend-token-expiration"] == "false"),
    # 1.3 controller manager
    "1.3.1": ("terminated-pod-gc-threshold set", lambda r: int(r.kcm["terminated-pod-gc-threshold"]) > 0),
    "1.3.2": ("controller-manager profiling false", lambda r: r.kcm["profiling"] == "false"),
    "1.3.3": ("use-service-account-credentials true", lambda r: r.kcm["use-service-account-credentials"] == "true"),
    "1.3.6": ("RotateKubeletServerCertificate not disabled", lambda r: "RotateKubeletServerCertificate=false" not in r.kcm.get("feature-gates", "")),
    "1.3.7": ("controller-manager bind-address 127.0.0.1", lambda r: r.kcm["bind-address"] == "127.0.0.1"),
    # 1.4 scheduler
    "1.4.1": ("scheduler profiling false", lambda r: r.sched["profiling"] == "false"),
    "1.4.2": ("scheduler bind-address 127.0.0.1", lambda r: r.sched["bind-address"] == "127.0.0.1"),
    # 4.1 worker node files
    "4.1.1": ("kubelet unit files 0600", lambda r: all(
        r.worker[p]["permissions"] == "0600" for p in ("/etc/systemd/system/kubelet.service",
                                                       "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"))),
    "4.1.2": ("kubelet unit files root:root", lambda r: r.worker["/etc/systemd/system/kubelet.service"]["owner"] == "root:root"),
    "4.1.5": ("kubelet.conf 0600", lambda r: "/etc/kubernetes/*.conf" in r.worker["/usr/local/lib/cfcr/bootstrap.sh"]["content"]),
    "4.1.9": ("kubelet config.yaml 0600", lambda r: "/var/lib/kubelet/config.yaml" in r.bootstrap.split("chmod 0600", 1)[1].split("\n", 1)[0]),
    # 4.2 kubelet
    "4.2.1": ("kubelet anonymous auth false", lambda r: r.kubelet["authentication"]["anonymous"]["enabled"] is False),
    "4.2.2": ("kubelet authorization Webhook", lambda r: r.kubelet["authorization"]["mode"] == "Webhook"),
    "4.2.3": ("kubelet client CA file", lambda r: r.kubelet["authentication"]["x509"]["clientCAFile"] == "/etc/kubernetes/pki/ca.crt"),
    "4.2.4": ("kubelet readOnlyPort 0", lambda r: r.kubelet["readOnlyPort"] == 0),
    "4.2.5": ("streamingConnectionIdleTimeout not 0", lambda r: r.kubelet["streamingConnectionIdleTimeout"] not in ("0", "0s", 0)),
    "4.2.6": ("makeIPTablesUtilChains true", lambda r: r.kubelet["makeIPTablesUtilChains"] is True),
    "4.2.7": ("no --hostname-override", lambda r: "hostname-override" not in r.kubelet_flags
              and "hostname-override" not in r.worker_kubelet_flags),
    "4.2.8": ("eventRecordQPS >= 0", lambda r: r.kubelet["eventRecordQPS"] >= 0),
    "4.2.10": ("rotateCertificates true", lambda r: r.kubelet["rotateCertificates"] is True),
    "4.2.11": ("RotateKubeletServerCertificate not disabled; serving certs from CSRs", lambda r:
               r.kubelet.get("featureGates", {}).get("RotateKubeletServerCertificate", True) is True
               and r.kubelet["serverTLSBootstrap"] is True),
    "4.2.12": ("kubelet strong ciphers only", lambda r: set(r.kubelet["tlsCipherSuites"]) <= KUBELET_STRONG),
    "4.2.13": ("podPidsLimit set", lambda r: r.kubelet["podPidsLimit"] > 0),
    "4.2.14": ("seccompDefault true", lambda r: r.kubelet["seccompDefault"] is True),
    # Older benchmarks' kubelet item (cis-1.8..1.10 4.2.6), kept as cfcr hardening.
    "cfcr-protectKernelDefaults": ("protectKernelDefaults true", lambda r: r.kubelet["protectKernelDefaults"] is True),
}


@pytest.mark.parametrize("check_id", list(CHECKS), ids=[f"{k} {v[0]}" for k, v in CHECKS.items()])
def test_cis(r: Rendered, check_id: str) -> None:
    description, check = CHECKS[check_id]
    assert check(r), f"CIS {check_id}: {description}"


def test_user_override_can_break_a_check_and_the_test_sees_it() -> None:
    """The checks read the rendered flags: a user who turns profiling back on (user
    flags win) makes CIS 1.2.15 fail here, so the checks cannot pass vacuously."""
    spec = make_spec("aws", 1, components={"apiServer": {"extraArgs": {"profiling": "true"}}})
    files = write_files(load(render_user_data(spec, resolve(spec.kubernetes.version), make_ctx(spec),
                                              Role.control_plane(0), make_hook("aws"))))
    cluster = [d for d in yaml.safe_load_all(files["/etc/cfcr/kubeadm.yaml.tmpl"]["content"])
               if d["kind"] == "ClusterConfiguration"][0]
    api = {a["name"]: a["value"] for a in cluster["apiServer"]["extraArgs"]}
    assert api["profiling"] == "true"
