"""A stand-in for the Google endpoints a GCP node calls, on loopback: the metadata server, Secret
Manager's ``versions/latest:access`` and Cloud Storage's JSON API media upload. Google's cloud
cannot run here, and no emulator covers these three; this one follows their documented wire
format and refuses what they refuse:

* metadata (``/computeMetadata/v1/...``): only with ``Metadata-Flavor: Google`` and without
  ``X-Forwarded-For`` (403 otherwise, as GCE's does); ``project/project-id``, ``instance/zone``
  (``projects/<number>/zones/<zone>``), ``instance/name`` and
  ``instance/service-accounts/default/token`` (``{"access_token", "expires_in", "token_type"}``)
  for the VM's service account, 404 when it has none;
* Secret Manager (``GET /v1/projects/<p>/secrets/<s>/versions/latest:access``): a bearer token
  the metadata server issued (401 ``UNAUTHENTICATED`` otherwise), whose service account holds
  ``secretAccessor`` on that secret (403 ``PERMISSION_DENIED``); 404 ``NOT_FOUND`` for an unknown
  secret; the answer ``{"name", "payload": {"data": <base64>}}``;
* Cloud Storage (``POST /upload/storage/v1/b/<bucket>/o?uploadType=media&name=<key>``): the
  token, ``objectCreator`` on the bucket for that key's prefix (403), no overwrite (the creator
  role cannot delete: 403), ``x-goog-hash: md5=<base64>`` checked against the body received
  (400 when they differ); the answer the object's resource (``name``, ``bucket``, ``size`` as a
  string, ``md5Hash``, ``generation``).

Faults for tests: ``fail_next`` (status codes answered before the real answer), ``corrupt_next``
(flip a byte of the next upload body as it arrives, as a bad link would), ``skip_hash_check``
(keep a body without checking ``x-goog-hash``, so only the client's own check can catch it).
Every request is recorded (:class:`Request`).

For the control-plane harness (tests/support/controlplane.py) it also runs as a process, one
per cluster: ``python -m tests.support.gcpapi STATE.json LOG.jsonl`` in the metadata host's
network namespace answers the metadata server on ``169.254.169.254:80`` and Secret Manager and
Cloud Storage on ``169.254.169.254:8080`` (each listener serves only its own paths). Every VM
gets its own metadata, told apart by its source address as GCE tells VMs apart (``instances``:
name, zone and service account of the VM at that address); the project, the VMs, the secrets and
their accessors are read again from STATE.json on each request (the harness writes it as VMs
launch), and every Secret Manager decision is appended to LOG.jsonl (:class:`Decision`).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import sys
import threading
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PROJECT = "cfcr-test-project"
PROJECT_NUMBER = "123456789012"
INSTANCE_ID = "4520851307012345678"
"""The stand-in VM's numeric instance id (``instance/id``)."""
ZONE = "europe-west4-b"
INSTANCE = "c1-cp-0"
METADATA_ADDRESS = ("169.254.169.254", 80)
"""Where the harness's metadata server listens (GCE's own address and port)."""
API_ADDRESS = ("169.254.169.254", 8080)
"""Where the harness's Secret Manager and Cloud Storage listen (``node_env``'s endpoints)."""
METADATA = "metadata"
APIS = "apis"


@dataclass
class Request:
    """One request as the stand-in saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client: str = ""
    """The caller's address."""


@dataclass(frozen=True)
class Instance:
    """A VM as its metadata server describes it."""

    name: str
    zone: str
    service_account: str | None
    """Its service account's e-mail (None: the VM has none)."""
    instance_id: str | None = None
    """Its numeric instance id (None: one derived from its name)."""

    @property
    def id(self) -> str:
        """``instance/id``: the given one, or a stable number from the name."""
        return self.instance_id or str(int(hashlib.sha256(self.name.encode()).hexdigest()[:15], 16))


@dataclass(frozen=True)
class Decision:
    """One Secret Manager read, as the stand-in decided it."""

    client: str
    """The caller's address."""
    service_account: str | None
    """Whose token it carried (None: no token the metadata server issued)."""
    secret: str
    """The secret id asked for."""
    status: int
    """The HTTP status answered (200, 401, 403, 404)."""


