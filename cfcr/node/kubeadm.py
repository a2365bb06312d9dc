"""kubeadm v1beta4 configuration: InitConfiguration + ClusterConfiguration (+ the
KubeletConfiguration) for every control-plane member, JoinConfiguration for workers.

Placeholders filled by the boot script on the node (values never ride in user-data):
``@BOOTSTRAP_TOKEN@`` (from the secret store), ``@NODE_IP@`` (the node's address, when
the member's address is not an IP already) and ``@CA_CERT_HASH@`` (when the cloud layer
did not pass the public CA pin, computed from the fetched ``ca.crt``) and
``@PROVIDER_ID@`` (the kubelet's ``--provider-id``, read from the instance metadata by
the cloud hook's :class:`~cfcr.node.context.NodeIdentity` capability when it has one).

Provider ID: a node's kubelet name is not its cloud name (control-plane members register
as their etcd member name, ``<cluster>-cp-<i>``; workers as their host name). The
out-of-tree cloud controller manager looks a node's instance up by ``spec.providerID``
first and falls back to the name (on AWS: the name must equal the private DNS name), so
without a provider ID it may never initialise the node. The kubelet sets it from
``--provider-id``, filled at boot.

Security decisions (CIS Kubernetes Benchmark 1.12 ids in brackets):

* Anonymous requests [1.2.1]: the API server gets an AuthenticationConfiguration
  (``apiserver.config.k8s.io/v1``; configurable anonymous endpoints are GA since 1.34)
  that allows anonymous requests **only** on ``/livez``, ``/readyz`` and ``/healthz``
  (the load balancer's and the kubelet's probes) and on the ``cluster-info`` ConfigMap
  that ``kubeadm join`` discovery reads before it holds a credential. Everything else
  needs authentication even if someone binds a role to ``system:anonymous``.
* Join credentials: the bootstrap token lives two hours. Every control-plane member's
  ``cfcr-join-credentials`` timer (every two minutes) stores a fresh token in the secret store
  whenever the stored one has less than 90 minutes left, and takes the cloud identity that may
  read it away from every worker that has joined; a worker deletes its copies once joined. So
  a pool that scales out days later still joins, and a token taken from a node is dead within
  two hours. (A cloud hook without :class:`~cfcr.node.context.JoinAccess` falls back to a 72h
  token re-applied daily by the maintenance timer.)
* Kubelet serving certificates come from CSRs (``serverTLSBootstrap``) and the API
  server verifies them [1.2.5]; kube-controller-manager does not approve serving CSRs,
  so the addons layer must run an approver that checks node name and addresses
  (e.g. kubelet-csr-approver). Until then ``kubectl logs/exec`` to that node fail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from cfcr.channels import Release
from cfcr.config import ClusterSpec, NodePoolConfig
from cfcr.mirrors import Mirrors
from cfcr.node.containerd import CRI_SOCKET
from cfcr.node.context import NodeContext, Role
from cfcr.pki.specs import is_ip_address
from cfcr.node.kubelet import (
    STRONG_CIPHER_SUITES,
    kubelet_config,
    kubelet_extra_args,
    register_taints,
)
from cfcr.node.paths import (
    ADMISSION_CONFIG_PATH,
    ADMISSION_DIR,
    AUDIT_DIR,
    AUDIT_LOG_DIR,
    AUDIT_LOG_PATH,
    AUDIT_POLICY_PATH,
    ENCRYPTION_CONFIG_PATH,
    ENCRYPTION_DIR,
    PKI_DIR,
    SIGNING_CA_PATH,
)
from cfcr.util import dedupe

KUBEADM_API_VERSION = "kubeadm.k8s.io/v1beta4"
TOKEN_PLACEHOLDER = "@BOOTSTRAP_TOKEN@"
NODE_IP_PLACEHOLDER = "@NODE_IP@"
CA_HASH_PLACEHOLDER = "@CA_CERT_HASH@"
PROVIDER_ID_PLACEHOLDER = "@PROVIDER_ID@"
BOOTSTRAP_TOKEN_TTL_SECONDS = 2 * 3600
"""Life of a join token where the cloud hook can rotate it (:class:`~cfcr.node.context.JoinAccess`):
two hours; the control plane stores a new one when the stored one has less than
:data:`BOOTSTRAP_TOKEN_MIN_LEFT_SECONDS` left, so a VM that reads it can always finish joining."""
BOOTSTRAP_TOKEN_MIN_LEFT_SECONDS = 90 * 60
LEGACY_BOOTSTRAP_TOKEN_TTL_SECONDS = 72 * 3600
"""Where the cloud cannot rotate the token (no JoinAccess yet): 72 hours, re-applied daily."""


def token_ttl(seconds: int) -> str:
    """kubeadm's duration form: ``2h0m0s``."""
    return f"{seconds // 3600}h{seconds % 3600 // 60}m{seconds % 60}s"
