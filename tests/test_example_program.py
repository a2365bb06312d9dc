"""examples/platform-program renders offline through the command its README gives, and builds what it says:
a cfcr Cluster on the network team's subnets (no VPC of cfcr's), and cfcr's addons on a cluster cfcr
did not build, through a provider made from that cluster's kubeconfig."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cfcr.render import RenderResult, render_program

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "platform-program"
CONFIG = yaml.safe_load((EXAMPLE / "Pulumi.dev.yaml").read_text())["config"]
SUBNETS = CONFIG["platform-cluster:subnetIds"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("example")
    proc = subprocess.run(
        [sys.executable, "-m", "cfcr", "render", "--program", str(EXAMPLE), "--stack", "dev", "--out", str(out),
         "--show-secrets"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"-> {out}" in proc.stdout
    return out


@pytest.fixture(scope="module")
def resources(rendered: Path) -> list[dict[str, Any]]:
    return list(json.loads((rendered / "resources.json").read_text()))


def _one(resources: list[dict[str, Any]], type_: str, name: str) -> dict[str, Any]:
    found = [r for r in resources if r["type"] == type_ and r["name"] == name]
    assert len(found) == 1, (type_, name, len(found))
    return found[0]


def test_the_readme_gives_the_command_the_test_runs() -> None:
    readme = (EXAMPLE / "README.md").read_text()
    assert "python -m cfcr render --program examples/platform-program --stack dev --out" in readme
    assert "pulumi up" in readme


def test_the_cluster_uses_the_given_subnets_and_creates_no_network(resources: list[dict[str, Any]]) -> None:
    types = {r["type"] for r in resources}
    assert "aws:ec2/vpc:Vpc" not in types and "aws:ec2/subnet:Subnet" not in types
    assert not types & {"aws:ec2/natGateway:NatGateway", "aws:ec2/internetGateway:InternetGateway"}
    _one(resources, "cfcr:aws:Cluster", "payments")
    members = sorted((r for r in resources if r["type"] == "aws:ec2/instance:Instance"), key=lambda r: r["name"])
    assert [r["name"] for r in members] == ["payments-cp-0", "payments-cp-1", "payments-cp-2"]
    assert [r["inputs"]["subnetId"] for r in members] == SUBNETS
    assert _one(resources, "aws:autoscaling/group:Group", "payments-apps")["inputs"]["vpcZoneIdentifiers"] == SUBNETS
    assert _one(resources, "aws:lb/loadBalancer:LoadBalancer", "payments-api")["inputs"]["subnets"] == SUBNETS
    groups = [r for r in resources if r["type"] == "aws:ec2/securityGroup:SecurityGroup"]
    assert groups and {r["inputs"]["vpcId"] for r in groups} == {CONFIG["platform-cluster:vpcId"]}


def test_the_external_clusters_addons_go_through_its_own_provider(rendered: Path,
                                                                  resources: list[dict[str, Any]]) -> None:
    provider = _one(resources, "pulumi:providers:kubernetes", "tools-addons-k8s")
    assert provider["inputs"]["kubeconfig"] == CONFIG["platform-cluster:toolsKubeconfig"]
    assert provider["inputs"]["clusterIdentifier"] == "tools"
    tools = [r for r in resources if r["name"].startswith("tools-")]
    assert not [r["name"] for r in tools if r["type"].startswith("aws:")]  # cfcr builds none of its machines
    assert not [r for r in tools if r["type"] == "kubernetes:helm.sh/v4:Chart" and "tigera" in r["name"]]  # cni: none
    charts = {p.name for p in (rendered / "manifests" / "helm").glob("tools-addons-*.yaml")}
    assert {"tools-addons-cloud-aws-ebs-csi-driver.yaml", "tools-addons-metrics-server-metrics-server.yaml",
            "tools-addons-autoscaler-cluster-autoscaler.yaml"} <= charts
    autoscaler = yaml.safe_load((rendered / "manifests" / "helm" / "tools-addons-autoscaler-cluster-autoscaler.yaml")
                                .read_text())
    assert "tools" in json.dumps(autoscaler["helmChart"]["values"])


@pytest.fixture(scope="module")
def in_process() -> RenderResult:
    return render_program(EXAMPLE, "dev", None)


def test_every_addon_object_names_its_clusters_provider(in_process: RenderResult) -> None:
    providers = {r.name: r.urn for r in in_process.resources if r.type == "pulumi:providers:kubernetes"}
    assert set(providers) == {"payments-addons-k8s", "tools-addons-k8s"}
    objects = [r for r in in_process.resources if r.custom and r.type.startswith("kubernetes:")]
    for cluster in ("payments", "tools"):
        mine = [r for r in objects if r.name.startswith(f"{cluster}-addons-")]
        assert mine, cluster
        wrong = [r.name for r in mine if not (r.provider or "").startswith(providers[f"{cluster}-addons-k8s"] + "::")]
        assert wrong == [], cluster
    assert in_process.exports["paymentsSubnetIds"] == SUBNETS
    assert in_process.exports["paymentsKubeconfig"] == "[secret]"
    assert {"cloud", "coredns", "kube-proxy"} <= set(in_process.exports["toolsAddons"])
