"""``python -m cfcr render --program DIR``: run another Pulumi program offline and write what it builds.

The program is ``DIR/__main__.py`` (a Python Pulumi project, ``DIR/Pulumi.yaml``), run with
``DIR/Pulumi.<stack>.yaml``'s config under the same recording mock runtime as a cfcr stack
(:func:`cfcr.render.run_program`), and written in the same layout: ``resources.json`` and
``manifests/`` (``nodes/`` is cfcr's own program's user-data, which another program does not
hand back). Its ``pulumi.export`` calls are collected as the render's exports.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any

import pulumi
import yaml

from cfcr.config import ConfigError, Problem
from cfcr.render.render import RenderResult
from cfcr.render.runtime import run_program
from cfcr.render.writer import write_render


def program_config(program_dir: Path, stack: str) -> tuple[str, dict[str, str]]:
    """The project name of ``program_dir`` and its stack's config as the Pulumi CLI passes it
    (``ns:key`` -> string; bare keys in the project's namespace; objects as JSON)."""
    project_file = program_dir / "Pulumi.yaml"
    if not project_file.is_file():
        raise ConfigError([Problem("--program", str(program_dir), "no Pulumi.yaml there: give a Pulumi project directory")])
    project = (yaml.safe_load(project_file.read_text()) or {}).get("name")
    if not isinstance(project, str) or not project:
        raise ConfigError([Problem("name", project, f"{project_file} must name the project")])
    stack_file = program_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        found = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in program_dir.glob("Pulumi.*.yaml"))
        raise ConfigError([Problem("--stack", stack, f"no {stack_file.name} in {program_dir}; stacks there: "
                                                     f"{', '.join(found) or 'none'}")])
    raw = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
    config: dict[str, str] = {}
    for key, value in raw.items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            raise ConfigError([Problem(full, "secure: ...", "an encrypted value cannot be read offline; "
                                                            "give the render stack a plain placeholder")])
        config[full] = value if isinstance(value, str) else json.dumps(value)
    return project, config


def render_program(program_dir: Path, stack: str, out_dir: Path | None, *,
                   show_secrets: bool = False) -> RenderResult:
    """Run ``program_dir/__main__.py`` for ``stack`` offline; write to ``out_dir`` if given."""
    program_dir = program_dir.resolve()
    project, config = program_config(program_dir, stack)
    main = program_dir / "__main__.py"
    if not main.is_file():
        raise ConfigError([Problem("--program", str(program_dir), "no __main__.py there (a Python Pulumi program)")])
    exported: dict[str, Any] = {}

    def collect(name: str, value: Any) -> None:
        exported[name] = value

    def program() -> dict[str, Any]:
        runpy.run_path(str(main), run_name="__main__")
        return exported

    saved_export, saved_path = pulumi.export, list(sys.path)
    pulumi.export = collect  # the mock runtime has no root Stack to export on
    sys.path.insert(0, str(program_dir))
    try:
        monitor, _, resolved = run_program(program, project=project, stack=stack, config=config,
                                           outputs=lambda outs: dict(outs))
    finally:
        pulumi.export = saved_export
        sys.path[:] = saved_path
    exports = {name: ("[secret]" if secret and not show_secrets else value)
               for name, (value, secret) in resolved.items()}
    files = write_render(out_dir, monitor.recorded, {}, {}, show_secrets) if out_dir else []
    return RenderResult(stack, monitor.recorded, {}, {}, exports, files)
