"""The few cluster operations the smoke test needs, as an interface.

:class:`ClusterApi` is what the checks call; :mod:`cfcr.smoke.kube` implements it with the
official ``kubernetes`` client. Tests drive the checks through an in-memory stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class NodeInfo:
    """A node: name, readiness, whether pods may be scheduled on it."""

    name: str
    ready: bool
    schedulable: bool = True
    control_plane: bool = False
    """It carries the ``node-role.kubernetes.io/control-plane`` label (the smoke pods go to
    workers first)."""


@dataclass(frozen=True)
class PodInfo:
    """A running pod: where it runs and its address."""

    name: str
    node: str
    ip: str


@dataclass(frozen=True)
class ExecResult:
    """What a command run in a container returned."""

    code: int
    """The command's exit code; -1 when the command could not be run at all (see ``error``)."""
    output: str
    """What it printed (stdout, then stderr)."""
    error: str = ""
    """Why the command could not be run (the API server's or the kubelet's message), if so."""

    def describe(self) -> str:
        """One line for a report."""
        if self.error:
            return f"could not run: {self.error}"
        return f"exit {self.code}: {self.output.strip()[:120]}"


class ClusterApi(Protocol):
    """The cluster operations of the smoke test."""

    def list_nodes(self) -> list[NodeInfo]: ...

    def detect_cni(self) -> str | None:
        """flannel, canal, calico, cilium, or None when unknown."""
        ...

    def create_namespace(self, name: str, labels: dict[str, str]) -> None: ...

    def service_account_exists(self, namespace: str, name: str) -> bool:
        """Whether the ServiceAccount exists (a namespace's ``default`` one is created by a
        controller shortly after the namespace: until then, pods are refused)."""
        ...

    def delete_namespace(self, name: str) -> None: ...

    def create(self, namespace: str, manifest: dict[str, Any]) -> None:
        """Create a Pod, Service or NetworkPolicy."""
        ...

    def delete(self, namespace: str, kind: str, name: str) -> None: ...

    def wait_pod_running(self, namespace: str, name: str, timeout: float) -> PodInfo: ...

    def exec(self, namespace: str, pod: str, command: list[str], timeout: float) -> ExecResult: ...

    def logs(self, namespace: str, pod: str) -> str: ...
