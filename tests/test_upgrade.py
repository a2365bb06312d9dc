"""Upgrades with the skew policy enforced (issue 10, item 3).

The decision is a pure function (:func:`cfcr.channels.check_version_change`), tested case by
case; the state record's provider (:class:`cfcr.bootstrap.version.KubernetesVersionProvider`)
is driven with the olds/news dicts the engine would pass, including through its serialized
form as the engine's dynamic-provider host loads it; the render shows the record and every
machine waiting for it; the plan and the ``upgrade-plan`` command are run for real.

Versions come from the channel data (``known_versions``, ``CHANNELS``), never written here, so
the tests follow a channel bump.
"""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from pulumi.runtime import rpc

from cfcr import channels
from cfcr.bootstrap.version import (
    KubernetesVersionProvider,
    SkewPolicyError,
    cluster_versions,
)
from cfcr.channels import (
    CHANNELS,
    MAX_KUBELET_MINOR_LAG,
    ClusterVersions,
    UpgradePlanError,
    check_version_change,
    format_plan,
    known_versions,
    parse_version,
    plan_upgrade,
)
from cfcr.cli import main as cli
from cfcr.config import load_stack
from cfcr.config.topology import control_plane_members
from cfcr.render import RenderResult, render_stack, unwrap

RECORD = "pulumi-python:dynamic/cfcr:KubernetesVersion"


def _newest_by_minor() -> dict[int, str]:
    out: dict[int, str] = {}
    for v in known_versions():
        out[parse_version(v)[1]] = v
    return out


NEWEST = _newest_by_minor()
MINORS = sorted(NEWEST)
assert len(MINORS) >= 3 and MINORS[-1] - MINORS[0] == len(MINORS) - 1, (
    f"these tests need three consecutive minors in the channel data, got {known_versions()}")
OLD, MID, NEW = NEWEST[MINORS[-3]], NEWEST[MINORS[-2]], NEWEST[MINORS[-1]]
MAJOR = parse_version(NEW)[0]


def v(minor: int, patch: int = 0) -> str:
    return f"{MAJOR}.{minor}.{patch}"


def patch_up(version: str, by: int = 1) -> str:
    major, minor, patch = parse_version(version)
    return f"{major}.{minor}.{patch + by}"


def same(version: str, *pools: str) -> ClusterVersions:
    """A cluster whose control plane and every pool run ``version``."""
    return ClusterVersions(version, {p: version for p in pools or ("general",)})


def reasons(deployed: ClusterVersions | None, target: ClusterVersions, requested: str | None = None) -> list[str]:
    return [r.reason for r in check_version_change(deployed, target, requested)]


# --------------------------------------------------------------------------- the decision

def test_the_same_version_goes_ahead() -> None:
    assert check_version_change(same(MID), same(MID)) == []


def test_a_patch_upgrade_goes_ahead() -> None:
    # patches the channels do not list are still versions: the rule is arithmetic on them
    assert check_version_change(same(MID), same(patch_up(MID))) == []


def test_one_minor_up_goes_ahead() -> None:
    assert check_version_change(same(OLD), same(MID)) == []
    assert check_version_change(same(MID), same(NEW)) == []


def test_a_deployed_version_the_channels_no_longer_know_can_still_move_one_minor() -> None:
    gone = v(MINORS[-3], 0) if NEWEST[MINORS[-3]] != v(MINORS[-3], 0) else v(MINORS[-3], 99)
    assert gone not in known_versions()
    assert check_version_change(same(gone), same(MID)) == []


def test_skipping_a_minor_is_refused_naming_the_steps() -> None:
    found = check_version_change(same(OLD), same(NEW), requested="edge" if CHANNELS.get("edge") == NEW else None)
    assert [r.subject for r in found] == ["controlPlane"]
    reason = found[0].reason
    assert OLD in reason and NEW in reason
    assert f"skips {MAJOR}.{MINORS[-2]}" in reason and "one minor at a time" in reason
    # the steps that work: the middle minor's newest patch, then the target, one `pulumi up` each
    assert reason.index(f"to {MID}") < reason.index(f"to {NEW}", reason.index("Steps that would work"))
    assert "then set" in reason and "`pulumi up`" in reason
    assert "upgrade-plan" in reason and "docs/upgrades.md" in reason


