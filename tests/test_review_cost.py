"""``cfcr cost``: every stack of stacks/ prices without a gap, from one render each; a change of
instance type moves the figure by the expected delta; the price files carry a source and a date
for every price and agree with the docs' cost tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from cfcr.cli import main
from cfcr.config import read_stack_config
from cfcr.review.cost import PRICES, Estimate, PriceError, estimate, load_prices, stack_estimate
from cfcr.review.machines import premium_tier

ROOT = Path(__file__).resolve().parents[1]
STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
_CACHE: dict[str, Estimate] = {}


def _estimate(stack: str) -> Estimate:
    if stack not in _CACHE:
        _CACHE[stack] = stack_estimate(stack)
    return _CACHE[stack]


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_prices_without_a_gap(stack: str) -> None:
    result = _estimate(stack)
    assert result.not_priced == {}, result.format()
    assert all(line.entry is not None for line in result.lines), result.format()
    machines = [line for line in result.lines if line.key.startswith("instance/")]
    members = sum(line.quantity for line in machines if line.what == "control-plane member")
    assert members == read_stack_config(stack).get("cfcr:controlPlane", {}).get("count", 3)
    assert result.total > 100


def test_the_default_stacks_figures() -> None:
    result = _estimate("aws-stable")
    by_key = result.by_key()
    assert by_key["instance/m7i.large"] == pytest.approx(3 * 0.1008 * 730)
    assert by_key["instance/m7i.xlarge"] == pytest.approx(3 * 0.2016 * 730)  # pool general at desiredSize 3
    assert by_key["disk/gp3"] == pytest.approx((3 * 50 + 3 * 100 + 3 * 20) * 0.08)
    assert by_key["public-ipv4"] == pytest.approx(4 * 0.005 * 730)  # NAT + internet-facing NLB in 3 zones
    assert by_key["secret"] == pytest.approx(36 * 0.40)
    assert 800 < result.total < 850  # docs/aws.md: about $825
    text = result.format()
    assert f"list prices of us-east-1, read {load_prices('aws')['date']}" in text
    assert f"total: ${result.total:,.2f} a month" in text
    assert "usage-based, not in the total: aws:s3/bucket:Bucket" in text


def test_another_instance_type_moves_the_figure_by_the_price_difference() -> None:
    config = read_stack_config("aws-stable")
    changed = stack_estimate("aws-stable", config={**config, "cfcr:controlPlane": {
        **config["cfcr:controlPlane"], "size": "m7i.xlarge"}})
    delta = changed.total - _estimate("aws-stable").total
    assert delta == pytest.approx(3 * (0.2016 - 0.1008) * 730)


def test_a_type_without_a_price_is_listed_not_dropped() -> None:
    rows = [{"type": "aws:ec2/instance:Instance", "name": "x-cp-0", "inputs": {"instanceType": "z9.huge"}},
            {"type": "aws:rds/instance:Instance", "name": "db", "inputs": {}},
            {"type": "tls:index/privateKey:PrivateKey", "name": "key", "inputs": {}}]
    result = estimate(rows, "aws", "us-east-1")
    assert result.not_priced == {"aws:rds/instance:Instance": 1}
    assert [(line.key, line.entry) for line in result.lines] == [("instance/z9.huge", None)]
    text = result.format()
    assert "NOT PRICED" in text and "not priced: aws:rds/instance:Instance x1" in text


def test_azure_disks_are_billed_at_their_tier_and_regions_fall_back_visibly() -> None:
    assert [premium_tier(s) for s in (20, 32, 50, 100, 129)] == ["P4", "P4", "P6", "P10", "P15"]
    rows = [{"type": "azure-native:compute:Disk", "name": "d", "inputs": {"sku": {"name": "Premium_LRS"},
                                                                         "diskSizeGB": 20}}]
    assert estimate(rows, "azure", "westeurope").total == pytest.approx(5.28)
    elsewhere = estimate(rows, "azure", "northeurope")
    assert not elsewhere.priced_for_region and "the stack is in northeurope" in elsewhere.format()


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_every_price_has_a_source_and_a_date_and_the_docs_cite_it(cloud: str) -> None:
    data = load_prices(cloud)
    doc = (ROOT / "docs" / f"{cloud}.md").read_text()
    section = doc[doc.index("## What it costs"):]
    assert f"cfcr/review/prices/{cloud}.yaml" in section and "cfcr cost --stack" in section
    for key, entry in data["prices"].items():
        assert entry["source"].startswith("http") and str(entry["date"]).startswith("20")
        if key.startswith(("instance/", "disk/")):
            figure = f"${entry['price']:g}"
            assert re.search(re.escape(figure) + r"\b", doc), f"{cloud}.md does not show {key} at {figure}"
    entries = [*data["prices"].values(), *(e for r in data.get("regions", {}).values() for e in r.values())]
    assert str(data["date"]) == min(str(e["date"]) for e in entries)  # the file's date: its oldest price's
    assert all(e["source"].startswith("http") for e in entries)


def test_a_price_without_a_source_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load((PRICES / "aws.yaml").read_text())
    del data["prices"]["secret"]["source"]
    (tmp_path / "aws.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setattr("cfcr.review.cost.PRICES", tmp_path)
    with pytest.raises(PriceError, match="secret: needs a numeric price, per, source and date"):
        load_prices("aws")


def test_cost_cli_prints_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cfcr.review.cost.stack_estimate", lambda *a, **k: _estimate("gcp-stable"))
    assert main(["cost", "--stack", "gcp-stable", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    data = load_prices("gcp")
    assert out["cloud"] == "gcp" and out["pricesDate"] == data["date"] and out["total"] == round(_estimate("gcp-stable").total, 2)
    line = next(x for x in out["lines"] if x["key"] == "instance/n2-standard-2")
    entry = data["prices"]["instance/n2-standard-2"]
    assert line["quantity"] == 3 and line["source"] == entry["source"] and line["confirmed"] is entry["confirmed"]
    unconfirmed = next(x for x in out["lines"] if x["key"] == "forwarding-rules")
    assert unconfirmed["confirmed"] is False
    assert main(["cost", "--stack", "gcp-stable", "--config", "novalue"]) == 2


def test_the_price_notes_are_printed() -> None:
    text = _estimate("aws-stable").format()
    assert "note on load-balancer/network: " in text and "LCU" in text
    assert "note on nat-gateway: " in text and "per GB" in text
