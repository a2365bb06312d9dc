"""Session fixtures shared by the test modules.

``control_plane``: the real control plane of the default stack's render (see
tests/support/controlplane.py), booted once per test session and shared by every drill. It
needs root (network namespaces) and the programs ``python3 dev.py tools`` builds; without
them the tests that use it skip, saying why -- except under ``CI=true``, where they fail.

A module that boots a harness of its own (another stack's: tests/test_gcp_controlplane_real.py)
marks itself ``boots_own_harness`` and uses :func:`booted_harness`; its tests run before every
other test (:func:`pytest_collection_modifyitems`), so the session's control plane, which holds
the machine's one harness lock until the session ends, is not up yet when it asks for the lock.

The drill modules that change the session's control plane (replace or add members, upgrade it)
are marked ``changes_control_plane``: when one of their tests fails, the control plane may be half
changed, so the next test that uses it gets it booted again first (a boot's minutes, only after a
failure) and fails, or passes, on its own account.

Renders: every ``cfcr.render.render_stack`` of the process is served from one render per stack,
configuration, ``show_secrets`` and epoch (tests/support/render_cache.py); a test that judges the
renderer itself is marked ``fresh_render``. ``CFCR_RENDER_CACHE=0`` turns the cache off.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

DEFAULT_STACK = "aws-stable"
HARNESS_PROGRAMS = ("kubeadm", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                    "etcd", "etcdctl", "kwok")
"""What every harness runs (tests/support/tools.py builds them)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "boots_own_harness: the module boots a control-plane harness of its own "
                                       "(it runs before the tests that use the session's `control_plane`)")
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist's --dist loadgroup runs a group's tests on "
                                       "one worker (registered here too: the marker is set without xdist)")
    config.addinivalue_line("markers", "changes_control_plane: the module's tests change the harness they use "
                                       "(members replaced, an upgrade): one that fails leaves it to be booted again")
    config.addinivalue_line("markers", "fresh_render: every render in the test runs afresh (not from "
                                       "tests/support/render_cache.py)")
    if os.environ.get("CFCR_RENDER_CACHE") != "0":
        from tests.support import render_cache

        render_cache.install()
        config.pluginmanager.register(render_cache, "cfcr-render-cache")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests of modules that boot their own harness first (stable: each module stays whole).

    Every test of a ``*_real.py`` module is in the xdist group ``real``: under ``-n 2 --dist
    loadgroup`` they are to run, in this order, on one worker (one control plane on the machine at
    a time, the session's ``control_plane`` booted once) while the other worker runs the rest --
    where xdist groups (see :func:`pytest_xdist_node_collection_finished`)."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("boots_own_harness") else 1)
    for item in items:
        if item.path.name.endswith("_real.py"):
            item.add_marker(pytest.mark.xdist_group("real"))
            # the real modules render few times and boot from what they render, some under patched
            # stand-in providers (the CA rotation drill's leaf dates): every render of theirs is fresh
            item.add_marker(pytest.mark.fresh_render)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    """Under xdist (``-n``), stop before any test when a ``*_real.py`` test is not in the ``real``
    group: spread over the workers, the control-plane modules would contend for the machine's
    harness lock (a second worker waits for the first's whole session) and etcd's loopback lock
    (180 s, then an error). Only ``--dist loadgroup`` groups, and with pytest 9.2 and pytest-xdist
    3.8 not even it (pytest-dev/pytest-xdist#1386). xdist's controller calls this with each
    worker's collection; never without xdist."""
    lost = [nodeid for nodeid in ids if "_real.py::" in nodeid and not nodeid.endswith("@real")]
    if lost:
        pytest.exit(f"{lost[0]}: the control-plane tests need `--dist loadgroup`, and it must group them (it does "
                    "not with pytest 9.2 and pytest-xdist 3.8: pytest-dev/pytest-xdist#1386); run the *_real.py "
                    "modules in a pytest of their own, without -n", returncode=pytest.ExitCode.USAGE_ERROR)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI: the control-plane harness cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[object]:
    """The default stack's control plane, booted from its render: 3 members, kwok, one worker."""
    yield from booted_harness(DEFAULT_STACK)


def booted_harness(stack: str, config: dict[str, object] | None = None) -> Iterator[object]:
    """``stack``'s control plane booted from its render (every member, kwok, one VM of its first
    pool), under the machine's harness lock; skipped (failed under CI) where it cannot run.
    ``config``: the stack's configuration to render instead of its file's (a variant)."""
    from tests.support import netns
    from tests.support.tools import require_tool

    why = netns.available()
    if why:
        _unavailable(why)
    binaries = {name: require_tool(name) for name in HARNESS_PROGRAMS}
    if lock_held_by_this_process():
        pytest.fail(f"this pytest process already holds the harness lock ({HARNESS_LOCK}): the {stack} harness "
                    "would wait for it for ever; mark the module that boots it `boots_own_harness`", pytrace=False)
    with harness_lock():
        yield from _booted(stack, binaries, config)


HARNESS_LOCK = Path(tempfile.gettempdir()) / "cfcr-harness.lock"
"""One real control plane on this machine at a time: two would starve each other of CPU (boots
and drills time out) and share nothing but the lock."""


@contextlib.contextmanager
def harness_lock() -> Iterator[None]:
    with HARNESS_LOCK.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for the control plane of another test run ({HARNESS_LOCK}) ...", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def lock_held_by_this_process() -> bool:
    """Whether this very process holds :data:`HARNESS_LOCK` (``/proc/locks``)."""
    if not HARNESS_LOCK.exists():
        return False
    inode = HARNESS_LOCK.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].endswith(f":{inode}") and parts[4] == str(os.getpid()):
            return True
    return False


