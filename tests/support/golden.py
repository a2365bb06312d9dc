"""The golden render: the default stack, rendered offline, kept under ``tests/golden/aws-stable/``.

    python3 dev.py golden                          # refresh it (runs this module with --update)
    python -m tests.support.golden [--update]      # compare (exit 1 with the diff), or refresh

The golden holds every file ``cfcr render`` writes for the stack (``resources.json``, each
role's ``user-data`` and its ``.decompressed`` text, ``manifests/``) plus ``exports.json``
(the stack outputs, secrets masked), rendered with two things made stable:

- the certificates' validity start is pinned to :data:`EPOCH` (``CFCR_RENDER_EPOCH``,
  cfcr/render/providers.py), not the first of the current month;
- the outputs of every RSA ``PrivateKey`` (random per render, as with pulumi-tls) are replaced,
  wherever they appear, by a placeholder naming the key and the output:
  ``[rsa:<resource name>:publicKeyPem]``. ECDSA keys derive from the URN and stay real.

Secrets stay masked (``"[secret]"``) as in a default render. Standard library and cfcr
only (no pytest): ``dev.py golden`` runs it in the venv that ``dev.py render`` uses.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import filecmp
import gzip
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STACK = "aws-stable"
GOLDEN = ROOT / "tests" / "golden" / STACK
EPOCH = "2026-01-01"
"""The pinned validity start of every certificate in the golden."""
REFRESH = "python3 dev.py golden"
RSA_OUTPUTS = ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh", "publicKeyPem", "publicKeyOpenssh",
               "publicKeyFingerprintMd5", "publicKeyFingerprintSha256")
"""The outputs of a tls PrivateKey that carry (or derive from) its key."""
EXPORTS = "exports.json"
SHOWN_FILES = 3
"""How many differing files a failure prints in full (as a unified diff)."""
SHOWN_LINES = 80
"""How many lines of one file's diff a failure prints."""


@contextlib.contextmanager
def pinned_epoch(day: str = EPOCH) -> Iterator[None]:
    """Set ``CFCR_RENDER_EPOCH`` for the duration, and put back what was there."""
    from cfcr.render.providers import EPOCH_ENV

    before = os.environ.get(EPOCH_ENV)
    os.environ[EPOCH_ENV] = day
    try:
        yield
    finally:
        if before is None:
            del os.environ[EPOCH_ENV]
        else:
            os.environ[EPOCH_ENV] = before


def rsa_placeholders(resources: list[Any]) -> dict[str, str]:
    """Each RSA key's output value -> its placeholder, ``[rsa:<name>:<output>]``."""
    from cfcr.render import unwrap

    out: dict[str, str] = {}
    for r in resources:
        if r.type != "tls:index/privateKey:PrivateKey" or unwrap(r.inputs).get("algorithm", "RSA") != "RSA":
            continue
        outputs = unwrap(r.outputs)
        for key in RSA_OUTPUTS:
            value = outputs.get(key)
            if isinstance(value, str) and value.strip():
                out[value] = f"[rsa:{r.name}:{key}]"
                if value.endswith("\n"):  # the same value, trimmed, where a consumer strips it
                    out.setdefault(value.rstrip("\n"), f"[rsa:{r.name}:{key}]")
    return out


def _replace(value: Any, table: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old in sorted(table, key=len, reverse=True):  # a PEM before any shorter value inside it
            value = value.replace(old, table[old])
        return value
    if isinstance(value, dict):
        return {k: _replace(v, table) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, table) for v in value]
    return value


def _replace_bytes(role: str, data: bytes, table: dict[str, str]) -> bytes:
    if data[:2] == b"\x1f\x8b":  # gzip: key material inside cannot be replaced without recompressing
        hits = sorted({table[v] for v in table if v.encode() in gzip.decompress(data)})
        if hits:
            raise RuntimeError(f"{role}'s compressed user-data carries RSA key material ({', '.join(hits)}); "
                               "teach tests/support/golden.py to normalise it")
        return data
    for old in sorted(table, key=len, reverse=True):
        data = data.replace(old.encode(), table[old].encode())
    return data


