"""The CA rotation of cfcr/pki/ROTATION.md, drilled on a real control plane of the default stack.

The drill boots a control plane of its own (tests/support/controlplane.py: 3 members, kwok, one
worker) from the default stack's render -- step 1, one CA generation -- so the session's
``control_plane`` stays untouched. Then, for each of ROTATION.md's steps 2, 3 and 4:

1. **`pulumi up`**: the stack is rendered again with that step's ``cfcr:pki`` (``caGenerations``,
   ``signingGeneration``), and every secret whose value changed is put into the AWS stand-in's
   Secrets Manager (the secret names and ARNs are the same in every render: checked);
2. **the timer**: each member runs its own ``/usr/local/lib/cfcr/maintain.sh``, one after the
   other, which installs what changed from the secret store and restarts, through ``crictl``
   (the harness's stand-in, DIFFERENCES["crictl"]), the static pods whose files changed;
3. **asserted through the live API servers**, etcd and the nodes' files.

What the render gives (checked by the first test): re-rendering with generations ``[1, 2]``
keeps the generation-1 CAs byte for byte (ECDSA keys and serials derive from the URN, dates are
the first of the month: cfcr/render/providers.py) and adds generation-2 ones; nothing else changes at step 2 but the
CA bundles. Two things differ from a `pulumi up`, and the drill corrects both:

* the service-account key pair is RSA, which the offline render draws at random, so each render
  has another; in Pulumi state it is one resource that the rotation never touches, so the drill
  never puts a re-rendered one into the store (:data:`SA_STEMS`);
* pulumi-tls starts a certificate's validity when it issues it, the offline render on the first
  day of the current month (so that renders diff cleanly): a leaf re-issued at step 3 would
  carry the very dates of the one it replaces (checked), and maintain.sh rightly keeps the
  certificate on disk when the store's does not end later. The drill renders each step when
  its `pulumi up` happens and issues the leaves at that moment (:func:`leaves_issued_at`):
  step 1's when the drill starts (step 2 re-issues nothing, so its leaves are step 1's), step
  3's once step 2 has reached the nodes (step 4 keeps them). CA certificates keep their render
  dates.

What the drill proves (ROTATION.md's "wait until" conditions it checks are marked *wait*):

* step 2: the members hold exactly the store's files; ``ca.crt``, ``etcd/ca.crt`` and
  ``front-proxy-ca.crt`` hold [gen 1, gen 2] (*wait*: every member has the new bundles); etcd,
  kube-apiserver, kube-controller-manager and kube-scheduler (whose kubeconfig takes the
  bundle) were started again after the install, and the kubelet (*wait*: restarted onto them);
  every kubeconfig kubeadm wrote on a member trusts [gen 1, gen 2]; every API server still serves a gen-1
  certificate; the exported admin kubeconfig carries the bundle and the same gen-1 client
  certificate; that client (*wait*: kubeconfigs refreshed), one not refreshed, a
  service-account token issued before the rotation and the worker kubelet's client
  certificate work on every API server and through the load balancer; the kubeconfigs kubeadm
  wrote on the members and join-credentials.sh work; etcd is healthy on every member with its
  client certificate and with the gen-1 one; kube-scheduler binds a new pod.
* step 3: every leaf in the store is re-issued by gen 2 (same keys) and installed (*wait*: every
  member has the re-issued leaves); the bundles are [gen 2, gen 1]; every API server, etcd
  client and peer port serves a gen-2 certificate; the gen-1 admin client (with the bundle),
  the gen-1 etcd client, the worker kubelet's gen-1 client certificate (with the bundle) and the
  old service-account token (*wait*: not affected) keep working; a gen-2 admin client works; an
  admin kubeconfig that was *not* refreshed after step 2 fails to verify every API server
  (x509), which is why ROTATION.md asks for the refresh; etcd stays healthy with the new client
  certificate; no member's user-data changes at any step, so no `pulumi up` of the rotation
  replaces a member.
* step 4: only the CA bundles change in the store; they hold gen 2 only on every member; the
  gen-1 admin client, the gen-1 etcd client and the worker kubelet's gen-1 client certificate
  are refused (ROTATION.md: they must have been replaced before); gen-2 clients, the
  service-account token and etcd (every member healthy) keep working.

What the member's maintenance does for the rotation (ROTATION.md), each checked above: the
signing CA alone in ``ca-signing.crt`` for kube-controller-manager's CSR signer (it reads one
certificate, ``ca.crt`` holds two from step 2), so ``kube-root-ca.crt`` carries both CAs
(steps 2, 3) and then gen 2 only (step 4), and CSRs are signed by the signing generation; the
kubeconfigs kubeadm wrote (admin.conf, super-admin.conf, controller-manager.conf,
scheduler.conf, kubelet.conf) trust the bundle, and from step 3 their client certificates
and the kubelet's are re-signed by gen 2, so kube-scheduler, kube-controller-manager, the
kubelets and join-credentials.sh keep working through step 4. Workers run no maintenance: the
pool rolls at steps 2 and 3 (the join pins every trusted generation, so its user-data
changes) and the new VM joins, trusts the store's bundle and, at step 3 after the members'
maintenance, holds a gen-2 kubelet certificate that step 4 keeps; the replaced worker's gen-1
kubelet certificate is refused at step 4.

The drill's control plane is its own and is torn down with the module. It needs root and the
programs ``python3 dev.py tools`` builds, like the session's.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cfcr.config import read_stack_config
from cfcr.render import providers
from cfcr.render.mocks import unwrap
from tests.support.awsapi import Cloud
from tests.support.controlplane import ControlPlane, HarnessError, Node
from tests.support.noderoot import HARNESS_DIR
from tests.support.rendered import RenderedCluster, render_cluster

pytestmark = pytest.mark.slow

STACK = "aws-stable"
"""The default stack (tests/conftest.py DEFAULT_STACK)."""

STEPS: dict[int, tuple[list[int], int]] = {1: ([1], 1), 2: ([1, 2], 1), 3: ([1, 2], 2), 4: ([2], 2)}
"""ROTATION.md's table: step -> (``caGenerations``, ``signingGeneration``)."""