def _booted(stack: str, binaries: dict[str, Path], config: dict[str, object] | None = None) -> Iterator[object]:
    """Boot the harness, yield it, tear it down. The boot's time is printed. A harness a drill
    left broken (:func:`pytest_runtest_makereport`) is booted again, in place, before the next
    test that uses it (:func:`_whole_harness`)."""
    from tests.support.controlplane import ControlPlane
    from tests.support.rendered import render_cluster
    from tests.support.tools import kwok_stage_configs

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="cfcr-cp-"))
    render = render_cluster(stack, workdir / "render", config)
    harness = ControlPlane(render, workdir, binaries, kwok_stage_configs())
    workdirs = [workdir]
    _boot(harness, started)

    def again() -> None:
        harness.close()
        fresh = Path(tempfile.mkdtemp(prefix="cfcr-cp-"))
        workdirs.append(fresh)
        # the same object, every field as a new harness has it: the session's tests hold it
        ControlPlane.__init__(harness, render, fresh, binaries, kwok_stage_configs())
        _boot(harness, time.monotonic())

    _REBOOT[id(harness)] = again
    yield harness
    _REBOOT.pop(id(harness), None)
    harness.close()
    if os.environ.get("CFCR_KEEP_HARNESS") != "1":
        for each in workdirs:
            shutil.rmtree(each, ignore_errors=True)


def _boot(harness: Any, started: float) -> None:
    from tests.support.controlplane import HarnessError

    stack = harness.render.stack
    try:
        harness.boot(workers=["worker-" + p.name for p in harness.render.spec.node_pools][:1])
        phases = ", ".join(f"{k} {v:.0f}s" for k, v in harness.timings.items())
        print(f"\n{stack}: booted in {time.monotonic() - started:.0f}s (render included; {phases})", flush=True)
    except HarnessError as exc:
        logs = harness.logs()
        harness.close()
        fail_with_logs(exc, logs)


_REBOOT: dict[int, Callable[[], None]] = {}
"""id(harness) -> boot it again in place (:func:`_booted`)."""
_BROKEN_BY: dict[int, str] = {}
"""id(harness) -> the test that failed while changing it (marked ``changes_control_plane``)."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test of a ``changes_control_plane`` module (a drill that replaces members,
    upgrades or grows the control plane) may have left the harness it used half changed: the next
    test that uses it gets it booted again (:func:`_whole_harness`) instead of failing on the
    drill's leftovers."""
    report = yield
    if report.failed and item.get_closest_marker("changes_control_plane") is not None:
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if id(value) in _REBOOT:
                _BROKEN_BY[id(value)] = item.nodeid
    return report


@pytest.fixture(autouse=True)
def _whole_harness(request: pytest.FixtureRequest) -> None:
    """Before a test that uses a harness a failed drill left broken: boot that harness again."""
    if not _BROKEN_BY:
        return
    if "control_plane" in request.fixturenames:
        value = request.getfixturevalue("control_plane")
        if id(value) in _BROKEN_BY:
            print(f"\nthe control plane was left broken by {_BROKEN_BY.pop(id(value))}: booting it again", flush=True)
            _REBOOT[id(value)]()


def fail_with_logs(exc: BaseException, logs: str) -> None:
    """Fail a harness fixture: the error, the logs' tail, and the error again at the end (a CI
    summary shows a long message's end only)."""
    pytest.fail(f"{exc}\n--- logs ---\n{logs[-20000:]}\n--- the harness failed: ---\n{str(exc)[-3000:]}",
                pytrace=False)
