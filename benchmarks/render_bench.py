"""Figures for the offline render (cfcr.render): time, memory, graph depth. Not a test.

    python benchmarks/render_bench.py              # every scenario, traced too (long: see README.md)
    python benchmarks/render_bench.py --quick      # the two target ratios only, untraced
    python benchmarks/render_bench.py render       # (a) only; also: clusters, chains
    python benchmarks/render_bench.py clusters --counts 1,10,50

Scenarios, each measured in a fresh interpreter so peak memory belongs to it alone:

(a) ``render``:   ``render_stack("aws-stable", out_dir=None)``; wall time, tracemalloc peak
                  (allocations made by the render, imports excluded) and ru_maxrss (the
                  whole process, imports included). Wall time and ru_maxrss come from an
                  untraced run, the tracemalloc peak from a second one (tracing is slow).
(b) ``clusters``: one mock-runtime run that builds ``cfcr.program.build(spec)`` N times
                  (``cluster-00`` ...), next to a BARE program that registers the same
                  resources (same count, components/custom split, parents, dependencies and
                  JSON size of inputs) as plain ``pulumi.CustomResource`` /
                  ``ComponentResource`` under the same runtime. cfcr/bare is what cfcr
                  itself costs on top of the engine's bookkeeping.
(c) ``chains``:   for every stack in ``stacks/``, the longest chain of the render's
                  dependency graph (edges: ``dependencies`` and ``parent``).

Two targets, printed as ``ratio ... (target <= X): MET`` lines:

Both compare CPU time (``time.process_time``, every thread of the child): on a shared machine
wall time also counts the time other processes held the CPU. Wall time is printed next to it.

(i)  render/bare: (a)'s CPU time over the bare program's for ONE cluster of aws-stable's shape,
     the bare program importing, inside its clock, every provider module (``pulumi_*``) the
     render loads (pulumi-aws loads its submodules lazily, inside the render): <= 1.3.
(ii) 50 clusters / 1 cluster of (b), cfcr's program, provider modules imported before the clock
     in both: <= 50.5 (a cluster costs no more when there are more of them).

Progress goes to stderr, a line when each measurement starts and ends. A measurement that fails
(a stack that does not render) is reported at the end and the exit status is 1; the others run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROJECT = "cfcr"
BASE_STACK = "aws-stable"


# ------------------------------------------------------------------ measuring (in a child)


def _maxrss_mib() -> float:
    # Linux reports KiB, macOS bytes
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


TRACE = False
"""Set by ``--trace``: measure allocations with tracemalloc (which slows Python down
several times), instead of wall time and ru_maxrss. The parent runs each scenario both ways."""


def _measure(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` once; its dict plus time and memory figures of this process."""
    if TRACE:
        tracemalloc.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    extra = work()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if not TRACE:
        return {**extra, "seconds": seconds, "cpu_seconds": cpu, "maxrss_mib": _maxrss_mib()}
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {**extra, "traced_seconds": seconds, "tracemalloc_peak_mib": peak / 2**20}


def _imports() -> float:
    """Import everything a run needs before measuring; returns the seconds it took."""
    start = time.perf_counter()
    import pulumi  # noqa: F401
    import pulumi_random  # noqa: F401
    import pulumi_tls  # noqa: F401

    import cfcr.program  # noqa: F401
    import cfcr.render  # noqa: F401

    return time.perf_counter() - start


def child_render(stack: str) -> dict[str, Any]:
    import_seconds = _imports()
    from cfcr.render import render_stack

    def work() -> dict[str, Any]:
        result = render_stack(stack, out_dir=None)
        return {"resources": len(result.resources),
                "user_data_bytes": {k: len(v) for k, v in sorted(result.user_data.items())}}

    return {"stack": stack, "import_seconds": import_seconds, **_measure(work)}


def _specs(count: int) -> tuple[list[Any], dict[str, str]]:
    from cfcr.config import load_spec, read_stack_config
    from cfcr.render import stack_config_strings

    raw = read_stack_config(BASE_STACK)
    specs = [load_spec({**raw, "cfcr:name": f"cluster-{i:02d}"}, BASE_STACK) for i in range(count)]
    return specs, stack_config_strings(raw)


