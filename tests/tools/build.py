#!/usr/bin/env python3
"""Build the real Kubernetes, etcd and kwok programs the tests run, from Go modules.

    python3 tests/tools/build.py [--only TOOL[/VERSION] ...]     (or: python3 dev.py tools)

What is built is recorded in ``versions.toml`` next to this file, and only there. Each
entry is built into ``${CFCR_TOOLS_DIR:-~/.cache/cfcr/tools}/<tool>/<version>/bin/``
(``<version>`` is the version actually built: the recipe's ``substitute`` when it has
one), next to a ``stamp.json`` holding a hash of the recipe entry and ``go version``: a
matching stamp means the binaries are reused, anything else rebuilds them. The Go wrapper
modules live under ``<cache>/_work/``.

Standard library only: ``dev.py`` runs this before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECIPE_FILE = Path(__file__).resolve().with_name("versions.toml")
BUILDER_REVISION = 1
"""Part of every stamp: bump it when *how* a binary is built changes, to rebuild them all."""

TOOLS = ("kubernetes", "etcd", "kwok")
ETCD_MODULES = {  # binary -> the module whose root package is its main package
    "etcd": "go.etcd.io/etcd/server/v3",
    "etcdctl": "go.etcd.io/etcd/etcdctl/v3",
    "etcdutl": "go.etcd.io/etcd/etcdutl/v3",
}
KUBERNETES_MODULE = "k8s.io/kubernetes"
KWOK_MODULE = "sigs.k8s.io/kwok"
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_KEYS = {"tool", "version", "binaries", "substitute", "reason", "stages"}


class BuildError(RuntimeError):
    """A recipe cannot be built (or the recipe file is wrong); the message says why."""


def tools_dir() -> Path:
    """The cache root: ``$CFCR_TOOLS_DIR``, else ``~/.cache/cfcr/tools``."""
    env = os.environ.get("CFCR_TOOLS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cfcr" / "tools"


# -- the recipe file ---------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """One ``[[build]]`` entry of ``versions.toml``."""

    tool: str
    version: str
    """The version cfcr pins (a channel's Kubernetes version, the channels' etcd, ...)."""
    binaries: tuple[str, ...]
    substitute: str | None
    reason: str | None
    stages: tuple[str, ...]
    entry: Mapping[str, Any]
    """The raw TOML table, hashed into the stamp."""

    @property
    def built_version(self) -> str:
        """The version actually built: ``substitute`` if set, else ``version``."""
        return self.substitute or self.version

    @property
    def name(self) -> str:
        return f"{self.tool} {self.built_version}" + (f" (for {self.version})" if self.substitute else "")

    def directory(self, root: Path | None = None) -> Path:
        return (root or tools_dir()) / self.tool / self.built_version

    def binary(self, binary: str, root: Path | None = None) -> Path:
        return self.directory(root) / "bin" / binary

    def digest(self) -> str:
        text = json.dumps({"builder": BUILDER_REVISION, "entry": self.entry}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def substitution_notice(self) -> str | None:
        if self.substitute is None:
            return None
        return (f"SUBSTITUTE: {self.tool} {self.version} is built as {self.substitute} for "
                f"{', '.join(self.binaries)}\n  reason: {' '.join((self.reason or '').split())}")


def load_recipes(path: Path = RECIPE_FILE) -> list[Recipe]:
    """Parse and validate ``versions.toml``; :class:`BuildError` on any mistake."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"{path}: {exc}") from exc
    if data.get("schema") != 1 or set(data) - {"schema", "build"}:
        raise BuildError(f"{path}: expected `schema = 1` and [[build]] tables only")
    recipes: list[Recipe] = []
    for i, raw in enumerate(data.get("build", [])):
        where = f"{path.name} [[build]] #{i + 1}"
        if set(raw) - _KEYS:
            raise BuildError(f"{where}: unknown keys {sorted(set(raw) - _KEYS)}")
        tool, version = raw.get("tool"), raw.get("version")
        if tool not in TOOLS:
            raise BuildError(f"{where}: tool must be one of {TOOLS}, not {tool!r}")
        if not isinstance(version, str) or not _VERSION.match(version):
            raise BuildError(f"{where}: version must look like 1.36.0, not {version!r}")
        binaries = raw.get("binaries")
        if not binaries or not all(isinstance(b, str) and b for b in binaries):
            raise BuildError(f"{where}: binaries must be a non-empty list of names")
        allowed = {"etcd": set(ETCD_MODULES), "kwok": {"kwok"}}.get(tool)
        if allowed is not None and set(binaries) - allowed:
            raise BuildError(f"{where}: {tool} builds only {sorted(allowed)}")
        substitute, reason = raw.get("substitute"), raw.get("reason")
        if substitute is not None and (not isinstance(substitute, str) or not _VERSION.match(substitute)
                                       or substitute == version):
            raise BuildError(f"{where}: substitute must be another version like 1.36.1")
        if (substitute is None) != (reason is None) or (reason is not None and not str(reason).strip()):
            raise BuildError(f"{where}: `substitute` and a non-empty `reason` go together")
        stages = raw.get("stages", [])
        if (tool == "kwok") != bool(stages):
            raise BuildError(f"{where}: kwok needs `stages` (and only kwok has them)")
        recipes.append(Recipe(tool, version, tuple(binaries), substitute, reason, tuple(stages), raw))
    seen_binary: dict[tuple[str, str, str], int] = {}
    seen_dir: dict[tuple[str, str], int] = {}
    for i, r in enumerate(recipes):
        if seen_dir.setdefault((r.tool, r.built_version), i) != i:
            raise BuildError(f"{path.name}: two [[build]] entries build {r.name} (one directory each)")
        for b in r.binaries:
            if seen_binary.setdefault((r.tool, r.version, b), i) != i:
                raise BuildError(f"{path.name}: {b} of {r.tool} {r.version} is listed twice")
    return recipes


