"""Pulumi's mock runtime, recording every registered resource as the engine would see it.

``RecordingMonitor`` keeps, for each resource: URN, type token, name, parent URN, the URNs it
depends on, and its inputs as sent to the provider (secrets kept wrapped so a renderer can
mask them). Resources whose providers can run locally (pulumi-tls, pulumi-random) get real
outputs from :mod:`cfcr.render.providers`; cloud resources echo their inputs with an id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from cfcr.render.providers import PROVIDERS


@dataclass
class RecordedResource:
    """One resource registration, as the engine received it."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    dependencies: list[str]
    inputs: dict[str, Any]
    """Inputs as sent to the provider; secret values stay wrapped (see :func:`is_secret`)."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """What the (stand-in) provider returned."""
    secret_outputs: list[str] = field(default_factory=list)
    """Output names the resource asked the engine to treat as secret."""
    outputs_registered: dict[str, Any] = field(default_factory=dict)
    """For components: the outputs passed to ``register_outputs``."""


def is_secret(value: Any) -> bool:
    """True for a value the SDK marked secret on the wire."""
    return bool(rpc.is_rpc_secret(value))


def unwrap(value: Any) -> Any:
    """The plain value, with every secret wrapper removed."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


class StandInMocks(pulumi.runtime.Mocks):
    """Local providers for tls/random; every other resource echoes its inputs."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        provider = PROVIDERS.get(args.typ)
        inputs = unwrap(args.inputs)
        if provider is not None:
            return f"{args.name}-id", provider(inputs, f"{args.typ}::{args.name}")
        return f"{args.name}-id", dict(inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that records each registration in order (see :class:`RecordedResource`)."""

    def __init__(self, mocks: pulumi.runtime.Mocks | None = None) -> None:
        super().__init__(mocks or StandInMocks())
        self.recorded: list[RecordedResource] = []
        self._by_urn: dict[str, RecordedResource] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        _ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object)
        secret_outputs = list(request.additionalSecretOutputs)
        registration = self.resources[response.urn]
        state = dict(registration.state)
        for name in secret_outputs:
            if name in state:
                state[name] = rpc.wrap_rpc_secret(state[name])
        if secret_outputs:
            # answer again with the secret outputs wrapped, as the engine would
            obj = _sync_await(rpc.serialize_properties(state, {}))
            response.object.CopyFrom(obj)
        record = RecordedResource(
            urn=response.urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=request.parent or None,
            dependencies=sorted(set(request.dependencies)),
            inputs=dict(inputs),
            outputs=state,
            secret_outputs=secret_outputs,
        )
        self.recorded.append(record)
        self._by_urn[record.urn] = record
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        record = self._by_urn.get(request.urn)
        if record is not None:
            record.outputs_registered = dict(rpc.deserialize_properties(request.outputs))
        return super().RegisterResourceOutputs(request)

    def by_type(self, type_token: str) -> list[RecordedResource]:
        """Every recorded resource of one type, in registration order."""
        return [r for r in self.recorded if r.type == type_token]


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
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor)
    return monitor
