"""Figures for the offline render (cfcr.render): time, memory, graph depth. Not a test.

    python benchmarks/render_bench.py              # every scenario
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
    start = time.perf_counter()
    extra = work()
    seconds = time.perf_counter() - start
    if not TRACE:
        return {**extra, "seconds": seconds, "maxrss_mib": _maxrss_mib()}
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


def child_cfcr(count: int) -> dict[str, Any]:
    import_seconds = _imports()
    from cfcr import program
    from cfcr.render import run_program

    specs, config = _specs(count)  # validated outside the measurement, like render_stack does

    def work() -> dict[str, Any]:
        monitor, _, _ = run_program(lambda: [program.build(s) for s in specs],
                                    project=PROJECT, stack="bench", config=config)
        return {"resources": len(monitor.recorded),
                "components": sum(not r.custom for r in monitor.recorded)}

    return {"program": "cfcr", "count": count, "import_seconds": import_seconds, **_measure(work)}


def child_profile() -> dict[str, Any]:
    """The shape of one cluster's registrations, for the bare program to copy."""
    _imports()
    from cfcr import program
    from cfcr.render import run_program, unwrap

    specs, config = _specs(1)
    monitor, _, _ = run_program(lambda: program.build(specs[0]), project=PROJECT, stack="bench", config=config)
    index = {r.urn: i for i, r in enumerate(monitor.recorded)}
    shape = []
    for r in monitor.recorded:
        shape.append({
            "custom": r.custom,
            "parent": index.get(r.parent or ""),
            "deps": sorted(index[d] for d in r.dependencies if d in index),
            "input_bytes": len(json.dumps(unwrap(r.inputs), default=str)),
            "secret": bool(r.secret_inputs),
        })
    return {"shape": shape}


def child_bare(count: int, profile: Path) -> dict[str, Any]:
    import_seconds = _imports()
    import pulumi

    from cfcr.render import run_program

    shape: list[dict[str, Any]] = json.loads(profile.read_text())["shape"]

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
        monitor, _, _ = run_program(lambda: [one(f"cluster-{i:02d}") for i in range(count)],
                                    project=PROJECT, stack="bench", config={})
        return {"resources": len(monitor.recorded),
                "components": sum(not r.custom for r in monitor.recorded)}

    return {"program": "bare", "count": count, "import_seconds": import_seconds, **_measure(work)}


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


def _spawn(*args: str, trace: bool = False) -> dict[str, Any]:
    cmd = [sys.executable, __file__, *(["--trace"] if trace else []), "--child", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"scenario {args} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _measured(*args: str) -> dict[str, Any]:
    """A scenario run twice, each in a fresh interpreter: untraced for wall time and
    ru_maxrss, under tracemalloc for the peak of Python allocations."""
    plain = _spawn(*args)
    traced = _spawn(*args, trace=True)
    return {**plain, "tracemalloc_peak_mib": traced["tracemalloc_peak_mib"],
            "traced_seconds": traced["traced_seconds"]}


def _stacks() -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


def run_render() -> None:
    r = _measured("render", BASE_STACK)
    print(f"(a) render_stack({BASE_STACK!r}, out_dir=None)")
    print(f"    resources            {r['resources']}")
    print(f"    wall time            {r['seconds']:.2f} s   (imports before it: {r['import_seconds']:.2f} s)")
    print(f"    tracemalloc peak     {r['tracemalloc_peak_mib']:.1f} MiB (the render's Python allocations;"
          f" separate run, {r['traced_seconds']:.2f} s under tracing)")
    print(f"    ru_maxrss            {r['maxrss_mib']:.1f} MiB (whole process, imports included)")
    print(f"    user-data bytes      {r['user_data_bytes']}")
    print()


def run_clusters(counts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "profile.json"
        profile.write_text(json.dumps(_spawn("profile")))
        rows = [(n, _measured("cfcr", str(n)), _measured("bare", str(n), str(profile))) for n in counts]
    print("(b) N clusters in one mock-runtime run: cfcr.program.build vs a bare program of the same shape")
    head = (f"{'N':>3} {'program':<7} {'resources':>9} {'comp.':>5} {'time s':>8} {'ms/res':>7} "
            f"{'tm peak MiB':>11} {'maxrss MiB':>10}")
    print("    " + head)
    for n, cfcr, bare in rows:
        for r in (cfcr, bare):
            print(f"    {n:>3} {r['program']:<7} {r['resources']:>9} {r['components']:>5} {r['seconds']:>8.2f} "
                  f"{1000 * r['seconds'] / max(r['resources'], 1):>7.2f} {r['tracemalloc_peak_mib']:>11.1f} "
                  f"{r['maxrss_mib']:>10.1f}")
        print(f"    {n:>3} {'ratio':<7} {cfcr['resources'] / bare['resources']:>9.2f} {'':>5} "
              f"{cfcr['seconds'] / bare['seconds']:>8.2f} {'':>7} "
              f"{cfcr['tracemalloc_peak_mib'] / bare['tracemalloc_peak_mib']:>11.2f} "
              f"{cfcr['maxrss_mib'] / bare['maxrss_mib']:>10.2f}")
    print()


def run_chains() -> None:
    print("(c) longest dependency chain (dependencies + parent edges), first registered -> last")
    for stack in _stacks():
        r = _spawn("chain", stack)
        print(f"    {stack}: {r['length']} resources deep (of {r['resources']})")
        for step in r["path"]:
            print(f"        {step}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="*", help="render, clusters, chains (default: all)")
    parser.add_argument("--counts", default="1,10,50", help="cluster counts for (b), comma-separated")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        global TRACE
        TRACE = args.trace
        kind, *rest = args.child
        children: dict[str, Callable[..., dict[str, Any]]] = {
            "render": lambda: child_render(rest[0]),
            "cfcr": lambda: child_cfcr(int(rest[0])),
            "bare": lambda: child_bare(int(rest[0]), Path(rest[1])),
            "profile": child_profile,
            "chain": lambda: child_chain(rest[0]),
        }
        print(json.dumps(children[kind]()))
        return
    chosen = args.scenario or ["render", "clusters", "chains"]
    unknown = set(chosen) - {"render", "clusters", "chains"}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    print(f"cfcr render benchmark — {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}")
    print()
    if "render" in chosen:
        run_render()
    if "clusters" in chosen:
        run_clusters([int(n) for n in args.counts.split(",")])
    if "chains" in chosen:
        run_chains()


if __name__ == "__main__":
    main()
