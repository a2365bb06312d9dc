"""Typed view of ``releases.yaml``: channels, releases and their pinned artifacts.

Pure data, no Pulumi. The YAML is parsed once, validated strictly by pydantic
models of the document (an unknown key, a typo or a malformed checksum fails at
import time, not on a node at boot), and exposed as frozen dataclasses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from cfcr.addon_registry import ADDON_PINS

__all__ = [
    "ARCHITECTURES",
    "CHANNELS",
    "Architecture",
    "Artifact",
    "Checksum",
    "ChecksumAlgorithm",
    "ChartRef",
    "CloudComponent",
    "CloudComponents",
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
ADDON_NAMES: tuple[str, ...] = ADDON_PINS
"""The charts every release pins under ``addons``: exactly the addon registry's pins
(:data:`cfcr.addon_registry.ADDON_PINS`)."""
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
    sidecars: tuple[str, ...] = ()
    """The other images cfcr deploys with it, fully tagged (the sidecars of a CSI driver whose
    objects cfcr authors); empty when a chart brings its own."""

    @property
    def version(self) -> str:
        """The image tag."""
        return self.image.rsplit(":", 1)[1]

    @property
    def images(self) -> tuple[str, ...]:
        """The component's image and its sidecars."""
        return (self.image, *self.sidecars)

    def sidecar(self, repository: str) -> str:
        """The pinned image of the sidecar whose repository ends with ``/<repository>``
        (``csi-provisioner``); KeyError naming the pinned ones otherwise."""
        for image in self.sidecars:
            if image.rsplit(":", 1)[0].endswith(f"/{repository}"):
                return image
        raise KeyError(f"no sidecar {repository!r} pinned next to {self.image}; pinned: {', '.join(self.sidecars) or 'none'}")


@dataclass(frozen=True)
class CloudComponents:
    """The out-of-tree cloud components cfcr pins for one cloud: its CCM and CSI driver."""

    cloud: str
    """aws, gcp or azure."""
    ccm: CloudComponent
    """Cloud controller manager."""
    csi: CloudComponent
    """Block-storage CSI driver."""


CloudIntegration = CloudComponents
"""Deprecated: the former name of :class:`CloudComponents` (the addons' ``CloudIntegration`` is a component)."""


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
    clouds: Mapping[str, CloudComponents]
    """Cloud components (CCM + CSI pins) by cloud."""
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

    def cloud(self, name: str) -> CloudComponents:
        """Cloud components (CCM + CSI pins) for aws, gcp or azure."""
        try:
            return self.clouds[name]
        except KeyError:
            raise KeyError(
                f"unknown cloud {name!r}; known: {', '.join(sorted(self.clouds))}"
            ) from None


# --- parsing ----------------------------------------------------------------
#
# The pydantic models below describe the YAML document as written (keys as in the file,
# unknown keys refused); each ``build`` turns a validated document into the frozen objects
# above. A check that spans fields raises ``_Problem`` naming the key below the model it
# failed at, so every ``ReleaseDataError`` names the YAML path of the bad value.


class _Problem(ValueError):
    """A validation failure at ``sub``, a path below the value being validated."""

    def __init__(self, sub: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.sub = sub


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("expected a non-empty string")
    return value


def _unprefixed(value: str) -> str:
    if value.startswith("v"):
        raise ValueError("write versions without a leading v")
    return value


def _helm_repo(value: str) -> str:
    if not value.startswith(("https://", "oci://")):
        raise ValueError("expected an https:// Helm repository or an oci:// registry path")
    return value


def _tagged(value: str) -> str:
    if ":" not in value.rsplit("/", 1)[-1]:
        raise ValueError("needs an explicit tag")
    return value


_T = TypeVar("_T")


def _exactly(names: tuple[str, ...]) -> AfterValidator:
    """The mapping's keys must be exactly ``names`` (no more, no fewer)."""

    def check(value: dict[str, _T]) -> dict[str, _T]:
        if set(value) != set(names):
            raise ValueError(f"need exactly {names}")
        return value

    return AfterValidator(check)


_Text = Annotated[str, AfterValidator(_non_empty)]
_Version = Annotated[str, AfterValidator(_non_empty), AfterValidator(_unprefixed)]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url.replace("{version}", "0").replace("{arch}", "amd64"))
    return parts.scheme, parts.netloc


