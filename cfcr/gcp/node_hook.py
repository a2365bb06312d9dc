"""GCP: nodes read their secrets from Secret Manager with the VM's service account, their
provider ID (``gce://<project>/<zone>/<instance name>``) from the metadata server, and the
control plane uploads etcd snapshots to Cloud Storage (``cfcr.gcp.backups``).

No gcloud CLI: each call is one HTTPS request made by curl with an OAuth access token of the
VM's service account, which the metadata server hands out, with ``jq`` for the JSON answers and
the image's ``python3`` for the snapshot's MD5. The bash functions live once in
``/etc/cfcr/secrets.sh`` (:meth:`GcpNodeHook.shell_functions`):

* token: ``GET /computeMetadata/v1/instance/service-accounts/default/token`` with
  ``Metadata-Flavor: Google`` (the VM needs the ``cloud-platform`` scope); the token reaches
  curl as a header on stdin (``-H @-``), never on a command line (``/proc/<pid>/cmdline`` is
  world-readable);
* endpoints: the metadata server at ``169.254.169.254`` (no DNS needed at early boot) unless
  ``GCE_METADATA_HOST`` names another ``host[:port]`` (the Google SDKs' variable); Secret Manager
  at ``https://secretmanager.googleapis.com/`` unless ``CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER``
  names another root (gcloud's endpoint override, as an environment variable: ``v1/...``
  follows it); Compute Engine at ``https://compute.googleapis.com/compute/v1/`` unless
  ``CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE`` names another (gcloud's override takes the root with
  its version: ``projects/...`` follows it); Cloud Storage at ``https://storage.googleapis.com`` unless ``STORAGE_EMULATOR_HOST``
  names another (the client libraries' variable: ``http://`` is added when it has no scheme).
  Private Google Access on the subnetwork lets the VMs reach ``*.googleapis.com`` without a
  public address. Tests point them at stand-ins (tests/support/gcpapi.py, tests/support/gcpjoinapi.py);
* errors: a failed call prints Google's answer (``error.status``: ``error.message``) on stderr
  and returns non-zero; throttling (429), server errors (5xx) and failed connections are
  tried three times; every curl has connect and total timeouts.

Join access (:class:`~cfcr.node.context.JoinAccess`): the control plane rotates the join token
in Secret Manager (``addVersion``, then it destroys the versions it superseded) and approves a
node-client certificate only for an instance of this cluster's pools that is being created or
runs (Compute Engine ``aggregatedList`` by name, its ``cfcr-cluster`` and ``cfcr-role`` labels
and its status). It cannot take the join identity from a joined worker: Compute Engine changes
a VM's service account only while the VM is stopped, so a pool's account keeps reading the
join token (the revoke hook reads the provider IDs and does nothing). What limits a token read
on a joined worker is its short life (two hours, rotated every half hour or so) and the
candidate check: it may join no name but a pool VM's that has no Node yet (docs/gcp.md).

Optional capabilities it implements (cfcr.node): :class:`~cfcr.node.context.NodeIdentity`,
:class:`~cfcr.node.context.JoinAccess`, :class:`~cfcr.node.context.MachineId`,
:class:`~cfcr.node.context.ShellFunctions`, :class:`~cfcr.node.backup.SnapshotStore` (with a
:class:`GcsSnapshotTarget`) and :class:`~cfcr.node.metadata_guard.MetadataGuard` (pods may not
reach the metadata server: GCE serves every VM's service-account token there, to anyone who
asks, and there is no metadata proxy for current Kubernetes).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import ClassVar

from cfcr.gcp.labels import CLUSTER_LABEL, ROLE_LABEL, label_text
from cfcr.node.context import UserDataLimit
from cfcr.node.requests import bearer_call

METADATA_ADDRESS = "169.254.169.254"
"""The metadata server (``metadata.google.internal``), by address: no DNS needed at early boot."""
METADATA_HOST_VARIABLE = "GCE_METADATA_HOST"
"""The Google SDKs' variable naming another metadata server (``host[:port]``), for tests."""
SECRET_MANAGER_ROOT = "https://secretmanager.googleapis.com/"
SECRET_MANAGER_VARIABLE = "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER"
"""gcloud's Secret Manager endpoint override (a root URL, ``v1/...`` follows it)."""
COMPUTE_ROOT = "https://compute.googleapis.com/compute/v1/"
COMPUTE_VARIABLE = "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE"
"""gcloud's Compute Engine endpoint override (a root with its version, ``projects/...`` follows it)."""
JOINING_STATES = ("PROVISIONING", "STAGING", "RUNNING")
"""Instance states of a VM that may be joining (Compute Engine's instance life cycle: resources
being allocated, the VM booting, the VM running); a stopping, stopped, suspended or terminated
VM joins nothing."""
INSTANCE_NAME = "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
"""A Compute Engine instance name (RFC 1035 label), which is the Node name of a GCP node."""
STORAGE_ROOT = "https://storage.googleapis.com"
STORAGE_VARIABLE = "STORAGE_EMULATOR_HOST"
"""The Cloud Storage client libraries' variable naming another endpoint (``http://`` by default)."""
UPLOAD_MAX_SECONDS = 1800
"""curl's limit for one snapshot upload (a 2 GiB database at 1.2 MB/s; GCE to GCS is far faster)."""

