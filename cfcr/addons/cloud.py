"""The cloud's integrations: the out-of-tree cloud controller manager, the block-storage CSI
driver and a default StorageClass, selected from the channel's data per cloud.

What differs between clouds is not here: each cloud package supplies a
:class:`CloudAddonProfile` (its contract, :mod:`cfcr.clouds`) with the CCM's provider name,
the CSI provisioner, its chart values and transforms, the StorageClass parameters, the cloud
config's format and the autoscaler's values. This module builds the objects from it.

* CCM: authored here (ServiceAccount, RBAC, the cloud config Secret, a DaemonSet on the
  control-plane nodes with host networking, so it reaches the instance metadata for its
  credentials) for every cloud, because the channel confirms images but not chart
  versions. ``spec.cloud_config`` reaches it untouched: rendered as INI sections
  (``{Global: {Zone: x}}`` -> ``[Global]\\nZone = x``) or as JSON, as the profile says.
  The profile may add flags (GCP: the controllers cfcr runs) and cloud config defaults that
  fill only the keys the user's config leaves out (GCP: ``multizone``; Azure: the whole
  ``azure.json`` from the cluster's resource names, some of them Pulumi Outputs, which the
  Secret's text waits for). A cloud may add node-side objects of its provider (Azure's
  cloud-node-manager DaemonSet).
* CSI: the cloud's driver chart from the channel, with the profile's values and transforms
  (AWS's EBS controller goes onto the host network by a transform: :mod:`cfcr.aws.addon_profile`),
  or, for a driver without a chart, the objects the profile authors (GCP's PD driver:
  :mod:`cfcr.gcp.pd_csi`). A cloud with neither gets only its StorageClass, and a warning.
* StorageClass: the default class, encrypted (the profile's parameters, and those the spec
  adds: GCP's customer-managed key), bound when the first consumer is scheduled, so volumes
  land in the pod's zone.
* Instance metadata, under Cilium: where the profile names the metadata addresses, a
  CiliumClusterwideNetworkPolicy denies every pod's egress to them on the metadata ports
  (the node's iptables guard does not see traffic Cilium routes in BPF), without putting any
  pod into default-deny; host-network pods (the controllers above) are not Cilium endpoints
  and keep their access.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi

from cfcr.addons.base import (
    CONTROL_PLANE_LABEL,
    CONTROL_PLANE_TOLERATIONS,
    UNINITIALIZED_TOLERATION,
    Addon,
    ChartSpec,
    cluster_role_binding,
    meta,
    sa_subject,
    service_account,
)
from cfcr.addons.images import ImageRewriter
from cfcr.channels import CloudComponent, Release
from cfcr.config import ClusterSpec
from cfcr.config.schema import Cloud

NAMESPACE = "kube-system"
CLOUD_CONFIG_DIR = "/etc/kubernetes/cloud-config"
CCM_NAME = "cloud-controller-manager"
HOST_NETWORK_DNS_POLICY = "Default"
"""DNS of the host-network controllers: the node's resolver. They reach the API server by
the in-cluster service address (an IP, from the environment) and AWS by public names, so
they need no cluster DNS and must not wait on CoreDNS (which itself waits on the CCM)."""


def host_network_pod_spec(pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``pod_spec`` on the host network with the node's resolver: what a
    controller needs to reach instance credentials under an IMDSv2 hop limit of 1."""
    return {**copy.deepcopy(dict(pod_spec)), "hostNetwork": True, "dnsPolicy": HOST_NETWORK_DNS_POLICY}


