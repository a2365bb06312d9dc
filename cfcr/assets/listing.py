"""The asset list of a stack: every file, image, chart and OS package a cluster of the stack
fetches, from its public origin, with where the site's mirrors serve it
(``python -m cfcr assets --stack NAME``).

Built the way kOps' ``get assets`` is, from the cluster cfcr would build: the stack is
rendered offline once with its mirrors replaced by the sentinel registry ``origin.invalid``
(so that every chart image slot is named, as it is with a real mirror) and no file or apt
mirror; what that render fetches (:func:`cfcr.assets.refs.render_refs`), the sentinel
stripped, is each asset's origin, and a chart's origin is the channel's pin of that chart.
The mirror mapping (:mod:`cfcr.mirrors`) says where the stack's nodes fetch each asset
instead. Images a chart's workloads pull by the chart's own default tags are added from the
channel's pins of the charts the stack installs. ``cfcr.assets.check`` proves that the stack's own render fetches
exactly these assets through the mirrors.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cfcr import channels
from cfcr.addons.images import ImageRewriter
from cfcr.assets.refs import ChartRef, FileRef, RenderRefs, render_refs
from cfcr.config import ClusterSpec, load_spec, read_stack_config
from cfcr.mirrors import CHARTS_PATH, Mirrors, split_image, split_tag

Kind = Literal["file", "image", "chart", "package"]
MIRROR_KEYS = ("cfcr:mirrors", "cfcr:registryMirrors")
"""Stack config keys replaced for the origin render."""
PULLED_BY_CHART = "pulled by a chart's workloads (the channel's pin)"
"""The note of an image no value names: a chart's default, pinned by the channel."""
SENTINEL = "origin.invalid"
"""The registry mirror of the origin render (``.invalid`` is reserved: it never resolves)."""


@dataclass(frozen=True, order=True)
class Asset:
    """One thing a node (or ``pulumi up``) fetches."""

    kind: Kind
    """file, image, chart or package."""
    origin: str
    """Where it comes from upstream: a URL, an image reference, a chart reference, a package name."""
    fetched_as: str
    """What the stack fetches: through its mirrors when they are set, else the origin."""
    version: str = ""
    """Artifact version, image tag or chart version ('' when the reference carries it)."""
    verify: str = ""
    """How it is verified: ``sha256:<digest>`` pinned by cfcr, the checksum file read next to it,
    ``tag`` (an image or chart by tag), ``archive`` (apt's signed archive)."""
    note: str = ""
    """Why it is listed when the render does not name it (a chart's own image)."""

    @property
    def origin_host(self) -> str:
        """The origin's host: the group this asset is listed under."""
        if self.kind == "package":
            return "ubuntu-archive"
        if self.kind == "image":
            return split_image(self.origin)[0]
        if self.origin.startswith(("https://", "http://", "oci://")):
            return urlsplit(self.origin.split(" ", 1)[0]).netloc
        return self.origin.split("/", 1)[0]


