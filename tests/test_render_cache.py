"""The test session's render cache (tests/support/render_cache.py): one render per stack,
configuration, ``show_secrets`` and epoch; every caller gets its own copy; ``fresh_render`` and
a configuration that cannot be read go to the product's own function. The product's render is
replaced by a counting stand-in here: what is judged is the cache, not the render."""

from __future__ import annotations

import os
from pathlib import Path
from unittest.mock import patch as _patch
from typing import Any

import pytest

import cfcr.render
import cfcr.render.render
from cfcr.render.providers import EPOCH_ENV
from cfcr.render.render import RenderResult
from tests.support import render_cache

CONFIG = {"cfcr:cloud": "aws", "cfcr:region": "us-east-1"}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool, Any]]:
    """Every call that reaches the (stand-in) product render, on an empty cache."""
    seen: list[tuple[str, bool, Any]] = []

    def product(stack: str, out_dir: Path | None, *, show_secrets: bool = False, project_dir: Path | None = None,
                config: dict[str, Any] | None = None) -> RenderResult:
        seen.append((stack, show_secrets, config))
        return RenderResult(stack, [], {"control-plane-0": b"#cloud-config\n"}, {"addons/a.yaml": {"kind": "ConfigMap", "data": {"n": "1"}}},
                            {"name": stack}, [])

    monkeypatch.setattr(render_cache, "_original", product)
    monkeypatch.setattr(render_cache, "_cache", {})
    monkeypatch.delenv(EPOCH_ENV, raising=False)
    return seen


def test_the_session_renders_through_the_cache() -> None:
    if os.environ.get("CFCR_RENDER_CACHE") == "0":
        pytest.skip("CFCR_RENDER_CACHE=0: the cache is off for this run")
    assert cfcr.render.render_stack is render_cache.cached_render_stack
    assert cfcr.render.render.render_stack is render_cache.cached_render_stack


def test_one_render_per_key_and_a_copy_for_every_caller(calls: list[tuple[str, bool, Any]]) -> None:
    first = render_cache.cached_render_stack("s", None, config=CONFIG)
    first.manifests["addons/a.yaml"]["data"]["n"] = "changed by a test"
    first.exports["name"] = "changed"
    again = render_cache.cached_render_stack("s", None, config=dict(reversed(list(CONFIG.items()))))
    assert len(calls) == 1, "the same stack and configuration (in any key order) render once"
    assert again.manifests["addons/a.yaml"]["data"]["n"] == "1" and again.exports == {"name": "s"}
    render_cache.cached_render_stack("s", None, config=CONFIG, show_secrets=True)
    render_cache.cached_render_stack("s", None, config={**CONFIG, "cfcr:region": "eu-west-1"})
    render_cache.cached_render_stack("t", None, config=CONFIG)
    os.environ[EPOCH_ENV] = "2026-01-01"  # the fixture's monkeypatch restores it
    render_cache.cached_render_stack("s", None, config=CONFIG)
    assert [(stack, secrets) for stack, secrets, _ in calls] == [("s", False), ("s", True), ("s", False), ("t", False),
                                                                 ("s", False)]


def test_an_out_dir_is_written_on_every_call(calls: list[tuple[str, bool, Any]], tmp_path: Path) -> None:
    for out in (tmp_path / "one", tmp_path / "two"):
        result = render_cache.cached_render_stack("s", out, config=CONFIG)
        assert (out / "nodes" / "control-plane-0" / "user-data").read_bytes() == b"#cloud-config\n"
        assert (out / "manifests" / "addons" / "a.yaml").is_file()
        assert set(result.files) == {p for p in out.rglob("*") if p.is_file()}
    assert len(calls) == 1
    assert calls[0][2] == CONFIG, "the product renders without out_dir; the cache writes"


def test_a_stack_file_that_cannot_be_read_goes_to_the_product(calls: list[tuple[str, bool, Any]],
                                                             tmp_path: Path) -> None:
    for _ in range(2):
        render_cache.cached_render_stack("missing", None, project_dir=tmp_path)
    assert [stack for stack, _, _ in calls] == ["missing", "missing"], "nothing cached: the product's error each time"


@pytest.mark.fresh_render
def test_fresh_render_marks_a_test_whose_renders_all_run(calls: list[tuple[str, bool, Any]]) -> None:
    if os.environ.get("CFCR_RENDER_CACHE") == "0":
        pytest.skip("CFCR_RENDER_CACHE=0: the cache's hooks are not registered")
    render_cache.cached_render_stack("s", None, config=CONFIG)
    render_cache.cached_render_stack("s", None, config=CONFIG)
    assert len(calls) == 2


def test_a_render_under_a_spy_on_the_monitor_runs_afresh_and_is_not_kept(calls: list[tuple[str, bool, Any]],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from cfcr.render.mocks import RecordingMonitor

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RecordingMonitor, "RegisterResource", lambda self, request: None)
        render_cache.cached_render_stack("s", None, config=CONFIG)
    with render_cache.afresh():
        render_cache.cached_render_stack("s", None, config=CONFIG)
    from cfcr.render import providers

    with _patch.dict(providers.PROVIDERS, {"tls:index/locallySignedCert:LocallySignedCert": lambda i, u: {}}):
        render_cache.cached_render_stack("s", None, config=CONFIG)  # a stand-in provider swapped: afresh
    assert len(calls) == 3 and not render_cache._cache
    render_cache.cached_render_stack("s", None, config=CONFIG)
    render_cache.cached_render_stack("s", None, config=CONFIG)
    assert len(calls) == 4
