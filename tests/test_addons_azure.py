"""The addons of an Azure cluster: ``azure.json`` written from the cluster's names where the
user's cloud config leaves keys out (the user's keys win, Outputs resolved), cloud-node-manager
on every node, the Azure Disk driver reading the same Secret with its controller on the
control plane, cluster-autoscaler on the scale sets by ``--nodes``, the Cilium policy keeping
pods from IMDS and the WireServer; and both Azure stacks rendering them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pulumi
import pytest

from cfcr import channels
from cfcr.addons import ClusterAddons, ClusterAddonsArgs, CloudFacts, NodeGroup
from cfcr.addons.cloud import (
    ccm_node_objects,
    ccm_objects,
    cloud_config_text,
    csi_chart,
    storage_class,
    with_json_defaults,
)
from cfcr.addons.images import ImageRewriter
from cfcr.azure import addon_profile
from cfcr.azure.contract import cloud_names
from cfcr.azure.node_hook import AzureNodeHook
from cfcr.config import ClusterSpec, load_spec
from cfcr.render import RecordingMonitor, run_program, unwrap

API = "https://api.cfcr-dev.cfcr.internal:6443"
CHART = "kubernetes:helm.sh/v4:Chart"
CP_LABEL = "node-role.kubernetes.io/control-plane"
TENANT = "11111111-2222-4333-8444-555555555555"
SUBSCRIPTION = "66666666-7777-4888-9999-000000000000"
NAMES = {"tenantId": TENANT, "subscriptionId": SUBSCRIPTION, "resourceGroup": "cfcr-dev-rg",
         "vnetName": "cfcr-dev-vnet", "vnetResourceGroup": "cfcr-dev-rg", "subnetName": "cfcr-dev-workers",
         "securityGroupName": "cfcr-dev-nsg"}
SCALE_SETS = {"general": NodeGroup("cfcr-dev-general", 1, 4), "spot": NodeGroup("cfcr-dev-spot", 0, 6)}


def make_spec(**overrides: Any) -> ClusterSpec:
    return load_spec({"cloud": "azure", "region": "westeurope", **overrides}, "dev")


def output_names() -> dict[str, pulumi.Input[str]]:
    """:data:`NAMES` as the cluster gives them: resources' names are Outputs, some known later."""
    return {key: pulumi.Output.from_input(value) for key, value in NAMES.items()}


def render(spec: ClusterSpec) -> RecordingMonitor:
    def program() -> ClusterAddons:
        assert spec.name is not None
        return ClusterAddons(spec.name, ClusterAddonsArgs(
            spec, pulumi.Output.secret("apiVersion: v1\nkind: Config\n"), API,
            CloudFacts.from_spec(spec, SCALE_SETS, cloud_names=output_names())))

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
    user = {"cloudConfig": {"LoadBalancerSku": "basic", "cloudProviderBackoff": True}}
    yield {
        "cilium": render(make_spec(cni="cilium", controlPlane={"count": 3})),
        "user": render(make_spec(cni="calico", **user)),
    }


def azure_json(monitor: RecordingMonitor) -> dict[str, Any]:
    secret = objects(monitor, "Secret")["cloud-config"]
    # the key cloud-provider-azure's readers of a Secret take (the Disk CSI driver's)
    assert set(secret["stringData"]) == {"cloud-config"}
    text = secret["stringData"]["cloud-config"]
    assert isinstance(text, str), "the Outputs in the cloud config are resolved into its text"
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def test_azure_json_defaults_name_the_clusters_resources(rendered: dict[str, RecordingMonitor]) -> None:
    assert azure_json(rendered["cilium"]) == {
        "cloud": "AzurePublicCloud", "location": "westeurope", **NAMES,
        "vmType": "vmss", "loadBalancerSku": "standard", "useManagedIdentityExtension": True,
        "useInstanceMetadata": True, "excludeMasterFromStandardLB": True, "cloudConfigType": "file",
    }
    assert "userAssignedIdentityID" not in azure_json(rendered["cilium"]), \
        "each member has its own identity: IMDS picks the VM's only one"


def test_the_users_azure_json_keys_win_in_any_case(rendered: dict[str, RecordingMonitor]) -> None:
    config = azure_json(rendered["user"])
    assert config["LoadBalancerSku"] == "basic" and "loadBalancerSku" not in config
    assert config["cloudProviderBackoff"] is True and config["vmType"] == "vmss"
    assert with_json_defaults({"VMTYPE": "standard"}, {"vmType": "vmss", "cloud": "x"}) == {"VMTYPE": "standard",
                                                                                          "cloud": "x"}
    user = {"tenantId": "mine"}
    assert with_json_defaults(user, {"tenantId": "theirs"}) == user


def test_cloud_config_text_is_plain_without_outputs_and_waits_for_them() -> None:
    assert cloud_config_text("azure", {"b": 1, "a": "x"}) == '{\n  "a": "x",\n  "b": 1\n}\n'
    assert isinstance(cloud_config_text("azure", {"a": pulumi.Output.from_input("x")}), pulumi.Output)
    facts = CloudFacts.from_spec(make_spec(), SCALE_SETS)
    (secret,) = [o for o in ccm_objects(facts, channels.resolve("stable"), ImageRewriter({})) if o["kind"] == "Secret"]
    assert json.loads(secret["stringData"]["cloud-config"])["location"] == "westeurope", \
        "without the cluster's names the constant defaults and the region still apply"


