"""One offline render per (stack, configuration, ``show_secrets``) per test process.

A full render of a stack under the mock runtime takes 3-10 s, and the same stacks are rendered by
many modules: their fixtures, the policy runner, the flow check, the CLI's commands. For the whole
test session, :func:`install` (tests/conftest.py calls it) puts :func:`cached_render_stack` where
:func:`cfcr.render.render_stack` was, so every path reaches it. The first call with a given stack,
configuration (the stack file's, read as the product reads it, or the ``config`` passed),
``show_secrets`` and certificate epoch (``CFCR_RENDER_EPOCH``: the golden render pins it) renders with the product's own function; later calls get a deep copy of that
result (a test may change what it is given: 0.06 s against a 3-10 s render), and an ``out_dir``
is written each time by the product's own writer.

What stays uncached: a call whose configuration cannot be read (the product's own error comes
from the product's own function), a render that raises (nothing is stored), a render while the
mock runtime's monitor (:class:`~cfcr.render.mocks.RecordingMonitor`) or one of its stand-in
providers (``cfcr.render.providers.PROVIDERS``) is patched (a test spying
on the registrations sees them all, and a render under a spy is never kept), every render inside
:func:`afresh` (a product function patched before the render) and in a test marked
``fresh_render`` (one that judges the renderer itself: determinism). The cache lives in this process only: a mutation run
(mutations/run.py) or an xdist worker starts empty.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cfcr.render
import cfcr.render.render as product
from cfcr.config import load_spec, read_stack_config
from cfcr.render.mocks import RecordingMonitor
from cfcr.render.providers import EPOCH_ENV, PROVIDERS
from cfcr.render.render import RenderResult
from cfcr.render.writer import write_render

_original = product.render_stack
_cache: dict[tuple[str, str, bool, str | None], RenderResult] = {}
_fresh: list[bool] = [False]
_afresh: list[int] = [0]
_MONITOR = dict(vars(RecordingMonitor))
_PROVIDERS = dict(PROVIDERS)
"""The mock runtime's stand-in providers as the product has them: a test that swaps one (the CA
rotation drill issues its leaves at the time of each `pulumi up`) renders afresh."""
"""The monitor class as the product defines it: a test that patches it renders afresh."""
stats = {"renders": 0, "hits": 0}
"""How many renders this process ran through the cache and how many it served from it."""


def cached_render_stack(
    stack: str,
    out_dir: Path | None,
    *,
    show_secrets: bool = False,
    project_dir: Path | None = None,
    config: dict[str, Any] | None = None,
) -> RenderResult:
    """:func:`cfcr.render.render_stack`, served from this process's renders where it can be."""
    if _fresh[0] or _afresh[0] or dict(vars(RecordingMonitor)) != _MONITOR or dict(PROVIDERS) != _PROVIDERS:
        return _original(stack, out_dir, show_secrets=show_secrets, project_dir=project_dir, config=config)
    try:
        raw = config if config is not None else read_stack_config(stack, project_dir)
        key = (stack, json.dumps(raw, sort_keys=True), show_secrets, os.environ.get(EPOCH_ENV))
    except Exception:  # the product's own error, from the product's own function
        return _original(stack, out_dir, show_secrets=show_secrets, project_dir=project_dir, config=config)
    if key not in _cache:
        _cache[key] = _original(stack, None, show_secrets=show_secrets, config=raw)
        stats["renders"] += 1
    else:
        stats["hits"] += 1
    result = copy.deepcopy(_cache[key])
    if out_dir is None:
        return result
    files = write_render(out_dir, result.resources, result.user_data, result.manifests, show_secrets,
                         spec=load_spec(raw, stack))
    return dataclasses.replace(result, files=files)


@contextlib.contextmanager
def afresh() -> Iterator[None]:
    """Every render inside runs afresh and is not kept: for a render under a patched product."""
    _afresh[0] += 1
    try:
        yield
    finally:
        _afresh[0] -= 1


def install() -> None:
    """Serve every ``render_stack`` of this process from the cache (module attributes and the package's)."""
    product.render_stack = cached_render_stack
    cfcr.render.render_stack = cached_render_stack  # type: ignore[attr-defined]


def pytest_runtest_setup(item: pytest.Item) -> None:
    _fresh[0] = item.get_closest_marker("fresh_render") is not None


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _fresh[0] = False
