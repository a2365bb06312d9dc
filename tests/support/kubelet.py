"""The harness's stand-in for the kubelet (no container runtime runs here).

It does, on one node of the harness, the parts of the kubelet's job that the control plane and
kubeadm can see, with the node's own files and credentials:

* **static pods**: once kubeadm's ``kubelet-start`` phase has written
  ``/var/lib/kubelet/config.yaml`` (the moment a real kubelet starts), every Pod in
  ``/etc/kubernetes/manifests`` runs as a process: its container's ``command`` + ``args``
  exactly, chrooted in the node root (:mod:`tests.support.noderoot`) with its hostPath volumes
  mounted at their mount paths; restarted with back-off when it exits, restarted when its
  manifest changes, stopped when it goes. The program comes from the tool cache, by the
  command's name;
* **mirror Pods**: once the Node is registered, for each static pod a Pod
  ``<name>-<node>`` in the manifest's namespace, as the kubelet makes it (with the node's own
  credential, which the Node authorizer and NodeRestriction allow for pods bound to itself):
  the manifest's labels, annotations and spec, bound to the node, a controller owner reference
  to the Node, ``kubernetes.io/config.hash`` = ``kubernetes.io/config.mirror`` = a hash of the
  manifest, the node and the file, ``kubernetes.io/config.source: file``; status ``Running``,
  ``Ready`` while its processes run; deleted and created again when the manifest changes,
  deleted when it goes (``kubeadm upgrade`` reads each member's endpoints and versions there);
* ``/healthz`` on ``127.0.0.1:10248`` (what ``kubeadm`` waits for);
* **TLS bootstrap** (a worker): with ``bootstrap-kubelet.conf`` and no ``kubelet.conf``, a
  client CSR (``system:node:<name>``, ``system:nodes``) signed by
  ``kubernetes.io/kube-apiserver-client-kubelet``, posted with the bootstrap token, waited for,
  written to ``/var/lib/kubelet/pki/kubelet-client-current.pem`` and referenced from a new
  ``kubelet.conf``;
* **registration**: the Node object, created with the node's credential (so the Node
  authorizer and NodeRestriction judge it), named, labelled and tainted from the flags
  kubeadm wrote (``kubeadm-flags.env``: ``--hostname-override``, ``--node-labels``,
  ``--provider-id``, ``--register-with-taints``, ``--cloud-provider``) and the node's host name;
  marked ``kwok.x-k8s.io/node: fake`` so that kwok keeps its status and lease fresh;
* a **serving-certificate CSR** (``kubernetes.io/kubelet-serving``) for the node's addresses;
* the **CRI** calls the node's scripts make through ``crictl`` (:data:`CRICTL`, the harness's
  crictl): ``/cri/ps?name=REGEX`` lists the running static-pod containers whose name matches,
  ``POST /cri/stop?id=ID`` stops one, which the stand-in then starts again as a kubelet does
  (each stop is counted in ``status.json``'s ``criStops``).

Run inside the node's network namespace: ``python -m tests.support.kubelet CONFIG.json``.
It writes what it did to ``<state>/status.json`` and each process's output to ``<state>/logs``.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.csr_approver import serving_request
from tests.support.kubeapi import ApiError, KubeClient

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
UNINITIALIZED_TAINT = {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}
CONFIG_MIRROR = "kubernetes.io/config.mirror"
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_SEEN = "kubernetes.io/config.seen"
MIRROR_SYNC_PERIOD = 1.0
"""Seconds between two reconciliations of the node's mirror Pods with its static pods."""
MIRROR_ERROR_GRACE = 60.0
"""Seconds a mirror Pod may keep failing before it is an error in ``status.json`` (while the API
server starts it refuses them: ``no PriorityClass with name system-node-critical was found``;
while a member is replaced its API server is away)."""

