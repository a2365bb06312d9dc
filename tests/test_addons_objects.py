"""Every object the addons author validates (strictly) against the OpenAPI schema of the
channel's Kubernetes version; image rewriting; the PodSecurity admission defaults."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from cfcr import channels
from cfcr.addons.cloud import (
    CloudFacts,
    ccm_objects,
    csi_chart,
    csi_transforms,
    host_network_transform,
    render_cloud_config,
    storage_class,
)
from cfcr.addons.cni import canal_config_patch, cni_plan, image_transform
from cfcr.addons.coredns import coredns_objects, coredns_replicas
from cfcr.addons.images import ImageRewriter, mirror_prefix, rewrite_pod_images, split_image
from cfcr.addons.kube_proxy import kube_proxy_objects
from cfcr.addons.logging import logging_objects
from cfcr.addons.rbac import rbac_objects
from cfcr.addons.vpa import vpa_objects
from cfcr.aws.addon_profile import ebs_controller_transform
from cfcr.config import ClusterSpec, load_spec
from cfcr.node.admission import admission_config
from cfcr.node.kubelet import kubelet_config

API = "https://api.example.internal:6443"


def make_spec(**overrides: Any) -> ClusterSpec:
    return load_spec({"cloud": "aws", "region": "us-east-1", **overrides}, "dev")


def authored(spec: ClusterSpec) -> list[dict[str, Any]]:
    release = channels.resolve(spec.kubernetes.version)
    rw = ImageRewriter.from_spec(spec.registry_mirrors)
    facts = CloudFacts.from_spec(spec)
    plan = cni_plan(spec, release, rw, API)
    return [
        *plan.objects, *plan.patches,
        *kube_proxy_objects(spec, release, API, rw),
        *coredns_objects(spec, release, rw),
        *ccm_objects(facts, release, rw), storage_class(spec.cloud),
        *rbac_objects(spec), *logging_objects(spec), *vpa_objects(spec),
    ]


VERSIONS = sorted({channels.resolve(v).version for v in channels.known_versions()})


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
@pytest.mark.parametrize("cni", ["flannel", "canal", "calico", "cilium", "none"])
def test_every_authored_object_validates(version: str, cloud: str, cni: str) -> None:
    region = {"aws": "us-east-1", "gcp": "europe-west4", "azure": "westeurope"}[cloud]
    spec = load_spec({"cloud": cloud, "region": region, "cni": cni, "kubernetes": {"version": version},
                      "cloudConfig": {"Global": {"a": "b"}} if cloud != "azure" else {"cloud": "AzurePublicCloud"},
                      "addons": {"rbacGroups": {"ops": "platform-operator", "ro": "viewer"}}}, "dev")
    objects = authored(spec)
    assert len(objects) > 20
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_admission_and_kubelet_defaults() -> None:
    spec = make_spec(addons={"podSecurity": {"enforce": "restricted", "exemptNamespaces": ["kube-system", "tigera-operator"]},
                             "containerLogMaxSize": "20Mi", "containerLogMaxFiles": 3})
    (entry,) = admission_config(spec)["plugins"]
    assert entry["configuration"]["defaults"]["enforce"] == "restricted"
    assert entry["configuration"]["exemptions"]["namespaces"] == ["kube-system", "tigera-operator"]
    kubelet = kubelet_config(spec)
    assert (kubelet["containerLogMaxSize"], kubelet["containerLogMaxFiles"]) == ("20Mi", 3)
    user = make_spec(components={"kubelet": {"config": {"containerLogMaxFiles": 9}}})
    assert kubelet_config(user)["containerLogMaxFiles"] == 9, "the user's kubelet config wins"


def test_user_admission_entries_merge_with_the_defaults() -> None:
    spec = make_spec(admission={"configuration": [{"name": "EventRateLimit", "path": "/etc/x.yaml"}]})
    assert [p["name"] for p in admission_config(spec)["plugins"]] == ["EventRateLimit", "PodSecurity"]


def test_coredns_scales_with_the_largest_cluster() -> None:
    assert coredns_replicas(make_spec()) == 2
    big = make_spec(nodePools=[{"name": "a", "maxSize": 100}], networking={"podCidr": "10.0.0.0/14", "nodeCidr": "192.168.0.0/16"})
    assert coredns_replicas(big) == 7


def test_image_references_parse_and_rewrite() -> None:
    assert split_image("nginx") == ("docker.io", "library/nginx", "")
    assert split_image("quay.io/cilium/cilium:v1.19.4@sha256:ab") == ("quay.io", "cilium/cilium", ":v1.19.4@sha256:ab")
    assert split_image("localhost:5000/a/b:1") == ("localhost:5000", "a/b", ":1")
    assert mirror_prefix("https://mirror.example.com/v2/registry.k8s.io") == "mirror.example.com/registry.k8s.io"
    assert mirror_prefix("https://mirror.local:5000") == "mirror.local:5000"
    rw = ImageRewriter.from_spec({"registry.k8s.io": ["https://m.local/v2/k8s", "https://second"], "dl.k8s.io": ["https://x"]})
    assert rw.image("registry.k8s.io/coredns/coredns:v1.14.2") == "m.local/k8s/coredns/coredns:v1.14.2"
    assert rw.image("quay.io/calico/node:v3") == "quay.io/calico/node:v3"
    assert ImageRewriter.from_spec({"registry.k8s.io": ["https://m.local"]}, enabled=False).image("registry.k8s.io/a:1") == "registry.k8s.io/a:1"


def test_upstream_manifest_images_are_rewritten_by_the_transform() -> None:
    rw = ImageRewriter.from_spec({"docker.io": ["https://mirror.local"], "ghcr.io": ["https://mirror.local/ghcr"]})
    ds = {"kind": "DaemonSet", "spec": {"template": {"spec": {
        "initContainers": [{"name": "cni", "image": "docker.io/calico/cni:v3.31.5"}],
        "containers": [{"name": "flannel", "image": "ghcr.io/flannel-io/flannel:v0.28.4"}]}}}}
    out = rewrite_pod_images(ds, rw)
    spec = out["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["image"] == "mirror.local/calico/cni:v3.31.5"
    assert spec["containers"][0]["image"] == "mirror.local/ghcr/flannel-io/flannel:v0.28.4"
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"].startswith("ghcr.io"), "input untouched"
    transform = image_transform(rw)

    class Args:
        type_ = "kubernetes:apps/v1:DaemonSet"
        props = {k: v for k, v in ds.items() if k != "kind"}
        opts = None

    result = transform(Args())  # type: ignore[arg-type]
    assert result is not None
    assert result.props["spec"]["template"]["spec"]["containers"][0]["image"].startswith("mirror.local/")
    assert "kind" not in result.props


def test_cloud_config_rendering_and_other_clouds() -> None:
    assert render_cloud_config("aws", {"Global": {"Zone": "a", "Flag": False}}) == "[Global]\nZone = a\nFlag = false\n"
    assert render_cloud_config("azure", {"cloud": "AzurePublicCloud"}).startswith("{")
    with pytest.raises(ValueError, match="INI"):
        render_cloud_config("gcp", {"Global": "x"})
    release = channels.resolve("stable")
    gcp = load_spec({"cloud": "gcp", "region": "europe-west4"}, "dev")
    assert csi_chart(CloudFacts.from_spec(gcp), release, ImageRewriter({})) is None
    azure = load_spec({"cloud": "azure", "region": "westeurope"}, "dev")
    chart = csi_chart(CloudFacts.from_spec(azure), release, ImageRewriter({}))
    assert chart is not None and chart.chart == "azuredisk-csi-driver" and chart.version == "v1.34.2"
    assert storage_class("gcp")["provisioner"] == "pd.csi.storage.gke.io"


def test_canal_patch_names_the_pod_network() -> None:
    patch = canal_config_patch(make_spec(networking={"podCidr": "10.200.0.0/16"}))
    assert '"Network": "10.200.0.0/16"' in patch["data"]["net-conf.json"]


def _ebs_controller(name: str = "ebs-csi-controller") -> dict[str, Any]:
    """The shape of the EBS chart's controller Deployment, as its template renders it."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "ebs-csi-controller"}},
            "template": {
                "metadata": {"labels": {"app": "ebs-csi-controller"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": ""},
                    "serviceAccountName": "ebs-csi-controller-sa",
                    "priorityClassName": "system-cluster-critical",
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
                    "containers": [{"name": "ebs-plugin", "image": "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.59.0",
                                    "args": ["controller"], "ports": [{"name": "healthz", "containerPort": 9808}]}],
                },
            },
        },
    }


