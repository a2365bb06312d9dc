"""What every addon shares: applying authored objects and Helm charts through a provider.

An addon is a ComponentResource whose children are pulumi-kubernetes objects built from
pure functions (``*_objects``) and Helm charts (``*_chart``). The provider comes from the
addon's ``opts`` (``provider=``) and reaches every child through the parent; ``depends_on``
(normally the readiness gate) is put on every child, so nothing is applied before the API
answers.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.admissionregistration import v1 as admission_v1
from pulumi_kubernetes.apps import v1 as apps_v1
from pulumi_kubernetes.core import v1 as core_v1
from pulumi_kubernetes.helm import v4 as helm_v4
from pulumi_kubernetes.policy import v1 as policy_v1
from pulumi_kubernetes.rbac import v1 as rbac_v1
from pulumi_kubernetes.scheduling import v1 as scheduling_v1
from pulumi_kubernetes.storage import v1 as storage_v1

from cfcr.addons.pod_security import namespace_labels
from cfcr.mirrors import CHARTS_PATH
from cfcr.util import deep_merge

if TYPE_CHECKING:
    from cfcr.addons.images import ImageRewriter
    from cfcr.channels import HelmChart

KINDS: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): core_v1.Namespace,
    ("v1", "ServiceAccount"): core_v1.ServiceAccount,
    ("v1", "ConfigMap"): core_v1.ConfigMap,
    ("v1", "Secret"): core_v1.Secret,
    ("v1", "Service"): core_v1.Service,
    ("apps/v1", "Deployment"): apps_v1.Deployment,
    ("apps/v1", "DaemonSet"): apps_v1.DaemonSet,
    ("policy/v1", "PodDisruptionBudget"): policy_v1.PodDisruptionBudget,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): rbac_v1.ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): rbac_v1.ClusterRoleBinding,
    ("rbac.authorization.k8s.io/v1", "Role"): rbac_v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): rbac_v1.RoleBinding,
    ("storage.k8s.io/v1", "StorageClass"): storage_v1.StorageClass,
    ("storage.k8s.io/v1", "CSIDriver"): storage_v1.CSIDriver,
    ("scheduling.k8s.io/v1", "PriorityClass"): scheduling_v1.PriorityClass,
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"): admission_v1.ValidatingAdmissionPolicy,
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"): admission_v1.ValidatingAdmissionPolicyBinding,
    ("cilium.io/v2", "CiliumClusterwideNetworkPolicy"):
        functools.partial(k8s.apiextensions.CustomResource, api_version="cilium.io/v2",
                          kind="CiliumClusterwideNetworkPolicy"),
}
"""The object kinds cfcr authors, and the pulumi-kubernetes class of each (a custom resource:
``CustomResource`` with its kind; its CRD must exist when it is applied)."""

CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
CONTROL_PLANE_TOLERATIONS: list[dict[str, str]] = [
    {"key": CONTROL_PLANE_LABEL, "operator": "Exists", "effect": "NoSchedule"},
]
UNINITIALIZED_TOLERATION = {"key": "node.cloudprovider.kubernetes.io/uninitialized", "operator": "Exists", "effect": "NoSchedule"}
LINUX = {"kubernetes.io/os": "linux"}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _resource_name(prefix: str, obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", str(meta["name"]))
    return f"{prefix}-{name}"


@dataclass(frozen=True)
class ChartSpec:
    """A Helm release: chart coordinates, namespace and values."""

    release: str
    """Release name (and the suffix of the Pulumi resource name)."""
    repo: str
    """Helm repository URL, or ``oci://<registry>/<path>`` for a chart in an OCI registry."""
    chart: str
    """Chart name (in ``repo``)."""
    version: str
    """Chart version (always pinned)."""
    namespace: str
    """Namespace the release goes to."""
    values: dict[str, Any] = field(default_factory=dict)
    """Helm values cfcr sets (the chart's defaults cover the rest)."""
    source: str = ""
    """Where the version pin came from."""

    @property
    def oci(self) -> bool:
        """True when the chart lives in an OCI registry (``repo`` is ``oci://...``)."""
        return self.repo.startswith("oci://")

    @property
    def reference(self) -> str:
        """What Helm installs: the chart's name in its repository, or its full ``oci://`` URL."""
        return f"{self.repo.rstrip('/')}/{self.chart}" if self.oci else self.chart

    @classmethod
    def pinned(cls, release: str, pin: HelmChart, namespace: str, values: dict[str, Any],
               rewriter: ImageRewriter) -> ChartSpec:
        """The channel's pin of a chart as the cluster installs it: through the site's registry
        mirror when one is set."""
        return cls(release, pin.repo, pin.chart, pin.version, namespace, values, pin.source).mirrored(rewriter)

    def mirrored(self, rewriter: ImageRewriter) -> ChartSpec:
        """This chart as installed through the site's registry mirror (``cfcr:mirrors.registry``):
        ``oci://<prefix>/charts/<chart>`` at the same version; unchanged without one."""
        if rewriter.registry_prefix is None:
            return self
        return replace(self, repo=f"oci://{rewriter.registry_prefix}/{CHARTS_PATH}")

    def with_values(self, extra: Mapping[str, Any]) -> ChartSpec:
        """A copy with ``extra`` merged over the values (user values win)."""
        return ChartSpec(self.release, self.repo, self.chart, self.version, self.namespace,
                         deep_merge(self.values, extra), self.source)


