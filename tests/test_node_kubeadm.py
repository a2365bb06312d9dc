"""kubeadm v1beta4 documents and the KubeletConfiguration rendered for each role."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from cfcr.addons.csr_approver import csr_approver_chart
from cfcr.addons.images import ImageRewriter
from cfcr.channels import resolve
from cfcr.config import ClusterSpec
from cfcr.config.values import kubelet_may_set
from cfcr.node import Role, render_user_data
from cfcr.node.kubeadm import (
    ANONYMOUS_PATHS,
    AUTHN_CONFIG_PATH,
    CA_HASH_PLACEHOLDER,
    NODE_IP_PLACEHOLDER,
    PROVIDER_ID_PLACEHOLDER,
    TOKEN_PLACEHOLDER,
)
from cfcr.node.kubelet import cluster_dns_ip

from tests.support.csr_approver import ServingRequest, decide
from test_node_userdata import load, make_ctx, make_hook, make_spec, write_files

PIN = "sha256:" + "ab" * 32


def kubeadm_docs(spec: ClusterSpec, role: Role, **ctx_args: Any) -> dict[str, dict[str, Any]]:
    ctx = make_ctx(spec, **ctx_args)
    data = render_user_data(spec, resolve(spec.kubernetes.version), ctx, role, make_hook(spec.cloud))
    files = write_files(load(data))
    docs = list(yaml.safe_load_all(files["/etc/cfcr/kubeadm.yaml.tmpl"]["content"]))
    assert files["/etc/cfcr/kubeadm.yaml.tmpl"]["permissions"] == "0600"
    return {d["kind"]: d for d in docs}


def args(items: list[dict[str, str]]) -> dict[str, str]:
    names = [i["name"] for i in items]
    assert len(names) == len(set(names)), names
    return {i["name"]: i["value"] for i in items}


@pytest.mark.parametrize("count", [1, 3, 5])
def test_control_plane_documents(count: int) -> None:
    spec = make_spec("aws", count)
    ctx = make_ctx(spec)
    docs = kubeadm_docs(spec, Role.control_plane(count - 1))
    assert list(docs) == ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"]
    init, cluster = docs["InitConfiguration"], docs["ClusterConfiguration"]
    assert init["apiVersion"] == cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert init["skipPhases"] == ["addon/kube-proxy", "addon/coredns"]
    reg = init["nodeRegistration"]
    assert reg["name"] == f"{spec.name}-cp-{count - 1}"
    assert reg["criSocket"] == "unix:///run/containerd/containerd.sock"
    assert reg["ignorePreflightErrors"] == ["FileAvailable--etc-kubernetes-manifests-etcd.yaml", "ExternalEtcdVersion"]
    assert reg["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    assert args(reg["kubeletExtraArgs"]) == {"cloud-provider": "external", "provider-id": PROVIDER_ID_PLACEHOLDER}
    assert init["localAPIEndpoint"] == {"advertiseAddress": f"10.0.{count - 1}.10", "bindPort": 6443}
    token = init["bootstrapTokens"][0]
    assert token["token"] == TOKEN_PLACEHOLDER and token["ttl"] == "2h0m0s"
    assert token["groups"] == ["system:bootstrappers:kubeadm:default-node-token"]
    assert init["timeouts"]["controlPlaneComponentHealthCheck"] == "20m0s"

    assert cluster["kubernetesVersion"] == f"v{resolve(spec.kubernetes.version).kubernetes.version}"
    assert cluster["controlPlaneEndpoint"] == "api.test.example.com:6443"
    assert cluster["imageRepository"] == "registry.k8s.io"
    assert cluster["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12",
                                     "dnsDomain": "cluster.local"}
    etcd = cluster["etcd"]["external"]
    assert etcd["endpoints"] == [f"https://{m.address}:2379" for m in ctx.control_plane_members]
    assert len(etcd["endpoints"]) == count
    assert etcd["certFile"] == "/etc/kubernetes/pki/apiserver-etcd-client.crt"
    assert etcd["keyFile"] == "/etc/kubernetes/pki/apiserver-etcd-client.key"
    assert etcd["caFile"] == "/etc/kubernetes/pki/etcd/ca.crt"
    assert cluster["dns"] == {"disabled": True} and cluster["proxy"] == {"disabled": True}
    assert cluster["encryptionAlgorithm"] == "ECDSA-P256"
    assert cluster["certificateValidityPeriod"] == "8760h0m0s"
    assert "api.test.example.com" in cluster["apiServer"]["certSANs"]


def test_dns_member_addresses_use_the_node_ip_placeholder() -> None:
    spec = make_spec("gcp", 3)
    init = kubeadm_docs(spec, Role.control_plane(1), dns_members=True)["InitConfiguration"]
    assert init["localAPIEndpoint"]["advertiseAddress"] == NODE_IP_PLACEHOLDER
    cluster = kubeadm_docs(spec, Role.control_plane(1), dns_members=True)["ClusterConfiguration"]
    assert cluster["etcd"]["external"]["endpoints"][2] == "https://cp-2.cluster.internal:2379"


def test_api_server_volumes_and_authentication_config() -> None:
    spec = make_spec("aws", 3, admission={"plugins": ["EventRateLimit"], "configuration": [
        {"name": "EventRateLimit", "configuration": {"apiVersion": "eventratelimit.admission.k8s.io/v1alpha1",
                                                     "kind": "Configuration", "limits": [{"type": "Server", "qps": 50, "burst": 100}]}}]})
    ctx = make_ctx(spec)
    data = render_user_data(spec, resolve(spec.kubernetes.version), ctx, Role.control_plane(0), make_hook("aws"))
    files = write_files(load(data))
    cluster = {d["kind"]: d for d in yaml.safe_load_all(files["/etc/cfcr/kubeadm.yaml.tmpl"]["content"])}["ClusterConfiguration"]
    api = args(cluster["apiServer"]["extraArgs"])
    assert api["enable-admission-plugins"] == "NodeRestriction,DenyServiceExternalIPs,EventRateLimit"
    assert api["admission-control-config-file"] == "/etc/kubernetes/admission/config.yaml"
    assert api["authentication-config"] == AUTHN_CONFIG_PATH
    assert "anonymous-auth" not in api
    mounts = {v["hostPath"]: v for v in cluster["apiServer"]["extraVolumes"]}
    assert set(mounts) == {"/etc/kubernetes/audit", "/var/log/kubernetes/audit", "/etc/kubernetes/encryption",
                           "/etc/kubernetes/admission", "/etc/kubernetes/authn"}
    assert mounts["/var/log/kubernetes/audit"]["readOnly"] is False
    assert all(v["readOnly"] for p, v in mounts.items() if p != "/var/log/kubernetes/audit")
    authn = yaml.safe_load(files[AUTHN_CONFIG_PATH]["content"])
    assert authn["apiVersion"] == "apiserver.config.k8s.io/v1" and authn["kind"] == "AuthenticationConfiguration"
    assert [c["path"] for c in authn["anonymous"]["conditions"]] == list(ANONYMOUS_PATHS)
    admission = yaml.safe_load(files["/etc/kubernetes/admission/config.yaml"]["content"])
    assert admission["plugins"][0]["name"] == "EventRateLimit"


def test_user_extra_args_pass_through_and_win() -> None:
    spec = make_spec("aws", 3, components={
        "apiServer": {"extraArgs": {"audit-log-maxage": "90", "oidc-issuer-url": "https://idp.example.com",
                                    "anonymous-auth": "false"}},
        "controllerManager": {"extraArgs": {"terminated-pod-gc-threshold": "50"}},
        "scheduler": {"extraArgs": {"v": "4"}},
        "kubelet": {"extraArgs": {"cloud-provider": "", "max-pods": "60"},
                    "config": {"podPidsLimit": 8192, "authentication": {"webhook": {"cacheTTL": "30s"}}}},
    })
    docs = kubeadm_docs(spec, Role.control_plane(0))
    cluster = docs["ClusterConfiguration"]
    api = args(cluster["apiServer"]["extraArgs"])
    assert api["audit-log-maxage"] == "90"
    assert api["oidc-issuer-url"] == "https://idp.example.com"
    assert api["profiling"] == "false"
    # The user drives anonymous auth with the flag: no AuthenticationConfiguration then.
    assert api["anonymous-auth"] == "false" and "authentication-config" not in api
    assert "/etc/kubernetes/authn" not in {v["hostPath"] for v in cluster["apiServer"]["extraVolumes"]}
    assert args(cluster["controllerManager"]["extraArgs"])["terminated-pod-gc-threshold"] == "50"
    assert args(cluster["scheduler"]["extraArgs"]) == {"profiling": "false", "bind-address": "127.0.0.1",
                                                        "tls-min-version": "VersionTLS12", "v": "4"}
    kubelet = args(docs["InitConfiguration"]["nodeRegistration"]["kubeletExtraArgs"])
    assert kubelet == {"cloud-provider": "", "provider-id": PROVIDER_ID_PLACEHOLDER, "max-pods": "60"}
    config = docs["KubeletConfiguration"]
    assert config["podPidsLimit"] == 8192
    assert config["authentication"]["webhook"] == {"enabled": True, "cacheTTL": "30s"}
    assert config["authentication"]["anonymous"] == {"enabled": False}


def test_join_configuration_for_a_pool() -> None:
    spec = make_spec("azure", 3)
    docs = kubeadm_docs(spec, Role.worker("gpu"))
    assert list(docs) == ["JoinConfiguration"]
    join = docs["JoinConfiguration"]
    assert join["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    discovery = join["discovery"]
    assert discovery["bootstrapToken"] == {"apiServerEndpoint": "api.test.example.com:6443",
                                           "token": TOKEN_PLACEHOLDER, "caCertHashes": [CA_HASH_PLACEHOLDER]}
    assert discovery["tlsBootstrapToken"] == TOKEN_PLACEHOLDER
    reg = join["nodeRegistration"]
    kubelet = args(reg["kubeletExtraArgs"])
    labels = dict(kv.split("=", 1) for kv in kubelet["node-labels"].split(","))
    assert labels == {"cfcr.io/pool": "gpu", "example.com/accelerator": "a100"}
    assert reg["taints"] == [{"key": "nvidia.com/gpu", "effect": "NoSchedule", "value": "present"},
                             {"key": "dedicated", "effect": "NoExecute"}]
    assert "name" not in reg  # the kubelet registers under its host name, as the CCM expects
    default = kubeadm_docs(spec, Role.worker("default"), pin=PIN)["JoinConfiguration"]
    assert default["discovery"]["bootstrapToken"]["caCertHashes"] == [PIN]
    assert default["nodeRegistration"]["taints"] == []


def test_kubelet_label_rules() -> None:
    assert kubelet_may_set("example.com/x")
    assert kubelet_may_set("node.kubernetes.io/pool")
    assert kubelet_may_set("topology.kubernetes.io/zone")
    assert not kubelet_may_set("node-role.kubernetes.io/worker")
    assert not kubelet_may_set("team.node-restriction.kubernetes.io/a")


def test_kubelet_configuration_basics() -> None:
    spec = make_spec("gcp", 1, networking={"serviceCidr": "172.20.0.0/16", "clusterDomain": "k8s.example"})
    config = kubeadm_docs(spec, Role.control_plane(0))["KubeletConfiguration"]
    assert config["apiVersion"] == "kubelet.config.k8s.io/v1beta1"
    assert config["clusterDNS"] == ["172.20.0.10"] == [cluster_dns_ip("172.20.0.0/16")]
    assert config["clusterDomain"] == "k8s.example"
    assert config["cgroupDriver"] == "systemd"
    assert config["containerRuntimeEndpoint"] == "unix:///run/containerd/containerd.sock"
    assert config["serverTLSBootstrap"] is True and config["rotateCertificates"] is True
    assert config["authentication"]["x509"]["clientCAFile"] == "/etc/kubernetes/pki/ca.crt"


def test_rsa_clusters_tell_kubeadm() -> None:
    spec = make_spec("aws", 1, pki={"keyAlgorithm": "RSA"})
    assert kubeadm_docs(spec, Role.control_plane(0))["ClusterConfiguration"]["encryptionAlgorithm"] == "RSA-2048"


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_every_role_registers_with_the_provider_id_placeholder(cloud: str) -> None:
    """The CCM finds an instance by spec.providerID first; control-plane kubelets register as
    <cluster>-cp-<i>, not the instance's cloud name, so every role must carry --provider-id."""
    spec = make_spec(cloud, 3)
    for role in (Role.control_plane(0), Role.worker("default"), Role.worker("gpu")):
        docs = kubeadm_docs(spec, role)
        first = docs["InitConfiguration" if role.is_control_plane else "JoinConfiguration"]
        extra = args(first["nodeRegistration"]["kubeletExtraArgs"])
        assert extra["provider-id"] == PROVIDER_ID_PLACEHOLDER, (cloud, role.slug)
        assert extra["cloud-provider"] == "external"


