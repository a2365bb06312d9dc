"""The cluster PKI as pure data: what certificates exist, who may hold which file.

Nothing here imports Pulumi. ``cfcr.pki.component`` turns these specs into pulumi-tls
resources; ``tests/support/x509.py`` turns the very same specs into real X.509
certificates with ``cryptography`` so that the shape we ask for is verified for real.

Layout follows kubeadm (``/etc/kubernetes/pki``), subjects follow current kubeadm
(``cmd/kubeadm/app/phases/certs/certlist.go`` and ``kubeconfig.go``):

* ``apiserver``: CN ``kube-apiserver``, server auth.
* ``apiserver-kubelet-client``: CN ``kube-apiserver-kubelet-client``,
  O ``kubeadm:cluster-admins``, client auth.
* ``apiserver-etcd-client``: CN ``kube-apiserver-etcd-client``, no O, client auth (etcd CA).
* ``etcd/healthcheck-client``: CN ``kube-etcd-healthcheck-client``, no O, client auth.
* ``etcd/server`` and ``etcd/peer``: CN = member name, server + client auth.
* ``front-proxy-client``: CN ``front-proxy-client``, client auth (front-proxy CA).
* admin: CN ``kubernetes-admin``, O ``kubeadm:cluster-admins`` (not ``system:masters``);
  super-admin: CN ``kubernetes-super-admin``, O ``system:masters`` (break-glass only).

CA rotation works through generations; see ``cfcr/pki/ROTATION.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import yaml

from cfcr.config.topology import ControlPlaneMember
from cfcr.constants import (
    ADMIN_COMMON_NAME,
    ADMIN_USER,
    RESERVED_USER_NAMES,
    SUPER_ADMIN_COMMON_NAME,
    SUPER_ADMIN_USER,
)
from cfcr.names import fit_name
from cfcr.util import dedupe

Family = Literal["cluster", "etcd", "front-proxy"]
"""A CA family: each has its own CA per generation and its own trust bundle."""

KeyAlgorithm = Literal["ECDSA", "RSA"]
"""Private key algorithms we issue (pulumi-tls ``PrivateKey.algorithm`` values)."""

RoleKind = Literal["control-plane", "worker"]
"""A node's kind: a control-plane member or a worker; it decides the PKI material the node receives."""

FAMILIES: tuple[Family, ...] = get_args(Family)
ECDSA_CURVE = "P256"
"""Curve for every ECDSA key (pulumi-tls ``ecdsa_curve``); kubeadm's ``ECDSA-P256``."""
RSA_SIZES = (2048, 3072, 4096)
SERVICE_ACCOUNT_RSA_BITS_MIN = 2048
MAX_CA_GENERATIONS = 2

CLUSTER_ADMINS_GROUP = "kubeadm:cluster-admins"
"""kubeadm binds this group to ``cluster-admin`` with an ordinary, deletable binding."""
MASTERS_GROUP = "system:masters"
"""Hard-wired superuser group: bypasses RBAC, so only the break-glass credential has it."""

CA_USAGES: tuple[str, ...] = ("cert_signing", "crl_signing", "digital_signature")
"""pulumi-tls ``allowed_uses`` of every CA certificate."""

