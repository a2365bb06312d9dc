"""End-to-end tests drive the real Pulumi engine through the Automation API.

They run only where the Pulumi CLI is installed (and, for cloud tests, credentials exist),
and are skipped with the reason everywhere else.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pulumi_cli() -> str:
    path = shutil.which("pulumi")
    if path is None:
        pytest.skip("the Pulumi CLI is not installed here (it is not on PyPI, Debian or npm); "
                    "install it from pulumi.com to run the end-to-end tests")
    return path


@pytest.fixture()
def local_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "cfcr-e2e")
    return f"file://{state}"
