"""The API server's AdmissionConfiguration (``apiserver.config.k8s.io/v1``).

Built from ``spec.admission.configuration``: each entry is one item of the
``plugins`` list (``name`` plus ``configuration`` or ``path``), passed through
untouched. cfcr adds nothing, so an operator's plugin settings are exactly what the
API server reads from ``ADMISSION_CONFIG_PATH``.
"""

from __future__ import annotations

import copy
from typing import Any

from cfcr.config import ClusterSpec

__all__ = ["admission_config"]


def admission_config(spec: ClusterSpec) -> dict[str, Any] | None:
    """The AdmissionConfiguration, or None when the spec configures no plugin
    (then the API server gets no ``--admission-control-config-file``)."""
    entries = spec.admission.configuration
    if not entries:
        return None
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [copy.deepcopy(entry) for entry in entries],
    }
