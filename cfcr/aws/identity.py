"""Identity: one IAM role and instance profile per control-plane member and per worker pool,
each with least-privilege inline policies.

- Every role: Session Manager (``<cluster>-session-manager``: registering with Systems Manager
  and opening session channels, no more; AWS's ``AmazonSSMManagedInstanceCore`` would also let
  any root or host-network process read every SSM parameter of the region) and read of exactly the
  secrets ``ClusterBootstrap.readers`` grants its role slug (by secret ARN), decrypting
  through Secrets Manager only. So member ``i`` reads member ``i``'s etcd keys and no other's,
  and a worker never reads control-plane material.
- Control-plane members also carry what runs on them with host networking (IMDSv2 with a
  hop limit of 1 keeps other pods away from instance credentials): the AWS cloud controller
  manager, the EBS CSI controller, cluster-autoscaler and aws-node-termination-handler. Their
  mutating actions are scoped by the cluster's tags wherever AWS evaluates tags for them; the
  EBS CSI controller's by the tags the driver puts on the volumes it creates.
- The etcd volumes carry the cluster tag too, so every control-plane role also attaches
  ``<cluster>-etcd-volume-guard``: an explicit Deny of any change to a volume or snapshot
  tagged ``cfcr.io/etcd-member`` (only Pulumi, with the deployer's credentials, attaches
  them), and of adding or removing that tag anywhere.
- IAM allows a role 10,240 characters of inline policy in all (whitespace aside), and the
  secrets list grows with the cluster name; so the policies that are the same for every
  member (the guard, ``join-credentials``, the termination handler's) and the one every node
  has (``session-manager``) are customer-managed policies of the cluster (6,144 characters each
  at most) that the roles attach.
- **etcd backups**: a control-plane role may assume the cluster's etcd-backup writer role
  (``etcd-backup``, attached to every member) and holds no S3 right of its own; the writer
  may only put snapshots under the cluster's prefix (``cfcr.aws.backups``).
- No ECR grant: no kubelet image credential provider is configured, so a role's ECR rights
  would serve no pull and only widen what a node's credentials reach.
- **Join credentials**: a pool's VMs launch with its *join* profile, which may read the CA
  certificate and the join token; once a worker's Node exists, the control plane replaces the
  VM's profile association with the pool's *joined* profile, which may read no secret
  (Session Manager only). Both profiles carry explicit names (:func:`pool_profile_names`)
  so the control plane's script knows them. The control plane's ``join-credentials`` policy may
  store a new token in that one secret, find profile associations, replace them only on this
  cluster's workers, and pass only the pools' joined roles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_aws import iam

from cfcr.aws.names import NAME_LIMITS, check_name, fit, physical_name, replace_first
from cfcr.aws.tags import CSI_DRIVER_TAG, ETCD_MEMBER_TAG, base_tags, cluster_tag_key, partition_of
from cfcr.config import ClusterSpec

ROLE = "aws:iam/role:Role"
INSTANCE_PROFILE = "aws:iam/instanceProfile:InstanceProfile"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"

EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@dataclass(frozen=True)
class InstanceIdentity:
    """A node's AWS identity: one IAM role, its instance profile, and every policy a VM must wait
    for. (Not :class:`cfcr.node.context.NodeIdentity`, a node hook's provider-ID capability.)"""

    slug: str
    """The ClusterBootstrap role slug (``control-plane-0``, ``worker-general``)."""
    role: iam.Role
    """The IAM role."""
    profile: iam.InstanceProfile
    """The instance profile VMs launch with."""
    policies: list[pulumi.Resource] = field(default_factory=list)
    """Inline policies and managed-policy attachments."""


NodeIdentity = InstanceIdentity
"""Deprecated alias of :class:`InstanceIdentity` (its former name, shared with
:class:`cfcr.node.context.NodeIdentity`, which means something else); will be removed."""


@dataclass(frozen=True)
class Identities:
    """Every instance identity of a cluster."""

    control_plane: list[InstanceIdentity]
    """One per control-plane member, in member order."""
    workers: dict[str, InstanceIdentity]
    """Pool name -> the identity its VMs launch with (may read the join secrets)."""
    joined: dict[str, InstanceIdentity] = field(default_factory=dict)
    """Pool name -> the identity a worker keeps once joined (reads no secret)."""


def pool_profile_names(name: str, pool: str) -> tuple[str, str]:
    """(join, joined) instance profile names of ``pool`` in the cluster component ``name``."""
    limit = NAME_LIMITS[INSTANCE_PROFILE].max_length
    return (fit(f"{name}-worker-{pool}", limit, keep=f"-worker-{pool}"),
            fit(f"{name}-worker-{pool}-joined", limit, keep="-joined"))


def session_manager_policy() -> dict[str, Any]:
    """What Session Manager needs on an instance, and nothing of Systems Manager besides (AWS
    Systems Manager User Guide, "Step 2: Verify or add instance permissions for Session Manager",
    the custom policy without S3 or KMS session logging)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "SessionManager", "Effect": "Allow", "Resource": "*", "Action": [
                "ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
            ]},
        ],
    }


def join_credentials_policy(cluster: str, region: str, token_secret_arn: pulumi.Input[str],
                            key_arn: pulumi.Input[str], joined_role_arns: Sequence[pulumi.Input[str]]) -> dict[str, Any]:
    """The control plane's share of join credentials: rotate the token, revoke joined workers."""
    partition = partition_of(region)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "RotateJoinToken", "Effect": "Allow", "Action": "secretsmanager:PutSecretValue",
             "Resource": token_secret_arn},
            {"Sid": "EncryptViaSecretsManager", "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
             "Resource": key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}}},
            {"Sid": "FindJoinIdentities", "Effect": "Allow", "Action": "ec2:DescribeIamInstanceProfileAssociations",
             "Resource": "*"},
            {"Sid": "RevokeJoinIdentity", "Effect": "Allow", "Action": "ec2:ReplaceIamInstanceProfileAssociation",
             "Resource": f"arn:{partition}:ec2:{region}:*:instance/*",
             "Condition": {"StringEquals": {f"aws:ResourceTag/{cluster_tag_key(cluster)}": "owned",
                                            "aws:ResourceTag/cfcr.io/role": "worker"}}},
            {"Sid": "PassJoinedRoles", "Effect": "Allow", "Action": "iam:PassRole", "Resource": list(joined_role_arns),
             "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
        ],
    }


