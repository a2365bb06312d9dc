"""Write what a recorded program run produced: resources.json, nodes/, manifests/."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cfcr.render.mocks import RecordedResource, is_secret, unwrap

if TYPE_CHECKING:
    from cfcr.config.schema import ClusterSpec

SECRET = "[secret]"
HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart", "kubernetes:helm.sh/v3:Chart")
_META_KEYS = ("apiVersion", "kind", "metadata")


def whole(value: Any) -> Any:
    """A number with an integral value as an ``int`` (``6443.0`` -> ``6443``), in nested values too.

    Pulumi's wire format (a protobuf ``Struct``) carries every number as a double, so the mock
    runtime hands the program's ``6443`` back as ``6443.0`` and whether the program wrote ``1``
    or ``1.0`` is lost before the render sees it. The rule: an integral float is written as an
    integer, any other float (``maxPrice: 0.5``) stays a float. Both are the same JSON number and
    the same double the provider receives; only the text of the render changes.
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole(v) for v in value]
    return value


def mask(value: Any, show_secrets: bool) -> Any:
    """``value`` with every secret replaced by ``"[secret]"`` (or unwrapped when shown); a secret
    mapping (a Secret's ``stringData``) keeps its keys, each value masked, so the masked object
    keeps its shape. Integral numbers become integers (:func:`whole`)."""
    if is_secret(value):
        if show_secrets:
            return whole(unwrap(value))
        plain = unwrap(value)
        return {k: SECRET for k in plain} if isinstance(plain, dict) else SECRET
    if isinstance(value, dict):
        return {k: mask(v, show_secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, show_secrets) for v in value]
    return whole(value)


def resource_entries(recorded: list[RecordedResource], show_secrets: bool) -> list[dict[str, Any]]:
    """The ``resources.json`` rows, in registration order.

    ``id`` and ``outputs`` are what the (stand-in) provider answered for a custom resource
    (``null`` and ``{}`` for a component), masked like ``inputs``: with them a row's reference
    to another resource (``securityGroupId: sg-...``, a load balancer's ``dnsName``) can be
    matched to that resource's row.
    """
    return [
        {
            "urn": r.urn,
            "type": r.type,
            "name": r.name,
            "parent": r.parent,
            "dependencies": r.dependencies,
            "inputs": mask(r.inputs, show_secrets),
            "id": r.id,
            "outputs": mask(r.outputs, show_secrets),
        }
        for r in recorded
    ]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def kubernetes_manifests(recorded: list[RecordedResource], show_secrets: bool) -> dict[str, Any]:
    """Every Kubernetes object and Helm chart the program registered, by file name."""
    out: dict[str, Any] = {}
    for r in recorded:
        if not r.type.startswith("kubernetes:") or r.type.startswith("pulumi:providers:"):
            continue
        inputs = mask(r.inputs, show_secrets)
        if r.type in HELM_TYPES:
            keep = ("chart", "version", "repositoryOpts", "namespace", "values", "name", "skipCrds")
            body = {"helmChart": {k: inputs[k] for k in keep if k in inputs}, "resource": r.name}
            out[f"helm/{_safe(r.name)}.yaml"] = body
        elif all(k in inputs for k in _META_KEYS[:2]):
            out[f"{_safe(inputs['kind'])}/{_safe(r.name)}.yaml"] = inputs
    return out


def write_render(
    out_dir: Path,
    recorded: list[RecordedResource],
    user_data: Mapping[str, str | bytes],
    manifests: Mapping[str, Any],
    show_secrets: bool,
    spec: ClusterSpec | None = None,
) -> list[Path]:
    """Write a render to ``out_dir``; returns the files written. With the stack's ``spec``, also
    the architecture picture (architecture.dot, and architecture.svg where Graphviz is installed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def emit(rel: str, text: str | bytes) -> None:
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        written.append(path)

    emit("resources.json", json.dumps(resource_entries(recorded, show_secrets), indent=2, sort_keys=False) + "\n")
    for role, data in sorted(user_data.items()):
        emit(f"nodes/{role}/user-data", data)
        if isinstance(data, bytes) and data[:2] == b"\x1f\x8b":  # gzip: also write it readable, for review and diffs
            emit(f"nodes/{role}/user-data.decompressed", gzip.decompress(data))
    objects = {**manifests, **kubernetes_manifests(recorded, show_secrets)}
    for rel, obj in sorted(objects.items()):
        emit(f"manifests/{rel}", yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))
    if spec is not None:
        from cfcr.review.picture import write_picture

        written += write_picture(out_dir, spec, resource_entries(recorded, False), user_data)
    return written
