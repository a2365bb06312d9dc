"""The real control plane of a render, on this machine: the harness every drill runs on.

From a ``--show-secrets`` render of a stack (:mod:`tests.support.rendered`) it boots the
cluster's control-plane members the way their VMs would, with the real programs built from Go
modules at the channel's versions (:mod:`tests.support.tools`):

1. **Network** (:mod:`tests.support.netns`): each member is a host with its rendered address;
   a load-balancer host answers on every API name and address the render hands out (the private
   endpoint, the public one) and forwards to members that pass ``GET /readyz``
   (:mod:`tests.support.lb`); a metadata host answers as the cloud's instance metadata service.
2. **Node root** (:mod:`tests.support.noderoot`): the member's user-data written as cloud-init
   writes it; its cloud calls (the node hook's own, in the cloud's protocols) go to a stand-in
   that serves exactly the secrets the member's cloud identity may read by the render's own
   grants. The cloud's side is pluggable (:mod:`tests.support.harness_clouds`, chosen by the
   render's ``cfcr:cloud``): AWS (IMDSv2, Secrets Manager and EC2 judged by the render's IAM
   policies), GCP (the metadata server, Secret Manager judged by the render's
   ``secretAccessor`` grants) and Azure (IMDS, Key Vault judged by the render's role
   assignments on each secret, ARM's scale-set listings).
3. **Boot**, with the node's own code: the metadata guard where the render has one (as systemd
   starts it before the kubelet), ``fetch_all_secrets`` and ``render_configs`` from
   ``bootstrap.sh`` (secrets from the store, placeholders filled, provider ID from the metadata
   service), then
   ``kubeadm init --config /etc/kubernetes/kubeadm.yaml`` on every member at once, as the
   boot does (parallel boot). The kubelet stand-in (:mod:`tests.support.kubelet`) starts the
   static pods kubeadm writes (and cfcr's etcd.yaml) as processes with their manifests' exact
   commands, and registers the Node with the kubelet credential kubeadm wrote.

What differs from a VM, in one place (:data:`DIFFERENCES`); nothing in a rendered file, flag,
certificate or kubeconfig is rewritten: paths, addresses and ports are the rendered ones.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import hmac
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cfcr.node.metadata_guard import GUARD_SCRIPT
from tests.support.cloudfacts import VmFacts
from tests.support.harness_clouds import AwsCloud, AzureCloud, CloudError, GcpCloud, Launch, cloud_for
from tests.support.kubelet import CRICTL
from tests.support.netns import Host, Network, run
from tests.support.noderoot import HARNESS_DIR, NodeRoot
from tests.support.rendered import Member, RenderedCluster
from tests.support.validators import load_cloud_config as cloud_config

REPO = Path(__file__).resolve().parents[2]

DIFFERENCES: dict[str, str] = {
    "programs": "kubeadm, kubectl and each static pod's program come from the tool cache (built from Go modules at "
                "the channel's version), bound at /usr/local/bin; a static pod runs as a process with its "
                "container's exact command, not in a container from its image",
    "kubelet": "a stand-in (tests/support/kubelet.py) runs the static pods, serves /healthz, does TLS bootstrap and "
               "registers the Node, and creates each static pod's mirror Pod (its status from the pod's processes); "
               "kwok keeps Node status and leases fresh",
    "host setup": "bootstrap.sh's host steps (modules, sysctls but the network namespace's own, swap, downloads, "
                  "containerd, the etcd disk, systemd units) do not run; the harness runs the user-data's bootcmd (Azure members: "
                  "the API name to 127.0.0.1 in /etc/hosts) and its other steps as they "
                  "are (fetch_all_secrets, render_configs, trust_ca_bundle, forget_join_credentials, the bootstrapped "
                  "mark) and the "
                  "tests run the timers' scripts themselves; of the systemd units, only the metadata guard "
                  "(metadata-guard.sh, on clouds whose render has one: GCP) runs, before the kubelet stand-in, in the "
                  "node's own network namespace, as its unit runs before containerd and the kubelet",
    "cloud": "the cloud APIs the nodes call, the instance metadata service and the API load balancer are local "
             "stand-ins (tests/support/harness_clouds.py), knowing the caller by its address. AWS: Secrets Manager "
             "and EC2 profile associations, judged with the render's own IAM policies for the instance profile the "
             "VM holds at that moment (KMS is not evaluated); nodes reach it through AWS_ENDPOINT_URL and sign with "
             "placeholder credentials from the IMDSv2 stand-in, signatures unchecked (moto checks them in "
             "test_aws_node_hook_real.py). GCP: the metadata server at its own address answers each VM its name, "
             "zone, project and a token of its service account; Secret Manager (reached through "
             "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER, Cloud Storage through STORAGE_EMULATOR_HOST) judges "
             "each read by the render's secretAccessor grants, the project number is the stand-in's, Cloud DNS's "
             "private zone is /etc/hosts, and the public forwarding rule's address is routed from the admin host "
             "only. Azure: IMDS at its own address answers each VM its identities' tokens, tags, resource id and "
             "vmId; Key Vault and ARM (reached through CFCR_AZURE_VAULT_URL and CFCR_AZURE_ARM_URL, plain HTTP) judge "
             "each call by the render's role assignments, granted at once (no propagation delay); the private DNS "
             "zone is /etc/hosts; the public address is routed from the admin host only; the load balancer's "
             "stand-in drops a member's own connections to it (no hairpin, as Azure's). The kubelet stand-in "
             "resolves the API name through the node's own /etc/hosts, as a kubelet does. All clouds' load balancers are one TCP proxy (tests/support/lb.py): backends see its address, "
             "where a passthrough load balancer keeps the client's address and GCP's internal proxy one sends from the "
             "proxy-only subnet. The load "
             "balancer's stand-in takes its targets when it starts, so a change of targets (set_lb_backends) "
             "restarts it and it refuses connections until they pass their health check",
    "preflight": "kubeadm's preflight also ignores the checks this machine cannot pass (ENVIRONMENT_PREFLIGHT), "
                 "never the ones cfcr's design decides",
    "crictl": "a stand-in script (tests/support/kubelet.py CRICTL) serves exactly what the node's scripts call, "
              "`crictl ps --name REGEX -q` and `crictl stop ID...` (lib.sh restart_static_pod), by asking the kubelet "
              "stand-in, which stops that static pod's process and starts it again as a kubelet restarts a container",
    "systemctl": "a stand-in script (SYSTEMCTL) serves what the node's scripts call after kubeadm, `systemctl "
                 "restart kubelet.service` (lib.sh restart_kubelet), and logs it; the kubelet stand-in reads "
                 "kubelet.conf and its client certificate afresh for each request, as a kubelet does when it starts",
}
"""Every way a harness node differs from a VM booted from the same render."""

SYSTEMCTL = f"""#!/bin/bash
# The harness's stand-in for systemctl (no systemd runs a harness node): what the node's scripts
# call once the node has booted, logged to {HARNESS_DIR}/systemctl.log.
set -euo pipefail
case "$*" in
  "restart kubelet.service")
    mkdir -p {HARNESS_DIR}
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*" >>{HARNESS_DIR}/systemctl.log ;;
  *) echo "systemctl (harness stand-in): '$*' is not supported" >&2; exit 2 ;;
