"""Real X.509 from our specs, verified with cryptography's path validation."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    ServerVerifier,
    Store,
    VerificationError,
)

from cfcr.pki.specs import (
    CertSpec,
    ControlPlaneMember,
    Family,
    PkiInputs,
    UserCredential,
    certificate_specs,
    kubeadm_ca_cert_hash,
)
from tests.support.x509 import IssuedPki, issue_all, load_certs

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
INPUTS = PkiInputs(
    cluster_name="t",
    control_plane_nodes=[ControlPlaneMember(f"t-cp-{i}", f"127.0.0.{11 + i}") for i in range(3)],
    api_dns_names=["api.t.example.com"],
    api_ips=["203.0.113.9"],
    users=[UserCredential("alice", ("platform-team",))],
)


@pytest.fixture(scope="module", params=["ECDSA", "RSA"])
def pki(request: pytest.FixtureRequest) -> IssuedPki:
    inputs = INPUTS if request.param == "ECDSA" else PkiInputs(
        **{**INPUTS.__dict__, "key_algorithm": "RSA"})
    return issue_all(inputs, now=NOW)


def store(pki: IssuedPki, family: Family, generations: tuple[int, ...] | None = None) -> Store:
    return Store(load_certs(pki.bundle(family, generations)))


def server_verifier(s: Store, name: x509.GeneralName, at: dt.datetime = NOW) -> ServerVerifier:
    builder = PolicyBuilder().store(s).time(at + dt.timedelta(hours=1))
    if isinstance(name, x509.DNSName):
        return builder.build_server_verifier(name)
    assert isinstance(name, x509.IPAddress)
    return builder.build_server_verifier(name)


def client_verifier(s: Store, at: dt.datetime = NOW) -> ClientVerifier:
    # Kubernetes client certificates carry no SAN: relax only that WebPKI requirement;
    # chain, signature, validity, basic constraints and the clientAuth EKU stay enforced.
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    return (PolicyBuilder().store(s).time(at + dt.timedelta(hours=1))
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
            .build_client_verifier())


def sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return (set(ext.get_values_for_type(x509.DNSName)),
            {str(i) for i in ext.get_values_for_type(x509.IPAddress)})


def ekus(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_every_leaf_matches_its_spec(pki: IssuedPki) -> None:
    for spec in certificate_specs(pki.inputs):
        cert = pki.certs[spec.name]
        subject = cert.subject
        assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [
            spec.common_name]
        assert tuple(a.value for a in subject.get_attributes_for_oid(
            NameOID.ORGANIZATION_NAME)) == spec.organizations
        dns, ips = sans(cert)
        assert dns == set(spec.dns_names), spec.name
        assert ips == {str(ipaddress.ip_address(i)) for i in spec.ip_addresses}, spec.name
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and not bc.value.ca
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.digital_signature
        assert ku.key_encipherment == (pki.inputs.key_algorithm == "RSA")
        assert not ku.key_cert_sign
        want = set()
        if "server_auth" in spec.usages:
            want.add(ExtendedKeyUsageOID.SERVER_AUTH)
        if "client_auth" in spec.usages:
            want.add(ExtendedKeyUsageOID.CLIENT_AUTH)
        assert ekus(cert) == want, spec.name
        life = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert life <= dt.timedelta(hours=spec.validity_hours)
        assert cert.not_valid_after_utc <= NOW + dt.timedelta(hours=pki.inputs.leaf_validity_hours)
        issuer_ca = load_certs(pki.ca_cert(spec.issuer))[0]
        cert.verify_directly_issued_by(issuer_ca)
        for other in {"cluster", "etcd", "front-proxy"} - {spec.issuer}:
            with pytest.raises((ValueError, InvalidSignature)):
                cert.verify_directly_issued_by(load_certs(pki.ca_cert(other))[0])  # type: ignore[arg-type]


def test_cas_are_cas(pki: IssuedPki) -> None:
    for (family, gen), ca in pki.ca_certificates.items():
        bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == 0
        ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.key_cert_sign and ku.crl_sign
        assert ca.subject == ca.issuer
        ca.verify_directly_issued_by(ca)
        assert ca.not_valid_after_utc - ca.not_valid_before_utc == dt.timedelta(
            hours=pki.inputs.ca_validity_hours)
        assert f"g{gen}" in ca.subject.rfc4514_string()


def test_apiserver_serves_every_name_it_is_reached_by(pki: IssuedPki) -> None:
    s = store(pki, "cluster")
    leaf = pki.certs["apiserver"]
    names: list[x509.GeneralName] = [
        x509.DNSName(n) for n in ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                  "kubernetes.default.svc.cluster.local", "api.t.example.com")]
    names += [x509.IPAddress(ipaddress.ip_address(a))
              for a in ("10.96.0.1", "203.0.113.9", "127.0.0.11", "127.0.0.12", "127.0.0.13")]
    for name in names:
        chain = server_verifier(s, name).verify(leaf, [])
        assert chain[-1] == pki.ca_certificates[("cluster", 1)]
    with pytest.raises(VerificationError):
        server_verifier(s, x509.DNSName("evil.example.com")).verify(leaf, [])
    # a server cert from another family's CA does not chain to the cluster CA
    with pytest.raises(VerificationError):
        server_verifier(store(pki, "etcd"), x509.DNSName("kubernetes")).verify(leaf, [])


def test_etcd_member_certs_serve_and_authenticate(pki: IssuedPki) -> None:
    s = store(pki, "etcd")
    for m in pki.inputs.control_plane_nodes:
        for kind in ("server", "peer"):
            leaf = pki.certs[f"etcd-{kind}-{m.name}"]
            for name in (x509.IPAddress(ipaddress.ip_address(m.address)),
                         x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                         x509.DNSName("localhost"), x509.DNSName(m.name)):
                server_verifier(s, name).verify(leaf, [])
            client_verifier(s).verify(leaf, [])  # peers are clients of each other
        # a member's cert is not valid for another member's address
        other = next(o for o in pki.inputs.control_plane_nodes if o != m)
        with pytest.raises(VerificationError):
            server_verifier(s, x509.IPAddress(ipaddress.ip_address(other.address))).verify(
                pki.certs[f"etcd-server-{m.name}"], [])


@pytest.mark.parametrize(("name", "family"), [
    ("apiserver-kubelet-client", "cluster"), ("admin", "cluster"), ("super-admin", "cluster"),
    ("user-alice", "cluster"), ("front-proxy-client", "front-proxy"),
    ("apiserver-etcd-client", "etcd"), ("etcd-healthcheck-client", "etcd"),
])
def test_client_certs_chain_to_their_family_only(pki: IssuedPki, name: str, family: Family) -> None:
    leaf = pki.certs[name]
    verified = client_verifier(store(pki, family)).verify(leaf, [])
    assert verified.chain[0] == leaf
    for other in ("cluster", "etcd", "front-proxy"):
        if other != family:
            with pytest.raises(VerificationError):
                client_verifier(store(pki, other)).verify(leaf, [])  # type: ignore[arg-type]
    # client certs cannot be used to serve
    with pytest.raises(VerificationError):
        server_verifier(store(pki, family), x509.DNSName("kubernetes")).verify(leaf, [])


def test_leaves_expire_within_leaf_validity(pki: IssuedPki) -> None:
    leaf = pki.certs["apiserver"]
    late = NOW + dt.timedelta(hours=pki.inputs.leaf_validity_hours + 1)
    with pytest.raises(VerificationError):
        server_verifier(store(pki, "cluster"), x509.DNSName("kubernetes"), at=late).verify(leaf, [])


def test_rotation_through_the_trust_bundle() -> None:
    base = dict(INPUTS.__dict__)
    step1 = issue_all(PkiInputs(**{**base, "ca_generations": (1,), "signing_generation": 1}),
                      now=NOW)
    # step 2: generation 2 is trusted (distributed in bundles) but signs nothing yet
    step2 = issue_all(PkiInputs(**{**base, "ca_generations": (1, 2), "signing_generation": 1}),
                      reuse=step1, now=NOW)
    assert step2.ca_certificates[("cluster", 1)] == step1.ca_certificates[("cluster", 1)]
    # step 3: generation 2 signs; leaves are re-issued
    step3 = issue_all(PkiInputs(**{**base, "ca_generations": (1, 2), "signing_generation": 2}),
                      reuse=step2, now=NOW)
    assert step3.ca_certificates[("cluster", 2)] == step2.ca_certificates[("cluster", 2)]
    old_leaf, new_leaf = step1.certs["apiserver"], step3.certs["apiserver"]
    assert old_leaf.issuer != new_leaf.issuer

    both = Store(load_certs(step3.ca_bundle))
    assert len(load_certs(step3.ca_bundle)) == 2
    for leaf in (old_leaf, new_leaf):
        server_verifier(both, x509.DNSName("kubernetes")).verify(leaf, [])
    for family in ("etcd", "front-proxy"):
        s = Store(load_certs(step3.bundle(family)))  # type: ignore[arg-type]
        name = "apiserver-etcd-client" if family == "etcd" else "front-proxy-client"
        client_verifier(s).verify(step1.certs[name], [])
        client_verifier(s).verify(step3.certs[name], [])

    # step 4: generation 1 retired; the old leaf no longer verifies, the new one does
    step4 = issue_all(PkiInputs(**{**base, "ca_generations": (2,), "signing_generation": 2}),
                      reuse=step3, now=NOW)
    only2 = Store(load_certs(step4.ca_bundle))
    assert len(load_certs(step4.ca_bundle)) == 1
    server_verifier(only2, x509.DNSName("kubernetes")).verify(step4.certs["apiserver"], [])
    server_verifier(only2, x509.DNSName("kubernetes")).verify(new_leaf, [])
    with pytest.raises(VerificationError):
        server_verifier(only2, x509.DNSName("kubernetes")).verify(old_leaf, [])
    with pytest.raises(VerificationError):
        client_verifier(Store(load_certs(step4.bundle("etcd")))).verify(
            step1.certs["apiserver-etcd-client"], [])


def test_bundle_puts_the_signing_ca_first_for_kubeadm() -> None:
    base = dict(INPUTS.__dict__)
    p1 = issue_all(PkiInputs(**{**base, "ca_generations": (1, 2), "signing_generation": 1}),
                   now=NOW)
    first = load_certs(p1.ca_bundle)[0]
    assert first == p1.ca_certificates[("cluster", 1)]
    # the first certificate matches ca.key, which is what kubeadm assumes
    key = serialization.load_pem_private_key(p1.materials["ca.key"].encode(), None)
    assert key.public_key() == first.public_key()
    p2 = issue_all(PkiInputs(**{**base, "ca_generations": (1, 2), "signing_generation": 2}),
                   reuse=p1, now=NOW)
    assert load_certs(p2.materials["ca.crt"])[0] == p2.ca_certificates[("cluster", 2)]


def test_kubeadm_pin_is_sha256_of_spki(pki: IssuedPki) -> None:
    ca = pki.ca_certificates[("cluster", 1)]
    spki = ca.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    expected = "sha256:" + hashlib.sha256(spki).hexdigest()
    assert kubeadm_ca_cert_hash(pki.ca_cert("cluster", 1)) == expected
    assert kubeadm_ca_cert_hash(pki.ca_bundle) == expected  # the first (signing) cert counts
    assert kubeadm_ca_cert_hash(pki.ca_cert("etcd", 1)) != expected


def test_write_pki_gives_workers_no_keys(tmp_path: object, pki: IssuedPki) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    worker = pki.write_pki(root / "w", "worker")
    assert [p.relative_to(root / "w").as_posix() for p in worker] == ["ca.crt"]
    cp = pki.write_pki(root / "cp", "control-plane", "t-cp-1")
    written = {p.relative_to(root / "cp").as_posix() for p in cp}
    assert {"etcd/server.crt", "etcd/peer.key", "ca.key", "sa.pub"} <= written
    server = x509.load_pem_x509_certificate((root / "cp/etcd/server.crt").read_bytes())
    assert server.subject.rfc4514_string() == "CN=t-cp-1"
    assert oct((root / "cp/etcd/server.key").stat().st_mode & 0o777) == "0o600"


def test_spec_helper_is_exhaustive() -> None:
    # every spec was issued; nothing extra
    p = issue_all(INPUTS, now=NOW)
    assert set(p.certs) == {s.name for s in certificate_specs(INPUTS)}
    assert all(isinstance(s, CertSpec) for s in p.specs.values())
