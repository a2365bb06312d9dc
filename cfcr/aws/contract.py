"""AWS's side of the cloud contract (:class:`cfcr.clouds.CloudPackage`): the registry finds
``CLOUD`` here for ``cfcr:cloud: aws``."""

from __future__ import annotations

from dataclasses import dataclass

from cfcr.addons.cloud import NodeGroup
from cfcr.aws.addon_profile import PROFILE
from cfcr.aws.backups import OperatorCommands, operator_commands
from cfcr.aws.node_hook import AwsNodeHook
from cfcr.clouds import BuiltCluster, CloudPackageData
from cfcr.config import ClusterSpec

EXPORTS: tuple[str, ...] = (
    "apiServerUrl",
    "privateApiServerUrl",
    "apiLoadBalancerDnsName",
    "internalApiLoadBalancerDnsName",
    "adminKubeconfig",
    "vpcId",
    "privateSubnetIds",
    "publicSubnetIds",
    "nodePoolAsgNames",
    "securityGroupIds",
    "controlPlaneInstanceIds",
    "etcdVolumeIds",
    "terminationQueueUrl",
)
"""The outputs an AWS cluster adds to the common ones (``terminationQueueUrl`` only with the
termination queue)."""


@dataclass(frozen=True)
class AwsCloud(CloudPackageData):
    """``cfcr.aws`` behind the cloud contract; the etcd disk's path is derived per volume
    (``/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol...``) by ``cfcr.aws.Cluster``."""

    def node_hook(self, spec: ClusterSpec) -> AwsNodeHook:
        """Secrets Manager with the instance profile, provider ID from IMDSv2 (a standalone hook:
        ``cfcr.aws.Cluster`` builds its own with the pools' joined profiles and the backups)."""
        return AwsNodeHook(region=spec.region)

    def restore_commands(self, spec: ClusterSpec) -> OperatorCommands:
        """S3 for the snapshots, Run Command on the members (:func:`cfcr.aws.backups.operator_commands`)."""
        return operator_commands(spec)

    def build(self, spec: ClusterSpec) -> BuiltCluster:
        """``cfcr.aws.Cluster`` from the spec and its ``cfcr:aws`` settings."""
        from cfcr.aws.cluster import Cluster, ClusterArgs

        assert spec.name is not None, "load_spec names every cluster"
        cluster = Cluster(
            spec.name,
            ClusterArgs(
                spec=spec,
                api_dns_zone_id=spec.aws.api_dns_zone_id,
                ebs_kms_key_id=spec.aws.ebs_kms_key_id,
                protect_etcd_volumes=spec.aws.protect_etcd_volumes,
                termination_queue=spec.aws.termination_queue,
            ),
        )
        groups = {p.name: NodeGroup(cluster.node_pools[p.name].asg_name, p.min_size, p.max_size)
                  for p in spec.node_pools}
        return BuiltCluster.of(cluster, EXPORTS, groups, termination_queue_url=cluster.termination_queue_url)


CLOUD = AwsCloud(name="aws", hook_type=AwsNodeHook, addon_profile=PROFILE, exports=EXPORTS)
"""The contract's entry point for ``cfcr:cloud: aws``."""