CRICTL = r"""#!/bin/bash
# The harness's stand-in for crictl (no container runtime runs here): exactly what the node's
# scripts use (lib.sh restart_static_pod), `crictl ps --name REGEX -q` and `crictl stop ID...`,
# asked of the kubelet stand-in of this node (tests/support/kubelet.py), which runs the static
# pods as processes and starts a stopped one again, as the kubelet restarts a stopped container.
set -euo pipefail
cri=http://127.0.0.1:10248/cri
command=${1:-}
[ $# -eq 0 ] || shift
case "$command" in
  ps)
    name='' quiet=0
    while [ $# -gt 0 ]; do
      case "$1" in
        --name) name=$2; shift 2 ;;
        --name=*) name=${1#--name=}; shift ;;
        -q | --quiet) quiet=1; shift ;;
        *) echo "crictl (harness stand-in): ps does not support $1" >&2; exit 2 ;;
      esac
    done
    [ "$quiet" = 1 ] || { echo "crictl (harness stand-in): only ps -q is supported" >&2; exit 2; }
    curl -fsS --max-time 10 -G --data-urlencode "name=$name" "$cri/ps"
    ;;
  stop)
    [ $# -gt 0 ] || { echo "crictl (harness stand-in): stop needs container IDs" >&2; exit 2; }
    for id in "$@"; do
      curl -fsS --max-time 60 -X POST -G --data-urlencode "id=$id" "$cri/stop"
    done
    ;;
  *) echo "crictl (harness stand-in): '$command' is not supported" >&2; exit 2 ;;
esac
"""
"""The harness's ``crictl`` on every node (``/usr/local/bin/crictl``): a client of the CRI
calls the kubelet stand-in answers on its local port."""


@dataclass
class StandInConfig:
    """What the stand-in needs to know (written by the harness as JSON)."""

    root: str
    """The node root (host path)."""
    enter: list[str]
    """The command prefix that enters the node (namespaces, chroot) without the final ``--``."""
    state: str
    """Directory for status.json and logs (host path)."""
    node_ip: str
    """The node's primary address (the kubelet's default ``--node-ip``)."""
    hostname: str
    """The VM's host name."""
    binaries: dict[str, str] = field(default_factory=dict)
    """Command name (``kube-apiserver``, ``etcd``) -> host path."""


def parse_flags(text: str) -> dict[str, str]:
    """``KUBELET_KUBEADM_ARGS="--a=b --c=d"`` -> ``{"a": "b", "c": "d"}``."""
    flags: dict[str, str] = {}
    for line in text.splitlines():
        if "=" not in line or line.lstrip().startswith("#"):
            continue
        _, _, value = line.partition("=")
        for word in (w for quoted in shlex.split(value) for w in shlex.split(quoted)):
            if word.startswith("--"):
                name, _, val = word[2:].partition("=")
                flags[name] = val
    return flags


def status_summary(status: dict[str, Any]) -> tuple[Any, ...]:
    """What of a Pod status the stand-in keeps true (no time stamps): when it differs, it writes."""
    conditions = sorted((c.get("type"), c.get("status")) for c in status.get("conditions") or [])
    containers = sorted((c.get("name"), c.get("ready"), c.get("restartCount"), c.get("containerID"),
                         next(iter(c.get("state") or {}), None)) for c in status.get("containerStatuses") or [])
    return status.get("phase"), tuple(conditions), tuple(containers), status.get("hostIP"), status.get("podIP")


def parse_taint(text: str) -> dict[str, str]:
    """``key=value:Effect`` (or ``key:Effect``) -> a taint object."""
    body, _, effect = text.rpartition(":")
    key, _, value = body.partition("=")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return taint


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def config_hash(manifest: bytes, node_name: str, source: str) -> str:
    """The static pod's ``kubernetes.io/config.hash`` (also its mirror's ``config.mirror``). The
    kubelet hashes the decoded pod, its host name and its file (FNV-128a, 32 hex digits); here
    the manifest's bytes stand for the pod: the same manifest on the same node gives the same
    hash, any change of it a new one."""
    digest = hashlib.sha256(manifest + f"host:{node_name}file:{source}".encode()).hexdigest()
    return digest[:32]


