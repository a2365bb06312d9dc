"""What a render fetches: every file URL, image, chart and OS package its user-data and
manifests name, read back from a render directory (``cfcr render --out DIR``).

Read as the consumers read them: the boot script's ``artifacts.list`` (file and checksum
URLs), containerd's sandbox image, kubeadm's ``imageRepository`` and ``kubernetesVersion``
(the control-plane images kubeadm's static Pods use), every ``image`` of a manifest or static
Pod, every chart's reference and version and every image slot of its values
(``repository``/``tag``, ``image``, ``registry``), the YAML manifests Pulumi fetches
(``resources.json``), cloud-config's ``packages`` and ``apt`` archives. Pure: reads files.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cfcr.node.packages import ARTIFACTS_LIST_PATH
from cfcr.node.userdata import KUBEADM_TEMPLATE_PATH

CONTAINERD_CONFIG = "/etc/containerd/config.toml"
HOSTS_TOML = re.compile(r"^/etc/containerd/certs\.d/([^/]+)/hosts\.toml$")
KUBEADM_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
"""The images of kubeadm's control-plane static Pods (``<imageRepository>/<name>:<version>``)."""
URL = re.compile(r"\b(?:https?|oci)://[A-Za-z0-9.-]+(?::[0-9]+)?[^\s\"'`<>(){}\]]*")
NOT_FETCHED = re.compile(r"^\s*(#|Documentation=|server\s*=)")
"""Lines whose URLs nothing fetches: comments, systemd ``Documentation=``, and the upstream a
containerd ``hosts.toml`` maps to its mirrors (the mirror mapping itself)."""


def fetchable_urls(text: str) -> list[str]:
    """The URLs of ``text`` outside comments, documentation links and the mirror mapping."""
    return [url for line in text.splitlines() if not NOT_FETCHED.match(line) for url in URL.findall(line)]


@dataclass(frozen=True, order=True)
class FileRef:
    """One download of the boot script."""

    url: str
    """The URL the node fetches."""
    name: str
    """Artifact name (kubernetes, containerd, runc, cni_plugins, crictl, or ``manifest``)."""
    version: str
    """Artifact version."""
    algorithm: str = ""
    """sha256 / sha512 (empty for a manifest Pulumi applies)."""
    digest: str | None = None
    """Pinned digest, or None (verified against ``checksum_url``)."""
    checksum_url: str | None = None
    """The publisher's checksum file the node fetches too, when no digest is pinned."""


@dataclass(frozen=True, order=True)
class ChartRef:
    """One Helm chart the addons install."""

    reference: str
    """What Helm installs: ``oci://…/<chart>``, or ``<repo URL> <chart>`` for a Helm repository."""
    version: str
    """Chart version."""


@dataclass
class RenderRefs:
    """Everything a render fetches, and where it says so."""

    files: set[FileRef] = field(default_factory=set)
    images: dict[str, set[str]] = field(default_factory=dict)
    """Image reference (``host/repo[:tag]``; a chart slot names a repository only) -> where."""
    charts: set[ChartRef] = field(default_factory=set)
    packages: set[str] = field(default_factory=set)
    apt_archives: set[str] = field(default_factory=set)
    registries: set[str] = field(default_factory=set)
    """Registries chart values set for an operator's images (``quay.io``, or its mirror)."""
    registry_hosts: dict[str, list[str]] = field(default_factory=dict)
    """containerd's mirror mapping: registry host -> the mirror URLs of its hosts.toml."""
    urls: dict[str, set[str]] = field(default_factory=dict)
    """Every URL written anywhere in user-data or manifests -> where (for the origin scan)."""

    def add_image(self, image: str, where: str) -> None:
        self.images.setdefault(image, set()).add(where)

    def add_url(self, url: str, where: str) -> None:
        self.urls.setdefault(url.rstrip(".,;:"), set()).add(where)


