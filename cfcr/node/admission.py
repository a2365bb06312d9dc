"""The API server's AdmissionConfiguration (``apiserver.config.k8s.io/v1``).

Built from two sources: cfcr's Pod Security defaults (:func:`pod_security_plugin`, from
``spec.addons.podSecurity``; the addons layer labels the namespaces it creates to match) and ``spec.admission.configuration``, whose entries (one item
of the ``plugins`` list each: ``name`` plus ``configuration`` or ``path``) pass through
untouched. A user entry for a plugin replaces cfcr's entry of the same name: the user wins.
"""

from __future__ import annotations

import copy
from typing import Any

from cfcr.config import ClusterSpec

__all__ = ["POD_SECURITY_PLUGIN", "admission_config", "default_plugins", "pod_security_plugin"]

POD_SECURITY_PLUGIN = "PodSecurity"


def pod_security_plugin(spec: ClusterSpec) -> dict[str, Any]:
    """The ``PodSecurity`` item: cluster-wide levels and exempt namespaces from ``spec.addons``."""
    psa = spec.addons.pod_security
    return {
        "name": POD_SECURITY_PLUGIN,
        "configuration": {
            "apiVersion": "pod-security.admission.config.k8s.io/v1",
            "kind": "PodSecurityConfiguration",
            "defaults": {
                "enforce": psa.enforce,
                "enforce-version": psa.version,
                "audit": psa.audit,
                "audit-version": psa.version,
                "warn": psa.warn,
                "warn-version": psa.version,
            },
            "exemptions": {"usernames": [], "runtimeClasses": [], "namespaces": sorted(set(psa.exempt_namespaces))},
        },
    }


def default_plugins(spec: ClusterSpec) -> list[dict[str, Any]]:
    """cfcr's own plugin entries: the PodSecurity defaults."""
    return [pod_security_plugin(spec)]


def admission_config(spec: ClusterSpec) -> dict[str, Any]:
    """The AdmissionConfiguration: cfcr's defaults, then the user's entries (which replace a
    default of the same plugin name)."""
    user = [copy.deepcopy(entry) for entry in spec.admission.configuration]
    names = {entry.get("name") for entry in user}
    defaults = [entry for entry in default_plugins(spec) if entry["name"] not in names]
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [*user, *defaults],
    }
