"""A real AWS API emulator (moto's server) and an IMDSv2 stand-in on loopback, for running the
AWS node hook's rendered shell functions (cfcr/aws/node_hook.py) as a node runs them.

* :class:`MotoAws`: moto's WSGI application (the one ``moto_server`` serves) on 127.0.0.1,
  behind a recorder that keeps every request's headers. With :meth:`MotoAws.enforce_auth`, moto
  checks each request as AWS would in part: the access key must be one moto issued (an IAM
  user's, or an ``AssumeRole`` session's, whose ``X-Amz-Security-Token`` must then be that
  session's), the SigV4 signature is recomputed (botocore) over the headers the request names in
  ``SignedHeaders`` and must match, and the caller's IAM policies must allow the action. What
  moto does not check: that a header *must* be signed (so the tests read ``SignedHeaders`` from
  :attr:`MotoAws.requests`), S3's payload hash and checksum headers against the body, and the
  resource of Secrets Manager and EC2 actions (moto evaluates those policies against ``*``).
* :class:`Imds`: IMDSv2 only (``PUT /latest/api/token``, then every GET with the token, 401
  without), serving an instance id, a zone and one role's credentials, all settable.

The node's programs reach both through the SDKs' variables ``AWS_ENDPOINT_URL`` and
``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (:meth:`MotoAws.node_env`).
"""

from __future__ import annotations

import http.server
import io
import json
import secrets
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

REGION = "eu-west-1"
ACCOUNT = "123456789012"
"""moto's default account id."""


@dataclass
class Recorded:
    """One request moto answered: method, path and headers (names as sent)."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]
    """The parameters of a Query API request (form body); empty for the others."""

    @property
    def authorization(self) -> dict[str, str]:
        """``Credential``, ``SignedHeaders`` and ``Signature`` of the SigV4 Authorization header."""
        value = self.headers.get("Authorization", "")
        _, _, rest = value.partition(" ")
        return {k.strip(): v for k, _, v in (part.partition("=") for part in rest.split(","))}

    @property
    def signed_headers(self) -> list[str]:
        return self.authorization.get("SignedHeaders", "").split(";")

    @property
    def access_key(self) -> str:
        return self.authorization.get("Credential", "").split("/")[0]

    @property
    def scope(self) -> list[str]:
        """``[date, region, service, "aws4_request"]``."""
        return self.authorization.get("Credential", "").split("/")[1:]


class MotoAws:
    """moto's server on loopback (see the module docstring). Use as a context manager."""

    def __init__(self) -> None:
        from moto.moto_server.threaded_moto_server import MotoRequestHandler
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        self.requests: list[Recorded] = []
        app = DomainDispatcherApplication(create_backend_app)

        def recorder(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if not environ.get("PATH_INFO", "").startswith("/moto-api"):
                headers = {k[5:].replace("_", "-").title(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
                form: dict[str, list[str]] = {}
                if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
                    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                    environ["wsgi.input"] = io.BytesIO(body)
                    form = urllib.parse.parse_qs(body.decode())
                self.requests.append(Recorded(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), headers, form))
            result: Iterable[bytes] = app(environ, start_response)
            return result

        self._server = make_server("127.0.0.1", 0, recorder, threaded=True, request_handler=MotoRequestHandler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> MotoAws:
        self._thread.start()
        self._post("/moto-api/reset", b"")
        self._post("/moto-api/reset-auth", b"inf")
        return self

    def __exit__(self, *exc: object) -> None:
        self._post("/moto-api/reset-auth", b"inf")
        self._post("/moto-api/reset", b"")
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _post(self, path: str, data: bytes) -> None:
        with urllib.request.urlopen(urllib.request.Request(self.url + path, data=data, method="POST",
                                                           headers={"Content-Type": "text/plain"}), timeout=10):
            pass

    def enforce_auth(self) -> None:
        """From now on, moto authenticates and authorizes every request (module docstring)."""
        self._post("/moto-api/reset-auth", b"0")

    def stop_enforcing(self) -> None:
        """Back to accepting any credentials (to read back what the checked requests stored)."""
        self._post("/moto-api/reset-auth", b"inf")

    def client(self, service: str, key: tuple[str, str] | None = None, token: str | None = None) -> Any:
        """A boto3 client of ``service`` at the emulator (with ``key``'s credentials)."""
        import boto3

        access, secret = key or ("AKIAIOSFODNN7EXAMPLE", "seed")
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, aws_access_key_id=access,
                            aws_secret_access_key=secret, aws_session_token=token)

    def node_env(self, imds: Imds, **extra: str) -> dict[str, str]:
        """The environment of a node's script: PATH, and the SDKs' endpoint variables (no credentials)."""
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "LC_ALL": "C.UTF-8",
                "AWS_ENDPOINT_URL": self.url, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url, **extra}


@dataclass
class Credentials:
    """Temporary credentials as IMDS serves them."""

    access_key_id: str
    secret_access_key: str
    token: str

    def imds_json(self) -> str:
        return json.dumps({"Code": "Success", "LastUpdated": "2026-01-01T00:00:00Z", "Type": "AWS-HMAC",
                           "AccessKeyId": self.access_key_id, "SecretAccessKey": self.secret_access_key,
                           "Token": self.token, "Expiration": "2099-01-01T00:00:00Z"})


@dataclass
class Imds:
    """IMDSv2 on loopback (module docstring). Use as a context manager."""

    instance_id: str = "i-0123456789abcdef0"
    zone: str = f"{REGION}b"
    role: str = ""
    """The instance profile's role name ('' : no instance profile)."""
    credentials: Credentials | None = None
    tokens: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    """Paths of GETs refused for want of a session token."""

    def __post_init__(self) -> None:
        imds = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def reply(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:  # noqa: N802 - http.server's name
                if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self.reply(400, "")
                    return
                token = secrets.token_urlsafe(24)
                imds.tokens.add(token)
                self.reply(200, token)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.headers.get("X-aws-ec2-metadata-token") not in imds.tokens:
                    imds.refused.append(self.path)
                    self.reply(401, "")
                    return
                answers = {"/latest/meta-data/instance-id": imds.instance_id,
                           "/latest/meta-data/placement/availability-zone": imds.zone}
                if imds.role:
                    answers["/latest/meta-data/iam/security-credentials/"] = imds.role
                    if imds.credentials is not None:
                        answers[f"/latest/meta-data/iam/security-credentials/{imds.role}"] = imds.credentials.imds_json()
                if self.path in answers:
                    self.reply(200, answers[self.path])
                else:
                    self.reply(404, "")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Imds:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def serve(self, role: str, credentials: Credentials | None) -> None:
        """Serve ``role``'s ``credentials`` from now on."""
        self.role, self.credentials = role, credentials
