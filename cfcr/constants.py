"""Facts every layer shares, written once: the control plane's ports, the private API name
and the reserved user names. Import them from here; never write the numbers again."""

from __future__ import annotations

API_PORT = 6443
"""The API server's port (``bindPort``), on the members and on every API load balancer."""
KUBELET_PORT = 10250
"""The kubelet API (the API server's exec/logs, metrics-server's scrapes)."""
ETCD_CLIENT_PORT = 2379
"""etcd client port (TLS, client-certificate auth)."""
ETCD_PEER_PORT = 2380
"""etcd peer port (TLS, client-certificate auth)."""
NODE_PORTS = (30000, 32767)
"""First and last port of the NodePort range: kube-apiserver's default ``--service-node-port-range``
(cfcr does not set it). A Service's NodePorts and its ``healthCheckNodePort`` come from it: where
a cloud's load balancers of Services of type LoadBalancer forward and probe on every node."""
EXCLUDE_FROM_LOAD_BALANCERS_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
"""A node with this label is no backend of a Service's load balancer (the cloud controller
managers leave it out); kubeadm's ``mark-control-plane`` phase puts it on every control-plane node."""

INTERNAL_API_DOMAIN = "cfcr.internal"
"""Parent domain of each cluster's private DNS zone (``<cluster>.cfcr.internal``), where the
API name nodes use lives when ``networking.apiDnsName`` is unset."""


def private_zone_name(cluster: str) -> str:
    """The cluster's private DNS zone: one per cluster, so clusters can share a network."""
    return f"{cluster}.{INTERNAL_API_DOMAIN}"


def private_api_name(cluster: str) -> str:
    """``api.<cluster>.cfcr.internal``: the stable API name nodes use (and the kubeadm endpoint)."""
    return f"api.{private_zone_name(cluster)}"

ADMIN_USER = "admin"
"""The kubeconfig user of ``adminKubeconfig`` (``kubeadm:cluster-admins``)."""
SUPER_ADMIN_USER = "super-admin"
"""The break-glass kubeconfig user (``system:masters``)."""
ADMIN_COMMON_NAME = "kubernetes-admin"
"""The admin certificate's common name (kubeadm's)."""
SUPER_ADMIN_COMMON_NAME = "kubernetes-super-admin"
"""The super-admin certificate's common name (kubeadm's)."""
RESERVED_USER_NAMES = frozenset({ADMIN_USER, SUPER_ADMIN_USER, ADMIN_COMMON_NAME, "kubeadm"})
"""Names ``pki.users`` may not take: the built-in credentials and what kubeadm names its own."""