_CURL_METADATA = "curl -fsS --connect-timeout 5 --max-time 30 --retry 5 -H 'Metadata-Flavor: Google'"
_METADATA_BASE = f'"http://${{{METADATA_HOST_VARIABLE}:-{METADATA_ADDRESS}}}/computeMetadata/v1'

_LIBRARY = [
    # Google APIs without gcloud (cfcr.gcp.node_hook): curl with an access token of this VM's
    # service account from the metadata server, which reaches curl on stdin, never on a command line.
    # cfcr_gcp_metadata PATH: a value of the metadata server (computeMetadata/v1/PATH).
    "cfcr_gcp_metadata() {",
    f"  {_CURL_METADATA} {_METADATA_BASE}/$1\"",
    "}",
    # cfcr_gcp_token: an access token of this VM's service account (stdout).
    "cfcr_gcp_token() {",
    "  local answer",
    "  answer=$(cfcr_gcp_metadata instance/service-accounts/default/token) || return 1",
    "  printf '%s' \"$answer\" | jq -er 'if (.access_token | type) == \"string\" and (.access_token | length) > 0"
    " then .access_token else error(\"no access token from the metadata server\") end'",
    "}",
    # cfcr_gcp_call URL BODY [CURL ARGS...]: one request with the bearer token on stdin and BODY
    # (if any) through fd 3, never on a command line; the answer on stdout, or Google's error on
    # stderr and status 1. Throttling, server errors and lost connections: three tries.
    *bearer_call("cfcr_gcp_call"),
    "  [ \"$code\" = 000 ] || printf 'GCP error (HTTP %s): %s\\n' \"$code\" \"$(printf '%s' \"$out\" |",
    "    jq -r '.error | \"\\(.status // .code): \\(.message)\"' 2>/dev/null || printf '%s' \"$out\" | tr -s ' \\n' ' ' | cut -c1-500)\" >&2",
    "  return 1",
    "}",
    # cfcr_gcp URL BODY [CURL ARGS...]: cfcr_gcp_call with this VM's token.
    "cfcr_gcp() {",
    "  local token",
    "  token=$(cfcr_gcp_token) || { echo \"cfcr: no access token from the metadata server\" >&2; return 1; }",
    "  printf '%s\\n' \"$token\" | cfcr_gcp_call \"$@\"",
    "}",
]

_MD5_PROGRAM = ("import base64, hashlib, sys; h = hashlib.md5(usedforsecurity=False); f = open(sys.argv[1], \"rb\"); "
                "[h.update(b) for b in iter(lambda: f.read(1 << 20), b\"\")]; print(base64.b64encode(h.digest()).decode())")
"""The file's MD5, base64 (one line: the hook's lines are indented in backup.sh)."""

_VERSION_BODY_PROGRAM = ("import base64, json, sys\n"
                         "d = sys.stdin.buffer.read()\n"
                         "c = 0xFFFFFFFF\n"
                         "for b in d:\n"
                         "    c ^= b\n"
                         "    for _ in range(8):\n"
                         "        c = (c >> 1) ^ (0x82F63B78 & -(c & 1))\n"
                         "print(json.dumps({\"payload\": {\"data\": base64.b64encode(d).decode(), "
                         "\"dataCrc32c\": str(c ^ 0xFFFFFFFF)}}))")
"""Standard input as an ``addVersion`` body: the bytes base64, and their CRC32C (Castagnoli,
reflected, as Secret Manager checks ``dataCrc32c`` before it keeps a version; int64 as a JSON
string)."""