FAMILIES: dict[str, str] = {"cluster": "ca", "etcd": "etcd-ca", "front-proxy": "front-proxy-ca"}
"""CA family -> the stem of its secrets (``<cluster>-<stem>-crt`` holds the family's bundle)."""

BUNDLE_FILES: dict[str, str] = {"cluster": "ca.crt", "etcd": "etcd/ca.crt", "front-proxy": "front-proxy-ca.crt"}
"""CA family -> its bundle under /etc/kubernetes/pki."""

SA_STEMS = ("sa-key", "sa-pub")
"""The service-account key pair: RSA, and the offline render draws RSA keys at random
(cfcr/render/providers.py), so each render has another one. In Pulumi state the pair is one
resource the rotation never touches (ROTATION.md), so the drill keeps the deployed one."""

PKI = "/etc/kubernetes/pki"
ETCD_TLS = f"--cacert={PKI}/etcd/ca.crt --cert={PKI}/etcd/healthcheck-client.crt --key={PKI}/etcd/healthcheck-client.key"
OLD_ETCD_CLIENT = "/var/lib/cfcr-harness/gen1"
"""Where the drill keeps, on each member, a copy of the generation-1 etcd healthcheck client."""
OLD_ETCD_TLS = (f"--cacert={PKI}/etcd/ca.crt --cert={OLD_ETCD_CLIENT}/healthcheck-client.crt "
                f"--key={OLD_ETCD_CLIENT}/healthcheck-client.key")
MEMBER_KUBECONFIGS = ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf")
RESTARTED_FOR_CA_FILES = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
"""The static pods whose files change at every step (maintain.sh's ``affects``): the CA bundles,
and the kubeconfigs that embed them (controller-manager.conf, scheduler.conf)."""


def bundle_stems() -> set[str]:
    return {f"{stem}-crt" for stem in FAMILIES.values()}


def ca_key_stems() -> set[str]:
    return {f"{stem}-key" for stem in FAMILIES.values()}


# --------------------------------------------------------------------------- certificates

