"""Generated documents stay in step with the schema."""

from __future__ import annotations

from pathlib import Path

import yaml

from cfcr.config.docs import BEGIN, END, config_reference, pulumi_yaml, rows
from cfcr.config.schema import ClusterSpec

ROOT = Path(__file__).resolve().parents[1]


def test_readme_config_reference_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    assert readme[start:end] + "\n" == config_reference(), "run: python -m cfcr docs > section of README.md"


def test_every_key_has_a_description() -> None:
    missing = [key for key, _, _, description in rows() if not description]
    assert missing == []


def test_reference_lists_every_top_level_key() -> None:
    keys = {key for key, *_ in rows()}
    assert {f.alias for f in ClusterSpec.model_fields.values()} <= keys


def test_pulumi_yaml_is_generated_from_the_schema() -> None:
    assert (ROOT / "Pulumi.yaml").read_text() == pulumi_yaml()
    project = yaml.safe_load(pulumi_yaml())
    assert project["stackConfigDir"] == "stacks"
    assert project["runtime"]["name"] == "python"
    for key, declaration in project["config"].items():
        assert declaration["type"] in {"string", "boolean", "integer", "array"}, key
        assert declaration["description"], key
    assert {"cloud", "region", "cni"} <= set(project["config"])
