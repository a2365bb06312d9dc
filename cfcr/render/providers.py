"""Stand-ins for the pulumi-tls and pulumi-random providers under the mock runtime.

They do what the real providers do, locally, with ``cryptography``: a PrivateKey is a real
key, a LocallySignedCert a real certificate signed by the given CA. So an offline render
carries real, verifiable PKI (and a real kubeadm CA pin), not placeholders. ECDSA keys are
derived from the resource's URN, so re-rendering a stack gives the same keys and pins and
renders diff cleanly; RSA keys are random.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import string
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_CURVES: dict[str, ec.EllipticCurve] = {"P224": ec.SECP224R1(), "P256": ec.SECP256R1(), "P384": ec.SECP384R1(), "P521": ec.SECP521R1()}
_EPOCH = dt.datetime.now(dt.timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
"""Every certificate of a render starts on the first day of the current month: renders of one
month are identical (they diff cleanly), and a one-year leaf is never inside its renewal window
or expired on the day it is rendered (a fixed date would expire every offline render a year on).
``CFCR_RENDER_EPOCH`` pins it (see :func:`epoch`)."""
EPOCH_ENV = "CFCR_RENDER_EPOCH"


def epoch() -> dt.datetime:
    """When every certificate of a render starts: ``_EPOCH``, or the date ``CFCR_RENDER_EPOCH``
    names (``2026-01-01``, midnight UTC), read at each certificate, so a render whose output is
    kept (the golden render of tests/golden/) does not change from one month to the next."""
    pinned = os.environ.get(EPOCH_ENV)
    if not pinned:
        return _EPOCH
    try:
        day = dt.date.fromisoformat(pinned)
    except ValueError:
        raise ValueError(f"{EPOCH_ENV}={pinned!r}: expected a date, YYYY-MM-DD") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _seed(urn: str, purpose: str) -> bytes:
    return hashlib.sha256(f"{purpose}\0{urn}".encode()).digest()


def _private_key(inputs: Mapping[str, Any], urn: str) -> PrivateKey:
    algorithm = inputs.get("algorithm", "RSA")
    if algorithm == "ECDSA":
        curve = _CURVES[inputs.get("ecdsaCurve") or "P224"]
        stream = int.from_bytes(_seed(urn, "key") * 3, "big")
        if curve.key_size == 256:
            scalar = stream % (_P256_ORDER - 1) + 1
        else:
            # below 2**(n-1), hence below the group order of every NIST curve: always a valid key
            scalar = stream % (2 ** (curve.key_size - 1) - 1) + 1
        return ec.derive_private_key(scalar, curve)
    if algorithm == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=int(inputs.get("rsaBits") or 2048))
    raise ValueError(f"tls PrivateKey: algorithm {algorithm!r} is not supported by the offline render")


def _pem(key: PrivateKey, fmt: serialization.PrivateFormat) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def private_key(inputs: Mapping[str, Any], urn: str) -> dict[str, Any]:
    """tls:index/privateKey:PrivateKey.

    Like the provider: ``privateKeyPem`` in the traditional (PKCS#1 / SEC 1) form, PKCS#8 in
    ``privateKeyPemPkcs8``; the OpenSSH public key and fingerprints are empty for a P224
    key, which OpenSSH does not support. ``privateKeyOpenssh`` is left out: that format
    carries a random check value, and a re-render must give the same outputs.
    """
    key = _private_key(inputs, urn)
    public = key.public_key()
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    try:
        openssh = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    except ValueError:
        openssh = ""
    blob = base64.b64decode(openssh.split()[1]) if openssh else b""
    return {
        **inputs,
        "privateKeyPem": _pem(key, serialization.PrivateFormat.TraditionalOpenSSL),
        "privateKeyPemPkcs8": _pem(key, serialization.PrivateFormat.PKCS8),
        "publicKeyPem": public_pem,
        "publicKeyOpenssh": openssh + "\n" if openssh else "",
        "publicKeyFingerprintMd5": ":".join(f"{b:02x}" for b in hashlib.md5(blob, usedforsecurity=False).digest()) if blob else "",
        "publicKeyFingerprintSha256": (
            "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=") if blob else ""
        ),
    }


def _deterministic(signer: PrivateKey) -> bool | None:
    """RFC 6979 signatures for ECDSA, so a re-render signs byte for byte the same."""
    return True if isinstance(signer, ec.EllipticCurvePrivateKey) else None


def _load_key(pem: str) -> PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("only ECDSA and RSA keys are supported by the offline render")
    return key


def _name(subject: Mapping[str, Any] | None) -> x509.Name:
    subject = subject or {}
    attrs: list[x509.NameAttribute[str]] = []
    pairs = [("country", NameOID.COUNTRY_NAME), ("province", NameOID.STATE_OR_PROVINCE_NAME),
             ("locality", NameOID.LOCALITY_NAME), ("organization", NameOID.ORGANIZATION_NAME),
             ("organizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME), ("commonName", NameOID.COMMON_NAME)]
    for key, oid in pairs:
        value = subject.get(key)
        for item in value if isinstance(value, list) else [value] if value else []:
            attrs.append(x509.NameAttribute(oid, str(item)))
    return x509.Name(attrs)


_EKU = {
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
}
_KU = {
    "digital_signature": "digital_signature", "content_commitment": "content_commitment",
    "key_encipherment": "key_encipherment", "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement", "cert_signing": "key_cert_sign", "crl_signing": "crl_sign",
    "encipher_only": "encipher_only", "decipher_only": "decipher_only",
}


def _issue(
    inputs: Mapping[str, Any],
    urn: str,
    subject: x509.Name,
    public_key: Any,
    dns_names: list[str],
    ip_addresses: list[str],
    issuer: x509.Name,
    issuer_key: PrivateKey,
) -> dict[str, Any]:
    uses = list(inputs.get("allowedUses") or [])
    unknown = [u for u in uses if u not in _EKU and u not in _KU]
    if unknown:
        raise ValueError(f"tls: allowed_uses {unknown} are not supported by the offline render")
    hours = int(inputs["validityPeriodHours"])
    start = epoch()
    end = start + dt.timedelta(hours=hours)
    serial = int.from_bytes(_seed(urn, "serial")[:16], "big") >> 1
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial or 1)
        .not_valid_before(start)
        .not_valid_after(end)
    )
    is_ca = bool(inputs.get("isCaCertificate"))
    builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    flags = {v: False for v in _KU.values()}
    for use in uses:
        if use in _KU:
            flags[_KU[use]] = True
    if any(flags.values()):
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    ekus = [_EKU[u] for u in uses if u in _EKU]
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if inputs.get("setSubjectKeyId") or is_ca:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    if issuer_key.public_key() != public_key:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    cert = builder.sign(issuer_key, hashes.SHA256(), ecdsa_deterministic=_deterministic(issuer_key))
    return {
        **inputs,
        "certPem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "validityStartTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "validityEndTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "readyForRenewal": False,
    }


def self_signed_cert(inputs: Mapping[str, Any], urn: str) -> dict[str, Any]:
    """tls:index/selfSignedCert:SelfSignedCert."""
    key = _load_key(inputs["privateKeyPem"])
    subject = _name(inputs.get("subject"))
    return _issue(inputs, urn, subject, key.public_key(), list(inputs.get("dnsNames") or []),
                  list(inputs.get("ipAddresses") or []), subject, key)


def cert_request(inputs: Mapping[str, Any], urn: str) -> dict[str, Any]:
    """tls:index/certRequest:CertRequest."""
    key = _load_key(inputs["privateKeyPem"])
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(inputs.get("subject")))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in inputs.get("dnsNames") or []]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in inputs.get("ipAddresses") or []]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256(), ecdsa_deterministic=_deterministic(key))
    return {**inputs, "certRequestPem": csr.public_bytes(serialization.Encoding.PEM).decode()}


def locally_signed_cert(inputs: Mapping[str, Any], urn: str) -> dict[str, Any]:
    """tls:index/locallySignedCert:LocallySignedCert."""
    csr = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
    ca = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
    ca_key = _load_key(inputs["caPrivateKeyPem"])
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    return _issue(inputs, urn, csr.subject, csr.public_key(), dns, ips, ca.subject, ca_key)


def _random_chars(inputs: Mapping[str, Any], urn: str) -> str:
    alphabet = ""
    if inputs.get("lower", True):
        alphabet += string.ascii_lowercase
    if inputs.get("upper", True):
        alphabet += string.ascii_uppercase
    if inputs.get("numeric", inputs.get("number", True)):
        alphabet += string.digits
    if inputs.get("special", True):
        alphabet += inputs.get("overrideSpecial") or "!@#$%&*()-_=+[]{}<>:?"
    length = int(inputs["length"])
    stream = b"".join(_seed(urn, f"random{i}") for i in range(length // 32 + 1))
    return "".join(alphabet[b % len(alphabet)] for b in stream[:length])


def random_string(inputs: Mapping[str, Any], urn: str) -> dict[str, Any]:
    """random:index/randomString:RandomString (and RandomPassword)."""
    value = _random_chars(inputs, urn)
    return {**inputs, "result": value, "bcryptHash": ""}


def random_bytes(inputs: Mapping[str, Any], urn: str) -> dict[str, Any]:
    """random:index/randomBytes:RandomBytes."""
    data = b"".join(_seed(urn, f"bytes{i}") for i in range(int(inputs["length"]) // 32 + 1))[: int(inputs["length"])]
    return {**inputs, "base64": base64.b64encode(data).decode(), "hex": data.hex()}


def random_id(inputs: Mapping[str, Any], urn: str) -> dict[str, Any]:
    """random:index/randomId:RandomId: ``hex``, ``b64Std``, ``b64Url``, ``dec`` of ``byteLength`` bytes."""
    data = b"".join(_seed(urn, f"id{i}") for i in range(int(inputs["byteLength"]) // 32 + 1))[: int(inputs["byteLength"])]
    prefix = str(inputs.get("prefix") or "")
    return {**inputs, "hex": prefix + data.hex(), "b64Std": prefix + base64.b64encode(data).decode(),
            "b64Url": prefix + base64.urlsafe_b64encode(data).decode().rstrip("="),
            "dec": prefix + str(int.from_bytes(data, "big"))}


def random_uuid(inputs: Mapping[str, Any], urn: str) -> dict[str, Any]:
    """random:index/randomUuid:RandomUuid: ``result``, a version-4 UUID (Azure role ids are GUIDs)."""
    return {**inputs, "result": str(uuid.UUID(bytes=_seed(urn, "uuid")[:16], version=4))}


PROVIDERS: dict[str, Callable[[Mapping[str, Any], str], dict[str, Any]]] = {
    "tls:index/privateKey:PrivateKey": private_key,
    "tls:index/selfSignedCert:SelfSignedCert": self_signed_cert,
    "tls:index/certRequest:CertRequest": cert_request,
    "tls:index/locallySignedCert:LocallySignedCert": locally_signed_cert,
    "random:index/randomString:RandomString": random_string,
    "random:index/randomPassword:RandomPassword": random_string,
    "random:index/randomBytes:RandomBytes": random_bytes,
    "random:index/randomId:RandomId": random_id,
    "random:index/randomUuid:RandomUuid": random_uuid,
}
