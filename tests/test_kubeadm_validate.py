"""Every kubeadm document of every role of every stack, validated by the real kubeadm of the
stack's channel version (``kubeadm config validate``), after the node's own placeholder
substitution with well-formed values, as ``render_template`` in lib.sh does at boot."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cfcr import channels
from cfcr.config import load_spec, read_stack_config
from cfcr.node.kubeadm import (
    CA_HASH_PLACEHOLDER,
    NODE_IP_PLACEHOLDER,
    PROVIDER_ID_PLACEHOLDER,
    TOKEN_PLACEHOLDER,
)
from cfcr.render.render import render_stack
from tests.support.validators import load_cloud_config as cloud_config
from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[1]
STACKS = [(p.name[len("Pulumi."):-len(".yaml")], p.parent.parent)
          for d in (ROOT / "stacks", ROOT / "tests" / "stacks") for p in sorted(d.glob("Pulumi.*.yaml"))]

# well-formed stand-ins for what the node fills in at boot
FILLED = {
    TOKEN_PLACEHOLDER: "abcdef.0123456789abcdef",
    NODE_IP_PLACEHOLDER: "10.0.0.99",
    CA_HASH_PLACEHOLDER: "sha256:" + "ab" * 32,
    PROVIDER_ID_PLACEHOLDER: "aws:///us-east-1a/i-0123456789abcdef0",
}


def fill(template: str) -> str:
    for placeholder, value in FILLED.items():
        template = template.replace(placeholder, value)
    assert "@" not in template.replace("@@", ""), "every placeholder is one the node fills"
    return template


@pytest.mark.parametrize(("stack", "project"), STACKS, ids=[s for s, _ in STACKS])
def test_kubeadm_validates_every_role(stack: str, project: Path, tmp_path: Path) -> None:
    raw = read_stack_config(stack, project)
    spec = load_spec(raw, stack)
    version = channels.resolve(spec.kubernetes.version).kubernetes.version
    kubeadm = require_tool("kubeadm", version)
    result = render_stack(stack, None, config=raw)
    assert result.user_data, stack
    failures = []
    for role, data in sorted(result.user_data.items()):
        files = {f["path"]: f.get("content", "") for f in cloud_config(data)["write_files"]}
        config = tmp_path / f"{role}.yaml"
        config.write_text(fill(files["/etc/cfcr/kubeadm.yaml.tmpl"]))
        out = subprocess.run([str(kubeadm), "config", "validate", "--config", str(config)],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0 or "ok" not in out.stdout:
            failures.append(f"{stack}/{role} (kubeadm {version}): {out.stdout.strip()} {out.stderr.strip()}")
    assert not failures, "\n".join(failures)


def test_the_validation_can_fail(tmp_path: Path) -> None:
    kubeadm = require_tool("kubeadm")
    config = tmp_path / "bad.yaml"
    config.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnotAField: 1\n")
    out = subprocess.run([str(kubeadm), "config", "validate", "--config", str(config)], capture_output=True, text=True)
    assert out.returncode != 0 and "notAField" in out.stderr
