"""The harness's stand-in for the AWS instance metadata service (IMDSv2 only).

It answers on ``169.254.169.254:80`` in its own network namespace; each node reaches it over
the harness network and is told apart by its source address, as each VM has its own metadata.
``PUT /latest/api/token`` (with ``X-aws-ec2-metadata-token-ttl-seconds``) gives a session
token; every ``GET /latest/meta-data/...`` needs it in ``X-aws-ec2-metadata-token`` (IMDSv1
requests get 401, as with ``http_tokens = required``).

``python -m tests.support.imds INSTANCES.json`` where the JSON maps a node address to its
metadata paths (``instance-id``, ``placement/availability-zone``, ``local-ipv4``, ...); the file
is read on every request. Every known node also gets an instance profile's credentials
(``iam/security-credentials/``, then ``iam/security-credentials/<role>``): placeholders, since
the harness's AWS stand-in (:mod:`tests.support.awsapi`) knows a caller by its address.
"""

from __future__ import annotations

import http.server
import json
import secrets
import sys
from pathlib import Path
from typing import Any


ROLE = "cfcr-harness-node"
CREDENTIALS = json.dumps({"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "ASIAHARNESSPLACEHOLDER",
                          "SecretAccessKey": "harness/placeholder/secret", "Token": "harness-placeholder-token",
                          "Expiration": "2099-01-01T00:00:00Z"})
"""What every node's instance profile yields (placeholders: the AWS stand-in checks no signature)."""


def main() -> None:
    source = Path(sys.argv[1])
    tokens: set[str] = set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, status: int, body: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body.encode())

        def do_PUT(self) -> None:  # noqa: N802 - http.server's name
            if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                self.reply(400, "bad request")
                return
            token = secrets.token_urlsafe(32)
            tokens.add(token)
            self.reply(200, token)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.headers.get("X-aws-ec2-metadata-token") not in tokens:
                self.reply(401, "unauthorized")
                return
            # read on every request: the harness adds instances as VMs "launch"
            data = json.loads(source.read_text()).get(self.client_address[0])
            if data is not None:
                data = {**data, "iam/security-credentials/": ROLE, f"iam/security-credentials/{ROLE}": CREDENTIALS}
            prefix = "/latest/meta-data/"
            if data is None or not self.path.startswith(prefix) or self.path[len(prefix):] not in data:
                self.reply(404, "not found")
                return
            self.reply(200, data[self.path[len(prefix):]])

        def log_message(self, *args: Any) -> None:
            pass

    http.server.ThreadingHTTPServer(("169.254.169.254", 80), Handler).serve_forever()


if __name__ == "__main__":
    main()