def pem_certs(text: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(text.encode()) if "BEGIN CERTIFICATE" in text else []


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # noqa: BLE001 - InvalidSignature, or a different issuer name
        return False
    return True


def generations(certs: list[x509.Certificate], cas: Mapping[int, x509.Certificate]) -> list[int | None]:
    """For each certificate, the generation that *is* it (a CA) or signed it (a leaf)."""
    out: list[int | None] = []
    for cert in certs:
        same = next((g for g, ca in cas.items() if der(ca) == der(cert)), None)
        out.append(same if same is not None else next((g for g, ca in cas.items() if signed_by(cert, ca)), None))
    return out


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kubeconfig_ca(text: str) -> str:
    return base64.b64decode(yaml.safe_load(text)["clusters"][0]["cluster"]["certificate-authority-data"]).decode()


def kubeconfig_client_cert(text: str) -> x509.Certificate:
    data = yaml.safe_load(text)["users"][0]["user"]["client-certificate-data"]
    return x509.load_pem_x509_certificate(base64.b64decode(data))


def with_ca(text: str, ca_pem: str) -> str:
    doc = yaml.safe_load(text)
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = b64(ca_pem)
    return yaml.safe_dump(doc, sort_keys=False)


# --------------------------------------------------------------------------- renders

_ISSUE = threading.Lock()


@contextlib.contextmanager
def leaves_issued_at(when: dt.datetime) -> Iterator[None]:
    """pulumi-tls starts a certificate's validity when it issues it; the offline render starts
    every one on the first of the month (cfcr/render/providers.py), so that renders diff
    cleanly. Within this block the render issues its LocallySignedCerts at ``when``, as the
    provider would at that `pulumi up`; CA certificates (SelfSignedCert) keep their dates."""

    def locally_signed(inputs: Mapping[str, Any], urn: str) -> dict[str, Any]:
        with _ISSUE, mock.patch.object(providers, "_EPOCH", when):
            return providers.locally_signed_cert(inputs, urn)

    def self_signed(inputs: Mapping[str, Any], urn: str) -> dict[str, Any]:
        with _ISSUE:  # never while _EPOCH is moved for a leaf
            return providers.self_signed_cert(inputs, urn)

    with mock.patch.dict(providers.PROVIDERS, {"tls:index/locallySignedCert:LocallySignedCert": locally_signed,
                                               "tls:index/selfSignedCert:SelfSignedCert": self_signed}):
        yield


@dataclass
class Renders:
    """The default stack rendered at each step of ROTATION.md, on demand: a step is rendered when
    its `pulumi up` happens (step 3 after step 2 has reached the nodes)."""

    workdir: Path
    base: dict[str, Any]
    done: dict[int, RenderedCluster] = field(default_factory=dict)
    issued_at: dict[int, dt.datetime] = field(default_factory=dict)
    """Signing generation -> when the `pulumi up` that signed with it issued the leaves (step 1's,
    kept by step 2; step 3's, kept by step 4)."""

    def __call__(self, step: int) -> RenderedCluster:
        if step not in self.done:
            gens, signing = STEPS[step]
            config = dict(self.base)
            if step != 1:
                config["cfcr:pki"] = {**dict(self.base.get("cfcr:pki") or {}),
                                      "caGenerations": gens, "signingGeneration": signing}
            when = self.issued_at.setdefault(signing, dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
            with leaves_issued_at(when):
                self.done[step] = render_cluster(STACK, self.workdir / f"render-step-{step}", config=config)
        return self.done[step]

    def secret(self, step: int, stem: str) -> str:
        render = self(step)
        return render.secret_values[f"{render.name}-{stem}"]

    def cas(self, family: str) -> dict[int, x509.Certificate]:
        """Generation -> CA certificate of ``family``, from the steps rendered so far (a bundle
        lists the signing generation first, then the others newest first)."""
        out: dict[int, x509.Certificate] = {}
        for step in sorted(self.done):
            gens, signing = STEPS[step]
            order = [signing, *sorted((g for g in gens if g != signing), reverse=True)]
            for g, cert in zip(order, pem_certs(self.secret(step, FAMILIES[family] + "-crt")), strict=True):
                out.setdefault(g, cert)
        return out


def secret_arns(render: RenderedCluster) -> dict[str, str]:
    """Secret name -> ARN, as the render creates them."""
    return {str(unwrap(r.inputs)["name"]): str(r.outputs["arn"]) for r in render.rows("aws:secretsmanager/secret:Secret")}


def changed_stems(before: RenderedCluster, after: RenderedCluster) -> set[str]:
    prefix = f"{after.name}-"
    return {name.removeprefix(prefix) for name, value in after.secret_values.items()
            if value != before.secret_values[name]}


# --------------------------------------------------------------------------- the machine's one harness

@contextlib.contextmanager
def machine_slot() -> Iterator[None]:
    """tests/conftest.py's lock: one real control plane on this machine at a time."""
    from tests.conftest import harness_lock, lock_held_by_this_process

    if lock_held_by_this_process():
        pytest.fail("this pytest process already runs the session's control plane (tests/conftest.py "
                    "control_plane), and the rotation drill boots its own: run this module before the modules "
                    "that use `control_plane` (file order does) or on its own", pytrace=False)
    with harness_lock():
        yield


# --------------------------------------------------------------------------- the drill

def run(cmd: list[str], input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)


@dataclass
class Drill:
    """A control plane of this module's own, booted from the step-1 render, and what the drill
    did to it."""

    cp: ControlPlane
    renders: Renders
    worker: Node
    """The worker that joined at boot (gen-1 kubelet client certificate)."""
    step: int = 1
    """The last step whose secrets are in the store and whose maintenance ran on every member."""
    changed: dict[int, set[str]] = field(default_factory=dict)
    """Step -> the secrets (stems) its `pulumi up` changed."""
    maintain_logs: dict[int, dict[str, str]] = field(default_factory=dict)
    stopped: dict[int, dict[str, set[str]]] = field(default_factory=dict)
    """Step -> member role -> the static pods maintain.sh stopped through crictl."""
    started_again: dict[int, dict[str, set[str]]] = field(default_factory=dict)
    """Step -> member role -> the static pods that were started again during its maintenance."""
    finished_at: dict[int, float] = field(default_factory=dict)
    clients: dict[str, Path] = field(default_factory=dict)
    token: str = ""
    """A service-account token issued at step 1."""
    rolled: dict[int, Node] = field(default_factory=dict)
    """Step -> the VM of the rolled worker pool that joined after that step's maintenance."""

    @property
    def members(self) -> list[Node]:
        return [self.cp.member(m.index) for m in self.cp.render.members]

    def cas(self, family: str = "cluster") -> dict[int, x509.Certificate]:
        return self.renders.cas(family)

    def kubeconfig(self, name: str, text: str) -> Path:
        path = self.cp.workdir / f"{name}.kubeconfig"
        path.write_text(text)
        path.chmod(0o600)
        self.clients[name] = path
        return path

    # ----------------------------------------------------------------- a step
    def pulumi_up(self, step: int) -> set[str]:
        """What `pulumi up` of ``step`` changes in Secrets Manager: every secret whose rendered
        value differs from the previous step's (the service-account pair excepted, see
        :data:`SA_STEMS`), written into the AWS stand-in's state. Returns the stems changed."""
        before, after = self.renders(step - 1), self.renders(step)
        assert secret_arns(after) == secret_arns(before), "a rotation step renames or re-creates no secret"
        for member in self.cp.render.members:
            role = f"control-plane-{member.index}"
            assert after.user_data(role) == before.user_data(role), f"{role}'s VM would be replaced"
        changed = changed_stems(before, after) - set(SA_STEMS)
        with Cloud(self.cp.cloud_file).update() as state:
            for stem in changed:
                secret = state["secrets"][f"{after.name}-{stem}"]
                secret["value"] = after.secret_values[f"{after.name}-{stem}"]
                secret["versions"] = int(secret.get("versions", 1)) + 1
        self.changed[step] = changed
        return changed

    def maintain(self, step: int) -> None:
        """The members' own maintenance, as cfcr-maintain.timer runs it, one member after the
        other; a member's API server, static pods and etcd answer again before the next one."""
        self.maintain_logs[step], self.stopped[step], self.started_again[step] = {}, {}, {}
        for node in self.members:
            assert node.member is not None
            before = node.kubelet_status()
            out = node.run("/usr/local/lib/cfcr/maintain.sh", timeout=600)
            self.maintain_logs[step][node.role] = out.stdout + out.stderr
            address = node.member.address
            self.cp.wait_for(f"{node.role}'s API server ready after its maintenance",
                             lambda: self.anonymous_readyz(address), timeout=180)
            self.cp.wait_for(f"{node.role}'s static pods running after its maintenance",
                             lambda: all(p["running"] for p in node.kubelet_status().get("pods", {}).values()),
                             timeout=120)
            self.cp.wait_for(f"etcd healthy after {node.role}'s maintenance",
                             lambda: all(self.etcd_health(node).values()), timeout=120)
            after = node.kubelet_status()
            stops_before, stops_after = before.get("criStops", {}), after.get("criStops", {})
            self.stopped[step][node.role] = {p for p, n in stops_after.items() if n > stops_before.get(p, 0)}
            self.started_again[step][node.role] = {
                key.split("/")[0] for key, pod in after.get("pods", {}).items()
                if pod["restarts"] > before.get("pods", {}).get(key, {}).get("restarts", 0)}
        self.step = step
        self.finished_at[step] = time.time()

    def use_admin(self, text: str) -> None:
        """The harness's own clients (its kubectl, kwok) take a refreshed admin kubeconfig, as
        every client handed one must (ROTATION.md); kwok reads it when it starts."""
        self.cp.admin_kubeconfig().write_text(text)
        for process in self.cp.processes:
            if process.name == "kwok" and process.alive():
                process.stop()
        self.cp.start_kwok()

    # ----------------------------------------------------------------- probes
    def anonymous_readyz(self, address: str) -> bool:
        assert self.cp.admin is not None
        out = run(self.cp.admin.command("curl", "-sk", "--max-time", "5", f"https://{address}:6443/readyz"))
        return out.stdout.strip() == "ok"

    def api(self, kubeconfig: Path, server: str | None = None) -> tuple[bool, str]:
        """Who ``kubeconfig`` is to the API server (through the load balancer, or ``server``):
        (authenticated?, kubectl's answer)."""
        extra = [f"--server={server}"] if server else []
        out = self.cp.kubectl(*extra, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                              kubeconfig=kubeconfig, check=False, timeout=30)
        return out.returncode == 0, (out.stdout + out.stderr).strip()[-400:]

    def on_every_api_server(self, kubeconfig: Path) -> dict[str, tuple[bool, str]]:
        """:meth:`api` on each member's API server and through the load balancer."""
        out = {node.role: self.api(kubeconfig, f"https://{node.member.address}:6443")
               for node in self.members if node.member is not None}
        out["load balancer"] = self.api(kubeconfig)
        return out

    def serving_cert(self, address: str, port: int, node: Node | None = None) -> x509.Certificate:
        """The certificate a TLS server presents: from the admin host, or from ``node`` with its
        etcd client certificate (etcd asks for one)."""
        if node is None:
            assert self.cp.admin is not None
            text = run(self.cp.admin.command("openssl", "s_client", "-connect", f"{address}:{port}"), input="").stdout
        else:
            text = node.run(f"openssl s_client -connect {address}:{port} -cert {PKI}/etcd/healthcheck-client.crt "
                            f"-key {PKI}/etcd/healthcheck-client.key </dev/null 2>/dev/null", check=False).stdout
        certs = pem_certs(text)
        assert certs, f"{address}:{port} presented no certificate"
        return certs[0]

    def etcd_health(self, node: Node, tls: str = ETCD_TLS) -> dict[str, bool]:
        endpoints = ",".join(f"https://{m.address}:2379" for m in self.cp.render.members)
        out = node.run(f"etcdctl --endpoints={endpoints} {tls} --command-timeout=5s endpoint health -w json",
                       check=False, timeout=60)
        try:
            return {e["endpoint"]: bool(e["health"]) for e in json.loads(out.stdout)}
        except (json.JSONDecodeError, KeyError, TypeError):
            return {"(no answer)": False}

    def etcd_members(self, node: Node) -> set[str]:
        out = node.run(f"etcdctl --endpoints=https://127.0.0.1:2379 {ETCD_TLS} member list -w json")
        return {m.get("name", "") for m in json.loads(out.stdout)["members"]}

    def root_ca_configmaps(self) -> dict[str, frozenset[int | None]]:
        """namespace -> the generations in its kube-root-ca.crt ConfigMap."""
        out = self.cp.kubectl("get", "configmaps", "-A", "--field-selector=metadata.name=kube-root-ca.crt", "-o", "json")
        return {item["metadata"]["namespace"]: frozenset(generations(pem_certs(item["data"]["ca.crt"]), self.cas()))
                for item in json.loads(out.stdout)["items"]}

    def eventually(self, check: Callable[[], bool], timeout: float = 60.0, interval: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout
        while not check() and time.monotonic() < deadline:
            time.sleep(interval)
        return check()

    def scheduler_binds_a_pod(self, name: str, timeout: float = 60.0) -> bool:
        """kube-scheduler works: a new Pod (tolerating every taint, restricted-compliant) in
        ``default`` is bound to a Node."""
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
               "spec": {"tolerations": [{"operator": "Exists"}], "automountServiceAccountToken": False,
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65535,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                                        "securityContext": {"allowPrivilegeEscalation": False,
                                                            "capabilities": {"drop": ["ALL"]}}}]}}
        self.cp.kubectl("apply", "-f", "-", input=json.dumps(pod))
        return self.eventually(lambda: bool(json.loads(self.cp.kubectl(
            "get", "pod", "-n", "default", name, "-o", "json").stdout)["spec"].get("nodeName")), timeout)

    def controller_manager_serves_a_namespace(self, name: str, timeout: float = 60.0) -> bool:
        """kube-controller-manager works: a new namespace gets its ``default`` ServiceAccount and
        its ``kube-root-ca.crt`` (service-account and root-CA publisher controllers)."""
        self.cp.kubectl("create", "namespace", name)

        def served() -> bool:
            out = self.cp.kubectl("get", "serviceaccount/default", "configmap/kube-root-ca.crt", "-n", name,
                                  "-o", "name", check=False)
            return out.returncode == 0 and len(out.stdout.split()) == 2
        return self.eventually(served, timeout, interval=3)

    def token_client(self, ca_pem: str) -> Path:
        """The service-account token issued before the rotation, with ``ca_pem`` to trust."""
        doc = yaml.safe_load(self.renders(1).admin_kubeconfig)
        doc["users"][0]["user"] = {"token": self.token}
        doc["clusters"][0]["cluster"]["certificate-authority-data"] = b64(ca_pem)
        return self.kubeconfig("sa-token", yaml.safe_dump(doc))

    def worker_kubelet(self, ca_pem: str | None = None, worker: Node | None = None) -> Path:
        """A worker's kubelet credential (kubelet.conf and its client certificate; the boot
        worker's unless ``worker``), with the CA its kubelet.conf holds, or ``ca_pem``."""
        node = worker or self.worker
        doc = yaml.safe_load(node.root.read("/etc/kubernetes/kubelet.conf"))
        pem = node.root.read("/var/lib/kubelet/pki/kubelet-client-current.pem")
        doc["users"][0]["user"] = {"client-certificate-data": b64(pem), "client-key-data": b64(pem)}
        if ca_pem is not None:
            doc["clusters"][0]["cluster"]["certificate-authority-data"] = b64(ca_pem)
        return self.kubeconfig(f"{node.host.name}-kubelet" + ("-bundle" if ca_pem else ""), yaml.safe_dump(doc))

    def kubelet_client_generation(self, node: Node) -> list[int | None]:
        """The generation that signed the client certificate ``node``'s kubelet.conf names
        (embedded, as kubeadm init writes it, or the kubelet's rotated file)."""
        user = yaml.safe_load(node.root.read("/etc/kubernetes/kubelet.conf"))["users"][0]["user"]
        if "client-certificate-data" in user:
            pem = base64.b64decode(user["client-certificate-data"]).decode()
        else:
            pem = node.root.read(user["client-certificate"])
        return generations(pem_certs(pem)[:1], self.cas())

    def roll_worker(self, step: int) -> Node:
        """The worker pool's roll at ``step``: a VM of that step's render joins (the pool's next
        index; member 0's join-credentials timer approves its client certificate), then the VM
        it replaces goes, as the Auto Scaling group replaces it (its kubelet
        stops, its Node is deleted; its files stay for the drill's checks)."""
        role = f"worker-{self.cp.render.spec.node_pools[0].name}"
        assert self.renders(step).user_data(role) != self.renders(step - 1).user_data(role), f"the pool rolls at step {step}"
        from tests.test_controlplane_real import join_credentials_timer

        previous = self.rolled.get(step - 1, self.worker)
        try:
            # the join credentials timer approves the new VM's client CSR (kubeadm's auto-approval
            # went with the timer's first run)
            with join_credentials_timer(self.cp):
                node = self.cp.join_worker(role, len(self.rolled) + 1, timeout=180, render=self.renders(step))
        except HarnessError as exc:
            for other in self.cp.nodes.values():
                if other.member is None and other.kubelet is not None and other is not previous:
                    other.kubelet.stop()
            raise AssertionError(str(exc)[-1500:]) from None
        name = str(previous.kubelet_status().get("node") or previous.root.hostname)
        if previous.kubelet is not None:
            previous.kubelet.stop()
        self.cp.kubectl("delete", "node", name, "--ignore-not-found", "--wait=false", check=False)
        self.rolled[step] = node
        return node

    def node_kubeconfig_answers(self, node: Node, conf: str) -> tuple[bool, str]:
        """``kubectl auth whoami`` on ``node`` with one of the kubeconfigs kubeadm wrote there."""
        out = node.run(f"kubectl --kubeconfig /etc/kubernetes/{conf} --request-timeout=10s auth whoami "
                       "-o jsonpath='{.status.userInfo.username}'", check=False, timeout=60)
        return out.returncode == 0, (out.stdout + out.stderr).strip()[-300:]

    def files_match_the_store(self, node: Node) -> dict[str, bool]:
        """Node path -> whether the node holds the secret store's current value there (every
        file of its CFCR_SECRETS, through the secret ids of its secrets.sh)."""
        script = node.root.read("/etc/cfcr/secrets.sh")
        paths = dict(line.strip().strip("'").split("|")[:2] for line in script.splitlines()
                     if re.match(r"^\s+'[^']+\|/[^']+\|0[0-7]{3}'$", line))
        ids = dict(re.findall(r"^\s+(\S+)\)\n\s+cfcr_aws_secret_get (\S+) ;;", script, re.M))
        store = Cloud(self.cp.cloud_file).load()["secrets"]
        return {path: node.root.read(path).strip() == store[ids[key]]["value"].strip()
                for key, path in paths.items() if path.startswith(PKI)}