def test_no_provider_id_without_the_hook_capability() -> None:
    """A third-party hook without provider_id_command still renders: no placeholder, no identity.sh."""
    from cfcr.node.context import NodeIdentity, UserDataLimit

    class SecretsOnly:
        user_data_limit = UserDataLimit(16384, gzip=True)

        def packages(self) -> list[str]:
            return []

        def setup_commands(self) -> list[str]:
            return []

        def fetch_command(self, secret_id: str) -> str:
            return f"cat /secrets/{secret_id}"

    assert not isinstance(SecretsOnly(), NodeIdentity)
    assert isinstance(make_hook("aws"), NodeIdentity)
    spec = make_spec("aws", 1)
    for role in (Role.control_plane(0), Role.worker("default")):
        data = render_user_data(spec, resolve(spec.kubernetes.version), make_ctx(spec), role, SecretsOnly())
        files = write_files(load(data))
        assert "/etc/cfcr/identity.sh" not in files
        assert PROVIDER_ID_PLACEHOLDER not in files["/etc/cfcr/kubeadm.yaml.tmpl"]["content"]


def test_a_user_provider_id_flag_wins() -> None:
    spec = make_spec("aws", 1, components={"kubelet": {"extraArgs": {"provider-id": "aws:///zone-x/i-0123"}}})
    init = kubeadm_docs(spec, Role.control_plane(0))["InitConfiguration"]
    assert args(init["nodeRegistration"]["kubeletExtraArgs"])["provider-id"] == "aws:///zone-x/i-0123"