BOOTSTRAP_TOKEN_ID_LENGTH = 6
BOOTSTRAP_TOKEN_SECRET_LENGTH = 16
BOOTSTRAP_TOKEN_PATTERN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
"""kubeadm's bootstrap token format: ``<6 chars [a-z0-9]>.<16 chars [a-z0-9]>``."""
ENCRYPTION_KEY_BYTES = 32
"""Length of the secrets-encryption key: 32 bytes suits aescbc, aesgcm and secretbox."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_NAME_LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$")

# Files of each CA family, relative to /etc/kubernetes/pki.
_CA_FILES: dict[Family, tuple[str, str]] = {
    "cluster": ("ca.crt", "ca.key"),
    "etcd": ("etcd/ca.crt", "etcd/ca.key"),
    "front-proxy": ("front-proxy-ca.crt", "front-proxy-ca.key"),
}
# Stable resource-name stems of each CA family (``<component>-<stem>-g<generation>``).
_CA_STEMS: dict[Family, str] = {
    "cluster": "ca",
    "etcd": "etcd-ca",
    "front-proxy": "front-proxy-ca",
}
COMMON_NAME_MAX = 64
"""Longest X.509 CommonName (RFC 5280 ub-common-name); a CA's ``<cluster>-<ca>-g<n>`` is
shortened with a hash when a long cluster name would pass it."""

SA_KEY = "sa.key"
SA_PUB = "sa.pub"


@dataclass(frozen=True)
class UserCredential:
    """A named human or robot user who gets a client-certificate kubeconfig."""

    name: str
    """User name (certificate CN); a DNS label, also used in resource and secret names."""
    groups: tuple[str, ...]
    """Groups (certificate O); exactly one, because pulumi-tls subjects carry one O."""


@dataclass(frozen=True)
class PkiInputs:
    """Everything that shapes the cluster PKI; validated on construction."""

    cluster_name: str
    """Cluster name, a DNS label; it prefixes CA names and kubeconfig entries."""
    control_plane_nodes: Sequence[ControlPlaneMember]
    """Control-plane members (1, 3 or 5 in practice); each gets etcd server/peer certs."""
    cluster_domain: str = "cluster.local"
    """Cluster DNS domain; ``kubernetes.default.svc.<domain>`` is an API server SAN."""
    service_cidr: str = "10.96.0.0/12"
    """Service CIDR (comma-separated for dual-stack); first host of the first is a SAN."""
    api_dns_names: Sequence[str] = ()
    """DNS names of the API endpoint (load balancer names, operator aliases)."""
    api_ips: Sequence[str] = ()
    """IP addresses of the API endpoint (load balancer addresses)."""
    users: Sequence[UserCredential] = ()
    """Extra named users with client certificates (never in ``system:masters``)."""
    ca_validity_hours: int = 87600
    """Lifetime of each CA certificate (default 10 years); CAs rotate by generation."""
    leaf_validity_hours: int = 8760
    """Lifetime of each leaf certificate (default 1 year)."""
    early_renewal_hours: int = 720
    """A ``pulumi up`` within this many hours of a leaf's expiry re-issues it (30 days)."""
    key_algorithm: KeyAlgorithm = "ECDSA"
    """Algorithm of CA and leaf keys: ``ECDSA`` (P-256, default) or ``RSA``."""
    rsa_bits: int = 2048
    """RSA modulus of leaf keys and of the service-account key (2048, 3072 or 4096)."""
    ca_rsa_bits: int = 3072
    """RSA modulus of CA keys when ``key_algorithm`` is RSA (3072 or 4096; >= rsa_bits)."""
    ca_generations: tuple[int, ...] = (1,)
    """Trusted CA generations (at most two); every family exists once per generation."""
    signing_generation: int = 1
    """The generation whose CAs sign the leaves; must be one of ``ca_generations``."""

    def __post_init__(self) -> None:
        # Freeze sequences into tuples so the value is hashable and cannot drift.
        for name in ("control_plane_nodes", "api_dns_names", "api_ips", "users"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "ca_generations", tuple(self.ca_generations))
        validate_inputs(self)


@dataclass(frozen=True)
class CaSpec:
    """One CA certificate of one family and one generation."""

    name: str
    """Stable id, e.g. ``ca-g1``, ``etcd-ca-g2``; the child resource name suffix."""
    family: Family
    """The CA family."""
    generation: int
    """The CA generation."""
    common_name: str
    """Subject CN; distinct per generation so issuers are never ambiguous."""
    validity_hours: int
    """Lifetime of the CA certificate."""
    usages: tuple[str, ...] = CA_USAGES
    """pulumi-tls ``allowed_uses``."""
    max_path_length: int = 0
    """Our CAs sign leaves only: no intermediate may follow them."""


@dataclass(frozen=True)
class CertSpec:
    """One leaf certificate, in terms both pulumi-tls and ``cryptography`` can build."""

    name: str
    """Stable id (``apiserver``, ``etcd-server-<member>``, ``user-<name>``...)."""
    issuer: Family
    """The CA family that signs it (the signing generation of that family)."""
    common_name: str
    """Subject CN."""
    organizations: tuple[str, ...]
    """Subject O values (Kubernetes groups for client certificates)."""
    dns_names: tuple[str, ...]
    """DNS subject alternative names."""
    ip_addresses: tuple[str, ...]
    """IP subject alternative names."""
    usages: tuple[str, ...]
    """pulumi-tls ``allowed_uses`` (key usages and extended key usages)."""
    validity_hours: int
    """Lifetime of the certificate."""
    early_renewal_hours: int
    """Re-issue window before expiry."""
    files: tuple[str, ...] = ()
    """kubeadm paths relative to ``/etc/kubernetes/pki`` (cert, key); empty if none."""
    member: str | None = None
    """The control-plane member this certificate belongs to (etcd server/peer only)."""
    kubeconfig_user: str | None = None
    """The kubeconfig user it authenticates (admin, super-admin, named users)."""

    @property
    def material_keys(self) -> tuple[str, ...]:
        """Keys of this certificate's (cert, key) in ``secret_files``; empty if no files."""
        if not self.files:
            return ()
        if self.member is None:
            return self.files
        return tuple(f"etcd/members/{self.member}/{f.rsplit('/', 1)[-1]}" for f in self.files)


