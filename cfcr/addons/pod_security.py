"""Pod Security Admission defaults.

The API server enforces them from its AdmissionConfiguration, which the node layer writes
(:func:`cfcr.node.admission.pod_security_plugin`, merged with the user's
``admission.configuration``; a user ``PodSecurity`` entry wins): ``baseline`` enforced,
``restricted`` warned and audited, system namespaces exempt, all set under
``addons.podSecurity``. Namespaces cfcr creates carry their own level as labels
(:func:`namespace_labels`): privileged where host access is the job (CNI, log shipping),
baseline elsewhere.
"""

from __future__ import annotations

from cfcr.node.admission import POD_SECURITY_PLUGIN, pod_security_plugin

LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "warn", "audit")


def namespace_labels(level: str) -> dict[str, str]:
    """The Pod Security labels of a namespace cfcr creates (every mode at ``level``)."""
    return {f"{LABEL_PREFIX}{mode}": level for mode in MODES}


__all__ = ["LABEL_PREFIX", "MODES", "POD_SECURITY_PLUGIN", "namespace_labels", "pod_security_plugin"]
