"""Typed view of ``releases.yaml``: channels, releases and their pinned artifacts.

Pure data, no Pulumi. The YAML is parsed once, validated strictly (a typo or
a malformed checksum fails at import time, not on a node at boot), and
exposed as frozen dataclasses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Literal, cast
from urllib.parse import urlsplit

import yaml

__all__ = [
    "ARCHITECTURES",
    "CHANNELS",
    "Architecture",
    "Artifact",
    "Checksum",
    "ChecksumAlgorithm",
    "ChartRef",
    "CloudComponent",
    "CloudIntegration",
    "CniChart",
    "HelmChart",
    "ADDON_NAMES",
    "ImageVersion",
    "KubernetesRelease",
    "Release",
    "ReleaseDataError",
    "UnknownArchitectureError",
    "UnknownReleaseError",
    "known_versions",
    "parse_version",
    "registries",
    "resolve",
]

Architecture = Literal["amd64", "arm64"]
ChecksumAlgorithm = Literal["sha256", "sha512"]
ChecksumSource = Literal["pinned", "publisher-file"]

ARCHITECTURES: tuple[Architecture, ...] = ("amd64", "arm64")
"""CPU architectures every release carries artifacts for."""

COMPONENT_NAMES: tuple[str, ...] = ("containerd", "runc", "cni_plugins", "crictl")
CNI_NAMES: tuple[str, ...] = ("flannel", "calico", "cilium")
ADDON_NAMES: tuple[str, ...] = (
    "metrics-server", "kubelet-csr-approver", "cluster-autoscaler", "fluent-bit", "vpa", "aws-node-termination-handler",
)
CLOUD_NAMES: tuple[str, ...] = ("aws", "gcp", "azure")

_HEX_LEN: dict[str, int] = {"sha256": 64, "sha512": 128}
_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


class ReleaseDataError(ValueError):
    """``releases.yaml`` is malformed (a bug in the shipped data)."""


class UnknownReleaseError(ValueError):
    """A channel name or Kubernetes version that the channels do not know."""


class UnknownArchitectureError(ValueError):
    """A CPU architecture cfcr does not ship artifacts for."""


def parse_version(version: str) -> tuple[int, int, int]:
    """Parse ``"1.36.0"`` or ``"v1.36.0"`` into ``(1, 36, 0)``.

    Raises ``ValueError`` for anything that is not MAJOR.MINOR.PATCH.
    """
    match = _VERSION_RE.match(version.strip())
    if match is None:
        raise ValueError(f"{version!r} is not a Kubernetes version of the form 1.MINOR.PATCH")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def _check_arch(arch: str) -> Architecture:
    if arch not in ARCHITECTURES:
        raise UnknownArchitectureError(
            f"architecture {arch!r} is not supported; supported: {', '.join(ARCHITECTURES)}"
        )
    return arch


@dataclass(frozen=True)
class Checksum:
    """How a node verifies one downloaded file.

    ``source == "pinned"``: ``value`` is the hex digest recorded in cfcr.
    ``source == "publisher-file"``: ``value`` is None and the node fetches the
    publisher's checksum file at ``file_url`` next to the artifact instead.
    """

    algorithm: ChecksumAlgorithm
    """Hash algorithm: ``sha256`` or ``sha512``."""
    value: str | None
    """Lower-case hex digest, or None when verified against the publisher's file."""
    source: ChecksumSource
    """``pinned`` or ``publisher-file``."""
    provenance: str
    """Where the pinned value (or the decision to fall back) came from."""
    file_url: str | None = None
    """URL of the publisher's checksum file (only for ``publisher-file``)."""

    @property
    def pinned(self) -> bool:
        """True when the digest is pinned in cfcr's data."""
        return self.value is not None


