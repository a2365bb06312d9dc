"""An upgrade to the next minor on the real control plane: the stable channel's cluster rolled to
the edge channel's release member by member, as `pulumi up` rolls it (each member's VM replaced
with the next release's user-data and programs, its etcd disk kept, the next member only once
the previous reports ready), then a worker of the next release joined, while a client keeps
writing through the API load balancer. The real kubeadm of both releases judges the upgrade:
the next release's `kubeadm upgrade plan` before and after, the current one's refusal.

Runs last on the session's control plane (it leaves it at the edge release); see
tests/test_member_drills_real.py for the replacement drills at one release.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cfcr import channels
from cfcr.channels import check_upgrade
from tests.support.controlplane import ControlPlane, Node
from tests.support.rendered import render_cluster
from tests.support.tools import require_tool
from tests.test_member_drills_real import assert_whole, configmaps, new_instance_id, writing

pytestmark = pytest.mark.slow

PROGRAMS = ("kubeadm", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
HARNESS_IGNORED = "CreateJob,CoreDNSUnsupportedPlugins,CoreDNSMigration"
"""kubeadm upgrade's health checks the harness cannot pass: no Pod runs here (CreateJob waits for a
Job's Pod to complete), and cfcr's CoreDNS is an addon the harness does not apply (the CoreDNS
checks read its Deployment's image version)."""


def next_kubeadm(node: Node, kubeadm: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The next release's kubeadm, run on ``node`` (bound at /opt/cfcr-next/kubeadm) with its admin.conf."""
    cmd = node.root.command("/opt/cfcr-next/kubeadm", *args, binds=[(str(kubeadm), "/opt/cfcr-next/kubeadm")])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def api_versions(cp: ControlPlane) -> dict[str, str]:
    """Member name -> the gitVersion its own API server reports."""
    out = {}
    for member in cp.render.members:
        doc = json.loads(cp.kubectl(f"--server=https://{member.address}:6443", "get", "--raw", "/version").stdout)
        out[member.name] = doc["gitVersion"]
    return out


def test_the_control_plane_moves_to_the_next_minor_one_member_at_a_time(control_plane: ControlPlane,
                                                                        tmp_path: Path) -> None:
    cp = control_plane
    current = channels.resolve(cp.render.spec.kubernetes.version).kubernetes.version
    target = channels.resolve("edge").kubernetes.version
    assert check_upgrade(current, target).allowed, check_upgrade(current, target).reason
    programs = {name: require_tool(name, target) for name in PROGRAMS}
    upgraded = render_cluster(cp.render.stack, tmp_path / "next",
                              config={**cp.render.config, "cfcr:kubernetes": {"version": "edge"}})
    # the same cluster: its secrets stay in the store as they are (Pulumi's state); the next
    # release's user-data names the same secrets and pins the same CA
    assert set(upgraded.secret_values) == set(cp.render.secret_values)
    ca = next(k for k in cp.render.secret_values if k.endswith("-ca-crt"))
    assert upgraded.secret_values[ca] == cp.render.secret_values[ca]
    built_now = {v.split("+")[0] for v in api_versions(cp).values()}
    assert len(built_now) == 1 and not built_now & {f"v{target}"}

    first = cp.member(0)
    refused = first.run(f"kubeadm upgrade plan v{target} --ignore-preflight-errors={HARNESS_IGNORED}", check=False)
    assert refused.returncode != 0, refused.stdout
    assert "kubeadm" in refused.stderr and f"v{target}" in refused.stderr, refused.stderr
    plan = next_kubeadm(first, programs["kubeadm"], "upgrade", "plan", f"v{target}",
                        f"--ignore-preflight-errors={HARNESS_IGNORED}")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert f"v{target}" in plan.stdout

    with writing(cp, "drill-upgrade") as writer:
        for member in cp.render.members:
            disk = cp.lose_member(member.index)
            cp.replace_member(member.index, new_instance_id(f"upgrade-{member.index}"), disk=disk,
                              render=upgraded, binaries=programs)
            versions = api_versions(cp)
            assert versions[member.name].startswith(f"v{target}"), versions
        worker = cp.join_worker(f"worker-{cp.render.spec.node_pools[0].name}", 1, render=upgraded, binaries=programs)
    assert not writer.failed, writer.failed
    assert len(writer.written) > 20
    assert configmaps(cp, "drill-upgrade") == set(writer.written), "nothing written during the upgrade is lost"
    assert writer.longest_gap() < 20, f"the API took {writer.longest_gap():.1f}s to accept a write"
    assert set(api_versions(cp).values()) == {f"v{target}"}
    assert_whole(cp)
    config = json.loads(cp.kubectl("get", "configmap", "-n", "kube-system", "kubeadm-config", "-o", "json").stdout)
    assert f"kubernetesVersion: v{target}" in config["data"]["ClusterConfiguration"]
    assert "This node has joined the cluster" in worker.join_output, worker.join_output[-2000:]
    after = next_kubeadm(cp.member(0), programs["kubeadm"], "upgrade", "plan", f"v{target}",
                         f"--ignore-preflight-errors={HARNESS_IGNORED}")
    assert after.returncode == 0, after.stdout + after.stderr
