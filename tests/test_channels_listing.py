"""``python -m cfcr channels``, the per-artifact verification statement on nodes, the
same-origin rule for publisher checksum files, and the channel-bump script."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from cfcr import cli
from cfcr.channels import ARCHITECTURES, CHANNELS, known_versions, model, resolve
from cfcr.channels import bump
from cfcr.channels.listing import channel_listing, format_text, listing_json, release_pins
from cfcr.node.packages import artifacts_list, downloads, package_files, ARTIFACTS_LIST_PATH

RELEASES_YAML = Path(model.__file__).with_name("releases.yaml")


def expected_components() -> set[str]:
    return ({"kubernetes", "etcd", "coredns", "pause", *model.COMPONENT_NAMES}
            | {f"cni/{n}" for n in model.CNI_NAMES}
            | {f"{c}/{kind}" for c in model.CLOUD_NAMES for kind in ("ccm", "csi")}
            | {f"addon/{n}" for n in model.ADDON_NAMES})


# --- the listing -----------------------------------------------------------


@pytest.mark.parametrize("version", known_versions())
def test_listing_names_every_component_of_every_release_with_its_source(version: str) -> None:
    pins = release_pins(resolve(version))
    assert [p.component for p in pins].count("kubernetes") == 1
    assert {p.component for p in pins} == expected_components()
    assert len(pins) == len(expected_components())
    for pin in pins:
        assert pin.version and pin.source.strip(), pin
    rel = resolve(version)
    by_name = {p.component: p for p in pins}
    assert by_name["kubernetes"].version == version
    assert by_name["etcd"].version == rel.etcd.version
    assert by_name["aws/ccm"].version == rel.cloud("aws").ccm.version
    assert by_name["aws/ccm"].confirmed is rel.cloud("aws").ccm.confirmed
    assert by_name["addon/cluster-autoscaler"].detail.endswith(f"({rel.addon('cluster-autoscaler').images[0]})")
    for name in ("kubernetes", *model.COMPONENT_NAMES):
        art = rel.kubernetes.tarball if name == "kubernetes" else rel.component(name)
        assert by_name[name].verification == art.checksum_source
        assert by_name[name].confirmed is (art.checksum_source == "pinned")


def test_text_listing_shows_channels_every_release_and_every_pin() -> None:
    listing = channel_listing()
    text = format_text(listing)
    assert [r.version for r in listing] == sorted(known_versions(), key=model.parse_version, reverse=True)
    for channel, version in CHANNELS.items():
        assert re.search(rf"^  {channel}\s+-> Kubernetes {re.escape(version)}$", text, re.MULTILINE)
        assert f"release {version} ({channel})" in text
    kept = [v for v in known_versions() if v not in CHANNELS.values()]
    for version in kept:
        assert f"release {version} (no channel: kept as an upgrade source)" in text
    blocks = text.split("\nrelease ")[1:]
    assert len(blocks) == len(known_versions())
    for block in blocks:
        for component in expected_components():
            assert re.search(rf"^  {re.escape(component)}\s", block, re.MULTILINE), (block[:20], component)
        assert block.count("source: ") == len(expected_components())
    brief = format_text(listing, sources=False)
    assert "source: " not in brief and "digest from publisher file" in brief and "digest pinned" in brief


def test_unconfirmed_pins_are_flagged_in_the_text() -> None:
    text = format_text(channel_listing(), sources=False)
    edge = text.split(f"release {CHANNELS['edge']} (edge)")[1].split("\nrelease ")[0]
    ccm = next(line for line in edge.splitlines() if line.strip().startswith("aws/ccm"))
    assert resolve("edge").cloud("aws").ccm.confirmed is False
    assert ccm.endswith("[UNCONFIRMED]")
    csi = next(line for line in edge.splitlines() if line.strip().startswith("aws/csi"))
    assert not csi.endswith("[UNCONFIRMED]")


def test_cli_channels_json_and_filter(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["channels", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["channels"] == dict(CHANNELS)
    assert [r["version"] for r in data["releases"]] == [r.version for r in channel_listing()]
    for release in data["releases"]:
        assert {p["component"] for p in release["pins"]} == expected_components()
        assert all(p["verification"] in {"pinned", "publisher-file", "image-tag", "chart-version"}
                   for p in release["pins"])
    assert data == listing_json(channel_listing())

    assert cli.main(["channels", "edge", "--brief"]) == 0
    out = capsys.readouterr().out
    assert f"release {CHANNELS['edge']} (edge)" in out and f"release {CHANNELS['stable']}" not in out

    assert cli.main(["channels", "1.99.0"]) == 2
    assert "unknown Kubernetes release '1.99.0'" in capsys.readouterr().err


# --- what the node's artifacts.list says -----------------------------------


@pytest.mark.parametrize("version", known_versions())
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_artifacts_list_states_per_artifact_how_its_digest_is_established(version: str, arch: str) -> None:
    rel = resolve(version)
    items = downloads(rel, arch, {})
    text = artifacts_list(items)
    lines = text.splitlines()
    # the boot script skips '#' lines and reads name|version|url|algo|digest|sum_url
    data = [line for line in lines if line and not line.startswith("#")]
    assert [line.split("|")[0] for line in data] == ["kubernetes", *model.COMPONENT_NAMES]
    for item in items:
        row = item.line()
        comment = lines[lines.index(row) - 1]
        assert comment.startswith(f"# {item.name} {item.version}: ")
        assert "|" not in comment
        art = rel.kubernetes.tarball if item.name == "kubernetes" else rel.component(item.name)
        if art.checksum_source == "pinned":
            assert row.split("|")[4] == art.checksum(arch).value
            assert comment.endswith(f": {art.algorithm} pinned by cfcr")
        else:
            assert row.split("|")[4] == "-"
            url = art.checksum(arch).file_url
            assert url and row.split("|")[5] == url
            assert comment.endswith(f": not pinned by cfcr; {art.algorithm} read from the publisher's file {url}")


def test_artifacts_statement_follows_a_mirror_and_reaches_the_node_file() -> None:
    rel = resolve("edge")
    assert rel.kubernetes.tarball.checksum_source == "publisher-file"
    files = package_files(rel, "arm64", {"dl.k8s.io": ["https://mirror.example.com/k8s"]}, "unix:///run/containerd/containerd.sock")
    content, _mode = files[ARTIFACTS_LIST_PATH]
    mirrored = f"https://mirror.example.com/k8s/v{rel.version}/kubernetes-node-linux-arm64.tar.gz.sha512"
    assert f"# kubernetes {rel.version}: not pinned by cfcr; sha512 read from the publisher's file {mirrored}\n" in content
    assert f"# containerd {rel.component('containerd').version}: sha256 pinned by cfcr\n" in content


# --- publisher files: https, same origin ------------------------------------


def _raw(file_url: str) -> dict[str, object]:
    return {"version": "1.2.3", "url": "https://dl.k8s.io/v{version}/x-{arch}.tar.gz", "algorithm": "sha512",
            "checksum_source": "publisher-file", "checksums": None, "file_url": file_url, "source": "t"}


def test_publisher_file_must_be_https_from_the_artifacts_origin() -> None:
    ok = model._artifact("x", _raw("https://dl.k8s.io/v{version}/x-{arch}.tar.gz.sha512"), "t")
    assert ok.checksum("arm64").file_url == "https://dl.k8s.io/v1.2.3/x-arm64.tar.gz.sha512"
    with pytest.raises(model.ReleaseDataError, match="own origin"):
        model._artifact("x", _raw("https://checksums.example.com/v{version}/x-{arch}.sha512"), "t")
    with pytest.raises(model.ReleaseDataError, match="https"):
        model._artifact("x", _raw("http://dl.k8s.io/v{version}/x-{arch}.tar.gz.sha512"), "t")


# --- the bump script ----------------------------------------------------------


class FakeProxy:
    """Stands in for the Go module proxy (the network): maps URL -> (status, body)."""

    def __init__(self, answers: dict[str, tuple[int, str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, url: str) -> tuple[int, str]:
        self.asked.append(url)
        return self.answers.get(url, (404, "not found"))


def proxy_for(version: str, *, kubernetes: int = 200) -> FakeProxy:
    _, minor, patch = model.parse_version(version)
    p = bump.GO_PROXY
    return FakeProxy({
        f"{p}/k8s.io/api/@v/v0.{minor}.{patch}.info": (200, "{}"),
        f"{p}/k8s.io/kubernetes/@v/v{version}.info": (kubernetes, ""),
        f"{p}/go.etcd.io/etcd/server/v3/@v/list": (200, "v3.6.16\nv3.7.3\nv3.8.0-alpha.0\n"),
        f"{p}/github.com/containerd/containerd/v2/@v/list": (200, "v2.4.1\nv2.4.2\n"),
    })


def test_bump_refuses_a_version_the_proxy_does_not_serve(tmp_path: Path) -> None:
    p = bump.GO_PROXY
    fake = FakeProxy({f"{p}/k8s.io/api/@v/list": (200, "v0.37.0\nv0.37.2\nv0.37.3-rc.0\n")})
    with pytest.raises(bump.BumpError, match=r"1\.37\.9 is not published.*answers 404.*newest 1\.37 patch it lists is 1\.37\.2"):
        bump.plan_bump("1.37.9", "edge", modcache=tmp_path, get=fake)
    assert fake.asked[0] == f"{p}/k8s.io/api/@v/v0.37.9.info"


def test_bump_refuses_a_version_not_newer_than_the_channel(tmp_path: Path) -> None:
    fake = proxy_for(CHANNELS["edge"])
    with pytest.raises(bump.BumpError, match="not newer"):
        bump.plan_bump(CHANNELS["edge"], "edge", modcache=tmp_path, get=fake)
    assert fake.asked == []


def test_bump_cli_exit_code_on_refusal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    monkeypatch.setattr(bump, "http_get", FakeProxy({}))
    assert bump.main(["1.37.9", "--modcache", str(tmp_path)]) == 2
    assert "not published" in capsys.readouterr().err


def test_bump_skeleton_never_invents_a_checksum(tmp_path: Path) -> None:
    plan = bump.plan_bump("1.37.3", "edge", modcache=tmp_path, get=proxy_for("1.37.3", kubernetes=403))
    text = bump.release_skeleton(plan)
    assert not re.search(r"[0-9a-f]{64}", text)
    entry = yaml.safe_load("releases:\n" + text.replace("*runtime", "null").replace("*cni", "null")
                           .replace("*addons", "null"))["releases"]["1.37.3"]
    assert entry["kubernetes"]["checksum_source"] == "publisher-file" and entry["kubernetes"]["checksums"] is None
    assert entry["coredns"]["version"] is None and entry["pause"]["version"] is None
    assert plan.newest == {"etcd": "3.7.3", "containerd": "2.4.2"}
    assert any("substitute" in t for t in plan.todo) and any("sha512 not found" in t for t in plan.todo)


def _fake_modcache(root: Path, version: str, amd: str, arm: str) -> None:
    major, minor, _ = model.parse_version(version)
    consts = root / f"k8s.io/kubernetes@v{version}/cmd/kubeadm/app/constants/constants.go"
    consts.parent.mkdir(parents=True)
    consts.write_text('const (\n\tDefaultEtcdVersion = "3.7.0-0"\n\tCoreDNSVersion = "v1.14.9"\n\tPauseVersion = "3.10.3"\n)\n')
    log = root / f"k8s.io/kubernetes@v{major}.{minor + 1}.0/CHANGELOG/CHANGELOG-{major}.{minor}.md"
    log.parent.mkdir(parents=True)
    row = "[kubernetes-node-linux-{a}.tar.gz](https://dl.k8s.io/v{v}/kubernetes-node-linux-{a}.tar.gz) | {h}\n"
    log.write_text(f"# v{version}\n\n## Downloads for v{version}\n\n### Node Binaries\n\nfilename | sha512 hash\n-------- | ---\n"
                   + row.format(a="amd64", v=version, h=amd) + row.format(a="arm64", v=version, h=arm)
                   + f"\n# v{major}.{minor}.0\n\n### Node Binaries\n"
                   + row.format(a="amd64", v=f"{major}.{minor}.0", h="f" * 128))


def test_bump_takes_what_the_module_cache_confirms_and_names_the_file(tmp_path: Path) -> None:
    amd, arm = "a" * 128, "b" * 128
    _fake_modcache(tmp_path, "1.37.3", amd, arm)
    plan = bump.plan_bump("1.37.3", "edge", modcache=tmp_path, get=proxy_for("1.37.3"))
    assert plan.binaries is not None and plan.binaries.sha512 == {"amd64": amd, "arm64": arm}
    text = bump.release_skeleton(plan)
    entry = yaml.safe_load("releases:\n" + text.replace("*runtime", "null").replace("*cni", "null")
                           .replace("*addons", "null"))["releases"]["1.37.3"]
    k = entry["kubernetes"]
    assert k["checksum_source"] == "pinned" and k["checksums"] == {"amd64": amd, "arm64": arm}
    assert "CHANGELOG-1.37.md" in k["source"] and "v1.37.3 Node Binaries" in k["source"]
    assert entry["coredns"]["version"] == "v1.14.9" and "constants.go" in entry["coredns"]["source"]
    assert entry["pause"]["version"] == "3.10.3"
    assert "kubeadm@v1.37.3 defaults to 3.7.0-0" in entry["etcd"]["source"]


def test_releases_yaml_refuses_an_unfinished_skeleton(tmp_path: Path) -> None:
    _fake_modcache(tmp_path, "1.37.3", "a" * 128, "b" * 128)
    plan = bump.plan_bump("1.37.3", "edge", modcache=tmp_path, get=proxy_for("1.37.3"))
    text = RELEASES_YAML.read_text() + bump.release_skeleton(plan)
    with pytest.raises(model.ReleaseDataError, match=r"releases\.1\.37\.3\.cloud"):
        model._parse(yaml.safe_load(text))
    # with the cloud block a person confirmed, the entry loads
    finished = text.replace("    cloud: null  # TODO", "    cloud:\n      aws: {ccm: *aws_ccm_x, csi: *aws_csi}\n"
                            "      gcp: {ccm: *aws_ccm_x, csi: *gcp_csi}\n      azure: {ccm: *aws_ccm_x, csi: *azure_csi}\n    #")
    finished = finished.replace("_aws_csi: &aws_csi", "_x: &aws_ccm_x {image: \"registry.k8s.io/x:v1\", chart: null, "
                                "confirmed: true, source: t}\n_aws_csi: &aws_csi")
    data = model._parse(yaml.safe_load(finished))
    assert data.releases["1.37.3"].kubernetes.sha512("arm64") == "b" * 128
