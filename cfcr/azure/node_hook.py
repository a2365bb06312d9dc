"""Azure: nodes read their secrets from Key Vault with the VM's user-assigned managed identity,
their provider ID (``azure://<resource id>``) and machine id (``vmId``) from the instance metadata
service (IMDS), and the control plane rotates the join token in Key Vault.

No Azure CLI: each call is one HTTPS request made by curl with an access token of the VM's
managed identity, which IMDS hands out, and ``jq`` for the JSON (both are node packages,
``cfcr.node.packages.APT_PACKAGES``). The bash functions live once in ``/etc/cfcr/secrets.sh``
(:meth:`AzureNodeHook.shell_functions`):

* identity: ``GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=...&client_id=<id>``
  with ``Metadata: true``. The client id is the hook's :attr:`~AzureNodeHook.client_id` or, when
  that is empty, the VM's tag :data:`CLIENT_ID_TAG` (IMDS ``compute/tagsList``): each role has its
  own user-assigned identity, known only once Pulumi created it, and the VM or scale set carries
  it as a tag (not a secret). Without either, IMDS picks the VM's only identity. The token reaches
  curl as a header on stdin (``-H @-``), never on a command line (``/proc/<pid>/cmdline`` is
  world-readable); a request body travels through fd 3.
* vault: ``https://<vault>.<vault_dns_suffix>``; the vault is the hook's
  :attr:`~AzureNodeHook.vault_name` or, when empty, the VM's tag :data:`VAULT_TAG` (the vault's
  name ends in a random suffix kept in Pulumi state, ``cfcr.azure.secrets``).
* endpoints: IMDS at ``http://169.254.169.254`` unless ``AZURE_POD_IDENTITY_AUTHORITY_HOST``
  names another (the Azure Identity SDKs' IMDS override); Key Vault and Azure Resource Manager at
  their public URLs unless :data:`VAULT_URL_VARIABLE` / :data:`ARM_URL_VARIABLE` name others
  (no SDK variable exists for these; tests point them at tests/support/azureapi.py).
* role assignments take effect up to 10 minutes after they are made (Key Vault's RBAC guide,
  "Azure role-based access control for Key Vault": latency of role assignments): a 403 from
  Key Vault is retried with backoff (2 s doubling to 60 s) for at most
  :data:`RBAC_WAIT_SECONDS` (``CFCR_AZURE_RBAC_WAIT`` overrides it), then fails saying so.
  Throttling (429), server errors (5xx) and failed connections are tried three times; every
  curl has connect and total timeouts.

Join access (:class:`~cfcr.node.context.JoinAccess`): the control-plane members hold "Key Vault
Secrets Officer" on the join token's secret only (``cfcr.azure.secrets``) and store a new token
as the secret's new version (``PUT secrets/<name>``; Key Vault keeps the versions and bills
operations, not versions, so nothing is pruned). A node-client certificate is approved only for
an instance of this cluster's worker scale sets (tags :data:`CLUSTER_TAG` = the cluster and
:data:`ROLE_TAG` = ``worker``, listed in the VM's resource group through ARM) whose computer name
is the Node name and which is being created or runs; its ``timeCreated`` is printed. The join
identity cannot be taken from one joined instance: a Uniform scale set's instances share the
scale set model's identities (removing the pool's identity from the scale set strips every
instance, those still joining too), and Key Vault's RBAC sees the identity, not the VM. So
``revoke_command`` reads the provider IDs and changes nothing; the token's short life and the
candidate check are the limits (as on GCP).

etcd snapshots (:class:`~cfcr.node.backup.SnapshotStore`, when the hook has a
:class:`BlobSnapshotTarget`): a member uploads a snapshot as a block blob (``Put Blob``) to the
cluster's backup container with its identity's token for ``https://storage.azure.com/`` (the
account takes no shared key: Entra ID alone), never overwriting one (``If-None-Match: *``), the
body's MD5 in ``Content-MD5`` (checked by Blob Storage before it keeps the blob, and the answer's
``Content-MD5`` checked here). The account's name ends in a random suffix, so it comes from the
VM's tag :data:`BACKUP_ACCOUNT_TAG` when the target names none (``cfcr.azure.backups``).

Optional capabilities it implements (cfcr.node): :class:`~cfcr.node.context.NodeIdentity`,
:class:`~cfcr.node.context.MachineId`, :class:`~cfcr.node.context.JoinAccess`,
:class:`~cfcr.node.backup.SnapshotStore`,
:class:`~cfcr.node.context.ShellFunctions`, :class:`~cfcr.node.context.LocalApiOnMembers` (the
load balancer's hairpin: members use their own API server) and
:class:`~cfcr.node.metadata_guard.MetadataGuard`
(pods may reach neither IMDS, which hands every pod the VM's identity tokens, nor the WireServer;
AKS's ``podLinkLocalAccess=None``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote

from cfcr.node.context import UserDataLimit
from cfcr.node.requests import bearer_call

IMDS_ADDRESS = "169.254.169.254"
"""The instance metadata service, by address (no DNS at early boot)."""
WIRESERVER_ADDRESS = "168.63.129.16"
"""Azure's WireServer (agent and extension channel, platform DNS); pods keep only its DNS."""
IMDS_VARIABLE = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
"""The Azure Identity SDKs' override of the IMDS root (``http://host:port``), for tests."""
VAULT_URL_VARIABLE = "CFCR_AZURE_VAULT_URL"
"""Another Key Vault root URL than ``https://<vault>.<suffix>`` (tests)."""
ARM_URL_VARIABLE = "CFCR_AZURE_ARM_URL"
"""Another Azure Resource Manager root URL than :attr:`AzureNodeHook.arm_url` (tests)."""
BLOB_URL_VARIABLE = "CFCR_AZURE_BLOB_URL"
"""A Blob endpoint that takes the account as the first path segment (``<root>/<account>/...``, as Azurite
does) instead of ``https://<account>.blob.<suffix>`` (tests)."""
RBAC_WAIT_VARIABLE = "CFCR_AZURE_RBAC_WAIT"
RBAC_WAIT_SECONDS = 720
"""How long a Key Vault 403 is retried: role assignments apply within 10 minutes, plus margin."""
VAULT_TAG = "cfcr-key-vault"
"""The VM tag naming the cluster's Key Vault (when the hook names none)."""
CLIENT_ID_TAG = "cfcr-identity-client-id"
"""The VM tag holding the client id of the VM's user-assigned identity (when the hook names none)."""
CLUSTER_TAG = "cfcr-cluster"
"""Tag of every cfcr scale set and VM: the cluster name."""
ROLE_TAG = "cfcr-role"
"""Tag of every cfcr scale set and VM: ``control-plane`` or ``worker``."""
BACKUP_ACCOUNT_TAG = "cfcr-etcd-backup-account"
"""The control-plane VM tag naming the storage account of etcd snapshots (when the target names none)."""
BLOB_API = "2023-11-03"
"""Blob Storage REST version (``x-ms-version``); Entra ID tokens need 2017-11-09 or later."""
STORAGE_AUDIENCE = "https://storage.azure.com/"
"""The token audience of Azure Storage's data plane."""
UPLOAD_MAX_SECONDS = 1800
"""How long one snapshot upload may take."""
PUT_BLOB_MAX_BYTES = 5000 * 1024 * 1024
"""The largest blob one ``Put Blob`` takes (version 2019-12-12 and later): etcd's data quota is at most 8 GiB,
its default 2 GiB; a larger snapshot fails its upload saying so."""
KEY_VAULT_API = "7.4"
"""Key Vault data-plane REST API version."""
COMPUTE_API = "2024-07-01"
"""Microsoft.Compute REST API version for the scale-set listings (``timeCreated`` since 2021-11-01)."""
IMDS_API = "2021-02-01"
JOINING_STATES = ("Creating", "Updating", "Succeeded")
"""Provisioning states of a scale-set instance that may be joining; ``Deleting`` and ``Failed`` join nothing."""
NODE_NAME = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
"""A scale-set instance's computer name as its Node name (lower case, a DNS label)."""

