"""The cfcr program, shared by ``pulumi up`` (``__main__.py``) and the offline render.

Read the stack's spec, build the cluster and its addons, return what to export. On AWS that
is ``cfcr.aws.Cluster`` plus ``cfcr.addons.ClusterAddons``. GCP and Azure have no ``Cluster``
component yet: for them the program builds the cloud-neutral :class:`ClusterBootstrap` (PKI,
per-role secrets, user-data of every role) with that cloud's secret-fetch hook, the fixed
control-plane addresses of the topology plan and a stable API name, and the cluster's
:class:`~cfcr.bootstrap.version.KubernetesVersion` record (the skew policy on every deploy),
which ``cfcr.aws.Cluster`` builds for itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from cfcr import channels
from cfcr.bootstrap import ClusterBootstrap, ClusterBootstrapArgs
from cfcr.bootstrap.version import KubernetesVersion
from cfcr.config import ClusterSpec, load_from_pulumi
from cfcr.config.topology import control_plane_members
from cfcr.node import SecretFetcher
from cfcr.node.etcd import etcd_static_pod

INTERNAL_API_DOMAIN = "cfcr.internal"
"""Private DNS zone the cloud layers create for the API name when ``networking.apiDnsName`` is unset."""

ETCD_DISK_DEVICE = {
    "aws": "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_etcd",
    "gcp": "/dev/disk/by-id/google-etcd",
    "azure": "/dev/disk/azure/scsi1/lun0",
}
"""Stable path of the etcd data disk on each cloud's images."""


@dataclass
class ProgramResult:
    """What the program built: outputs to export, user-data per role, authored manifests."""

    exports: dict[str, Any]
    user_data: dict[str, pulumi.Output[bytes]]
    manifests: dict[str, Any] = field(default_factory=dict)


def api_endpoint(spec: ClusterSpec) -> str:
    """The API host name every node and kubeconfig uses."""
    return spec.networking.api_dns_name or f"api.{spec.name}.{INTERNAL_API_DOMAIN}"


def secret_hook(spec: ClusterSpec) -> SecretFetcher:
    """How a node of ``spec.cloud`` reads its secrets with its instance identity."""
    assert spec.name is not None
    if spec.cloud == "aws":
        from cfcr.aws.bootstrap_hook import SecretsManagerFetcher

        return SecretsManagerFetcher(region=spec.region)
    if spec.cloud == "gcp":
        from cfcr.gcp.bootstrap_hook import SecretManagerFetcher

        project = pulumi.Config("gcp").get("project") or f"{spec.name}-project"
        return SecretManagerFetcher(project=project)
    from cfcr.azure.bootstrap_hook import KeyVaultFetcher

    return KeyVaultFetcher(vault_name=key_vault_name(spec.name))


def key_vault_name(cluster: str) -> str:
    """Key Vault names are 3-24 characters of letters, digits and '-'."""
    return cluster[:21].rstrip("-") + "-kv"


def build(spec: ClusterSpec) -> ProgramResult:
    """Build every resource of ``spec``'s cluster."""
    assert spec.name is not None
    if spec.cloud == "aws":
        return build_aws(spec)
    members = control_plane_members(spec)
    bootstrap = ClusterBootstrap(
        spec.name,
        ClusterBootstrapArgs(
            spec=spec,
            api_endpoint=api_endpoint(spec),
            members=members,
            hook=secret_hook(spec),
            etcd_disk_devices=[ETCD_DISK_DEVICE[spec.cloud]] * len(members),
        ),
    )
    # the deployed versions in state, and the skew policy on every deploy (cfcr.aws.Cluster builds its own)
    KubernetesVersion.for_spec(spec.name, spec, opts=pulumi.ResourceOptions(parent=bootstrap))
    exports = {
        **_cluster_exports(spec, bootstrap),
        "apiServerUrl": bootstrap.api_server_url,
        "adminKubeconfig": bootstrap.admin_kubeconfig,
    }
    return ProgramResult(exports=exports, user_data=bootstrap.user_data, manifests=_static_pods(spec))


def _static_pods(spec: ClusterSpec) -> dict[str, Any]:
    """The etcd static Pod of each control-plane member, as the render's manifests."""
    release = channels.resolve(spec.kubernetes.version)
    members = control_plane_members(spec)
    return {
        f"static-pods/{member.name}/etcd.yaml": etcd_static_pod(spec, release, members, index)
        for index, member in enumerate(members)
    }


def _cluster_exports(spec: ClusterSpec, bootstrap: ClusterBootstrap) -> dict[str, Any]:
    """The outputs every cloud exports alike."""
    return {
        "kubernetesVersion": channels.resolve(spec.kubernetes.version).kubernetes.version,
        "caBundle": bootstrap.pki.ca_bundle,
        "controlPlaneMembers": [{"name": m.name, "address": m.address, "nodeName": m.kubelet_name}
                                for m in bootstrap.members],
        "secretReaders": bootstrap.readers,
    }


def build_aws(spec: ClusterSpec) -> ProgramResult:
    """AWS: ``cfcr.aws.Cluster`` (network, load balancer, machines, secret store around the bootstrap)."""
    from cfcr.addons import ClusterAddons, ClusterAddonsArgs, CloudFacts, NodeGroup
    from cfcr.aws import Cluster, ClusterArgs

    assert spec.name is not None
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
    groups = {p.name: NodeGroup(cluster.node_pools[p.name].asg_name, p.min_size, p.max_size) for p in spec.node_pools}
    ClusterAddons(
        f"{spec.name}-addons",
        ClusterAddonsArgs(
            spec=spec,
            kubeconfig=cluster.admin_kubeconfig,
            api_server_url=cluster.private_api_server_url,
            gate_url=cluster.api_server_url,
            gate_after=cluster.control_plane_machines,
            cloud=CloudFacts.from_spec(spec, groups, termination_queue_url=cluster.termination_queue_url),
        ),
        opts=pulumi.ResourceOptions(parent=cluster),
    )
    exports: dict[str, Any] = {
        **_cluster_exports(spec, cluster.bootstrap),
        "apiServerUrl": cluster.api_server_url,
        "privateApiServerUrl": cluster.private_api_server_url,
        "apiLoadBalancerDnsName": cluster.api_load_balancer_dns_name,
        "internalApiLoadBalancerDnsName": cluster.internal_api_load_balancer_dns_name,
        "adminKubeconfig": cluster.admin_kubeconfig,
        "vpcId": cluster.vpc_id,
        "privateSubnetIds": cluster.private_subnet_ids,
        "publicSubnetIds": cluster.public_subnet_ids,
        "nodePoolAsgNames": cluster.node_pool_asg_names,
        "securityGroupIds": cluster.security_group_ids,
        "controlPlaneInstanceIds": cluster.control_plane_instance_ids,
        "etcdVolumeIds": cluster.etcd_volume_ids,
    }
    if cluster.termination_queue_url is not None:
        exports["terminationQueueUrl"] = cluster.termination_queue_url
    return ProgramResult(exports=exports, user_data=cluster.bootstrap.user_data, manifests=_static_pods(spec))


def main() -> ProgramResult:
    """The program body: validate config (before any resource), then build."""
    return build(load_from_pulumi())


def export(result: ProgramResult) -> None:
    """Export the program's outputs as stack outputs."""
    for name, value in result.exports.items():
        pulumi.export(name, value)