IMAGE_REPOSITORY = "registry.k8s.io"

AUTHN_DIR = "/etc/kubernetes/authn"
AUTHN_CONFIG_PATH = f"{AUTHN_DIR}/config.yaml"

SKIP_PHASES: tuple[str, ...] = ("addon/kube-proxy", "addon/coredns")
"""cfcr's addons layer installs kube-proxy (or not, with cilium) and CoreDNS."""

CONTROL_PLANE_IGNORED_PREFLIGHT: dict[str, str] = {
    "FileAvailable--etc-kubernetes-manifests-etcd.yaml":
        "cfcr writes etcd's static pod (its own flags, static membership) before kubeadm init, whose "
        "preflight refuses an existing etcd.yaml even with external etcd",
    "ExternalEtcdVersion":
        "preflight dials the etcd endpoints, which cannot answer yet: etcd is a static pod that starts "
        "with the kubelet, after preflight, on every member at once (parallel boot)",
}
"""The preflight checks a control-plane member ignores, each with the design decision that
makes it fail. The control-plane harness runs kubeadm's preflight on the render and proves
each one fails without its entry, and that no other check does."""

RETRY_IGNORED_PREFLIGHT: dict[str, dict[str, str]] = {
    "control-plane": {
        "Port-6443": "the API server the earlier attempt's static pod started",
        "Port-10257": "the controller manager the earlier attempt started",
        "Port-10259": "the scheduler the earlier attempt started",
        "Port-10250": "the kubelet the earlier attempt started",
        "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml": "written by the earlier attempt",
        "FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml": "written by the earlier attempt",
        "FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml": "written by the earlier attempt",
    },
    "worker": {
        "Port-10250": "the kubelet the earlier attempt started",
        "FileAvailable--etc-kubernetes-pki-ca.crt": "written by the earlier attempt's verified discovery",
        "FileAvailable--etc-kubernetes-bootstrap-kubelet.conf": "written by the earlier attempt's kubelet-start",
    },
}
"""What a retry of ``kubeadm init``/``join`` after a failed attempt may ignore: only what that
attempt of ours left behind (never ``all``). The control-plane harness runs preflight after a
first attempt and proves the list is exactly what remains (the kubelet's port excepted: its
stand-in there does not listen on 10250)."""

ANONYMOUS_PATHS: tuple[str, ...] = (
    "/livez",
    "/readyz",
    "/healthz",
    "/api/v1/namespaces/kube-public/configmaps/cluster-info",
)

API_SERVER_TLS_CIPHER_SUITES: tuple[str, ...] = STRONG_CIPHER_SUITES

_ADMISSION_DEFAULTS: tuple[str, ...] = ("NodeRestriction", "DenyServiceExternalIPs")


def arg_list(args: Mapping[str, str]) -> list[dict[str, str]]:
    """v1beta4 ``extraArgs`` / ``kubeletExtraArgs``: a list of ``{name, value}``."""
    return [{"name": k, "value": v} for k, v in args.items()]


def merge_args(defaults: Mapping[str, str], user: Mapping[str, str]) -> dict[str, str]:
    """cfcr's defaults, then the user's flags (the user wins on a shared name)."""
    out = dict(defaults)
    out.update(user)
    return out


def _provider_id(placeholder: bool) -> str | None:
    """The kubelet's ``--provider-id``: the placeholder the boot script fills, when the cloud
    hook can (``placeholder``); None leaves the flag out."""
    return PROVIDER_ID_PLACEHOLDER if placeholder else None


def uses_authentication_config(spec: ClusterSpec) -> bool:
    """False when the user drives anonymous auth / structured authn with their own flags."""
    user = spec.components.api_server.extra_args
    return "anonymous-auth" not in user and "authentication-config" not in user


def authentication_config() -> dict[str, Any]:
    """The API server's AuthenticationConfiguration: anonymous only on health + discovery."""
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthenticationConfiguration",
        "anonymous": {"enabled": True, "conditions": [{"path": p} for p in ANONYMOUS_PATHS]},
    }


