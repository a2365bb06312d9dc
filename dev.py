#!/usr/bin/env python3
"""Developer entry point; needs only Python 3.11+ to start.

    python3 dev.py render [--stack aws-stable|FILE] [--project-dir DIR] [--out render]
                                                                # offline render of a stack
    python3 dev.py golden                                       # refresh tests/golden/ (the golden render)
    python3 dev.py tools [--only TOOL ...]                      # build the real binaries the tests run
    python3 dev.py test [pytest args...]                        # the whole test suite (CI runs this)

Every command but ``tools`` first installs uv (the pinned ``UV_VERSION``, from PyPI, into
./.venv-uv), then installs cfcr into ./.venv with the versions of uv.lock (``uv sync --frozen``):
``render`` and ``golden`` the extras ``aws`` and ``policy`` (and the stack's cloud), ``test`` the
extras ``all`` and ``test``. ``test`` also installs the Debian tools the tests use
(``APT_TOOLS``), builds the real Kubernetes, etcd and kwok binaries with Go (``tools``: see
tests/tools/versions.toml; cached in $CFCR_TOOLS_DIR, default ~/.cache/cfcr/tools) in the
background while it installs and runs mypy, then runs pytest, then the mutation score
(mutations/run.py: every named way to break the product must be caught). With pytest
arguments, the last two steps are pytest with them only.

Each step prints what it does and how long it took. After ``render``, cfcr is
``.venv/bin/cfcr`` (README.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import venv
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
UV_VERSION = "0.13.9"
"""uv from PyPI (https://pypi.org/project/uv/0.13.9/), the version uv.lock was written with."""
UV_VENV = ROOT / ".venv-uv"
"""uv's own virtualenv. Not .venv: ``uv sync`` makes .venv exactly the lock, so it would remove
uv from there; not ``pip install --user``: Debian's Python refuses that (PEP 668) and it would
change the user's PATH tools."""
UV = UV_VENV / "bin" / "uv"
RENDER_EXTRAS = ("aws", "policy")
"""What ``render`` and ``golden`` install: the default stack's cloud and ``cfcr check``'s pack."""
TEST_EXTRAS = ("all", "test")
APT_TOOLS = {"cloud-init": "cloud-init", "shellcheck": "shellcheck", "ip": "iproute2", "curl": "curl", "jq": "jq",
             "openssl": "openssl", "git": "git", "iptables": "iptables", "dot": "graphviz"}
"""The Debian tools the tests run, command -> package; the tests find them through this table."""
TOOLS_BUILD = ROOT / "tests" / "tools" / "build.py"  # standard library only
MYPY_SECONDS = 100
"""What mypy takes on 2 cores (strict, over the Pulumi SDKs' types), said before it starts."""
TOOLS_COLD_MINUTES = 25
"""What a cold build of the real tools takes on 2 cores (tests/tools/build.py)."""


def pytest_runs(chosen: list[str]) -> list[tuple[str, list[str]]]:
    """The one place that decides how ``dev.py test`` runs pytest, as (label, arguments) runs.

    ``chosen`` (the command line's arguments): one run of exactly them (``CFCR_PYTEST_WORKERS=N``
    adds ``-n N --dist loadfile``). The whole suite: two runs. First every test but the real
    control-plane ones (``tests/*_real.py``) in two pytest-xdist workers, a module per worker
    (``--dist loadfile``: a module's shared renders stay in one process); then the real ones in
    one process, one control plane at a time (they start etcd and the control plane on fixed
    loopback ports, and xdist's ``loadgroup`` does not keep them together with pytest 9.2:
    pytest-dev/pytest-xdist#1386; tests/conftest.py stops a run that would spread them)."""
    if chosen:
        workers = os.environ.get("CFCR_PYTEST_WORKERS", "").strip()
        return [("pytest", ["-n", workers, "--dist", "loadfile", *chosen] if workers else list(chosen))]
    real = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("*_real.py"))
    # each run ends with its slowest tests (where the suite's minutes go: docs/testing.md)
    return [("pytest (all but the real control plane, 2 workers)",
             ["-n", "2", "--dist", "loadfile", "--ignore-glob", "tests/*_real.py", "--durations=15"]),
            (f"pytest (the real control plane: {len(real)} modules, one at a time)", ["--durations=30", *real])]


