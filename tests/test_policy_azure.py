"""The pack on Azure (azure-native) resources, on the props the mock render of the Azure stacks
produces: both stacks pass every policy, each Azure policy reaches the resources it is about
(stricter settings make it report exactly them), and each weakening of a rendered resource is
reported by exactly the policy that owns it. Then the Azure rules on constructed props."""

from __future__ import annotations

import base64
import copy
import dataclasses
import gzip
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cfcr.policy import types as t
from cfcr.policy.identity import AZURE_KEY_VAULT_SECRETS_OFFICER, AZURE_KEY_VAULT_SECRETS_USER, AZURE_OWNER
from cfcr.policy.runner import PackReport, run_pack
from cfcr.render.mocks import RecordedResource
from tests.support.policy import check, res, stack_check

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"
Inputs = dict[str, Any]
Change = Callable[[dict[tuple[str, str], Inputs], list[RecordedResource]], None]


@dataclasses.dataclass
class Rendered:
    stack: str
    resources: list[RecordedResource]
    user_data: dict[str, bytes]


def _render(stack: str) -> Rendered:
    from cfcr.render import render_stack

    result = render_stack(stack, None, show_secrets=True)
    return Rendered(stack, list(result.resources), dict(result.user_data))


@pytest.fixture(scope="module")
def stable() -> Rendered:
    return _render("azure-stable")


@pytest.fixture(scope="module")
def edge() -> Rendered:
    return _render("azure-edge")


STORAGE_ACCOUNT = {"accountName": "cfcrbackups", "resourceGroupName": "cfcr-azure-stable-rg",
                   "kind": "StorageV2", "sku": {"name": "Standard_ZRS"}, "allowBlobPublicAccess": False,
                   "enableHttpsTrafficOnly": True, "minimumTlsVersion": "TLS1_2"}
CONTAINER = {"accountName": "cfcrbackups", "resourceGroupName": "cfcr-azure-stable-rg",
             "containerName": "etcd", "publicAccess": "None"}


def _added(type_token: str, name: str, inputs: Inputs, stack: str = "azure-stable") -> RecordedResource:
    urn = f"urn:pulumi:{stack}::cfcr::cfcr:azure:Cluster${type_token}::{name}"
    return RecordedResource(urn=urn, type=type_token, name=name, custom=True, parent=None, dependencies=[],
                            inputs=copy.deepcopy(inputs))


def _pack(rendered: Rendered, change: Change | None = None, config: dict[str, Any] | None = None,
          storage: bool = True) -> PackReport:
    """The pack over a copy of the render (plus a backups storage account and container), after
    ``change`` edited the inputs (keyed by (type, name)) or the resource list."""
    resources = [dataclasses.replace(r, inputs=copy.deepcopy(r.inputs), outputs=copy.deepcopy(r.outputs))
                 for r in rendered.resources]
    if storage:
        resources += [_added(t.AZ_STORAGE_ACCOUNT, "cfcr-backups", STORAGE_ACCOUNT),
                      _added(t.AZ_BLOB_CONTAINER, "cfcr-backups-etcd", CONTAINER)]
    if change is not None:
        before = {r.urn: set(r.inputs) for r in resources}
        change({(r.type, r.name): r.inputs for r in resources}, resources)
        for r in resources:  # the (stand-in) provider echoes inputs as outputs: keep them in step
            if r.outputs:
                kept = {k: v for k, v in r.outputs.items() if k not in before.get(r.urn, set())}
                r.outputs = {**kept, **copy.deepcopy(r.inputs)}
    return run_pack(resources, stack=rendered.stack, user_data=rendered.user_data, config=config)


@pytest.mark.parametrize("stack", ["azure-stable", "azure-edge"])
def test_the_azure_stacks_pass_every_policy(stack: str, stable: Rendered, edge: Rendered) -> None:
    rendered = stable if stack == "azure-stable" else edge
    report = _pack(rendered)
    assert report.violations == [], report.format()
    types = {r.type for r in rendered.resources}
    assert {t.AZ_VM, t.AZ_VMSS, t.AZ_DISK, t.AZ_NSG, t.AZ_SECURITY_RULE, t.AZ_NIC, t.AZ_KEY_VAULT,
            t.AZ_ROLE_ASSIGNMENT, t.AZ_ROLE_DEFINITION, t.AZ_LOAD_BALANCER, t.AZ_CLUSTER} <= types


