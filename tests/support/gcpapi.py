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
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

PROJECT = "cfcr-test-project"
PROJECT_NUMBER = "123456789012"
INSTANCE_ID = "4520851307012345678"
"""The stand-in VM's numeric instance id (``instance/id``)."""
ZONE = "europe-west4-b"
INSTANCE = "c1-cp-0"


@dataclass
class Request:
    """One request as the stand-in saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


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

    def __post_init__(self) -> None:
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def error(self, status: int, reason: str, message: str) -> None:
                self.reply(status, {"error": {"code": status, "message": message, "status": reason}})

            def caller(self) -> str | None:
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer "):
                    return None
                return api.tokens.get(auth.removeprefix("Bearer "))

            def record(self, body: bytes = b"") -> urllib.parse.SplitResult:
                api.requests.append(Request(self.command, self.path, dict(self.headers.items()), body))
                return urllib.parse.urlsplit(self.path)

            def fault(self) -> bool:
                if api.fail_next:
                    self.error(api.fail_next.pop(0), "UNAVAILABLE", "injected fault")
                    return True
                return False

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = self.record()
                if url.path.startswith("/computeMetadata/v1/"):
                    self.metadata(url.path.removeprefix("/computeMetadata/v1/"))
                elif url.path.startswith("/v1/projects/") and url.path.endswith("/versions/latest:access"):
                    if not self.fault():
                        self.access(url.path.removeprefix("/v1/").removesuffix("/versions/latest:access"))
                else:
                    self.error(404, "NOT_FOUND", f"no such endpoint {url.path}")

            def metadata(self, path: str) -> None:
                if self.headers.get("Metadata-Flavor") != "Google" or "X-Forwarded-For" in self.headers:
                    self.reply(403, "Missing required header: Metadata-Flavor", "text/html")
                    return
                answers = {"project/project-id": PROJECT, "instance/zone": f"projects/{PROJECT_NUMBER}/zones/{ZONE}",
                           "instance/name": INSTANCE, "instance/id": INSTANCE_ID}
                if path == "instance/service-accounts/default/token" and api.service_account:
                    token = "ya29." + secrets.token_urlsafe(32)
                    api.tokens[token] = api.service_account
                    self.reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
                elif path in answers:
                    self.reply(200, answers[path], "application/text")
                else:
                    self.reply(404, "Not Found", "text/html")

            def access(self, name: str) -> None:
                who = self.caller()
                if who is None:
                    self.error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
                    return
                parts = name.split("/")
                if len(parts) != 4 or parts[0] != "projects" or parts[2] != "secrets":
                    self.error(400, "INVALID_ARGUMENT", f"bad secret name {name}")
                    return
                secret = parts[3]
                if parts[1] != PROJECT or secret not in api.secrets:
                    self.error(404, "NOT_FOUND", f"Secret [{name}] not found or has no versions.")
                    return
                if who not in api.accessors.get(secret, set()):
                    self.error(403, "PERMISSION_DENIED",
                               f"Permission 'secretmanager.versions.access' denied for resource '{name}/versions/latest'")
                    return
                self.reply(200, {"name": f"projects/{PROJECT_NUMBER}/secrets/{secret}/versions/1",
                                 "payload": {"data": base64.b64encode(api.secrets[secret]).decode()}})

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                url = self.record(body)
                prefix = "/upload/storage/v1/b/"
                if not (url.path.startswith(prefix) and url.path.endswith("/o")):
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

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

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
