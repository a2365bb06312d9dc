"""What each CNI, as cfcr renders it, uses between nodes: read from the render's chart values
and manifest patches, never from cfcr's own port tables (``cfcr.addons.cni.node_ports``,
``cfcr.aws.security.CNI_PORTS``), so tests can hold those tables and the firewalls against it.

Only what cfcr's rendered values cannot spell out comes from upstream, each constant citing
the source read for it. flannel's and canal's VXLAN port and every cilium port must be written
in the render: a missing one raises :class:`NotSpelledOut`, never falls back to a default.

Quick use::

    from tests.support.cni_ports import cni_uses, rows_of
    cni_uses("cilium", rows_of(render_stack("aws-cilium", None).resources))
    # {Opening("udp", 8472, 8472), Opening("tcp", 4240, 4240), Opening("icmp", 8, 0), ...}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cfcr.render import RecordedResource, unwrap

CHART = "kubernetes:helm.sh/v4:Chart"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
CONFIG_MAP_PATCH = "kubernetes:core/v1:ConfigMapPatch"

# ----------------------------------------------------------------------------- upstream defaults

FELIX_VXLAN_PORT = 4789
"""Calico Felix's VXLAN port when no FelixConfiguration sets ``vxlanPort``: projectcalico/calico
``felix/config/config_params.go`` (``VXLANPort int `config:"int;4789"```), Calico v3.31. The
tigera-operator chart sets it only through ``defaultFelixConfiguration`` (charts/tigera-operator/
templates/crs/configmap-felixconfiguration-templates.yaml), which cfcr leaves disabled, and the
``Installation`` API has no VXLAN port field."""
TYPHA_PORT = 5473
"""Typha's port, which Felix on every node dials: tigera/operator ``pkg/render/typha.go``
(``TyphaPort int32 = 5473``), a constant of the operator that every operator-installed Calico
runs; not configurable through the chart or the ``Installation``. Canal's manifest
(projectcalico/calico ``manifests/canal.yaml``, ``canal-config``: ``typha_service_name: "none"``)
runs no Typha."""
CILIUM_ICMP_ECHO = ("icmp", 8, 0)
"""cilium-health also pings every node (ICMP echo request, type 8 code 0) when
``healthChecking`` is on: cilium/cilium ``Documentation/operations/system_requirements.rst``,
Firewall Rules ("ICMP 8/0 ingress ... health checks"), Cilium 1.19."""


# ----------------------------------------------------------------------------- the render as rows


@dataclass(frozen=True)
class Opening:
    """One ingress opening: IP protocol and port range (ICMP type and code for icmp)."""

    protocol: str
    from_port: int | None
    to_port: int | None

    def __str__(self) -> str:
        return f"{self.protocol}/{self.from_port}-{self.to_port}"


@dataclass
class Row:
    """A rendered resource, inputs unwrapped (a plain copy, so a test may mutate it)."""

    type: str
    name: str
    id: str | None
    inputs: dict[str, Any]


def rows_of(resources: Iterable[RecordedResource]) -> list[Row]:
    """Rows of recorded resources, secrets unwrapped."""
    return [Row(r.type, r.name, r.id, unwrap(r.inputs)) for r in resources]


def of_type(rows: Iterable[Row], token: str) -> list[Row]:
    """The rows of one Pulumi type token."""
    return [r for r in rows if r.type == token]


# ----------------------------------------------------------------------------- the CNI side


class NotSpelledOut(AssertionError):
    """A port the CNI uses is left to an upstream default that cfcr could write out."""


def charts(rows: Iterable[Row]) -> dict[str, dict[str, Any]]:
    """Chart name -> the Chart resource's inputs (an OCI chart, ``oci://<registry>/charts/<name>``
    on a mirrored stack, by its last path segment)."""
    return {str(r.inputs["chart"]).rstrip("/").rsplit("/", 1)[-1]: r.inputs for r in of_type(rows, CHART)}


def flannel_net_conf_from_chart(values: Mapping[str, Any]) -> dict[str, Any]:
    """``net-conf.json``'s ``Backend`` as the flannel chart writes it from its values:
    flannel-io/flannel ``chart/kube-flannel/templates/config.yaml`` (v0.28): for ``vxlan`` and
    ``udp`` a ``Port`` only ``if .Values.flannel.backendPort``, for ``wireguard`` a ``ListenPort``."""
    flannel = values["flannel"]
    backend: dict[str, Any] = {"Type": flannel["backend"]}
    port = flannel.get("backendPort")
    if port:
        backend["ListenPort" if flannel["backend"] == "wireguard" else "Port"] = port
    return {"Network": values.get("podCidr"), "Backend": backend}


def flannel_backend_ports(net_conf: Mapping[str, Any]) -> set[Opening]:
    """What flannel's backend receives from other nodes, as ``net-conf.json`` configures it."""
    backend = net_conf["Backend"]
    kind = backend["Type"]
    if kind == "host-gw":
        return set()
    key = "ListenPort" if kind == "wireguard" else "Port"
    if kind not in ("vxlan", "udp", "wireguard"):
        raise AssertionError(f"flannel backend {kind!r} is not one this test knows")
    if key not in backend:
        raise NotSpelledOut(f"flannel {kind} backend without {key}: flannel's default would apply")
    port = int(backend[key])
    return {Opening("udp", port, port)}


