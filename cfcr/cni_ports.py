"""The ports each CNI needs between nodes: the one table the CNI's chart values, every cloud's
firewall and the flow check read (so they cannot drift apart).

Every overlay is VXLAN on its project's own default port, written out explicitly: 8472 (the
Linux kernel's historical VXLAN port) for flannel, canal and Cilium, 4789 (the IANA port) for
Calico. tests/test_cni_ports.py holds the rendered chart values and the rendered firewall
against each other and against the upstream defaults cfcr cannot set.
"""

from __future__ import annotations

from dataclasses import dataclass

VXLAN_PORTS: dict[str, int] = {"flannel": 8472, "canal": 8472, "cilium": 8472, "calico": 4789}
"""UDP port of each CNI's VXLAN overlay (the projects' defaults)."""
CILIUM_HEALTH_PORT = 4240
"""Cilium's cluster health port (the agent's default, ``pkg/defaults`` ``ClusterHealthPort``)."""
HUBBLE_PORT = 4244
"""Hubble server port on every node (the chart's default ``hubble.listenAddress`` ``:4244``)."""
TYPHA_PORT = 5473
"""Calico Typha's port (calico-node connects to it on other nodes)."""
ICMP_ECHO_REQUEST = 8
"""ICMP type of an echo request (Cilium's health checks ping other nodes)."""


@dataclass(frozen=True)
class NodePort:
    """A port the nodes must accept from each other for the CNI."""

    protocol: str
    """tcp, udp or icmp."""
    port: int
    """Port number (ICMP type for icmp)."""
    purpose: str
    """What uses it."""
    name: str = ""
    """Short stable name (part of firewall rules' resource names)."""


def node_ports(cni: str) -> list[NodePort]:
    """Node-to-node ports the CNI needs (for the cloud firewalls and the flow check)."""
    if cni == "none":
        return []
    vxlan = NodePort("udp", VXLAN_PORTS[cni], "VXLAN overlay", "vxlan")
    return {
        "flannel": [vxlan],
        "canal": [vxlan],
        # cfcr's calico runs VXLAN encapsulation (no BGP, no IP-in-IP); typha when it scales out
        "calico": [vxlan, NodePort("tcp", TYPHA_PORT, "Calico Typha", "typha")],
        "cilium": [vxlan, NodePort("tcp", CILIUM_HEALTH_PORT, "Cilium health checks", "health"),
                   NodePort("tcp", HUBBLE_PORT, "Hubble server", "hubble"),
                   NodePort("icmp", ICMP_ECHO_REQUEST, "Cilium health (echo request)", "icmp-echo")],
    }[cni]
