"""The AWS identities of a render, as IAM would hold them: roles, their policies, instance
profiles, what each VM launches with, and the tags it carries. Read from the render's
resources, so the IAM checks and the harness's AWS stand-in judge the rendered policies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cfcr.render.mocks import RecordedResource, unwrap


def _inputs(r: RecordedResource) -> dict[str, Any]:
    value = unwrap(r.inputs)
    assert isinstance(value, dict)
    return value


def _of(resources: Sequence[RecordedResource], token: str) -> list[RecordedResource]:
    return [r for r in resources if r.type == token]


@dataclass(frozen=True)
class AwsIdentities:
    """Roles, policies and instance profiles of one render."""

    role_policies: dict[str, dict[str, dict[str, Any]]]
    """Role name -> policy name -> document: inline policies and the customer-managed policies
    it attaches (``managed:<logical name>``); AWS-managed policies are not in a render."""
    role_arns: dict[str, str]
    """Role name -> ARN."""
    profile_roles: dict[str, str]
    """Instance profile name -> role name."""
    profile_arns: dict[str, str]
    """Instance profile name -> ARN."""
    template_profiles: dict[str, str]
    """Launch template id -> the instance profile name its VMs launch with."""
    template_instance_tags: dict[str, dict[str, str]]
    """Launch template id -> tags its instances carry."""

    def policies_of_profile(self, profile: str) -> list[dict[str, Any]]:
        return list(self.role_policies[self.profile_roles[profile]].values())


def aws_identities(resources: Sequence[RecordedResource]) -> AwsIdentities:
    """Read the IAM side of an AWS render."""
    roles = {str(r.id): str(r.outputs["name"]) for r in _of(resources, "aws:iam/role:Role")}
    role_arns = {str(r.outputs["name"]): str(r.outputs["arn"]) for r in _of(resources, "aws:iam/role:Role")}
    policies: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in roles.values()}
    for p in _of(resources, "aws:iam/rolePolicy:RolePolicy"):
        args = _inputs(p)
        policies[roles[args["role"]]][args["name"]] = json.loads(args["policy"])
    managed = {str(p.outputs["arn"]): (p.name, json.loads(_inputs(p)["policy"]))
               for p in _of(resources, "aws:iam/policy:Policy")}
    for a in _of(resources, "aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        args = _inputs(a)
        if args["policyArn"] in managed:
            logical, document = managed[args["policyArn"]]
            policies[args["role"]][f"managed:{logical}"] = document
    profiles = _of(resources, "aws:iam/instanceProfile:InstanceProfile")
    profile_roles = {str(p.outputs["name"]): str(_inputs(p)["role"]) for p in profiles}
    profile_arns = {str(p.outputs["name"]): str(p.outputs["arn"]) for p in profiles}
    by_arn = {arn: name for name, arn in profile_arns.items()}
    template_profiles: dict[str, str] = {}
    template_tags: dict[str, dict[str, str]] = {}
    for t in _of(resources, "aws:ec2/launchTemplate:LaunchTemplate"):
        args = _inputs(t)
        template_profiles[str(t.id)] = by_arn[args["iamInstanceProfile"]["arn"]]
        for spec in args.get("tagSpecifications") or []:
            if spec.get("resourceType") == "instance":
                template_tags[str(t.id)] = dict(spec.get("tags") or {})
    return AwsIdentities(policies, role_arns, profile_roles, profile_arns, template_profiles, template_tags)
