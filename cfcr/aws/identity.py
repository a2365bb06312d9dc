"""Identity: one IAM role and instance profile per control-plane member and per worker pool,
each with least-privilege inline policies.

- Every role: Session Manager (``AmazonSSMManagedInstanceCore``) and read of exactly the
  secrets ``ClusterBootstrap.readers`` grants its role slug (by secret ARN), decrypting
  through Secrets Manager only. So member ``i`` reads member ``i``'s etcd keys and no other's,
  and a worker never reads control-plane material.
- Control-plane members also carry what runs on them with host networking (IMDSv2 with a
  hop limit of 1 keeps other pods away from instance credentials): the AWS cloud controller
  manager, the EBS CSI controller, cluster-autoscaler and aws-node-termination-handler. Their
  mutating actions are scoped by the cluster's tags wherever AWS evaluates tags for them.
- Workers also pull from ECR (``AmazonEC2ContainerRegistryReadOnly``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_aws import iam

from cfcr.aws.tags import base_tags, cluster_tag_key, partition_of
from cfcr.config import ClusterSpec

EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@dataclass(frozen=True)
class NodeIdentity:
    """One role, its instance profile, and every policy a VM must wait for."""

    slug: str
    """The ClusterBootstrap role slug (``control-plane-0``, ``worker-general``)."""
    role: iam.Role
    """The IAM role."""
    profile: iam.InstanceProfile
    """The instance profile VMs launch with."""
    policies: list[pulumi.Resource] = field(default_factory=list)
    """Inline policies and managed-policy attachments."""


@dataclass(frozen=True)
class Identities:
    """Every node identity of a cluster."""

    control_plane: list[NodeIdentity]
    """One per control-plane member, in member order."""
    workers: dict[str, NodeIdentity]
    """Pool name -> identity."""


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


def _tagged(cluster: str, actions: list[str], sid: str, *, request: bool = False) -> dict[str, Any]:
    key = f"aws:RequestTag/{cluster_tag_key(cluster)}" if request else f"aws:ResourceTag/{cluster_tag_key(cluster)}"
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": "*",
            "Condition": {"StringEquals": {key: "owned"}}}


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
            # ... and only what carries it can be changed or deleted
            _tagged(cluster, [
                "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup",
                "ec2:CreateTags", "ec2:ModifyInstanceAttribute",
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
    """The EBS CSI controller: volumes it creates carry the cluster tag (the addons layer sets
    ``k8sTagClusterId``), and it may attach, detach, modify and delete only those."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Describe", "Effect": "Allow", "Resource": "*", "Action": [
                "ec2:DescribeAvailabilityZones", "ec2:DescribeInstances", "ec2:DescribeSnapshots",
                "ec2:DescribeTags", "ec2:DescribeVolumes", "ec2:DescribeVolumesModifications",
            ]},
            _tagged(cluster, ["ec2:CreateVolume"], "CreateTaggedVolumes", request=True),
            {"Sid": "TagOnCreate", "Effect": "Allow", "Action": "ec2:CreateTags",
             "Resource": ["arn:*:ec2:*:*:volume/*", "arn:*:ec2:*:*:snapshot/*"],
             "Condition": {"StringEquals": {"ec2:CreateAction": ["CreateVolume", "CreateSnapshot"]}}},
            _tagged(cluster, ["ec2:AttachVolume", "ec2:DetachVolume", "ec2:ModifyVolume", "ec2:DeleteVolume",
                              "ec2:CreateSnapshot", "ec2:DeleteSnapshot", "ec2:CreateTags", "ec2:DeleteTags"],
                    "ChangeOwnedVolumes"),
        ],
    }


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
              inline: dict[str, pulumi.Input[str]], managed: list[str]) -> NodeIdentity:
    child = pulumi.ResourceOptions(parent=parent)
    partition = partition_of(spec.region)
    role = iam.Role(name, assume_role_policy=pulumi.Output.json_dumps(EC2_TRUST),
                    description=f"cfcr {spec.name} {slug}", tags=base_tags(spec, name), opts=child)
    policies: list[pulumi.Resource] = []
    for policy_name, document in inline.items():
        policies.append(iam.RolePolicy(f"{name}-{policy_name}", role=role.id, name=policy_name, policy=document,
                                       opts=child))
    for managed_name in managed:
        policies.append(iam.RolePolicyAttachment(
            f"{name}-{managed_name}", role=role.name, policy_arn=f"arn:{partition}:iam::aws:policy/{managed_name}",
            opts=child,
        ))
    profile = iam.InstanceProfile(name, role=role.name, tags=base_tags(spec, name), opts=child)
    return NodeIdentity(slug=slug, role=role, profile=profile, policies=policies)


def build_identities(name: str, spec: ClusterSpec, readers: Mapping[str, Sequence[str]],
                     secret_arns: Mapping[str, pulumi.Input[str]], key_arn: pulumi.Input[str],
                     parent: pulumi.Resource, termination_queue_arn: pulumi.Input[str] | None = None) -> Identities:
    """Roles for every control-plane member and every pool, as children of ``parent``."""
    assert spec.name is not None
    cluster = spec.name

    def secrets_for(slug: str) -> pulumi.Output[str]:
        arns = [secret_arns[sid] for sid in readable_by(readers, slug)]
        if not arns:
            raise ValueError(f"role {slug} reads no secret; ClusterBootstrap.readers: {sorted(readers)}")
        return pulumi.Output.json_dumps(secrets_read_policy(arns, key_arn, spec.region))

    control_plane_extra: dict[str, pulumi.Input[str]] = {
        "cloud-controller-manager": pulumi.Output.json_dumps(cloud_controller_policy(cluster)),
        "ebs-csi-controller": pulumi.Output.json_dumps(ebs_csi_policy(cluster)),
        "cluster-autoscaler": pulumi.Output.json_dumps(cluster_autoscaler_policy(cluster)),
    }
    if termination_queue_arn is not None:
        control_plane_extra["node-termination-handler"] = pulumi.Output.json_dumps(
            termination_handler_policy(cluster, termination_queue_arn))
    control_plane = [
        _identity(f"{name}-cp-{i}", spec, f"control-plane-{i}", parent,
                  {"secrets": secrets_for(f"control-plane-{i}"), **control_plane_extra},
                  ["AmazonSSMManagedInstanceCore"])
        for i in range(spec.control_plane.count)
    ]
    workers = {
        pool.name: _identity(f"{name}-worker-{pool.name}", spec, f"worker-{pool.name}", parent,
                             {"secrets": secrets_for(f"worker-{pool.name}")},
                             ["AmazonSSMManagedInstanceCore", "AmazonEC2ContainerRegistryReadOnly"])
        for pool in spec.node_pools
    }
    return Identities(control_plane=control_plane, workers=workers)
