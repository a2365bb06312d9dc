"""The cluster PKI: pure specs (``cfcr.pki.specs``) and the ``ClusterPki`` component.

Pure consumers (``cfcr.node``, ``cfcr.render``) should import ``cfcr.pki.specs``
directly; importing this package also imports Pulumi and the tls/random SDKs.
"""

from cfcr.pki.component import ByoCa, ClusterPki, ClusterPkiArgs
from cfcr.pki.specs import (
    CaSpec,
    CertSpec,
    ControlPlaneMember,
    PkiInputs,
    UserCredential,
    certificate_specs,
    materials_for_role,
    render_kubeconfig,
    secret_files,
)

__all__ = [
    "ByoCa",
    "CaSpec",
    "CertSpec",
    "ClusterPki",
    "ClusterPkiArgs",
    "ControlPlaneMember",
    "PkiInputs",
    "UserCredential",
    "certificate_specs",
    "materials_for_role",
    "render_kubeconfig",
    "secret_files",
]