@dataclass(frozen=True)
class GcsSnapshotTarget:
    """Where a control-plane member uploads etcd snapshots (``cfcr.gcp.backups``)."""

    bucket: str
    """The bucket (created by cfcr, or ``etcdBackups.existingBucket``)."""


@dataclass(frozen=True)
class GcpNodeHook:
    """Google's REST APIs with curl, ``jq`` and the image's ``python3``; the access token comes
    from the metadata server. Nothing to install at boot (module docstring)."""

    user_data_limit: ClassVar[UserDataLimit] = UserDataLimit(max_bytes=262144, gzip=False)
    """GCP: 256 KB in one metadata value, which is text: no gzip stream."""

    time_servers: ClassVar[tuple[str, ...]] = ("metadata.google.internal",)
    """GCE's NTP server, the metadata server, which every VM reaches without the internet
    (Compute Engine documentation, "Configure NTP for VMs"); chrony uses it."""

    project: str
    """Project that owns the secrets."""
    cluster: str = ""
    """The cluster name (its instances carry ``cfcr-cluster: <label_text(cluster)>``); without
    it the join candidate check approves nobody."""
    backups: GcsSnapshotTarget | None = None
    """Where etcd snapshots go; None: this cluster takes none."""

    def packages(self) -> list[str]:
        """Nothing more from apt: curl and jq are the node's own packages
        (``cfcr.node.packages.APT_PACKAGES``), python3 comes with the image."""
        return []

    def setup_commands(self) -> list[str]:
        """Nothing to install: no CLI."""
        return []

    def shell_functions(self) -> str:
        """The bash functions the other commands call (``cfcr_gcp_metadata``, ``cfcr_gcp_token``,
        ``cfcr_gcp_call``, ``cfcr_gcp``, ``cfcr_gcp_secret_get``, ``cfcr_gcp_secret_add`` and
        ``cfcr_gcp_secret_prune``), defined once in ``/etc/cfcr/secrets.sh``."""
        root = f"${{{SECRET_MANAGER_VARIABLE}:-{SECRET_MANAGER_ROOT}}}"
        return "\n".join([
            *_LIBRARY,
            # cfcr_gcp_secret_get NAME: the latest version of a secret (its bytes, base64-decoded).
            "cfcr_gcp_secret_get() {",
            f"  local root={root} name=$1 answer data",
            f"  [[ $name == projects/* ]] || name=projects/{self.project}/secrets/$name",
            "  answer=$(cfcr_gcp \"${root%/}/v1/$name/versions/latest:access\" '') || return 1",
            "  data=$(printf '%s' \"$answer\" | jq -er '.payload.data') || { echo \"cfcr: no payload in $name\" >&2; return 1; }",
            "  printf '%s' \"$data\" | base64 -d",
            "}",
            # cfcr_gcp_secret_add NAME: standard input becomes the secret's new (latest) version
            # (addVersion, with its CRC32C); then the versions it supersedes are destroyed
            # (cfcr_gcp_secret_prune), which only warns when it fails: the value is stored.
            "cfcr_gcp_secret_add() {",
            f"  local root={root} name=$1 body answer version",
            f"  [[ $name == projects/* ]] || name=projects/{self.project}/secrets/$name",
            f"  body=$(python3 -c {shlex.quote(_VERSION_BODY_PROGRAM)}) || return 1",
            "  answer=$(cfcr_gcp \"${root%/}/v1/$name:addVersion\" \"$body\" -X POST -H 'Content-Type: application/json') || return 1",
            "  version=$(printf '%s' \"$answer\" | jq -r '.name // \"\"')",
            "  version=${version##*/versions/}",
            "  [[ $version =~ ^[0-9]+$ ]] || { echo \"cfcr: Secret Manager named no new version of $name\" >&2; return 1; }",
            "  cfcr_gcp_secret_prune \"$name\" \"$version\" ||",
            "    echo \"cfcr: stored version $version of $name but kept the versions before it; the next store destroys them\" >&2",
            "}",
            # cfcr_gcp_secret_prune NAME NEW: destroy every enabled version older than NEW but the
            # oldest one (the version Pulumi created with the secret and reads on every refresh:
            # destroyed, the refresh would fail). Destroyed versions cost nothing; enabled and
            # disabled ones are billed each month, and a rotation adds one every half hour or so.
            "cfcr_gcp_secret_prune() {",
            f"  local root={root} name=$1 new=$2 answer page='' oldest='' n",
            "  local -a numbers=() more=()",
            "  while :; do",
            "    answer=$(cfcr_gcp \"${root%/}/v1/$name/versions\" '' -G --data-urlencode 'filter=state:ENABLED' \\",
            "      ${page:+--data-urlencode \"pageToken=$page\"}) || return 1",
            "    mapfile -t more < <(printf '%s' \"$answer\" | jq -r '.versions[]? | select(.state == \"ENABLED\") | .name')",
            "    numbers+=(\"${more[@]##*/versions/}\")",
            "    page=$(printf '%s' \"$answer\" | jq -r '.nextPageToken // \"\"')",
            "    [ -n \"$page\" ] || break",
            "  done",
            "  for n in \"${numbers[@]}\"; do",
            "    [[ $n =~ ^[0-9]+$ ]] || continue",
            "    if [ -z \"$oldest\" ] || [ \"$n\" -lt \"$oldest\" ]; then oldest=$n; fi",
            "  done",
            "  for n in \"${numbers[@]}\"; do",
            "    if [[ $n =~ ^[0-9]+$ ]] && [ \"$n\" -lt \"$new\" ] && [ \"$n\" != \"$oldest\" ]; then",
            "      cfcr_gcp \"${root%/}/v1/$name/versions/$n:destroy\" '{}' -X POST -H 'Content-Type: application/json' >/dev/null ||",
            "        return 1",
            "    fi",
            "  done",
            "}",
        ])

    def fetch_command(self, secret_id: str) -> str:
        """Print the latest version of ``secret_id`` (a secret id of :attr:`project`, or a full
        ``projects/<p>/secrets/<id>`` name): ``cfcr_gcp_secret_get``."""
        return f"cfcr_gcp_secret_get {shlex.quote(secret_id)}"

    def store_command(self, secret_id: str) -> str:
        """Secret Manager ``addVersion`` of standard input, then the superseded versions destroyed
        but the first (``cfcr_gcp_secret_add``). The control-plane accounts hold
        ``roles/secretmanager.secretVersionManager`` on the join token's secret, and on no other
        (``cfcr.gcp.secrets``)."""
        return f"cfcr_gcp_secret_add {shlex.quote(secret_id)}"

    def revoke_command(self) -> str:
        """Nothing to take: Compute Engine changes a VM's service account only while it is
        stopped, so a joined worker keeps its pool account and that account's read access to the
        join token. The provider IDs are read and dropped (module docstring, docs/gcp.md)."""
        return "\n".join([
            "# Compute Engine cannot take the join identity from a running VM: its service account",
            "# changes only while it is stopped (instances.setServiceAccount). A joined worker keeps",
            "# reading the join token; its two-hour life and cfcr_join_candidate are the limits.",
            "cat >/dev/null",
        ])

    def candidate_command(self) -> str:
        """``NAME`` (an instance name: the Node name on GCP) succeeds when an instance of that name
        in :attr:`project` carries this cluster's ``cfcr-cluster`` label and ``cfcr-role: worker``
        (set by the pools' instance template; the control plane's custom role cannot change
        instance labels) and is PROVISIONING, STAGING or RUNNING (Compute Engine
        ``aggregatedList`` filtered by name, every page), and prints that instance's
        ``creationTimestamp`` in seconds since the epoch. A control-plane member, a stopped or
        deleted VM, another cluster's VM and any other name fail; so does every name when the
        hook names no cluster."""
        if not self.cluster:
            return 'echo "cfcr: the node hook names no cluster: no join candidate" >&2\nreturn 1'
        root = f"${{{COMPUTE_VARIABLE}:-{COMPUTE_ROOT}}}"
        states = " or ".join(f'.status == "{s}"' for s in JOINING_STATES)
        select = (f'first(.items[]?.instances[]? | select(.name == $name and .labels["{CLUSTER_LABEL}"] == $cluster'
                  f' and .labels["{ROLE_LABEL}"] == "worker" and ({states}))) | .creationTimestamp')
        return "\n".join([
            f"local name=${{1:-}} root={root} answer page='' created",
            f"[[ $name =~ {INSTANCE_NAME} ]] || return 1",
            "while :; do",
            f"  answer=$(cfcr_gcp \"${{root%/}}/projects/{self.project}/aggregated/instances\" '' -G \\",
            "    --data-urlencode \"filter=name = \\\"$name\\\"\" ${page:+--data-urlencode \"pageToken=$page\"}) || return 1",
            f"  if created=$(printf '%s' \"$answer\" | jq -er --arg name \"$name\" --arg cluster {shlex.quote(label_text(self.cluster))} \\",
            f"    {shlex.quote(select)}); then",
            "    date -d \"$created\" +%s",
            "    return",
            "  fi",
            "  page=$(printf '%s' \"$answer\" | jq -r '.nextPageToken // \"\"')",
            "  [ -n \"$page\" ] || return 1",
            "done",
        ])

    def provider_id_command(self) -> str:
        """The VM's project, zone (the metadata server answers ``projects/<n>/zones/<zone>``)
        and name, printed as ``gce://<project>/<zone>/<name>``, the form the GCP cloud controller
        manager parses. Stands alone (identity.sh needs no other file)."""
        get = f"{_CURL_METADATA} {_METADATA_BASE}"
        return "\n".join([
            "local project zone name",
            f"project=$({get}/project/project-id\") || return 1",
            f"zone=$({get}/instance/zone\") || return 1",
            f"name=$({get}/instance/name\") || return 1",
            "[ -n \"$project\" ] && [ -n \"${zone##*/}\" ] && [ -n \"$name\" ] || return 1",
            'printf "gce://%s/%s/%s\\n" "$project" "${zone##*/}" "$name"',
        ])

    def machine_id_command(self) -> str:
        """The instance's numeric id (``instance/id``), never reused: a member replaced under its
        name (and so its provider ID) tells its rollout gate it is the new machine with it."""
        get = f"{_CURL_METADATA} {_METADATA_BASE}"
        return "\n".join([
            "local id",
            f"id=$({get}/instance/id\") || return 1",
            "[[ $id =~ ^[0-9]+$ ]] || return 1",
            "printf '%s\\n' \"$id\"",
        ])

    def snapshot_upload_command(self) -> str | None:
        """``cfcr_backup_upload FILE KEY``: one Cloud Storage media upload (JSON API,
        ``POST /upload/storage/v1/b/<bucket>/o?uploadType=media&name=KEY``) with this VM's token
        (the control plane's service account, which holds ``roles/storage.objectCreator`` on the
        snapshot prefix of the bucket and nothing else there: it can neither read, list,
        overwrite nor delete a snapshot). The body's MD5 travels in ``x-goog-hash``, which Cloud
        Storage checks before it keeps the object (a mismatch fails the upload), and the answer's
        ``md5Hash``, ``size`` and ``name`` are checked again here. The file streams from disk
        (``-T``), never whole in memory."""
        if self.backups is None:
            return None
        bucket = self.backups.bucket
        root = f"${{{STORAGE_VARIABLE}:-{STORAGE_ROOT}}}"
        return "\n".join([
            "local size md5 root url answer",
            "size=$(stat -c %s \"$1\") || return 1",
            "[[ $2 =~ ^[A-Za-z0-9._/-]+$ ]] || { echo \"cfcr: object key $2 has characters the upload does not encode\" >&2; return 1; }",
            f"md5=$(python3 -c {shlex.quote(_MD5_PROGRAM)} \"$1\") || return 1",
            f"root={root}",
            "[[ $root == *://* ]] || root=http://$root",
            f"url=\"${{root%/}}/upload/storage/v1/b/{bucket}/o?uploadType=media&name=${{2//\\//%2F}}\"",
            f"answer=$(cfcr_gcp \"$url\" '' -X POST -T \"$1\" --max-time {UPLOAD_MAX_SECONDS} \\",
            "  -H 'Content-Type: application/octet-stream' -H \"x-goog-hash: md5=$md5\") || return 1",
            "printf '%s' \"$answer\" | jq -e --arg md5 \"$md5\" --arg size \"$size\" --arg name \"$2\" \\",
            "  '.md5Hash == $md5 and (.size | tostring) == $size and .name == $name' >/dev/null || {",
            "  echo \"cfcr: Cloud Storage kept $2 with another size or MD5 than $1 ($size bytes, md5 $md5)\" >&2",
            "  return 1",
            "}",
        ])

    def guarded_addresses(self) -> tuple[str, ...]:
        """The metadata server: pods (forwarded traffic) may not reach it; the node itself and
        host-network pods (the cloud controller manager, the CSI controller) keep it
        (:mod:`cfcr.node.metadata_guard`)."""
        return (METADATA_ADDRESS,)
