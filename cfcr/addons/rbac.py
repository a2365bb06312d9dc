"""RBAC personas bound to the PKI's named credentials (``pki.users`` groups, mapped by
``addons.rbacGroups``).

* **cluster-admin**: the built-in ``cluster-admin`` ClusterRole.
* **viewer**: the built-in ``view`` everywhere (no Secrets) plus reading cluster-scoped
  objects (nodes, namespaces, storage classes, persistent volumes, CRDs).
* **platform-operator**: creates and deletes namespaces and manages the RBAC inside them:
  ``view`` everywhere, namespaces, Roles and RoleBindings, and ``bind`` on the ``admin``,
  ``edit`` and ``view`` ClusterRoles, so it can grant those inside a namespace (itself
  included) but never a ClusterRoleBinding, a ClusterRole or ``escalate``. A
  ValidatingAdmissionPolicy stops the persona from writing anything in the system
  namespaces, where a RoleBinding would reach the cluster's own credentials; another stops it
  from setting, changing or removing a namespace's Pod Security labels, which would let its
  pods onto the host.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from cfcr.addons.base import Addon, cluster_role_binding, meta
from cfcr.config import ClusterSpec

PROTECTED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "default", "kube-flannel",
                        "tigera-operator", "calico-system", "cfcr-logging", "cfcr-vpa")


def group_subject(group: str) -> dict[str, str]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}


def _safe(group: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in group.lower()).strip("-")


def persona_roles() -> list[dict[str, Any]]:
    """The ClusterRoles cfcr defines for the personas."""
    reader = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta("cfcr:cluster-reader"),
        "rules": [
            {"apiGroups": [""], "resources": ["nodes", "namespaces", "persistentvolumes"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses", "csidrivers", "csinodes"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["scheduling.k8s.io"], "resources": ["priorityclasses"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["metrics.k8s.io"], "resources": ["nodes", "pods"], "verbs": ["get", "list"]},
        ],
    }
    operator = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta("cfcr:platform-operator"),
        "rules": [
            {"apiGroups": [""], "resources": ["namespaces"],
             "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
             "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
             "resourceNames": ["admin", "edit", "view"], "verbs": ["bind"]},
            {"apiGroups": [""], "resources": ["resourcequotas", "limitranges"],
             "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        ],
    }
    return [reader, operator]


def _operators_policy(name: str, groups: str, match: dict[str, Any], validation: dict[str, str],
                      variables: Sequence[dict[str, str]] = ()) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy for requests of the platform-operator ``groups`` (a CEL list
    literal) that ``match``, denied unless ``validation`` holds, with its binding."""
    spec: dict[str, Any] = {
        "failurePolicy": "Fail",
        "matchConstraints": match,
        "matchConditions": [{"name": "platform-operators",
                             "expression": f"request.userInfo.groups.exists(g, g in {groups})"}],
        **({"variables": list(variables)} if variables else {}),
        "validations": [{**validation, "reason": "Forbidden"}],
    }
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": meta(name), "spec": spec},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": meta(name), "spec": {"policyName": name, "validationActions": ["Deny"]}},
    ]


def protect_system_namespaces(groups: Sequence[str]) -> list[dict[str, Any]]:
    """ValidatingAdmissionPolicies (+ bindings) denying the platform-operator groups any write
    in the system namespaces, and any change to a namespace's Pod Security labels."""
    if not groups:
        return []
    group_list = json.dumps(sorted(groups))
    system = _operators_policy(
        "cfcr-protect-system-namespaces", group_list,
        {"namespaceSelector": {"matchExpressions": [{
            "key": "kubernetes.io/metadata.name", "operator": "In", "values": list(PROTECTED_NAMESPACES)}]},
         "resourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"],
                            "operations": ["CREATE", "UPDATE", "DELETE", "CONNECT"]}]},
        {"expression": "false", "message": "platform operators may not change objects in cfcr's system namespaces"},
    )
    # A namespace's Pod Security labels decide what its pods may do on a node (privileged,
    # hostPath): a persona that may create and patch namespaces must not set them, or it
    # reaches the node, and from a control-plane node the cluster's keys.
    labels = _operators_policy(
        "cfcr-protect-pod-security-labels", group_list,
        {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["namespaces"],
                            "operations": ["CREATE", "UPDATE"]}]},
        {"expression": ("variables.new.all(k, !k.startsWith('pod-security.kubernetes.io/') || "
                        "(k in variables.old && variables.old[k] == variables.new[k])) && "
                        "variables.old.all(k, !k.startsWith('pod-security.kubernetes.io/') || k in variables.new)"),
         "message": "platform operators may not set, change or remove a namespace's pod-security.kubernetes.io labels"},
        variables=[
            {"name": "new", "expression": "has(object.metadata.labels) ? object.metadata.labels : {}"},
            {"name": "old", "expression": ("oldObject != null && has(oldObject.metadata.labels) "
                                           "? oldObject.metadata.labels : {}")},
        ],
    )
    return [*system, *labels]


def persona_bindings(rbac_groups: Mapping[str, str]) -> list[dict[str, Any]]:
    """The ClusterRoleBindings that give each mapped group its persona."""
    out: list[dict[str, Any]] = []
    for group, persona in sorted(rbac_groups.items()):
        subject = [group_subject(group)]
        base = f"cfcr:{persona}:{_safe(group)}"
        if persona == "cluster-admin":
            out.append(cluster_role_binding(base, "cluster-admin", subject))
        else:
            out.append(cluster_role_binding(f"{base}:view", "view", subject))
            out.append(cluster_role_binding(f"{base}:cluster-reader", "cfcr:cluster-reader", subject))
            if persona == "platform-operator":
                out.append(cluster_role_binding(base, "cfcr:platform-operator", subject))
    return out


def rbac_objects(spec: ClusterSpec) -> list[dict[str, Any]]:
    """Roles, bindings and the system-namespace policy for ``spec.addons.rbac_groups`` (pure)."""
    groups = spec.addons.rbac_groups
    operators = [g for g, p in groups.items() if p == "platform-operator"]
    return [*persona_roles(), *persona_bindings(groups), *protect_system_namespaces(operators)]


@dataclass
class RbacArgs:
    """Inputs of :class:`RbacPersonas`."""

    spec: ClusterSpec
    """The cluster spec (``addons.rbacGroups``)."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What every object waits for (the readiness gate)."""


class RbacPersonas(Addon):
    """RBAC personas (``cfcr:addons:RbacPersonas``)."""

    def __init__(self, name: str, args: RbacArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cfcr:addons:RbacPersonas", name, opts, args.depends_on)
        self.apply(rbac_objects(args.spec))
        self.register_outputs({})
