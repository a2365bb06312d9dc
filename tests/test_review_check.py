"""``cfcr check``'s grouped report and ``--json``: violations grouped by cause, each with the config key
that fixes it (cfcr/policy/config_keys.py), over the insecure test stack (rendered once)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pulumi_policy import EnforcementLevel

from cfcr.cli import main
from cfcr.config.docs import rows
from cfcr.policy import POLICIES
from cfcr.policy.config_keys import _BY_MESSAGE, CONFIG_KEYS, config_keys
from cfcr.policy.runner import PackReport, Violation, check_stack

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
M, A = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY


@pytest.fixture(scope="module")
def insecure() -> PackReport:
    return check_stack("insecure", project_dir=TESTS)


def test_every_config_key_named_is_a_key_of_the_schema_and_every_policy_exists() -> None:
    schema = {row[0] for row in rows()}
    named = {k for keys in CONFIG_KEYS.values() for k in keys}
    named |= {k for pairs in _BY_MESSAGE.values() for _, keys in pairs for k in keys}
    assert named and named <= {f"cfcr:{k}" if not k.startswith("cfcr:") else k for k in schema}, named - schema
    assert set(CONFIG_KEYS) | set(_BY_MESSAGE) <= {p.name for p in POLICIES}


def test_violations_with_one_cause_form_one_group_naming_every_resource() -> None:
    report = PackReport(violations=[
        Violation("required-tags", M, "urn:a", "missing tags: cost-centre"),
        Violation("cni-network-policy", A, "urn:s", "CNI flannel does not enforce NetworkPolicy"),
        Violation("required-tags", M, "urn:b", "missing tags: cost-centre"),
        Violation("required-tags", M, "urn:c", "missing tags: owner"),
    ], checked=3)
    groups = report.groups()
    assert [(g.policy, g.message, g.urns) for g in groups] == [
        ("required-tags", "missing tags: cost-centre", ["urn:a", "urn:b"]),
        ("required-tags", "missing tags: owner", ["urn:c"]),
        ("cni-network-policy", "CNI flannel does not enforce NetworkPolicy", ["urn:s"]),
    ]
    text = report.format()
    assert text.count("[mandatory] required-tags") == 2 and "(2 resources)" in text
    assert "config key: cfcr:tags" in text and "config key: cfcr:cni" in text
    assert "3 mandatory, 1 advisory violation(s) in 3 group(s)" in text


def test_the_insecure_stacks_certificates_are_two_groups_each_with_its_own_key(insecure: PackReport) -> None:
    certs = [g for g in insecure.groups() if g.policy == "certificate-validity"]
    assert sorted((len(g.urns), g.config_keys) for g in certs) == [
        (3, ("cfcr:pki.caValidityHours",)), (9, ("cfcr:pki.leafValidityHours",))]
    assert len(insecure.groups()) < len(insecure.violations) / 4
    assert sum(len(g.urns) for g in insecure.groups()) == len(insecure.violations)
    assert all(g.config_keys for g in insecure.groups()), "every cause in the insecure stack is a config setting"
    assert config_keys("certificate-validity", "earlyRenewalHours (24) is not shorter") == ("cfcr:pki.earlyRenewalHours",)
    assert config_keys("gcp-firewall-targets") == ()


def test_check_json_prints_counts_and_groups(insecure: PackReport, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import cfcr.policy.runner as runner

    monkeypatch.setattr(runner, "check_stack", lambda *a, **k: insecure)  # the module's render, not a second one
    argv = ["check", "--stack", "insecure", "--policy-pack", str(ROOT / "policy"), "--project-dir", str(TESTS), "--json"]
    assert main(argv) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["mandatory"] == len(insecure.mandatory) and report["advisory"] == 1
    by_key = {(g["policy"], g["message"][:9]): g for g in report["groups"]}
    ca = by_key[("certificate-validity", "CA certif")]
    assert ca["enforcement"] == "mandatory" and ca["configKey"] == "cfcr:pki.caValidityHours"
    assert len(ca["resources"]) == 3 and all(r.startswith("urn:pulumi:insecure::") for r in ca["resources"])
    assert by_key[("control-plane-count", "a product")]["configKey"] == ["cfcr:controlPlane.count", "cfcr:production"]
    assert set(report["groups"][0]) == {"policy", "enforcement", "configKey", "message", "resources"}


def test_the_settings_behind_gcp_disk_keys_and_vault_purge_protection_are_named() -> None:
    assert config_keys("disks-encrypted", "bootDisk names no KMS key (kmsKeySelfLink)") == ("cfcr:gcp.diskKmsKey",)
    assert config_keys("disks-encrypted", "securityProfile.encryptionAtHost is not true") == ()
    assert config_keys("key-vault-hardened", "properties.enablePurgeProtection is not true (the stack is "
                                             "production)") == ("cfcr:production",)
