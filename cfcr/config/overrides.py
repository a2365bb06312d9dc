"""``--config KEY=VALUE``: one stack config value set from the command line.

KEY is written as config errors print it: ``cfcr:controlPlane.count``, ``nodePools[1].minSize``
(the ``cfcr:`` namespace is implied), or another namespace's key such as ``aws:region``.
VALUE is YAML: ``3``, ``true``, ``us-east-1``, ``{count: 1}``, ``[a, b]``. A dotted path sets
one value inside the object config keys hold (``controlPlane.count`` changes the count and keeps
the rest of ``cfcr:controlPlane``); a map key that itself holds a dot (a registry host, a tag
like ``kubernetes.io/x``) is set by giving the whole map (``registryMirrors={...}``).
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from cfcr.config.errors import NAMESPACE, InputError

_SEGMENT = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")


def _top_keys() -> list[str]:
    from cfcr.config.schema import ClusterSpec

    return sorted(f.alias or n for n, f in ClusterSpec.model_fields.items())


def _path(key: str, rest: str) -> list[str | int]:
    parts: list[str | int] = []
    at = 0
    while at < len(rest):
        match = _SEGMENT.match(rest, at)
        if match is None or (at == 0 and rest.startswith(".")) or (at > 0 and match.group(1) and rest[at] != "."):
            raise InputError(f"--config {key}: cannot read the key at {rest[at:]!r}; "
                             "expected a dotted path like controlPlane.count or nodePools[1].minSize")
        parts.append(match.group(1) if match.group(1) else int(match.group(2)))
        at = match.end()
    return parts


def parse(item: str) -> tuple[str, list[str | int], Any]:
    """``(namespaced top key, path inside it, value)`` of one ``KEY=VALUE``."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InputError(f"--config {item!r}: expected KEY=VALUE, e.g. controlPlane.count=1 or aws:region=us-east-1")
    namespace, colon, name = key.rpartition(":")
    namespace = namespace if colon else NAMESPACE
    if not namespace or not name:
        raise InputError(f"--config {item!r}: expected KEY=VALUE with KEY like cfcr:controlPlane.count or aws:region")
    parts = _path(key, name)
    if not parts or not isinstance(parts[0], str):
        raise InputError(f"--config {item!r}: the key must start with a name, like controlPlane.count")
    top = f"{namespace}:{parts[0]}"
    if namespace == NAMESPACE:
        allowed = _top_keys()
        if parts[0] not in allowed:
            near = difflib.get_close_matches(str(parts[0]), allowed, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise InputError(f"--config {key}: unknown key {top}; {hint}allowed: {', '.join(allowed)}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise InputError(f"--config {key}: value {text!r} is not valid YAML ({problem}); "
                         "quote it or write it as YAML, e.g. 3, true, us-east-1, {count: 1}") from None
    return top, parts[1:], value


def apply(config: Mapping[str, Any], items: Iterable[str]) -> dict[str, Any]:
    """``config`` (a stack file's ``config:``) with each ``KEY=VALUE`` of ``items`` set; ``config``
    itself is left unchanged."""
    out = copy.deepcopy(dict(config))
    for item in items:
        top, path, value = parse(item)
        # a stack file names cfcr's keys with or without the namespace; write where it already is
        bare = top.removeprefix(f"{NAMESPACE}:")
        slot = bare if top.startswith(f"{NAMESPACE}:") and bare in out and top not in out else top
        if not path:
            out[slot] = value
            continue
        node = out.get(slot)
        if isinstance(node, str) and node[:1] in "{[":  # a JSON object, as `pulumi config set --path` stores it
            node = json.loads(node)
        if node is None:
            node = {}
        out[slot] = node
        shown = top
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    size = f"has {len(node)} entries" if isinstance(node, list) else f"is a {type(node).__name__}"
                    raise InputError(f"--config {item.partition('=')[0]}: {shown} {size}; no entry [{part}] to set")
                if last:
                    node[part] = value
                else:
                    if node[part] is None:
                        node[part] = {}
                    node = node[part]
                shown += f"[{part}]"
            else:
                if not isinstance(node, dict):
                    raise InputError(f"--config {item.partition('=')[0]}: {shown} is a {type(node).__name__}, "
                                     f"not a mapping; cannot set {part!r} in it")
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
                shown += f".{part}"
    return out