class StepFailed(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def say(message: str) -> None:
    print(f"dev.py: {message}", flush=True)


def run(*cmd: str | Path, quiet_failure: bool = False, **kwargs: object) -> None:
    """Run ``cmd``, its output shown; :class:`StepFailed` with its exit code when it fails
    (``quiet_failure``: the command said why itself, as cfcr does, so dev.py adds nothing)."""
    shown = " ".join(str(c) for c in cmd)
    print("+", shown, flush=True)
    code = subprocess.run([str(c) for c in cmd], **kwargs).returncode  # type: ignore[call-overload]
    if code != 0:
        if not quiet_failure:
            say(f"`{shown}` failed (exit {code})")
        raise StepFailed(code)


class Clock:
    """Times of the steps, for the summary line."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.steps: list[tuple[str, float]] = []

    def step(self, name: str, began: float) -> float:
        took = time.monotonic() - began
        self.steps.append((name, took))
        return took

    def summary(self) -> str:
        total = time.monotonic() - self.start
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.steps)
        return f"{total:.1f} s ({parts})"


def uv_version(uv: str | Path) -> str | None:
    try:
        out = subprocess.run([str(uv), "--version"], capture_output=True, text=True).stdout.split()
    except OSError:
        return None
    return out[1] if out[:1] == ["uv"] and len(out) > 1 else None


def ensure_uv() -> None:
    """uv ``UV_VERSION``: the one on PATH if it is that version (CI images often have it), else
    ./.venv-uv's, installed with pip from PyPI the first time."""
    global UV
    on_path = shutil.which("uv")
    if on_path and Path(on_path) != UV and uv_version(on_path) == UV_VERSION:
        UV = Path(on_path)
        return
    if UV.exists() and uv_version(UV) == UV_VERSION:
        return
    say(f"installing uv {UV_VERSION} into {UV_VENV.name} with pip (once)")
    pip_args = ["install", "--disable-pip-version-check", "--progress-bar", "off", f"uv=={UV_VERSION}"]
    if host_pip_takes_python():
        # this Python's pip installs into the new venv (`pip --python`): no pip copied into
        # it first, which is most of the time of a cold start (ensurepip)
        venv.create(UV_VENV, with_pip=False, clear=True)
        run(sys.executable, "-m", "pip", "--python", UV_VENV / "bin" / "python", *pip_args)
    else:
        ensure_ensurepip()
        venv.create(UV_VENV, with_pip=True, clear=True)
        run(UV_VENV / "bin" / "python", "-m", "pip", *pip_args)


def ensure_ensurepip() -> None:
    """A Python without pip needs ensurepip to make one; Debian ships it apart (python3-venv)."""
    if importlib.util.find_spec("ensurepip") is not None:
        return
    if shutil.which("apt-get") is not None and os.geteuid() == 0 and sys.executable.startswith("/usr/"):
        say("this Python has neither pip nor ensurepip: installing the Debian package python3-venv")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run("apt-get", "update", "-qq", env=env)
        run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "python3-venv", env=env)
        importlib.invalidate_caches()
        if importlib.util.find_spec("ensurepip") is not None:
            return
    sys.exit(f"dev.py: {sys.executable} has neither pip nor ensurepip, which dev.py needs to install uv; "
             "install pip or the venv module (Debian: apt-get install python3-venv) and run again")


def host_pip_takes_python() -> bool:
    """Whether this Python has a pip that installs into another environment (``--python``, pip 22.3+)."""
    out = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    match = re.match(r"pip (\d+)\.(\d+)", out.stdout)
    return out.returncode == 0 and match is not None and (int(match[1]), int(match[2])) >= (22, 3)