# ----------------------------------------------------------------------------- editing the render

NAME = "cfcr-azure-stable"


def _inputs(found: dict[tuple[str, str], Inputs], type_token: str, name: str) -> Inputs:
    return found[(type_token, name)]


def _edit(type_token: str, name: str, edit: Callable[[Inputs], None]) -> Change:
    return lambda found, _: edit(_inputs(found, type_token, name))


def _set(type_token: str, name: str, *path: str, value: Any) -> Change:
    def edit(inputs: Inputs) -> None:
        *parents, last = path
        for key in parents:
            inputs = inputs.setdefault(key, {})
        if value is None:
            inputs.pop(last, None)
        else:
            inputs[last] = value
    return _edit(type_token, name, edit)


def _add(type_token: str, name: str, inputs: Inputs) -> Change:
    return lambda _, resources: resources.append(_added(type_token, name, inputs))


def _rule(name: str, port: str, source: str, **more: Any) -> Change:
    return _add(t.AZ_SECURITY_RULE, name, {
        "securityRuleName": name, "networkSecurityGroupName": f"{NAME}-nsg", "resourceGroupName": f"{NAME}-rg",
        "direction": "Inbound", "access": "Allow", "protocol": "Tcp", "priority": 200,
        "sourcePortRange": "*", "destinationPortRange": port, "sourceAddressPrefix": source, **more})


def _custom_data(type_token: str, name: str, payload: bytes) -> Change:
    path = ("virtualMachineProfile", "osProfile") if type_token == t.AZ_VMSS else ("osProfile",)
    return _set(type_token, name, *path, "customData", value=base64.b64encode(payload).decode())


def _role_assignments(found: dict[tuple[str, str], Inputs], role: str) -> Iterator[Inputs]:
    return (i for (kind, _), i in found.items() if kind == t.AZ_ROLE_ASSIGNMENT and role in i["roleDefinitionId"])


def _first_reader(edit: Callable[[Inputs], None]) -> Change:
    return lambda found, _: edit(next(_role_assignments(found, AZURE_KEY_VAULT_SECRETS_USER)))


def _vault_scope(inputs: Inputs) -> None:
    inputs["scope"] = inputs["scope"].split("/secrets/")[0]


def _officer_on_a_key(inputs: Inputs) -> None:
    inputs["roleDefinitionId"] = inputs["roleDefinitionId"].replace(AZURE_KEY_VAULT_SECRETS_USER,
                                                                    AZURE_KEY_VAULT_SECRETS_OFFICER)


def _production(found: dict[tuple[str, str], Inputs], _: list[RecordedResource]) -> None:
    (summary,) = [i for (kind, _), i in found.items() if kind == t.BOOTSTRAP]
    summary["production"] = True


VM, VMSS = (t.AZ_VM, f"{NAME}-cp-0"), (t.AZ_VMSS, f"{NAME}-general")
ETCD_DISK = (t.AZ_DISK, f"{NAME}-cp-0-etcd")
VAULT = (t.AZ_KEY_VAULT, f"{NAME}-kv")
ACCOUNT, BLOBS = (t.AZ_STORAGE_ACCOUNT, "cfcr-backups"), (t.AZ_BLOB_CONTAINER, "cfcr-backups-etcd")
CLOUD_CONFIG = "#cloud-config\nwrite_files:\n- path: /etc/kubernetes/pki/ca.key\n  content: |\n"
TOKEN = "#!/bin/sh\nkubeadm join api:6443 --token abcdef.0123456789abcdef\n"

