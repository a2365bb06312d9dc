"""The addons of a GCP cluster under the mock runtime: the GCE cloud controller manager, the PD
CSI driver (authored: controller host-network on the control plane, node plugin host-network
everywhere), the default StorageClass with the customer-managed key, cluster-autoscaler on the
zonal MIGs, the Cilium policy keeping pods from the metadata server; every image from the
channel, through the mirrors, and in the render the asset list reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pulumi
import pytest

from cfcr import channels
from cfcr.addons import ClusterAddons, ClusterAddonsArgs, CloudFacts, NodeGroup
from cfcr.addons.cloud import csi_objects, metadata_policy, render_cloud_config, storage_class, with_defaults
from cfcr.addons.images import ImageRewriter
from cfcr.assets.refs import render_refs
from cfcr.config import ClusterSpec, load_spec
from cfcr.gcp import pd_csi
from cfcr.render import RecordingMonitor, run_program, unwrap
from cfcr.render.writer import write_render

API = "https://api.cfcr-dev.cfcr.internal:6443"
CHART = "kubernetes:helm.sh/v4:Chart"
CP_LABEL = "node-role.kubernetes.io/control-plane"
MIG = "https://www.googleapis.com/compute/v1/projects/p-1/zones/europe-west4-{z}/instanceGroups/cfcr-dev-general-z{i}"
KMS = "projects/p-1/locations/europe-west4/keyRings/cfcr/cryptoKeys/disks"


def make_spec(**overrides: Any) -> ClusterSpec:
    return load_spec({"cloud": "gcp", "region": "europe-west4", **overrides}, "dev")


def with_kms(spec: ClusterSpec, key: str | None = KMS) -> ClusterSpec:
    """``spec`` with ``cfcr:gcp.diskKmsKey`` (read as ``spec.gcp.disk_kms_key``)."""
    return spec.model_copy(update={"gcp": SimpleNamespace(disk_kms_key=key)})


def zonal_groups() -> dict[str, NodeGroup]:
    """What the GCP layer wires: ``<pool>/<zone index>`` -> the zonal MIG's URL (an Output)."""
    return {f"general/{i}": NodeGroup(pulumi.Output.from_input(MIG.format(z=z, i=i)), 1 if i == 0 else 0, 2)
            for i, z in enumerate("abc")}


def render(spec: ClusterSpec) -> RecordingMonitor:
    def program() -> ClusterAddons:
        assert spec.name is not None
        return ClusterAddons(spec.name, ClusterAddonsArgs(
            spec, pulumi.Output.secret("apiVersion: v1\nkind: Config\n"), API, CloudFacts.from_spec(spec, zonal_groups())))

    monitor, _, _ = run_program(program, project="cfcr", stack="dev")
    return monitor


def objects(monitor: RecordingMonitor, kind: str) -> dict[str, dict[str, Any]]:
    out = {}
    for r in monitor.recorded:
        if r.type.startswith("kubernetes:") and r.type != CHART:
            inputs = unwrap(r.inputs)
            if inputs.get("kind") == kind:
                out[inputs["metadata"]["name"]] = inputs
    return out


def charts(monitor: RecordingMonitor) -> dict[str, dict[str, Any]]:
    return {unwrap(r.inputs)["chart"]: unwrap(r.inputs) for r in monitor.by_type(CHART)}


@pytest.fixture(scope="module")
def rendered() -> Iterator[dict[str, RecordingMonitor]]:
    yield {
        "cilium": render(with_kms(make_spec(cni="cilium", controlPlane={"count": 3}))),
        "flannel": render(make_spec(cni="flannel")),
    }


