"""A stand-in for the Google endpoints the control plane's join access calls (cfcr/gcp/node_hook.py
``store_command`` and ``candidate_command``), on loopback, in front of :class:`~tests.support.gcpapi.GcpApi`
(whose metadata server issues the tokens, and whose Secret Manager answers ``:access``; this one
forwards every request it does not serve there, so a secret read sees the versions added here).
It follows the documented wire format and refuses what Google refuses:

* Secret Manager, with the caller's bearer token (401) and its roles on the secret (403,
  ``PERMISSION_DENIED`` naming the permission), by role as IAM defines them
  (:data:`ROLE_PERMISSIONS`):
  ``POST /v1/projects/<p>/secrets/<s>:addVersion`` (``secretmanager.versions.add``) with
  ``{"payload": {"data": <base64>, "dataCrc32c": <int64>}}``; a checksum that is not the data's
  CRC32C is refused (400 ``INVALID_ARGUMENT``); the new version is ENABLED and ``latest``;
  ``GET /v1/projects/<p>/secrets/<s>/versions`` (``secretmanager.versions.list``; ``filter``
  ``state:ENABLED`` or none, ``pageSize``/``pageToken``); ``POST .../versions/<n>:destroy``
  (``secretmanager.versions.destroy``; a destroyed version cannot be destroyed again: 400
  ``FAILED_PRECONDITION``). A secret of :attr:`GcpApi.secrets` starts with version 1 (what
  Pulumi created with it).
* Compute Engine ``GET /compute/v1/projects/<p>/aggregated/instances`` (``compute.instances.list``
  on the project, 403 otherwise), ``filter`` only of the form ``name = "<name>"`` (400 for any
  other), ``maxResults``/``pageToken``; the answer groups instances by ``zones/<zone>``, each zone
  without a match carrying the ``NO_RESULTS_ON_PAGE`` warning, as Compute Engine's does.

``page_size`` forces small pages on both list calls, so a client must follow ``nextPageToken``.
Every request is recorded in :attr:`GcpJoinApi.requests`.
"""

from __future__ import annotations