def mirror_pod(doc: dict[str, Any], node_name: str, node_uid: str, pod_hash: str, seen: str) -> dict[str, Any]:
    """The mirror Pod of the static pod ``doc`` on ``node_name``, as the kubelet creates it
    (pkg/kubelet/config/common.go applyDefaults, pkg/kubelet/pod/mirror_client.go)."""
    meta = doc.get("metadata") or {}
    spec = dict(doc["spec"])
    spec["nodeName"] = node_name
    # the kubelet adds this toleration to every static pod from a file, so that node problems
    # do not evict it
    tolerations = [t for t in spec.get("tolerations") or [] if t != {"operator": "Exists", "effect": "NoExecute"}]
    spec["tolerations"] = [*tolerations, {"operator": "Exists", "effect": "NoExecute"}]
    annotations = {**(meta.get("annotations") or {}), CONFIG_HASH: pod_hash, CONFIG_SEEN: seen,
                   CONFIG_SOURCE: "file", CONFIG_MIRROR: pod_hash}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": f"{meta['name']}-{node_name.lower()}",
            "namespace": meta.get("namespace") or "default",
            "labels": dict(meta.get("labels") or {}),
            "annotations": annotations,
            # a controller reference to the Node, without blockOwnerDeletion (NodeRestriction
            # refuses any other): the garbage collector removes the Pod with its Node
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid,
                                 "controller": True}],
        },
        "spec": spec,
    }


@dataclass
class Manifest:
    """One file of ``/etc/kubernetes/manifests`` as the stand-in last read it."""

    raw: bytes
    doc: dict[str, Any]
    seen: str
    """When the stand-in first saw this content (``kubernetes.io/config.seen``)."""


