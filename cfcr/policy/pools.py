"""Node-pool policies: every pool replaces unhealthy machines itself, no pool may grow past a
configured size (ASG, managed instance group and autoscaler, VMSS and autoscale), and GCP pools
are zonal groups that roll updates without losing capacity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel

from cfcr.policy.base import CfcrResourcePolicy, Reporter, Resource, Setting, integer, string_list
from cfcr.policy.common import as_bool, as_list, as_number, fmt_number, get
from cfcr.policy.types import (
    AWS_ASG,
    AZ_AUTOSCALE,
    AZ_VMSS,
    BOOTSTRAP,
    GCP_AUTOSCALER,
    GCP_IGM,
    GCP_REGION_AUTOSCALER,
    GCP_RIGM,
)


def _check_healing(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    if res.type == AWS_ASG:
        kind = res.props.get("healthCheckType")
        allowed = [str(k) for k in as_list(cfg["awsHealthCheckTypes"])]
        if kind not in allowed:
            report(f"healthCheckType is {kind!r}; set it explicitly to one of {', '.join(allowed)}")
        suspended = {str(p) for p in as_list(res.props.get("suspendedProcesses"))}
        for process in sorted(suspended & {"HealthCheck", "ReplaceUnhealthy", "Launch", "Terminate"}):
            report(f"suspendedProcesses suspends {process}: unhealthy instances are not replaced")
    elif res.type in (GCP_IGM, GCP_RIGM):
        policies = [p for p in as_list(res.props.get("autoHealingPolicies")) if get(p, "healthCheck")]
        if not policies:
            report("autoHealingPolicies names no health check: failed VMs are not recreated")
    elif res.type == AZ_VMSS:
        if as_bool(get(res.props, "automaticRepairsPolicy", "enabled")) is not True:
            report("automaticRepairsPolicy.enabled is not true: unhealthy instances are not repaired")


node_pools_self_heal = CfcrResourcePolicy(
    "node-pools-self-heal",
    "Every node pool replaces unhealthy machines: ASG health checks, MIG auto-healing, VMSS automatic repairs.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[AWS_ASG, GCP_IGM, GCP_RIGM, AZ_VMSS],
    clouds=("aws", "gcp", "azure"),
    check=_check_healing,
    settings=[Setting("awsHealthCheckTypes", string_list(
        "Accepted ASG healthCheckType values (set explicitly).", ["EC2", "ELB"]))],
    remediation="AWS: healthCheckType and no suspended health processes; GCP: autoHealingPolicies with a "
                "health check; Azure: automaticRepairsPolicy {enabled: true} with a health probe or extension.",
)


def _check_rollout(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    policy = res.props.get("updatePolicy")
    if not isinstance(policy, Mapping):
        report("updatePolicy is not set: the group's default takes instances down during an update")
        return
    fixed = as_number(policy.get("maxUnavailableFixed"))
    percent = as_number(policy.get("maxUnavailablePercent"))
    if fixed != 0 or (percent is not None and percent != 0):
        shown = f"{fmt_number(percent)}%" if percent is not None and percent != 0 else (
            "unset" if fixed is None else fmt_number(fixed))
        report(f"updatePolicy.maxUnavailable is {shown}: set maxUnavailableFixed 0 so an update takes no capacity")
    replacement = str(policy.get("replacementMethod") or "SUBSTITUTE").upper()
    if replacement != "SUBSTITUTE":
        report(f"updatePolicy.replacementMethod is {replacement}: only SUBSTITUTE surges new instances first")
        return
    surge_fixed = as_number(policy.get("maxSurgeFixed")) or 0
    surge_percent = as_number(policy.get("maxSurgePercent")) or 0
    if surge_fixed < 1 and surge_percent <= 0:
        report("updatePolicy surges no instance (maxSurgeFixed < 1): with nothing unavailable either, no "
               "instance can be replaced")


node_pools_roll_without_capacity_loss = CfcrResourcePolicy(
    "node-pools-roll-without-capacity-loss",
    "GCP managed instance groups roll updates by surging: maxUnavailableFixed 0, maxSurgeFixed 1 or more.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[GCP_IGM, GCP_RIGM],
    clouds=("gcp",),
    check=_check_rollout,
    remediation="updatePolicy {type: PROACTIVE, minimalAction: REPLACE, maxUnavailableFixed: 0, maxSurgeFixed: 1}.",
)


def _check_zonal(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    if res.type == GCP_RIGM:
        report("a regional managed instance group: cluster-autoscaler's GCE provider manages zonal groups only; "
               "make one InstanceGroupManager per zone")
    elif not (res.props.get("zone") or res.provider_props.get("zone")):
        report("zone is not set (neither on the group nor on its provider)")


node_pools_zonal = CfcrResourcePolicy(
    "node-pools-zonal",
    "GCP node pools are zonal managed instance groups (one per zone), the only kind cluster-autoscaler scales.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[GCP_IGM, GCP_RIGM],
    clouds=("gcp",),
    check=_check_zonal,
    remediation="Use compute.InstanceGroupManager with zone set, one per zone of the pool.",
)


def _sizes(res: Resource) -> list[tuple[str, float]]:
    props = res.props
    if res.type == BOOTSTRAP:
        return [(f"nodePools[{get(p, 'name')}].maxSize", n) for p in as_list(props.get("nodePools"))
                if (n := as_number(get(p, "maxSize"))) is not None]
    if res.type == AWS_ASG:
        paths: list[tuple[str, Any]] = [("maxSize", props.get("maxSize"))]
    elif res.type in (GCP_IGM, GCP_RIGM):
        paths = [("targetSize", props.get("targetSize"))]
    elif res.type in (GCP_AUTOSCALER, GCP_REGION_AUTOSCALER):
        paths = [("autoscalingPolicy.maxReplicas", get(props, "autoscalingPolicy", "maxReplicas"))]
    elif res.type == AZ_VMSS:
        paths = [("sku.capacity", get(props, "sku", "capacity"))]
    else:
        paths = [(f"profiles[{i}].capacity.maximum", get(p, "capacity", "maximum"))
                 for i, p in enumerate(as_list(props.get("profiles")))]
    return [(path, n) for path, value in paths if (n := as_number(value)) is not None]


def _check_size(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    limit = int(cfg["maxPoolSize"])
    for path, size in _sizes(res):
        if size > limit:
            report(f"{path} is {fmt_number(size)}, above the limit of {limit} nodes per pool")


node_pool_max_size = CfcrResourcePolicy(
    "node-pool-max-size",
    "No node pool may grow past the configured number of machines.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[BOOTSTRAP, AWS_ASG, GCP_IGM, GCP_RIGM, GCP_AUTOSCALER, GCP_REGION_AUTOSCALER, AZ_VMSS,
                    *AZ_AUTOSCALE],
    clouds=("aws", "gcp", "azure"),
    check=_check_size,
    settings=[Setting("maxPoolSize", integer("Most machines one node pool may have.", 100, 1))],
    remediation="Lower the pool's maxSize (cfcr:nodePools[].maxSize) or raise this policy's maxPoolSize.",
)