def child_cfcr(count: int, profile: Path) -> dict[str, Any]:
    import_seconds = _imports()
    from cfcr import program
    from cfcr.render import run_program

    _load(json.loads(profile.read_text())["modules"])  # (ii) compares clusters, not module loading
    specs, config = _specs(count)  # validated outside the measurement, like render_stack does

    def work() -> dict[str, Any]:
        monitor, _, _ = run_program(lambda: [program.build(s) for s in specs],
                                    project=PROJECT, stack="bench", config=config)
        return {"resources": len(monitor.recorded),
                "components": sum(not r.custom for r in monitor.recorded)}

    return {"program": "cfcr", "count": count, "import_seconds": import_seconds, **_measure(work)}


def _provider_modules() -> list[str]:
    """The provider SDKs' modules loaded so far, in load order (a package before its submodules:
    importing them in another order can shadow a class by its module of the same name)."""
    return [m for m in sys.modules if m.startswith("pulumi_")]


def _load(modules: list[str]) -> None:
    import importlib

    for name in modules:
        importlib.import_module(name)


def child_profile() -> dict[str, Any]:
    """The shape of aws-stable's registrations, for the bare program to copy, and the provider
    modules its render loads beyond :func:`_imports`."""
    _imports()
    before = set(_provider_modules())
    from cfcr.render import render_stack, unwrap

    recorded = render_stack(BASE_STACK, out_dir=None).resources
    modules = [m for m in _provider_modules() if m not in before]
    index = {r.urn: i for i, r in enumerate(recorded)}
    shape = []
    for r in recorded:
        shape.append({
            "custom": r.custom,
            "parent": index.get(r.parent or ""),
            "deps": sorted(index[d] for d in r.dependencies if d in index),
            "input_bytes": len(json.dumps(unwrap(r.inputs), default=str)),
            "secret": bool(r.secret_inputs),
        })
    return {"shape": shape, "modules": modules}


def child_bare(count: int, profile: Path, modules_in_clock: bool) -> dict[str, Any]:
    import_seconds = _imports()
    import pulumi

    from cfcr.render import run_program

    loaded = json.loads(profile.read_text())
    shape: list[dict[str, Any]] = loaded["shape"]
    modules: list[str] = loaded["modules"]
    if not modules_in_clock:
        _load(modules)

    class BareComponent(pulumi.ComponentResource):
        def __init__(self, name: str, opts: pulumi.ResourceOptions) -> None:
            super().__init__("bench:bare:Component", name, None, opts)
            self.register_outputs({})

    class BareResource(pulumi.CustomResource):
        def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
            super().__init__("bench:bare:Resource", name, props, opts)

    def one(prefix: str) -> None:
        made: list[pulumi.Resource] = []
        for i, entry in enumerate(shape):
            opts = pulumi.ResourceOptions(
                parent=made[entry["parent"]] if entry["parent"] is not None else None,
                depends_on=[made[d] for d in entry["deps"] if d < len(made)],
            )
            name = f"{prefix}-r{i:03d}"
            if entry["custom"]:
                payload: Any = "x" * max(entry["input_bytes"] - 16, 0)
                made.append(BareResource(name, {"payload": pulumi.Output.secret(payload) if entry["secret"] else payload}, opts))
            else:
                made.append(BareComponent(name, opts))

    def work() -> dict[str, Any]:
        if modules_in_clock:
            _load(modules)  # what the render loads lazily, inside its clock
        def program() -> None:
            for i in range(count):
                one(f"cluster-{i:02d}")

        monitor, _, _ = run_program(program, project=PROJECT, stack="bench", config={})
        return {"resources": len(monitor.recorded),
                "components": sum(not r.custom for r in monitor.recorded)}

    return {"program": "bare", "count": count, "modules": len(modules), "modules_in_clock": modules_in_clock,
            "import_seconds": import_seconds, **_measure(work)}


def child_chain(stack: str) -> dict[str, Any]:
    _imports()
    from cfcr.render import render_stack

    result = render_stack(stack, out_dir=None)
    return {"stack": stack, **longest_chain(result.resources)}


def longest_chain(resources: list[Any]) -> dict[str, Any]:
    """Longest path (in resources) where each resource points at its dependencies and parent."""
    by_urn = {r.urn: r for r in resources}
    edges = {r.urn: sorted({*r.dependencies, *([r.parent] if r.parent in by_urn else [])} & by_urn.keys())
             for r in resources}
    best: dict[str, list[str]] = {}

    def chain(urn: str) -> list[str]:  # the graph is a DAG: the engine registers nothing before its inputs
        if urn not in best:
            tails = [chain(d) for d in edges[urn]]
            best[urn] = [urn, *max(tails, key=len, default=[])]
        return best[urn]

    sys.setrecursionlimit(max(10_000, 4 * len(resources)))
    longest = max((chain(u) for u in by_urn), key=len, default=[])
    path = [by_urn[u] for u in reversed(longest)]  # from the first registered to the last
    return {"resources": len(resources), "length": len(path),
            "path": [f"{r.name} ({r.type.rsplit(':', 1)[-1]})" for r in path]}


