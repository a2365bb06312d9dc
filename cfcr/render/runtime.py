"""Run a Pulumi program function to completion under the recording mock runtime."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pulumi
from pulumi.runtime import settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from cfcr.render.mocks import RecordingMonitor, install

T = TypeVar("T")


def run_program(
    program: Callable[[], T],
    *,
    project: str,
    stack: str,
    config: dict[str, str] | None = None,
    outputs: Callable[[T], dict[str, Any]] | None = None,
) -> tuple[RecordingMonitor, T, dict[str, Any]]:
    """Install a fresh recording mock runtime and run ``program`` in it, as ``pulumi up`` would.

    ``outputs`` picks Outputs from the program's result to resolve; each comes back as
    ``(value, is_secret)``.
    """
    monitor = install(project, stack, config)
    result, resolved = run_installed(monitor, program, outputs=outputs)
    return monitor, result, resolved


def run_installed(
    monitor: RecordingMonitor,
    program: Callable[[], T],
    *,
    outputs: Callable[[T], dict[str, Any]] | None = None,
) -> tuple[T, dict[str, Any]]:
    """Run ``program`` under ``monitor``, installed before (see :func:`~cfcr.render.mocks.install`).

    Waits for every registration to complete, then puts this run's records in canonical
    order. Several runs may share one installation; the monitor keeps recording across them.
    """
    start = len(monitor.recorded)
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    holder: dict[str, Any] = {}

    async def main() -> None:
        result = program()
        holder["result"] = result
        resolved: dict[str, Any] = {}
        for key, value in (outputs(result) if outputs else {}).items():
            out = pulumi.Output.from_input(value)
            resolved[key] = (await out.future(), await out.is_secret())
        holder["outputs"] = resolved

    try:
        _sync_await(run_pulumi_func(lambda: _sync_await(main())))
    finally:
        monitor.put_in_order(start)
    return holder["result"], holder.get("outputs", {})


def resolve(output: pulumi.Output[T]) -> tuple[T, bool]:
    """``(value, is_secret)`` of an Output once its program has run; ``ValueError`` if unknown or None."""
    value = _sync_await(output.future())
    if value is None:
        raise ValueError("the output is unknown (preview) or None")
    secret = bool(_sync_await(output.is_secret()))
    return value, secret
