"""The air-gap check of a stack: its render names no public origin outside the mirror
mapping, and it fetches exactly its asset list, through the mirrors.

Two findings, each naming what and where:

* **public origin**: a URL in user-data or manifests whose host is none of: the stack's
  mirrors, a private, loopback or link-local address (the instance metadata service), a
  name inside the cluster's network (``*.internal``), a cloud API the stack's network serves
  through a private endpoint (on AWS an interface or gateway VPC endpoint of that service in
  the render; without them, any cloud API is a public origin), or the stack's own load
  balancer. Comments, ``Documentation=`` links and the upstream a containerd ``hosts.toml``
  maps to its mirrors (the mirror mapping itself) are not fetches.
* **disagreement**: a file, image, chart, package or registry the render fetches that the
  asset list does not name, or an asset the render never fetches; an image host without a
  containerd mirror entry (a workload's own pull of that registry would leave the site).
"""

from __future__ import annotations

import ipaddress
import json
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cfcr.assets.listing import PULLED_BY_CHART, RESTORE_NOTE, AssetList, origin_assets, render_to
from cfcr.assets.refs import RenderRefs
from cfcr.config import ClusterSpec, load_spec, read_stack_config
from cfcr.mirrors import split_image, split_tag

AWS_API = re.compile(r"^(?P<service>[a-z0-9-]+)\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com(?:\.cn)?$")
AWS_LOAD_BALANCER = re.compile(r"\.elb\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?$")
VPC_ENDPOINT_TYPE = "aws:ec2/vpcEndpoint:VpcEndpoint"


@dataclass(frozen=True, order=True)
class Finding:
    """One thing the air-gap check refuses."""

    kind: str
    """``public origin``, ``not in the asset list``, ``never fetched`` or ``no containerd mirror``."""
    what: str
    """The URL, image, chart, package or registry."""
    where: str = ""
    """Files of the render that name it (or the asset's note)."""

    def text(self) -> str:
        return f"{self.kind}: {self.what}" + (f"  [{self.where}]" if self.where else "")


@dataclass
class AirgapReport:
    """The outcome of :func:`check_render` for one stack."""

    stack: str
    assets: AssetList
    findings: list[Finding] = field(default_factory=list)
    mirrored: bool = True
    """Whether the stack names any mirror (``cfcr:mirrors``, ``cfcr:registryMirrors``)."""

    @property
    def ok(self) -> bool:
        return not self.findings

    def format(self) -> str:
        counts = {k: len(self.assets.of_kind(k)) for k in ("file", "image", "chart", "package")}
        head = (f"air-gap check of stack {self.stack}: {counts['file']} files, {counts['image']} images, "
                f"{counts['chart']} charts, {counts['package']} packages in the asset list")
        if not self.mirrored:
            head += (f"\nstack {self.stack} names no mirror (cfcr:mirrors, cfcr:registryMirrors): every asset comes "
                     "from its public origin, so the check below refuses it by design (docs/airgapped.md)")
        if self.ok:
            return head + "\nOK: no public origin outside the mirror mapping; the render fetches exactly the asset list\n"
        return head + "\n" + "\n".join(f"  {f.text()}" for f in sorted(self.findings)) + \
            f"\nFAILED: {len(self.findings)} finding(s)\n"


def private_endpoint_services(resources: Iterable[Mapping[str, Any]]) -> set[str]:
    """AWS services with a VPC endpoint in the render (``com.amazonaws.<region>.<service>``)."""
    out: set[str] = set()
    for res in resources:
        if res.get("type") == VPC_ENDPOINT_TYPE:
            name = str((res.get("inputs") or {}).get("serviceName", ""))
            out.add(name.rsplit(".", 1)[-1])
    return out


def _mirror_hosts(spec: ClusterSpec) -> set[str]:
    urls = [spec.mirrors.files, spec.mirrors.registry, spec.mirrors.apt,
            *(u for urls in spec.registry_mirrors.values() for u in urls)]
    return {urlsplit(u).hostname or "" for u in urls if u}


def _allowed_host(host: str, mirrors: set[str], services: set[str]) -> bool:
    if host in mirrors or host.endswith(".internal") or host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return ip.is_private or ip.is_loopback or ip.is_link_local
    if AWS_LOAD_BALANCER.search(host):
        return True  # the stack's own load balancer: an internal one resolves to private addresses
    match = AWS_API.match(host)
    return bool(match and match.group("service") in services)


