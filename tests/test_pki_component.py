"""ClusterPki under Pulumi's mock runtime: what it registers, how, and what stays secret."""

from __future__ import annotations

import base64

import pytest
import yaml

from cfcr.pki.component import ByoCa, ClusterPki, ClusterPkiArgs
from cfcr.pki.specs import (
    ControlPlaneMember,
    PkiInputs,
    UserCredential,
    ca_specs,
    certificate_specs,
    is_bootstrap_token,
    kubeadm_ca_cert_hash,
    is_secret_material,
    secret_files,
    validate_encryption_key,
)
from tests.support.pulumi_mocks import MockRecording, pulumi_mocks, resolve, run_program

__all__ = ["pulumi_mocks"]  # the fixture

KEY = "tls:index/privateKey:PrivateKey"
SELF = "tls:index/selfSignedCert:SelfSignedCert"
CSR = "tls:index/certRequest:CertRequest"
SIGNED = "tls:index/locallySignedCert:LocallySignedCert"
COMPONENT = "cfcr:pki:ClusterPki"

INPUTS = PkiInputs(
    cluster_name="t",
    control_plane_nodes=[ControlPlaneMember(f"t-cp-{i}", f"10.0.0.{10 + i}") for i in range(3)],
    users=[UserCredential("alice", ("platform-team",))],
    leaf_validity_hours=4000,
    early_renewal_hours=500,
)


def build(inputs: PkiInputs = INPUTS, **kw: object) -> ClusterPki:
    args = ClusterPkiArgs(inputs, api_server_url="https://api.t:6443", **kw)  # type: ignore[arg-type]
    return run_program(lambda: ClusterPki("pki", args))


def test_every_resource_is_a_child_with_a_derived_stable_name(pulumi_mocks: MockRecording) -> None:
    build()
    comp = pulumi_mocks.get("pki", COMPONENT)
    children = [r for r in pulumi_mocks.resources if r.type != COMPONENT]
    assert children and all(r.parent == comp.urn for r in children)
    assert all(r.name.startswith("pki-") for r in children)

    leaves = [s.name for s in certificate_specs(INPUTS)]
    cas = [c.name for c in ca_specs(INPUTS)]
    assert sorted(pulumi_mocks.names(SIGNED)) == sorted(f"pki-{n}" for n in leaves)
    assert sorted(pulumi_mocks.names(CSR)) == sorted(f"pki-{n}-csr" for n in leaves)
    assert sorted(pulumi_mocks.names(SELF)) == sorted(f"pki-{n}" for n in cas)
    assert sorted(pulumi_mocks.names(KEY)) == sorted(
        [f"pki-{n}-key" for n in leaves] + [f"pki-{n}-key" for n in cas] + ["pki-sa-key"])
    assert {"pki-bootstrap-token-id", "pki-bootstrap-token-secret", "pki-encryption-key"} <= set(
        pulumi_mocks.names())


def test_names_do_not_depend_on_build_order_or_run(pulumi_mocks: MockRecording) -> None:
    build()
    first = sorted(pulumi_mocks.names())
    pulumi_mocks.resources.clear()
    build()
    assert sorted(pulumi_mocks.names()) == first


