"""etcd backups on Azure (cfcr/azure/backups.py): the account's name, the storage the mock runtime
records for a rendered stack (its settings, what ``pulumi destroy`` leaves, the writers' role and
its condition), what a member's VM and user-data carry for it, and the restore procedure's az
commands. The upload itself runs against a stand-in for Blob Storage in
tests/test_azure_node_hook_real.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cfcr.azure.backups import (
    CONTAINER,
    NONCURRENT_DAYS,
    RETAINED_TAG,
    SOFT_DELETE_DAYS,
    WRITER_DATA_ACTIONS,
    backup_group_name,
    operator_commands,
    run_command_script,
    snapshot_target,
    storage_account_name,
    writer_condition,
)
from cfcr.azure.contract import CLOUD, EXPORTS
from cfcr.azure.node_hook import BACKUP_ACCOUNT_TAG, BlobSnapshotTarget
from cfcr.config import load_spec, read_stack_config
from cfcr.node.backup import BACKUP_HOOK_PATH
from cfcr.render import RecordedResource, RenderResult, render_stack, unwrap
from cfcr.render.mocks import RecordingMonitor
from tests.support.validators import load_cloud_config

STACK = "azure-stable"
RETENTION = 9
ACCOUNT = "azure-native:storage:StorageAccount"
SERVICE = "azure-native:storage:BlobServiceProperties"
CONTAINER_TYPE = "azure-native:storage:BlobContainer"
POLICY = "azure-native:storage:ManagementPolicy"
GROUP = "azure-native:resources:ResourceGroup"
ROLE = "azure-native:authorization:RoleDefinition"
ASSIGNMENT = "azure-native:authorization:RoleAssignment"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
VM = "azure-native:compute:VirtualMachine"
SCALE_SET = "azure-native:compute:VirtualMachineScaleSet"


def spec_with(**backups: Any) -> Any:
    return load_spec({**read_stack_config(STACK), "cfcr:etcdBackups": {"enabled": True, **backups}}, STACK)


def _render(backups: dict[str, Any], retained: dict[tuple[str, str], bool]) -> RenderResult:
    original = RecordingMonitor.RegisterResource

    def spy(self: RecordingMonitor, request: Any) -> Any:
        retained[(request.type, request.name)] = bool(request.retainOnDelete)
        return original(self, request)

    config = {**read_stack_config(STACK), "cfcr:etcdBackups": backups}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RecordingMonitor, "RegisterResource", spy)
        return render_stack(STACK, None, config=config)


@pytest.fixture(scope="module")
def retained() -> dict[tuple[str, str], bool]:
    return {}


@pytest.fixture(scope="module")
def render(retained: dict[tuple[str, str], bool]) -> RenderResult:
    return _render({"retentionDays": RETENTION}, retained)


def of_type(result: RenderResult, token: str) -> list[RecordedResource]:
    return [r for r in result.resources if r.type == token]


def inputs(r: RecordedResource) -> dict[str, Any]:
    value = unwrap(r.inputs)
    assert isinstance(value, dict)
    return value


def backup_resources(result: RenderResult) -> list[RecordedResource]:
    return [r for r in result.resources if "etcd-backup" in r.name and "script" not in r.name]


# ============================================================================ names


def test_the_account_name_keeps_azures_rule_for_any_cluster() -> None:
    assert storage_account_name("prod", "0a1b2c3d") == "prodetcd0a1b2c3d"
    assert storage_account_name("My-Cluster_2", "0a1b2c3d") == "mycluster2etcd0a1b2c3d"
    long = storage_account_name("c" * 60 + "-x", "ffffffff")
    assert long == "c" * 12 + "etcdffffffff" and len(long) == 24
    assert storage_account_name("---", "00000000") == "cfcretcd00000000"
    for cluster in ("a", "prod-eu-west-1", "X" * 200):
        assert re.fullmatch(r"[a-z0-9]{3,24}", storage_account_name(cluster, "12345678"))
    with pytest.raises(ValueError, match="8 lowercase hex digits"):
        storage_account_name("prod", "0A1B2C3D")
    group = backup_group_name("c" * 100, "0a1b2c3d")
    assert len(group) <= 90 and group.endswith("-etcd-backups-0a1b2c3d-rg")


def test_the_target_follows_the_config() -> None:
    assert snapshot_target(spec_with()) == BlobSnapshotTarget(container=CONTAINER)
    assert snapshot_target(spec_with(enabled=False)) is None
    assert CLOUD.node_hook(spec_with()).backups == BlobSnapshotTarget(container=CONTAINER)
    assert CLOUD.node_hook(spec_with(enabled=False)).backups is None


# ============================================================================ storage


def test_a_private_account_without_shared_keys_in_a_resource_group_of_its_own(render: RenderResult) -> None:
    (account,) = of_type(render, ACCOUNT)
    args = inputs(account)
    assert re.fullmatch(r"cfcrazurestaetcd[0-9a-f]{8}", args["accountName"]), args["accountName"]
    assert args["kind"] == "StorageV2" and args["sku"] == {"name": "Standard_ZRS"}, "zone-redundant: the stack has zones"
    assert args["enableHttpsTrafficOnly"] is True and args["minimumTlsVersion"] == "TLS1_2"
    assert args["allowBlobPublicAccess"] is False and args["allowSharedKeyAccess"] is False
    assert args["defaultToOAuthAuthentication"] is True and args["allowCrossTenantReplication"] is False
    assert args["tags"][RETAINED_TAG] == "etcd-backups" and args["tags"]["cfcr-cluster"] == "cfcr-azure-stable"
    suffix = args["accountName"][-8:]
    groups = {inputs(g)["resourceGroupName"] for g in of_type(render, GROUP)}
    assert groups == {"cfcr-azure-stable-rg", f"cfcr-azure-stable-etcd-backups-{suffix}-rg"}
    assert args["resourceGroupName"] == f"cfcr-azure-stable-etcd-backups-{suffix}-rg", \
        "not in the cluster's group, whose deletion would take the snapshots with it"
    (container,) = of_type(render, CONTAINER_TYPE)
    assert inputs(container)["containerName"] == CONTAINER and inputs(container)["publicAccess"] == "None"
    (service,) = of_type(render, SERVICE)
    assert inputs(service)["isVersioningEnabled"] is True
    assert inputs(service)["deleteRetentionPolicy"] == {"enabled": True, "days": SOFT_DELETE_DAYS}
    assert inputs(service)["containerDeleteRetentionPolicy"] == {"enabled": True, "days": SOFT_DELETE_DAYS}


def test_the_lifecycle_expires_snapshots_after_the_retention_and_versions_a_week_later(render: RenderResult) -> None:
    (policy,) = of_type(render, POLICY)
    (rule,) = inputs(policy)["policy"]["rules"]
    assert rule["enabled"] is True and rule["type"] == "Lifecycle"
    definition = rule["definition"]
    assert definition["filters"] == {"blobTypes": ["blockBlob"], "prefixMatch": [f"{CONTAINER}/etcd/cfcr-azure-stable/"]}
    assert definition["actions"] == {
        "baseBlob": {"delete": {"daysAfterCreationGreaterThan": RETENTION}},
        "version": {"delete": {"daysAfterCreationGreaterThan": RETENTION + NONCURRENT_DAYS}},
    }


def test_the_storage_outlives_pulumi_destroy_and_the_grants_do_not(render: RenderResult,
                                                                     retained: dict[tuple[str, str], bool]) -> None:
    kept = [(r.type, r.name) for r in of_type(render, GROUP) + of_type(render, ACCOUNT) + of_type(render, SERVICE)
            + of_type(render, CONTAINER_TYPE) + of_type(render, POLICY) if "etcd-backups" in r.name]
    assert len(kept) == 5 and all(retained[k] for k in kept), kept
    assert retained[(GROUP, "cfcr-azure-stable-rg")] is False, "the cluster's own group goes"
    grants = [(r.type, r.name) for r in of_type(render, ASSIGNMENT) + of_type(render, ROLE) if "etcd-backup-writer" in r.name]
    assert grants and not any(retained[g] for g in grants)


# ============================================================================ writers


def test_only_the_members_may_write_and_only_under_the_clusters_prefix(render: RenderResult) -> None:
    (role,) = [r for r in of_type(render, ROLE) if "etcd-backup-writer" in r.name]
    (permission,) = inputs(role)["permissions"]
    assert permission["dataActions"] == list(WRITER_DATA_ACTIONS) and not permission.get("actions")
    # defined and assignable in the backups' own group, where the container it is assigned on is
    # (a custom role assigned outside its assignable scopes is refused)
    (backup_group,) = [r for r in of_type(render, "azure-native:resources:ResourceGroup") if "etcd-backups" in r.name]
    assert set(role.property_dependencies["assignableScopes"]) == {backup_group.urn}
    assert set(role.property_dependencies["scope"]) == {backup_group.urn}
    assert not any(a.endswith(("/read", "/delete", "deleteBlobVersion/action")) for a in permission["dataActions"])
    assignments = [r for r in of_type(render, ASSIGNMENT) if "etcd-backup-writer" in r.name]
    members = {r.urn for r in of_type(render, IDENTITY) if "-control-plane-" in r.name}
    workers = {r.urn for r in of_type(render, IDENTITY) if "-worker-" in r.name}
    assert len(assignments) == len(members) == 5
    (container,) = of_type(render, CONTAINER_TYPE)
    for grant in assignments:
        args = inputs(grant)
        assert args["scope"].endswith("etcd-backups-id") and container.urn in grant.property_dependencies["scope"]
        assert args["condition"] == writer_condition("cfcr-azure-stable") and args["conditionVersion"] == "2.0"
        assert args["principalType"] == "ServicePrincipal"
        sources = set(grant.property_dependencies["principalId"])
        assert sources & members and not sources & workers
    assert writer_condition("c1") == (
        "((!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'}) AND "
        "!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'})) OR "
        "(@Resource[Microsoft.Storage/storageAccounts/blobServices/containers/blobs:path] StringLike 'etcd/c1/*'))")


def test_members_carry_the_accounts_tag_and_wait_for_their_grants(render: RenderResult) -> None:
    (account,) = of_type(render, ACCOUNT)
    writers = {r.urn for r in of_type(render, ASSIGNMENT) if "etcd-backup-writer" in r.name}
    vms = of_type(render, VM)
    assert len(vms) == 5
    for vm in vms:
        assert inputs(vm)["tags"][BACKUP_ACCOUNT_TAG] == account.name  # the mock's name output
        assert account.urn in vm.property_dependencies["tags"]
        assert writers <= set(vm.dependencies), "a member boots once it may write"
    for pool in of_type(render, SCALE_SET):
        assert BACKUP_ACCOUNT_TAG not in inputs(pool)["tags"]
    assert {"etcdBackupAccount", "etcdBackupContainer", "etcdBackupResourceGroup"} <= set(EXPORTS)
    assert {"etcdBackupAccount", "etcdBackupContainer", "etcdBackupResourceGroup"} <= set(render.exports)


def test_a_member_uploads_to_blob_storage_and_a_worker_does_not(render: RenderResult) -> None:
    member = {f["path"]: f.get("content", "") for f in load_cloud_config(render.user_data["control-plane-0"])["write_files"]}
    hook = member[BACKUP_HOOK_PATH]
    assert "CFCR_BACKUP_PREFIX=etcd/cfcr-azure-stable" in hook
    assert f'url="${{root%/}}/{CONTAINER}/$2"' in hook and "x-ms-blob-type: BlockBlob" in hook
    assert "https%3A%2F%2Fstorage.azure.com%2F" in hook and BACKUP_ACCOUNT_TAG in hook
    assert "OnCalendar=*:0/30" in member["/etc/systemd/system/cfcr-etcd-backup.timer"]
    worker = {f["path"] for f in load_cloud_config(render.user_data["worker-general"])["write_files"]}
    assert BACKUP_HOOK_PATH not in worker


def test_backups_off_build_nothing() -> None:
    result = _render({"enabled": False}, {})
    assert backup_resources(result) == [] and of_type(result, ACCOUNT) == []
    assert all(BACKUP_ACCOUNT_TAG not in inputs(vm)["tags"] for vm in of_type(result, VM))
    assert "etcdBackupAccount" not in result.exports


# ============================================================================ restore procedure


def test_the_restore_commands_use_entra_id_and_run_command() -> None:
    spec = spec_with()
    ops = operator_commands(spec)
    assert CLOUD.restore_commands(spec) == ops
    listing = "\n".join(ops.list_and_presign)
    assert "az storage account list --query '[?tags.\"cfcr-cluster\"=='\\''cfcr-azure-stable'\\''" in listing
    assert (f"az storage blob list --auth-mode login --account-name \"$ACCOUNT\" --container-name {CONTAINER} "
            "--prefix etcd/cfcr-azure-stable/") in listing
    assert "generate-sas --auth-mode login --as-user" in listing and "--permissions r" in listing
    assert "--https-only --full-uri" in listing and "URL=$(" in listing
    assert "account-key" not in listing and "connection-string" not in listing, "the account takes no shared key"
    run = "\n".join(ops.run_on_member("cfcr-azure-stable-cp-1", Path("/kit/restore-x.run-command.sh")))
    assert ("az vm run-command invoke --resource-group cfcr-azure-stable-rg --name cfcr-azure-stable-cp-1 "
            "--command-id RunShellScript --scripts @/kit/restore-x.run-command.sh") in run
    assert run.endswith(">/kit/restore-x.run-command.sh.log 2>&1 &")
    assert ops.member_step_file("echo hi")[0] == ops.step_file_suffix == ".run-command.sh"


def test_a_run_command_step_runs_its_script_in_bash_from_sh(tmp_path: Path) -> None:
    script = "#!/bin/bash\nset -euo pipefail\nwords=(a 'b c')\necho \"bash ${#words[@]} $1\"\nexit 7\n"
    stub = tmp_path / "step.sh"
    stub.write_text(run_command_script(script).replace('bash "$f"', 'bash "$f" arg'))
    result = subprocess.run(["sh", str(stub)], capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin",
                                                                                                  "TMPDIR": str(tmp_path)})
    assert result.stdout == "bash 2 arg\n" and result.returncode == 7, result
    assert list(tmp_path.iterdir()) == [stub], "the temporary script is removed"


def test_the_runbook_for_an_azure_stack(tmp_path: Path) -> None:
    import cfcr.etcd_restore as restore

    spec = spec_with()
    url = "https://x.blob.core.windows.net/etcd-backups/etcd/a.db?sig=s"
    written = restore.write_kit(spec, url, tmp_path)
    text = restore.runbook(spec, url, tmp_path)
    assert text.count("az vm run-command invoke") == 2 * spec.control_plane.count
    stubs = sorted(p for p in written if p.name.endswith(".run-command.sh"))
    assert len(stubs) == 2 * spec.control_plane.count and all(f"@{p}" in text for p in stubs)
    first = stubs[0].read_text()
    assert first.startswith("#!/bin/sh\n") and "base64 -d" in first