def at_step(drill: Drill, step: int) -> None:
    if drill.step != step:
        pytest.skip(f"the drill is at step {drill.step}, not {step}: an earlier step failed")


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> Renders:
    out = Renders(tmp_path_factory.mktemp("rotation-renders"), read_stack_config(STACK))
    out(1)
    out(2)
    return out


@pytest.fixture(scope="module")
def drill(renders: Renders) -> Iterator[Drill]:
    """A control plane of this module's own (the session's stays untouched), booted from the
    step-1 render: 3 members, kwok, one worker."""
    from tests.conftest import _unavailable, fail_with_logs
    from tests.support import netns
    from tests.support.tools import kwok_stage_configs, require_tool

    why = netns.available()
    if why:
        _unavailable(why)
    names = ["kubeadm", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
             "etcd", "etcdctl", "kwok"]
    binaries = {name: require_tool(name) for name in names}
    with machine_slot():
        workdir = Path(tempfile.mkdtemp(prefix="cfcr-rotation-"))
        cp = ControlPlane(renders(1), workdir, binaries, kwok_stage_configs())
        try:
            cp.boot_control_plane()
            cp.start_kwok()
            worker = cp.join_worker(f"worker-{cp.render.spec.node_pools[0].name}")
            cp.wait_for("every Node Ready", cp._all_ready, timeout=300)
        except BaseException as exc:
            logs = cp.logs()
            cp.close()
            shutil.rmtree(workdir, ignore_errors=True)
            if isinstance(exc, HarnessError):
                fail_with_logs(exc, logs)
            raise
        out = Drill(cp, renders, worker)
        for node in out.members:
            node.root.write(f"{OLD_ETCD_CLIENT}/healthcheck-client.crt", renders.secret(1, "etcd-healthcheck-client-crt"))
            node.root.write(f"{OLD_ETCD_CLIENT}/healthcheck-client.key", renders.secret(1, "etcd-healthcheck-client-key"),
                            0o600)
        def terminated(signum: int, frame: Any) -> None:
            """A SIGTERM would end pytest without teardown: close the harness first."""
            cp.close()
            if os.environ.get("CFCR_KEEP_HARNESS") != "1":
                shutil.rmtree(workdir, ignore_errors=True)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        previous = signal.signal(signal.SIGTERM, terminated)
        try:
            yield out
        finally:
            signal.signal(signal.SIGTERM, previous)
            cp.close()
            if os.environ.get("CFCR_KEEP_HARNESS") != "1":
                shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- the renders

