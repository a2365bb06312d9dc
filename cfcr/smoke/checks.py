"""The smoke checks: nodes Ready, DNS from a pod, pod-to-pod across two nodes, a Service,
NetworkPolicy enforcement (where the CNI enforces it), ``logs`` and ``exec``.

They run in a namespace of their own (Pod Security ``restricted``), which is deleted
afterwards whatever happened. Every check yields a :class:`CheckResult`; the report says
pass, fail or skip (with the reason) for each.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from cfcr.smoke.api import ClusterApi, PodInfo

Status = Literal["pass", "fail", "skip"]
IMAGE = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"
POLICY_CNIS = ("calico", "canal", "cilium")
MARKER = "cfcr-smoke-ok"
LOG_LINE = "cfcr-smoke-log"
HTTP_PORT = 8080
SERVICE_ACCOUNT_WAIT = 60
"""Seconds to wait for a new namespace's default ServiceAccount (polled each second)."""


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome."""

    name: str
    status: Status
    detail: str


@dataclass
class Report:
    """Every check's outcome, in order."""

    results: list[CheckResult] = field(default_factory=list)

    def add(self, name: str, status: Status, detail: str) -> None:
        self.results.append(CheckResult(name, status, detail))

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.status != "fail" for r in self.results)

    def render(self) -> str:
        width = max((len(r.name) for r in self.results), default=4)
        lines = [f"{r.status.upper():4}  {r.name.ljust(width)}  {r.detail}" for r in self.results]
        counts = {s: sum(1 for r in self.results if r.status == s) for s in ("pass", "fail", "skip")}
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(f"smoke test {verdict}: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
        return "\n".join(lines)


def _security_context() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}}


def pod_manifest(name: str, node: str, role: str, command: list[str]) -> dict[str, Any]:
    """A restricted-compliant busybox pod pinned to the Node named ``node``, by its name (the
    ``kubernetes.io/hostname`` label need not equal it: on AWS it is the host name, the Node
    name may be the private DNS name), still through the scheduler."""
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "cfcr-smoke", "role": role}},
        "spec": {
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [by_name]}}},
            "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": IMAGE, "command": command,
                            "securityContext": _security_context(),
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}}}],
        },
    }


def server_command() -> list[str]:
    return ["sh", "-c", f"mkdir -p /tmp/www && echo {MARKER} > /tmp/www/index.html && exec httpd -f -p {HTTP_PORT} -h /tmp/www"]


def client_command() -> list[str]:
    return ["sh", "-c", f"echo {LOG_LINE}; exec sleep 3600"]


def service_manifest() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "smoke-server"},
            "spec": {"selector": {"app": "cfcr-smoke", "role": "server"},
                     "ports": [{"port": 80, "targetPort": HTTP_PORT, "protocol": "TCP"}]}}


def deny_ingress_policy() -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny-server-ingress"},
            "spec": {"podSelector": {"matchLabels": {"role": "server"}}, "policyTypes": ["Ingress"], "ingress": []}}


@dataclass
class SmokeOptions:
    """Knobs of a smoke run."""

    timeout: float = 300.0
    """Seconds each pod may take to start, and the budget of a polled check."""
    cluster_domain: str = "cluster.local"
    """The cluster's DNS domain."""
    cni: str | None = None
    """The CNI, when known; detected otherwise."""
    namespace: str | None = None
    """Namespace to use; default ``cfcr-smoke-<random>``."""
    sleep: Callable[[float], None] = time.sleep
    """How to wait between polls (tests pass a no-op)."""


def _fetch(api: ClusterApi, ns: str, pod: str, url: str) -> tuple[bool, str]:
    result = api.exec(ns, pod, ["wget", "-q", "-O-", "-T", "5", url], timeout=15)
    return result.code == 0 and MARKER in result.output, result.describe()


def _retry(check: Callable[[], tuple[bool, str]], attempts: int, sleep: Callable[[float], None]) -> tuple[bool, str]:
    ok, seen = False, ""
    for i in range(attempts):
        ok, seen = check()
        if ok:
            break
        if i + 1 < attempts:
            sleep(2.0)
    return ok, seen


def run_smoke(api: ClusterApi, options: SmokeOptions | None = None) -> Report:
    """Run every check against ``api``; the namespace is deleted whatever happens."""
    opts = options or SmokeOptions()
    report = Report()
    nodes = api.list_nodes()
    not_ready = [n.name for n in nodes if not n.ready]
    if not nodes:
        report.add("nodes ready", "fail", "the cluster has no nodes")
        return report
    report.add("nodes ready", "fail" if not_ready else "pass",
               f"not Ready: {', '.join(not_ready)}" if not_ready else f"{len(nodes)} nodes Ready")
    ready = sorted((n for n in nodes if n.ready), key=lambda n: n.control_plane)  # workers first
    usable = [n.name for n in ready if n.schedulable] or [n.name for n in ready]
    if not usable:
        return report
    ns = opts.namespace or f"cfcr-smoke-{secrets.token_hex(3)}"
    api.create_namespace(ns, {"pod-security.kubernetes.io/enforce": "restricted", "app.kubernetes.io/managed-by": "cfcr"})
    try:
        _wait_default_service_account(api, ns, opts)
        _checks(api, ns, usable, opts, report)
    except Exception as exc:  # noqa: BLE001 - the report names it, cleanup still runs
        report.add("smoke run", "fail", f"{type(exc).__name__}: {exc}")
    finally:
        try:
            api.delete_namespace(ns)
            report.add("cleanup", "pass", f"namespace {ns} deleted")
        except Exception as exc:  # noqa: BLE001
            report.add("cleanup", "fail", f"namespace {ns} not deleted: {exc}")
    return report