def _cloud_configs(render: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each role's cloud-config: ``user-data.decompressed`` where the cloud takes gzip (AWS),
    ``user-data`` itself where it takes text (GCP)."""
    nodes = render / "nodes"
    for role in sorted(p for p in nodes.iterdir() if p.is_dir()) if nodes.is_dir() else []:
        path = role / "user-data.decompressed"
        if not path.is_file():
            path = role / "user-data"
        if path.is_file():
            yield role.name, yaml.safe_load(path.read_text()) or {}


def _artifacts(text: str) -> Iterator[FileRef]:
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, version, url, algorithm, digest, checksum_url = line.split("|")
        yield FileRef(url, name, version, algorithm, None if digest == "-" else digest,
                      None if checksum_url == "-" else checksum_url)


def _kubeadm_images(text: str) -> Iterator[str]:
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "ClusterConfiguration":
            repo, version = doc["imageRepository"], doc["kubernetesVersion"]
            for name in KUBEADM_IMAGES:
                yield f"{repo}/{name}:{version}"


def walk(node: Any) -> Iterator[Any]:
    """``node`` and every value nested in it (mappings' values, lists' items), depth first."""
    yield node
    if isinstance(node, Mapping):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def _manifest_images(doc: Any) -> Iterator[str]:
    for node in walk(doc):
        if isinstance(node, Mapping) and isinstance(node.get("image"), str):
            yield node["image"]


def _value_images(values: Any) -> Iterator[str]:
    """Image references in chart values: ``{repository, tag}`` and ``{image: str}``."""
    for node in walk(values):
        if not isinstance(node, Mapping):
            continue
        repo = node.get("repository")
        if isinstance(repo, str) and "/" in repo:
            tag = node.get("tag")
            yield f"{repo}:{tag}" if isinstance(tag, str) and tag else repo
        image = node.get("image")
        if isinstance(image, str) and "/" in image:
            yield image


def _value_registries(values: Any) -> Iterator[str]:
    """Whole-registry settings in chart values (``registry: quay.io``, an operator's images)."""
    for node in walk(values):
        if isinstance(node, Mapping) and isinstance(node.get("registry"), str) and node["registry"]:
            yield node["registry"].rstrip("/")


def render_refs(render: Path) -> RenderRefs:
    """What the render in ``render`` (a ``cfcr render --out`` directory) fetches."""
    refs = RenderRefs()
    for role, doc in _cloud_configs(render):
        refs.packages.update(doc.get("packages") or [])
        for pocket in ("primary", "security"):
            for archive in (doc.get("apt") or {}).get(pocket) or []:
                refs.apt_archives.add(archive["uri"])
        for item in doc.get("write_files") or []:
            path, content = item["path"], item.get("content") or ""
            where = f"{role}:{path}"
            for url in fetchable_urls(content):
                refs.add_url(url, where)
            if path == ARTIFACTS_LIST_PATH:
                refs.files.update(_artifacts(content))
            elif path == CONTAINERD_CONFIG:
                sandbox = tomllib.loads(content)["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"]
                refs.add_image(sandbox, where)
            elif path == KUBEADM_TEMPLATE_PATH:
                for image in _kubeadm_images(content):
                    refs.add_image(image, where)
            elif match := HOSTS_TOML.match(path):
                hosts = tomllib.loads(content).get("host") or {}
                refs.registry_hosts[match.group(1)] = list(hosts)
    for path in sorted((render / "manifests").rglob("*.yaml")):
        where = str(path.relative_to(render))
        text = path.read_text()
        for url in fetchable_urls(text):
            refs.add_url(url, where)
        for doc in yaml.safe_load_all(text):
            if not isinstance(doc, dict):
                continue
            chart = doc.get("helmChart")
            if isinstance(chart, dict):
                reference = str(chart["chart"])
                repo = (chart.get("repositoryOpts") or {}).get("repo")
                refs.charts.add(ChartRef(f"{repo} {reference}" if repo else reference, str(chart["version"])))
                for image in _value_images(chart.get("values") or {}):
                    refs.add_image(image, where)
                refs.registries.update(_value_registries(chart.get("values") or {}))
            else:
                for image in _manifest_images(doc):
                    refs.add_image(image, where)
    resources = json.loads((render / "resources.json").read_text())
    for res in resources:
        if res.get("type") in ("kubernetes:yaml/v2:ConfigGroup", "kubernetes:yaml/v2:ConfigFile"):
            inputs = res.get("inputs") or {}
            for url in [*(inputs.get("files") or []), *([inputs["file"]] if inputs.get("file") else [])]:
                refs.files.add(FileRef(str(url), "manifest", res["name"]))
                refs.add_url(str(url), f"resources.json:{res['name']}")
    return refs