def test_a_skipped_minor_without_release_data_says_what_to_add() -> None:
    first = MINORS[0]
    (reason,) = reasons(same(v(first - 2, 3)), same(NEWEST[first]))
    assert f"no release of {MAJOR}.{first - 1}" in reason and "releases.yaml" in reason


def test_a_minor_downgrade_is_refused() -> None:
    (reason,) = reasons(same(NEW), same(MID))
    assert f"deployed at Kubernetes {NEW}" in reason and f"asks for {MID}" in reason
    assert "minor downgrade" in reason
    assert f"keep {NEW}" in reason and "etcd snapshot" in reason


def test_a_patch_downgrade_is_refused_too() -> None:
    # kubeadm's own policy would let a patch go back; cfcr does not: etcd does not go back on its data
    (reason,) = reasons(same(patch_up(MID)), same(MID))
    assert "patch downgrade" in reason and patch_up(MID) in reason and MID in reason


def test_a_major_change_is_refused() -> None:
    (reason,) = reasons(same(MID), same(f"{MAJOR + 1}.0.0"))
    assert "major" in reason


def test_kubelets_ahead_of_the_api_server_are_refused() -> None:
    found = check_version_change(same(MID), ClusterVersions(MID, {"general": MID, "gpu": NEW}))
    assert [r.subject for r in found] == ["kubelets.gpu"]
    assert f"kubelet {NEW}, newer than the API server {MID}" in found[0].reason
    assert f"upgrade the control plane to {NEW} first" in found[0].reason


def test_kubelets_ahead_are_refused_on_a_first_deploy_too() -> None:
    assert check_version_change(None, same(MID)) == []
    (reason,) = reasons(None, ClusterVersions(MID, {"gpu": NEW}))
    assert "newer than the API server" in reason


def test_kubelets_more_than_three_minors_behind_are_refused() -> None:
    cp = MINORS[-1]
    lagging = v(cp - MAX_KUBELET_MINOR_LAG - 1, 2)
    (reason,) = reasons(same(NEW), ClusterVersions(NEW, {"general": NEW, "old": lagging}))
    assert f"kubelet {lagging}, {MAX_KUBELET_MINOR_LAG + 1} minors behind the API server {NEW}" in reason
    at_the_limit = v(cp - MAX_KUBELET_MINOR_LAG, 2)
    assert check_version_change(same(NEW), ClusterVersions(NEW, {"old": at_the_limit})) == []


def test_a_pool_waiting_for_its_roll_must_stay_in_skew_while_the_control_plane_moves_first() -> None:
    # the pool runs 3 minors behind; the control plane going up one minor leaves it 4 behind
    # until the pool rolls, even though the pool's target version is fine
    behind = v(MINORS[-2] - MAX_KUBELET_MINOR_LAG)
    deployed = ClusterVersions(MID, {"general": behind})
    found = check_version_change(deployed, same(NEW))
    assert [r.subject for r in found] == ["kubelets.general"]
    assert f"keeps kubelet {behind} until it rolls" in found[0].reason
    # a pool that does not change its kubelet is judged by its target alone: same result
    found = check_version_change(deployed, ClusterVersions(NEW, {"general": behind}))
    assert [r.subject for r in found] == ["kubelets.general"]


def test_the_message_says_what_a_channel_resolved_to() -> None:
    channel, version = next((c, ver) for c, ver in sorted(CHANNELS.items()) if parse_version(ver)[1] == MINORS[-1])
    (reason,) = reasons(same(OLD), same(version), requested=channel)
    assert f"cfcr:kubernetes.version '{channel}' resolves to {version}" in reason


# --------------------------------------------------------------------------- the state record

def props(version: str, requested: str | None = None, **pools: str) -> dict[str, object]:
    return {"__provider": "serialized", "controlPlane": version,
            "kubelets": pools or {"general": version}, "requested": requested}


def test_the_provider_lets_a_first_deploy_through() -> None:
    provider = KubernetesVersionProvider()
    result = provider.check({}, props(NEW))
    assert result.failures == [] and result.inputs["controlPlane"] == NEW


