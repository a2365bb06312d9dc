"""Generated documents stay in step with the schema, and the docs' relative links resolve."""

from __future__ import annotations

import re
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


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces as ``-``."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    lines = path.read_text().splitlines()
    fenced = False
    out = set()
    for line in lines:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            out.add(_anchor(line.lstrip("#")))
    return out


def test_relative_links_in_the_docs_resolve() -> None:
    """Every relative link of README.md and docs/*.md names a file that exists, and an anchor
    that one of its headings gives."""
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in LINK.findall(doc.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = (doc.parent / file).resolve() if file else doc
            if not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []
