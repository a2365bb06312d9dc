"""``cfcr diff``: what changes between two renders, and what each change does at ``pulumi up``.

Resources are matched by URN with the stack and cluster names taken out, so two stacks compare
too. A changed resource names its changed input paths; the ones that replace it come from
:mod:`cfcr.review.replace`. Machines that take their user-data from a template (an AWS launch
template, a GCP instance template) are replaced or rolled when the template changes: the
offline render cannot show the template's next version, so the link is followed here.
Control-plane member replacements come first, then node pools that roll, then the rest.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from cfcr.review.replace import (
    AWS_LAUNCH_TEMPLATE,
    GCP_TEMPLATE,
    MEMBER_TYPES,
    POOL_GROUP_TYPES,
    known,
    replacing,
    rolling,
)
from cfcr.review.snapshot import Snapshot

TEMPLATE_TYPES = frozenset({AWS_LAUNCH_TEMPLATE, GCP_TEMPLATE})
MAX_DIFF_LINES = 80
"""Lines of a unified diff shown per file before it is trimmed."""
_MEMBER = re.compile(r"-cp-(\d+)$")
COMPONENTS = ("cfcr:", "pulumi-python:")
"""Components and cfcr's dynamic resources: no provider replaces them."""


@dataclass
class Change:
    """One resource in both renders whose inputs differ."""

    urn: str
    type: str
    name: str
    keys: list[str]
    action: str
    """``replace``, ``roll`` (a pool group replaces its machines a few at a time) or ``update``."""
    why: list[str] = field(default_factory=list)
    values: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def member(self) -> str | None:
        """``control-plane-<i>`` if this is a control-plane member's machine."""
        found = _MEMBER.search(self.name)
        return f"control-plane-{found.group(1)}" if found and self.type in MEMBER_TYPES else None

    def to_json(self) -> dict[str, Any]:
        """The change as ``cfcr diff --json`` prints it."""
        return {"urn": self.urn, "type": self.type, "name": self.name, "action": self.action, "keys": self.keys,
                "why": self.why, "member": self.member, "providerKnowledge": known(self.type),
                "values": {k: {"from": a, "to": b} for k, (a, b) in self.values.items()}}


@dataclass
class RenderDiff:
    """Everything that differs between render ``a`` and render ``b``."""

    a: str
    b: str
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[Change]
    user_data: dict[str, list[str]]
    manifests: dict[str, list[str]]

    @property
    def members(self) -> list[Change]:
        """Control-plane member machines that are replaced, in member order."""
        return sorted((c for c in self.changed if c.member and c.action == "replace"), key=lambda c: c.name)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable diff (``cfcr diff --json``)."""
        def row(r: dict[str, Any]) -> dict[str, Any]:
            return {"urn": r["urn"], "type": r["type"], "name": r["name"]}

        return {
            "a": self.a, "b": self.b,
            "summary": {"added": len(self.added), "removed": len(self.removed), "changed": len(self.changed),
                        "replaced": sum(c.action == "replace" for c in self.changed),
                        "rolled": sum(c.action == "roll" for c in self.changed),
                        "controlPlaneReplaced": [c.member for c in self.members]},
            "added": [row(r) for r in self.added], "removed": [row(r) for r in self.removed],
            "changed": [c.to_json() for c in self.changed],
            "userData": {role: "\n".join(lines) for role, lines in self.user_data.items()},
            "manifests": {path: "\n".join(lines) for path, lines in self.manifests.items()},
        }

    def format(self) -> str:
        """The report a person reads."""
        out = [f"cfcr diff: {self.a} -> {self.b}"]
        for c in self.members:
            out.append(f"REPLACES control-plane member {c.member} ({c.name}): {'; '.join(c.why)} "
                       "(one at a time, behind the previous member's gate; its etcd member re-joins with its disk)")
        for c in (c for c in self.changed if c.action == "replace" and c.type in CA_TYPES):
            out.append(f"REPLACES CA certificate {c.name}: a new CA at once, not through pki.caGenerations; "
                       "certificates it signed stop being trusted until every member and node has the new "
                       "one (the staged way: cfcr/pki/ROTATION.md)")
        for c in (c for c in self.changed if c.action == "roll"):
            out.append(f"ROLLS node pool machines of {c.name} ({c.type}): {'; '.join(c.why)}")
        replaced = sum(c.action == "replace" for c in self.changed)
        out.append(f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed "
                   f"({replaced} replaced, {sum(c.action == 'roll' for c in self.changed)} rolling)")
        out += [f"  + {r['type']}::{r['name']}" for r in self.added]
        out += [f"  - {r['type']}::{r['name']}" for r in self.removed]
        for c in self.changed:
            mark = {"replace": "+-", "roll": "~~"}.get(c.action, "~ ")
            assumed = not known(c.type) and not c.type.startswith(COMPONENTS)
            out.append(f"  {mark} {c.type}::{c.name} [{c.action}]"
                       + (" (no replace rules for this type: assumed in place)" if assumed else ""))
            for key in c.keys:
                shown = c.values.get(key)
                out.append(f"       {key}" + (f": {_short(shown[0])} -> {_short(shown[1])}" if shown else ""))
            out += [f"       why: {w}" for w in c.why if not c.member]
        for title, diffs in (("user-data of role", self.user_data), ("manifest", self.manifests)):
            for path, lines in diffs.items():
                out.append(f"=== {title} {path}")
                out += lines
        return "\n".join(out)


CA_TYPES = frozenset({"tls:index/selfSignedCert:SelfSignedCert"})
"""Certificates that are CAs: a replaced one changes the cluster's trust."""


