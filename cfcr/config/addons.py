"""The ``cfcr:addons`` key: which optional addons run, and how the built-in ones behave.

Every field has a default, so a stack that says nothing about addons gets the full set:
CNI, kube-proxy, CoreDNS, metrics-server, the cloud's CCM and CSI driver, the autoscaler,
the kubelet serving-CSR approver, Pod Security defaults; logging and VPA stay off.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from cfcr.addon_registry import CHART_KEYS
from cfcr.config.values import DnsLabel, Model

__all__ = ["CHART_KEYS", "AddonsConfig", "LoggingConfig", "Persona", "PodSecurityConfig", "PodSecurityLevel"]

PodSecurityLevel = Literal["privileged", "baseline", "restricted"]
Persona = Literal["cluster-admin", "platform-operator", "viewer"]

_QUANTITY = re.compile(r"^[1-9][0-9]*(Ki|Mi|Gi)$")


class PodSecurityConfig(Model):
    """Cluster-wide Pod Security Admission defaults (namespaces may still label their own)."""

    enforce: PodSecurityLevel = Field("baseline", description="Level enforced in every namespace without its own label.")
    warn: PodSecurityLevel = Field("restricted", description="Level whose violations are returned to clients as warnings.")
    audit: PodSecurityLevel = Field("restricted", description="Level whose violations are recorded in the audit log.")
    version: str = Field("latest", description="Policy version the levels refer to: `latest` or `v1.NN`.")
    exempt_namespaces: list[DnsLabel] = Field(
        default_factory=lambda: ["kube-system"],
        description="Namespaces exempt from every level (system components that need host access).",
    )

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value != "latest" and not re.fullmatch(r"v1\.[0-9]{1,2}", value):
            raise ValueError("must be `latest` or a Kubernetes minor like v1.36")
        return value


class LoggingConfig(Model):
    """Node log shipping with a fluent-bit DaemonSet."""

    enabled: bool = Field(False, description="Run fluent-bit on every node to ship container logs.")
    output: dict[str, str] = Field(
        default_factory=lambda: {"Name": "stdout", "Match": "*"},
        description="The fluent-bit [OUTPUT] section as key/value pairs, e.g. `{Name: es, Match: '*', Host: ...}`.",
    )

    @field_validator("output")
    @classmethod
    def _output(cls, value: dict[str, str]) -> dict[str, str]:
        if not value.get("Name"):
            raise ValueError("needs a `Name` (the fluent-bit output plugin, e.g. es, loki, cloudwatch_logs, stdout)")
        return value


class AddonsConfig(Model):
    """The Kubernetes addons cfcr installs once the API answers."""

    metrics_server: bool = Field(True, description="Run metrics-server (the resource metrics API that HPA and `kubectl top` use).")
    autoscaler: bool = Field(True, description="Run cluster-autoscaler, wired to the node pools' minSize and maxSize.")
    vpa: bool = Field(False, description="Run the Vertical Pod Autoscaler.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Container log shipping (fluent-bit).")
    container_log_max_size: str = Field(
        "10Mi", description="Rotate a container's log file at this size (kubelet containerLogMaxSize), e.g. 10Mi."
    )
    container_log_max_files: int = Field(5, ge=2, le=100, description="Rotated log files kept per container (kubelet containerLogMaxFiles).")
    pod_security: PodSecurityConfig = Field(default_factory=PodSecurityConfig, description="Pod Security Admission defaults.")
    rbac_groups: dict[str, Persona] = Field(
        default_factory=dict,
        description="RBAC group (a pki.users group) -> persona: cluster-admin, platform-operator or viewer.",
    )
    rewrite_images: bool = Field(
        True, description="When registryMirrors names a mirror, also point every image cfcr deploys at the first mirror."
    )
    node_name_pattern: str | None = Field(
        None, description="Regex node names must match for their kubelet serving CSR to be approved; default per cloud."
    )
    gate_timeout_minutes: int = Field(15, ge=1, le=120, description="How long the addons wait for the API server to answer.")
    extra_values: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=f"Helm values merged over cfcr's, per chart (keys: {', '.join(CHART_KEYS)}).",
    )

    @field_validator("container_log_max_size")
    @classmethod
    def _size(cls, value: str) -> str:
        if not _QUANTITY.match(value):
            raise ValueError("must be a size like 10Mi, 512Ki or 1Gi")
        return value

    @field_validator("node_name_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"must be a regular expression ({exc})") from None
        return value

    @field_validator("extra_values")
    @classmethod
    def _charts(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = sorted(set(value) - set(CHART_KEYS))
        if unknown:
            raise ValueError(f"unknown chart {', '.join(unknown)}; allowed: {', '.join(CHART_KEYS)}")
        return value

