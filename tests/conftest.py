"""Session fixtures shared by the test modules.

``control_plane``: the real control plane of the default stack's render (see
tests/support/controlplane.py), booted once per test session and shared by every drill. It
needs root (network namespaces) and the programs ``python3 dev.py tools`` builds; without
them the tests that use it skip, saying why -- except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

DEFAULT_STACK = "aws-stable"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI: the control-plane harness cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[object]:
    """The default stack's control plane, booted from its render: 3 members, kwok, one worker."""
    from tests.support import netns
    from tests.support.tools import require_tool

    why = netns.available()
    if why:
        _unavailable(why)
    names = ["kubeadm", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
             "etcd", "etcdctl", "kwok"]
    binaries = {name: require_tool(name) for name in names}
    with harness_lock():
        yield from _booted(binaries)


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


def _booted(binaries: dict[str, Path]) -> Iterator[object]:
    """Boot the harness, yield it, tear it down."""
    from tests.support.controlplane import ControlPlane, HarnessError
    from tests.support.rendered import render_cluster
    from tests.support.tools import kwok_stage_configs

    workdir = Path(tempfile.mkdtemp(prefix="cfcr-cp-"))
    render = render_cluster(DEFAULT_STACK, workdir / "render")
    harness = ControlPlane(render, workdir, binaries, kwok_stage_configs())
    try:
        harness.boot(workers=["worker-" + p.name for p in render.spec.node_pools][:1])
    except HarnessError as exc:
        logs = harness.logs()
        harness.close()
        pytest.fail(f"{exc}\n--- logs ---\n{logs[-20000:]}", pytrace=False)
    yield harness
    harness.close()
    if os.environ.get("CFCR_KEEP_HARNESS") != "1":
        shutil.rmtree(workdir, ignore_errors=True)
