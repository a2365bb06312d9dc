"""The offline render: every stack renders; what it writes is complete, masked and real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from cfcr.config import load_stack
from cfcr.pki.specs import kubeadm_ca_cert_hash
from cfcr.render import RenderResult, render_stack, unwrap

ROOT = Path(__file__).resolve().parents[1]
STACKS = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


@pytest.fixture(scope="module", params=STACKS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[RenderResult, Path]:
    out = tmp_path_factory.mktemp(request.param)
    return render_stack(request.param, out), out


def test_there_are_stacks_for_every_cloud() -> None:
    assert {load_stack(s).cloud for s in STACKS} == {"aws", "gcp", "azure"}
    assert "aws-stable" in STACKS


def test_resources_json_lists_every_resource_with_its_wiring(rendered: tuple[RenderResult, Path]) -> None:
    result, out = rendered
    entries = json.loads((out / "resources.json").read_text())
    assert len(entries) == len(result.resources) > 20
    urns = {e["urn"] for e in entries}
    for entry in entries:
        assert set(entry) == {"urn", "type", "name", "parent", "dependencies", "inputs", "id", "outputs"}
        assert set(entry["dependencies"]) <= urns, entry["name"]
    types = [e["type"] for e in entries]
    cloud = load_stack(result.stack).cloud
    assert types[0] == f"cfcr:{cloud}:Cluster"
    assert "cfcr:bootstrap:ClusterBootstrap" in types
    assert "cfcr:pki:ClusterPki" in types
    by_urn = {e["urn"]: e for e in entries}
    for entry in entries[1:]:
        assert entry["parent"] in by_urn, f"{entry['name']} is not parented inside the cluster"
    spec = load_stack(result.stack)
    assert all(e["name"].startswith(spec.name or "") for e in entries), "child names derive from the cluster's"


def test_secrets_are_masked_unless_asked(rendered: tuple[RenderResult, Path]) -> None:
    _, out = rendered
    text = (out / "resources.json").read_text()
    assert "PRIVATE KEY" not in text
    assert '"[secret]"' in text


def test_show_secrets_reveals_them(tmp_path: Path) -> None:
    render_stack("aws-stable", tmp_path, show_secrets=True)
    assert "PRIVATE KEY" in (tmp_path / "resources.json").read_text()


def test_one_user_data_per_role(rendered: tuple[RenderResult, Path]) -> None:
    result, out = rendered
    spec = load_stack(result.stack)
    expected = {f"control-plane-{i}" for i in range(spec.control_plane.count)}
    expected |= {f"worker-{p.name}" for p in spec.node_pools}
    assert {p.parent.name for p in (out / "nodes").glob("*/user-data")} == expected
    for role in expected:
        assert (out / "nodes" / role / "user-data").read_bytes() == result.user_data[role]
    assert set(result.user_data) == expected


def test_no_key_material_in_user_data_even_when_secrets_are_shown(tmp_path: Path) -> None:
    result = render_stack("aws-stable", tmp_path, show_secrets=True)
    kubeconfig = yaml.safe_load(result.exports["adminKubeconfig"])
    # the rendered bootstrap-token halves and encryption key, to search for
    values = [unwrap(r.outputs.get("result") or r.outputs.get("base64")) for r in result.resources if r.type.startswith("random:")]
    assert len(values) == 3
    for role, data in result.user_data.items():
        assert b"PRIVATE KEY" not in data, role
        for value in values:
            assert value and value.encode() not in data, f"{role} carries a random secret"
        assert kubeconfig["users"][0]["user"]["client-key-data"].encode() not in data


def test_worker_user_data_pins_the_rendered_ca(tmp_path: Path) -> None:
    import gzip

    result = render_stack("aws-stable", tmp_path, show_secrets=True)
    ca_pem = result.exports["caBundle"]
    x509.load_pem_x509_certificate(ca_pem.encode())
    data = result.user_data["worker-general"]
    text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode()
    assert kubeadm_ca_cert_hash(ca_pem) in text


def test_exports_mask_secrets(rendered: tuple[RenderResult, Path]) -> None:
    result, _ = rendered
    assert result.exports["adminKubeconfig"] == "[secret]"
    assert result.exports["kubernetesVersion"].count(".") == 2


def test_etcd_static_pods_are_in_manifests(rendered: tuple[RenderResult, Path]) -> None:
    result, out = rendered
    spec = load_stack(result.stack)
    pods = sorted((out / "manifests" / "static-pods").glob("*/etcd.yaml"))
    assert len(pods) == spec.control_plane.count
    for path in pods:
        assert yaml.safe_load(path.read_text())["kind"] == "Pod"


def test_cli_renders_the_default_stack(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "cfcr", "render", "--stack", "aws-stable", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "rendered stack aws-stable" in done.stdout
    assert (tmp_path / "resources.json").is_file()


def test_cli_refuses_bad_config_before_building_anything(tmp_path: Path) -> None:
    stacks = tmp_path / "project" / "stacks"
    stacks.mkdir(parents=True)
    (stacks / "Pulumi.bad.yaml").write_text("config:\n  cfcr:cloud: aws\n  cfcr:region: us-east-1\n  cfcr:controlPlane: {count: 2}\n")
    out = tmp_path / "out"
    with pytest.raises(Exception) as caught:
        render_stack("bad", out, project_dir=tmp_path / "project")
    assert "cfcr:controlPlane.count" in str(caught.value)
    assert not out.exists()


CUSTOM_KINDS: dict[str, tuple[str, set[str]]] = {
    # cilium.io/v2 CiliumClusterwideNetworkPolicy spec fields (Cilium's policy reference)
    "CiliumClusterwideNetworkPolicy": ("cilium.io/v2", {"description", "endpointSelector", "nodeSelector",
                                                        "enableDefaultDeny", "ingress", "ingressDeny", "egress",
                                                        "egressDeny", "labels"}),
}
"""Custom resources cfcr authors, by kind: (apiVersion, the spec fields their CRD defines)."""


def test_every_manifest_validates_and_every_chart_is_pinned(rendered: tuple[RenderResult, Path]) -> None:
    import kubernetes_validate

    from cfcr import channels

    result, out = rendered
    version = channels.resolve(load_stack(result.stack).kubernetes.version).kubernetes.version
    files = sorted((out / "manifests").rglob("*.yaml"))
    assert files
    for path in files:
        obj = yaml.safe_load(path.read_text())
        if path.parent.name == "helm":
            chart = obj["helmChart"]
            assert chart["chart"] and chart["version"], path.name
            assert chart.get("repositoryOpts", {}).get("repo") or str(chart["chart"]).startswith("oci://"), path.name
            continue
        if obj["kind"] in CUSTOM_KINDS:
            # a custom resource: no schema in kubernetes_validate; its CRD's fields, checked by name
            assert obj["apiVersion"] == CUSTOM_KINDS[obj["kind"]][0], path.name
            assert set(obj["spec"]) <= CUSTOM_KINDS[obj["kind"]][1], path.name
            continue
        kubernetes_validate.validate(obj, version, strict=True)


def test_aws_stacks_carry_the_full_addon_set(rendered: tuple[RenderResult, Path]) -> None:
    result, _ = rendered
    spec = load_stack(result.stack)
    types = {r.type for r in result.resources}
    expected = {"cfcr:addons:ClusterAddons", "cfcr:addons:CoreDns", "cfcr:addons:CsrApprover",
                "cfcr:addons:CloudIntegration", "cfcr:addons:ClusterAutoscaler", "cfcr:addons:MetricsServer"}
    if spec.cni != "none":
        expected.add("cfcr:addons:Cni")
    # the program hands the cluster's termination queue to the addons: NTH drains from it
    assert ("cfcr:addons:TerminationHandler" in types) == (spec.cloud == "aws" and spec.aws.termination_queue)
    assert expected <= types
    assert ("cfcr:addons:KubeProxy" in types) == (not spec.cilium_kube_proxy_replacement)
