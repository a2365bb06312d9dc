"""``cfcr diff`` over real renders of aws-stable: a Kubernetes version change replaces every member
one at a time and rolls the pool; a pool size change only updates its group. Plus the replace rules
on small hand-made renders (GCP, Azure) and the CLI's input errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cfcr.cli import main
from cfcr.config import read_stack_config
from cfcr.render import render_stack
from cfcr.review.diff import RenderDiff, changed_paths, diff
from cfcr.config.overrides import apply
from cfcr.review.snapshot import Snapshot, load_dir


def _render(tmp: Path, name: str, overrides: list[str] | None = None) -> Path:
    out = tmp / name
    config = apply(read_stack_config("aws-stable"), overrides) if overrides else None
    render_stack("aws-stable", out, config=config)
    return out


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("diff")
    return {
        "base": _render(tmp, "base"),
        "version": _render(tmp, "version", ["kubernetes.version=1.35.8"]),
        "size": _render(tmp, "size", ["nodePools[0].desiredSize=5"]),
    }


@pytest.fixture(scope="module")
def version_diff(dirs: dict[str, Path]) -> RenderDiff:
    return diff(load_dir(dirs["base"]), load_dir(dirs["version"]))


def test_a_version_change_replaces_every_member_in_order_and_rolls_the_pool(version_diff: RenderDiff) -> None:
    assert [c.member for c in version_diff.members] == ["control-plane-0", "control-plane-1", "control-plane-2"]
    text = version_diff.format()
    first = text.splitlines()[1]
    assert first.startswith("REPLACES control-plane member control-plane-0 (cfcr-aws-stable-cp-0)")
    assert "etcd member re-joins" in first and "template cfcr-aws-stable-cp-0 changes (userData)" in first
    rolled = [c for c in version_diff.changed if c.action == "roll"]
    assert [(c.type, c.name) for c in rolled] == [("aws:autoscaling/group:Group", "cfcr-aws-stable-general")]
    templates = [c for c in version_diff.changed if c.type == "aws:ec2/launchTemplate:LaunchTemplate"]
    assert len(templates) == 4 and all(c.action == "update" and c.keys == ["userData"] for c in templates)
    assert not version_diff.added and not version_diff.removed
    assert set(version_diff.user_data) == {"control-plane-0", "control-plane-1", "control-plane-2", "worker-general"}
    assert "+    kubernetesVersion: v1.35.8" in version_diff.user_data["control-plane-0"]
    assert any("kube-proxy" in path for path in version_diff.manifests)


def test_a_pool_size_change_updates_only_its_group(dirs: dict[str, Path]) -> None:
    result = diff(load_dir(dirs["base"]), load_dir(dirs["size"]))
    assert [(c.name, c.action, c.keys) for c in result.changed] == [
        ("cfcr-aws-stable-general", "update", ["desiredCapacity"])]
    assert result.changed[0].values == {"desiredCapacity": (3.0, 5.0)}
    assert result.members == [] and result.user_data == {} and result.manifests == {}


def test_diff_cli_prints_json_of_two_directories_and_exits_zero(dirs: dict[str, Path],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(dirs["base"]), str(dirs["version"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["controlPlaneReplaced"] == ["control-plane-0", "control-plane-1", "control-plane-2"]
    assert out["summary"]["rolled"] == 1
    instance = next(c for c in out["changed"] if c["name"] == "cfcr-aws-stable-cp-1" and c["action"] == "replace")
    assert instance["type"] == "aws:ec2/instance:Instance" and instance["member"] == "control-plane-1"
    assert "kubernetesVersion: v1.35.8" in out["userData"]["control-plane-1"]


def test_secrets_stay_masked_in_the_diff(dirs: dict[str, Path], version_diff: RenderDiff) -> None:
    version = next(r for r in load_dir(dirs["base"]).resources
                   if r["type"] == "aws:secretsmanager/secretVersion:SecretVersion")
    assert version["inputs"]["secretString"] == "[secret]"
    assert "PRIVATE KEY" not in version_diff.format() and "PRIVATE KEY" not in json.dumps(version_diff.to_json())


@pytest.mark.parametrize("argv", [
    [], ["/nonexistent-dir", "/tmp"], ["--stack", "aws-stable"], ["/tmp"], ["--config", "cni=flannel"],
    ["/tmp", "/tmp", "/tmp"], ["--stack", "aws-stable", "--config", "novalue"],
    ["/tmp", "--stack", "aws-stable", "--against-stack", "aws-edge"],
])
def test_bad_input_exits_two(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cfcr: diff: " if "novalue" not in argv else "cfcr: --config 'novalue': ")
    assert err.count("\n") == 1


def test_an_empty_directory_is_not_a_render(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(tmp_path), str(tmp_path)]) == 2
    assert "no resources.json" in capsys.readouterr().err


def _snap(stack: str, *resources: dict[str, Any]) -> Snapshot:
    rows = [{"urn": f"urn:pulumi:{stack}::cfcr::cfcr:bootstrap:ClusterBootstrap::cfcr-{stack}",
             "type": "cfcr:bootstrap:ClusterBootstrap", "name": f"cfcr-{stack}", "inputs": {}}]
    for r in resources:
        name = r["name"].replace("{c}", f"cfcr-{stack}")
        rows.append({**r, "name": name, "urn": f"urn:pulumi:{stack}::cfcr::{r['type']}::{name}"})
    return Snapshot(stack, rows, {}, {})


def test_gcp_and_azure_member_user_data_replaces_and_stacks_compare_by_role() -> None:
    gcp = "gcp:compute/instance:Instance"
    vm = "azure-native:compute:VirtualMachine"
    vmss = "azure-native:compute:VirtualMachineScaleSet"
    a = _snap("one", {"type": gcp, "name": "{c}-cp-0", "inputs": {"metadata": {"user-data": "a"}, "machineType": "x"}},
              {"type": vm, "name": "{c}-cp-1", "inputs": {"osProfile": {"customData": "a"}}},
              {"type": vmss, "name": "{c}-general", "inputs": {"virtualMachineProfile": {"osProfile": {"customData": "a"}}}})
    b = _snap("two", {"type": gcp, "name": "{c}-cp-0", "inputs": {"metadata": {"user-data": "b"}, "machineType": "y"}},
              {"type": vm, "name": "{c}-cp-1", "inputs": {"osProfile": {"customData": "b"}}},
              {"type": vmss, "name": "{c}-general", "inputs": {"virtualMachineProfile": {"osProfile": {"customData": "b"}}}})
    result = diff(a, b)
    assert [(c.member, c.keys) for c in result.members] == [
        ("control-plane-0", ["machineType", "metadata.user-data"]), ("control-plane-1", ["osProfile.customData"])]
    assert result.members[0].why == ["metadata.user-data replaces it"]
    assert [c.action for c in result.changed if c.type == vmss] == ["roll"]
    only_size = _snap("two", {"type": gcp, "name": "{c}-cp-0", "inputs": {"metadata": {"user-data": "a"}, "machineType": "y"}})
    assert [c.action for c in diff(a, only_size).changed] == ["update"]
    assert len(diff(a, only_size).removed) == 2


def test_changed_paths_and_overrides() -> None:
    assert changed_paths({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"b": 2, "c": [1, 3]}, "e": 1}) == [
        "a.b", "a.c[1]", "d", "e"]
    assert changed_paths({"l": [1]}, {"l": [1, 2]}) == ["l"]


def test_keys_with_dots_are_one_step_and_certificates_are_replaced() -> None:
    from cfcr.review.diff import _get
    from cfcr.review.replace import replacing

    a = {"tags": {"cfcr.io/cluster": "a", "Name": "x"}}
    b = {"tags": {"cfcr.io/cluster": "b", "Name": "x"}}
    assert changed_paths(a, b) == ['tags["cfcr.io/cluster"]']
    assert _get(b, 'tags["cfcr.io/cluster"]') == "b"
    assert replacing("tls:index/selfSignedCert:SelfSignedCert", ["validityPeriodHours"]) == ["validityPeriodHours"]
    assert replacing("aws:iam/role:Role", ["name", "tags"]) == ["name"]
