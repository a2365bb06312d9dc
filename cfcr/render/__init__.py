"""The offline render: the program ``pulumi up`` runs, under Pulumi's mock runtime, written to files."""

from cfcr.render.mocks import RecordedResource, RecordingMonitor, is_secret, unwrap
from cfcr.render.program_dir import render_program
from cfcr.render.render import RenderResult, render_stack, stack_config_strings
from cfcr.render.runtime import run_program

__all__ = [
    "RecordedResource",
    "RecordingMonitor",
    "RenderResult",
    "is_secret",
    "render_program",
    "render_stack",
    "run_program",
    "stack_config_strings",
    "unwrap",
]