def test_cas_and_leaves_inputs(pulumi_mocks: MockRecording) -> None:
    build()
    ca = pulumi_mocks.get("pki-ca-g1", SELF)
    assert ca.inputs["isCaCertificate"] is True
    assert ca.inputs["setSubjectKeyId"] is True
    assert ca.inputs["validityPeriodHours"] == 87600
    assert set(ca.inputs["allowedUses"]) == {"cert_signing", "crl_signing", "digital_signature"}
    assert "earlyRenewalHours" not in ca.inputs  # a CA is rotated by generation, never renewed
    assert ca.inputs["subject"]["commonName"] == "t-ca-g1"

    for spec in certificate_specs(INPUTS):
        cert = pulumi_mocks.get(f"pki-{spec.name}", SIGNED)
        assert cert.inputs["validityPeriodHours"] == 4000
        assert cert.inputs["earlyRenewalHours"] == 500
        assert tuple(cert.inputs["allowedUses"]) == spec.usages
        csr = pulumi_mocks.get(f"pki-{spec.name}-csr", CSR)
        assert csr.inputs["subject"]["commonName"] == spec.common_name
        assert csr.inputs["subject"].get("organization") == (
            spec.organizations[0] if spec.organizations else None)
        assert tuple(csr.inputs.get("dnsNames", ())) == spec.dns_names
        assert tuple(csr.inputs.get("ipAddresses", ())) == spec.ip_addresses
        # signed by the right family's CA
        issuer = {"cluster": "ca", "etcd": "etcd-ca", "front-proxy": "front-proxy-ca"}[spec.issuer]
        ca_cert = pulumi_mocks.get(f"pki-{issuer}-g1", SELF)
        assert cert.inputs["caCertPem"] == ca_cert.state["certPem"]
        assert ca_cert.urn in cert.dependencies


def test_cas_never_depend_on_leaves(pulumi_mocks: MockRecording) -> None:
    build()
    leaf_urns = {r.urn for r in pulumi_mocks.resources if r.type in (SIGNED, CSR)}
    leaf_urns |= {r.urn for r in pulumi_mocks.by_type(KEY) if not r.name.startswith(
        ("pki-ca-", "pki-etcd-ca-", "pki-front-proxy-ca-"))}
    for ca in pulumi_mocks.by_type(SELF):
        assert not set(ca.dependencies) & leaf_urns


def test_keys_and_tokens_are_secret(pulumi_mocks: MockRecording) -> None:
    pki = build()
    for key in pulumi_mocks.by_type(KEY):
        assert "privateKeyPem" in key.additional_secret_outputs
    for cert in pulumi_mocks.by_type(SIGNED):
        assert "caPrivateKeyPem" in cert.secret_inputs
    for csr in pulumi_mocks.by_type(CSR):
        assert "privateKeyPem" in csr.secret_inputs
    for ca in pulumi_mocks.by_type(SELF):
        assert "privateKeyPem" in ca.secret_inputs

    for mkey, output in pki.materials.items():
        _, secret = resolve(output)
        assert secret == is_secret_material(mkey), mkey
    token, secret = resolve(pki.bootstrap_token)
    assert secret and is_bootstrap_token(token)
    enc, secret = resolve(pki.encryption_key)
    assert secret and len(validate_encryption_key(enc)) == 32
    for user in ("admin", "super-admin", "alice"):
        _, secret = resolve(pki.kubeconfig(user, "https://x:6443"))
        assert secret, user
    comp = pulumi_mocks.get("pki", COMPONENT)
    assert {"bootstrap_token", "encryption_key", "materials", "admin_kubeconfig"} <= (
        comp.secret_outputs)
    assert "ca_bundle" not in comp.secret_outputs


def test_materials_cover_secret_files(pulumi_mocks: MockRecording) -> None:
    pki = build()
    assert set(pki.materials) == set(secret_files(INPUTS))
    ca_pem, _ = resolve(pki.materials["ca.crt"])
    assert ca_pem == resolve(pki.ca_bundle)[0]
    ca_state = pulumi_mocks.get("pki-ca-g1", SELF).state["certPem"]
    assert ca_pem.strip() == ca_state.strip()
    assert resolve(pki.ca_cert_hash)[0] == kubeadm_ca_cert_hash(ca_state)
    member_cert, _ = resolve(pki.materials["etcd/members/t-cp-2/server.crt"])
    assert member_cert == pulumi_mocks.get("pki-etcd-server-t-cp-2", SIGNED).state["certPem"]


def test_admin_kubeconfig(pulumi_mocks: MockRecording) -> None:
    pki = build()
    text, secret = resolve(pki.admin_kubeconfig)
    doc = yaml.safe_load(text)
    assert secret
    assert doc["clusters"][0]["cluster"]["server"] == "https://api.t:6443"
    assert doc["users"][0]["name"] == "admin"
    admin_cert = pulumi_mocks.get("pki-admin", SIGNED).state["certPem"]
    assert base64.b64decode(doc["users"][0]["user"]["client-certificate-data"]).decode() == (
        admin_cert)
    with pytest.raises(ValueError, match="no credential for user 'mallory'"):
        pki.kubeconfig("mallory", "https://x")


