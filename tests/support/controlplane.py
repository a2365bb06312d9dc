"""The real control plane of a render, on this machine: the harness every drill runs on.

From a ``--show-secrets`` render of a stack (:mod:`tests.support.rendered`) it boots the
cluster's control-plane members the way their VMs would, with the real programs built from Go
modules at the channel's versions (:mod:`tests.support.tools`):

1. **Network** (:mod:`tests.support.netns`): each member is a host with its rendered address;
   a load-balancer host answers on every API name the render hands out (the private endpoint,
   the public one) and forwards to members that pass ``GET /readyz`` (:mod:`tests.support.lb`);
   an instance-metadata host answers IMDSv2 (:mod:`tests.support.imds`).
2. **Node root** (:mod:`tests.support.noderoot`): the member's user-data written as cloud-init
   writes it; its AWS calls (the node hook's own, signed, in AWS's protocols) go to a stand-in
   that serves exactly the secrets the member's cloud identity may read (its IAM policy in the
   render).
3. **Boot**, with the node's own code: ``fetch_all_secrets`` and ``render_configs`` from
   ``bootstrap.sh`` (secrets from the store, placeholders filled, provider ID from IMDS), then
   ``kubeadm init --config /etc/kubernetes/kubeadm.yaml`` on every member at once, as the
   boot does (parallel boot). The kubelet stand-in (:mod:`tests.support.kubelet`) starts the
   static pods kubeadm writes (and cfcr's etcd.yaml) as processes with their manifests' exact
   commands, and registers the Node with the kubelet credential kubeadm wrote.

What differs from a VM, in one place (:data:`DIFFERENCES`); nothing in a rendered file, flag,
certificate or kubeconfig is rewritten: paths, addresses and ports are the rendered ones.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cfcr.render.mocks import unwrap
from tests.support.aws_render import AwsIdentities, aws_identities
from tests.support.awsapi import ENDPOINT, Cloud
from tests.support.cloudfacts import aws_vm
from tests.support.kubelet import CRICTL
from tests.support.netns import Host, Network, run
from tests.support.noderoot import HARNESS_DIR, NodeRoot
from tests.support.rendered import Member, RenderedCluster

REPO = Path(__file__).resolve().parents[2]

DIFFERENCES: dict[str, str] = {
    "programs": "kubeadm, kubectl and each static pod's program come from the tool cache (built from Go modules at "
                "the channel's version), bound at /usr/local/bin; a static pod runs as a process with its "
                "container's exact command, not in a container from its image",
    "kubelet": "a stand-in (tests/support/kubelet.py) runs the static pods, serves /healthz, does TLS bootstrap and "
               "registers the Node, and creates each static pod's mirror Pod (its status from the pod's processes); "
               "kwok keeps Node status and leases fresh",
    "host setup": "bootstrap.sh's host steps (modules, sysctls but the network namespace's own, swap, downloads, "
                  "containerd, the etcd disk, systemd units) do not run; the harness runs its other steps as they "
                  "are (fetch_all_secrets, render_configs, trust_ca_bundle, forget_join_credentials, the bootstrapped "
                  "mark) and the "
                  "tests run the timers' scripts themselves",
    "cloud": "the AWS APIs the nodes call (Secrets Manager, EC2 profile associations), the instance metadata "
             "service and the API load balancer are local stand-ins; the AWS one judges every call with the render's "
             "own IAM policies for the instance profile the VM holds at that moment (KMS is not evaluated), knowing the "
             "caller by its address: nodes reach it through AWS_ENDPOINT_URL and sign with placeholder credentials "
             "from the metadata stand-in, signatures unchecked (moto checks them in test_aws_node_hook_real.py); the load "
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
    def state(self) -> Path:
        return self.root.path.parent / f"{self.host.name}-kubelet"

    def kubelet_status(self) -> dict[str, Any]:
        status = self.state / "status.json"
        return dict(json.loads(status.read_text())) if status.exists() else {}

    def run(self, script: str, *, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run ``script`` with bash on the node (as root, in its namespaces and root)."""
        out = subprocess.run(self.root.command("bash", "-c", script), capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise HarnessError(f"{self.role}: `{script}` exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return out


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
    preflight_before: dict[str, list[str]] = field(default_factory=dict)
    """Preflight errors on member 0 before boot: with the rendered config, and without its ignores."""
    preflight_after: dict[str, list[str]] = field(default_factory=dict)
    """Preflight errors per role after boot, with the rendered config: what a retry meets."""
    _aws: AwsIdentities | None = None
    _cloud_render: RenderedCluster | None = None
    """The render the cloud's secrets were last updated from (:meth:`update_cloud`); None: :attr:`render`."""

    @property
    def _identities(self) -> AwsIdentities:
        assert self._aws is not None, "the cloud is initialised with the network"
        return self._aws

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for node in self.nodes.values():
            if node.kubelet is not None:
                node.kubelet.stop()
        for process in reversed(self.processes):
            process.stop()
        if self.net is not None:
            for host in self.net.hosts.values():
                pids = run("ip", "netns", "pids", host.netns, check=False).stdout.split()
                for pid in pids:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
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
    def _addresses(self) -> tuple[str, str, str]:
        """Addresses the harness adds to the node network: internal LB, public LB, admin host.
        Taken from the top of the node network, which the topology plan leaves unused."""
        hosts = list(self.render.node_network().hosts())
        return str(hosts[-2]), str(hosts[-3]), str(hosts[-4])

    @property
    def cloud_file(self) -> Path:
        return self.workdir / "aws-state.json"

    def build_network(self) -> None:
        render = self.render
        self._init_cloud()
        self.net = Network(f"cfcr{os.getpid() % 100000}", str(render.node_network()))
        internal, public, admin = self._addresses()
        self.net.add_host("lb", [internal, public])
        self.net.add_host("imds", ["169.254.169.254"])
        self.admin = self.net.add_host("admin", [admin])
        self.lb_addresses = {"internal": internal, "public": public}
        names = render.api_host_names()
        private = [n for n in names if n.endswith(".internal") and not n.endswith("amazonaws.com")]
        self.net.set_names({n: (internal if n in private else public) for n in names})

    def add_node(self, role: str, address: str, hostname: str, instance_id: str, zone: str,
                 member: Member | None = None, *, render: RenderedCluster | None = None,
                 binaries: Mapping[str, Path] | None = None) -> Node:
        """A VM of ``role`` from the harness's render (or ``render``, with that release's
        ``binaries``), launched in the network and the AWS stand-in."""
        assert self.net is not None
        name = f"cp-{member.index}" if member is not None else f"w{len(self.nodes)}"
        host = self.net.add_host(name, [address])
        run(*host.command("ip", "route", "add", "169.254.169.254/32", "dev", "eth0"))
        root = self._new_root(self.workdir / "nodes" / host.name, host, hostname, (render or self.render).user_data(role),
                              binaries)
        node = Node(role, root, instance_id, zone, member, binaries=dict(binaries or {}))
        self.nodes[host.name] = node
        self.register_instance(node, *self._launch(role, member, render))
        return node

    def _new_root(self, path: Path, host: Host, hostname: str, user_data: str,
                  binaries: Mapping[str, Path] | None) -> NodeRoot:
        """A VM's fresh root disk from ``user_data``, with the programs a node binds and the
        stand-ins of the programs the harness cannot run (DIFFERENCES)."""
        assert self.net is not None
        root = NodeRoot.create(path, host, hostname, user_data, self._node_programs(binaries), self.net.hosts_file())
        root.env["AWS_ENDPOINT_URL"] = ENDPOINT  # the node's AWS calls go to tests/support/awsapi.py
        root.write("/usr/local/bin/crictl", CRICTL, 0o755)  # crictl: a client of the kubelet stand-in
        root.write("/usr/local/bin/systemctl", SYSTEMCTL, 0o755)
        return root

    def _node_programs(self, binaries: Mapping[str, Path] | None) -> dict[str, Path]:
        """The programs a node root binds at /usr/local/bin: the harness's, or ``binaries``'
        (another release's) where given."""
        programs = {**self.binaries, **(binaries or {})}
        return {k: v for k, v in programs.items() if k in ("kubeadm", "kubectl", "etcdctl")}

    def _launch(self, role: str, member: Member | None,
                render: RenderedCluster | None = None) -> tuple[str, dict[str, str]]:
        """(launch template id, instance tags) a VM of ``role`` is launched with in the render
        (a member's: in ``render`` when given)."""
        if member is not None:
            instance = next(r for r in (render or self.render).rows("aws:ec2/instance:Instance")
                            if unwrap(r.inputs)["privateIp"] == member.address)
            args = unwrap(instance.inputs)
            return str(args["launchTemplate"]["id"]), dict(args["tags"])
        pool = role.removeprefix("worker-")
        for template_id, tags in self._identities.template_instance_tags.items():
            if tags.get("cfcr.io/pool") == pool:
                return template_id, tags
        raise HarnessError(f"no launch template in the render for pool {pool}")

    def cloud_state(self) -> dict[str, Any]:
        """The AWS stand-in's state: instances and their profiles, secret values, calls."""
        return Cloud(self.cloud_file).load()

    def _init_cloud(self) -> None:
        render = self.render
        ids = aws_identities(render.result.resources)
        secrets = {str(unwrap(r.inputs)["name"]): {"arn": str(r.outputs["arn"]), "value": render.secret_values[
            str(unwrap(r.inputs)["name"])]} for r in render.rows("aws:secretsmanager/secret:Secret")}
        role_arn = next(iter(ids.role_arns.values()))
        Cloud(self.cloud_file).save({
            "region": render.spec.region,
            "account": role_arn.split(":")[4],
            "instances": {},
            "secrets": secrets,
            "policies": {p: ids.policies_of_profile(p) for p in ids.profile_roles},
            "profile_arns": ids.profile_arns,
            "role_arns": {p: ids.role_arns[r] for p, r in ids.profile_roles.items()},
            "log": [],
        })
        self._aws = ids

    def register_instance(self, node: Node, template_id: str, tags: Mapping[str, str]) -> None:
        """The VM exists in the AWS stand-in: its address, id, tags and launch profile."""
        with Cloud(self.cloud_file).update() as state:
            state["instances"][node.host.address] = {
                "id": node.instance_id, "profile": self._identities.template_profiles[template_id],
                "association": f"iip-assoc-{node.instance_id[2:]}", "tags": dict(tags)}

    def start_services(self) -> None:
        assert self.net is not None
        self._spawn_lb(self.render.members)
        self.write_imds()
        imds = self.net.hosts["imds"]
        self.spawn("imds", imds.command(sys.executable, "-m", "tests.support.imds", str(self.workdir / "imds.json")))
        self.spawn("awsapi", imds.command(sys.executable, "-m", "tests.support.awsapi", str(self.cloud_file)))

    def write_imds(self) -> None:
        region = self.render.spec.region
        data = {}
        for node in self.nodes.values():
            vm = aws_vm(node.host.address, region)
            data[vm.address] = {
                "instance-id": node.instance_id,
                "placement/availability-zone": node.zone,
                "placement/region": region,
                "local-ipv4": vm.address,
                "local-hostname": vm.private_dns,
                "hostname": vm.private_dns,
            }
        (self.workdir / "imds.json").write_text(json.dumps(data, indent=2))

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
        owns), secrets from the store, configs rendered; on a member, the member model's steps
        before kubeadm (etcd membership, a replaced VM's stale Node)."""
        node.run("grep -E '^net\\.ipv[46]\\.' /etc/sysctl.d/90-cfcr.conf | sysctl -q -p - >/dev/null")
        node.run(". /usr/local/lib/cfcr/bootstrap.sh && fetch_all_secrets && render_configs")
        if node.member is not None:
            out = node.run(". /usr/local/lib/cfcr/bootstrap.sh && . /usr/local/lib/cfcr/member.sh && "
                           "etcd_membership && forget_stale_node", timeout=300)
            node.member_log += out.stdout + out.stderr

    def kubeadm(self, node: Node, *args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        ignore = ",".join(ENVIRONMENT_PREFLIGHT)
        return node.run(" ".join(["kubeadm", *args, f"--ignore-preflight-errors={ignore}"]), check=False,
                        timeout=timeout)

    def boot_control_plane(self, timeout: float = 600.0, before_init: Any = None) -> None:
        """Build the network and members, then ``kubeadm init`` on every member at once
        (``before_init(member 0)`` runs once the members are prepared, before any kubelet)."""
        self.build_network()
        for member in self.render.members:
            self.add_node(f"control-plane-{member.index}", member.address,
                          aws_vm(member.address, self.render.spec.region).hostname, member.instance_id,
                          member.zone, member)
        self.start_services()
        members = [n for n in self.nodes.values() if n.member is not None]
        for node in members:
            self.prepare(node)
        if before_init is not None:
            before_init(members[0])
        for node in members:
            self.start_kubelet(node)
        with concurrent.futures.ThreadPoolExecutor(len(members)) as pool:
            runs = {node.role: pool.submit(self.kubeadm, node, "init", "--config", "/etc/kubernetes/kubeadm.yaml",
                                            "--v=1", timeout=timeout) for node in members}
        failed = {role: r.result() for role, r in runs.items() if r.result().returncode != 0}
        for node in members if not failed else []:
            self.finish(node)
        self.init_output = {role: r.result().stdout + r.result().stderr for role, r in runs.items()}
        if failed:
            raise HarnessError("kubeadm init failed:\n" + "\n\n".join(
                f"== {role} (exit {out.returncode})\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}\n"
                f"kubelet stand-in: {self.nodes[f'cp-{role.rsplit(chr(45), 1)[1]}'].kubelet_status()}"
                for role, out in failed.items()))

    def start_kwok(self) -> None:
        """kwok keeps every Node the kubelet stand-in registered (``kwok.x-k8s.io/node: fake``)
        Ready, with fresh status and leases, as live kubelets would."""
        assert self.admin is not None
        stages = [arg for stage in self.kwok_stages for arg in ("--config", str(stage))]
        self.spawn("kwok", self.admin.command(
            str(self.binaries["kwok"]), f"--kubeconfig={self.admin_kubeconfig()}",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds=40", *stages))

    def worker_address(self, role: str, index: int) -> tuple[str, str]:
        """(address, zone) a VM of ``role``'s pool gets: from the pool's first private subnet in
        the render, above the addresses the topology plan reserves."""
        subnets = sorted((r for r in self.render.rows("aws:ec2/subnet:Subnet") if "-private-" in r.name),
                         key=lambda r: r.name)
        if not subnets:
            raise HarnessError("the render has no private subnets to place a worker in")
        inputs = subnets[index % len(subnets)].inputs
        network = ipaddress.IPv4Network(str(inputs["cidrBlock"]))
        return str(network.network_address + 100 + index), str(inputs["availabilityZone"])

    def new_worker(self, role: str, index: int, *, render: RenderedCluster | None = None,
                   binaries: Mapping[str, Path] | None = None) -> Node:
        """A VM of ``role``'s pool, launched and prepared (secrets, configs) but not joined."""
        address, zone = self.worker_address(role, index)
        hostname = aws_vm(address, self.render.spec.region).hostname
        instance_id = "i-0" + hashlib.sha256(f"{role}/{index}".encode()).hexdigest()[:16]
        node = self.add_node(role, address, hostname, instance_id, zone, render=render, binaries=binaries)
        self.write_imds()
        self.prepare(node)
        return node

    def join_worker(self, role: str, index: int = 0, timeout: float = 300.0, *, render: RenderedCluster | None = None,
                    binaries: Mapping[str, Path] | None = None) -> Node:
        """Boot one VM of a worker pool: secrets, configs, kubelet stand-in, ``kubeadm join``."""
        node = self.new_worker(role, index, render=render, binaries=binaries)
        self.start_kubelet(node)
        out = self.kubeadm(node, "join", "--config", "/etc/kubernetes/kubeadm.yaml", "--v=1", timeout=timeout)
        node.join_output = out.stdout + out.stderr
        if out.returncode != 0:
            raise HarnessError(f"kubeadm join on {role} failed (exit {out.returncode}):\n{out.stdout[-4000:]}\n"
                               f"{out.stderr[-4000:]}\nkubelet stand-in: {node.kubelet_status()}")
        self.finish(node)
        return node

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
        for pid in run("ip", "netns", "pids", node.host.netns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
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
        self.register_instance(node, *self._launch(old.role, old.member, render))
        return self._boot_member(node, "replaced")

    def _boot_member(self, node: Node, what: str) -> Node:
        """A member's VM, in the cloud with its root and etcd disk, boots as bootstrap.sh boots it:
        the member model's steps, ``kubeadm init``, then :meth:`finish` (``member_ready``)."""
        self.write_imds()
        self.prepare(node)
        self.start_kubelet(node)
        out = self.kubeadm(node, "init", "--config", "/etc/kubernetes/kubeadm.yaml", "--v=1")
        if out.returncode != 0:
            raise HarnessError(f"kubeadm init on the {what} {node.role} failed (exit {out.returncode}):\n"
                               f"{out.stdout[-4000:]}\n{out.stderr[-4000:]}\n{node.member_log[-3000:]}")
        self.finish(node)
        return node

    # ------------------------------------------------------------------ growing and shrinking
    def update_cloud(self, render: RenderedCluster, *, prune: bool = False) -> None:
        """The cloud as `pulumi up` of ``render`` (the same stack, changed: another member count)
        leaves what the nodes read: every instance profile of ``render`` with its role's policies;
        its new secrets stored, and those whose rendered value changed since the render the cloud
        was last updated from given the new value (a certificate whose names changed). Keys keep
        theirs: Pulumi keeps a key in its state while its inputs stay, where the offline render
        makes RSA keys afresh each time. A value a node wrote stays unless the render changed it.
        ``prune``: what ``render`` no longer has goes (Pulumi deletes it at the end of the update;
        remove the VMs that use it first, :meth:`remove_member`)."""
        before = self._cloud_render or self.render
        ids = aws_identities(render.result.resources)
        with Cloud(self.cloud_file).update() as state:
            for row in render.rows("aws:secretsmanager/secret:Secret"):
                name = str(unwrap(row.inputs)["name"])
                value = render.secret_values[name]
                stored = state["secrets"].get(name)
                if stored is None:
                    state["secrets"][name] = {"arn": str(row.outputs["arn"]), "value": value}
                elif value != before.secret_values.get(name) and not any(
                        f"{kind} KEY-----" in value for kind in ("PRIVATE", "PUBLIC")):
                    stored["value"] = value
                    stored["versions"] = int(stored.get("versions", 1)) + 1
            state["policies"].update({p: ids.policies_of_profile(p) for p in ids.profile_roles})
            state["profile_arns"].update(ids.profile_arns)
            state["role_arns"].update({p: ids.role_arns[r] for p, r in ids.profile_roles.items()})
            if prune:
                for name in set(state["secrets"]) - set(render.secret_values):
                    del state["secrets"][name]
                for profile in set(state["profile_arns"]) - set(ids.profile_arns):
                    for key in ("policies", "profile_arns", "role_arns"):
                        state[key].pop(profile, None)
        old = self._identities
        self._aws = ids if prune else AwsIdentities(
            *({**getattr(old, f.name), **getattr(ids, f.name)} for f in fields(AwsIdentities)))
        self._cloud_render = render

    def add_member(self, member: Member, instance_id: str, *, render: RenderedCluster,
                   binaries: Mapping[str, Path] | None = None) -> Node:
        """A new member's VM (the control plane grew: ``member`` of ``render``, a render of the
        stack with more members than the harness's; :meth:`update_cloud` with it first), at the
        member's rendered address and zone, booted as bootstrap.sh boots it: a blank etcd disk,
        the member model's steps, ``kubeadm init`` and ``member_ready``. The load balancer does
        not send it requests until :meth:`set_lb_backends` names it."""
        node = self.add_node(f"control-plane-{member.index}", member.address,
                             aws_vm(member.address, self.render.spec.region).hostname, instance_id, member.zone,
                             member, render=render, binaries=binaries)
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
        with Cloud(self.cloud_file).update() as state:
            state["instances"].pop(node.host.address, None)
        self.write_imds()
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
        self.spawn("lb", self.net.hosts["lb"].command(sys.executable, "-m", "tests.support.lb",
                                                      *sum((["--listen", a] for a in listen), []),
                                                      *sum((["--backend", b] for b in backends), []),
                                                      "--status", str(self.workdir / "lb-status.json")))
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
        (what a retry would meet)."""
        self.boot_control_plane(before_init=self._preflight_before_boot)
        self.start_kwok()
        for role in workers:
            self.join_worker(role)
        self.wait_for("every Node Ready", self._all_ready, timeout=120)
        first = next(n for n in self.nodes.values() if n.member is not None and n.member.index == 0)
        self.preflight_after = {first.role: self.preflight_errors(first, "init")}
        for node in self.nodes.values():
            if node.member is None:
                self.preflight_after[node.role] = self.preflight_errors(node, "join")

    def _preflight_before_boot(self, first: Node) -> None:
        self.preflight_before = {
            "rendered": self.preflight_errors(first, "init"),
            "without": self.preflight_errors(first, "init", without_config_ignores=True),
        }

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
