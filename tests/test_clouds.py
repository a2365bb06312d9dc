"""The cloud contract (cfcr/clouds.py): every registered cloud package implements it, the program
asks the registry and names no cloud, and the clouds the config, the channels and the registry
know are the same."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path
from typing import get_args

import pytest

from cfcr import clouds
from cfcr.channels.model import CLOUD_NAMES
from cfcr.addons.cloud import CloudAddonProfile
from cfcr.config.schema import Cloud
from cfcr.node.context import UserDataLimit

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_MEMBERS = ("name", "user_data_limit", "etcd_disk_device", "addon_profile", "exports", "node_hook",
                    "restore_commands", "build")


def test_the_config_the_channels_and_the_registry_know_the_same_clouds() -> None:
    assert set(get_args(Cloud)) == set(clouds.CLOUD_PACKAGES) == set(CLOUD_NAMES)


@pytest.mark.parametrize("cloud", sorted(clouds.CLOUD_PACKAGES))
def test_every_cloud_package_implements_the_contract(cloud: str) -> None:
    package = clouds.package(cloud)
    for member in CONTRACT_MEMBERS:
        assert hasattr(package, member), f"cfcr.{cloud}.contract.CLOUD lacks {member}"
    assert package.name == cloud
    assert isinstance(package.user_data_limit, UserDataLimit) and package.user_data_limit.max_bytes > 0
    assert isinstance(package.addon_profile, CloudAddonProfile)
    assert list(package.exports) and len(set(package.exports)) == len(package.exports)
    assert "adminKubeconfig" in package.exports and "apiServerUrl" in package.exports
    # the package's layout: one file per part of the contract (docs/clouds.md)
    for part in ("__init__.py", "contract.py", "node_hook.py", "addon_profile.py"):
        assert (ROOT / "cfcr" / cloud / part).is_file(), f"cfcr/{cloud}/{part}"


@pytest.mark.parametrize("cloud", sorted(clouds.CLOUD_PACKAGES))
def test_a_node_hook_carries_its_clouds_user_data_limit(cloud: str) -> None:
    from cfcr.config import load_spec

    spec = load_spec({"cloud": cloud, "region": {"aws": "us-east-1", "gcp": "europe-west4", "azure": "westeurope"}[cloud]},
                     "dev")
    package = clouds.package(cloud)
    assert package.node_hook(spec).user_data_limit == package.user_data_limit


def test_the_user_data_limits_are_the_clouds_documented_ones() -> None:
    assert clouds.user_data_limit("aws") == UserDataLimit(16384, gzip=True)
    assert clouds.user_data_limit("azure") == UserDataLimit(65535, gzip=True)
    assert clouds.user_data_limit("gcp") == UserDataLimit(262144, gzip=False)


def test_an_unknown_cloud_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown cloud 'openstack'; known: aws, azure, gcp"):
        clouds.package("openstack")


def test_the_program_names_no_cloud() -> None:
    """cfcr/program.py reads the spec, asks the registry, builds the addons and exports: no cloud
    name in its code (strings or identifiers), and no import of a cloud package."""
    source = (ROOT / "cfcr" / "program.py").read_text()
    tree = ast.parse(source)
    names = set(clouds.CLOUD_PACKAGES)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
            found.append(f"string {node.value!r} on line {node.lineno}")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for module in modules:
                if any(module == f"cfcr.{n}" or module.startswith(f"cfcr.{n}.") for n in names):
                    found.append(f"import of {module} on line {node.lineno}")
        if isinstance(node, ast.Name) and any(node.id.lower().startswith(n) for n in names):
            found.append(f"name {node.id} on line {node.lineno}")
        if isinstance(node, ast.FunctionDef) and any(n in node.name for n in names):
            found.append(f"function {node.name} on line {node.lineno}")
    assert not found, found


def test_contract_protocol_and_table_agree() -> None:
    """The module docstring's table and the Protocol list the same members."""
    members = {name for name, _ in inspect.getmembers(clouds.CloudPackage) if not name.startswith("_")}
    assert members == set(CONTRACT_MEMBERS)
    doc = clouds.__doc__ or ""
    for member in CONTRACT_MEMBERS:
        assert f"``{member}" in doc, member


def test_built_cluster_is_what_the_program_reads() -> None:
    fields = {f.name for f in dataclasses.fields(clouds.BuiltCluster)}
    assert {"bootstrap", "exports", "addons"} <= fields


@pytest.mark.parametrize("stack", ["aws-stable", "gcp-stable"])
def test_a_render_exports_the_common_outputs_then_the_clouds_own(stack: str) -> None:
    from cfcr.config import read_stack_config
    from cfcr.render import render_stack

    raw = read_stack_config(stack)
    result = render_stack(stack, None, config=raw)
    package = clouds.package(str(raw.get("cloud", raw.get("cfcr:cloud"))))
    common = ["kubernetesVersion", "caBundle", "controlPlaneMembers", "secretReaders"]
    assert list(result.exports) == common + [e for e in package.exports if e in result.exports]
    assert set(result.exports) - set(common) <= set(package.exports)
    assert "adminKubeconfig" in result.exports and "apiServerUrl" in result.exports

