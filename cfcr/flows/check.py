"""The flow check over a render: in-process records or a render on disk.

A cloud's network is read by ``cfcr.<cloud>.flows.read_network(rows)``, found by module name
(no per-cloud branches here). A cloud without that module gets no verdicts: the report says
so plainly while its render has no network resources, and fails once it has some (a network
nobody checks is not a network that works).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cfcr.config import ClusterSpec, load_spec, read_stack_config
from cfcr.flows.evaluate import Evaluator, FlowResult
from cfcr.flows.exposure import Exposure, exposures
from cfcr.flows.facts import ClusterFacts, PrivateServices, read_facts
from cfcr.flows.model import cluster_flows
from cfcr.flows.network import Network

if TYPE_CHECKING:
    from cfcr.render import RecordedResource, RenderResult

Row = Mapping[str, Any]
Reader = Callable[[Sequence[Row]], Network | None]

NETWORK_TYPE_PREFIXES: dict[str, tuple[str, ...]] = {
    "aws": ("aws:ec2/vpc:", "aws:ec2/subnet:", "aws:ec2/securityGroup", "aws:ec2/route", "aws:ec2/natGateway:",
            "aws:ec2/internetGateway:", "aws:ec2/egressOnlyInternetGateway:", "aws:ec2/vpcEndpoint", "aws:vpc/",
            "aws:lb/", "aws:route53/"),
    "gcp": ("gcp:compute/network:", "gcp:compute/subnetwork:", "gcp:compute/firewall", "gcp:compute/router",
            "gcp:compute/route:", "gcp:compute/forwardingRule:", "gcp:compute/globalForwardingRule:",
            "gcp:compute/backendService:", "gcp:compute/regionBackendService:", "gcp:compute/address:",
            "gcp:compute/globalAddress:", "gcp:compute/targetTcpProxy:", "gcp:compute/regionTargetTcpProxy:",
            "gcp:dns/"),
    "azure": ("azure-native:network:", "azure:network/", "azure-native:privatedns:"),
}
"""Type token prefixes of each cloud's network resources (to notice a network with no reader)."""


