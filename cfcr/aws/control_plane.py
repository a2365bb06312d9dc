"""The control plane: one EC2 instance per member at the member's fixed private address, in
its zone's private subnet, with its own IAM role; and one encrypted etcd volume per member
that outlives the instance.

- **Self-healing**: EC2 automatic recovery (``maintenance_options.auto_recovery``) restarts a
  member on healthy hardware, same instance, same address, same volume. A member that is
  replaced (``pulumi up --replace``, or a template change) comes back at the same address
  with the same name and certificates, and Pulumi re-attaches its etcd volume: it rejoins
  with its data.
- **Fixed addresses** mean a member must be deleted before its replacement is created
  (``delete_before_replace``); each is an explicit subnet CIDR reservation (``/32``), which
  EC2 never assigns on its own, so no other machine takes it while a member is replaced.
- **One member at a time**: member ``i + 1``'s instance depends on member ``i``'s
  :class:`~cfcr.bootstrap.rollout.MemberGate`, which waits until the replaced member reports
  full, healthy etcd membership; so a change to every member's user-data replaces them one
  by one with quorum kept, and the node pools (which depend on the last gate) roll after.
- **Images**: when the AMI floats (Canonical's SSM parameter), the control-plane launch
  templates ignore later image changes, so a new Ubuntu build never replaces every member at
  once on some ``pulumi up``; pin ``cfcr:image.id`` to move members to a new image, then roll
  them one at a time (docs/aws.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_aws import ebs, ec2, lb

from cfcr.aws.identity import InstanceIdentity
from cfcr.aws.launch import encode_user_data, metadata_options, root_volume, tag_specifications
from cfcr.aws.names import physical_name, replace_first
from cfcr.aws.tags import ETCD_MEMBER_TAG, base_tags
from cfcr.bootstrap.rollout import MemberGate
from cfcr.config import DEFAULT_CONTROL_PLANE_SIZE, ClusterSpec
from cfcr.config.topology import control_plane_members, zones
from cfcr.constants import API_PORT

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"

ETCD_DEVICE_NAME = "/dev/sdf"
"""Device name the etcd volume is attached as (on Nitro it shows up as an NVMe disk)."""


def etcd_disk_path(volume_id: str) -> str:
    """The stable by-id path of an EBS volume on a Nitro instance."""
    return f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume_id.replace('-', '')}"


@dataclass(frozen=True)
class MemberMachine:
    """The machine of one control-plane member: its EC2 instance, etcd volume and rollout gate.
    (The member itself, name and address, is :class:`cfcr.config.topology.ControlPlaneMember`.)"""

    name: str
    """Node and etcd member name (``<cluster>-cp-<i>``)."""
    address: str
    """Fixed private IPv4 address."""
    volume: ebs.Volume
    """The etcd data volume."""
    instance: ec2.Instance | None = None
    """The VM (set by :func:`build_control_plane_instances`)."""
    gate: MemberGate | None = None
    """Waits for this member to report ready once its VM is (re)created."""


ControlPlaneMember = MemberMachine
"""Deprecated alias of :class:`MemberMachine` (its former name, shared with
:class:`cfcr.config.topology.ControlPlaneMember`, the member itself); will be removed."""


def build_etcd_volumes(name: str, spec: ClusterSpec, zone_names: Sequence[pulumi.Input[str]],
                       parent: pulumi.Resource, *, kms_key_id: pulumi.Input[str] | None = None,
                       protect: bool = True) -> list[MemberMachine]:
    """One encrypted gp3 volume per member, in the member's zone; protected by default, so
    neither a rename nor a destroy deletes etcd's data without a deliberate unprotect."""
    plan = zones(spec)
    members = []
    for i, member in enumerate(control_plane_members(spec)):
        volume = ebs.Volume(
            f"{name}-cp-{i}-etcd",
            availability_zone=zone_names[i % len(plan)],
            size=spec.control_plane.etcd_disk_gb,
            type="gp3",
            encrypted=True,
            kms_key_id=kms_key_id,
            tags={**base_tags(spec, f"{member.name}-etcd"), ETCD_MEMBER_TAG: member.name},
            opts=pulumi.ResourceOptions(parent=parent, protect=protect),
        )
        members.append(MemberMachine(name=member.name, address=member.address, volume=volume))
    return members


