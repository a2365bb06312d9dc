"""The pure PKI layer: what certificates exist, with which names, and who gets what."""

from __future__ import annotations

import base64
import dataclasses

import pytest
import yaml

from cfcr.pki.specs import (
    CLUSTER_ADMINS_GROUP,
    MASTERS_GROUP,
    CertSpec,
    ControlPlaneMember,
    PkiInputs,
    UserCredential,
    bundle_generations,
    ca_specs,
    certificate_specs,
    credentials_for_role,
    is_bootstrap_token,
    materials_for_role,
    is_secret_material,
    render_kubeconfig,
    secret_files,
    validate_encryption_key,
)

MEMBERS = [ControlPlaneMember(f"prod-cp-{i}", f"10.0.{i}.10") for i in range(3)]


def make(**overrides: object) -> PkiInputs:
    base: dict[str, object] = {
        "cluster_name": "prod",
        "control_plane_nodes": MEMBERS,
        "api_dns_names": ["api.prod.example.com"],
        "api_ips": ["203.0.113.7"],
        "users": [UserCredential("alice", ("platform-team",))],
    }
    base.update(overrides)
    return PkiInputs(**base)  # type: ignore[arg-type]


def by_name(inputs: PkiInputs) -> dict[str, CertSpec]:
    return {s.name: s for s in certificate_specs(inputs)}


def spec(inputs: PkiInputs, name: str) -> CertSpec:
    return next(s for s in certificate_specs(inputs) if s.name == name)


def test_leaf_set_is_kubeadms_plus_per_member_and_credentials() -> None:
    names = [s.name for s in certificate_specs(make())]
    assert names == [
        "apiserver", "apiserver-kubelet-client", "front-proxy-client",
        "apiserver-etcd-client", "etcd-healthcheck-client",
        "etcd-server-prod-cp-0", "etcd-peer-prod-cp-0",
        "etcd-server-prod-cp-1", "etcd-peer-prod-cp-1",
        "etcd-server-prod-cp-2", "etcd-peer-prod-cp-2",
        "admin", "super-admin", "user-alice",
    ]
    assert len(set(names)) == len(names)


def test_apiserver_sans() -> None:
    s = spec(make(service_cidr="10.96.0.0/12", cluster_domain="corp.internal"), "apiserver")
    assert s.common_name == "kube-apiserver"
    assert s.issuer == "cluster"
    assert set(s.dns_names) == {
        "api.prod.example.com", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.corp.internal", "prod-cp-0", "prod-cp-1", "prod-cp-2",
    }
    # the first service IP, the API endpoint IPs, and each member's own address
    assert set(s.ip_addresses) == {"10.96.0.1", "203.0.113.7", "10.0.0.10", "10.0.1.10",
                                   "10.0.2.10"}
    assert s.usages == ("digital_signature", "server_auth")
    assert s.files == ("apiserver.crt", "apiserver.key")


def test_apiserver_sans_ipv6_service_and_dns_member() -> None:
    inputs = make(service_cidr="fd00:10:96::/108,10.96.0.0/12",
                  control_plane_nodes=[ControlPlaneMember("prod-cp-0", "cp0.prod.internal")])
    s = spec(inputs, "apiserver")
    assert s.ip_addresses[0] == "fd00:10:96::1"
    assert "10.96.0.1" not in s.ip_addresses  # only the primary family's kubernetes Service
    assert "cp0.prod.internal" in s.dns_names


def test_kubeadm_subjects_and_usages() -> None:
    specs = by_name(make())
    kc = specs["apiserver-kubelet-client"]
    assert (kc.common_name, kc.organizations) == (
        "kube-apiserver-kubelet-client", (CLUSTER_ADMINS_GROUP,))
    ec = specs["apiserver-etcd-client"]
    assert (ec.common_name, ec.organizations, ec.issuer) == (
        "kube-apiserver-etcd-client", (), "etcd")
    hc = specs["etcd-healthcheck-client"]
    assert (hc.common_name, hc.issuer, hc.files) == (
        "kube-etcd-healthcheck-client", "etcd",
        ("etcd/healthcheck-client.crt", "etcd/healthcheck-client.key"))
    fp = specs["front-proxy-client"]
    assert (fp.common_name, fp.issuer) == ("front-proxy-client", "front-proxy")
    for name in ("apiserver-kubelet-client", "apiserver-etcd-client", "etcd-healthcheck-client",
                 "front-proxy-client", "admin", "super-admin", "user-alice"):
        assert specs[name].usages == ("digital_signature", "client_auth"), name


