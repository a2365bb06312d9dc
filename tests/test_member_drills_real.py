"""Day-2 drills of the control-plane member model (cfcr/node/scripts/member.sh) on the real
control plane of the default stack's render (tests/support/controlplane.py): a member's VM is
lost and replaced, once with its etcd disk and once with a blank one, and the control plane
grows from three members to five and shrinks back, while a client keeps writing through the API
load balancer.

These drills change the session's control plane (every member is a new VM afterwards); they
leave it whole, with the session render's members, each a healthy voter.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import ControlPlane, Node
from tests.support.rendered import RenderedCluster, render_cluster

pytestmark = [pytest.mark.slow, pytest.mark.changes_control_plane]

ETCD_TLS = ("--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
            "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key")


def etcd_members(node: Node, endpoint: str = "https://127.0.0.1:2379") -> dict[str, dict[str, Any]]:
    """``name -> member`` of the member list one member serves (linearizable)."""
    out = node.run(f"etcdctl --endpoints={endpoint} {ETCD_TLS} member list -w json")
    return {m.get("name", ""): m for m in json.loads(out.stdout)["members"]}


def provider_id(node: Node) -> str:
    return node.root.read("/var/lib/cfcr/provider-id").strip()


def node_name(node: Node) -> str:
    """The Node name the member registers (CFCR_NODE_NAME of its node.env)."""
    for line in node.root.read("/etc/cfcr/node.env").splitlines():
        if line.startswith("CFCR_NODE_NAME="):
            return line.split("=", 1)[1].strip("'")
    raise AssertionError("node.env names no Node")


def new_instance_id(label: str) -> str:
    return "i-0" + hashlib.sha256(label.encode()).hexdigest()[:16]


@dataclass
class Writer:
    """A client that keeps creating ConfigMaps through the API load balancer, retrying each
    write a few times (a request in flight to the member that goes may fail, the next one must
    not)."""

    cp: ControlPlane
    prefix: str
    written: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            name = f"{self.prefix}-{n}"
            for _ in range(5):
                out = self.cp.kubectl("create", "configmap", name, "-n", "default", f"--from-literal=n={n}",
                                      check=False, timeout=20)
                # a retry after an attempt that committed but lost its answer finds the object:
                # kubectl says `configmaps "<name>" already exists` (the reason AlreadyExists)
                if out.returncode == 0 or "already exists" in out.stderr.lower():
                    self.written.append(name)
                    self.stamps.append(time.monotonic())
                    break
                time.sleep(1)
            else:
                self.failed.append(f"{name}: {out.stderr.strip()}")
            n += 1
            time.sleep(0.5)

    def longest_gap(self) -> float:
        return max((b - a for a, b in zip(self.stamps, self.stamps[1:])), default=0.0)


@contextmanager
def writing(cp: ControlPlane, prefix: str) -> Iterator[Writer]:
    writer = Writer(cp, prefix)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        yield writer
    finally:
        writer.stop.set()
        thread.join(timeout=60)


def start_gate(cp: ControlPlane, member: str, node: str, provider: str, timeout: float) -> subprocess.Popen[str]:
    """The member's rollout gate as `pulumi up` runs it after replacing the member's machine (the
    provider's update), from the admin host through the API load balancer."""
    assert cp.admin is not None
    code = ("import json, sys\n"
            "from cfcr.bootstrap.rollout import MemberGateProvider, MemberNotReadyError\n"
            "props = json.loads(sys.argv[1])\n"
            "props['kubeconfig'] = open(props['kubeconfig']).read()\n"
            "try:\n    print(MemberGateProvider().update('gate', {}, props).outs['lastSeen'])\n"
            "except MemberNotReadyError as exc:\n    print(exc)\n    sys.exit(3)\n")
    url = next(line.split("server:", 1)[1].strip() for line in cp.admin_kubeconfig().read_text().splitlines()
               if line.strip().startswith("server:"))
    props = {"member": member, "nodeName": node, "providerId": provider, "url": url,
             "kubeconfig": str(cp.admin_kubeconfig()), "timeoutSeconds": timeout}
    return subprocess.Popen(cp.admin.command(sys.executable, "-c", code, json.dumps(props)), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])


def configmaps(cp: ControlPlane, prefix: str) -> set[str]:
    items = json.loads(cp.kubectl("get", "configmaps", "-n", "default", "-o", "json").stdout)["items"]
    return {i["metadata"]["name"] for i in items if i["metadata"]["name"].startswith(prefix)}


