"""Prepare a channel bump: check a Kubernetes patch is published, gather what local sources
confirm, and write the ``releases.yaml`` entry skeleton for a person to finish.

    python -m cfcr.channels.bump 1.37.3 [--channel edge] [--out FILE] [--modcache DIR]

What it does, in order (docs/channels.md is the whole procedure):

1. asks the Go module proxy whether the release is published: ``k8s.io/api`` must serve
   ``v0.MINOR.PATCH`` (the staging module every Kubernetes release tags), or the bump is
   refused; it also says whether ``k8s.io/kubernetes`` itself is served (the tests build
   kubeadm and the control plane from it, see tests/tools/versions.toml);
2. lists the newest versions the proxy serves of etcd 3.x and the node runtime
   (containerd 2.x, runc, CNI plugins, crictl), next to what the channels pin;
3. reads the Go module cache (never the network) for ``k8s.io/kubernetes`` at this
   version: kubeadm's ``constants.go`` gives CoreDNS, pause and kubeadm's etcd; any
   ``CHANGELOG-MAJOR.MINOR.md`` in a cached module that holds this version's "Node Binaries"
   table gives the node tarball's sha512 for each architecture;
4. writes the release entry: every value found in step 3 with its source; every value
   it could not confirm left as ``null`` with a ``# TODO`` comment (``releases.yaml``
   refuses to load until a person fills it); the node tarball falls back to the
   publisher's ``.sha512`` file. It never invents a checksum.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .model import ARCHITECTURES, CHANNELS, known_versions, parse_version, resolve

__all__ = [
    "BumpError",
    "BumpPlan",
    "GO_PROXY",
    "NodeBinaries",
    "KubeadmConstants",
    "http_get",
    "main",
    "node_binaries",
    "kubeadm_constants",
    "plan_bump",
    "proxy_versions",
    "release_skeleton",
]

GO_PROXY = "https://proxy.golang.org"
"""The Go module proxy: the one registry the bump asks."""

RUNTIME_MODULES: dict[str, str] = {
    "etcd": "go.etcd.io/etcd/server/v3",
    "containerd": "github.com/containerd/containerd/v2",
    "runc": "github.com/opencontainers/runc",
    "cni_plugins": "github.com/containernetworking/plugins",
    "crictl": "sigs.k8s.io/cri-tools",
}
"""Component -> the Go module whose tags are that component's releases."""

Getter = Callable[[str], tuple[int, str]]


class BumpError(RuntimeError):
    """The bump cannot go ahead (the reason names the version and what was seen)."""


def http_get(url: str, timeout: float = 30.0) -> tuple[int, str]:
    """GET ``url``: (HTTP status, body). The one network call of this module (tests replace it)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (https only)
            return int(resp.status), resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode("utf-8", "replace") if err.fp else ""


def _stable(v: str) -> bool:
    return re.fullmatch(r"v\d+\.\d+\.\d+", v) is not None


def _key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.lstrip("v").split("."))


def proxy_versions(module: str, get: Getter | None = None) -> list[str]:
    """Released (non-pre-release) versions the proxy lists for ``module``, oldest first."""
    status, body = (get or http_get)(f"{GO_PROXY}/{module}/@v/list")
    if status != 200:
        return []
    return sorted({v for v in body.split() if _stable(v)}, key=_key)


def _served(module: str, version: str, get: Getter) -> int:
    status, _ = get(f"{GO_PROXY}/{module}/@v/{version}.info")
    return status


@dataclass(frozen=True)
class KubeadmConstants:
    """What kubeadm's ``constants.go`` of one ``k8s.io/kubernetes`` module says."""

    path: Path
    """The constants.go read."""
    coredns: str | None
    """``CoreDNSVersion``."""
    pause: str | None
    """``PauseVersion``."""
    etcd: str | None
    """``DefaultEtcdVersion`` (kubeadm's own choice; cfcr runs etcd itself)."""


@dataclass(frozen=True)
class NodeBinaries:
    """The node tarball sha512 of one version, read from a CHANGELOG's "Node Binaries" table."""

    path: Path
    """The CHANGELOG file."""
    sha512: dict[str, str]
    """Architecture -> sha512 hex digest (only the architectures found)."""


