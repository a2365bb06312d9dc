"""``ClusterPki``: the cluster's CAs, keys, certificates, token and encryption key.

The imperative shell over ``cfcr.pki.specs``: every CA of every trusted generation and
every leaf of ``certificate_specs`` becomes pulumi-tls resources, children of the
component, named ``<component>-<stable id>``. Every private key, token and kubeconfig
leaves this component as a Pulumi secret.
"""

from __future__ import annotations


from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random as random
import pulumi_tls as tls

from cfcr.pki.specs import (
    ECDSA_CURVE,
    FAMILIES,
    SA_KEY,
    SA_PUB,
    SERVICE_ACCOUNT_RSA_BITS_MIN,
    BOOTSTRAP_TOKEN_ID_LENGTH,
    BOOTSTRAP_TOKEN_SECRET_LENGTH,
    ENCRYPTION_KEY_BYTES,
    CertSpec,
    Family,
    PkiInputs,
    bundle_generations,
    is_ip_address,
    ca_files,
    ca_specs,
    certificate_specs,
    join_pem,
    kubeadm_ca_cert_hash,
    render_kubeconfig,
    secret_files,
)

TYPE_TOKEN = "cfcr:pki:ClusterPki"


@dataclass(frozen=True)
class ByoCa:
    """A cluster CA the operator brings instead of one generated here."""

    cert_pem: pulumi.Input[str]
    """PEM of the CA certificate (must be a CA: basicConstraints CA:TRUE, keyCertSign)."""
    key_pem: pulumi.Input[str]
    """PEM of the CA private key; treated as a secret."""
    generation: int | None = None
    """The cluster-CA generation it stands for (default: the signing generation)."""


@dataclass(frozen=True)
class ClusterPkiArgs:
    """Arguments of ``ClusterPki``."""

    inputs: PkiInputs
    """The validated PKI shape (names, SANs, users, validity, generations)."""
    api_server_url: pulumi.Input[str] | None = None
    """The API endpoint URL (``https://host:6443``) used by ``admin_kubeconfig``."""
    byo_ca: ByoCa | None = None
    """Bring-your-own cluster CA; when given, that generation's cluster CA is not generated."""
    extra_api_names: pulumi.Input[Sequence[str]] = ()
    """Further DNS names of the API serving certificate known only as Outputs (e.g. a load
    balancer's generated DNS name); added after ``inputs.api_dns_names``."""


@dataclass(frozen=True)
class _KeyPair:
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]


def _private_key(name: str, algorithm: str, rsa_bits: int,
                 opts: pulumi.ResourceOptions) -> tls.PrivateKey:
    if algorithm == "RSA":
        return tls.PrivateKey(name, algorithm="RSA", rsa_bits=rsa_bits, opts=opts)
    return tls.PrivateKey(name, algorithm="ECDSA", ecdsa_curve=ECDSA_CURVE, opts=opts)


def _concat_pem(pems: Sequence[pulumi.Output[str]]) -> pulumi.Output[str]:
    return pulumi.Output.all(*pems).apply(lambda values: join_pem([str(v) for v in values]))