def test_the_provider_refuses_a_skipped_minor_in_check() -> None:
    provider = KubernetesVersionProvider()
    result = provider.check(props(OLD), props(NEW, "edge"))
    assert len(result.failures) == 1
    failure = result.failures[0]
    assert failure.property == ""  # the engine then prints "<type> resource '<name>' has a problem: <reason>"
    assert OLD in failure.reason and NEW in failure.reason and MID in failure.reason


def test_the_provider_refuses_a_downgrade_and_kubelets_ahead() -> None:
    provider = KubernetesVersionProvider()
    assert provider.check(props(NEW), props(MID)).failures
    assert provider.check(props(MID), props(MID, general=MID, gpu=NEW)).failures
    assert provider.check(props(OLD), props(MID)).failures == []


def test_an_unknown_input_in_preview_is_not_judged() -> None:
    provider = KubernetesVersionProvider()
    assert provider.check(props(NEW), {**props(OLD), "controlPlane": rpc.UNKNOWN}).failures == []


def test_the_provider_records_versions_and_never_replaces() -> None:
    provider = KubernetesVersionProvider()
    created = provider.create(props(MID, "stable"))
    assert created.outs == {"controlPlane": MID, "kubelets": {"general": MID}, "requested": "stable"}
    olds = {**created.outs, "__provider": "serialized"}
    unchanged = provider.diff(created.id, olds, props(MID, "stable"))
    assert unchanged.changes is False and unchanged.replaces == []
    moved = provider.diff(created.id, olds, props(NEW, "edge"))
    assert moved.changes is True and moved.replaces == [] and moved.delete_before_replace is False
    assert provider.update(created.id, olds, props(NEW, "edge")).outs["controlPlane"] == NEW


def test_update_never_records_a_forbidden_version() -> None:
    provider = KubernetesVersionProvider()
    with pytest.raises(SkewPolicyError, match="downgrade"):
        provider.update("kubernetes-version", props(NEW), props(OLD))


@pytest.fixture(scope="module")
def aws() -> RenderResult:
    return render_stack("aws-stable", None)


def test_the_record_carries_the_stacks_versions(aws: RenderResult) -> None:
    spec = load_stack("aws-stable")
    (record,) = [r for r in aws.resources if r.type == RECORD]
    (cluster,) = [r for r in aws.resources if r.type == "cfcr:aws:Cluster"]
    assert record.parent == cluster.urn and record.name == f"{spec.name}-kubernetes-version"
    expected = cluster_versions(spec)
    assert record.inputs["controlPlane"] == expected.control_plane == channels.resolve(spec.kubernetes.version).version
    assert record.inputs["kubelets"] == {p.name: expected.control_plane for p in spec.node_pools}
    assert record.inputs["requested"] == spec.kubernetes.version


def test_every_machine_waits_for_the_record(aws: RenderResult) -> None:
    (record,) = [r for r in aws.resources if r.type == RECORD]
    machines = [r for r in aws.resources if r.type in ("aws:ec2/instance:Instance", "aws:autoscaling/group:Group")]
    spec = load_stack("aws-stable")
    assert len(machines) == spec.control_plane.count + len(spec.node_pools)
    assert [m.name for m in machines if record.urn not in m.dependencies] == []


