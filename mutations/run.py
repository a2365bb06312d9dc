#!/usr/bin/env python3
"""The mutation score: break the product in named ways and see which tests catch each.

Each mutation in ``mutations/mutations.toml`` names a product file, an exact ``find`` text that
must occur exactly once in it, the ``replace`` text, why the change breaks the product, and the
few tests to run against it. The runner copies the repository's files (tracked and untracked,
ignored ones aside) into a temporary directory once, then for each mutation patches the file
there, runs ``python -m pytest -q -x -p no:cacheprovider <tests>`` in the copy with this very
interpreter, reads the first failing node id from pytest's output, and restores the file.

Verdicts: ``CAUGHT`` (pytest failed: the first failing test is named), ``SURVIVED`` (every test
passed with the product broken), ``ERROR`` (pytest could not judge: no tests collected, a node id
that does not exist, a timeout). Before the mutations, each distinct test selection runs once on
the unmutated copy (the baseline): a selection that already fails cannot catch anything.

A mutation with ``pending = "why"`` runs like any other, but its verdict does not change the
exit status (its catching tests are still being written). Exit status: 0 when every mutation is
valid and every non-pending one is caught, 1 otherwise, 2 for bad usage.

    python mutations/run.py                 # everything (baseline first)
    python mutations/run.py --check         # only validate the list (fast)
    python mutations/run.py --list          # names, files and reasons
    python mutations/run.py --only NAME     # one mutation (repeatable)
    python mutations/run.py --skip-pending  # leave out the pending ones
    python mutations/run.py --markdown      # also print the result table for the README
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_REPO = HERE.parent
PYTEST_ARGS: tuple[str, ...] = ("-q", "-x", "-p", "no:cacheprovider")
"""Quiet, stop at the first failure, and leave no cache behind in the copy."""
DEFAULT_TIMEOUT = 600.0
"""Seconds a mutation's tests may take before the verdict is ERROR (timeout)."""
NAME_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
REQUIRED_KEYS: tuple[str, ...] = ("name", "file", "find", "replace", "why", "tests")
OPTIONAL_KEYS: tuple[str, ...] = ("pending",)
PRODUCT_ROOTS: tuple[str, ...] = ("cfcr/", "policy/")
"""Where a product file may live; a mutation of anything else (a test) proves nothing."""

CAUGHT = "CAUGHT"
SURVIVED = "SURVIVED"
ERROR = "ERROR"

_FAILURE_LINE = re.compile(r"^(FAILED|ERROR) (.+?)(?: - .*)?$")
_TESTS_FAILED = 1
"""pytest's exit code for failed tests. Any other (2: a collection or import error, 3-5) is no
verdict on the mutation: a mutant that fails to import proves nothing about the tests."""


@dataclass(frozen=True)
class Mutation:
    """One named way to break the product."""

    name: str
    """Short kebab-case name (``api-allowed-cidrs-not-opened``)."""
    file: str
    """Product file, relative to the repository root."""
    find: str
    """Exact text that occurs exactly once in ``file``."""
    replace: str
    """Text that takes its place."""
    why: str
    """What behaviour the change breaks."""
    tests: tuple[str, ...]
    """pytest node ids or files to run against it."""
    pending: str | None = None
    """Why its catching tests may not exist yet; its verdict does not count."""


@dataclass
class Outcome:
    """What happened to one mutation."""

    mutation: Mutation
    verdict: str
    """CAUGHT, SURVIVED or ERROR."""
    caught_by: str
    """The first failing node id (or what pytest said); empty when it survived."""
    seconds: float
    output: str = field(default="", repr=False)
    """pytest's output, for a report of what went wrong."""

    @property
    def counts(self) -> bool:
        """Whether this outcome decides the exit status (pending mutations do not)."""
        return self.mutation.pending is None

    @property
    def ok(self) -> bool:
        """Caught, or pending."""
        return self.verdict == CAUGHT or not self.counts


# --------------------------------------------------------------------------- the list


