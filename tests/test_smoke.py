"""The smoke test's logic against an in-memory stand-in for the cluster (the one thing that
cannot run here), and its report. The stand-in models the few calls the checks make, with
faults a real cluster can have: a NotReady node, broken DNS, a pod network that does not
cross nodes, a CNI that ignores NetworkPolicy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from cfcr import cli
from cfcr.smoke import ExecResult, NodeInfo, PodInfo, Report, SmokeOptions, run_smoke
from cfcr.smoke.checks import HTTP_PORT, LOG_LINE, MARKER


@dataclass
class FakeCluster:
    nodes: list[NodeInfo] = field(default_factory=lambda: [NodeInfo("node-a", True), NodeInfo("node-b", True)])
    cni: str | None = "calico"
    dns_works: bool = True
    cross_node_works: bool = True
    enforces_policy: bool = True
    delete_fails: bool = False
    kubelet_unreachable: bool = False
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def list_nodes(self) -> list[NodeInfo]:
        return list(self.nodes)

    def detect_cni(self) -> str | None:
        return self.cni

    def create_namespace(self, name: str, labels: dict[str, str]) -> None:
        self.namespaces[name] = labels

    def delete_namespace(self, name: str) -> None:
        if self.delete_fails:
            raise RuntimeError("forbidden")
        self.deleted.append(name)
        self.namespaces.pop(name)
        self.objects = {k: v for k, v in self.objects.items() if k[0] != name}

    def create(self, namespace: str, manifest: dict[str, Any]) -> None:
        assert namespace in self.namespaces
        self.objects[(namespace, manifest["kind"], manifest["metadata"]["name"])] = manifest

    def delete(self, namespace: str, kind: str, name: str) -> None:
        del self.objects[(namespace, kind, name)]

    def _pod(self, namespace: str, name: str) -> PodInfo:
        manifest = self.objects[(namespace, "Pod", name)]
        node = manifest["spec"]["nodeSelector"]["kubernetes.io/hostname"]
        ip = f"10.244.{[n.name for n in self.nodes].index(node)}.{len(name)}"
        return PodInfo(name, node, ip)

    def wait_pod_running(self, namespace: str, name: str, timeout: float) -> PodInfo:
        return self._pod(namespace, name)

    def service_ip(self, namespace: str, name: str) -> str:
        return "10.96.0.50"

    def _policy_blocks(self, namespace: str) -> bool:
        return self.enforces_policy and any(k[0] == namespace and k[1] == "NetworkPolicy" for k in self.objects)

    def exec(self, namespace: str, pod: str, command: list[str], timeout: float) -> ExecResult:
        self.calls.append(" ".join(command))
        if self.kubelet_unreachable:
            return ExecResult(-1, "", "error dialing backend: dial tcp 10.0.0.5:10250: connect: connection refused")
        client = self._pod(namespace, pod)
        server = self._pod(namespace, "smoke-server")
        if command[0] == "echo":
            return ExecResult(0, " ".join(command[1:]) + "\n")
        if command[0] == "nslookup":
            return ExecResult(0, "Address: 10.96.0.1") if self.dns_works else ExecResult(1, ";; connection timed out")
        if command[0] == "wget":
            url = command[-1]
            if self._policy_blocks(namespace):
                return ExecResult(1, "wget: download timed out")
            if url == f"http://{server.ip}:{HTTP_PORT}/":
                same = client.node == server.node
                return ExecResult(0, MARKER + "\n") if same or self.cross_node_works else ExecResult(1, "timed out")
            if url.startswith(f"http://smoke-server.{namespace}.svc."):
                return ExecResult(0, MARKER + "\n") if self.dns_works else ExecResult(1, "bad address")
        return ExecResult(127, "not found")

    def logs(self, namespace: str, pod: str) -> str:
        if self.kubelet_unreachable:
            raise RuntimeError("(500) Get https://10.0.0.5:10250/containerLogs: connect: connection refused")
        return LOG_LINE + "\n"


def run(cluster: FakeCluster, **options: Any) -> Report:
    return run_smoke(cluster, SmokeOptions(timeout=20, sleep=lambda _: None, **options))


def statuses(report: Report) -> dict[str, str]:
    return {r.name: r.status for r in report.results}


def test_a_healthy_cluster_passes_and_is_cleaned_up() -> None:
    cluster = FakeCluster()
    report = run(cluster)
    assert report.passed, report.render()
    assert statuses(report) == {"nodes ready": "pass", "pods running": "pass", "exec": "pass", "logs": "pass", "dns": "pass",
                                "pod-to-pod across nodes": "pass", "service": "pass", "network policy": "pass",
                                "cleanup": "pass"}
    assert cluster.namespaces == {} and len(cluster.deleted) == 1
    pods = [m for k, m in cluster.objects.items() if k[1] == "Pod"]
    assert pods == []


def test_pods_run_on_two_nodes_in_a_restricted_namespace() -> None:
    cluster = FakeCluster()
    seen: dict[str, Any] = {}
    original = cluster.create

    def spy(namespace: str, manifest: dict[str, Any]) -> None:
        seen[manifest["kind"] + "/" + manifest["metadata"]["name"]] = manifest
        seen["ns-labels"] = dict(cluster.namespaces[namespace])
        original(namespace, manifest)

    cluster.create = spy  # type: ignore[method-assign]
    run(cluster)
    assert seen["ns-labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    nodes = {seen[f"Pod/{n}"]["spec"]["nodeSelector"]["kubernetes.io/hostname"] for n in ("smoke-client", "smoke-server")}
    assert nodes == {"node-a", "node-b"}
    ctx = seen["Pod/smoke-server"]["spec"]["containers"][0]["securityContext"]
    assert ctx["runAsNonRoot"] and ctx["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize(("fault", "failed"), [
    ({"dns_works": False}, {"dns", "service"}),
    # a policy check cannot be proven once the unpoliced fetch fails: it fails too, never passes
    ({"cross_node_works": False}, {"pod-to-pod across nodes", "network policy"}),
    ({"kubelet_unreachable": True}, {"exec", "logs", "dns", "pod-to-pod across nodes", "service", "network policy"}),
    ({"enforces_policy": False}, {"network policy"}),
])
def test_faults_fail_the_right_checks(fault: dict[str, Any], failed: set[str]) -> None:
    cluster = FakeCluster(**fault)
    report = run(cluster)
    assert not report.passed
    assert {name for name, s in statuses(report).items() if s == "fail"} == failed
    assert cluster.namespaces == {}, "the namespace is deleted even when checks fail"


def test_flannel_skips_network_policy_with_a_note() -> None:
    report = run(FakeCluster(cni="flannel"))
    assert report.passed
    result = next(r for r in report.results if r.name == "network policy")
    assert result.status == "skip" and "flannel" in result.detail


def test_not_ready_node_fails_and_one_node_skips_cross_node() -> None:
    cluster = FakeCluster(nodes=[NodeInfo("node-a", True), NodeInfo("node-b", False)])
    report = run(cluster)
    assert statuses(report)["nodes ready"] == "fail"
    assert statuses(report)["pod-to-pod across nodes"] == "skip"
    assert "node-b" in next(r.detail for r in report.results if r.name == "nodes ready")


def test_an_exception_is_reported_and_cleanup_still_runs() -> None:
    cluster = FakeCluster()

    def boom(namespace: str, name: str, timeout: float) -> PodInfo:
        raise TimeoutError("pod cfcr-smoke/smoke-client not running after 20s: phase Pending (ImagePullBackOff)")

    cluster.wait_pod_running = boom  # type: ignore[method-assign]
    report = run(cluster)
    assert statuses(report)["smoke run"] == "fail" and statuses(report)["cleanup"] == "pass"
    assert "ImagePullBackOff" in report.render()


def test_failed_cleanup_is_a_failure() -> None:
    report = run(FakeCluster(delete_fails=True))
    assert statuses(report)["cleanup"] == "fail" and not report.passed


def test_report_rendering() -> None:
    report = Report()
    report.add("nodes ready", "pass", "3 nodes Ready")
    report.add("network policy", "skip", "flannel does not enforce NetworkPolicy")
    report.add("dns", "fail", "timed out")
    text = report.render().splitlines()
    assert text[0].startswith("PASS  nodes ready")
    assert text[2].startswith("FAIL  dns")
    assert text[-1] == "smoke test FAILED: 1 passed, 1 failed, 1 skipped"
    assert not Report().passed, "an empty report is not a pass"


def test_cli_exit_codes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import cfcr.smoke.kube as kube

    clusters = iter([FakeCluster(), FakeCluster(dns_works=False)])
    monkeypatch.setattr(kube, "KubeApi", lambda path, context=None: next(clusters))
    assert cli.main(["smoke", "--kubeconfig", "k", "--timeout", "1"]) == 0
    assert "smoke test PASSED" in capsys.readouterr().out
    monkeypatch.setattr("cfcr.smoke.checks.time.sleep", lambda _: None)
    assert cli.main(["smoke", "--kubeconfig", "k", "--timeout", "1"]) == 1
    assert "smoke test FAILED" in capsys.readouterr().out


def test_an_exec_that_cannot_run_says_why_in_every_check_it_fails() -> None:
    report = run(FakeCluster(kubelet_unreachable=True))
    details = {r.name: r.detail for r in report.results}
    assert "could not run: error dialing backend" in details["exec"]
    assert "connection refused" in details["logs"]
    assert details["network policy"].startswith("cannot check")
    assert statuses(report)["cleanup"] == "pass"


@pytest.mark.parametrize(("channel", "expected"), [
    ('{"metadata":{},"status":"Success"}', (0, "")),
    ('{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code",'
     '"reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}', (3, "")),
    ('error dialing backend: dial tcp 10.0.0.5:10250: connect: connection refused',
     (-1, "error dialing backend: dial tcp 10.0.0.5:10250: connect: connection refused")),
    ("", (-1, "the exec stream ended without a status")),
])
def test_exec_status_reads_the_error_channel(channel: str, expected: tuple[int, str]) -> None:
    from cfcr.smoke.kube import exec_status

    assert exec_status(channel) == expected