def find_recipe(recipes: Sequence[Recipe], binary: str, version: str) -> Recipe:
    """The entry that provides ``binary`` for the pinned ``version``."""
    for r in recipes:
        if binary in r.binaries and r.version == version.removeprefix("v"):
            return r
    known = sorted({f"{b} {r.version}" for r in recipes for b in r.binaries})
    raise LookupError(f"{RECIPE_FILE.name} has no recipe for {binary} {version}; it has: {', '.join(known)}")


def read_stamp(recipe: Recipe, root: Path | None = None) -> dict[str, Any] | None:
    try:
        stamp: dict[str, Any] = json.loads((recipe.directory(root) / "stamp.json").read_text())
    except (OSError, ValueError):
        return None
    return stamp


def stale_reason(recipe: Recipe, root: Path | None = None, go: str | None = None) -> str | None:
    """Why the cached build of ``recipe`` cannot be used (None: it can).

    ``go`` (a ``go version`` line) is compared too when given: the builder passes it,
    the tests do not (a newer Go alone does not make a built binary wrong)."""
    stamp = read_stamp(recipe, root)
    if stamp is None:
        return "not built"
    if stamp.get("recipe") != recipe.digest():
        return "the recipe changed"
    if go is not None and stamp.get("go") != go:
        return f"built with {stamp.get('go')!r}, now {go!r}"
    missing = [b for b in recipe.binaries if not recipe.binary(b, root).is_file()]
    if recipe.stages and not any((recipe.directory(root) / "stages").glob("*.yaml")):
        missing.append("the stage configs")
    if missing:
        return f"missing {', '.join(missing)}"
    return None


# -- running go --------------------------------------------------------------------------

_REFUSED = re.compile(r"(?P<mod>[\w.~/-]+@v[\w.+-]+): (?P<what>(?:reading|verifying)[^\n]*?"
                      r"(?P<code>403 Forbidden|404 Not Found|410 Gone)[^\n]*)")


def explain_go_failure(output: str) -> str:
    """Name the module versions the proxy (or the checksum database) refused, if any."""
    refused = {m["mod"]: m["code"] + (" from the checksum database" if "/sumdb/" in m["what"] else "")
               for m in _REFUSED.finditer(output)}
    if not refused:
        return ""
    lines = [f"  {mod}: {code}" for mod, code in sorted(refused.items())]
    return ("The Go module proxy refused (or could not verify) these module versions:\n"
            + "\n".join(lines) + f"\nPick the nearest served patch and record it in {RECIPE_FILE} as "
            "`substitute` with a `reason` (never substitute silently).")


