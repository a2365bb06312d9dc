#!/usr/bin/env python3
"""Developer entry point; needs only Python 3.11+ to start.

    python3 dev.py render [--stack aws-stable] [--out render]   # offline render of a stack
    python3 dev.py golden                                       # refresh tests/golden/ (the golden render)
    python3 dev.py tools [--only TOOL ...]                      # build the real binaries the tests run
    python3 dev.py test [pytest args...]                        # the whole test suite (CI runs this)

``render``, ``golden`` and ``test`` create ./.venv and install cfcr with the pinned versions of
constraints.txt. ``test`` also installs the Debian tools the tests use (cloud-init,
shellcheck, iproute2, curl, openssl, git), builds the real Kubernetes, etcd and kwok binaries with Go
(``tools``: see tests/tools/versions.toml; cached in $CFCR_TOOLS_DIR, default
~/.cache/cfcr/tools), runs mypy, then pytest, then the mutation score (mutations/run.py:
every named way to break the product must be caught). With pytest arguments, it runs only
pytest with them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
APT_TOOLS = {"cloud-init": "cloud-init", "shellcheck": "shellcheck", "ip": "iproute2", "curl": "curl", "jq": "jq",
             "openssl": "openssl", "git": "git", "iptables": "iptables"}
"""The Debian tools the tests run, command -> package; the tests find them through this table."""
TOOLS_BUILD = ROOT / "tests" / "tools" / "build.py"  # standard library only


def run(*cmd: str | Path, **kwargs: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    code = subprocess.run([str(c) for c in cmd], **kwargs).returncode  # type: ignore[call-overload]
    if code != 0:
        sys.exit(f"dev.py: `{' '.join(str(c) for c in cmd)}` failed (exit {code})")


def ensure_venv(extras: str) -> None:
    stamp = VENV / f".installed-{extras}"
    inputs = [ROOT / "pyproject.toml", ROOT / "constraints.txt"]
    if stamp.exists() and all(stamp.stat().st_mtime >= p.stat().st_mtime for p in inputs):
        return
    if not PY.exists():
        venv.create(VENV, with_pip=True)
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    target = f".[{extras}]" if extras else "."
    run(PY, "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt", "-e", target, cwd=ROOT)
    stamp.touch()


def ensure_apt_tools() -> None:
    missing = sorted({pkg for tool, pkg in APT_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        sys.exit(f"dev.py: the tests need the Debian packages {', '.join(missing)}; install them "
                 f"(apt-get install {' '.join(missing)}) and run again")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run("apt-get", "update", "-qq", env=env)
    run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=env)


def build_tools(only: list[str]) -> None:
    """Build (or reuse from the cache) the real binaries of tests/tools/versions.toml."""
    if shutil.which("go") is None:
        sys.exit("dev.py: the tests run real Kubernetes, etcd and kwok binaries built from Go modules, "
                 "and `go` is not on PATH; install Go 1.26 or newer (https://go.dev/dl/) and run again")
    print(f"dev.py: real tools of tests/tools/versions.toml, cached in {os.environ['CFCR_TOOLS_DIR']} "
          "(a cold build takes about 25 minutes on 2 cores)", flush=True)
    run(sys.executable, TOOLS_BUILD, *(["--only", *only] if only else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="render a stack offline")
    render.add_argument("--stack", default="aws-stable")
    render.add_argument("--out", default="render")
    render.add_argument("--show-secrets", action="store_true")
    sub.add_parser("golden", help="refresh tests/golden/aws-stable (the golden render; docs/testing.md)")
    tools = sub.add_parser("tools", help="build the real binaries the tests run (Go)")
    tools.add_argument("--only", nargs="+", default=[], metavar="TOOL",
                       help="kubernetes, etcd, kwok (or TOOL/VERSION); default: every recipe")
    test = sub.add_parser("test", help="run the whole test suite")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    # Where the tools are cached; exported so the builder and pytest agree.
    os.environ.setdefault("CFCR_TOOLS_DIR", str(Path.home() / ".cache" / "cfcr" / "tools"))

    if args.command == "tools":
        build_tools(args.only)
    elif args.command == "render":
        ensure_venv("")
        extra = ["--show-secrets"] if args.show_secrets else []
        run(PY, "-m", "cfcr", "render", "--stack", args.stack, "--out", args.out, *extra, cwd=ROOT)
    elif args.command == "golden":
        ensure_venv("")
        run(PY, "-m", "tests.support.golden", "--update", cwd=ROOT)
    else:
        ensure_venv("test")
        ensure_apt_tools()
        run(PY, "-m", "mypy", cwd=ROOT)
        build_tools([])
        os.chdir(ROOT)
        if args.pytest_args:  # a chosen subset: pytest only
            os.execv(str(PY), [str(PY), "-m", "pytest", *args.pytest_args])
        run(PY, "-m", "pytest", cwd=ROOT)
        # the mutation score (mutations/README.md): every named way to break the product must be
        # caught; the suite above was its baseline
        run(PY, "mutations/run.py", "--no-baseline", cwd=ROOT)


if __name__ == "__main__":
    main()