@dataclass(frozen=True)
class Artifact:
    """A downloadable file per architecture (tarball or binary) with its checksums."""

    name: str
    """Component name, e.g. ``containerd``."""
    version: str
    """Upstream version without a leading ``v``."""
    url_template: str
    """URL with ``{version}`` and ``{arch}`` placeholders."""
    algorithm: ChecksumAlgorithm
    """Hash algorithm the checksums use."""
    checksum_source: ChecksumSource
    """``pinned`` or ``publisher-file``."""
    checksums: Mapping[str, str] | None
    """Hex digest per architecture, or None for ``publisher-file``."""
    file_url_template: str | None
    """Publisher checksum-file URL template (``publisher-file`` only)."""
    source: str
    """The document the version and checksums were read from."""

    def url(self, arch: str) -> str:
        """Download URL of this artifact for ``arch``."""
        return self.url_template.format(version=self.version, arch=_check_arch(arch))

    def checksum(self, arch: str) -> Checksum:
        """How to verify the artifact for ``arch``."""
        a = _check_arch(arch)
        if self.checksums is None:
            assert self.file_url_template is not None
            return Checksum(
                algorithm=self.algorithm,
                value=None,
                source="publisher-file",
                provenance=self.source,
                file_url=self.file_url_template.format(version=self.version, arch=a),
            )
        return Checksum(
            algorithm=self.algorithm,
            value=self.checksums[a],
            source="pinned",
            provenance=self.source,
        )


@dataclass(frozen=True)
class KubernetesRelease:
    """The Kubernetes node tarball (kubelet, kubeadm, kubectl, kube-proxy)."""

    version: str
    """Exact version, e.g. ``1.36.0``."""
    tarball: Artifact
    """``kubernetes-node-linux-<arch>.tar.gz`` from dl.k8s.io."""

    @property
    def minor(self) -> str:
        """``MAJOR.MINOR``, e.g. ``1.36``."""
        major, minor, _ = parse_version(self.version)
        return f"{major}.{minor}"

    def url(self, arch: str) -> str:
        """Node tarball URL for ``arch``."""
        return self.tarball.url(arch)

    def sha512(self, arch: str) -> str | None:
        """Pinned sha512 of the node tarball, or None if verified via the publisher file."""
        return self.tarball.checksum(arch).value

    def checksum(self, arch: str) -> Checksum:
        """How to verify the node tarball for ``arch``."""
        return self.tarball.checksum(arch)


@dataclass(frozen=True)
class ImageVersion:
    """A version pin for a control-plane image, with its provenance."""

    version: str
    """Image tag."""
    source: str
    """Where the version came from."""


@dataclass(frozen=True)
class HelmChart:
    """A pinned Helm chart: a CNI's or an addon's."""

    name: str
    """What it installs: a CNI (flannel, calico, cilium) or an addon (see ``ADDON_NAMES``)."""
    repo: str
    """Helm repository URL, or ``oci://<registry>/<path>`` for a chart in an OCI registry."""
    chart: str
    """Chart name in that repository (an OCI chart is ``<repo>/<chart>``)."""
    version: str
    """Chart version."""
    images: tuple[str, ...]
    """Main images (for mirroring and pre-pulls)."""
    source: str
    """Where the version came from."""


CniChart = HelmChart
"""A CNI's chart pin (the name the CNI code uses)."""


@dataclass(frozen=True)
class ChartRef:
    """A Helm chart reference whose version may be unconfirmed (None)."""

    repo: str
    """Helm repository URL."""
    chart: str
    """Chart name."""
    version: str | None
    """Chart version, or None when no version could be confirmed."""


@dataclass(frozen=True)
class CloudComponent:
    """A cloud controller manager or CSI driver pin."""

    image: str
    """Full image reference."""
    chart: ChartRef | None
    """Helm chart, when the project publishes one cfcr may use."""
    confirmed: bool
    """False when the version could not be confirmed to match this Kubernetes minor."""
    source: str
    """Where the version came from (and what is unconfirmed)."""

    @property
    def version(self) -> str:
        """The image tag."""
        return self.image.rsplit(":", 1)[1]


@dataclass(frozen=True)
class CloudIntegration:
    """Out-of-tree cloud integrations for one cloud."""

    cloud: str
    """aws, gcp or azure."""
    ccm: CloudComponent
    """Cloud controller manager."""
    csi: CloudComponent
    """Block-storage CSI driver."""


