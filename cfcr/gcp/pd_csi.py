"""The Compute Engine persistent disk CSI driver (``pd.csi.storage.gke.io``), authored.

The driver publishes no Helm chart, so cfcr writes its objects from the driver's own
``deploy/kubernetes/base`` manifests (``controller/controller.yaml``,
``node_linux/node.yaml``, ``controller/cluster_setup.yaml``,
``controller/csidriver_info.yaml`` in kubernetes-sigs/gcp-compute-persistent-disk-csi-driver),
at the images the channel pins (``cloud.gcp.csi`` in ``releases.yaml``: the driver and its
sidecars). What differs from upstream, and why:

* **Controller**: a Deployment on the control-plane nodes on the host network (as upstream),
  with the control plane's service account from the metadata server instead of a key file
  (upstream mounts ``cloud-sa.json`` from a Secret): pods that are not host-network cannot
  reach the metadata server on a cfcr cluster. One replica per control-plane node, at most
  two (the sidecars elect a leader; their health ports are host ports, so two replicas never
  share a node).
* **Node plugin**: a DaemonSet on every node, host-network as upstream (it reads its zone and
  instance from the metadata server, which only host-network pods reach), privileged, with
  upstream's host mounts; every taint tolerated.
* **No snapshotter**: the ``csi-snapshotter`` sidecar exits when the VolumeSnapshot CRDs are
  missing, and cfcr installs no snapshot controller or CRDs (the EBS chart likewise leaves
  it out unless the snapshot API exists).
* **No data cache** flags (``--enable-*-data-cache``: GKE's local SSD cache), no Windows
  node plugin, no PodSecurityPolicy roles (gone since Kubernetes 1.25), cfcr's priority
  classes instead of upstream's.
* Sidecar flags as upstream, without ``--feature-gates=Topology=true`` (topology has been
  GA in external-provisioner since v2.0.0 and is on whenever the driver reports it), with
  read access to VolumeAttributesClasses (external-provisioner 6 and external-resizer 2
  watch them).
"""

from __future__ import annotations

from typing import Any

from cfcr.addons.base import (
    CONTROL_PLANE_LABEL,
    CONTROL_PLANE_TOLERATIONS,
    LINUX,
    cluster_role_binding,
    meta,
    sa_subject,
    service_account,
)
from cfcr.addons.cloud import CloudFacts, host_network_pod_spec
from cfcr.addons.images import ImageRewriter
from cfcr.channels import CloudComponent

NAMESPACE = "kube-system"
DRIVER = "pd.csi.storage.gke.io"
CONTROLLER = "csi-gce-pd-controller"
"""The controller Deployment (and its ``app`` label)."""
NODE = "csi-gce-pd-node"
"""The node plugin DaemonSet (and its ``app`` label)."""
CONTROLLER_SA = "csi-gce-pd-controller-sa"
NODE_SA = "csi-gce-pd-node-sa"
CONTROLLER_MAX_REPLICAS = 2
SOCKET_DIR = "/csi"
PLUGIN_DIR = f"/var/lib/kubelet/plugins/{DRIVER}/"
HEALTH_PORTS = {"csi-provisioner": 22011, "csi-attacher": 22012, "csi-resizer": 22013}
"""The sidecars' ``--http-endpoint`` ports (upstream's), host ports on the control-plane nodes."""

_R = "rbac.authorization.k8s.io/v1"


def _role(kind: str, name: str, rules: list[dict[str, Any]], namespace: str | None = None) -> dict[str, Any]:
    return {"apiVersion": _R, "kind": kind, "metadata": meta(name, namespace), "rules": rules}


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


VOLUME_ATTRIBUTES = _rule(["storage.k8s.io"], ["volumeattributesclasses"], ["get", "list", "watch"])

CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    # upstream cluster_setup.yaml (external-provisioner's rbac.yaml), plus VolumeAttributesClasses
    "csi-gce-pd-provisioner-role": [
        _rule([""], ["persistentvolumes"], ["get", "list", "watch", "create", "delete"]),
        _rule([""], ["persistentvolumeclaims"], ["get", "list", "watch", "update"]),
        _rule(["storage.k8s.io"], ["storageclasses"], ["get", "list", "watch"]),
        _rule([""], ["events"], ["list", "watch", "create", "update", "patch"]),
        _rule(["storage.k8s.io"], ["csinodes"], ["get", "list", "watch"]),
        _rule([""], ["nodes"], ["get", "list", "watch"]),
        _rule(["snapshot.storage.k8s.io"], ["volumesnapshots"], ["get", "list"]),
        _rule(["snapshot.storage.k8s.io"], ["volumesnapshotcontents"], ["get", "list"]),
        _rule(["storage.k8s.io"], ["volumeattachments"], ["get", "list", "watch"]),
        VOLUME_ATTRIBUTES,
    ],
    "csi-gce-pd-attacher-role": [
        _rule([""], ["persistentvolumes"], ["get", "list", "watch", "update", "patch"]),
        _rule([""], ["nodes"], ["get", "list", "watch"]),
        _rule(["storage.k8s.io"], ["csinodes"], ["get", "list", "watch"]),
        _rule(["storage.k8s.io"], ["volumeattachments"], ["get", "list", "watch", "update", "patch"]),
        _rule(["storage.k8s.io"], ["volumeattachments/status"], ["patch"]),
    ],
    "csi-gce-pd-resizer-role": [
        _rule([""], ["persistentvolumes"], ["get", "list", "watch", "update", "patch"]),
        _rule([""], ["persistentvolumeclaims"], ["get", "list", "watch"]),
        _rule([""], ["persistentvolumeclaims/status"], ["update", "patch"]),
        _rule([""], ["events"], ["list", "watch", "create", "update", "patch"]),
        _rule([""], ["pods"], ["get", "list", "watch"]),
        VOLUME_ATTRIBUTES,
    ],
}
"""The controller's cluster roles (bound to its service account)."""

NODE_RULES = [_rule([""], ["nodes"], ["get", "list"])]
"""The node plugin's role (upstream's ``csi-gce-pd-node-deploy`` without its PodSecurityPolicy rule)."""

LEADER_ELECTION_RULES = [_rule(["coordination.k8s.io"], ["leases"], ["get", "watch", "list", "delete", "update", "create"])]


def controller_replicas(control_plane_count: int) -> int:
    """One controller per control-plane node, at most :data:`CONTROLLER_MAX_REPLICAS`."""
    return max(1, min(CONTROLLER_MAX_REPLICAS, control_plane_count))


