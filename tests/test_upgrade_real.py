"""An upgrade to the next minor on the real control plane: the stable channel's cluster rolled to
the edge channel's release member by member, as `pulumi up` rolls it (each member's VM replaced
with the next release's user-data and programs, its etcd disk kept, the next member only once
the previous reports ready), then a worker of the next release joined, while a client keeps
writing through the API load balancer. The next release's real kubeadm runs `init` on each
replaced member of the running cluster and `join` on the worker.

Not here: `kubeadm upgrade plan`. It finds each member's API endpoint in the annotation of the
kube-apiserver mirror Pod, and the harness's kubelet stand-in creates no mirror Pods (it waits
until its deadline and fails, whichever kubeadm runs it).

Runs last on the session's control plane (it leaves it at the edge release); see
tests/test_member_drills_real.py for the replacement drills at one release.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cfcr import channels
from cfcr.channels import check_upgrade
from tests.support.controlplane import ControlPlane
from tests.support.rendered import render_cluster
from tests.support.tools import require_tool
from tests.test_member_drills_real import assert_whole, configmaps, new_instance_id, writing

pytestmark = pytest.mark.slow

PROGRAMS = ("kubeadm", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


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

    with writing(cp, "drill-upgrade") as writer:
        for member in cp.render.members:
            disk = cp.lose_member(member.index)
            cp.replace_member(member.index, new_instance_id(f"upgrade-{member.index}"), disk=disk,
                              render=upgraded, binaries=programs)
            versions = api_versions(cp)
            assert versions[member.name].startswith(f"v{target}"), versions
        pool = f"worker-{cp.render.spec.node_pools[0].name}"
        worker = cp.join_worker(pool, 1, render=upgraded, binaries=programs)
    assert not writer.failed, writer.failed
    assert len(writer.written) > 20
    assert configmaps(cp, "drill-upgrade") == set(writer.written), "nothing written during the upgrade is lost"
    assert writer.longest_gap() < 20, f"the API took {writer.longest_gap():.1f}s to accept a write"
    assert set(api_versions(cp).values()) == {f"v{target}"}
    assert_whole(cp)
    config = json.loads(cp.kubectl("get", "configmap", "-n", "kube-system", "kubeadm-config", "-o", "json").stdout)
    assert f"kubernetesVersion: v{target}" in config["data"]["ClusterConfiguration"]
    assert "This node has joined the cluster" in worker.join_output, worker.join_output[-2000:]