class GoogleHandler(http.server.BaseHTTPRequestHandler):
    """What every stand-in of a Google API answers with: JSON (or text) replies, Google's error
    body, and the caller's service account by the bearer token the metadata server issued."""

    protocol_version = "HTTP/1.1"
    tokens: dict[str, str] = {}
    """Token -> service account e-mail (a subclass names its stand-in's)."""

    def reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status: int, reason: str, message: str) -> None:
        self.reply(status, {"error": {"code": status, "message": message, "status": reason}})

    def caller(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return self.tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None


@dataclass
class GcpApi:
    """The stand-in (module docstring). Use as a context manager; ``url`` is its root."""

    service_account: str | None = None
    """The VM's service account e-mail (None: the VM has none)."""
    secrets: dict[str, bytes] = field(default_factory=dict)
    """Secret id (of :data:`PROJECT`) -> the latest version's bytes."""
    accessors: dict[str, set[str]] = field(default_factory=dict)
    """Secret id -> service accounts with ``roles/secretmanager.secretAccessor`` on it."""
    creators: dict[str, dict[str, str]] = field(default_factory=dict)
    """Bucket -> {service account: object-name prefix it may create under}."""
    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    """Access token -> the service account it was issued to."""
    fail_next: list[int] = field(default_factory=list)
    corrupt_next: bool = False
    skip_hash_check: bool = False
    project: str = PROJECT
    project_number: str = PROJECT_NUMBER
    instances: dict[str, Instance] = field(default_factory=dict)
    """Caller address -> the VM there. Empty: every caller is the one VM of :data:`INSTANCE`,
    :data:`ZONE` and :attr:`service_account`; otherwise an unknown caller gets 404s."""
    decisions: list[Decision] = field(default_factory=list)
    listen: tuple[str, int] = ("127.0.0.1", 0)
    state_file: Path | None = None
    """When set, :meth:`load_state` reads project, instances, secrets and accessors from it
    before each request (the module docstring's process mode)."""
    decision_log: Path | None = None
    """When set, every :class:`Decision` is appended to it as a JSON line."""

    def load_state(self) -> None:
        """Project, instances, secrets and accessors from :attr:`state_file` (the harness's
        view of the cloud: ``{"project", "project_number", "instances": {address: {"name",
        "zone", "service_account"}}, "secrets": {id: text}, "accessors": {id: [e-mail]}}``)."""
        if self.state_file is None:
            return
        state = json.loads(self.state_file.read_text())
        self.project, self.project_number = str(state["project"]), str(state["project_number"])
        self.instances = {a: Instance(**i) for a, i in state["instances"].items()}
        self.secrets = {k: v.encode() for k, v in state["secrets"].items()}
        self.accessors = {k: set(v) for k, v in state["accessors"].items()}

    def decide(self, decision: Decision) -> None:
        self.decisions.append(decision)
        if self.decision_log is not None:
            with self.decision_log.open("a") as handle:
                handle.write(json.dumps(asdict(decision)) + "\n")

    def instance(self, client: str) -> Instance | None:
        """The VM calling from ``client``."""
        if not self.instances:
            return Instance(INSTANCE, ZONE, self.service_account, INSTANCE_ID)
        return self.instances.get(client)

    def __post_init__(self) -> None:
        api = self

        class Handler(GoogleHandler):
            tokens = api.tokens

            def record(self, body: bytes = b"") -> urllib.parse.SplitResult:
                api.load_state()
                api.requests.append(Request(self.command, self.path, dict(self.headers.items()), body,
                                            self.client_address[0]))
                return urllib.parse.urlsplit(self.path)

            def serves(self, kind: str) -> bool:
                return kind in getattr(self.server, "cfcr_serves", (METADATA, APIS))

            def fault(self) -> bool:
                if api.fail_next:
                    self.error(api.fail_next.pop(0), "UNAVAILABLE", "injected fault")
                    return True
                return False

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = self.record()
                if url.path.startswith("/computeMetadata/v1/") and self.serves(METADATA):
                    self.metadata(url.path.removeprefix("/computeMetadata/v1/"))
                elif (url.path.startswith("/v1/projects/") and url.path.endswith("/versions/latest:access")
                      and self.serves(APIS)):
                    if not self.fault():
                        self.access(url.path.removeprefix("/v1/").removesuffix("/versions/latest:access"))
                else:
                    self.error(404, "NOT_FOUND", f"no such endpoint {url.path}")

            def metadata(self, path: str) -> None:
                if self.headers.get("Metadata-Flavor") != "Google" or "X-Forwarded-For" in self.headers:
                    self.reply(403, "Missing required header: Metadata-Flavor", "text/html")
                    return
                vm = api.instance(self.client_address[0])
                if vm is None:
                    self.reply(404, "Not Found", "text/html")
                    return
                answers = {"project/project-id": api.project,
                           "instance/zone": f"projects/{api.project_number}/zones/{vm.zone}", "instance/name": vm.name,
                           "instance/id": vm.id}
                if path == "instance/service-accounts/default/token" and vm.service_account:
                    token = "ya29." + secrets.token_urlsafe(32)
                    api.tokens[token] = vm.service_account
                    self.reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
                elif path in answers:
                    self.reply(200, answers[path], "application/text")
                else:
                    self.reply(404, "Not Found", "text/html")

            def access(self, name: str) -> None:
                who = self.caller()
                parts = name.split("/")
                secret = parts[3] if len(parts) == 4 else name

                def answer(status: int, *error: str) -> None:
                    api.decide(Decision(self.client_address[0], who, secret, status))
                    if error:
                        self.error(status, *error)

                if who is None:
                    answer(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
                    return
                if len(parts) != 4 or parts[0] != "projects" or parts[2] != "secrets":
                    answer(400, "INVALID_ARGUMENT", f"bad secret name {name}")
                    return
                if parts[1] != api.project or secret not in api.secrets:
                    answer(404, "NOT_FOUND", f"Secret [{name}] not found or has no versions.")
                    return
                if who not in api.accessors.get(secret, set()):
                    answer(403, "PERMISSION_DENIED",
                           f"Permission 'secretmanager.versions.access' denied for resource '{name}/versions/latest'")
                    return
                answer(200)
                self.reply(200, {"name": f"projects/{api.project_number}/secrets/{secret}/versions/1",
                                 "payload": {"data": base64.b64encode(api.secrets[secret]).decode()}})

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                url = self.record(body)
                prefix = "/upload/storage/v1/b/"
                if not (url.path.startswith(prefix) and url.path.endswith("/o") and self.serves(APIS)):
                    self.error(404, "NOT_FOUND", f"no such endpoint {url.path}")
                    return
                if self.fault():
                    return
                bucket = urllib.parse.unquote(url.path.removeprefix(prefix).removesuffix("/o"))
                query = urllib.parse.parse_qs(url.query)
                if query.get("uploadType") != ["media"] or len(query.get("name", [])) != 1:
                    self.error(400, "invalid", "uploadType=media and one name are required")
                    return
                key = query["name"][0]
                who = self.caller()
                if who is None:
                    self.error(401, "UNAUTHENTICATED", "Invalid Credentials")
                    return
                allowed = api.creators.get(bucket, {}).get(who)
                if allowed is None or not key.startswith(allowed):
                    self.error(403, "forbidden", f"{who} does not have storage.objects.create access to "
                                                 f"the Google Cloud Storage object. Permission 'storage.objects.create' "
                                                 f"denied on resource (or it may not exist).")
                    return
                if (bucket, key) in api.objects:
                    self.error(403, "forbidden", f"{who} does not have storage.objects.delete access to "
                                                 f"the Google Cloud Storage object.")
                    return
                if api.corrupt_next and body:
                    api.corrupt_next = False
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
                claimed = dict(part.strip().split("=", 1) for part in self.headers.get("x-goog-hash", "").split(",")
                               if "=" in part)
                if not api.skip_hash_check and "md5" in claimed and claimed["md5"] != md5:
                    self.error(400, "invalid", f"Provided MD5 hash \"{claimed['md5']}\" doesn't match calculated "
                                               f"MD5 hash \"{md5}\".")
                    return
                api.objects[(bucket, key)] = body
                self.reply(200, {"kind": "storage#object", "bucket": bucket, "name": key, "size": str(len(body)),
                                 "md5Hash": md5, "generation": "1767225600000000",
                                 "contentType": self.headers.get("Content-Type", "")})

            def log_message(self, *args: Any) -> None:
                pass

        self._handler = Handler
        self._server = http.server.ThreadingHTTPServer(self.listen, Handler)
        self.url = f"http://{self.listen[0]}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def listener(self, address: tuple[str, int], serves: tuple[str, ...]) -> http.server.ThreadingHTTPServer:
        """Another HTTP server of this stand-in on ``address`` (not yet serving), answering only
        ``serves`` (:data:`METADATA`, :data:`APIS`)."""
        server = http.server.ThreadingHTTPServer(address, self._handler)
        server.cfcr_serves = serves  # type: ignore[attr-defined]
        return server

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>`` (``GCE_METADATA_HOST`` takes a host, not a URL)."""
        return self.url.removeprefix("http://")

    def node_env(self) -> dict[str, str]:
        """The variables that point a GCP node hook here."""
        return {"GCE_METADATA_HOST": self.host, "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": self.url + "/",
                "STORAGE_EMULATOR_HOST": self.url}

    def __enter__(self) -> GcpApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def harness_node_env() -> dict[str, str]:
    """The variables that point a harness node's GCP hook at :func:`main`'s listeners (the
    metadata server stays at its own address, the hook's default)."""
    api = f"http://{API_ADDRESS[0]}:{API_ADDRESS[1]}"
    return {"CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": api + "/", "STORAGE_EMULATOR_HOST": api}


def main() -> None:
    """The harness's process mode (module docstring): STATE.json, LOG.jsonl."""
    api = GcpApi(state_file=Path(sys.argv[1]), decision_log=Path(sys.argv[2]), listen=API_ADDRESS)
    api._server.cfcr_serves = (APIS,)  # type: ignore[attr-defined]
    metadata = api.listener(METADATA_ADDRESS, (METADATA,))
    threading.Thread(target=metadata.serve_forever, daemon=True).start()
    api._server.serve_forever()


if __name__ == "__main__":
    main()
