"""IAM policies: each secret is readable only by machine identities, one secret at a time, and
only with the reader role (GCP ``secretAccessor``, Azure Key Vault Secrets User; the join token's
secret also with the rotation role, for the control plane); no grant gives anything a basic or
privileged role (GCP owner, editor; Azure Owner, Contributor, User Access Administrator, or a
custom role with their powers).

GCP members, bindings and whole IAM policies (``policyData``, JSON) are all read, so a grant is
judged whichever of the three resources carries it; on Azure every grant is a role assignment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import EnforcementLevel

from cfcr.policy.base import CfcrResourcePolicy, Reporter, Resource, Setting, string_list
from cfcr.policy.common import as_list
from cfcr.policy.types import (
    AZ_ROLE_ASSIGNMENT,
    AZ_ROLE_DEFINITION,
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


# Azure built-in role ids (learn.microsoft.com/azure/role-based-access-control/built-in-roles)
AZURE_OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
AZURE_CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
AZURE_USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4429-a1be-0fbd1e8e7b2c"
AZURE_RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
AZURE_KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
AZURE_KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
AZURE_KEY_VAULT_DATA_ROLES = frozenset({
    AZURE_KEY_VAULT_SECRETS_USER, AZURE_KEY_VAULT_SECRETS_OFFICER,
    "00482a5a-887f-4fb3-b363-3b7fe8e74483",  # Key Vault Administrator
    "21090545-7ca7-4776-b22c-e363652d74d2",  # Key Vault Reader
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",  # Key Vault Crypto Officer
    "12338af0-0e69-4776-bea7-57ae8d297424",  # Key Vault Crypto User
    "a4417e6f-fecd-4de8-b567-7b0420556985",  # Key Vault Certificates Officer
    "8b54135c-b56d-4d72-a534-26097cfdc8d8",  # Key Vault Data Access Administrator
})
"""Key Vault's data-plane roles: an assignment of one is about secrets, whatever its scope."""
_VAULT = "/providers/microsoft.keyvault/vaults/"


def role_id(role_definition_id: Any) -> str:
    """The role's GUID from ``/subscriptions/../providers/Microsoft.Authorization/roleDefinitions/<guid>``."""
    return str(role_definition_id or "").rstrip("/").rsplit("/", 1)[-1].lower()


def _vault_secret(scope: str) -> str | None:
    """The secret a Key Vault scope names (``.../vaults/<v>/secrets/<name>``), None when the scope
    is wider (the vault, its resource group, the subscription)."""
    _, sep, rest = scope.lower().partition(_VAULT)
    parts = rest.strip("/").split("/")
    if sep and len(parts) >= 3 and parts[1] == "secrets" and parts[2]:
        return scope.rstrip("/").rsplit("/", 1)[-1]
    return None


