"""Real X.509 material built from ``cfcr.pki.specs`` — for tests that need actual certs.

Quick use::

    from cfcr.config.topology import ControlPlaneMember
    from cfcr.pki.specs import PkiInputs
    from tests.support.x509 import issue_all

    inputs = PkiInputs(
        cluster_name="t",
        control_plane_nodes=[ControlPlaneMember(f"t-cp-{i}", f"127.0.0.{11 + i}") for i in range(3)],
    )
    pki = issue_all(inputs)
    pki.cert("etcd-server-t-cp-0")        # leaf cert PEM, by CertSpec.name
    pki.key("etcd-server-t-cp-0")         # its private key PEM (PKCS#8, unencrypted)
    pki.ca_cert("etcd", 1)                # CA cert PEM of a family + generation
    pki.bundle("etcd")                    # trust bundle PEM (signing generation first)
    pki.materials["etcd/members/t-cp-0/server.crt"]   # every cfcr.pki.specs.secret_files key
    pki.write_pki(tmp_path / "pki", "control-plane", "t-cp-0")
    # -> writes the member's kubeadm layout: <dir>/etcd/ca.crt, <dir>/etcd/server.crt, ...

Every certificate follows its ``CertSpec`` exactly (CN, O, SANs, key usages, EKUs,
validity, issuer family and signing generation) and its extensions mirror what
pulumi-tls emits: critical BasicConstraints, KeyUsage, EKU, SKI, and an AKI taken
from the issuing CA. Keys follow ``inputs.key_algorithm`` (P-256 or RSA).

CA rotation: ``issue_all(new_inputs, reuse=old)`` keeps the CA keys and certs of every
generation ``old`` already has (as Pulumi keeps generation-1 resources when generation 2
appears) and re-issues all leaves from ``new_inputs.signing_generation``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cfcr.pki.specs import (
    FAMILIES,
    SA_KEY,
    SA_PUB,
    CaSpec,
    CertSpec,
    Family,
    PkiInputs,
    RoleKind,
    bundle_generations,
    ca_files,
    ca_specs,
    certificate_specs,
    join_pem,
    materials_for_role,
    secret_files,
)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_EKU = {
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
}
_KU_FIELDS = {
    "digital_signature": "digital_signature",
    "content_commitment": "content_commitment",
    "key_encipherment": "key_encipherment",
    "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement",
    "cert_signing": "key_cert_sign",
    "crl_signing": "crl_sign",
}


def new_key(algorithm: str, rsa_bits: int) -> PrivateKey:
    """A fresh private key: ECDSA P-256, or RSA of ``rsa_bits``."""
    if algorithm == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> str:
    """PKCS#8 PEM of a private key."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def cert_pem(cert: x509.Certificate) -> str:
    """PEM of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_certs(pem: str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in order."""
    return x509.load_pem_x509_certificates(pem.encode())


def key_usage(usages: tuple[str, ...]) -> x509.KeyUsage:
    """The KeyUsage extension for pulumi-tls ``allowed_uses`` strings."""
    flags = {f: False for f in _KU_FIELDS.values()}
    for u in usages:
        if u in _KU_FIELDS:
            flags[_KU_FIELDS[u]] = True
    return x509.KeyUsage(encipher_only=False, decipher_only=False, **flags)


def extended_key_usage(usages: tuple[str, ...]) -> x509.ExtendedKeyUsage | None:
    """The EKU extension for pulumi-tls ``allowed_uses`` strings (None if there is none)."""
    oids = [_EKU[u] for u in usages if u in _EKU]
    return x509.ExtendedKeyUsage(oids) if oids else None


