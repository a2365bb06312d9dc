"""The harness's stand-in for the AWS APIs the nodes call, judged by the render's own IAM.

Every harness node is told ``AWS_ENDPOINT_URL=http://169.254.169.254:8080`` (the SDKs' variable,
which the node hook honours: cfcr/aws/node_hook.py), so its signed requests come here, in AWS's
own wire protocols. The server knows the caller by its source address, as AWS knows an instance
by its instance profile's credentials: the address maps to an instance, the instance to the
profile it is associated with now, the profile to its role, and the role's policies in the
render decide (tests/support/iam.py). Signatures are not checked here (IMDS serves every node
placeholder credentials); tests/test_aws_node_hook_real.py runs the same hook against moto,
which checks them. It serves:

* Secrets Manager (JSON 1.1, ``X-Amz-Target``): ``GetSecretValue``, ``PutSecretValue``;
* EC2 (Query API, XML): ``DescribeIamInstanceProfileAssociations`` (filters ``instance-id``,
  ``state``), ``ReplaceIamInstanceProfileAssociation`` (needs ``iam:PassRole`` on the new role)
  and ``DescribeInstances`` (filters ``private-ip-address``, ``instance-id``, ``tag:<key>``,
  ``instance-state-name``).

The credential scope's region must be the cluster's. KMS (the secrets' key) is not evaluated.
Every call and decision is appended to a log, and the state (secret values, associations)
lives in a JSON file the tests read.

``python -m tests.support.awsapi STATE.json`` in the metadata service's namespace, port 8080.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.server
import json
import sys
import threading
import urllib.parse
from xml.sax.saxutils import escape
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.iam import Request, evaluate, evaluate_all, resource_context

PORT = 8080
ENDPOINT = f"http://169.254.169.254:{PORT}"
"""What every harness node has in ``AWS_ENDPOINT_URL``."""
EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"


class Cloud:
    """The account's state and its judge. The server and the harness both change the state
    file, each under an exclusive lock of ``<state>.lock`` (:meth:`update`)."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self.lock = threading.Lock()

    def load(self) -> dict[str, Any]:
        return dict(json.loads(self.state_file.read_text()))

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """The state, to change in place; saved when the block ends, under both locks."""
        with self.lock, open(self.state_file.with_suffix(".lock"), "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            state = self.load()
            yield state
            self.save(state)

    def call(self, source: str, service: str, region: str, operation: str, params: dict[str, Any]) -> tuple[int, str]:
        """One API call from ``source``: (HTTP status, body in the service's protocol)."""
        json_protocol = service == "secretsmanager"
        with self.update() as state:
            instance = state["instances"].get(source)
            if instance is None:
                return _error(json_protocol, 403, "InvalidClientTokenId", f"no instance at {source}")
            profile = instance["profile"]
            policies = [doc for doc in state["policies"].get(profile, [])]
            if region != state["region"]:
                result = _error(json_protocol, 400, "InvalidSignatureException", f"signed for region {region!r}")
            else:
                result = self._dispatch(state, instance, policies, service, operation, params)
            state["log"].append({"instance": instance["id"], "profile": profile, "call": [service, operation],
                                 "status": result[0]})
            return result

    def _dispatch(self, state: dict[str, Any], instance: dict[str, Any], policies: list[dict[str, Any]],
                  service: str, operation: str, params: dict[str, Any]) -> tuple[int, str]:
        if service == "secretsmanager" and operation in ("GetSecretValue", "PutSecretValue"):
            name = str(params.get("SecretId", ""))
            secret = state["secrets"].get(name)
            if secret is None:
                return _error(True, 400, "ResourceNotFoundException", f"Secrets Manager can't find {name}")
            action = f"secretsmanager:{operation}"
            if not evaluate(policies, Request(action, secret["arn"])).allowed:
                return _error(True, 400, "AccessDeniedException",
                              f"{instance['profile']} is not authorized to perform {action} on {secret['arn']}")
            if operation == "GetSecretValue":
                return 200, json.dumps({"ARN": secret["arn"], "Name": name, "SecretString": secret["value"]})
            secret["value"] = str(params.get("SecretString", ""))
            secret["versions"] = int(secret.get("versions", 1)) + 1
            return 200, json.dumps({"ARN": secret["arn"], "Name": name, "VersionId": str(secret["versions"])})
        if service != "ec2":
            return _error(service == "secretsmanager", 400, "InvalidAction", f"the stand-in does not serve {service} {operation}")
        filters = _filters(params)
        if operation == "DescribeIamInstanceProfileAssociations":
            if not evaluate(policies, Request("ec2:DescribeIamInstanceProfileAssociations", "*")).allowed:
                return _error(False, 403, "UnauthorizedOperation", "ec2:DescribeIamInstanceProfileAssociations")
            items = []
            for other in state["instances"].values():
                if "instance-id" in filters and other["id"] not in filters["instance-id"]:
                    continue
                if "state" in filters and "associated" not in filters["state"]:
                    continue
                items.append(f"<item><associationId>{escape(other['association'])}</associationId>"
                             f"<instanceId>{escape(other['id'])}</instanceId><iamInstanceProfile>"
                             f"<arn>{escape(state['profile_arns'][other['profile']])}</arn></iamInstanceProfile>"
                             "<state>associated</state></item>")
            return 200, _ec2(operation, f"<iamInstanceProfileAssociationSet>{''.join(items)}</iamInstanceProfileAssociationSet>")
        if operation == "DescribeInstances":
            if not evaluate(policies, Request("ec2:DescribeInstances", "*")).allowed:
                return _error(False, 403, "UnauthorizedOperation", "ec2:DescribeInstances")
            found = []
            for address, other in state["instances"].items():
                if "private-ip-address" in filters and address not in filters["private-ip-address"]:
                    continue
                if "instance-id" in filters and other["id"] not in filters["instance-id"]:
                    continue
                if "instance-state-name" in filters and "running" not in filters["instance-state-name"]:
                    continue
                tags = {k.removeprefix("tag:"): v for k, v in filters.items() if k.startswith("tag:")}
                if any(other["tags"].get(k) not in v for k, v in tags.items()):
                    continue
                found.append(f"<item><instancesSet><item><instanceId>{escape(other['id'])}</instanceId>"
                             f"<launchTime>{escape(other['launched'])}</launchTime>"
                             f"<iamInstanceProfile><arn>{escape(state['profile_arns'][other['profile']])}</arn>"
                             "</iamInstanceProfile></item></instancesSet></item>")
            return 200, _ec2(operation, f"<reservationSet>{''.join(found)}</reservationSet>")
        if operation == "ReplaceIamInstanceProfileAssociation":
            association = str(params.get("AssociationId", ""))
            target = next((i for i in state["instances"].values() if i["association"] == association), None)
            new_profile = str(params.get("IamInstanceProfile.Name", ""))
            if target is None or new_profile not in state["profile_arns"]:
                return _error(False, 400, "InvalidParameterValue", f"{association} / {new_profile}")
            arn = f"arn:aws:ec2:{state['region']}:{state['account']}:instance/{target['id']}"
            allowed = evaluate_all(policies, [
                Request("ec2:ReplaceIamInstanceProfileAssociation", arn, resource_context(target["tags"])),
                Request("iam:PassRole", state["role_arns"][new_profile], {"iam:PassedToService": "ec2.amazonaws.com"}),
            ]).allowed
            if not allowed:
                return _error(False, 403, "UnauthorizedOperation",
                              f"{instance['profile']} may not give {target['id']} {new_profile}")
            target["profile"] = new_profile
            target["association"] = f"{association}-r"
            return 200, _ec2(operation, f"<iamInstanceProfileAssociation><associationId>{escape(target['association'])}"
                                        "</associationId></iamInstanceProfileAssociation>")
        return _error(False, 400, "InvalidAction", f"the stand-in does not serve ec2 {operation}")


def _ec2(operation: str, inner: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{operation}Response xmlns="{EC2_XMLNS}">'
            f"<requestId>harness</requestId>{inner}</{operation}Response>")


def _error(json_protocol: bool, status: int, code: str, message: str) -> tuple[int, str]:
    """An error as the service's protocol writes it (JSON 1.1, or the EC2 Query API's XML)."""
    if json_protocol:
        return status, json.dumps({"__type": code, "message": message})
    return status, (f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
                    "</Error></Errors><RequestID>harness</RequestID></Response>")


def _filters(params: dict[str, Any]) -> dict[str, list[str]]:
    """``Filter.1.Name=a&Filter.1.Value.1=x&Filter.1.Value.2=y`` -> ``{"a": ["x", "y"]}``."""
    out: dict[str, list[str]] = {}
    n = 1
    while f"Filter.{n}.Name" in params:
        values, m = [], 1
        while f"Filter.{n}.Value.{m}" in params:
            values.append(str(params[f"Filter.{n}.Value.{m}"]))
            m += 1
        out[str(params[f"Filter.{n}.Name"])] = values
        n += 1
    return out


def parse_request(headers: Any, body: bytes) -> tuple[str, str, str, dict[str, Any]]:
    """(service, region, operation, parameters) of a signed request in the AWS wire protocols."""
    credential = str(headers.get("Authorization", "")).partition("Credential=")[2].split(",")[0].split("/")
    region, service = (credential + ["", "", "", ""])[2:4]
    target = headers.get("X-Amz-Target")
    if target:
        return service, region, str(target).rpartition(".")[2], dict(json.loads(body or b"{}"))
    params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
    return service, region, params.pop("Action", ""), params


def server(cloud: Cloud, address: tuple[str, int] = ("169.254.169.254", PORT)) -> http.server.ThreadingHTTPServer:
    """The stand-in's HTTP server for ``cloud`` (not yet serving)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            service, region, operation, params = parse_request(self.headers, body)
            status, text = cloud.call(self.client_address[0], service, region, operation, params)
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1" if service == "secretsmanager" else "text/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return http.server.ThreadingHTTPServer(address, Handler)


def main() -> None:
    server(Cloud(Path(sys.argv[1]))).serve_forever()


if __name__ == "__main__":
    main()