_IMDS_ROOT = f"${{{IMDS_VARIABLE}:-http://{IMDS_ADDRESS}}}"
_CURL_IMDS = "curl -fsS --noproxy '*' --connect-timeout 5 --max-time 30 --retry 5 -H Metadata:true"

_LIBRARY = [
    # Azure REST without the CLI (cfcr.azure.node_hook): curl with a token of this VM's managed
    # identity from IMDS, handed to curl on stdin, never on a command line.
    # cfcr_azure_imds PATH?QUERY: an IMDS answer (/metadata/PATH).
    "cfcr_azure_imds() {",
    f"  local root={_IMDS_ROOT}",
    f"  {_CURL_IMDS} \"${{root%/}}/metadata/$1\"",
    "}",
    # cfcr_azure_tag NAME: the value of this VM's tag NAME (nothing when it has none).
    "cfcr_azure_tag() {",
    "  local tags",
    f"  tags=$(cfcr_azure_imds 'instance/compute/tagsList?api-version={IMDS_API}') || return 1",
    "  printf '%s' \"$tags\" | jq -r --arg n \"$1\" 'first(.[]? | select(.name == $n) | .value) // empty'",
    "}",
]


def _call_function() -> list[str]:
    # cfcr_azure_call URL BODY [CURL ARGS...]: one request with the bearer token on stdin and BODY (if
    # any) through fd 3; the answer on stdout. 403: status 3 and the message in
    # cfcr_azure_denied (the caller decides whether to wait); other errors: Azure's message on stderr
    # and status 1. Throttling, server errors and lost connections: three tries.
    return [
        *bearer_call("cfcr_azure_call"),
        "  cfcr_azure_denied=$(printf '%s' \"$out\" | jq -r '.error | \"\\(.code)\\(if .innererror.code then \"/\" + .innererror.code"
        " else \"\" end): \\(.message)\"' 2>/dev/null ||",
        # Blob Storage answers XML: <Error><Code>..</Code><Message>..</Message></Error>
        "    printf '%s' \"$out\" | tr -s ' \\r\\n' ' ' | sed -E 's|.*<Code>([^<]*)</Code> ?<Message>([^<]*)</Message>.*|\\1: \\2|' | cut -c1-500)",
        "  [ \"$code\" != 403 ] || return 3",
        "  [ \"$code\" = 000 ] || printf 'Azure error (HTTP %s): %s\\n' \"$code\" \"$cfcr_azure_denied\" >&2",
        "  return 1",
        "}",
    ]