def test_re_rendering_with_two_generations_keeps_generation_1_and_every_secret(renders: Renders) -> None:
    first, second = renders(1), renders(2)
    for family, stem in FAMILIES.items():
        (gen1,) = pem_certs(renders.secret(1, f"{stem}-crt"))
        bundle = pem_certs(renders.secret(2, f"{stem}-crt"))
        assert len(bundle) == 2 and der(bundle[0]) == der(gen1), f"{family}: the generation-1 CA is the same one"
        assert der(bundle[1]) != der(gen1) and bundle[1].subject != gen1.subject, f"{family}: a new generation 2"
        assert renders.secret(2, f"{stem}-key") == renders.secret(1, f"{stem}-key"), "step 2 still signs with gen 1"
    assert secret_arns(second) == secret_arns(first), "the same secret names (and ARNs) in both renders"
    assert changed_stems(first, second) - set(SA_STEMS) == bundle_stems(), "step 2 changes the CA bundles only"
    assert "BEGIN RSA PRIVATE KEY" in renders.secret(1, "sa-key"), "the SA pair differs only as a random RSA key"
    assert second.user_data("control-plane-0") == first.user_data("control-plane-0")
    admin = second.admin_kubeconfig
    assert generations(pem_certs(kubeconfig_ca(admin)), renders.cas("cluster")) == [1, 2], "kubeconfig() embeds the bundle"
    assert der(kubeconfig_client_cert(admin)) == der(kubeconfig_client_cert(first.admin_kubeconfig))
    # why the drill issues leaves at the time of each `pulumi up` (leaves_issued_at): rendered as
    # is, the step-3 leaf that replaces a step-1 leaf ends when it does
    plain = {step: render_cluster(STACK, renders.workdir / f"plain-step-{step}", config={
        **renders.base, "cfcr:pki": {"caGenerations": STEPS[step][0], "signingGeneration": STEPS[step][1]}})
        for step in (1, 3)}
    old, new = (pem_certs(plain[s].secret_values[f"{plain[s].name}-apiserver-crt"])[0] for s in (1, 3))
    assert der(old) != der(new) and old.not_valid_after_utc == new.not_valid_after_utc