class StaticPod:
    """One container of one static pod, run as a process with restarts."""

    def __init__(self, kubelet: StandIn, manifest: Path, pod: dict[str, Any], container: dict[str, Any],
                 digest: str) -> None:
        self.kubelet = kubelet
        self.manifest = manifest
        self.pod_name = str(pod["metadata"]["name"])
        self.container = container
        self.digest = digest
        """SHA-256 of the manifest this container was started from."""
        self.volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        self.process: subprocess.Popen[bytes] | None = None
        self.container_id = ""
        """A new id per start, as a container runtime gives each container it starts."""
        self.restarts = 0
        self.next_start = 0.0
        self.started_at = ""
        """When the current (or last) process started (RFC 3339), empty before the first start."""
        self.log = Path(kubelet.cfg.state) / "logs" / f"{self.pod_name}.log"

    def argv(self) -> list[str]:
        argv = [*self.container.get("command", []), *self.container.get("args", [])]
        if not argv:
            raise ValueError(f"{self.manifest}: container {self.container['name']} has no command")
        return argv

    def binds(self) -> list[tuple[str, str]]:
        out = []
        for mount in self.container.get("volumeMounts", []):
            volume = self.volumes[mount["name"]]
            host_path = volume.get("hostPath")
            if host_path is None:
                raise ValueError(f"{self.manifest}: volume {mount['name']} is not a hostPath")
            source = str(host_path["path"])
            kind = host_path.get("type", "")
            target = self.kubelet.root / source.lstrip("/")
            if kind == "DirectoryOrCreate":
                target.mkdir(parents=True, exist_ok=True)
            elif kind == "FileOrCreate" and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
            if source != mount["mountPath"]:
                out.append((f"@{source}", str(mount["mountPath"])))
        return out

    def start(self) -> None:
        argv = self.argv()
        binary = self.kubelet.cfg.binaries.get(Path(argv[0]).name)
        if binary is None:
            self.kubelet.note_error(f"{self.pod_name}: no program for command {argv[0]!r}")
            self.next_start = time.monotonic() + 3600
            return
        mounts = [f"{src}:{dst}" for src, dst in self.binds()]
        cmd = [*self.kubelet.cfg.enter, *mounts, f"{binary}:/usr/local/bin/{Path(argv[0]).name}", "--",
               f"/usr/local/bin/{Path(argv[0]).name}", *argv[1:]]
        env = {**os.environ, **{e["name"]: str(e.get("value", "")) for e in self.container.get("env", [])}}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.container_id = os.urandom(32).hex()
        self.started_at = now_rfc3339()
        with self.log.open("ab") as log:
            log.write(f"\n--- start {time.strftime('%H:%M:%S')} (restart {self.restarts})\n".encode())
            log.flush()
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)

    def tick(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        if self.process is not None:
            self.restarts += 1
            self.next_start = time.monotonic() + min(10.0, 2.0 ** min(self.restarts, 4) / 2)
            self.process = None
        if time.monotonic() >= self.next_start:
            self.start()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def container_status(self) -> dict[str, Any]:
        """The container's entry in its mirror Pod's ``status.containerStatuses``."""
        status: dict[str, Any] = {"name": self.container["name"], "image": self.container.get("image", ""),
                                  "imageID": "", "restartCount": self.restarts, "ready": self.running(),
                                  "started": self.running()}
        if self.running():
            status["containerID"] = f"containerd://{self.container_id}"
            status["state"] = {"running": {"startedAt": self.started_at}}
        elif self.started_at:
            status["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
        else:
            status["state"] = {"waiting": {"reason": "ContainerCreating"}}
        return status

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=5)


class StandIn:
    """The stand-in kubelet of one node (see the module docstring)."""

    def __init__(self, cfg: StandInConfig) -> None:
        self.cfg = cfg
        self.root = Path(cfg.root)
        self.state = Path(cfg.state)
        self.pods: dict[Path, list[StaticPod]] = {}
        self.manifests: dict[Path, Manifest] = {}
        """The manifest each entry of :attr:`pods` runs."""
        self.next_mirror_sync = 0.0
        self.mirror_failures: dict[str, tuple[float, str]] = {}
        """Mirror Pod (or the node's look-up) -> (since when it fails, the last failure)."""
        self.status: dict[str, Any] = {"errors": [], "registered": False, "node": None, "servingCsr": None,
                                       "clientBootstrapped": False, "started": False}
        self.stopping = threading.Event()
        self.next_status_sync = 0.0
        self.cri_stops: queue.Queue[tuple[str, threading.Event]] = queue.Queue()
        """``crictl stop`` requests (id, done), carried out by the main loop."""

    def path(self, node_path: str) -> Path:
        return self.root / node_path.lstrip("/")

    def note_error(self, message: str) -> None:
        if message not in self.status["errors"]:
            self.status["errors"].append(message)
        self.save()

    def save(self) -> None:
        tmp = self.state / "status.json.tmp"
        tmp.write_text(json.dumps(self.status, indent=2))
        tmp.replace(self.state / "status.json")

    # --------------------------------------------------------------- static pods
    def sync_pods(self) -> None:
        manifests = self.path("/etc/kubernetes/manifests")
        present = {p for p in manifests.glob("*.yaml")} if manifests.is_dir() else set()
        for gone in [p for p in self.pods if p not in present]:
            for pod in self.pods.pop(gone):
                pod.stop()
            self.manifests.pop(gone, None)
        for manifest in sorted(present):
            raw = manifest.read_bytes()
            digest = hashlib.sha256(raw).hexdigest()
            current = self.pods.get(manifest)
            if current and current[0].digest == digest:
                continue
            for pod in current or []:
                pod.stop()
            doc = yaml.safe_load(raw)
            self.manifests[manifest] = Manifest(raw, doc, now_rfc3339())
            self.pods[manifest] = [StaticPod(self, manifest, doc, c, digest) for c in doc["spec"]["containers"]]
        for pods in self.pods.values():
            for pod in pods:
                pod.tick()
        self.status["pods"] = {
            f"{p.pod_name}/{p.container['name']}": {"running": p.process is not None and p.process.poll() is None,
                                                     "restarts": p.restarts}
            for pods in self.pods.values() for p in pods
        }

    # --------------------------------------------------------------- CRI (crictl)
    def running_containers(self) -> list[StaticPod]:
        return [p for pods in list(self.pods.values()) for p in pods
                if p.process is not None and p.process.poll() is None]

    def cri_ps(self, name: str) -> list[str]:
        """``crictl ps --name NAME -q``: truncated ids of the running containers whose name matches."""
        return [p.container_id[:13] for p in self.running_containers() if re.search(name, str(p.container["name"]))]

    def handle_cri_stops(self) -> None:
        """Stop the containers ``crictl stop`` asked for; :meth:`StaticPod.tick` starts them again."""
        while True:
            try:
                wanted, done = self.cri_stops.get_nowait()
            except queue.Empty:
                return
            for pod in self.running_containers():
                if pod.container_id.startswith(wanted):
                    pod.stop()
                    stops = self.status.setdefault("criStops", {})
                    stops[pod.pod_name] = stops.get(pod.pod_name, 0) + 1
            done.set()

    # --------------------------------------------------------------- credentials
    def kubeadm_flags(self) -> dict[str, str]:
        env = self.path("/var/lib/kubelet/kubeadm-flags.env")
        return parse_flags(env.read_text()) if env.exists() else {}

    def node_name(self) -> str:
        return (self.kubeadm_flags().get("hostname-override") or self.cfg.hostname).lower()

    def tls_bootstrap(self) -> None:
        """Client certificate through a CSR, as the kubelet does with bootstrap-kubelet.conf."""
        bootstrap = self.path("/etc/kubernetes/bootstrap-kubelet.conf")
        if self.path("/etc/kubernetes/kubelet.conf").exists() or not bootstrap.exists():
            return
        client = KubeClient.from_kubeconfig(bootstrap, self.root)
        name = self.node_name()
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                        x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{name}")]))
               .sign(key, hashes.SHA256()))
        pem = csr.public_bytes(serialization.Encoding.PEM)
        import base64

        obj = client.post("/apis/certificates.k8s.io/v1/certificatesigningrequests", {
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "node-csr-"},
            "spec": {"request": base64.b64encode(pem).decode(), "signerName": CLIENT_SIGNER,
                     "usages": ["digital signature", "client auth"]},
        })
        csr_name = obj["metadata"]["name"]
        deadline = time.monotonic() + 120
        cert_pem = ""
        while time.monotonic() < deadline and not self.stopping.is_set():
            current = client.get(f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{csr_name}")
            if current.get("status", {}).get("certificate"):
                cert_pem = base64.b64decode(current["status"]["certificate"]).decode()
                break
            for condition in current.get("status", {}).get("conditions", []):
                if condition["type"] in ("Denied", "Failed"):
                    raise RuntimeError(f"client CSR {csr_name} {condition['type']}: {condition.get('message')}")
            time.sleep(1)
        if not cert_pem:
            raise RuntimeError(f"client CSR {csr_name} was not signed within 120 s")
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption()).decode()
        pki = self.path("/var/lib/kubelet/pki")
        pki.mkdir(parents=True, exist_ok=True)
        current_pem = pki / "kubelet-client-current.pem"
        current_pem.write_text(cert_pem + key_pem)
        current_pem.chmod(0o600)
        doc = yaml.safe_load(bootstrap.read_text())
        cluster = doc["clusters"][0]
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "default-cluster", "cluster": cluster["cluster"]}],
            "users": [{"name": "default-auth", "user": {
                "client-certificate": "/var/lib/kubelet/pki/kubelet-client-current.pem",
                "client-key": "/var/lib/kubelet/pki/kubelet-client-current.pem"}}],
            "contexts": [{"name": "default-context", "context": {"cluster": "default-cluster",
                                                                   "user": "default-auth", "namespace": "default"}}],
            "current-context": "default-context",
        }
        target = self.path("/etc/kubernetes/kubelet.conf")
        target.write_text(yaml.safe_dump(kubeconfig))
        target.chmod(0o600)
        self.status["clientBootstrapped"] = True
        self.status["clientCsr"] = csr_name
        self.save()

    # --------------------------------------------------------------- registration
    def register(self) -> None:
        kubeconfig = self.path("/etc/kubernetes/kubelet.conf")
        if self.status["registered"] or not kubeconfig.exists():
            return
        flags = self.kubeadm_flags()
        client = KubeClient.from_kubeconfig(kubeconfig, self.root)
        name = self.node_name()
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                  "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"}
        for pair in filter(None, flags.get("node-labels", "").split(",")):
            k, _, v = pair.partition("=")
            labels[k] = v
        taints = [parse_taint(t) for t in filter(None, flags.get("register-with-taints", "").split(","))]
        if flags.get("cloud-provider") == "external":
            taints.append(UNINITIALIZED_TAINT)
        node: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels,
                         "annotations": {FAKE_NODE_ANNOTATION: "fake",
                                         "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": {"taints": taints} | ({"providerID": flags["provider-id"]} if flags.get("provider-id") else {}),
        }
        try:
            client.post("/api/v1/nodes", node)
        except ApiError as exc:
            if exc.status != 409:
                raise
        addresses = [{"type": "InternalIP", "address": flags.get("node-ip") or self.cfg.node_ip},
                     {"type": "Hostname", "address": name}]
        self.patch_addresses(client, name, addresses)
        self.status.update(registered=True, node=name, labels=labels, providerID=flags.get("provider-id"),
                           addresses=addresses)
        self.save()
        self.request_serving_certificate(client, name, addresses)

    @staticmethod
    def patch_addresses(client: KubeClient, name: str, addresses: list[dict[str, str]]) -> None:
        client.request("PATCH", f"/api/v1/nodes/{name}/status",
                       {"status": {"addresses": addresses}}, content_type="application/strategic-merge-patch+json")

    def sync_node_status(self) -> None:
        """As a kubelet's periodic status sync: put the node's addresses back when another
        writer (kwok's node-initialize stage, racing the registration) left them out."""
        if not self.status["registered"] or time.monotonic() < self.next_status_sync:
            return
        self.next_status_sync = time.monotonic() + 5.0
        client = KubeClient.from_kubeconfig(self.path("/etc/kubernetes/kubelet.conf"), self.root)
        name = str(self.status["node"])
        have = client.get(f"/api/v1/nodes/{name}").get("status", {}).get("addresses") or []
        wanted = list(self.status["addresses"])
        if not all(a in have for a in wanted):
            self.patch_addresses(client, name, wanted)

    # --------------------------------------------------------------- mirror pods
    def sync_mirror_pods(self) -> None:
        """As the kubelet's pod workers and its orphaned-mirror-pod cleanup: every static pod has
        one mirror Pod carrying its current hash (a mirror of another hash, or one being deleted,
        is deleted and created again), mirror Pods of static pods that are gone are deleted, and
        each mirror's status follows its processes. Each Pod is retried on its own next round,
        as the kubelet retries; a failure that lasts :data:`MIRROR_ERROR_GRACE` is an error."""
        if not self.status["registered"] or time.monotonic() < self.next_mirror_sync:
            return
        self.next_mirror_sync = time.monotonic() + MIRROR_SYNC_PERIOD
        if not self.manifests and not self.status.get("mirrorPods"):
            return  # no static pod (a worker), and no mirror Pod of one left to delete
        client = KubeClient.from_kubeconfig(self.path("/etc/kubernetes/kubelet.conf"), self.root)
        name = str(self.status["node"])
        try:
            node = client.get(f"/api/v1/nodes/{name}")
            # the Node authorizer lets a node list only the pods bound to it
            selector = urllib.parse.quote(f"spec.nodeName={name}")
            listed = client.get(f"/api/v1/pods?fieldSelector={selector}")["items"]
        except (ApiError, OSError) as exc:
            self.mirror_failed(f"node {name}", exc)
            return
        self.mirror_failures.pop(f"node {name}", None)
        node_uid = str(node["metadata"]["uid"])
        addresses = {a["type"]: a["address"] for a in node.get("status", {}).get("addresses") or []}
        host_ip = addresses.get("InternalIP") or self.cfg.node_ip
        have = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in listed
                if CONFIG_MIRROR in (p["metadata"].get("annotations") or {})}
        wanted: dict[str, tuple[dict[str, Any], list[StaticPod], Manifest]] = {}
        for path, manifest in list(self.manifests.items()):
            pod = mirror_pod(manifest.doc, name, node_uid, config_hash(manifest.raw, name, str(path)), manifest.seen)
            wanted[f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"] = (
                pod, self.pods.get(path, []), manifest)
        mirrors: dict[str, Any] = {}
        for key in sorted({*have, *wanted}):
            want = wanted.get(key)
            try:
                current = self.sync_mirror_pod(client, have.get(key), want, host_ip)
            except (ApiError, OSError) as exc:
                mirrors[key] = {"error": self.mirror_failed(f"mirror Pod {key}", exc)}
                continue
            self.mirror_failures.pop(key, None)
            if want is not None and current is not None:
                mirrors[key] = {"uid": current["metadata"]["uid"],
                                "hash": want[0]["metadata"]["annotations"][CONFIG_HASH],
                                "phase": (current.get("status") or {}).get("phase")}
        self.status["mirrorPods"] = mirrors

    def mirror_failed(self, what: str, exc: Exception) -> str:
        """Note that ``what`` failed; an error of ``status.json`` once it has failed for
        :data:`MIRROR_ERROR_GRACE` (the kubelet retries the same way, logging each failure)."""
        first, _ = self.mirror_failures.get(what, (time.monotonic(), ""))
        message = f"{what}: {type(exc).__name__}: {exc}"
        self.mirror_failures[what] = (first, message)
        if time.monotonic() - first >= MIRROR_ERROR_GRACE:
            self.note_error(message)
        return message

    def sync_mirror_pod(self, client: KubeClient, current: dict[str, Any] | None,
                        want: tuple[dict[str, Any], list[StaticPod], Manifest] | None,
                        host_ip: str) -> dict[str, Any] | None:
        """One mirror Pod brought in line with its static pod (``want``; None: the static pod
        is gone); the Pod as it now is, None when there is none (yet)."""
        if current is not None:
            annotations = current["metadata"].get("annotations") or {}
            if (want is None or current["metadata"].get("deletionTimestamp")
                    or annotations.get(CONFIG_MIRROR) != want[0]["metadata"]["annotations"][CONFIG_MIRROR]):
                self.delete_mirror_pod(client, current)
                current = None
        if want is None:
            return None
        pod, containers, manifest = want
        meta = pod["metadata"]
        if current is None:
            try:
                current = client.post(f"/api/v1/namespaces/{meta['namespace']}/pods", pod)
            except ApiError as exc:
                if exc.status == 409:  # AlreadyExists: the old one is still going; next round
                    return None
                raise
        assert current is not None
        status = self.mirror_status(containers, manifest, current.get("status") or {}, host_ip,
                                    bool(pod["spec"].get("hostNetwork")))
        if status_summary(status) != status_summary(current.get("status") or {}):
            current = client.request("PATCH", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                                     {"status": status}, content_type="application/strategic-merge-patch+json")
        return current

    @staticmethod
    def delete_mirror_pod(client: KubeClient, pod: dict[str, Any]) -> None:
        """Delete ``pod`` at once, only if it is still the object seen (the kubelet's UID precondition)."""
        meta = pod["metadata"]
        try:
            client.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                           {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                            "preconditions": {"uid": meta["uid"]}})
        except ApiError as exc:
            if exc.status not in (404, 409):  # gone already, or another object by now
                raise

    @staticmethod
    def mirror_status(containers: list[StaticPod], manifest: Manifest, previous: dict[str, Any], host_ip: str,
                      host_network: bool) -> dict[str, Any]:
        """The mirror Pod's status from its processes: ``Running`` once started (a container that
        exited is restarted, as with ``restartPolicy: Always``), ``Ready`` while all run."""
        started = any(c.started_at for c in containers)
        ready = bool(containers) and all(c.running() for c in containers)
        before = {c["type"]: c for c in previous.get("conditions") or []}
        now = now_rfc3339()
        conditions = []
        for kind, value in (("PodReadyToStartContainers", started), ("Initialized", True), ("Ready", ready),
                            ("ContainersReady", ready), ("PodScheduled", True)):
            text = "True" if value else "False"
            old = before.get(kind)
            kept = old is not None and old.get("status") == text and old.get("lastTransitionTime")
            since = old["lastTransitionTime"] if old is not None and kept else now
            conditions.append({"type": kind, "status": text, "lastTransitionTime": since, "lastProbeTime": None})
        status: dict[str, Any] = {
            "phase": "Running" if started else "Pending",
            "conditions": conditions,
            "containerStatuses": [c.container_status() for c in containers],
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "startTime": manifest.seen,
        }
        if host_network:
            status |= {"podIP": host_ip, "podIPs": [{"ip": host_ip}]}
        return status

    def request_serving_certificate(self, client: KubeClient, name: str, addresses: list[dict[str, str]]) -> None:
        """The kubelet's serving CSR: DNS names from the Hostname/…DNS addresses, IPs from the …IP ones."""
        import base64
        import ipaddress

        key = ec.generate_private_key(ec.SECP256R1())
        wanted = serving_request(f"system:node:{name}", addresses)
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in wanted.dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in wanted.ip_addresses]
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                        x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{name}")]))
               .add_extension(x509.SubjectAlternativeName(sans), critical=False)
               .sign(key, hashes.SHA256()))
        obj = client.post("/apis/certificates.k8s.io/v1/certificatesigningrequests", {
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {"request": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode(),
                     "signerName": SERVING_SIGNER, "usages": ["digital signature", "server auth"]},
        })
        self.status["servingCsr"] = obj["metadata"]["name"]
        self.save()

    # --------------------------------------------------------------- main loop
    def serve_healthz(self) -> None:
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def reply(self, code: int, text: str) -> None:
                self.send_response(code)
                self.end_headers()
                self.wfile.write(text.encode())

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = urlsplit(self.path)
                if url.path == "/cri/ps":
                    name = parse_qs(url.query).get("name", [""])[0]
                    self.reply(200, "".join(f"{i}\n" for i in stand_in.cri_ps(name)))
                    return
                ok = stand_in.status["started"] and self.path.startswith("/healthz")
                self.reply(200 if ok else 503, "ok" if ok else "not started")

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                url = urlsplit(self.path)
                wanted = parse_qs(url.query).get("id", [""])[0]
                if url.path != "/cri/stop" or len(wanted) < 4:
                    self.reply(400, "POST /cri/stop?id=ID\n")
                    return
                if not any(p.container_id.startswith(wanted) for p in stand_in.running_containers()):
                    self.reply(404, f"no running container {wanted}\n")
                    return
                done = threading.Event()
                stand_in.cri_stops.put((wanted, done))
                if done.wait(60):
                    self.reply(200, f"{wanted}\n")
                else:
                    self.reply(504, f"container {wanted} did not stop within 60 s\n")

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 10248), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def run(self) -> None:
        (self.state / "logs").mkdir(parents=True, exist_ok=True)
        self.serve_healthz()
        self.save()
        while not self.stopping.is_set():
            try:
                if self.path("/var/lib/kubelet/config.yaml").exists():
                    if not self.status["started"]:
                        self.status["started"] = True
                        self.save()
                    self.handle_cri_stops()
                    self.sync_pods()
                    self.tls_bootstrap()
                    self.register()
                    self.sync_node_status()
                    self.sync_mirror_pods()
                self.save()
            except Exception as exc:  # noqa: BLE001 - a kubelet keeps going; the harness reads the errors
                self.note_error(f"{type(exc).__name__}: {exc}")
            self.stopping.wait(0.5)
        for pods in self.pods.values():
            for pod in pods:
                pod.stop()
        self.save()


def main() -> None:
    cfg = StandInConfig(**json.loads(Path(sys.argv[1]).read_text()))
    stand_in = StandIn(cfg)
    signal.signal(signal.SIGTERM, lambda *_: stand_in.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stand_in.stopping.set())
    stand_in.run()


if __name__ == "__main__":
    main()
