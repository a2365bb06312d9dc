"""Where the tests find the real programs ``python3 dev.py tools`` builds.

The recipe file ``tests/tools/versions.toml`` says what is built for which pinned
version; the binaries live in ``${CFCR_TOOLS_DIR:-~/.cache/cfcr/tools}``::

    from tests.support.tools import require_tool, tool_path
    kubeadm = require_tool("kubeadm")             # the stable channel's Kubernetes version
    kubeadm_edge = require_tool("kubeadm", "1.37.2")
    etcd = require_tool("etcd")                   # the stable channel's etcd (3.6.16)

``require_tool`` skips the test when the binary is not built, naming the command that
builds it, except under ``CI=true``, where a missing real tool fails the test.
``require_program`` (and the decorator ``needs``) does the same for the Debian tools the
tests run (``cloud-init``, ``shellcheck``, ``curl``...), which ``dev.py`` installs: the one
list of them is ``dev.APT_TOOLS``.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cfcr.channels import resolve
from tests.tools.build import RECIPE_FILE, Recipe, find_recipe, load_recipes, stale_reason, tools_dir

__all__ = ["RECIPE_FILE", "default_version", "kwok_stage_configs", "kwok_stage_dir", "needs", "recipe_for",
           "require_program", "require_tool", "tool_path", "tools_dir"]

BUILD_COMMAND = "python3 dev.py tools"
_recipes = functools.cache(load_recipes)


def default_version(binary: str) -> str:
    """The version used when none is given: the stable channel's Kubernetes version for
    Kubernetes binaries, its etcd for etcd binaries, the only recipe's for the others."""
    tools = {r.tool for r in _recipes() if binary in r.binaries}
    stable = resolve("stable")
    if tools == {"kubernetes"}:
        return stable.version
    if tools == {"etcd"}:
        return stable.etcd_version
    versions = {r.version for r in _recipes() if binary in r.binaries}
    if len(versions) != 1:
        raise LookupError(f"{binary}: pass a version; {RECIPE_FILE.name} has {sorted(versions) or 'none'}")
    return versions.pop()


def recipe_for(binary: str, version: str | None = None) -> Recipe:
    """The ``versions.toml`` entry that provides ``binary`` at the pinned ``version``."""
    return find_recipe(_recipes(), binary, version or default_version(binary))


def tool_path(binary: str, version: str | None = None) -> Path:
    """Path of ``binary`` for the pinned ``version`` (built or not).

    ``version`` is the pinned version (e.g. a channel's Kubernetes version); when the
    recipe names a substitute, the path is the substitute's build. A binary or version
    the recipe does not know raises ``LookupError`` (a test bug, never a skip)."""
    return recipe_for(binary, version).binary(binary)


def require_tool(binary: str, version: str | None = None) -> Path:
    """``tool_path`` of a binary that is built and up to date with the recipe; otherwise
    ``pytest.skip`` saying how to build it, or ``pytest.fail`` when ``CI=true``."""
    recipe = recipe_for(binary, version)
    path = recipe.binary(binary)
    why = stale_reason(recipe)
    if why is None and os.access(path, os.X_OK):
        return path
    _missing(f"{binary} {recipe.version} ({path}): {why or 'not executable'}; build it with `{BUILD_COMMAND}`")
    raise AssertionError("unreachable")


def _missing(message: str) -> None:
    """Skip the test saying why, or fail it under ``CI=true``."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI: a real tool is missing, which fails CI rather than skipping: {message}",
                    pytrace=False)
    pytest.skip(message)


def apt_tools() -> dict[str, str]:
    """The Debian tools the tests run, command -> package (``dev.APT_TOOLS``, which
    ``dev.py test`` installs)."""
    from dev import APT_TOOLS

    return dict(APT_TOOLS)


def require_program(command: str) -> str:
    """The path of ``command``, a Debian tool of :func:`apt_tools`; when it is not on PATH,
    skip saying how to install it, or fail under ``CI=true``. A command that is not in the
    list raises ``LookupError`` (add it to ``dev.APT_TOOLS`` so CI installs it)."""
    package = apt_tools().get(command)
    if package is None:
        raise LookupError(f"{command}: not in dev.APT_TOOLS, so CI would not install it; add it there")
    path = shutil.which(command)
    if path is None:
        _missing(f"{command} is not installed (apt-get install {package}, or `python3 dev.py test` installs it)")
        raise AssertionError("unreachable")
    return path


F = TypeVar("F", bound=Callable[..., Any])


def needs(*commands: str) -> Callable[[F], F]:
    """Decorate a test that runs ``commands``: :func:`require_program` each before it runs."""
    def wrap(test: F) -> F:
        @functools.wraps(test)
        def run(*args: Any, **kwargs: Any) -> Any:
            for command in commands:
                require_program(command)
            return test(*args, **kwargs)
        return run  # type: ignore[return-value]
    return wrap


def kwok_stage_dir(version: str | None = None) -> Path:
    """Directory of kwok's Stage configs (pass each file to ``kwok --config``)."""
    return recipe_for("kwok", version).directory() / "stages"


def kwok_stage_configs(version: str | None = None) -> list[Path]:
    """kwok's Stage config files (node and pod ``fast`` stages), after ``require_tool("kwok")``."""
    return sorted(kwok_stage_dir(version).glob("*.yaml"))