# ------------------------------------------------------------------ orchestrating (the parent)

START = time.perf_counter()
FAILURES: list[str] = []
"""One line per measurement that failed; printed at the end (exit status 1)."""


class MeasurementFailed(Exception):
    """A child interpreter exited non-zero; the message carries the end of its stderr."""


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - START:7.1f} s] {message}", file=sys.stderr, flush=True)


def _spawn(*args: str, trace: bool = False) -> dict[str, Any]:
    label = " ".join(args[:2]) + (" (traced)" if trace else "")
    progress(f"start {label}")
    began = time.perf_counter()
    cmd = [sys.executable, __file__, *(["--trace"] if trace else []), "--child", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        progress(f"FAILED {label} after {time.perf_counter() - began:.1f} s")
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise MeasurementFailed(f"{label}: exit {proc.returncode}: {last}")
    progress(f"done  {label} in {time.perf_counter() - began:.1f} s")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _measured(*args: str, trace: bool = True) -> dict[str, Any]:
    """A scenario in a fresh interpreter, untraced for wall time and ru_maxrss; with ``trace``,
    again under tracemalloc for the peak of Python allocations."""
    plain = _spawn(*args)
    if not trace:
        return plain
    traced = _spawn(*args, trace=True)
    return {**plain, "tracemalloc_peak_mib": traced["tracemalloc_peak_mib"],
            "traced_seconds": traced["traced_seconds"]}


def _guarded(label: str, run: Callable[[], None]) -> None:
    """Run one measurement's work; a failure is recorded and the benchmark goes on."""
    try:
        run()
    except MeasurementFailed as exc:
        FAILURES.append(str(exc))
        print(f"    {label}: FAILED (see the end)")
        print()


def _stacks() -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


def _mib(r: dict[str, Any], key: str) -> str:
    return f"{r[key]:.1f}" if key in r else "-"


def ratio_line(name: str, value: float, target: float) -> str:
    return f"ratio {name} = {value:.2f} (target <= {target}): {'MET' if value <= target else 'MISSED'}"


def run_render(profile: Path, trace: bool) -> None:
    r = _measured("render", BASE_STACK, trace=trace)
    bare = _spawn("bare", "1", str(profile), "in-clock")
    print(f"(a) render_stack({BASE_STACK!r}, out_dir=None)")
    print(f"    resources            {r['resources']}")
    print(f"    wall time            {r['seconds']:.2f} s   (imports before it: {r['import_seconds']:.2f} s)")
    print(f"    CPU time             {r['cpu_seconds']:.2f} s")
    if trace:
        print(f"    tracemalloc peak     {r['tracemalloc_peak_mib']:.1f} MiB (the render's Python allocations;"
              f" separate run, {r['traced_seconds']:.2f} s under tracing)")
    print(f"    ru_maxrss            {r['maxrss_mib']:.1f} MiB (whole process, imports included)")
    print(f"    user-data bytes      {r['user_data_bytes']}")
    print(f"    bare, same shape     {bare['cpu_seconds']:.2f} s CPU ({bare['seconds']:.2f} s wall) for "
          f"{bare['resources']} resources, importing its {bare['modules']} provider modules in the clock; "
          f"ru_maxrss {bare['maxrss_mib']:.1f} MiB")
    print(f"    {ratio_line('render/bare', r['cpu_seconds'] / bare['cpu_seconds'], 1.3)} (CPU time)")
    print()


def run_clusters(counts: list[int], profile: Path, trace: bool) -> None:
    rows = []
    for n in counts:
        try:
            rows.append((n, _measured("cfcr", str(n), str(profile), trace=trace),
                         _measured("bare", str(n), str(profile), "preloaded", trace=trace)))
        except MeasurementFailed as exc:
            FAILURES.append(str(exc))
    print("(b) N clusters in one mock-runtime run: cfcr.program.build vs a bare program of the same shape")
    print("    (provider modules imported before the clock in both)")
    head = (f"{'N':>3} {'program':<7} {'resources':>9} {'comp.':>5} {'wall s':>8} {'CPU s':>8} {'CPU ms/res':>10} "
            f"{'tm peak MiB':>11} {'maxrss MiB':>10}")
    print("    " + head)
    for n, cfcr, bare in rows:
        for r in (cfcr, bare):
            print(f"    {n:>3} {r['program']:<7} {r['resources']:>9} {r['components']:>5} {r['seconds']:>8.2f} "
                  f"{r['cpu_seconds']:>8.2f} {1000 * r['cpu_seconds'] / max(r['resources'], 1):>10.2f} "
                  f"{_mib(r, 'tracemalloc_peak_mib'):>11} "
                  f"{r['maxrss_mib']:>10.1f}")
        tm = (f"{cfcr['tracemalloc_peak_mib'] / bare['tracemalloc_peak_mib']:.2f}"
              if "tracemalloc_peak_mib" in cfcr else "-")
        print(f"    {n:>3} {'ratio':<7} {cfcr['resources'] / bare['resources']:>9.2f} {'':>5} "
              f"{cfcr['seconds'] / bare['seconds']:>8.2f} {cfcr['cpu_seconds'] / bare['cpu_seconds']:>8.2f} "
              f"{'':>10} {tm:>11} "
              f"{cfcr['maxrss_mib'] / bare['maxrss_mib']:>10.2f}")
    by_count = {n: cfcr for n, cfcr, _ in rows}
    if 1 in by_count and 50 in by_count:
        one, fifty = by_count[1], by_count[50]
        print(f"    {ratio_line('50 clusters/1 cluster', fifty['cpu_seconds'] / one['cpu_seconds'], 50.5)} (CPU time; "
              f"wall time {fifty['seconds'] / one['seconds']:.2f})")
    else:
        print("    ratio 50 clusters/1 cluster: not measured (needs counts 1 and 50)")
    print()


def run_chains(stacks: list[str]) -> None:
    print("(c) longest dependency chain (dependencies + parent edges), first registered -> last")
    for stack in stacks:
        try:
            r = _spawn("chain", stack)
        except MeasurementFailed as exc:
            FAILURES.append(str(exc))
            print(f"    {stack}: FAILED (see the end)")
            continue
        print(f"    {stack}: {r['length']} resources deep (of {r['resources']})")
        for step in r["path"]:
            print(f"        {step}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="*", help="render, clusters, chains (default: all)")
    parser.add_argument("--counts", default="1,10,50", help="cluster counts for (b), comma-separated")
    parser.add_argument("--quick", action="store_true",
                        help="only what the two ratios need: (a) and (b) for N = 1, 50, untraced; no (c)")
    parser.add_argument("--stacks", help="stacks for (c), comma-separated (default: every stack in stacks/)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        global TRACE
        TRACE = args.trace
        kind, *rest = args.child
        children: dict[str, Callable[..., dict[str, Any]]] = {
            "render": lambda: child_render(rest[0]),
            "cfcr": lambda: child_cfcr(int(rest[0]), Path(rest[1])),
            "bare": lambda: child_bare(int(rest[0]), Path(rest[1]), rest[2] == "in-clock"),
            "profile": child_profile,
            "chain": lambda: child_chain(rest[0]),
        }
        print(json.dumps(children[kind]()))
        return 0
    chosen = args.scenario or (["render", "clusters"] if args.quick else ["render", "clusters", "chains"])
    unknown = set(chosen) - {"render", "clusters", "chains"}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    counts = [1, 50] if args.quick and args.counts == parser.get_default("counts") else \
        [int(n) for n in args.counts.split(",")]
    trace = not args.quick
    print(f"cfcr render benchmark — {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
          f"{', --quick (untraced)' if args.quick else ''}", flush=True)
    print()
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "profile.json"
        if {"render", "clusters"} & set(chosen):
            try:
                profile.write_text(json.dumps(_spawn("profile")))
            except MeasurementFailed as exc:  # (a)'s bare and (b) copy this shape: nothing to compare
                FAILURES.append(str(exc))
                chosen = [c for c in chosen if c == "chains"]
        if "render" in chosen:
            _guarded("(a) render", lambda: run_render(profile, trace))
        if "clusters" in chosen:
            run_clusters(counts, profile, trace)
    if "chains" in chosen:
        run_chains(args.stacks.split(",") if args.stacks else _stacks())
    progress(f"finished, {len(FAILURES)} failed measurement(s)")
    if FAILURES:
        print(f"{len(FAILURES)} measurement(s) failed:")
        for failure in FAILURES:
            print(f"  - {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