def render(out_dir: Path) -> list[Path]:
    """Render the golden stack into ``out_dir`` (emptied first), normalised; the files written."""
    from cfcr.render import render_stack
    from cfcr.render.writer import write_render

    with pinned_epoch():
        result = render_stack(STACK, None, project_dir=ROOT)
    table = rsa_placeholders(result.resources)
    resources = [
        dataclasses.replace(r, inputs=_replace(r.inputs, table), outputs=_replace(r.outputs, table),
                            registered_outputs=_replace(r.registered_outputs, table))
        for r in result.resources
    ]
    user_data = {role: _replace_bytes(role, data, table) for role, data in result.user_data.items()}
    if out_dir.exists():
        shutil.rmtree(out_dir)
    files = write_render(out_dir, resources, user_data, _replace(result.manifests, table), show_secrets=False)
    exports = out_dir / EXPORTS
    exports.write_text(json.dumps(_replace(result.exports, table), indent=2, sort_keys=True) + "\n")
    return [*files, exports]


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def _text(path: Path) -> list[str] | None:
    data = path.read_bytes()
    try:
        return data.decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def differences(expected: Path, actual: Path) -> list[str]:
    """One readable entry per file that differs between the two trees (empty when equal):
    missing and extra files, then a unified diff per differing file (the first
    :data:`SHOWN_FILES` in full, up to :data:`SHOWN_LINES` lines each; the rest by name)."""
    want, got = _files(expected), _files(actual)
    out = [f"missing from the render: {rel}" for rel in sorted(want - got)]
    out += [f"new in the render, not in the golden: {rel}" for rel in sorted(got - want)]
    shown = 0
    for rel in sorted(want & got):
        a, b = expected / rel, actual / rel
        if filecmp.cmp(a, b, shallow=False):
            continue
        old, new = _text(a), _text(b)
        if old is None or new is None:
            same = a.name == "user-data" and gzip.decompress(a.read_bytes()) == gzip.decompress(b.read_bytes())
            out.append(f"binary file differs: {rel}" + (
                " (the same text, compressed differently: another zlib?)" if same else
                f" (its text: {rel}.decompressed)" if (expected / f"{rel}.decompressed").exists() else ""))
            continue
        if shown >= SHOWN_FILES:
            out.append(f"differs (diff not shown): {rel}")
            continue
        shown += 1
        diff = list(difflib.unified_diff(old, new, f"golden/{rel}", f"render/{rel}", n=3))
        lines = [d if d.endswith("\n") else d + "\n" for d in diff[:SHOWN_LINES]]
        if len(diff) > SHOWN_LINES:
            lines.append(f"... {len(diff) - SHOWN_LINES} more diff lines\n")
        out.append("".join(lines).rstrip("\n"))
    return out


def report(diffs: list[str]) -> str:
    """The failure message for ``diffs``: what differs and how to refresh."""
    return (f"the render of stack {STACK} differs from {GOLDEN.relative_to(ROOT)} in {len(diffs)} file(s):\n\n"
            + "\n\n".join(diffs)
            + f"\n\nIf the change is intended, refresh the golden with `{REFRESH}` and explain in the commit "
              "message why it changed (docs/testing.md, 'The golden render').")


def update() -> list[Path]:
    """Render the stack twice; refuse if the two renders differ (a non-determinism the golden
    would trip on), else replace :data:`GOLDEN` with the render."""
    with tempfile.TemporaryDirectory(prefix="cfcr-golden-") as tmp:
        first, second = Path(tmp) / "a", Path(tmp) / "b"
        render(first)
        render(second)
        unstable = differences(first, second)
        if unstable:
            raise SystemExit("golden: two renders of the stack differ, so a golden would not hold; fix the "
                             "non-determinism (or normalise it in tests/support/golden.py):\n\n"
                             + "\n\n".join(unstable))
        if GOLDEN.exists():
            shutil.rmtree(GOLDEN)
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(first, GOLDEN)
    return sorted(p for p in GOLDEN.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update", action="store_true", help=f"rewrite {GOLDEN.relative_to(ROOT)} from a render")
    args = parser.parse_args(argv)
    if args.update:
        files = update()
        size = sum(p.stat().st_size for p in files)
        print(f"golden: wrote {len(files)} files ({size // 1024} KiB) to {GOLDEN.relative_to(ROOT)}; "
              "`git diff` shows what changed: explain it in the commit message")
        return 0
    with tempfile.TemporaryDirectory(prefix="cfcr-golden-") as tmp:
        render(Path(tmp))
        diffs = differences(GOLDEN, Path(tmp))
    if diffs:
        print(report(diffs), file=sys.stderr)
        return 1
    print(f"golden: the render of {STACK} matches {GOLDEN.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
