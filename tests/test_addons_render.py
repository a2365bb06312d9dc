"""ClusterAddons under the mock runtime: per CNI the objects, charts and ports; kube-proxy
left out with Cilium's replacement; the gate and the provider wired to everything;
priority classes, disruption budgets, PSA labels, RBAC bindings, mirrors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest
import yaml

from cfcr.addons import ClusterAddons, ClusterAddonsArgs, CloudFacts
from cfcr.addons.cni import VXLAN_PORTS
from cfcr.config import ClusterSpec, load_spec
from cfcr.render import RecordedResource, run_program, unwrap
from cfcr.render.mocks import RecordingMonitor
from cfcr.render.writer import kubernetes_manifests

API = "https://api.cfcr-dev.cfcr.internal:6443"
CHART = "kubernetes:helm.sh/v4:Chart"
GATE = "pulumi-python:dynamic:Resource"


def make_spec(**overrides: Any) -> ClusterSpec:
    return load_spec({"cloud": "aws", "region": "us-east-1", **overrides}, "dev")


def render(spec: ClusterSpec) -> RecordingMonitor:
    def program() -> ClusterAddons:
        assert spec.name is not None
        return ClusterAddons(spec.name, ClusterAddonsArgs(
            spec, pulumi.Output.secret("apiVersion: v1\nkind: Config\n"), API, CloudFacts.from_spec(spec)))

    monitor, _, _ = run_program(program, project="cfcr", stack="dev")
    return monitor


def k8s_objects(monitor: RecordingMonitor) -> list[RecordedResource]:
    return [r for r in monitor.recorded if r.type.startswith("kubernetes:") and r.type != CHART]


def charts(monitor: RecordingMonitor) -> dict[str, dict[str, Any]]:
    return {unwrap(r.inputs)["chart"]: unwrap(r.inputs) for r in monitor.by_type(CHART)}


def kinds(monitor: RecordingMonitor, kind: str) -> dict[str, dict[str, Any]]:
    out = {}
    for r in k8s_objects(monitor):
        inputs = unwrap(r.inputs)
        if inputs.get("kind") == kind:
            out[inputs["metadata"]["name"]] = inputs
    return out


@pytest.fixture(scope="module")
def rendered() -> Iterator[dict[str, RecordingMonitor]]:
    out = {
        "flannel": render(make_spec(cni="flannel")),
        "canal": render(make_spec(cni="canal")),
        "calico": render(make_spec(cni="calico")),
        "cilium": render(make_spec(cni="cilium")),
        "cilium-kpr": render(make_spec(cni="cilium", ciliumKubeProxyReplacement=True)),
        "none": render(make_spec(cni="none")),
    }
    yield out


def test_flannel_is_vxlan_with_the_pod_network(rendered: dict[str, RecordingMonitor]) -> None:
    chart = charts(rendered["flannel"])["flannel"]
    assert chart["repositoryOpts"]["repo"] == "https://flannel-io.github.io/flannel/"
    assert chart["version"] == "v0.28.4"
    assert chart["values"]["podCidr"] == "10.244.0.0/16"
    assert chart["values"]["flannel"]["backend"] == "vxlan"
    assert chart["values"]["flannel"]["backendPort"] == VXLAN_PORTS["flannel"] == 8472
    ns = kinds(rendered["flannel"], "Namespace")["kube-flannel"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert "kube-proxy" in kinds(rendered["flannel"], "DaemonSet")


def test_calico_operator_installation_vxlan_pool(rendered: dict[str, RecordingMonitor]) -> None:
    chart = charts(rendered["calico"])["tigera-operator"]
    assert chart["namespace"] == "tigera-operator"
    network = chart["values"]["installation"]["calicoNetwork"]
    assert network["bgp"] == "Disabled"
    (pool,) = network["ipPools"]
    assert (pool["cidr"], pool["encapsulation"]) == ("10.244.0.0/16", "VXLAN")
    assert kinds(rendered["calico"], "Namespace")["tigera-operator"]["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "privileged"


def test_canal_applies_the_pinned_manifest_and_patches_its_network(rendered: dict[str, RecordingMonitor]) -> None:
    monitor = rendered["canal"]
    (manifest,) = monitor.by_type("kubernetes:yaml/v2:ConfigFile")
    assert unwrap(manifest.inputs)["file"].endswith("/projectcalico/calico/v3.31.5/manifests/canal.yaml")
    (patch,) = monitor.by_type("kubernetes:core/v1:ConfigMapPatch")
    net_conf = json.loads(unwrap(patch.inputs)["data"]["net-conf.json"])
    assert net_conf == {"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "Port": 8472}}
    assert manifest.urn in patch.dependencies


def test_cilium_kube_proxy_replacement(rendered: dict[str, RecordingMonitor]) -> None:
    values = charts(rendered["cilium-kpr"])["cilium"]["values"]
    assert values["kubeProxyReplacement"] is True
    assert (values["k8sServiceHost"], values["k8sServicePort"]) == ("api.cfcr-dev.cfcr.internal", 6443)
    assert (values["tunnelProtocol"], values["tunnelPort"]) == ("vxlan", 8472)
    assert "kube-proxy" not in kinds(rendered["cilium-kpr"], "DaemonSet")
    assert not [r for r in rendered["cilium-kpr"].recorded if r.type == "cfcr:addons:KubeProxy"]
    assert charts(rendered["cilium"])["cilium"]["values"]["kubeProxyReplacement"] is False
    assert "kube-proxy" in kinds(rendered["cilium"], "DaemonSet")


def test_none_installs_no_cni_but_everything_else(rendered: dict[str, RecordingMonitor]) -> None:
    names = set(charts(rendered["none"]))
    assert names == {"metrics-server", "kubelet-csr-approver", "aws-ebs-csi-driver", "cluster-autoscaler"}
    assert "kube-proxy" in kinds(rendered["none"], "DaemonSet")


def test_every_addon_waits_for_the_gate_and_uses_the_stable_provider(rendered: dict[str, RecordingMonitor]) -> None:
    for cni, monitor in rendered.items():
        gates = [r for r in monitor.by_type(GATE) if r.name.endswith("readiness-gate")]
        assert len(gates) == 1, cni
        gate = gates[0]
        assert unwrap(gate.inputs)["url"] == API and "kubeconfig" in gate.secret_inputs
        (provider,) = monitor.by_type("pulumi:providers:kubernetes")
        inputs = unwrap(provider.inputs)
        assert inputs["clusterIdentifier"] == "cfcr-dev", "credential rotation must not replace the addons"
        assert inputs["enableServerSideApply"] == "true"
        assert gate.urn in provider.dependencies
        applied = [r for r in monitor.recorded if r.type.startswith("kubernetes:")]
        assert applied, cni
        for r in applied:
            assert gate.urn in r.dependencies, f"{cni}: {r.name} does not wait for the API"
            assert r.provider is not None and r.provider.startswith(provider.urn), r.name


def test_priority_classes_and_disruption_budgets(rendered: dict[str, RecordingMonitor]) -> None:
    monitor = rendered["calico"]
    coredns = kinds(monitor, "Deployment")["coredns"]["spec"]
    pod = coredns["template"]["spec"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert coredns["replicas"] >= 2
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert kinds(monitor, "PodDisruptionBudget")["coredns"]["spec"]["selector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert kinds(monitor, "Service")["kube-dns"]["spec"]["clusterIP"] == "10.96.0.10"
    assert kinds(monitor, "DaemonSet")["kube-proxy"]["spec"]["template"]["spec"]["priorityClassName"] == "system-node-critical"
    assert kinds(monitor, "DaemonSet")["cloud-controller-manager"]["spec"]["template"]["spec"]["priorityClassName"] == "system-node-critical"
    metrics = charts(monitor)["metrics-server"]["values"]
    assert metrics["podDisruptionBudget"]["enabled"] is True and metrics["replicas"] == 2


def test_cloud_integration_aws(rendered: dict[str, RecordingMonitor]) -> None:
    monitor = rendered["calico"]
    ebs = charts(monitor)["aws-ebs-csi-driver"]
    assert ebs["values"]["controller"]["region"] == "us-east-1"
    assert ebs["values"]["image"]["tag"] == "v1.61.1"
    sc = kinds(monitor, "StorageClass")["cfcr-default"]
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert sc["parameters"]["type"] == "gp3" and sc["parameters"]["encrypted"] == "true"
    ccm = kinds(monitor, "DaemonSet")["cloud-controller-manager"]["spec"]["template"]["spec"]["containers"][0]
    assert ccm["image"].startswith("registry.k8s.io/provider-aws/cloud-controller-manager:")
    assert "--cloud-provider=aws" in ccm["args"]


def test_cloud_config_passes_through_untouched_as_a_secret() -> None:
    spec = make_spec(cloudConfig={"Global": {"KubernetesClusterID": "c1", "DisableSecurityGroupIngress": True}})
    monitor = render(spec)
    secret = next(r for r in monitor.recorded if r.type == "kubernetes:core/v1:Secret")
    assert "stringData" in secret.secret_inputs
    text = unwrap(secret.inputs)["stringData"]["cloud.conf"]
    assert text.splitlines()[:3] == ["[Global]", "KubernetesClusterID = c1", "DisableSecurityGroupIngress = true"]
    ccm = kinds(monitor, "DaemonSet")["cloud-controller-manager"]["spec"]["template"]["spec"]["containers"][0]
    assert "--cloud-config=/etc/kubernetes/cloud-config/cloud.conf" in ccm["args"]


def test_autoscaler_discovers_the_pools_by_tag_with_the_minor_image(rendered: dict[str, RecordingMonitor]) -> None:
    values = charts(rendered["calico"])["cluster-autoscaler"]["values"]
    assert values["autoDiscovery"]["tags"] == ["k8s.io/cluster-autoscaler/enabled", "k8s.io/cluster-autoscaler/cfcr-dev"]
    assert values["image"]["tag"].startswith("v1.36.")
    assert values["awsRegion"] == "us-east-1"


def test_explicit_node_groups_when_discovery_is_off() -> None:
    from cfcr.addons.autoscaler import autoscaler_chart
    from cfcr.addons.cloud import NodeGroup
    from cfcr.addons.images import ImageRewriter
    from cfcr import channels

    spec = make_spec()
    facts = CloudFacts("aws", "us-east-1", "cfcr-dev", {"default": NodeGroup("asg-default", 2, 6)},
                       autoscaler_auto_discovery=False)
    values = autoscaler_chart(spec, channels.resolve("stable"), facts, ImageRewriter({})).values
    assert values["autoscalingGroups"] == [{"name": "asg-default", "minSize": 2, "maxSize": 6}]
    assert "autoDiscovery" not in values


def test_rbac_personas_bind_the_pki_groups() -> None:
    spec = make_spec(pki={"users": [{"name": "alice", "groups": ["ops"]}, {"name": "bob", "groups": ["readers"]},
                                    {"name": "carol", "groups": ["admins"]}]},
                     addons={"rbacGroups": {"ops": "platform-operator", "readers": "viewer", "admins": "cluster-admin"}})
    monitor = render(spec)
    bindings = {b["metadata"]["name"]: b for b in kinds(monitor, "ClusterRoleBinding").values()}
    by_group: dict[str, set[str]] = {}
    for b in bindings.values():
        for s in b["subjects"]:
            if s["kind"] == "Group":
                by_group.setdefault(s["name"], set()).add(b["roleRef"]["name"])
    assert by_group["admins"] == {"cluster-admin"}
    assert by_group["readers"] == {"view", "cfcr:cluster-reader"}
    assert by_group["ops"] == {"view", "cfcr:cluster-reader", "cfcr:platform-operator"}
    operator = kinds(monitor, "ClusterRole")["cfcr:platform-operator"]
    bind = [r for r in operator["rules"] if "bind" in r["verbs"]]
    assert bind and bind[0]["resourceNames"] == ["admin", "edit", "view"]
    assert not any("escalate" in r["verbs"] or "clusterrolebindings" in r["resources"] for r in operator["rules"])
    policy = kinds(monitor, "ValidatingAdmissionPolicy")["cfcr-protect-system-namespaces"]
    assert '"ops"' in policy["spec"]["matchConditions"][0]["expression"]


def test_optional_addons(rendered: dict[str, RecordingMonitor]) -> None:
    assert "fluent-bit" not in charts(rendered["calico"]) and "vpa" not in charts(rendered["calico"])
    spec = make_spec(addons={"logging": {"enabled": True, "output": {"Name": "loki", "Match": "*", "Host": "loki.example"}},
                             "vpa": True, "metricsServer": False, "autoscaler": False})
    monitor = render(spec)
    names = charts(monitor)
    assert {"fluent-bit", "vpa"} <= set(names) and not {"metrics-server", "cluster-autoscaler"} & set(names)
    assert "Host loki.example" in " ".join(names["fluent-bit"]["values"]["config"]["outputs"].split())
    assert kinds(monitor, "Namespace")["cfcr-logging"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def _images(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("image", "repository") and isinstance(v, str):
                found.append(v)
            else:
                found.extend(_images(v))
    elif isinstance(value, list):
        for v in value:
            found.extend(_images(v))
    return found


def test_mirrors_applied_everywhere() -> None:
    mirror = "https://mirror.example.com/v2"
    spec = make_spec(cni="cilium", registryMirrors={h: [mirror] for h in
                     ("registry.k8s.io", "quay.io", "docker.io", "ghcr.io", "public.ecr.aws")},
                     addons={"logging": {"enabled": True}, "vpa": True})
    monitor = render(spec)
    images = [img for r in k8s_objects(monitor) for img in _images(unwrap(r.inputs).get("spec", {}))]
    images += [img for c in charts(monitor).values() for img in _images(c["values"])]
    assert len(images) > 15
    assert all(i.startswith("mirror.example.com/") for i in images), [i for i in images if not i.startswith("mirror.")]
    calico = render(make_spec(cni="calico", registryMirrors={"quay.io": ["https://mirror.example.com"]}))
    values = charts(calico)["tigera-operator"]["values"]
    assert values["installation"]["registry"] == "mirror.example.com/"
    assert values["tigeraOperator"]["registry"] == "mirror.example.com"


def test_rewriting_can_be_turned_off() -> None:
    spec = make_spec(registryMirrors={"registry.k8s.io": ["https://mirror.example.com"]}, addons={"rewriteImages": False})
    image = kinds(render(spec), "Deployment")["coredns"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("registry.k8s.io/coredns/coredns:")


def test_render_writes_every_chart_with_repository_version_values(rendered: dict[str, RecordingMonitor]) -> None:
    files = kubernetes_manifests(rendered["calico"].recorded, show_secrets=False)
    helm = {k: v for k, v in files.items() if k.startswith("helm/")}
    assert len(helm) == 5
    for body in helm.values():
        chart = body["helmChart"]
        assert chart["repositoryOpts"]["repo"].startswith("https://") and chart["version"] and "values" in chart
    assert "Deployment/cfcr-dev-coredns-coredns.yaml" in files
    yaml.safe_dump(files)


def test_aws_credential_controllers_run_on_the_control_plane_host_network(
        rendered: dict[str, RecordingMonitor], monkeypatch: pytest.MonkeyPatch) -> None:
    """With an IMDSv2 hop limit of 1 only host-network processes reach the instance profile:
    cluster-autoscaler through its chart's values, the EBS controller through a transform on
    its chart (the chart has no value for it), both on control-plane nodes only."""
    cp = {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
    ca = charts(rendered["calico"])["cluster-autoscaler"]["values"]
    assert ca["hostNetwork"] is True and ca["dnsPolicy"] == "Default"
    assert ca["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""} and cp in ca["tolerations"]
    ebs = charts(rendered["calico"])["aws-ebs-csi-driver"]["values"]["controller"]
    assert ebs["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""} and cp in ebs["tolerations"]

    from cfcr.addons import base

    seen: dict[str, list[Any]] = {}
    original = base.Addon.chart

    def recording(self: base.Addon, spec: Any, depends_on: Any = (), transforms: Any = ()) -> Any:
        seen[spec.chart] = list(transforms)
        return original(self, spec, depends_on, transforms)

    monkeypatch.setattr(base.Addon, "chart", recording)
    render(make_spec(cni="calico"))
    assert len(seen["aws-ebs-csi-driver"]) == 1

    class Args:
        type_ = "kubernetes:apps/v1:Deployment"
        name = "x"
        props = {"metadata": {"name": "ebs-csi-controller"}, "spec": {"template": {"spec": {"containers": []}}}}
        opts = None

    result = seen["aws-ebs-csi-driver"][0](Args())
    assert result.props["spec"]["template"]["spec"]["hostNetwork"] is True


QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/cfcr-dev-termination"
NTH_CHART = "oci://public.ecr.aws/aws-ec2/helm/aws-node-termination-handler"


def render_with_queue(spec: ClusterSpec, queue_url: Any = QUEUE_URL, cloud: Any = None) -> RecordingMonitor:
    def program() -> ClusterAddons:
        assert spec.name is not None
        facts = cloud or CloudFacts.from_spec(spec, termination_queue_url=queue_url)
        return ClusterAddons(spec.name, ClusterAddonsArgs(
            spec, pulumi.Output.secret("apiVersion: v1\nkind: Config\n"), API, facts))

    monitor, _, _ = run_program(program, project="cfcr", stack="dev")
    return monitor


def test_termination_handler_drains_from_the_queue_on_the_control_plane_host_network(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """aws-node-termination-handler in queue mode: the queue URL (an Output, as the AWS layer
    gives it) and the region reach its values; it runs on the control plane, finds nodes by
    provider ID, and a transform puts its Deployment on the host network (the chart's
    queue-mode Deployment has no value for it)."""
    from cfcr.addons import base

    seen: dict[str, list[Any]] = {}
    original = base.Addon.chart

    def recording(self: base.Addon, spec: Any, depends_on: Any = (), transforms: Any = ()) -> Any:
        seen[spec.reference] = list(transforms)
        return original(self, spec, depends_on, transforms)

    monkeypatch.setattr(base.Addon, "chart", recording)
    monitor = render_with_queue(make_spec(cni="calico"), pulumi.Output.from_input(QUEUE_URL))
    (resource,) = [r for r in monitor.by_type(CHART) if unwrap(r.inputs)["chart"] == NTH_CHART]
    chart = unwrap(resource.inputs)
    assert chart["version"] == "0.27.1" and chart["namespace"] == "kube-system"
    assert "repositoryOpts" not in chart, "an OCI chart is installed by its oci:// URL"
    values = chart["values"]
    assert values["enableSqsTerminationDraining"] is True
    assert values["queueURL"] == QUEUE_URL and values["awsRegion"] == "us-east-1"
    assert values["checkTagBeforeDraining"] is False and values["deleteSqsMsgIfNodeNotFound"] is True
    assert values["useProviderId"] is True, "cfcr's node names are not the instances' private DNS names"
    assert values["priorityClassName"] == "system-cluster-critical"
    cp = {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
    assert values["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""} and cp in values["tolerations"]
    assert values["replicas"] == 1
    (nth,) = [r for r in monitor.recorded if r.type == "cfcr:addons:TerminationHandler"]
    gate = next(r for r in monitor.by_type(GATE) if r.name.endswith("readiness-gate"))
    assert gate.urn in resource.dependencies and resource.parent == nth.urn

    (transform,) = seen[NTH_CHART]

    class Args:
        type_ = "kubernetes:apps/v1:Deployment"
        name = "x"
        props = {"metadata": {"name": "aws-node-termination-handler", "namespace": "kube-system"},
                 "spec": {"template": {"metadata": {"labels": {"k8s-app": "aws-node-termination-handler"}},
                                       "spec": {"containers": [{"name": "aws-node-termination-handler"}]}}}}
        opts = None

    pod = transform(Args()).props["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "Default"


def test_termination_handler_extra_values_and_mirrors() -> None:
    spec = make_spec(registryMirrors={"public.ecr.aws": ["https://mirror.example.com/v2/ecr"]},
                     addons={"extraValues": {"termination-handler": {"workers": 3, "queueURL": "https://sqs.x/other"}}})
    values = charts(render_with_queue(spec))[NTH_CHART]["values"]
    assert values["workers"] == 3 and values["queueURL"] == "https://sqs.x/other", "the user's values win"
    assert values["image"]["repository"] == "mirror.example.com/ecr/aws-ec2/aws-node-termination-handler"


def test_no_termination_handler_without_a_queue_or_off_aws(rendered: dict[str, RecordingMonitor]) -> None:
    for cni, monitor in rendered.items():
        assert NTH_CHART not in charts(monitor), cni
        assert not [r for r in monitor.recorded if r.type == "cfcr:addons:TerminationHandler"], cni
    gcp = load_spec({"cloud": "gcp", "region": "europe-west4"}, "dev")
    facts = CloudFacts.from_spec(gcp, termination_queue_url=QUEUE_URL)
    assert NTH_CHART not in charts(render_with_queue(gcp, cloud=facts))


def test_termination_handler_chart_refuses_other_clouds_and_a_missing_queue() -> None:
    from cfcr import channels
    from cfcr.addons.images import ImageRewriter
    from cfcr.addons.termination import termination_handler_chart

    release = channels.resolve("stable")
    spec = make_spec()
    with pytest.raises(ValueError, match="queue"):
        termination_handler_chart(spec, release, CloudFacts.from_spec(spec), ImageRewriter({}))
    with pytest.raises(ValueError, match="aws"):
        termination_handler_chart(spec, release, CloudFacts("gcp", "europe-west4", "cfcr-dev", termination_queue_url=QUEUE_URL),
                                  ImageRewriter({}))