def load_mutations(path: Path) -> tuple[list[Mutation], list[str]]:
    """The mutations in ``path`` and the problems of their shape (missing or unknown keys,
    wrong types, bad or repeated names); entries with a problem are left out."""
    with path.open("rb") as f:
        data = tomllib.load(f)
    entries = data.get("mutation")
    if not isinstance(entries, list):
        return [], [f"{path}: no [[mutation]] entries"]
    out: list[Mutation] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        label = f"mutation #{i + 1} ({entry.get('name', '?')})"
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        unknown = sorted(set(entry) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
        if missing or unknown:
            parts = ([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else [])
            problems.append(f"{label}: {', '.join(parts)}")
            continue
        named = [entry[k] for k in ("name", "file", "find", "why")]
        if not all(isinstance(v, str) and v for v in named) or not isinstance(entry["replace"], str):
            problems.append(f"{label}: name, file, find and why must be non-empty strings, replace a string")
            continue
        tests = entry["tests"]
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) and t for t in tests):
            problems.append(f"{label}: tests must be a non-empty list of pytest node ids or files")
            continue
        pending = entry.get("pending")
        if pending is not None and (not isinstance(pending, str) or not pending):
            problems.append(f"{label}: pending must say why, as a non-empty string")
            continue
        name = entry["name"]
        if not NAME_PATTERN.match(name):
            problems.append(f"{label}: the name must be kebab-case ([a-z0-9] words joined by '-')")
            continue
        if name in seen:
            problems.append(f"{label}: the name is used twice")
            continue
        seen.add(name)
        out.append(Mutation(name, entry["file"], entry["find"], entry["replace"], entry["why"], tuple(tests),
                            pending))
    return out, problems


def validate(mutations: Sequence[Mutation], repo: Path, *, product_roots: Sequence[str] = PRODUCT_ROOTS) -> list[str]:
    """Why any mutation cannot be applied to ``repo`` as written: a file outside the product or
    missing, a ``find`` text that is missing or ambiguous, a no-op replacement, a test file that
    does not exist. Empty when every one applies."""
    problems: list[str] = []
    for m in mutations:
        where = f"{m.name}: {m.file}"
        if not any(m.file.startswith(root) for root in product_roots):
            problems.append(f"{where}: not a product file (under {', '.join(product_roots)})")
            continue
        path = repo / m.file
        if not path.is_file():
            problems.append(f"{where}: no such file")
            continue
        count = path.read_text(encoding="utf-8").count(m.find)
        if count != 1:
            what = "missing" if count == 0 else f"ambiguous ({count} occurrences)"
            problems.append(f"{where}: the find text is {what}: {m.find[:80]!r}")
        if m.find == m.replace:
            problems.append(f"{m.name}: replace equals find (the mutation changes nothing)")
        for test in m.tests:
            test_file = test.split("::", 1)[0]
            if not (repo / test_file).exists():
                problems.append(f"{m.name}: test {test!r}: no such file {test_file}")
    return problems


def select(mutations: Sequence[Mutation], only: Sequence[str], skip_pending: bool) -> tuple[list[Mutation], list[str]]:
    """The mutations to run, and the ``--only`` names that match none."""
    chosen = [m for m in mutations if (not only or m.name in only) and not (skip_pending and m.pending)]
    unknown = [n for n in only if n not in {m.name for m in mutations}]
    return chosen, unknown


# --------------------------------------------------------------------------- running


def repository_files(repo: Path) -> list[str]:
    """Every file git tracks or would track (untracked but not ignored) under ``repo``."""
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         check=True, capture_output=True).stdout
    return sorted({p for p in out.decode().split("\0") if p})


def copy_repository(repo: Path, dest: Path) -> int:
    """Copy the repository's files (see :func:`repository_files`) into ``dest``; how many.
    A tracked file deleted in the working tree stays deleted."""
    copied = 0
    for rel in repository_files(repo):
        src = repo / rel
        if not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
        copied += 1
    return copied


def test_environment(copy: Path) -> dict[str, str]:
    """The environment the tests run in: the copy first on the import path (an editable
    install of the original would otherwise win in subprocesses), and no bytecode written
    (a restored file of the same size within the same second would reuse a mutant's .pyc)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports_from(copy: Path, files: Sequence[str], python: str) -> list[str]:
    """Problems if a mutated file's top-level package would be imported from anywhere but the copy."""
    problems: list[str] = []
    packages = sorted({f.split("/", 1)[0] for f in files if (copy / f.split("/", 1)[0] / "__init__.py").is_file()})
    for package in packages:
        out = subprocess.run([python, "-c", f"import {package}; print({package}.__file__)"], cwd=copy,
                             env=test_environment(copy), capture_output=True, text=True)
        where = out.stdout.strip()
        if out.returncode != 0 or not Path(where).resolve().is_relative_to(copy.resolve()):
            problems.append(f"package {package} is imported from {where or out.stderr.strip()!r}, not the copy {copy}")
    return problems


