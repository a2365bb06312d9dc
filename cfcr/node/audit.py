"""The API server's audit policy (``audit.k8s.io/v1``), written to ``AUDIT_POLICY_PATH``.

Rules are evaluated in order and the first match decides the level:

1. ``None`` for high-volume, low-value traffic: kube-proxy's watches, kubelets reading
   their own Node, leader-election leases and endpoints of the control-plane components,
   health / version / metrics endpoints, and Events (they are a log already).
2. ``Metadata`` for anything whose body carries secrets or credentials: Secrets,
   ConfigMaps (often used for credentials), TokenReviews, TokenRequests
   (``serviceaccounts/token``) — who did what to which object, never the content.
3. ``Metadata`` for streaming sub-resources (exec, attach, port-forward, proxy), which
   have no meaningful body.
4. ``Request`` for every write (create, update, patch, delete, deletecollection): the
   request body shows what changed, without doubling the log with responses.
5. ``Metadata`` for everything else (reads).

``RequestReceived`` is omitted (every request also logs ``ResponseComplete``), and
managed fields are left out of logged bodies. No rule uses ``RequestResponse``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WRITE_VERBS", "audit_policy"]

WRITE_VERBS: tuple[str, ...] = ("create", "update", "patch", "delete", "deletecollection")
"""Verbs logged at ``Request`` level."""

_HEALTH_URLS = ["/healthz*", "/livez*", "/readyz*", "/version", "/version/", "/metrics"]


def audit_policy() -> dict[str, Any]:
    """The audit Policy as a dict (dump it as YAML). A fresh object on every call."""
    rules: list[dict[str, Any]] = [
        # -- 1. noise -----------------------------------------------------------------
        {
            "level": "None",
            "users": ["system:kube-proxy"],
            "verbs": ["watch"],
            "resources": [
                {"group": "", "resources": ["endpoints", "services", "services/status"]},
                {"group": "discovery.k8s.io", "resources": ["endpointslices"]},
            ],
        },
        {
            "level": "None",
            "userGroups": ["system:nodes"],
            "verbs": ["get"],
            "resources": [{"group": "", "resources": ["nodes", "nodes/status"]}],
        },
        {
            "level": "None",
            "users": [
                "system:kube-controller-manager",
                "system:kube-scheduler",
                "system:serviceaccount:kube-system:endpoint-controller",
            ],
            "verbs": ["get", "update"],
            "namespaces": ["kube-system"],
            "resources": [
                {"group": "", "resources": ["endpoints"]},
                {"group": "coordination.k8s.io", "resources": ["leases"]},
            ],
        },
        {
            "level": "None",
            "userGroups": ["system:nodes"],
            "verbs": ["get", "update", "patch"],
            "namespaces": ["kube-node-lease"],
            "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}],
        },
        {"level": "None", "nonResourceURLs": list(_HEALTH_URLS)},
        {
            "level": "None",
            "resources": [
                {"group": "", "resources": ["events"]},
                {"group": "events.k8s.io", "resources": ["events"]},
            ],
        },
        # -- 2. sensitive bodies: metadata only, for every verb ----------------------
        {
            "level": "Metadata",
            "resources": [
                {"group": "", "resources": ["secrets", "configmaps", "serviceaccounts/token"]},
                {"group": "authentication.k8s.io", "resources": ["tokenreviews"]},
            ],
        },
        # -- 3. streams ---------------------------------------------------------------
        {
            "level": "Metadata",
            "resources": [
                {
                    "group": "",
                    "resources": [
                        "pods/exec",
                        "pods/attach",
                        "pods/portforward",
                        "pods/proxy",
                        "services/proxy",
                        "nodes/proxy",
                    ],
                }
            ],
        },
        # -- 4. writes ----------------------------------------------------------------
        {"level": "Request", "verbs": list(WRITE_VERBS)},
        # -- 5. everything else -------------------------------------------------------
        {"level": "Metadata"},
    ]
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "omitManagedFields": True,
        "rules": rules,
    }
