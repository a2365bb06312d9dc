"""``cfcr:region`` must be a real region of the stack's cloud, and the provider's own region key
(``aws:region``, ``gcp:region``, ``azure-native:location``) must agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cfcr.config import ConfigError, list_stacks, load_spec, read_stack_file
from cfcr.config.regions import PROVIDER_REGION_KEYS, cloud_regions

BASE = {
    "aws": {"cfcr:cloud": "aws", "cfcr:region": "us-east-1"},
    "gcp": {"cfcr:cloud": "gcp", "cfcr:region": "europe-west4"},
    "azure": {"cfcr:cloud": "azure", "cfcr:region": "westeurope"},
}


def problem(config: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as info:
        load_spec(config, "t")
    assert len(info.value.problems) == 1, info.value
    return str(info.value.problems[0])


@pytest.mark.parametrize(("cloud", "region", "near"), [
    ("aws", "us-east-9", "us-east-"), ("aws", "europe-west4", None), ("gcp", "europe-west99", "europe-west"),
    ("gcp", "us-east9", "us-east"), ("azure", "westeurope2", "westeurope"), ("azure", "us-east-1", None),
])
def test_region_must_be_one_of_the_cloud(cloud: str, region: str, near: str | None) -> None:
    text = problem({**BASE[cloud], "cfcr:region": region})  # no zones set: the region alone is checked
    article = "a" if cloud == "gcp" else "an"
    assert text.startswith(f"cfcr:region: got {region!r}; not {article} {cloud.upper() if cloud != 'azure' else 'Azure'} region")
    assert ("did you mean '" + near) in text if near else True
    assert "source: " in text and cloud_regions(cloud).names[0] in text


@pytest.mark.parametrize("cloud", sorted(BASE))
def test_provider_region_must_agree(cloud: str) -> None:
    key = PROVIDER_REGION_KEYS[cloud]
    other = {"aws": "us-west-2", "gcp": "us-central1", "azure": "eastus"}[cloud]
    text = problem({**BASE[cloud], key: other})
    assert text.startswith(f"{key}: got {other!r}; must equal cfcr:region ({BASE[cloud]['cfcr:region']!r})")
    load_spec({**BASE[cloud], key: BASE[cloud]["cfcr:region"]}, "t")  # the same region: fine
    load_spec(dict(BASE[cloud]), "t")  # unset: fine


def test_azure_location_display_name_agrees() -> None:
    load_spec({**BASE["azure"], "azure-native:location": "West Europe"}, "t")


def test_aws_regions_come_from_the_provider_sdk() -> None:
    import pulumi_aws

    regions = cloud_regions("aws")
    assert set(regions.names) == {r.value for r in pulumi_aws.Region} and "us-east-1" in regions.names
    assert "pulumi_aws.Region" in regions.source


def test_regions_file_is_well_formed() -> None:
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "cfcr/config/regions.yaml").read_text())
    assert set(data) == {"gcp", "azure"}
    for cloud, entry in data.items():
        assert entry["source"].startswith("https://") and str(entry["date"])[:2] == "20"
        names = entry["regions"]
        assert len(names) == len(set(names)) >= 30, cloud
        assert all(isinstance(n, str) and n == n.lower() and " " not in n for n in names)


def test_every_stack_names_a_real_region_its_provider_agrees_with() -> None:
    for ref in list_stacks():
        config = read_stack_file(ref.path)
        spec = load_spec(config, ref.name)
        assert spec.region in cloud_regions(spec.cloud).names
        assert config.get(PROVIDER_REGION_KEYS[spec.cloud], spec.region) == spec.region


@pytest.mark.parametrize(("cloud", "region", "other"), [("aws", "europe-west4", "GCP"), ("gcp", "us-east-1", "AWS"),
                                                         ("azure", "eu-west-1", "AWS")])
def test_a_region_of_another_cloud_is_named_as_such(cloud: str, region: str, other: str) -> None:
    from cfcr.config.regions import region_problem

    problem = region_problem(cloud, region)
    assert problem is not None and f"{other} region (cfcr:cloud is {cloud})" in str(problem)
    assert "did you mean" not in str(problem)