WEAKENINGS: dict[str, tuple[Change, str, str]] = {
    # name: (change to the azure-stable render, the one policy that reports it, a fragment of its message)
    "ssh from the internet": (_rule("ssh", "22", "Internet"), "no-ssh-from-internet",
                              "SSH (port 22) is open to Internet"),
    "rdp from Azure's public ranges": (_rule("rdp", "3389", "AzureCloud"), "no-ssh-from-internet",
                                       "RDP (port 3389) is open to AzureCloud"),
    "ssh inside the nsg's own rules": (_set(t.AZ_NSG, f"{NAME}-nsg", "securityRules", value=[{
        "name": "ops-ssh", "direction": "Inbound", "access": "Allow", "protocol": "*", "priority": 300,
        "destinationPortRanges": ["22", "443"], "sourceAddressPrefixes": ["198.51.100.7/32"]}]),
        "no-ssh-from-internet", "securityRules[ops-ssh]: SSH (port 22) is open to 198.51.100.7/32"),
    "the api to everyone": (_set(t.AZ_SECURITY_RULE, f"{NAME}-api-from-clients", "sourceAddressPrefix",
                                 value="*"), "api-allowed-cidrs", "the API (port 6443) is open to *"),
    "nodeports from the internet": (_rule("nodeports", "30000-32767", "0.0.0.0/0"), "no-world-ingress",
                                    "30000-32767 open to 0.0.0.0/0"),
    "web ports from the internet": (_rule("web", "80-443", "Internet", protocol="*"), "no-world-ingress",
                                    "80-443 open to Internet"),
    "no trusted launch": (_set(*VM, "securityProfile", "securityType", value=None), "verified-boot",
                          "securityProfile.securityType is 'unset'"),
    "secure boot off": (_set(*VMSS, "virtualMachineProfile", "securityProfile", "uefiSettings",
                             "secureBootEnabled", value=False), "verified-boot", "secureBootEnabled is not true"),
    "vTPM off": (_set(*VM, "securityProfile", "uefiSettings", "vTpmEnabled", value=False), "verified-boot",
                 "vTpmEnabled is not true"),
    "no encryption at host": (_set(*VMSS, "virtualMachineProfile", "securityProfile", "encryptionAtHost",
                                   value=False), "disks-encrypted", "encryptionAtHost is not true"),
    "a key in custom data": (_custom_data(*VM, (CLOUD_CONFIG + "    " + PEM.replace("\n", "\n    ")).encode()),
                             "no-key-material-in-user-data", "osProfile.customData"),
    "a token in gzipped custom data": (_custom_data(*VMSS, gzip.compress(TOKEN.encode())),
                                       "no-key-material-in-user-data", "bootstrap token"),
    "a key in user data": (_set(*VMSS, "virtualMachineProfile", "userData", value=base64.b64encode(
        PEM.encode()).decode()), "no-key-material-in-user-data", "virtualMachineProfile.userData"),
    "no automatic repairs": (_set(*VMSS, "automaticRepairsPolicy", "enabled", value=False),
                             "node-pools-self-heal", "automaticRepairsPolicy.enabled is not true"),
    "repairs without a health signal": (_set(*VMSS, "virtualMachineProfile", "extensionProfile", value=None),
                                        "node-pools-self-heal", "no application health extension"),
    "manual upgrades": (_set(*VMSS, "upgradePolicy", "mode", value="Manual"), "azure-scale-set-upgrades",
                        "upgradePolicy.mode is Manual"),
    "no unhealthy limit": (_set(*VMSS, "upgradePolicy", "rollingUpgradePolicy", "maxUnhealthyInstancePercent",
                                value=100), "azure-scale-set-upgrades", "maxUnhealthyInstancePercent is 100"),
    "unhealthy instances last": (_set(*VMSS, "upgradePolicy", "rollingUpgradePolicy",
                                      "prioritizeUnhealthyInstances", value=False), "azure-scale-set-upgrades",
                                 "prioritizeUnhealthyInstances is not true"),
    "overprovisioning": (_set(*VMSS, "overprovision", value=None), "azure-scale-set-no-overprovision",
                         "overprovision is unset"),
    "a public IP on a control-plane NIC": (_edit(t.AZ_NIC, f"{NAME}-cp-0-nic", lambda nic: nic["ipConfigurations"][0]
                                                 .update(publicIPAddress={"id": "pip-id"})),
                                           "no-public-ip", "ipConfigurations[ipconfig].publicIPAddress"),
    "public IPs on the pool": (_edit(*VMSS, lambda vmss: vmss["virtualMachineProfile"]["networkProfile"][
        "networkInterfaceConfigurations"][0]["ipConfigurations"][0].update(
            publicIPAddressConfiguration={"name": "pip"})), "no-public-ip", "publicIPAddressConfiguration"),
    "etcd on Standard SSD": (_set(*ETCD_DISK, "sku", "name", value="StandardSSD_LRS"), "etcd-disk-ssd",
                             "etcd's disk is StandardSSD_LRS"),
    "etcd on the default sku": (_set(*ETCD_DISK, "sku", value=None), "etcd-disk-ssd", "etcd's disk is Standard_LRS"),
    "an exportable etcd disk": (_set(*ETCD_DISK, "networkAccessPolicy", value=None), "azure-etcd-disk-protected",
                                "networkAccessPolicy AllowAll"),
    "an etcd disk on the public endpoint": (_set(*ETCD_DISK, "publicNetworkAccess", value="Enabled"),
                                            "azure-etcd-disk-protected", "publicNetworkAccess Enabled"),
    "etcd deleted with its VM": (_edit(*VM, lambda vm: vm["storageProfile"]["dataDisks"][0].update(
        deleteOption="Delete")), "azure-etcd-disk-protected", "dataDisks[0] (etcd's disk"),
    "vault access policies": (_set(*VAULT, "properties", "enableRbacAuthorization", value=False),
                              "key-vault-hardened", "enableRbacAuthorization is not true"),
    "vault without soft delete": (_set(*VAULT, "properties", "enableSoftDelete", value=False),
                                  "key-vault-hardened", "enableSoftDelete is false"),
    "a production vault without purge protection": (_production, "key-vault-hardened",
                                                     "enablePurgeProtection is not true (the stack is production)"),
    "a secret reader on the whole vault": (_first_reader(_vault_scope), "secret-access-least-privilege",
                                           "never on the vault or above"),
    "a person reading secrets": (_first_reader(lambda i: i.update(principalType="User")),
                                 "secret-access-least-privilege", "principalType is User"),
    "a secrets officer on a key's secret": (_first_reader(_officer_on_a_key), "secret-access-least-privilege",
                                            "on the join token's secret"),
    "an owner node": (_first_reader(lambda i: i.update(
        roleDefinitionId=i["roleDefinitionId"].replace(AZURE_KEY_VAULT_SECRETS_USER, AZURE_OWNER),
        scope=i["scope"].split("/providers/")[0])), "no-basic-project-roles", f"gets role {AZURE_OWNER}"),
    "a custom role with every action": (_edit(t.AZ_ROLE_DEFINITION, f"{NAME}-control-plane",
                                              lambda d: d["permissions"][0]["actions"].append("*")),
                                        "no-basic-project-roles", "as strong as Contributor or Owner"),
    "public blobs allowed": (_set(*ACCOUNT, "allowBlobPublicAccess", value=None), "object-storage-private",
                             "allowBlobPublicAccess is not false"),
    "plain http": (_set(*ACCOUNT, "enableHttpsTrafficOnly", value=False), "object-storage-private",
                   "enableHttpsTrafficOnly is false"),
    "old tls": (_set(*ACCOUNT, "minimumTlsVersion", value="TLS1_1"), "object-storage-private",
                "minimumTlsVersion is TLS1_1"),
    "a public container": (_set(*BLOBS, "publicAccess", value="Blob"), "object-storage-private",
                           "publicAccess is Blob"),
}


