"""The one error type the config layer raises, and the problems it carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAMESPACE = "cfcr"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the stack config."""

    key: str
    """Dotted config key, e.g. ``cfcr:controlPlane.count`` or ``cfcr:nodePools[1].minSize``."""
    value: Any
    """The value found there (``None`` when the key was missing)."""
    allowed: str
    """What would be accepted instead, in words."""

    def __str__(self) -> str:
        return f"{self.key}: got {_show(self.value)}; {self.allowed}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class ConfigError(ValueError):
    """Raised before any resource is created when the stack config is invalid.

    ``problems`` lists each fault; a config with one fault yields exactly one problem.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = [str(p) for p in problems]
        if len(lines) == 1:
            message = f"invalid stack config: {lines[0]}"
        else:
            message = "invalid stack config:\n" + "\n".join(f"  - {line}" for line in lines)
        super().__init__(message)


class InputError(ValueError):
    """A file or option the user gave that cannot be used (no such stack, a stack file that is
    not YAML, a project directory that does not exist): one line naming it, what was found
    there and what is allowed. Raised before anything is rendered."""
