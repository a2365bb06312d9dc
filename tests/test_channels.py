"""Tests for cfcr.channels: release data integrity, resolution and skew policy."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

from cfcr import channels

from cfcr.channels import (
    ARCHITECTURES,
    CHANNELS,
    Release,
    UnknownArchitectureError,
    UnknownReleaseError,
    check_kubelet_skew,
    check_upgrade,
    known_versions,
    parse_version,
    registries,
    resolve,
    upgrade_order,
)
from cfcr.channels import model

HEX = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "sha512": re.compile(r"^[0-9a-f]{128}$")}
ALL = [resolve(v) for v in known_versions()]
IDS = [r.version for r in ALL]


# --- resolution ----------------------------------------------------------


def test_channels_are_stable_and_edge_on_consecutive_minors() -> None:
    assert set(CHANNELS) == {"stable", "edge"}
    stable, edge = parse_version(CHANNELS["stable"]), parse_version(CHANNELS["edge"])
    assert stable[:2] == (1, 36)
    assert edge[:2] == (1, 37)


@pytest.mark.parametrize("channel", ["stable", "edge"])
def test_channel_resolves_to_its_exact_version(channel: str) -> None:
    rel = resolve(channel)
    assert rel.version == CHANNELS[channel]
    assert resolve(rel.version) is rel
    assert resolve("v" + rel.version) is rel


def test_known_versions_sorted_and_keep_previous_minor() -> None:
    versions = known_versions()
    assert versions == sorted(versions, key=parse_version)
    minors = {parse_version(v)[:2] for v in versions}
    assert {(1, 35), (1, 36), (1, 37)} <= minors


def test_minor_property() -> None:
    assert resolve("stable").kubernetes.minor == "1.36"
    assert resolve("edge").kubernetes.minor == "1.37"


@pytest.mark.parametrize("bad", ["1.99.0", "latest", "1.36", ""])
def test_unknown_release_error_names_value_and_choices(bad: str) -> None:
    with pytest.raises(UnknownReleaseError) as exc:
        resolve(bad)
    msg = str(exc.value)
    assert repr(bad) in msg
    for name in CHANNELS:
        assert name in msg
    for version in known_versions():
        assert version in msg
    assert isinstance(exc.value, ValueError)


# --- artifacts and checksums -------------------------------------------


def _artifacts(rel: Release) -> list[model.Artifact]:
    return [rel.kubernetes.tarball, *(rel.component(n) for n in model.COMPONENT_NAMES)]


@pytest.mark.parametrize("rel", ALL, ids=IDS)
def test_every_artifact_has_pinned_checksum_or_explicit_publisher_fallback(rel: Release) -> None:
    for art in _artifacts(rel):
        assert art.source.strip()
        for arch in ARCHITECTURES:
            cs = art.checksum(arch)
            assert cs.algorithm == art.algorithm
            assert cs.provenance == art.source
            if cs.source == "pinned":
                assert cs.pinned and cs.value is not None
                assert HEX[cs.algorithm].match(cs.value), (art.name, arch)
                assert cs.file_url is None
            else:
                assert cs.source == "publisher-file"
                assert not cs.pinned and cs.value is None
                assert cs.file_url is not None
                assert cs.file_url.startswith(art.url(arch))
                assert cs.file_url.endswith("." + cs.algorithm)


@pytest.mark.parametrize("rel", ALL, ids=IDS)
def test_node_tarball_is_sha512_and_runtime_is_sha256(rel: Release) -> None:
    assert rel.kubernetes.tarball.algorithm == "sha512"
    for name in model.COMPONENT_NAMES:
        assert rel.component(name).algorithm == "sha256"


def test_unpinned_node_tarballs_say_why_and_confirmed_ones_stay_pinned() -> None:
    # A release's sha512 is pinned when a source here holds its "Node Binaries" table
    # (1.35.8: the v1.37.0 module's CHANGELOG-1.35.md); otherwise the source says it could
    # not be confirmed and the node reads the publisher's .sha512 from dl.k8s.io itself.
    for v in known_versions():
        tarball = resolve(v).kubernetes.tarball
        if tarball.checksum_source == "publisher-file":
            assert "could NOT be confirmed" in tarball.source, v
            assert tarball.file_url_template == "https://dl.k8s.io/v{version}/kubernetes-node-linux-{arch}.tar.gz.sha512"
        else:
            assert "Node Binaries" in tarball.source, v
    assert resolve("1.35.8").kubernetes.sha512("amd64") == (
        "89c1054b8ee5a48f68e47cb553d1814cf3182044c2f94f705df832500ff49ce5603a92a0a8d7ecaa80001c2470fffea4e8b96580208c27e9ef8065e9cb7444e3")


def test_checksums_differ_per_arch() -> None:
    for rel in ALL:
        for art in _artifacts(rel):
            if art.checksums is not None:
                assert len(set(art.checksums.values())) == len(ARCHITECTURES), art.name


@pytest.mark.parametrize("rel", ALL, ids=IDS)
def test_urls_well_formed(rel: Release) -> None:
    for art in _artifacts(rel):
        for arch in ARCHITECTURES:
            url = art.url(arch)
            parsed = urlparse(url)
            assert parsed.scheme == "https" and parsed.netloc, url
            assert "{" not in url and "}" not in url
            assert arch in parsed.path
            assert art.version in parsed.path
    assert rel.kubernetes.url("arm64") == (
        f"https://dl.k8s.io/v{rel.version}/kubernetes-node-linux-arm64.tar.gz"
    )


def test_component_urls_match_publisher_naming() -> None:
    rel = resolve("stable")
    c = rel.component("containerd")
    assert c.url("amd64").endswith(f"/v{c.version}/containerd-{c.version}-linux-amd64.tar.gz")
    assert rel.component("runc").url("arm64").endswith("/runc.arm64")
    cni = rel.component("cni_plugins")
    assert cni.url("amd64").endswith(f"cni-plugins-linux-amd64-v{cni.version}.tgz")
    cri = rel.component("crictl")
    assert cri.url("arm64").endswith(f"crictl-v{cri.version}-linux-arm64.tar.gz")


@pytest.mark.parametrize("rel", ALL, ids=IDS)
def test_containerd_is_2x(rel: Release) -> None:
    assert parse_version(rel.component("containerd").version)[0] == 2


@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "ppc64le", "s390x", ""])
def test_unsupported_architecture_rejected(arch: str) -> None:
    rel = resolve("stable")
    with pytest.raises(UnknownArchitectureError, match="amd64, arm64"):
        rel.kubernetes.url(arch)
    with pytest.raises(UnknownArchitectureError):
        rel.component("containerd").checksum(arch)


def test_unknown_component_cni_cloud_names() -> None:
    rel = resolve("stable")
    with pytest.raises(KeyError, match="containerd"):
        rel.component("docker")
    with pytest.raises(KeyError, match="cilium"):
        rel.cni("weave")
    with pytest.raises(KeyError, match="azure"):
        rel.cloud("openstack")


# --- images, CNIs, clouds -------------------------------------------------


@pytest.mark.parametrize("rel", ALL, ids=IDS)
def test_etcd_image_tag_consistent_with_etcd_version(rel: Release) -> None:
    assert rel.etcd_image == f"registry.k8s.io/etcd:{rel.etcd_version}-0"
    assert re.fullmatch(r"3\.\d+\.\d+", rel.etcd_version)
    assert rel.coredns_image.startswith("registry.k8s.io/coredns/coredns:v")
    assert re.fullmatch(r"registry\.k8s\.io/pause:\d+\.\d+(\.\d+)?", rel.pause_image)


@pytest.mark.parametrize("rel", ALL, ids=IDS)
def test_cni_charts(rel: Release) -> None:
    for name in ("flannel", "calico", "cilium"):
        c = rel.cni(name)
        assert urlparse(c.repo).scheme == "https"
        assert c.chart and c.version and c.source
        assert c.images and all(":" in i.rsplit("/", 1)[-1] for i in c.images)
    assert rel.cni("calico").chart == "tigera-operator"


@pytest.mark.parametrize("rel", ALL, ids=IDS)
def test_cloud_integrations(rel: Release) -> None:
    for cloud in ("aws", "gcp", "azure"):
        integ = rel.cloud(cloud)
        for comp in (integ.ccm, integ.csi):
            assert comp.version and comp.source
            host = comp.image.split("/", 1)[0]
            assert host in rel.registries, comp.image
            if comp.chart is not None:
                assert urlparse(comp.chart.repo).scheme == "https"
            if not comp.confirmed:
                assert "NOT confirmed" in comp.source


@pytest.mark.parametrize("rel", ALL, ids=IDS)
def test_every_image_registry_is_declared(rel: Release) -> None:
    images = [rel.etcd_image, rel.coredns_image, rel.pause_image]
    images += [i for n in ("flannel", "calico", "cilium") for i in rel.cni(n).images]
    for img in images:
        assert img.split("/", 1)[0] in registries(), img


# --- data validation ------------------------------------------------------


def test_malformed_checksum_is_rejected() -> None:
    raw: dict[str, object] = {
        "version": "2.2.1",
        "url": "https://example.invalid/{version}/{arch}",
        "algorithm": "sha256",
        "checksum_source": "pinned",
        "checksums": {"amd64": "abc", "arm64": "0" * 64},
        "source": "test",
    }
    with pytest.raises(model.ReleaseDataError, match="hex digest"):
        model._artifact("x", raw, "t")
    raw["checksums"] = None
    raw["checksum_source"] = "publisher-file"
    with pytest.raises(model.ReleaseDataError, match="file_url"):
        model._artifact("x", raw, "t")


# --- skew -----------------------------------------------------------------


def test_upgrade_order_control_plane_first() -> None:
    assert upgrade_order() == ["control-plane", "nodes"]


UPGRADES = [
    # current, target, allowed, expected steps (None = don't check), phrase
    ("1.35.8", "1.36.6", True, ["1.36.6"], "minor upgrade"),
    ("1.36.6", "1.37.2", True, ["1.37.2"], "minor upgrade"),
    ("stable", "edge", True, ["1.37.2"], "minor upgrade"),
    ("1.36.6", "1.36.6", True, [], "nothing to do"),
    ("1.35.8", "1.37.2", False, ["1.36.6", "1.37.2"], "one minor at a time"),
    ("1.37.2", "1.36.6", False, [], "downgrad"),
    ("edge", "1.35.8", False, [], "downgrad"),
    ("1.36.6", "1.99.0", False, [], "unknown"),
    ("1.20.0", "1.36.6", False, [], "unknown"),
]


@pytest.mark.parametrize(("current", "target", "allowed", "steps", "phrase"), UPGRADES)
def test_check_upgrade(current: str, target: str, allowed: bool, steps: list[str], phrase: str) -> None:
    d = check_upgrade(current, target)
    assert d.allowed is allowed, d.reason
    assert d.steps == steps
    assert phrase in d.reason
    cur = CHANNELS.get(current, current)
    tgt = CHANNELS.get(target, target)
    assert cur in d.reason and tgt in d.reason


def test_patch_upgrade_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only one patch per minor ships today; prove the rule with a second one.
    data = model._data()
    base = data.releases["1.36.6"]
    newer = model.Release(
        kubernetes=model.KubernetesRelease("1.36.9", base.kubernetes.tarball),
        components=base.components, etcd=base.etcd, coredns=base.coredns,
        pause=base.pause, cnis=base.cnis, clouds=base.clouds, addons=base.addons, registries=base.registries,
    )
    patched = model._Data(data.channels, {**data.releases, "1.36.9": newer}, data.registries)
    monkeypatch.setattr(model, "_data", lambda: patched)
    d = check_upgrade("1.36.6", "1.36.9")
    assert d.allowed and d.steps == ["1.36.9"] and "patch upgrade" in d.reason
    back = check_upgrade("1.36.9", "1.36.6")
    assert not back.allowed and "patch downgrades" in back.reason
    skip = check_upgrade("1.35.8", "1.37.2")
    assert skip.steps == ["1.36.9", "1.37.2"]


KUBELET = [
    ("1.36.0", "1.36.0", True, "0 minor"),
    ("1.36.0", "1.33.7", True, "3 minor"),
    ("1.36.0", "1.32.0", False, "4 minors older"),
    ("1.36.0", "1.37.0", False, "newer than API server"),
    ("1.36.2", "v1.35.4", True, "1 minor"),
    ("1.36.0", "2.36.0", False, "major"),
    ("1.36.0", "banana", False, "not a Kubernetes version"),
]


@pytest.mark.parametrize(("apiserver", "kubelet", "allowed", "phrase"), KUBELET)
def test_check_kubelet_skew(apiserver: str, kubelet: str, allowed: bool, phrase: str) -> None:
    d = check_kubelet_skew(apiserver, kubelet)
    assert d.allowed is allowed, d.reason
    assert phrase in d.reason
    assert apiserver in d.reason and kubelet in d.reason


def test_every_release_pins_every_addon_chart() -> None:
    for version in channels.known_versions():
        release = channels.resolve(version)
        for name in channels.ADDON_NAMES:
            chart = release.addon(name)
            assert chart.repo.startswith(("https://", "oci://")) and chart.chart and chart.version, (version, name)
            assert chart.source, (version, name)
        autoscaler = release.addon("cluster-autoscaler").images[0]
        # the autoscaler's minor tracks the cluster's, or the data says it does not
        tag_minor = autoscaler.rsplit(":v", 1)[1].rsplit(".", 1)[0]
        assert tag_minor == release.kubernetes.minor or "NOT exact" in release.addon("cluster-autoscaler").source
        nth = release.addon("aws-node-termination-handler")
        # eks-charts stopped at chart 0.21.0; newer charts are only on public ECR, as OCI
        assert (nth.repo, nth.chart, nth.version) == ("oci://public.ecr.aws/aws-ec2/helm", "aws-node-termination-handler",
                                                      "0.27.1"), version
    with pytest.raises(KeyError, match="unknown addon"):
        channels.resolve("stable").addon("weave-scope")
