"""The addon registry (cfcr/addon_registry.py) is the one list of addons: releases.yaml pins
exactly its charts, ``addons.extraValues`` accepts exactly its chart keys and each reaches its
own addon's chart, and ``ClusterAddons`` builds exactly its enabled rows, in order, with the
names, components and dependencies the rows give."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pydantic import ValidationError

from cfcr import addon_registry, channels
from cfcr.addon_registry import ADDON_PINS, ADDONS, BY_NAME, CHART_KEYS, NETWORK, AddonRow
from cfcr.addons import COMPONENTS, ClusterAddons, ClusterAddonsArgs, CloudFacts
from cfcr.channels import model
from cfcr.config import ClusterSpec, ConfigError, load_spec
from cfcr.config import addons as config_addons
from cfcr.render import RecordedResource, run_program, unwrap
from cfcr.render.mocks import RecordingMonitor

API = "https://api.cfcr-dev.cfcr.internal:6443"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/cfcr-dev-termination"
RELEASES_YAML = Path(model.__file__).with_name("releases.yaml")
CHART = "kubernetes:helm.sh/v4:Chart"
GATE = "pulumi-python:dynamic:Resource"
MARKER = "cfcrRegistryMarker"
CHARTLESS = {"ccm"}
"""Chart keys whose addon installs no chart for them: the cloud controller manager is authored
objects (the channel confirms no chart versions), so ``extraValues.ccm`` is accepted and unused."""


def make_spec(**overrides: Any) -> ClusterSpec:
    return load_spec({"cloud": "aws", "region": "us-east-1", **overrides}, "dev")


def render(spec: ClusterSpec, queue_url: str | None = QUEUE_URL) -> tuple[RecordingMonitor, ClusterAddons]:
    def program() -> ClusterAddons:
        assert spec.name is not None
        return ClusterAddons(spec.name, ClusterAddonsArgs(
            spec, pulumi.Output.secret("apiVersion: v1\nkind: Config\n"), API,
            CloudFacts.from_spec(spec, termination_queue_url=queue_url)))

    monitor, addons, _ = run_program(program, project="cfcr", stack="dev")
    return monitor, addons


EVERYTHING = {"cni": "flannel", "addons": {
    "logging": {"enabled": True}, "vpa": True,
    "extraValues": {key: {MARKER: key} for key in CHART_KEYS},
}}
"""Every row enabled on AWS (with a termination queue), each chart key given a marker value."""


@pytest.fixture(scope="module")
def everything() -> Iterator[tuple[RecordingMonitor, ClusterAddons]]:
    yield render(make_spec(**EVERYTHING))


def components(monitor: RecordingMonitor) -> list[RecordedResource]:
    """The addon components, children of ``ClusterAddons`` (in the order they were registered)."""
    (top,) = [r for r in monitor.recorded if r.type == "cfcr:addons:ClusterAddons"]
    return [r for r in monitor.recorded if r.parent == top.urn and r.type.startswith("cfcr:addons:")]


def descendants(monitor: RecordingMonitor, root: RecordedResource) -> list[RecordedResource]:
    urns = {root.urn}
    out = []
    for r in monitor.recorded:  # parents are registered before their children
        if r.parent in urns:
            urns.add(r.urn)
            out.append(r)
    return out


# --- the table ----------------------------------------------------------------


def test_rows_are_unique_and_each_has_a_component() -> None:
    names = [row.name for row in ADDONS]
    assert len(names) == len(set(names)) and BY_NAME == {row.name: row for row in ADDONS}
    assert list(COMPONENTS) == names, "cfcr/addons/registry.py maps exactly the registry's rows, in order"
    pins = [row.pin for row in ADDONS if row.pin is not None]
    assert len(pins) == len(set(pins)) and sorted(pins) == sorted(ADDON_PINS)
    keys = [key for row in ADDONS for key in row.chart_keys]
    assert len(keys) == len(set(keys)) and sorted(keys) == sorted(CHART_KEYS)
    for rank in ([row.pin_rank for row in ADDONS], [row.chart_rank for row in ADDONS]):
        given = [r for r in rank if r is not None]
        assert len(given) == len(set(given)), "two rows share a listing rank"
    for row in ADDONS:
        assert row.description.strip() and row.description.endswith("."), row.name
        assert (row.pin is None) == (row.pin_rank is None), row.name
        assert (not row.chart_keys) == (row.chart_rank is None), row.name


def test_the_network_row_comes_first_and_waits_only_for_the_gate() -> None:
    assert ADDONS[0].name == NETWORK and ADDONS[0].after == "gate"
    assert all(row.after in ("gate", "network") for row in ADDONS)
    # only what needs no pod network is applied before it: kube-proxy (host network, part of
    # the Service network itself) and the RBAC personas (API objects, no pods)
    assert {row.name for row in ADDONS if row.after == "gate"} == {NETWORK, "kube-proxy", "rbac"}


def test_the_lists_messages_name_keep_their_order() -> None:
    # the order users see in the channel listing and in errors (unknown addon, unknown chart)
    assert channels.ADDON_NAMES == ADDON_PINS == (
        "metrics-server", "kubelet-csr-approver", "cluster-autoscaler", "fluent-bit", "vpa",
        "aws-node-termination-handler",
    )
    assert config_addons.CHART_KEYS == CHART_KEYS == (
        "cni", "metrics-server", "csr-approver", "ccm", "csi", "autoscaler", "termination-handler", "logging", "vpa",
    )


def test_unranked_rows_are_listed_last_in_table_order() -> None:
    rows = (AddonRow("a", "A.", "gate", pin="a", chart_keys=("a",)),
            AddonRow("b", "B.", "gate", pin="b", pin_rank=0, chart_keys=("b1", "b2"), chart_rank=0),
            AddonRow("c", "C.", "gate", pin="c", chart_keys=("c",)))
    assert [r.name for r in addon_registry._ranked(rows, lambda r: r.pin_rank)] == ["b", "a", "c"]


# --- releases.yaml ------------------------------------------------------------


def test_releases_yaml_pins_exactly_the_registrys_addons() -> None:
    raw = yaml.safe_load(RELEASES_YAML.read_text())
    assert raw["releases"]
    for version, release in raw["releases"].items():
        assert set(release["addons"]) == set(ADDON_PINS), version
        assert tuple(channels.resolve(version).addons) == ADDON_PINS, version


def test_a_pin_the_registry_does_not_know_is_refused() -> None:
    raw = yaml.safe_load(RELEASES_YAML.read_text())
    version = next(iter(raw["releases"]))
    doc = model._ReleaseDoc.model_validate(raw["releases"][version])
    extra = {**raw["releases"][version], "addons": {**raw["releases"][version]["addons"],
                                                     "weave-scope": raw["releases"][version]["addons"]["vpa"]}}
    assert doc.addons.keys() == set(ADDON_PINS)
    with pytest.raises(ValidationError, match=re.escape(f"need exactly {ADDON_PINS}")):
        model._ReleaseDoc.model_validate(extra)


# --- addons.extraValues -------------------------------------------------------


def test_extra_values_accept_exactly_the_registrys_chart_keys() -> None:
    spec = make_spec(addons={"extraValues": {key: {} for key in CHART_KEYS}})
    assert set(spec.addons.extra_values) == set(CHART_KEYS)
    with pytest.raises(ConfigError, match="allowed: " + ", ".join(CHART_KEYS)):
        make_spec(addons={"extraValues": {"istio": {}}})
    description = config_addons.AddonsConfig.model_fields["extra_values"].description
    assert description is not None and "keys: " + ", ".join(CHART_KEYS) in description


def test_each_chart_key_reaches_a_chart_of_its_own_addon(everything: tuple[RecordingMonitor, ClusterAddons]) -> None:
    monitor, _ = everything
    seen: dict[str, set[str]] = {}
    for component in components(monitor):
        row = component.name.removeprefix("cfcr-dev-")
        for r in descendants(monitor, component):
            if r.type == CHART:
                marker = unwrap(r.inputs)["values"].get(MARKER)
                if marker is not None:
                    seen.setdefault(marker, set()).add(row)
    expected = {key: {row.name} for row in ADDONS for key in row.chart_keys if key not in CHARTLESS}
    assert seen == expected


# --- ClusterAddons ------------------------------------------------------------


def test_cluster_addons_builds_the_enabled_rows_in_order(everything: tuple[RecordingMonitor, ClusterAddons]) -> None:
    monitor, addons = everything
    assert list(addons.addons) == [row.name for row in ADDONS]
    built = {r.name: r for r in components(monitor)}
    assert set(built) == {f"cfcr-dev-{row.name}" for row in ADDONS}
    for row in ADDONS:
        component = COMPONENTS[row.name].component
        addon = addons.addons[row.name]
        assert type(addon) is component and addon._name == f"cfcr-dev-{row.name}"
        assert built[f"cfcr-dev-{row.name}"].type.startswith("cfcr:addons:")
    typed = {"cni": addons.cni, "kube-proxy": addons.kube_proxy, "coredns": addons.coredns,
             "csr-approver": addons.csr_approver, "cloud": addons.cloud, "rbac": addons.rbac,
             "metrics-server": addons.metrics_server, "autoscaler": addons.autoscaler,
             "termination-handler": addons.termination_handler, "logging": addons.logging, "vpa": addons.vpa}
    assert typed == addons.addons


def test_each_addon_waits_for_what_its_row_says(everything: tuple[RecordingMonitor, ClusterAddons]) -> None:
    monitor, _ = everything
    (gate,) = [r for r in monitor.by_type(GATE) if r.name.endswith("readiness-gate")]
    built = {r.name.removeprefix("cfcr-dev-"): r for r in components(monitor)}
    network = {r.urn for r in [built[NETWORK], *descendants(monitor, built[NETWORK])]}
    for row in ADDONS:
        children = [r for r in descendants(monitor, built[row.name]) if r.type.startswith("kubernetes:")]
        assert children, row.name
        for child in children:
            assert gate.urn in child.dependencies, (row.name, child.name)
            if row.name == NETWORK:
                continue
            waits_for_network = bool(network & set(child.dependencies))
            assert waits_for_network is (row.after == "network"), (row.name, child.name)


@pytest.mark.parametrize(("overrides", "queue", "absent"), [
    ({"cni": "cilium", "ciliumKubeProxyReplacement": True}, QUEUE_URL, {"kube-proxy", "logging", "vpa"}),
    ({"addons": {"metricsServer": False, "autoscaler": False}}, None,
     {"metrics-server", "autoscaler", "termination-handler", "logging", "vpa"}),
])
def test_rules_decide_which_rows_are_built(overrides: dict[str, Any], queue: str | None, absent: set[str]) -> None:
    spec = make_spec(**overrides)
    facts = CloudFacts.from_spec(spec, termination_queue_url=queue)
    enabled = [row.name for row in ADDONS if row.enabled(spec, facts)]
    assert set(BY_NAME) - set(enabled) == absent
    monitor, addons = render(spec, queue)
    assert list(addons.addons) == enabled
    assert {r.name for r in components(monitor)} == {f"cfcr-dev-{name}" for name in enabled}


def test_the_lower_layers_read_the_table_without_pulumi() -> None:
    """cfcr.config and cfcr.channels take their lists from the registry, which imports neither
    cfcr.addons nor Pulumi (they are a higher layer)."""
    import subprocess
    import sys

    code = ("import sys, cfcr.addon_registry, cfcr.channels, cfcr.config; "
            "print(sorted(m for m in sys.modules if m.startswith(('cfcr.addons', 'pulumi'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