def flannel_ports(rows: list[Row]) -> set[Opening]:
    return flannel_backend_ports(flannel_net_conf_from_chart(charts(rows)["flannel"]["values"]))


def canal_ports(rows: list[Row]) -> set[Opening]:
    """Canal: the upstream manifest, with cfcr's patch of ``kube-system/canal-config``."""
    (manifest,) = of_type(rows, CONFIG_FILE)
    assert urlsplit(str(manifest.inputs["file"])).path.endswith("/manifests/canal.yaml"), manifest.inputs
    (patch,) = [p for p in of_type(rows, CONFIG_MAP_PATCH)
                if (p.inputs["metadata"]["namespace"], p.inputs["metadata"]["name"]) == ("kube-system", "canal-config")]
    return flannel_backend_ports(json.loads(patch.inputs["data"]["net-conf.json"]))


def calico_ports(rows: list[Row]) -> set[Opening]:
    """Calico through the tigera operator: the pools' encapsulation, BGP, and Typha."""
    values = charts(rows)["tigera-operator"]["values"]
    installation = values["installation"]
    assert installation["enabled"] is True
    network = installation["calicoNetwork"]
    felix = values.get("defaultFelixConfiguration") or {}
    vxlan_port = int(felix.get("vxlanPort", FELIX_VXLAN_PORT)) if felix.get("enabled") else FELIX_VXLAN_PORT
    out = {Opening("tcp", TYPHA_PORT, TYPHA_PORT)}
    if "bgp" not in network:
        raise NotSpelledOut("calicoNetwork.bgp unset: the operator's default would apply")
    if network["bgp"] == "Enabled":
        out.add(Opening("tcp", 179, 179))
    for pool in network["ipPools"]:
        if "encapsulation" not in pool:
            raise NotSpelledOut(f"pool {pool.get('name')} without encapsulation: the operator's default would apply")
        encapsulation = str(pool["encapsulation"])
        if encapsulation.startswith("VXLAN"):
            out.add(Opening("udp", vxlan_port, vxlan_port))
        elif encapsulation.startswith("IPIP"):
            out.add(Opening("4", None, None))
        elif encapsulation != "None":
            raise AssertionError(f"encapsulation {encapsulation!r} is not one this test knows")
    return out


def cilium_ports(rows: list[Row]) -> set[Opening]:
    """Cilium from its chart values: the tunnel, cluster health (TCP and ICMP), Hubble."""
    values = charts(rows)["cilium"]["values"]
    out: set[Opening] = set()

    def required(mapping: Mapping[str, Any], key: str) -> Any:
        if key not in mapping:
            raise NotSpelledOut(f"cilium value {key} unset: the chart's default would apply")
        return mapping[key]

    routing = required(values, "routingMode")
    if routing == "tunnel":
        assert required(values, "tunnelProtocol") in ("vxlan", "geneve")
        port = int(required(values, "tunnelPort"))
        out.add(Opening("udp", port, port))
    else:
        assert routing == "native", routing
    if required(values, "healthChecking"):
        port = int(required(values, "clusterHealthPort"))
        out |= {Opening("tcp", port, port), Opening(*CILIUM_ICMP_ECHO)}
    hubble = required(values, "hubble")
    if required(hubble, "enabled"):
        address = str(required(hubble, "listenAddress"))
        if address:
            port = int(address.rsplit(":", 1)[1])
            out.add(Opening("tcp", port, port))
    return out


USES: dict[str, Callable[[list[Row]], set[Opening]]] = {
    "flannel": flannel_ports,
    "canal": canal_ports,
    "calico": calico_ports,
    "cilium": cilium_ports,
    "none": lambda rows: set(),
}


def cni_uses(cni: str, rows: list[Row]) -> set[Opening]:
    """What ``cni`` receives from other nodes, as the rendered ``rows`` configure it."""
    return USES[cni](rows)