def test_rotation_to_generation_2_keeps_generation_1_names(pulumi_mocks: MockRecording) -> None:
    build()
    gen1 = set(pulumi_mocks.names())
    for step, (gens, signing) in enumerate([((1, 2), 1), ((1, 2), 2)]):
        pulumi_mocks.resources.clear()
        inputs = PkiInputs(**{**INPUTS.__dict__, "ca_generations": gens,
                              "signing_generation": signing})
        pki = build(inputs)
        names = set(pulumi_mocks.names())
        assert gen1 <= names, step  # nothing of generation 1 is renamed
        assert {"pki-ca-g2", "pki-etcd-ca-g2", "pki-front-proxy-ca-g2"} <= names - gen1
        bundle, _ = resolve(pki.ca_bundle)
        assert bundle.count("BEGIN CERTIFICATE") == 2
        signer = pulumi_mocks.get(f"pki-ca-g{signing}", SELF).state["certPem"]
        assert pulumi_mocks.get("pki-apiserver", SIGNED).inputs["caCertPem"] == signer
        assert bundle.startswith(signer.strip())
        hashes, _ = resolve(pki.ca_cert_hashes)
        assert len(hashes) == 2 and hashes[0] == resolve(pki.ca_cert_hash)[0]


def test_byo_ca_replaces_the_signing_cluster_ca(pulumi_mocks: MockRecording) -> None:
    from tests.support.x509 import issue_all

    real = issue_all(INPUTS)
    byo = ByoCa(cert_pem=real.ca_cert("cluster"), key_pem=real.ca_key("cluster"))
    pki = build(byo_ca=byo)
    names = set(pulumi_mocks.names())
    assert "pki-ca-g1" not in names and "pki-ca-g1-key" not in names
    assert {"pki-etcd-ca-g1", "pki-front-proxy-ca-g1"} <= names  # other families still ours
    apiserver = pulumi_mocks.get("pki-apiserver", SIGNED)
    assert apiserver.inputs["caCertPem"] == real.ca_cert("cluster")
    assert "caPrivateKeyPem" in apiserver.secret_inputs
    key, secret = resolve(pki.materials["ca.key"])
    assert secret and key == real.ca_key("cluster")
    assert resolve(pki.ca_cert_hash)[0] == kubeadm_ca_cert_hash(real.ca_cert("cluster"))


def test_byo_ca_generation_must_be_trusted(pulumi_mocks: MockRecording) -> None:
    with pytest.raises(Exception, match="not in ca_generations"):
        build(byo_ca=ByoCa(cert_pem="x", key_pem="y", generation=3))


def test_rsa_inputs_reach_the_keys(pulumi_mocks: MockRecording) -> None:
    build(PkiInputs(**{**INPUTS.__dict__, "key_algorithm": "RSA", "ca_rsa_bits": 4096}))
    assert pulumi_mocks.get("pki-ca-g1-key", KEY).inputs == {"algorithm": "RSA", "rsaBits": 4096}
    assert pulumi_mocks.get("pki-apiserver-key", KEY).inputs == {"algorithm": "RSA",
                                                                 "rsaBits": 2048}
    assert pulumi_mocks.get("pki-sa-key", KEY).inputs == {"algorithm": "RSA", "rsaBits": 2048}


def test_ecdsa_is_the_default(pulumi_mocks: MockRecording) -> None:
    build()
    assert pulumi_mocks.get("pki-apiserver-key", KEY).inputs == {"algorithm": "ECDSA",
                                                                 "ecdsaCurve": "P256"}
    # the service-account key stays RSA: every token consumer verifies RS256
    assert pulumi_mocks.get("pki-sa-key", KEY).inputs["algorithm"] == "RSA"
