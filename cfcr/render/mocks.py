"""Pulumi's mock runtime, recording every registered resource as the engine would see it.

``RecordingMonitor`` keeps, for each resource (see :class:`RecordedResource`): URN, type
token, name, parent URN, the URNs it depends on (in all and per input property), its inputs
as sent to the provider and which of them were secret, the provider's answer, and, for
components, the outputs passed to ``register_outputs``. Secret values stay wrapped
everywhere, so a renderer can mask them (:func:`is_secret`, :func:`unwrap`).

Resources whose providers can run locally (pulumi-tls, pulumi-random) get real outputs from
:mod:`cfcr.render.providers`; AWS resources and data sources get small deterministic
stand-ins (AWS-shaped ids, ARNs, DNS names) from :mod:`cfcr.render.aws`; other cloud resources
echo their inputs with an id. As the engine
does, an output is secret when the resource listed it in ``additional_secret_outputs`` or
when the input of the same name was secret.
"""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _sync_await

from cfcr.render.aws import AWS_PREFIX, ID_KEY, aws_invoke, aws_resource
from cfcr.render.azure import AZURE_PREFIX, azure_invoke, azure_resource
from cfcr.render.gcp import GCP_PREFIX, gcp_invoke, gcp_resource
from cfcr.render.providers import PROVIDERS


@dataclass
class RecordedResource:
    """One resource registration, as the engine received it (secret values stay wrapped)."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    dependencies: list[str]
    """URNs this resource depends on: explicit ``depends_on`` and every input's dependencies."""
    inputs: dict[str, Any]
    """Inputs as sent to the provider; secret values stay wrapped (see :func:`is_secret`)."""
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    """For each input property, the URNs its value came from."""
    secret_inputs: frozenset[str] = frozenset()
    """Top-level input names whose value is, or contains, a secret."""
    additional_secret_outputs: list[str] = field(default_factory=list)
    """Output names the resource asked the engine to treat as secret (the resource option)."""
    provider: str | None = None
    """The provider reference the resource was registered with, if any."""
    id: str | None = None
    """The id the (stand-in) provider gave a custom resource."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """What the (stand-in) provider returned for a custom resource; secret outputs wrapped."""
    registered_outputs: dict[str, Any] = field(default_factory=dict)
    """For components: the outputs passed to ``register_outputs`` (secrets wrapped)."""
    secret_outputs: frozenset[str] = frozenset()
    """Top-level output names that are secret: of ``outputs`` for a custom resource, of
    ``registered_outputs`` for a component."""
    options: dict[str, Any] = field(default_factory=dict)
    """The resource options the engine acts on at update time: ``protect``,
    ``deleteBeforeReplace``, ``replaceOnChanges``, ``ignoreChanges`` (tests; not in resources.json)."""

    @property
    def state(self) -> dict[str, Any]:
        """``outputs``, under the name Pulumi's ``MockMonitor`` gives it."""
        return self.outputs


def is_secret(value: Any) -> bool:
    """True for a value the SDK marked secret on the wire."""
    return bool(rpc.is_rpc_secret(value))


def contains_secret(value: Any) -> bool:
    """True if ``value`` is, or anywhere contains, a secret."""
    if is_secret(value):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    return False