def api_server_defaults(spec: ClusterSpec, *, admission_configured: bool) -> dict[str, str]:
    """cfcr's secure kube-apiserver flags (before the user's)."""
    args: dict[str, str] = {
        "authorization-mode": "Node,RBAC",
        "enable-admission-plugins": ",".join(dedupe([*_ADMISSION_DEFAULTS, *spec.admission.plugins])),
        "profiling": "false",
        "audit-log-path": AUDIT_LOG_PATH,
        "audit-policy-file": AUDIT_POLICY_PATH,
        "audit-log-maxage": "30",
        "audit-log-maxbackup": "10",
        "audit-log-maxsize": "100",
        "encryption-provider-config": ENCRYPTION_CONFIG_PATH,
        "service-account-lookup": "true",
        "service-account-extend-token-expiration": "false",
        "kubelet-certificate-authority": f"{PKI_DIR}/ca.crt",
        "tls-min-version": "VersionTLS12",
        "tls-cipher-suites": ",".join(API_SERVER_TLS_CIPHER_SUITES),
        "request-timeout": "60s",
    }
    if uses_authentication_config(spec):
        args["authentication-config"] = AUTHN_CONFIG_PATH
    if admission_configured:
        args["admission-control-config-file"] = ADMISSION_CONFIG_PATH
    return args


def controller_manager_defaults(spec: ClusterSpec) -> dict[str, str]:
    """cfcr's kube-controller-manager flags (before the user's)."""
    return {
        "profiling": "false",
        "terminated-pod-gc-threshold": "1000",
        "use-service-account-credentials": "true",
        "bind-address": "127.0.0.1",
        "node-cidr-mask-size": str(spec.networking.node_cidr_mask_size),
        "tls-min-version": "VersionTLS12",
        # kubeadm would pass ca.crt, which holds two CAs during a rotation (ROTATION.md), and the
        # CSR signer loads exactly one certificate: the node writes the signing CA alone here
        "cluster-signing-cert-file": SIGNING_CA_PATH,
    }


def scheduler_defaults() -> dict[str, str]:
    """cfcr's kube-scheduler flags (before the user's)."""
    return {"profiling": "false", "bind-address": "127.0.0.1", "tls-min-version": "VersionTLS12"}


def api_server_args(spec: ClusterSpec, *, admission_configured: bool) -> dict[str, str]:
    """kube-apiserver flags: defaults merged with ``components.apiServer.extraArgs``."""
    return merge_args(api_server_defaults(spec, admission_configured=admission_configured),
                      spec.components.api_server.extra_args)


def controller_manager_args(spec: ClusterSpec) -> dict[str, str]:
    """kube-controller-manager flags, user wins."""
    return merge_args(controller_manager_defaults(spec), spec.components.controller_manager.extra_args)


def scheduler_args(spec: ClusterSpec) -> dict[str, str]:
    """kube-scheduler flags, user wins."""
    return merge_args(scheduler_defaults(), spec.components.scheduler.extra_args)


def _volume(name: str, path: str, *, read_only: bool) -> dict[str, Any]:
    return {"name": name, "hostPath": path, "mountPath": path, "readOnly": read_only,
            "pathType": "DirectoryOrCreate"}




def _encryption_algorithm(spec: ClusterSpec) -> str:
    return "ECDSA-P256" if spec.pki.key_algorithm == "ECDSA" else "RSA-2048"


def _timeouts(*, control_plane: bool) -> dict[str, str]:
    t = {"kubeletHealthCheck": "10m0s", "kubernetesAPICall": "2m0s", "tlsBootstrap": "15m0s",
         "discovery": "30m0s"}
    if control_plane:
        t |= {"controlPlaneComponentHealthCheck": "20m0s", "etcdAPICall": "2m0s"}
    return t


def cluster_configuration(spec: ClusterSpec, release: Release, ctx: NodeContext,
                          *, admission_configured: bool) -> dict[str, Any]:
    """ClusterConfiguration: external etcd (every member), networking, hardened components."""
    from cfcr.node.etcd import member_client_url

    volumes = [
        _volume("audit-policy", AUDIT_DIR, read_only=True),
        _volume("audit-log", AUDIT_LOG_DIR, read_only=False),
        _volume("encryption-config", ENCRYPTION_DIR, read_only=True),
    ]
    if admission_configured:
        volumes.append(_volume("admission-config", ADMISSION_DIR, read_only=True))
    if uses_authentication_config(spec):
        volumes.append(_volume("authn-config", AUTHN_DIR, read_only=True))
    sans = dedupe([ctx.api_endpoint, spec.networking.api_dns_name or "", *ctx.api_sans])
    return {
        "apiVersion": KUBEADM_API_VERSION,
        "kind": "ClusterConfiguration",
        "clusterName": spec.name,
        "kubernetesVersion": f"v{release.kubernetes.version}",
        "controlPlaneEndpoint": f"{ctx.api_endpoint}:{ctx.api_port}",
        "certificatesDir": PKI_DIR,
        "imageRepository": Mirrors.of(spec).registry_host(IMAGE_REPOSITORY),
        "encryptionAlgorithm": _encryption_algorithm(spec),
        "certificateValidityPeriod": f"{spec.pki.leaf_validity_hours}h0m0s",
        "caCertificateValidityPeriod": f"{spec.pki.ca_validity_hours}h0m0s",
        "networking": {
            "podSubnet": spec.networking.pod_cidr,
            "serviceSubnet": spec.networking.service_cidr,
            "dnsDomain": spec.networking.cluster_domain,
        },
        "etcd": {
            "external": {
                "endpoints": [member_client_url(m) for m in ctx.control_plane_members],
                "caFile": f"{PKI_DIR}/etcd/ca.crt",
                "certFile": f"{PKI_DIR}/apiserver-etcd-client.crt",
                "keyFile": f"{PKI_DIR}/apiserver-etcd-client.key",
            }
        },
        "apiServer": {
            "certSANs": sans,
            "extraArgs": arg_list(api_server_args(spec, admission_configured=admission_configured)),
            "extraVolumes": volumes,
        },
        "controllerManager": {"extraArgs": arg_list(controller_manager_args(spec))},
        "scheduler": {"extraArgs": arg_list(scheduler_args(spec))},
        "dns": {"disabled": True},
        "proxy": {"disabled": True},
    }


