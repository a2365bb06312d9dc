"""Stack config in, one validated ClusterSpec out; one ConfigError otherwise.

Three doors lead here: the Pulumi runtime's config (``pulumi up``), a stack file on disk
(``python -m cfcr render``) and a plain mapping (tests, other programs).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from cfcr.config.checks import check
from cfcr.config.errors import NAMESPACE, ConfigError, Problem
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


def stack_file(stack: str, project_dir: Path | None = None) -> Path:
    """Path of ``stacks/Pulumi.<stack>.yaml`` under the project."""
    root = project_dir or Path(__file__).resolve().parents[2]
    return root / "stacks" / f"Pulumi.{stack}.yaml"


def read_stack_config(stack: str, project_dir: Path | None = None) -> dict[str, Any]:
    """The ``config:`` mapping of a stack file, as Pulumi would hand it to the program."""
    path = stack_file(stack, project_dir)
    if not path.is_file():
        available = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in path.parent.glob("Pulumi.*.yaml"))
        raise ConfigError([Problem("stack", stack, f"no {path}; stacks here: {', '.join(available) or 'none'}")])
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError([Problem("config", config, f"{path}: `config` must be a mapping")])
    return config


def load_stack(stack: str, project_dir: Path | None = None) -> ClusterSpec:
    """Read and validate ``stacks/Pulumi.<stack>.yaml``."""
    return load_spec(read_stack_config(stack, project_dir), stack)


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