@pytest.mark.parametrize("case", list(WEAKENINGS))
def test_each_weakening_is_reported_by_its_policy(stable: Rendered, case: str) -> None:
    change, owner, fragment = WEAKENINGS[case]
    report = _pack(stable, change)
    assert {v.policy for v in report.violations} == {owner}, report.format()
    assert any(fragment in v.message for v in report.violations), report.format()


def test_a_private_api_is_reached_only_from_inside_the_network(edge: Rendered) -> None:
    (cluster,) = [r for r in edge.resources if r.type == t.AZ_CLUSTER]
    assert cluster.inputs["apiPublic"] is False
    name = "cfcr-azure-edge"

    def public_rule(_: Any, resources: list[RecordedResource]) -> None:
        resources.append(_added(t.AZ_SECURITY_RULE, "api-from-office", {
            "direction": "Inbound", "access": "Allow", "protocol": "Tcp", "destinationPortRange": "6443",
            "sourceAddressPrefix": "203.0.113.0/24"}, "azure-edge"))

    report = _pack(edge, public_rule, storage=False)
    assert {v.policy for v in report.violations} == {"api-private-unless-public"}, report.format()
    assert "203.0.113.0/24, outside the virtual network" in report.violations[0].message

    def public_frontend(_: Any, resources: list[RecordedResource]) -> None:
        resources.append(_added(t.AZ_LOAD_BALANCER, f"{name}-api-public", {
            "tags": {"owner": "platform-team", "cost-centre": "cc-1234"},
            "frontendIPConfigurations": [{"name": "api", "publicIPAddress": {"id": "pip"}}],
            "loadBalancingRules": [{"name": "api", "frontendPort": 6443, "backendPort": 6443,
                                    "frontendIPConfiguration": {"id": ".../frontendIPConfigurations/api"}}]},
            "azure-edge"))

    report = _pack(edge, public_frontend, storage=False)
    assert {(v.policy, v.message.split(" ")[0]) for v in report.violations} == {
        ("api-private-unless-public", "loadBalancingRules[0]")}, report.format()
    # the same rule is the allowed CIDRs' to judge on a public stack
    def public_api(found: dict[tuple[str, str], Inputs], resources: list[RecordedResource]) -> None:
        public_rule(found, resources)
        for (kind, _), inputs in found.items():
            if kind == t.AZ_CLUSTER:
                inputs["apiPublic"] = True

    assert _pack(edge, public_api, storage=False).violations == []
    assert {v.policy for v in _pack(edge, public_api, {"api-allowed-cidrs": {"apiAllowedCidrs": ["198.51.100.0/24"]}},
                                    storage=False).violations} == {"api-allowed-cidrs"}


