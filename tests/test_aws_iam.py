"""IAM, evaluated: the rendered inline policies of the default AWS stack, run through a
small IAM evaluator (``tests/support/iam.py``) against requests built from the render's own
resources — the etcd volumes with the tags they carry, the control-plane instances, the
tags the EBS CSI driver puts on the volumes it creates.

The evaluator is tested on its own first (both sides: what it allows and what it denies).
No role attaches an AWS-managed policy (a test keeps it so): every grant is in the render.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from cfcr.render import RecordedResource, RenderResult, render_stack, unwrap
from tests.support.aws_render import aws_identities
from tests.support.iam import (
    Decision,
    Request,
    UnsupportedPolicy,
    allowing_statements,
    evaluate,
    evaluate_all,
    glob_match,
    resource_context,
)

# ============================================================================ the evaluator


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


ALLOW_VOLUMES = {"Effect": "Allow", "Action": "ec2:*Volume", "Resource": "arn:aws:ec2:*:*:volume/*"}
VOL = "arn:aws:ec2:us-east-1:123456789012:volume/vol-0123"
INSTANCE = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123"


def test_allow_needs_a_matching_statement() -> None:
    doc = _doc(ALLOW_VOLUMES)
    assert evaluate([doc], Request("ec2:DeleteVolume", VOL)) is Decision.ALLOW
    assert evaluate([doc], Request("EC2:deletevolume", VOL)) is Decision.ALLOW  # actions ignore case
    assert evaluate([doc], Request("ec2:DeleteSnapshot", VOL)) is Decision.IMPLICIT_DENY
    assert evaluate([doc], Request("ec2:DeleteVolume", INSTANCE)) is Decision.IMPLICIT_DENY
    assert evaluate([doc], Request("ec2:DeleteVolume", VOL.replace("volume/", "Volume/"))) is Decision.IMPLICIT_DENY
    assert evaluate([], Request("ec2:DeleteVolume", VOL)) is Decision.IMPLICIT_DENY


def test_an_explicit_deny_wins_over_any_allow() -> None:
    deny = {"Effect": "Deny", "Action": "ec2:DeleteVolume", "Resource": "*",
            "Condition": {"Null": {"aws:ResourceTag/protected": "false"}}}
    docs = [_doc(ALLOW_VOLUMES), _doc(deny)]
    protected = resource_context({"protected": "yes"})
    assert evaluate(docs, Request("ec2:DeleteVolume", VOL, protected)) is Decision.EXPLICIT_DENY
    assert evaluate(docs, Request("ec2:DeleteVolume", VOL, resource_context({"other": "x"}))) is Decision.ALLOW
    assert evaluate(docs, Request("ec2:ModifyVolume", VOL, protected)) is Decision.ALLOW


def test_not_action_and_not_resource() -> None:
    doc = _doc({"Effect": "Allow", "NotAction": "ec2:Delete*", "NotResource": "arn:aws:ec2:*:*:instance/*"})
    assert evaluate([doc], Request("ec2:ModifyVolume", VOL)) is Decision.ALLOW
    assert evaluate([doc], Request("ec2:DeleteVolume", VOL)) is Decision.IMPLICIT_DENY
    assert evaluate([doc], Request("ec2:ModifyVolume", INSTANCE)) is Decision.IMPLICIT_DENY


def test_wildcards() -> None:
    assert glob_match("arn:*:ec2:*:*:volume/*", VOL)
    assert glob_match("vol-012?", "vol-0123") and not glob_match("vol-012?", "vol-01234")
    assert not glob_match("arn:aws:ec2:*:*:volume/*", VOL.replace("ec2", "ebs"))
    assert glob_match("a.b", "a.b") and not glob_match("a.b", "axb")  # no regex leaks


def _one(condition: dict[str, Any], context: Mapping[str, Any]) -> Decision:
    doc = _doc({"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*", "Condition": condition})
    return evaluate([doc], Request("ec2:CreateTags", VOL, context))


def test_string_operators() -> None:
    owned = resource_context({"kubernetes.io/cluster/a": "owned"})
    assert _one({"StringEquals": {"aws:ResourceTag/kubernetes.io/cluster/a": "owned"}}, owned).allowed
    assert not _one({"StringEquals": {"aws:ResourceTag/kubernetes.io/cluster/a": "Owned"}}, owned).allowed
    assert _one({"StringEqualsIgnoreCase": {"aws:ResourceTag/kubernetes.io/cluster/a": "Owned"}}, owned).allowed
    # condition key names ignore case, and ec2:ResourceTag mirrors aws:ResourceTag
    assert _one({"StringEquals": {"AWS:resourcetag/kubernetes.io/cluster/a": "owned"}}, owned).allowed
    assert _one({"StringEquals": {"ec2:ResourceTag/kubernetes.io/cluster/a": "owned"}}, owned).allowed
    # any one value of a key may match; every key must
    assert _one({"StringEquals": {"ec2:CreateAction": ["CreateVolume", "CreateSnapshot"]}},
                {"ec2:CreateAction": "CreateSnapshot"}).allowed
    assert not _one({"StringEquals": {"ec2:CreateAction": "CreateVolume",
                                      "aws:ResourceTag/kubernetes.io/cluster/a": "owned"}},
                    {"ec2:CreateAction": "CreateVolume"}).allowed
    # a missing key: positive operators fail, negated ones hold
    assert not _one({"StringEquals": {"ec2:CreateAction": "CreateVolume"}}, {}).allowed
    assert _one({"StringNotEquals": {"ec2:CreateAction": "CreateVolume"}}, {}).allowed
    assert not _one({"StringNotEquals": {"ec2:CreateAction": "CreateVolume"}}, {"ec2:CreateAction": "CreateVolume"}).allowed
    assert _one({"StringNotEquals": {"ec2:CreateAction": "CreateVolume"}}, {"ec2:CreateAction": "RunInstances"}).allowed
    assert _one({"StringLike": {"aws:RequestTag/CSIVolumeName": "*"}}, resource_context(None, {"CSIVolumeName": "pvc-1"})).allowed
    assert not _one({"StringLike": {"aws:RequestTag/CSIVolumeName": "*"}}, {}).allowed
    assert not _one({"StringNotLike": {"aws:RequestTag/CSIVolumeName": "pvc-*"}},
                    resource_context(None, {"CSIVolumeName": "pvc-1"})).allowed
    assert _one({"StringEqualsIfExists": {"ec2:CreateAction": "CreateVolume"}}, {}).allowed
    assert not _one({"StringEqualsIfExists": {"ec2:CreateAction": "CreateVolume"}}, {"ec2:CreateAction": "X"}).allowed


def test_null_and_arn_operators() -> None:
    tagged = resource_context({"cfcr.io/etcd-member": "m-0"})
    assert _one({"Null": {"aws:ResourceTag/cfcr.io/etcd-member": "false"}}, tagged).allowed
    assert not _one({"Null": {"aws:ResourceTag/cfcr.io/etcd-member": "false"}}, {}).allowed
    assert _one({"Null": {"aws:ResourceTag/cfcr.io/etcd-member": "true"}}, {}).allowed
    assert not _one({"Null": {"aws:ResourceTag/cfcr.io/etcd-member": "true"}}, tagged).allowed
    rule = "arn:aws:events:us-east-1:123456789012:rule/c-asg-termination"
    assert _one({"ArnEquals": {"aws:SourceArn": [rule]}}, {"aws:SourceArn": rule}).allowed
    assert _one({"ArnLike": {"aws:SourceArn": "arn:aws:events:*:*:rule/c-*"}}, {"aws:SourceArn": rule}).allowed
    assert not _one({"ArnEquals": {"aws:SourceArn": [rule]}}, {"aws:SourceArn": rule + "x"}).allowed
    assert not _one({"ArnLike": {"aws:SourceArn": rule}}, {}).allowed


def test_set_qualifiers() -> None:
    two = resource_context(None, {"a": "1", "cfcr.io/etcd-member": "x"})
    assert two["aws:TagKeys"] == ["a", "cfcr.io/etcd-member"]
    any_etcd = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["cfcr.io/etcd-member"]}}
    assert _one(any_etcd, two).allowed
    assert not _one(any_etcd, resource_context(None, {"a": "1"})).allowed
    assert not _one(any_etcd, {}).allowed  # ForAnyValue over nothing: false
    only = {"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}
    assert _one(only, resource_context(None, {"a": "1", "b": "2"})).allowed
    assert not _one(only, two).allowed
    assert _one(only, {}).allowed  # ForAllValues over nothing: true (why AWS warns about it)
    with pytest.raises(UnsupportedPolicy):
        _one({"StringEquals": {"aws:TagKeys": "a"}}, two)  # multivalued key needs a qualifier


def test_what_it_does_not_know_it_refuses() -> None:
    with pytest.raises(UnsupportedPolicy):
        _one({"NumericLessThan": {"ec2:VolumeSize": "10"}}, {"ec2:VolumeSize": "5"})
    with pytest.raises(UnsupportedPolicy):
        _one({"StringEquals": {"aws:username": "${aws:username}"}}, {"aws:username": "x"})
    with pytest.raises(UnsupportedPolicy):
        evaluate([_doc({"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"})], Request("s3:x", "y"))


def test_a_call_on_several_resources_needs_every_one() -> None:
    volumes_only = _doc(ALLOW_VOLUMES | {"Action": "ec2:AttachVolume"})
    both = _doc({"Effect": "Allow", "Action": "ec2:AttachVolume", "Resource": [
        "arn:aws:ec2:*:*:volume/*", "arn:aws:ec2:*:*:instance/*"]})
    call = [Request("ec2:AttachVolume", VOL), Request("ec2:AttachVolume", INSTANCE)]
    assert evaluate_all([volumes_only], call) is Decision.IMPLICIT_DENY
    assert evaluate_all([both], call) is Decision.ALLOW
    deny_instances = _doc({"Effect": "Deny", "Action": "*", "Resource": "arn:aws:ec2:*:*:instance/*"})
    assert evaluate_all([both, deny_instances], call) is Decision.EXPLICIT_DENY
    with pytest.raises(ValueError):
        evaluate_all([both], [])


# ============================================================================ the rendered stack

STACK = "aws-stable"
CSI_DRIVER_TAG = "ebs.csi.aws.com/cluster"
"""The tag the EBS CSI driver puts on every volume and snapshot it creates (value ``true``),
aws-ebs-csi-driver docs/tagging.md; with ``k8sTagClusterId=X`` also ``kubernetes.io/cluster/X=owned``."""
ETCD_MUTATIONS = ("ec2:DetachVolume", "ec2:DeleteVolume", "ec2:ModifyVolume", "ec2:CreateSnapshot",
                  "ec2:CreateTags", "ec2:DeleteTags", "ec2:AttachVolume")


@pytest.fixture(scope="module")
def render() -> RenderResult:
    return render_stack(STACK, None)


def _of(result: RenderResult, token: str) -> list[RecordedResource]:
    return [r for r in result.resources if r.type == token]


def _inputs(r: RecordedResource) -> dict[str, Any]:
    value = unwrap(r.inputs)
    assert isinstance(value, dict)
    return value


@dataclass(frozen=True)
class Rendered:
    """What the IAM checks need, derived from one render."""

    role_policies: dict[str, dict[str, dict[str, Any]]]
    """Role name -> policy name -> document: its inline policies and the customer-managed
    policies it attaches (the render has their documents; AWS-managed ones it has not)."""
    control_plane_roles: list[str]
    """Roles of the instance profiles the control-plane instances launch with."""
    worker_roles: list[str]
    """Every other role."""
    node_roles: list[str]
    """Roles some instance profile holds (the etcd snapshot writer is assumed, never a node's)."""
    etcd_volumes: list[tuple[str, dict[str, str]]]
    """(ARN, tags) of each volume attached to a control-plane instance."""
    instances: list[tuple[str, dict[str, str]]]
    """(ARN, tags) of each control-plane instance."""
    csi_cluster_id: str
    """``k8sTagClusterId`` the EBS CSI chart is given."""
    arn_prefix: str
    """``arn:<partition>:ec2:<region>:<account>:`` of this stack."""


def _ec2_prefix(result: RenderResult) -> str:
    role_arn = str(_of(result, "aws:iam/role:Role")[0].outputs["arn"])  # arn:<partition>:iam::<account>:role/...
    partition, account = role_arn.split(":")[1], role_arn.split(":")[4]
    zone = str(_inputs(_of(result, "aws:ebs/volume:Volume")[0])["availabilityZone"])
    return f"arn:{partition}:ec2:{zone[:-1]}:{account}:"


@pytest.fixture(scope="module")
def rendered(render: RenderResult) -> Rendered:
    ids = aws_identities(render.resources)
    prefix = _ec2_prefix(render)
    instances = {str(i.id): i for i in _of(render, "aws:ec2/instance:Instance")}
    cp_roles = sorted({ids.profile_roles[ids.template_profiles[_inputs(i)["launchTemplate"]["id"]]]
                       for i in instances.values()})
    volumes = {str(v.id): v for v in _of(render, "aws:ebs/volume:Volume")}
    attached = [_inputs(a) for a in _of(render, "aws:ec2/volumeAttachment:VolumeAttachment")]
    etcd = [(f"{prefix}volume/{a['volumeId']}", dict(_inputs(volumes[a["volumeId"]])["tags"]))
            for a in attached if a["instanceId"] in instances]
    charts = [_inputs(c) for c in _of(render, "kubernetes:helm.sh/v4:Chart")]
    csi = next(c for c in charts if c.get("chart") == "aws-ebs-csi-driver")
    return Rendered(
        role_policies=ids.role_policies,
        control_plane_roles=cp_roles,
        worker_roles=sorted(set(ids.role_policies) - set(cp_roles)),
        node_roles=sorted(set(ids.profile_roles.values())),
        etcd_volumes=etcd,
        instances=[(f"{prefix}instance/{iid}", dict(_inputs(i)["tags"])) for iid, i in instances.items()],
        csi_cluster_id=str(csi["values"]["controller"]["k8sTagClusterId"]),
        arn_prefix=prefix,
    )


def test_the_render_has_what_these_checks_need(render: RenderResult, rendered: Rendered) -> None:
    from cfcr.config import load_stack

    spec = load_stack(STACK)
    assert len(rendered.control_plane_roles) == spec.control_plane.count
    assert len(rendered.etcd_volumes) == spec.control_plane.count
    assert all("cfcr.io/etcd-member" in tags for _, tags in rendered.etcd_volumes)
    assert rendered.worker_roles, "the stack has worker pools"
    for role in rendered.control_plane_roles:
        assert "ebs-csi-controller" in rendered.role_policies[role]
        assert any(name.startswith("managed:") for name in rendered.role_policies[role]), "the guard is attached"


def _volume_call(action: str, volume: str, tags: Mapping[str, str], r: Rendered) -> list[Request]:
    """Every resource EC2 authorizes for ``action`` on an existing volume (Service
    Authorization Reference: Attach/DetachVolume also the instance, CreateSnapshot also the
    new snapshot)."""
    calls = [Request(action, volume, resource_context(tags))]
    if action in ("ec2:AttachVolume", "ec2:DetachVolume"):
        arn, instance_tags = r.instances[0]
        calls.append(Request(action, arn, resource_context(instance_tags)))
    return calls


def test_no_control_plane_role_may_touch_an_etcd_volume(rendered: Rendered) -> None:
    for role in rendered.control_plane_roles:
        docs = list(rendered.role_policies[role].values())
        for volume, tags in rendered.etcd_volumes:
            for action in ETCD_MUTATIONS:
                decision = evaluate(docs, Request(action, volume, resource_context(tags)))
                assert decision is Decision.EXPLICIT_DENY, (
                    f"{role}: {action} on etcd volume {tags.get('Name')}: {decision.value}, granted by "
                    f"{allowing_statements(docs, Request(action, volume, resource_context(tags)))}")


def test_no_single_policy_grants_a_change_to_an_etcd_volume(rendered: Rendered) -> None:
    """Without the guard's Deny, no Allow of any inline policy reaches an etcd volume either
    (belt and braces: the CSI, cloud controller, autoscaler and termination handler grants
    are scoped so that the etcd volumes fall outside them)."""
    problems = []
    for role, docs in rendered.role_policies.items():
        for name, doc in docs.items():
            for volume, tags in rendered.etcd_volumes:
                for action in ETCD_MUTATIONS:
                    request = Request(action, volume, resource_context(tags))
                    grants = allowing_statements([doc], request)
                    if grants:
                        problems.append(f"{role}/{name}: {action} via {grants}")
    assert not problems, "\n".join(sorted(set(problems)))


def test_tagging_a_volume_as_the_csi_drivers_does_not_open_an_etcd_volume(rendered: Rendered) -> None:
    """Someone who adds the driver's tags to an etcd volume (or a user tag of that name on
    every resource) still meets the Deny."""
    for role in rendered.control_plane_roles:
        docs = list(rendered.role_policies[role].values())
        for volume, tags in rendered.etcd_volumes:
            disguised = {**tags, CSI_DRIVER_TAG: "true", "CSIVolumeName": "pvc-x"}
            for action in ETCD_MUTATIONS:
                assert evaluate(docs, Request(action, volume, resource_context(disguised))) is Decision.EXPLICIT_DENY
            # nor can the tag that marks it be added elsewhere or taken off
            untag = Request("ec2:DeleteTags", volume, resource_context(tags, {"cfcr.io/etcd-member": ""}))
            assert evaluate(docs, untag) is Decision.EXPLICIT_DENY


def _csi_tags(r: Rendered, name: str = "pvc-8c1d7e2a") -> dict[str, str]:
    return {"CSIVolumeName": name, CSI_DRIVER_TAG: "true", f"kubernetes.io/cluster/{r.csi_cluster_id}": "owned"}


def _csi_calls(r: Rendered) -> dict[str, list[Request]]:
    """What the EBS CSI controller does on a volume it created, request by request."""
    volume = f"{r.arn_prefix}volume/vol-0c5ca1ab1e0000001"
    snapshot = f"{r.arn_prefix}snapshot/snap-0c5ca1ab1e0000001"
    tags = _csi_tags(r)
    snap_tags = {"CSIVolumeSnapshotName": "snapcontent-1", CSI_DRIVER_TAG: "true",
                 f"kubernetes.io/cluster/{r.csi_cluster_id}": "owned"}
    instance, instance_tags = r.instances[0]
    return {
        "CreateVolume": [Request("ec2:CreateVolume", volume, resource_context(None, tags))],
        "CreateVolume tags": [Request("ec2:CreateTags", volume,
                                      resource_context(None, tags, **{"ec2:CreateAction": "CreateVolume"}))],
        "CreateVolume from its snapshot": [
            Request("ec2:CreateVolume", volume, resource_context(None, tags)),
            Request("ec2:CreateVolume", snapshot, resource_context(snap_tags, tags))],
        "AttachVolume": [Request("ec2:AttachVolume", volume, resource_context(tags)),
                         Request("ec2:AttachVolume", instance, resource_context(instance_tags))],
        "DetachVolume": [Request("ec2:DetachVolume", volume, resource_context(tags)),
                         Request("ec2:DetachVolume", instance, resource_context(instance_tags))],
        "ModifyVolume": [Request("ec2:ModifyVolume", volume, resource_context(tags))],
        "CreateSnapshot": [Request("ec2:CreateSnapshot", volume, resource_context(tags, snap_tags)),
                           Request("ec2:CreateSnapshot", snapshot, resource_context(None, snap_tags))],
        "CreateSnapshot tags": [Request("ec2:CreateTags", snapshot,
                                        resource_context(None, snap_tags, **{"ec2:CreateAction": "CreateSnapshot"}))],
        "DeleteSnapshot": [Request("ec2:DeleteSnapshot", snapshot, resource_context(snap_tags))],
        "DeleteVolume": [Request("ec2:DeleteVolume", volume, resource_context(tags))],
    }


def test_the_csi_statements_allow_what_the_driver_does_on_its_own_volumes(rendered: Rendered) -> None:
    for role in rendered.control_plane_roles:
        csi = rendered.role_policies[role]["ebs-csi-controller"]
        whole = list(rendered.role_policies[role].values())
        for what, call in _csi_calls(rendered).items():
            assert evaluate_all([csi], call) is Decision.ALLOW, f"{role}: {what} denied by the CSI policy"
            assert evaluate_all(whole, call) is Decision.ALLOW, f"{role}: {what} denied by the role"


def test_the_csi_statements_stop_at_the_drivers_own_volumes(rendered: Rendered) -> None:
    prefix = rendered.arn_prefix
    volume = f"{prefix}volume/vol-0c5ca1ab1e0000002"
    other = {**_csi_tags(rendered), f"kubernetes.io/cluster/other-{rendered.csi_cluster_id}": "owned"}
    del other[f"kubernetes.io/cluster/{rendered.csi_cluster_id}"]
    owned_only = {f"kubernetes.io/cluster/{rendered.csi_cluster_id}": "owned", "Name": "made-by-hand"}
    for role in rendered.control_plane_roles:
        docs = list(rendered.role_policies[role].values())
        for action in ("ec2:DetachVolume", "ec2:DeleteVolume", "ec2:ModifyVolume", "ec2:AttachVolume",
                       "ec2:CreateSnapshot"):
            for label, tags in (("another cluster's CSI volume", other), ("a cluster-owned volume", owned_only),
                                ("an untagged volume", {})):
                decision = evaluate_all(docs, _volume_call(action, volume, tags, rendered))
                assert not decision.allowed, f"{role}: {action} on {label}"
        # tags only at creation: not on a volume that exists
        retag = Request("ec2:CreateTags", volume, resource_context(_csi_tags(rendered), {"k": "v"}))
        assert not evaluate(docs, retag).allowed, role
        # creating a volume that does not carry the driver's and the cluster's tags
        untagged = Request("ec2:CreateVolume", volume, resource_context(None, {"CSIVolumeName": "pvc-1"}))
        assert not evaluate(docs, untagged).allowed, role


def test_workers_have_no_volume_rights(rendered: Rendered) -> None:
    for role in rendered.worker_roles:
        docs = list(rendered.role_policies[role].values())
        for volume, tags in rendered.etcd_volumes:
            for action in ETCD_MUTATIONS:
                assert not evaluate(docs, Request(action, volume, resource_context(tags))).allowed, (role, action)
        for what, call in _csi_calls(rendered).items():
            assert not evaluate_all(docs, call).allowed, (role, what)


# ============================================================================ join credentials

def _secret_arns(render: RenderResult) -> dict[str, str]:
    return {str(_inputs(s)["name"]): str(s.outputs["arn"]) for s in _of(render, "aws:secretsmanager/secret:Secret")}


def test_a_pool_launches_able_to_read_the_join_secrets_and_keeps_nothing_once_joined(render: RenderResult) -> None:
    ids = aws_identities(render.resources)
    secrets = _secret_arns(render)
    token = next(arn for name, arn in secrets.items() if name.endswith("-bootstrap-token"))
    ca = next(arn for name, arn in secrets.items() if name.endswith("-ca-crt") and "etcd" not in name and "proxy" not in name)
    pools = [p for p in ids.profile_roles if p.endswith("-joined")]
    assert pools, "every pool has a joined profile"
    for joined in pools:
        join = joined.removesuffix("-joined")
        read = lambda profile, arn: evaluate(ids.policies_of_profile(profile), Request("secretsmanager:GetSecretValue", arn))  # noqa: E731
        assert read(join, token).allowed and read(join, ca).allowed
        for arn in secrets.values():
            assert not read(joined, arn).allowed, (joined, arn)
        assert join in ids.template_profiles.values(), "the pool's VMs launch with the join profile"


def test_the_control_plane_rotates_only_the_join_token(render: RenderResult, rendered: Rendered) -> None:
    secrets = _secret_arns(render)
    for role in rendered.control_plane_roles:
        policies = list(rendered.role_policies[role].values())
        for name, arn in secrets.items():
            allowed = evaluate(policies, Request("secretsmanager:PutSecretValue", arn)).allowed
            assert allowed == name.endswith("-bootstrap-token"), (role, name)


def test_the_control_plane_swaps_only_workers_of_its_cluster_to_joined_roles(render: RenderResult, rendered: Rendered) -> None:
    ids = aws_identities(render.resources)
    cluster = next(iter(rendered.instances))[1]["cfcr.io/cluster"]
    worker_tags = next(tags for tags in ids.template_instance_tags.values() if tags.get("cfcr.io/role") == "worker")
    cp_tags = next(tags for tags in ids.template_instance_tags.values() if tags.get("cfcr.io/role") == "control-plane")
    other_cluster = {**worker_tags, f"kubernetes.io/cluster/{cluster}": "", "kubernetes.io/cluster/other": "owned"}
    instance = f"{rendered.arn_prefix}instance/i-0123456789abcdef0"
    passed = {"iam:PassedToService": "ec2.amazonaws.com"}
    for role in rendered.control_plane_roles:
        policies = list(rendered.role_policies[role].values())

        def replace(tags: Mapping[str, str], new_role: str) -> bool:
            return evaluate_all(policies, [
                Request("ec2:ReplaceIamInstanceProfileAssociation", instance, resource_context(tags)),
                Request("iam:PassRole", ids.role_arns[new_role], passed)]).allowed

        assert evaluate(policies, Request("ec2:DescribeIamInstanceProfileAssociations", "*")).allowed
        for profile, new_role in ids.profile_roles.items():
            expected = profile.endswith("-joined")
            assert replace(worker_tags, new_role) == expected, (role, profile)
            assert not replace(cp_tags, new_role), "never a control-plane instance"
            assert not replace(other_cluster, new_role), "never another cluster's instance"


def test_no_role_attaches_an_aws_managed_policy(render: RenderResult) -> None:
    attached = [_inputs(a)["policyArn"] for a in _of(render, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")]
    assert attached and not [arn for arn in attached if ":iam::aws:policy/" in arn], attached


def test_every_node_may_open_a_session_manager_shell_and_read_no_parameter(rendered: Rendered) -> None:
    nodes = set(rendered.node_roles)
    assert len(nodes) >= 4
    for role, policies in rendered.role_policies.items():
        if role not in nodes:
            continue  # not a node's role (the etcd snapshot writer, which only members assume)
        docs = list(policies.values())
        assert evaluate(docs, Request("ssmmessages:OpenDataChannel", "*")).allowed, role
        assert evaluate(docs, Request("ssm:UpdateInstanceInformation", "*")).allowed, role
        assert not evaluate(docs, Request("ssm:GetParameter", "arn:aws:ssm:us-east-1:123456789012:parameter/x")).allowed
        assert not evaluate(docs, Request("ecr:GetAuthorizationToken", "*")).allowed, role