def test_the_serialized_provider_refuses_in_a_fresh_process(aws: RenderResult) -> None:
    """What the engine's dynamic-provider host does: decode ``__provider`` and call check."""
    (record,) = [r for r in aws.resources if r.type == RECORD]
    serialized = unwrap(record.inputs["__provider"])  # the SDK sends it as a secret
    assert isinstance(serialized, str)
    script = (
        "import base64, sys, dill\n"
        "provider = dill.loads(base64.b64decode(sys.stdin.read()))\n"
        f"olds = {{'controlPlane': {OLD!r}, 'kubelets': {{'general': {OLD!r}}}}}\n"
        f"news = {{'controlPlane': {NEW!r}, 'kubelets': {{'general': {NEW!r}}}, 'requested': None}}\n"
        "for f in provider.check(olds, news).failures: print(f.reason)\n"
    )
    base64.b64decode(serialized)  # it is what the SDK wrote: base64 of a dill pickle
    out = subprocess.run([sys.executable, "-c", script], input=serialized, capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert "one minor at a time" in out and OLD in out and NEW in out


@pytest.mark.parametrize(("stack", "parent"), [("gcp-stable", "cfcr:gcp:Cluster"),
                                                ("azure-stable", "cfcr:azure:Cluster")])
def test_other_clouds_keep_the_record_too(stack: str, parent: str) -> None:
    """GCP's and Azure's clusters keep it as AWS's does (their machines wait for it)."""
    result = render_stack(stack, None)
    (record,) = [r for r in result.resources if r.type == RECORD]
    (owner,) = [r for r in result.resources if r.type == parent]
    assert record.parent == owner.urn
    assert record.inputs["controlPlane"] == channels.resolve(load_stack(stack).kubernetes.version).version


# --------------------------------------------------------------------------- the plan

MEMBERS = ["c-cp-0", "c-cp-1", "c-cp-2"]


def test_a_skipped_minor_plans_one_step_per_minor() -> None:
    plan = plan_upgrade(OLD, NEW, members=MEMBERS, pools=["general", "gpu"])
    assert plan.possible and not plan.direct
    assert [(s.from_version, s.to_version, s.kind) for s in plan.steps] == [(OLD, MID, "minor"), (MID, NEW, "minor")]
    for step in plan.steps:
        assert step.control_plane == tuple(MEMBERS) and step.node_pools == ("general", "gpu")
        assert step.to_version in step.setting
        assert any("kubeadm init" in op for op in step.member_operations)
        assert any("drained" in op for op in step.pool_operations)
        assert any("kubeadm join" in op for op in step.pool_operations)


def test_the_plan_text_orders_the_roll() -> None:
    text = format_plan(plan_upgrade(OLD, NEW, members=MEMBERS, pools=["general"]), cluster="c")
    assert f"Kubernetes {OLD} -> {NEW}" in text and "is refused" in text
    first, second = text.index(f"Step 1 of 2: {OLD} -> {MID}"), text.index(f"Step 2 of 2: {MID} -> {NEW}")
    assert first < second
    step_one = text[first:second]
    # members one at a time, in order, then the pools with drain
    assert step_one.index("c-cp-0") < step_one.index("c-cp-1") < step_one.index("c-cp-2")
    assert "one member at a time (etcd quorum kept)" in step_one
    assert step_one.index("Control plane") < step_one.index("node pools general roll (drain before a node goes)")
    assert "kubeadm init" in step_one and "kubeadm join" in step_one


def test_a_channel_target_and_a_patch_step() -> None:
    plan = plan_upgrade(MID, "stable", members=MEMBERS, pools=[])
    stable = CHANNELS["stable"]
    if stable == MID:
        assert plan.direct and plan.steps == ()
        assert "Nothing to do" in format_plan(plan)
    older = v(parse_version(stable)[1], 0) if stable != v(parse_version(stable)[1], 0) else None
    if older:
        patch = plan_upgrade(older, "stable", members=MEMBERS, pools=["general"])
        assert patch.direct and [s.kind for s in patch.steps] == ["patch"]


def test_impossible_plans_say_why() -> None:
    down = plan_upgrade(NEW, OLD, members=MEMBERS, pools=[])
    assert not down.possible and down.steps == () and "downgrad" in down.reason
    assert "Not possible" in format_plan(down)
    gap = plan_upgrade(v(MINORS[0] - 2, 1), NEWEST[MINORS[0]], members=MEMBERS, pools=[])
    assert not gap.possible and f"no release data for {MAJOR}.{MINORS[0] - 1}" in gap.reason


@pytest.mark.parametrize(("current", "target"), [("banana", "stable"), ("stable", "1.99.0"), ("stable", "nightly")])
def test_unknown_versions_are_bad_input(current: str, target: str) -> None:
    with pytest.raises(UpgradePlanError) as caught:
        plan_upgrade(current, target, members=MEMBERS, pools=[])
    assert all(known in str(caught.value) for known in known_versions())


# --------------------------------------------------------------------------- the command

def test_cli_prints_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_stack("aws-stable")
    assert cli(["upgrade-plan", "--stack", "aws-stable", "--from", OLD, "--to", NEW]) == 0
    out = capsys.readouterr().out
    names = [m.name for m in control_plane_members(spec)]
    assert "Step 2 of 2" in out and ", then ".join(names) in out
    assert all(f"node pools {p.name}" in out for p in spec.node_pools)


def test_cli_refuses_an_impossible_target_with_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["upgrade-plan", "--stack", "aws-stable", "--from", NEW, "--to", OLD]) == 1
    assert "Not possible" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_and_exit_2() -> None:
    run = subprocess.run([sys.executable, "-m", "cfcr", "upgrade-plan", "--stack", "aws-stable", "--to", "1.99.0"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert "1.99.0" in run.stderr and all(known in run.stderr for known in known_versions())


def test_a_single_member_control_plane_is_told_it_goes_down() -> None:
    text = format_plan(plan_upgrade(MID, NEW, members=["solo-cp-0"], pools=[]))
    assert "the only member: the API and etcd are down while it is replaced" in text
    assert "No node pools to roll" in text


def test_every_pool_is_judged_not_only_the_first() -> None:
    behind = v(MINORS[-2] - MAX_KUBELET_MINOR_LAG)
    deployed = ClusterVersions(MID, {"a": behind, "b": behind})
    target = ClusterVersions(NEW, {"a": NEW, "b": NEW, "c": v(MINORS[-1] + 1)})
    assert [r.subject for r in check_version_change(deployed, target)] == ["kubelets.a", "kubelets.b", "kubelets.c"]


def test_a_step_names_the_addon_and_cloud_images_it_moves() -> None:
    from cfcr.channels import plan_upgrade

    step = plan_upgrade("1.35.8", "1.36.6", members=["c-cp-0"], pools=["general"]).steps[0]
    changes = {p.component: (p.before, p.after) for p in step.pins}
    assert changes["cluster-autoscaler image"] == ("v1.35.2", "v1.36.1")
    assert changes["gcp cloud controller manager"] == ("v35.0.0", "v36.0.7")
    assert "metrics-server image" not in changes  # an image that does not move is not a change
    aws = plan_upgrade("1.35.8", "1.36.6", members=["c-cp-0"], pools=["general"], cloud="aws").steps[0]
    assert not any(p.component.startswith(("gcp ", "azure ")) for p in aws.pins), aws.pins


@pytest.mark.parametrize(("version", "image", "allowed"), [
    ("1.36.6", "registry.k8s.io/provider-aws/cloud-controller-manager:v1.35.2", True),
    ("1.37.2", "registry.k8s.io/provider-aws/cloud-controller-manager:v1.35.2", False),
    ("1.35.8", "registry.k8s.io/provider-aws/cloud-controller-manager:v1.36.0", False),  # newer than the API
    ("1.37.2", "registry.k8s.io/cloud-provider-gcp/cloud-controller-manager:v36.0.7", True),
    ("1.37.2", "registry.k8s.io/cloud-provider-gcp/cloud-controller-manager:v35.0.0", False),
    ("1.37.2", "mcr.microsoft.com/oss/v2/kubernetes/azure-cloud-controller-manager:v1.36.2", True),
    ("1.37.2", "example.com/ccm@sha256:" + "0" * 64, True),  # no minor in a digest: not judged
])
def test_the_cloud_controller_manager_skew(version: str, image: str, allowed: bool) -> None:
    from cfcr.channels.skew import check_ccm_skew

    decision = check_ccm_skew(version, image)
    assert decision.allowed is allowed, decision.reason
    assert version in decision.reason or decision.allowed


def test_a_step_warns_of_its_clouds_controller_manager_outside_the_skew_policy() -> None:
    """edge (1.37) carries AWS's v1.35.2 CCM, two minors behind: the AWS plan says so, the GCP
    plan (v36.0.7: one behind) does not; stable's plans warn of nothing."""
    aws = plan_upgrade("stable", "edge", members=["c-cp-0"], pools=[], cloud="aws")
    assert [w.split(":")[0] for w in aws.steps[0].warnings] == ["aws"]
    assert "Warning: aws: the cloud controller manager v1.35.2" in format_plan(aws)
    assert plan_upgrade("stable", "edge", members=["c-cp-0"], pools=[], cloud="gcp").steps[0].warnings == ()
    assert plan_upgrade("1.35.8", "stable", members=["c-cp-0"], pools=[]).steps[0].warnings == ()