def default_modcache() -> Path:
    """``go env GOMODCACHE``, or ``$GOPATH/pkg/mod``, or ``~/go/pkg/mod``."""
    try:
        out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, timeout=30, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return Path(os.environ.get("GOPATH", str(Path.home() / "go"))) / "pkg" / "mod"


def _const(text: str, name: str) -> str | None:
    m = re.search(rf"^\s*{name}\s*=\s*\"([^\"]+)\"", text, re.MULTILINE)
    return m.group(1) if m else None


def kubeadm_constants(modcache: Path, version: str) -> KubeadmConstants | None:
    """kubeadm's constants of ``k8s.io/kubernetes@v<version>`` in the module cache, if there."""
    path = modcache / f"k8s.io/kubernetes@v{version}" / "cmd/kubeadm/app/constants/constants.go"
    if not path.is_file():
        return None
    text = path.read_text("utf-8", "replace")
    return KubeadmConstants(path, _const(text, "CoreDNSVersion"), _const(text, "PauseVersion"),
                            _const(text, "DefaultEtcdVersion"))


def node_binaries(modcache: Path, version: str) -> NodeBinaries | None:
    """The "Node Binaries" sha512 of ``version`` from any cached ``k8s.io/kubernetes`` module's
    ``CHANGELOG-MAJOR.MINOR.md`` (a tag's own notes land after the tag, so look in later ones)."""
    major, minor, _ = parse_version(version)
    anchor = f"# v{version}\n"
    for module in sorted((modcache / "k8s.io").glob("kubernetes@v*"), reverse=True):
        path = module / "CHANGELOG" / f"CHANGELOG-{major}.{minor}.md"
        if not path.is_file():
            continue
        text = path.read_text("utf-8", "replace")
        start = text.find(anchor)
        if start < 0:
            continue
        end = text.find("\n# v", start + len(anchor))
        section = text[start:end if end > 0 else len(text)]
        node = section.find("### Node Binaries")
        if node < 0:
            continue
        sums: dict[str, str] = {}
        for arch in ARCHITECTURES:
            m = re.search(rf"kubernetes-node-linux-{arch}\.tar\.gz\]\([^)]*/v{re.escape(version)}/[^)]*\)\s*\|\s*`?([0-9a-f]{{128}})`?",
                          section[node:])
            if m:
                sums[arch] = m.group(1)
        if sums:
            return NodeBinaries(path, sums)
    return None


@dataclass
class BumpPlan:
    """What the bump found out, and what a person still has to confirm."""

    version: str
    """The new exact Kubernetes version."""
    channel: str | None
    """The channel to point at it, if any."""
    kubernetes_module: int
    """HTTP status of ``k8s.io/kubernetes@v<version>`` on the proxy (200: tests can build it)."""
    constants: KubeadmConstants | None
    """kubeadm's constants of this version, when its module is in the cache."""
    binaries: NodeBinaries | None
    """The node tarball sha512, when a cached CHANGELOG holds it."""
    newest: dict[str, str] = field(default_factory=dict)
    """Component -> newest released version the proxy lists (for the runtime and etcd)."""
    served: dict[str, list[str]] = field(default_factory=dict)
    """Component -> every released version the proxy lists, oldest first (without ``v``)."""
    todo: list[str] = field(default_factory=list)
    """What the skeleton leaves to a person, one sentence each."""


