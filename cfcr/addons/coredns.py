"""CoreDNS (kubeadm's ``addon/coredns`` phase is skipped): the cluster's DNS.

Critical priority, at least two replicas spread over nodes (required) and zones
(preferred), a PodDisruptionBudget, and the Service at the 10th address of the Service
network, which is what every kubelet's ``clusterDNS`` names.

Scaling: replicas follow the largest the cluster can grow to, one per
:data:`NODES_PER_REPLICA` nodes (control plane + every pool's maxSize), at least two and at
most :data:`MAX_REPLICAS`. A formula fixed at deploy time needs no extra controller and
image; a ``pulumi up`` that changes pool sizes rescales DNS with them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from cfcr.addons.base import CONTROL_PLANE_TOLERATIONS, LINUX, Addon, cluster_role_binding, meta, sa_subject, service_account
from cfcr.addons.images import ImageRewriter
from cfcr.channels import Release
from cfcr.config import ClusterSpec
from cfcr.node.kubelet import cluster_dns_ip

NAMESPACE = "kube-system"
LABELS = {"k8s-app": "kube-dns"}
NODES_PER_REPLICA = 16
MIN_REPLICAS = 2
MAX_REPLICAS = 10


def max_nodes(spec: ClusterSpec) -> int:
    """The most nodes the cluster may have: control plane + every pool's maxSize."""
    return spec.control_plane.count + sum(pool.max_size for pool in spec.node_pools)


def coredns_replicas(spec: ClusterSpec) -> int:
    """CoreDNS replicas for the cluster's largest size (see the module docstring)."""
    return max(MIN_REPLICAS, min(MAX_REPLICAS, math.ceil(max_nodes(spec) / NODES_PER_REPLICA)))


def corefile(cluster_domain: str) -> str:
    """The Corefile: cluster zone from the API, everything else forwarded to the node's resolver."""
    return "\n".join([
        ".:53 {",
        "    errors",
        "    health {",
        "        lameduck 5s",
        "    }",
        "    ready",
        f"    kubernetes {cluster_domain} in-addr.arpa ip6.arpa {{",
        "        pods insecure",
        "        fallthrough in-addr.arpa ip6.arpa",
        "        ttl 30",
        "    }",
        "    prometheus :9153",
        "    forward . /etc/resolv.conf {",
        "        max_concurrent 1000",
        "    }",
        "    cache 30",
        "    loop",
        "    reload",
        "    loadbalance",
        "}",
        "",
    ])


def coredns_objects(spec: ClusterSpec, release: Release, rewriter: ImageRewriter) -> list[dict[str, Any]]:
    """RBAC, ConfigMap, Deployment, PodDisruptionBudget and Service of CoreDNS (pure)."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta("system:coredns"),
        "rules": [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    }
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("coredns", NAMESPACE),
        "data": {"Corefile": corefile(spec.networking.cluster_domain)},
    }
    spread = [
        {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": dict(LABELS)}},
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": dict(LABELS)}},
    ]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("coredns", NAMESPACE, LABELS),
        "spec": {
            "replicas": coredns_replicas(spec),
            "selector": {"matchLabels": dict(LABELS)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",
                    "dnsPolicy": "Default",
                    "nodeSelector": dict(LINUX),
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}, *CONTROL_PLANE_TOLERATIONS],
                    "topologySpreadConstraints": spread,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "coredns",
                        "image": rewriter.image(release.coredns_image),
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}, "limits": {"memory": "170Mi"}},
                        "ports": [
                            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
                        ],
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "initialDelaySeconds": 60,
                                          "timeoutSeconds": 5, "failureThreshold": 5},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}},
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                        },
                        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
                    }],
                    "volumes": [{"name": "config-volume", "configMap": {"name": "coredns",
                                                                        "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                },
            },
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta("coredns", NAMESPACE, LABELS),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(LABELS)}},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("kube-dns", NAMESPACE, {**LABELS, "kubernetes.io/name": "CoreDNS"},
                         {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}),
        "spec": {
            "selector": dict(LABELS),
            "clusterIP": cluster_dns_ip(spec.networking.service_cidr),
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
        },
    }
    return [
        service_account("coredns", NAMESPACE),
        role,
        cluster_role_binding("system:coredns", "system:coredns", [sa_subject("coredns", NAMESPACE)]),
        config, deployment, pdb, service,
    ]


@dataclass
class CoreDnsArgs:
    """Inputs of :class:`CoreDns`."""

    spec: ClusterSpec
    """The cluster spec (service network, cluster domain, pool sizes, mirrors)."""
    release: Release | None = None
    """The channel release (CoreDNS version); default: the spec's."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What every object waits for (the readiness gate, the CNI)."""


class CoreDns(Addon):
    """CoreDNS (``cfcr:addons:CoreDns``)."""

    def __init__(self, name: str, args: CoreDnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cfcr:addons:CoreDns", name, opts, args.depends_on)
        from cfcr import channels

        release = args.release or channels.resolve(args.spec.kubernetes.version)
        rewriter = ImageRewriter.for_spec(args.spec)
        self.apply(coredns_objects(args.spec, release, rewriter))
        self.register_outputs({})
