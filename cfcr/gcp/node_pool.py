"""``NodePool``: one instance template and **one zonal managed instance group per zone**
(cluster-autoscaler's GCE provider takes zonal groups only: its ``gce_url`` parser reads
``zones/<zone>/instanceGroups/<name>``; a regional group would not scale).

- **Healing**: each group recreates a VM that fails the node health check (kube-proxy's
  ``/livez`` on 10256, or the kubelet's port under Cilium's kube-proxy replacement) after a
  10-minute boot allowance.
- **Rolling**: the template is immutable; a change (user-data, image, size) makes a new one and
  each group replaces its VMs proactively, one extra VM at a time and none taken away first
  (``maxSurge 1``, ``maxUnavailable 0``): no capacity loss.
- **Drain**: Compute Engine sends the guest an ACPI shutdown before it deletes or preempts a VM;
  the kubelet's graceful node shutdown (the GCP node hook sets it) then stops the pods in
  order. cluster-autoscaler drains a node itself before it scales it down.
- **Spot**: ``provisioningModel: SPOT``, deleted when preempted (the group then recreates it).
- **cluster-autoscaler**: the template's ``kube-env`` metadata carries the pool's labels, taints,
  OS and architecture in ``AUTOSCALER_ENV_VARS``, which the autoscaler reads to scale a group
  up from zero; Pulumi leaves the target size to the autoscaler after creation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_gcp import compute

from cfcr.config import DEFAULT_WORKER_SIZE, ClusterSpec, NodePoolConfig
from cfcr.gcp.control_plane import BOOT_DISK_TYPE, SCOPES, hardened_metadata
from cfcr.gcp.security import node_health_port
from cfcr.gcp.labels import ROLE_LABEL, base_labels, node_tag
from cfcr.gcp.names import resource_name
from cfcr.node.kubelet import node_labels as pool_node_labels

TYPE_TOKEN = "cfcr:gcp:NodePool"
HEAL_DELAY_SECONDS = 600
"""How long a new VM has to boot and join before autohealing judges it (downloads retry for
about 5 minutes; kubeadm join follows)."""


def split(total: int, parts: int, *, at_least: int = 0) -> list[int]:
    """``total`` spread over ``parts`` as evenly as possible (the first zones take the rest),
    each at least ``at_least``."""
    base, rest = divmod(total, parts)
    return [max(at_least, base + (1 if i < rest else 0)) for i in range(parts)]


def kube_env(spec: ClusterSpec, pool: NodePoolConfig) -> str:
    """The ``kube-env`` metadata value cluster-autoscaler reads to build a node of the pool
    from nothing: ``AUTOSCALER_ENV_VARS: node_labels=...;node_taints=...;os=linux;...``, with
    every label the pool's kubelets register (``cfcr.io/pool`` too)."""
    labels = ",".join(f"{k}={v}" for k, v in sorted(pool_node_labels(pool).items()))
    taints = ",".join(f"{t.key}={t.value}:{t.effect}" for t in pool.taints)
    parts = [f"node_labels={labels}", f"node_taints={taints}", "os=linux", "os_distribution=ubuntu",
             f"arch={pool.architecture}"]
    for text in (labels, taints):
        if ";" in text:
            raise ValueError(f"node pool {pool.name}: a label or taint holds ';', which the autoscaler's kube-env cannot carry")
    return "AUTOSCALER_ENV_VARS: " + ";".join(parts)


@dataclass(frozen=True)
class NodePoolArgs:
    """Arguments of ``NodePool``."""

    spec: ClusterSpec
    """The validated cluster spec."""
    pool: NodePoolConfig
    """This pool's config."""
    project: str
    """The project."""
    user_data: pulumi.Output[bytes]
    """The pool's user-data (``ClusterBootstrap.user_data['worker-<pool>']``)."""
    image: pulumi.Input[str]
    """Image of the pool's architecture."""
    zones: Sequence[pulumi.Input[str]]
    """The pool's zones: one group each."""
    subnetwork: pulumi.Input[str]
    """The node subnetwork."""
    service_account: pulumi.Input[str]
    """The pool's service account e-mail."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What VMs wait for: network, firewall, identities, secrets, load balancer, control plane."""