_MD5_PROGRAM = ("import base64, hashlib, sys; h = hashlib.md5(usedforsecurity=False); f = open(sys.argv[1], \"rb\"); "
                "[h.update(b) for b in iter(lambda: f.read(1 << 20), b\"\")]; print(base64.b64encode(h.digest()).decode())")
"""The file's MD5, base64 (one line: the hook's lines are indented in backup.sh)."""


@dataclass(frozen=True)
class BlobSnapshotTarget:
    """Where a control-plane member uploads etcd snapshots (``cfcr.azure.backups``)."""

    container: str
    """The blob container."""
    account: str = ""
    """The storage account; empty: the VM's :data:`BACKUP_ACCOUNT_TAG` tag (the name ends in a
    random suffix kept in Pulumi state)."""


@dataclass(frozen=True)
class AzureNodeHook:
    """Azure's REST APIs with curl and ``jq``; tokens of the VM's user-assigned identity from
    IMDS. Nothing to install at boot (module docstring)."""

    user_data_limit: ClassVar[UserDataLimit] = UserDataLimit(max_bytes=65535, gzip=True)
    """Azure: custom data holds at most 65,535 decoded bytes (the anchors in the project notes); cloud-init unpacks gzip."""

    vault_name: str = ""
    """Key Vault name (``https://<name>.<vault_dns_suffix>``); empty: the VM's :data:`VAULT_TAG` tag."""
    client_id: str = ""
    """Client id of the VM's user-assigned identity; empty: the VM's :data:`CLIENT_ID_TAG` tag
    (without that tag, IMDS's choice: the VM's only identity)."""
    cluster: str = ""
    """The cluster name (its scale sets carry ``cfcr-cluster: <cluster>``); without it the join
    candidate check approves nobody."""
    vault_dns_suffix: str = "vault.azure.net"
    """Key Vault's DNS suffix (``vault.azure.cn``, ``vault.usgovcloudapi.net`` in other clouds)."""
    arm_url: str = "https://management.azure.com"
    """Azure Resource Manager's root (``https://management.chinacloudapi.cn`` ...)."""
    storage_dns_suffix: str = "core.windows.net"
    """Azure Storage's DNS suffix (``core.chinacloudapi.cn``, ``core.usgovcloudapi.net`` in other clouds)."""
    backups: BlobSnapshotTarget | None = None
    """Where etcd snapshots go; None: this cluster takes none."""

    def packages(self) -> list[str]:
        """Nothing more from apt: curl and jq are the node's own packages."""
        return []

    def setup_commands(self) -> list[str]:
        """Nothing to install: no CLI."""
        return []

    def _resource(self, url: str) -> str:
        """The token audience of a service root (``https://vault.azure.net``)."""
        return quote(url, safe="")

    def shell_functions(self) -> str:
        """The bash functions the other commands call (``cfcr_azure_imds``, ``cfcr_azure_tag``,
        ``cfcr_azure_token``, ``cfcr_azure_call``, ``cfcr_azure_vault``, ``cfcr_azure_arm``,
        ``cfcr_azure_secret_get`` and ``cfcr_azure_secret_put``), defined once in
        ``/etc/cfcr/secrets.sh``."""
        vault_resource = self._resource(f"https://{self.vault_dns_suffix}")
        arm_resource = self._resource(self.arm_url.rstrip("/") + "/")
        vault = shlex.quote(self.vault_name) if self.vault_name else "''"
        client = shlex.quote(self.client_id) if self.client_id else "''"
        return "\n".join([
            *_LIBRARY,
            # cfcr_azure_token RESOURCE: a token of this VM's user-assigned identity for RESOURCE (stdout).
            "cfcr_azure_token() {",
            f"  local client={client} answer",
            f"  [ -n \"$client\" ] || client=$(cfcr_azure_tag {CLIENT_ID_TAG}) || return 1",
            "  answer=$(cfcr_azure_imds \"identity/oauth2/token?api-version=2018-02-01&resource=$1${client:+&client_id=$client}\")"
            " || return 1",
            "  printf '%s' \"$answer\" | jq -er 'if (.access_token | type) == \"string\" and (.access_token | length) > 0"
            " then .access_token else error(\"no access token from IMDS\") end'",
            "}",
            *_call_function(),
            # cfcr_azure_vault PATH BODY [CURL ARGS...]: a Key Vault request with this VM's token; a 403
            # is waited out while role assignments propagate, for at most CFCR_AZURE_RBAC_WAIT seconds.
            "cfcr_azure_vault() {",
            f"  local path=$1 body=$2 vault={vault} root token rc waited=0 pause=2 limit=${{{RBAC_WAIT_VARIABLE}:-{RBAC_WAIT_SECONDS}}}",
            "  shift 2",
            f"  [ -n \"$vault\" ] || vault=$(cfcr_azure_tag {VAULT_TAG}) || return 1",
            f"  [ -n \"$vault\" ] || {{ echo \"cfcr: the hook names no Key Vault and the VM has no {VAULT_TAG} tag\" >&2; return 1; }}",
            f"  root=${{{VAULT_URL_VARIABLE}:-https://$vault.{self.vault_dns_suffix}}}",
            "  while :; do",
            f"    token=$(cfcr_azure_token {vault_resource}) ||",
            "      { echo \"cfcr: no access token from the instance metadata service (is a user-assigned identity attached?)\" >&2; return 1; }",
            "    rc=0",
            f"    cfcr_azure_call \"${{root%/}}/$path?api-version={KEY_VAULT_API}\" \"$body\" \"$@\" < <(printf '%s\\n' \"$token\") || rc=$?",
            "    [ \"$rc\" = 3 ] || return \"$rc\"",
            "    if [ \"$waited\" -ge \"$limit\" ]; then",
            "      echo \"cfcr: Key Vault $vault still denies $path after ${waited}s ($cfcr_azure_denied): a new role assignment\" \\",
            "        \"applies within 10 minutes; this VM's identity may not have the role\" >&2",
            "      return 1",
            "    fi",
            "    echo \"cfcr: Key Vault $vault denies $path; waiting ${pause}s for role assignments to propagate\" >&2",
            "    sleep \"$pause\"",
            "    waited=$((waited + pause))",
            "    pause=$((pause * 2 > 60 ? 60 : pause * 2))",
            "  done",
            "}",
            # cfcr_azure_arm URL: an Azure Resource Manager GET (a path under the root, or a full nextLink).
            "cfcr_azure_arm() {",
            f"  local url=$1 root=${{{ARM_URL_VARIABLE}:-{self.arm_url.rstrip('/')}}} token",
            "  [[ $url == http*://* ]] || url=${root%/}/$url",
            f"  token=$(cfcr_azure_token {arm_resource}) || {{ echo \"cfcr: no access token from the instance metadata service\" >&2; return 1; }}",
            "  cfcr_azure_call \"$url\" '' < <(printf '%s\\n' \"$token\") && return 0",
            "  [ \"$?\" != 3 ] || printf 'Azure error (HTTP 403): %s\\n' \"$cfcr_azure_denied\" >&2",
            "  return 1",
            "}",
            # cfcr_azure_secret_get NAME: the current version's value, exactly.
            "cfcr_azure_secret_get() {",
            "  local answer",
            "  answer=$(cfcr_azure_vault \"secrets/$1\" '') || return 1",
            "  printf '%s' \"$answer\" | jq -je '.value | if type == \"string\" then . else error(\"no value\") end' ||",
            "    { echo \"cfcr: Key Vault gave no value for secret $1\" >&2; return 1; }",
            "}",
            # cfcr_azure_secret_put NAME: standard input becomes the secret's new version.
            "cfcr_azure_secret_put() {",
            "  local body answer",
            "  body=$(jq -Rsc '{value: ., contentType: \"text/plain\"}') || return 1",
            "  answer=$(cfcr_azure_vault \"secrets/$1\" \"$body\" -X PUT -H 'Content-Type: application/json') || return 1",
            "  printf '%s' \"$answer\" | jq -e '.id | type == \"string\"' >/dev/null ||",
            "    { echo \"cfcr: Key Vault named no new version of $1\" >&2; return 1; }",
            "}",
        ])

    def fetch_command(self, secret_id: str) -> str:
        """Print the current version of secret ``secret_id`` (``cfcr_azure_secret_get``)."""
        return f"cfcr_azure_secret_get {shlex.quote(secret_id)}"

    def store_command(self, secret_id: str) -> str:
        """Key Vault ``PUT secrets/<name>`` of standard input (``cfcr_azure_secret_put``): a new
        version. The members hold "Key Vault Secrets Officer" on the join token's secret, and on no
        other (``cfcr.azure.secrets``)."""
        return f"cfcr_azure_secret_put {shlex.quote(secret_id)}"

    def revoke_command(self) -> str:
        """Nothing to take: a scale-set instance's identities are the scale set's (module
        docstring). The provider IDs are read and dropped."""
        return "\n".join([
            "# Azure cannot take the join identity from one scale-set instance: instances share the",
            "# scale set model's identities, and Key Vault's RBAC sees the identity, not the VM. A joined",
            "# worker keeps reading the join token; its two-hour life and cfcr_join_candidate are the limits.",
            "cat >/dev/null",
        ])

    def candidate_command(self) -> str:
        """``NAME`` (a scale-set instance's computer name: the Node name) succeeds when an instance
        of that computer name belongs to a scale set in this VM's resource group tagged
        ``cfcr-cluster: <cluster>`` and ``cfcr-role: worker`` and is in a joining provisioning state
        (:data:`JOINING_STATES`); it prints the instance's ``timeCreated`` in seconds since the epoch.
        Scale sets and instances are listed through ARM (``virtualMachineScaleSets`` and their
        ``virtualMachines``, following ``nextLink``), with the control plane's identity, whose role
        reads them (``cfcr.azure.identity``). A control-plane VM, another cluster's instance, a
        deleting one and any other name fail; so does every name when the hook names no cluster."""
        if not self.cluster:
            return 'echo "cfcr: the node hook names no cluster: no join candidate" >&2\nreturn 1'
        states = ", ".join(f'"{s}"' for s in JOINING_STATES)
        sets = (f'.value[]? | select(.tags["{CLUSTER_TAG}"] == $cluster and .tags["{ROLE_TAG}"] == "worker") | .id')
        instance = ('first(.value[]? | select((.properties.osProfile.computerName // "" | ascii_downcase) == $name'
                    f' and ([.properties.provisioningState] | inside([{states}])))) | .properties.timeCreated')
        return "\n".join([
            "local name=${1:-} sub group url answer created set",
            "local -a sets=() more=()",
            f"[[ $name =~ {NODE_NAME} ]] || return 1",
            f"sub=$(cfcr_azure_imds 'instance/compute/subscriptionId?api-version={IMDS_API}&format=text') || return 1",
            f"group=$(cfcr_azure_imds 'instance/compute/resourceGroupName?api-version={IMDS_API}&format=text') || return 1",
            f"url=\"subscriptions/$sub/resourceGroups/$group/providers/Microsoft.Compute/virtualMachineScaleSets?api-version={COMPUTE_API}\"",
            "while [ -n \"$url\" ]; do",
            "  answer=$(cfcr_azure_arm \"$url\") || return 1",
            f"  mapfile -t more < <(printf '%s' \"$answer\" | jq -r --arg cluster {shlex.quote(self.cluster)} {shlex.quote(sets)})",
            "  sets+=(\"${more[@]}\")",
            "  url=$(printf '%s' \"$answer\" | jq -r '.nextLink // \"\"')",
            "done",
            "for set in \"${sets[@]}\"; do",
            "  [ -n \"$set\" ] || continue",
            f"  url=\"${{set#/}}/virtualMachines?api-version={COMPUTE_API}\"",
            "  while [ -n \"$url\" ]; do",
            "    answer=$(cfcr_azure_arm \"$url\") || return 1",
            f"    if created=$(printf '%s' \"$answer\" | jq -er --arg name \"$name\" {shlex.quote(instance)}); then",
            "      date -d \"$created\" +%s",
            "      return",
            "    fi",
            "    url=$(printf '%s' \"$answer\" | jq -r '.nextLink // \"\"')",
            "  done",
            "done",
            "return 1",
        ])

    def provider_id_command(self) -> str:
        """The VM's (or scale-set instance's) ARM resource id from IMDS, printed as
        ``azure://<resource id>`` (the id starts with ``/subscriptions/``). Stands alone
        (identity.sh needs no other file)."""
        return "\n".join([
            f"local rid root={_IMDS_ROOT}",
            f"rid=$({_CURL_IMDS} \"${{root%/}}/metadata/instance/compute/resourceId?api-version={IMDS_API}&format=text\") || return 1",
            '[[ $rid == /subscriptions/* ]] || return 1',
            'printf "azure://%s\\n" "$rid"',
        ])

    def machine_id_command(self) -> str:
        """The VM's ``vmId`` (a GUID Azure never reuses): a member recreated under its name (and
        so its resource id) tells its rollout gate it is the new machine."""
        return "\n".join([
            f"local id root={_IMDS_ROOT}",
            f"id=$({_CURL_IMDS} \"${{root%/}}/metadata/instance/compute/vmId?api-version={IMDS_API}&format=text\") || return 1",
            "[[ $id =~ ^[0-9a-fA-F-]{36}$ ]] || return 1",
            "printf '%s\\n' \"$id\"",
        ])

    def snapshot_upload_command(self) -> str | None:
        """``cfcr_backup_upload FILE KEY``: one ``Put Blob`` of FILE as block blob KEY in the
        backup container, with this VM's token for Azure Storage (the members' identities hold a
        role that writes blobs under ``etcd/<cluster>/`` of that container and does nothing else:
        no read, list or delete; ``cfcr.azure.backups``). ``If-None-Match: *``: an existing
        snapshot is never overwritten (409 ``BlobAlreadyExists``). The body's MD5 travels in
        ``Content-MD5``, which Blob Storage checks before it keeps the blob (400 ``Md5Mismatch``),
        and the answer's ``Content-MD5`` is checked again here. The file streams from disk
        (``-T``); throttling, server errors and lost connections are tried three times
        (``cfcr_azure_call``); a 403 fails at once, naming the account, the container and Azure's
        code (the next timer period tries again)."""
        if self.backups is None:
            return None
        account = shlex.quote(self.backups.account) if self.backups.account else "''"
        container = self.backups.container
        resource = self._resource(STORAGE_AUDIENCE)
        return "\n".join([
            f"local account={account} size md5 root url token headers rc=0",
            "size=$(stat -c %s \"$1\") || return 1",
            f"[ \"$size\" -le {PUT_BLOB_MAX_BYTES} ] ||",
            f"  {{ echo \"cfcr: $1 is $size bytes; one Put Blob takes at most {PUT_BLOB_MAX_BYTES}\" >&2; return 1; }}",
            "[[ $2 =~ ^[A-Za-z0-9._/-]+$ ]] || { echo \"cfcr: blob name $2 has characters the upload does not encode\" >&2; return 1; }",
            f"[ -n \"$account\" ] || account=$(cfcr_azure_tag {BACKUP_ACCOUNT_TAG}) || return 1",
            f"[ -n \"$account\" ] || {{ echo \"cfcr: the hook names no backup storage account and the VM has no {BACKUP_ACCOUNT_TAG} tag\" >&2; return 1; }}",
            f"md5=$(python3 -c {shlex.quote(_MD5_PROGRAM)} \"$1\") || return 1",
            f"root=https://$account.blob.{self.storage_dns_suffix}",
            f"[ -z \"${{{BLOB_URL_VARIABLE}:-}}\" ] || root=${{{BLOB_URL_VARIABLE}%/}}/$account",
            f"url=\"${{root%/}}/{container}/$2\"",
            f"token=$(cfcr_azure_token {resource}) ||",
            "  { echo \"cfcr: no access token from the instance metadata service (is a user-assigned identity attached?)\" >&2; return 1; }",
            "headers=$(mktemp) || return 1",
            f"cfcr_azure_call \"$url\" '' -X PUT -T \"$1\" --max-time {UPLOAD_MAX_SECONDS} -D \"$headers\" \\",
            f"  -H 'x-ms-version: {BLOB_API}' -H 'x-ms-blob-type: BlockBlob' -H \"x-ms-date: $(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S GMT')\" \\",
            "  -H 'Content-Type: application/octet-stream' -H \"Content-MD5: $md5\" -H 'If-None-Match: *' \\",
            "  < <(printf '%s\\n' \"$token\") >/dev/null || rc=$?",
            "if [ \"$rc\" != 0 ]; then",
            "  rm -f \"$headers\"",
            "  # shellcheck disable=SC2154  # cfcr_azure_denied: set by cfcr_azure_call (secrets.sh)",
            f"  [ \"$rc\" != 3 ] || echo \"cfcr: storage account $account refuses $2 in container {container} ($cfcr_azure_denied):\" \\",
            "    \"this VM's identity may not write etcd snapshots there\" >&2",
            "  return 1",
            "fi",
            "if ! tr -d '\\r' <\"$headers\" | awk -v m=\"$md5\" 'tolower($1) == \"content-md5:\" && $2 == m { f = 1 } END { exit !f }'; then",
            "  rm -f \"$headers\"",
            "  echo \"cfcr: Blob Storage kept $2 with another MD5 than $1 ($size bytes, md5 $md5)\" >&2",
            "  return 1",
            "fi",
            "rm -f \"$headers\"",
        ])

    def members_use_local_api(self) -> bool:
        """True: an Azure load balancer does not carry a backend's packets to its own frontend,
        so members reach the API on themselves (:class:`~cfcr.node.context.LocalApiOnMembers`,
        ``cfcr.azure.api_lb``)."""
        return True

    def guarded_addresses(self) -> tuple[str, ...]:
        """IMDS and the WireServer: pods (forwarded traffic) reach neither, but for DNS
        (:mod:`cfcr.node.metadata_guard` lets DNS through: the WireServer is the VNet's resolver)."""
        return (IMDS_ADDRESS, WIRESERVER_ADDRESS)
