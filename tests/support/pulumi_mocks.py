"""Pulumi's mock runtime, recording every registration for tests to inspect.

Follows the SDK's own pattern: ``pulumi.runtime.set_mocks`` with a ``Mocks`` subclass,
then the resources are built inside the test (never at import time).

Quick use (pytest)::

    from tests.support.pulumi_mocks import RecordingMocks, run_program, resolve
    from tests.support.pulumi_mocks import pulumi_mocks  # noqa: F401  (the fixture)

    def test_something(pulumi_mocks: RecordingMocks) -> None:
        pki = run_program(lambda: ClusterPki("c", args))   # builds, waits for every RPC
        keys = pulumi_mocks.by_type("tls:index/privateKey:PrivateKey")
        assert all(r.parent == pulumi_mocks.urn_of("cfcr:pki:ClusterPki", "c") for r in keys)
        value, secret = resolve(pki.bootstrap_token)

``RecordedResource`` holds what the engine would receive: type, name, urn, parent urn,
dependency urns, inputs (plain values), which top-level inputs were secret, the
additional secret outputs, and — for components — the registered outputs.

Mocks' ``new_resource`` returns the inputs plus fabricated outputs per type token (see
``DEFAULT_OUTPUTS``): tls keys and self-signed certificates are real (so code that parses
them in ``apply`` runs), other PEMs are placeholders, random values have the right shape.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pulumi
import pytest
from google.protobuf import json_format  # type: ignore[import-untyped]
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks, set_mocks
from pulumi.runtime.sync_await import _sync_await

T = TypeVar("T")

_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

OutputFabricator = Callable[[MockResourceArgs], dict[str, Any]]
"""Given a registration, the provider outputs to add to the returned state."""


@dataclass
class RecordedResource:
    """One resource registration as the engine would see it."""

    type: str
    name: str
    urn: str
    parent: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    inputs: dict[str, Any]
    secret_inputs: frozenset[str]
    additional_secret_outputs: list[str]
    custom: bool
    provider: str
    id: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: frozenset[str] = frozenset()


def _contains_secret(value: Any) -> bool:
    if isinstance(value, dict):
        if value.get(_SECRET_SIG_KEY) == _SECRET_SIG:
            return True
        return any(_contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_secret(v) for v in value)
    return False


def _secret_keys(struct: Any) -> frozenset[str]:
    raw = json_format.MessageToDict(struct) if struct is not None else {}
    return frozenset(k for k, v in raw.items() if _contains_secret(v))


class RecordingMocks(Mocks):
    """Mocks that record every registration in ``resources`` (in registration order)."""

    def __init__(self, outputs: Mapping[str, OutputFabricator] | None = None) -> None:
        self.resources: list[RecordedResource] = []
        self.fabricators: dict[str, OutputFabricator] = dict(
            DEFAULT_OUTPUTS if outputs is None else outputs)
        self.calls: list[MockCallArgs] = []
        self._lock = threading.Lock()

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        fabricate = self.fabricators.get(args.typ)
        if fabricate is not None:
            state.update(fabricate(args))
        return f"{args.name}-id", state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.calls.append(args)
        return {}, None

    # ---------------------------------------------------------------- queries

    def by_type(self, type_token: str) -> list[RecordedResource]:
        """Every registration of a type token, in order."""
        return [r for r in self.resources if r.type == type_token]

    def get(self, name: str, type_token: str | None = None) -> RecordedResource:
        """The one registration with this name (and type); ``KeyError`` if absent."""
        hits = [r for r in self.resources
                if r.name == name and (type_token is None or r.type == type_token)]
        if len(hits) != 1:
            raise KeyError(f"{len(hits)} resources named {name!r} (type {type_token})")
        return hits[0]

    def names(self, type_token: str | None = None) -> list[str]:
        """Names of every registration (of a type)."""
        return [r.name for r in self.resources if type_token is None or r.type == type_token]

    def urn_of(self, type_token: str, name: str) -> str:
        """URN of a registration."""
        return self.get(name, type_token).urn

    def _record(self, rec: RecordedResource) -> None:
        with self._lock:
            self.resources.append(rec)

    def _record_outputs(self, urn: str, outputs: dict[str, Any], secret: frozenset[str]) -> None:
        with self._lock:
            for r in self.resources:
                if r.urn == urn:
                    r.outputs = outputs
                    r.secret_outputs = secret


class RecordingMonitor(MockMonitor):
    """MockMonitor that also tells its RecordingMocks the parent, dependencies and
    secrecy of each registration (which ``MockResourceArgs`` does not carry)."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recorder = mocks

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        from pulumi.runtime import rpc

        urn = response.urn
        self.recorder._record(RecordedResource(
            type=request.type,
            name=request.name,
            urn=urn,
            parent=request.parent,
            dependencies=list(request.dependencies),
            property_dependencies={k: list(v.urns)
                                   for k, v in request.propertyDependencies.items()},
            inputs=rpc.deserialize_properties(request.object),
            secret_inputs=_secret_keys(request.object),
            additional_secret_outputs=list(request.additionalSecretOutputs),
            custom=bool(request.custom),
            provider=request.provider,
            id=self.resources[urn].id if urn in self.resources else None,
            state=dict(self.resources[urn].state) if urn in self.resources else {},
        ))
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802
        from pulumi.runtime import rpc

        self.recorder._record_outputs(
            request.urn, rpc.deserialize_properties(request.outputs),
            _secret_keys(request.outputs))
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