def go_env(**extra: str) -> dict[str, str]:
    """The environment every go command runs with: the local toolchain only, no workspace."""
    return {**os.environ, "GOTOOLCHAIN": "local", "GOWORK": "off", **extra}


def go(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
       echo: bool = True, shown: str | None = None) -> str:
    """Run ``go args``, echoing it (as ``shown``, if given) and its output indented;
    :class:`BuildError` naming the modules the proxy refused."""
    cmd = ["go", *args]
    if echo:
        print(f"    $ {shown or ' '.join(cmd)}", flush=True)
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=dict(env or go_env()), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    except FileNotFoundError:
        raise BuildError(NO_GO) from None
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if echo:
            print(f"      {line.rstrip()}", flush=True)
    if proc.wait() != 0:
        output = "".join(lines)
        explained = explain_go_failure(output)
        tail = "" if echo else "".join(lines[-40:])
        raise BuildError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}) in {cwd or os.getcwd()}\n"
                         f"{tail}{explained}".rstrip())
    return "".join(lines)


NO_GO = ("`go` is not on PATH. The tests run real Kubernetes, etcd and kwok binaries built from "
         "Go modules: install Go 1.26 or newer (https://go.dev/dl/) and run again.")


def go_version() -> str:
    if shutil.which("go") is None:
        raise BuildError(NO_GO)
    return go("version", echo=False).strip()


def download(module: str, version: str, cwd: Path) -> dict[str, Any]:
    """``go mod download -json module@version`` (run beside ``cwd``, outside its module);
    a clear error when the proxy refuses it."""
    print(f"  fetching {module}@{version}", flush=True)
    out = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"],
                         capture_output=True, text=True, env=go_env(), cwd=cwd.parent)
    try:
        info: dict[str, Any] = json.loads(out.stdout)
    except ValueError:
        info = {"Error": (out.stdout + out.stderr).strip() or f"exit {out.returncode}"}
    if "Error" in info or out.returncode != 0:
        raise BuildError(f"cannot get {module}@{version} from the Go module proxy:\n  "
                         f"{info.get('Error', out.stderr.strip())}\n{explain_go_failure(info.get('Error', ''))}".rstrip())
    return info


def go_directive(gomod: str) -> tuple[int, ...]:
    m = re.search(r"^go (\d+(?:\.\d+)*)\s*$", gomod, re.M)
    return tuple(int(p) for p in m.group(1).split(".")) if m else (1, 22)


def timed_build(binary: str, package: str, out: Path, cwd: Path, ldflags: str,
                times: dict[str, float]) -> None:
    print(f"  building {binary} ({package})", flush=True)
    start = time.monotonic()
    go("build", "-trimpath", "-ldflags", ldflags, "-o", str(out), package,
       cwd=cwd, env=go_env(CGO_ENABLED="0"),
       shown=f'CGO_ENABLED=0 go build -trimpath -ldflags "$LDFLAGS" -o {out} {package}')
    times[binary] = time.monotonic() - start
    print(f"  built {binary} in {times[binary]:.0f} s", flush=True)


def check_output(cmd: Sequence[str | Path], expected: str, *, exact: bool = True) -> None:
    """Run a built binary and compare what it prints about its version."""
    try:
        out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"`{' '.join(map(str, cmd))}` did not run: {exc}") from exc
    got = out.stdout.strip()
    if out.returncode != 0 or (got != expected if exact else expected not in got):
        raise BuildError(f"`{' '.join(map(str, cmd))}` printed {got!r} (exit {out.returncode}, "
                         f"stderr {out.stderr.strip()[:300]!r}); expected {'' if exact else 'to contain '}"
                         f"{expected!r}")
    print(f"  ok: `{Path(str(cmd[0])).name} {' '.join(map(str, cmd[1:]))}` reports {expected!r}", flush=True)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def tools_go(packages: Sequence[str]) -> str:
    imports = "".join(f'\t_ "{p}"\n' for p in packages)
    return f"//go:build tools\n\n// Generated by tests/tools/build.py.\npackage tools\n\nimport (\n{imports})\n"


# -- the three recipes -------------------------------------------------------------------


