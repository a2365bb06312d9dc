"""The golden render (tests/golden/aws-stable): the default stack renders exactly as committed.

Any change to what the render writes fails here with a unified diff; refresh with
``python3 dev.py golden`` and explain the change in the commit (docs/testing.md).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from cfcr.render import providers
from tests.support import golden


def test_the_render_matches_the_golden(tmp_path: Path) -> None:
    assert golden.GOLDEN.is_dir(), f"no golden render: create it with `{golden.REFRESH}`"
    golden.render(tmp_path)
    diffs = golden.differences(golden.GOLDEN, tmp_path)
    if diffs:
        pytest.fail(golden.report(diffs), pytrace=False)


def test_the_golden_pins_the_epoch_and_stands_in_for_rsa_keys_only() -> None:
    entries = json.loads((golden.GOLDEN / "resources.json").read_text())
    starts = {e["outputs"]["validityStartTime"] for e in entries if "validityStartTime" in e["outputs"]}
    assert starts == {f"{golden.EPOCH}T00:00:00Z"}
    keys = [e for e in entries if e["type"] == "tls:index/privateKey:PrivateKey"]
    rsa = [e for e in keys if e["inputs"]["algorithm"] == "RSA"]
    assert rsa, "the default stack has an RSA key (the service-account key)"
    for e in keys:
        for output in ("publicKeyPem", "publicKeyOpenssh", "publicKeyFingerprintSha256"):
            placeholder = f"[rsa:{e['name']}:{output}]"
            assert (e["outputs"][output] == placeholder) == (e in rsa), (e["name"], output)
        assert e["outputs"]["privateKeyPem"] == "[secret]", "secrets stay masked in the golden"


def test_render_epoch_is_the_first_of_the_month_unless_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(providers.EPOCH_ENV, raising=False)
    assert providers.epoch() == providers._EPOCH
    assert (providers._EPOCH.day, providers._EPOCH.hour, providers._EPOCH.tzinfo) == (1, 0, dt.timezone.utc)
    monkeypatch.setenv(providers.EPOCH_ENV, "2026-01-01")
    assert providers.epoch() == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    monkeypatch.setenv(providers.EPOCH_ENV, "January")
    with pytest.raises(ValueError, match="CFCR_RENDER_EPOCH"):
        providers.epoch()


def test_a_difference_is_shown_as_a_unified_diff_with_the_refresh_command(tmp_path: Path) -> None:
    want, got = tmp_path / "golden", tmp_path / "render"
    for root, image in ((want, "coredns:v1.12.0"), (got, "coredns:v1.12.1")):
        (root / "manifests").mkdir(parents=True)
        (root / "manifests" / "coredns.yaml").write_text(f"kind: Deployment\nimage: {image}\nreplicas: 2\n")
    (want / "gone.json").write_text("{}\n")
    (got / "new.json").write_text("{}\n")
    diffs = golden.differences(want, got)
    assert diffs[:2] == ["missing from the render: gone.json", "new in the render, not in the golden: new.json"]
    assert diffs[2].splitlines()[:2] == ["--- golden/manifests/coredns.yaml", "+++ render/manifests/coredns.yaml"]
    assert "-image: coredns:v1.12.0" in diffs[2] and "+image: coredns:v1.12.1" in diffs[2]
    assert golden.REFRESH in golden.report(diffs)
    assert golden.differences(want, want) == []
