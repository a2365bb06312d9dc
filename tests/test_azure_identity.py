"""Azure identities and secret delivery (cfcr/azure/identity.py, cfcr/azure/secrets.py, names.py)
under the product's mock runtime (tests/support/pulumi_mocks.py, with the Azure stand-in of
cfcr/render/azure.py): one user-assigned identity per role, the control plane's custom role scoped
to the resource group and assigned to the members only, an RBAC Key Vault with a suffixed name,
and per-secret grants to exactly the roles that read each secret. The rendered node functions run
against a stand-in in tests/test_azure_node_hook_real.py."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pulumi
import pytest

from cfcr.azure.identity import (
    AUTOSCALER_ACTIONS,
    CCM_ACTIONS,
    CONTROL_PLANE_ACTIONS,
    DISK_CSI_ACTIONS,
    Identities,
    build_identities,
)
from cfcr.azure.names import identity_name, key_vault_name
from cfcr.azure.secrets import SECRETS_OFFICER, SECRETS_USER, SecretStore, build_secret_store
from cfcr.config import load_spec, read_stack_config
from cfcr.render import unwrap
from cfcr.render.azure import SUBSCRIPTION, TENANT
from tests.support.pulumi_mocks import MockRecording, RecordedResource, pulumi_mocks, resolve, run_program

__all__ = ["pulumi_mocks"]  # the fixture

STACK = "azure-stable"
GROUP = "c1-rg"
GROUP_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}"
UAMI = "azure-native:managedidentity:UserAssignedIdentity"
ROLE_DEFINITION = "azure-native:authorization:RoleDefinition"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
VAULT = "azure-native:keyvault:Vault"
SECRET = "azure-native:keyvault:Secret"
SLUGS = ["control-plane-0", "control-plane-1", "control-plane-2", "worker-general", "worker-gpu"]


def _spec(production: bool = False) -> Any:
    config = {**read_stack_config(STACK), "cfcr:name": "c1", "cfcr:production": production}
    return load_spec(config, STACK)


def inputs(r: RecordedResource) -> dict[str, Any]:
    value = unwrap(r.inputs)
    assert isinstance(value, dict)
    return value


def _build(production: bool = False, values: dict[str, str] | None = None,
           readers: dict[str, list[str]] | None = None) -> tuple[Identities, SecretStore]:
    spec = _spec(production)
    values = values if values is not None else {
        "c1-ca-crt": "-----BEGIN CERTIFICATE-----\n", "c1-bootstrap-token": "abcdef.0123456789abcdef",
        "c1-etcd-members-c1-cp-0-server-key": "key-0", "c1-worker-kubelet-script": "#!/bin/bash\n"}
    readers = readers if readers is not None else {
        "c1-ca-crt": SLUGS, "c1-bootstrap-token": SLUGS, "c1-etcd-members-c1-cp-0-server-key": ["control-plane-0"],
        "c1-worker-kubelet-script": ["worker-general", "worker-gpu"]}

    def program() -> tuple[Identities, SecretStore]:
        parent = pulumi.ComponentResource("cfcr:azure:Cluster", "c1")
        identities = build_identities("c1", spec, SUBSCRIPTION, GROUP, GROUP_ID, "westeurope", SLUGS, parent,
                                      tags={"owner": "platform-team"})
        store = build_secret_store("c1", spec, SUBSCRIPTION, TENANT, GROUP, "westeurope",
                                   {k: pulumi.Output.secret(v) for k, v in values.items()}, readers,
                                   identities.principal_ids(), parent)
        return identities, store

    return run_program(program)


def _principals(mocks: MockRecording) -> dict[str, str]:
    """Principal id -> role slug, as the stand-in gave them."""
    return {r.outputs["principalId"]: inputs(r)["tags"]["cfcr-role-slug"] for r in mocks.by_type(UAMI)}


# --------------------------------------------------------------------------- identities


def test_one_user_assigned_identity_per_role(pulumi_mocks: MockRecording) -> None:
    _build()
    found = {inputs(r)["resourceName"]: inputs(r) for r in pulumi_mocks.by_type(UAMI)}
    assert sorted(found) == sorted(identity_name("c1", s) for s in SLUGS)
    assert all(i["resourceGroupName"] == GROUP and i["location"] == "westeurope" for i in found.values())
    assert all(i["tags"]["owner"] == "platform-team" for i in found.values())
    parent = pulumi_mocks.urn_of("cfcr:azure:Cluster", "c1")
    assert all(r.parent == parent for r in pulumi_mocks.resources if r.type.startswith("azure-native:"))


def test_the_control_plane_role_is_narrow_and_scoped_to_the_group(pulumi_mocks: MockRecording) -> None:
    _build()
    (role,) = pulumi_mocks.by_type(ROLE_DEFINITION)
    args = inputs(role)
    assert args["scope"] == GROUP_ID and args["assignableScopes"] == [GROUP_ID]
    assert args["roleType"] == "CustomRole"
    uuid.UUID(args["roleDefinitionId"])
    assert re.fullmatch(r"cfcr c1 control plane [0-9a-f]{6}", args["roleName"]), "unique in the tenant"
    (permission,) = args["permissions"]
    actions = permission["actions"]
    assert actions == list(CONTROL_PLANE_ACTIONS) and len(set(a.lower() for a in actions)) == len(actions)
    assert set(CCM_ACTIONS) | set(DISK_CSI_ACTIONS) | set(AUTOSCALER_ACTIONS) == set(actions)
    assert not any("*" in a for a in actions), "no wildcard: every action is named"
    for forbidden in ("Microsoft.KeyVault/", "Microsoft.Authorization/", "Microsoft.ManagedIdentity/",
                      "Microsoft.Storage/", "listKeys", "virtualMachines/delete", "runCommand", "extensions/"):
        assert not any(forbidden in a for a in actions), forbidden
    for needed in ("Microsoft.Network/loadBalancers/write", "Microsoft.Compute/disks/write",
                   "Microsoft.Compute/virtualMachineScaleSets/delete/action",
                   "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
                   # a Service's pool gets scale-set instances (ARM checks join on the pool and on the
                   # application security groups the instances' IP configurations name)
                   "Microsoft.Network/loadBalancers/backendAddressPools/join/action",
                   "Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action"):
        assert needed in actions, needed
    assert "dataActions" not in permission or not permission["dataActions"]


def test_only_the_members_hold_the_role(pulumi_mocks: MockRecording) -> None:
    identities, _ = _build()
    (role,) = pulumi_mocks.by_type(ROLE_DEFINITION)
    principals = _principals(pulumi_mocks)
    at_group = [r for r in pulumi_mocks.by_type(ROLE_ASSIGNMENT) if inputs(r)["scope"] == GROUP_ID]
    assert sorted(principals[inputs(r)["principalId"]] for r in at_group) == SLUGS[:3]
    guid = inputs(role)["roleDefinitionId"]
    for r in at_group:
        assert inputs(r)["roleDefinitionId"] == f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
        assert inputs(r)["principalType"] == "ServicePrincipal"
        assert role.urn in r.dependencies, "assigned after the role exists"
    assert len(identities.grants) == 4 and [i for i in identities.control_plane] == \
        [identities.identities[s] for s in SLUGS[:3]]
    assert sorted(identities.workers()) == ["general", "gpu"]


def test_machine_tags_name_the_vault_and_the_roles_identity(pulumi_mocks: MockRecording) -> None:
    identities, store = _build()
    tags = identities.machine_tags("c1", "worker-gpu", store.vault_name)
    values, _ = resolve(pulumi.Output.all(**tags))
    (gpu,) = [r for r in pulumi_mocks.by_type(UAMI) if inputs(r)["tags"]["cfcr-role-slug"] == "worker-gpu"]
    (vault,) = pulumi_mocks.by_type(VAULT)
    assert values == {"cfcr-cluster": "c1", "cfcr-role": "worker", "cfcr-key-vault": inputs(vault)["vaultName"],
                      "cfcr-identity-client-id": gpu.outputs["clientId"]}
    assert identities.machine_tags("c1", "control-plane-1", "kv")["cfcr-role"] == "control-plane"


def test_no_members_no_role(pulumi_mocks: MockRecording) -> None:
    def program() -> Identities:
        parent = pulumi.ComponentResource("cfcr:azure:Cluster", "c1")
        return build_identities("c1", _spec(), SUBSCRIPTION, GROUP, GROUP_ID, "westeurope", ["worker-general"], parent)

    identities = run_program(program)
    assert identities.grants == [] and pulumi_mocks.by_type(ROLE_DEFINITION) == []


# --------------------------------------------------------------------------- Key Vault


@pytest.mark.parametrize("production", [False, True])
def test_an_rbac_vault_with_a_suffixed_name(pulumi_mocks: MockRecording, production: bool) -> None:
    _build(production)
    (vault,) = pulumi_mocks.by_type(VAULT)
    args = inputs(vault)
    assert re.fullmatch(r"c1-[0-9a-f]{6}", args["vaultName"])
    props = args["properties"]
    assert props["enableRbacAuthorization"] is True and props["enableSoftDelete"] is True
    assert props["tenantId"] == TENANT and props["sku"] == {"family": "A", "name": "standard"}
    assert props.get("accessPolicies") in (None, [])
    assert props["softDeleteRetentionInDays"] == (90 if production else 7)
    assert props.get("enablePurgeProtection") == (True if production else None), "Azure takes no false"
    assert not any(props[k] for k in ("enabledForDeployment", "enabledForDiskEncryption", "enabledForTemplateDeployment"))


def test_each_secret_is_read_by_its_readers_only(pulumi_mocks: MockRecording) -> None:
    _, store = _build()
    principals = _principals(pulumi_mocks)
    secrets = {inputs(r)["secretName"]: r for r in pulumi_mocks.by_type(SECRET)}
    assert sorted(secrets) == sorted(store.secrets)
    (vault,) = pulumi_mocks.by_type(VAULT)
    for secret in secrets.values():
        assert inputs(secret)["vaultName"] == inputs(vault)["vaultName"]
        assert "properties" in secret.secret_inputs, "the value is a Pulumi secret"
    user = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{SECRETS_USER}"
    officer = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{SECRETS_OFFICER}"
    grants: dict[tuple[str, str], set[str]] = {}
    for r in pulumi_mocks.by_type(ROLE_ASSIGNMENT):
        args = inputs(r)
        if args["scope"] == GROUP_ID:
            continue
        assert args["scope"].startswith(f"{GROUP_ID}/providers/Microsoft.KeyVault/vaults/c1-"), "secret scope only"
        secret_name = args["scope"].rsplit("/secrets/", 1)[1]
        grants.setdefault((secret_name, args["roleDefinitionId"]), set()).add(principals[args["principalId"]])
        assert args["principalType"] == "ServicePrincipal"
    assert grants == {
        ("c1-ca-crt", user): set(SLUGS),
        ("c1-bootstrap-token", user): set(SLUGS),
        ("c1-bootstrap-token", officer): set(SLUGS[:3]),
        ("c1-etcd-members-c1-cp-0-server-key", user): {"control-plane-0"},
        ("c1-worker-kubelet-script", user): {"worker-general", "worker-gpu"},
    }
    assert len(store.grants) == sum(len(v) for v in grants.values())


def test_a_secret_without_reader_or_identity_is_refused(pulumi_mocks: MockRecording) -> None:
    with pytest.raises(ValueError, match="secret c1-x has no reader"):
        _build(values={"c1-x": "v"}, readers={})
    with pytest.raises(ValueError, match=r"readers \['worker-none'\] have no identity"):
        _build(values={"c1-x": "v"}, readers={"c1-x": ["worker-none"]})


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("cluster", ["c1", "cfcr-azure-stable", "a" * 63, "9lives", "x--y", "prod-eu-west-cluster-01"])
def test_key_vault_names_keep_azures_rules(cluster: str) -> None:
    for suffix in ("0a1b2c", ""):
        name = key_vault_name(cluster, suffix)
        assert 3 <= len(name) <= 24 and re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]", name), name
        assert "--" not in name and name.endswith(f"-{suffix or 'kv'}")
    assert key_vault_name("cfcr-azure-stable") == "cfcr-azure-stable-kv", "the bootstrap-only name is unchanged"
    with pytest.raises(ValueError, match="suffix"):
        key_vault_name(cluster, "a-b")


def test_identity_names_fit() -> None:
    assert identity_name("c1", "worker-general") == "c1-worker-general"
    long = identity_name("c" * 120, "control-plane-4")
    assert len(long) == 128 and long.endswith("-control-plane-4")