@dataclass(frozen=True)
class AssetList:
    """Every asset of one stack."""

    stack: str
    """The stack name."""
    kubernetes_version: str
    """The exact Kubernetes version the stack runs."""
    mirrors: Mapping[str, str | None]
    """The stack's ``cfcr:mirrors`` (files, registry, apt)."""
    assets: tuple[Asset, ...]
    """Sorted by kind, origin host, origin."""

    def of_kind(self, kind: Kind) -> list[Asset]:
        return [a for a in self.assets if a.kind == kind]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data, grouped like ``kops get assets``: files, images, charts, packages."""
        def rows(kind: Kind) -> list[dict[str, Any]]:
            out = []
            for a in self.of_kind(kind):
                row = {k: v for k, v in asdict(a).items() if k != "kind" and v != ""}
                if kind == "chart":  # the parts a `helm pull` takes
                    repo, chart = chart_origin(ChartRef(a.origin, a.version))
                    row.update(repository=repo, chart=chart)
                out.append(row)
            return out
        return {"stack": self.stack, "kubernetesVersion": self.kubernetes_version, "mirrors": dict(self.mirrors),
                "files": rows("file"), "images": rows("image"), "charts": rows("chart"), "packages": rows("package")}

    def to_text(self) -> str:
        """Grouped by kind, then origin host; one asset per line: origin -> fetched as (how verified)."""
        lines = [f"# assets of stack {self.stack} (Kubernetes {self.kubernetes_version})",
                 "# mirrors: " + ", ".join(f"{k}={v or '(none: origin)'}" for k, v in self.mirrors.items())]
        titles = {"file": "files", "image": "images", "chart": "charts", "package": "OS packages"}
        for kind, title in titles.items():
            items = self.of_kind(kind)  # type: ignore[arg-type]
            if not items:
                continue
            lines.append(f"\n## {title} ({len(items)})")
            host = None
            for a in sorted(items, key=lambda a: (a.origin_host, a.origin)):
                if a.origin_host != host:
                    host = a.origin_host
                    lines.append(f"[{host}]")
                extra = [x for x in (a.version and f"version {a.version}", a.verify, a.note) if x]
                via = "" if a.fetched_as == a.origin else f"  ->  {a.fetched_as}"
                lines.append(f"  {a.origin}{via}" + (f"  ({'; '.join(extra)})" if extra else ""))
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- mapping origins

def chart_origin(ref: ChartRef) -> tuple[str, str]:
    """(repository or registry path, chart name) of a chart reference."""
    if " " in ref.reference:
        repo, chart = ref.reference.split(" ", 1)
        return repo, chart
    path, _, chart = ref.reference.rpartition("/")
    return path, chart


def mirrored_chart(ref: ChartRef, mirrors: Mirrors) -> ChartRef:
    """A chart reference as the stack installs it through its registry mirror."""
    if not mirrors.registry:
        return ref
    _, chart = chart_origin(ref)
    return ChartRef(f"oci://{mirrors.registry_prefix}/{CHARTS_PATH}/{chart}", ref.version)


def mirrored_file(ref: FileRef, mirrors: Mirrors) -> FileRef:
    """A download as the stack's nodes fetch it through the file mirror."""
    return FileRef(mirrors.file_url(ref.url), ref.name, ref.version, ref.algorithm, ref.digest,
                   None if ref.checksum_url is None else mirrors.file_url(ref.checksum_url))


def _verify(ref: FileRef) -> str:
    if ref.digest:
        return f"{ref.algorithm}:{ref.digest} pinned by cfcr"
    if ref.checksum_url:
        return f"{ref.algorithm} from the publisher's file {ref.checksum_url}"
    return "applied by pulumi up (no digest)"


def _chart_images(spec: ClusterSpec, refs: RenderRefs) -> list[str]:
    """The channel's image pins of the charts the render installs (by chart name)."""
    release = channels.resolve(spec.kubernetes.version)
    installed = {chart_origin(c)[1] for c in refs.charts}
    pins = [*release.cnis.values(), *release.addons.values()]
    return sorted({image for pin in pins if pin.chart in installed for image in pin.images})


def origin_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stack config whose only mirror is the sentinel registry (and so without an air-gapped
    network, which needs every mirror): the cluster whose fetches are the assets' origins."""
    out = {k: v for k, v in config.items() if k not in MIRROR_KEYS}
    out["cfcr:mirrors"] = {"registry": f"https://{SENTINEL}"}
    networking = out.get("cfcr:networking")
    if isinstance(networking, Mapping) and networking.get("airGapped"):
        out["cfcr:networking"] = {**networking, "airGapped": False, "apiPublic": False}
    return out


def render_to(stack: str, config: Mapping[str, Any], out: Path) -> RenderRefs:
    """Render ``config`` offline into ``out`` and read back what it fetches."""
    from cfcr.render import render_stack

    render_stack(stack, out, config=dict(config))
    return render_refs(out)


def chart_pins(spec: ClusterSpec) -> dict[str, ChartRef]:
    """Chart name -> its origin reference and version, from the stack's channel."""
    release = channels.resolve(spec.kubernetes.version)
    out: dict[str, ChartRef] = {}
    for pin in [*release.cnis.values(), *release.addons.values()]:
        out[pin.chart] = ChartRef(f"{pin.repo.rstrip('/')}/{pin.chart}" if pin.repo.startswith("oci://")
                                  else f"{pin.repo} {pin.chart}", pin.version)
    for comps in release.clouds.values():
        for comp in (comps.ccm, comps.csi):
            if comp.chart is not None and comp.chart.version is not None:
                out[comp.chart.chart] = ChartRef(f"{comp.chart.repo} {comp.chart.chart}", comp.chart.version)
    return out


def strip_sentinel(refs: RenderRefs, spec: ClusterSpec) -> RenderRefs:
    """The origin render's references with the sentinel registry taken off (images, registries)
    and each chart replaced by the channel's pin of it."""
    prefix = f"{SENTINEL}/"
    pins = chart_pins(spec)

    def bare(image: str) -> str:
        return image[len(prefix):] if image.startswith(prefix) else image

    images: dict[str, set[str]] = {}
    for image, where in refs.images.items():
        images.setdefault(bare(image), set()).update(where)
    charts = set()
    for chart in refs.charts:
        name = chart_origin(chart)[1]
        if name not in pins:
            raise ValueError(f"chart {chart.reference}: the channel pins no chart named {name}")
        charts.add(pins[name])
    return replace(refs, images=images, charts=charts, registries={bare(r) for r in refs.registries})


