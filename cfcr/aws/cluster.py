"""``Cluster``: a whole cfcr cluster on AWS.

Built in one direction: network -> security groups -> VPC endpoints (air-gapped only) -> API
load balancer -> etcd volumes ->
ClusterBootstrap (PKI, secrets, user-data; it needs the load balancer's DNS name and the
volumes' ids) -> secret store -> identities -> control-plane members, one after the other's
rollout gate (cfcr/bootstrap/rollout.py; a new cluster's gates do not wait, so its members
still boot together) -> node pools, after the last member's gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from cfcr import channels
from cfcr.aws.backups import build_etcd_backups, snapshot_target
from cfcr.aws.node_hook import AwsNodeHook
from cfcr.aws.control_plane import build_control_plane_instances, build_etcd_volumes, etcd_disk_path
from cfcr.aws.endpoints import build_endpoints
from cfcr.aws.identity import build_identities, pool_profile_names
from cfcr.aws.image import Images
from cfcr.aws.nlb import build_api_load_balancer
from cfcr.aws.network import build_network
from cfcr.aws.node_pool import NodePool, NodePoolArgs
from cfcr.aws.secrets import build_secret_store
from cfcr.aws.security import build_security_groups
from cfcr.aws.termination import build_termination_queue
from cfcr.bootstrap import ClusterBootstrap, ClusterBootstrapArgs
from cfcr.bootstrap.component import default_secret_id
from cfcr.bootstrap.version import KubernetesVersion
from cfcr.constants import API_PORT
from cfcr.node.secrets import BOOTSTRAP_TOKEN_KEY
from cfcr.cluster_component import ClusterComponent
from cfcr.config import ClusterSpec
from cfcr.config.topology import control_plane_members, pool_share

TYPE_TOKEN = "cfcr:aws:Cluster"


@dataclass(frozen=True)
class ClusterArgs:
    """Arguments of ``Cluster``."""

    spec: ClusterSpec
    """The validated cluster spec (``cfcr.config.load_spec``); ``cloud`` must be ``aws``."""
    api_dns_zone_id: pulumi.Input[str] | None = None
    """Route53 hosted zone in which to create ``networking.apiDnsName`` as an alias of the
    API load balancer; None creates no record (point the name at ``apiLoadBalancerDnsName`` yourself)."""
    ebs_kms_key_id: pulumi.Input[str] | None = None
    """KMS key (ARN) for every EBS volume; None uses the account's ``aws/ebs`` key. A customer
    key must let the Auto Scaling service-linked role use it, or pools cannot launch."""
    protect_etcd_volumes: bool = True
    """Protect the etcd volumes: ``pulumi destroy`` then stops until you unprotect them
    (``pulumi state unprotect``), so etcd's data never goes by accident."""
    termination_queue: bool = True
    """Create the event queue that aws-node-termination-handler drains nodes from."""