# --------------------------------------------------------------------------- step 1: before

def test_step_1_everything_is_generation_1(drill: Drill) -> None:
    cp, renders = drill.cp, drill.renders
    for node in drill.members:
        assert node.member is not None
        for family, path in BUNDLE_FILES.items():
            assert generations(pem_certs(node.root.read(f"{PKI}/{path}")), renders.cas(family)) == [1], (node.role, path)
        assert generations([drill.serving_cert(node.member.address, 6443)], drill.cas()) == [1]
    # the clients the drill follows through the rotation
    drill.token = cp.kubectl("create", "token", "default", "-n", "default", "--duration=24h").stdout.strip()
    unrefreshed = drill.kubeconfig("gen1-admin-unrefreshed", renders(1).admin_kubeconfig)
    for name, client in (("sa token", drill.token_client(renders.secret(1, "ca-crt"))), ("gen-1 admin", unrefreshed)):
        answers = drill.on_every_api_server(client)
        assert all(ok for ok, _ in answers.values()), (name, answers)
    worker_cert = pem_certs(drill.worker.root.read("/var/lib/kubelet/pki/kubelet-client-current.pem"))[0]
    assert generations([worker_cert], drill.cas()) == [1], "the worker kubelet's client certificate is gen 1"
    assert drill.api(drill.worker_kubelet())[0]


# --------------------------------------------------------------------------- step 2: distribute

def test_step_2_distributes_generation_2_and_every_client_keeps_working(drill: Drill) -> None:
    at_step(drill, 1)
    cp, renders = drill.cp, drill.renders
    assert drill.pulumi_up(2) == bundle_stems()
    drill.maintain(2)
    bundle = renders.secret(2, "ca-crt")
    gen1_admin = drill.kubeconfig("gen1-admin", with_ca(renders(1).admin_kubeconfig, bundle))
    drill.use_admin(renders(2).admin_kubeconfig)

    for node in drill.members:
        assert node.member is not None
        assert all(drill.files_match_the_store(node).values()), (node.role, drill.files_match_the_store(node))
        for family, path in BUNDLE_FILES.items():
            assert generations(pem_certs(node.root.read(f"{PKI}/{path}")), renders.cas(family)) == [1, 2], (node.role, path)
        assert {"etcd", "kube-apiserver"} <= drill.stopped[2][node.role], drill.maintain_logs[2][node.role]
        restarted = drill.stopped[2][node.role] | drill.started_again[2][node.role]
        assert RESTARTED_FOR_CA_FILES <= restarted, (node.role, restarted, drill.maintain_logs[2][node.role])
        log = drill.maintain_logs[2][node.role]
        for conf in ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf"):
            assert f"/etc/kubernetes/{conf} trusts the CA bundle (2 certificates)" in log, (node.role, conf, log)
        assert "restart kubelet.service" in node.root.read(f"{HARNESS_DIR}/systemctl.log"), "kubelet.conf took it"
        for conf in MEMBER_KUBECONFIGS:
            ca = kubeconfig_ca(node.root.read(f"/etc/kubernetes/{conf}"))
            assert generations(pem_certs(ca), renders.cas("cluster")) == [1, 2], (node.role, conf)
        assert generations(pem_certs(node.root.read(f"{PKI}/ca-signing.crt")), drill.cas()) == [1]
        assert generations([drill.serving_cert(node.member.address, 6443)], drill.cas()) == [1], "nothing re-signed"
        assert all(drill.etcd_health(node).values()), drill.etcd_health(node)
        assert all(drill.etcd_health(node, OLD_ETCD_TLS).values())
        assert drill.etcd_members(node) == {m.name for m in cp.render.members}

    for name, client in (("gen-1 admin, refreshed bundle", gen1_admin), ("sa token", drill.token_client(bundle)),
                         ("gen-1 admin, not refreshed", drill.clients["gen1-admin-unrefreshed"]),
                         ("worker kubelet", drill.worker_kubelet())):
        answers = drill.on_every_api_server(client)
        assert all(ok for ok, _ in answers.values()), (name, answers)

    own = {f"{node.role} {conf}": drill.node_kubeconfig_answers(node, conf)
           for node in drill.members for conf in MEMBER_KUBECONFIGS}
    rotation = drill.members[0].run("/usr/local/lib/cfcr/join-credentials.sh", check=False)
    own["join-credentials.sh"] = (rotation.returncode == 0, rotation.stderr.strip()[-300:])
    assert all(ok for ok, _ in own.values()), own

    assert drill.scheduler_binds_a_pod("rotation-step-2"), "kube-scheduler binds a pod after step 2"


