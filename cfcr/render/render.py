"""``python -m cfcr render``: run the real program for a stack offline and write what it builds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfcr import clouds
from cfcr.config import load_spec, read_stack_config
from cfcr.render.mocks import RecordedResource
from cfcr.render.runtime import run_program
from cfcr.render.writer import write_render

PROJECT = "cfcr"


@dataclass(frozen=True)
class RenderResult:
    """What one offline render produced."""

    stack: str
    resources: list[RecordedResource]
    user_data: dict[str, bytes]
    manifests: dict[str, Any]
    exports: dict[str, Any]
    files: list[Path]


def stack_config_strings(config: dict[str, Any]) -> dict[str, str]:
    """Stack-file config as the Pulumi CLI hands it to a program: strings, objects as JSON."""
    out: dict[str, str] = {}
    for key, value in config.items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        out[full] = value if isinstance(value, str) else json.dumps(value)
    return out


def render_stack(
    stack: str,
    out_dir: Path | None,
    *,
    show_secrets: bool = False,
    project_dir: Path | None = None,
    config: dict[str, Any] | None = None,
) -> RenderResult:
    """Render ``stacks/Pulumi.<stack>.yaml`` (or ``config``) offline; write to ``out_dir`` if given.

    The config is validated first, so bad input fails before any resource is created.
    """
    from cfcr import program

    raw = config if config is not None else read_stack_config(stack, project_dir)
    spec = load_spec(raw, stack)  # fail fast, before the runtime starts
    clouds.require_sdk(spec.cloud, stack)  # one line naming the extra, not an ImportError in the runtime
    monitor, result, resolved = run_program(
        program.main,
        project=PROJECT,
        stack=stack,
        config=stack_config_strings(raw),
        outputs=lambda r: {
            **{f"user-data:{role}": data for role, data in r.user_data.items()},
            **{f"export:{name}": value for name, value in r.exports.items()},
        },
    )
    user_data = {k.split(":", 1)[1]: _as_bytes(v[0]) for k, v in resolved.items() if k.startswith("user-data:")}
    exports = {
        k.split(":", 1)[1]: ("[secret]" if secret and not show_secrets else value)
        for k, (value, secret) in resolved.items()
        if k.startswith("export:")
    }
    files = write_render(out_dir, monitor.recorded, user_data, result.manifests, show_secrets,
                         spec=spec) if out_dir else []
    return RenderResult(stack, monitor.recorded, user_data, result.manifests, exports, files)


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