def plan_bump(version: str, channel: str | None = None, *, modcache: Path | None = None,
              get: Getter | None = None) -> BumpPlan:
    """Check ``version`` is published and gather what the local sources confirm.

    Raises :class:`BumpError` when the proxy does not serve ``k8s.io/api v0.MINOR.PATCH``
    (the release is not published, or not yet), or when the version is not newer than
    the channel it would move."""
    getter = get or http_get
    major, minor, patch = parse_version(version)
    version = f"{major}.{minor}.{patch}"
    if channel is not None and channel in CHANNELS:
        current = CHANNELS[channel]
        if parse_version(version) <= parse_version(current):
            raise BumpError(f"{channel} is at {current}; {version} is not newer")
    api = f"v0.{minor}.{patch}"
    status = _served("k8s.io/api", api, getter)
    if status != 200:
        served = [v for v in proxy_versions("k8s.io/api", getter) if _key(v)[:2] == (0, minor)]
        hint = f"; the newest {major}.{minor} patch it lists is {served[-1].replace('v0.', f'{major}.')}" if served else ""
        raise BumpError(f"Kubernetes {version} is not published: the Go module proxy answers {status} "
                        f"for k8s.io/api {api}{hint}")
    plan = BumpPlan(version, channel, _served("k8s.io/kubernetes", f"v{version}", getter),
                    kubeadm_constants(modcache or default_modcache(), version),
                    node_binaries(modcache or default_modcache(), version))
    for name, module in RUNTIME_MODULES.items():
        versions = proxy_versions(module, getter)
        if name == "etcd":
            versions = [v for v in versions if _key(v)[0] == 3]
        if versions:
            plan.newest[name] = versions[-1].lstrip("v")
            plan.served[name] = [v.lstrip("v") for v in versions]
    if plan.kubernetes_module != 200:
        plan.todo.append(f"k8s.io/kubernetes v{version} is not served ({plan.kubernetes_module}): add a "
                         f"`substitute` with its `reason` to tests/tools/versions.toml for the tests' build")
    if plan.binaries is None or set(plan.binaries.sha512) != set(ARCHITECTURES):
        plan.todo.append("node tarball sha512 not found in any cached CHANGELOG: the skeleton uses the "
                         "publisher's .sha512 file; pin it once a CHANGELOG with the Node Binaries table is at hand")
    if plan.constants is None:
        plan.todo.append(f"k8s.io/kubernetes@v{version} is not in the module cache: CoreDNS and pause are left "
                         f"null; read them from cmd/kubeadm/app/constants/constants.go of this version (or the "
                         f"nearest served patch, saying so)")
    plan.todo.append("etcd: cfcr keeps one etcd 3.x patch for every release; confirm the image tag "
                     "registry.k8s.io/etcd:<version>-0 exists before moving it")
    plan.todo.append("cloud controller managers, CSI drivers, CNIs and cluster-autoscaler: re-confirm each for "
                     "this minor (an image that exists, not only a release tag) and write its source")
    return plan


def _cite(path: Path) -> str:
    """``k8s.io/kubernetes@vX CHANGELOG/...`` for a file in the module cache (no local prefix)."""
    text = path.as_posix()
    at = text.find("k8s.io/kubernetes@")
    if at < 0:
        return text
    module, _, rest = text[at:].partition("/")[2].partition("/")
    return f"k8s.io/{module} {rest}"


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def release_skeleton(plan: BumpPlan) -> str:
    """The ``releases.yaml`` entry for ``plan.version``; unconfirmed values are ``null``."""
    v = plan.version
    lines = [f"  {_q(v)}:", "    kubernetes:", f"      version: {_q(v)}",
             '      url: "https://dl.k8s.io/v{version}/kubernetes-node-linux-{arch}.tar.gz"',
             "      algorithm: sha512"]
    bins = plan.binaries
    if bins is not None and set(bins.sha512) == set(ARCHITECTURES):
        lines += ["      checksum_source: pinned", "      checksums:"]
        lines += [f"        {a}: {bins.sha512[a]}" for a in ARCHITECTURES]
        where = f"{_cite(bins.path)} (Go module), v{v} Node Binaries"
        lines.append(f"      source: {_q(where)}")
    else:
        lines += ["      checksum_source: publisher-file", "      checksums: null",
                  '      file_url: "https://dl.k8s.io/v{version}/kubernetes-node-linux-{arch}.tar.gz.sha512"',
                  "      source: " + _q(f"v{v}: published (the Go proxy serves k8s.io/api v0.{v.split('.', 1)[1]}); "
                                        f"its Node Binaries sha512 could NOT be confirmed here: nodes verify "
                                        f"against the published .sha512 next to the tarball")]
    current = resolve("stable") if "stable" in CHANNELS else resolve(known_versions()[-1])
    kubeadm_etcd = plan.constants.etcd if plan.constants else None
    lines += ["    etcd:", f"      version: {_q(current.etcd.version)}",
              "      source: " + _q(f"carried from {current.version}: cfcr runs etcd itself and keeps one 3.x patch "
                                    f"on every release" + (f"; kubeadm@v{v} defaults to {kubeadm_etcd}" if kubeadm_etcd else "")
                                    + " -- TODO: re-confirm")]
    for name in ("coredns", "pause"):
        value = getattr(plan.constants, name) if plan.constants else None
        lines.append(f"    {name}:")
        if value and plan.constants:
            where = f"{_cite(plan.constants.path)} (Go module)"
            lines += [f"      version: {_q(value)}", f"      source: {_q(where)}"]
        else:
            lines += [f"      version: null  # TODO: read {name} from k8s.io/kubernetes@v{v} "
                      "cmd/kubeadm/app/constants/constants.go", "      source: null"]
    lines += ["    components: *runtime  # TODO: re-confirm (newest served: " +
              ", ".join(f"{k} {x}" for k, x in sorted(plan.newest.items()) if k != "etcd") + ")",
              "    cni: *cni",
              "    cloud: null  # TODO: copy the previous release's cloud block and re-confirm each CCM/CSI for this minor",
              "    addons: *addons  # TODO: cluster-autoscaler's image minor must match"]
    return "\n".join(lines) + "\n"


