"""One render to review, read back from a render directory (``cfcr render --out DIR``) or rendered
now from a stack: its resources.json rows, user-data per role and manifests, as text."""

from __future__ import annotations

import gzip
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOOTSTRAP_TYPE = "cfcr:bootstrap:ClusterBootstrap"


class SnapshotError(ValueError):
    """A render directory is not one (no resources.json, or it does not parse)."""


@dataclass(frozen=True)
class Snapshot:
    """A render: ``resources`` as in resources.json; ``user_data`` and ``manifests`` by relative path."""

    label: str
    resources: list[dict[str, Any]]
    user_data: dict[str, str]
    manifests: dict[str, str]

    @property
    def stack(self) -> str:
        """The stack from the first URN (``urn:pulumi:<stack>::...``)."""
        return self.resources[0]["urn"].split("::", 1)[0].rsplit(":", 1)[-1] if self.resources else ""

    @property
    def cluster(self) -> str:
        """The cluster's name: the name of its ClusterBootstrap component."""
        return next((r["name"] for r in self.resources if r["type"] == BOOTSTRAP_TYPE), "")


def _text(data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


def load_dir(path: Path) -> Snapshot:
    """Read a render directory; :class:`SnapshotError` if it holds no readable resources.json."""
    index = path / "resources.json"
    if not index.is_file():
        raise SnapshotError(f"{path}: no resources.json there (write one with `cfcr render --stack NAME --out DIR`)")
    try:
        resources = json.loads(index.read_text())
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{index}: not JSON ({exc})") from None
    if not isinstance(resources, list) or not all(isinstance(r, dict) and "urn" in r for r in resources):
        raise SnapshotError(f"{index}: expected a list of resources with urn, type, name and inputs")
    user_data: dict[str, str] = {}
    for role_dir in sorted(p for p in (path / "nodes").glob("*") if p.is_dir()):
        readable = role_dir / "user-data.decompressed"
        source = readable if readable.is_file() else role_dir / "user-data"
        if source.is_file():
            user_data[role_dir.name] = _text(source.read_bytes())
    manifests = {
        str(f.relative_to(path / "manifests")): f.read_text()
        for f in sorted((path / "manifests").rglob("*")) if f.is_file()
    }
    return Snapshot(str(path), resources, user_data, manifests)


def load_stack(stack: str, project_dir: Path | None = None, config: dict[str, Any] | None = None) -> Snapshot:
    """Render ``stack`` now (secrets masked) and read it back like a render directory."""
    from cfcr.render import render_stack

    with tempfile.TemporaryDirectory(prefix="cfcr-review-") as tmp:
        render_stack(stack, Path(tmp), project_dir=project_dir, config=config)
        snap = load_dir(Path(tmp))
    return Snapshot(f"stack {stack}", snap.resources, snap.user_data, snap.manifests)
