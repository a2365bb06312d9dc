"""``NodePool``: one virtual machine scale set (Uniform orchestration) per worker pool, spread
over the pool's zones.

- **Healing**: the Application Health extension (``ApplicationHealthLinux``) asks each
  instance, from inside it, whether its node works: kube-proxy's ``/livez`` on 10256 (not
  ``/healthz``, which fails on purpose while a node is being drained or deleted, KEP-3836), or,
  under Cilium's kube-proxy replacement, a TCP check of the kubelet's port (as the GCP pools'
  autohealing check). **Automatic repairs** replace an instance that stays unhealthy after a
  15-minute grace period (the anchors' ``PT15M``; downloads retry for about 5 minutes, kubeadm
  join follows).
- **Rolling**: a change of the model (custom data, image, size) rolls the instances in batches
  of 20 %, unhealthy ones first, with new instances surged in before old ones go (``maxSurge``:
  no capacity lost), across zones; a batch whose instances do not come back healthy stops the
  upgrade (20 % unhealthy at most).
- **Drain**: Azure raises a *Terminate* scheduled event 5 minutes before it deletes an instance
  (``terminateNotificationProfile``); nothing on the node consumes it yet, so a rolling upgrade
  or a repair deletes an instance undrained (docs/azure.md, *Limits*); cluster-autoscaler drains
  a node itself before it scales it down.
- **Spot**: priority ``Spot``, evicted instances deleted (the scale set then recreates them
  when capacity returns, ``spotRestorePolicy``), paying at most the on-demand price.
- **cluster-autoscaler**: the tags it discovers scale sets by (``k8s.io_cluster-autoscaler_enabled``,
  ``k8s.io_cluster-autoscaler_<cluster>``), the pool's ``min``/``max``, and its node template
  (``k8s.io_cluster-autoscaler_node-template_label_*`` and ``_taint_*``) to scale up from zero;
  Pulumi leaves the capacity to the autoscaler once the scale set exists.
- Labels and taints reach the kubelets through the pool's user-data (``ClusterBootstrap``); the
  instances' computer names (``<pool scale set>`` + six characters) are their Node names.
- ``overprovision`` off (extra instances would boot, join and be deleted) and
  ``singlePlacementGroup`` off (more than 100 instances, and zones).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import compute

from cfcr.azure.control_plane import ADMIN_USER, DISK_SKU, custom_data, linux_configuration, trusted_launch
from cfcr.azure.image import image_reference
from cfcr.azure.names import resource_name
from cfcr.azure.tags import POOL_TAG, ROLE_TAG, base_tags, tag_name
from cfcr.config import DEFAULT_WORKER_SIZE, ClusterSpec, NodePoolConfig
from cfcr.constants import KUBELET_PORT
from cfcr.names import fit_name
from cfcr.node.kubelet import node_labels as pool_node_labels

TYPE_TOKEN = "cfcr:azure:NodePool"
KUBE_PROXY_HEALTH_PORT = 10256
REPAIR_GRACE = "PT15M"
"""How long a new or updated instance has before automatic repairs judge it."""
BATCH_PERCENT = 20
TERMINATE_NOTICE = "PT5M"
HEALTH_EXTENSION = "ApplicationHealthLinux"
HEALTH_PUBLISHER = "Microsoft.ManagedServices"
HEALTH_VERSION = "1.0"
"""The extension's handler version: binary health states (HTTP 200, or a TCP connect, is
Healthy). Version 2's rich health states want a JSON body (``ApplicationHealthState``) that
kube-proxy's ``/livez`` does not give: every instance would be Unknown, and repaired again and
again."""
AUTOSCALER_PREFIX = "k8s.io_cluster-autoscaler_"
COMPUTER_NAME_PREFIX_MAX = 57
"""A Uniform scale set adds six characters to the prefix: the Node name stays a DNS label (63)."""


def node_health(spec: ClusterSpec) -> dict[str, object]:
    """The Application Health extension's settings (module docstring)."""
    if spec.cni == "cilium" and spec.cilium_kube_proxy_replacement:
        probe: dict[str, object] = {"protocol": "tcp", "port": KUBELET_PORT}
    else:
        probe = {"protocol": "http", "port": KUBE_PROXY_HEALTH_PORT, "requestPath": "/livez"}
    return {**probe, "intervalInSeconds": 10, "numberOfProbes": 3}