def first_failure(output: str, failed_only: bool = False) -> str | None:
    """The first failing (or, unless ``failed_only``, erroring) node id in pytest's short
    summary (``-ra``/``-q``), or None. An ERROR is a fixture or collection that broke, not an
    assertion that caught something."""
    for line in output.splitlines():
        m = _FAILURE_LINE.match(line.strip())
        if m and (m.group(1) == "FAILED" or not failed_only):
            return m.group(2)
    return None


def _print(text: str) -> None:
    print(text, flush=True)


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


@dataclass(frozen=True)
class PytestRun:
    """One pytest run's exit code, output and duration (code None: it timed out)."""

    code: int | None
    output: str
    seconds: float


def run_pytest(copy: Path, tests: Sequence[str], python: str, timeout: float) -> PytestRun:
    """``python -m pytest -q -x -p no:cacheprovider <tests>`` in ``copy``."""
    start = time.monotonic()
    # a session of its own, so a timeout ends everything the tests started (the control-plane
    # harness's etcd, API servers and kubelet stand-ins), not pytest alone
    proc = subprocess.Popen([python, "-m", "pytest", *PYTEST_ARGS, *tests], cwd=copy, env=test_environment(copy),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # pytest's KeyboardInterrupt: fixtures tear down what they started
        try:
            output, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        return PytestRun(None, output or "", time.monotonic() - start)
    return PytestRun(proc.returncode, output, time.monotonic() - start)


def judge(mutation: Mutation, run: PytestRun) -> Outcome:
    """The verdict on ``mutation`` from its tests' run."""
    if run.code is None:
        return Outcome(mutation, ERROR, "timed out", run.seconds, run.output)
    if run.code == 0:
        return Outcome(mutation, SURVIVED, "", run.seconds, run.output)
    node = first_failure(run.output, failed_only=True)
    if run.code == _TESTS_FAILED and node is not None and selected(node, mutation.tests):
        return Outcome(mutation, CAUGHT, node, run.seconds, run.output)
    why = (f"a test outside its selection failed: {node}" if run.code == _TESTS_FAILED and node
           else f"pytest exit {run.code} without a failed test: {_last_line(run.output)}")
    return Outcome(mutation, ERROR, why, run.seconds, run.output)


def selected(node: str, tests: Sequence[str]) -> bool:
    """Is ``node`` one of ``tests`` (a file, or a node id, parametrised or not)?"""
    return any(node == t or node.startswith(t + "::") or node.startswith(t + "[") for t in tests)


def apply_and_run(mutation: Mutation, copy: Path, python: str, timeout: float) -> Outcome:
    """Patch ``mutation`` into the copy, run its tests, restore the file (whatever happens)."""
    path = copy / mutation.file
    original = path.read_text(encoding="utf-8")
    if original.count(mutation.find) != 1:
        return Outcome(mutation, ERROR, "the find text does not occur exactly once in the copy", 0.0)
    path.write_text(original.replace(mutation.find, mutation.replace, 1), encoding="utf-8")
    try:
        return judge(mutation, run_pytest(copy, mutation.tests, python, timeout))
    finally:
        path.write_text(original, encoding="utf-8")


def baseline(mutations: Sequence[Mutation], copy: Path, python: str, timeout: float,
             say: Callable[[str], None]) -> dict[tuple[str, ...], PytestRun]:
    """Each distinct test selection once on the unmutated copy; the runs that did not pass."""
    failing: dict[tuple[str, ...], PytestRun] = {}
    for tests in dict.fromkeys(m.tests for m in mutations):
        run = run_pytest(copy, tests, python, timeout)
        state = "passes" if run.code == 0 else ("timed out" if run.code is None else f"FAILS (exit {run.code})")
        say(f"  baseline {' '.join(tests)}: {state} in {run.seconds:.1f}s")
        if run.code != 0:
            failing[tests] = run
    return failing


def execute(chosen: Sequence[Mutation], repo: Path, *, python: str = sys.executable, timeout: float = DEFAULT_TIMEOUT,
            with_baseline: bool = True, verbose: bool = False,
            say: Callable[[str], None] = _print) -> list[Outcome] | None:
    """Copy ``repo`` to a temporary directory, run the baseline (unless told not to), then every
    mutation of ``chosen`` in turn; the outcomes, or None when the copy would not import its
    own packages."""
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="cfcr-mutations-") as tmp:
        copy = Path(tmp) / "repo"
        count = copy_repository(repo, copy)
        say(f"copied {count} files to {copy}")
        import_problems = check_imports_from(copy, [m.file for m in chosen], python)
        if import_problems:
            say("\n".join(import_problems))
            return None
        failing: dict[tuple[str, ...], PytestRun] = {}
        if with_baseline:
            say("baseline (unmutated):")
            failing = baseline(chosen, copy, python, timeout, say)
        for i, m in enumerate(chosen, 1):
            if m.tests in failing:
                run = failing[m.tests]
                culprit = first_failure(run.output) or _last_line(run.output)
                outcome = Outcome(m, ERROR, f"its tests fail unmutated: {culprit}", 0.0, run.output)
            else:
                outcome = apply_and_run(m, copy, python, timeout)
            outcomes.append(outcome)
            note = f"  [pending: {m.pending}]" if m.pending else ""
            say(f"[{i:>2}/{len(chosen)}] {outcome.verdict:<8} {m.name}  {outcome.seconds:.1f}s  "
                f"{outcome.caught_by}{note}")
            if verbose and outcome.verdict != CAUGHT:
                say(outcome.output[-4000:])
    return outcomes


