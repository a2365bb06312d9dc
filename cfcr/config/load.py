"""Stack config in, one validated ClusterSpec out; one ConfigError otherwise.

Three doors lead here: the Pulumi runtime's config (``pulumi up``), a stack file on disk
(``python -m cfcr render``) and a plain mapping (tests, other programs).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from cfcr.config.checks import check
from cfcr.config.errors import NAMESPACE, ConfigError, InputError, Problem
from cfcr.config.regions import provider_region_problem
from cfcr.config.schema import ClusterSpec
from cfcr.util import inner_model

PREFIX = NAMESPACE + ":"


def load_spec(config: Mapping[str, Any], stack: str) -> ClusterSpec:
    """Validate raw config (keys ``cfcr:<key>`` or bare ``<key>``) for ``stack``.

    Keys of other namespaces (``aws:region``, ``gcp:project``, ...) are provider settings
    and are left to the providers. Values may be JSON text, as the Pulumi runtime passes them.
    """
    ours: dict[str, Any] = {}
    for key, value in config.items():
        namespace, sep, name = key.partition(":")
        if sep and namespace != NAMESPACE:
            continue
        ours[name if sep else key] = _decode(value)
    try:
        spec = ClusterSpec.model_validate(ours)
    except ValidationError as exc:
        raise ConfigError([_problem(error) for error in exc.errors()]) from None
    problems = check(spec)
    if not problems:
        disagree = provider_region_problem(spec.cloud, spec.region, dict(config))
        problems = [disagree] if disagree else []
    if problems:
        raise ConfigError(problems)
    if spec.name is None:
        spec = spec.model_copy(update={"name": default_name(stack)})
    return resolve_nat(spec)


def resolve_nat(spec: ClusterSpec) -> ClusterSpec:
    """An air-gapped network has no NAT: ``natGateways`` left unset becomes ``none`` (the check
    refuses any other value set explicitly)."""
    net = spec.networking
    if net.air_gapped and net.nat_gateways != "none" and "nat_gateways" not in net.model_fields_set:
        return spec.model_copy(update={"networking": net.model_copy(update={"nat_gateways": "none"})})
    return spec


def default_name(stack: str) -> str:
    """``cfcr-<stack>`` made into a DNS label."""
    label = re.sub(r"[^a-z0-9-]+", "-", f"cfcr-{stack}".lower()).strip("-")
    return label[:63].rstrip("-")


PACKAGE_PROJECT = Path(__file__).resolve().parents[2]
"""The cfcr project this package came from (its ``stacks/`` are the examples)."""


@dataclass(frozen=True)
class StackRef:
    """A stack file found: the stack's name (``Pulumi.<name>.yaml``) and its path."""

    name: str
    path: Path


def is_stack_path(stack: str) -> bool:
    """``--stack`` names a file rather than a stack when it holds a ``/`` or ends in ``.yaml``/``.yml``."""
    return "/" in stack or stack.endswith((".yaml", ".yml"))


def stack_dirs(project_dir: Path) -> list[Path]:
    """Where a project keeps its stack files, first match wins: Pulumi.yaml's ``stackConfigDir``
    (if set), ``stacks/``, the project directory itself (Pulumi's default)."""
    dirs: list[Path] = []
    project_file = project_dir / "Pulumi.yaml"
    if project_file.is_file():
        document = _read_yaml(project_file)
        config_dir = document.get("stackConfigDir") if isinstance(document, dict) else None
        if isinstance(config_dir, str) and config_dir:
            dirs.append(project_dir / config_dir)
    for candidate in (project_dir / "stacks", project_dir):
        if candidate not in dirs:
            dirs.append(candidate)
    return dirs


def list_stacks(project_dir: Path | None = None) -> list[StackRef]:
    """Every stack file of the project, by name (a name found in two places: the first wins)."""
    root = project_dir or PACKAGE_PROJECT
    found: dict[str, StackRef] = {}
    for folder in stack_dirs(root):
        for path in sorted(folder.glob("Pulumi.*.yaml")):
            name = path.name[len("Pulumi."):-len(".yaml")]
            found.setdefault(name, StackRef(name, path))
    return sorted(found.values(), key=lambda ref: ref.name)


