"""``NodePool``: an auto scaling group of identical workers from one launch template.

- **Healing**: EC2 health checks replace a failed instance (the BOSH resurrector's job).
- **Rolling**: a launch template change (user-data, image, size) starts an instance refresh,
  Rolling, keeping 90% of the pool healthy.
- **Drain before termination**: a termination lifecycle hook holds every leaving instance;
  aws-node-termination-handler (addons layer, queue mode, running on the control plane)
  receives the event from the cluster's queue (``termination.py``), cordons and drains the
  node, then completes the hook. A node cannot drain itself: its kubelet credentials may
  not evict pods.
- **Spot**: a mixed instances policy, all spot above zero on-demand, price-capacity-optimized,
  with capacity rebalancing.
- **cluster-autoscaler**: the discovery tags, and ``node-template`` label and taint tags so
  it can scale a pool up from zero; Pulumi leaves ``desired_capacity`` to it after creation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_aws import autoscaling, ec2

from cfcr.aws.launch import encode_user_data, metadata_options, root_volume, tag_specifications
from cfcr.aws.names import physical_name, replace_first
from cfcr.aws.tags import base_tags
from cfcr.config import DEFAULT_WORKER_SIZE, ClusterSpec, NodePoolConfig

TYPE_TOKEN = "cfcr:aws:NodePool"
DRAIN_HOOK = "cfcr-drain"
"""Name of the termination lifecycle hook the termination handler completes."""
DRAIN_TIMEOUT_SECONDS = 600
"""How long a terminating instance waits for its drain before the hook continues anyway."""
MIN_HEALTHY_PERCENTAGE = 90


TAG_KEY_MAX = 128
"""Longest AWS tag key (AWS General Reference, "Tagging AWS resources")."""


def autoscaler_tags(spec: ClusterSpec, pool: NodePoolConfig) -> dict[str, str]:
    """cluster-autoscaler discovery tags plus node-template tags for scale-from-zero.

    A label or taint key too long for a tag key (the prefix takes 46 of AWS's 128 characters)
    is an error naming it, not a failed deployment."""
    assert spec.name is not None
    tags = {"k8s.io/cluster-autoscaler/enabled": "true", f"k8s.io/cluster-autoscaler/{spec.name}": "owned"}
    for key, value in sorted(pool.labels.items()):
        tags[f"k8s.io/cluster-autoscaler/node-template/label/{key}"] = value
    for taint in pool.taints:
        tags[f"k8s.io/cluster-autoscaler/node-template/taint/{taint.key}"] = f"{taint.value}:{taint.effect}"
    too_long = [k for k in tags if len(k) > TAG_KEY_MAX]
    if too_long:
        raise ValueError(f"node pool {pool.name}: cluster-autoscaler's node-template tag keys {too_long} exceed AWS's "
                         f"{TAG_KEY_MAX} characters; shorten those label or taint keys (at most "
                         f"{TAG_KEY_MAX - len('k8s.io/cluster-autoscaler/node-template/label/')} characters on AWS)")
    return tags


@dataclass(frozen=True)
class NodePoolArgs:
    """Arguments of ``NodePool``."""

    spec: ClusterSpec
    """The validated cluster spec (name, tags)."""
    pool: NodePoolConfig
    """This pool's config."""
    user_data: pulumi.Output[bytes]
    """The pool's user-data from ``ClusterBootstrap.user_data['worker-<pool>']``."""
    image_id: pulumi.Input[str]
    """AMI of the pool's architecture."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """Private subnets of the pool's zones."""
    security_group_id: pulumi.Input[str]
    """The workers' security group."""
    instance_profile_arn: pulumi.Input[str]
    """The pool's instance profile."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What instances must wait for: network, firewall, identity, secrets, load balancer."""
    kms_key_id: pulumi.Input[str] | None = None
    """KMS key for the root volumes; None uses the account's EBS default key."""


class NodePool(pulumi.ComponentResource):
    """Launch template + auto scaling group of one worker pool."""

    launch_template: ec2.LaunchTemplate
    """The pool's launch template (a new version rolls the pool)."""
    group: autoscaling.Group
    """The auto scaling group."""
    asg_name: pulumi.Output[str]
    """Name of the auto scaling group."""

    def __init__(self, name: str, args: NodePoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        spec, pool = args.spec, args.pool
        super().__init__(TYPE_TOKEN, name, {"pool": pool.name, "spot": pool.spot,
                                            "architecture": pool.architecture}, opts)
        if not args.subnet_ids:
            raise ValueError(f"node pool {pool.name}: no subnets")
        size = pool.size or DEFAULT_WORKER_SIZE["aws"]
        node_tags = {**base_tags(spec, name), "cfcr.io/role": "worker", "cfcr.io/pool": pool.name}
        # names stay Pulumi's while its autonamed form fits (launch template <= 125, group <= 255)
        template_name = physical_name("aws:ec2/launchTemplate:LaunchTemplate", name)
        group_name = physical_name("aws:autoscaling/group:Group", name)
        self.launch_template = ec2.LaunchTemplate(
            name,
            name=template_name,
            description=f"cfcr {spec.name} pool {pool.name}",
            image_id=args.image_id,
            instance_type=size,
            iam_instance_profile=ec2.LaunchTemplateIamInstanceProfileArgs(arn=args.instance_profile_arn),
            vpc_security_group_ids=[args.security_group_id],
            metadata_options=metadata_options(),
            block_device_mappings=[root_volume(pool.root_disk_gb, args.kms_key_id)],
            monitoring=ec2.LaunchTemplateMonitoringArgs(enabled=True),
            user_data=encode_user_data(args.user_data),
            update_default_version=True,
            tag_specifications=tag_specifications(node_tags),
            tags=base_tags(spec, name),
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=replace_first(template_name)),
        )
        version = self.launch_template.latest_version.apply(str)
        template = autoscaling.GroupLaunchTemplateArgs(id=self.launch_template.id, version=version)
        mixed: autoscaling.GroupMixedInstancesPolicyArgs | None = None
        if pool.spot:
            mixed = autoscaling.GroupMixedInstancesPolicyArgs(
                instances_distribution=autoscaling.GroupMixedInstancesPolicyInstancesDistributionArgs(
                    on_demand_base_capacity=0,
                    on_demand_percentage_above_base_capacity=0,
                    spot_allocation_strategy="price-capacity-optimized",
                ),
                launch_template=autoscaling.GroupMixedInstancesPolicyLaunchTemplateArgs(
                    launch_template_specification=autoscaling.GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs(
                        launch_template_id=self.launch_template.id, version=version,
                    ),
                    overrides=[autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs(instance_type=size)],
                ),
            )
        group_tags = {**node_tags, **autoscaler_tags(spec, pool)}
        self.group = autoscaling.Group(
            name,
            name=group_name,
            min_size=pool.min_size,
            max_size=pool.max_size,
            desired_capacity=pool.desired_size if pool.desired_size is not None else pool.min_size,
            vpc_zone_identifiers=list(args.subnet_ids),
            launch_template=None if mixed else template,
            mixed_instances_policy=mixed,
            capacity_rebalance=pool.spot,
            health_check_type="EC2",
            health_check_grace_period=600,
            default_instance_warmup=300,
            instance_refresh=autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=MIN_HEALTHY_PERCENTAGE, instance_warmup="300", skip_matching=True,
                ),
            ),
            initial_lifecycle_hooks=[autoscaling.GroupInitialLifecycleHookArgs(
                name=DRAIN_HOOK,
                lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING",
                default_result="CONTINUE",
                heartbeat_timeout=DRAIN_TIMEOUT_SECONDS,
            )],
            termination_policies=["OldestLaunchTemplate", "Default"],
            tags=[
                autoscaling.GroupTagArgs(key=k, value=v, propagate_at_launch=not k.startswith("k8s.io/cluster-autoscaler/"))
                for k, v in sorted(group_tags.items())
            ],
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(args.depends_on),
                delete_before_replace=replace_first(group_name),
                # cluster-autoscaler owns the size once the pool exists
                ignore_changes=["desiredCapacity"],
            ),
        )
        self.asg_name = self.group.name
        self.register_outputs({"asgName": self.asg_name, "launchTemplateId": self.launch_template.id})