def build_kubernetes(r: Recipe, out: Path, work: Path, times: dict[str, float]) -> None:
    v = f"v{r.built_version}"
    _, minor, patch = (int(x) for x in r.built_version.split("."))
    info = download(KUBERNETES_MODULE, v, work)
    gomod = Path(info["GoMod"]).read_text()
    staging = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/src/k8s\.io/[\w.-]+\s*$", gomod, re.M)
    if not staging:
        raise BuildError(f"{KUBERNETES_MODULE}@{v}: its go.mod ({info['GoMod']}) has no "
                         "`k8s.io/<name> => ./staging/src/k8s.io/<name>` replaces; the recipe needs updating")
    print(f"  {KUBERNETES_MODULE}@{v}: {len(staging)} staging modules replaced by v0.{minor}.{patch}")
    replaces = "".join(f"\t{m} => {m} v0.{minor}.{patch}\n" for m in sorted(set(staging)))
    goline = ".".join(map(str, go_directive(gomod)))
    write(work / "go.mod", f"module cfcr.local/tools/kubernetes\n\ngo {goline}\n\n"
                           f"require {KUBERNETES_MODULE} {v}\n\nreplace (\n{replaces})\n")
    write(work / "tools.go", tools_go([f"{KUBERNETES_MODULE}/cmd/{b}" for b in r.binaries]))
    (work / "go.sum").unlink(missing_ok=True)
    print("  resolving the module graph (go mod tidy; downloads everything when cold)", flush=True)
    go("mod", "tidy", cwd=work)
    x = ""
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for key, value in (("gitVersion", v), ("gitMajor", "1"), ("gitMinor", str(minor)),
                           ("gitTreeState", "clean"), ("gitCommit", "0" * 40),
                           ("buildDate", "1970-01-01T00:00:00Z")):
            x += f" -X {pkg}.{key}={value}"
    print(f"  LDFLAGS=-s -w{x}", flush=True)
    for b in r.binaries:
        timed_build(b, f"{KUBERNETES_MODULE}/cmd/{b}", out / "bin" / b, work, "-s -w" + x, times)
    for b in r.binaries:
        path = out / "bin" / b
        if b == "kubeadm":
            check_output([path, "version", "-o", "short"], v)
        elif b == "kubectl":
            check_output([path, "version", "--client", "-o", "json"], f'"gitVersion": "{v}"', exact=False)
        else:
            check_output([path, "--version"], f"Kubernetes {v}")


def build_etcd(r: Recipe, out: Path, work: Path, times: dict[str, float]) -> None:
    v = f"v{r.built_version}"
    modules = sorted({ETCD_MODULES[b] for b in r.binaries})
    gos = [go_directive(Path(download(m, v, work)["GoMod"]).read_text()) for m in modules]
    requires = "".join(f"\t{m} {v}\n" for m in modules)
    write(work / "go.mod", f"module cfcr.local/tools/etcd\n\ngo {'.'.join(map(str, max(gos)))}\n\n"
                           f"require (\n{requires})\n")
    write(work / "tools.go", tools_go(modules))
    (work / "go.sum").unlink(missing_ok=True)
    print("  resolving the module graph (go mod tidy; downloads everything when cold)", flush=True)
    go("mod", "tidy", cwd=work)
    print("  LDFLAGS=-s -w  (etcd's version is a constant of go.etcd.io/etcd/api/v3/version)", flush=True)
    for b in r.binaries:
        timed_build(b, ETCD_MODULES[b], out / "bin" / b, work, "-s -w", times)
    for b in r.binaries:
        path = out / "bin" / b
        if b == "etcd":
            check_output([path, "--version"], f"etcd Version: {r.built_version}", exact=False)
        else:
            check_output([path, "version"], f"{b} version: {r.built_version}", exact=False)