class NodePool(pulumi.ComponentResource):
    """Instance template + one zonal managed instance group per zone of one worker pool."""

    template: compute.InstanceTemplate
    """The pool's template (a new one rolls every group)."""
    health_check: compute.HealthCheck
    """The autohealing check."""
    groups: list[compute.InstanceGroupManager]
    """The zonal groups, in zone order."""
    group_urls: list[pulumi.Output[str]]
    """Each group's instance group URL (what cluster-autoscaler's ``--nodes`` names)."""
    sizes: list[tuple[int, int]]
    """Each group's (min, max) for cluster-autoscaler."""

    def __init__(self, name: str, args: NodePoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        spec, pool = args.spec, args.pool
        super().__init__(TYPE_TOKEN, name, {"pool": pool.name, "spot": pool.spot,
                                            "architecture": pool.architecture}, opts)
        if not args.zones:
            raise ValueError(f"node pool {pool.name}: no zones")
        child = pulumi.ResourceOptions(parent=self)
        size = pool.size or DEFAULT_WORKER_SIZE["gcp"]
        kms = spec.gcp.disk_kms_key
        labels = base_labels(spec, **{ROLE_LABEL: "worker", "cfcr-pool": pool.name})
        scheduling = (
            compute.InstanceTemplateSchedulingArgs(provisioning_model="SPOT", preemptible=True, automatic_restart=False,
                                                   on_host_maintenance="TERMINATE", instance_termination_action="DELETE")
            if pool.spot else
            compute.InstanceTemplateSchedulingArgs(provisioning_model="STANDARD", automatic_restart=True,
                                                   on_host_maintenance="MIGRATE")
        )
        self.template = compute.InstanceTemplate(
            name,
            name_prefix=f"{name[:36].rstrip('-')}-",
            project=args.project,
            description=f"cfcr {spec.name} pool {pool.name}",
            machine_type=size,
            disks=[compute.InstanceTemplateDiskArgs(
                boot=True, auto_delete=True, source_image=args.image, disk_size_gb=pool.root_disk_gb,
                disk_type=BOOT_DISK_TYPE, labels=labels,
                disk_encryption_key=compute.InstanceTemplateDiskDiskEncryptionKeyArgs(kms_key_self_link=kms)
                if kms else None,
            )],
            network_interfaces=[compute.InstanceTemplateNetworkInterfaceArgs(subnetwork=args.subnetwork)],
            service_account=compute.InstanceTemplateServiceAccountArgs(email=args.service_account, scopes=SCOPES),
            shielded_instance_config=compute.InstanceTemplateShieldedInstanceConfigArgs(
                enable_secure_boot=True, enable_vtpm=True, enable_integrity_monitoring=True),
            metadata=args.user_data.apply(lambda raw: hardened_metadata(raw.decode(), {"kube-env": kube_env(spec, pool)})),
            scheduling=scheduling,
            labels=labels,
            tags=[node_tag(str(spec.name))],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        protocol, port, path = node_health_port(spec)
        self.health_check = compute.HealthCheck(
            f"{name}-health",
            name=resource_name(f"{name}-health"),
            project=args.project,
            description=f"cfcr {spec.name} pool {pool.name}: node health (autohealing)",
            check_interval_sec=10,
            timeout_sec=5,
            healthy_threshold=2,
            unhealthy_threshold=6,
            http_health_check=compute.HealthCheckHttpHealthCheckArgs(port=port, request_path=path)
            if protocol == "HTTP" else None,
            tcp_health_check=compute.HealthCheckTcpHealthCheckArgs(port=port) if protocol == "TCP" else None,
            opts=child,
        )
        count = len(args.zones)
        mins = split(pool.min_size, count)
        maxes = split(pool.max_size, count, at_least=1)
        desired = split(pool.desired_size if pool.desired_size is not None else pool.min_size, count)
        self.sizes = list(zip(mins, maxes))
        self.groups = []
        for k, zone in enumerate(args.zones):
            group_name = resource_name(f"{name}-z{k}")
            self.groups.append(compute.InstanceGroupManager(
                f"{name}-z{k}",
                name=group_name,
                base_instance_name=resource_name(f"{name}-z{k}")[:54].rstrip("-"),
                project=args.project,
                zone=zone,
                description=f"cfcr {spec.name} pool {pool.name}",
                versions=[compute.InstanceGroupManagerVersionArgs(instance_template=self.template.self_link_unique,
                                                                  name="current")],
                target_size=desired[k],
                auto_healing_policies=compute.InstanceGroupManagerAutoHealingPoliciesArgs(
                    health_check=self.health_check.id, initial_delay_sec=HEAL_DELAY_SECONDS),
                update_policy=compute.InstanceGroupManagerUpdatePolicyArgs(
                    type="PROACTIVE", minimal_action="REPLACE", most_disruptive_allowed_action="REPLACE",
                    max_surge_fixed=1, max_unavailable_fixed=0, replacement_method="SUBSTITUTE",
                ),
                instance_lifecycle_policy=compute.InstanceGroupManagerInstanceLifecyclePolicyArgs(
                    default_action_on_failure="REPAIR", force_update_on_repair="YES"),
                wait_for_instances=False,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on),
                                            # cluster-autoscaler owns the size once the pool exists
                                            ignore_changes=["targetSize"]),
            ))
        self.group_urls = [g.instance_group for g in self.groups]
        self.register_outputs({"groupUrls": self.group_urls, "templateId": self.template.self_link_unique})
