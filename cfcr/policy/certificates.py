"""Certificate policies over pulumi-tls resources: validity of CAs and leaves inside the
configured limits, and only allowed key algorithms and sizes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel

from cfcr.policy.base import CfcrResourcePolicy, Reporter, Resource, Setting, integer, string_list
from cfcr.policy.common import as_bool, as_list, as_number, fmt_number
from cfcr.policy.types import TLS_LOCALLY_SIGNED, TLS_PRIVATE_KEY, TLS_SELF_SIGNED

TLS_PROVIDER_DEFAULT_CURVE = "P224"
"""pulumi-tls's ``ecdsaCurve`` when none is given."""
TLS_PROVIDER_DEFAULT_RSA_BITS = 2048
"""pulumi-tls's ``rsaBits`` when none is given."""


def _check_validity(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    hours = as_number(res.props.get("validityPeriodHours"))
    is_ca = as_bool(res.props.get("isCaCertificate")) is True
    kind = "CA" if is_ca else "leaf"
    low, high = (int(cfg["caMinValidityHours"]), int(cfg["caMaxValidityHours"])) if is_ca else (
        int(cfg["leafMinValidityHours"]), int(cfg["leafMaxValidityHours"]))
    if hours is None:
        report(f"{kind} certificate has no validityPeriodHours")
        return
    if hours > high:
        report(f"{kind} certificate valid for {fmt_number(hours)}h, longer than the limit of {high}h")
    if hours < low:
        report(f"{kind} certificate valid for {fmt_number(hours)}h, shorter than the minimum of {low}h")
    early = as_number(res.props.get("earlyRenewalHours"))
    if early is not None and early >= hours:
        report(f"earlyRenewalHours ({fmt_number(early)}) is not shorter than the validity ({fmt_number(hours)}h): "
               "every update replaces the certificate")


certificate_validity = CfcrResourcePolicy(
    "certificate-validity",
    "CA and leaf certificates are valid for no longer (and no shorter) than the configured limits.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[TLS_SELF_SIGNED, TLS_LOCALLY_SIGNED],
    clouds=("aws", "gcp", "azure"),
    check=_check_validity,
    settings=[
        Setting("caMaxValidityHours", integer("Longest CA lifetime in hours (10 years).", 87600, 1)),
        Setting("caMinValidityHours", integer("Shortest CA lifetime in hours (2 years).", 17520, 1)),
        Setting("leafMaxValidityHours", integer("Longest leaf lifetime in hours (1 year).", 8760, 1)),
        Setting("leafMinValidityHours", integer("Shortest leaf lifetime in hours (30 days).", 720, 1)),
    ],
    remediation="Set cfcr:pki.caValidityHours and cfcr:pki.leafValidityHours inside the limits.",
)


def _check_keys(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    algorithm = str(res.props.get("algorithm") or "")
    allowed = [str(a) for a in as_list(cfg["allowedAlgorithms"])]
    if algorithm not in allowed:
        report(f"key algorithm {algorithm or 'unset'!r} is not allowed ({', '.join(allowed)})")
        return
    if algorithm == "RSA":
        bits = as_number(res.props.get("rsaBits"))
        bits = float(TLS_PROVIDER_DEFAULT_RSA_BITS) if bits is None else bits
        if bits < int(cfg["minRsaBits"]):
            report(f"RSA key of {fmt_number(bits)} bits; at least {cfg['minRsaBits']} are required")
    elif algorithm == "ECDSA":
        curve = str(res.props.get("ecdsaCurve") or TLS_PROVIDER_DEFAULT_CURVE)
        curves = [str(c) for c in as_list(cfg["allowedEcdsaCurves"])]
        if curve not in curves:
            report(f"ECDSA curve {curve} is not allowed ({', '.join(curves)})"
                   + ("; pulumi-tls defaults to P224 when ecdsaCurve is unset" if "ecdsaCurve" not in res.props
                      else ""))


certificate_keys = CfcrResourcePolicy(
    "certificate-key-algorithms",
    "Private keys use an allowed algorithm and size (RSA of enough bits, ECDSA on an allowed curve).",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[TLS_PRIVATE_KEY],
    clouds=("aws", "gcp", "azure"),
    check=_check_keys,
    settings=[
        Setting("allowedAlgorithms", string_list("Allowed key algorithms.", ["ECDSA", "RSA"])),
        Setting("minRsaBits", integer("Fewest bits of an RSA key.", 2048, 1024)),
        Setting("allowedEcdsaCurves", string_list("Allowed ECDSA curves.", ["P256", "P384", "P521"])),
    ],
    remediation="Use cfcr:pki.keyAlgorithm ECDSA (P-256) or RSA of 2048+ bits.",
)
