"""The AWS security groups against what each CNI, as rendered, really uses between nodes.

For each CNI a stack of the project uses, the stack is rendered offline once per module. From
the render alone this module derives two things and compares them:

* what the CNI receives from other nodes, read from the chart values and the manifest patches
  cfcr renders (flannel's ``net-conf.json`` as the flannel chart writes it, canal's
  ``canal-config`` patch, the tigera-operator ``Installation``, the cilium chart's tunnel,
  health and Hubble values) by :mod:`tests.support.cni_ports`, completed only by upstream
  defaults cfcr cannot set, each cited there;
* what the rendered ``SecurityGroupIngressRule`` resources open from node group to node group
  (control plane and workers, found from the security groups the instances and the pools'
  launch templates carry), leaving out the control plane's own listeners, which are read
  from the render too (the API server's ``bindPort``, etcd's listen URLs, the kubelet port).

Neither side reads ``cfcr.aws.security.CNI_PORTS`` or ``cfcr.addons.cni.node_ports``, so a
port changed in either the firewall table or the chart values makes the two sides differ.
"""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args
from urllib.parse import urlsplit

import pytest
import yaml

from cfcr.config import ClusterSpec, load_stack
from cfcr.config.schema import CniName
from cfcr.render import render_stack
from tests.support.cni_ports import (
    CONFIG_MAP_PATCH,
    TYPHA_PORT,
    NotSpelledOut,
    Opening,
    Row,
    charts,
    cni_uses,
    of_type,
    rows_of,
)

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
KUBELET_DEFAULT_PORT = 10250
"""The kubelet's port when ``KubeletConfiguration.port`` is unset (kubelet config API v1beta1
default), only used to recognise the kubelet's own rules as not the CNI's."""

STACKS: dict[str, str] = {
    "flannel": "aws-flannel",
    "canal": "aws-canal",
    "calico": "aws-stable",
    "cilium": "aws-cilium",
    "none": "aws-none",
}
"""A stack under stacks/ for every CNI cfcr offers."""


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class Rendered:
    """One stack, rendered once."""

    stack: str
    spec: ClusterSpec
    rows: list[Row]
    user_data: dict[str, bytes]
    manifests: dict[str, Any]


class Renders:
    """Each stack rendered at most once per module."""

    def __init__(self) -> None:
        self._cache: dict[str, Rendered] = {}

    def get(self, cni: str) -> Rendered:
        stack = STACKS[cni]
        if stack not in self._cache:
            result = render_stack(stack, None)
            self._cache[stack] = Rendered(stack, load_stack(stack), rows_of(result.resources), result.user_data,
                                          result.manifests)
        return self._cache[stack]


@pytest.fixture(scope="module")
def renders() -> Renders:
    return Renders()


# ----------------------------------------------------------------------------- the firewall side


def node_groups(rows: list[Row]) -> dict[str, str]:
    """Security group id -> ``control-plane`` or ``worker``: the groups the control-plane
    instances (and their launch templates) and the pools' launch templates carry."""
    templates = {str(t.id): t for t in of_type(rows, LAUNCH_TEMPLATE)}

    def template_groups(template_id: str) -> list[str]:
        return [str(g) for g in templates[template_id].inputs.get("vpcSecurityGroupIds") or []]

    out: dict[str, str] = {}
    for instance in of_type(rows, INSTANCE):
        groups = [str(g) for g in instance.inputs.get("vpcSecurityGroupIds") or []]
        template = instance.inputs.get("launchTemplate")
        if template:
            groups += template_groups(str(template["id"]))
        out.update(dict.fromkeys(groups, "control-plane"))
    for pool in of_type(rows, ASG):
        spec = pool.inputs.get("launchTemplate") or (
            pool.inputs["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"])
        template_id = str(spec.get("id") or spec.get("launchTemplateId"))
        for group in template_groups(template_id):
            assert out.get(group, "worker") == "worker", f"{group} is on control-plane and worker VMs"
            out[group] = "worker"
    assert sorted(set(out.values())) == ["control-plane", "worker"], out
    return out


