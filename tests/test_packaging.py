"""Packaging: one extra per cloud SDK (pyproject.toml), and cfcr imports a cloud's SDK only for
a stack of that cloud, so ``pip install 'cfcr[aws]'`` renders an AWS stack and a GCP stack says in
one line which extra it needs. uv.lock is in step with pyproject.toml.

The installs are simulated: a subprocess whose import system refuses the other clouds' SDKs
(and pulumi-policy), as an environment without them would."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from cfcr import clouds

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CLOUD_DIRS = {cloud: ROOT / "cfcr" / cloud for cloud in clouds.CLOUD_SDKS}

WITHOUT = """
import importlib.abc, runpy, sys
BLOCKED = set(sys.argv[1].split(","))
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Refuse())
sys.argv = ["cfcr", *sys.argv[2:]]
runpy.run_module("cfcr", run_name="__main__", alter_sys=True)
"""


def run_without(blocked: set[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m cfcr ARGS`` where the modules ``blocked`` cannot be imported."""
    return subprocess.run([sys.executable, "-c", WITHOUT, ",".join(sorted(blocked)), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def sdk(cloud: str) -> str:
    return clouds.CLOUD_SDKS[cloud][0]


def test_aws_stack_renders_without_the_other_clouds_sdks(tmp_path: Path) -> None:
    """What cfcr[aws] alone installs: the render of aws-stable imports neither pulumi_gcp,
    pulumi_azure_native nor pulumi_policy, at import time or later."""
    blocked = {sdk("gcp"), sdk("azure"), "pulumi_policy"}
    done = run_without(blocked, "render", "--stack", "aws-stable", "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("rendered stack aws-stable:"), done.stdout
    assert (tmp_path / "r" / "resources.json").is_file()


@pytest.mark.parametrize("cloud", ["gcp", "azure", "aws"])
def test_missing_cloud_sdk_is_one_line_naming_the_extra(cloud: str, tmp_path: Path) -> None:
    done = run_without({sdk(cloud)}, "render", "--stack", f"{cloud}-stable", "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr  # no traceback
    assert lines[0].startswith(f"cfcr: stack {cloud}-stable uses cloud {cloud}, whose SDK is not installed: "
                               f"install cfcr[{cloud}] ({clouds.CLOUD_SDKS[cloud][1]}"), lines[0]
    assert not (tmp_path / "r").exists()


def test_missing_cloud_sdk_found_late_is_the_same_error() -> None:
    """An SDK that fails to import inside the cloud package (not caught by the check before the
    render) still becomes the one-line error, through :func:`cfcr.clouds.package`."""
    code = ("import sys\nsys.modules['pulumi_gcp'] = None\nfrom cfcr import clouds\n"
            "try:\n    clouds.package('gcp', 'mine')\nexcept clouds.CloudSDKMissingError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("stack mine uses cloud gcp, whose SDK is not installed: install cfcr[gcp]")


# ----------------------------------------------------------------------------- extras vs imports


def imports_of(paths: list[Path]) -> dict[str, set[Path]]:
    """Top-level module -> the files importing it (absolute imports only)."""
    found: dict[str, set[Path]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path)
    return found


def third_party(found: dict[str, set[Path]]) -> dict[str, set[Path]]:
    return {m: fs for m, fs in found.items()
            if m not in sys.stdlib_module_names and m not in {"cfcr", "tests", "mutations", "dev", "__future__"}
            and not (ROOT / "tests" / f"{m}.py").exists()}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution_of(module: str) -> str:
    dists = importlib.metadata.packages_distributions().get(module)
    assert dists, f"{module}: no installed distribution provides it"
    return norm(dists[0])


def requirement_names(requirements: list[str]) -> set[str]:
    return {norm(Requirement(r).name) for r in requirements}


def with_dependencies(names: set[str]) -> set[str]:
    """``names`` and what they require, transitively (as installed)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for req in importlib.metadata.requires(name) or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(norm(r.name))
    return seen


CORE = requirement_names(PYPROJECT["project"]["dependencies"])
EXTRAS = {name: requirement_names(reqs) for name, reqs in PYPROJECT["project"]["optional-dependencies"].items()}


def test_each_cloud_sdk_is_its_extra_and_only_its_package_imports_it() -> None:
    cfcr_files = sorted((ROOT / "cfcr").rglob("*.py"))
    found = imports_of(cfcr_files)
    for cloud, (module, dist) in clouds.CLOUD_SDKS.items():
        assert EXTRAS[cloud] == {norm(dist)}, f"pyproject's extra {cloud!r} should be exactly {dist}"
        assert norm(dist) not in CORE, f"{dist} is a core dependency; it belongs to the extra {cloud!r} only"
        assert distribution_of(module) == norm(dist)
        importers = found.get(module, set())
        assert importers, f"nothing in cfcr/{cloud}/ imports {module}: drop the extra or fix CLOUD_SDKS"
        outside = sorted(str(p.relative_to(ROOT)) for p in importers if CLOUD_DIRS[cloud] not in p.parents)
        assert not outside, f"{module} imported outside cfcr/{cloud}/ (every stack would need cfcr[{cloud}]): {outside}"
    assert EXTRAS["all"] == {"cfcr"}
    assert set(Requirement(PYPROJECT["project"]["optional-dependencies"]["all"][0]).extras) == {
        *clouds.CLOUD_SDKS, "policy"}


def test_core_and_policy_imports_are_declared() -> None:
    """Every third-party module cfcr imports outside the cloud packages comes with the core
    dependencies, except pulumi_policy (the policy extra), imported only by cfcr/policy/."""
    files = [p for p in (ROOT / "cfcr").rglob("*.py") if not any(d in p.parents for d in CLOUD_DIRS.values())]
    core = with_dependencies(CORE)
    for module, importers in sorted(third_party(imports_of(files)).items()):
        dist = distribution_of(module)
        if dist == "pulumi-policy":
            assert EXTRAS["policy"] == {"pulumi-policy"}
            outside = [str(p.relative_to(ROOT)) for p in importers if ROOT / "cfcr" / "policy" not in p.parents]
            assert not outside, f"pulumi_policy imported outside cfcr/policy/ (needs cfcr[policy]): {outside}"
            continue
        assert dist in core, f"cfcr imports {module} ({dist}), not among the core dependencies: " \
                             f"{sorted(str(p.relative_to(ROOT)) for p in importers)}"


def test_test_imports_are_in_the_test_extra() -> None:
    """What the tests, mutations and benchmarks import is installed by ``.[all,test]`` (dev.py test)."""
    files = [p for d in ("tests", "mutations", "benchmarks") for p in (ROOT / d).rglob("*.py")]
    installed = with_dependencies(CORE | EXTRAS["test"] | {d for c in (*clouds.CLOUD_SDKS, "policy") for d in EXTRAS[c]})
    missing = {m: sorted(str(p.relative_to(ROOT)) for p in fs) for m, fs in third_party(imports_of(files)).items()
               if distribution_of(m) not in installed}
    assert not missing, f"imported by the tests, not installed by cfcr[all,test]: {missing}"


def test_uv_lock_is_in_step_with_pyproject() -> None:
    """uv.lock records pyproject's requirements; `uv sync --frozen` (dev.py) installs from it
    without checking, so a requirement changed without `uv lock` would go unnoticed."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (cfcr,) = [p for p in lock["package"] if p["name"] == "cfcr"]
    locked = {(norm(r["name"]), r.get("marker", ""), SpecifierSet(r.get("specifier", "")),
               tuple(sorted(r.get("extras", [])))) for r in cfcr["metadata"]["requires-dist"]}
    declared = set()
    for extra, reqs in [("", PYPROJECT["project"]["dependencies"]),
                        *PYPROJECT["project"]["optional-dependencies"].items()]:
        for text in reqs:
            r = Requirement(text)
            declared.add((norm(r.name), f"extra == '{extra}'" if extra else "", r.specifier,
                          tuple(sorted(r.extras))))
    assert declared == locked, "uv.lock is out of date: run `.venv-uv/bin/uv lock` and commit it"
    versions = {norm(p["name"]): p["version"] for p in lock["package"]}
    for name in CORE | {d for e in EXTRAS.values() for d in e} - {"cfcr"}:
        assert name in versions, f"{name} is not pinned in uv.lock"


def test_check_without_the_policy_extra_is_one_line() -> None:
    done = run_without({"pulumi_policy"}, "check", "--stack", "aws-stable", "--policy-pack", "policy")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr  # one line, no traceback
    assert done.stderr.startswith("cfcr: check runs the policy pack, whose SDK pulumi-policy is not installed: "
                                  "install cfcr[policy]")


def test_dev_render_installs_the_sdk_of_the_stack_cfcr_will_read() -> None:
    """`python3 dev.py render` installs the extra of the stack's cloud, for a stack name (this
    clone's stacks/, or --project-dir), a stack file's path, and nothing extra for a stack it
    cannot find or that names no cloud (cfcr then says what it looked for): the hint of
    CloudSDKMissingError works."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cfcr_dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    assert dev.stack_cloud("gcp-stable") == "gcp"
    assert dev.stack_cloud("azure-stable") == "azure"
    assert dev.stack_cloud(str(ROOT / "tests" / "stacks" / "Pulumi.insecure.yaml")) == "gcp"
    assert dev.stack_cloud("insecure") is None
    assert dev.stack_cloud("insecure", str(ROOT / "tests" / "stacks")) == "gcp"
    # a program's stack without cfcr:cloud (the example's): render's own extras only
    assert dev.stack_cloud("dev", str(ROOT / "examples" / "platform-program")) is None
    message = str(clouds.CloudSDKMissingError("gcp", "mine"))
    assert "python3 dev.py render --stack mine" in message and "--project-dir" in message
