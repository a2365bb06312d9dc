"""The pod network: flannel, canal, calico, cilium, or none; pinned by the channel.

Every overlay is VXLAN on each project's own default port, written out explicitly so the
render shows it: UDP 8472 (the Linux kernel's) for flannel, canal and Cilium, UDP 4789 (the
IANA port) for Calico. The ports come from :mod:`cfcr.cni_ports`, which every cloud's firewall
also reads; tests/test_cni_ports.py holds the rendered security groups against the ports the
rendered chart values configure.

* **flannel**: the flannel chart, VXLAN backend, the spec's pod network.
* **canal**: flannel for the network with Calico's policy engine, from the manifest Calico
  publishes for the channel's Calico version (there is no canal chart); cfcr patches its
  ``canal-config`` (pod network, VXLAN port) with server-side apply.
* **calico**: the tigera-operator chart with an ``Installation``: Calico CNI and IPAM, VXLAN
  encapsulation, BGP off, one IPv4 pool = the spec's pod network.
* **cilium**: the cilium chart, VXLAN tunnel, Kubernetes IPAM (each node's podCIDR), API
  reached directly at the load balancer (``k8sServiceHost``/``k8sServicePort``) so it
  starts before any Service works; with ``ciliumKubeProxyReplacement`` it replaces
  kube-proxy (which cfcr then leaves out). The ports other nodes reach are spelled out in
  the values, at the chart's and agent's own defaults: the cluster health port
  (``clusterHealthPort`` 4240, probed with ICMP echo too, ``healthChecking``) and Hubble's
  server (``hubble.listenAddress`` ``:4244``, which Hubble Relay dials on every node).
* **none**: nothing; bring your own.

The CNI of a running cluster cannot be swapped by a ``pulumi up``: :class:`CniLock`
remembers the CNI the cluster was built with and refuses a change, pointing at
``docs/addons.md#changing-the-cni``.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult
from pulumi_kubernetes.core import v1 as core_v1
from pulumi_kubernetes.yaml import v2 as yaml_v2

from cfcr.addon_registry import kube_proxy_replaced
from cfcr.addons.base import Addon, ChartSpec, namespace
from cfcr.addons.images import ImageRewriter, ImageSlot, rewrite_pod_images, slot_values
from cfcr.channels import Release
from cfcr.cni_ports import CILIUM_HEALTH_PORT, HUBBLE_PORT, VXLAN_PORTS
from cfcr.config import ClusterSpec
from cfcr.constants import API_PORT
from cfcr.mirrors import Mirrors
from cfcr.util import deep_merge

CHANGING_THE_CNI = "docs/addons.md#changing-the-cni"


def api_host(api_server_url: str) -> str:
    """The host part of ``https://host:port``."""
    host = urlsplit(api_server_url).hostname
    if not host:
        raise ValueError(f"not a URL with a host: {api_server_url!r}")
    return host


def _image_parts(image: str) -> tuple[str, str]:
    repository, _, tag = image.rpartition(":")
    return repository, tag


FLANNEL_SLOTS = (
    ImageSlot(("flannel", "flannel_cni", "image", "repository"), "ghcr.io/flannel-io/flannel-cni-plugin"),
)
CILIUM_SLOTS = (
    ImageSlot(("image", "repository"), "quay.io/cilium/cilium"),
    ImageSlot(("operator", "image", "repository"), "quay.io/cilium/operator"),
    ImageSlot(("envoy", "image", "repository"), "quay.io/cilium/cilium-envoy"),
    ImageSlot(("certgen", "image", "repository"), "quay.io/cilium/certgen"),
    ImageSlot(("hubble", "relay", "image", "repository"), "quay.io/cilium/hubble-relay"),
    ImageSlot(("hubble", "ui", "frontend", "image", "repository"), "quay.io/cilium/hubble-ui"),
    ImageSlot(("hubble", "ui", "backend", "image", "repository"), "quay.io/cilium/hubble-ui-backend"),
    ImageSlot(("preflight", "image", "repository"), "quay.io/cilium/cilium"),
    ImageSlot(("nodeinit", "image", "repository"), "quay.io/cilium/startup-script"),
    ImageSlot(("clustermesh", "apiserver", "image", "repository"), "quay.io/cilium/clustermesh-apiserver"),
)
CALICO_REGISTRY = "quay.io"
"""Where the tigera operator and the Calico images it deploys come from (channel images)."""


