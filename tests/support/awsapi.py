"""The harness's stand-in for the AWS APIs the nodes call, judged by the render's own IAM.

The ``aws`` command on every harness node (:data:`AWS_CLI`) sends its arguments (and its
standard input, for ``file:///dev/stdin``) to this server. The server knows the caller by its
source address, as AWS knows an instance by its instance profile's credentials: the address
maps to an instance, the instance to the profile it is associated with now, the profile to its
role, and the role's policies in the render decide (tests/support/iam.py). It serves:

* ``secretsmanager get-secret-value`` / ``put-secret-value`` (``--query SecretString --output text``);
* ``ec2 describe-iam-instance-profile-associations`` (filters ``instance-id``, ``state``),
  ``ec2 replace-iam-instance-profile-association`` (needs ``iam:PassRole`` on the new role) and
  ``ec2 describe-instances`` (filters ``private-ip-address``, ``instance-id``, ``tag:<key>``,
  ``instance-state-name``; prints what the instance-profile query prints).

KMS (the secrets' key) is not evaluated. Every call and decision is appended to a log, and
the state (secret values, associations) lives in a JSON file the tests read.

``python -m tests.support.awsapi STATE.json`` in the metadata service's namespace, port 8080.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.iam import Request, evaluate, evaluate_all, resource_context

PORT = 8080

AWS_CLI = r"""#!/bin/bash
# The harness's stand-in for the AWS CLI: the call goes to the harness's AWS API stand-in,
# which judges it with this instance's current instance profile (the render's IAM).
set -uo pipefail
stdin=''
for arg in "$@"; do
  if [ "$arg" = file:///dev/stdin ]; then stdin=$(cat); fi
done
response=$( { printf '%s\0' "$@"; printf '\0'; printf '%s' "$stdin"; } |
  curl -sS --max-time 20 -X POST --data-binary @- -w '\n%{http_code}' http://169.254.169.254:8080/)
code=${response##*$'\n'}
body=${response%$'\n'*}
if [ "$code" = 200 ]; then
  printf '%s' "$body"
  exit 0
fi
printf '%s\n' "$body" >&2
exit 254
"""


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

    def call(self, source: str, args: list[str], stdin: str) -> tuple[int, str]:
        with self.update() as state:
            instance = state["instances"].get(source)
            if instance is None:
                return 403, f"no instance at {source}: unable to locate credentials"
            profile = instance["profile"]
            policies = [doc for doc in state["policies"].get(profile, [])]
            result = self._dispatch(state, instance, policies, args, stdin)
            state["log"].append({"instance": instance["id"], "profile": profile, "call": args[:2],
                                 "status": result[0]})
            return result

    def _dispatch(self, state: dict[str, Any], instance: dict[str, Any], policies: list[dict[str, Any]],
                  args: list[str], stdin: str) -> tuple[int, str]:
        service, operation = (args + ["", ""])[:2]
        options = _options(args[2:])
        if options.get("--region") != state["region"]:
            return 400, f"wrong or missing --region: {options.get('--region')!r}"
        if service == "secretsmanager" and operation in ("get-secret-value", "put-secret-value"):
            name = options.get("--secret-id", "")
            secret = state["secrets"].get(name)
            if secret is None:
                return 400, f"ResourceNotFoundException: Secrets Manager can't find {name}"
            action = "secretsmanager:GetSecretValue" if operation == "get-secret-value" else "secretsmanager:PutSecretValue"
            if not evaluate(policies, Request(action, secret["arn"])).allowed:
                return 403, (f"AccessDeniedException: {instance['profile']} is not authorized to perform "
                             f"{action} on {secret['arn']}")
            if operation == "get-secret-value":
                if options.get("--query") != "SecretString" or options.get("--output") != "text":
                    return 400, "the stand-in serves --query SecretString --output text"
                return 200, secret["value"] + "\n"
            value = stdin if options.get("--secret-string") == "file:///dev/stdin" else options.get("--secret-string", "")
            secret["value"] = value
            secret["versions"] = int(secret.get("versions", 1)) + 1
            return 200, ""
        if service == "ec2" and operation == "describe-iam-instance-profile-associations":
            if not evaluate(policies, Request("ec2:DescribeIamInstanceProfileAssociations", "*")).allowed:
                return 403, "UnauthorizedOperation: ec2:DescribeIamInstanceProfileAssociations"
            filters = _filters(args)
            rows = []
            for other in state["instances"].values():
                if "instance-id" in filters and other["id"] not in filters["instance-id"]:
                    continue
                if "state" in filters and "associated" not in filters["state"]:
                    continue
                rows.append(f"{other['association']}\t{state['profile_arns'][other['profile']]}")
            return 200, "".join(r + "\n" for r in rows)
        if service == "ec2" and operation == "describe-instances":
            if not evaluate(policies, Request("ec2:DescribeInstances", "*")).allowed:
                return 403, "UnauthorizedOperation: ec2:DescribeInstances"
            filters = _filters(args)
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
                found.append(state["profile_arns"][other["profile"]])
            # what --query 'Reservations[].Instances[].IamInstanceProfile.Arn' --output text prints
            return 200, "\t".join(found) + "\n" if found else ""
        if service == "ec2" and operation == "replace-iam-instance-profile-association":
            association = options.get("--association-id", "")
            target = next((i for i in state["instances"].values() if i["association"] == association), None)
            spec = dict(part.split("=", 1) for part in options.get("--iam-instance-profile", "").split(",") if "=" in part)
            new_profile = spec.get("Name", "")
            if target is None or new_profile not in state["profile_arns"]:
                return 400, f"InvalidParameterValue: {association} / {new_profile}"
            arn = f"arn:aws:ec2:{state['region']}:{state['account']}:instance/{target['id']}"
            allowed = evaluate_all(policies, [
                Request("ec2:ReplaceIamInstanceProfileAssociation", arn, resource_context(target["tags"])),
                Request("iam:PassRole", state["role_arns"][new_profile], {"iam:PassedToService": "ec2.amazonaws.com"}),
            ]).allowed
            if not allowed:
                return 403, f"UnauthorizedOperation: {instance['profile']} may not give {target['id']} {new_profile}"
            target["profile"] = new_profile
            target["association"] = f"{association}-r"
            return 200, ""
        return 400, f"the stand-in does not serve aws {service} {operation}"


def _options(args: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        if args[i].startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
            out.setdefault(args[i], args[i + 1])
            i += 2
        else:
            i += 1
    return out


def _filters(args: list[str]) -> dict[str, list[str]]:
    """``--filters Name=a,Values=x,y Name=b,Values=z`` -> ``{"a": ["x", "y"], "b": ["z"]}``."""
    out: dict[str, list[str]] = {}
    if "--filters" not in args:
        return out
    for item in args[args.index("--filters") + 1:]:
        if item.startswith("--"):
            break
        name, _, values = item.partition(",Values=")
        out[name.removeprefix("Name=")] = [v for v in values.split(",") if v]
    return out


def main() -> None:
    cloud = Cloud(Path(sys.argv[1]))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            head, _, stdin = body.partition(b"\0\0")
            args = [a.decode() for a in head.split(b"\0") if a]
            status, text = cloud.call(self.client_address[0], args, stdin.decode())
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    http.server.ThreadingHTTPServer(("169.254.169.254", PORT), Handler).serve_forever()


if __name__ == "__main__":
    main()
