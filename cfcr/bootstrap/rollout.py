"""One control-plane member at a time: the gate `pulumi up` waits on before it touches the next.

A cloud package builds its members in index order and makes member ``i + 1``'s machine depend
on :class:`MemberGate` ``i``; the node pools depend on the last gate. So a change that replaces
every member's machine (a channel bump, a flag, a new image) replaces them one at a time, and
the workers roll only once the whole control plane has:

    member 0 replaced -> gate 0 waits -> member 1 replaced -> gate 1 waits -> ... -> node pools

What a gate waits for is reported by the member itself (``member_ready`` in
``cfcr/node/scripts/member.sh``): once etcd has quorum, the member is a started voter and every
member that has started is healthy, it records its provider ID in the ConfigMap
``kube-system/cfcr-member-<member>`` with the admin credential (Nodes may change their own Node
object, not ConfigMaps in ``kube-system``: a node identity cannot forge it). The gate polls that
ConfigMap and the member's Node through the API load balancer until the ConfigMap names the
provider ID of the machine Pulumi just created, the Node carries that ID and is Ready, and the
API answers ``/readyz``; or its timeout passes, and it fails naming the member, the Node and what
it saw, so `pulumi up` stops before the next member goes.

A gate that is *created* (a new cluster, a retried first deploy, a member added by growing the
control plane) first asks whether a working cluster answers (``/readyz`` 200): when none does,
the cluster is being born and its members boot together (each member's ``etcd_membership``
finds no quorum and starts with the rendered members), so the gate does not wait; the pools'
dependency on the last gate and the addons' readiness gate still wait for a working API. A gate
that is *updated* (its member's machine was replaced) always waits.

The polling is plain Python (:func:`wait_for_member`), tested against a local HTTPS server and
against the real control plane of a render.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from cfcr.addons.gate import ClientCredentials, credentials_from_kubeconfig, probe, readyz_url, ssl_context

MEMBER_RECORD_NAMESPACE = "kube-system"
MEMBER_RECORD_PREFIX = "cfcr-member-"
"""``kube-system/cfcr-member-<member>``: the ConfigMap a member writes (member.sh) once it is a
healthy voter of a healthy cluster; ``data.providerID`` names its machine."""
DEFAULT_TIMEOUT_SECONDS = 20 * 60
"""How long a gate waits for its member: a VM boots, installs and joins in 3–8 minutes."""
DEFAULT_INTERVAL_SECONDS = 10.0


class MemberNotReadyError(RuntimeError):
    """A replaced member did not report ready before the gate's timeout."""


def member_status(record: dict[str, Any] | None, node: dict[str, Any] | None, provider_id: str,
                  machine: str | None = None) -> tuple[bool, str]:
    """Whether the member's record (its ConfigMap, ``None`` when absent) and its Node (``None``
    when absent) show it ready on the machine ``provider_id`` (and, where the provider ID stays
    the same across a replacement, as on GCP, the machine's own id ``machine``):
    ``(ready, what was seen)``."""
    data = (record or {}).get("data", {})
    reported = data.get("providerID")
    if reported != provider_id:
        return False, (f"the member's record names {reported!r}: etcd is not yet healthy with this member a voter, "
                       "as the member sees it")
    if machine and data.get("machine") != machine:
        return False, (f"the member's record names machine {data.get('machine')!r}, not {machine!r}: the new "
                       "machine has not reported yet")
    if node is None:
        return False, "the Node does not exist (yet)"
    spec = node.get("spec", {})
    if spec.get("providerID") and spec.get("providerID") != provider_id:
        return False, f"the Node still belongs to {spec['providerID']} (the replaced machine)"
    conditions = {c.get("type"): c.get("status") for c in node.get("status", {}).get("conditions", [])}
    if conditions.get("Ready") != "True":
        return False, f"the Node is not Ready (Ready={conditions.get('Ready', 'unknown')})"
    return True, f"ready: the member's record and its Node name {provider_id}, Node Ready"