@dataclass(frozen=True)
class Release:
    """Everything pinned for one exact Kubernetes version."""

    kubernetes: KubernetesRelease
    """Kubernetes version and node tarball."""
    components: Mapping[str, Artifact]
    """Node runtime artifacts: containerd, runc, cni_plugins, crictl."""
    etcd: ImageVersion
    """etcd image tag (``<version>-0``)."""
    coredns: ImageVersion
    """CoreDNS image tag."""
    pause: ImageVersion
    """Pause (sandbox) image tag."""
    cnis: Mapping[str, CniChart]
    """CNI charts by name."""
    clouds: Mapping[str, CloudIntegration]
    """Cloud integrations by cloud."""
    addons: Mapping[str, HelmChart]
    """Addon charts by name (see ``ADDON_NAMES``)."""
    registries: tuple[str, ...]
    """Default registry hosts used by this release's images."""

    @property
    def version(self) -> str:
        """The exact Kubernetes version."""
        return self.kubernetes.version

    @property
    def etcd_version(self) -> str:
        """etcd version without the image revision suffix, e.g. ``3.6.11``."""
        return self.etcd.version.split("-", 1)[0]

    @property
    def etcd_image(self) -> str:
        """Full etcd image reference."""
        return f"registry.k8s.io/etcd:{self.etcd.version}"

    @property
    def coredns_image(self) -> str:
        """Full CoreDNS image reference."""
        return f"registry.k8s.io/coredns/coredns:{self.coredns.version}"

    @property
    def pause_image(self) -> str:
        """Full pause image reference."""
        return f"registry.k8s.io/pause:{self.pause.version}"

    def component(self, name: str) -> Artifact:
        """A node runtime artifact by name (containerd, runc, cni_plugins, crictl)."""
        try:
            return self.components[name]
        except KeyError:
            raise KeyError(
                f"unknown component {name!r}; known: {', '.join(sorted(self.components))}"
            ) from None

    def cni(self, name: str) -> CniChart:
        """A CNI chart pin by name (flannel, calico, cilium)."""
        try:
            return self.cnis[name]
        except KeyError:
            raise KeyError(f"unknown CNI {name!r}; known: {', '.join(sorted(self.cnis))}") from None

    def addon(self, name: str) -> HelmChart:
        """The pinned chart of addon ``name`` (one of ``ADDON_NAMES``)."""
        if name not in self.addons:
            raise KeyError(f"unknown addon {name!r}; the channels pin: {', '.join(ADDON_NAMES)}")
        return self.addons[name]

    def cloud(self, name: str) -> CloudIntegration:
        """Cloud integrations (CCM + CSI) for aws, gcp or azure."""
        try:
            return self.clouds[name]
        except KeyError:
            raise KeyError(
                f"unknown cloud {name!r}; known: {', '.join(sorted(self.clouds))}"
            ) from None


# --- parsing ---------------------------------------------------------------