def _check_same_origin(url: str, file_url: str) -> None:
    """A digest fetched at boot is only as good as its channel: the publisher's checksum
    file must come over TLS from the artifact's own origin (kOps does the same for
    hashes it does not know), never from a third host."""
    scheme, host = _origin(file_url)
    if scheme != "https":
        raise _Problem(("file_url",), "the publisher's checksum file must be fetched over https")
    if (scheme, host) != _origin(url):
        raise _Problem(("file_url",), "the checksum file must come from the artifact's own origin "
                                      f"({_origin(url)[1]}), not {host}")


class _Doc(BaseModel):
    """A block of ``releases.yaml``: keys as written there, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _ArtifactDoc(_Doc):
    version: _Version
    url: _Text
    algorithm: ChecksumAlgorithm
    checksum_source: ChecksumSource
    checksums: dict[str, _Text] | None = None
    file_url: _Text | None = None
    source: _Text

    @model_validator(mode="after")
    def _verification(self) -> _ArtifactDoc:
        if self.checksum_source == "pinned":
            if self.checksums is None:
                raise _Problem(("checksums",), "pinned artifacts need a digest per architecture")
            if set(self.checksums) != set(ARCHITECTURES):
                raise _Problem(("checksums",), f"need exactly {ARCHITECTURES}")
            for arch, digest in self.checksums.items():
                if not re.fullmatch(rf"[0-9a-f]{{{_HEX_LEN[self.algorithm]}}}", digest):
                    raise _Problem(("checksums", arch), f"not a {self.algorithm} hex digest")
            if self.file_url is not None:
                raise _Problem(("file_url",), "only publisher-file artifacts have a checksum file")
        else:
            if self.checksums is not None:
                raise _Problem((), "publisher-file artifacts must have checksums: null")
            if self.file_url is None:
                raise _Problem(("file_url",), "expected a non-empty string")
            _check_same_origin(self.url, self.file_url)
        return self

    def build(self, name: str) -> Artifact:
        return Artifact(
            name=name,
            version=self.version,
            url_template=self.url,
            algorithm=self.algorithm,
            checksum_source=self.checksum_source,
            checksums=None if self.checksums is None else MappingProxyType(dict(self.checksums)),
            file_url_template=self.file_url,
            source=self.source,
        )


class _ImageVersionDoc(_Doc):
    version: _Text
    source: _Text

    def build(self) -> ImageVersion:
        return ImageVersion(version=self.version, source=self.source)


class _ChartDoc(_Doc):
    repo: Annotated[str, AfterValidator(_helm_repo)]
    chart: _Text
    version: _Text
    images: list[_Text]
    source: _Text

    def build(self, name: str) -> HelmChart:
        return HelmChart(name=name, repo=self.repo, chart=self.chart, version=self.version,
                         images=tuple(self.images), source=self.source)


class _ChartRefDoc(_Doc):
    repo: _Text
    chart: _Text
    version: _Text | None = None


class _CloudComponentDoc(_Doc):
    image: Annotated[str, AfterValidator(_non_empty), AfterValidator(_tagged)]
    chart: _ChartRefDoc | None = None
    confirmed: StrictBool
    source: _Text
    sidecars: list[Annotated[str, AfterValidator(_non_empty), AfterValidator(_tagged)]] = Field(default_factory=list)

    def build(self) -> CloudComponent:
        chart = None if self.chart is None else ChartRef(self.chart.repo, self.chart.chart, self.chart.version)
        return CloudComponent(image=self.image, chart=chart, confirmed=self.confirmed, source=self.source,
                              sidecars=tuple(self.sidecars))


class _CloudDoc(_Doc):
    ccm: _CloudComponentDoc
    csi: _CloudComponentDoc

    def build(self, cloud: str) -> CloudComponents:
        return CloudComponents(cloud=cloud, ccm=self.ccm.build(), csi=self.csi.build())


class _ReleaseDoc(_Doc):
    kubernetes: _ArtifactDoc
    etcd: _ImageVersionDoc
    coredns: _ImageVersionDoc
    pause: _ImageVersionDoc
    components: Annotated[dict[str, _ArtifactDoc], _exactly(COMPONENT_NAMES)]
    cni: Annotated[dict[str, _ChartDoc], _exactly(CNI_NAMES)]
    cloud: Annotated[dict[str, _CloudDoc], _exactly(CLOUD_NAMES)]
    addons: Annotated[dict[str, _ChartDoc], _exactly(ADDON_NAMES)]

    @field_validator("etcd")
    @classmethod
    def _etcd_revision(cls, etcd: _ImageVersionDoc) -> _ImageVersionDoc:
        if not re.fullmatch(r"\d+\.\d+\.\d+-\d+", etcd.version):
            raise _Problem(("version",), "expected <etcd version>-<revision>")
        return etcd

    def build(self, key: str, regs: tuple[str, ...]) -> Release:
        # Mappings follow the canonical name order, not the file's.
        return Release(
            kubernetes=KubernetesRelease(version=key, tarball=self.kubernetes.build("kubernetes-node")),
            components=MappingProxyType({n: self.components[n].build(n) for n in COMPONENT_NAMES}),
            etcd=self.etcd.build(),
            coredns=self.coredns.build(),
            pause=self.pause.build(),
            cnis=MappingProxyType({n: self.cni[n].build(n) for n in CNI_NAMES}),
            clouds=MappingProxyType({n: self.cloud[n].build(n) for n in CLOUD_NAMES}),
            addons=MappingProxyType({n: self.addons[n].build(n) for n in ADDON_NAMES}),
            registries=regs,
        )


class _ReleasesFile(_Doc):
    schema_: StrictInt = Field(alias="schema")
    architectures: list[str]
    channels: dict[str, _Text]
    registries: list[_Text]
    releases: dict[str, _ReleaseDoc]

    @model_validator(mode="before")
    @classmethod
    def _drop_building_blocks(cls, data: object) -> object:
        """Top-level keys starting with ``_`` hold the YAML anchors the releases share."""
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("_"))}
        return data

    @field_validator("schema_")
    @classmethod
    def _schema(cls, schema: int) -> int:
        if schema != 1:
            raise ValueError("unsupported schema (cfcr reads schema 1)")
        return schema

    @field_validator("architectures")
    @classmethod
    def _architectures(cls, archs: list[str]) -> list[str]:
        if archs != list(ARCHITECTURES):
            raise ValueError(f"must be {list(ARCHITECTURES)}")
        return archs

    @field_validator("releases")
    @classmethod
    def _keys(cls, releases: dict[str, _ReleaseDoc]) -> dict[str, _ReleaseDoc]:
        for key, release in releases.items():
            if release.kubernetes.version != key:
                raise _Problem((key,), f"kubernetes.version {release.kubernetes.version} != key {key}")
            try:
                parse_version(key)
            except ValueError as exc:
                raise _Problem((key,), str(exc)) from None
        return releases

    @model_validator(mode="after")
    def _channels_point_at_releases(self) -> _ReleasesFile:
        for name, version in self.channels.items():
            if version not in self.releases:
                raise _Problem(("channels", name), f"{version} has no release entry")
        return self

    def build(self) -> _Data:
        regs = tuple(self.registries)
        releases = {k: r.build(k, regs) for k, r in self.releases.items()}
        return _Data(MappingProxyType(dict(self.channels)), MappingProxyType(releases), regs)


_FRIENDLIER: dict[str, str] = {
    "missing": "required key missing",
    "extra_forbidden": "unknown key",
    "model_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "string_type": "expected a non-empty string",
    "bool_type": "expected true or false",
}
"""Pydantic error types reworded as the messages of the hand-written parser that came before."""


def _describe(exc: ValidationError, where: str) -> str:
    """Every error of ``exc``, each as ``<YAML path>: <what is wrong>``."""
    out: list[str] = []
    for err in exc.errors():
        loc: list[str | int] = [*err["loc"]]
        message = _FRIENDLIER.get(err["type"], err["msg"])
        cause = err.get("ctx", {}).get("error")
        if err["type"] == "value_error" and isinstance(cause, ValueError):
            message = str(cause)
            if isinstance(cause, _Problem):
                loc += cause.sub
        path = where
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        out.append(f"{path or 'releases.yaml'}: {message}")
    return "; ".join(out)


_D = TypeVar("_D", bound=_Doc)


def _validate(doc: type[_D], raw: object, where: str = "") -> _D:
    """``raw`` (YAML data) as a ``doc``, or ``ReleaseDataError`` naming the path of each bad value."""
    try:
        return doc.model_validate(raw)
    except ValidationError as exc:
        raise ReleaseDataError(_describe(exc, where)) from None


def _artifact(name: str, raw: object, where: str) -> Artifact:
    """One artifact block (``where`` is its YAML path, for the error messages)."""
    return _validate(_ArtifactDoc, raw, where).build(name)


@dataclass(frozen=True)
class _Data:
    channels: Mapping[str, str]
    releases: Mapping[str, Release]
    registries: tuple[str, ...]


def _parse(raw: object) -> _Data:
    return _validate(_ReleasesFile, raw).build()


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
