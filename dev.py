#!/usr/bin/env python3
"""Developer entry point; needs only Python 3.11+ to start.

    python3 dev.py render [--stack aws-stable] [--out render]   # offline render of a stack
    python3 dev.py test [pytest args...]                        # the whole test suite (CI runs this)

Each command creates ./.venv, installs cfcr with the pinned versions of constraints.txt,
and (for ``test``) the Debian tools the tests use: etcd, cloud-init, shellcheck.
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
APT_TOOLS = {"etcd": "etcd-server", "etcdctl": "etcd-client", "cloud-init": "cloud-init", "shellcheck": "shellcheck"}


def run(*cmd: str | Path, **kwargs: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)  # type: ignore[call-overload]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="render a stack offline")
    render.add_argument("--stack", default="aws-stable")
    render.add_argument("--out", default="render")
    render.add_argument("--show-secrets", action="store_true")
    test = sub.add_parser("test", help="run the whole test suite")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()

    if args.command == "render":
        ensure_venv("")
        extra = ["--show-secrets"] if args.show_secrets else []
        run(PY, "-m", "cfcr", "render", "--stack", args.stack, "--out", args.out, *extra, cwd=ROOT)
    else:
        ensure_venv("test")
        ensure_apt_tools()
        run(PY, "-m", "mypy", cwd=ROOT)
        os.chdir(ROOT)
        os.execv(str(PY), [str(PY), "-m", "pytest", *args.pytest_args])


if __name__ == "__main__":
    main()