def _map(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ReleaseDataError(f"{where}: expected a mapping")
    return cast(Mapping[str, object], value)


def _str(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ReleaseDataError(f"{where}: expected a non-empty string")
    return value


def _opt_str(value: object, where: str) -> str | None:
    return None if value is None else _str(value, where)


def _algorithm(value: object, where: str) -> ChecksumAlgorithm:
    if value not in ("sha256", "sha512"):
        raise ReleaseDataError(f"{where}: algorithm must be sha256 or sha512")
    return value


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url.replace("{version}", "0").replace("{arch}", "amd64"))
    return parts.scheme, parts.netloc


def _check_same_origin(url: str, file_url: str, where: str) -> None:
    """A digest fetched at boot is only as good as its channel: the publisher's checksum
    file must come over TLS from the artifact's own origin (kOps does the same for
    hashes it does not know), never from a third host."""
    scheme, host = _origin(file_url)
    if scheme != "https":
        raise ReleaseDataError(f"{where}.file_url: the publisher's checksum file must be fetched over https")
    if (scheme, host) != _origin(url):
        raise ReleaseDataError(f"{where}.file_url: the checksum file must come from the artifact's own origin "
                               f"({_origin(url)[1]}), not {host}")


def _artifact(name: str, raw: object, where: str) -> Artifact:
    d = _map(raw, where)
    algorithm = _algorithm(d.get("algorithm"), where)
    source_kind = d.get("checksum_source")
    raw_sums = d.get("checksums")
    checksums: Mapping[str, str] | None
    file_url: str | None = None
    if source_kind == "pinned":
        sums = _map(raw_sums, f"{where}.checksums")
        if set(sums) != set(ARCHITECTURES):
            raise ReleaseDataError(f"{where}.checksums: need exactly {ARCHITECTURES}")
        parsed: dict[str, str] = {}
        for arch, hexval in sums.items():
            h = _str(hexval, f"{where}.checksums.{arch}")
            if not re.fullmatch(rf"[0-9a-f]{{{_HEX_LEN[algorithm]}}}", h):
                raise ReleaseDataError(f"{where}.checksums.{arch}: not a {algorithm} hex digest")
            parsed[arch] = h
        checksums = MappingProxyType(parsed)
    elif source_kind == "publisher-file":
        if raw_sums is not None:
            raise ReleaseDataError(f"{where}: publisher-file artifacts must have checksums: null")
        checksums = None
        file_url = _str(d.get("file_url"), f"{where}.file_url")
        _check_same_origin(_str(d.get("url"), f"{where}.url"), file_url, where)
    else:
        raise ReleaseDataError(f"{where}: checksum_source must be pinned or publisher-file")
    version = _str(d.get("version"), f"{where}.version")
    if version.startswith("v"):
        raise ReleaseDataError(f"{where}.version: write versions without a leading v")
    return Artifact(
        name=name,
        version=version,
        url_template=_str(d.get("url"), f"{where}.url"),
        algorithm=algorithm,
        checksum_source=source_kind,
        checksums=checksums,
        file_url_template=file_url,
        source=_str(d.get("source"), f"{where}.source"),
    )


def _image_version(raw: object, where: str) -> ImageVersion:
    d = _map(raw, where)
    return ImageVersion(
        version=_str(d.get("version"), f"{where}.version"),
        source=_str(d.get("source"), f"{where}.source"),
    )


def _cloud_component(raw: object, where: str) -> CloudComponent:
    d = _map(raw, where)
    chart_raw = d.get("chart")
    chart: ChartRef | None = None
    if chart_raw is not None:
        c = _map(chart_raw, f"{where}.chart")
        chart = ChartRef(
            repo=_str(c.get("repo"), f"{where}.chart.repo"),
            chart=_str(c.get("chart"), f"{where}.chart.chart"),
            version=_opt_str(c.get("version"), f"{where}.chart.version"),
        )
    confirmed = d.get("confirmed")
    if not isinstance(confirmed, bool):
        raise ReleaseDataError(f"{where}.confirmed: expected true or false")
    image = _str(d.get("image"), f"{where}.image")
    if ":" not in image.rsplit("/", 1)[-1]:
        raise ReleaseDataError(f"{where}.image: needs an explicit tag")
    return CloudComponent(
        image=image,
        chart=chart,
        confirmed=confirmed,
        source=_str(d.get("source"), f"{where}.source"),
    )


def _chart(name: str, raw: object, where: str) -> HelmChart:
    c = _map(raw, where)
    images_raw = c.get("images")
    if not isinstance(images_raw, list):
        raise ReleaseDataError(f"{where}.images: expected a list")
    repo = _str(c.get("repo"), f"{where}.repo")
    if not repo.startswith(("https://", "oci://")):
        raise ReleaseDataError(f"{where}.repo: expected an https:// Helm repository or an oci:// registry path")
    return HelmChart(
        name=name,
        repo=repo,
        chart=_str(c.get("chart"), f"{where}.chart"),
        version=_str(c.get("version"), f"{where}.version"),
        images=tuple(_str(i, f"{where}.images[]") for i in images_raw),
        source=_str(c.get("source"), f"{where}.source"),
    )


def _release(key: str, raw: object, regs: tuple[str, ...]) -> Release:
    where = f"releases.{key}"
    d = _map(raw, where)
    kube = _artifact("kubernetes-node", d.get("kubernetes"), f"{where}.kubernetes")
    if kube.version != key:
        raise ReleaseDataError(f"{where}: kubernetes.version {kube.version} != key {key}")
    parse_version(key)
    comps_raw = _map(d.get("components"), f"{where}.components")
    if set(comps_raw) != set(COMPONENT_NAMES):
        raise ReleaseDataError(f"{where}.components: need exactly {COMPONENT_NAMES}")
    components = {
        n: _artifact(n, comps_raw[n], f"{where}.components.{n}") for n in COMPONENT_NAMES
    }
    cni_raw = _map(d.get("cni"), f"{where}.cni")
    if set(cni_raw) != set(CNI_NAMES):
        raise ReleaseDataError(f"{where}.cni: need exactly {CNI_NAMES}")
    cnis = {n: _chart(n, cni_raw[n], f"{where}.cni.{n}") for n in CNI_NAMES}
    addon_raw = _map(d.get("addons"), f"{where}.addons")
    if set(addon_raw) != set(ADDON_NAMES):
        raise ReleaseDataError(f"{where}.addons: need exactly {ADDON_NAMES}")
    addons = {n: _chart(n, addon_raw[n], f"{where}.addons.{n}") for n in ADDON_NAMES}
    cloud_raw = _map(d.get("cloud"), f"{where}.cloud")
    if set(cloud_raw) != set(CLOUD_NAMES):
        raise ReleaseDataError(f"{where}.cloud: need exactly {CLOUD_NAMES}")
    clouds: dict[str, CloudIntegration] = {}
    for n in CLOUD_NAMES:
        c = _map(cloud_raw[n], f"{where}.cloud.{n}")
        clouds[n] = CloudIntegration(
            cloud=n,
            ccm=_cloud_component(c.get("ccm"), f"{where}.cloud.{n}.ccm"),
            csi=_cloud_component(c.get("csi"), f"{where}.cloud.{n}.csi"),
        )
    etcd = _image_version(d.get("etcd"), f"{where}.etcd")
    if not re.fullmatch(r"\d+\.\d+\.\d+-\d+", etcd.version):
        raise ReleaseDataError(f"{where}.etcd.version: expected <etcd version>-<revision>")
    return Release(
        kubernetes=KubernetesRelease(version=key, tarball=kube),
        components=MappingProxyType(components),
        etcd=etcd,
        coredns=_image_version(d.get("coredns"), f"{where}.coredns"),
        pause=_image_version(d.get("pause"), f"{where}.pause"),
        cnis=MappingProxyType(cnis),
        clouds=MappingProxyType(clouds),
        addons=MappingProxyType(addons),
        registries=regs,
    )


@dataclass(frozen=True)
class _Data:
    channels: Mapping[str, str]
    releases: Mapping[str, Release]
    registries: tuple[str, ...]


def _parse(raw: object) -> _Data:
    top = _map(raw, "releases.yaml")
    if top.get("schema") != 1:
        raise ReleaseDataError("releases.yaml: unsupported schema")
    archs = top.get("architectures")
    if archs != list(ARCHITECTURES):
        raise ReleaseDataError(f"releases.yaml: architectures must be {list(ARCHITECTURES)}")
    regs_raw = top.get("registries")
    if not isinstance(regs_raw, list):
        raise ReleaseDataError("registries: expected a list")
    regs = tuple(_str(r, "registries[]") for r in regs_raw)
    rel_raw = _map(top.get("releases"), "releases")
    releases = {str(k): _release(str(k), v, regs) for k, v in rel_raw.items()}
    chans_raw = _map(top.get("channels"), "channels")
    channels: dict[str, str] = {}
    for name, version in chans_raw.items():
        v = _str(version, f"channels.{name}")
        if v not in releases:
            raise ReleaseDataError(f"channels.{name}: {v} has no release entry")
        channels[str(name)] = v
    return _Data(MappingProxyType(channels), MappingProxyType(releases), regs)


@cache
def _data() -> _Data:
    text = resources.files("cfcr.channels").joinpath("releases.yaml").read_text("utf-8")
    return _parse(yaml.safe_load(text))


CHANNELS: Mapping[str, str] = _data().channels
"""Channel name -> exact Kubernetes version (``stable``, ``edge``)."""


def known_versions() -> list[str]:
    """Every exact Kubernetes version cfcr has release data for, oldest first."""
    return sorted(_data().releases, key=parse_version)


def registries() -> tuple[str, ...]:
    """Default registry hosts used by the pinned images."""
    return _data().registries


def resolve(version_or_channel: str) -> Release:
    """Return the release for a channel name or an exact version (``v`` prefix allowed).

    Raises ``UnknownReleaseError`` naming the value and the allowed choices.
    """
    data = _data()
    key = version_or_channel.strip()
    if key in data.channels:
        return data.releases[data.channels[key]]
    if key.startswith("v"):
        key = key[1:]
    if key in data.releases:
        return data.releases[key]
    channels = ", ".join(f"{c} ({v})" for c, v in sorted(data.channels.items()))
    raise UnknownReleaseError(
        f"unknown Kubernetes release {version_or_channel!r}: use a channel "
        f"[{channels}] or an exact version [{', '.join(known_versions())}]"
    )