def sync(extras: tuple[str, ...], clock: Clock, *, exact: bool) -> None:
    """Install uv, then cfcr and ``extras`` into ./.venv at uv.lock's versions (uv prints its
    progress). Not ``exact``: keep what is there beyond them (a render after a test run keeps pytest)."""
    began = time.monotonic()
    ensure_uv()
    clock.step("uv", began)
    began = time.monotonic()
    flags = [arg for extra in extras for arg in ("--extra", extra)]
    run(UV, "sync", "--frozen", "--no-default-groups", *flags, *([] if exact else ["--inexact"]),
        "--python", sys.executable, cwd=ROOT, env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(VENV)})
    clock.step("install", began)


def stack_cloud(stack: str, project_dir: str | None = None) -> str | None:
    """``cfcr:cloud`` of the stack ``cfcr render --stack STACK [--project-dir DIR]`` would read
    (a stack file's path, or DIR/stacks/Pulumi.<stack>.yaml, or DIR/Pulumi.<stack>.yaml; DIR
    defaults to this clone), read without YAML (no packages yet); None when not found (cfcr
    then says what it looked for)."""
    given = Path(stack)
    base = Path(project_dir) if project_dir else ROOT
    candidates = [given] if given.suffix in (".yaml", ".yml") else [
        base / "stacks" / f"Pulumi.{stack}.yaml", base / f"Pulumi.{stack}.yaml"]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        return None
    match = re.search(r"^\s*cfcr:cloud:\s*['\"]?([a-z]+)", path.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def ensure_apt_tools() -> None:
    missing = sorted({pkg for tool, pkg in APT_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        sys.exit(f"dev.py: the tests need the Debian packages {', '.join(missing)}; install them "
                 f"(apt-get install {' '.join(missing)}) and run again")
    say(f"installing the Debian packages {', '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run("apt-get", "update", "-qq", env=env)
    run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=env)


def require_go() -> None:
    if shutil.which("go") is None:
        sys.exit("dev.py: the tests run real Kubernetes, etcd and kwok binaries built from Go modules, "
                 "and `go` is not on PATH; install Go 1.26 or newer (https://go.dev/dl/) and run again")


def build_tools(only: list[str]) -> None:
    """Build (or reuse from the cache) the real binaries of tests/tools/versions.toml, in the foreground."""
    require_go()
    say(f"real tools of tests/tools/versions.toml, cached in {os.environ['CFCR_TOOLS_DIR']} "
        f"(a cold build takes about {TOOLS_COLD_MINUTES} minutes on 2 cores)")
    run(sys.executable, TOOLS_BUILD, *(["--only", *only] if only else []))


class BackgroundTools:
    """tests/tools/build.py in the background, its whole output in ``log``; each of its
    top-level lines (a tool up to date, building, done) is shown as ``[tools] ...``."""

    def __init__(self, log: Path) -> None:
        require_go()
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self.began = self.ended = time.monotonic()
        say(f"building the real tools in the background (cache {os.environ['CFCR_TOOLS_DIR']}; a cold build "
            f"takes about {TOOLS_COLD_MINUTES} minutes on 2 cores, a warm one seconds); log: {log}")
        self.proc = subprocess.Popen([sys.executable, "-u", str(TOOLS_BUILD)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        self.reader = threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True)
        self.reader.start()

    def _pump(self, stream: IO[str] | None) -> None:
        assert stream is not None
        with self.log.open("w") as out:
            for line in stream:
                out.write(line)
                out.flush()
                if line.strip() and not line[0].isspace():
                    print(f"[tools] {line.rstrip()}", flush=True)
        self.ended = time.monotonic()

    def wait(self, clock: Clock) -> None:
        if self.proc.poll() is None:
            say("waiting for the real tools' build")
        code = self.proc.wait()
        self.reader.join()
        if code != 0:
            print(self.log.read_text(), end="", file=sys.stderr)
            say(f"building the real tools failed (exit {code}); its log: {self.log}")
            raise StepFailed(code)
        took = self.ended - self.began
        clock.steps.append(("tools (in the background)", took))
        say(f"real tools ready: built or found in {took:.1f} s, in the background")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def render(args: argparse.Namespace, clock: Clock) -> None:
    cloud = stack_cloud(args.stack, args.project_dir)
    extras = tuple(dict.fromkeys((*RENDER_EXTRAS, *([cloud] if cloud else []))))
    sync(extras, clock, exact=False)
    began = time.monotonic()
    extra = ["--show-secrets"] if args.show_secrets else []
    if args.project_dir:
        extra += ["--project-dir", str(Path(args.project_dir).resolve())]
    stack = str(Path(args.stack).resolve()) if Path(args.stack).suffix in (".yaml", ".yml") else args.stack
    run(VENV / "bin" / "cfcr", "render", "--stack", stack, "--out", args.out, *extra, cwd=ROOT,
        quiet_failure=True)
    clock.step("render", began)
    say(f"render of {args.stack} ready in {clock.summary()}; cfcr is .venv/bin/cfcr (README.md)")


def golden(clock: Clock) -> None:
    sync(RENDER_EXTRAS, clock, exact=False)
    began = time.monotonic()
    run(PY, "-m", "tests.support.golden", "--update", cwd=ROOT)
    clock.step("golden", began)
    say(f"golden render refreshed in {clock.summary()}")


def test(chosen: list[str], clock: Clock) -> None:
    tools = BackgroundTools(ROOT / ".dev" / "tools-build.log")
    try:
        sync(TEST_EXTRAS, clock, exact=True)
        began = time.monotonic()
        ensure_apt_tools()
        clock.step("apt", began)
        say(f"mypy (strict; about {MYPY_SECONDS} s on 2 cores, prints nothing until it is done)")
        began = time.monotonic()
        run(PY, "-m", "mypy", cwd=ROOT)
        say(f"mypy passed in {clock.step('mypy', began):.1f} s")
        tools.wait(clock)
    finally:
        tools.stop()
    for label, args in pytest_runs(chosen):
        say(label)
        began = time.monotonic()
        run(PY, "-m", "pytest", *args, cwd=ROOT)
        step = "pytest real" if label.startswith("pytest (the real control plane") else "pytest"
        say(f"{label}: passed in {clock.step(step, began):.1f} s")
    if not chosen:
        # the mutation score (mutations/README.md): every named way to break the product must be
        # caught; the suite above was its baseline
        began = time.monotonic()
        run(PY, "mutations/run.py", "--no-baseline", cwd=ROOT)
        clock.step("mutations", began)
    say(f"tests passed in {clock.summary()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    render_cmd = sub.add_parser("render", help="render a stack offline")
    render_cmd.add_argument("--stack", default="aws-stable", help="a stack name, or a stack file's path")
    render_cmd.add_argument("--project-dir", default=None, help="where stack NAME is looked for (cfcr render's)")
    render_cmd.add_argument("--out", default="render")
    render_cmd.add_argument("--show-secrets", action="store_true")
    sub.add_parser("golden", help="refresh tests/golden/aws-stable (the golden render; docs/testing.md)")
    tools = sub.add_parser("tools", help="build the real binaries the tests run (Go)")
    tools.add_argument("--only", nargs="+", default=[], metavar="TOOL",
                       help="kubernetes, etcd, kwok (or TOOL/VERSION); default: every recipe")
    test_cmd = sub.add_parser("test", help="run the whole test suite")
    test_cmd.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    # Where the tools are cached; exported so the builder and pytest agree.
    os.environ.setdefault("CFCR_TOOLS_DIR", str(Path.home() / ".cache" / "cfcr" / "tools"))
    clock = Clock()
    try:
        if args.command == "tools":
            build_tools(args.only)
        elif args.command == "render":
            render(args, clock)
        elif args.command == "golden":
            golden(clock)
        else:
            test(args.pytest_args, clock)
    except StepFailed as failed:
        return failed.code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
