"""Node-pool policies: every pool replaces unhealthy machines itself, no pool may grow past a
configured size (ASG, managed instance group and autoscaler, VMSS and autoscale), GCP pools
are zonal groups that roll updates without losing capacity, and Azure scale sets upgrade
rolling within unhealthy limits and never overprovision."""

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
        elif not _azure_health_source(res.props):
            report("automaticRepairsPolicy is enabled but the scale set has no application health extension "
                   "(ApplicationHealthLinux/Windows) nor networkProfile.healthProbe: repairs never trigger")


AZURE_HEALTH_EXTENSIONS = frozenset({"applicationhealthlinux", "applicationhealthwindows"})
"""Extension types that report an instance's health to a scale set (Microsoft.ManagedServices)."""


def _azure_health_source(props: Mapping[str, Any]) -> bool:
    """True when a scale set's instances report health: the application health extension, or a
    load balancer health probe on the network profile (the two sources automatic repairs accept)."""
    profile = get(props, "virtualMachineProfile")
    if get(profile, "networkProfile", "healthProbe", "id"):
        return True
    return any(str(get(ext, "type") or get(ext, "properties", "type") or "").lower() in AZURE_HEALTH_EXTENSIONS
               for ext in as_list(get(profile, "extensionProfile", "extensions")))


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


def _check_vmss_upgrades(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    policy = get(res.props, "upgradePolicy")
    mode = str(get(policy, "mode") or "")
    if mode.lower() not in {"rolling", "automatic"}:
        report(f"upgradePolicy.mode is {mode or 'unset (Manual)'}: instances keep an old model until someone "
               "upgrades them; use Rolling (or Automatic)")
    rolling = get(policy, "rollingUpgradePolicy")
    if not isinstance(rolling, Mapping):
        report("upgradePolicy.rollingUpgradePolicy is not set: no limit on unhealthy instances during an upgrade")
        return
    limit = int(cfg["maxUnhealthyPercent"])
    for key in ("maxUnhealthyInstancePercent", "maxUnhealthyUpgradedInstancePercent"):
        value = as_number(rolling.get(key))
        if value is None or value > limit:
            report(f"upgradePolicy.rollingUpgradePolicy.{key} is {'unset' if value is None else fmt_number(value)}; "
                   f"set it to at most {limit}")
    if as_bool(rolling.get("prioritizeUnhealthyInstances")) is not True:
        report("upgradePolicy.rollingUpgradePolicy.prioritizeUnhealthyInstances is not true: unhealthy instances "
               "are upgraded last")


azure_scale_set_upgrades = CfcrResourcePolicy(
    "azure-scale-set-upgrades",
    "Azure scale sets upgrade Rolling (or Automatic) within explicit unhealthy-instance limits, unhealthy "
    "instances first.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[AZ_VMSS],
    clouds=("azure",),
    check=_check_vmss_upgrades,
    settings=[Setting("maxUnhealthyPercent", integer(
        "Highest maxUnhealthyInstancePercent and maxUnhealthyUpgradedInstancePercent (Azure's default is 20).",
        20, 5))],
    remediation="upgradePolicy {mode: Rolling, rollingUpgradePolicy {maxUnhealthyInstancePercent: 20, "
                "maxUnhealthyUpgradedInstancePercent: 20, prioritizeUnhealthyInstances: true}}.",
)


def _check_overprovision(res: Resource, cfg: Mapping[str, Any], report: Reporter) -> None:
    if str(res.props.get("orchestrationMode") or "Uniform").lower() == "flexible":
        return  # Flexible orchestration never overprovisions
    value = as_bool(res.props.get("overprovision"))
    if value is not False:
        report(f"overprovision is {'unset (Azure turns it on)' if value is None else 'true'}: extra VMs boot, "
               "join the cluster and are deleted again, leaving nodes behind")


azure_scale_set_no_overprovision = CfcrResourcePolicy(
    "azure-scale-set-no-overprovision",
    "Azure scale sets (Uniform orchestration) set overprovision false: every VM that boots joins the cluster.",
    enforcement=EnforcementLevel.MANDATORY,
    resource_types=[AZ_VMSS],
    clouds=("azure",),
    check=_check_overprovision,
    remediation="Set overprovision: false on the scale set.",
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