class ClusterPki(pulumi.ComponentResource):
    """Every CA (per family and generation), leaf, key pair, token and key of a cluster."""

    ca_bundle: pulumi.Output[str]
    """Cluster CA bundle: the signing generation's certificate first, then the others."""
    etcd_ca_bundle: pulumi.Output[str]
    """etcd CA bundle, same order."""
    front_proxy_ca_bundle: pulumi.Output[str]
    """Front-proxy CA bundle, same order."""
    materials: dict[str, pulumi.Output[str]]
    """PEM content per ``secret_files(inputs)`` key; every ``.key`` is a secret."""
    bootstrap_token: pulumi.Output[str]
    """kubeadm bootstrap token ``<id>.<secret>`` (secret)."""
    bootstrap_token_id: pulumi.Output[str]
    """The public id half of the bootstrap token."""
    encryption_key: pulumi.Output[str]
    """32 random bytes, base64, for the API server's secrets encryption (secret)."""
    ca_cert_hash: pulumi.Output[str]
    """kubeadm discovery pin of the signing cluster CA (``sha256:<hex>``)."""
    ca_cert_hashes: pulumi.Output[list[str]]
    """Pins of every trusted cluster CA, bundle order (pass all to ``kubeadm join``)."""

    def __init__(self, name: str, args: ClusterPkiArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        self._name = name
        self._args = args
        inputs = args.inputs
        child = pulumi.ResourceOptions(parent=self)

        # CAs: one per family per trusted generation; names carry the generation so that
        # adding generation 2 never renames (and so never replaces) generation 1.
        byo = args.byo_ca
        byo_generation = (byo.generation if byo and byo.generation is not None
                          else inputs.signing_generation)
        if byo is not None and byo_generation not in inputs.ca_generations:
            raise ValueError(f"byo_ca generation {byo_generation} is not in ca_generations "
                             f"{inputs.ca_generations}")
        self.cas: dict[tuple[Family, int], _KeyPair] = {}
        for ca in ca_specs(inputs):
            slot = (ca.family, ca.generation)
            if byo is not None and ca.family == "cluster" and ca.generation == byo_generation:
                self.cas[slot] = _KeyPair(pulumi.Output.from_input(byo.cert_pem),
                                          pulumi.Output.secret(byo.key_pem))
                continue
            key = _private_key(f"{name}-{ca.name}-key", inputs.key_algorithm,
                               inputs.ca_rsa_bits, child)
            cert = tls.SelfSignedCert(
                f"{name}-{ca.name}",
                private_key_pem=key.private_key_pem,
                subject=tls.SelfSignedCertSubjectArgs(common_name=ca.common_name),
                is_ca_certificate=True,
                max_path_length=ca.max_path_length,
                validity_period_hours=ca.validity_hours,
                allowed_uses=list(ca.usages),
                set_subject_key_id=True,
                opts=child,
            )
            self.cas[slot] = _KeyPair(cert.cert_pem, pulumi.Output.secret(key.private_key_pem))

        g = inputs.signing_generation
        order = bundle_generations(inputs)
        bundles = {f: _concat_pem([self.cas[(f, gen)].cert_pem for gen in order])
                   for f in FAMILIES}
        self.ca_bundle = bundles["cluster"]
        self.etcd_ca_bundle = bundles["etcd"]
        self.front_proxy_ca_bundle = bundles["front-proxy"]

        # Leaves: key, CSR and certificate per spec, signed by the signing generation.
        # Nothing flows from leaves to CAs, so renewing a leaf never touches a CA.
        self.leaves: dict[str, _KeyPair] = {}
        self._specs: dict[str, CertSpec] = {}
        for spec in certificate_specs(inputs):
            self._specs[spec.name] = spec
            self.leaves[spec.name] = self._leaf(spec, self.cas[(spec.issuer, g)], child)

        sa = tls.PrivateKey(f"{name}-sa-key", algorithm="RSA",
                            rsa_bits=max(SERVICE_ACCOUNT_RSA_BITS_MIN, inputs.rsa_bits), opts=child)

        materials: dict[str, pulumi.Output[str]] = {}
        for family in FAMILIES:
            crt, keyfile = ca_files(family)
            materials[crt] = bundles[family]
            materials[keyfile] = self.cas[(family, g)].key_pem
        materials[SA_KEY] = pulumi.Output.secret(sa.private_key_pem)
        materials[SA_PUB] = sa.public_key_pem
        for spec in self._specs.values():
            if spec.material_keys:
                crt_key, key_key = spec.material_keys
                materials[crt_key] = self.leaves[spec.name].cert_pem
                materials[key_key] = self.leaves[spec.name].key_pem
        expected = set(secret_files(inputs))
        if set(materials) != expected:  # pragma: no cover - guards specs/component drift
            raise AssertionError(f"materials out of step with secret_files: {expected ^ set(materials)}")
        self.materials = materials

        token_id = random.RandomString(
            f"{name}-bootstrap-token-id", length=BOOTSTRAP_TOKEN_ID_LENGTH,
            upper=False, lower=True, numeric=True, special=False, opts=child)
        token_secret = random.RandomPassword(
            f"{name}-bootstrap-token-secret", length=BOOTSTRAP_TOKEN_SECRET_LENGTH,
            upper=False, lower=True, numeric=True, special=False, opts=child)
        self.bootstrap_token_id = token_id.result
        self.bootstrap_token = pulumi.Output.secret(
            pulumi.Output.concat(token_id.result, ".", token_secret.result))

        enc = random.RandomBytes(f"{name}-encryption-key", length=ENCRYPTION_KEY_BYTES,
                                 opts=child)
        self.encryption_key = pulumi.Output.secret(enc.base64)

        self.ca_cert_hash = self.cas[("cluster", g)].cert_pem.apply(kubeadm_ca_cert_hash)
        self.ca_cert_hashes = pulumi.Output.all(
            *[self.cas[("cluster", gen)].cert_pem for gen in order]
        ).apply(lambda pems: [kubeadm_ca_cert_hash(str(p)) for p in pems])

        outputs: dict[str, Any] = {
            "ca_bundle": self.ca_bundle,
            "etcd_ca_bundle": self.etcd_ca_bundle,
            "front_proxy_ca_bundle": self.front_proxy_ca_bundle,
            "ca_cert_hash": self.ca_cert_hash,
            "ca_cert_hashes": self.ca_cert_hashes,
            "bootstrap_token": self.bootstrap_token,
            "encryption_key": self.encryption_key,
            "materials": self.materials,
        }
        if args.api_server_url is not None:
            outputs["admin_kubeconfig"] = self.admin_kubeconfig
        self.register_outputs(outputs)

    def _leaf(self, spec: CertSpec, ca: _KeyPair, child: pulumi.ResourceOptions) -> _KeyPair:
        inputs = self._args.inputs
        base = f"{self._name}-{spec.name}"
        if len(spec.organizations) > 1:  # specs validation forbids it; tls takes one O
            raise ValueError(f"{spec.name}: pulumi-tls subjects carry a single organization")
        key = _private_key(f"{base}-key", inputs.key_algorithm, inputs.rsa_bits, child)
        csr = tls.CertRequest(
            f"{base}-csr",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(
                common_name=spec.common_name,
                organization=spec.organizations[0] if spec.organizations else None,
            ),
            dns_names=self._dns_names(spec),
            ip_addresses=self._ip_addresses(spec),
            opts=child,
        )
        cert = tls.LocallySignedCert(
            base,
            cert_request_pem=csr.cert_request_pem,
            ca_cert_pem=ca.cert_pem,
            ca_private_key_pem=ca.key_pem,
            validity_period_hours=spec.validity_hours,
            early_renewal_hours=spec.early_renewal_hours,
            allowed_uses=list(spec.usages),
            set_subject_key_id=True,
            opts=child,
        )
        return _KeyPair(cert.cert_pem, pulumi.Output.secret(key.private_key_pem))

    def _dns_names(self, spec: CertSpec) -> pulumi.Input[Sequence[str]]:
        """The leaf's DNS SANs; the API server's also carry ``args.extra_api_names``."""
        if spec.name != "apiserver":
            return list(spec.dns_names)
        static = list(spec.dns_names)
        return pulumi.Output.from_input(self._args.extra_api_names).apply(
            lambda extra: static + [n for n in dict.fromkeys(extra or ()) if n and n not in static and not is_ip_address(n)])

    def _ip_addresses(self, spec: CertSpec) -> pulumi.Input[Sequence[str]]:
        """The certificate's IP SANs; the API server's add the extra API names that are addresses
        (a public load balancer's static IP, on GCP): a client checks an IP against IP SANs only."""
        if spec.name != "apiserver":
            return list(spec.ip_addresses)
        static = list(spec.ip_addresses)
        return pulumi.Output.from_input(self._args.extra_api_names).apply(
            lambda extra: static + [n for n in dict.fromkeys(extra or ()) if n and n not in static and is_ip_address(n)])

    def kubeconfig(self, user: str, server_url: pulumi.Input[str]) -> pulumi.Output[str]:
        """A kubeconfig (secret) for ``admin``, ``super-admin`` or a named user."""
        spec = next((s for s in self._specs.values() if s.kubeconfig_user == user), None)
        if spec is None:
            known = sorted(s.kubeconfig_user for s in self._specs.values() if s.kubeconfig_user)
            raise ValueError(f"no credential for user {user!r}; known: {known}")
        pair = self.leaves[spec.name]
        cluster = self._args.inputs.cluster_name

        def render(values: list[Any]) -> str:
            url, ca, cert, key = (str(v) for v in values)
            return render_kubeconfig(cluster, url, ca, cert, key, user)

        return pulumi.Output.secret(
            pulumi.Output.all(server_url, self.ca_bundle, pair.cert_pem, pair.key_pem).apply(render))

    @property
    def admin_kubeconfig(self) -> pulumi.Output[str]:
        """The ``admin`` kubeconfig (``kubeadm:cluster-admins``) for ``args.api_server_url``."""
        if self._args.api_server_url is None:
            raise ValueError("admin_kubeconfig needs ClusterPkiArgs.api_server_url")
        return self.kubeconfig("admin", self._args.api_server_url)
