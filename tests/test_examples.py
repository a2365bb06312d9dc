"""The examples run: a platform team's own program builds a cluster bootstrap from typed args."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cfcr.render import run_program

ROOT = Path(__file__).resolve().parents[1]


def test_platform_program_builds_under_the_mock_runtime() -> None:
    path = ROOT / "examples" / "platform-program" / "__main__.py"
    module_spec = importlib.util.spec_from_file_location("platform_program", path)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    monitor, bootstrap, resolved = run_program(
        module.build,
        project="platform-cluster",
        stack="prod",
        outputs=lambda b: {"oncall": b.pki.kubeconfig("payments-oncall", b.api_server_url)},
    )
    kubeconfig, secret = resolved["oncall"]
    assert secret and "payments-oncall" in kubeconfig
    assert sorted(bootstrap.user_data) == ["control-plane-0", "control-plane-1", "control-plane-2", "worker-apps"]
    assert monitor.by_type("cfcr:bootstrap:ClusterBootstrap")[0].name == "payments"