def secrets_read_policy(secret_arns: Sequence[pulumi.Input[str]], key_arn: pulumi.Input[str], region: str) -> dict[str, Any]:
    """Read exactly these secrets, decrypting with the cluster key only through Secrets Manager."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadOwnSecrets", "Effect": "Allow",
             "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
             "Resource": list(secret_arns)},
            {"Sid": "DecryptViaSecretsManager", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}}},
        ],
    }


def _tagged(cluster: str, actions: list[str], sid: str, *, request: bool = False,
            resource: str | list[str] = "*") -> dict[str, Any]:
    key = f"aws:RequestTag/{cluster_tag_key(cluster)}" if request else f"aws:ResourceTag/{cluster_tag_key(cluster)}"
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource,
            "Condition": {"StringEquals": {key: "owned"}}}


def _ec2_arn(kind: str) -> str:
    """Every EC2 resource of one kind (``volume``, ``snapshot``, ``instance``, ``security-group``),
    in any partition, region and account."""
    return f"arn:*:ec2:*:*:{kind}/*"


def cloud_controller_policy(cluster: str) -> dict[str, Any]:
    """The AWS cloud controller manager: node lifecycle and Service load balancers."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Describe", "Effect": "Allow", "Resource": "*", "Action": [
                "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeLaunchConfigurations",
                "autoscaling:DescribeTags", "ec2:DescribeAvailabilityZones", "ec2:DescribeInstances",
                "ec2:DescribeInstanceTopology", "ec2:DescribeRegions", "ec2:DescribeRouteTables",
                "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs",
                "elasticloadbalancing:Describe*", "kms:DescribeKey",
            ]},
            # new security groups and load balancers must be created carrying the cluster tag ...
            {"Sid": "CreateSecurityGroup", "Effect": "Allow", "Action": "ec2:CreateSecurityGroup", "Resource": "*"},
            {"Sid": "TagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
             "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}}},
            _tagged(cluster, ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup",
                              "elasticloadbalancing:AddTags"], "CreateTaggedLoadBalancers", request=True),
            # ... and only what carries it can be changed or deleted: security groups and
            # instances by their ARNs, so that no volume (the etcd volumes carry the cluster tag)
            # is ever in reach of CreateTags
            _tagged(cluster, ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
                              "ec2:DeleteSecurityGroup", "ec2:CreateTags"],
                    "ChangeOwnedGroupsAndInstances", resource=[_ec2_arn("security-group"), _ec2_arn("instance")]),
            _tagged(cluster, [
                "elasticloadbalancing:AddTags", "elasticloadbalancing:ApplySecurityGroupsToLoadBalancer",
                "elasticloadbalancing:AttachLoadBalancerToSubnets", "elasticloadbalancing:ConfigureHealthCheck",
                "elasticloadbalancing:CreateListener", "elasticloadbalancing:CreateLoadBalancerListeners",
                "elasticloadbalancing:CreateLoadBalancerPolicy", "elasticloadbalancing:DeleteListener",
                "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteLoadBalancerListeners",
                "elasticloadbalancing:DeleteTargetGroup", "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
                "elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:DetachLoadBalancerFromSubnets",
                "elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyLoadBalancerAttributes",
                "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
                "elasticloadbalancing:RegisterInstancesWithLoadBalancer", "elasticloadbalancing:RegisterTargets",
                "elasticloadbalancing:SetLoadBalancerPoliciesForBackendServer",
                "elasticloadbalancing:SetLoadBalancerPoliciesOfListener", "elasticloadbalancing:SetSecurityGroups",
            ], "ChangeOwnedResources"),
            {"Sid": "ElbServiceLinkedRole", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole", "Resource": "*",
             "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}}},
        ],
    }