def flannel_chart(spec: ClusterSpec, release: Release, rewriter: ImageRewriter) -> ChartSpec:
    pin = release.cni("flannel")
    repository, tag = _image_parts(pin.images[0])
    values: dict[str, Any] = {
        "podCidr": spec.networking.pod_cidr,
        "flannel": {
            "backend": "vxlan",
            "backendPort": VXLAN_PORTS["flannel"],
            "image": {"repository": rewriter.repository(repository), "tag": tag},
        },
    }
    values = deep_merge(values, slot_values(FLANNEL_SLOTS, rewriter))
    return ChartSpec.pinned("flannel", pin, "kube-flannel", values, rewriter)


def calico_chart(spec: ClusterSpec, release: Release, rewriter: ImageRewriter) -> ChartSpec:
    pin = release.cni("calico")
    installation: dict[str, Any] = {
        "enabled": True,
        "kubernetesProvider": "",
        "cni": {"type": "Calico", "ipam": {"type": "Calico"}},
        "calicoNetwork": {
            "bgp": "Disabled",
            "ipPools": [{
                "name": "default-ipv4-ippool",
                "cidr": spec.networking.pod_cidr,
                "encapsulation": "VXLAN",
                "natOutgoing": "Enabled",
                "nodeSelector": "all()",
                "blockSize": 26,
            }],
        },
    }
    values: dict[str, Any] = {
        "installation": installation,
        "apiServer": {"enabled": False},
        "goldmane": {"enabled": False},
        "whisker": {"enabled": False},
    }
    mirror = rewriter.registry(CALICO_REGISTRY)
    if mirror:
        installation["registry"] = mirror.rstrip("/") + "/"
        values["tigeraOperator"] = {"registry": mirror}
    return ChartSpec.pinned("tigera-operator", pin, "tigera-operator", values, rewriter)


def cilium_chart(spec: ClusterSpec, release: Release, rewriter: ImageRewriter, api_server_url: str) -> ChartSpec:
    pin = release.cni("cilium")
    values: dict[str, Any] = {
        "ipam": {"mode": "kubernetes"},
        "routingMode": "tunnel",
        "tunnelProtocol": "vxlan",
        "tunnelPort": VXLAN_PORTS["cilium"],
        # the chart's and agent's defaults, written out so the render shows every port nodes open
        "healthChecking": True,
        "clusterHealthPort": CILIUM_HEALTH_PORT,
        "endpointHealthChecking": {"enabled": True},
        "hubble": {"enabled": True, "listenAddress": f":{HUBBLE_PORT}"},
        "kubeProxyReplacement": spec.cilium_kube_proxy_replacement,
        "k8sServiceHost": api_host(api_server_url),
        "k8sServicePort": API_PORT,
        "operator": {"replicas": 2},
    }
    values = deep_merge(values, slot_values(CILIUM_SLOTS, rewriter))
    return ChartSpec.pinned("cilium", pin, "kube-system", values, rewriter)


def canal_manifest_url(release: Release) -> str:
    """Calico's published canal manifest for the channel's Calico version."""
    return f"https://raw.githubusercontent.com/projectcalico/calico/{release.cni('calico').version}/manifests/canal.yaml"


def canal_config_patch(spec: ClusterSpec) -> dict[str, Any]:
    """The fields of ``kube-system/canal-config`` cfcr owns: flannel's network and VXLAN port."""
    net_conf = {"Network": spec.networking.pod_cidr, "Backend": {"Type": "vxlan", "Port": VXLAN_PORTS["canal"]}}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "canal-config", "namespace": "kube-system",
                     "annotations": {"pulumi.com/patchForce": "true"}},
        "data": {"net-conf.json": json.dumps(net_conf, indent=2) + "\n"},
    }


@dataclass(frozen=True)
class CniPlan:
    """What installing a CNI means: namespaces, charts, upstream manifests, patches."""

    cni: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    charts: list[ChartSpec] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)
    replaces_kube_proxy: bool = False


def cni_plan(spec: ClusterSpec, release: Release, rewriter: ImageRewriter, api_server_url: str,
             extra_values: Mapping[str, Any] | None = None) -> CniPlan:
    """The plan for ``spec.cni`` (pure)."""
    extra = dict(extra_values or {})
    if spec.cni == "flannel":
        return CniPlan("flannel", [namespace("kube-flannel", "privileged")],
                       [flannel_chart(spec, release, rewriter).with_values(extra)])
    if spec.cni == "calico":
        return CniPlan("calico", [namespace("tigera-operator", "privileged")],
                       [calico_chart(spec, release, rewriter).with_values(extra)])
    if spec.cni == "cilium":
        return CniPlan("cilium", [], [cilium_chart(spec, release, rewriter, api_server_url).with_values(extra)],
                       replaces_kube_proxy=kube_proxy_replaced(spec))
    if spec.cni == "canal":
        manifest = Mirrors.of(spec).file_url(canal_manifest_url(release))
        return CniPlan("canal", manifests=[manifest], patches=[canal_config_patch(spec)])
    return CniPlan("none")