def test_step_2_the_controller_manager_keeps_working_and_publishes_both_cas(drill: Drill) -> None:
    at_step(drill, 2)
    serves = drill.controller_manager_serves_a_namespace("rotation-step-2")
    both = drill.eventually(lambda: set(drill.root_ca_configmaps().values()) == {frozenset({1, 2})}, 30, 3)
    assert serves and both, ("a new namespace served", serves, "kube-root-ca.crt", drill.root_ca_configmaps())


def test_step_2_rolls_the_worker_pool_onto_vms_that_trust_both_generations(drill: Drill) -> None:
    """A worker runs no maintenance and, once joined, can read nothing from the secret store: the
    pool rolls instead (its join pins change at step 2), and the new VM's kubeconfig and client
    CA hold the store's bundle whatever CA kube-public/cluster-info carried."""
    at_step(drill, 2)
    worker = drill.roll_worker(2)
    assert generations(pem_certs(worker.root.read(f"{PKI}/ca.crt")), drill.cas()) == [1, 2]
    assert generations(pem_certs(kubeconfig_ca(worker.root.read("/etc/kubernetes/kubelet.conf"))), drill.cas()) == [1, 2]
    assert drill.kubelet_client_generation(worker) == [1], "step 2 still signs with gen 1"
    assert drill.api(drill.worker_kubelet(worker=worker))[0]


# --------------------------------------------------------------------------- step 3: re-sign

def test_step_3_reissues_every_leaf_with_generation_2_and_generation_1_still_works(drill: Drill) -> None:
    at_step(drill, 2)
    cp, renders = drill.cp, drill.renders
    changed = drill.pulumi_up(3)
    prefix = f"{renders(3).name}-"
    leaves = {name.removeprefix(prefix) for name in renders(3).secret_values if name.endswith("-crt")} - bundle_stems()
    assert changed == bundle_stems() | ca_key_stems() | leaves, "every CA bundle and key and every leaf"
    for stem in leaves:
        cert = pem_certs(renders.secret(3, stem))[0]
        family = "etcd" if stem.startswith(("etcd-", "apiserver-etcd-")) else (
            "front-proxy" if stem.startswith("front-proxy-") else "cluster")
        assert generations([cert], renders.cas(family)) == [2], stem
        assert renders.secret(3, stem.removesuffix("-crt") + "-key") == renders.secret(1, stem.removesuffix("-crt") + "-key")
    drill.maintain(3)
    gen2_admin = drill.kubeconfig("gen2-admin", renders(3).admin_kubeconfig)
    assert generations([kubeconfig_client_cert(renders(3).admin_kubeconfig)], drill.cas()) == [2]

    for node in drill.members:
        assert node.member is not None
        assert all(drill.files_match_the_store(node).values()), (node.role, drill.files_match_the_store(node))
        for family, path in BUNDLE_FILES.items():
            assert generations(pem_certs(node.root.read(f"{PKI}/{path}")), renders.cas(family)) == [2, 1], (node.role, path)
        restarted = drill.stopped[3][node.role] | drill.started_again[3][node.role]
        assert RESTARTED_FOR_CA_FILES <= restarted, (node.role, restarted, drill.maintain_logs[3][node.role])
        address = node.member.address
        assert generations([drill.serving_cert(address, 6443)], drill.cas()) == [2], node.role
        for port in (2379, 2380):
            assert generations([drill.serving_cert(address, port, node)], renders.cas("etcd")) == [2], (node.role, port)
        healthcheck = pem_certs(node.root.read(f"{PKI}/etcd/healthcheck-client.crt"))
        assert generations(healthcheck, renders.cas("etcd")) == [2], "etcdctl below uses the new client certificate"
        assert all(drill.etcd_health(node).values()), drill.etcd_health(node)
        assert all(drill.etcd_health(node, OLD_ETCD_TLS).values()), "a gen-1 etcd client still works"
        assert drill.etcd_members(node) == {m.name for m in cp.render.members}

    for name, client in (("gen-1 admin, refreshed bundle", drill.clients["gen1-admin"]), ("gen-2 admin", gen2_admin),
                         ("sa token", drill.token_client(renders.secret(3, "ca-crt"))),
                         ("worker kubelet's gen-1 certificate, bundle", drill.worker_kubelet(renders.secret(3, "ca-crt")))):
        answers = drill.on_every_api_server(client)
        assert all(ok for ok, _ in answers.values()), (name, answers)
    unrefreshed = drill.on_every_api_server(drill.clients["gen1-admin-unrefreshed"])
    assert all(not ok and "x509" in text for ok, text in unrefreshed.values()), (
        "a kubeconfig that trusts gen 1 only cannot verify a gen-2 API server", unrefreshed)
    drill.use_admin(renders(3).admin_kubeconfig)  # before step 4: the harness's clients take gen-2 certificates


def test_step_3_every_kube_root_ca_still_carries_both_cas(drill: Drill) -> None:
    at_step(drill, 3)
    both = drill.eventually(lambda: set(drill.root_ca_configmaps().values()) == {frozenset({1, 2})}, 30, 3)
    assert both, drill.root_ca_configmaps()


