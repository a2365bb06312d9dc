"""The real validators of user-data, for any test: ``cloud-init schema`` and ``shellcheck``.

Each returns a list of failures (empty when valid). A test that calls them is decorated
``@needs("cloud-init")`` / ``@needs("shellcheck")`` (tests/support/tools.py): it skips with
the reason when the tool is missing, and fails under ``CI=true``.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def plain(data: bytes) -> bytes:
    """User-data as cloud-init reads it: gunzipped when gzip."""
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def load_cloud_config(data: bytes) -> dict[str, Any]:
    """The cloud-config document of a user-data."""
    text = plain(data).decode()
    assert text.startswith("#cloud-config\n"), text[:40]
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def cloud_init_failures(label: str, data: bytes, workdir: Path) -> list[str]:
    """``cloud-init schema`` on one user-data; [] when valid."""
    path = workdir / f"{re.sub(r'[^A-Za-z0-9._-]', '_', label)}.yaml"
    path.write_bytes(plain(data))
    result = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True,
                            check=False)
    out = result.stdout + result.stderr
    if result.returncode != 0 or "Valid cloud-config" not in out or re.search(r"\berrors?\b", out, re.I):
        return [f"{label}: rc={result.returncode} {out.strip()}"]
    return []


def shell_sources(doc: Mapping[str, Any]) -> dict[str, str]:
    """Every shell text of a cloud-config: scripts (by extension or shebang), env files, runcmd."""
    out: dict[str, str] = {}
    for f in doc.get("write_files", []):
        content = f["content"]
        if f["path"].endswith((".sh", ".env")) or content.startswith("#!"):
            out[f["path"]] = content if content.startswith("#!") else "#!/bin/bash\n" + content
    lines = [c if isinstance(c, str) else shlex.join(c) for c in doc.get("runcmd", [])]
    out["runcmd"] = "#!/bin/sh\n" + "\n".join(lines) + "\n"
    return out


def shellcheck_text_failures(texts: Mapping[str, str], workdir: Path) -> list[str]:
    """``shellcheck -S style`` on shell texts (label -> text); [] when all pass."""
    failures = []
    for label, text in texts.items():
        path = workdir / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.sh"
        path.write_text(text)
        result = subprocess.run(["shellcheck", "-S", "style", str(path)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            failures.append(f"{label}\n{result.stdout}")
    return failures


def shellcheck_failures(label: str, data: bytes, workdir: Path) -> list[str]:
    """``shellcheck -S style`` on every shell text of one user-data; [] when all pass."""
    texts = {f"{label}:{name}": text for name, text in shell_sources(load_cloud_config(data)).items()}
    return shellcheck_text_failures(texts, workdir)