esac
"""
"""The harness's ``systemctl`` on every node (``/usr/local/bin/systemctl``)."""

ENVIRONMENT_PREFLIGHT: dict[str, str] = {
    "CRI": "no container runtime runs on the test machine",
    "ContainerRuntimeVersion": "no container runtime runs on the test machine",
    "ImagePull": "images are not pulled: the programs come from the tool cache",
    "KubeletVersion": "no kubelet binary on the test machine (the stand-in plays its part)",
    "SystemVerification": "no kubelet binary to verify the system for",
}
"""Preflight checks the test machine cannot pass, each with why; a node never ignores these."""

class HarnessError(RuntimeError):
    """The harness could not bring the cluster to the state asked for; carries the logs' tails."""


class NodeTimeout(HarnessError):
    """A node command that did not end in time (the message holds the tail of its output)."""


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Process:
    """A long-running process of the harness with its log."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=5)


@dataclass
class Node:
    """One simulated VM: its root, its host, its kubelet stand-in."""

    role: str
    """The render's role slug (``control-plane-0``, ``worker-general``)."""
    root: NodeRoot
    instance_id: str
    zone: str
    member: Member | None = None
    kubelet: Process | None = None
    join_output: str = ""
    member_log: str = ""
    """What the member model's steps (member.sh) logged on this node."""
    binaries: dict[str, Path] = field(default_factory=dict)
    """Programs of another version than the harness's (a VM of the next release)."""

    @property
    def host(self) -> Host:
        return self.root.host

    @property
    def hostname(self) -> str:
        """The VM's host name (on GCP, its instance name)."""
        return self.root.hostname

    @property
    def state(self) -> Path:
        return self.root.path.parent / f"{self.host.name}-kubelet"

    def kubelet_status(self) -> dict[str, Any]:
        status = self.state / "status.json"
        return dict(json.loads(status.read_text())) if status.exists() else {}

    def run(self, script: str, *, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run ``script`` with bash on the node (as root, in its namespaces and root). Past
        ``timeout`` seconds: a :class:`HarnessError` with the tail of what it printed (where it
        hung), whatever ``check``."""
        try:
            out = subprocess.run(self.root.command("bash", "-c", script), capture_output=True, text=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            printed = [_text(exc.stdout)[-4000:], _text(exc.stderr)[-6000:]]
            raise NodeTimeout(f"{self.role}: `{script}` did not end within {timeout:.0f}s; its last output:\n"
                               + "\n".join(printed) + f"\nkubelet stand-in: {self.kubelet_status()}") from None
        if check and out.returncode != 0:
            raise HarnessError(f"{self.role}: `{script}` exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return out


def jws_valid(detached: str, payload: str, token_id: str, token_secret: str) -> bool:
    """Whether ``detached`` (``<header>..<signature>``, as the bootstrap signer writes
    ``jws-kubeconfig-<token id>`` into cluster-info) signs ``payload`` with the bootstrap token:
    HS256 keyed with its secret, its key id the token id (what kubeadm's token discovery checks)."""
    def b64url(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header, _, signature = detached.partition("..")
    try:
        fields = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except ValueError:
        return False
    if fields.get("alg") != "HS256" or fields.get("kid") != token_id:
        return False
    expected = hmac.new(token_secret.encode(), f"{header}.{b64url(payload.encode())}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(b64url(expected), signature)


def _text(output: bytes | str | None) -> str:
    """What a timed-out process printed (bytes, even when run with ``text=True``)."""
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


@dataclass
class ControlPlane:
    """The harness; see the module docstring. Use as a context manager."""

    render: RenderedCluster
    workdir: Path
    binaries: Mapping[str, Path]
    """Program name -> host path (kubeadm, kubectl, kube-apiserver, …, etcd, etcdctl, kwok)."""
    kwok_stages: Sequence[Path] = ()
    """kwok Stage files (node initialise and heartbeat)."""
    net: Network | None = None
    nodes: dict[str, Node] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    lb_addresses: dict[str, str] = field(default_factory=dict)
    admin: Host | None = None
    init_output: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds each phase of :meth:`boot` took."""
    preflight_before: dict[str, list[str]] = field(default_factory=dict)
    """Preflight errors on member 0 before boot, without the rendered config's ignores
    (``without``); with them, preflight is the first phase of each member's ``kubeadm init``."""
    preflight_after: dict[str, list[str]] = field(default_factory=dict)
    """Preflight errors per role after boot, with the rendered config: what a retry meets."""
    cloud: AwsCloud | GcpCloud | AzureCloud | None = None
    """The render's cloud (tests/support/harness_clouds.py), made with the network."""
    hung: list[str] = field(default_factory=list)
    """The kubeadm runs that were stopped, hung, and tried again (``role: kubeadm init``)."""

    @property
    def _cloud(self) -> AwsCloud | GcpCloud | AzureCloud:
        assert self.cloud is not None, "the cloud is initialised with the network"
        return self.cloud

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Everything ends at once: every process of every host's namespace is killed (the
        kubelet stand-ins, their static pods, the cloud's stand-ins), as when the VMs are
        deleted; stopping each kubelet stand-in gracefully first (its pods one by one) took a
        minute per harness and tested nothing. Then the network goes."""
        if self.net is not None:
            for host in self.net.hosts.values():
                pids = run("ip", "netns", "pids", host.netns, check=False).stdout.split()
                for pid in pids:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        for node in self.nodes.values():
            if node.kubelet is not None:
                node.kubelet.stop()
        for process in reversed(self.processes):
            process.stop()
        if self.net is not None:
            self.net.close()
            self.net = None

    def spawn(self, name: str, cmd: Sequence[str], *, cwd: Path | None = None) -> Process:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as handle:
            popen = subprocess.Popen(list(cmd), stdout=handle, stderr=subprocess.STDOUT, cwd=cwd or REPO,
                                     start_new_session=True)
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    # ------------------------------------------------------------------ the network
    @property
    def cloud_file(self) -> Path:
        """The cloud stand-in's state file (AWS: awsapi.Cloud's)."""
        return self._cloud.state_file if self.cloud is not None else self.workdir / "aws-state.json"

    def build_network(self) -> None:
        """The cloud (its state from the render), the network, the load balancer's host on the
        rendered API addresses (or, where the render has none, two from the top of the node
        network, which the topology plan leaves unused), the metadata host, the admin host (the
        top of the node network), and the API names in every host's /etc/hosts. An API address
        outside the node network (GCP's public forwarding rule) is routed to the load balancer
        from the admin host only: a client outside the cloud."""
        render = self.render
        self.cloud = cloud_for(render, self.workdir)
        self.cloud.init()
        self.net = Network(f"cfcr{os.getpid() % 100000}", str(render.node_network()))
        internal, public = self.cloud.api_addresses()
        admin = str(list(render.node_network().hosts())[-4])
        self.net.add_host("lb", [internal] + ([public] if public else []))
        self.net.add_host("imds", ["169.254.169.254"])
        self.admin = self.net.add_host("admin", [admin])
        self.lb_addresses = {"internal": internal} | ({"public": public} if public else {})
        for address in self.lb_addresses.values():
            if ipaddress.ip_address(address) not in render.node_network():
                run(*self.admin.command("ip", "route", "add", f"{address}/32", "dev", "eth0"))
        self.net.set_names(self.cloud.api_names(internal, public))

    def add_node(self, role: str, address: str, hostname: str, instance_id: str, zone: str,
                 member: Member | None = None, *, render: RenderedCluster | None = None,
                 binaries: Mapping[str, Path] | None = None) -> Node:
        """A VM of ``role`` from the harness's render (or ``render``, with that release's
        ``binaries``), launched in the network and the cloud's stand-in."""
        assert self.net is not None
        name = f"cp-{member.index}" if member is not None else f"w{len(self.nodes)}"
        host = self.net.add_host(name, [address])
        run(*host.command("ip", "route", "add", "169.254.169.254/32", "dev", "eth0"))
        root = self._new_root(self.workdir / "nodes" / host.name, host, hostname, (render or self.render).user_data(role),
                              binaries)
        node = Node(role, root, instance_id, zone, member, binaries=dict(binaries or {}))
        self.nodes[host.name] = node
        self._cloud.launch(node, render)
        return node

    def _add(self, role: str, launch: Launch, member: Member | None = None, *,
             render: RenderedCluster | None = None, binaries: Mapping[str, Path] | None = None) -> Node:
        return self.add_node(role, launch.address, launch.hostname, launch.instance_id, launch.zone, member,
                             render=render, binaries=binaries)

    def _new_root(self, path: Path, host: Host, hostname: str, user_data: bytes,
                  binaries: Mapping[str, Path] | None) -> NodeRoot:
        """A VM's fresh root disk from ``user_data``, with the programs a node binds and the
        stand-ins of the programs the harness cannot run (DIFFERENCES)."""
        assert self.net is not None
        root = NodeRoot.create(path, host, hostname, user_data, self._node_programs(binaries), self.net.hosts_file())
        root.env.update(self._cloud.node_env())  # the node hook's cloud calls go to the cloud's stand-in
        root.write("/usr/local/bin/crictl", CRICTL, 0o755)  # crictl: a client of the kubelet stand-in
        root.write("/usr/local/bin/systemctl", SYSTEMCTL, 0o755)
        # the VM's own /etc/hosts first, as cloud-init's bootcmd finds it (the network's names are
        # its resolver's, which glibc asks after the files: they go below, after bootcmd)
        lines = self.net.hosts_file().splitlines()
        network = [line for line in lines if line.split()[1:] and line.split()[1] in self.net.names]
        root.write("/etc/hosts", "".join(f"{line}\n" for line in lines if line not in network), 0o644)
        self._bootcmd(root, user_data)
        with root.file("/etc/hosts").open("a") as hosts:
            hosts.write("# the network's resolver (the harness's stand-in for the cloud's DNS)\n")
            hosts.write("".join(f"{line}\n" for line in network))
        return root

    @staticmethod
    def _bootcmd(root: NodeRoot, user_data: bytes) -> None:
        """The user-data's ``bootcmd``, run in the node as cloud-init runs it on every boot
        (a list: the program and its arguments; a string: ``sh -c``), before anything starts."""
        for entry in cloud_config(user_data).get("bootcmd", []):
            command = [str(a) for a in entry] if isinstance(entry, list) else ["sh", "-c", str(entry)]
            out = subprocess.run(root.command(*command), capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise HarnessError(f"bootcmd {command} exited {out.returncode}: {out.stderr[-2000:]}")

    def _node_programs(self, binaries: Mapping[str, Path] | None) -> dict[str, Path]:
        """The programs a node root binds at /usr/local/bin: the harness's, or ``binaries``'
        (another release's) where given."""
        programs = {**self.binaries, **(binaries or {})}
        return {k: v for k, v in programs.items() if k in ("kubeadm", "kubectl", "etcdctl")}

    def cloud_state(self) -> dict[str, Any]:
        """The cloud stand-in's state (AWS: instances and their profiles, secret values, calls;
        GCP: project, instances, secret values, accessors and, in ``log``, every secret read)."""
        return self._cloud.state()

    def start_services(self) -> None:
        assert self.net is not None
        self._spawn_lb(self.render.members)
        self._cloud.start(self.spawn, self.net.hosts["imds"])

    def vm(self, node: Node) -> VmFacts:
        """The node's VM as its cloud presents it (tests/support/cloudfacts.py)."""
        return self._cloud.vm(node)

    def provider_id(self, node: Node) -> str:
        """The provider ID the cloud gives the node's VM."""
        return self._cloud.provider_id(node)

    # ------------------------------------------------------------------ boot
    def start_kubelet(self, node: Node) -> None:
        node.state.mkdir(parents=True, exist_ok=True)
        config = {
            "root": str(node.root.path),
            # the stand-in runs inside the node's namespace already: the prefix without `ip netns exec`
            "enter": node.root.enter_prefix()[len(node.host.command()):],
            "state": str(node.state),
            "node_ip": node.host.address,
            "hostname": node.root.hostname,
            "binaries": {k: str(v) for k, v in {**self.binaries, **node.binaries}.items()},
        }
        config_path = node.state / "config.json"
        config_path.write_text(json.dumps(config, indent=2))
        node.kubelet = self.spawn(f"{node.host.name}-kubelet",
                                  node.host.command(sys.executable, "-m", "tests.support.kubelet", str(config_path)))

    def prepare(self, node: Node) -> None:
        """The boot script's own steps: the node's network sysctls (the ones a network namespace
        owns), the metadata guard where the render has one (its unit runs before containerd and
        the kubelet), secrets from the store, configs rendered; on a member, the member model's
        steps before kubeadm (etcd membership, a replaced VM's stale Node)."""
        node.run("grep -E '^net\\.ipv[46]\\.' /etc/sysctl.d/90-cfcr.conf | sysctl -q -p - >/dev/null")
        if node.root.exists(GUARD_SCRIPT):
            node.run(GUARD_SCRIPT)
        node.run(". /usr/local/lib/cfcr/bootstrap.sh && fetch_all_secrets && render_configs")
        if node.member is not None:
            out = node.run(". /usr/local/lib/cfcr/bootstrap.sh && . /usr/local/lib/cfcr/member.sh && "
                           "etcd_membership && forget_stale_node", timeout=300)
            node.member_log += out.stdout + out.stderr

    def kubeadm(self, node: Node, *args: str, timeout: float = 600.0,
                also_ignore: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
        ignore = ",".join([*ENVIRONMENT_PREFLIGHT, *also_ignore])
        return node.run(" ".join(["kubeadm", *args, f"--ignore-preflight-errors={ignore}"]), check=False,
                        timeout=timeout)

    def boot_control_plane(self, timeout: float = 600.0, before_init: Any = None) -> None:
        """Build the network and members, then ``kubeadm init`` on every member at once
        (``before_init(member 0)`` runs once the members are prepared, before any kubelet).
        Each step's seconds go to :attr:`timings`."""
        started = time.monotonic()
        self.build_network()
        for member in self.render.members:
            self._add(f"control-plane-{member.index}", self._cloud.member_launch(member), member)
        self.start_services()
        members = [n for n in self.nodes.values() if n.member is not None]
        started = self._timed("network and VMs", started)
        # every VM boots at once: each member's boot steps run alongside the others' (on a blank
        # disk, the member model's steps wait for peers before they start a new cluster)
        with concurrent.futures.ThreadPoolExecutor(len(members)) as pool:
            for done in [pool.submit(self.prepare, node) for node in members]:
                done.result()
        started = self._timed("secrets and configs", started)
        if before_init is not None:
            before_init(members[0])
            started = self._timed("preflight before", started)
        for node in members:
            self.start_kubelet(node)
        with concurrent.futures.ThreadPoolExecutor(len(members)) as pool:
            runs = {node.role: pool.submit(self.kubeadm, node, "init", "--config", "/etc/kubernetes/kubeadm.yaml",
                                            "--v=1", timeout=timeout) for node in members}
        failed = {role: r.result() for role, r in runs.items() if r.result().returncode != 0}
        started = self._timed("kubeadm init", started)
        for node in members if not failed else []:
            self.finish(node)
        self._timed("members ready", started)
        self.init_output = {role: r.result().stdout + r.result().stderr for role, r in runs.items()}
        if failed:
            raise HarnessError("kubeadm init failed:\n" + "\n\n".join(
                f"== {role} (exit {out.returncode})\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}\n"
                f"kubelet stand-in: {self.nodes[f'cp-{role.rsplit(chr(45), 1)[1]}'].kubelet_status()}"
                for role, out in failed.items()))

    def _timed(self, step: str, started: float) -> float:
        """Record ``step``'s seconds since ``started`` in :attr:`timings`; returns now."""
        now = time.monotonic()
        self.timings[step] = round(now - started, 1)
        return now

    def start_kwok(self) -> None:
        """kwok keeps every Node the kubelet stand-in registered (``kwok.x-k8s.io/node: fake``)
        Ready, with fresh status and leases, as live kubelets would."""
        assert self.admin is not None
        stages = [arg for stage in self.kwok_stages for arg in ("--config", str(stage))]
        self.spawn("kwok", self.admin.command(
            str(self.binaries["kwok"]), f"--kubeconfig={self.admin_kubeconfig()}",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds=40", *stages))

    def restart_kwok(self) -> None:
        """kwok anew: it manages the Nodes that carry its annotation now."""
        for process in [p for p in self.processes if p.name == "kwok"]:
            process.stop()
            self.processes.remove(process)
        self.start_kwok()

    def new_worker(self, role: str, index: int, *, render: RenderedCluster | None = None,
                   binaries: Mapping[str, Path] | None = None) -> Node:
        """A VM of ``role``'s pool, launched where its cloud would put VM ``index`` of the pool
        (:mod:`tests.support.harness_clouds`) and prepared (secrets, configs) but not joined."""
        try:
            launch = self._cloud.worker_launch(role, index)
        except CloudError as exc:
            raise HarnessError(str(exc)) from exc
        node = self._add(role, launch, render=render, binaries=binaries)
        self.prepare(node)
        return node

    def join_worker(self, role: str, index: int = 0, timeout: float = 300.0, *, render: RenderedCluster | None = None,
                    binaries: Mapping[str, Path] | None = None) -> Node:
        """Boot one VM of a worker pool: secrets, configs, kubelet stand-in, ``kubeadm join``."""
        return self._join(self.new_worker(role, index, render=render, binaries=binaries), timeout)

    def _join(self, node: Node, timeout: float) -> Node:
        """A prepared worker VM joins: kubelet stand-in, ``kubeadm join``, then :meth:`finish`."""
        self.start_kubelet(node)
        self.wait_for_signed_cluster_info(node)
        out = self.kubeadm(node, "join", "--config", "/etc/kubernetes/kubeadm.yaml", "--v=1", timeout=timeout)
        node.join_output = out.stdout + out.stderr
        if out.returncode != 0:
            raise HarnessError(f"kubeadm join on {node.role} failed (exit {out.returncode}):\n{out.stdout[-4000:]}\n"
                               f"{out.stderr[-4000:]}\nkubelet stand-in: {node.kubelet_status()}")
        self.finish(node)
        return node

    def lose_worker(self, node: Node) -> None:
        """A worker's VM is gone, as a cloud's repair deletes it: its kubelet stand-in and every
        process in its namespace end and its root disk is dropped; the host (its address) stays.
        The cloud's stand-in keeps the instance until :meth:`recreate_worker` replaces it, and
        kwok stops keeping the Node's status and lease fresh (its kubelet is gone): the node
        lifecycle controller finds it not Ready after its grace period."""
        name = node.kubelet_status().get("node")
        self._kill_namespace(node)
        if name:
            self.kubectl("annotate", "node", str(name), "kwok.x-k8s.io/node-")
            self.restart_kwok()  # kwok keeps a node it once managed: a fresh one manages the rest only
        shutil.rmtree(node.root.path)
        shutil.rmtree(node.state, ignore_errors=True)

    def recreate_worker(self, old: Node, instance_id: str, timeout: float = 300.0) -> Node:
        """The cloud recreates a lost worker VM under its old name (a GCP managed instance group's
        repair keeps the instance name; on AWS a new instance may get the private address, so the
        name, of a terminated one): a fresh root from the pool's user-data on the same host with
        the same host name, a new instance id, launched now; then it joins as any pool VM does."""
        root = self._new_root(old.root.path, old.host, old.root.hostname, self.render.user_data(old.role), None)
        node = Node(old.role, root, instance_id, old.zone)
        self.nodes[old.host.name] = node
        self._cloud.launch(node)
        self.prepare(node)
        return self._join(node, timeout)

    def _kill_namespace(self, node: Node) -> None:
        for pid in run("ip", "netns", "pids", node.host.netns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def wait_for_signed_cluster_info(self, node: Node, timeout: float = 180.0) -> None:
        """Wait until kube-controller-manager's bootstrap signer has signed ``cluster-info`` for
        the node's join token (``jws-kubeconfig-<token id>``): a VM booting minutes after the
        control plane finds it signed, while the harness's worker joins seconds after a
        rotation (kubeadm's token discovery refuses an unsigned cluster-info at once)."""
        token = ""
        for doc in yaml.safe_load_all(node.root.read("/etc/kubernetes/kubeadm.yaml")):
            if isinstance(doc, dict) and doc.get("kind") == "JoinConfiguration":
                token = str(((doc.get("discovery") or {}).get("bootstrapToken") or {}).get("token") or "")
        token_id, _, token_secret = token.partition(".")
        if not token_id:
            return  # a template with the token filled in later: nothing to wait for here

        def signed() -> bool:
            out = self.kubectl("get", "configmap", "cluster-info", "-n", "kube-public", "-o", "json", check=False)
            if out.returncode != 0:
                return False
            data = json.loads(out.stdout).get("data") or {}
            signature = data.get(f"jws-kubeconfig-{token_id}")
            return signature is not None and jws_valid(signature, data.get("kubeconfig", ""), token_id, token_secret)

        # each member's boot puts the CA bundle into cluster-info (refresh_cluster_info) after the
        # signer signed what kubeadm init wrote: the signature is stale until the signer signs the
        # change, and kubeadm's discovery waits for a signature but refuses a stale one at once
        self.wait_for(f"cluster-info validly signed for join token {token_id}", signed, timeout=timeout)

    def finish(self, node: Node) -> None:
        """What bootstrap.sh's main does after kubeadm, in its order: every kubeconfig trusts the
        store's CA bundle, a worker forgets its join credentials, a member waits for full healthy
        etcd membership and reports itself ready, and the node is marked bootstrapped (its
        timers' scripts then do their work)."""
        node.run(". /usr/local/lib/cfcr/bootstrap.sh && trust_ca_bundle && forget_join_credentials", timeout=300)
        if node.member is not None:
            out = node.run(". /usr/local/lib/cfcr/bootstrap.sh && . /usr/local/lib/cfcr/member.sh && member_ready",
                           timeout=960)
            node.member_log += out.stdout + out.stderr
        node.run(". /usr/local/lib/cfcr/bootstrap.sh && date -u +%Y-%m-%dT%H:%M:%SZ >\"$CFCR_STATE/bootstrapped\"")

    def member(self, index: int) -> Node:
        """The node of control-plane member ``index``."""
        return next(n for n in self.nodes.values() if n.member is not None and n.member.index == index)

    def lose_member(self, index: int, *, graceful: bool = True) -> Path:
        """Member ``index``'s VM is gone: its kubelet and static pods stop, every process in its
        namespace ends, its root disk is dropped. Its etcd disk is returned (detached, as the
        cloud keeps the volume); the host (its fixed address) stays for the replacement.
        ``graceful=False``: every process is killed at once, as when a VM's power goes (no etcd
        leader transfer, no API server drain), without the up to 20 s the kubelet stand-in takes
        to stop its static pods one by one; it returns once the load balancer has taken the
        member out (a replacement VM boots long after a cloud load balancer has noticed)."""
        node = self.member(index)
        if node.kubelet is not None and graceful:
            node.kubelet.stop()
        self._kill_namespace(node)
        disk = self.workdir / f"etcd-disk-{index}"
        if disk.exists():
            shutil.rmtree(disk)
        shutil.move(str(node.root.file("/var/lib/etcd")), disk)
        shutil.rmtree(node.root.path)
        shutil.rmtree(node.state, ignore_errors=True)
        if not graceful:
            backend, status = f"{node.host.address}:6443", self.workdir / "lb-status.json"
            self.wait_for(f"the load balancer to take {backend} out",
                          lambda: json.loads(status.read_text()).get(backend) is not True, timeout=30, interval=0.5)
        return disk

    def replace_member(self, index: int, instance_id: str, *, disk: Path | None,
                       render: RenderedCluster | None = None, binaries: Mapping[str, Path] | None = None) -> Node:
        """A new VM for member ``index`` (after :meth:`lose_member`), booted as bootstrap.sh boots
        it: a fresh root from the member's user-data (of ``render`` when given: the same stack
        changed, e.g. the next release, with ``binaries`` of that release), the etcd disk ``disk``
        re-attached (``None``: a blank one), a new instance ID; then the member model's steps,
        ``kubeadm init`` and ``member_ready``."""
        old = self.member(index)
        assert self.net is not None and old.member is not None
        root = self._new_root(old.root.path, old.host, old.root.hostname, (render or self.render).user_data(old.role),
                              binaries)
        data = root.file("/var/lib/etcd")
        if data.exists():
            data.rmdir()
        if disk is not None:
            shutil.move(str(disk), data)
        else:
            data.mkdir(mode=0o700)
        node = Node(old.role, root, instance_id, old.zone, old.member, binaries=dict(binaries or {}))
        self.nodes[old.host.name] = node
        self._cloud.launch(node, render)
        return self._boot_member(node, "replaced")

    def _boot_member(self, node: Node, what: str) -> Node:
        """A member's VM, in the cloud with its root and etcd disk, boots as bootstrap.sh boots it:
        the member model's steps, ``kubeadm init``, then :meth:`finish` (``member_ready``)."""
        self.prepare(node)
        self.start_kubelet(node)
        out = self._kubeadm_stopped_when_hung(node, "init")
        if out.returncode != 0:
            raise HarnessError(f"kubeadm init on the {what} {node.role} failed (exit {out.returncode}):\n"
                               f"{out.stdout[-4000:]}\n{out.stderr[-4000:]}\n{node.member_log[-3000:]}")
        self.finish(node)
        return node

    def _kubeadm_stopped_when_hung(self, node: Node, action: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        """``kubeadm <action>`` as bootstrap.sh's run_kubeadm runs it: an attempt that does not
        end in ``timeout`` seconds is stopped and tried once more (the harness's budget; the
        node's is five attempts), with the retry's preflight ignores of node.env and the secrets
        and configs fetched again. A stopped attempt is printed, with where it hung."""
        try:
            return self.kubeadm(node, action, "--config", "/etc/kubernetes/kubeadm.yaml", "--v=1", timeout=timeout)
        except NodeTimeout as hung:
            print(f"\nharness: {node.role}: kubeadm {action} stopped after {timeout:.0f}s and tried again, as "
                  f"bootstrap.sh does:\n{str(hung)[-5000:]}", flush=True)
            self.hung.append(f"{node.role}: kubeadm {action}")
        for pid in run("ip", "netns", "pids", node.host.netns, check=False).stdout.split():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "kubeadm":
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        retry = next(line.split("=", 1)[1].strip("'\"") for line in node.root.read("/etc/cfcr/node.env").splitlines()
                     if line.startswith("CFCR_RETRY_PREFLIGHT="))
        node.run(". /usr/local/lib/cfcr/bootstrap.sh && fetch_all_secrets && render_configs")
        return self.kubeadm(node, action, "--config", "/etc/kubernetes/kubeadm.yaml", "--v=1", timeout=timeout,
                            also_ignore=[c for c in retry.split(",") if c])

    # ------------------------------------------------------------------ growing and shrinking
    def update_cloud(self, render: RenderedCluster, *, prune: bool = False) -> None:
        """The cloud as `pulumi up` of ``render`` (the same stack, changed: another member count)
        leaves what the nodes read: every identity of ``render`` with its grants; its new secrets
        stored, and those whose rendered value changed since the render the cloud was last
        updated from given the new value (a certificate whose names changed). Keys keep
        theirs: Pulumi keeps a key in its state while its inputs stay, where the offline render
        makes RSA keys afresh each time. A value a node wrote stays unless the render changed it.
        ``prune``: what ``render`` no longer has goes (Pulumi deletes it at the end of the update;
        remove the VMs that use it first, :meth:`remove_member`)."""
        self._cloud.update(render, prune=prune)

    def add_member(self, member: Member, instance_id: str, *, render: RenderedCluster,
                   binaries: Mapping[str, Path] | None = None) -> Node:
        """A new member's VM (the control plane grew: ``member`` of ``render``, a render of the
        stack with more members than the harness's; :meth:`update_cloud` with it first), at the
        member's rendered address and zone, booted as bootstrap.sh boots it: a blank etcd disk,
        the member model's steps, ``kubeadm init`` and ``member_ready``. The load balancer does
        not send it requests until :meth:`set_lb_backends` names it."""
        launch = self._cloud.member_launch(member, render)
        node = self._add(f"control-plane-{member.index}", Launch(launch.address, launch.zone, launch.hostname,
                                                                  instance_id), member, render=render, binaries=binaries)
        return self._boot_member(node, "new")

    def remove_member(self, index: int) -> Path:
        """Member ``index``'s VM is deleted (the control plane shrank: `pulumi up` deletes the VMs
        of members the render no longer names, at the end of the update): it goes as in
        :meth:`lose_member`, then leaves the cloud (instance, metadata) and the harness, and its
        Node is deleted as the cloud controller manager deletes the Node of a terminated
        instance. Its host stays in the network, nothing answering at its address. Returns its
        etcd disk (the volume is protected and stays)."""
        node = self.member(index)
        name = next(line.split("=", 1)[1].strip("'\"") for line in node.root.read("/etc/cfcr/node.env").splitlines()
                    if line.startswith("CFCR_NODE_NAME="))
        disk = self.lose_member(index, graceful=False)
        del self.nodes[node.host.name]
        self._cloud.forget(node)
        # through the load balancer, which may still send a request to the VM just gone
        self.wait_for(f"Node {name} deleted", lambda: self.kubectl(
            "delete", "node", name, "--ignore-not-found", "--wait=false", check=False).returncode == 0, timeout=60)
        return disk

    def set_lb_backends(self, members: Sequence[Member], timeout: float = 60.0) -> None:
        """The API load balancer's targets become ``members``' API servers (`pulumi up` registers
        a new member's VM and deregisters a deleted one). The stand-in takes its backends when it
        starts: it is started again with them, and this returns once every one passes its health
        check. Until then it refuses connections, which no cloud load balancer does: call it
        while no client is being measured."""
        assert self.net is not None
        old = next(p for p in self.processes if p.name == "lb")
        old.stop()
        self.processes.remove(old)
        status = self.workdir / "lb-status.json"
        status.unlink(missing_ok=True)
        backends = self._spawn_lb(members)
        self.wait_for(f"the load balancer to find {', '.join(backends)} healthy",
                      lambda: status.exists() and json.loads(status.read_text()) == dict.fromkeys(backends, True),
                      timeout=timeout, interval=0.5)

    def _spawn_lb(self, members: Sequence[Member]) -> list[str]:
        """The API load balancer's stand-in on its internal and public addresses, sending to
        ``members``' API servers (its health status in lb-status.json); returns the backends."""
        assert self.net is not None
        backends = [f"{m.address}:6443" for m in members]
        listen = [f"{a}:6443" for a in self.lb_addresses.values()]
        hairpin = [] if getattr(self._cloud, "lb_hairpin", True) else ["--no-hairpin"]
        self.spawn("lb", self.net.hosts["lb"].command(sys.executable, "-m", "tests.support.lb",
                                                      *sum((["--listen", a] for a in listen), []),
                                                      *sum((["--backend", b] for b in backends), []),
                                                      "--status", str(self.workdir / "lb-status.json"), *hairpin))
        return backends

    def preflight_errors(self, node: Node, phase: str, *, without_config_ignores: bool = False) -> list[str]:
        """The checks ``kubeadm <phase> phase preflight`` reports as errors on ``node`` with the
        rendered configuration (minus its own ``ignorePreflightErrors`` when asked), ignoring
        only :data:`ENVIRONMENT_PREFLIGHT`."""
        config = "/etc/kubernetes/kubeadm.yaml"
        if not node.root.exists(config):
            # a joined worker deleted its configuration (it held the token): preflight reads the
            # template with a well-formed stand-in token; preflight does no discovery
            template = node.root.read("/etc/cfcr/kubeadm.yaml.tmpl").replace("@BOOTSTRAP_TOKEN@", "abcdef.0123456789abcdef")
            provider = node.root.read("/var/lib/cfcr/provider-id").strip()
            config = f"{HARNESS_DIR}/kubeadm-after-join.yaml"
            node.root.write(config, template.replace("@PROVIDER_ID@", provider), 0o600)
        if without_config_ignores:
            docs = yaml_docs(node.root.read(config))
            for doc in docs:
                doc.get("nodeRegistration", {}).pop("ignorePreflightErrors", None)
            config = f"{HARNESS_DIR}/kubeadm-without-ignores.yaml"
            node.root.write(config, yaml.safe_dump_all(docs), 0o600)
        out = self.kubeadm(node, phase, "phase", "preflight", "--config", config)
        errors = [line.split("[ERROR ", 1)[1].split("]", 1)[0]
                  for line in (out.stdout + out.stderr).splitlines() if "[ERROR " in line]
        if out.returncode != 0 and not errors:
            raise HarnessError(f"preflight on {node.role} failed without naming a check:\n{out.stdout}\n{out.stderr}")
        return errors

    def boot(self, workers: Sequence[str] = ()) -> None:
        """The whole drill setup: preflight before boot, parallel ``kubeadm init`` on every member,
        kwok, one VM of each pool in ``workers`` joined, every Node Ready; then preflight again
        (what a retry would meet). Each phase's seconds go to :attr:`timings`."""
        self.boot_control_plane(before_init=self._preflight_before_boot)
        mark = time.monotonic()
        # kwok and every test reach the API as the operator does, with the exported admin kubeconfig
        self.wait_for("the exported admin kubeconfig to reach the API (kubectl get --raw /readyz)",
                      lambda: self.kubectl("get", "--raw", "/readyz", timeout=20).stdout == "ok", timeout=60, interval=2)
        self.start_kwok()
        for role in workers:
            self.join_worker(role)
        mark = self._timed("workers joined", mark)
        self.wait_for("every Node Ready", self._all_ready, timeout=120)
        mark = self._timed("nodes ready", mark)
        first = next(n for n in self.nodes.values() if n.member is not None and n.member.index == 0)
        self.preflight_after = {first.role: self.preflight_errors(first, "init")}
        for node in self.nodes.values():
            if node.member is None:
                self.preflight_after[node.role] = self.preflight_errors(node, "join")
        self._timed("preflight after", mark)

    def _preflight_before_boot(self, first: Node) -> None:
        # with the rendered configuration, preflight is the first phase of every member's
        # `kubeadm init` (its errors: init_output); here only what it meets without the
        # configuration's own ignores (each such run dials every etcd endpoint for ~15 s)
        self.preflight_before = {"without": self.preflight_errors(first, "init", without_config_ignores=True)}

    def _all_ready(self) -> bool:
        out = self.kubectl("get", "nodes", "-o", "json")
        items = json.loads(out.stdout)["items"]
        ready = [n for n in items if any(c["type"] == "Ready" and c["status"] == "True"
                                         for c in n["status"].get("conditions", []))]
        return len(items) == len(self.nodes) and len(ready) == len(items)

    # ------------------------------------------------------------------ clients
    def kubectl(self, *args: str, kubeconfig: Path | None = None, input: str | None = None,
                check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """kubectl from the admin host (outside the nodes), as the admin unless told otherwise."""
        assert self.admin is not None
        config = kubeconfig or self.admin_kubeconfig()
        cmd = self.admin.command(str(self.binaries["kubectl"]), f"--kubeconfig={config}", *args)
        out = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
        if check and out.returncode != 0:
            raise HarnessError(f"kubectl {' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
        return out

    def admin_kubeconfig(self) -> Path:
        path = self.workdir / "admin.kubeconfig"
        if not path.exists():
            path.write_text(self.render.admin_kubeconfig)
            path.chmod(0o600)
        return path

    def wait_for(self, what: str, check: Any, timeout: float = 180.0, interval: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
                if last:
                    return last
            except Exception as exc:  # noqa: BLE001 - keep waiting; report the last error
                last = exc
            time.sleep(interval)
        raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")

    def logs(self) -> str:
        """The tails of every log, for a failure message."""
        parts = [f"== {p.name}\n{tail(p.log)}" for p in self.processes]
        for node in self.nodes.values():
            for log in sorted((node.state / "logs").glob("*.log")) if (node.state / "logs").exists() else []:
                parts.append(f"== {node.host.name} {log.name}\n{tail(log, 15)}")
        return "\n".join(parts)


def yaml_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]