def build_control_plane_instances(
    name: str,
    spec: ClusterSpec,
    members: Sequence[MemberMachine],
    *,
    user_data: Sequence[pulumi.Output[bytes]],
    image_id: pulumi.Input[str],
    image_floats: bool,
    subnet_ids: Sequence[pulumi.Input[str]],
    security_group_id: pulumi.Input[str],
    identities: Sequence[InstanceIdentity],
    target_groups: Sequence[lb.TargetGroup],
    depends_on: Sequence[pulumi.Resource],
    parent: pulumi.Resource,
    zone_names: Sequence[pulumi.Input[str]],
    node_names: Sequence[str],
    api_server_url: pulumi.Input[str],
    admin_kubeconfig: pulumi.Input[str],
    kms_key_id: pulumi.Input[str] | None = None,
) -> list[MemberMachine]:
    """Launch template, reserved address, instance, volume attachment, target registration and
    rollout gate per member, each member's instance after the previous member's gate.

    ``depends_on`` lists network, firewall, identity, secrets and load balancer. ``zone_names``
    are the zones of ``subnet_ids``, ``node_names`` the members' Node names; ``api_server_url`` and ``admin_kubeconfig`` are what the gates
    reach the API with (from where ``pulumi up`` runs).
    """
    plan = zones(spec)
    size = spec.control_plane.size or DEFAULT_CONTROL_PLANE_SIZE["aws"]
    out: list[MemberMachine] = []
    for i, member in enumerate(members):
        identity = identities[i]
        tags = {**base_tags(spec, member.name), "cfcr.io/role": "control-plane", "cfcr.io/member": member.name}
        template_name = physical_name(LAUNCH_TEMPLATE, f"{name}-cp-{i}", keep=f"-cp-{i}")
        template = ec2.LaunchTemplate(
            f"{name}-cp-{i}",
            name=template_name,
            description=f"cfcr {spec.name} control-plane member {member.name}",
            image_id=image_id,
            instance_type=size,
            iam_instance_profile=ec2.LaunchTemplateIamInstanceProfileArgs(arn=identity.profile.arn),
            metadata_options=metadata_options(),
            block_device_mappings=[root_volume(spec.control_plane.root_disk_gb, kms_key_id)],
            maintenance_options=ec2.LaunchTemplateMaintenanceOptionsArgs(auto_recovery="default"),
            monitoring=ec2.LaunchTemplateMonitoringArgs(enabled=True),
            user_data=encode_user_data(user_data[i]),
            update_default_version=True,
            tag_specifications=tag_specifications(tags),
            tags=base_tags(spec, f"{name}-cp-{i}"),
            opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["imageId"] if image_floats else None,
                                        delete_before_replace=replace_first(template_name)),
        )
        # the member's fixed address, reserved explicitly: EC2 never hands it to another machine
        # (a node of a pool, a load balancer's interface) while this member is being replaced
        reservation = ec2.SubnetCidrReservation(
            f"{name}-cp-{i}-address",
            subnet_id=subnet_ids[i % len(plan)],
            cidr_block=f"{member.address}/32",
            reservation_type="explicit",
            description=f"cfcr {spec.name} control-plane member {member.name}",
            opts=pulumi.ResourceOptions(parent=parent),
        )
        previous = [out[-1].gate] if out and out[-1].gate is not None else []
        instance = ec2.Instance(
            f"{name}-cp-{i}",
            launch_template=ec2.InstanceLaunchTemplateArgs(id=template.id, version=template.latest_version.apply(str)),
            subnet_id=subnet_ids[i % len(plan)],
            private_ip=member.address,
            vpc_security_group_ids=[security_group_id],
            metadata_options=ec2.InstanceMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1,
                instance_metadata_tags="disabled",
            ),
            maintenance_options=ec2.InstanceMaintenanceOptionsArgs(auto_recovery="default"),
            source_dest_check=True,
            tags=tags,
            volume_tags=None,
            opts=pulumi.ResourceOptions(
                parent=parent,
                depends_on=[*depends_on, *identity.policies, reservation, *previous],
                delete_before_replace=True,  # the fixed address is taken until the old one is gone
            ),
        )
        attachment = ec2.VolumeAttachment(
            f"{name}-cp-{i}-etcd",
            device_name=ETCD_DEVICE_NAME,
            volume_id=member.volume.id,
            instance_id=instance.id,
            stop_instance_before_detaching=True,  # etcd stops cleanly before its disk goes
            opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
        )
        # one registration per API load balancer (an NLB's target group belongs to one NLB): the
        # first keeps the name it always had, the internal NLB's of a public API is ``-api-int``
        registrations = [
            lb.TargetGroupAttachment(
                f"{name}-cp-{i}{suffix}", target_group_arn=group.arn, target_id=instance.id, port=API_PORT,
                opts=pulumi.ResourceOptions(parent=parent),
            )
            for suffix, group in zip(("", "-api-int"), target_groups)
        ]
        gate = MemberGate(
            f"{name}-cp-{i}-ready",
            member=member.name,
            node_name=node_names[i],
            provider_id=pulumi.Output.concat("aws:///", zone_names[i % len(plan)], "/", instance.id),
            api_server_url=api_server_url,
            kubeconfig=admin_kubeconfig,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[attachment, *registrations]),
        )
        out.append(MemberMachine(name=member.name, address=member.address, volume=member.volume,
                                 instance=instance, gate=gate))
    return out