def _hash_for(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256:
    return hashes.SHA256()


@dataclass
class IssuedPki:
    """Real certificates and keys for one ``PkiInputs``; see the module docstring."""

    inputs: PkiInputs
    specs: dict[str, CertSpec]
    certs: dict[str, x509.Certificate]
    keys: dict[str, PrivateKey]
    ca_certificates: dict[tuple[Family, int], x509.Certificate]
    ca_private_keys: dict[tuple[Family, int], PrivateKey]
    sa_private_key: rsa.RSAPrivateKey
    materials: dict[str, str] = field(default_factory=dict)
    """PEM content for every ``secret_files(inputs)`` key."""

    def cert(self, name: str) -> str:
        """Leaf certificate PEM by ``CertSpec.name``."""
        return cert_pem(self.certs[name])

    def key(self, name: str) -> str:
        """Leaf private key PEM by ``CertSpec.name``."""
        return key_pem(self.keys[name])

    def ca_cert(self, family: Family = "cluster", generation: int | None = None) -> str:
        """CA certificate PEM (default: the signing generation)."""
        g = self.inputs.signing_generation if generation is None else generation
        return cert_pem(self.ca_certificates[(family, g)])

    def ca_key(self, family: Family = "cluster", generation: int | None = None) -> str:
        """CA private key PEM (default: the signing generation)."""
        g = self.inputs.signing_generation if generation is None else generation
        return key_pem(self.ca_private_keys[(family, g)])

    def bundle(self, family: Family = "cluster", generations: tuple[int, ...] | None = None) -> str:
        """Trust bundle PEM of a family (default: ``bundle_generations(inputs)`` order)."""
        gens = bundle_generations(self.inputs) if generations is None else generations
        return join_pem([cert_pem(self.ca_certificates[(family, g)]) for g in gens])

    @property
    def ca_bundle(self) -> str:
        """The cluster CA bundle (what ``ClusterPki.ca_bundle`` holds)."""
        return self.bundle("cluster")

    def write_pki(self, directory: Path | str, role: RoleKind, member: str | None = None) -> list[Path]:
        """Write what ``materials_for_role(role, member)`` allows, at kubeadm paths under
        ``directory``; keys get mode 0600. Returns the written paths."""
        root = Path(directory)
        paths = secret_files(self.inputs)
        written: list[Path] = []
        for mkey in materials_for_role(role, member):
            target = root / paths[mkey]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(self.materials[mkey])
            if target.suffix == ".key":
                target.chmod(0o600)
            written.append(target)
        return written


def _ca_cert(spec: CaSpec, key: PrivateKey, now: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(hours=spec.validity_hours))
        .add_extension(x509.BasicConstraints(ca=True, path_length=spec.max_path_length),
                       critical=True)
        .add_extension(key_usage(spec.usages), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, _hash_for(key))
    )


def issue_leaf(spec: CertSpec, key: PrivateKey, ca_cert: x509.Certificate, ca_key: PrivateKey,
               now: dt.datetime) -> x509.Certificate:
    """Sign one leaf exactly as ``spec`` says, with ``ca_cert``/``ca_key``."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in spec.organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(hours=spec.validity_hours))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(spec.usages), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value),
            critical=False)
    )
    eku = extended_key_usage(spec.usages)
    if eku is not None:
        builder = builder.add_extension(eku, critical=False)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in spec.dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in spec.ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, _hash_for(ca_key))


def issue_all(inputs: PkiInputs, *, reuse: IssuedPki | None = None,
              now: dt.datetime | None = None) -> IssuedPki:
    """Issue every CA of every trusted generation and every leaf of
    ``certificate_specs(inputs)``; CAs of generations in ``reuse`` are kept."""
    now = now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    ca_certs: dict[tuple[Family, int], x509.Certificate] = {}
    ca_keys: dict[tuple[Family, int], PrivateKey] = {}
    for ca in ca_specs(inputs):
        slot = (ca.family, ca.generation)
        if reuse is not None and slot in reuse.ca_certificates:
            ca_certs[slot] = reuse.ca_certificates[slot]
            ca_keys[slot] = reuse.ca_private_keys[slot]
            continue
        key = new_key(inputs.key_algorithm, inputs.ca_rsa_bits)
        ca_keys[slot] = key
        ca_certs[slot] = _ca_cert(ca, key, now)

    specs = {s.name: s for s in certificate_specs(inputs)}
    certs: dict[str, x509.Certificate] = {}
    keys: dict[str, PrivateKey] = {}
    g = inputs.signing_generation
    for spec in specs.values():
        if reuse is not None and spec.name in reuse.keys:
            key = reuse.keys[spec.name]  # pulumi-tls keeps a leaf's key across re-issues
        else:
            key = new_key(inputs.key_algorithm, inputs.rsa_bits)
        keys[spec.name] = key
        certs[spec.name] = issue_leaf(spec, key, ca_certs[(spec.issuer, g)],
                                      ca_keys[(spec.issuer, g)], now)

    sa = reuse.sa_private_key if reuse is not None else rsa.generate_private_key(
        public_exponent=65537, key_size=max(2048, inputs.rsa_bits))
    pki = IssuedPki(inputs, specs, certs, keys, ca_certs, ca_keys, sa)

    materials: dict[str, str] = {}
    for family in FAMILIES:
        crt, keyfile = ca_files(family)
        materials[crt] = pki.bundle(family)
        materials[keyfile] = pki.ca_key(family)
    materials[SA_KEY] = key_pem(sa)
    materials[SA_PUB] = sa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    for spec in specs.values():
        if spec.material_keys:
            crt_key, key_key = spec.material_keys
            materials[crt_key] = pki.cert(spec.name)
            materials[key_key] = pki.key(spec.name)
    assert set(materials) == set(secret_files(inputs)), "x509 support out of step with specs"
    pki.materials = materials
    return pki


__all__ = [
    "IssuedPki", "cert_pem", "extended_key_usage", "issue_all", "issue_leaf", "key_pem",
    "key_usage", "load_certs", "new_key",
]
