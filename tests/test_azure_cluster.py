"""cfcr.azure.Cluster under the mock runtime: the Azure stacks' renders, checked for what issue 14
promises (API load balancers and a private name, members that reach the API on themselves,
Trusted Launch members with encryption at host and an etcd disk that outlives them, one member
at a time, self-repairing rolling scale sets with the autoscaler's tags, spot, identities on
every machine, custom data within Azure's limit and without key material)."""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from cfcr.azure.api_lb import internal_address
from cfcr.azure.cluster import zone_names
from cfcr.azure.contract import EXPORTS
from cfcr.azure.control_plane import CUSTOM_DATA_MAX, ETCD_LUN, custom_data
from cfcr.azure.image import image_reference, ubuntu_urn
from cfcr.azure.network import control_plane_range
from cfcr.azure.node_hook import CLIENT_ID_TAG, VAULT_TAG
from cfcr.azure.node_pool import autoscaler_tags, node_health
from cfcr.azure.tags import MEMBER_TAG, POOL_TAG
from cfcr.config import load_spec, load_stack
from cfcr.config.topology import control_plane_members, pool_share
from cfcr.constants import private_api_name
from cfcr.node.userdata import local_api_command
from cfcr.render import RecordedResource, RenderResult, render_stack, unwrap
from tests.support.tools import needs
from tests.support.validators import cloud_init_failures, load_cloud_config, plain, shellcheck_failures

AZURE_STACKS = ["azure-stable", "azure-edge"]
VM = "azure-native:compute:VirtualMachine"
VMSS = "azure-native:compute:VirtualMachineScaleSet"
LB = "azure-native:network:LoadBalancer"
NIC = "azure-native:network:NetworkInterface"
DISK = "azure-native:compute:Disk"
GATE = "pulumi-python:dynamic:Resource"


@pytest.fixture(scope="module", params=AZURE_STACKS)
def render(request: pytest.FixtureRequest) -> RenderResult:
    return render_stack(request.param, None, show_secrets=True)


def of_type(result: RenderResult, token: str) -> list[RecordedResource]:
    return [r for r in result.resources if r.type == token]


def inputs(r: RecordedResource) -> dict[str, Any]:
    value = unwrap(r.inputs)
    assert isinstance(value, dict)
    return value


def one(result: RenderResult, token: str, name: str) -> RecordedResource:
    (found,) = [r for r in of_type(result, token) if r.name == name]
    return found


def custom_data_of(r: RecordedResource) -> bytes:
    props = inputs(r)
    profile = props["osProfile"] if r.type == VM else props["virtualMachineProfile"]["osProfile"]
    return base64.b64decode(profile["customData"])


# --------------------------------------------------------------------------- shape