def _check_azure_secret_access(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    role = role_id(res.props.get("roleDefinitionId"))
    scope = str(res.props.get("scope") or "")
    if role not in AZURE_KEY_VAULT_DATA_ROLES and _VAULT not in scope.lower():
        return  # not about Key Vault
    secret = _vault_secret(scope)
    if secret is None:
        report(f"role {role} is assigned at {scope or 'an unknown scope'}: Key Vault roles are assigned on one "
               "secret (.../vaults/<vault>/secrets/<name>), never on the vault or above")
    kind = str(res.props.get("principalType") or "unset")
    if kind.lower() != "serviceprincipal":
        report(f"principalType is {kind}: only the machines' managed identities (ServicePrincipal) read secrets")
    roles = {str(r).lower() for r in as_list(cfg["azureAllowedRoles"])}
    rotation = {str(r).lower() for r in as_list(cfg["azureJoinTokenRotationRoles"])}
    join_token = (secret or "").endswith(JOIN_TOKEN_SUFFIX)
    if role in roles or (join_token and role in rotation):
        return
    if role in rotation:
        report(f"role {role} on {secret or 'the vault'}; it is allowed on the join token's secret "
               f"(*{JOIN_TOKEN_SUFFIX}) only")
    else:
        report(f"role {role or 'unset'} on the secret; allowed: {', '.join(sorted(roles))}")


def _check_secret_access(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    if res.type == AZ_ROLE_ASSIGNMENT:
        _check_azure_secret_access(res, cfg, report)
        return
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
    "Secrets are granted only to machine identities, one secret at a time, with the reader role: GCP Secret "
    "Manager secretAccessor to service accounts; Azure Key Vault Secrets User to managed identities, scoped to "
    "a secret, never the vault.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[GCP_SECRET_IAM_MEMBER, GCP_SECRET_IAM_BINDING, GCP_SECRET_IAM_POLICY, AZ_ROLE_ASSIGNMENT],
    clouds=("gcp", "azure"),
    check=_check_secret_access,
    settings=[Setting("allowedRoles", string_list(
        "Roles a secret may grant.", ["roles/secretmanager.secretAccessor"])),
              Setting("joinTokenRotationRoles", string_list(
                  "Roles the join token's secret (*-bootstrap-token) may grant besides: the control plane rotates it.",
                  ["roles/secretmanager.secretVersionManager"])),
              Setting("azureAllowedRoles", string_list(
                  "Azure role ids a Key Vault secret may grant (Key Vault Secrets User).",
                  [AZURE_KEY_VAULT_SECRETS_USER])),
              Setting("azureJoinTokenRotationRoles", string_list(
                  "Azure role ids the join token's secret may grant besides (Key Vault Secrets Officer: the "
                  "control plane rotates it).", [AZURE_KEY_VAULT_SECRETS_OFFICER]))],
    remediation="Grant roles/secretmanager.secretAccessor to serviceAccount:<the role's account> on each secret "
                "(and secretVersionManager on the join token's secret to the control-plane accounts); on Azure, "
                "Key Vault Secrets User to the role's managed identity with the secret as scope.",
)


_AZURE_POWERS = frozenset({"*", "*/write", "microsoft.authorization/*", "microsoft.authorization/*/write",
                           "microsoft.authorization/roleassignments/*",
                           "microsoft.authorization/roleassignments/write"})
"""Actions that make a custom Azure role as strong as Contributor (everything) or Owner (grants)."""


def _check_azure_roles(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    if res.type == AZ_ROLE_ASSIGNMENT:
        forbidden = {str(r).lower() for r in as_list(cfg["azureForbiddenRoles"])}
        role = role_id(res.props.get("roleDefinitionId"))
        if role in forbidden:
            report(f"principal {res.props.get('principalId') or '?'} gets role {role} (Owner, Contributor or an "
                   f"access administrator) at {res.props.get('scope') or 'an unknown scope'}; assign the "
                   "cluster's custom role instead")
        return
    for i, permission in enumerate(as_list(res.props.get("permissions"))):
        actions = [str(a) for a in as_list(permission.get("actions") if isinstance(permission, Mapping) else None)]
        strong = [a for a in actions if a.lower() in _AZURE_POWERS]
        if strong:
            report(f"permissions[{i}].actions has {', '.join(strong)}: the custom role is as strong as "
                   "Contributor or Owner; list the actions the cluster needs")


def _check_project_roles(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    if res.type in (AZ_ROLE_ASSIGNMENT, AZ_ROLE_DEFINITION):
        _check_azure_roles(res, cfg, report)
        return
    forbidden = {str(r) for r in as_list(cfg["forbiddenRoles"])}
    for where, role, member in grants(res):
        if role in forbidden:
            report(f"{where}: {member} gets {role} on the project; grant the cluster's custom role instead")
        if _kind(member) in PUBLIC_MEMBERS:
            report(f"{where}: {member} gets {role or 'a role'} on the project: anyone with a Google account")


no_basic_project_roles = CfcrResourcePolicy(
    "no-basic-project-roles",
    "No grant of the stack gives a basic or privileged role: GCP project owner, editor or anything to allUsers; "
    "Azure Owner, Contributor, User Access Administrator, or a custom role with '*' or role-assignment writes.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[GCP_PROJECT_IAM_MEMBER, GCP_PROJECT_IAM_BINDING, GCP_PROJECT_IAM_POLICY, AZ_ROLE_ASSIGNMENT,
                    AZ_ROLE_DEFINITION],
    clouds=("gcp", "azure"),
    check=_check_project_roles,
    settings=[Setting("forbiddenRoles", string_list(
        "Project roles no grant of the stack may give.", ["roles/owner", "roles/editor"])),
              Setting("azureForbiddenRoles", string_list(
                  "Azure role ids no role assignment of the stack may give (Owner, Contributor, User Access "
                  "Administrator, Role Based Access Control Administrator).",
                  [AZURE_OWNER, AZURE_CONTRIBUTOR, AZURE_USER_ACCESS_ADMINISTRATOR, AZURE_RBAC_ADMINISTRATOR]))],
    remediation="Give the control plane's identity its custom role (cfcr does, on GCP and Azure); workers get no "
                "project or resource-group role.",
)
