"""Small helpers more than one layer uses (pure; no Pulumi, no cloud)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, get_args

from pydantic import BaseModel


def _tree_copy(value: Any) -> Any:
    """A copy of the mappings and lists of ``value``; every other leaf is shared, not copied
    (scalars are immutable, and a Pulumi ``Output`` in chart values cannot be deep-copied)."""
    if isinstance(value, Mapping):
        return {k: _tree_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tree_copy(v) for v in value]
    return value


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base``: mappings recursively, anything else replaced.
    The result shares no mapping or list with either input."""
    out: dict[str, Any] = _tree_copy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = _tree_copy(value)
    return out


def dedupe(items: Iterable[str]) -> list[str]:
    """``items`` without repeats and without empty strings, in first-seen order."""
    return list(dict.fromkeys(i for i in items if i))


def inner_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a type annotation (``Model``, ``Model | None``, ``list[Model]``,
    ``dict[str, Model]``), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = inner_model(arg)
        if found is not None:
            return found
    return None
