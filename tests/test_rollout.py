"""The control-plane rollout gate (cfcr/bootstrap/rollout.py): what it accepts as a member back,
and that it neither waits for a new cluster nor passes a replaced member on its old Node.
The gate against a real API server, while a member is replaced: tests/test_member_drills_real.py."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from cfcr.addons.gate import credentials_from_kubeconfig
from cfcr.bootstrap.rollout import (
    MemberGateProvider,
    MemberNotReadyError,
    member_record_path,
    member_status,
    wait_for_member,
)
from tests.test_addons_gate import Pki, _Handler, _kubeconfig, pki, server  # noqa: F401 - the fixtures

NEW = "aws:///us-east-1a/i-0new"
OLD = "aws:///us-east-1a/i-0old"


def node(provider: str | None, ready: str = "True") -> dict[str, Any]:
    return {
        "metadata": {"name": "ip-10-0-0-10.ec2.internal"},
        "spec": {"providerID": provider} if provider else {},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


def record(provider: str | None) -> dict[str, Any] | None:
    return None if provider is None else {"metadata": {"name": "cfcr-member-c-cp-0"}, "data": {"providerID": provider}}


@pytest.mark.parametrize(("rec", "doc", "ready", "says"), [
    (None, node(NEW), False, "record names None"),
    (record(OLD), node(OLD), False, "record names 'aws:///us-east-1a/i-0old'"),
    (record(NEW), None, False, "does not exist"),
    (record(NEW), node(OLD), False, "still belongs to aws:///us-east-1a/i-0old"),
    (record(NEW), node(NEW, ready="False"), False, "not Ready"),
    (record(NEW), node(NEW), True, "ready"),
    (record(NEW), node(None), True, "ready"),  # registered, the provider ID not yet set by the kubelet
])
def test_a_member_is_back_only_on_its_new_machine_as_a_healthy_voter(
        rec: dict[str, Any] | None, doc: dict[str, Any] | None, ready: bool, says: str) -> None:
    got, seen = member_status(rec, doc, NEW)
    assert got is ready
    assert says in seen


GCE = "gce://p/europe-west4-a/c-cp-0"


def test_where_the_provider_id_outlives_the_machine_the_gate_waits_for_the_machine_id() -> None:
    """GCP: a member replaced under its name keeps its provider ID; only the instance id tells the
    new machine from the one that was there (the record of the old one must not pass)."""
    old = {"metadata": {"name": "cfcr-member-c-cp-0"}, "data": {"providerID": GCE, "machine": "111"}}
    new = {"metadata": {"name": "cfcr-member-c-cp-0"}, "data": {"providerID": GCE, "machine": "222"}}
    got, seen = member_status(old, node(GCE), GCE, machine="222")
    assert got is False and "machine '111'" in seen
    assert member_status(new, node(GCE), GCE, machine="222")[0] is True
    assert member_status(old, node(GCE), GCE)[0] is True, "without a machine id the provider ID decides"
    provider = MemberGateProvider()
    base = {"member": "c-cp-0", "nodeName": "n", "providerId": GCE, "url": "https://x", "machine": "111"}
    assert provider.diff("g", base, {**base, "machine": "222"}).changes, "a new instance under the same name waits"
    assert not provider.diff("g", base, dict(base)).changes


def test_the_record_lives_where_no_node_may_write() -> None:
    """Nodes may change their own Node (NodeRestriction), never a ConfigMap in kube-system."""
    assert member_record_path("c-cp-0") == "/api/v1/namespaces/kube-system/configmaps/cfcr-member-c-cp-0"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_gate_created_while_no_api_answers_does_not_wait(pki: Pki) -> None:  # noqa: F811
    """A new cluster: its members boot together, so the first gates pass at once. (A cluster
    answering /readyz but not 200 is being born too: tests/test_addons_gate.py's server.)"""
    url = f"https://127.0.0.1:{_closed_port()}"
    props = {"member": "c-cp-0", "nodeName": "n", "providerId": NEW, "url": url,
             "kubeconfig": _kubeconfig(url, pki), "timeoutSeconds": 1}
    result = MemberGateProvider().create(props)
    assert result.id == "member-c-cp-0"
    assert result.outs is not None and "a new cluster" in result.outs["lastSeen"]
    assert "kubeconfig" not in result.outs, "the credential is not kept in state"


def test_a_gate_created_while_the_api_is_not_ready_does_not_wait(pki: Pki,  # noqa: F811
                                                                 server: tuple[str, type[_Handler]]) -> None:  # noqa: F811
    """A retried first deploy: one member's API server answers, its etcd has no quorum yet
    (/readyz 500). Waiting would deadlock: the next members are created after this gate."""
    url, handler = server
    handler.answers[:] = [500]
    props = {"member": "c-cp-1", "nodeName": "n", "providerId": NEW, "url": url,
             "kubeconfig": _kubeconfig(url, pki), "timeoutSeconds": 1}
    result = MemberGateProvider().create(props)
    assert result.outs is not None and "HTTP 500" in result.outs["lastSeen"]
    assert [path for path, _ in handler.seen] == ["/readyz"], "no wait: one look at the endpoint"


def test_an_updated_gate_waits_and_names_the_member_when_it_gives_up(pki: Pki) -> None:  # noqa: F811
    url = f"https://127.0.0.1:{_closed_port()}"
    _, creds = credentials_from_kubeconfig(_kubeconfig(url, pki))
    ticks = iter(range(0, 1000, 10))
    with pytest.raises(MemberNotReadyError) as err:
        wait_for_member(url, creds, "c-cp-1", "ip-10-0-0-11.ec2.internal", NEW, timeout_seconds=30,
                        clock=lambda: float(next(ticks)), sleep=lambda _: None)
    text = str(err.value)
    assert "control-plane member c-cp-1 (Node ip-10-0-0-11.ec2.internal, aws:///us-east-1a/i-0new)" in text
    assert "the API did not answer" in text and "bootstrap.log" in text


def test_a_gate_changes_only_when_its_member_or_machine_does() -> None:
    base = {"member": "m", "nodeName": "n", "providerId": NEW, "url": "https://x:6443"}
    provider = MemberGateProvider()
    assert not provider.diff("id", base, dict(base)).changes
    assert provider.diff("id", base, {**base, "providerId": OLD}).changes
    assert provider.diff("id", base, {**base, "providerId": OLD}).replaces == []
