"""The network-flow check: every flow a working cluster needs, listed once, cloud-neutrally
(:mod:`cfcr.flows.model`), checked against each cloud's rendered network
(``cfcr.<cloud>.flows``, :mod:`cfcr.flows.network`) by :mod:`cfcr.flows.evaluate`.

``python -m cfcr flows --stack NAME [--render DIR]`` prints every flow with PASS, BLOCKED or
UNVERIFIED and the reason, then every rule that admits more than the flows need (OPEN,
:mod:`cfcr.flows.exposure`), and exits 1 when a flow is blocked or a rule is open beyond need.
"""

from cfcr.flows.check import (
    FlowReport,
    check_result,
    check_rows,
    check_stack,
    facts_of,
    network_types,
    read_render_dir,
    reader_for,
    rows_of,
)
from cfcr.flows.evaluate import FlowResult, evaluate
from cfcr.flows.exposure import Exposure, exposures
from cfcr.flows.facts import ClusterFacts, NodeRole, Placement, read_facts
from cfcr.flows.model import Flow, Ports, cluster_flows
from cfcr.flows.network import Network

__all__ = [
    "ClusterFacts",
    "Exposure",
    "Flow",
    "FlowReport",
    "FlowResult",
    "Network",
    "NodeRole",
    "Placement",
    "Ports",
    "check_result",
    "check_rows",
    "check_stack",
    "cluster_flows",
    "evaluate",
    "exposures",
    "facts_of",
    "network_types",
    "read_facts",
    "read_render_dir",
    "reader_for",
    "rows_of",
]
