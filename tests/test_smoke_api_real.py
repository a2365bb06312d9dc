"""The ``cfcr smoke`` adapter (``cfcr/smoke/kube.py``, on the official ``kubernetes`` client)
against a real kube-apiserver on a real etcd (:mod:`tests.support.apiserver`): seconds, not the
minutes of the control-plane harness, whose smoke drill (tests/test_controlplane_real.py) runs
the whole command.

Each test calls the adapter and then reads the outcome with a plain client of its own
(:mod:`tests.support.kubeapi`), so what is asserted is the API server's state, not the
adapter's word. The programs are the stable channel's ``etcd`` and ``kube-apiserver``
(``python3 dev.py tools``; without them the tests skip, and fail under ``CI=true``).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cfcr.smoke.kube import KubeApi
from tests.support.apiserver import LOOPBACK, ApiServer, closed_port
from tests.support.kubeapi import ApiError, KubeClient
from tests.support.tools import require_tool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_server() -> Iterator[ApiServer]:
    """etcd and kube-apiserver on loopback for this module; stopped and removed at its end."""
    require_tool("etcd")
    require_tool("kube-apiserver")
    with tempfile.TemporaryDirectory(prefix="cfcr-smoke-api-") as tmp, ApiServer.start(Path(tmp)) as api:
        yield api


@pytest.fixture(scope="module")
def adapter(api_server: ApiServer) -> KubeApi:
    return KubeApi(str(api_server.kubeconfig))


@pytest.fixture(scope="module")
def client(api_server: ApiServer) -> KubeClient:
    return api_server.client


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_the_adapter_deletes_its_namespace(adapter: KubeApi, client: KubeClient) -> None:
    """``delete_namespace`` really deletes: no namespace controller runs here to finish the job,
    so the namespace stays Terminating, with a deletionTimestamp the API server set."""
    name = _name("cfcr-smoke")
    adapter.create_namespace(name, {"app.kubernetes.io/managed-by": "cfcr-smoke"})
    created = client.get(f"/api/v1/namespaces/{name}")
    assert created["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "cfcr-smoke"
    assert "deletionTimestamp" not in created["metadata"]

    adapter.delete_namespace(name)
    try:
        after = client.get(f"/api/v1/namespaces/{name}")
    except ApiError as exc:  # gone already: deleted too
        assert exc.status == 404, exc
        return
    assert "deletionTimestamp" in after["metadata"], f"the namespace was not deleted: {after['metadata']}"
    assert after["status"]["phase"] == "Terminating"


def _node_without_kubelet(client: KubeClient, name: str, port: int) -> None:
    """A Node whose kubelet endpoint is ``127.0.0.1:port``, where nothing listens."""
    client.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    client.request("PATCH", f"/api/v1/nodes/{name}/status", {"status": {
        # no Hostname address: the API server prefers it to the InternalIP by default
        "addresses": [{"type": "InternalIP", "address": LOOPBACK}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}},
        content_type="application/merge-patch+json")


def _running_pod(client: KubeClient, namespace: str, name: str, node: str) -> None:
    """A Pod bound to ``node`` and reported Running (as its kubelet would report it)."""
    client.post(f"/api/v1/namespaces/{namespace}/serviceaccounts",
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})
    pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "nodeName": node, "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]}}
    client.post(f"/api/v1/namespaces/{namespace}/pods", pod)
    client.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}/status", {"status": {
        "phase": "Running", "hostIP": LOOPBACK, "podIP": "10.244.0.10"}},
        content_type="application/merge-patch+json")


def test_an_exec_the_kubelet_cannot_run_fails_naming_the_kubelet(adapter: KubeApi, client: KubeClient) -> None:
    """The API server forwards the exec to the pod's kubelet, which does not answer: the adapter
    reports a command that did not run (code -1), in the API server's words, which name the
    kubelet's address and the refused connection -- never a success."""
    namespace, node, pod = _name("cfcr-smoke-exec"), _name("no-kubelet"), "client"
    client.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    with closed_port() as kubelet:
        port = kubelet.getsockname()[1]
        _node_without_kubelet(client, node, port)
        _running_pod(client, namespace, pod, node)
        assert client.get(f"/api/v1/nodes/{node}")["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == port

        result = adapter.exec(namespace, pod, ["true"], timeout=20)

    assert result.code == -1, result
    assert f"{LOOPBACK}:{port}" in result.error and "connection refused" in result.error, result
    assert result.describe().startswith("could not run: "), result.describe()