def autoscaler_tags(cluster: str, pool: NodePoolConfig) -> dict[str, str]:
    """The tags cluster-autoscaler's Azure provider reads: discovery, bounds, and the node
    template of a pool scaled from zero (a label or taint key's ``/`` as ``_``, as tag names
    cannot hold ``/``; the provider turns it back)."""
    tags = {f"{AUTOSCALER_PREFIX}enabled": "true", f"{AUTOSCALER_PREFIX}{cluster}": "owned",
            "min": str(pool.min_size), "max": str(pool.max_size)}
    for key, value in sorted(pool_node_labels(pool).items()):
        tags[tag_name(f"{AUTOSCALER_PREFIX}node-template_label_{key.replace('/', '_')}")] = value
    for t in pool.taints:
        tags[tag_name(f"{AUTOSCALER_PREFIX}node-template_taint_{t.key.replace('/', '_')}")] = f"{t.value}:{t.effect}"
    return tags


@dataclass(frozen=True)
class NodePoolArgs:
    """Arguments of ``NodePool``."""

    spec: ClusterSpec
    """The validated cluster spec."""
    pool: NodePoolConfig
    """This pool's config."""
    resource_group_name: pulumi.Input[str]
    """The cluster's resource group."""
    user_data: pulumi.Output[bytes]
    """The pool's user-data (``ClusterBootstrap.user_data['worker-<pool>']``)."""
    image: pulumi.Input[str]
    """Image of the pool's architecture (a URN or an ARM id, ``cfcr.azure.image``)."""
    zones: Sequence[str]
    """The pool's availability zones (empty in a region without zones)."""
    subnet: pulumi.Input[str]
    """The workers' subnet."""
    application_security_group: pulumi.Input[str]
    """The workers' application security group."""
    identity: pulumi.Input[str]
    """The pool's user-assigned identity's ARM id."""
    machine_tags: Mapping[str, pulumi.Input[str]]
    """The node hook's tags (:meth:`cfcr.azure.identity.Identities.machine_tags`)."""
    ssh_public_key: pulumi.Input[str]
    """The cluster's state-only key (``control_plane.py``)."""
    security_group: pulumi.Input[str] | None = None
    """The network security group's id when it goes on the NICs (an existing network)."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What instances wait for: network, rules, identities, secrets, load balancer, control plane."""