def test_ccm_is_gce_on_the_control_plane_host_network_with_multizone(rendered: dict[str, RecordingMonitor]) -> None:
    ds = objects(rendered["cilium"], "DaemonSet")["cloud-controller-manager"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["nodeSelector"] == {CP_LABEL: ""}
    (container,) = pod["containers"]
    assert container["image"] == channels.resolve("stable").cloud("gcp").ccm.image
    args = container["args"]
    for flag in ("--cloud-provider=gce", "--allocate-node-cidrs=false", "--configure-cloud-routes=false",
                 "--controllers=*,-node-ipam-controller,-node-route-controller",
                 "--cloud-config=/etc/kubernetes/cloud-config/cloud.conf"):
        assert flag in args
    secret = objects(rendered["cilium"], "Secret")["cloud-config"]
    assert secret["stringData"]["cloud.conf"] == ("[global]\nmultizone = true\nnode-tags = cfcr-dev-node\n"
                                                  "network-name = cfcr-dev\nsubnetwork-name = cfcr-dev-nodes\n")


def test_the_users_cloud_config_wins_and_passes_through() -> None:
    user = {"Global": {"project-id": "p-1", "MultiZone": False, "node-tags": ["a", "b"]}}
    merged = with_defaults(user, {"global": {"multizone": True}})
    assert merged == user and merged is not user
    assert render_cloud_config("gcp", merged) == "[Global]\nproject-id = p-1\nMultiZone = false\nnode-tags = a\nnode-tags = b\n"
    assert with_defaults({"Global": {"token-url": "x"}}, {"global": {"multizone": True}}) == {
        "Global": {"token-url": "x", "multizone": True}}
    assert with_defaults({}, {}) == {}


def test_pd_csi_controller_on_the_control_plane_host_network(rendered: dict[str, RecordingMonitor]) -> None:
    pin = channels.resolve("stable").cloud("gcp").csi
    deploy = objects(rendered["cilium"], "Deployment")[pd_csi.CONTROLLER]
    assert deploy["spec"]["replicas"] == 2, "one per control-plane node, at most two"
    pod = deploy["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "Default"
    assert pod["nodeSelector"][CP_LABEL] == "" and pod["serviceAccountName"] == pd_csi.CONTROLLER_SA
    images = {c["name"]: c["image"] for c in pod["containers"]}
    assert images == {"csi-provisioner": pin.sidecar("csi-provisioner"), "csi-attacher": pin.sidecar("csi-attacher"),
                      "csi-resizer": pin.sidecar("csi-resizer"), "gce-pd-driver": pin.image}
    assert not any("GOOGLE_APPLICATION_CREDENTIALS" in str(c.get("env")) for c in pod["containers"]), \
        "credentials come from the metadata server, not a key"
    assert all(v.get("hostPath") is None for v in pod["volumes"])
    assert objects(rendered["cilium"], "CSIDriver")[pd_csi.DRIVER]["spec"]["attachRequired"] is True
    assert pd_csi.controller_replicas(1) == 1 and pd_csi.controller_replicas(5) == 2


def test_pd_csi_node_plugin_on_every_node_host_network(rendered: dict[str, RecordingMonitor]) -> None:
    pin = channels.resolve("stable").cloud("gcp").csi
    pod = objects(rendered["flannel"], "DaemonSet")[pd_csi.NODE]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True, "the node plugin reads its zone and instance from the metadata server"
    assert pod["tolerations"] == [{"operator": "Exists"}] and CP_LABEL not in pod.get("nodeSelector", {})
    driver = next(c for c in pod["containers"] if c["name"] == "gce-pd-driver")
    assert driver["securityContext"]["privileged"] is True and driver["image"] == pin.image
    assert "--run-controller-service=false" in driver["args"]
    registrar = next(c for c in pod["containers"] if c["name"] == "csi-driver-registrar")
    assert registrar["image"] == pin.sidecar("csi-node-driver-registrar")
    assert f"--kubelet-registration-path=/var/lib/kubelet/plugins/{pd_csi.DRIVER}/csi.sock" in registrar["args"]


def test_default_storage_class_is_pd_balanced_late_bound_with_the_kms_key(rendered: dict[str, RecordingMonitor]) -> None:
    sc = objects(rendered["cilium"], "StorageClass")["cfcr-default"]
    assert sc["provisioner"] == "pd.csi.storage.gke.io" and sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["parameters"]["type"] == "pd-balanced" and sc["parameters"]["disk-encryption-kms-key"] == KMS
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    plain = objects(rendered["flannel"], "StorageClass")["cfcr-default"]
    assert "disk-encryption-kms-key" not in plain["parameters"]
    assert "disk-encryption-kms-key" not in storage_class("gcp", with_kms(make_spec(), None))["parameters"]
    assert "disk-encryption-kms-key" not in storage_class("aws", with_kms(make_spec()))["parameters"]


def test_autoscaler_names_each_zonal_mig_on_the_control_plane_host_network(rendered: dict[str, RecordingMonitor]) -> None:
    values = charts(rendered["cilium"])["cluster-autoscaler"]["values"]
    assert values["cloudProvider"] == "gce" and "autoDiscovery" not in values
    assert values["autoscalingGroups"] == [
        {"name": MIG.format(z=z, i=i), "minSize": 1 if i == 0 else 0, "maxSize": 2} for i, z in enumerate("abc")]
    assert values["extraArgs"]["balance-similar-node-groups"] is True
    assert values["hostNetwork"] is True and values["dnsPolicy"] == "Default"
    assert values["nodeSelector"] == {CP_LABEL: ""}


def test_cilium_policy_keeps_pods_from_the_metadata_server_without_default_deny(
        rendered: dict[str, RecordingMonitor]) -> None:
    (policy,) = [unwrap(r.inputs) for r in rendered["cilium"].recorded
                 if r.type == "kubernetes:cilium.io/v2:CiliumClusterwideNetworkPolicy"]
    spec = policy["spec"]
    assert spec["endpointSelector"] == {}
    assert spec["enableDefaultDeny"] == {"egress": False, "ingress": False}
    (rule,) = spec["egressDeny"]
    assert rule["toCIDR"] == ["169.254.169.254/32"]
    ports = {p["port"] for p in rule["toPorts"][0]["ports"]}
    assert ports == {"80", "443"}, "DNS (53) to the same address, the VPC resolver, stays open"
    assert "egress" not in spec and "ingress" not in spec, "no allow rules: nothing else changes"
    cilium = [r for r in rendered["cilium"].recorded if r.name == "cfcr-dev-cni-cilium"]
    assert cilium, "the Cilium chart is rendered"
    assert not [r for r in rendered["flannel"].recorded if "CiliumClusterwideNetworkPolicy" in r.type]
    assert metadata_policy(load_spec({"cloud": "aws", "region": "us-east-1", "cni": "cilium"}, "dev"), "aws") == []


def test_pd_csi_objects_validate_against_the_channels_kubernetes() -> None:
    for version in sorted({channels.resolve(v).version for v in channels.known_versions()}):
        spec = make_spec(kubernetes={"version": version})
        made = csi_objects(CloudFacts.from_spec(spec), channels.resolve(version), ImageRewriter({}), control_plane_count=3)
        assert {o["kind"] for o in made} >= {"CSIDriver", "Deployment", "DaemonSet", "ClusterRole", "Role"}
        for obj in made:
            kubernetes_validate.validate(obj, version, strict=True)


def test_every_gcp_image_goes_through_the_mirror_and_into_the_asset_refs(tmp_path: Path) -> None:
    release = channels.resolve("stable")
    pins = {release.cloud("gcp").ccm.image, *release.cloud("gcp").csi.images}
    spec = make_spec(cni="cilium", mirrors={"registry": "https://mirror.example.com"})
    monitor = render(spec)
    write_render(tmp_path, monitor.recorded, {}, {}, show_secrets=False)
    found = set(render_refs(tmp_path).images)
    expected = {f"mirror.example.com/{image}" for image in pins}
    assert expected <= found, expected - found
    assert not {i for i in found if i.startswith("registry.k8s.io/")}, "nothing pulled past the mirror"


def test_the_gcp_edge_stack_renders_every_gcp_addon(tmp_path: Path) -> None:
    """The real wiring: ``gcp-edge`` (Cilium) with a disk key, through cfcr.gcp's Cluster."""
    from cfcr.render import render_stack
    from cfcr.render.render import read_stack_config

    raw = {**read_stack_config("gcp-edge"), "cfcr:gcp": {"diskKmsKey": KMS}}
    result = render_stack("gcp-edge", tmp_path, config=raw)
    made = [unwrap(r.inputs) for r in result.resources if r.type.startswith("kubernetes:") and r.type != CHART]
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for obj in made:
        by_kind.setdefault(str(obj.get("kind")), {})[obj["metadata"]["name"]] = obj
    release = channels.resolve(load_spec(raw, "gcp-edge").kubernetes.version)
    ccm = by_kind["DaemonSet"]["cloud-controller-manager"]["spec"]["template"]["spec"]
    assert ccm["containers"][0]["image"] == release.cloud("gcp").ccm.image and ccm["hostNetwork"] is True
    assert by_kind["Deployment"][pd_csi.CONTROLLER]["spec"]["template"]["spec"]["hostNetwork"] is True
    assert by_kind["DaemonSet"][pd_csi.NODE]["spec"]["template"]["spec"]["hostNetwork"] is True
    assert by_kind["StorageClass"]["cfcr-default"]["parameters"]["disk-encryption-kms-key"] == KMS
    policy = by_kind["CiliumClusterwideNetworkPolicy"]["cfcr-deny-instance-metadata"]
    assert policy["spec"]["egressDeny"][0]["toCIDR"] == ["169.254.169.254/32"]
    (autoscaler,) = [unwrap(r.inputs)["values"] for r in result.resources
                     if r.type == CHART and unwrap(r.inputs)["chart"] == "cluster-autoscaler"]
    groups = autoscaler["autoscalingGroups"]
    spec = load_spec(raw, "gcp-edge")
    assert {g["name"].rsplit("/", 1)[1].rsplit("-z", 1)[0] for g in groups} == {
        f"{spec.name}-{p.name}" for p in spec.node_pools}, "one group per pool and zone, named by its MIG"
    assert len({g["name"].split("/zones/")[1].split("/")[0] for g in groups}) > 1, "zonal MIGs in several zones"
    assert all(g["name"].startswith("https://www.googleapis.com/compute/v1/projects/") and
               "/zones/" in g["name"] and "/instanceGroups/" in g["name"] for g in groups)
    images = set(render_refs(tmp_path).images)
    assert {release.cloud("gcp").ccm.image, *release.cloud("gcp").csi.images} <= images


def test_the_serving_csr_approver_does_not_resolve_gcp_node_names_and_checks_the_rest() -> None:
    from cfcr.addons.csr_approver import csr_approver_chart

    gcp = csr_approver_chart(make_spec(), ImageRewriter({})).values
    aws = csr_approver_chart(make_spec(cloud="aws", region="eu-west-1"), ImageRewriter({})).values
    assert gcp["bypassDnsResolution"] is True and aws["bypassDnsResolution"] is False
    for values in (gcp, aws):
        assert values["bypassHostnameCheck"] is False and values["allowedDnsNames"] == 1
        assert values["providerIpPrefixes"] == [make_spec().networking.node_cidr]