import base64
import binascii
import http.server
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.support.gcpapi import GoogleHandler, PROJECT, PROJECT_NUMBER, GcpApi, Request

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "roles/secretmanager.secretAccessor": frozenset({"secretmanager.versions.access"}),
    "roles/secretmanager.secretVersionAdder": frozenset({"secretmanager.versions.add"}),
    "roles/secretmanager.secretVersionManager": frozenset({
        "secretmanager.versions.add", "secretmanager.versions.destroy", "secretmanager.versions.disable",
        "secretmanager.versions.enable", "secretmanager.versions.get", "secretmanager.versions.list"}),
}
"""The Secret Manager roles the tests grant, by their permissions (IAM's "Secret Manager roles
and permissions" page)."""
ZONES = ("europe-west4-a", "europe-west4-b", "europe-west4-c")


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, RFC 3720 appendix B.4), table-driven."""
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


@dataclass
class Version:
    """One secret version."""

    number: int
    state: str
    data: bytes


@dataclass
class Instance:
    """One Compute Engine instance as ``aggregatedList`` shows it."""

    name: str
    zone: str
    status: str
    labels: dict[str, str]
    created: str = "2026-11-30T01:30:00.000-08:00"
    """``creationTimestamp`` (RFC 3339, in the Pacific offset Compute Engine answers with)."""


@dataclass
class GcpJoinApi:
    """The stand-in (module docstring), in front of ``api``. Use as a context manager."""

    api: GcpApi
    grants: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    """Secret id -> {service account: roles on that secret} (beyond ``api.accessors``)."""
    compute_listers: set[str] = field(default_factory=set)
    """Service accounts whose project role holds ``compute.instances.list``."""
    instances: list[Instance] = field(default_factory=list)
    versions: dict[str, list[Version]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    page_size: int | None = None

    def __post_init__(self) -> None:
        join = self

        class Handler(GoogleHandler):
            tokens = join.api.tokens

            def allowed(self, who: str, secret: str, permission: str, resource: str) -> bool:
                roles = join.grants.get(secret, {}).get(who, set())
                if any(permission in ROLE_PERMISSIONS[r] for r in roles):
                    return True
                self.error(403, "PERMISSION_DENIED", f"Permission '{permission}' denied for resource '{resource}' "
                                                     f"(or it may not exist).")
                return False

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.route(b"")

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.route(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

            def route(self, body: bytes) -> None:
                join.requests.append(Request(self.command, self.path, dict(self.headers.items()), body))
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
                secret = re.fullmatch(r"/v1/projects/([^/]+)/secrets/([^/:]+)(:addVersion|/versions|/versions/(\d+):destroy)",
                                      url.path)
                if url.path == f"/compute/v1/projects/{PROJECT}/aggregated/instances" and self.command == "GET":
                    self.instances(query)
                elif secret is not None:
                    who = self.caller()
                    if who is None:
                        self.error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
                        return
                    project, sid, action, number = secret.groups()
                    name = f"projects/{project}/secrets/{sid}"
                    if project != PROJECT or sid not in join.api.secrets:
                        self.error(404, "NOT_FOUND", f"Secret [{name}] not found.")
                    elif action == ":addVersion" and self.command == "POST":
                        if self.allowed(who, sid, "secretmanager.versions.add", name):
                            self.add_version(sid, body)
                    elif action == "/versions" and self.command == "GET":
                        if self.allowed(who, sid, "secretmanager.versions.list", name):
                            self.list_versions(sid, query)
                    elif number is not None and self.command == "POST":
                        if self.allowed(who, sid, "secretmanager.versions.destroy", f"{name}/versions/{number}"):
                            self.destroy(sid, int(number))
                    else:
                        self.error(404, "NOT_FOUND", f"no such endpoint {self.command} {url.path}")
                else:
                    self.forward(body)

            def forward(self, body: bytes) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(join.api.url + self.path, data=body or None, headers=headers,
                                                 method=self.command)
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        self.reply(answer.status, answer.read())
                except urllib.error.HTTPError as failed:
                    self.reply(failed.code, failed.read())

            def resource(self, sid: str, v: Version) -> dict[str, Any]:
                out = {"name": f"projects/{PROJECT_NUMBER}/secrets/{sid}/versions/{v.number}",
                       "createTime": "2026-01-01T00:00:00Z", "state": v.state,
                       "replicationStatus": {"userManaged": {"replicas": [{"location": "europe-west4"}]}}}
                if v.state == "DESTROYED":
                    out["destroyTime"] = "2026-01-01T00:30:00Z"
                return out

            def add_version(self, sid: str, body: bytes) -> None:
                try:
                    payload = json.loads(body)["payload"]
                    data = base64.b64decode(payload["data"], validate=True)
                except (ValueError, KeyError, TypeError, binascii.Error):
                    self.error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
                    return
                claimed = payload.get("dataCrc32c")
                if claimed is not None and int(claimed) != crc32c(data):
                    self.error(400, "INVALID_ARGUMENT", "Checksum mismatch: data corruption detected.")
                    return
                history = join.history(sid)
                version = Version(history[-1].number + 1, "ENABLED", data)
                history.append(version)
                join.api.secrets[sid] = data  # latest
                self.reply(200, {**self.resource(sid, version), "clientSpecifiedPayloadChecksum": claimed is not None})

            def list_versions(self, sid: str, query: dict[str, list[str]]) -> None:
                wanted = query.get("filter", [""])[0]
                if wanted not in ("", "state:ENABLED"):
                    self.error(400, "INVALID_ARGUMENT", f"the stand-in takes no filter {wanted!r}")
                    return
                found = [v for v in reversed(join.history(sid)) if not wanted or v.state == "ENABLED"]
                page = self.page([self.resource(sid, v) for v in found], query, "pageSize")
                self.reply(200, {"versions": page[0], "totalSize": len(found), **page[1]})

            def destroy(self, sid: str, number: int) -> None:
                matches = [v for v in join.history(sid) if v.number == number]
                if not matches:
                    self.error(404, "NOT_FOUND", f"Secret Version [{number}] not found.")
                    return
                if matches[0].state == "DESTROYED":
                    self.error(400, "FAILED_PRECONDITION", f"Secret Version [{number}] is in DESTROYED state.")
                    return
                matches[0].state, matches[0].data = "DESTROYED", b""
                self.reply(200, self.resource(sid, matches[0]))

            def page(self, items: list[Any], query: dict[str, list[str]], size_key: str) -> tuple[list[Any], dict[str, str]]:
                start = int(query.get("pageToken", ["0"])[0] or 0)
                size = join.page_size or int(query.get(size_key, ["500"])[0] or 500)
                more = {"nextPageToken": str(start + size)} if start + size < len(items) else {}
                return items[start:start + size], more

            def instances(self, query: dict[str, list[str]]) -> None:
                who = self.caller()
                if who is None:
                    self.error(401, "UNAUTHENTICATED", "Request is missing required authentication credential.")
                    return
                if who not in join.compute_listers:
                    self.error(403, "PERMISSION_DENIED", f"Required 'compute.instances.list' permission for "
                                                         f"'projects/{PROJECT}'")
                    return
                expression = query.get("filter", [""])[0]
                wanted = re.fullmatch(r'name = "([^"\\]*)"', expression)
                if expression and wanted is None:
                    self.error(400, "INVALID_ARGUMENT", f"Invalid value for field 'filter': '{expression}'.")
                    return
                found = [i for i in join.instances if wanted is None or i.name == wanted.group(1)]
                rows, more = self.page(found, query, "maxResults")
                zones = sorted({*ZONES, *(i.zone for i in join.instances)})
                items: dict[str, Any] = {}
                for zone in zones:
                    here = [{"kind": "compute#instance", "name": i.name, "status": i.status, "labels": i.labels,
                             "creationTimestamp": i.created,
                             "zone": f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/{zone}"}
                            for i in rows if i.zone == zone]
                    items[f"zones/{zone}"] = {"instances": here} if here else {"warning": {
                        "code": "NO_RESULTS_ON_PAGE", "message": "There are no results for scope "
                                                                 f"'zones/{zone}' on this page."}}
                self.reply(200, {"kind": "compute#instanceAggregatedList", "id": f"projects/{PROJECT}/aggregated/instances",
                                 "items": items, **more})

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def history(self, sid: str) -> list[Version]:
        """The versions of secret ``sid``, oldest first (version 1 holds the value it started with)."""
        if sid not in self.versions:
            self.versions[sid] = [Version(1, "ENABLED", self.api.secrets[sid])]
        return self.versions[sid]

    def states(self, sid: str) -> dict[int, str]:
        """Version number -> state."""
        return {v.number: v.state for v in self.history(sid)}

    def node_env(self) -> dict[str, str]:
        """The variables that point a GCP node hook at this stand-in (and at ``api`` for the rest)."""
        return {**self.api.node_env(), "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": self.url + "/",
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE": self.url + "/compute/v1/"}

    def __enter__(self) -> GcpJoinApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
