"""The architecture picture ``cfcr render`` writes: architecture.svg (valid XML, naming every member
and pool) and architecture.dot (one edge per flow of the render), from one render per stack."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cfcr.cli import _render_picture_note
from cfcr.config import load_spec, read_stack_config
from cfcr.flows.check import facts_of, read_render_dir
from cfcr.flows.model import Flow, cluster_flows
from cfcr.render import render_stack
from cfcr.review import picture

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=["aws-stable", "azure-edge"])
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, list[Flow]]:
    stack = request.param
    out = tmp_path_factory.mktemp(stack)
    render_stack(stack, out)
    rows, user_data = read_render_dir(out)
    flows = cluster_flows(facts_of(load_spec(read_stack_config(stack), stack), rows, user_data))
    return stack, out, flows


def _texts(svg: Path) -> str:
    return " ".join(t for t in ET.parse(svg).getroot().itertext())


def test_the_svg_is_xml_and_names_every_member_and_pool(rendered: tuple[str, Path, list[Flow]]) -> None:
    stack, out, _ = rendered
    spec = load_spec(read_stack_config(stack), stack)
    text = _texts(out / "architecture.svg")
    for i in range(spec.control_plane.count):
        assert f"control-plane-{i}" in text and f"cfcr-{stack}-cp-{i}" in text
    for pool in spec.node_pools:
        assert f"pool {pool.name}" in text
    assert "secret store" in text and "API LB" in text and "addons" in text


def test_the_dot_has_an_edge_per_flow(rendered: tuple[str, Path, list[Flow]]) -> None:
    _, out, flows = rendered
    dot = (out / "architecture.dot").read_text()
    edges = re.findall(r'\bid="?flow-([A-Za-z0-9_-]+)', dot)
    assert sorted(edges) == sorted(re.sub(r"[^A-Za-z0-9_-]+", "_", f.id) for f in flows)
    assert len(flows) > 20
    assert re.search(r'"member-0" -> "member-[01]" \[[^\]]*flow-etcd-peer', dot), "etcd peers: between members"
    members = len(re.findall(r'^\s*"?member-\d+"? \[', dot, flags=re.M))
    if members > 2:  # the rest of the members' ring carries the same ports: every member is in it
        assert re.search(rf'"member-{members - 1}" -> "member-0" \[[^\]]*2380', dot), dot


def test_without_dot_only_the_dot_file_is_written_and_render_says_so(
        rendered: tuple[str, Path, list[Flow]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    stack, out, _ = rendered
    rows, user_data = read_render_dir(out)
    monkeypatch.setattr(picture.shutil, "which", lambda name: None)
    files = picture.write_picture(tmp_path, load_spec(read_stack_config(stack), stack), rows, user_data)
    assert [f.name for f in files] == ["architecture.dot"] and not (tmp_path / "architecture.svg").exists()
    _render_picture_note(files)
    assert "architecture.svg needs Graphviz's dot (apt-get install graphviz)" in capsys.readouterr().out


def test_the_committed_picture_of_the_default_stack_is_current_in_what_it_names() -> None:
    committed = ROOT / "docs" / "architecture-aws-stable.svg"
    text = _texts(committed)
    assert all(f"cfcr-aws-stable-cp-{i}" in text for i in range(3)) and "pool general" in text
    assert "docs/architecture-aws-stable.svg" in (ROOT / "README.md").read_text()