def image_transform(rewriter: ImageRewriter) -> pulumi.ResourceTransform:
    """A Pulumi transform rewriting the images of the objects an upstream manifest creates."""

    def transform(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
        props = dict(args.props)
        kind = props.get("kind") or args.type_.rsplit(":", 1)[-1]
        rewritten = rewrite_pod_images({**props, "kind": kind}, rewriter)
        if "kind" not in props:
            rewritten.pop("kind", None)
        if rewritten == props:
            return None
        return pulumi.ResourceTransformResult(props=rewritten, opts=args.opts)

    return transform


# ----------------------------------------------------------------------------- the lock


class CniChangeError(RuntimeError):
    """A ``pulumi up`` tried to change the CNI of a running cluster."""


def refuse_change(old: str, new: str) -> str:
    return (
        f"cfcr: refusing to change the CNI of a running cluster from {old} to {new}: pods would lose "
        f"their network and the old CNI's state would stay on every node. Follow the procedure in "
        f"{CHANGING_THE_CNI} (build a new cluster and move the workloads, or the in-place steps), "
        f"or set cfcr:cni back to {old}."
    )


class CniLockProvider(ResourceProvider):
    """Records the cluster's CNI; a diff that changes it is an error."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"cni-{props['cni']}", outs={"cni": props["cni"]})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        if olds.get("cni") and olds.get("cni") != news.get("cni"):
            raise CniChangeError(refuse_change(str(olds["cni"]), str(news.get("cni"))))
        return DiffResult(changes=False, replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        if olds.get("cni") != news.get("cni"):
            raise CniChangeError(refuse_change(str(olds.get("cni")), str(news.get("cni"))))
        return UpdateResult(outs={"cni": news["cni"]})


class CniLock(Resource):
    """Holds the CNI the cluster was built with (see :class:`CniLockProvider`)."""

    cni: pulumi.Output[str]

    def __init__(self, name: str, cni: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(CniLockProvider(), name, {"cni": cni}, opts)


# ----------------------------------------------------------------------------- the component


@dataclass
class CniArgs:
    """Inputs of :class:`Cni`."""

    spec: ClusterSpec
    """The cluster spec (``cni``, ``ciliumKubeProxyReplacement``, ``networking``, mirrors)."""
    api_server_url: str
    """``https://host:6443`` of the API load balancer (cilium talks to it directly)."""
    release: Release | None = None
    """The channel release; default: the spec's."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What every object waits for (the readiness gate)."""
    lock: bool = True
    """Refuse a change of CNI on a running cluster (:class:`CniLock`)."""


class Cni(Addon):
    """The pod network of ``spec.cni`` (``cfcr:addons:Cni``)."""

    def __init__(self, name: str, args: CniArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cfcr:addons:Cni", name, opts, args.depends_on)
        from cfcr import channels

        spec = args.spec
        release = args.release or channels.resolve(spec.kubernetes.version)
        rewriter = ImageRewriter.for_spec(spec)
        self.plan = cni_plan(spec, release, rewriter, args.api_server_url, spec.addons.extra_values.get("cni"))
        before: list[pulumi.Resource] = []
        if args.lock:
            before.append(CniLock(f"{name}-lock", spec.cni, opts=pulumi.ResourceOptions(parent=self)))
        made = self.apply(self.plan.objects, before)
        for chart in self.plan.charts:
            self.chart(chart, [*before, *made])
        for i, url in enumerate(self.plan.manifests):
            manifest = yaml_v2.ConfigFile(
                f"{name}-{spec.cni}-manifest" + (f"-{i}" if i else ""),
                file=url,
                opts=pulumi.ResourceOptions.merge(
                    self.child_opts([*before, *made]),
                    pulumi.ResourceOptions(transforms=[image_transform(rewriter)]),
                ),
            )
            self.resources.append(manifest)
            made.append(manifest)
        for patch in self.plan.patches:
            self.resources.append(core_v1.ConfigMapPatch(
                f"{name}-{patch['metadata']['name']}-patch",
                metadata=patch["metadata"],
                data=patch["data"],
                opts=self.child_opts([*before, *made]),
            ))
        self.register_outputs({"cni": spec.cni})
