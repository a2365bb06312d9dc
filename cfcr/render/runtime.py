"""Run a Pulumi program function to completion under the recording mock runtime."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pulumi
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
    """Run ``program`` as ``pulumi up`` would, with mocks; wait for every registration.

    ``outputs`` picks Outputs from the program's result to resolve; their plain values are
    returned (secretness is reported through :func:`output_is_secret`).
    """
    monitor = install(project, stack, config)
    holder: dict[str, Any] = {}

    async def main() -> None:
        result = program()
        holder["result"] = result
        resolved: dict[str, Any] = {}
        for key, value in (outputs(result) if outputs else {}).items():
            out = pulumi.Output.from_input(value)
            resolved[key] = (await out.future(), await out.is_secret())
        holder["outputs"] = resolved

    _sync_await(run_pulumi_func(lambda: _sync_await(main())))
    return monitor, holder["result"], holder.get("outputs", {})