def is_controller(props: Mapping[str, Any], name: str) -> bool:
    """True for a chart's controller ``name``: by its object name, or by the ``app`` or
    ``k8s-app`` label of its pod template (when a release renames the object)."""
    if (props.get("metadata") or {}).get("name") == name:
        return True
    labels = (((props.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    return name in (labels.get("app"), labels.get("k8s-app"))


def host_network_transform(deployment: str) -> pulumi.ResourceTransform:
    """A Pulumi transform putting a chart's controller Deployment ``deployment`` on the host
    network with the node's resolver, for charts that have no value for it; every other
    object passes untouched."""

    def transform(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
        if args.type_ != "kubernetes:apps/v1:Deployment" or not is_controller(args.props, deployment):
            return None
        props: dict[str, Any] = copy.deepcopy(dict(args.props))
        template = props.setdefault("spec", {}).setdefault("template", {})
        template["spec"] = host_network_pod_spec(template.get("spec") or {})
        return pulumi.ResourceTransformResult(props=props, opts=args.opts)

    return transform



CsiValues = Callable[["CloudFacts", ImageRewriter, str, str, int], dict[str, Any]]
"""(facts, rewriter, image repository, image tag, control-plane count) -> the CSI chart's values."""
CsiObjects = Callable[["CloudFacts", CloudComponent, ImageRewriter, int], list[dict[str, Any]]]
"""(facts, the channel's CSI pin, rewriter, control-plane count) -> the CSI driver's objects."""
CcmNodeObjects = Callable[["CloudFacts", CloudComponent, ImageRewriter], list[dict[str, Any]]]
"""(facts, the channel's CCM pin, rewriter) -> the provider's objects on every node."""


@dataclass(frozen=True)
class CloudAddonProfile:
    """What the addons need to know about one cloud. Each cloud package supplies one
    (``cfcr/<cloud>/addon_profile.py``, named by its contract in :mod:`cfcr.clouds`)."""

    ccm_provider: str
    """The cloud controller manager's ``--cloud-provider``."""
    csi_provisioner: str
    """The CSI driver's name: the default StorageClass's provisioner."""
    storage_parameters: Mapping[str, str]
    """Parameters of the default StorageClass (encrypted disks)."""
    cloud_config_format: Literal["ini", "json"]
    """How ``spec.cloud_config`` is written for the CCM: INI sections or JSON."""
    node_name_pattern: str
    """The Node names the cloud's machines register with: the kubelet serving CSRs the approver
    signs must match it (``addons.nodeNamePattern`` overrides it)."""
    node_names_resolve: bool = True
    """Whether a Node's name resolves to its address from a pod on any node (the serving-CSR
    approver checks that, ``bypassDnsResolution``). False on GCP: the Node name is the bare
    instance name, which a pod resolves only through its own node's zone search domain in a
    project with zonal DNS; the approver then checks the name's prefix, the provider regex and
    the node network only."""
    csi_values: CsiValues | None = None
    """The CSI chart's values; None when the channel has no chart for the cloud's driver."""
    csi_transforms: Callable[[], list[pulumi.ResourceTransform]] = list
    """Transforms on the CSI chart's objects (for what its values cannot set)."""
    autoscaler_values: Callable[["CloudFacts"], dict[str, Any]] | None = None
    """cluster-autoscaler's cloud values (provider, region); None: the autoscaler is not wired
    for this cloud yet."""
    termination_handler: bool = False
    """Whether aws-node-termination-handler applies (given a termination queue)."""
    ccm_args: tuple[str, ...] = ()
    """Flags the CCM gets besides cfcr's common ones."""
    cloud_config_defaults: Mapping[str, Any] = field(default_factory=dict)
    """Written for the CCM where ``spec.cloud_config`` leaves them out: INI sections of keys, or
    (JSON) top-level keys; names compared case-insensitively, the user's values always win."""
    cloud_config_defaults_of: Callable[[CloudFacts], Mapping[str, Any]] | None = None
    """Defaults like :attr:`cloud_config_defaults` that depend on the cluster (its name, its
    resources' names, which may be Pulumi Outputs), over them."""
    ccm_node_objects: CcmNodeObjects | None = None
    """The provider's node-side objects (Azure: cloud-node-manager on every node), or None."""
    ccm_configmaps: tuple[str, ...] = ()
    """ConfigMaps of ``kube-system`` the CCM creates and keeps (GCP: ``ingress-uid``, its cluster
    id): a Role lets it create ConfigMaps there and change only these."""
    csi_objects: CsiObjects | None = None
    """The CSI driver's objects, authored, for a driver the channel pins without a chart."""
    storage_parameters_of: Callable[[ClusterSpec], Mapping[str, str]] | None = None
    """StorageClass parameters read from the spec (a customer-managed key), over
    :attr:`storage_parameters`."""
    autoscaler_auto_discovery: bool = True
    """cluster-autoscaler finds the groups by their tags (AWS); False: each group is named
    with ``--nodes=MIN:MAX:NAME`` (GCP's zonal MIG URLs)."""
    metadata_cidrs: tuple[str, ...] = ()
    """The instance metadata (and similar host-only) addresses pods must not reach; empty:
    no Cilium policy."""
    metadata_ports: tuple[int, ...] = ()
    """The TCP ports denied to pods at :attr:`metadata_cidrs`; other traffic (DNS, when the
    address is also the VPC's resolver) stays allowed."""
    cloud_config_key: str | None = None
    """The cloud config's key in its Secret where another component reads the Secret itself
    (Azure's Disk CSI driver reads the key ``cloud-config``); None: by the format."""

    @property
    def cloud_config_file(self) -> str:
        """The cloud config's file name in its Secret and on the CCM's disk."""
        if self.cloud_config_key:
            return self.cloud_config_key
        return "cloud.json" if self.cloud_config_format == "json" else "cloud.conf"


def addon_profile(cloud: str) -> CloudAddonProfile:
    """The :class:`CloudAddonProfile` of ``cloud``, from its package's contract."""
    from cfcr import clouds

    return clouds.package(cloud).addon_profile


@dataclass(frozen=True)
class NodeGroup:
    """A node pool as the cloud sees it: its autoscaling group and bounds."""

    name: pulumi.Input[str]
    """ASG name (AWS), MIG name (GCP) or VMSS name (Azure)."""
    min_size: int
    """Fewest nodes."""
    max_size: int
    """Most nodes."""


@dataclass(frozen=True)
class CloudFacts:
    """What the addons need to know about the cloud the cluster runs in."""

    cloud: Cloud
    """aws, gcp or azure."""
    region: str
    """The region (the EBS controller and the autoscaler are told it explicitly)."""
    cluster_name: str
    """The cluster name (CCM ``--cluster-name``, autoscaler discovery tags)."""
    node_groups: Mapping[str, NodeGroup] = field(default_factory=dict)
    """Pool name -> its autoscaling group."""
    cloud_config: Mapping[str, Any] = field(default_factory=dict)
    """Cloud-provider config for the CCM, passed through untouched (``spec.cloud_config``)."""
    autoscaler_auto_discovery: bool = True
    """Find groups by their ``k8s.io/cluster-autoscaler/*`` tags (AWS) instead of ``--nodes``."""
    termination_queue_url: pulumi.Input[str] | None = None
    """URL of the SQS queue of node termination events (AWS); with it, aws-node-termination-handler
    drains nodes before they go. None: no handler."""
    air_gapped: bool = False
    """The network has no way to the internet (``networking.airGapped``): controllers must not
    call anything but the cloud's private endpoints (the cloud's profile says what that takes)."""
    existing_network: str | None = None
    """``networking.existingNetwork.networkId``, when the cluster uses an existing network."""
    existing_subnets: tuple[str, ...] = ()
    """``networking.existingNetwork.subnetIds`` (the nodes' subnets of an existing network)."""
    cloud_names: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Names of the cluster's cloud resources the addons pass on, as the cloud package's build
    gives them (:attr:`cfcr.clouds.AddonWiring.cloud_names`; Azure: tenant, subscription,
    resource group, virtual network, subnet, security group), some of them Pulumi Outputs."""

    @property
    def profile(self) -> CloudAddonProfile:
        """What the addons need to know about :attr:`cloud` (its package's contract)."""
        return addon_profile(self.cloud)

    @classmethod
    def from_spec(cls, spec: ClusterSpec, node_groups: Mapping[str, NodeGroup] | None = None, *,
                  termination_queue_url: pulumi.Input[str] | None = None,
                  cloud_names: Mapping[str, pulumi.Input[str]] | None = None) -> CloudFacts:
        """Facts from the spec; group names default to ``<cluster>-<pool>``."""
        assert spec.name is not None
        groups = dict(node_groups) if node_groups is not None else {
            p.name: NodeGroup(f"{spec.name}-{p.name}", p.min_size, p.max_size) for p in spec.node_pools
        }
        existing = spec.networking.existing_network
        return cls(spec.cloud, spec.region, spec.name, groups, dict(spec.cloud_config),
                   autoscaler_auto_discovery=addon_profile(spec.cloud).autoscaler_auto_discovery,
                   termination_queue_url=termination_queue_url, air_gapped=spec.networking.air_gapped,
                   existing_network=existing.network_id if existing else None,
                   existing_subnets=tuple(existing.subnet_ids) if existing else (),
                   cloud_names=dict(cloud_names or {}))


def with_defaults(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the INI ``defaults`` added where it lacks them: a section or key the
    config names (in any case) keeps the config's value; a default key of a section the config
    has goes into that section, under the config's spelling of its name."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in config.items()}
    sections = {name.lower(): name for name in out}
    for section, keys in defaults.items():
        if not isinstance(keys, Mapping):
            raise ValueError(f"INI cloud config defaults: section {section!r} is not a mapping of keys")
        name = sections.get(section.lower(), section)
        body = out.setdefault(name, {})
        if not isinstance(body, dict):
            continue  # render_cloud_config names the malformed section
        present = {key.lower() for key in body}
        for key, value in keys.items():
            if key.lower() not in present:
                body[key] = value
    return out


def with_json_defaults(config: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` (a JSON cloud config's top-level keys) with the ``defaults`` it lacks; a key
    the config names in any case keeps the config's value (cloud-provider-azure reads the file
    with Go's JSON decoding, which matches key names case-insensitively)."""
    out = dict(config)
    present = {key.lower() for key in out}
    for key, value in defaults.items():
        if key.lower() not in present:
            out[key] = value
    return out


def config_with_defaults(cloud: str, config: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with ``defaults`` where it lacks them, as the cloud config's format compares them."""
    if addon_profile(cloud).cloud_config_format == "json":
        return with_json_defaults(config, defaults)
    return with_defaults(config, defaults)


def has_outputs(value: Any) -> bool:
    """Whether ``value`` holds a Pulumi Output anywhere (in a mapping or list)."""
    if isinstance(value, pulumi.Output):
        return True
    if isinstance(value, Mapping):
        return any(has_outputs(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_outputs(v) for v in value)
    return False


def cloud_config_text(cloud: str, config: Mapping[str, Any]) -> pulumi.Input[str]:
    """The cloud config file of ``config``: text at once, or, where a value is a Pulumi Output
    (a resource's name or id), an Output of the text once every value is known."""
    if not has_outputs(config):
        return render_cloud_config(cloud, config)
    return pulumi.Output.from_input(dict(config)).apply(lambda resolved: render_cloud_config(cloud, resolved))


def render_cloud_config(cloud: str, config: Mapping[str, Any]) -> str:
    """The cloud config file: INI sections or JSON (as ``cloud``'s profile says), values as given."""
    if addon_profile(cloud).cloud_config_format == "json":
        return json.dumps(dict(config), indent=2, sort_keys=True) + "\n"
    lines: list[str] = []
    for section, body in config.items():
        if not isinstance(body, Mapping):
            raise ValueError(f"cfcr:cloudConfig.{section}: {cloud} cloud config is INI: give sections of key/value pairs")
        lines.append(f"[{section}]")
        for key, value in body.items():
            values = value if isinstance(value, list) else [value]
            for item in values:
                text = ("true" if item else "false") if isinstance(item, bool) else str(item)
                lines.append(f"{key} = {text}")
        lines.append("")
    return "\n".join(lines)


CCM_RULES: list[dict[str, Any]] = [
    # no serviceaccounts or serviceaccounts/token: the CCM runs with
    # --use-service-account-credentials=false, and a token-minting right in a role whose pods
    # run on control-plane nodes would let a stolen node identity mint any service account's token
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["*"]},
    {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["list", "patch", "update", "watch"]},
    {"apiGroups": [""], "resources": ["services/status"], "verbs": ["list", "patch", "update", "watch"]},
    {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get", "list", "update", "watch"]},
    {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["create", "get", "list", "watch", "update"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "get", "list", "watch", "update"]},
]


def ccm_objects(facts: CloudFacts, release: Release, rewriter: ImageRewriter) -> list[dict[str, Any]]:
    """The cloud controller manager, authored (pure). Its Secret carries the cloud config."""
    pin = release.cloud(facts.cloud).ccm
    profile = facts.profile
    labels = {"k8s-app": CCM_NAME}
    args = [
        f"--cloud-provider={profile.ccm_provider}",
        f"--cluster-name={facts.cluster_name}",
        "--leader-elect=true",
        "--use-service-account-credentials=false",
        "--configure-cloud-routes=false",
        *profile.ccm_args,
        "--v=2",
    ]
    cloud_config = config_with_defaults(facts.cloud, facts.cloud_config, profile.cloud_config_defaults)
    if profile.cloud_config_defaults_of is not None:
        cloud_config = config_with_defaults(facts.cloud, cloud_config, profile.cloud_config_defaults_of(facts))
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = [
        service_account(CCM_NAME, NAMESPACE),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": meta("system:cloud-controller-manager"), "rules": CCM_RULES},
        cluster_role_binding("system:cloud-controller-manager", "system:cloud-controller-manager",
                             [sa_subject(CCM_NAME, NAMESPACE)]),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": meta("cloud-controller-manager:apiserver-authentication-reader", NAMESPACE),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "extension-apiserver-authentication-reader"},
         "subjects": [sa_subject(CCM_NAME, NAMESPACE)]},
    ]
    if profile.ccm_configmaps:
        objects += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": meta("cloud-controller-manager:configmaps", NAMESPACE),
             "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
                       {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "update", "patch"],
                        "resourceNames": list(profile.ccm_configmaps)}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": meta("cloud-controller-manager:configmaps", NAMESPACE),
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                         "name": "cloud-controller-manager:configmaps"},
             "subjects": [sa_subject(CCM_NAME, NAMESPACE)]},
        ]
    if cloud_config:
        name = profile.cloud_config_file
        objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta("cloud-config", NAMESPACE),
                        "type": "Opaque", "stringData": {name: cloud_config_text(facts.cloud, cloud_config)}})
        args.append(f"--cloud-config={CLOUD_CONFIG_DIR}/{name}")
        volumes.append({"name": "cloud-config", "secret": {"secretName": "cloud-config"}})
        mounts.append({"name": "cloud-config", "mountPath": CLOUD_CONFIG_DIR, "readOnly": True})
    objects.append({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta(CCM_NAME, NAMESPACE, labels),
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": CCM_NAME,
                    "hostNetwork": True,
                    "nodeSelector": {CONTROL_PLANE_LABEL: ""},
                    "tolerations": [*CONTROL_PLANE_TOLERATIONS, UNINITIALIZED_TOLERATION,
                                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{
                        "name": CCM_NAME,
                        "image": rewriter.image(pin.image),
                        "args": args,
                        "resources": {"requests": {"cpu": "200m", "memory": "100Mi"}},
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    })
    return objects


def ccm_node_objects(facts: CloudFacts, release: Release, rewriter: ImageRewriter) -> list[dict[str, Any]]:
    """The provider's node-side objects its profile authors (Azure's cloud-node-manager), or []."""
    build = facts.profile.ccm_node_objects
    if build is None:
        return []
    return build(facts, release.cloud(facts.cloud).ccm, rewriter)


def storage_class(cloud: str, spec: ClusterSpec | None = None) -> dict[str, Any]:
    """The default StorageClass of the cloud's CSI driver, with the parameters ``spec`` adds
    (the profile's :attr:`~CloudAddonProfile.storage_parameters_of`)."""
    profile = addon_profile(cloud)
    parameters = dict(profile.storage_parameters)
    if spec is not None and profile.storage_parameters_of is not None:
        parameters.update(profile.storage_parameters_of(spec))
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": meta("cfcr-default", annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
        "provisioner": profile.csi_provisioner,
        "parameters": parameters,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
    }


def csi_chart(facts: CloudFacts, release: Release, rewriter: ImageRewriter,
              extra: Mapping[str, Any] | None = None, *, control_plane_count: int = 2,
              ) -> ChartSpec | None:
    """The CSI driver chart of the cloud with its profile's values, or None when the channel
    has none (GCP)."""
    pin = release.cloud(facts.cloud).csi
    if pin.chart is None:
        return None
    build_values = facts.profile.csi_values
    if build_values is None:
        raise ValueError(f"the channel pins a CSI chart for {facts.cloud}, and its addon profile gives no values")
    repository, _, tag = pin.image.rpartition(":")
    values = build_values(facts, rewriter, repository, tag, control_plane_count)
    if not pin.chart.version:
        raise ValueError(f"the channel pins no chart version for {facts.cloud}'s CSI driver")
    chart = ChartSpec(pin.chart.chart, pin.chart.repo, pin.chart.chart, pin.chart.version, NAMESPACE, values,
                      pin.source).mirrored(rewriter)
    return chart.with_values(dict(extra or {}))


def csi_objects(facts: CloudFacts, release: Release, rewriter: ImageRewriter, *,
                control_plane_count: int = 2) -> list[dict[str, Any]]:
    """The CSI driver's objects the cloud's profile authors (a driver without a chart), or []."""
    build = facts.profile.csi_objects
    if build is None:
        return []
    return build(facts, release.cloud(facts.cloud).csi, rewriter, control_plane_count)


METADATA_POLICY = "cfcr-deny-instance-metadata"
"""The CiliumClusterwideNetworkPolicy keeping pods away from the instance metadata."""


def metadata_policy(spec: ClusterSpec, cloud: str) -> list[dict[str, Any]]:
    """Under Cilium, where the cloud's profile names metadata addresses: a cluster-wide policy
    denying every Cilium endpoint (every pod that is not host-network) TCP egress to them on
    the profile's ports. ``enableDefaultDeny`` is off in both directions, so selecting every
    endpoint allows everything else (Cilium's default would put them all into default-deny for
    egress). Empty otherwise (other CNIs: the node's iptables guard sees their traffic)."""
    profile = addon_profile(cloud)
    if spec.cni != "cilium" or not profile.metadata_cidrs:
        return []
    ports = [{"port": str(port), "protocol": "TCP"} for port in profile.metadata_ports]
    rule: dict[str, Any] = {"toCIDR": list(profile.metadata_cidrs)}
    if ports:
        rule["toPorts"] = [{"ports": ports}]
    return [{
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": meta(METADATA_POLICY),
        "spec": {
            "description": "cfcr: pods (not host-network) do not reach the instance metadata and its credentials",
            "endpointSelector": {},
            "enableDefaultDeny": {"egress": False, "ingress": False},
            "egressDeny": [rule],
        },
    }]


def csi_transforms(cloud: str) -> list[pulumi.ResourceTransform]:
    """Transforms on the cloud's CSI chart (its profile's)."""
    return addon_profile(cloud).csi_transforms()


@dataclass
class CloudIntegrationArgs:
    """Inputs of :class:`CloudIntegration`."""

    spec: ClusterSpec
    """The cluster spec (mirrors, extra values)."""
    facts: CloudFacts
    """Region, cluster name, cloud config."""
    release: Release | None = None
    """The channel release; default: the spec's."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What every object waits for (the readiness gate, the CNI)."""


class CloudIntegration(Addon):
    """CCM (and its node-side part, where the cloud has one) + CSI driver + default
    StorageClass (``cfcr:addons:CloudIntegration``)."""

    def __init__(self, name: str, args: CloudIntegrationArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cfcr:addons:CloudIntegration", name, opts, args.depends_on)
        from cfcr import channels

        spec = args.spec
        release = args.release or channels.resolve(spec.kubernetes.version)
        rewriter = ImageRewriter.for_spec(spec)
        ccm = self.apply(ccm_objects(args.facts, release, rewriter))
        self.apply(ccm_node_objects(args.facts, release, rewriter))
        chart = csi_chart(args.facts, release, rewriter, spec.addons.extra_values.get("csi"),
                          control_plane_count=spec.control_plane.count)
        authored = csi_objects(args.facts, release, rewriter, control_plane_count=spec.control_plane.count)
        if chart is not None:
            self.chart(chart, ccm, csi_transforms(args.facts.cloud))
        elif authored:
            self.apply(authored, ccm)
        else:
            pulumi.log.warn(f"cfcr: no CSI driver for {args.facts.cloud} in the channel; only the StorageClass "
                            "is created (see docs/addons.md#cloud)", self)
        self.apply([storage_class(args.facts.cloud, spec)])
        self.apply(metadata_policy(spec, args.facts.cloud))
        self.register_outputs({})


_MOVED_TO_AWS = frozenset({"EBS_SLOTS", "EBS_CONTROLLER", "EBS_CONTROLLER_MAX_REPLICAS", "ebs_controller_transform"})


def __getattr__(name: str) -> object:
    """Deprecated names: the EBS driver's settings moved to :mod:`cfcr.aws.addon_profile`."""
    if name in _MOVED_TO_AWS:
        import importlib
        import warnings

        warnings.warn(f"cfcr.addons.cloud.{name} moved to cfcr.aws.addon_profile.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module("cfcr.aws.addon_profile"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