def get_object(api_server_url: str, path: str, context: ssl.SSLContext,
               timeout: float = 10.0) -> tuple[dict[str, Any] | None, str]:
    """``(object or None, error)`` at API ``path``; ``None`` with an empty error when it does not
    exist, ``None`` with the error when the API did not answer."""
    url = f"{api_server_url.rstrip('/')}{path}"
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:  # noqa: S310 - https only
            return dict(json.loads(response.read())), ""
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None, ""
        return None, f"HTTP {exc.code} for {path}"
    except (urllib.error.URLError, OSError, ssl.SSLError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"


def member_record_path(member: str) -> str:
    return f"/api/v1/namespaces/{MEMBER_RECORD_NAMESPACE}/configmaps/{MEMBER_RECORD_PREFIX}{urllib.parse.quote(member)}"


def look(api_server_url: str, context: ssl.SSLContext, member: str, node_name: str, provider_id: str,
         timeout: float, machine: str | None = None) -> tuple[bool, str]:
    """One look at the member: its record, its Node, the API's ``/readyz``."""
    record, error = get_object(api_server_url, member_record_path(member), context, timeout)
    if error:
        return False, f"the API did not answer: {error}"
    node, error = get_object(api_server_url, f"/api/v1/nodes/{urllib.parse.quote(node_name)}", context, timeout)
    if error:
        return False, f"the API did not answer: {error}"
    ready, seen = member_status(record, node, provider_id, machine)
    if not ready:
        return False, seen
    healthy, readyz = probe(readyz_url(api_server_url), context, timeout=timeout)
    return (True, seen) if healthy else (False, f"the member is ready but the API's /readyz says {readyz}")


def wait_for_member(
    api_server_url: str,
    creds: ClientCredentials,
    member: str,
    node_name: str,
    provider_id: str,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    machine: str | None = None,
) -> str:
    """Poll Node ``node_name`` until it shows member ``member`` ready on ``provider_id``;
    return what was seen. Raises :class:`MemberNotReadyError` naming the member, the Node and the
    last thing seen."""
    if not api_server_url.startswith("https://"):
        raise ValueError(f"the API server URL must be https://, got {api_server_url!r}")
    context = ssl_context(creds)
    deadline = clock() + timeout_seconds
    while True:
        ready, seen = look(api_server_url, context, member, node_name, provider_id,
                           timeout=min(10.0, max(1.0, timeout_seconds)), machine=machine)
        if ready:
            return seen
        if clock() >= deadline:
            raise MemberNotReadyError(
                f"control-plane member {member} (Node {node_name}, {provider_id}) did not report ready within "
                f"{timeout_seconds:.0f}s; last seen: {seen}. The next member is not replaced: look at the "
                f"member's /var/log/cfcr/bootstrap.log, then run `pulumi up` again")
        sleep(interval_seconds)


def cluster_answers(api_server_url: str, creds: ClientCredentials) -> tuple[bool, str]:
    """Whether a working cluster answers through the endpoint: ``/readyz`` 200 (an API server
    whose etcd has quorum). A cluster being born answers nothing, or not ready."""
    return probe(readyz_url(api_server_url), ssl_context(creds), timeout=10.0)


class MemberGateProvider(ResourceProvider):
    """Dynamic provider: update (the member's machine changed) waits; create waits only when a
    cluster answers already; nothing to delete."""

    def _wait(self, props: dict[str, Any]) -> dict[str, Any]:
        url = str(props["url"])
        _, creds = credentials_from_kubeconfig(str(props["kubeconfig"]))
        seen = wait_for_member(url, creds, str(props["member"]), str(props["nodeName"]), str(props["providerId"]),
                               float(props.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)),
                               machine=str(props["machine"]) if props.get("machine") else None)
        return {**_outs(props), "lastSeen": seen}

    def create(self, props: dict[str, Any]) -> CreateResult:
        _, creds = credentials_from_kubeconfig(str(props["kubeconfig"]))
        answers, seen = cluster_answers(str(props["url"]), creds)
        outs = self._wait(props) if answers else {
            **_outs(props), "lastSeen": f"no working cluster answers yet ({seen}): a new cluster, its members boot together"}
        return CreateResult(id_=f"member-{props['member']}", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = any(olds.get(k) != news.get(k) for k in ("providerId", "nodeName", "url")) or (
            bool(news.get("machine")) and olds.get("machine") != news.get("machine"))
        return DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._wait(news))


def _outs(props: dict[str, Any]) -> dict[str, Any]:
    """What the gate keeps in state: never the credential it used."""
    out = {k: props[k] for k in ("member", "nodeName", "providerId", "url", "timeoutSeconds")}
    if props.get("machine"):
        out["machine"] = props["machine"]
    return out


class MemberGate(Resource):
    """Waits until control-plane member ``member`` runs on the machine with ``provider_id``
    and reports full, healthy etcd membership (see the module docstring)."""

    providerId: pulumi.Output[str]  # noqa: N815 - a dynamic resource's outputs keep their property names
    lastSeen: pulumi.Output[str]  # noqa: N815

    def __init__(self, name: str, *, member: str, node_name: str, provider_id: pulumi.Input[str],
                 api_server_url: pulumi.Input[str], kubeconfig: pulumi.Input[str],
                 timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS, machine: pulumi.Input[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        """``machine``: the machine's own id where the provider ID stays the same when the machine
        is replaced (GCP names instances, so a member's replacement has its provider ID); the
        member records it (``cfcr_machine_id`` of the node hook) and the gate waits for it."""
        super().__init__(
            MemberGateProvider(),
            name,
            {
                "member": member,
                "nodeName": node_name,
                "providerId": provider_id,
                "url": api_server_url,
                "kubeconfig": pulumi.Output.secret(kubeconfig),
                "timeoutSeconds": timeout_seconds,
                **({"machine": machine} if machine is not None else {}),
                "lastSeen": None,
            },
            opts,
        )
