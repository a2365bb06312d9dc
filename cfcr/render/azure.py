"""Stand-ins for the Azure Native provider under the mock runtime: what the program reads back
from Azure resources (ARM ids, names, identities' client and principal ids, a vault's URI) and
the data sources it calls.

Deterministic: every value derives from the resource's inputs and URN, in the shape Azure gives
it. Every resource lives in :data:`SUBSCRIPTION` of :data:`TENANT`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from collections.abc import Mapping
from typing import Any

from cfcr.render.aws import ID_KEY

AZURE_PREFIX = "azure-native:"
SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
TENANT = "00000000-0000-4000-8000-00000000000a"
_PUBLIC_POOL = ipaddress.IPv4Network("198.51.100.0/24")
"""Where the stand-in's public IP addresses come from (TEST-NET-2, as the GCP stand-in's)."""

_PROVIDERS = {
    # type token -> (ARM provider/type path, the input naming the resource)
    "azure-native:managedidentity:UserAssignedIdentity": ("Microsoft.ManagedIdentity/userAssignedIdentities", "resourceName"),
    "azure-native:keyvault:Vault": ("Microsoft.KeyVault/vaults", "vaultName"),
    "azure-native:resources:ResourceGroup": ("", "resourceGroupName"),
    "azure-native:compute:VirtualMachine": ("Microsoft.Compute/virtualMachines", "vmName"),
    "azure-native:compute:VirtualMachineScaleSet": ("Microsoft.Compute/virtualMachineScaleSets", "vmScaleSetName"),
    "azure-native:compute:Disk": ("Microsoft.Compute/disks", "diskName"),
    "azure-native:network:LoadBalancer": ("Microsoft.Network/loadBalancers", "loadBalancerName"),
}


def _guid(urn: str, purpose: str) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(f"{urn}|{purpose}".encode()).digest()[:16], version=4))


def _group(inputs: Mapping[str, Any]) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{inputs.get('resourceGroupName') or 'example-rg'}"


def azure_resource(inputs: Mapping[str, Any], urn: str) -> dict[str, Any]:
    """Any ``azure-native:`` resource: inputs echoed, plus the name and ARM id Azure would give it,
    and the outputs the program reads (identities' ids, a vault's URI, a VM's ``vmId``, a public
    IP's address); a VM's or scale set's user-assigned identities as the map Azure answers."""
    typ = urn.rsplit("::", 1)[0].rsplit("$", 1)[-1]
    logical = urn.rsplit("::", 1)[-1]
    out: dict[str, Any] = {**inputs}
    if typ == "azure-native:resources:ResourceGroup":
        name = str(inputs.get("resourceGroupName") or logical)
        out.update(name=name, **{ID_KEY: f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}"})
    elif typ in _PROVIDERS:
        path, key = _PROVIDERS[typ]
        name = str(inputs.get(key) or logical)
        out.update(name=name, **{ID_KEY: f"{_group(inputs)}/providers/{path}/{name}"})
    elif typ == "azure-native:keyvault:Secret":
        name = str(inputs.get("secretName") or logical)
        out.update(name=name, **{ID_KEY: f"{_group(inputs)}/providers/Microsoft.KeyVault/vaults/{inputs.get('vaultName')}"
                                         f"/secrets/{name}"})
    elif typ == "azure-native:authorization:RoleDefinition":
        name = str(inputs.get("roleDefinitionId") or _guid(urn, "role"))
        out.update(name=name, **{ID_KEY: f"{inputs.get('scope')}/providers/Microsoft.Authorization/roleDefinitions/{name}"})
    elif typ == "azure-native:authorization:RoleAssignment":
        name = str(inputs.get("roleAssignmentName") or _guid(urn, "assignment"))
        out.update(name=name, **{ID_KEY: f"{inputs.get('scope')}/providers/Microsoft.Authorization/roleAssignments/{name}"})
    else:
        out.setdefault("name", logical)
    if typ == "azure-native:managedidentity:UserAssignedIdentity":
        out.update(clientId=_guid(urn, "client"), principalId=_guid(urn, "principal"), tenantId=TENANT)
    if typ in ("azure-native:compute:VirtualMachine", "azure-native:compute:VirtualMachineScaleSet"):
        identity = inputs.get("identity")
        if isinstance(identity, Mapping) and isinstance(identity.get("userAssignedIdentities"), list):
            # the request lists the identities' ids; Azure answers a map of them (a list fails the SDK's types)
            out["identity"] = {**identity, "userAssignedIdentities": {
                str(i): {"clientId": _guid(f"{urn}|{i}", "client"), "principalId": _guid(f"{urn}|{i}", "principal")}
                for i in identity["userAssignedIdentities"]}}
    if typ == "azure-native:compute:VirtualMachine":
        out["vmId"] = _guid(urn, "vm")
    elif typ == "azure-native:network:PublicIPAddress" and not inputs.get("ipAddress"):
        digest = int(hashlib.sha256(urn.encode()).hexdigest()[:4], 16)
        out["ipAddress"] = str(_PUBLIC_POOL.network_address + 1 + digest % 250)
    elif typ == "azure-native:keyvault:Vault":
        out["properties"] = {**dict(inputs.get("properties") or {}), "vaultUri": f"https://{out['name']}.vault.azure.net/"}
    return out


def azure_invoke(token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
    """Stand-ins for the Azure data sources the program reads; None for unknown tokens."""
    if token == "azure-native:authorization:getClientConfig":
        return {"subscriptionId": SUBSCRIPTION, "tenantId": TENANT, "clientId": _guid(token, "client"),
                "objectId": _guid(token, "object")}
    return None