def test_the_azure_policies_reach_the_rendered_stack(stable: Rendered) -> None:
    """Over azure-stable's render, stricter settings make each Azure policy report exactly the
    resources it is about: the pack does see them (and passes them at its defaults)."""
    strict = {
        "etcd-disk-ssd": {"azureEtcdDiskSkus": ["UltraSSD_LRS"]},
        "key-vault-hardened": {"purgeProtectionOutsideProduction": True},
        "secret-access-least-privilege": {"azureAllowedRoles": [], "azureJoinTokenRotationRoles": []},
        "no-basic-project-roles": {"azureForbiddenRoles": ["7631b705-d554-4308-935b-a6d6ca4bc25d"]},
        "azure-scale-set-upgrades": {"maxUnhealthyPercent": 10},
        "api-allowed-cidrs": {"apiAllowedCidrs": ["198.51.100.0/24"]},
        "instance-metadata-locked-down": {"azureRequireProxyAgent": True},
    }
    report = _pack(stable, config=strict)
    by_policy: dict[str, set[str]] = {}
    for v in report.mandatory:
        by_policy.setdefault(v.policy, set()).add(v.resource.rsplit("::", 1)[-1])
    reader_grants = [r for r in stable.resources if r.type == t.AZ_ROLE_ASSIGNMENT and "/secrets/" in r.inputs["scope"]]
    assert by_policy.pop("etcd-disk-ssd") == {f"{NAME}-cp-{i}-etcd" for i in range(5)}
    assert by_policy.pop("key-vault-hardened") == {f"{NAME}-kv"}
    assert len(by_policy.pop("secret-access-least-privilege")) == len(reader_grants) > 100
    assert by_policy.pop("no-basic-project-roles") == {f"{NAME}-control-plane-{i}-role" for i in range(5)}
    assert by_policy.pop("azure-scale-set-upgrades") == {f"{NAME}-general"}
    assert by_policy.pop("api-allowed-cidrs") == {f"{NAME}-api-from-clients"}
    assert by_policy.pop("instance-metadata-locked-down") == {f"{NAME}-cp-{i}" for i in range(5)} | {f"{NAME}-general"}
    assert by_policy == {}, report.format()