def ebs_csi_policy(cluster: str) -> dict[str, Any]:
    """The EBS CSI controller, as the driver's own example policies scope it
    (aws-ebs-csi-driver docs/example-iam-policy.json and -strict.json): it creates volumes and
    snapshots only carrying its tag ``ebs.csi.aws.com/cluster=true`` and this cluster's
    ``kubernetes.io/cluster/<cluster>=owned`` (the addons layer sets ``k8sTagClusterId``), tags
    only while creating, and attaches, detaches, modifies, snapshots and deletes only what
    carries both tags, attaching only to this cluster's instances. The etcd volumes carry the
    cluster tag but not the driver's, so they are out of reach (and ``etcd_volume_guard_policy``
    denies them outright). A volume made by hand is the driver's only once tagged like its own."""
    def own(context: str) -> dict[str, Any]:
        return {"StringEquals": {f"{context}/{CSI_DRIVER_TAG}": "true",
                                 f"{context}/{cluster_tag_key(cluster)}": "owned"}}

    volume, snapshot = _ec2_arn("volume"), _ec2_arn("snapshot")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Describe", "Effect": "Allow", "Resource": "*", "Action": [
                "ec2:DescribeAvailabilityZones", "ec2:DescribeInstances", "ec2:DescribeSnapshots",
                "ec2:DescribeTags", "ec2:DescribeVolumes", "ec2:DescribeVolumesModifications",
            ]},
            # new volumes and snapshots must carry both tags (the source of either is checked below)
            {"Sid": "CreateOwnVolumes", "Effect": "Allow", "Action": "ec2:CreateVolume", "Resource": volume,
             "Condition": own("aws:RequestTag")},
            {"Sid": "CreateOwnSnapshots", "Effect": "Allow", "Action": "ec2:CreateSnapshot", "Resource": snapshot,
             "Condition": own("aws:RequestTag")},
            {"Sid": "TagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags", "Resource": [volume, snapshot],
             "Condition": {"StringEquals": {"ec2:CreateAction": ["CreateVolume", "CreateSnapshot"]}}},
            # what exists is the driver's only if it carries both (a volume or snapshot being
            # created carries no resource tags yet, so CreateVolume and CreateSnapshot here
            # are about their source: restore only its own snapshots, snapshot only its volumes)
            {"Sid": "ChangeOwn", "Effect": "Allow", "Resource": [volume, snapshot], "Action": [
                "ec2:AttachVolume", "ec2:DetachVolume", "ec2:ModifyVolume", "ec2:DeleteVolume", "ec2:CreateVolume",
                "ec2:CreateSnapshot", "ec2:DeleteSnapshot", "ec2:DeleteTags",
            ], "Condition": own("aws:ResourceTag")},
            _tagged(cluster, ["ec2:AttachVolume", "ec2:DetachVolume"], "ToClusterInstances",
                    resource=_ec2_arn("instance")),
        ],
    }


ETCD_VOLUME_ACTIONS = [
    "ec2:AttachVolume", "ec2:DetachVolume", "ec2:DeleteVolume", "ec2:ModifyVolume", "ec2:ModifyVolumeAttribute",
    "ec2:CreateSnapshot", "ec2:CreateSnapshots", "ec2:DeleteSnapshot", "ec2:CopySnapshot",
    "ec2:ModifySnapshotAttribute", "ec2:CreateVolume", "ec2:EnableFastSnapshotRestores",
    "ec2:CreateTags", "ec2:DeleteTags",
]
"""What no control-plane controller may do to a volume or snapshot tagged ``cfcr.io/etcd-member``."""


def etcd_volume_guard_policy() -> dict[str, Any]:
    """An explicit Deny, whatever else a control-plane role is granted: no change to a volume or
    snapshot tagged ``cfcr.io/etcd-member`` (only Pulumi attaches them, with the deployer's
    credentials), and no adding or removing of that tag anywhere."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "EtcdVolumesAreOffLimits", "Effect": "Deny", "Action": list(ETCD_VOLUME_ACTIONS), "Resource": "*",
             "Condition": {"Null": {f"aws:ResourceTag/{ETCD_MEMBER_TAG}": "false"}}},
            {"Sid": "EtcdMemberTagIsOffLimits", "Effect": "Deny", "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
             "Resource": "*", "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": [ETCD_MEMBER_TAG]}}},
        ],
    }


def etcd_backup_policy(writer_role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """A control-plane member's share of etcd backups: assume the writer role, nothing more
    (the writer may only put snapshots; ``cfcr.aws.backups.writer_policy``)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "AssumeEtcdBackupWriter", "Effect": "Allow", "Action": "sts:AssumeRole",
                       "Resource": writer_role_arn}],
    }


def role_arn_in_account_of(arn: pulumi.Input[str], region: str, role_name: str) -> pulumi.Output[str]:
    """``arn:<partition>:iam::<account of arn>:role/<role_name>``: the ARN of a role named up
    front, in the account another resource (``arn``) lives in."""
    return pulumi.Output.from_input(arn).apply(
        lambda value: f"arn:{partition_of(region)}:iam::{value.split(':')[4]}:role/{role_name}")


