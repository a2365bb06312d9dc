"""What the addons need to know about AWS (:class:`cfcr.addons.cloud.CloudAddonProfile`).

* CCM: ``--cloud-provider=aws``; the cloud config is INI.
* CSI: the EBS driver. Its controller needs the instance profile's credentials, and the IMDSv2
  hop limit of 1 (which cfcr keeps, and the policy pack enforces) lets only host-network
  processes reach them: it runs on the control-plane nodes with host networking, told the
  region explicitly. The chart has no value for the controller's host networking (its values
  schema forbids unknown keys), so a Pulumi transform sets it on the chart's controller
  Deployment (:func:`ebs_controller_transform`).
* StorageClass: gp3, encrypted.
* cluster-autoscaler: the ``aws`` provider, told the region; on an air-gapped network with
  the static instance type list (no instance type lookups at run time).
* aws-node-termination-handler applies (given the termination queue).
"""

from __future__ import annotations

from typing import Any

import pulumi

from cfcr.addons.base import CONTROL_PLANE_LABEL, CONTROL_PLANE_TOLERATIONS
from cfcr.addons.cloud import CloudAddonProfile, CloudFacts, host_network_transform
from cfcr.addons.images import ImageRewriter, ImageSlot, slot_values
from cfcr.util import deep_merge

EBS_SLOTS = (
    ImageSlot(("image", "repository"), "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver"),
    ImageSlot(("sidecars", "provisioner", "image", "repository"), "public.ecr.aws/csi-components/csi-provisioner"),
    ImageSlot(("sidecars", "attacher", "image", "repository"), "public.ecr.aws/csi-components/csi-attacher"),
    ImageSlot(("sidecars", "snapshotter", "image", "repository"), "public.ecr.aws/csi-components/csi-snapshotter"),
    ImageSlot(("sidecars", "livenessProbe", "image", "repository"), "public.ecr.aws/csi-components/livenessprobe"),
    ImageSlot(("sidecars", "resizer", "image", "repository"), "public.ecr.aws/csi-components/csi-resizer"),
    ImageSlot(("sidecars", "nodeDriverRegistrar", "image", "repository"), "public.ecr.aws/csi-components/csi-node-driver-registrar"),
    ImageSlot(("sidecars", "volumemodifier", "image", "repository"), "public.ecr.aws/ebs-csi-driver/volume-modifier-for-k8s"),
)
"""The EBS chart's images. The sidecar defaults are NOT confirmed for the pinned chart
version (they moved between public.ecr.aws paths over time); only mirrored slots are set."""

EBS_CONTROLLER = "ebs-csi-controller"
"""Name (and ``app`` label) of the EBS chart's controller Deployment."""
EBS_CONTROLLER_MAX_REPLICAS = 2
"""The chart's default; with host networking two replicas never share a node (their
health port is a host port), so a cluster gets at most one per control-plane node."""


def ebs_controller_transform() -> pulumi.ResourceTransform:
    """:func:`~cfcr.addons.cloud.host_network_transform` for the EBS chart's controller (the
    chart has no value for its host networking)."""
    return host_network_transform(EBS_CONTROLLER)


def ebs_csi_values(facts: CloudFacts, rewriter: ImageRewriter, repository: str, tag: str,
                   control_plane_count: int) -> dict[str, Any]:
    """The EBS chart's values: the controller on the control-plane nodes, one replica per
    control-plane node up to two, told the region and the cluster."""
    values: dict[str, Any] = {
        "image": {"repository": rewriter.repository(repository), "tag": tag},
        "controller": {
            "region": facts.region,
            # the driver then tags what it creates kubernetes.io/cluster/<cluster>=owned besides
            # ebs.csi.aws.com/cluster=true; cfcr.aws.identity.ebs_csi_policy requires both
            "k8sTagClusterId": facts.cluster_name,
            "nodeSelector": {CONTROL_PLANE_LABEL: ""},
            "tolerations": CONTROL_PLANE_TOLERATIONS,
            "replicaCount": max(1, min(EBS_CONTROLLER_MAX_REPLICAS, control_plane_count)),
        },
        "node": {"tolerateAllTaints": True},
        "storageClasses": [],
    }
    return deep_merge(values, slot_values(EBS_SLOTS[1:], rewriter))


STATIC_INSTANCE_LIST = "aws-use-static-instance-list"
"""cluster-autoscaler's flag (``--aws-use-static-instance-list``, "Should CA fetch instance types
in runtime or use a static list. AWS only"): with it, the instance types' shapes come from the
list built into the release, not from AWS's APIs at run time. The EKS guide to private clusters
asks for it where the cluster has no internet access."""


def autoscaler_values(facts: CloudFacts) -> dict[str, Any]:
    """cluster-autoscaler's AWS provider, told the region; on an air-gapped network, with the
    static instance type list (the chart passes ``extraArgs`` as ``--key=value`` flags)."""
    values: dict[str, Any] = {"cloudProvider": "aws", "awsRegion": facts.region}
    if facts.air_gapped:
        values["extraArgs"] = {STATIC_INSTANCE_LIST: True}
    return values


PROFILE = CloudAddonProfile(
    ccm_provider="aws",
    csi_provisioner="ebs.csi.aws.com",
    storage_parameters={"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"},
    cloud_config_format="ini",
    # private DNS names (ip-10-0-0-1) or resource names (i-0123...), with the region's domain
    node_name_pattern=r"^(ip-[0-9]{1,3}(-[0-9]{1,3}){3}|i-[0-9a-f]{8,17})(\.[a-z0-9-]+)*$",
    csi_values=ebs_csi_values,
    csi_transforms=lambda: [ebs_controller_transform()],
    autoscaler_values=autoscaler_values,
    termination_handler=True,
)
"""AWS's addon profile."""