# ----------------------------------------------------------------------------- rules on constructed props


@pytest.mark.parametrize(("rule", "found"), [
    ({"sourceAddressPrefix": "VirtualNetwork", "destinationPortRange": "22"}, False),
    ({"sourceAddressPrefix": "10.0.0.0/16", "destinationPortRanges": ["22", "3389"]}, False),
    ({"sourceApplicationSecurityGroups": [{"id": "bastion-asg"}], "destinationPortRange": "22"}, False),
    ({"sourceAddressPrefix": "Internet", "destinationPortRange": "22", "access": "Deny"}, False),
    ({"sourceAddressPrefix": "*", "destinationPortRange": "20-30"}, True),
    ({"sourceAddressPrefixes": ["10.0.0.0/8", "AzureCloud.westeurope"], "destinationPortRange": "3389"}, True),
    ({"destinationPortRange": "*"}, True),  # no source: any
])
def test_ssh_and_rdp_only_from_inside_the_network(rule: dict[str, Any], found: bool) -> None:
    props = {"direction": "Inbound", "access": "Allow", "protocol": "Tcp", **rule}
    assert bool(check("no-ssh-from-internet", t.AZ_SECURITY_RULE, props)) is found
    nsg = {"securityRules": [{"name": "r", **props}]}
    assert bool(check("no-ssh-from-internet", t.AZ_NSG, nsg)) is found


