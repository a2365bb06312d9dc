"""The mirror mapping, the asset list and the air-gap check (docs/airgapped.md).

The air-gapped stack is rendered offline as cfcr renders it for `pulumi up`, with its origin
(the same stack without mirrors); the check must pass on it and fail on every way a render
can leave the site: a missed rewrite, a download the list does not name, a public URL, a
default stack without mirrors.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from cfcr.assets.check import AirgapReport, Finding, check_render, check_stack, public_origins
from cfcr.assets.listing import AssetList, origin_assets, render_to
from cfcr.assets.refs import FileRef, RenderRefs, render_refs
from cfcr.cli import main
from cfcr.config import ConfigError, load_spec, read_stack_config
from cfcr.mirrors import Mirrors, registry_host_url

STACK = "aws-airgapped"


@pytest.fixture(scope="module")
def airgapped(tmp_path_factory: pytest.TempPathFactory) -> tuple[AssetList, Path, RenderRefs]:
    raw = read_stack_config(STACK)
    spec = load_spec(raw, STACK)
    tmp = tmp_path_factory.mktemp("airgap")
    render = tmp / "stack"
    return origin_assets(STACK, raw, spec, tmp / "origin"), render, render_to(STACK, raw, render)


def _check(assets: AssetList, render: Path, refs: RenderRefs) -> AirgapReport:
    spec = load_spec(read_stack_config(STACK), STACK)
    return check_render(STACK, spec, assets, render, refs)


# --------------------------------------------------------------------------- the mapping

def test_file_urls_go_to_the_file_mirror_by_origin_host() -> None:
    m = Mirrors(files="https://files.example.com/cfcr/")
    assert m.file_url("https://dl.k8s.io/v1.36.6/k.tar.gz") == "https://files.example.com/cfcr/dl.k8s.io/v1.36.6/k.tar.gz"
    assert Mirrors().file_url("https://dl.k8s.io/a") == "https://dl.k8s.io/a"
    legacy = Mirrors(per_host={"github.com": ["https://gh.example.com/"]})
    assert legacy.file_url("https://github.com/x/y") == "https://gh.example.com/x/y"


def test_images_and_charts_go_to_the_registry_mirror_under_their_origin_host() -> None:
    m = Mirrors(registry="https://registry.example.com/v2/cfcr")
    assert m.image("registry.k8s.io/pause:3.10") == "registry.example.com/cfcr/registry.k8s.io/pause:3.10"
    assert m.image("nginx:1") == "registry.example.com/cfcr/docker.io/library/nginx:1"
    assert m.registry_host("registry.k8s.io") == "registry.example.com/cfcr/registry.k8s.io"
    assert m.chart("https://charts.example.org", "x") == ("oci://registry.example.com/cfcr/charts", "x")
    assert Mirrors().chart("https://charts.example.org", "x") == ("https://charts.example.org", "x")
    hosts = m.containerd_hosts(["quay.io"])
    assert hosts == {"quay.io": ["https://registry.example.com/v2/cfcr/quay.io"]}
    # containerd appends /v2 unless told the path is the API root
    assert registry_host_url(hosts["quay.io"][0]) == ("https://registry.example.com/v2/cfcr/quay.io", True)
    assert registry_host_url("https://mirror.example.com") == ("https://mirror.example.com", False)


def test_apt_mirror_replaces_both_archives() -> None:
    apt = Mirrors(apt="http://apt.example.com/ubuntu").apt_config()
    assert apt is not None and apt["primary"] == apt["security"] == [{"arches": ["default"], "uri": "http://apt.example.com/ubuntu"}]
    assert Mirrors().apt_config() is None


def test_one_file_mirror_applies() -> None:
    raw = {**read_stack_config(STACK), "cfcr:registryMirrors": {"dl.k8s.io": ["https://dl.example.com"]}}
    with pytest.raises(ConfigError, match=r"cfcr:registryMirrors\.dl\.k8s\.io: .*one file mirror applies"):
        load_spec(raw, STACK)


# --------------------------------------------------------------------------- the stack

def test_airgapped_render_fetches_exactly_its_assets_through_the_mirrors(airgapped) -> None:
    assets, render, refs = airgapped
    report = _check(assets, render, refs)
    assert report.ok, report.format()
    kinds = {k: len(assets.of_kind(k)) for k in ("file", "image", "chart", "package")}
    assert kinds["file"] >= 6 and kinds["image"] >= 15 and kinds["chart"] >= 5 and kinds["package"] >= 5
    for a in assets.assets:
        if a.kind != "package":
            assert a.fetched_as != a.origin, a
            assert "corp.example" in a.fetched_as, a
    # every pinned binary carries its digest in the list, the rest their checksum file
    for f in assets.of_kind("file"):
        assert f.verify.startswith(("sha256:", "sha512:", "sha512 from", "sha256 from", "the checksum file")), f


def test_a_missed_image_rewrite_is_found(airgapped, tmp_path: Path) -> None:
    assets, render, _ = airgapped
    broken = tmp_path / "render"
    shutil.copytree(render, broken)
    deployment = next((broken / "manifests" / "Deployment").glob("*coredns*.yaml"))
    text = deployment.read_text()
    assert "registry.corp.example/cfcr/registry.k8s.io/coredns/coredns" in text
    deployment.write_text(text.replace("registry.corp.example/cfcr/registry.k8s.io/", "registry.k8s.io/"))
    report = _check(assets, broken, render_refs(broken))
    kinds = {(f.kind, f.what.split(":")[0]) for f in report.findings}
    assert ("not in the asset list", "image registry.k8s.io/coredns/coredns") in kinds
    assert ("never fetched", "image registry.corp.example/cfcr/registry.k8s.io/coredns/coredns") in kinds


def test_a_public_url_and_an_unlisted_download_are_found(airgapped, tmp_path: Path) -> None:
    assets, render, _ = airgapped
    broken = tmp_path / "render"
    shutil.copytree(render, broken)
    user_data = broken / "nodes" / "worker-general" / "user-data.decompressed"
    doc = yaml.safe_load(user_data.read_text())
    for item in doc["write_files"]:
        if item["path"] == "/etc/cfcr/artifacts.list":
            item["content"] += "extra|1.0|https://downloads.example.org/extra.tgz|sha256|" + "0" * 64 + "|-\n"
    user_data.write_text("#cloud-config\n" + yaml.safe_dump(doc))
    report = _check(assets, broken, render_refs(broken))
    texts = [f.text() for f in report.findings]
    assert any(t.startswith("public origin: https://downloads.example.org/extra.tgz") for t in texts), texts
    assert any(t.startswith("not in the asset list: file https://downloads.example.org/extra.tgz") for t in texts)


def test_an_asset_the_render_never_fetches_is_found(airgapped) -> None:
    assets, render, refs = airgapped
    fewer = replace(refs, files={f for f in refs.files if f.name != "runc"}, packages=refs.packages - {"jq"})
    texts = [f.text() for f in _check(assets, render, fewer).findings]
    assert any(t.startswith("never fetched: file https://mirror.corp.example/files/github.com/opencontainers/runc/")
               for t in texts), texts
    assert "never fetched: package jq" in texts


def test_cloud_apis_without_a_private_endpoint_are_public_origins() -> None:
    spec = load_spec(read_stack_config(STACK), STACK)
    refs = RenderRefs()
    refs.add_url("https://secretsmanager.eu-central-1.amazonaws.com/", "x")
    refs.add_url("http://169.254.169.254/latest/api/token", "x")
    found = public_origins(spec, refs, [])
    assert [f.what for f in found] == ["https://secretsmanager.eu-central-1.amazonaws.com/"]
    endpoint = {"type": "aws:ec2/vpcEndpoint:VpcEndpoint",
                "inputs": {"serviceName": "com.amazonaws.eu-central-1.secretsmanager"}}
    assert public_origins(spec, refs, [endpoint]) == []


def test_the_default_stack_is_not_air_gapped() -> None:
    report = check_stack("aws-stable")
    assert not report.ok
    publics = {f.what.split("/")[2] for f in report.findings if f.kind == "public origin"}
    assert {"dl.k8s.io", "github.com"} <= publics
    assert all(a.fetched_as == a.origin for a in report.assets.assets if a.kind != "package")
    assert not report.mirrored and "names no mirror" in report.format()


def test_assets_command_prints_json_for_mirroring_tools(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assets", "--stack", STACK, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"stack", "kubernetesVersion", "mirrors", "files", "images", "charts", "packages"}
    assert all({"origin", "fetched_as"} <= set(row) for kind in ("files", "images", "charts") for row in data[kind])
    assert data["mirrors"]["registry"] == "https://registry.corp.example/cfcr"


def test_finding_text_names_what_and_where() -> None:
    assert Finding("public origin", "https://x.example", "a, b").text() == "public origin: https://x.example  [a, b]"
    assert FileRef("u", "n", "1") < FileRef("v", "n", "1")


def test_kubeadm_pulls_only_listed_images_from_the_mirror(airgapped, tmp_path: Path) -> None:
    """The real kubeadm of the stack's version reads each control-plane member's rendered
    configuration and names the images it pulls (``kubeadm config images list``, what its
    preflight pulls): every one is on the mirror and in the asset list."""
    import subprocess

    from cfcr import channels
    from tests.support.tools import require_tool
    from tests.test_kubeadm_validate import fill

    assets, render, _ = airgapped
    spec = load_spec(read_stack_config(STACK), STACK)
    kubeadm = require_tool("kubeadm", channels.resolve(spec.kubernetes.version).kubernetes.version)
    listed = {a.fetched_as for a in assets.of_kind("image")}
    members = sorted((render / "nodes").glob("control-plane-*/user-data.decompressed"))
    assert len(members) == 3
    for path in members:
        doc = yaml.safe_load(path.read_text())
        template = next(f["content"] for f in doc["write_files"] if f["path"] == "/etc/cfcr/kubeadm.yaml.tmpl")
        config = tmp_path / f"{path.parent.name}.yaml"
        config.write_text(fill(template))
        out = subprocess.run([str(kubeadm), "config", "images", "list", "--config", str(config)],
                             capture_output=True, text=True, timeout=60, check=True)
        images = out.stdout.split()
        assert len(images) >= 4, out.stdout
        assert all(i.startswith("registry.corp.example/cfcr/registry.k8s.io/") for i in images), images
        assert set(images) <= listed, sorted(set(images) - listed)


def test_the_restore_procedure_fetches_its_listed_files_through_the_mirror(airgapped) -> None:
    from cfcr.assets.listing import RESTORE_NOTE
    from cfcr.etcd_restore import etcdutl_download

    assets, _, _ = airgapped
    spec = load_spec(read_stack_config(STACK), STACK)
    tarball, sums, _ = etcdutl_download(spec)
    restore = {a.fetched_as: a.origin for a in assets.of_kind("file") if a.note == RESTORE_NOTE}
    assert set(restore) == {tarball, sums}
    assert restore[tarball].startswith("https://github.com/etcd-io/etcd/releases/download/v3.6.")
    assert tarball == "https://mirror.corp.example/files/" + restore[tarball].removeprefix("https://")


def test_fewer_features_fewer_endpoints_still_no_public_origin() -> None:
    """Without etcd backups and the autoscaler there is no STS, S3 or Auto Scaling endpoint:
    the nodes then name none of those APIs either."""
    raw = {**read_stack_config(STACK), "cfcr:etcdBackups": {"enabled": False}, "cfcr:addons": {"autoscaler": False}}
    report = check_stack(STACK, config=raw)
    assert report.ok, report.format()
    assert report.mirrored and "names no mirror" not in report.format()


def test_a_cloud_whose_user_data_is_text_lists_its_node_files_too(capsys: pytest.CaptureFixture[str]) -> None:
    """GCP's user-data is plain text (no gzip): the list reads it as it reads AWS's decompressed one,
    so both stable stacks name the same pinned node binaries and OS packages."""
    listed = {}
    for stack in ("aws-stable", "gcp-stable"):
        assert main(["assets", "--stack", stack, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        listed[stack] = doc
    files = {s: sorted(f["origin"] for f in d["files"]) for s, d in listed.items()}
    assert len(files["gcp-stable"]) > 4 and files["gcp-stable"] == files["aws-stable"]
    assert listed["gcp-stable"]["packages"] == listed["aws-stable"]["packages"]
