"""The real binaries the tests run: the recipe covers the channels, and each built binary
is the version its recipe says (``tests/tools/versions.toml``, ``python3 dev.py tools``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cfcr.channels import CHANNELS, parse_version, resolve
from tests.support.tools import apt_tools, kwok_stage_configs, needs, require_program, require_tool, tool_path, tools_dir
from tests.tools.build import BuildError, Recipe, find_recipe, load_recipes

RECIPES = load_recipes()
KUBERNETES_BINARIES = ("kubeadm", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
ETCD_BINARIES = ("etcd", "etcdctl", "etcdutl")


def _assert_covered(binary: str, version: str) -> Recipe:
    recipe = find_recipe(RECIPES, binary, version)  # LookupError: not covered
    if recipe.substitute is not None:
        assert recipe.reason and recipe.reason.strip(), f"{binary} {version}: substitute without a reason"
        # The nearest served *patch*: never another minor.
        assert parse_version(recipe.substitute)[:2] == parse_version(version)[:2], recipe
    return recipe


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_recipe_builds_every_channels_kubernetes(channel: str) -> None:
    release = resolve(channel)
    for binary in KUBERNETES_BINARIES:
        recipe = _assert_covered(binary, release.version)
        assert recipe.tool == "kubernetes"


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_recipe_builds_every_channels_etcd(channel: str) -> None:
    release = resolve(channel)
    for binary in ETCD_BINARIES:
        recipe = _assert_covered(binary, release.etcd_version)
        assert recipe.tool == "etcd"


def test_tool_path_defaults_to_the_stable_channel() -> None:
    stable = resolve("stable")
    kubeadm_recipe = find_recipe(RECIPES, "kubeadm", stable.version)
    assert kubeadm_recipe.version == stable.version
    assert tool_path("kubeadm") == tools_dir() / "kubernetes" / kubeadm_recipe.built_version / "bin" / "kubeadm"
    etcd_recipe = find_recipe(RECIPES, "etcd", stable.etcd_version)
    assert tool_path("etcd") == tools_dir() / "etcd" / etcd_recipe.built_version / "bin" / "etcd"
    with pytest.raises(LookupError):
        tool_path("kubeadm", "1.2.3")


def test_recipe_file_refuses_a_substitute_without_a_reason(tmp_path: Path) -> None:
    bad = tmp_path / "versions.toml"
    bad.write_text('schema = 1\n[[build]]\ntool = "etcd"\nversion = "3.6.11"\n'
                   'binaries = ["etcd"]\nsubstitute = "3.6.10"\n')
    with pytest.raises(BuildError, match="reason"):
        load_recipes(bad)


def test_a_missing_tool_skips_locally_and_fails_under_ci(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFCR_TOOLS_DIR", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="python3 dev.py tools"):
        require_tool("kubeadm")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="python3 dev.py tools"):
        require_tool("kubeadm")


def test_a_missing_debian_tool_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install cloud-init"):
        require_program("cloud-init")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI: a real tool is missing.*shellcheck"):
        needs("shellcheck")(lambda: None)()
    with pytest.raises(LookupError, match="dev.APT_TOOLS"):
        require_program("xmllint")


def _path_without(tmp_path: Path, *commands: str) -> str:
    """A PATH with every program of the current one but ``commands``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = bin_dir / entry.name
            if entry.name not in commands and not target.exists() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    return str(bin_dir)


@pytest.mark.parametrize("command", ["cloud-init", "curl", "shellcheck"])
def test_ci_fails_when_a_validator_is_removed_from_the_machine(command: str, tmp_path: Path) -> None:
    """The real thing: the tests that run ``command`` in a pytest of their own, on a machine
    without it: under CI=true the run fails naming it; outside CI the same tests skip."""
    assert command in apt_tools(), "every program the tests run is installed by dev.py"
    if shutil.which(command) is None:
        require_program(command)  # skips here, fails under CI
    users = {"cloud-init": "tests/test_node_userdata.py::test_cloud_init_schema_check_can_fail",
             "shellcheck": "tests/test_node_userdata.py::test_shellcheck_can_fail",
             "curl": "tests/test_node_userdata.py::test_aws_provider_id_fails_without_imds"}
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PATH": _path_without(tmp_path, command)}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", users[command]]
    under_ci = subprocess.run(args, cwd=root, env={**env, "CI": "true"}, capture_output=True, text=True)
    assert under_ci.returncode == 1, under_ci.stdout[-2000:]
    assert "CI: a real tool is missing" in under_ci.stdout and command in under_ci.stdout
    env.pop("CI", None)
    local = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout[-2000:]
    with_it = subprocess.run(args, cwd=root, env={**os.environ, "CI": "true"}, capture_output=True, text=True)
    assert with_it.returncode == 0 and "1 passed" in with_it.stdout, with_it.stdout[-2000:]


def _reported_version(binary: str, path: Path) -> str:
    """What ``binary`` says its version is (the version text, without a leading ``v``)."""
    cmd: list[str | Path]
    if binary == "kubectl":
        cmd = [path, "version", "--client", "-o", "json"]
    elif binary == "kubeadm":
        cmd = [path, "version", "-o", "short"]
    elif binary in ("etcdctl", "etcdutl"):
        cmd = [path, "version"]
    else:
        cmd = [path, "--version"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    first = out.strip().splitlines()[0] if out.strip() else ""
    if binary == "kubectl":
        return str(json.loads(out)["clientVersion"]["gitVersion"]).removeprefix("v")
    if binary == "kubeadm":
        return first.removeprefix("v")
    if binary.startswith("kube-"):
        assert first.startswith("Kubernetes v"), first
        return first.removeprefix("Kubernetes v")
    if binary == "etcd":
        assert first.startswith("etcd Version: "), first
        return first.removeprefix("etcd Version: ")
    if binary in ("etcdctl", "etcdutl"):
        assert first.startswith(f"{binary} version: "), first
        return first.removeprefix(f"{binary} version: ")
    assert binary == "kwok" and first.startswith("kwok version v"), first
    return first.split()[2].removeprefix("v")


@pytest.mark.parametrize(("binary", "version"), [
    pytest.param(b, r.version, id=f"{b}-{r.version}") for r in RECIPES for b in r.binaries])
def test_built_binary_reports_its_recipes_version(binary: str, version: str) -> None:
    recipe = find_recipe(RECIPES, binary, version)
    path = require_tool(binary, version)
    assert _reported_version(binary, path) == recipe.built_version


def test_kwok_has_its_node_and_pod_stage_configs() -> None:
    require_tool("kwok")
    configs = kwok_stage_configs()
    assert {"node-initialize.yaml", "pod-ready.yaml"} <= {p.name for p in configs}
    for config in configs:
        assert "\nkind: Stage\n" in config.read_text(), config