@pytest.mark.parametrize("type_token", [t.AZ_VM, t.AZ_VMSS])
def test_trusted_launch_and_encryption_at_host(type_token: str) -> None:
    profile = {"securityType": "TrustedLaunch", "encryptionAtHost": True,
               "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}}

    def props(p: dict[str, Any]) -> dict[str, Any]:
        return {"virtualMachineProfile": {"securityProfile": p}} if type_token == t.AZ_VMSS else {"securityProfile": p}

    assert check("verified-boot", type_token, props(profile)) == []
    assert check("disks-encrypted", type_token, props(profile)) == []
    assert check("verified-boot", type_token, props({**profile, "securityType": "Standard"})) == [
        "securityProfile.securityType is 'Standard': use TrustedLaunch"]
    assert len(check("verified-boot", type_token, props({**profile, "uefiSettings": {}}))) == 2
    assert len(check("disks-encrypted", type_token, props({**profile, "encryptionAtHost": None}))) == 1


def test_a_health_probe_also_drives_repairs() -> None:
    probe = {"automaticRepairsPolicy": {"enabled": True},
             "virtualMachineProfile": {"networkProfile": {"healthProbe": {"id": ".../probes/kubelet"}}}}
    assert check("node-pools-self-heal", t.AZ_VMSS, probe) == []
    assert len(check("node-pools-self-heal", t.AZ_VMSS, {"automaticRepairsPolicy": {"enabled": True}})) == 1


def test_scale_set_upgrade_modes_and_overprovision() -> None:
    rolling = {"maxUnhealthyInstancePercent": 20, "maxUnhealthyUpgradedInstancePercent": 5,
               "prioritizeUnhealthyInstances": True}
    assert check("azure-scale-set-upgrades", t.AZ_VMSS, {"upgradePolicy": {
        "mode": "Automatic", "rollingUpgradePolicy": rolling}}) == []
    found = check("azure-scale-set-upgrades", t.AZ_VMSS, {})
    assert found[0].startswith("upgradePolicy.mode is unset (Manual)") and len(found) == 2
    assert check("azure-scale-set-upgrades", t.AZ_VMSS, {"upgradePolicy": {
        "mode": "Rolling", "rollingUpgradePolicy": rolling}}, {"maxUnhealthyPercent": 10}) == [
        "upgradePolicy.rollingUpgradePolicy.maxUnhealthyInstancePercent is 20; set it to at most 10"]
    assert check("azure-scale-set-no-overprovision", t.AZ_VMSS, {"overprovision": False}) == []
    assert check("azure-scale-set-no-overprovision", t.AZ_VMSS, {"orchestrationMode": "Flexible"}) == []
    assert "is true" in check("azure-scale-set-no-overprovision", t.AZ_VMSS, {"overprovision": True})[0]


def test_etcd_disk_found_by_tag_and_attachment_by_name() -> None:
    disk = res(t.AZ_DISK, "members-a", {"diskName": "members-a", "tags": {"cfcr-role": "etcd"},
                                        "sku": {"name": "Premium_ZRS"}, "networkAccessPolicy": "DenyAll",
                                        "publicNetworkAccess": "Disabled"})
    other = res(t.AZ_DISK, "scratch", {"sku": {"name": "Standard_LRS"}})
    vm = res(t.AZ_VM, "cp", {"storageProfile": {"dataDisks": [
        {"lun": 0, "managedDisk": {"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/scratch"},
         "deleteOption": "Delete"},
        {"lun": 1, "managedDisk": {"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/members-a"},
         "createOption": "Attach"}]}})
    assert stack_check("etcd-disk-ssd", [disk, other, vm]) == []
    assert stack_check("azure-etcd-disk-protected", [disk, other, vm]) == []
    vm.props["storageProfile"]["dataDisks"][1]["deleteOption"] = "Delete"
    assert [urn for _, urn in stack_check("azure-etcd-disk-protected", [disk, other, vm])] == [vm.urn]


@pytest.mark.parametrize(("scope", "role", "found"), [
    ("/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v/secrets/c-ca-key",
     AZURE_KEY_VAULT_SECRETS_USER, 0),
    ("/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v/secrets/c-bootstrap-token",
     AZURE_KEY_VAULT_SECRETS_OFFICER, 0),
    ("/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v", AZURE_KEY_VAULT_SECRETS_USER, 1),
    ("/subscriptions/s/resourceGroups/g", AZURE_KEY_VAULT_SECRETS_USER, 1),
    ("/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v/secrets/c-ca-key",
     "00482a5a-887f-4fb3-b363-3b7fe8e74483", 1),  # Key Vault Administrator
    ("/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v", "7631b705-aaaa", 2),
    ("/subscriptions/s/resourceGroups/g", "7631b705-aaaa", 0),  # not about Key Vault
])
def test_key_vault_role_assignments(scope: str, role: str, found: int) -> None:
    props = {"scope": scope, "principalType": "ServicePrincipal", "principalId": "p",
             "roleDefinitionId": f"/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{role}"}
    assert len(check("secret-access-least-privilege", t.AZ_ROLE_ASSIGNMENT, props)) == found


def test_vault_retention_and_purge_protection_on_request() -> None:
    vault = res(t.AZ_KEY_VAULT, "kv", {"properties": {"enableRbacAuthorization": True,
                                                      "softDeleteRetentionInDays": 7}})
    assert stack_check("key-vault-hardened", [vault]) == []
    assert len(stack_check("key-vault-hardened", [vault], {"minSoftDeleteRetentionDays": 30})) == 1
    assert "purgeProtectionOutsideProduction is set" in stack_check(
        "key-vault-hardened", [vault], {"purgeProtectionOutsideProduction": True})[0][0]


def test_a_private_api_judges_the_load_balancer_rules_frontend() -> None:
    cluster = res(t.AZ_CLUSTER, "c", {"apiPublic": False})
    lb = res(t.AZ_LOAD_BALANCER, "c-api", {
        "frontendIPConfigurations": [{"name": "public", "publicIPAddress": {"id": "pip"}},
                                     {"name": "internal", "privateIPAddress": "10.0.0.4"}],
        "loadBalancingRules": [{"name": "api", "frontendPort": 6443,
                                "frontendIPConfiguration": {"id": ".../frontendIPConfigurations/internal"}}]})
    assert stack_check("api-private-unless-public", [cluster, lb]) == []
    lb.props["loadBalancingRules"][0]["frontendIPConfiguration"]["id"] = ".../frontendIPConfigurations/public"
    assert [urn for _, urn in stack_check("api-private-unless-public", [cluster, lb])] == [lb.urn]
    assert stack_check("api-private-unless-public", [res(t.AZ_CLUSTER, "c", {"apiPublic": True}), lb]) == []
