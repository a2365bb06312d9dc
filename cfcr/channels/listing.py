"""What the channels pin, as rows: the data behind ``python -m cfcr channels``.

Pure: reads the parsed ``releases.yaml`` (``cfcr.channels.model``) and returns one
:class:`Pin` per pinned thing of every release (the Kubernetes node tarball, the node
runtime artifacts, etcd, CoreDNS, pause, each CNI chart, each cloud's controller manager
and CSI driver, each addon chart), each with how it is verified and where it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .model import (
    ARCHITECTURES,
    CHANNELS,
    Artifact,
    CloudComponent,
    HelmChart,
    ImageVersion,
    Release,
    known_versions,
    parse_version,
    resolve,
)

__all__ = ["UNCONFIRMED_MARKS", "Pin", "ReleaseListing", "channel_listing", "format_text", "listing_json", "release_pins"]

Verification = Literal["pinned", "publisher-file", "image-tag", "chart-version"]


@dataclass(frozen=True)
class Pin:
    """One thing a release pins."""

    component: str
    """What it is: ``kubernetes``, ``containerd``, ``etcd``, ``cni/calico``, ``aws/ccm``, ``addon/vpa``..."""
    version: str
    """The pinned version (image tag, chart version or artifact version)."""
    verification: Verification
    """``pinned``: digest in cfcr's data; ``publisher-file``: digest read at boot from the
    publisher's checksum file; ``image-tag`` / ``chart-version``: pulled by tag or version."""
    confirmed: bool
    """False when the source says the pin could not be confirmed for this release; for a
    downloaded artifact, False when cfcr pins no digest (the node trusts the publisher's file)."""
    source: str
    """Where the value came from (the ``source:`` of ``releases.yaml``)."""
    detail: str = ""
    """Image reference, chart reference or checksum-file URL template."""


@dataclass(frozen=True)
class ReleaseListing:
    """One release and the channels pointing at it."""

    version: str
    """Exact Kubernetes version."""
    channels: tuple[str, ...]
    """Channel names resolving to this version (empty: kept as an upgrade source)."""
    pins: tuple[Pin, ...]
    """Everything the release pins, in a stable order."""


UNCONFIRMED_MARKS: tuple[str, ...] = ("NOT CONFIRMED", "NOT EXACT", "NOT THE 1.", "NOT SEEN", "NOT FOUND")
"""Phrases with which a ``source:`` of ``releases.yaml`` says a value is not confirmed
(image and chart pins carry no ``confirmed`` field of their own)."""


def _unconfirmed(source: str) -> bool:
    text = source.upper()
    return any(mark in text for mark in UNCONFIRMED_MARKS)


def _artifact_pin(component: str, art: Artifact) -> Pin:
    if art.checksum_source == "pinned":
        assert art.checksums is not None
        detail = f"{art.algorithm} " + ", ".join(f"{a}={art.checksums[a][:12]}..." for a in ARCHITECTURES)
    else:
        detail = f"{art.algorithm} from {art.file_url_template}"
    return Pin(component, art.version, art.checksum_source, art.checksum_source == "pinned", art.source, detail)


def _image_pin(component: str, image: str, pin: ImageVersion) -> Pin:
    return Pin(component, pin.version, "image-tag", not _unconfirmed(pin.source), pin.source, image)


def _chart_pin(component: str, chart: HelmChart) -> Pin:
    detail = f"{chart.repo} {chart.chart}" + (f" ({', '.join(chart.images)})" if chart.images else "")
    return Pin(component, chart.version, "chart-version", not _unconfirmed(chart.source), chart.source, detail)


def _cloud_pin(component: str, c: CloudComponent) -> Pin:
    detail = c.image
    if c.chart is not None:
        detail += f" (chart {c.chart.chart} {c.chart.version or 'version not confirmed'})"
    if c.sidecars:
        detail += f" (with {', '.join(c.sidecars)})"
    return Pin(component, c.version, "image-tag", c.confirmed, c.source, detail)


def release_pins(release: Release) -> tuple[Pin, ...]:
    """Every pin of ``release``: node artifacts, control-plane images, CNIs, clouds, addons."""
    pins: list[Pin] = [_artifact_pin("kubernetes", release.kubernetes.tarball)]
    pins += [_artifact_pin(name, art) for name, art in release.components.items()]
    pins += [
        _image_pin("etcd", release.etcd_image, release.etcd),
        _image_pin("coredns", release.coredns_image, release.coredns),
        _image_pin("pause", release.pause_image, release.pause),
    ]
    pins += [_chart_pin(f"cni/{name}", chart) for name, chart in release.cnis.items()]
    for cloud, integration in release.clouds.items():
        pins.append(_cloud_pin(f"{cloud}/ccm", integration.ccm))
        pins.append(_cloud_pin(f"{cloud}/csi", integration.csi))
    pins += [_chart_pin(f"addon/{name}", chart) for name, chart in release.addons.items()]
    return tuple(pins)


def channel_listing(channels: Mapping[str, str] | None = None) -> list[ReleaseListing]:
    """Every release cfcr knows, newest first, with the channels that point at it."""
    chans = CHANNELS if channels is None else channels
    out: list[ReleaseListing] = []
    for version in sorted(known_versions(), key=parse_version, reverse=True):
        names = tuple(sorted(c for c, v in chans.items() if v == version))
        out.append(ReleaseListing(version, names, release_pins(resolve(version))))
    return out


def listing_json(listing: list[ReleaseListing]) -> dict[str, Any]:
    """The listing as plain JSON data: ``{"channels": {...}, "releases": [...]}``."""
    channels = {c: r.version for r in listing for c in r.channels}
    return {
        "channels": dict(sorted(channels.items())),
        "releases": [
            {"version": r.version, "channels": list(r.channels), "pins": [asdict(p) for p in r.pins]}
            for r in listing
        ],
    }


_MARK: dict[str, str] = {
    "pinned": "digest pinned",
    "publisher-file": "digest from publisher file",
    "image-tag": "image tag",
    "chart-version": "chart version",
}


def format_text(listing: list[ReleaseListing], *, sources: bool = True) -> str:
    """Plain text: the channels, then per release one line per pin (and its source)."""
    lines = ["channels:"]
    for r in listing:
        for c in r.channels:
            lines.append(f"  {c:<8} -> Kubernetes {r.version}")
    for r in listing:
        role = ", ".join(r.channels) if r.channels else "no channel: kept as an upgrade source"
        lines += ["", f"release {r.version} ({role})"]
        width = max(len(p.component) for p in r.pins)
        for p in r.pins:
            flag = "" if p.confirmed else "  [UNCONFIRMED]"
            lines.append(f"  {p.component:<{width}}  {p.version:<10} {_MARK[p.verification]}{flag}")
            if p.detail:
                lines.append(f"  {'':<{width}}  {p.detail}")
            if sources:
                lines.append(f"  {'':<{width}}  source: {p.source}")
    return "\n".join(lines) + "\n"
