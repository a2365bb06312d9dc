"""The readiness gate: no addon is applied before the API server answers.

``ReadinessGate`` is a ``pulumi.dynamic.Resource``. Its provider's create (and update, when
the endpoint, the credential or the control-plane machines change) polls ``<api_server_url>/readyz`` through the load
balancer with the admin client certificate, verifying the server against the cluster CA,
until it answers 200 **and** a SelfSubjectAccessReview says the admin credential may do
everything (kubeadm binds ``kubeadm:cluster-admins`` during init, after the API answers), or
the timeout (default 15 minutes) passes. Then it fails with an error naming the endpoint and
the last status or error seen. Every addon depends on it. The gate is created only once the
control-plane machines exist and the control plane has rolled (``ClusterAddonsArgs.gate_after``:
the machines and the last member gate of :mod:`cfcr.bootstrap.rollout`), so its clock measures
the boot, not the time Pulumi spends creating the machines. It keeps the machines' ids
(``machines``): when an update replaces a member (a channel bump, a new image), the gate waits
again after the last member gate, so no addon is applied while the API server of a one-member
control plane is away.

The polling itself (:func:`wait_until_ready`) is plain Python, tested against a real local
HTTPS server that checks client certificates, and against the real control plane of a render.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import yaml
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

DEFAULT_TIMEOUT_SECONDS = 15 * 60
DEFAULT_INTERVAL_SECONDS = 5.0


class ApiNotReadyError(RuntimeError):
    """The API server did not answer ready before the timeout."""


@dataclass(frozen=True)
class ClientCredentials:
    """PEM material to reach the API server as the admin."""

    ca_pem: str
    """The cluster CA bundle that signs the API server's certificate."""
    cert_pem: str
    """The client certificate."""
    key_pem: str
    """The client key."""


def _pem(entry: dict[str, Any], data_key: str, file_key: str) -> str:
    if entry.get(data_key):
        return base64.b64decode(entry[data_key]).decode()
    if entry.get(file_key):
        with open(entry[file_key], encoding="utf-8") as handle:
            return handle.read()
    raise ValueError(f"kubeconfig has neither {data_key} nor {file_key}")


def credentials_from_kubeconfig(text: str) -> tuple[str, ClientCredentials]:
    """``(server URL, credentials)`` of the kubeconfig's current context."""
    doc = yaml.safe_load(text)
    contexts = {c["name"]: c["context"] for c in doc.get("contexts", [])}
    current = doc.get("current-context") or next(iter(contexts))
    context = contexts[current]
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in doc["users"] if u["name"] == context["user"])
    creds = ClientCredentials(
        ca_pem=_pem(cluster, "certificate-authority-data", "certificate-authority"),
        cert_pem=_pem(user, "client-certificate-data", "client-certificate"),
        key_pem=_pem(user, "client-key-data", "client-key"),
    )
    return str(cluster["server"]), creds


def ssl_context(creds: ClientCredentials) -> ssl.SSLContext:
    """A TLS client context that trusts only the cluster CA and presents the client cert."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=creds.ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = os.path.join(tmp, "client.crt"), os.path.join(tmp, "client.key")
        with open(cert, "w", encoding="utf-8") as handle:
            handle.write(creds.cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(creds.key_pem)
        context.load_cert_chain(cert, key)
    return context


def probe(url: str, context: ssl.SSLContext, timeout: float = 10.0) -> tuple[bool, str]:
    """One GET of ``url``: ``(ready, what was seen)``."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:  # noqa: S310 - https only
            status = int(response.status)
            body = response.read(200).decode(errors="replace").strip()
            return status == 200, f"HTTP {status} {body}".strip()
    except urllib.error.HTTPError as exc:
        body = exc.read(200).decode(errors="replace").strip() if exc.fp else ""
        return False, f"HTTP {exc.code} {body}".strip()
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{type(reason).__name__}: {reason}"