# --------------------------------------------------------------------------- validation


def _is_dns_name(value: str) -> bool:
    if not value or len(value) > 253:
        return False
    return all(_DNS_NAME_LABEL.match(label) and len(label) <= 63 for label in value.split("."))


def is_ip_address(value: str) -> bool:
    """True when ``value`` is an IPv4 or IPv6 address (not a DNS name)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _fail(message: str) -> None:
    raise ValueError(f"invalid PKI inputs: {message}")


def validate_inputs(inputs: PkiInputs) -> None:
    """Raise ``ValueError`` with a clear message when ``inputs`` cannot make a sound PKI."""
    if not _DNS_LABEL.match(inputs.cluster_name) or len(inputs.cluster_name) > 63:
        _fail(f"cluster_name {inputs.cluster_name!r} must be a lowercase DNS label of <= 63 chars")
    if not _is_dns_name(inputs.cluster_domain):
        _fail(f"cluster_domain {inputs.cluster_domain!r} is not a DNS name")
    first_service_ip(inputs.service_cidr)  # raises on a bad CIDR
    for dns in inputs.api_dns_names:
        if not _is_dns_name(dns):
            _fail(f"api_dns_names entry {dns!r} is not a DNS name")
    for ip in inputs.api_ips:
        if not is_ip_address(ip):
            _fail(f"api_ips entry {ip!r} is not an IP address")

    if not inputs.control_plane_nodes:
        _fail("control_plane_nodes must name at least one member")
    seen_members: set[str] = set()
    seen_addresses: set[str] = set()
    for m in inputs.control_plane_nodes:
        if not _DNS_LABEL.match(m.name):
            _fail(f"control-plane member name {m.name!r} must be a lowercase DNS label")
        if m.name in seen_members:
            _fail(f"duplicate control-plane member name {m.name!r}")
        if not (is_ip_address(m.address) or _is_dns_name(m.address)):
            _fail(f"control-plane member {m.name!r} address {m.address!r} is neither IP nor DNS")
        if m.address in seen_addresses:
            _fail(f"control-plane members share the address {m.address!r}")
        seen_members.add(m.name)
        seen_addresses.add(m.address)

    seen_users: set[str] = set()
    for u in inputs.users:
        if not _DNS_LABEL.match(u.name):
            _fail(f"user name {u.name!r} must be a lowercase DNS label")
        if u.name in RESERVED_USER_NAMES:
            _fail(f"user name {u.name!r} is reserved (built-in credentials and kubeadm's own names)")
        if u.name in seen_users:
            _fail(f"duplicate user name {u.name!r}")
        seen_users.add(u.name)
        if not u.groups:
            _fail(f"user {u.name!r} has no groups; give it exactly one")
        if MASTERS_GROUP in u.groups:
            _fail(
                f"user {u.name!r} is in {MASTERS_GROUP}; only the super-admin break-glass "
                f"credential may be (use {CLUSTER_ADMINS_GROUP} for cluster admins)"
            )
        if any(not g for g in u.groups):
            _fail(f"user {u.name!r} has an empty group name")
        if len(u.groups) != 1:
            _fail(
                f"user {u.name!r} has {len(u.groups)} groups; pulumi-tls subjects carry a single "
                "organization, so bind further roles to the group or the user name"
            )

    if inputs.ca_validity_hours <= 0 or inputs.leaf_validity_hours <= 0:
        _fail("validity hours must be positive")
    if inputs.leaf_validity_hours > inputs.ca_validity_hours:
        _fail("leaf_validity_hours must not exceed ca_validity_hours")
    if not 0 < inputs.early_renewal_hours < inputs.leaf_validity_hours:
        _fail("early_renewal_hours must be positive and shorter than leaf_validity_hours")

    if inputs.key_algorithm not in get_args(KeyAlgorithm):
        _fail(f"key_algorithm {inputs.key_algorithm!r} must be one of {get_args(KeyAlgorithm)}")
    if inputs.rsa_bits not in RSA_SIZES:
        _fail(f"rsa_bits {inputs.rsa_bits} must be one of {RSA_SIZES}")
    if inputs.ca_rsa_bits not in RSA_SIZES or inputs.ca_rsa_bits < max(3072, inputs.rsa_bits):
        _fail(f"ca_rsa_bits {inputs.ca_rsa_bits} must be 3072 or 4096 and >= rsa_bits")

    gens = inputs.ca_generations
    if not gens:
        _fail("ca_generations must name at least one generation")
    if len(gens) > MAX_CA_GENERATIONS:
        _fail(
            f"ca_generations {gens} trusts more than {MAX_CA_GENERATIONS} generations; "
            "retire the oldest before adding another (see cfcr/pki/ROTATION.md)"
        )
    if len(set(gens)) != len(gens) or any(g < 1 for g in gens):
        _fail(f"ca_generations {gens} must be distinct positive integers")
    if inputs.signing_generation not in gens:
        _fail(
            f"signing_generation {inputs.signing_generation} is not in ca_generations {gens}: "
            "a CA must be trusted before it signs"
        )


# --------------------------------------------------------------------------- helpers


def first_service_ip(service_cidr: str) -> str:
    """The first host address of the (first) service CIDR: the ``kubernetes`` Service IP."""
    first = service_cidr.split(",")[0].strip()
    try:
        net = ipaddress.ip_network(first, strict=True)
    except ValueError as e:
        raise ValueError(f"invalid PKI inputs: service_cidr {service_cidr!r}: {e}") from None
    if net.num_addresses < 4:
        raise ValueError(f"invalid PKI inputs: service_cidr {first!r} is too small")
    return str(net.network_address + 1)


def _dedupe(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dedupe(items))


def _split_addresses(addresses: Sequence[str]) -> tuple[list[str], list[str]]:
    dns = [a for a in addresses if not is_ip_address(a)]
    ips = [str(ipaddress.ip_address(a)) for a in addresses if is_ip_address(a)]
    return dns, ips


def bundle_generations(inputs: PkiInputs) -> tuple[int, ...]:
    """Order of CA certificates in every bundle: the signing generation first, then the
    other trusted ones, newest first. kubeadm treats the first certificate of ``ca.crt``
    as the one matching ``ca.key``, so the signing CA must lead."""
    others = sorted((g for g in inputs.ca_generations if g != inputs.signing_generation),
                    reverse=True)
    return (inputs.signing_generation, *others)


def ca_specs(inputs: PkiInputs) -> list[CaSpec]:
    """Every CA: one per family per trusted generation."""
    out: list[CaSpec] = []
    for g in sorted(inputs.ca_generations):
        for family in FAMILIES:
            stem = _CA_STEMS[family]
            out.append(CaSpec(
                name=f"{stem}-g{g}",
                family=family,
                generation=g,
                common_name=fit_name(f"{inputs.cluster_name}-{stem}-g{g}", COMMON_NAME_MAX, keep=f"-{stem}-g{g}"),
                validity_hours=inputs.ca_validity_hours,
            ))
    return out


def leaf_key_usages(inputs: PkiInputs) -> tuple[str, ...]:
    """Key usages of every leaf: digital signature, plus key encipherment for RSA keys
    (as kubeadm does; ECDSA keys cannot encipher)."""
    if inputs.key_algorithm == "RSA":
        return ("digital_signature", "key_encipherment")
    return ("digital_signature",)


def certificate_specs(inputs: PkiInputs) -> list[CertSpec]:
    """Every leaf certificate of the cluster, in a stable order."""
    ku = leaf_key_usages(inputs)
    server = (*ku, "server_auth")
    client = (*ku, "client_auth")
    both = (*ku, "server_auth", "client_auth")

    def leaf(name: str, issuer: Family, cn: str, orgs: tuple[str, ...],
             dns: tuple[str, ...], ips: tuple[str, ...], usages: tuple[str, ...],
             files: tuple[str, ...] = (), member: str | None = None,
             user: str | None = None) -> CertSpec:
        return CertSpec(name, issuer, cn, orgs, dns, ips, usages,
                        validity_hours=inputs.leaf_validity_hours,
                        early_renewal_hours=inputs.early_renewal_hours,
                        files=files, member=member, kubeconfig_user=user)

    member_dns, member_ips = _split_addresses([m.address for m in inputs.control_plane_nodes])
    api_dns, api_ips = _split_addresses(list(inputs.api_dns_names) + list(inputs.api_ips))
    d = inputs.cluster_domain
    apiserver_dns = _dedupe([
        *api_dns,
        "kubernetes", "kubernetes.default", "kubernetes.default.svc", f"kubernetes.default.svc.{d}",
        *(m.name for m in inputs.control_plane_nodes),
        *(m.kubelet_name for m in inputs.control_plane_nodes),
        *member_dns,
    ])
    apiserver_ips = _dedupe([first_service_ip(inputs.service_cidr), *api_ips, *member_ips])

    specs: list[CertSpec] = [
        leaf("apiserver", "cluster", "kube-apiserver", (), apiserver_dns, apiserver_ips,
                 server, files=("apiserver.crt", "apiserver.key")),
        leaf("apiserver-kubelet-client", "cluster", "kube-apiserver-kubelet-client",
                 (CLUSTER_ADMINS_GROUP,), (), (), client,
                 files=("apiserver-kubelet-client.crt", "apiserver-kubelet-client.key")),
        leaf("front-proxy-client", "front-proxy", "front-proxy-client", (), (), (), client,
                 files=("front-proxy-client.crt", "front-proxy-client.key")),
        leaf("apiserver-etcd-client", "etcd", "kube-apiserver-etcd-client", (), (), (), client,
                 files=("apiserver-etcd-client.crt", "apiserver-etcd-client.key")),
        leaf("etcd-healthcheck-client", "etcd", "kube-etcd-healthcheck-client", (), (), (),
                 client, files=("etcd/healthcheck-client.crt", "etcd/healthcheck-client.key")),
    ]
    for m in inputs.control_plane_nodes:
        dns, ips = _split_addresses([m.address])
        sans_dns = _dedupe([m.name, "localhost", *dns])
        sans_ip = _dedupe(["127.0.0.1", "::1", *ips])
        specs.append(leaf(f"etcd-server-{m.name}", "etcd", m.name, (), sans_dns, sans_ip, both,
                              files=("etcd/server.crt", "etcd/server.key"), member=m.name))
        specs.append(leaf(f"etcd-peer-{m.name}", "etcd", m.name, (), sans_dns, sans_ip, both,
                              files=("etcd/peer.crt", "etcd/peer.key"), member=m.name))
    specs.append(leaf(ADMIN_USER, "cluster", ADMIN_COMMON_NAME, (CLUSTER_ADMINS_GROUP,), (), (),
                          client, user=ADMIN_USER))
    specs.append(leaf(SUPER_ADMIN_USER, "cluster", SUPER_ADMIN_COMMON_NAME, (MASTERS_GROUP,),
                          (), (), client, user=SUPER_ADMIN_USER))
    for u in inputs.users:
        specs.append(leaf(f"user-{u.name}", "cluster", u.name, tuple(u.groups), (), (), client,
                              user=u.name))
    return specs


def ca_files(family: Family) -> tuple[str, str]:
    """kubeadm-relative (cert, key) paths of a CA family."""
    return _CA_FILES[family]


def secret_files(inputs: PkiInputs) -> dict[str, str]:
    """Canonical map: material key -> path relative to ``/etc/kubernetes/pki``.

    For shared material the key is the path itself (``ca.crt``, ``apiserver.key``...).
    Per-member etcd material is keyed ``etcd/members/<member>/{server,peer}.{crt,key}`` and
    lands at ``etcd/{server,peer}.{crt,key}`` on that member. CA ``.crt`` files hold the
    family's trust bundle; CA ``.key`` files hold the signing generation's key only.
    """
    out: dict[str, str] = {}
    for family in FAMILIES:
        crt, key = _CA_FILES[family]
        out[crt] = crt
        out[key] = key
    out[SA_KEY] = SA_KEY
    out[SA_PUB] = SA_PUB
    for spec in certificate_specs(inputs):
        for mkey, path in zip(spec.material_keys, spec.files, strict=True):
            out[mkey] = path
    return out


def is_secret_material(material_key: str) -> bool:
    """Whether a material is secret: private keys are; certificates, bundles and
    ``sa.pub`` are public."""
    return material_key.endswith(".key")


_CONTROL_PLANE_SHARED: tuple[str, ...] = (
    "ca.crt", "ca.key",
    "front-proxy-ca.crt", "front-proxy-ca.key",
    "etcd/ca.crt", "etcd/ca.key",
    SA_KEY, SA_PUB,
    "apiserver.crt", "apiserver.key",
    "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key",
    "front-proxy-client.crt", "front-proxy-client.key",
    "apiserver-etcd-client.crt", "apiserver-etcd-client.key",
    "etcd/healthcheck-client.crt", "etcd/healthcheck-client.key",
)


def materials_for_role(role: RoleKind, member: str | None = None) -> list[str]:
    """Material keys (see ``secret_files``) a node of ``role`` may fetch.

    Workers get the cluster CA bundle and nothing else: they join with the bootstrap
    token and the CA pin, and kubelet certificates come from CSRs.

    A control-plane member gets the CA keys kubeadm signs with on the node (cluster CA
    for kubeconfigs and kubelet client certs, front-proxy CA, and the etcd CA so that the
    node's renewal timer — ``kubeadm certs renew`` — can re-issue etcd certificates when
    nobody runs ``pulumi up``; the cluster CA key already grants everything the etcd CA
    key would, so this adds no reach), the service-account key pair, the shared leaves,
    and its own etcd server and peer certificates — never another member's.
    """
    if role == "worker":
        if member is not None:
            raise ValueError("a worker is not an etcd member; pass member=None")
        return ["ca.crt"]
    if role == "control-plane":
        if not member:
            raise ValueError("a control-plane node must say which member it is")
        own = [f"etcd/members/{member}/{n}" for n in ("server.crt", "server.key",
                                                       "peer.crt", "peer.key")]
        return [*_CONTROL_PLANE_SHARED, *own]
    raise ValueError(f"unknown role {role!r}; expected 'control-plane' or 'worker'")


def credentials_for_role(role: RoleKind) -> list[str]:
    """Non-file secrets a node of ``role`` may fetch: both roles join with the bootstrap
    token; only the control plane holds the secrets-encryption key."""
    if role == "worker":
        return ["bootstrap-token"]
    if role == "control-plane":
        return ["bootstrap-token", "encryption-key"]
    raise ValueError(f"unknown role {role!r}; expected 'control-plane' or 'worker'")


# --------------------------------------------------------------------------- renderers


def join_pem(pems: Sequence[str]) -> str:
    """Concatenate PEM blocks, one trailing newline each."""
    return "".join(p.strip() + "\n" for p in pems if p.strip())


def kubeadm_ca_cert_hash(ca_pem: str) -> str:
    """kubeadm's discovery pin of the first certificate in ``ca_pem``:
    ``sha256:`` + hex SHA-256 of its DER SubjectPublicKeyInfo."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(ca_pem.encode())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def render_kubeconfig(cluster_name: str, server_url: str, ca_pem: str, client_cert_pem: str,
                      client_key_pem: str, user: str) -> str:
    """A kubeconfig (YAML) with one cluster, one user and one current context, every
    credential embedded base64 in ``*-data`` fields."""
    context = f"{user}@{cluster_name}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {
            "server": server_url, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": _b64(client_cert_pem),
            "client-key-data": _b64(client_key_pem)}}],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def is_bootstrap_token(token: str) -> bool:
    """Whether ``token`` has kubeadm's bootstrap token format."""
    return BOOTSTRAP_TOKEN_PATTERN.match(token) is not None


def validate_encryption_key(key_b64: str) -> bytes:
    """Decode a secrets-encryption key (standard base64) and check it is 32 bytes."""
    try:
        raw = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the encryption key must be standard base64") from None
    if len(raw) != ENCRYPTION_KEY_BYTES:
        raise ValueError(f"the encryption key must be {ENCRYPTION_KEY_BYTES} bytes, got {len(raw)}")
    return raw


__all__ = [
    "ADMIN_USER", "CLUSTER_ADMINS_GROUP", "FAMILIES", "MASTERS_GROUP", "SUPER_ADMIN_USER",
    "CaSpec", "CertSpec", "ControlPlaneMember", "Family", "KeyAlgorithm", "PkiInputs", "RoleKind",
    "UserCredential", "bundle_generations", "ca_files", "ca_specs", "certificate_specs",
    "credentials_for_role", "first_service_ip", "is_bootstrap_token", "join_pem",
    "kubeadm_ca_cert_hash", "leaf_key_usages", "materials_for_role",
    "is_secret_material", "render_kubeconfig", "secret_files",
    "validate_encryption_key", "validate_inputs",
]