def public_origins(spec: ClusterSpec, refs: RenderRefs, resources: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """Every URL of the render that would leave the site (see the module docstring)."""
    mirrors, services = _mirror_hosts(spec), private_endpoint_services(resources)
    out = []
    for url, where in sorted(refs.urls.items()):
        host = urlsplit(url).hostname or ""
        if "$" in host or "@" in host:
            continue  # completed at run time from the node's environment (checked where it is set)
        if not _allowed_host(host, mirrors, services):
            out.append(Finding("public origin", url, ", ".join(sorted(where))))
    for archive in sorted(refs.apt_archives):
        if (urlsplit(archive).hostname or "") not in mirrors:
            out.append(Finding("public origin", archive, "cloud-config apt"))
    return out


def _repo(image: str) -> str:
    return split_tag(image)[0]


def _diff(kind: str, listed: set[str], fetched: Mapping[str, str]) -> list[Finding]:
    out = [Finding("not in the asset list", f"{kind} {x}", fetched[x]) for x in sorted(set(fetched) - listed)]
    out += [Finding("never fetched", f"{kind} {x}") for x in sorted(listed - set(fetched))]
    return out


def agreement(assets: AssetList, refs: RenderRefs) -> list[Finding]:
    """The render fetches exactly ``assets`` (as fetched through the mirrors)."""
    out: list[Finding] = []
    files = {f.url: f.name for f in refs.files}
    files.update({f.checksum_url: f"checksums of {f.name}" for f in refs.files if f.checksum_url})
    out += _diff("file", {a.fetched_as for a in assets.of_kind("file") if a.note != RESTORE_NOTE}, files)
    images = [a for a in assets.of_kind("image") if not a.origin.endswith("/*")]
    rendered = {i: ", ".join(sorted(w)) for i, w in refs.images.items()}
    listed = {a.fetched_as for a in images} | {_repo(a.fetched_as) for a in images}
    out += [Finding("not in the asset list", f"image {i}", w) for i, w in sorted(rendered.items()) if i not in listed]
    for a in images:
        if a.note != PULLED_BY_CHART and not ({a.fetched_as, _repo(a.fetched_as)} & set(rendered)):
            out.append(Finding("never fetched", f"image {a.fetched_as}"))
    registries = {a.fetched_as.removesuffix("/*") for a in assets.of_kind("image") if a.origin.endswith("/*")}
    out += _diff("registry", registries, {r: "chart values" for r in refs.registries})
    out += _diff("chart", {a.fetched_as for a in assets.of_kind("chart")},
                 {f"{c.reference}": f"version {c.version}" for c in refs.charts})
    out += _diff("package", {a.origin for a in assets.of_kind("package")}, {p: "cloud-config" for p in refs.packages})
    for a in assets.of_kind("image"):
        host = a.origin.split("/", 1)[0] if a.origin.endswith("/*") else split_image(a.origin)[0]
        if host not in refs.registry_hosts:
            out.append(Finding("no containerd mirror", host, a.origin))
    return sorted(set(out))


def check_render(stack: str, spec: ClusterSpec, assets: AssetList, render: Path, refs: RenderRefs) -> AirgapReport:
    """The air-gap check of a render of ``spec`` in ``render`` against ``assets``."""
    resources = json.loads((render / "resources.json").read_text())
    report = AirgapReport(stack, assets, mirrored=bool(_mirror_hosts(spec)))
    report.findings = sorted(set(public_origins(spec, refs, resources) + agreement(assets, refs)))
    return report


def check_stack(stack: str, project_dir: Path | None = None,
                config: Mapping[str, Any] | None = None) -> AirgapReport:
    """Render the stack and its origin offline and check the render (two renders: seconds)."""
    raw = dict(config) if config is not None else read_stack_config(stack, project_dir)
    spec = load_spec(raw, stack)
    with tempfile.TemporaryDirectory(prefix="cfcr-airgap-") as tmp:
        assets = origin_assets(stack, raw, spec, Path(tmp) / "origin")
        refs = render_to(stack, raw, Path(tmp) / "stack")
        return check_render(stack, spec, assets, Path(tmp) / "stack", refs)