def test_kubelet_serving_certificates_are_approved_only_for_the_nodes_own_names_and_addresses() -> None:
    """``serverTLSBootstrap`` makes every kubelet ask for its serving certificate by CSR; the
    approver the addons layer installs (its rules modelled in tests/support/csr_approver.py, fed
    the rendered chart values) signs one only for a name that resolves to the node's own
    addresses inside the node network, and for no address outside it."""
    spec = make_spec("aws", 3)
    chart = csr_approver_chart(spec, ImageRewriter.for_spec(spec))
    node = "ip-10-0-1-5"
    user = f"system:node:{node}"
    dns = {f"{node}.eu-central-1.compute.internal": ["10.0.1.5"], f"{node}.attacker.example": ["203.0.113.9"]}

    def decision(names: tuple[str, ...], ips: tuple[str, ...]) -> tuple[bool, str]:
        return decide(chart.values, ServingRequest(user, user, names, ips), lambda name: dns.get(name, []))

    assert decision((f"{node}.eu-central-1.compute.internal",), ("10.0.1.5",)) == (True, "approved")
    approved, why = decision((f"{node}.nowhere.internal",), ("10.0.1.5",))
    assert not approved and "does not resolve" in why
    approved, why = decision((f"{node}.attacker.example",), ("203.0.113.9",))
    assert not approved and "outside providerIpPrefixes" in why
    approved, why = decision((), ("203.0.113.9",))
    assert not approved and "outside providerIpPrefixes" in why


