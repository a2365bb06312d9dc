"""A stand-in for the Azure endpoints an Azure node calls, on loopback: the instance metadata
service (IMDS), Key Vault's secrets (``GET``/``PUT secrets/<name>``) and the two Azure Resource
Manager listings of the join candidate check. Azure cannot run here and no emulator covers
managed identities with Key Vault RBAC; this one follows the documented wire formats and refuses
what Azure refuses:

* IMDS (``/metadata/...``): only with ``Metadata: true`` and without ``X-Forwarded-For`` (400
  otherwise, as IMDS answers); ``identity/oauth2/token`` (``api-version``, ``resource``, optional
  ``client_id``) issues a token of the VM's user-assigned identity with that ``client_id``, or of its
  only identity when none is named; an unknown client id or an ambiguous choice is 400
  ``invalid_request`` "Identity not found"; ``instance/compute/{tagsList,subscriptionId,
  resourceGroupName,resourceId,vmId}``;
* Key Vault (``/secrets/<name>?api-version=7.4``): a bearer token IMDS issued for the audience
  ``https://vault.azure.net`` (401 otherwise); ``GET`` needs "Key Vault Secrets User" or
  "Secrets Officer" on that secret, ``PUT`` "Secrets Officer" (403 ``Forbidden`` /
  ``ForbiddenByRbac``); 404 ``SecretNotFound``; answers ``{"value", "id", "attributes"}``; a
  ``PUT`` keeps the old version and makes the body's ``value`` the current one;
* ARM (``GET /subscriptions/<s>/resourceGroups/<g>/providers/Microsoft.Compute/virtualMachineScaleSets``
  and ``<scale set id>/virtualMachines``): a token for ``https://management.azure.com/`` whose
  identity is in :attr:`AzureApi.arm_readers` (403 ``AuthorizationFailed``); :attr:`AzureApi.page_size`
  items per page with a ``nextLink`` to the next.

* Blob Storage (``PUT /blob/<account>/<container>/<name>``, path-style as Azurite): a bearer token
  for ``https://storage.azure.com/`` (401 ``InvalidAuthenticationInfo`` otherwise; a shared key is
  403 ``KeyBasedAuthenticationNotPermitted``, the account allows none); ``x-ms-version`` of
  2017-11-09 or later (Entra ID needs it) and ``x-ms-blob-type: BlockBlob`` (400
  ``MissingRequiredHeader``); the caller's write role on that container with its path condition
  (:attr:`AzureApi.blob_writers`; 403 ``AuthorizationPermissionMismatch``); ``Content-MD5``
  checked against the body received (400 ``Md5Mismatch``); ``If-None-Match: *`` on an existing
  blob is 409 ``BlobAlreadyExists``; 201 with ``Content-MD5`` and ``ETag``. Errors are XML, as
  Blob Storage's. :attr:`AzureApi.corrupt_next_upload` flips a byte of the next body on arrival.

Role assignments apply late on Azure (up to 10 minutes): :attr:`AzureApi.propagation` holds, per
(principal, secret), how many Key Vault requests are still answered 403 although the grant exists.
Faults: ``fail_next`` (status codes answered before the real answer). Every request is recorded.

For the control-plane harness (tests/support/controlplane.py) it also runs as a process, one per
cluster: ``python -m tests.support.azureapi STATE.json LOG.jsonl`` in the metadata host's network
namespace answers IMDS on ``169.254.169.254:80`` and Key Vault and ARM on ``169.254.169.254:8080``
(each listener serves only its own paths). Every VM gets its own IMDS answers, told apart by its
source address (:attr:`AzureApi.instances`: its identities, tags, resource id and ``vmId``); the
subscription, resource group, VMs, secrets, grants, ARM readers and scale sets are read again from
STATE.json on each request (the harness writes it as VMs launch); a version a node writes (``PUT``)
is kept by the process on top of the state's versions, and every Key Vault decision is appended
to LOG.jsonl (:class:`Decision`; a written version's value with it).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets as token_bytes
import sys
import threading
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
RESOURCE_GROUP = "c1-rg"
VM_ID = "2f6a1c3e-7b8d-4e9f-a0b1-c2d3e4f5a6b7"
VAULT_AUDIENCE = "https://vault.azure.net"
ARM_AUDIENCE = "https://management.azure.com/"
STORAGE_AUDIENCES = ("https://storage.azure.com/", "https://storage.azure.com")
BACKUP_ACCOUNT = "c1etcd0a1b2c3d4e"
USER = "Key Vault Secrets User"
OFFICER = "Key Vault Secrets Officer"
IMDS_LISTEN = ("169.254.169.254", 80)
"""Where the process mode answers IMDS (Azure's own address and port)."""
API_LISTEN = ("169.254.169.254", 8080)
"""Where the process mode answers Key Vault and ARM (``harness_node_env``'s roots)."""
IMDS = "imds"
APIS = "apis"


@dataclass(frozen=True)
class Vm:
    """A VM (or scale-set instance) as IMDS describes it to its caller."""

    identities: dict[str, str]
    """Its user-assigned identities: client id -> principal id."""
    tags: dict[str, str]
    resource_id: str
    vm_id: str


@dataclass(frozen=True)
class Decision:
    """One Key Vault request, as the stand-in decided it."""

    client: str
    """The caller's address."""
    principal: str | None
    """Whose token it carried (None: none IMDS issued for Key Vault)."""
    method: str
    secret: str
    status: int
    value: str | None = None
    """A version written (``PUT``, 200): its value."""


@dataclass
class Request:
    """One request as the stand-in saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Instance:
    """A scale-set instance as ARM lists it."""

    computer_name: str
    time_created: str
    provisioning_state: str = "Succeeded"


@dataclass
class ScaleSet:
    """A scale set in the resource group."""

    name: str
    tags: dict[str, str]
    instances: list[Instance] = field(default_factory=list)
    subscription: str = SUBSCRIPTION
    resource_group: str = RESOURCE_GROUP

    @property
    def id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.Compute/virtualMachineScaleSets/{self.name}")


@dataclass
class AzureApi:
    """The stand-in (module docstring). Use as a context manager; ``url`` is its root."""

    identities: dict[str, str] = field(default_factory=dict)
    """The VM's user-assigned identities: client id -> principal (object) id."""
    tags: dict[str, str] = field(default_factory=dict)
    """The VM's tags (IMDS ``compute/tagsList``)."""
    secrets: dict[str, list[str]] = field(default_factory=dict)
    """Secret name -> its versions' values, the current one last."""
    grants: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    """Secret name -> {principal id: roles (:data:`USER`, :data:`OFFICER`) on that secret}."""
    propagation: dict[tuple[str, str], int] = field(default_factory=dict)
    """(principal id, secret) -> Key Vault requests still denied before its grant applies."""
    arm_readers: set[str] = field(default_factory=set)
    """Principals whose role reads the resource group's scale sets."""
    scale_sets: list[ScaleSet] = field(default_factory=list)
    page_size: int = 2
    resource_id: str = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                        "Microsoft.Compute/virtualMachines/c1-cp-0")
    requests: list[Request] = field(default_factory=list)
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Token -> (principal id, audience) it was issued for."""
    fail_next: list[int] = field(default_factory=list)
    account: str = BACKUP_ACCOUNT
    """The storage account of the Blob endpoint."""
    containers: set[str] = field(default_factory=set)
    """Its blob containers."""
    blobs: dict[str, bytes] = field(default_factory=dict)
    """``<container>/<name>`` -> the blob's bytes."""
    blob_writers: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Principal -> (container, path prefix) its write role and the role's condition admit."""
    corrupt_next_upload: bool = False
    subscription: str = SUBSCRIPTION
    resource_group: str = RESOURCE_GROUP
    instances: dict[str, Vm] = field(default_factory=dict)
    """Caller address -> the VM there. Empty: every caller is the one VM of :attr:`identities`,
    :attr:`tags`, :attr:`resource_id` and :data:`VM_ID`; otherwise an unknown caller gets 404s."""
    listen: tuple[str, int] = ("127.0.0.1", 0)
    state_file: Path | None = None
    """When set, :meth:`load_state` reads the cloud from it before each request (process mode)."""
    decision_log: Path | None = None
    """When set, every :class:`Decision` is appended to it as a JSON line."""
    written: dict[str, list[str]] = field(default_factory=dict)
    """Process mode: versions the nodes wrote, on top of the state file's."""

    def load_state(self) -> None:
        """Everything but tokens and written versions from :attr:`state_file`: ``{"subscription",
        "resource_group", "instances": {address: {"identities", "tags", "resource_id", "vm_id"}},
        "secrets": {name: [versions]}, "grants": {name: {principal: [roles]}}, "arm_readers":
        [principal], "scale_sets": [{"name", "tags", "instances": [{"computer_name",
        "time_created", "provisioning_state"}]}]}``."""
        if self.state_file is None:
            return
        state = json.loads(self.state_file.read_text())
        self.subscription, self.resource_group = str(state["subscription"]), str(state["resource_group"])
        self.instances = {a: Vm(**i) for a, i in state["instances"].items()}
        self.secrets = {k: list(v) + self.written.get(k, []) for k, v in state["secrets"].items()}
        self.grants = {k: {p: set(r) for p, r in v.items()} for k, v in state["grants"].items()}
        self.arm_readers = set(state["arm_readers"])
        self.scale_sets = [ScaleSet(s["name"], dict(s["tags"]), [Instance(**i) for i in s["instances"]],
                                    self.subscription, self.resource_group) for s in state["scale_sets"]]

    def decide(self, decision: Decision) -> None:
        if self.decision_log is not None:
            with self.decision_log.open("a") as handle:
                handle.write(json.dumps(asdict(decision)) + "\n")

    def vm(self, client: str) -> Vm | None:
        """The VM calling from ``client``."""
        if not self.instances:
            return Vm(self.identities, self.tags, self.resource_id, VM_ID)
        return self.instances.get(client)

    def __post_init__(self) -> None:
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def error(self, status: int, code: str, message: str, inner: str | None = None) -> None:
                body: dict[str, Any] = {"code": code, "message": message}
                if inner:
                    body["innererror"] = {"code": inner}
                self.reply(status, {"error": body})

            def caller(self, audience: str) -> str | None:
                auth = self.headers.get("Authorization", "")
                issued = api.tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
                return issued[0] if issued and issued[1] == audience else None

            def serves(self, kind: str) -> bool:
                return kind in getattr(self.server, "cfcr_serves", (IMDS, APIS))

            def handle_any(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                api.load_state()
                if api.state_file is None:
                    api.requests.append(Request(method, self.path, dict(self.headers.items()), body))
                url = urllib.parse.urlsplit(self.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                if url.path.startswith("/metadata/") and method == "GET" and self.serves(IMDS):
                    self.imds(url.path.removeprefix("/metadata/"), query)
                    return
                if not self.serves(APIS):
                    self.error(404, "NotFound", f"no such endpoint {url.path}")
                    return
                if api.fail_next:
                    self.error(api.fail_next.pop(0), "ServiceUnavailable", "injected fault")
                    return
                if url.path.startswith("/blob/"):
                    self.blob(method, urllib.parse.unquote(url.path.removeprefix("/blob/")), body)
                elif url.path.startswith("/secrets/"):
                    self.vault(method, urllib.parse.unquote(url.path.removeprefix("/secrets/")), query, body)
                elif url.path.startswith("/subscriptions/") and method == "GET":
                    self.arm(url.path, query)
                else:
                    self.error(404, "NotFound", f"no such endpoint {url.path}")

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.handle_any("GET")

            def do_PUT(self) -> None:  # noqa: N802 - http.server's name
                self.handle_any("PUT")

            def blob_error(self, status: int, code: str, message: str) -> None:
                self.reply(status, '<?xml version="1.0" encoding="utf-8"?><Error><Code>'
                           f"{code}</Code><Message>{message}\nRequestId:0f1e2d3c-a01e-0000-0000-000000000000\n"
                           "Time:2026-12-01T20:00:00.0000000Z</Message></Error>", "application/xml")

            def blob(self, method: str, path: str, body: bytes) -> None:
                account, _, rest = path.partition("/")
                container, _, name = rest.partition("/")
                auth = self.headers.get("Authorization", "")
                if auth.startswith("SharedKey "):
                    self.blob_error(403, "KeyBasedAuthenticationNotPermitted",
                                    "Key based authentication is not permitted on this storage account.")
                    return
                issued = api.tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
                if issued is None or issued[1] not in STORAGE_AUDIENCES:
                    self.blob_error(401, "InvalidAuthenticationInfo", "Authentication information is not given "
                                                                      "in the correct format.")
                    return
                version = self.headers.get("x-ms-version", "")
                if version < "2017-11-09":
                    self.blob_error(400, "MissingRequiredHeader" if not version else "InvalidHeaderValue",
                                    "x-ms-version 2017-11-09 or later is required with OAuth.")
                    return
                if account != api.account or container not in api.containers or not name:
                    self.blob_error(404, "ContainerNotFound" if account == api.account else "ResourceNotFound",
                                    "The specified container does not exist.")
                    return
                if method != "PUT":
                    self.blob_error(405, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb.")
                    return
                if self.headers.get("x-ms-blob-type") != "BlockBlob":
                    self.blob_error(400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request "
                                                                  "is not specified: x-ms-blob-type.")
                    return
                grant = api.blob_writers.get(issued[0])
                if grant is None or grant[0] != container or not name.startswith(grant[1]):
                    self.blob_error(403, "AuthorizationPermissionMismatch",
                                    "This request is not authorized to perform this operation using this permission.")
                    return
                if api.corrupt_next_upload and body:
                    api.corrupt_next_upload = False
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
                sent = self.headers.get("Content-MD5")
                if sent is not None and sent != md5:
                    self.blob_error(400, "Md5Mismatch", "The MD5 value specified in the request did not match with "
                                                        "the MD5 value calculated by the server.")
                    return
                key = f"{container}/{name}"
                if self.headers.get("If-None-Match") == "*" and key in api.blobs:
                    self.blob_error(409, "BlobAlreadyExists", "The specified blob already exists.")
                    return
                api.blobs[key] = body
                self.send_response(201)
                self.send_header("Content-MD5", md5)
                self.send_header("ETag", f'"0x8DC{len(api.blobs):012X}"')
                self.send_header("x-ms-request-server-encrypted", "true")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def imds(self, path: str, query: dict[str, str]) -> None:
                if self.headers.get("Metadata") != "true" or "X-Forwarded-For" in self.headers:
                    self.reply(400, {"error": "Bad request. Required metadata header not specified"})
                    return
                if "api-version" not in query:
                    self.reply(400, {"error": "Bad request. api-version was not specified in the request"})
                    return
                vm = api.vm(self.client_address[0])
                if vm is None:
                    self.reply(404, {"error": "Not found"})
                    return
                if path == "identity/oauth2/token":
                    client = query.get("client_id")
                    if client is not None:
                        principal = vm.identities.get(client)
                    else:
                        principal = next(iter(vm.identities.values())) if len(vm.identities) == 1 else None
                    if principal is None or "resource" not in query:
                        self.reply(400, {"error": "invalid_request", "error_description": "Identity not found"})
                        return
                    token = "eyJ0eXAi." + token_bytes.token_urlsafe(32)
                    api.tokens[token] = (principal, query["resource"])
                    self.reply(200, {"access_token": token, "client_id": client or "", "expires_in": "86399",
                                     "resource": query["resource"], "token_type": "Bearer"})
                    return
                compute = {"subscriptionId": api.subscription, "resourceGroupName": api.resource_group,
                           "resourceId": vm.resource_id, "vmId": vm.vm_id}
                key = path.removeprefix("instance/compute/")
                if key == "tagsList":
                    self.reply(200, [{"name": k, "value": v} for k, v in vm.tags.items()])
                elif key in compute and query.get("format") == "text":
                    self.reply(200, compute[key], "text/plain")
                else:
                    self.reply(404, {"error": "Not found"})

            def vault(self, method: str, name: str, query: dict[str, str], body: bytes) -> None:
                who = self.caller(VAULT_AUDIENCE)

                def decided(status: int, value: str | None = None) -> None:
                    api.decide(Decision(self.client_address[0], who, method, name, status, value))

                if who is None:
                    decided(401)
                    self.error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
                    return
                if query.get("api-version") != "7.4" or "/" in name:
                    self.error(400, "BadParameter", f"bad request for secret {name}")
                    return
                needed = {USER, OFFICER} if method == "GET" else {OFFICER}
                held = api.grants.get(name, {}).get(who, set())
                waiting = api.propagation.get((who, name), 0)
                if waiting:
                    api.propagation[(who, name)] = waiting - 1
                if not (held & needed) or waiting:
                    decided(403)
                    action = "getSecret" if method == "GET" else "setSecret"
                    self.error(403, "Forbidden", f"Caller is not authorized to perform action on resource. "
                                                 f"Action: 'Microsoft.KeyVault/vaults/secrets/{action}/action' "
                                                 f"Caller: oid={who}", "ForbiddenByRbac")
                    return
                if method == "PUT":
                    value = json.loads(body)["value"]
                    if not isinstance(value, str):
                        self.error(400, "BadParameter", "value must be a string")
                        return
                    api.secrets.setdefault(name, []).append(value)
                    if api.state_file is not None:
                        api.written.setdefault(name, []).append(value)
                    decided(200, value)
                elif name not in api.secrets:
                    decided(404)
                    self.error(404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault.")
                    return
                else:
                    decided(200)
                versions = api.secrets[name]
                self.reply(200, {"value": versions[-1], "id": f"https://kv.vault.azure.net/secrets/{name}/{len(versions):032x}",
                                 "attributes": {"enabled": True}})

            def arm(self, path: str, query: dict[str, str]) -> None:
                who = self.caller(ARM_AUDIENCE)
                if who is None:
                    self.error(401, "InvalidAuthenticationToken", "The access token is invalid.")
                    return
                if who not in api.arm_readers:
                    self.error(403, "AuthorizationFailed", f"The client with object id '{who}' does not have "
                                                           f"authorization to perform action 'read' over scope '{path}'")
                    return
                listing = (f"/subscriptions/{api.subscription}/resourceGroups/{api.resource_group}/providers/"
                           "Microsoft.Compute/virtualMachineScaleSets")
                items: list[dict[str, Any]]
                if path == listing:
                    items = [{"id": s.id, "name": s.name, "tags": s.tags} for s in api.scale_sets]
                else:
                    found = [s for s in api.scale_sets if path == f"{s.id}/virtualMachines"]
                    if not found:
                        self.error(404, "ResourceNotFound", f"{path} was not found")
                        return
                    items = [{"name": f"{found[0].name}_{i}", "instanceId": str(i),
                              "properties": {"osProfile": {"computerName": vm.computer_name},
                                             "provisioningState": vm.provisioning_state,
                                             "timeCreated": vm.time_created}}
                             for i, vm in enumerate(found[0].instances)]
                start = int(query.get("$skiptoken", "0"))
                page: dict[str, Any] = {"value": items[start:start + api.page_size]}
                if start + api.page_size < len(items):
                    page["nextLink"] = (f"{api.url}{path}?api-version={query.get('api-version', '')}"
                                        f"&$skiptoken={start + api.page_size}")
                self.reply(200, page)

            def log_message(self, *args: Any) -> None:
                pass

        self._handler = Handler
        self._server = http.server.ThreadingHTTPServer(self.listen, Handler)
        self.url = f"http://{self.listen[0]}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def node_env(self) -> dict[str, str]:
        """The variables that point an Azure node hook here, and a short RBAC wait."""
        return {"AZURE_POD_IDENTITY_AUTHORITY_HOST": self.url, "CFCR_AZURE_VAULT_URL": self.url,
                "CFCR_AZURE_ARM_URL": self.url, "CFCR_AZURE_BLOB_URL": f"{self.url}/blob", "CFCR_AZURE_RBAC_WAIT": "6"}

    def principal_of(self, request: Request) -> str | None:
        """Whose token a recorded request carried."""
        issued = self.tokens.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
        return issued[0] if issued else None

    def __enter__(self) -> AzureApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def harness_node_env() -> dict[str, str]:
    """The variables that point a harness node's Azure hook at :func:`main`'s Key Vault and ARM
    (IMDS stays at its own address, the hook's default)."""
    root = f"http://{API_LISTEN[0]}:{API_LISTEN[1]}"
    return {"CFCR_AZURE_VAULT_URL": root, "CFCR_AZURE_ARM_URL": root}


def main() -> None:
    """The harness's process mode (module docstring): STATE.json, LOG.jsonl."""
    api = AzureApi(state_file=Path(sys.argv[1]), decision_log=Path(sys.argv[2]), listen=API_LISTEN)
    api._server.cfcr_serves = (APIS,)  # type: ignore[attr-defined]
    imds = http.server.ThreadingHTTPServer(IMDS_LISTEN, api._handler)
    imds.cfcr_serves = (IMDS,)  # type: ignore[attr-defined]
    threading.Thread(target=imds.serve_forever, daemon=True).start()
    api._server.serve_forever()


if __name__ == "__main__":
    main()
