""":class:`~cfcr.smoke.api.ClusterApi` on the official ``kubernetes`` Python client."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from cfcr.smoke.api import ExecResult, NodeInfo, PodInfo

_CNI_DAEMONSETS = (("cilium", "cilium"), ("canal", "canal"), ("calico-node", "calico"),
                   ("kube-flannel-ds", "flannel"), ("flannel", "flannel"))


def exec_status(channel: str) -> tuple[int, str]:
    """``(exit code, error)`` from an exec stream's error channel (channel 3): a ``Status``
    that says Success (0), NonZeroExitCode (the code in its ``ExitCode`` cause), or why the
    command did not run at all (-1 and the message, e.g. the kubelet was unreachable)."""
    import yaml

    if not channel.strip():
        return -1, "the exec stream ended without a status"
    try:
        status = yaml.safe_load(channel)
    except yaml.YAMLError:
        status = None
    if not isinstance(status, dict):
        return -1, channel.strip()
    if status.get("status") == "Success":
        return 0, ""
    causes = (status.get("details") or {}).get("causes") or []
    if status.get("reason") == "NonZeroExitCode":
        for cause in causes:
            if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).isdigit():
                return int(cause["message"]), ""
    return -1, str(status.get("message") or channel.strip())


def api_error_text(exc: Exception) -> str:
    """What a failed API call says: the ``Status`` message of its body (``logs`` through an
    unreachable kubelet: "Get https://10.0.0.5:10250/...: connection refused"), not the
    client's "(500) Reason: Internal Server Error" and headers."""
    import json

    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    reason = str(getattr(exc, "reason", None) or type(exc).__name__)
    if not body and " -+-+- " in reason:
        # a refused websocket upgrade (exec): "Handshake status 500 Internal Server Error
        # -+-+- {headers} -+-+- b'{...Status...}'"
        first, *_, last = reason.split(" -+-+- ")
        reason, body = first.removeprefix("Handshake status ").strip(), last.strip()
        if body[:2] in ("b'", 'b"'):
            body = body[2:-1].encode().decode("unicode_escape")
        status = None
    message = ""
    if body and body not in ("None", "b''", 'b""'):
        try:
            message = str(json.loads(body).get("message") or "")
        except (ValueError, AttributeError):
            message = str(body)
    head = f"{status} {reason}" if status else reason
    return f"{head}: {message}" if message else head


F = TypeVar("F", bound=Callable[..., Any])


class ClusterError(RuntimeError):
    """A failed API call, with the API server's own message (:func:`api_error_text`)."""


class ApiUnreachable(ClusterError):
    """No connection to the API server at all (refused, timed out, no route, TLS failure)."""


class KubeconfigError(ValueError):
    """The kubeconfig file or context given cannot be used; the message names it."""


def connection_text(exc: BaseException) -> str:
    """Why a connection failed, in a few words: ``connection refused``, ``timed out``, ... from
    urllib3's nested ``MaxRetryError(NewConnectionError("...: [Errno 111] Connection refused"))``."""
    import re

    reason: BaseException | None = getattr(exc, "reason", None) or exc
    text = str(reason)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if errno:
        return errno.group(1).strip().rstrip(".").lower()
    if "timed out" in text.lower():
        return "timed out"
    if "ssl" in type(reason).__name__.lower() or "certificate" in text.lower():
        return "TLS: " + " ".join(text.split())[:200]
    return " ".join(text.split())[:200] or type(reason).__name__


def _explained(method: F) -> F:
    """Raise a failed API call as :class:`ClusterError` with the server's message."""
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            raise ClusterError(api_error_text(exc)) from None
        except HTTPError as exc:  # no answer at all: say so once, not urllib3's retries
            host = getattr(args[0], "host", "the API server") if args else "the API server"
            raise ApiUnreachable(f"cannot reach the API at {host} ({connection_text(exc)})") from None
    return call  # type: ignore[return-value]


