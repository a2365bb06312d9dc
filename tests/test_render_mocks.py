"""The product's mock runtime (cfcr.render): stand-in tls/random providers and what is recorded."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

import pulumi
import pulumi_random as random
import pulumi_tls as tls
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cfcr.render.mocks import RecordingMonitor, is_secret, unwrap
from cfcr.render.runtime import resolve, run_program

KEY = "tls:index/privateKey:PrivateKey"
SELF = "tls:index/selfSignedCert:SelfSignedCert"
CSR = "tls:index/certRequest:CertRequest"
SIGNED = "tls:index/locallySignedCert:LocallySignedCert"


class Pair(pulumi.ComponentResource):
    """A CA and one leaf it signs, as children of one component."""

    def __init__(self, name: str, *, leaf_hours: int = 720, curve: str = "P256") -> None:
        super().__init__("test:render:Pair", name, None)
        child = pulumi.ResourceOptions(parent=self)
        self.ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve=curve, opts=child)
        self.ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=self.ca_key.private_key_pem,
            is_ca_certificate=True,
            set_subject_key_id=True,
            validity_period_hours=87600,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"{name}-ca"),
            opts=child,
        )
        self.leaf_key = tls.PrivateKey(f"{name}-leaf-key", algorithm="ECDSA", ecdsa_curve=curve, opts=child)
        self.csr = tls.CertRequest(
            f"{name}-leaf-csr",
            private_key_pem=self.leaf_key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name="kube-apiserver", organization="cfcr"),
            dns_names=["kubernetes", "api.example.internal"],
            ip_addresses=["10.96.0.1", "10.0.0.10"],
            opts=child,
        )
        self.leaf = tls.LocallySignedCert(
            f"{name}-leaf",
            cert_request_pem=self.csr.cert_request_pem,
            ca_private_key_pem=self.ca_key.private_key_pem,
            ca_cert_pem=self.ca.cert_pem,
            validity_period_hours=leaf_hours,
            early_renewal_hours=24,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.ca]),
        )
        self.register_outputs({
            "ca_cert": self.ca.cert_pem,
            "leaf_key": self.leaf_key.private_key_pem,
            "note": "plain",
        })


def run(program: Any) -> tuple[RecordingMonitor, Any]:
    monitor, result, _ = run_program(program, project="cfcr", stack="test")
    return monitor, result


def pem(value: Any) -> bytes:
    return str(unwrap(value)).encode()


def test_locally_signed_cert_verifies_against_its_ca() -> None:
    monitor, _ = run(lambda: Pair("p"))
    ca = x509.load_pem_x509_certificate(pem(monitor.get("p-ca", SELF).outputs["certPem"]))
    leaf = x509.load_pem_x509_certificate(pem(monitor.get("p-leaf", SIGNED).outputs["certPem"]))
    leaf.verify_directly_issued_by(ca)  # raises on a bad signature or issuer
    ca.verify_directly_issued_by(ca)
    assert leaf.issuer == ca.subject
    # the certificate carries the CSR's key, which is the leaf key's public half
    leaf_key = serialization.load_pem_private_key(pem(monitor.get("p-leaf-key", KEY).outputs["privateKeyPem"]), None)
    assert leaf.public_key() == leaf_key.public_key()
    # a different CA does not verify it
    other, _ = run(lambda: Pair("q"))
    other_ca = x509.load_pem_x509_certificate(pem(other.get("q-ca", SELF).outputs["certPem"]))
    with pytest.raises(Exception):
        leaf.verify_directly_issued_by(other_ca)


def test_sans_usages_and_validity_follow_the_inputs() -> None:
    monitor, _ = run(lambda: Pair("p", leaf_hours=123))
    ca = x509.load_pem_x509_certificate(pem(monitor.get("p-ca", SELF).outputs["certPem"]))
    leaf = x509.load_pem_x509_certificate(pem(monitor.get("p-leaf", SIGNED).outputs["certPem"]))

    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["kubernetes", "api.example.internal"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.96.0.1"),
                                                        ipaddress.ip_address("10.0.0.10")]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kube-apiserver"
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "cfcr"

    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment and not ku.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(hours=123)

    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    ca_ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_ku.key_cert_sign and ca_ku.crl_sign and not ca_ku.key_encipherment
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == dt.timedelta(hours=87600)

    signed = monitor.get("p-leaf", SIGNED).outputs
    assert signed["validityEndTime"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    csr = x509.load_pem_x509_csr(pem(monitor.get("p-leaf-csr", CSR).outputs["certRequestPem"]))
    assert csr.is_signature_valid


def test_secret_outputs_are_recorded_and_reach_the_program_as_secrets() -> None:
    monitor, pair = run(lambda: Pair("p"))
    key = monitor.get("p-ca-key", KEY)
    assert "privateKeyPem" in key.additional_secret_outputs
    assert "privateKeyPem" in key.secret_outputs and is_secret(key.outputs["privateKeyPem"])
    assert "publicKeyPem" not in key.secret_outputs and not is_secret(key.outputs["publicKeyPem"])
    assert resolve(pair.ca_key.private_key_pem)[1] is True
    assert resolve(pair.ca_key.public_key_pem)[1] is False

    leaf = monitor.get("p-leaf", SIGNED)
    assert leaf.secret_inputs == {"caPrivateKeyPem"}
    assert is_secret(leaf.inputs["caPrivateKeyPem"]) and not is_secret(leaf.inputs["caCertPem"])
    # as the engine does: an output named like a secret input is secret too
    assert "caPrivateKeyPem" in leaf.secret_outputs
    assert resolve(pair.leaf.ca_private_key_pem)[1] is True
    assert resolve(pair.leaf.cert_pem)[1] is False

    comp = monitor.get("p", "test:render:Pair")
    assert set(comp.registered_outputs) == {"ca_cert", "leaf_key", "note"}
    assert comp.secret_outputs == {"leaf_key"}
    assert unwrap(comp.registered_outputs["ca_cert"]) == unwrap(monitor.get("p-ca", SELF).outputs["certPem"])


def test_ecdsa_keys_are_stable_across_runs_and_distinct_per_urn() -> None:
    def keys(curve: str) -> dict[str, str]:
        monitor, _ = run(lambda: Pair("p", curve=curve))
        return {r.name: unwrap(r.outputs["privateKeyPem"]) for r in monitor.by_type(KEY)}

    for curve, ec_curve in (("P224", ec.SECP224R1), ("P256", ec.SECP256R1), ("P384", ec.SECP384R1),
                            ("P521", ec.SECP521R1)):
        first, second = keys(curve), keys(curve)
        assert first == second, curve
        assert first["p-ca-key"] != first["p-leaf-key"], curve
        loaded = serialization.load_pem_private_key(first["p-ca-key"].encode(), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey) and isinstance(loaded.curve, ec_curve)
    # and therefore certificates (fixed epoch, serial from the URN) re-render identically
    a, _ = run(lambda: Pair("p"))
    b, _ = run(lambda: Pair("p"))
    assert a.get("p-leaf", SIGNED).outputs["certPem"] == b.get("p-leaf", SIGNED).outputs["certPem"]


def test_parent_and_dependency_urns_are_recorded() -> None:
    monitor, _ = run(lambda: Pair("p"))
    comp = monitor.urn_of("test:render:Pair", "p")
    assert monitor.get("p", "test:render:Pair").parent == "urn:pulumi:test::cfcr::pulumi:pulumi:Stack::cfcr-test"
    children = [r for r in monitor.recorded if r.urn != comp]
    assert len(children) == 5 and all(r.parent == comp for r in children)
    assert all(r.urn.endswith(f"test:render:Pair${r.type}::{r.name}") for r in children)

    ca_key, ca = monitor.urn_of(KEY, "p-ca-key"), monitor.urn_of(SELF, "p-ca")
    csr, leaf_key = monitor.urn_of(CSR, "p-leaf-csr"), monitor.urn_of(KEY, "p-leaf-key")
    leaf = monitor.get("p-leaf", SIGNED)
    assert set(leaf.dependencies) == {ca_key, ca, csr}
    assert leaf.property_dependencies["caCertPem"] == [ca]
    assert leaf.property_dependencies["caPrivateKeyPem"] == [ca_key]
    assert leaf.property_dependencies["certRequestPem"] == [csr]
    assert monitor.get("p-leaf-csr", CSR).dependencies == [leaf_key]
    assert monitor.get("p-ca-key", KEY).dependencies == []
    assert monitor.get("p-ca", SELF).custom and not monitor.get("p").custom
    assert monitor.get("p-ca", SELF).id == "p-ca-id" and monitor.get("p").id is None


def test_random_stand_ins_have_the_requested_shape_and_are_stable() -> None:
    def program() -> None:
        random.RandomString("s", length=40, special=False, upper=False)
        random.RandomPassword("pw", length=24)
        random.RandomBytes("b", length=32)

    first, _ = run(program)
    again, _ = run(program)
    s = unwrap(first.get("s").outputs["result"])
    assert len(s) == 40 and s.isalnum() and s == s.lower()
    assert len(unwrap(first.get("pw").outputs["result"])) == 24
    assert "result" in first.get("pw").secret_outputs
    assert len(bytes.fromhex(unwrap(first.get("b").outputs["hex"]))) == 32
    assert [unwrap(r.outputs) for r in first.recorded] == [unwrap(r.outputs) for r in again.recorded]


def test_two_runs_record_the_same_resources_in_the_same_order() -> None:
    def program() -> None:
        for name in ("a", "b", "c"):
            Pair(name)
        random.RandomBytes("token", length=16)

    runs = [run(program)[0] for _ in range(3)]
    orders = [[r.urn for r in m.recorded] for m in runs]
    assert len(orders[0]) == 3 * 6 + 1
    assert orders[1] == orders[0] and orders[2] == orders[0]
    texts = [[(r.urn, unwrap(r.inputs), unwrap(r.outputs)) for r in m.recorded] for m in runs]
    assert texts[1] == texts[0]


def test_render_writes_integral_numbers_as_integers() -> None:
    """Pulumi's wire format turns the program's ints into floats; the render writes them back as
    integers (``toPort: 6443``) and keeps other floats (``maxPrice: 0.5``), secrets included."""
    from cfcr.render.writer import mask, whole

    assert whole({"toPort": 6443.0, "maxPrice": 0.5, "n": [1.0, -1.0, 2.5], "s": "1.0", "b": True}) == {
        "toPort": 6443, "maxPrice": 0.5, "n": [1, -1, 2.5], "s": "1.0", "b": True}
    assert type(whole(3.0)) is int and type(whole(True)) is bool and whole(float("inf")) == float("inf")
    assert mask({"a": {"port": 443.0}}, show_secrets=False) == {"a": {"port": 443}}
