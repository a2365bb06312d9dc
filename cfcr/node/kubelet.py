"""The KubeletConfiguration every node runs, its per-node flags, and per-pool registration
(labels, taints).

``kubeadm init`` uploads this configuration to the ``kubelet-config`` ConfigMap and every
joining node downloads it, so the secure settings below hold on workers too; per-node and
per-pool differences travel as kubelet flags (kubeadm's ``kubeletExtraArgs``:
``--cloud-provider``, ``--provider-id``, ``--node-labels``) and ``registerWithTaints``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from cfcr.config import ClusterSpec, NodePoolConfig
from cfcr.node.containerd import CRI_SOCKET
from cfcr.node.context import NodeContext
from cfcr.node.paths import MANIFESTS_DIR, PKI_DIR
from cfcr.util import deep_merge

KUBELET_API_VERSION = "kubelet.config.k8s.io/v1beta1"

STRONG_CIPHER_SUITES: tuple[str, ...] = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
)
"""AEAD suites with forward secrecy (TLS 1.2; TLS 1.3 suites are not configurable)."""



def cluster_dns_ip(service_cidr: str) -> str:
    """The cluster DNS Service IP: the 10th address of the Service CIDR (kubeadm's choice)."""
    net = ipaddress.ip_network(service_cidr.split(",")[0].strip(), strict=True)
    return str(net.network_address + 10)


def secure_kubelet_config(spec: ClusterSpec) -> dict[str, Any]:
    """cfcr's defaults, before the user's ``components.kubelet.config``."""
    return {
        "apiVersion": KUBELET_API_VERSION,
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        "containerRuntimeEndpoint": CRI_SOCKET,
        "staticPodPath": MANIFESTS_DIR,
        "clusterDomain": spec.networking.cluster_domain,
        "clusterDNS": [cluster_dns_ip(spec.networking.service_cidr)],
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True, "cacheTTL": "2m0s"},
            "x509": {"clientCAFile": f"{PKI_DIR}/ca.crt"},
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": {"cacheAuthorizedTTL": "5m0s", "cacheUnauthorizedTTL": "30s"},
        },
        "readOnlyPort": 0,
        "protectKernelDefaults": True,
        "makeIPTablesUtilChains": True,
        "streamingConnectionIdleTimeout": "5m0s",
        "eventRecordQPS": 5,
        "rotateCertificates": True,
        "serverTLSBootstrap": True,
        "tlsMinVersion": "VersionTLS12",
        "tlsCipherSuites": list(STRONG_CIPHER_SUITES),
        "podPidsLimit": 4096,
        "seccompDefault": True,
        "failSwapOn": True,
        "serializeImagePulls": False,
        "maxParallelImagePulls": 5,
        # graceful node shutdown: the clouds send an ACPI shutdown before they stop, delete or
        # preempt a VM (GCE gives a standard VM up to 90 s, a spot or preemptible one about 30 s:
        # there the kubelet is cut off before its 60 s, critical pods get what is left)
        "shutdownGracePeriod": "60s",
        "shutdownGracePeriodCriticalPods": "20s",
        "containerLogMaxSize": spec.addons.container_log_max_size,
        "containerLogMaxFiles": spec.addons.container_log_max_files,
    }


def kubelet_config(spec: ClusterSpec) -> dict[str, Any]:
    """The KubeletConfiguration: secure defaults with ``spec.components.kubelet.config``
    merged on top (the user wins, key by key)."""
    return deep_merge(secure_kubelet_config(spec), spec.components.kubelet.config)


def node_labels(pool: NodePoolConfig) -> dict[str, str]:
    """Labels the pool's kubelets register with (``--node-labels``): ``cfcr.io/pool`` and
    the pool's own labels, which the config has already checked a kubelet may set."""
    return {"cfcr.io/pool": pool.name, **pool.labels}


def kubelet_extra_args(spec: ClusterSpec, ctx: NodeContext, pool: NodePoolConfig | None,
                       *, provider_id: str | None = None) -> dict[str, str]:
    """Per-node kubelet flags: cloud provider, ``--provider-id`` (``provider_id``, when the
    cloud hook can fill it at boot), the pool's labels; the user's
    ``components.kubelet.extraArgs`` win on a shared name."""
    args = {"cloud-provider": ctx.cloud_provider} if ctx.cloud_provider else {}
    if provider_id is not None:
        args["provider-id"] = provider_id
    if pool is not None:
        args["node-labels"] = ",".join(f"{k}={v}" for k, v in sorted(node_labels(pool).items()))
    return {**args, **spec.components.kubelet.extra_args}


def register_taints(pool: NodePoolConfig) -> list[dict[str, str]]:
    """kubeadm ``nodeRegistration.taints`` of the pool (the kubelet's ``registerWithTaints``)."""
    out = []
    for t in pool.taints:
        taint = {"key": t.key, "effect": t.effect}
        if t.value:
            taint["value"] = t.value
        out.append(taint)
    return out
