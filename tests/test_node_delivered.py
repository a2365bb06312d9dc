"""The control plane's scripts travel through the secret store (cfcr/node/delivered.py): in the
default stack's render, each is a secret holding exactly the script, readable by the
control-plane roles and by no worker, listed for the member's fetch with its path and mode, and
absent from every user-data. The real boot fetching and running them: the control-plane harness
(tests/support/controlplane.py fetches every secret, then sources member.sh from the store)."""

from __future__ import annotations

from typing import Any

import pytest

from cfcr.config import load_spec
from cfcr.node.delivered import delivered_scripts, script_text
from cfcr.node.userdata import roles_for
from cfcr.render import RenderResult, render_stack
from cfcr.render.mocks import unwrap
from tests.support.aws_render import aws_identities
from tests.support.iam import Request, evaluate
from tests.support.rendered import read_stack_config
from tests.support.validators import load_cloud_config

STACK = "aws-stable"


@pytest.fixture(scope="module")
def render() -> RenderResult:
    return render_stack(STACK, None)


def _secrets(render: RenderResult) -> dict[str, tuple[str, str]]:
    """Secret name -> (ARN, stored value)."""
    arns = {str(r.outputs["id"] if "id" in r.outputs else r.id): (str(unwrap(r.inputs)["name"]), str(r.outputs["arn"]))
            for r in render.resources if r.type == "aws:secretsmanager/secret:Secret"}
    out = {}
    for version in (r for r in render.resources if r.type == "aws:secretsmanager/secretVersion:SecretVersion"):
        args: Any = unwrap(version.inputs)
        name, arn = next(v for k, v in arns.items() if k == args["secretId"] or v[1] == args["secretId"])
        out[name] = (arn, str(args.get("secretString", "")))
    return out


def test_every_control_plane_script_is_a_secret_only_the_control_plane_reads(render: RenderResult) -> None:
    spec = load_spec(read_stack_config(STACK), STACK)
    secrets = _secrets(render)
    ids = aws_identities(render.resources)
    scripts = {s.name: s for role in roles_for(spec) for s in delivered_scripts(spec, role, _aws_hook(spec))}
    assert set(scripts) == {"member.sh", "maintain.sh", "join-credentials.sh", "etcd-backup.sh"}
    for name, script in scripts.items():
        secret = next((v for k, v in secrets.items() if k.endswith(f"-script-{name.replace('.', '-')}")), None)
        assert secret is not None, f"no secret holds {name}: {sorted(secrets)}"
        arn, value = secret
        assert value == script_text(name), name
        for profile, role in ids.profile_roles.items():
            decision = evaluate(ids.policies_of_profile(profile), Request("secretsmanager:GetSecretValue", arn))
            assert decision.allowed is ("-cp-" in role), (name, role, decision)


def test_user_data_lists_them_for_the_fetch_and_does_not_carry_them(render: RenderResult) -> None:
    spec = load_spec(read_stack_config(STACK), STACK)
    for role in roles_for(spec):
        doc = load_cloud_config(render.user_data[role.slug])
        files = {f["path"]: f["content"] for f in doc["write_files"]}
        listed = files["/etc/cfcr/secrets.sh"]
        for script in delivered_scripts(spec, role, _aws_hook(spec)):
            assert script.path not in files, (role.slug, script.path)
            assert f"'{script.key}|{script.path}|{script.mode}'" in listed, (role.slug, script.name)
        if not role.is_control_plane:
            assert "script/" not in listed, role.slug


def _aws_hook(spec: Any) -> object:
    from cfcr.aws.backups import snapshot_target
    from cfcr.aws.node_hook import AwsNodeHook

    return AwsNodeHook(region=spec.region, cluster=spec.name, joined_profiles={"x": "y"},
                                 backups=snapshot_target(spec))