def find_stack(stack: str, project_dir: Path | None = None) -> StackRef:
    """The stack file ``stack`` names: a path to a file, or a stack name looked up in the
    project's stack directories (:func:`stack_dirs`)."""
    if is_stack_path(stack):
        path = Path(stack)
        if not path.is_file():
            what = "a directory" if path.is_dir() else "no such file"
            raise InputError(f"--stack {stack}: {what}; expected a stack file like stacks/Pulumi.NAME.yaml")
        name = path.name.removeprefix("Pulumi.")
        for suffix in (".yaml", ".yml"):
            name = name.removesuffix(suffix)
        return StackRef(name, path)
    root = project_dir or PACKAGE_PROJECT
    if not root.is_dir():
        raise InputError(f"--project-dir {root}: no such directory")
    for folder in stack_dirs(root):
        path = folder / f"Pulumi.{stack}.yaml"
        if path.is_file():
            return StackRef(stack, path)
    available = ", ".join(ref.name for ref in list_stacks(root)) or "none"
    looked = ", ".join(str(d) for d in stack_dirs(root))
    raise InputError(f"--stack {stack}: no Pulumi.{stack}.yaml in {looked}; stacks there: {available}")


def stack_file(stack: str, project_dir: Path | None = None) -> Path:
    """Path of the stack file (:func:`find_stack`)."""
    return find_stack(stack, project_dir).path


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(str(exc.problem or exc.context or "").split())
        raise InputError(f"{path}: {where}not valid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it: {exc.strerror}") from None


def read_stack_file(path: Path) -> dict[str, Any]:
    """The ``config:`` mapping of the stack file at ``path``, as Pulumi would hand it to the program."""
    document = _read_yaml(path)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InputError(f"{path}: found a {_kind(document)}; a stack file is a mapping with a `config:` key")
    if "config" not in document and any(":" in str(key) for key in document):
        keys = ", ".join(str(k) for k in document if ":" in str(k))
        raise InputError(f"{path}: no `config:` key; {keys} belong under it, indented: a stack file is "
                         "`config:` then `  cfcr:cloud: aws`, ...")
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise InputError(f"{path}: `config` is a {_kind(config)}; it must be a mapping of keys like cfcr:region")
    return config


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), type(value).__name__)


def read_stack_config(stack: str, project_dir: Path | None = None) -> dict[str, Any]:
    """The ``config:`` mapping of a stack file, as Pulumi would hand it to the program."""
    return read_stack_file(find_stack(stack, project_dir).path)


def load_stack(stack: str, project_dir: Path | None = None) -> ClusterSpec:
    """Read and validate ``stacks/Pulumi.<stack>.yaml``."""
    ref = find_stack(stack, project_dir)
    return load_spec(read_stack_file(ref.path), ref.name)


def load_from_pulumi() -> ClusterSpec:
    """Validate the running stack's config (inside ``pulumi up`` or the mock runtime)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    values: dict[str, Any] = dict(runtime_config.get_config_env())
    values.update(runtime_config.CONFIG.get())
    return load_spec(values, pulumi.get_stack())


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, dict) and set(value) == {"secure"}:
        raise ConfigError([Problem("config", "[secure]", "encrypted values are decrypted by the Pulumi CLI only")])
    return value


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            out += ("." if out else "") + part
    return f"{PREFIX}{out}"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config object class at ``loc`` (aliases), for listing allowed keys."""
    model: Any = ClusterSpec
    for part in loc:
        if isinstance(part, int):
            continue
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        field = fields.get(part)
        if field is None:
            return None
        model = inner_model(field.annotation)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _problem(error: ErrorDetails) -> Problem:
    loc = tuple(error["loc"])
    key = _path(loc)
    kind = error["type"]
    message = error["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = sorted(f.alias or n for n, f in parent.model_fields.items()) if parent else []
        name = str(loc[-1])
        near = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        return Problem(key, error["input"], f"unknown key; {hint}allowed keys here: {', '.join(allowed)}")
    if kind == "missing":
        parent = _model_at(loc[:-1])
        description = ""
        if parent is not None:
            for name, field in parent.model_fields.items():
                if (field.alias or name) == loc[-1]:
                    description = field.description or ""
        return Problem(key, None, f"required: {description}".rstrip(": "))
    if kind == "literal_error":
        return Problem(key, error["input"], "allowed: " + message.removeprefix("Input should be "))
    return Problem(key, error["input"], message[:1].lower() + message[1:])