@dataclass
class FlowReport:
    """Every flow's verdict for one render, or why there are none."""

    stack: str
    cloud: str
    network: str | None
    """The network's label; None when none was read."""
    results: list[FlowResult] = field(default_factory=list)
    flows_unchecked: int = 0
    """Flows listed but not evaluated (no network layer)."""
    problem: str | None = None
    """Why nothing was evaluated."""
    failed: bool = False
    """True when the problem itself fails the check (network resources but no reader)."""
    exposures: list[Exposure] = field(default_factory=list)
    """What the network admits that no flow needs (:mod:`cfcr.flows.exposure`)."""

    @property
    def blocked(self) -> list[FlowResult]:
        return [r for r in self.results if r.status == "BLOCKED"]

    @property
    def unverified(self) -> list[FlowResult]:
        return [r for r in self.results if r.status == "UNVERIFIED"]

    @property
    def passed(self) -> list[FlowResult]:
        return [r for r in self.results if r.status == "PASS"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked and not self.exposures

    def status_of(self, flow_id: str) -> str:
        return next(r.status for r in self.results if r.flow.id == flow_id)

    def format(self, verbose: bool = False) -> str:
        if self.problem is not None:
            head = f"flows of stack {self.stack} ({self.cloud}): {'FAILED' if self.failed else 'NOT CHECKED'}"
            return f"{head}: {self.problem}"
        counts = ", ".join(f"{len(group)} {name}" for name, group in
                           (("PASS", self.passed), ("BLOCKED", self.blocked), ("UNVERIFIED", self.unverified)) if group)
        opened = f"; {len(self.exposures)} rules OPEN beyond need" if self.exposures else "; nothing open beyond them"
        lines = [f"flows of stack {self.stack} ({self.cloud}, {self.network}): {len(self.results)} flows: {counts}"
                 f"{opened}"]
        width = max((len(r.flow.id) for r in self.results), default=0)
        for r in self.results:
            lines.append(f"{r.status:<10} {r.flow.id:<{width}}  {r.flow.text()}")
            lines.append(f"{'':<10} {'':<{width}}  needed: {r.flow.reason}")
            if r.status != "PASS" or verbose:
                word = {"PASS": "how", "BLOCKED": "why", "UNVERIFIED": "unknown"}[r.status]
                for detail in r.details:
                    lines.append(f"{'':<10} {'':<{width}}  {word}: {detail}")
        for e in self.exposures:
            lines.append(f"{'OPEN':<10} {e.text()}")
        return "\n".join(lines)


def network_types(cloud: str, rows: Sequence[Row]) -> list[str]:
    """The network resource types in ``rows`` (by :data:`NETWORK_TYPE_PREFIXES`)."""
    prefixes = NETWORK_TYPE_PREFIXES.get(cloud, ())
    return sorted({str(r.get("type")) for r in rows if str(r.get("type", "")).startswith(prefixes)})


def _flows_module(cloud: str) -> Any:
    """``cfcr.<cloud>.flows``, or None when the cloud has none."""
    name = f"cfcr.{cloud}.flows"
    try:
        found = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        found = None
    return importlib.import_module(name) if found is not None else None


def reader_for(cloud: str) -> Reader | None:
    """``cfcr.<cloud>.flows.read_network``, if that module exists."""
    module = _flows_module(cloud)
    if module is None:
        return None
    read: Reader = module.read_network
    return read


def private_services_of(spec: ClusterSpec) -> PrivateServices | None:
    """What an air-gapped cluster needs of its cloud's private endpoints
    (``cfcr.<cloud>.flows.private_services``); None when ``spec``'s network is not air-gapped."""
    if not spec.networking.air_gapped:
        return None
    module = _flows_module(spec.cloud)
    if module is None or not hasattr(module, "private_services"):
        raise ValueError(f"cfcr:networking.airGapped: cfcr/{spec.cloud}/flows.py says nothing of the private "
                         f"endpoints an air-gapped {spec.cloud} cluster needs (private_services)")
    services: PrivateServices = module.private_services(spec)
    return services


def check_rows(
    spec: ClusterSpec,
    rows: Sequence[Row],
    user_data: Mapping[str, bytes | str],
    *,
    stack: str | None = None,
    reader: Reader | None = None,
) -> FlowReport:
    """Check every flow of ``spec``'s cluster against the render ``rows`` (resources.json rows)
    and its ``user_data`` (by role). ``reader`` overrides the cloud's own."""
    stack = stack or str(spec.name)
    facts = read_facts(spec, rows, user_data, private_services_of(spec))
    flows = cluster_flows(facts)
    read = reader or reader_for(spec.cloud)
    if read is None:
        found = network_types(spec.cloud, rows)
        if found:
            return FlowReport(stack, spec.cloud, None, flows_unchecked=len(flows), failed=True, problem=(
                f"the {spec.cloud} render has network resources ({', '.join(found)}) but cfcr has no flow reader "
                f"for {spec.cloud} (cfcr/{spec.cloud}/flows.py with read_network): {len(flows)} flows cannot be checked"))
        return FlowReport(stack, spec.cloud, None, flows_unchecked=len(flows), problem=(
            f"no network layer rendered for {spec.cloud}: {len(flows)} flows not checked"))
    network = read(rows)
    if network is None:
        return FlowReport(stack, spec.cloud, None, flows_unchecked=len(flows), problem=(
            f"no network layer rendered for {spec.cloud}: {len(flows)} flows not checked"))
    evaluator = Evaluator(network, facts)
    results = [evaluator.evaluate(f) for f in flows]
    return FlowReport(stack, spec.cloud, network.label, results=results, exposures=exposures(evaluator))


def facts_of(spec: ClusterSpec, rows: Sequence[Row], user_data: Mapping[str, bytes | str]) -> ClusterFacts:
    """The facts :func:`check_rows` builds its flow list from (for tests and tools)."""
    return read_facts(spec, rows, user_data, private_services_of(spec))


def rows_of(records: Sequence[RecordedResource]) -> list[dict[str, Any]]:
    """In-process records as resources.json rows (secrets masked)."""
    from cfcr.render.writer import resource_entries

    return resource_entries(list(records), show_secrets=False)


def check_result(spec: ClusterSpec, result: RenderResult) -> FlowReport:
    """Check an in-process render (:func:`cfcr.render.render_stack`'s result)."""
    return check_rows(spec, rows_of(result.resources), result.user_data, stack=result.stack)


class RenderDirError(Exception):
    """A render directory that cannot be checked."""


def read_render_dir(path: Path) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """The rows and user-data of a render written by ``cfcr render --out``."""
    resources = path / "resources.json"
    if not resources.is_file():
        raise RenderDirError(f"{resources}: no such file (write a render with `cfcr render --stack NAME --out {path}`)")
    try:
        rows = json.loads(resources.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RenderDirError(f"{resources}: {exc}") from exc
    if not isinstance(rows, list) or any(not isinstance(r, dict) or "id" not in r or "outputs" not in r for r in rows):
        raise RenderDirError(f"{resources}: rows without id and outputs (an older render); render the stack again")
    user_data = {p.parent.name: p.read_bytes() for p in sorted((path / "nodes").glob("*/user-data"))}
    return rows, user_data


def check_stack(stack: str, *, project_dir: Path | None = None, render_dir: Path | None = None,
                config: dict[str, Any] | None = None) -> FlowReport:
    """Check a stack (its stack file, or ``config``): its render on disk (``render_dir``), else a
    fresh in-process render."""
    raw = config if config is not None else read_stack_config(stack, project_dir)
    spec = load_spec(raw, stack)
    if render_dir is not None:
        rows, user_data = read_render_dir(render_dir)
        return check_rows(spec, rows, user_data, stack=stack)
    from cfcr.render import render_stack

    return check_result(spec, render_stack(stack, None, project_dir=project_dir, config=raw))
