"""The whole pack over real renders: every stack passes, the insecure test stack fails with
exactly the expected violations; the config overrides; ``policy/__main__.py``; the CLI."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi_policy import EnforcementLevel

from cfcr.cli import main
from cfcr.policy import POLICIES, default_config
from cfcr.policy.runner import PackReport, PolicyConfigError, check_stack, resolve_config

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
M, A = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY


@pytest.fixture(scope="module")
def insecure() -> PackReport:
    return check_stack("insecure", project_dir=TESTS)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_the_pack(stack: str) -> None:
    report = check_stack(stack)
    assert report.mandatory == [], report.format()
    assert report.checked > 20


def test_the_insecure_stack_fails_with_the_expected_violations(insecure: PackReport) -> None:
    bootstrap = "cfcr:bootstrap:ClusterBootstrap::cfcr-insecure"
    cp0 = "gcp:compute/instance:Instance::cfcr-insecure-cp-0"
    api_firewall = "gcp:compute/firewall:Firewall::cfcr-insecure-api-from-clients"
    # the GCP layer labels every resource with cfcr:tags, so the missing cost-centre shows on each
    unlabelled = {v.resource for v in insecure.mandatory if v.policy == "required-tags"} - {bootstrap}
    assert {r.split("::", 1)[0] for r in unlabelled} == {
        "gcp:compute/disk:Disk", "gcp:compute/forwardingRule:ForwardingRule", "gcp:compute/instance:Instance",
        "gcp:compute/instanceTemplate:InstanceTemplate", "gcp:secretmanager/secret:Secret"}
    assert cp0 in unlabelled and "gcp:compute/disk:Disk::cfcr-insecure-cp-0-etcd" in unlabelled
    cas = {f"tls:index/selfSignedCert:SelfSignedCert::cfcr-insecure-pki-{n}-g1" for n in ("ca", "etcd-ca", "front-proxy-ca")}
    leaves = {f"tls:index/locallySignedCert:LocallySignedCert::cfcr-insecure-pki-{n}" for n in (
        "admin", "super-admin", "apiserver", "apiserver-kubelet-client", "apiserver-etcd-client",
        "etcd-healthcheck-client", "front-proxy-client", "etcd-peer-cfcr-insecure-cp-0",
        "etcd-server-cfcr-insecure-cp-0")}
    assert insecure.pairs(M) == {
        ("control-plane-count", bootstrap),
        ("node-pool-max-size", bootstrap),
        ("required-tags", bootstrap),
        *{("required-tags", r) for r in unlabelled},
        ("api-allowed-cidrs", api_firewall),
        ("secrets-encrypted-at-rest", cp0),
        ("audit-logging-enabled", cp0),
        *{("certificate-validity", r) for r in cas | leaves},
    }, insecure.format()
    assert insecure.pairs(A) == {("cni-network-policy", bootstrap)}
    text = insecure.format()
    assert "a production cluster with 1 control-plane node(s)" in text
    assert "nodePools[spot].maxSize is 500" in text
    assert "missing tags: cost-centre" in text and "missing labels: cost-centre" in text
    assert "allows[0]: the API (port 6443) is open to 0.0.0.0/0" in text
    assert "CA certificate valid for 262800h" in text and "leaf certificate valid for 168h" in text
    assert "urn:pulumi:insecure::cfcr::" in text


def test_a_stricter_pack_config_reports_more_and_disabled_policies_report_nothing() -> None:
    config = {
        "kubernetes-version": {"minorsBehindStable": 0},
        "certificate-validity": "disabled",
        "cni-network-policy": "mandatory",
    }
    report = check_stack("insecure", project_dir=TESTS, policy_config=config)
    policies = {v.policy for v in report.mandatory}
    assert "kubernetes-version" in policies  # 1.35.8 is one minor behind stable
    assert "cni-network-policy" in policies
    assert "certificate-validity" not in {v.policy for v in report.violations}


def test_policy_config_is_checked() -> None:
    with pytest.raises(PolicyConfigError, match="unknown policy 'no-such'"):
        resolve_config({"no-such": "advisory"})
    with pytest.raises(PolicyConfigError, match="unknown property 'maxPoolSise'"):
        resolve_config({"node-pool-max-size": {"maxPoolSise": 3}})
    with pytest.raises(PolicyConfigError, match="enforcement level 'strict'"):
        resolve_config({"all": "strict"})
    assert {level for level, _ in resolve_config({"all": "advisory"}).values()} == {A}


def test_default_config_lists_every_policy_with_its_level_and_settings() -> None:
    config = default_config()
    assert list(config) == [p.name for p in POLICIES]
    assert config["node-pool-max-size"] == {"enforcementLevel": "mandatory", "maxPoolSize": 100}
    assert config["cni-network-policy"]["enforcementLevel"] == "advisory"


# ----------------------------------------------------------------------------- policy/__main__.py


def test_pack_main_builds_the_pack_only_when_run_as_a_program() -> None:
    tree = ast.parse((ROOT / "policy" / "__main__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.If):  # the one guard: if __name__ == "__main__"
            assert ast.unparse(node.test) == "__name__ == '__main__'"
            continue
        assert isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Expr)), ast.unparse(node)
        if isinstance(node, ast.Expr):
            assert isinstance(node.value, ast.Constant), "only the docstring may be a bare expression"
    # importing it under another name returns at once
    code = "import runpy; runpy.run_path('policy/__main__.py', run_name='not_main'); print('imported')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "imported", done.stderr


def test_pack_main_serves_the_pack_when_run() -> None:
    """Run as a program it builds the PolicyPack: the analyzer prints its port and keeps serving."""
    import os
    import select

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}  # the engine reads the port at once
    proc = subprocess.Popen([sys.executable, "policy/__main__.py"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the pack printed no port within 60s"
        port = proc.stdout.readline().decode().strip()
        assert port.isdigit() and int(port) > 0, port
        assert proc.poll() is None, "the pack must keep serving until the engine stops it"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_pack_files() -> None:
    assert "runtime: python" in (ROOT / "policy" / "PulumiPolicy.yaml").read_text()
    # Pulumi installs the pack's requirements from policy/: cfcr with its policy extra (pulumi-policy)
    assert "-e ..[policy]" in (ROOT / "policy" / "requirements.txt").read_text().splitlines()


# ----------------------------------------------------------------------------- the CLI


def test_check_exits_zero_for_a_good_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--stack", "gcp-edge", "--policy-pack", str(ROOT / "policy")]) == 0
    out = capsys.readouterr().out
    assert "0 mandatory, 0 advisory" in out
    argv = ["check", "--stack", "gcp-edge", "--policy-pack", str(ROOT / "policy"), "--config", "cni=flannel"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "0 mandatory, 1 advisory" in out and "[advisory] cni-network-policy" in out
    assert "PRIVATE KEY" not in out


def test_check_exits_one_on_a_mandatory_violation(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["check", "--stack", "insecure", "--policy-pack", str(ROOT / "policy"), "--project-dir", str(TESTS)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "[mandatory] control-plane-count" in out
    assert "resource: urn:pulumi:insecure::cfcr::cfcr:gcp:Cluster$cfcr:bootstrap:ClusterBootstrap::cfcr-insecure" in out


def test_check_takes_stack_and_policy_config_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = str(ROOT / "policy")
    argv = ["check", "--stack", "gcp-edge", "--policy-pack", pack, "--config", "production=true"]
    assert main(argv) == 1
    assert "at least 3 are needed" in capsys.readouterr().out
    lenient = tmp_path / "policy-config.json"
    lenient.write_text(json.dumps({"control-plane-count": "advisory"}))
    assert main([*argv, "--policy-config", str(lenient)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"no-such-policy": "advisory"}))
    assert main([*argv, "--policy-config", str(bad)]) == 2
    assert "unknown policy" in capsys.readouterr().err


def test_check_refuses_a_directory_without_a_pack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--stack", "gcp-stable", "--policy-pack", str(tmp_path)]) == 2
    assert "no PulumiPolicy.yaml" in capsys.readouterr().err


def test_check_reports_bad_stack_config(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["check", "--stack", "gcp-stable", "--policy-pack", str(ROOT / "policy"), "--config", "controlPlane={count: 2}"]
    assert main(argv) == 2
    assert "cfcr:controlPlane.count" in capsys.readouterr().err


def test_docs_list_every_policy_and_setting_as_generated() -> None:
    from cfcr.policy.docs import BEGIN, END, policy_tables

    doc = (ROOT / "docs" / "policy.md").read_text()
    assert doc.split(BEGIN, 1)[1].split(END, 1)[0].strip() == policy_tables().strip(), (
        "docs/policy.md is out of step: regenerate its tables with cfcr.policy.docs.policy_tables()")
    for p in POLICIES:
        assert f"**{p.name}**" in doc, f"docs/policy.md does not explain {p.name}"