def assert_whole(cp: ControlPlane, render: RenderedCluster | None = None) -> dict[str, dict[str, Any]]:
    """Every rendered member (of ``render``, else the harness's) is a started voter, healthy, and
    recorded ready (kube-system/cfcr-member-<m>) with its Node's provider ID; etcd lists no other."""
    members = (render or cp.render).members
    first = cp.member(0)
    listed = etcd_members(first)
    assert set(listed) == {m.name for m in members}, listed
    assert not any(m.get("isLearner") for m in listed.values()), listed
    endpoints = ",".join(f"https://{m.address}:2379" for m in members)
    health = json.loads(first.run(f"etcdctl --endpoints={endpoints} {ETCD_TLS} endpoint health -w json").stdout)
    assert all(e["health"] for e in health), health
    for member in members:
        node = cp.member(member.index)
        doc = json.loads(cp.kubectl("get", "node", node_name(node), "-o", "json").stdout)
        assert doc["spec"].get("providerID") == provider_id(node)
        record = json.loads(cp.kubectl("get", "configmap", "-n", "kube-system", f"cfcr-member-{member.name}",
                                       "-o", "json").stdout)
        assert record["data"] == {"providerID": provider_id(node), "node": node_name(node)}
    return listed


def test_the_parallel_boot_reported_every_member_ready(control_plane: ControlPlane) -> None:
    cp = control_plane
    assert_whole(cp)
    for member in cp.render.members:
        assert "a new cluster of the rendered members" in cp.member(member.index).member_log


def test_a_replaced_member_rejoins_with_its_disk_while_the_api_keeps_writing(control_plane: ControlPlane) -> None:
    cp = control_plane
    before = etcd_members(cp.member(0))
    member = cp.member(1)
    assert member.member is not None
    old_provider, name_of_node = provider_id(member), node_name(member)
    instance = new_instance_id("drill-kept")
    with writing(cp, "drill-kept") as writer:
        time.sleep(3)
        disk = cp.lose_member(1)
        gate = start_gate(cp, member.member.name, name_of_node, f"aws:///{member.zone}/{instance}", 600)
        never = f"aws:///{member.zone}/{new_instance_id('a machine that never boots')}"
        wrong = start_gate(cp, member.member.name, name_of_node, never, 20)
        node = cp.replace_member(1, instance, disk=disk)
        time.sleep(3)
    seen, _ = gate.communicate(timeout=660)
    assert gate.returncode == 0 and "ready" in seen, seen
    refused, _ = wrong.communicate(timeout=120)
    assert wrong.returncode == 3, refused
    assert f"control-plane member {member.member.name}" in refused and "did not report ready" in refused, refused
    assert not writer.failed, writer.failed
    assert len(writer.written) > 10, writer.written
    assert writer.longest_gap() < 20, f"the API took {writer.longest_gap():.1f}s to accept a write"
    assert configmaps(cp, "drill-kept") == set(writer.written)
    assert "keeps the data on its disk" in node.member_log, node.member_log
    after = assert_whole(cp)
    name = member.member.name
    assert after[name]["ID"] == before[name]["ID"], "the member kept its identity and its data"
    assert provider_id(node) != old_provider


def test_a_member_with_a_lost_disk_is_removed_and_added_again(control_plane: ControlPlane) -> None:
    cp = control_plane
    before = etcd_members(cp.member(0))
    member = cp.member(2)
    assert member.member is not None
    cp.kubectl("create", "configmap", "drill-blank-before", "-n", "default", "--from-literal=k=v")
    with writing(cp, "drill-blank") as writer:
        time.sleep(3)
        cp.lose_member(2)
        node = cp.replace_member(2, new_instance_id("drill-blank"), disk=None)
        time.sleep(3)
    assert not writer.failed, writer.failed
    assert configmaps(cp, "drill-blank") >= set(writer.written) | {"drill-blank-before"}
    assert "ran before but its disk is blank" in node.member_log, node.member_log
    assert "promoted to a voting member" in node.member_log, node.member_log
    after = assert_whole(cp)
    name = member.member.name
    assert after[name]["ID"] != before[name]["ID"], "the lost member was removed and added as a new one"
    # the new member holds the data written before it came: a serializable read of its own store
    keys = node.run(f"etcdctl --endpoints=https://127.0.0.1:2379 {ETCD_TLS} get --consistency=s --keys-only "
                    "--prefix /registry/configmaps/default/drill-blank-before").stdout.split()
    assert keys == ["/registry/configmaps/default/drill-blank-before"], keys