def test_the_cluster_component_parents_everything(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    assert render.resources[0].type == "cfcr:azure:Cluster" and render.resources[0].name == spec.name
    pools = of_type(render, "cfcr:azure:NodePool")
    assert sorted(p.name for p in pools) == sorted(f"{spec.name}-{p.name}" for p in spec.node_pools)
    assert all(r.parent is not None for r in render.resources[1:])
    (bootstrap,) = of_type(render, "cfcr:bootstrap:ClusterBootstrap")
    assert bootstrap.parent == render.resources[0].urn


def test_every_output_of_the_contract_is_exported(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    assert set(EXPORTS) <= set(render.exports)
    assert render.exports["internalApiLoadBalancerAddress"] == internal_address(spec)
    assert render.exports["privateApiServerUrl"] == f"https://{private_api_name(str(spec.name))}:6443"
    vms = {inputs(r)["vmName"]: r for r in of_type(render, VM)}
    assert render.exports["controlPlaneInstanceIds"] == [vms[m.name].outputs["vmId"] for m in control_plane_members(spec)]
    assert set(render.exports["nodePoolScaleSets"]) == {p.name for p in spec.node_pools}
    assert render.exports["keyVault"].startswith(str(spec.name)[:10])


# --------------------------------------------------------------------------- API endpoint

def test_nodes_use_an_internal_standard_load_balancer_probing_readyz_under_a_private_name(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    internal = inputs(one(render, LB, f"{spec.name}-api-internal"))
    assert internal["sku"]["name"] == "Standard"
    (front,) = internal["frontendIPConfigurations"]
    assert front["privateIPAddress"] == internal_address(spec) and front["privateIPAllocationMethod"] == "Static"
    assert "subnet" in front and "publicIPAddress" not in front
    assert ipaddress.ip_address(internal_address(spec)) in ipaddress.ip_network(control_plane_range(spec))
    assert internal_address(spec) not in {m.address for m in control_plane_members(spec)}
    (probe,) = internal["probes"]
    assert (probe["protocol"], probe["port"], probe["requestPath"]) == ("Https", 6443, "/readyz")
    (rule,) = internal["loadBalancingRules"]
    assert rule["frontendPort"] == rule["backendPort"] == 6443 and rule["enableTcpReset"] is True
    assert rule["probe"]["id"].endswith("/probes/readyz")
    assert rule["backendAddressPool"]["id"].endswith(f"/loadBalancers/{internal['loadBalancerName']}/backendAddressPools/members")
    name = private_api_name(str(spec.name))
    (zone,) = of_type(render, "azure-native:privatedns:PrivateZone")
    assert inputs(zone)["privateZoneName"] == name.split(".", 1)[1]
    (link,) = of_type(render, "azure-native:privatedns:VirtualNetworkLink")
    assert inputs(link)["registrationEnabled"] is False and inputs(link)["privateZoneName"] == name.split(".", 1)[1]
    (record,) = of_type(render, "azure-native:privatedns:PrivateRecordSet")
    assert inputs(record)["relativeRecordSetName"] == "api"
    assert inputs(record)["aRecords"] == [{"ipv4Address": internal_address(spec)}]


def test_a_public_api_has_its_own_load_balancer_on_a_static_standard_address(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    publics = [r for r in of_type(render, LB) if r.name == f"{spec.name}-api-public"]
    ips = [r for r in of_type(render, "azure-native:network:PublicIPAddress") if r.name == f"{spec.name}-api-ip"]
    assert bool(publics) == bool(ips) == spec.networking.api_public
    if not spec.networking.api_public:
        assert render.exports["apiLoadBalancerAddress"] == internal_address(spec)
        assert render.exports["apiServerUrl"] == f"https://{private_api_name(str(spec.name))}:6443"
        return
    ip = ips[0]
    assert inputs(ip)["sku"]["name"] == "Standard" and inputs(ip)["publicIPAllocationMethod"] == "Static"
    assert inputs(ip)["zones"] == zone_names(spec)
    props = inputs(publics[0])
    (front,) = props["frontendIPConfigurations"]
    assert front["publicIPAddress"]["id"] == ip.id
    (rule,) = props["loadBalancingRules"]
    assert rule["disableOutboundSnat"] is True, "outbound goes through the NAT gateway"
    assert render.exports["apiLoadBalancerAddress"] == ip.outputs["ipAddress"]
    assert render.exports["apiServerUrl"] == f"https://{ip.outputs['ipAddress']}:6443"


def test_members_reach_the_api_on_themselves_and_workers_through_the_load_balancer(render: RenderResult) -> None:
    """The hairpin: a member's API name is 127.0.0.1 (written on every boot), a worker's the
    internal load balancer's (the private zone)."""
    spec = load_stack(render.stack)
    name = private_api_name(str(spec.name))
    for vm in of_type(render, VM):
        doc = load_cloud_config(custom_data_of(vm))
        assert doc["bootcmd"] == [local_api_command(name)] and doc["manage_etc_hosts"] is False
    for vmss in of_type(render, VMSS):
        doc = load_cloud_config(custom_data_of(vmss))
        assert "bootcmd" not in doc and "manage_etc_hosts" not in doc
    assert local_api_command(name) == ["sh", "-c", f"grep -qxF '127.0.0.1 {name}' /etc/hosts || "
                                                   f"echo '127.0.0.1 {name}' >> /etc/hosts"]


# --------------------------------------------------------------------------- control plane

def test_members_are_trusted_launch_zonal_private_and_keep_their_etcd_disk(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    members = control_plane_members(spec)
    zones = zone_names(spec)
    vms = {inputs(r)["vmName"]: r for r in of_type(render, VM)}
    assert sorted(vms) == sorted(m.name for m in members)
    nics = {r.id: r for r in of_type(render, NIC)}
    disks = {r.id: r for r in of_type(render, DISK)}
    pools = sorted(f"{r.id}/backendAddressPools/members" for r in of_type(render, LB))
    identities = {r.name: r for r in of_type(render, "azure-native:managedidentity:UserAssignedIdentity")}
    vault = one(render, "azure-native:keyvault:Vault", f"{spec.name}-kv")
    for i, member in enumerate(members):
        vm = vms[member.name]
        props = inputs(vm)
        assert props["zones"] == [zones[i % len(zones)]]
        assert props["securityProfile"] == {"securityType": "TrustedLaunch", "encryptionAtHost": True,
                                            "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}}
        assert props["osProfile"]["computerName"] == member.name
        assert props["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] is True
        assert "userData" not in props, "IMDS shows userData to every process"
        identity = identities[f"{spec.name}-control-plane-{i}"]
        assert props["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity.id]}
        tags = props["tags"]
        assert tags[MEMBER_TAG] == member.name and tags[CLIENT_ID_TAG] == identity.outputs["clientId"]
        assert tags[VAULT_TAG] == vault.outputs["name"]
        (ref,) = props["networkProfile"]["networkInterfaces"]
        ipc = inputs(nics[ref["id"]])["ipConfigurations"][0]
        assert ipc["privateIPAddress"] == member.address and ipc["privateIPAllocationMethod"] == "Static"
        assert sorted(p["id"] for p in ipc["loadBalancerBackendAddressPools"]) == pools
        assert not ipc.get("publicIPAddress")
        (data,) = props["storageProfile"]["dataDisks"]
        assert (data["lun"], data["createOption"], data["deleteOption"]) == (ETCD_LUN, "Attach", "Detach")
        disk = disks[data["managedDisk"]["id"]]
        assert inputs(disk)["sku"]["name"] == "Premium_LRS" and inputs(disk)["zones"] == props["zones"]
        assert inputs(disk)["diskSizeGB"] == spec.control_plane.etcd_disk_gb
        assert disk.options["protect"] is True, "the etcd disk is never deleted with the cluster by accident"
        assert vm.options["replaceOnChanges"] == ["osProfile.customData"] and vm.options["deleteBeforeReplace"]
        gate = one(render, GATE, f"{spec.name}-cp-{i}-ready")
        assert unwrap(gate.inputs)["machine"] == vm.outputs["vmId"], "the gate waits for this VM, not its name"
        assert unwrap(gate.inputs)["providerId"] == f"azure://{vm.id}"
        if i:
            assert f"{spec.name}-cp-{i - 1}-ready" in " ".join(vm.dependencies), "one member at a time"
    ready = next(r for r in render.resources if r.type == GATE and r.name.endswith("-readiness-gate"))
    assert f"{spec.name}-cp-{len(members) - 1}-ready" in " ".join(ready.dependencies)
    assert unwrap(ready.inputs)["machines"] == [vms[m.name].outputs["vmId"] for m in members]


def test_custom_data_fits_azures_limit_and_carries_no_key_material(render: RenderResult) -> None:
    values = [unwrap(inputs(r)["properties"]["value"]) for r in of_type(render, "azure-native:keyvault:Secret")
              if "-script-" not in r.name]
    secret_lines = [line for v in values for line in str(v).splitlines()
                    if len(line) > 12 and "CERTIFICATE" not in line and "PUBLIC KEY" not in line and "#!" not in line]
    assert len(secret_lines) > 20
    kubeconfig = yaml.safe_load(render.exports["adminKubeconfig"])
    secret_lines.append(kubeconfig["users"][0]["user"]["client-key-data"])
    machines = [*of_type(render, VM), *of_type(render, VMSS)]
    assert machines
    for r in machines:
        raw = custom_data_of(r)
        assert len(raw) <= CUSTOM_DATA_MAX
        text = plain(raw).decode()
        assert "PRIVATE KEY" not in text, r.name
        leaked = [line for line in secret_lines if line in text and not line.startswith(("set -", "if ", "fi"))]
        assert not leaked, f"{r.name} carries secret material"
    with pytest.raises(ValueError, match="control-plane-0: custom data is 65536 bytes; Azure takes at most 65535"):
        custom_data(b"x" * 65536, "control-plane-0")


def test_machines_wait_for_network_rules_grants_and_the_api_name(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    deps = " ".join(of_type(render, VM)[0].dependencies)
    for needed in (f"{spec.name}-deny-all-inbound", f"{spec.name}-workers", f"{spec.name}-control-plane-0-role",
                   f"{spec.name}-api-record", f"{spec.name}-zone-link", "SecurityRule", "RoleAssignment"):
        assert needed in deps, needed


# --------------------------------------------------------------------------- pools

def test_one_self_repairing_rolling_scale_set_per_pool(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    sets = {inputs(r)["tags"][POOL_TAG]: r for r in of_type(render, VMSS)}
    assert sorted(sets) == sorted(p.name for p in spec.node_pools)
    last_gate = f"{spec.name}-cp-{spec.control_plane.count - 1}-ready"
    zones = zone_names(spec)
    for index, pool in enumerate(spec.node_pools):
        r = sets[pool.name]
        props = inputs(r)
        assert props["orchestrationMode"] == "Uniform"
        assert props["overprovision"] is False and props["singlePlacementGroup"] is False
        assert props["zones"] == pool_share(spec, pool, index, zones)
        assert props["automaticRepairsPolicy"] == {"enabled": True, "gracePeriod": "PT15M", "repairAction": "Replace"}
        rolling = props["upgradePolicy"]["rollingUpgradePolicy"]
        assert props["upgradePolicy"]["mode"] == "Rolling"
        assert rolling["maxBatchInstancePercent"] == 20 and rolling["prioritizeUnhealthyInstances"] is True
        assert rolling["maxSurge"] is True
        (health,) = props["virtualMachineProfile"]["extensionProfile"]["extensions"]
        assert (health["publisher"], health["type"]) == ("Microsoft.ManagedServices", "ApplicationHealthLinux")
        assert health["settings"] == node_health(spec)
        # binary health states: kube-proxy's /livez answers 200 without the rich states' JSON body
        assert health["typeHandlerVersion"] == "1.0" and "gracePeriod" not in health["settings"]
        assert health["settings"]["port"] == 10256 and health["settings"]["requestPath"] == "/livez"
        profile = props["virtualMachineProfile"]
        assert profile["securityProfile"]["securityType"] == "TrustedLaunch"
        assert profile["securityProfile"]["encryptionAtHost"] is True
        assert profile["scheduledEventsProfile"]["terminateNotificationProfile"] == {"enable": True,
                                                                                     "notBeforeTimeout": "PT5M"}
        if pool.spot:
            assert (profile["priority"], profile["evictionPolicy"]) == ("Spot", "Delete")
            assert profile["billingProfile"] == {"maxPrice": -1}
        else:
            assert profile["priority"] == "Regular" and "evictionPolicy" not in profile
        desired = pool.desired_size if pool.desired_size is not None else pool.min_size
        assert props["sku"]["capacity"] == desired and r.options["ignoreChanges"] == ["sku.capacity"]
        tags = props["tags"]
        assert tags["k8s.io_cluster-autoscaler_enabled"] == "true"
        assert tags[f"k8s.io_cluster-autoscaler_{spec.name}"] == "owned"
        assert (tags["min"], tags["max"]) == (str(pool.min_size), str(pool.max_size))
        assert tags["k8s.io_cluster-autoscaler_node-template_label_cfcr.io_pool"] == pool.name
        assert CLIENT_ID_TAG in tags and VAULT_TAG in tags
        identity = one(render, "azure-native:managedidentity:UserAssignedIdentity", f"{spec.name}-worker-{pool.name}")
        assert props["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity.id]}
        prefix = profile["osProfile"]["computerNamePrefix"]
        assert prefix == prefix.lower() and len(prefix) <= 57
        assert last_gate in " ".join(r.dependencies), "workers roll after the whole control plane"
        ipc = profile["networkProfile"]["networkInterfaceConfigurations"][0]["ipConfigurations"][0]
        assert not ipc.get("publicIPAddressConfiguration") and not ipc.get("loadBalancerBackendAddressPools")


def test_the_autoscaler_tags_carry_labels_and_taints_for_scale_from_zero() -> None:
    spec = load_stack("azure-edge")
    spot = next(p for p in spec.node_pools if p.spot)
    tags = autoscaler_tags("c1", spot)
    assert tags["k8s.io_cluster-autoscaler_node-template_label_node.kubernetes.io_capacity"] == "spot"
    assert tags["k8s.io_cluster-autoscaler_node-template_taint_node.kubernetes.io_capacity"] == "spot:NoSchedule"
    assert tags["min"] == "0"


def test_under_ciliums_kube_proxy_replacement_the_health_check_is_the_kubelets_port() -> None:
    spec = load_spec({"cfcr:cloud": "azure", "cfcr:region": "westeurope", "cfcr:cni": "cilium",
                      "cfcr:ciliumKubeProxyReplacement": True}, "a")
    assert node_health(spec)["protocol"] == "tcp" and node_health(spec)["port"] == 10250
    assert "requestPath" not in node_health(spec)


# --------------------------------------------------------------------------- images, zones

def test_images_are_canonicals_current_lts_or_the_configured_one(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    for r in of_type(render, VM):
        assert inputs(r)["storageProfile"]["imageReference"] == {
            "publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}
    assert spec.image.id is None
    assert ubuntu_urn("24.04", "arm64") == "Canonical:ubuntu-24_04-lts:server-arm64:latest"
    gallery = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/x/images/y/versions/1.0.0"
    assert image_reference(gallery).id == gallery  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"cfcr:image.id: got 'ami-123'; on azure give a Marketplace URN"):
        image_reference("ami-123")


def test_zones_default_to_azures_numbers() -> None:
    spec = load_spec({"cfcr:cloud": "azure", "cfcr:region": "westeurope"}, "a")
    assert zone_names(spec) == ["1", "2", "3"]
    spec = load_spec({"cfcr:cloud": "azure", "cfcr:region": "westeurope",
                      "cfcr:controlPlane": {"count": 3, "zones": ["2", "3"]}}, "a")
    assert zone_names(spec) == ["2", "3"]


# --------------------------------------------------------------------------- what cloud-init and bash get

def _custom_data(result: RenderResult) -> dict[str, bytes]:
    return {r.name: custom_data_of(r) for r in [*of_type(result, VM), *of_type(result, VMSS)]}


@needs("cloud-init")
def test_every_custom_data_passes_cloud_init_schema(render: RenderResult, tmp_path: Path) -> None:
    failures = [f for name, raw in _custom_data(render).items() for f in cloud_init_failures(name, raw, tmp_path)]
    assert not failures, "\n".join(failures)


@needs("shellcheck")
def test_every_custom_data_script_passes_shellcheck(render: RenderResult, tmp_path: Path) -> None:
    failures = [f for name, raw in _custom_data(render).items() for f in shellcheck_failures(name, raw, tmp_path)]
    assert not failures, "\n".join(failures)


def test_the_public_address_is_an_ip_san_of_the_api_server_certificate(render: RenderResult) -> None:
    spec = load_stack(render.stack)
    (request,) = [r for r in of_type(render, "tls:index/certRequest:CertRequest")
                  if r.name == f"{spec.name}-pki-apiserver-csr"]
    props = inputs(request)
    if spec.networking.api_public:
        address = render.exports["apiLoadBalancerAddress"]
        assert address in props["ipAddresses"] and address not in props["dnsNames"]
    assert private_api_name(str(spec.name)) in props["dnsNames"]


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_only_azures_members_map_the_api_name_to_themselves(cloud: str) -> None:
    """AWS's NLB and GCP's proxy load balancer carry a member's own calls; Azure's does not."""
    from cfcr import channels
    from cfcr.node.context import Role, members_use_local_api
    from cfcr.node.userdata import render_user_data
    from tests.test_node_userdata import make_ctx, make_hook, make_spec

    hook = make_hook(cloud)
    assert members_use_local_api(hook) is (cloud == "azure")
    spec = make_spec(cloud, 3)
    release = channels.resolve(spec.kubernetes.version)
    ctx = make_ctx(spec)
    member = load_cloud_config(render_user_data(spec, release, ctx, Role.control_plane(0), hook))
    worker = load_cloud_config(render_user_data(spec, release, ctx, Role.worker(spec.node_pools[0].name), hook))
    assert ("bootcmd" in member) is (cloud == "azure") and "bootcmd" not in worker
    if cloud == "azure":
        assert member["bootcmd"] == [local_api_command(ctx.api_endpoint)]


# --------------------------------------------------------------------------- cfcr:azure.protectEtcdDisks


@pytest.mark.parametrize("protect", [True, False])
def test_the_etcd_disks_are_protected_as_configured(protect: bool) -> None:
    from cfcr.config import read_stack_config
    from cfcr.render.mocks import RecordingMonitor

    protected: dict[str, bool] = {}
    original = RecordingMonitor.RegisterResource

    def spy(self: RecordingMonitor, request: Any) -> Any:
        if request.type == "azure-native:compute:Disk":
            protected[request.name] = bool(request.protect)
        return original(self, request)

    config = {**read_stack_config("azure-stable"), **({} if protect else {"cfcr:azure": {"protectEtcdDisks": False}})}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RecordingMonitor, "RegisterResource", spy)
        render_stack("azure-stable", None, config=config)
    assert len(protected) == 5 and set(protected.values()) == {protect}, protected