def _report(plan: BumpPlan) -> str:
    out = [f"Kubernetes {plan.version}: published (the Go proxy serves k8s.io/api v0.{plan.version.split('.', 1)[1]})",
           f"  k8s.io/kubernetes v{plan.version} on the proxy: {plan.kubernetes_module}"]
    if plan.constants:
        out.append(f"  kubeadm constants ({plan.constants.path}): CoreDNS {plan.constants.coredns}, "
                   f"pause {plan.constants.pause}, kubeadm's etcd {plan.constants.etcd}")
    if plan.binaries:
        out.append(f"  node tarball sha512 from {plan.binaries.path}: {', '.join(sorted(plan.binaries.sha512))}")
    stable = resolve("stable") if "stable" in CHANNELS else None
    for name, newest in sorted(plan.newest.items()):
        pinned = (stable.etcd_version if name == "etcd" else stable.component(name).version) if stable else "?"
        line = f"  {name}: newest served {newest}"
        same_minor = [v for v in plan.served.get(name, []) if v.split(".")[:2] == pinned.split(".")[:2]]
        if same_minor and same_minor[-1] != newest:
            line += f" (newest {'.'.join(pinned.split('.')[:2])}: {same_minor[-1]})"
        out.append(f"{line}; stable pins {pinned}")
    out.append("to confirm before the entry can land:")
    out += [f"  - {t}" for t in plan.todo]
    if plan.channel:
        out.append(f"then set `channels.{plan.channel}: {_q(plan.version)}` in cfcr/channels/releases.yaml")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cfcr.channels.bump VERSION``: exit 0 with the skeleton, 2 when refused."""
    parser = argparse.ArgumentParser(prog="python -m cfcr.channels.bump", description=__doc__.split("\n\n")[0])
    parser.add_argument("version", help="the new exact Kubernetes version, e.g. 1.37.3")
    parser.add_argument("--channel", choices=sorted(CHANNELS), help="the channel that will point at it")
    parser.add_argument("--out", type=Path, help="write the release entry here (default: print it)")
    parser.add_argument("--modcache", type=Path, help="Go module cache to read (default: go env GOMODCACHE)")
    args = parser.parse_args(argv)
    try:
        plan = plan_bump(args.version, args.channel, modcache=args.modcache)
    except (BumpError, ValueError) as exc:
        print(f"cfcr.channels.bump: {exc}", file=sys.stderr)
        return 2
    print(_report(plan), end="", file=sys.stderr)
    skeleton = release_skeleton(plan)
    if args.out:
        args.out.write_text(skeleton)
        print(f"wrote the release entry to {args.out}", file=sys.stderr)
    else:
        print(skeleton, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