def check_kubeconfig(path: str, context: str | None) -> None:
    """Raise :class:`KubeconfigError` naming the file when it is missing, not YAML, not a
    kubeconfig, or lacks ``context`` (the client's own errors are tracebacks or vague)."""
    from pathlib import Path

    import yaml

    file = Path(path)
    if not file.is_file():
        raise KubeconfigError(f"--kubeconfig {path}: {'a directory' if file.is_dir() else 'no such file'}")
    try:
        document = yaml.safe_load(file.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise KubeconfigError(f"--kubeconfig {path}: {where}not valid YAML: {exc.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        raise KubeconfigError(f"--kubeconfig {path}: cannot read it: {' '.join(str(exc).split())}") from None
    if not isinstance(document, dict) or not isinstance(document.get("contexts"), list):
        raise KubeconfigError(f"--kubeconfig {path}: not a kubeconfig (no `contexts:` list)")
    names = [str(c.get("name")) for c in document["contexts"] if isinstance(c, dict)]
    wanted = context or document.get("current-context")
    if not wanted:
        raise KubeconfigError(f"--kubeconfig {path}: no current-context; pass --context (contexts: {', '.join(names)})")
    if wanted not in names:
        flag = "--context" if context else "current-context"
        raise KubeconfigError(f"{flag} {wanted}: not in {path}; contexts there: {', '.join(names) or 'none'}")


class KubeApi:
    """The smoke test's cluster operations against a real API server."""

    def __init__(self, kubeconfig: str, context: str | None = None) -> None:
        from kubernetes import client, config

        check_kubeconfig(kubeconfig, context)
        try:
            api_client = config.new_client_from_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
        except config.ConfigException as exc:
            raise KubeconfigError(f"--kubeconfig {kubeconfig}: {' '.join(str(exc).split())}") from None
        self.host: str = str(api_client.configuration.host)
        if not api_client.configuration.verify_ssl:
            # the kubeconfig says insecure-skip-tls-verify: the operator's choice, which kubectl
            # honours without a warning per request; urllib3 would print one for every call
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._core: Any = client.CoreV1Api(api_client)
        self._apps: Any = client.AppsV1Api(api_client)
        self._net: Any = client.NetworkingV1Api(api_client)

    @_explained
    def list_nodes(self) -> list[NodeInfo]:
        out = []
        for node in self._core.list_node().items:
            ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
            control_plane = "node-role.kubernetes.io/control-plane" in (node.metadata.labels or {})
            out.append(NodeInfo(node.metadata.name, ready, not bool(node.spec.unschedulable), control_plane))
        return out

    @_explained
    def detect_cni(self) -> str | None:
        names = {ds.metadata.name for ds in self._apps.list_daemon_set_for_all_namespaces().items}
        for name, cni in _CNI_DAEMONSETS:
            if name in names:
                return cni
        return None

    @_explained
    def create_namespace(self, name: str, labels: dict[str, str]) -> None:
        self._core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})

    def service_account_exists(self, namespace: str, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self._core.read_namespaced_service_account(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise ClusterError(api_error_text(exc)) from None
        return True

    @_explained
    def delete_namespace(self, name: str) -> None:
        self._core.delete_namespace(name, grace_period_seconds=0)

    @_explained
    def create(self, namespace: str, manifest: dict[str, Any]) -> None:
        kind = manifest["kind"]
        if kind == "Pod":
            self._core.create_namespaced_pod(namespace, manifest)
        elif kind == "Service":
            self._core.create_namespaced_service(namespace, manifest)
        elif kind == "NetworkPolicy":
            self._net.create_namespaced_network_policy(namespace, manifest)
        else:
            raise ValueError(f"the smoke test does not create {kind}")

    @_explained
    def delete(self, namespace: str, kind: str, name: str) -> None:
        if kind == "NetworkPolicy":
            self._net.delete_namespaced_network_policy(name, namespace)
        elif kind == "Pod":
            self._core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        else:
            raise ValueError(f"the smoke test does not delete {kind}")

    @_explained
    def wait_pod_running(self, namespace: str, name: str, timeout: float) -> PodInfo:
        deadline = time.monotonic() + timeout
        seen = "not created"
        while time.monotonic() < deadline:
            pod = self._core.read_namespaced_pod(name, namespace)
            waiting = [s.state.waiting.reason for s in pod.status.container_statuses or [] if s.state and s.state.waiting]
            seen = f"phase {pod.status.phase}" + (f" ({', '.join(waiting)})" if waiting else "")
            if pod.status.phase == "Running" and pod.status.pod_ip:
                return PodInfo(name, pod.spec.node_name, pod.status.pod_ip)
            time.sleep(2)
        raise TimeoutError(f"pod {namespace}/{name} not running after {timeout:.0f}s: {seen}")

    def exec(self, namespace: str, pod: str, command: list[str], timeout: float) -> ExecResult:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream import stream

        try:
            resp = stream(self._core.connect_get_namespaced_pod_exec, pod, namespace, command=command,
                          stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
        except ApiException as exc:  # the API server refused the exec before it started
            return ExecResult(-1, "", api_error_text(exc))
        from kubernetes.stream.ws_client import ERROR_CHANNEL

        resp.run_forever(timeout=timeout)
        unfinished = resp.is_open()
        output = str(resp.read_stdout() or "") + str(resp.read_stderr() or "")
        status = str(resp.read_channel(ERROR_CHANNEL) or "")
        resp.close()
        if unfinished and not status.strip():
            return ExecResult(-1, output, f"the command did not finish within {timeout:.0f}s")
        code, error = exec_status(status)
        return ExecResult(code, output, error)

    @_explained
    def logs(self, namespace: str, pod: str) -> str:
        return str(self._core.read_namespaced_pod_log(pod, namespace))