def build_kwok(r: Recipe, out: Path, work: Path, times: dict[str, float]) -> None:
    v = f"v{r.built_version}"
    info = download(KWOK_MODULE, v, work)
    print(f"  building kwok ({KWOK_MODULE}/cmd/kwok@{v})", flush=True)
    start = time.monotonic()
    go("install", "-trimpath", "-ldflags", "-s -w", f"{KWOK_MODULE}/cmd/kwok@{v}", cwd=work,
       env=go_env(CGO_ENABLED="0", GOBIN=str(out / "bin")))
    times["kwok"] = time.monotonic() - start
    print(f"  built kwok in {times['kwok']:.0f} s", flush=True)
    check_output([out / "bin" / "kwok", "--version"], f"kwok version {v} ", exact=False)
    stages = out / "stages"
    shutil.rmtree(stages, ignore_errors=True)
    stages.mkdir(parents=True)
    moddir = Path(info["Dir"])
    for pattern in r.stages:
        found = sorted(moddir.glob(pattern))
        copied = [f for f in found if re.search(r"^kind:\s*Stage\s*$", f.read_text(), re.M)]
        if not copied:
            raise BuildError(f"{KWOK_MODULE}@{v}: no kwok Stage config matches {pattern!r} in {moddir}")
        for f in copied:
            if (stages / f.name).exists():
                raise BuildError(f"two kwok stage configs are named {f.name}")
            shutil.copyfile(f, stages / f.name)
            (stages / f.name).chmod(0o644)
        skipped = [f.name for f in found if f not in copied]
        print(f"  stages {pattern}: {', '.join(f.name for f in copied)}"
              + (f" (not Stage documents, skipped: {', '.join(skipped)})" if skipped else ""))


BUILDERS = {"kubernetes": build_kubernetes, "etcd": build_etcd, "kwok": build_kwok}


# -- driver ------------------------------------------------------------------------------


@contextlib.contextmanager
def cache_lock(root: Path) -> Iterator[None]:
    """One builder per cache at a time (two ``dev.py test`` runs must not interleave)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another build holding {root / '.lock'} ...", flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def select(recipes: Sequence[Recipe], only: Sequence[str]) -> list[Recipe]:
    if not only:
        return list(recipes)
    chosen = [r for r in recipes if any(o in (r.tool, f"{r.tool}/{r.version}") for o in only)]
    unknown = [o for o in only if not any(o in (r.tool, f"{r.tool}/{r.version}") for r in recipes)]
    if unknown:
        raise BuildError(f"--only {' '.join(unknown)}: not in {RECIPE_FILE.name} "
                         f"(tools: {', '.join(TOOLS)}, or TOOL/VERSION)")
    return chosen


def build(recipes: Sequence[Recipe], root: Path | None = None) -> dict[str, float]:
    """Build (or reuse) every recipe; returns seconds per built ``tool version binary``."""
    root = root or tools_dir()
    gov = go_version()
    print(f"tools cache: {root}\n{gov}", flush=True)
    for r in recipes:
        notice = r.substitution_notice()
        if notice:
            print(f"\n{'!' * 78}\nWARNING {notice}\n{'!' * 78}\n", file=sys.stderr, flush=True)
    times: dict[str, float] = {}
    start = time.monotonic()
    with cache_lock(root):
        for r in recipes:
            out = r.directory(root)
            why = stale_reason(r, root, gov)
            if why is None:
                print(f"{r.name}: up to date ({', '.join(r.binaries)} in {out / 'bin'})", flush=True)
                continue
            print(f"{r.name}: building {', '.join(r.binaries)} ({why})", flush=True)
            (out / "stamp.json").unlink(missing_ok=True)
            (out / "bin").mkdir(parents=True, exist_ok=True)
            work = root / "_work" / f"{r.tool}-{r.built_version}"
            work.mkdir(parents=True, exist_ok=True)
            own: dict[str, float] = {}
            began = time.monotonic()
            BUILDERS[r.tool](r, out, work, own)
            stamp = {"recipe": r.digest(), "go": gov, "entry": r.entry, "seconds": own,
                     "wall_seconds": round(time.monotonic() - began, 1),
                     "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            (out / "stamp.json").write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
            times.update({f"{r.name} {b}": s for b, s in own.items()})
            print(f"{r.name}: done in {time.monotonic() - began:.0f} s", flush=True)
    total = time.monotonic() - start
    if times:
        print("\nbuild times:")
        for name, seconds in times.items():
            print(f"  {name:45} {seconds:7.0f} s")
    print(f"tools: total {total:.0f} s ({len(times)} binaries built, cache {root})", flush=True)
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=[], metavar="TOOL",
                        help=f"build only these ({', '.join(TOOLS)}, or TOOL/VERSION)")
    args = parser.parse_args(argv)
    try:
        build(select(load_recipes(), args.only))
    except BuildError as exc:
        print(f"\ntools: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
