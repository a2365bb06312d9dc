"""kube-proxy as a DaemonSet (kubeadm's ``addon/kube-proxy`` phase is skipped): left out
when Cilium replaces it.

It reaches the API at the load balancer (it implements the ``kubernetes`` Service, so it
cannot use it), with its ServiceAccount token, bound to the built-in ``system:node-proxier``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import yaml

from cfcr.addons.base import LINUX, Addon, cluster_role_binding, meta, sa_subject, service_account
from cfcr.addons.images import ImageRewriter
from cfcr.channels import Release
from cfcr.config import ClusterSpec

NAMESPACE = "kube-system"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
CONFIG_DIR = "/var/lib/kube-proxy"
LABELS = {"k8s-app": "kube-proxy"}


def kube_proxy_config(spec: ClusterSpec) -> dict[str, Any]:
    """The KubeProxyConfiguration (iptables mode)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "bindAddress": "0.0.0.0",
        "clientConnection": {"kubeconfig": f"{CONFIG_DIR}/kubeconfig.conf"},
        "clusterCIDR": spec.networking.pod_cidr,
        "mode": "iptables",
        "metricsBindAddress": "127.0.0.1:10249",
        "healthzBindAddress": "0.0.0.0:10256",
    }


def kube_proxy_kubeconfig(api_server_url: str) -> dict[str, Any]:
    """kube-proxy's kubeconfig: the API load balancer, the pod's ServiceAccount token."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default", "cluster": {"server": api_server_url, "certificate-authority": f"{SA_DIR}/ca.crt"}}],
        "users": [{"name": "default", "user": {"tokenFile": f"{SA_DIR}/token"}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "namespace": "default", "user": "default"}}],
        "current-context": "default",
    }


def kube_proxy_objects(spec: ClusterSpec, release: Release, api_server_url: str,
                       rewriter: ImageRewriter) -> list[dict[str, Any]]:
    """ServiceAccount, binding, ConfigMap and DaemonSet of kube-proxy (pure)."""
    image = rewriter.image(f"registry.k8s.io/kube-proxy:v{release.version}")
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("kube-proxy", NAMESPACE, LABELS),
        "data": {
            "config.conf": yaml.safe_dump(kube_proxy_config(spec), sort_keys=False),
            "kubeconfig.conf": yaml.safe_dump(kube_proxy_kubeconfig(api_server_url), sort_keys=False),
        },
    }
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta("kube-proxy", NAMESPACE, LABELS),
        "spec": {
            "selector": {"matchLabels": dict(LABELS)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": "kube-proxy",
                    "hostNetwork": True,
                    "nodeSelector": dict(LINUX),
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{
                        "name": "kube-proxy",
                        "image": image,
                        "command": [
                            "/usr/local/bin/kube-proxy",
                            f"--config={CONFIG_DIR}/config.conf",
                            "--hostname-override=$(NODE_NAME)",
                        ],
                        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                        "securityContext": {"privileged": True},
                        "resources": {"requests": {"cpu": "50m", "memory": "50Mi"}},
                        "livenessProbe": {
                            "httpGet": {"path": "/livez", "port": 10256, "host": "127.0.0.1"},
                            "initialDelaySeconds": 15, "periodSeconds": 10,
                        },
                        "volumeMounts": [
                            {"name": "kube-proxy", "mountPath": CONFIG_DIR, "readOnly": True},
                            {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
                            {"name": "lib-modules", "mountPath": "/lib/modules", "readOnly": True},
                        ],
                    }],
                    "volumes": [
                        {"name": "kube-proxy", "configMap": {"name": "kube-proxy"}},
                        {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                        {"name": "lib-modules", "hostPath": {"path": "/lib/modules"}},
                    ],
                },
            },
        },
    }
    return [
        service_account("kube-proxy", NAMESPACE),
        cluster_role_binding("cfcr:node-proxier", "system:node-proxier", [sa_subject("kube-proxy", NAMESPACE)]),
        config_map,
        daemonset,
    ]


@dataclass
class KubeProxyArgs:
    """Inputs of :class:`KubeProxy`."""

    spec: ClusterSpec
    """The cluster spec (pod network, mirrors)."""
    api_server_url: str
    """``https://host:6443`` of the API load balancer."""
    release: Release | None = None
    """The channel release (kube-proxy's version = Kubernetes'); default: the spec's."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What every object waits for (the readiness gate, the CNI)."""


class KubeProxy(Addon):
    """kube-proxy (``cfcr:addons:KubeProxy``)."""

    def __init__(self, name: str, args: KubeProxyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cfcr:addons:KubeProxy", name, opts, args.depends_on)
        from cfcr import channels

        release = args.release or channels.resolve(args.spec.kubernetes.version)
        rewriter = ImageRewriter.for_spec(args.spec)
        self.apply(kube_proxy_objects(args.spec, release, args.api_server_url, rewriter))
        self.register_outputs({})