class Cluster(ClusterComponent[NodePool]):
    """A self-managed, upstream Kubernetes cluster on AWS (kubeadm), highly available and self-healing."""

    api_load_balancer_dns_name: pulumi.Output[str]
    """The NLB's own DNS name (the internet-facing one when the API is public)."""
    internal_api_load_balancer_dns_name: pulumi.Output[str]
    """DNS name of the internal NLB nodes use, which ``api.<cluster>.cfcr.internal`` aliases (the
    one NLB when the API is internal)."""
    ca_bundle: pulumi.Output[str]
    """The cluster CA bundle (PEM)."""
    vpc_id: pulumi.Output[str]
    """The VPC."""
    private_subnet_ids: pulumi.Output[list[str]]
    """Node subnets, by zone."""
    public_subnet_ids: pulumi.Output[list[str]]
    """Public subnets, by zone (empty for an existing network without them)."""
    node_pool_asg_names: pulumi.Output[dict[str, str]]
    """Pool name -> auto scaling group name."""
    security_group_ids: pulumi.Output[dict[str, str]]
    """``apiLoadBalancer``, ``controlPlane``, ``worker`` (and ``internalApiLoadBalancer`` when the
    API is public) -> security group id."""
    control_plane_instance_ids: pulumi.Output[list[str]]
    """Instance id of each control-plane member."""
    etcd_volume_ids: pulumi.Output[list[str]]
    """etcd volume id of each control-plane member."""
    termination_queue_url: pulumi.Output[str] | None
    """URL of the termination handler's queue (for the addons layer)."""
    etcd_backup_bucket: pulumi.Output[str] | None
    """The S3 bucket of the etcd snapshots (retained after destroy; docs/backups.md), None without backups."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        spec = args.spec
        if spec.cloud != "aws":
            raise ValueError(f"cfcr:cloud: got {spec.cloud!r}; cfcr.aws.Cluster builds aws clusters")
        assert spec.name is not None, "load_spec names every cluster"
        release = channels.resolve(spec.kubernetes.version)
        super().__init__(TYPE_TOKEN, name, {
            "region": spec.region,
            "kubernetesVersion": release.kubernetes.version,
            "controlPlaneCount": spec.control_plane.count,
            "apiPublic": spec.networking.api_public,
            "existingNetwork": spec.networking.existing_network is not None,
            "natGateways": spec.networking.nat_gateways,
            **({"airGapped": True} if spec.networking.air_gapped else {}),
            "tags": dict(spec.tags),
        }, opts)
        child = pulumi.ResourceOptions(parent=self)

        network = build_network(name, spec, self)
        groups = build_security_groups(name, spec, network.vpc_id, network.vpc_cidr, self)
        endpoints = build_endpoints(name, spec, network, {"cp": groups.control_plane, "worker": groups.worker}, self)
        api = build_api_load_balancer(
            name, spec, network.vpc_id,
            network.public_subnet_ids if spec.networking.api_public else network.private_subnet_ids,
            groups.load_balancer.id, self, public_zone_id=args.api_dns_zone_id,
            internal_subnet_ids=network.private_subnet_ids,
            internal_security_group_id=groups.internal_load_balancer.id if groups.internal_load_balancer else None,
        )
        volumes = build_etcd_volumes(name, spec, network.zone_names, self, kms_key_id=args.ebs_kms_key_id,
                                     protect=args.protect_etcd_volumes)
        backup_target = snapshot_target(spec)
        self.bootstrap = ClusterBootstrap(
            name,
            ClusterBootstrapArgs(
                spec=spec,
                api_endpoint=api.private_name,
                members=control_plane_members(spec),
                hook=AwsNodeHook(region=spec.region, cluster=spec.name, joined_profiles=dict(
                    pool_profile_names(name, pool.name) for pool in spec.node_pools), backups=backup_target),
                etcd_disk_devices=[m.volume.id.apply(etcd_disk_path) for m in volumes],
                extra_api_names=api.dns_name.apply(lambda dns: [dns] if dns else []),
            ),
            opts=child,
        )
        store = build_secret_store(name, spec, self.bootstrap.secrets, self)
        queue = build_termination_queue(name, spec, self) if args.termination_queue else None
        identities = build_identities(
            name, spec, self.bootstrap.readers, {sid: s.arn for sid, s in store.secrets.items()}, store.key.arn,
            self, termination_queue_arn=queue.queue.arn if queue else None,
            token_secret=default_secret_id(spec.name, BOOTSTRAP_TOKEN_KEY),
            backup_writer_role=backup_target.writer_role if backup_target else None,
            shared_secrets=self.bootstrap.script_secret_ids,
        )
        # etcd snapshots: the bucket and key outlive the cluster; only the members assume the writer
        backups = build_etcd_backups(name, spec, [i.role.arn for i in identities.control_plane], self)
        images = Images(spec, self)
        # a deploy the skew policy forbids stops at the version record, before any machine changes
        self.version_record = KubernetesVersion.for_spec(name, spec, opts=child)
        # what every VM waits for: never another VM
        # (air-gapped: the VPC endpoints too, so the first secret fetch at boot finds them)
        boot_deps: list[pulumi.Resource] = [*network.ready, *groups.rules, *(endpoints.ready if endpoints else []),
                                            *store.versions, *api.ready, self.version_record]
        self.private_api_server_url = f"https://{api.private_name}:{API_PORT}"
        self.api_server_url, self.admin_kubeconfig = self.bootstrap.client_endpoint(api.public_name)
        members = build_control_plane_instances(
            name, spec, volumes,
            user_data=[self.bootstrap.user_data[f"control-plane-{i}"] for i in range(len(volumes))],
            image_id=images.ami(spec.control_plane.architecture),
            image_floats=not images.pinned,
            subnet_ids=network.private_subnet_ids,
            security_group_id=groups.control_plane.id,
            identities=identities.control_plane,
            target_groups=[api.target_group, *([api.internal_target_group] if api.internal_target_group else [])],
            depends_on=boot_deps,
            parent=self,
            zone_names=network.zone_names,
            node_names=[m.kubelet_name for m in self.bootstrap.members],
            api_server_url=self.api_server_url,
            admin_kubeconfig=self.admin_kubeconfig,
            kms_key_id=args.ebs_kms_key_id,
        )
        # the pools roll once the whole control plane has: after the last member's gate
        control_plane_rolled = [m.gate for m in members[-1:] if m.gate is not None]
        instances = [m.instance for m in members if m.instance is not None]
        self.node_pools = {}
        for index, pool in enumerate(spec.node_pools):
            identity = identities.workers[pool.name]
            self.node_pools[pool.name] = NodePool(
                f"{name}-{pool.name}",
                NodePoolArgs(
                    spec=spec,
                    pool=pool,
                    user_data=self.bootstrap.user_data[f"worker-{pool.name}"],
                    image_id=images.ami(pool.architecture),
                    subnet_ids=pool_share(spec, pool, index, network.private_subnet_ids),
                    security_group_id=groups.worker.id,
                    instance_profile_arn=identity.profile.arn,
                    depends_on=[*boot_deps, *identity.policies, *control_plane_rolled],
                    kms_key_id=args.ebs_kms_key_id,
                ),
                opts=child,
            )

        self.api_load_balancer_dns_name = api.dns_name
        self.internal_api_load_balancer_dns_name = api.internal_dns_name
        self.ca_bundle = self.bootstrap.pki.ca_bundle
        self.vpc_id = network.vpc_id
        self.private_subnet_ids = pulumi.Output.all(*network.private_subnet_ids).apply(lambda ids: [str(i) for i in ids])
        self.public_subnet_ids = pulumi.Output.all(*network.public_subnet_ids).apply(lambda ids: [str(i) for i in ids])
        self.node_pool_asg_names = pulumi.Output.all(
            **{pool: np.asg_name for pool, np in self.node_pools.items()}
        ).apply(lambda names: {k: str(v) for k, v in names.items()})
        group_ids = {"apiLoadBalancer": groups.load_balancer.id, "controlPlane": groups.control_plane.id,
                     "worker": groups.worker.id}
        if groups.internal_load_balancer is not None:
            group_ids["internalApiLoadBalancer"] = groups.internal_load_balancer.id
        self.security_group_ids = pulumi.Output.all(**group_ids).apply(lambda ids: {k: str(v) for k, v in ids.items()})
        self.control_plane_machines = list(instances)
        self.control_plane_rolled = list(control_plane_rolled)
        self.control_plane_instance_ids = pulumi.Output.all(
            *[i.id for i in instances]
        ).apply(lambda ids: [str(i) for i in ids])
        self.etcd_volume_ids = pulumi.Output.all(*[m.volume.id for m in volumes]).apply(lambda ids: [str(i) for i in ids])
        self.termination_queue_url = queue.queue.url if queue else None
        self.etcd_backup_bucket = backups.bucket_name if backups else None
        outputs: dict[str, Any] = {
            "adminKubeconfig": self.admin_kubeconfig,
            "apiServerUrl": self.api_server_url,
            "privateApiServerUrl": self.private_api_server_url,
            "apiLoadBalancerDnsName": self.api_load_balancer_dns_name,
            "internalApiLoadBalancerDnsName": self.internal_api_load_balancer_dns_name,
            "caBundle": self.ca_bundle,
            "vpcId": self.vpc_id,
            "privateSubnetIds": self.private_subnet_ids,
            "publicSubnetIds": self.public_subnet_ids,
            "nodePoolAsgNames": self.node_pool_asg_names,
            "securityGroupIds": self.security_group_ids,
            "controlPlaneInstanceIds": self.control_plane_instance_ids,
            "etcdVolumeIds": self.etcd_volume_ids,
        }
        if self.termination_queue_url is not None:
            outputs["terminationQueueUrl"] = self.termination_queue_url
        if self.etcd_backup_bucket is not None:
            outputs["etcdBackupBucket"] = self.etcd_backup_bucket
        self.outputs = outputs
        self.register_outputs(outputs)