def _wait_default_service_account(api: ClusterApi, ns: str, opts: SmokeOptions) -> None:
    """A namespace's ``default`` ServiceAccount comes from a controller a moment after the
    namespace; a pod created before it is refused, so wait for it (up to a minute)."""
    polls = SERVICE_ACCOUNT_WAIT
    for i in range(polls):
        if api.service_account_exists(ns, "default"):
            return
        if i + 1 < polls:
            opts.sleep(1.0)
    raise TimeoutError(f"namespace {ns} has no default ServiceAccount after {polls}s "
                       f"(is kube-controller-manager running?)")


def _checks(api: ClusterApi, ns: str, nodes: list[str], opts: SmokeOptions, report: Report) -> None:
    server_node = nodes[1] if len(nodes) > 1 else nodes[0]
    api.create(ns, pod_manifest("smoke-client", nodes[0], "client", client_command()))
    api.create(ns, pod_manifest("smoke-server", server_node, "server", server_command()))
    api.create(ns, service_manifest())
    client: PodInfo = api.wait_pod_running(ns, "smoke-client", opts.timeout)
    server: PodInfo = api.wait_pod_running(ns, "smoke-server", opts.timeout)
    attempts = max(1, int(opts.timeout // 10))

    report.add("pods running", "pass", f"{client.name} on {client.node}, {server.name} on {server.node}")

    def check(name: str, run: Callable[[], tuple[Status, str]]) -> None:
        """One check; an error of the cluster (an unreachable kubelet) fails this check only."""
        try:
            status, detail = run()
        except Exception as exc:  # noqa: BLE001 - reported, and the other checks still run
            status, detail = "fail", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
        report.add(name, status, detail)

    def run_exec() -> tuple[Status, str]:
        result = api.exec(ns, client.name, ["echo", "cfcr-exec"], timeout=15)
        ok = result.code == 0 and "cfcr-exec" in result.output
        return ("pass", "ran a command in a pod") if ok else ("fail", result.describe())

    def run_logs() -> tuple[Status, str]:
        logs = api.logs(ns, client.name)
        return ("pass", "read a pod's log") if LOG_LINE in logs else ("fail", f"log lacks {LOG_LINE!r}: {logs[:80]!r}")

    dns_name = f"kubernetes.default.svc.{opts.cluster_domain}"

    def run_dns() -> tuple[Status, str]:
        ok, seen = _retry(lambda: _dns(api, ns, client.name, dns_name), attempts, opts.sleep)
        return ("pass", f"resolved {dns_name}") if ok else ("fail", f"{dns_name}: {seen}")

    def run_pod_to_pod() -> tuple[Status, str]:
        if client.node == server.node:
            return "skip", "only one schedulable node"
        ok, seen = _retry(lambda: _fetch(api, ns, client.name, f"http://{server.ip}:{HTTP_PORT}/"), attempts, opts.sleep)
        return ("pass", f"{client.node} -> {server.node} ({server.ip})") if ok else ("fail", f"{server.ip}: {seen}")

    url = f"http://smoke-server.{ns}.svc.{opts.cluster_domain}/"

    def run_service() -> tuple[Status, str]:
        ok, seen = _retry(lambda: _fetch(api, ns, client.name, url), attempts, opts.sleep)
        return ("pass", f"reached {url}") if ok else ("fail", f"{url}: {seen}")

    check("exec", run_exec)
    check("logs", run_logs)
    check("dns", run_dns)
    check("pod-to-pod across nodes", run_pod_to_pod)
    check("service", run_service)

    cni = opts.cni or api.detect_cni()
    if cni not in POLICY_CNIS:
        why = "flannel does not enforce NetworkPolicy" if cni == "flannel" else f"CNI {cni or 'unknown'}: enforcement not expected"
        report.add("network policy", "skip", why)
        return
    server_url = f"http://{server.ip}:{HTTP_PORT}/"

    def run_policy() -> tuple[Status, str]:
        reachable, seen = _fetch(api, ns, client.name, server_url)
        if not reachable:
            # a blocked fetch proves nothing unless the same fetch worked before the policy
            return "fail", f"cannot check: the server is not reachable even without a policy ({seen})"
        api.create(ns, deny_ingress_policy())
        try:
            blocked, seen = _retry(lambda: (not _fetch(api, ns, client.name, server_url)[0], "still reachable"),
                                   attempts, opts.sleep)
        finally:
            api.delete(ns, "NetworkPolicy", "deny-server-ingress")
        return (("pass", f"{cni} blocked ingress denied by policy") if blocked
                else ("fail", f"{cni}: server {seen} under a deny-all policy"))

    check("network policy", run_policy)


def _dns(api: ClusterApi, ns: str, pod: str, name: str) -> tuple[bool, str]:
    result = api.exec(ns, pod, ["nslookup", name], timeout=15)
    return result.code == 0, result.describe()
