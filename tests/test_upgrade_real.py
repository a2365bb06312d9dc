"""An upgrade to the next minor on the real control plane: the stable channel's cluster rolled to
the edge channel's release member by member, as `pulumi up` rolls it (each member's VM replaced
with the next release's user-data and programs, its etcd disk kept, the next member only once
the previous reports ready), then a worker of the next release joined, while a client keeps
writing through the API load balancer. The next release's real kubeadm runs `init` on each
replaced member of the running cluster and `join` on the worker.

The next release's real `kubeadm upgrade plan` judges the cluster before and after the roll, on
a member, as an operator runs it there once the new kubeadm is installed, with no check ignored.
It reads each member's API endpoint and the control plane's versions from the static pods'
mirror Pods, which the harness's kubelet stand-in creates as a kubelet does
(tests/support/kubelet.py); its health checks run a Job (the real scheduler places its Pod, kwok
completes it) and find every control-plane Node Ready; its CoreDNS checks read cfcr's CoreDNS
addon and migrate its Corefile. Before the roll it plans every member's control plane from the
current release to the target (`kubeadm upgrade apply v<target>`); after it, it finds the
cluster at the target and plans nothing ("you're up-to-date").

Two steps of `pulumi up` the harness does not run are done here, for plan: cfcr's CoreDNS addon
is applied as the addons step applies it (the current release's before the roll, the next
release's after it; without it: `[ERROR CoreDNSUnsupportedPlugins]: start version '' not
supported`), and the `uninitialized` taint goes from every Node as the AWS cloud
controller manager removes it (its chart cannot be fetched here; without that, the health
check's Job never schedules: `[ERROR CreateJob]: Job "upgrade-health-check-..." ... did not
complete in 1m0s`).

Runs last on the session's control plane (it leaves it at the edge release); see
tests/test_member_drills_real.py for the replacement drills at one release.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cfcr import channels
from cfcr.addons.coredns import coredns_objects
from cfcr.addons.images import ImageRewriter
from cfcr.channels import check_upgrade
from tests.support.controlplane import ControlPlane, Node
from tests.support.rendered import RenderedCluster, render_cluster
from tests.support.tools import require_tool
from tests.test_member_drills_real import assert_whole, configmaps, new_instance_id, node_name, writing

pytestmark = [pytest.mark.slow, pytest.mark.changes_control_plane]

PROGRAMS = ("kubeadm", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
STATIC_PODS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"


def api_versions(cp: ControlPlane) -> dict[str, str]:
    """Member name -> the gitVersion its own API server reports."""
    out = {}
    for member in cp.render.members:
        doc = json.loads(cp.kubectl(f"--server=https://{member.address}:6443", "get", "--raw", "/version").stdout)
        out[member.name] = doc["gitVersion"]
    return out


def apply_coredns(cp: ControlPlane, render: RenderedCluster) -> None:
    """cfcr's CoreDNS addon of ``render``'s release, applied server-side as the addons step of
    `pulumi up` applies it (what kubeadm's CoreDNS checks read: the Deployment's image, the
    Corefile). The session's earlier tests may have applied the render's objects under their own
    field manager (tests/test_controlplane_real.py, as a first `pulumi up` would have): the
    addons step owns these objects, so it takes their fields over (``--force-conflicts``)
    instead of failing on the image the next release changes."""
    rewriter = ImageRewriter.for_spec(render.spec)
    for obj in coredns_objects(render.spec, render.release, rewriter):
        cp.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=cfcr-addons", "-f", "-",
                   input=json.dumps(obj))


def initialise_nodes(cp: ControlPlane) -> None:
    """The one step of the AWS cloud controller manager's node initialisation that scheduling
    needs (the controller is a Helm chart the harness cannot fetch): the ``uninitialized`` taint
    the kubelet registers with (``--cloud-provider=external``) goes from every Node. Until it
    does, no Pod without that toleration schedules, kubeadm's health-check Job's among them."""
    for node in json.loads(cp.kubectl("get", "nodes", "-o", "json").stdout)["items"]:
        taints = node["spec"].get("taints") or []
        kept = [t for t in taints if t["key"] != UNINITIALIZED]
        if kept != taints:
            patch = [{"op": "test", "path": "/spec/taints", "value": taints},
                     {"op": "replace", "path": "/spec/taints", "value": kept}]
            cp.kubectl("patch", "node", node["metadata"]["name"], "--type=json", "-p", json.dumps(patch))


def mirrored(cp: ControlPlane, tag: str) -> dict[str, dict[str, str]]:
    """Member Node -> static pod -> image, from the mirror Pods in kube-system, once every member
    has its four Running and Ready and its Kubernetes ones at ``tag``, and no other Node has any;
    else empty (keep waiting)."""
    pods = json.loads(cp.kubectl("get", "pods", "-n", "kube-system", "-l", "tier=control-plane", "-o", "json").stdout)
    found: dict[str, dict[str, str]] = {}
    for pod in pods["items"]:
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        if pod["status"].get("phase") == "Running" and ready and "deletionTimestamp" not in pod["metadata"]:
            images = found.setdefault(pod["spec"]["nodeName"], {})
            images[pod["metadata"]["labels"]["component"]] = pod["spec"]["containers"][0]["image"]
    members = {node_name(cp.member(m.index)): found.get(node_name(cp.member(m.index)), {}) for m in cp.render.members}
    if any(set(images) != set(STATIC_PODS) for images in members.values()) or set(found) - set(members):
        return {}  # a member not mirrored yet, or a removed one's mirror Pods not yet collected
    if any(not image.endswith(f":{tag}") for images in members.values()
           for pod, image in images.items() if pod != "etcd"):
        return {}
    return members


def upgrade_plan(node: Node, kubeadm: Path, target: str) -> subprocess.CompletedProcess[str]:
    """``kubeadm upgrade plan v<target>`` of the next release's kubeadm on ``node``, installed over
    the node's own at /usr/local/bin/kubeadm, as kubeadm's upgrade procedure installs it first.
    No ``--config``: plan reads the cluster's kubeadm-config and the node's admin.conf. The
    version argument is kubeadm's own way to skip its look-up of the latest release on dl.k8s.io
    (the harness has no internet; cfcr pins the target anyway). ``--v=1`` as the harness runs
    kubeadm, for the line that says the cluster is up to date. No ``--ignore-preflight-errors``:
    none of ENVIRONMENT_PREFLIGHT's checks is one that plan runs (it checks that it runs as root,
    CoreDNS's migration and the cluster's health)."""
    cmd = node.root.command("kubeadm", "upgrade", "plan", f"v{target}", "--v=1",
                            binds=[(str(kubeadm), "/usr/local/bin/kubeadm")])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def planned(out: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(component, node) -> (current, target) from the table under "Upgrade to the latest ..."
    of plan's text output (node "" for kube-proxy and CoreDNS, which have none)."""
    lines = out.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Upgrade to the latest ")), None)
    if start is None:
        return {}
    rows: dict[tuple[str, str], tuple[str, str]] = {}
    for line in lines[start + 3:]:
        if not line.strip():
            break
        cells = line.split()
        component, node = cells[0], cells[1] if len(cells) == 4 else ""
        rows[(component, node)] = (cells[-2], cells[-1])
    return rows


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

    initialise_nodes(cp)
    apply_coredns(cp, cp.render)
    nodes = cp.wait_for("every member's static pods mirrored at the current release",
                        lambda: mirrored(cp, f"v{current}"))
    before = upgrade_plan(cp.member(0), programs["kubeadm"], target)
    assert before.returncode == 0, before.stdout + before.stderr[-4000:]
    assert f"[upgrade/versions] Cluster version: {current}\n" in before.stdout, before.stdout
    assert f"[upgrade/versions] kubeadm version: v{target}\n" in before.stdout, before.stdout
    rows = planned(before.stdout)
    # cfcr's etcd.yaml carries kubeadm's labels, so plan lists each member's etcd too, with
    # kubeadm's own default for the minor as its target; `kubeadm upgrade apply` would leave it
    # alone (etcd is external in cfcr's ClusterConfiguration)
    etcd = {node: rows.pop(("etcd", node), None) for node in nodes}
    assert all(e is not None and e[0] == cp.render.release.etcd.version for e in etcd.values()), before.stdout
    assert rows == {
        **{(component, node): (f"v{current}", f"v{target}")
           for node in nodes for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")},
        ("kube-proxy", ""): (current, f"v{target}"),
        ("CoreDNS", ""): (cp.render.release.coredns.version, upgraded.release.coredns.version),
    }, before.stdout
    assert f"\tkubeadm upgrade apply v{target}\n" in before.stdout, before.stdout

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

    # the addons take the next release's pins once the control plane is replaced (docs/upgrades.md)
    initialise_nodes(cp)
    apply_coredns(cp, upgraded)
    cp.wait_for("every member's static pods mirrored at the next release", lambda: mirrored(cp, f"v{target}"))
    after = upgrade_plan(cp.member(0), programs["kubeadm"], target)
    assert after.returncode == 0, after.stdout + after.stderr[-4000:]
    assert f"[upgrade/versions] Cluster version: {target}\n" in after.stdout, after.stdout
    assert planned(after.stdout) == {} and "kubeadm upgrade apply" not in after.stdout, after.stdout
    assert "[upgrade/plan] Awesome, you're up-to-date! Enjoy!" in after.stderr, after.stderr[-4000:]