def cluster_autoscaler_policy(cluster: str) -> dict[str, Any]:
    """cluster-autoscaler: read everything it needs, scale only this cluster's groups."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Describe", "Effect": "Allow", "Resource": "*", "Action": [
                "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
                "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
                "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
            ]},
            {"Sid": "ScaleOwnGroups", "Effect": "Allow", "Resource": "*", "Action": [
                "autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup",
                "autoscaling:UpdateAutoScalingGroup",
            ], "Condition": {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster}": "owned"}}},
        ],
    }


def termination_handler_policy(cluster: str, queue_arn: pulumi.Input[str]) -> dict[str, Any]:
    """aws-node-termination-handler in queue mode: read the cluster's event queue, complete
    lifecycle hooks of this cluster's groups."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Queue", "Effect": "Allow", "Resource": queue_arn,
             "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]},
            {"Sid": "Describe", "Effect": "Allow", "Resource": "*", "Action": [
                "autoscaling:DescribeAutoScalingInstances", "autoscaling:DescribeTags", "ec2:DescribeInstances",
            ]},
            _tagged(cluster, ["autoscaling:CompleteLifecycleAction"], "CompleteOwnHooks"),
        ],
    }


def readable_by(readers: Mapping[str, Sequence[str]], slug: str) -> list[str]:
    """Secret ids the role ``slug`` may read."""
    return sorted(sid for sid, slugs in readers.items() if slug in slugs)


def _identity(name: str, spec: ClusterSpec, slug: str, parent: pulumi.Resource,
              inline: dict[str, pulumi.Input[str]], *, keep: str = "",
              attached: Mapping[str, pulumi.Input[str]] | None = None,
              profile_name: str | None = None) -> InstanceIdentity:
    child = pulumi.ResourceOptions(parent=parent)
    # role and profile keep Pulumi's autonamed form while it fits (IAM: role <= 64, profile <= 128)
    role_name = physical_name(ROLE, name, keep=keep)
    role = iam.Role(name, name=role_name, assume_role_policy=pulumi.Output.json_dumps(EC2_TRUST),
                    description=f"cfcr {spec.name} {slug}", tags=base_tags(spec, name),
                    opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=replace_first(role_name)))
    policies: list[pulumi.Resource] = []
    for policy_name, document in inline.items():
        policies.append(iam.RolePolicy(f"{name}-{policy_name}", role=role.id, name=check_name(ROLE_POLICY, policy_name),
                                       policy=document, opts=child))
    for policy_name, arn in (attached or {}).items():
        policies.append(iam.RolePolicyAttachment(f"{name}-{policy_name}", role=role.name, policy_arn=arn, opts=child))
    profile_name = profile_name or physical_name(INSTANCE_PROFILE, name, keep=keep)
    profile = iam.InstanceProfile(name, name=profile_name, role=role.name, tags=base_tags(spec, name),
                                  opts=pulumi.ResourceOptions(parent=parent,
                                                              delete_before_replace=replace_first(profile_name)))
    return InstanceIdentity(slug=slug, role=role, profile=profile, policies=policies)


def _shared_policy(name: str, spec: ClusterSpec, parent: pulumi.Resource, policy_name: str,
                   document: pulumi.Input[str], purpose: str) -> pulumi.Output[str]:
    """A customer-managed policy of the cluster that several roles attach; its ARN."""
    logical = f"{name}-{policy_name}"
    explicit = physical_name(POLICY, logical, keep=f"-{policy_name}")
    return iam.Policy(
        logical, name=explicit, description=f"cfcr {spec.name} {purpose}", policy=document,
        tags=base_tags(spec, logical),
        opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=replace_first(explicit)),
    ).arn


