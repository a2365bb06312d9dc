"""The product's mock runtime (:mod:`cfcr.render`), shaped for pytest.

Tests run under the very runtime ``python -m cfcr render`` uses: the same
:class:`~cfcr.render.mocks.RecordingMonitor` and the same stand-in tls/random providers, so
keys, certificates and CSRs are real. Resources are built inside the test, after the
fixture installed the runtime (see DESIGN.md, "Mock runtime")::

    from tests.support.pulumi_mocks import MockRecording, pulumi_mocks, resolve, run_program

    def test_something(pulumi_mocks: MockRecording) -> None:
        pki = run_program(lambda: ClusterPki("c", args))   # builds, waits for every RPC
        keys = pulumi_mocks.by_type("tls:index/privateKey:PrivateKey")
        assert all(r.parent == pulumi_mocks.urn_of("cfcr:pki:ClusterPki", "c") for r in keys)
        value, secret = resolve(pki.bootstrap_token)

What each record holds is documented on :class:`~cfcr.render.mocks.RecordedResource`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from cfcr.render.mocks import RecordedResource, RecordingMonitor, install
from cfcr.render.runtime import resolve, run_installed

__all__ = ["MockRecording", "RecordedResource", "pulumi_mocks", "resolve", "run_program"]

T = TypeVar("T")

_current: list[RecordingMonitor] = []


class MockRecording:
    """One test's view of the monitor: ``resources`` is the ordered record (clear it to
    start over), the queries are the monitor's."""

    def __init__(self, monitor: RecordingMonitor) -> None:
        self.monitor = monitor

    @property
    def resources(self) -> list[RecordedResource]:
        return self.monitor.recorded

    def by_type(self, type_token: str) -> list[RecordedResource]:
        return self.monitor.by_type(type_token)

    def get(self, name: str, type_token: str | None = None) -> RecordedResource:
        return self.monitor.get(name, type_token)

    def names(self, type_token: str | None = None) -> list[str]:
        return self.monitor.names(type_token)

    def urn_of(self, type_token: str, name: str) -> str:
        return self.monitor.urn_of(type_token, name)


@pytest.fixture
def pulumi_mocks() -> Iterator[MockRecording]:
    """The product's recording mock runtime, freshly installed for one test."""
    _current[:] = [install("cfcr", "test")]
    try:
        yield MockRecording(_current[0])
    finally:
        _current.clear()


def run_program(program: Callable[[], T]) -> T:
    """Run ``program`` under the fixture's runtime; return its result once every
    registration has completed."""
    if not _current:
        raise RuntimeError("run_program needs the pulumi_mocks fixture")
    result, _ = run_installed(_current[0], program)
    return result