def test_rsa_leaves_add_key_encipherment() -> None:
    s = spec(make(key_algorithm="RSA"), "apiserver")
    assert s.usages == ("digital_signature", "key_encipherment", "server_auth")


def test_admin_is_not_system_masters_and_super_admin_is_separate() -> None:
    specs = by_name(make())
    admin, sa = specs["admin"], specs["super-admin"]
    assert admin.organizations == (CLUSTER_ADMINS_GROUP,)
    assert MASTERS_GROUP not in admin.organizations
    assert sa.organizations == (MASTERS_GROUP,)
    assert admin.common_name != sa.common_name
    holders = [s.name for s in certificate_specs(make()) if MASTERS_GROUP in s.organizations]
    assert holders == ["super-admin"]
    # client-only credentials never land on nodes
    assert admin.files == () and sa.files == ()


def test_named_user_cert() -> None:
    u = spec(make(), "user-alice")
    assert (u.common_name, u.organizations, u.kubeconfig_user) == ("alice", ("platform-team",),
                                                                   "alice")


def test_per_member_etcd_certs() -> None:
    inputs = make()
    for m in MEMBERS:
        for kind in ("server", "peer"):
            s = spec(inputs, f"etcd-{kind}-{m.name}")
            assert s.issuer == "etcd"
            assert s.common_name == m.name
            assert set(s.dns_names) == {m.name, "localhost"}
            assert set(s.ip_addresses) == {"127.0.0.1", "::1", m.address}
            assert s.usages == ("digital_signature", "server_auth", "client_auth")
            assert s.files == (f"etcd/{kind}.crt", f"etcd/{kind}.key")
            assert s.member == m.name
            assert s.material_keys == (f"etcd/members/{m.name}/{kind}.crt",
                                       f"etcd/members/{m.name}/{kind}.key")


def test_validity_and_renewal_flow_from_inputs() -> None:
    inputs = make(leaf_validity_hours=2000, early_renewal_hours=100, ca_validity_hours=50000)
    assert {(s.validity_hours, s.early_renewal_hours) for s in certificate_specs(inputs)} == {
        (2000, 100)}
    assert {c.validity_hours for c in ca_specs(inputs)} == {50000}


def test_ca_specs_per_family_and_generation() -> None:
    inputs = make(ca_generations=(1, 2), signing_generation=2)
    names = [c.name for c in ca_specs(inputs)]
    assert names == ["ca-g1", "etcd-ca-g1", "front-proxy-ca-g1",
                     "ca-g2", "etcd-ca-g2", "front-proxy-ca-g2"]
    cns = [c.common_name for c in ca_specs(inputs)]
    assert len(set(cns)) == len(cns)  # issuers are never ambiguous across generations
    assert all(c.usages == ("cert_signing", "crl_signing", "digital_signature")
               for c in ca_specs(inputs))
    assert bundle_generations(inputs) == (2, 1)
    assert bundle_generations(make(ca_generations=(1, 2), signing_generation=1)) == (1, 2)


def test_generation_names_are_stable_when_generation_2_appears() -> None:
    before = {c.name for c in ca_specs(make())}
    after = {c.name for c in ca_specs(make(ca_generations=(1, 2)))}
    assert before < after


def test_secret_files_layout() -> None:
    files = secret_files(make())
    for key in ("ca.crt", "ca.key", "etcd/ca.crt", "etcd/ca.key", "front-proxy-ca.crt",
                "front-proxy-ca.key", "sa.key", "sa.pub", "apiserver.crt", "apiserver.key",
                "apiserver-kubelet-client.crt", "apiserver-etcd-client.key",
                "front-proxy-client.crt", "etcd/healthcheck-client.crt"):
        assert files[key] == key
    assert files["etcd/members/prod-cp-1/server.crt"] == "etcd/server.crt"
    assert files["etcd/members/prod-cp-1/peer.key"] == "etcd/peer.key"
    assert not any("admin" in k or "alice" in k for k in files)
    assert {k for k in files if not is_secret_material(k)} == {
        k for k in files if k.endswith((".crt", ".pub"))}
    assert is_secret_material("sa.key") and not is_secret_material("sa.pub")


def test_workers_get_only_the_cluster_ca_bundle() -> None:
    assert materials_for_role("worker") == ["ca.crt"]
    assert credentials_for_role("worker") == ["bootstrap-token"]
    with pytest.raises(ValueError, match="not an etcd member"):
        materials_for_role("worker", "prod-cp-0")


