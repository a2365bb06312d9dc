"""GCP IAM policies: each Secret Manager secret is readable only by service accounts, and only
with ``secretAccessor`` (the join token's secret also with ``secretVersionManager``, for the
control plane's rotation); no project grant gives anything a basic role (owner, editor).

Members, bindings and whole IAM policies (``policyData``, JSON) are all read, so a grant is
judged whichever of the three resources carries it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import EnforcementLevel

from cfcr.policy.base import CfcrResourcePolicy, Reporter, Resource, Setting, string_list
from cfcr.policy.common import as_list
from cfcr.policy.types import (
    GCP_PROJECT_IAM_BINDING,
    GCP_PROJECT_IAM_MEMBER,
    GCP_PROJECT_IAM_POLICY,
    GCP_SECRET_IAM_BINDING,
    GCP_SECRET_IAM_MEMBER,
    GCP_SECRET_IAM_POLICY,
)

PUBLIC_MEMBERS = frozenset({"allusers", "allauthenticatedusers"})
"""IAM principals that mean anyone (with a Google account)."""

_MEMBERS = (GCP_SECRET_IAM_MEMBER, GCP_PROJECT_IAM_MEMBER)
_BINDINGS = (GCP_SECRET_IAM_BINDING, GCP_PROJECT_IAM_BINDING)
_POLICIES = (GCP_SECRET_IAM_POLICY, GCP_PROJECT_IAM_POLICY)


def grants(res: Resource) -> Iterator[tuple[str, str, str]]:
    """``(where, role, member)`` of every grant an IAM member, binding or policy resource makes."""
    props = res.props
    if res.type in _MEMBERS:
        yield "member", str(props.get("role") or ""), str(props.get("member") or "")
    elif res.type in _BINDINGS:
        for i, member in enumerate(as_list(props.get("members"))):
            yield f"members[{i}]", str(props.get("role") or ""), str(member)
    elif res.type in _POLICIES:
        data = props.get("policyData")
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError:
                return
        if not isinstance(data, Mapping):
            return  # not known yet (a preview)
        for b, binding in enumerate(as_list(data.get("bindings"))):
            if not isinstance(binding, Mapping):
                continue
            for i, member in enumerate(as_list(binding.get("members"))):
                yield f"policyData.bindings[{b}].members[{i}]", str(binding.get("role") or ""), str(member)


def _kind(member: str) -> str:
    return member.split(":", 1)[0].strip().lower() if ":" in member else member.strip().lower()


JOIN_TOKEN_SUFFIX = "-bootstrap-token"
"""How the join token's secret id ends (``cfcr.bootstrap.component.default_secret_id``)."""


def _check_secret_access(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    roles = [str(r) for r in as_list(cfg["allowedRoles"])]
    rotation = [str(r) for r in as_list(cfg["joinTokenRotationRoles"])]
    secret = str(res.props.get("secretId") or "")
    join_token = secret.endswith(JOIN_TOKEN_SUFFIX)
    for where, role, member in grants(res):
        kind = _kind(member)
        if kind in PUBLIC_MEMBERS:
            report(f"{where}: {member} may use the secret ({role}): anyone with a Google account")
        elif kind != "serviceaccount":
            report(f"{where}: {member} is not a service account; only the machines' service accounts read secrets")
        if role in roles or (join_token and role in rotation):
            continue
        if role in rotation:
            report(f"{where}: role {role} on {secret or 'the secret'}; it is allowed on the join token's secret "
                   f"(*{JOIN_TOKEN_SUFFIX}) only")
        else:
            report(f"{where}: role {role or 'unset'} on the secret; allowed: {', '.join(roles)}")


secret_access_least_privilege = CfcrResourcePolicy(
    "secret-access-least-privilege",
    "Secret Manager secrets are granted only to service accounts, only with secretAccessor.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[GCP_SECRET_IAM_MEMBER, GCP_SECRET_IAM_BINDING, GCP_SECRET_IAM_POLICY],
    clouds=("gcp",),
    check=_check_secret_access,
    settings=[Setting("allowedRoles", string_list(
        "Roles a secret may grant.", ["roles/secretmanager.secretAccessor"])),
              Setting("joinTokenRotationRoles", string_list(
                  "Roles the join token's secret (*-bootstrap-token) may grant besides: the control plane rotates it.",
                  ["roles/secretmanager.secretVersionManager"]))],
    remediation="Grant roles/secretmanager.secretAccessor to serviceAccount:<the role's account> on each secret "
                "(and secretVersionManager on the join token's secret to the control-plane accounts).",
)


def _check_project_roles(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    forbidden = {str(r) for r in as_list(cfg["forbiddenRoles"])}
    for where, role, member in grants(res):
        if role in forbidden:
            report(f"{where}: {member} gets {role} on the project; grant the cluster's custom role instead")
        if _kind(member) in PUBLIC_MEMBERS:
            report(f"{where}: {member} gets {role or 'a role'} on the project: anyone with a Google account")


no_basic_project_roles = CfcrResourcePolicy(
    "no-basic-project-roles",
    "No project IAM grant of the stack gives a basic role (owner, editor) or anything to allUsers.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[GCP_PROJECT_IAM_MEMBER, GCP_PROJECT_IAM_BINDING, GCP_PROJECT_IAM_POLICY],
    clouds=("gcp",),
    check=_check_project_roles,
    settings=[Setting("forbiddenRoles", string_list(
        "Project roles no grant of the stack may give.", ["roles/owner", "roles/editor"]))],
    remediation="Give the control plane's service account its custom role (cfcr does); workers get no project role.",
)