def init_configuration(spec: ClusterSpec, ctx: NodeContext, role: Role,
                       *, provider_id: bool = False, token_seconds: int = BOOTSTRAP_TOKEN_TTL_SECONDS) -> dict[str, Any]:
    """InitConfiguration of control-plane member ``role.index`` (``provider_id``: the
    kubelet gets ``--provider-id=@PROVIDER_ID@``)."""
    member = role.member(ctx)
    address = member.address if is_ip_address(member.address) else NODE_IP_PLACEHOLDER
    return {
        "apiVersion": KUBEADM_API_VERSION,
        "kind": "InitConfiguration",
        "bootstrapTokens": [{
            "token": TOKEN_PLACEHOLDER,
            "description": "cfcr join token (from the secret store; the control plane rotates it)",
            "ttl": token_ttl(token_seconds),
            "usages": ["signing", "authentication"],
            "groups": ["system:bootstrappers:kubeadm:default-node-token"],
        }],
        "localAPIEndpoint": {"advertiseAddress": address, "bindPort": ctx.api_port},
        "nodeRegistration": {
            "name": member.kubelet_name,
            "criSocket": CRI_SOCKET,
            "imagePullPolicy": "IfNotPresent",
            "kubeletExtraArgs": arg_list(kubelet_extra_args(spec, ctx, None, provider_id=_provider_id(provider_id))),
            "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
            "ignorePreflightErrors": list(CONTROL_PLANE_IGNORED_PREFLIGHT),
        },
        "skipPhases": list(SKIP_PHASES),
        "timeouts": _timeouts(control_plane=True),
    }


def join_configuration(spec: ClusterSpec, ctx: NodeContext, pool: NodePoolConfig,
                       *, provider_id: bool = False) -> dict[str, Any]:
    """JoinConfiguration of a worker of ``pool``: token discovery pinned to every trusted
    generation of the cluster CA (``provider_id``: the kubelet gets ``--provider-id=@PROVIDER_ID@``)."""
    return {
        "apiVersion": KUBEADM_API_VERSION,
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": f"{ctx.api_endpoint}:{ctx.api_port}",
                "token": TOKEN_PLACEHOLDER,
                "caCertHashes": list(ctx.ca_cert_hashes) or [ctx.ca_cert_hash or CA_HASH_PLACEHOLDER],
            },
            "tlsBootstrapToken": TOKEN_PLACEHOLDER,
        },
        "nodeRegistration": {
            "criSocket": CRI_SOCKET,
            "imagePullPolicy": "IfNotPresent",
            "kubeletExtraArgs": arg_list(kubelet_extra_args(spec, ctx, pool, provider_id=_provider_id(provider_id))),
            "taints": register_taints(pool),
        },
        "timeouts": _timeouts(control_plane=False),
    }


def kubeadm_documents(spec: ClusterSpec, release: Release, ctx: NodeContext, role: Role,
                      *, admission_configured: bool, provider_id: bool = False,
                      token_seconds: int = BOOTSTRAP_TOKEN_TTL_SECONDS) -> list[dict[str, Any]]:
    """The documents of the role's kubeadm config file, in order (``provider_id``: the
    kubelet's ``--provider-id`` is the ``@PROVIDER_ID@`` placeholder the node fills)."""
    if role.is_control_plane:
        return [
            init_configuration(spec, ctx, role, provider_id=provider_id, token_seconds=token_seconds),
            cluster_configuration(spec, release, ctx, admission_configured=admission_configured),
            kubelet_config(spec),
        ]
    return [join_configuration(spec, ctx, role.node_pool(spec), provider_id=provider_id)]


def dump_documents(docs: Sequence[Mapping[str, Any]]) -> str:
    """A multi-document YAML stream."""
    return yaml.dump_all(list(docs), Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),  # libyaml: same text, faster
                         sort_keys=False, default_flow_style=False)