RESTORE_NOTE = "only when restoring an etcd snapshot (python -m cfcr etcd-restore)"
"""The note of the files the restore procedure fetches, which no render names."""


def restore_assets(spec: ClusterSpec) -> list[Asset]:
    """etcdutl's release tarball and its SHA256SUMS, which the restore procedure fetches."""
    from cfcr.config.mirrors import MirrorsConfig
    from cfcr.etcd_restore import etcdutl_download

    origin = etcdutl_download(spec.model_copy(update={"mirrors": MirrorsConfig(), "registry_mirrors": {}}))
    fetched = etcdutl_download(spec)
    version = channels.resolve(spec.kubernetes.version).etcd_version
    return [Asset("file", origin[0], fetched[0], version, f"sha256 from {fetched[1]}", RESTORE_NOTE),
            Asset("file", origin[1], fetched[1], version, "the checksum file itself (https)", RESTORE_NOTE)]


def build_assets(stack: str, spec: ClusterSpec, origin: RenderRefs) -> AssetList:
    """The asset list of ``spec`` from ``origin``, what its mirror-free render fetches."""
    mirrors = Mirrors.of(spec)
    rewriter = ImageRewriter.for_spec(spec)
    assets: list[Asset] = []
    for f in sorted(origin.files):
        fetched = mirrored_file(f, mirrors)
        assets.append(Asset("file", f.url, fetched.url, f.version, _verify(fetched)))
        if f.checksum_url and fetched.checksum_url:
            assets.append(Asset("file", f.checksum_url, fetched.checksum_url, f.version,
                                "the checksum file itself (https)", f"checksums of {f.name}"))
    named = set(origin.images)
    pins = {split_tag(i)[0]: i for i in _chart_images(spec, origin)}
    for image in sorted(named):
        repository, tag = split_tag(image)
        if not tag and image in pins:
            pinned = pins.pop(image)
            assets.append(Asset("image", pinned, rewriter.image(pinned), split_tag(pinned)[1], "tag",
                                "a chart's image slot; the tag is the channel's pin"))
            continue
        pins.pop(repository, None)
        note = "" if tag else "a chart's image slot: the tag is the chart's default"
        assets.append(Asset("image", image, rewriter.image(image), tag, "tag" if tag else "", note))
    for image in sorted(pins.values()):
        assets.append(Asset("image", image, rewriter.image(image), split_tag(image)[1], "tag",
                            PULLED_BY_CHART))
    for registry in sorted(origin.registries):
        assets.append(Asset("image", f"{registry}/*", f"{rewriter.registry(registry) or registry}/*", "", "tag",
                            "the registry of every image an operator deploys (its chart's registry value)"))
    for c in sorted(origin.charts):
        assets.append(Asset("chart", c.reference, mirrored_chart(c, mirrors).reference, c.version, "tag"))
    assets += restore_assets(spec)
    apt = mirrors.apt or "the image's Ubuntu archive"
    for name in sorted(origin.packages):
        assets.append(Asset("package", name, name, "", f"apt from {apt}"))
    m = spec.mirrors
    return AssetList(stack, channels.resolve(spec.kubernetes.version).version,
                     {"files": m.files, "registry": m.registry, "apt": m.apt}, tuple(assets))


def origin_assets(stack: str, raw: Mapping[str, Any], spec: ClusterSpec, out: Path) -> AssetList:
    """The asset list of ``spec`` (stack config ``raw``), its origin render written to ``out``."""
    return build_assets(stack, spec, strip_sentinel(render_to(stack, origin_config(raw), out), spec))


def stack_assets(stack: str, project_dir: Path | None = None,
                 config: Mapping[str, Any] | None = None) -> AssetList:
    """The asset list of a stack (renders it offline once, without mirrors: a few seconds)."""
    raw = dict(config) if config is not None else read_stack_config(stack, project_dir)
    spec = load_spec(raw, stack)
    with tempfile.TemporaryDirectory(prefix="cfcr-assets-") as tmp:
        return origin_assets(stack, raw, spec, Path(tmp))


__all__: Sequence[str] = ["Asset", "AssetList", "build_assets", "chart_origin", "mirrored_chart", "mirrored_file",
                          "origin_assets", "origin_config", "render_to", "stack_assets"]