def install(mocks: RecordingMocks | None = None, *, project: str = "cfcr",
            stack: str = "test", preview: bool = False) -> RecordingMocks:
    """Point the Pulumi runtime at recording mocks; call before building resources."""
    mocks = mocks or RecordingMocks()
    set_mocks(mocks, project=project, stack=stack, preview=preview,
              monitor=RecordingMonitor(mocks))
    return mocks


@pytest.fixture
def pulumi_mocks() -> Iterator[RecordingMocks]:
    """Fresh recording mocks installed for one test."""
    yield install()


def run_program(program: Callable[[], T]) -> T:
    """Run ``program`` under the mock runtime (as ``@pulumi.runtime.test`` does) and
    return its result once every registration has completed."""
    box: list[T] = []

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def _run() -> None:
        box.append(program())

    _run()
    return box[0]


def resolve(output: pulumi.Output[T]) -> tuple[T, bool]:
    """(value, is_secret) of an Output after ``run_program``."""
    value = _sync_await(output.future())
    if value is None:
        raise ValueError("the output is unknown (preview) or None")
    secret: bool = _sync_await(output.is_secret())
    return value, secret


# -------------------------------------------------------------------- fabricators


def _fake_key(_: MockResourceArgs) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return {
        "privateKeyPem": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode(),
        "publicKeyPem": key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
    }


def _fake_self_signed(args: MockResourceArgs) -> dict[str, Any]:
    """A real self-signed certificate for the registered subject (fresh key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cn = str((args.inputs.get("subject") or {}).get("commonName") or args.name)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    hours = int(args.inputs.get("validityPeriodHours") or 1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(hours=hours))
            .add_extension(x509.BasicConstraints(ca=bool(args.inputs.get("isCaCertificate")),
                                                 path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return {"certPem": cert.public_bytes(serialization.Encoding.PEM).decode()}


def _placeholder_pem(kind: str) -> OutputFabricator:
    def fabricate(args: MockResourceArgs) -> dict[str, Any]:
        body = base64.b64encode(hashlib.sha256(args.name.encode()).digest()).decode()
        pem = f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"
        field_name = "certRequestPem" if kind == "CERTIFICATE REQUEST" else "certPem"
        return {field_name: pem}
    return fabricate


def _random_text(args: MockResourceArgs) -> dict[str, Any]:
    length = int(args.inputs.get("length") or 16)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    digest = hashlib.sha256(args.name.encode()).digest() * (length // 32 + 1)
    return {"result": "".join(alphabet[b % len(alphabet)] for b in digest[:length])}


def _random_bytes(args: MockResourceArgs) -> dict[str, Any]:
    length = int(args.inputs.get("length") or 32)
    raw = (hashlib.sha256(args.name.encode()).digest() * (length // 32 + 1))[:length]
    return {"base64": base64.b64encode(raw).decode(), "hex": raw.hex()}


DEFAULT_OUTPUTS: dict[str, OutputFabricator] = {
    "tls:index/privateKey:PrivateKey": _fake_key,
    "tls:index/selfSignedCert:SelfSignedCert": _fake_self_signed,
    "tls:index/certRequest:CertRequest": _placeholder_pem("CERTIFICATE REQUEST"),
    "tls:index/locallySignedCert:LocallySignedCert": _placeholder_pem("CERTIFICATE"),
    "random:index/randomString:RandomString": _random_text,
    "random:index/randomPassword:RandomPassword": _random_text,
    "random:index/randomBytes:RandomBytes": _random_bytes,
}
"""Output fabricators per type token for the providers cfcr uses."""