class _TransformArgs:
    def __init__(self, type_: str, props: dict[str, Any]) -> None:
        self.type_ = type_
        self.name = "chart:kube-system/x"
        self.props = props
        self.opts = None


def test_ebs_controller_runs_on_the_host_network() -> None:
    """The EBS chart has no value for the controller's host networking: the transform sets it
    (with the node's resolver) on the controller Deployment, and touches nothing else."""
    transform = ebs_controller_transform()
    original = {k: v for k, v in _ebs_controller().items() if k not in ("apiVersion", "kind")}
    result = transform(_TransformArgs("kubernetes:apps/v1:Deployment", original))  # type: ignore[arg-type]
    assert result is not None
    pod = result.props["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "Default"
    assert pod["nodeSelector"]["node-role.kubernetes.io/control-plane"] == ""
    assert pod["containers"] == original["spec"]["template"]["spec"]["containers"]
    assert "hostNetwork" not in original["spec"]["template"]["spec"], "input untouched"
    patched = {"apiVersion": "apps/v1", "kind": "Deployment", **result.props}
    for version in VERSIONS:
        kubernetes_validate.validate(patched, version, strict=True)
    # by its app label when a release renames it
    renamed = {k: v for k, v in _ebs_controller("aws-ebs-csi-driver-controller").items() if k != "kind"}
    assert transform(_TransformArgs("kubernetes:apps/v1:Deployment", renamed)) is not None  # type: ignore[arg-type]
    # not the node DaemonSet, not other Deployments, not the chart itself
    node = {"metadata": {"name": "ebs-csi-node"}, "spec": {"template": {"metadata": {"labels": {"app": "ebs-csi-node"}}}}}
    assert transform(_TransformArgs("kubernetes:apps/v1:DaemonSet", node)) is None  # type: ignore[arg-type]
    other = {"metadata": {"name": "metrics-server"}, "spec": {"template": {"spec": {}}}}
    assert transform(_TransformArgs("kubernetes:apps/v1:Deployment", other)) is None  # type: ignore[arg-type]
    assert transform(_TransformArgs("kubernetes:helm.sh/v4:Chart", {"chart": "aws-ebs-csi-driver"})) is None  # type: ignore[arg-type]
    assert len(csi_transforms("aws")) == 1 and csi_transforms("azure") == [] and csi_transforms("gcp") == []


@pytest.mark.parametrize(("members", "replicas"), [(1, 1), (3, 2), (5, 2)])
def test_ebs_controller_replicas_fit_the_control_plane(members: int, replicas: int) -> None:
    """On the host network two controllers cannot share a node (their health port is a host
    port): never more replicas than control-plane nodes."""
    spec = make_spec(controlPlane={"count": members})
    chart = csi_chart(CloudFacts.from_spec(spec), channels.resolve("stable"), ImageRewriter({}),
                      control_plane_count=spec.control_plane.count)
    assert chart is not None
    controller = chart.values["controller"]
    assert controller["replicaCount"] == replicas
    assert controller["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"} \
        in controller["tolerations"]
    assert "hostNetwork" not in controller, "the chart's values schema has no such key: the transform sets it"


def test_host_network_transform_finds_its_controller_by_name_or_label() -> None:
    """The transform behind the EBS controller also serves aws-node-termination-handler, whose
    queue-mode Deployment the chart never puts on the host network."""
    transform = host_network_transform("aws-node-termination-handler")
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nth", "namespace": "kube-system"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "aws-node-termination-handler"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "aws-node-termination-handler",
                                        "k8s-app": "aws-node-termination-handler"}},
                "spec": {"containers": [{"name": "aws-node-termination-handler",
                                         "image": "public.ecr.aws/aws-ec2/aws-node-termination-handler:v1.25.1",
                                         "ports": [{"name": "liveness-probe", "containerPort": 8080}]}]},
            },
        },
    }
    props = {k: v for k, v in deployment.items() if k not in ("apiVersion", "kind")}
    result = transform(_TransformArgs("kubernetes:apps/v1:Deployment", props))  # type: ignore[arg-type]
    assert result is not None, "found by its k8s-app label under another release name"
    pod = result.props["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "Default"
    for version in VERSIONS:
        kubernetes_validate.validate({"apiVersion": "apps/v1", "kind": "Deployment", **result.props}, version, strict=True)
    assert transform(_TransformArgs("kubernetes:apps/v1:DaemonSet", props)) is None  # type: ignore[arg-type]
    assert ebs_controller_transform()(_TransformArgs("kubernetes:apps/v1:Deployment", props)) is None  # type: ignore[arg-type]
