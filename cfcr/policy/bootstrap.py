"""Node-bootstrap policies over what machines boot with (user-data, metadata, custom data,
launch templates): no key material in it, Secrets encrypted at rest, audit logging on.

The user-data is decoded the way the VM would see it (base64, gzip) and every
``write_files`` entry of a ``#cloud-config`` document is decoded too, so a key hidden in an
embedded file is found. The kubeadm ClusterConfiguration inside a control-plane node's
user-data tells whether the API server encrypts Secrets and writes an audit log; the
bootstrap component's summary says the same for the cluster as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel

from cfcr.policy.base import CfcrResourcePolicy, Reporter, Resource, Setting, string_list
from cfcr.policy.common import (
    as_bool,
    as_list,
    extra_args,
    get,
    key_material_findings,
    user_data_texts,
    yaml_documents,
)
from cfcr.policy.types import (
    AWS_INSTANCE,
    AWS_LAUNCH_TEMPLATE,
    AZ_VM,
    AZ_VMSS,
    BOOTSTRAP,
    GCP_INSTANCE,
    GCP_INSTANCE_TEMPLATE,
    GCP_REGION_INSTANCE_TEMPLATE,
    RENDERED_USER_DATA,
)

CARRIERS = (AWS_INSTANCE, AWS_LAUNCH_TEMPLATE, GCP_INSTANCE, GCP_INSTANCE_TEMPLATE, GCP_REGION_INSTANCE_TEMPLATE,
            AZ_VM, AZ_VMSS, RENDERED_USER_DATA)
"""Resource types that carry what a machine boots with."""


def boot_payloads(res: Resource) -> list[tuple[str, list[str]]]:
    """``(property path, decoded texts)`` of every boot payload a resource carries."""
    found: list[tuple[str, Any, bool | None]] = []
    props = res.props
    if res.type == AWS_INSTANCE:
        found += [("userData", props.get("userData"), None), ("userDataBase64", props.get("userDataBase64"), True)]
    elif res.type == AWS_LAUNCH_TEMPLATE:
        found.append(("userData", props.get("userData"), True))
    elif res.type in (GCP_INSTANCE, GCP_INSTANCE_TEMPLATE, GCP_REGION_INSTANCE_TEMPLATE):
        metadata = props.get("metadata")
        if isinstance(metadata, Mapping):
            found += [(f"metadata.{key}", value, None) for key, value in metadata.items()]
        found.append(("metadataStartupScript", props.get("metadataStartupScript"), None))
    elif res.type == AZ_VM:
        found += [("osProfile.customData", get(props, "osProfile", "customData"), True),
                  ("userData", props.get("userData"), True)]
    elif res.type == AZ_VMSS:
        found += [("virtualMachineProfile.osProfile.customData",
                   get(props, "virtualMachineProfile", "osProfile", "customData"), True),
                  ("virtualMachineProfile.userData", get(props, "virtualMachineProfile", "userData"), True)]
    elif res.type == RENDERED_USER_DATA:
        found.append((f"nodes/{props.get('role')}/user-data", props.get("userData"), True))
    return [(path, user_data_texts(value, base64_encoded=b64)) for path, value, b64 in found
            if isinstance(value, str | bytes) and value]


# ----------------------------------------------------------------------------- key material


def _check_key_material(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    import re

    extra = [re.compile(p) for p in as_list(cfg["extraPatterns"])]
    for path, texts in boot_payloads(res):
        findings = key_material_findings(texts)
        findings += [f"a match of {p.pattern!r}" for p in extra if any(p.search(t) for t in texts)]
        for finding in findings:
            report(f"{path} contains {finding}; keys and tokens belong in the secret store")


no_key_material = CfcrResourcePolicy(
    "no-key-material-in-user-data",
    "No private key, bootstrap token or encryption key rides in user-data, metadata, custom data or a "
    "launch template.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=CARRIERS,
    clouds=("aws", "gcp", "azure"),
    check=_check_key_material,
    settings=[Setting("extraPatterns", string_list(
        "Further regular expressions (Python syntax) that must not appear in boot payloads.", []))],
    remediation="Put the material in the cloud's secret store and let the node fetch it with its identity.",
)


# ----------------------------------------------------------------------------- API server flags


def _cluster_configurations(res: Resource) -> list[tuple[str, Mapping[str, Any], list[Mapping[str, Any]]]]:
    """``(path, ClusterConfiguration, every document of the payload)`` of each control-plane payload."""
    out = []
    for path, texts in boot_payloads(res):
        docs = list(yaml_documents(texts))
        for doc in docs:
            if doc.get("kind") == "ClusterConfiguration":
                out.append((path, doc, docs))
    return out


def _flag_missing(args: Mapping[str, str], flag: str) -> bool:
    return not str(args.get(flag, "")).strip()


def _check_encryption(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    if res.type == BOOTSTRAP:
        if as_bool(res.props.get("secretsEncryption")) is not True:
            report("the cluster summary says Secrets are not encrypted at rest")
        return
    for path, cluster, docs in _cluster_configurations(res):
        args = extra_args(get(cluster, "apiServer"))
        if _flag_missing(args, "encryption-provider-config"):
            report(f"{path}: kube-apiserver has no --encryption-provider-config: Secrets are stored in plain text")
        for doc in docs:
            if doc.get("kind") != "EncryptionConfiguration":
                continue
            for entry in as_list(doc.get("resources")):
                covered = [str(r) for r in as_list(get(entry, "resources"))]
                first = get(entry, "providers", 0)
                name = next(iter(first), None) if isinstance(first, Mapping) else None
                if "secrets" in covered and name in cfg["weakProviders"]:
                    report(f"{path}: the EncryptionConfiguration writes Secrets with the {name!r} provider first")


secrets_encrypted = CfcrResourcePolicy(
    "secrets-encrypted-at-rest",
    "The API server encrypts Secrets at rest (--encryption-provider-config with an encrypting provider first).",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=(*CARRIERS, BOOTSTRAP),
    clouds=("aws", "gcp", "azure"),
    check=_check_encryption,
    settings=[Setting("weakProviders", string_list("Providers that do not encrypt.", ["identity"]))],
    remediation="Do not override encryption-provider-config in cfcr:components.apiServer.extraArgs.",
)


def _check_audit(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    if res.type == BOOTSTRAP:
        if as_bool(res.props.get("auditLogging")) is not True:
            report("the cluster summary says audit logging is off")
        return
    for path, cluster, _ in _cluster_configurations(res):
        args = extra_args(get(cluster, "apiServer"))
        for flag in cfg["requiredFlags"]:
            if _flag_missing(args, str(flag)):
                report(f"{path}: kube-apiserver has no --{flag}: the API server keeps no audit log")


audit_logging = CfcrResourcePolicy(
    "audit-logging-enabled",
    "The API server writes an audit log (--audit-log-path and --audit-policy-file set).",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=(*CARRIERS, BOOTSTRAP),
    clouds=("aws", "gcp", "azure"),
    check=_check_audit,
    settings=[Setting("requiredFlags", string_list(
        "kube-apiserver flags that must be set and non-empty.", ["audit-log-path", "audit-policy-file"]))],
    remediation="Do not override the audit flags in cfcr:components.apiServer.extraArgs.",
)