class NodePool(pulumi.ComponentResource):
    """One self-repairing, rolling virtual machine scale set of one worker pool."""

    scale_set: compute.VirtualMachineScaleSet
    """The pool's scale set."""
    scale_set_name: str
    """Its name (what cluster-autoscaler's ``--nodes`` names)."""
    sizes: tuple[int, int]
    """(min, max) for cluster-autoscaler."""

    def __init__(self, name: str, args: NodePoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        spec, pool = args.spec, args.pool
        assert spec.name is not None, "load_spec names every cluster"
        super().__init__(TYPE_TOKEN, name, {"pool": pool.name, "spot": pool.spot,
                                            "architecture": pool.architecture}, opts)
        size = pool.size or DEFAULT_WORKER_SIZE["azure"]
        self.scale_set_name = resource_name(name, limit=64)
        self.sizes = (pool.min_size, pool.max_size)
        desired = pool.desired_size if pool.desired_size is not None else pool.min_size
        tags: dict[str, pulumi.Input[str]] = {
            **base_tags(spec, **{ROLE_TAG: "worker"}), POOL_TAG: pool.name,
            **autoscaler_tags(spec.name, pool), **args.machine_tags}
        self.scale_set = compute.VirtualMachineScaleSet(
            name,
            vm_scale_set_name=self.scale_set_name,
            resource_group_name=args.resource_group_name,
            location=spec.region,
            orchestration_mode="Uniform",
            sku=compute.SkuArgs(name=size, tier="Standard", capacity=desired),
            zones=list(args.zones) or None,
            overprovision=False,
            single_placement_group=False,
            do_not_run_extensions_on_overprovisioned_vms=False,
            identity=compute.VirtualMachineScaleSetIdentityArgs(type=compute.ResourceIdentityType.USER_ASSIGNED,
                                                                user_assigned_identities=[args.identity]),
            automatic_repairs_policy=compute.AutomaticRepairsPolicyArgs(enabled=True, grace_period=REPAIR_GRACE,
                                                                        repair_action="Replace"),
            upgrade_policy=compute.UpgradePolicyArgs(
                mode=compute.UpgradeMode.ROLLING,
                rolling_upgrade_policy=compute.RollingUpgradePolicyArgs(
                    max_batch_instance_percent=BATCH_PERCENT,
                    max_unhealthy_instance_percent=BATCH_PERCENT,
                    max_unhealthy_upgraded_instance_percent=BATCH_PERCENT,
                    pause_time_between_batches="PT0S",
                    prioritize_unhealthy_instances=True,
                    enable_cross_zone_upgrade=True,
                    max_surge=True,
                    rollback_failed_instances_on_policy_breach=False,
                ),
                automatic_os_upgrade_policy=compute.AutomaticOSUpgradePolicyArgs(enable_automatic_os_upgrade=False),
            ),
            scale_in_policy=compute.ScaleInPolicyArgs(rules=["Default"], force_deletion=False),
            spot_restore_policy=compute.SpotRestorePolicyArgs(enabled=True) if pool.spot else None,
            virtual_machine_profile=compute.VirtualMachineScaleSetVMProfileArgs(
                priority="Spot" if pool.spot else "Regular",
                eviction_policy="Delete" if pool.spot else None,
                billing_profile=compute.BillingProfileArgs(max_price=-1) if pool.spot else None,
                security_profile=trusted_launch(),
                os_profile=compute.VirtualMachineScaleSetOSProfileArgs(
                    computer_name_prefix=fit_name(f"{spec.name}-{pool.name}", COMPUTER_NAME_PREFIX_MAX).lower(),
                    admin_username=ADMIN_USER,
                    custom_data=args.user_data.apply(lambda raw: custom_data(raw, f"worker-{pool.name}")),
                    linux_configuration=linux_configuration(args.ssh_public_key),
                    allow_extension_operations=True,
                ),
                storage_profile=compute.VirtualMachineScaleSetStorageProfileArgs(
                    image_reference=pulumi.Output.from_input(args.image).apply(image_reference),
                    os_disk=compute.VirtualMachineScaleSetOSDiskArgs(
                        create_option="FromImage", caching=compute.CachingTypes.READ_WRITE, delete_option="Delete",
                        disk_size_gb=pool.root_disk_gb,
                        managed_disk=compute.VirtualMachineScaleSetManagedDiskParametersArgs(
                            storage_account_type=DISK_SKU)),
                ),
                network_profile=compute.VirtualMachineScaleSetNetworkProfileArgs(network_interface_configurations=[
                    compute.VirtualMachineScaleSetNetworkConfigurationArgs(
                        name="nic",
                        primary=True,
                        network_security_group=compute.SubResourceArgs(id=args.security_group)
                        if args.security_group is not None else None,
                        ip_configurations=[compute.VirtualMachineScaleSetIPConfigurationArgs(
                            name="ipconfig",
                            primary=True,
                            subnet=compute.ApiEntityReferenceArgs(id=args.subnet),
                            application_security_groups=[compute.SubResourceArgs(id=args.application_security_group)],
                        )],
                    )]),
                extension_profile=compute.VirtualMachineScaleSetExtensionProfileArgs(extensions=[
                    compute.VirtualMachineScaleSetExtensionArgs(
                        name="node-health",
                        publisher=HEALTH_PUBLISHER,
                        type=HEALTH_EXTENSION,
                        type_handler_version=HEALTH_VERSION,
                        auto_upgrade_minor_version=True,
                        settings=node_health(spec),
                    )]),
                scheduled_events_profile=compute.ScheduledEventsProfileArgs(
                    terminate_notification_profile=compute.TerminateNotificationProfileArgs(
                        enable=True, not_before_timeout=TERMINATE_NOTICE)),
                diagnostics_profile=compute.DiagnosticsProfileArgs(
                    boot_diagnostics=compute.BootDiagnosticsArgs(enabled=True)),
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on),
                                        # cluster-autoscaler owns the capacity once the pool exists
                                        ignore_changes=["sku.capacity"]),
        )
        self.register_outputs({"scaleSetName": self.scale_set_name, "scaleSetId": self.scale_set.id})