# --------------------------------------------------------------------------- reporting


def result_table(outcomes: Sequence[Outcome], total: float, *, markdown: bool) -> str:
    """The results as an aligned text table, or as a Markdown table for the README."""
    rows = [(o.mutation.name + (" (pending)" if o.mutation.pending else ""), o.verdict, o.caught_by or "-",
             f"{o.seconds:.1f}") for o in outcomes]
    caught = sum(o.verdict == CAUGHT for o in outcomes)
    footer = f"{caught}/{len(outcomes)} caught; total {total:.1f}s"
    if markdown:
        lines = ["| mutation | verdict | caught by | seconds |", "|---|---|---|---|"]
        lines += [f"| `{n}` | {v} | `{c}` | {s} |" if c != "-" else f"| `{n}` | {v} | - | {s} |"
                  for n, v, c, s in rows]
        return "\n".join([*lines, "", f"{footer} ({date.today().isoformat()})"])
    widths = [max(len(r[i]) for r in [("mutation", "verdict", "caught by", "s"), *rows]) for i in range(3)]
    lines = [f"{n:<{widths[0]}}  {v:<{widths[1]}}  {c:<{widths[2]}}  {s:>6}" for n, v, c, s in rows]
    return "\n".join([*lines, footer])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--list", action="store_true", help="print the mutations and exit")
    p.add_argument("--check", action="store_true", help="only validate the list (every find text occurs once)")
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="run only this mutation (repeatable)")
    p.add_argument("--skip-pending", action="store_true", help="leave out mutations marked pending")
    p.add_argument("--no-baseline", action="store_true", help="do not run the tests on the unmutated copy first")
    p.add_argument("--markdown", action="store_true", help="also print the result table as Markdown")
    p.add_argument("--verbose", action="store_true", help="print pytest's output for every mutation not caught")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per pytest run")
    p.add_argument("--repo", type=Path, default=DEFAULT_REPO, help="the repository (default: this one)")
    p.add_argument("--mutations", type=Path, default=None, help="the list (default: mutations/mutations.toml)")
    p.add_argument("--python", default=sys.executable, help="interpreter to run pytest with (default: this one)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None, say: Callable[[str], None] = _print) -> int:
    """Run the command line; the exit status."""
    args = parse_args(argv)
    repo: Path = args.repo.resolve()
    list_path: Path = args.mutations or repo / "mutations" / "mutations.toml"
    mutations, problems = load_mutations(list_path)
    problems += validate(mutations, repo)
    chosen, unknown = select(mutations, args.only, args.skip_pending)
    if unknown:
        say(f"no mutation named {', '.join(unknown)}")
        return 2
    if args.list:
        for m in mutations:
            say(f"{m.name}{' (pending)' if m.pending else ''}\n    {m.file}\n    {m.why}\n    tests: {' '.join(m.tests)}")
    if problems:
        say("invalid mutations:\n" + "\n".join(f"  {p}" for p in problems))
        return 1
    if args.check or args.list:
        if args.check:
            say(f"{len(mutations)} mutations, every one valid ({sum(1 for m in mutations if m.pending)} pending)")
        return 0

    started = time.monotonic()
    outcomes = execute(chosen, repo, python=args.python, timeout=args.timeout, with_baseline=not args.no_baseline,
                       verbose=args.verbose, say=say)
    if outcomes is None:
        return 1
    total = time.monotonic() - started
    say("")
    say(result_table(outcomes, total, markdown=False))
    if args.markdown:
        say("")
        say(result_table(outcomes, total, markdown=True))
    bad = [o for o in outcomes if not o.ok]
    if bad:
        say("\nnot caught: " + ", ".join(f"{o.mutation.name} ({o.verdict})" for o in bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