def test_step_3_the_members_own_clients_keep_working(drill: Drill) -> None:
    at_step(drill, 3)
    answers = {f"{node.role} {conf}": drill.node_kubeconfig_answers(node, conf)
               for node in drill.members for conf in MEMBER_KUBECONFIGS}
    answers["step-2 worker's kubelet.conf"] = drill.api(drill.worker_kubelet(worker=drill.rolled[2]))
    rotation = drill.members[0].run("/usr/local/lib/cfcr/join-credentials.sh", check=False)
    answers["join-credentials.sh"] = (rotation.returncode == 0, rotation.stderr.strip()[-300:])
    answers["kube-scheduler binds a pod"] = (drill.scheduler_binds_a_pod("rotation-step-3"), "")
    answers["kube-controller-manager serves a namespace"] = (
        drill.controller_manager_serves_a_namespace("rotation-step-3"), "")
    for node in drill.members:
        for conf in ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"):
            cert = kubeconfig_client_cert(node.root.read(f"/etc/kubernetes/{conf}"))
            answers[f"{node.role} {conf} signed by gen 2"] = (generations([cert], drill.cas()) == [2], "")
        answers[f"{node.role} kubelet client signed by gen 2"] = (drill.kubelet_client_generation(node) == [2], "")
    failed = {what: text for what, (ok, text) in answers.items() if not ok}
    assert not failed, failed


def test_step_3_a_vm_of_the_rolled_worker_pool_joins_with_a_generation_2_kubelet_certificate(drill: Drill) -> None:
    at_step(drill, 3)
    worker = drill.roll_worker(3)
    assert "This node has joined the cluster" in worker.join_output, worker.join_output[-2000:]
    assert generations(pem_certs(kubeconfig_ca(worker.root.read("/etc/kubernetes/kubelet.conf"))), drill.cas()) == [2, 1]
    assert drill.kubelet_client_generation(worker) == [2], "kube-controller-manager signs with gen 2"
    assert drill.api(drill.worker_kubelet(worker=worker))[0]


def test_the_worker_join_configuration_pins_every_trusted_ca_during_steps_2_and_3(renders: Renders) -> None:
    # after step 3's test, so that step 3 is rendered when its `pulumi up` happens
    from cfcr.pki.specs import kubeadm_ca_cert_hash

    for step in (2, 3):
        render = renders(step)
        pins = {kubeadm_ca_cert_hash(c.public_bytes(serialization.Encoding.PEM).decode())
                for c in renders.cas("cluster").values()}
        (join,) = [d for d in render.kubeadm_documents("worker-general") if d.get("kind") == "JoinConfiguration"]
        assert set(join["discovery"]["bootstrapToken"]["caCertHashes"]) == pins, f"step {step}"


# --------------------------------------------------------------------------- step 4: retire

def test_step_4_retires_generation_1(drill: Drill) -> None:
    at_step(drill, 3)
    cp, renders = drill.cp, drill.renders
    assert drill.pulumi_up(4) == bundle_stems()
    for stem in drill.changed[3] - bundle_stems():
        assert renders.secret(4, stem) == renders.secret(3, stem), f"{stem}: nothing is re-issued at step 4"
    drill.maintain(4)
    drill.use_admin(renders(4).admin_kubeconfig)

    for node in drill.members:
        assert node.member is not None
        assert all(drill.files_match_the_store(node).values()), (node.role, drill.files_match_the_store(node))
        for family, path in BUNDLE_FILES.items():
            assert generations(pem_certs(node.root.read(f"{PKI}/{path}")), renders.cas(family)) == [2], (node.role, path)
        restarted = drill.stopped[4][node.role] | drill.started_again[4][node.role]
        assert RESTARTED_FOR_CA_FILES <= restarted, (node.role, restarted, drill.maintain_logs[4][node.role])
        assert generations([drill.serving_cert(node.member.address, 6443)], drill.cas()) == [2]
        assert all(drill.etcd_health(node).values()), drill.etcd_health(node)
        assert not any(drill.etcd_health(node, OLD_ETCD_TLS).values()), "etcd refuses a gen-1 client"
        assert drill.etcd_members(node) == {m.name for m in cp.render.members}

    for name, client in (("gen-2 admin", drill.clients["gen2-admin"]),
                         ("sa token", drill.token_client(renders.secret(4, "ca-crt")))):
        answers = drill.on_every_api_server(client)
        assert all(ok for ok, _ in answers.values()), (name, answers)
    own = {f"{node.role} {conf}": drill.node_kubeconfig_answers(node, conf)
           for node in drill.members for conf in MEMBER_KUBECONFIGS}
    own["step-3 worker's kubelet.conf"] = drill.api(drill.worker_kubelet(worker=drill.rolled[3]))
    own["kube-scheduler binds a pod"] = (drill.scheduler_binds_a_pod("rotation-step-4"), "")
    own["kube-controller-manager serves a namespace"] = (drill.controller_manager_serves_a_namespace("rotation-step-4"), "")
    assert all(ok for ok, _ in own.values()), {k: v for k, v in own.items() if not v[0]}
    for name, client in (("gen-1 admin, refreshed bundle", drill.clients["gen1-admin"]),
                         ("worker kubelet's gen-1 certificate, gen-2 bundle", drill.worker_kubelet(renders.secret(4, "ca-crt"))),
                         ("step-2 worker's gen-1 kubelet certificate",
                          drill.worker_kubelet(renders.secret(4, "ca-crt"), worker=drill.rolled[2]))):
        answers = drill.on_every_api_server(client)
        assert all(not ok and "Unauthorized" in text for ok, text in answers.values()), (name, answers)


def test_step_4_kube_root_ca_drops_generation_1(drill: Drill) -> None:
    at_step(drill, 4)
    only_2 = drill.eventually(lambda: set(drill.root_ca_configmaps().values()) == {frozenset({2})}, 60, 3)
    assert only_2, drill.root_ca_configmaps()