class Addon(pulumi.ComponentResource):
    """Base of the addon components: children get ``parent=self`` and ``depends_on``."""

    def __init__(self, type_: str, name: str, opts: pulumi.ResourceOptions | None,
                 depends_on: Sequence[pulumi.Resource] = ()) -> None:
        super().__init__(type_, name, None, opts)
        self._name = name
        self._depends_on = list(depends_on)
        self.resources: list[pulumi.Resource] = []

    def child_opts(self, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=[*self._depends_on, *depends_on])

    def apply(self, objects: Sequence[Mapping[str, Any]], depends_on: Sequence[pulumi.Resource] = (),
              secret_kinds: tuple[str, ...] = ("Secret",)) -> list[pulumi.Resource]:
        """Create one pulumi-kubernetes resource per object, named ``<addon>-<object name>``.
        Namespaces are created first and the rest depend on them."""
        made: list[pulumi.Resource] = []
        namespaces = [o for o in objects if o["kind"] == "Namespace"]
        for obj in namespaces:
            made.append(self._one(obj, depends_on, secret_kinds))
        rest = [o for o in objects if o["kind"] != "Namespace"]
        for obj in rest:
            made.append(self._one(obj, [*depends_on, *made[: len(namespaces)]], secret_kinds))
        self.resources.extend(made)
        return made

    def _one(self, obj: Mapping[str, Any], depends_on: Sequence[pulumi.Resource],
             secret_kinds: tuple[str, ...]) -> pulumi.Resource:
        cls = KINDS[(obj["apiVersion"], obj["kind"])]
        kwargs: dict[str, Any] = {_snake(k): _copy(v) for k, v in obj.items() if k not in ("apiVersion", "kind")}
        if obj["kind"] in secret_kinds:
            for key in ("string_data", "data"):
                if key in kwargs:
                    kwargs[key] = pulumi.Output.secret(kwargs[key])
        resource: pulumi.Resource = cls(_resource_name(self._name, obj), **kwargs, opts=self.child_opts(depends_on))
        return resource

    def chart(self, spec: ChartSpec, depends_on: Sequence[pulumi.Resource] = (),
              transforms: Sequence[pulumi.ResourceTransform] = ()) -> helm_v4.Chart:
        """Install a pinned Helm chart (``helm.v4.Chart``) named ``<addon>-<release>``: from its
        Helm repository, or, for an OCI chart, by its ``oci://`` URL (no repository options)."""
        opts = self.child_opts(depends_on)
        if transforms:
            opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(transforms=list(transforms)))
        chart = helm_v4.Chart(
            f"{self._name}-{spec.release}",
            chart=spec.reference,
            version=spec.version,
            repository_opts=None if spec.oci else k8s.helm.v4.RepositoryOptsArgs(repo=spec.repo),
            namespace=spec.namespace,
            name=spec.release,
            values=spec.values,
            opts=opts,
        )
        self.resources.append(chart)
        return chart


def namespace(name: str, enforce: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A Namespace cfcr creates, labelled with its Pod Security level (enforce = warn = audit)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/managed-by": "cfcr",
                **namespace_labels(enforce),
                **(labels or {}),
            },
        },
    }


def _copy(value: Any) -> Any:
    """A deep copy of an object's mappings and lists; a Pulumi Output (a Secret's text that waits
    for resource names) is kept as it is (an Output cannot be copied)."""
    if isinstance(value, pulumi.Output):
        return value
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return copy.deepcopy(value)


def meta(name: str, namespace: str | None = None, labels: Mapping[str, str] | None = None,
         annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """ObjectMeta with cfcr's managed-by label."""
    out: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/managed-by": "cfcr", **(labels or {})}}
    if namespace is not None:
        out["namespace"] = namespace
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def cluster_role_binding(name: str, role: str, subjects: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """A ClusterRoleBinding of ``role`` to ``subjects``."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": meta(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [dict(s) for s in subjects],
    }


def service_account(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, namespace)}


def sa_subject(name: str, namespace: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


@dataclass
class AddonArgs:
    """The inputs the chart addons used to share; each addon now takes its own Args
    (``CsrApproverArgs``, ``MetricsServerArgs``, ``LoggingArgs``, ``VpaArgs``: the same fields),
    and this one is kept for programs written against it."""

    spec: Any
    """The cluster spec (:class:`cfcr.config.ClusterSpec`)."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What every object waits for (the readiness gate, the CNI)."""


class ChartAddon(Addon):
    """An addon made of authored objects (namespaces first) and pinned charts (``transforms``
    apply to the charts' objects)."""

    TYPE = "cfcr:addons:ChartAddon"

    def __init__(self, name: str, objects: Sequence[Mapping[str, Any]], charts: Sequence[ChartSpec],
                 opts: pulumi.ResourceOptions | None, depends_on: Sequence[pulumi.Resource],
                 transforms: Sequence[pulumi.ResourceTransform] = ()) -> None:
        super().__init__(self.TYPE, name, opts, depends_on)
        made = self.apply(objects)
        for spec in charts:
            self.chart(spec, made, transforms)
        self.register_outputs({})