def test_control_plane_member_gets_its_own_etcd_certs_only() -> None:
    inputs = make()
    files = secret_files(inputs)
    got = materials_for_role("control-plane", "prod-cp-1")
    assert set(got) <= set(files)
    for needed in ("ca.crt", "ca.key", "front-proxy-ca.key", "sa.key", "sa.pub", "etcd/ca.crt",
                   "apiserver.key", "apiserver-kubelet-client.key", "front-proxy-client.key",
                   "apiserver-etcd-client.key", "etcd/healthcheck-client.key",
                   "etcd/members/prod-cp-1/server.key", "etcd/members/prod-cp-1/peer.key"):
        assert needed in got, needed
    assert not any("prod-cp-0" in k or "prod-cp-2" in k for k in got)
    # every node path is written once: no two materials collide on one member
    paths = [files[k] for k in got]
    assert len(paths) == len(set(paths))
    assert "encryption-key" in credentials_for_role("control-plane")
    with pytest.raises(ValueError, match="which member"):
        materials_for_role("control-plane")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"users": [UserCredential("bob", ("a",)), UserCredential("bob", ("b",))]},
         "duplicate user name 'bob'"),
        ({"users": [UserCredential("bob", ())]}, "has no groups"),
        ({"users": [UserCredential("bob", (MASTERS_GROUP,))]}, "only the super-admin"),
        ({"users": [UserCredential("bob", ("a", "b"))]}, "single organization"),
        ({"users": [UserCredential("admin", ("a",))]}, "reserved"),
        ({"users": [UserCredential("Bob Smith", ("a",))]}, "DNS label"),
        ({"ca_generations": (1,), "signing_generation": 2}, "not in ca_generations"),
        ({"ca_generations": (1, 2, 3), "signing_generation": 3}, "more than 2 generations"),
        ({"ca_generations": (1, 1)}, "distinct"),
        ({"ca_generations": ()}, "at least one generation"),
        ({"control_plane_nodes": []}, "at least one member"),
        ({"control_plane_nodes": [MEMBERS[0], MEMBERS[0]]}, "duplicate control-plane"),
        ({"control_plane_nodes": [ControlPlaneMember("x", "not an address!")]}, "neither IP"),
        ({"service_cidr": "10.96.0.0/33"}, "service_cidr"),
        ({"service_cidr": "10.96.0.1/12"}, "service_cidr"),
        ({"api_ips": ["300.1.1.1"]}, "not an IP"),
        ({"api_dns_names": ["bad_name"]}, "not a DNS name"),
        ({"leaf_validity_hours": 100, "early_renewal_hours": 100}, "early_renewal_hours"),
        ({"leaf_validity_hours": 90000}, "must not exceed"),
        ({"key_algorithm": "DSA"}, "key_algorithm"),
        ({"rsa_bits": 1024}, "rsa_bits"),
        ({"ca_rsa_bits": 2048}, "ca_rsa_bits"),
        ({"cluster_name": "Prod"}, "cluster_name"),
    ],
)
def test_validation_errors(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**overrides)


def test_inputs_are_frozen_and_normalised() -> None:
    inputs = make()
    assert isinstance(inputs.control_plane_nodes, tuple)
    assert isinstance(inputs.api_dns_names, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        inputs.cluster_name = "x"  # type: ignore[misc]
    hash(inputs)


def test_render_kubeconfig() -> None:
    text = render_kubeconfig("prod", "https://api:6443", "CA\n", "CERT\n", "KEY\n", "alice")
    doc = yaml.safe_load(text)
    assert doc["current-context"] == "alice@prod"
    cluster = doc["clusters"][0]
    assert cluster["name"] == "prod"
    assert cluster["cluster"]["server"] == "https://api:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == b"CA\n"
    user = doc["users"][0]
    assert user["name"] == "alice"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == b"CERT\n"
    assert base64.b64decode(user["user"]["client-key-data"]) == b"KEY\n"
    assert doc["contexts"][0]["context"] == {"cluster": "prod", "user": "alice"}


def test_bootstrap_token_format() -> None:
    assert is_bootstrap_token("abcdef.0123456789abcdef")
    for bad in ("ABCDEF.0123456789abcdef", "abcde.0123456789abcdef", "abcdef0123456789abcdef",
                "abcdef.0123456789abcde_", ""):
        assert not is_bootstrap_token(bad)


def test_encryption_key_expectations() -> None:
    assert len(validate_encryption_key(base64.b64encode(bytes(32)).decode())) == 32
    with pytest.raises(ValueError, match="32 bytes"):
        validate_encryption_key(base64.b64encode(bytes(16)).decode())
    with pytest.raises(ValueError, match="base64"):
        validate_encryption_key("not base64!")