def unwrap(value: Any) -> Any:
    """The plain value, with every secret wrapper removed."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def _secret_keys(props: dict[str, Any]) -> frozenset[str]:
    return frozenset(k for k, v in props.items() if contains_secret(v))


class StandInMocks(pulumi.runtime.Mocks):
    """Local providers for tls/random; every other resource echoes its inputs."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        provider = PROVIDERS.get(args.typ)
        if provider is None and args.typ.startswith(AWS_PREFIX):
            provider = aws_resource
        elif provider is None and args.typ.startswith(GCP_PREFIX):
            provider = gcp_resource
        elif provider is None and args.typ.startswith(AZURE_PREFIX):
            provider = azure_resource
        inputs = unwrap(args.inputs)
        if provider is not None:
            outputs = provider(inputs, f"{args.typ}::{args.name}")
            return str(outputs.pop(ID_KEY, f"{args.name}-id")), outputs
        return f"{args.name}-id", dict(inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        invoke = (gcp_invoke if args.token.startswith(GCP_PREFIX)
                  else azure_invoke if args.token.startswith(AZURE_PREFIX) else aws_invoke)
        result = invoke(args.token, unwrap(args.args))
        return (result if result is not None else {}), []


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that records each registration (see :class:`RecordedResource`).

    ``recorded`` is the record (``resources``, inherited, maps URN to the SDK's own
    registration tuple). Registrations arrive from the SDK's worker threads, in whatever
    order the threads finish; :meth:`put_in_order` (which ``run_program`` calls after each
    run) makes the order canonical, so two runs of one program list resources alike.
    """

    def __init__(self, mocks: pulumi.runtime.Mocks | None = None) -> None:
        super().__init__(mocks or StandInMocks())
        self.recorded: list[RecordedResource] = []
        self._by_urn: dict[str, RecordedResource] = {}
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        # super() made sure this thread has an event loop (needed to deserialize references)
        inputs: dict[str, Any] = dict(rpc.deserialize_properties(request.object))
        secret_inputs = _secret_keys(inputs)
        additional = list(request.additionalSecretOutputs)
        registration = self.resources[response.urn]
        state = dict(registration.state)
        secret_outputs = frozenset(k for k in set(additional) | secret_inputs if k in state)
        rewrap = [k for k in secret_outputs if not is_secret(state[k])]
        for name in rewrap:
            state[name] = rpc.wrap_rpc_secret(state[name])
        if rewrap:
            # answer again with the secret outputs wrapped, as the engine would
            response.object.CopyFrom(_sync_await(rpc.serialize_properties(state, {})))
        record = RecordedResource(
            urn=response.urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=request.parent or None,
            dependencies=sorted(set(request.dependencies)),
            inputs=inputs,
            property_dependencies={k: sorted(set(v.urns)) for k, v in request.propertyDependencies.items()},
            secret_inputs=secret_inputs,
            additional_secret_outputs=additional,
            provider=request.provider or None,
            id=registration.id if request.custom else None,
            outputs=state if request.custom else {},
            secret_outputs=secret_outputs if request.custom else frozenset(),
            options={"protect": bool(request.protect), "deleteBeforeReplace": bool(request.deleteBeforeReplace),
                     "replaceOnChanges": list(request.replaceOnChanges), "ignoreChanges": list(request.ignoreChanges)},
        )
        with self._lock:
            self.recorded.append(record)
            self._by_urn[record.urn] = record
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        outputs: dict[str, Any] = dict(rpc.deserialize_properties(request.outputs))
        with self._lock:
            record = self._by_urn.get(request.urn)
            if record is not None:
                record.registered_outputs = outputs
                record.secret_outputs = _secret_keys(outputs)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]

    def put_in_order(self, start: int = 0) -> None:
        """Sort ``recorded[start:]`` into the canonical order: a parent before its children,
        a dependency before its dependents, and otherwise by name, type and URN."""
        batch = self.recorded[start:]
        index: dict[str, int] = {}
        for i, r in enumerate(batch):
            index.setdefault(r.urn, i)
        waits_on = [
            {index[u] for u in {*r.dependencies, *([r.parent] if r.parent else [])} if u in index} - {i}
            for i, r in enumerate(batch)
        ]
        dependents: list[list[int]] = [[] for _ in batch]
        for i, before in enumerate(waits_on):
            for j in before:
                dependents[j].append(i)
        remaining = [len(w) for w in waits_on]

        def key(i: int) -> tuple[str, str, str, int]:
            return batch[i].name, batch[i].type, batch[i].urn, i

        ready = [key(i) for i, n in enumerate(remaining) if n == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)[-1]
            order.append(i)
            for j in dependents[i]:
                remaining[j] -= 1
                if remaining[j] == 0:
                    heapq.heappush(ready, key(j))
        placed = set(order)
        order += [i for i in range(len(batch)) if i not in placed]  # a cycle cannot happen; keep all anyway
        with self._lock:
            self.recorded[start:] = [batch[i] for i in order]

    # ------------------------------------------------------------------ queries

    def by_type(self, type_token: str) -> list[RecordedResource]:
        """Every recorded resource of one type, in registration order."""
        return [r for r in self.recorded if r.type == type_token]

    def get(self, name: str, type_token: str | None = None) -> RecordedResource:
        """The one recorded resource with this name (and type); ``KeyError`` unless exactly one."""
        hits = [r for r in self.recorded if r.name == name and (type_token is None or r.type == type_token)]
        if len(hits) != 1:
            raise KeyError(f"{len(hits)} resources named {name!r} (type {type_token})")
        return hits[0]

    def names(self, type_token: str | None = None) -> list[str]:
        """Names of every recorded resource (of one type), in registration order."""
        return [r.name for r in self.recorded if type_token is None or r.type == type_token]

    def urn_of(self, type_token: str, name: str) -> str:
        """URN of the one recorded resource with this type and name."""
        return self.get(name, type_token).urn


def install(project: str, stack: str, config: dict[str, str] | None = None) -> RecordingMonitor:
    """Switch the process to the mock runtime with a fresh recording monitor.

    ``config`` maps ``ns:key`` to the string value Pulumi would pass (objects as JSON).
    Call before any resource is created.
    """
    from pulumi.runtime import config as runtime_config
    from pulumi.runtime import settings

    monitor = RecordingMonitor()
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    runtime_config.set_all_config(dict(config or {}), [])
    settings.ROOT.set(None)  # a new root stack per run: its URN carries this project and stack
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor)
    return monitor