def api_servers_ready(cp: ControlPlane, render: RenderedCluster) -> dict[str, str]:
    """Member name -> what its own API server's ``/readyz`` says (at its address, certificate verified)."""
    return {m.name: cp.kubectl(f"--server=https://{m.address}:6443", "get", "--raw", "/readyz").stdout.strip()
            for m in render.members}


def test_the_control_plane_grows_to_five_members_and_shrinks_back_to_three(control_plane: ControlPlane,
                                                                           tmp_path: Path) -> None:
    """As `pulumi up` changes cfcr:controlPlane.count (cfcr/aws/control_plane.py): the members
    whose user-data changed are replaced one at a time in index order, each with its etcd disk;
    new members are created after them, one at a time. Shrinking, the same replacements with the
    smaller render, then the VMs of the members it no longer names are deleted. Each old VM stops
    at once (harsher than an instance's shutdown, and quicker here). The load balancer's stand-in
    learns a target only when it starts again (ControlPlane.set_lb_backends): it is given the new
    members after the growth and loses them after the shrink, between the measured writes."""
    cp = control_plane
    three = cp.render
    five = render_cluster(three.stack, tmp_path / "five", config={
        **three.config, "cfcr:controlPlane": {**three.config.get("cfcr:controlPlane", {}), "count": 5}})
    assert [m.name for m in five.members[:3]] == [m.name for m in three.members]
    new = five.members[3:]
    changed = [m for m in three.members
               if five.user_data(f"control-plane-{m.index}") != three.user_data(f"control-plane-{m.index}")]
    assert changed == three.members, "every member's etcd endpoints change with the count"
    before = etcd_members(cp.member(0))

    # 3 -> 5
    cp.update_cloud(five)
    with writing(cp, "drill-grow") as growing:
        for member in changed:
            cp.replace_member(member.index, new_instance_id(f"grow-{member.index}"),
                              disk=cp.lose_member(member.index, graceful=False), render=five)
        added = [cp.add_member(m, new_instance_id(f"grow-{m.index}"), render=five) for m in new]
    assert not growing.failed, growing.failed
    assert len(growing.written) > 10, growing.written
    assert growing.longest_gap() < 20, f"the API took {growing.longest_gap():.1f}s to accept a write"
    cp.set_lb_backends(five.members)
    grown = assert_whole(cp, five)
    assert all(grown[m.name]["ID"] == before[m.name]["ID"] for m in three.members), "the members kept their data"
    for node in added:
        assert "is not a member yet (the control plane grew)" in node.member_log, node.member_log
        assert "promoted to a voting member" in node.member_log, node.member_log
    assert set(api_servers_ready(cp, five).values()) == {"ok"}
    assert configmaps(cp, "drill-grow") == set(growing.written), "nothing written while growing is lost"

    # 5 -> 3
    removed = {node_name(cp.member(m.index)) for m in new}
    cp.update_cloud(three)
    with writing(cp, "drill-shrink") as shrinking:
        for member in changed:
            cp.replace_member(member.index, new_instance_id(f"shrink-{member.index}"),
                              disk=cp.lose_member(member.index, graceful=False))
        for member in reversed(new):  # the last created goes first
            cp.remove_member(member.index)
    assert not shrinking.failed, shrinking.failed
    assert len(shrinking.written) > 10, shrinking.written
    assert shrinking.longest_gap() < 20, f"the API took {shrinking.longest_gap():.1f}s to accept a write"
    cp.update_cloud(three, prune=True)
    cp.set_lb_backends(three.members)
    first = cp.member(0).member_log
    for member in new:
        assert f"(https://{member.address}:2380) is not in the rendered control plane: removing it" in first, first
    shrunk = assert_whole(cp)
    assert all(shrunk[m.name]["ID"] == before[m.name]["ID"] for m in three.members), "the members kept their data"
    assert set(api_servers_ready(cp, three).values()) == {"ok"}
    # the removed members' mirror Pods go with their Nodes (owned by them: the garbage collector;
    # bound to a Node that no longer exists: the pod garbage collector), as `kubeadm upgrade`
    # and every tool that reads the control plane from its mirror Pods needs
    cp.wait_for("the removed members' mirror Pods deleted", lambda: not {
        p["spec"]["nodeName"] for p in json.loads(cp.kubectl(
            "get", "pods", "-n", "kube-system", "-l", "tier=control-plane", "-o", "json").stdout)["items"]} & removed)
    assert configmaps(cp, "drill-grow") == set(growing.written)
    assert configmaps(cp, "drill-shrink") == set(shrinking.written), "nothing written while shrinking is lost"