def _plain(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _kubeadm_documents(rendered: Rendered) -> list[dict[str, Any]]:
    """Every kubeadm document of every role's user-data."""
    out: list[dict[str, Any]] = []
    for data in rendered.user_data.values():
        doc = yaml.safe_load(_plain(data))
        files = {f["path"]: f.get("content", "") for f in doc["write_files"]}
        out += list(yaml.safe_load_all(files["/etc/cfcr/kubeadm.yaml.tmpl"]))
    return out


def control_plane_listeners(rendered: Rendered) -> set[Opening]:
    """The control plane's own node-to-node listeners, read from the render: the API server's
    ``bindPort`` (kubeadm InitConfiguration), etcd's client and peer listen URLs (its static
    pods), the kubelet's port (KubeletConfiguration, or the kubelet's default)."""
    ports: set[int] = set()
    for kubeadm in _kubeadm_documents(rendered):
        if kubeadm["kind"] == "InitConfiguration":
            ports.add(int(kubeadm["localAPIEndpoint"]["bindPort"]))
        if kubeadm["kind"] == "KubeletConfiguration":
            ports.add(int(kubeadm.get("port", KUBELET_DEFAULT_PORT)))
    pods = [m for path, m in rendered.manifests.items() if path.startswith("static-pods/") and path.endswith("/etcd.yaml")]
    assert pods, "no etcd static pod in the render"
    for pod in pods:
        for arg in pod["spec"]["containers"][0]["command"]:
            for flag in ("--listen-client-urls=", "--listen-peer-urls="):
                if arg.startswith(flag):
                    ports |= {int(urlsplit(u).port or 0) for u in arg.removeprefix(flag).split(",")}
    assert len(ports) >= 3, ports  # API, kubelet and at least one etcd port
    return {Opening("tcp", p, p) for p in ports}


def api_bind_port(rendered: Rendered) -> int:
    """The API server's ``bindPort`` on the control plane (kubeadm InitConfiguration)."""
    (port,) = {int(d["localAPIEndpoint"]["bindPort"]) for d in _kubeadm_documents(rendered)
               if d["kind"] == "InitConfiguration"}
    return port


def _within(opening: Opening, listeners: set[Opening]) -> bool:
    """Whether every port of a TCP/UDP opening is a listener's."""
    if opening.protocol not in ("tcp", "udp") or opening.from_port is None or opening.to_port is None:
        return False
    return all(Opening(opening.protocol, p, p) in listeners for p in range(opening.from_port, opening.to_port + 1))


Pair = tuple[str, str]
PAIRS: list[Pair] = [(t, s) for t in ("control-plane", "worker") for s in ("control-plane", "worker")]


def cni_openings(rendered: Rendered, rows: list[Row] | None = None) -> dict[Pair, set[Opening]]:
    """(target group, source group) -> what the rules open between them, less the control plane's
    own listeners."""
    rows = rendered.rows if rows is None else rows
    groups = node_groups(rows)
    listeners = control_plane_listeners(rendered)
    out: dict[Pair, set[Opening]] = {pair: set() for pair in PAIRS}
    for rule in of_type(rows, INGRESS):
        target = groups.get(str(rule.inputs["securityGroupId"]))
        source = groups.get(str(rule.inputs.get("referencedSecurityGroupId")))
        if target is None or source is None:
            continue
        opening = Opening(str(rule.inputs["ipProtocol"]), _int(rule.inputs.get("fromPort")),
                          _int(rule.inputs.get("toPort")))
        if not _within(opening, listeners):
            out[(target, source)].add(opening)
    return out


def mismatches(rendered: Rendered, rows: list[Row] | None = None) -> list[str]:
    """Every difference between what the CNI uses and what the groups open, per pair."""
    rows = rendered.rows if rows is None else rows
    wanted = cni_uses(rendered.spec.cni, rows)
    problems = []
    for (target, source), opened in cni_openings(rendered, rows).items():
        for o in sorted(wanted - opened, key=str):
            problems.append(f"{target} <- {source}: {o} is used by {rendered.spec.cni} but not opened")
        for o in sorted(opened - wanted, key=str):
            problems.append(f"{target} <- {source}: {o} is opened but {rendered.spec.cni} does not use it")
    return problems


# ----------------------------------------------------------------------------- the tests


def test_every_cni_has_a_stack() -> None:
    """Each CNI the config allows is checked, on a stack that really uses it."""
    assert set(STACKS) == set(get_args(CniName))
    for cni in STACKS:
        assert load_stack(STACKS[cni]).cni == cni


@pytest.mark.parametrize("cni", list(STACKS))
def test_security_groups_open_exactly_what_the_rendered_cni_uses(renders: Renders, cni: str) -> None:
    """Between every pair of node groups the rendered rules open the ports the rendered CNI
    configuration uses, and no other port besides the control plane's own listeners."""
    rendered = renders.get(cni)
    wanted = cni_uses(cni, rendered.rows)
    assert bool(wanted) == (cni != "none"), wanted
    assert not wanted & control_plane_listeners(rendered), "a CNI port collides with a control-plane listener"
    assert mismatches(rendered) == []


@pytest.mark.parametrize("cni", list(STACKS))
def test_nodes_admit_only_the_api_from_outside_the_node_groups(renders: Renders, cni: str) -> None:
    """No CNI port is opened to nodes from anywhere else (a CIDR, a load balancer): every rule
    on a node group from another source is the API server's ``bindPort``, on the control plane."""
    rendered = renders.get(cni)
    groups = node_groups(rendered.rows)
    port = api_bind_port(rendered)
    others = [r for r in of_type(rendered.rows, INGRESS) if str(r.inputs["securityGroupId"]) in groups
              and str(r.inputs.get("referencedSecurityGroupId")) not in groups]
    assert others, "the load balancers reach the API servers through a rule"
    for rule in others:
        assert groups[str(rule.inputs["securityGroupId"])] == "control-plane", rule.name
        assert Opening(str(rule.inputs["ipProtocol"]), _int(rule.inputs.get("fromPort")),
                       _int(rule.inputs.get("toPort"))) == Opening("tcp", port, port), rule.name


@pytest.mark.parametrize("cni", ["flannel", "calico", "cilium"])
def test_a_changed_firewall_port_is_caught(renders: Renders, cni: str) -> None:
    """Move one CNI rule of the render to another port: the comparison names it."""
    rendered = renders.get(cni)
    rows = copy.deepcopy(rendered.rows)
    groups = node_groups(rows)
    wanted = cni_uses(cni, rows)
    rule = next(r for r in of_type(rows, INGRESS)
                if groups.get(str(r.inputs["securityGroupId"])) == "worker"
                and groups.get(str(r.inputs.get("referencedSecurityGroupId"))) == "control-plane"
                and r.inputs["ipProtocol"] in ("tcp", "udp")
                and Opening(r.inputs["ipProtocol"], _int(r.inputs["fromPort"]), _int(r.inputs["toPort"])) in wanted)
    rule.inputs["fromPort"] = rule.inputs["toPort"] = int(rule.inputs["fromPort"]) + 1
    found = mismatches(rendered, rows)
    assert len(found) == 2 and all(p.startswith("worker <- control-plane: ") for p in found), found


def test_an_extra_or_missing_firewall_rule_is_caught(renders: Renders) -> None:
    """A rule the CNI does not need (BGP) is named, and so is a pair left without a port."""
    rendered = renders.get("calico")
    rows = copy.deepcopy(rendered.rows)
    template = next(r for r in of_type(rows, INGRESS) if int(r.inputs.get("fromPort") or 0) == TYPHA_PORT)
    extra = copy.deepcopy(template)
    extra.inputs["fromPort"] = extra.inputs["toPort"] = 179
    rows.append(extra)
    rows.remove(template)
    found = mismatches(rendered, rows)
    assert len(found) == 2, found
    assert any("tcp/179-179 is opened but calico does not use it" in p for p in found)
    assert any(f"tcp/{TYPHA_PORT}-{TYPHA_PORT} is used by calico but not opened" in p for p in found)


def _values(rows: list[Row], chart: str) -> dict[str, Any]:
    values = charts(rows)[chart]["values"]
    assert isinstance(values, dict)
    return values


CHART_CHANGES: dict[str, Callable[[list[Row]], None]] = {
    "flannel": lambda rows: _values(rows, "flannel")["flannel"].update(backendPort=4789),
    "calico": lambda rows: _values(rows, "tigera-operator")["installation"]["calicoNetwork"]["ipPools"][0].update(
        encapsulation="IPIP"),
    "cilium": lambda rows: _values(rows, "cilium")["hubble"].update(listenAddress=":4245"),
}


@pytest.mark.parametrize("cni", list(CHART_CHANGES))
def test_a_changed_chart_value_is_caught(renders: Renders, cni: str) -> None:
    """Change one port-bearing value in the rendered chart: the firewall no longer matches."""
    rendered = renders.get(cni)
    rows = copy.deepcopy(rendered.rows)
    CHART_CHANGES[cni](rows)
    found = mismatches(rendered, rows)
    assert len(found) == 2 * len(PAIRS), found  # one port gone and one new, on every pair


def test_a_changed_canal_patch_is_caught(renders: Renders) -> None:
    """canal's port comes from cfcr's ``canal-config`` patch: another port there is caught."""
    rendered = renders.get("canal")
    rows = copy.deepcopy(rendered.rows)
    (patch,) = of_type(rows, CONFIG_MAP_PATCH)
    net_conf = json.loads(patch.inputs["data"]["net-conf.json"])
    net_conf["Backend"]["Port"] = 4789
    patch.inputs["data"]["net-conf.json"] = json.dumps(net_conf)
    assert len(mismatches(rendered, rows)) == 2 * len(PAIRS)


@pytest.mark.parametrize(("cni", "drop"), [
    ("flannel", lambda rows: _values(rows, "flannel")["flannel"].pop("backendPort")),
    ("cilium", lambda rows: _values(rows, "cilium").pop("tunnelPort")),
    ("cilium", lambda rows: _values(rows, "cilium").pop("clusterHealthPort")),
    ("cilium", lambda rows: _values(rows, "cilium")["hubble"].pop("listenAddress")),
    ("calico", lambda rows: _values(rows, "tigera-operator")["installation"]["calicoNetwork"]["ipPools"][0].pop(
        "encapsulation")),
], ids=["flannel-backendPort", "cilium-tunnelPort", "cilium-clusterHealthPort", "cilium-hubble-listenAddress",
        "calico-encapsulation"])
def test_a_port_left_to_a_chart_default_is_refused(renders: Renders, cni: str,
                                                   drop: Callable[[list[Row]], object]) -> None:
    """cfcr writes every port-bearing value out; a render that leaves one to a default fails."""
    rows = copy.deepcopy(renders.get(cni).rows)
    drop(rows)
    with pytest.raises(NotSpelledOut):
        cni_uses(cni, rows)