def test_a_join_pins_every_trusted_generation_and_the_signer_reads_the_signing_ca_alone() -> None:
    """During a CA rotation (cfcr/pki/ROTATION.md) ca.crt holds two CAs: a worker pins both, so
    it joins whichever cluster-info carries; kube-controller-manager signs with the file the
    node writes the signing CA into, alone (its CSR signer reads exactly one certificate)."""
    import dataclasses

    from cfcr.node.paths import SIGNING_CA_PATH

    spec = make_spec("aws", 3)
    other = "sha256:" + "cd" * 32
    ctx = dataclasses.replace(make_ctx(spec, pin=PIN), ca_cert_hashes=[other, PIN])
    data = render_user_data(spec, resolve(spec.kubernetes.version), ctx, Role.worker("default"), make_hook("aws"))
    join = yaml.safe_load(write_files(load(data))["/etc/cfcr/kubeadm.yaml.tmpl"]["content"])
    assert join["discovery"]["bootstrapToken"]["caCertHashes"] == [other, PIN]
    with pytest.raises(ValueError, match="'sha256:x'"):
        dataclasses.replace(ctx, ca_cert_hashes=["sha256:x"])
    cluster = kubeadm_docs(spec, Role.control_plane(0))["ClusterConfiguration"]
    assert args(cluster["controllerManager"]["extraArgs"])["cluster-signing-cert-file"] == SIGNING_CA_PATH
    files = write_files(load(render_user_data(spec, resolve(spec.kubernetes.version), make_ctx(spec),
                                              Role.control_plane(0), make_hook("aws"))))
    assert f"CFCR_SIGNING_CA={SIGNING_CA_PATH}" in files["/etc/cfcr/node.env"]["content"]