def test_ccm_runs_without_the_cloud_node_controller(rendered: dict[str, RecordingMonitor]) -> None:
    pod = objects(rendered["cilium"], "DaemonSet")["cloud-controller-manager"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == channels.resolve("stable").cloud("azure").ccm.image
    for flag in ("--cloud-provider=azure", "--controllers=*,-cloud-node", "--allocate-node-cidrs=false",
                 "--configure-cloud-routes=false", "--cloud-config=/etc/kubernetes/cloud-config/cloud-config"):
        assert flag in container["args"]
    assert pod["hostNetwork"] is True and pod["nodeSelector"] == {CP_LABEL: ""}


def test_cloud_node_manager_on_every_node_from_imds(rendered: dict[str, RecordingMonitor]) -> None:
    pin = channels.resolve("stable").cloud("azure").ccm
    ds = objects(rendered["cilium"], "DaemonSet")["cloud-node-manager"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["tolerations"] == [{"operator": "Exists"}]
    assert CP_LABEL not in pod["nodeSelector"] and pod["serviceAccountName"] == "cloud-node-manager"
    (container,) = pod["containers"]
    assert container["image"] == pin.sidecar("azure-cloud-node-manager")
    assert container["image"].rsplit(":", 1)[1] == pin.version, "released with the CCM"
    assert {"--node-name=$(NODE_NAME)", "--use-instance-metadata=true", "--wait-routes=false"} <= set(container["args"])
    assert not any("cloud-config" in a for a in container["args"]), "no ARM calls: workers' identities hold no role"
    role = objects(rendered["cilium"], "ClusterRole")["cloud-node-manager"]
    assert {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]} in role["rules"]
    binding = objects(rendered["cilium"], "ClusterRoleBinding")["cloud-node-manager"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cloud-node-manager", "namespace": "kube-system"}]


def test_other_clouds_have_no_node_manager() -> None:
    release = channels.resolve("stable")
    for spec in (load_spec({"cloud": "aws", "region": "us-east-1"}, "dev"),
                 load_spec({"cloud": "gcp", "region": "europe-west4"}, "dev")):
        assert ccm_node_objects(CloudFacts.from_spec(spec), release, ImageRewriter({})) == []


def test_disk_csi_reads_the_cloud_config_secret_with_its_controller_on_the_control_plane() -> None:
    facts = CloudFacts.from_spec(make_spec(), SCALE_SETS)
    for count, replicas in ((1, 1), (3, 2)):
        chart = csi_chart(facts, channels.resolve("stable"), ImageRewriter({}), control_plane_count=count)
        assert chart is not None
        controller, node = chart.values["controller"], chart.values["node"]
        for part in (controller, node):
            assert part["cloudConfigSecretName"] == "cloud-config" and part["cloudConfigSecretNamespace"] == "kube-system"
        assert controller["runOnControlPlane"] is True and controller["hostNetwork"] is True
        assert controller["replicas"] == replicas
    sc = storage_class("azure")
    assert sc["provisioner"] == "disk.csi.azure.com" and sc["parameters"] == {"skuName": "Premium_LRS"}


def test_disk_csi_images_stay_whole_image_names_under_a_mirror() -> None:
    """The chart takes ``image.azuredisk.repository`` without a leading ``/`` as the whole image
    name (``repository:tag``): a mirror of another registry leaves it as the channel's, a mirror of
    MCR rewrites it and the sidecars' base (``image.baseRepo``)."""
    facts = CloudFacts.from_spec(make_spec(), SCALE_SETS)
    pin = channels.resolve("stable").cloud("azure").csi
    assert pin is not None
    repository, tag = pin.image.rsplit(":", 1)
    for mirrors, expected, base in (
            ({"registry.k8s.io": "mirror.example.com/k8s"}, repository, None),
            ({"mcr.microsoft.com": "mirror.example.com/mcr"},
             repository.replace("mcr.microsoft.com", "mirror.example.com/mcr"), "mirror.example.com/mcr")):
        chart = csi_chart(facts, channels.resolve("stable"), ImageRewriter(mirrors), control_plane_count=3)
        assert chart is not None
        image = chart.values["image"]
        assert image["azuredisk"] == {"repository": expected, "tag": tag}
        assert expected.endswith("/azuredisk-csi") and not expected.startswith("/")
        assert image.get("baseRepo") == base
    unmirrored = csi_chart(facts, channels.resolve("stable"), ImageRewriter({}), control_plane_count=3)
    assert unmirrored is not None and "image" not in unmirrored.values


def test_autoscaler_names_each_scale_set_with_the_managed_identity(rendered: dict[str, RecordingMonitor]) -> None:
    values = charts(rendered["cilium"])["cluster-autoscaler"]["values"]
    assert values["cloudProvider"] == "azure" and values["azureVMType"] == "vmss"
    assert values["azureUseManagedIdentityExtension"] is True and "azureClientSecret" not in values
    assert values["azureSubscriptionID"] == SUBSCRIPTION and values["azureResourceGroup"] == "cfcr-dev-rg"
    assert values["azureTenantID"] == TENANT
    assert "autoDiscovery" not in values
    assert values["autoscalingGroups"] == [{"name": "cfcr-dev-general", "minSize": 1, "maxSize": 4},
                                           {"name": "cfcr-dev-spot", "minSize": 0, "maxSize": 6}]
    assert values["hostNetwork"] is True and values["nodeSelector"] == {CP_LABEL: ""}


def test_cilium_policy_keeps_pods_from_imds_and_the_wireserver_but_not_dns(
        rendered: dict[str, RecordingMonitor]) -> None:
    policy = objects(rendered["cilium"], "CiliumClusterwideNetworkPolicy")["cfcr-deny-instance-metadata"]
    (rule,) = policy["spec"]["egressDeny"]
    assert rule["toCIDR"] == ["169.254.169.254/32", "168.63.129.16/32"]
    ports = {p["port"] for p in rule["toPorts"][0]["ports"]}
    assert ports == {"80", "32526"} and "53" not in ports
    guarded = {f"{a}/32" for a in AzureNodeHook(cluster="dev").guarded_addresses()}
    assert guarded == set(addon_profile.METADATA_CIDRS), "the node's guard and the policy name the same addresses"
    assert not objects(rendered["user"], "CiliumClusterwideNetworkPolicy")


def test_azure_objects_validate_against_the_channels_kubernetes() -> None:
    for version in sorted({channels.resolve(v).version for v in channels.known_versions()}):
        spec = make_spec(kubernetes={"version": version})
        facts = CloudFacts.from_spec(spec, SCALE_SETS)
        release = channels.resolve(version)
        made = ccm_node_objects(facts, release, ImageRewriter({}))
        assert {o["kind"] for o in made} == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"}
        for obj in made + [o for o in ccm_objects(facts, release, ImageRewriter({})) if o["kind"] == "DaemonSet"]:
            kubernetes_validate.validate(obj, version, strict=True)


def test_cloud_names_on_an_existing_network_take_its_group() -> None:
    outputs = {"subscriptionId": SUBSCRIPTION, "resourceGroup": "cfcr-dev-rg", "virtualNetwork": "shared",
               "workersSubnet": "nodes", "securityGroup": "cfcr-dev-nsg"}
    assert cloud_names(make_spec(), outputs, TENANT) == NAMES | {"vnetName": "shared", "subnetName": "nodes"}
    vnet = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/shared"
    existing = make_spec(networking={"existingNetwork": {"networkId": vnet, "subnetIds": [f"{vnet}/subnets/nodes"]}})
    assert cloud_names(existing, outputs, TENANT)["vnetResourceGroup"] == "net-rg"


@pytest.mark.parametrize("stack", ["azure-stable", "azure-edge"])
def test_the_azure_stacks_render_every_azure_addon(stack: str, tmp_path: Path) -> None:
    """The real wiring, through cfcr.azure's Cluster and contract."""
    from cfcr.config import load_stack
    from cfcr.render import render_stack

    result = render_stack(stack, tmp_path)
    spec = load_stack(stack)
    types = {r.type for r in result.resources}
    assert {"cfcr:addons:CloudIntegration", "cfcr:addons:ClusterAutoscaler"} <= types
    (values,) = [unwrap(r.inputs)["values"] for r in result.resources
                 if r.type == CHART and unwrap(r.inputs)["chart"] == "cluster-autoscaler"]
    assert {g["name"] for g in values["autoscalingGroups"]} == {f"{spec.name}-{p.name}" for p in spec.node_pools}
    assert values["azureResourceGroup"] == f"{spec.name}-rg" and values["azureSubscriptionID"]
    entries = json.loads((tmp_path / "resources.json").read_text())
    text = json.dumps(entries)
    for visible in ('"azureVMType": "vmss"', '"cloudProvider": "azure"', '"runOnControlPlane": true',
                    "azure-cloud-node-manager", "--controllers=*,-cloud-node"):
        assert visible in text, visible
    made = {(o.get("kind"), o["metadata"]["name"]): o for o in
            (unwrap(r.inputs) for r in result.resources if r.type.startswith("kubernetes:") and r.type != CHART)
            if "metadata" in o}
    config = json.loads(made[("Secret", "cloud-config")]["stringData"]["cloud-config"])
    assert config["resourceGroup"] == f"{spec.name}-rg" and config["vnetName"] == f"{spec.name}-vnet"
    assert config["subnetName"] == f"{spec.name}-workers" and config["securityGroupName"] == f"{spec.name}-nsg"
    assert config["location"] == spec.region and config["tenantId"] and config["subscriptionId"]
    assert ("DaemonSet", "cloud-node-manager") in made
    assert (("CiliumClusterwideNetworkPolicy", "cfcr-deny-instance-metadata") in made) == (spec.cni == "cilium")