def _shown(value: Any) -> bool:
    """Whether a changed value is printed: scalars, but not documents (user-data, templates: diffed below)."""
    if isinstance(value, (dict, list)):
        return False
    return not (isinstance(value, str) and (len(value) > 200 or "\n" in value))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _key(r: dict[str, Any], snap: Snapshot) -> str:
    urn = str(r["urn"]).split("::", 1)[-1]
    return urn.replace(snap.cluster, "{cluster}") if snap.cluster else urn


def changed_paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Input paths (``a.b[0].c``) whose values differ; a list of another length is one path."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            # a key with a dot, slash or bracket (a tag "cfcr.io/cluster", a label) is one step: ["key"]
            step = f'["{k}"]' if re.search(r"[.\[\]/]", str(k)) else str(k)
            path = (f"{prefix}{step}" if step.startswith("[") else f"{prefix}.{step}") if prefix else step
            if k not in a or k not in b:
                out.append(path)
            else:
                out += changed_paths(a[k], b[k], path)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in changed_paths(x, y, f"{prefix}[{i}]")]
    return [] if a == b else [prefix or "(value)"]


def _get(value: Any, path: str) -> Any:
    for part in re.findall(r'\["[^"]*"\]|[^.\[\]]+|\[\d+\]', path):
        if part.startswith('["'):
            value = value.get(part[2:-2]) if isinstance(value, dict) else None
        elif part.startswith("["):
            value = value[int(part[1:-1])] if isinstance(value, list) else None
        else:
            value = value.get(part) if isinstance(value, dict) else None
    return value


def _strings(value: Any) -> set[str]:
    if isinstance(value, dict):
        return {s for v in value.values() for s in _strings(v)}
    if isinstance(value, list):
        return {s for v in value for s in _strings(v)}
    return {value} if isinstance(value, str) else set()


def _unified(a: str, b: str, path: str) -> list[str]:
    lines = list(difflib.unified_diff(a.splitlines(), b.splitlines(), f"a/{path}", f"b/{path}", lineterm="", n=2))
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"... ({len(lines) - MAX_DIFF_LINES} more diff lines)"]
    return lines


def _file_diffs(a: dict[str, str], b: dict[str, str], where: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted(set(a) | set(b)):
        if a.get(path) != b.get(path):
            out[path] = _unified(a.get(path, ""), b.get(path, ""), where.format(path))
    return out


def diff(a: Snapshot, b: Snapshot) -> RenderDiff:
    """Compare render ``a`` (before) with render ``b`` (after)."""
    old = {_key(r, a): r for r in a.resources}
    new = {_key(r, b): r for r in b.resources}
    changes: list[Change] = []
    for key, r in new.items():
        if key not in old:
            continue
        keys = changed_paths(old[key].get("inputs") or {}, r.get("inputs") or {})
        if not keys:
            continue
        hits = replacing(r["type"], keys, r.get("inputs"))
        rolls = rolling(r["type"], keys)
        change = Change(r["urn"], r["type"], r["name"], keys,
                        "replace" if hits else "roll" if rolls else "update",
                        [f"{', '.join(hits)} replaces it"] if hits else [f"{', '.join(rolls)} rolls its machines"]
                        if rolls else [])
        for k in keys:
            va, vb = _get(old[key].get("inputs"), k), _get(r.get("inputs"), k)
            if all(_shown(v) for v in (va, vb)):
                change.values[k] = (va, vb)
        changes.append(change)
    _follow_templates(changes, b)
    return RenderDiff(a.label, b.label, [r for k, r in new.items() if k not in old],
                      [r for k, r in old.items() if k not in new], changes,
                      _file_diffs(a.user_data, b.user_data, "nodes/{}/user-data"),
                      _file_diffs(a.manifests, b.manifests, "manifests/{}"))


def _follow_templates(changes: list[Change], b: Snapshot) -> None:
    """A machine or pool group whose template changed: a member is replaced (its launch template's
    new version; a GCP template is new), a pool group rolls its machines."""
    by_urn = {r["urn"]: r for r in b.resources}
    templates = [(c, by_urn[c.urn]) for c in changes if c.type in TEMPLATE_TYPES and c.urn in by_urn]
    for machine in [r for r in b.resources if r["type"] in MEMBER_TYPES | POOL_GROUP_TYPES]:
        refs = _strings(machine.get("inputs"))
        for change, template in templates:
            outputs = template.get("outputs") or {}
            ids = {template.get("id"), *(outputs.get(k) for k in ("selfLink", "selfLinkUnique", "arn"))}
            if not (ids - {None}) & refs:
                continue
            what = f"its template {template['name']} changes ({', '.join(change.keys[:4])}" + (
                ", ..." if len(change.keys) > 4 else "") + ")"
            found = next((c for c in changes if c.urn == machine["urn"]), None)
            if found is None:
                found = Change(machine["urn"], machine["type"], machine["name"], [], "update")
                changes.append(found)
            if machine["type"] in MEMBER_TYPES:
                found.action = "replace"
                found.why.append(what + ": a new template version replaces the machine")
            else:
                found.action = "replace" if found.action == "replace" else "roll"
                found.why.append(what + ": the group replaces its machines a few at a time")