def readyz_url(api_server_url: str) -> str:
    return api_server_url.rstrip("/") + "/readyz"


ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def authorized(api_server_url: str, context: ssl.SSLContext, timeout: float = 10.0) -> tuple[bool, str]:
    """Whether the credential may do everything (a SelfSubjectAccessReview of ``*`` on ``*``):
    ``(allowed, what was seen)``. The admin kubeconfig is cluster-admin only once kubeadm has
    bound ``kubeadm:cluster-admins``, which a ready ``/readyz`` does not promise."""
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"verb": "*", "group": "*", "resource": "*"}}}
    request = urllib.request.Request(api_server_url.rstrip("/") + ACCESS_REVIEW_PATH, method="POST",
                                     data=json.dumps(review).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:  # noqa: S310 - https only
            status = json.loads(response.read()).get("status", {})
    except urllib.error.HTTPError as exc:
        return False, f"access review: HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ssl.SSLError, ValueError) as exc:
        return False, f"access review: {type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    if status.get("allowed"):
        return True, "the admin credential is cluster-admin"
    return False, ("ready, but the admin credential is not cluster-admin yet (kubeadm binds "
                   f"kubeadm:cluster-admins during init): {status.get('reason') or 'denied'}")


UNRESOLVED = ("Name or service not known", "nodename nor servname", "Temporary failure in name resolution",
              "No address associated with hostname")


def _hint(seen: str) -> str:
    """What to do when the gate never reached the API because its name does not resolve here."""
    if any(text in seen for text in UNRESOLVED):
        return (". The name does not resolve where `pulumi up` runs: an internal API "
                "(cfcr:networking.apiPublic false) resolves only inside the cluster's network, so run "
                "pulumi from there (a bastion, a VPN, a CI runner in the VPC), or make the API public "
                "for the addresses in cfcr:networking.apiAllowedCidrs")
    return ""


def wait_until_ready(
    api_server_url: str,
    creds: ClientCredentials,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Poll ``/readyz`` until it answers 200 and the credential is cluster-admin (the addons
    apply with it); return what was seen.

    Raises :class:`ApiNotReadyError` naming the endpoint and the last thing seen.
    """
    if not api_server_url.startswith("https://"):
        raise ValueError(f"the API server URL must be https://, got {api_server_url!r}")
    url = readyz_url(api_server_url)
    context = ssl_context(creds)
    deadline = clock() + timeout_seconds
    attempts = 0
    while True:
        attempts += 1
        ready, seen = probe(url, context, timeout=min(10.0, max(1.0, timeout_seconds)))
        if ready:
            allowed, why = authorized(api_server_url, context, timeout=min(10.0, max(1.0, timeout_seconds)))
            if allowed:
                return seen
            seen = why
        if clock() >= deadline:
            raise ApiNotReadyError(
                f"the Kubernetes API at {url} was not ready after {timeout_seconds:.0f}s "
                f"({attempts} attempts); last seen: {seen}{_hint(seen)}"
            )
        sleep(interval_seconds)


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class ReadinessGateProvider(ResourceProvider):
    """Dynamic provider: create/update wait for the API; nothing to delete."""

    def _wait(self, props: dict[str, Any]) -> dict[str, Any]:
        url = str(props["url"])
        _, creds = credentials_from_kubeconfig(str(props["kubeconfig"]))
        seen = wait_until_ready(url, creds, float(props.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)))
        return {"url": url, "credential": _fingerprint(str(props["kubeconfig"])),
                "machines": list(props.get("machines") or []), "lastSeen": seen}

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"readyz-{_fingerprint(str(props['url']))[:12]}", outs=self._wait(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = (olds.get("url") != news.get("url")
                   or olds.get("credential") != _fingerprint(str(news.get("kubeconfig", "")))
                   or list(olds.get("machines") or []) != list(news.get("machines") or []))
        return DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._wait(news))


class ReadinessGate(Resource):
    """Waits (on create, and when the endpoint, the credential or the machines change) until
    the API server is ready."""

    url: pulumi.Output[str]
    last_seen: pulumi.Output[str]

    def __init__(self, name: str, api_server_url: pulumi.Input[str], kubeconfig: pulumi.Input[str],
                 timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
                 machines: pulumi.Input[Sequence[pulumi.Input[str]]] = (),
                 opts: pulumi.ResourceOptions | None = None) -> None:
        """``machines``: the ids of the control-plane machines; a change (a member replaced)
        makes the gate wait again."""
        super().__init__(
            ReadinessGateProvider(),
            name,
            {
                "url": api_server_url,
                "kubeconfig": pulumi.Output.secret(kubeconfig),
                "timeoutSeconds": timeout_seconds,
                "machines": machines,
                "lastSeen": None,
            },
            opts,
        )
