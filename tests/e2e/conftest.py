"""End-to-end tests drive the real Pulumi engine through the Automation API.

They run only where the Pulumi CLI is installed (and, for cloud tests, credentials exist),
and are skipped with the reason everywhere else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed; the cloud e2e tests need it to check nodes and run a workload")
    return path


def my_cidr() -> str:
    """``CFCR_E2E_ALLOWED_CIDR``, or this machine's public address as a /32 (for apiAllowedCidrs)."""
    if os.environ.get("CFCR_E2E_ALLOWED_CIDR"):
        return os.environ["CFCR_E2E_ALLOWED_CIDR"]
    with urllib.request.urlopen("https://checkip.amazonaws.com", timeout=10) as response:  # noqa: S310
        return str(response.read().decode()).strip() + "/32"


def run_with(args: list[str], kubeconfig: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    """``args`` with ``KUBECONFIG`` set, output captured, never raising."""
    return subprocess.run(args, env={**os.environ, "KUBECONFIG": str(kubeconfig)}, capture_output=True, text=True,
                          check=False, **kw)