def build_identities(name: str, spec: ClusterSpec, readers: Mapping[str, Sequence[str]],
                     secret_arns: Mapping[str, pulumi.Input[str]], key_arn: pulumi.Input[str],
                     parent: pulumi.Resource, termination_queue_arn: pulumi.Input[str] | None = None,
                     token_secret: str | None = None, backup_writer_role: str | None = None,
                     shared_secrets: Sequence[str] = ()) -> Identities:
    """Roles for every control-plane member and every pool (join and joined), as children of
    ``parent``; ``token_secret``: the join token's secret id (the control plane rotates it);
    ``backup_writer_role``: the name of the etcd-backup writer role members may assume;
    ``shared_secrets``: secret ids every member reads (its scripts), granted in one policy the
    members attach instead of in each member's own."""
    assert spec.name is not None
    cluster = spec.name

    def secrets_for(slug: str) -> pulumi.Output[str]:
        arns = [secret_arns[sid] for sid in readable_by(readers, slug) if sid not in shared_secrets]
        if not arns:
            raise ValueError(f"role {slug} reads no secret; ClusterBootstrap.readers: {sorted(readers)}")
        return pulumi.Output.json_dumps(secrets_read_policy(arns, key_arn, spec.region))

    control_plane_extra: dict[str, pulumi.Input[str]] = {
        "cloud-controller-manager": pulumi.Output.json_dumps(cloud_controller_policy(cluster)),
        "ebs-csi-controller": pulumi.Output.json_dumps(ebs_csi_policy(cluster)),
        "cluster-autoscaler": pulumi.Output.json_dumps(cluster_autoscaler_policy(cluster)),
    }
    # IAM allows a role 10,240 characters of inline policy in all, and the secrets list grows
    # with the cluster name: what is the same for every member or every node is a
    # customer-managed policy of the cluster (at most 6,144 characters each) that the roles attach
    session = _shared_policy(name, spec, parent, "session-manager", pulumi.Output.json_dumps(session_manager_policy()),
                             "every node: Session Manager")
    every_node = {"session-manager": session}
    joined = {
        pool.name: _identity(f"{name}-worker-{pool.name}-joined", spec, f"worker-{pool.name}-joined", parent, {},
                             keep="-joined", attached=every_node,
                             profile_name=pool_profile_names(name, pool.name)[1])
        for pool in spec.node_pools
    }
    shared: dict[str, pulumi.Input[str]] = {"etcd-volume-guard": pulumi.Output.json_dumps(etcd_volume_guard_policy())}
    if token_secret is not None:
        shared["join-credentials"] = pulumi.Output.json_dumps(join_credentials_policy(
            cluster, spec.region, secret_arns[token_secret], key_arn, [j.role.arn for j in joined.values()]))
    if shared_secrets:
        members = {f"control-plane-{i}" for i in range(spec.control_plane.count)}
        outsiders = [sid for sid in shared_secrets if set(readers.get(sid, ())) != members]
        if outsiders:
            raise ValueError(f"shared secrets {outsiders} must be read by every control-plane member and nothing else")
        shared["scripts"] = pulumi.Output.json_dumps(
            secrets_read_policy([secret_arns[sid] for sid in shared_secrets], key_arn, spec.region))
    if backup_writer_role is not None:
        shared["etcd-backup"] = pulumi.Output.json_dumps(
            etcd_backup_policy(role_arn_in_account_of(key_arn, spec.region, backup_writer_role)))
    if termination_queue_arn is not None:
        shared["node-termination-handler"] = pulumi.Output.json_dumps(
            termination_handler_policy(cluster, termination_queue_arn))
    shared_arns: dict[str, pulumi.Input[str]] = {
        policy_name: _shared_policy(name, spec, parent, policy_name, document, f"control plane: {policy_name}")
        for policy_name, document in shared.items()
    }
    control_plane = [
        _identity(f"{name}-cp-{i}", spec, f"control-plane-{i}", parent,
                  {"secrets": secrets_for(f"control-plane-{i}"), **control_plane_extra},
                  keep=f"-cp-{i}", attached={**every_node, **shared_arns})
        for i in range(spec.control_plane.count)
    ]
    workers = {
        pool.name: _identity(f"{name}-worker-{pool.name}", spec, f"worker-{pool.name}", parent,
                             {"secrets": secrets_for(f"worker-{pool.name}")},
                             keep=f"-worker-{pool.name}", attached=every_node,
                             profile_name=pool_profile_names(name, pool.name)[0])
        for pool in spec.node_pools
    }
    return Identities(control_plane=control_plane, workers=workers, joined=joined)
