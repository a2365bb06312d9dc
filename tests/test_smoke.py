"""The smoke test's logic against an in-memory stand-in for the cluster, and its report.
The stand-in models the few calls the checks make as a real API server answers them (the
real-API run is tests/test_controlplane_real.py's smoke drill): a namespace's default
ServiceAccount appears a moment after the namespace and pods are refused until then; a
Node's ``kubernetes.io/hostname`` label is not its name; a NetworkPolicy applies only to the
pods its selector names. And faults a real cluster can have: a NotReady node, broken DNS, a
pod network that does not cross nodes, a CNI that ignores NetworkPolicy, something other
than the smoke server answering."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from cfcr import cli
from cfcr.smoke import ExecResult, NodeInfo, PodInfo, Report, SmokeOptions, run_smoke
from cfcr.smoke.checks import HTTP_PORT, LOG_LINE, MARKER


class Forbidden(RuntimeError):
    """What the API server answers a refused create."""


@dataclass
class FakeCluster:
    nodes: list[NodeInfo] = field(default_factory=lambda: [NodeInfo("ip-10-0-0-5.ec2.internal", True),
                                                           NodeInfo("ip-10-0-1-7.ec2.internal", True)])
    cni: str | None = "calico"
    dns_works: bool = True
    cross_node_works: bool = True
    enforces_policy: bool = True
    delete_fails: bool = False
    kubelet_unreachable: bool = False
    served: str = MARKER
    """What the smoke server's address answers with (another service could answer there)."""
    service_account_after: int = 2
    """The namespace's default ServiceAccount exists from this lookup on."""
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    lookups: dict[str, int] = field(default_factory=dict)
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def hostname(self, node: str) -> str:
        """The node's ``kubernetes.io/hostname`` label: the short host name, not the Node name."""
        return node.split(".", 1)[0]

    def list_nodes(self) -> list[NodeInfo]:
        return list(self.nodes)

    def detect_cni(self) -> str | None:
        return self.cni

    def create_namespace(self, name: str, labels: dict[str, str]) -> None:
        self.namespaces[name] = labels
        self.lookups[name] = 0

    def service_account_exists(self, namespace: str, name: str) -> bool:
        assert name == "default"
        self.lookups[namespace] += 1
        return self.lookups[namespace] >= self.service_account_after

    def delete_namespace(self, name: str) -> None:
        if self.delete_fails:
            raise RuntimeError("forbidden")
        self.deleted.append(name)
        self.namespaces.pop(name)
        self.objects = {k: v for k, v in self.objects.items() if k[0] != name}

    def create(self, namespace: str, manifest: dict[str, Any]) -> None:
        assert namespace in self.namespaces
        if manifest["kind"] == "Pod" and self.lookups[namespace] < self.service_account_after:
            raise Forbidden(f'pods "{manifest["metadata"]["name"]}" is forbidden: error looking up service '
                            f'account {namespace}/default: serviceaccount "default" not found')
        self.objects[(namespace, manifest["kind"], manifest["metadata"]["name"])] = manifest

    def delete(self, namespace: str, kind: str, name: str) -> None:
        del self.objects[(namespace, kind, name)]

    def _node_of(self, spec: dict[str, Any]) -> str | None:
        """Where the scheduler puts a pod: the nodes its nodeSelector and node affinity allow."""
        fits = [n.name for n in self.nodes if n.ready]
        for key, value in spec.get("nodeSelector", {}).items():
            assert key == "kubernetes.io/hostname", key
            fits = [n for n in fits if self.hostname(n) == value]
        terms = (spec.get("affinity", {}).get("nodeAffinity", {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms"))
        if terms:
            def matches(node: str, term: dict[str, Any]) -> bool:
                fields = {"metadata.name": node}
                labels = {"kubernetes.io/hostname": self.hostname(node)}
                exprs = [(fields, e) for e in term.get("matchFields", [])]
                exprs += [(labels, e) for e in term.get("matchExpressions", [])]
                return all(e["operator"] == "In" and have.get(e["key"]) in e["values"] for have, e in exprs)
            fits = [n for n in fits if any(matches(n, t) for t in terms)]
        return fits[0] if fits else None

    def _pod(self, namespace: str, name: str) -> PodInfo:
        manifest = self.objects[(namespace, "Pod", name)]
        node = self._node_of(manifest["spec"])
        if node is None:
            raise TimeoutError(f"pod {namespace}/{name} not running: phase Pending (no node matches its selectors)")
        ip = f"10.244.{[n.name for n in self.nodes].index(node)}.{len(name)}"
        return PodInfo(name, node, ip)

    def wait_pod_running(self, namespace: str, name: str, timeout: float) -> PodInfo:
        return self._pod(namespace, name)

    def _policy_blocks(self, namespace: str, pod: str) -> bool:
        """An ingress policy with no rules denies the pods its selector names, and only those."""
        if not self.enforces_policy:
            return False
        labels = self.objects[(namespace, "Pod", pod)]["metadata"]["labels"]
        for (ns, kind, _), policy in self.objects.items():
            spec = policy.get("spec", {})
            if ns != namespace or kind != "NetworkPolicy" or "Ingress" not in spec.get("policyTypes", []):
                continue
            selected = spec["podSelector"].get("matchLabels", {}).items() <= labels.items()
            if selected and not spec.get("ingress"):
                return True
        return False

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
            if self._policy_blocks(namespace, "smoke-server"):
                return ExecResult(1, "wget: download timed out")
            if url == f"http://{server.ip}:{HTTP_PORT}/":
                same = client.node == server.node
                return ExecResult(0, self.served + "\n") if same or self.cross_node_works else ExecResult(1, "timed out")
            if url.startswith(f"http://smoke-server.{namespace}.svc."):
                return ExecResult(0, self.served + "\n") if self.dns_works else ExecResult(1, "bad address")
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
        if manifest["kind"] == "Pod":
            seen.setdefault("nodes", set()).add(cluster._node_of(manifest["spec"]))

    cluster.create = spy  # type: ignore[method-assign]
    run(cluster)
    assert seen["ns-labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert seen["nodes"] == {n.name for n in cluster.nodes}, "one pod on each node, placed by Node name"
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


def test_pods_go_to_workers_before_the_control_plane() -> None:
    cluster = FakeCluster(nodes=[NodeInfo("cp-0", True, control_plane=True), NodeInfo("cp-1", True, control_plane=True),
                                 NodeInfo("w-0", True), NodeInfo("w-1", True)])
    placed: list[str | None] = []
    original = cluster.create

    def spy(namespace: str, manifest: dict[str, Any]) -> None:
        original(namespace, manifest)
        if manifest["kind"] == "Pod":
            placed.append(cluster._node_of(manifest["spec"]))

    cluster.create = spy  # type: ignore[method-assign]
    assert run(cluster).passed
    assert placed == ["w-0", "w-1"]


def test_an_answer_without_the_marker_is_not_the_smoke_server() -> None:
    """Something else answering on the server's address (or a proxy's error page) is not a
    working pod network or Service: the fetches check the marker the server serves."""
    report = run(FakeCluster(served="<html>default backend - 404</html>"))
    failed = {name for name, s in statuses(report).items() if s == "fail"}
    assert failed == {"pod-to-pod across nodes", "service", "network policy"}, report.render()
    assert "default backend" in next(r.detail for r in report.results if r.name == "service")


def test_pods_wait_for_the_namespaces_default_service_account() -> None:
    cluster = FakeCluster(service_account_after=4)
    report = run(cluster)
    assert report.passed, report.render()
    assert cluster.lookups and all(n == 4 for n in cluster.lookups.values())


def test_a_namespace_without_its_service_account_fails_clearly_and_is_cleaned_up() -> None:
    cluster = FakeCluster(service_account_after=10**6)
    report = run(cluster)
    detail = next(r.detail for r in report.results if r.name == "smoke run")
    assert "no default ServiceAccount after 60s" in detail and "kube-controller-manager" in detail
    assert statuses(report)["cleanup"] == "pass" and cluster.namespaces == {}
    assert not [k for k in cluster.objects if k[1] == "Pod"], "no pod was attempted"


def test_the_deny_policy_selects_the_server_only() -> None:
    """The fake applies a policy only to the pods it selects, as a CNI does: the policy that
    the check creates must select the server (a policy on the client would leave it open)."""
    from cfcr.smoke.checks import deny_ingress_policy, pod_manifest, server_command

    cluster = FakeCluster()
    cluster.create_namespace("ns", {})
    cluster.lookups["ns"] = 99
    for name, role in (("smoke-client", "client"), ("smoke-server", "server")):
        cluster.create("ns", pod_manifest(name, cluster.nodes[0].name, role, server_command()))
    cluster.create("ns", deny_ingress_policy())
    assert cluster._policy_blocks("ns", "smoke-server") and not cluster._policy_blocks("ns", "smoke-client")


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


@pytest.mark.parametrize(("status", "reason", "body", "expected"), [
    (500, "Internal Server Error",
     '{"kind":"Status","status":"Failure","message":"Get \\"https://10.0.0.5:10250/containerLogs/ns/p/main\\": '
     'dial tcp 10.0.0.5:10250: connect: connection refused","code":500}',
     '500 Internal Server Error: Get "https://10.0.0.5:10250/containerLogs/ns/p/main": dial tcp 10.0.0.5:10250: '
     'connect: connection refused'),
    # a refused exec upgrade: the websocket client folds the Status into the reason
    (0, "Handshake status 500 Internal Server Error -+-+- {'content-type': 'application/json'} -+-+- "
        "b'{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"no preferred addresses found\",\"code\":500}'",
     None, "500 Internal Server Error: no preferred addresses found"),
    # websocket-client 1.9 writes the body as text, or None when there is none
    (0, "Handshake status 500 Internal Server Error -+-+- {'content-type': 'application/json'} -+-+- "
        '{"kind":"Status","status":"Failure","message":"no preferred addresses found","code":500}',
     None, "500 Internal Server Error: no preferred addresses found"),
    (0, "Handshake status 502 Bad Gateway -+-+- {} -+-+- None", None, "502 Bad Gateway"),
    (403, "Forbidden", "not json", "403 Forbidden: not json"),
])
def test_api_errors_read_as_the_server_wrote_them(status: int, reason: str, body: str | None, expected: str) -> None:
    from kubernetes.client.exceptions import ApiException

    from cfcr.smoke.kube import api_error_text

    exc = ApiException(status=status, reason=reason)
    exc.body = body
    assert api_error_text(exc) == expected