def _namespace_env() -> dict[str, Any]:
    return {"name": "PDCSI_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}


def _socket_mount() -> dict[str, str]:
    return {"name": "socket-dir", "mountPath": SOCKET_DIR}


def _sidecar(name: str, image: str, extra: list[str]) -> dict[str, Any]:
    port = HEALTH_PORTS[name]
    return {
        "name": name,
        "image": image,
        "args": ["--v=2", f"--csi-address={SOCKET_DIR}/csi.sock", f"--http-endpoint=:{port}", "--leader-election",
                 "--leader-election-namespace=$(PDCSI_NAMESPACE)", *extra],
        "env": [_namespace_env()],
        "ports": [{"containerPort": port, "name": "http-endpoint", "protocol": "TCP"}],
        "livenessProbe": {"failureThreshold": 1, "httpGet": {"path": "/healthz/leader-election", "port": "http-endpoint"},
                          "initialDelaySeconds": 10, "timeoutSeconds": 10, "periodSeconds": 20},
        "volumeMounts": [_socket_mount()],
    }


def controller_deployment(pin: CloudComponent, rewriter: ImageRewriter, control_plane_count: int) -> dict[str, Any]:
    """The controller: the provisioner, attacher and resizer sidecars and the driver's
    controller service, host-network on the control-plane nodes."""
    labels = {"app": CONTROLLER}
    pod = host_network_pod_spec({
        "priorityClassName": "system-cluster-critical",
        "serviceAccountName": CONTROLLER_SA,
        "nodeSelector": {**LINUX, CONTROL_PLANE_LABEL: ""},
        "tolerations": CONTROL_PLANE_TOLERATIONS,
        "containers": [
            _sidecar("csi-provisioner", rewriter.image(pin.sidecar("csi-provisioner")),
                     ["--timeout=250s", "--extra-create-metadata", "--default-fstype=ext4",
                      "--controller-publish-readonly=true"]),
            _sidecar("csi-attacher", rewriter.image(pin.sidecar("csi-attacher")), ["--timeout=250s"]),
            _sidecar("csi-resizer", rewriter.image(pin.sidecar("csi-resizer")), ["--handle-volume-inuse-error=false"]),
            {
                "name": "gce-pd-driver",
                "image": rewriter.image(pin.image),
                "args": ["--v=2", f"--endpoint=unix:{SOCKET_DIR}/csi.sock", "--run-node-service=false"],
                "volumeMounts": [_socket_mount()],
            },
        ],
        "volumes": [{"name": "socket-dir", "emptyDir": {}}],
    })
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(CONTROLLER, NAMESPACE, labels),
        "spec": {
            "replicas": controller_replicas(control_plane_count),
            "selector": {"matchLabels": dict(labels)},
            # host ports: a new replica cannot start beside the old one on the same node
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


def _host_path(name: str, path: str, kind: str = "Directory") -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": path, "type": kind}}


def node_daemonset(pin: CloudComponent, rewriter: ImageRewriter) -> dict[str, Any]:
    """The node plugin on every node: the registrar and the driver's node service,
    host-network and privileged as upstream."""
    labels = {"app": NODE}
    node_env = {"name": "KUBE_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    mounts = [
        {"name": "kubelet-dir", "mountPath": "/var/lib/kubelet", "mountPropagation": "Bidirectional"},
        {"name": "plugin-dir", "mountPath": SOCKET_DIR},
        {"name": "device-dir", "mountPath": "/dev"},
        # upstream: the driver triggers the host's udevadm from the container
        {"name": "udev-rules-etc", "mountPath": "/etc/udev"},
        {"name": "udev-rules-lib", "mountPath": "/lib/udev"},
        {"name": "udev-socket", "mountPath": "/run/udev"},
        {"name": "sys", "mountPath": "/sys"},
        {"name": "lib-modules", "mountPath": "/lib/modules"},
    ]
    pod = host_network_pod_spec({
        "priorityClassName": "system-node-critical",
        "serviceAccountName": NODE_SA,
        "nodeSelector": dict(LINUX),
        "tolerations": [{"operator": "Exists"}],
        "containers": [
            {
                "name": "csi-driver-registrar",
                "image": rewriter.image(pin.sidecar("csi-node-driver-registrar")),
                "args": ["--v=2", f"--csi-address={SOCKET_DIR}/csi.sock",
                         f"--kubelet-registration-path={PLUGIN_DIR}csi.sock"],
                "env": [node_env],
                "volumeMounts": [{"name": "plugin-dir", "mountPath": SOCKET_DIR},
                                 {"name": "registration-dir", "mountPath": "/registration"}],
            },
            {
                "name": "gce-pd-driver",
                "image": rewriter.image(pin.image),
                "args": ["--v=2", f"--endpoint=unix:{SOCKET_DIR}/csi.sock", "--run-controller-service=false"],
                "securityContext": {"privileged": True},
                "env": [node_env],
                "volumeMounts": mounts,
            },
        ],
        "volumes": [
            _host_path("registration-dir", "/var/lib/kubelet/plugins_registry/"),
            _host_path("kubelet-dir", "/var/lib/kubelet"),
            _host_path("plugin-dir", PLUGIN_DIR, "DirectoryOrCreate"),
            _host_path("device-dir", "/dev"),
            _host_path("udev-rules-etc", "/etc/udev"),
            _host_path("udev-rules-lib", "/lib/udev"),
            _host_path("udev-socket", "/run/udev"),
            _host_path("sys", "/sys"),
            _host_path("lib-modules", "/lib/modules"),
        ],
    })
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta(NODE, NAMESPACE, labels),
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


def pd_csi_objects(facts: CloudFacts, pin: CloudComponent, rewriter: ImageRewriter,
                   control_plane_count: int) -> list[dict[str, Any]]:
    """Every object of the driver (pure): service accounts, RBAC, the CSIDriver, the
    controller and the node plugin. ``facts`` is unused (the driver learns its project and
    zone from the metadata server) and kept for the profile's signature."""
    del facts
    controller = sa_subject(CONTROLLER_SA, NAMESPACE)
    objects: list[dict[str, Any]] = [service_account(CONTROLLER_SA, NAMESPACE), service_account(NODE_SA, NAMESPACE)]
    for role, rules in CLUSTER_ROLES.items():
        objects.append(_role("ClusterRole", role, rules))
        objects.append(cluster_role_binding(role.removesuffix("-role") + "-binding", role, [controller]))
    objects += [
        _role("ClusterRole", "csi-gce-pd-node", NODE_RULES),
        cluster_role_binding("csi-gce-pd-node", "csi-gce-pd-node", [sa_subject(NODE_SA, NAMESPACE)]),
        _role("Role", "csi-gce-pd-leaderelection-role", LEADER_ELECTION_RULES, NAMESPACE),
        {"apiVersion": _R, "kind": "RoleBinding",
         "metadata": meta("csi-gce-pd-controller-leaderelection-binding", NAMESPACE),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "csi-gce-pd-leaderelection-role"},
         "subjects": [controller]},
        {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": meta(DRIVER),
         "spec": {"attachRequired": True, "podInfoOnMount": False}},
        controller_deployment(pin, rewriter, control_plane_count),
        node_daemonset(pin, rewriter),
    ]
    return objects
