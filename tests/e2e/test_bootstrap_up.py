"""``pulumi up`` of the program's cloud-neutral bootstrap with the real tls and random
providers (no cloud account needed), then ``pulumi destroy``.

What it proves beyond the mock runtime: the real providers accept every input the program
sends, the certificates they issue chain as our specs say, and the outputs are secrets.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml
from cryptography import x509

from cfcr.config import read_stack_config
from cfcr.render import stack_config_strings

from .conftest import ROOT

pytestmark = pytest.mark.e2e


def test_up_and_destroy_with_real_providers(pulumi_cli: str, local_backend: str) -> None:
    from pulumi import automation as auto

    stack_name = "e2e-bootstrap"
    config = stack_config_strings(read_stack_config("aws-stable"))
    stack = auto.create_or_select_stack(
        stack_name,
        work_dir=str(ROOT),
        opts=auto.LocalWorkspaceOptions(
            env_vars={"PULUMI_BACKEND_URL": local_backend, "PULUMI_CONFIG_PASSPHRASE": "cfcr-e2e"},
        ),
    )
    try:
        stack.set_all_config({k: auto.ConfigValue(v) for k, v in config.items()})
        result = stack.up(on_output=print)
        outputs: dict[str, Any] = result.outputs
        assert outputs["adminKubeconfig"].secret
        kubeconfig = yaml.safe_load(outputs["adminKubeconfig"].value)
        user = kubeconfig["users"][0]["user"]
        cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
        orgs = [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)]
        assert orgs == ["kubeadm:cluster-admins"]
        ca = x509.load_pem_x509_certificate(outputs["caBundle"].value.encode())
        cert.verify_directly_issued_by(ca)
    finally:
        stack.destroy(on_output=print)
        stack.workspace.remove_stack(stack_name)
