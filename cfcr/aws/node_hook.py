"""AWS: nodes read their secrets from Secrets Manager with the instance profile (IMDSv2),
and their provider ID (``aws:///<availability zone>/<instance id>``) from IMDSv2; the control
plane rotates the join token in Secrets Manager and swaps a joined worker's instance profile
for its pool's joined profile, which cannot read the join secrets; and the control plane
uploads etcd snapshots to S3 through a role that may write them and nothing else
(``cfcr.aws.backups``).

No AWS CLI: a node fetches nothing from the internet at boot (air-gapped sites reach only
their VPC endpoints). Each call is one HTTPS request signed by curl's own SigV4 signer
(``--aws-sigv4``, curl >= 7.75; Ubuntu 24.04 has 8.5), with ``jq`` for the JSON APIs (Secrets
Manager) and the image's ``python3`` (``xml.etree``) for the XML answers of the Query APIs (EC2,
STS). The bash functions live once in ``/etc/cfcr/secrets.sh``
(:meth:`AwsNodeHook.shell_functions`):

* credentials: IMDSv2 (a session token, then ``iam/security-credentials/<role>``); the key
  pair (``user = "AKID:SECRET"``) and the ``x-amz-security-token`` header reach curl as a
  configuration on stdin (``curl -K -``), a request body through file descriptor 3, never a
  command line (``/proc/<pid>/cmdline`` is world-readable). curl signs every header it is
  given, the session token included;
* endpoints: regional (``https://<service>.<region>.amazonaws.com``, ``.amazonaws.com.cn`` in
  China; STS too, which has VPC endpoints where the global one has none), unless the SDKs'
  standard variables say otherwise: ``AWS_ENDPOINT_URL_SECRETS_MANAGER``,
  ``AWS_ENDPOINT_URL_EC2``, ``AWS_ENDPOINT_URL_STS``, ``AWS_ENDPOINT_URL_S3``, then
  ``AWS_ENDPOINT_URL`` (S3 is then addressed path-style: ``<endpoint>/<bucket>/<key>``). The
  instance metadata is ``http://169.254.169.254`` unless ``AWS_EC2_METADATA_SERVICE_ENDPOINT``
  names another (the SDKs' variable too; tests point both at stand-ins);
* errors: a failed call prints AWS's answer, its error code and message, on stderr and returns non-zero;
  throttling (429), server errors (5xx) and failed connections are tried three times.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from cfcr.aws.tags import dns_suffix, partition_of
from cfcr.config.topology import ControlPlaneMember
from cfcr.node.context import UserDataLimit
from cfcr.node.requests import retry_loop
from cfcr.pki.specs import is_ip_address

IMDS = "http://169.254.169.254/latest"
"""The instance metadata service (IMDSv2) that every hook command reads by default."""
IMDS_ENDPOINT_VARIABLE = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
"""The SDKs' variable naming another metadata endpoint (without ``/latest``), for tests."""
MAX_SINGLE_PUT = 5 * 1024**3
"""The largest object one S3 PutObject takes (S3 User Guide, "Uploading objects")."""
ACCOUNT_PLACEHOLDER = "@ACCOUNT@"
"""Stands for the AWS account id in a name a node completes at run time (STS ``GetCallerIdentity``)."""
EC2_API_VERSION = "2016-11-15"
"""The EC2 Query API version (the only current one)."""
STS_API_VERSION = "2011-06-15"
"""The STS Query API version."""
ENDPOINT_VARIABLES = {"secretsmanager": "AWS_ENDPOINT_URL_SECRETS_MANAGER", "ec2": "AWS_ENDPOINT_URL_EC2",
                      "sts": "AWS_ENDPOINT_URL_STS", "s3": "AWS_ENDPOINT_URL_S3"}
"""Service -> the SDKs' service-specific endpoint variable (``AWS_ENDPOINT_URL_<service id>``)."""


def _imds_lines(*names: str) -> list[str]:
    """Bash: ``local base token NAMES``, the metadata base URL, and an IMDSv2 session token in
    ``$token`` (or ``return 1``). Shared by the credentials and the provider ID."""
    return [
        f"local base=${{{IMDS_ENDPOINT_VARIABLE}:-{IMDS.removesuffix('/latest')}}} token{''.join(' ' + n for n in names)}",
        "base=${base%/}/latest",
        "token=$(curl -fsS --connect-timeout 5 --max-time 30 --retry 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' \"$base/api/token\")"
        " || return 1",
    ]


def _imds_get(path: str) -> str:
    """Bash: GET ``$base/meta-data/<path>`` with ``$token`` (which reaches curl on stdin)."""
    return f'printf "X-aws-ec2-metadata-token: %s\\n" "$token" | curl -fsS --connect-timeout 5 --max-time 30 --retry 5 -H @- "$base/meta-data/{path}"'


_XML_PROGRAM = """import sys, xml.etree.ElementTree as E
q = lambda p: "/".join("{*}" + s for s in p.split("/"))
for e in E.parse(sys.stdin).getroot().iterfind(q(sys.argv[1])):
    print("\\t".join(e.findtext(q(f)) or "" for f in sys.argv[2:]) if sys.argv[2:] else e.text or "")"""

_LIBRARY = [
    # AWS APIs without the AWS CLI (cfcr.aws.node_hook): curl signs (--aws-sigv4) with this instance's
    # IMDSv2 credentials, which reach it as a configuration on stdin, never on a command line.
    # cfcr_aws_credentials: the instance profile's credentials as curl configuration (stdout).
    "cfcr_aws_credentials() {",
    *[f"  {line}" for line in _imds_lines("role", "creds")],
    f"  role=$({_imds_get('iam/security-credentials/')}) || return 1",
    "  role=${role%%[[:space:]]*}",
    "  [ -n \"$role\" ] || { echo \"cfcr: this instance has no instance profile\" >&2; return 1; }",
    f"  creds=$({_imds_get('iam/security-credentials/$role')}) || return 1",
    "  printf '%s' \"$creds\" | jq -er 'if [.AccessKeyId, .SecretAccessKey, .Token] | all(type == \"string\" and length > 0) then",
    "    \"user = \\(.AccessKeyId + \":\" + .SecretAccessKey | @json)\",",
    "    \"header = \\(\"x-amz-security-token: \" + .Token | @json)\"",
    "    else error(\"no credentials in the instance metadata\") end'",
    "}",
    # cfcr_aws_call REGION:SERVICE URL BODY [CURL ARGS...]: one request signed with the credentials
    # of the curl configuration on stdin, BODY (if any) through fd 3; the answer on stdout, or AWS's
    # error on stderr (its JSON, or its XML's texts: the error code and message) and status 1.
    # Throttling, server errors and lost connections: three tries.
    "cfcr_aws_call() {",
    "  local scope=$1 url=$2 body=$3 config out code n",
    "  shift 3",
    "  config=$(cat)",
    "  [ -z \"$body\" ] || set -- \"$@\" --data-binary @/dev/fd/3",
    *retry_loop(["printf '%s\\n' \"$config\" | curl -sS --connect-timeout 10 --max-time 120 -K - --aws-sigv4 "
                 "\"aws:amz:$scope\" -w '\\n%{http_code}' \"$@\" \"$url\""]),
    "  [ \"$code\" = 000 ] || printf 'AWS error (HTTP %s): %s\\n' \"$code\" \"$(printf '%s' \"$out\" | tr -s ' \\n' ' ' |",
    "    sed 's/<[^>]*>/ /g; s/  */ /g' | cut -c1-500)\" >&2",
    "  return 1",
    "}",
    # cfcr_aws SERVICE URL BODY [CURL ARGS...]: cfcr_aws_call with this instance's credentials.
    "cfcr_aws() {",
    "  local creds",
    "  creds=$(cfcr_aws_credentials) || { echo \"cfcr: no credentials from the instance metadata\" >&2; return 1; }",
    "  printf '%s\\n' \"$creds\" | cfcr_aws_call \"$@\"",
    "}",
    # cfcr_aws_xml PATH [FIELD...]: an AWS XML answer on stdin; for each element at PATH (element
    # names a/b/c, below the root), its FIELDs tab-separated, or without FIELDs its text.
    "cfcr_aws_xml() {",
    "  python3 -c '" + _XML_PROGRAM + "' \"$@\"",
    "}",
]


def _endpoint(service: str, region: str) -> str:
    """Bash: the service's endpoint URL, the SDKs' variables first (no trailing slash)."""
    default = f"https://{service}.{region}.{dns_suffix(region)}"
    return f"${{{ENDPOINT_VARIABLES[service]}:-${{AWS_ENDPOINT_URL:-{default}}}}}"


@dataclass(frozen=True)
class S3SnapshotTarget:
    """Where a control-plane member uploads etcd snapshots (``cfcr.aws.backups``)."""

    bucket: str
    """The bucket; :data:`ACCOUNT_PLACEHOLDER` stands for the account id, which the node reads."""
    writer_role: str
    """Name of the role that may write snapshots and nothing else; assumed for each upload."""


@dataclass(frozen=True)
class AwsNodeHook:
    """AWS APIs with curl's SigV4 signer, ``jq`` and the image's ``python3``; credentials come
    from IMDSv2. Nothing to install at boot (module docstring)."""

    user_data_limit: ClassVar[UserDataLimit] = UserDataLimit(max_bytes=16384, gzip=True)
    """AWS: 16384 bytes of user data (EC2 User Guide, "Instance user data"); cloud-init unpacks gzip."""

    time_servers: ClassVar[tuple[str, ...]] = ("169.254.169.123",)
    """The Amazon Time Sync Service, on the link-local address every instance reaches without
    the internet (EC2 User Guide, "Set the time for your EC2 instance"); chrony uses it."""

    region: str
    """Region of the secrets (passed explicitly: the hop limit keeps IMDS region lookups honest)."""
    joined_profiles: Mapping[str, str] = field(default_factory=dict)
    """Each pool's join instance profile name -> its joined profile name (cfcr.aws.identity)."""
    cluster: str = ""
    """The cluster name (its ``kubernetes.io/cluster/<name>`` tag marks its instances)."""
    backups: S3SnapshotTarget | None = None
    """Where etcd snapshots go; None: this cluster takes none."""

    def packages(self) -> list[str]:
        """Nothing more from apt: curl and jq are the node's own packages
        (``cfcr.node.packages.APT_PACKAGES``), python3 comes with the image."""
        return []

    def setup_commands(self) -> list[str]:
        """Nothing to install: no CLI (the node may reach nothing but its VPC endpoints)."""
        return []

    def shell_functions(self) -> str:
        """The bash functions the other commands call (``cfcr_aws``, ``cfcr_aws_call``,
        ``cfcr_aws_credentials``, ``cfcr_aws_xml``, the per-service ``cfcr_aws_secretsmanager``,
        ``cfcr_aws_ec2``, ``cfcr_aws_sts`` (with a backup target: only the upload calls STS) and
        the Secrets Manager reads and writes), defined once in ``/etc/cfcr/secrets.sh``."""
        region = self.region
        lines = list(_LIBRARY)
        services = [("secretsmanager", " \"$2\" -H \"X-Amz-Target: secretsmanager.$1\""
                                       " -H 'Content-Type: application/x-amz-json-1.1'"),
                    ("ec2", f" '' -d Version={EC2_API_VERSION} \"$@\"")]
        if self.backups is not None:  # only the snapshot upload calls STS (an air-gapped VPC has its endpoint then)
            services.append(("sts", f" '' -d Version={STS_API_VERSION} \"$@\""))
        for service, extra in services:
            lines.append(f'cfcr_aws_{service}() {{ local e={_endpoint(service, region)}; '
                         f'cfcr_aws {region}:{service} "${{e%/}}/"{extra}; }}')
        lines += [
            # cfcr_aws_ec2_rows PATH FIELD... -- QUERY...: cfcr_aws_xml's rows of every page of an EC2 answer
            "cfcr_aws_ec2_rows() {",
            "  local xml=() answer next=",
            "  while [ \"$1\" != -- ]; do xml+=(\"$1\"); shift; done",
            "  shift",
            "  while :; do",
            "    answer=$(cfcr_aws_ec2 \"$@\" ${next:+--data-urlencode \"NextToken=$next\"}) || return 1",
            "    printf '%s' \"$answer\" | cfcr_aws_xml \"${xml[@]}\" || return 1",
            "    next=$(printf '%s' \"$answer\" | cfcr_aws_xml nextToken) || return 1",
            "    [ -n \"$next\" ] || return 0",
            "  done",
            "}",
        ]
        lines += [
            # cfcr_aws_secret_get ID: the secret's SecretString on stdout (Secrets Manager GetSecretValue)
            "cfcr_aws_secret_get() {",
            "  local answer",
            "  answer=$(cfcr_aws_secretsmanager GetSecretValue \"$(jq -cn --arg id \"$1\" '{SecretId: $id}')\") || return 1",
            "  printf '%s' \"$answer\" | jq -er '.SecretString // error(\"the secret has no SecretString\")'",
            "}",
            # cfcr_aws_secret_put ID: standard input becomes the secret's new value (PutSecretValue)
            "cfcr_aws_secret_put() {",
            "  local body",
            "  body=$(jq -cRs --arg id \"$1\" '{SecretId: $id, SecretString: .}') || return 1",
            "  cfcr_aws_secretsmanager PutSecretValue \"$body\" >/dev/null",
            "}",
        ]
        return "\n".join(lines) + "\n"

    def fetch_command(self, secret_id: str) -> str:
        """Secrets Manager ``GetSecretValue`` printing the SecretString."""
        return f"cfcr_aws_secret_get {shlex.quote(secret_id)}"

    def store_command(self, secret_id: str) -> str:
        """Secrets Manager ``PutSecretValue`` with the value read from standard input."""
        return f"cfcr_aws_secret_put {shlex.quote(secret_id)}"

    def revoke_command(self) -> str:
        """Read ``aws:///<zone>/<instance-id>`` lines; for each instance still associated with a
        pool's join profile, replace the association with the pool's joined profile
        (EC2 ``DescribeIamInstanceProfileAssociations`` by 100 instance ids, every page first,
        then ``ReplaceIamInstanceProfileAssociation``)."""
        cases = [f"    {shlex.quote(join)}) new={shlex.quote(joined)} ;;"
                 for join, joined in sorted(self.joined_profiles.items())]
        return "\n".join([
            "local ids=() args=() rows='' assoc arn new id n",
            "mapfile -t ids < <(sed -n 's#^aws:///[^/]*/\\(i-[0-9a-f]*\\)$#\\1#p' | sort -u)",
            "while [ ${#ids[@]} -gt 0 ]; do",
            "  args=(-d Action=DescribeIamInstanceProfileAssociations -d Filter.1.Name=state -d Filter.1.Value.1=associated",
            "    -d Filter.2.Name=instance-id)",
            "  n=0",
            "  for id in \"${ids[@]:0:100}\"; do n=$((n + 1)); args+=(-d \"Filter.2.Value.$n=$id\"); done",
            "  ids=(\"${ids[@]:100}\")",
            "  rows+=$(cfcr_aws_ec2_rows iamInstanceProfileAssociationSet/item associationId iamInstanceProfile/arn \\",
            "    -- \"${args[@]}\")$'\\n' || return 1",
            "done",
            "while IFS=$'\\t' read -r assoc arn; do",
            "  [ -n \"$assoc\" ] || continue",
            "  case \"${arn##*/}\" in",
            *cases,
            "    *) continue ;;",
            "  esac",
            "  cfcr_aws_ec2 -d Action=ReplaceIamInstanceProfileAssociation \\",
            "    --data-urlencode \"AssociationId=$assoc\" --data-urlencode \"IamInstanceProfile.Name=$new\" >/dev/null || return 1",
            "  echo \"$assoc: ${arn##*/} -> $new\"",
            "done <<<\"$rows\"",
        ])

    def candidate_command(self) -> str:
        """``NAME`` is ``ip-a-b-c-d`` (or ``i-…``), optionally with a domain: succeed when a pending
        or running instance of that private address (or id), tagged ``owned`` by this cluster
        and as a worker, holds a join profile (EC2 ``DescribeInstances``, every page), and print
        its launch time in seconds since the epoch."""
        tag = f"tag:kubernetes.io/cluster/{self.cluster}"
        joins = " | ".join(shlex.quote(j) for j in sorted(self.joined_profiles))
        match = [f"    {joins}) ;;"] if joins else []
        return "\n".join([
            "local name=${1%%.*} filter rows arn launched",
            "if [[ $name =~ ^ip-([0-9]{1,3})-([0-9]{1,3})-([0-9]{1,3})-([0-9]{1,3})$ ]]; then",
            "  filter=private-ip-address",
            "  name=\"${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}.${BASH_REMATCH[4]}\"",
            "elif [[ $name =~ ^i-[0-9a-f]{8,17}$ ]]; then",
            "  filter=instance-id",
            "else",
            "  return 1",
            "fi",
            "rows=$(cfcr_aws_ec2_rows reservationSet/item/instancesSet/item iamInstanceProfile/arn launchTime -- \\",
            "  -d Action=DescribeInstances -d \"Filter.1.Name=$filter\" --data-urlencode \"Filter.1.Value.1=$name\" \\",
            f"  --data-urlencode {shlex.quote('Filter.2.Name=' + tag)} -d Filter.2.Value.1=owned \\",
            "  --data-urlencode Filter.3.Name=tag:cfcr.io/role -d Filter.3.Value.1=worker \\",
            "  -d Filter.4.Name=instance-state-name -d Filter.4.Value.1=pending -d Filter.4.Value.2=running) || return 1",
            "while IFS=$'\\t' read -r arn launched; do",
            "  case \"${arn##*/}\" in",
            *match,
            "    *) continue ;;",
            "  esac",
            "  date -d \"$launched\" +%s",
            "  return",
            "done <<<\"$rows\"",
            "return 1",
        ])

    def snapshot_upload_command(self) -> str | None:
        """``cfcr_backup_upload FILE KEY``: the account id (STS ``GetCallerIdentity``) and temporary
        credentials of the writer role (STS ``AssumeRole`` with the instance's own, 15 minutes),
        then one S3 ``PutObject`` of FILE as KEY signed with those, which only this request sees,
        with the body's SHA-256 (``x-amz-content-sha256``, signed) and its checksum
        (``x-amz-checksum-sha256``, which S3 verifies and keeps; ``x-amz-sdk-checksum-algorithm``
        as the CLI's ``--checksum-algorithm SHA256`` sent it). One PUT needs only ``s3:PutObject``
        and ``kms:GenerateDataKey`` (a multipart upload would need ``kms:Decrypt`` too) and takes up
        to 5 GiB: a larger database fails here, saying so. No encryption header: the bucket's
        default (SSE-KMS with the backup key) applies."""
        if self.backups is None:
            return None
        region = self.region
        bucket = self.backups.bucket.replace(ACCOUNT_PLACEHOLDER, "$account")
        role = f"arn:{partition_of(region)}:iam::$account:role/{self.backups.writer_role}"
        s3 = f"s3.{region}.{dns_suffix(region)}"
        # virtual-hosted style at AWS; path style where a dot would break the TLS wildcard, and at a custom endpoint
        aws_url = f"https://{s3}/{bucket}/$2" if "." in self.backups.bucket else f"https://{bucket}.{s3}/$2"
        custom = "${AWS_ENDPOINT_URL_S3:-${AWS_ENDPOINT_URL:-}}"
        return "\n".join([
            "local size account answer id secret token sha url",
            "size=$(stat -c %s \"$1\") || return 1",
            f"[ \"$size\" -le {MAX_SINGLE_PUT} ] || {{ echo \"$1 is over S3's {MAX_SINGLE_PUT}-byte single upload\" >&2; return 1; }}",
            "[[ $2 =~ ^[A-Za-z0-9._/-]+$ ]] || { echo \"cfcr: object key $2 has characters the upload does not encode\" >&2; return 1; }",
            "answer=$(cfcr_aws_sts -d Action=GetCallerIdentity) || return 1",
            "account=$(printf '%s' \"$answer\" | cfcr_aws_xml GetCallerIdentityResult/Account) || return 1",
            "[[ $account =~ ^[0-9]{12}$ ]] || { echo \"cfcr: STS named no account id\" >&2; return 1; }",
            "answer=$(cfcr_aws_sts -d Action=AssumeRole -d DurationSeconds=900 \\",
            f"  --data-urlencode \"RoleArn={role}\" \\",
            "  --data-urlencode \"RoleSessionName=${CFCR_MEMBER:-etcd-backup}\") || return 1",
            "IFS=$'\\t' read -r id secret token < <(printf '%s' \"$answer\" |",
            "  cfcr_aws_xml AssumeRoleResult/Credentials AccessKeyId SecretAccessKey SessionToken)",
            "if [ -z \"$id\" ] || [ -z \"$secret\" ] || [ -z \"$token\" ]; then echo \"cfcr: AssumeRole gave no credentials\" >&2; return 1; fi",
            "sha=$(sha256sum \"$1\") || return 1",
            "sha=${sha%% *}",
            f"url=\"{custom}\"",
            f"if [ -n \"$url\" ]; then url=\"${{url%/}}/{bucket}/$2\"; else url=\"{aws_url}\"; fi",
            "printf 'user = \"%s:%s\"\\nheader = \"x-amz-security-token: %s\"\\n' \"$id\" \"$secret\" \"$token\" |",
            f"  cfcr_aws_call {region}:s3 \"$url\" '' -T \"$1\" -H \"x-amz-content-sha256: $sha\" -H 'x-amz-sdk-checksum-algorithm: SHA256' \\",
            "  -H \"x-amz-checksum-sha256: $(python3 -c 'import base64, sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' \"$sha\")\" \\",
            "  >/dev/null",
        ])

    def node_name(self, member: ControlPlaneMember) -> str:
        """``ip-a-b-c-d``: the host name EC2 gives an instance at a fixed address in a subnet with
        IP-based host names, which the VPC resolver answers (``ip-a-b-c-d.ec2.internal`` in
        us-east-1, ``.<region>.compute.internal`` elsewhere). Workers register the same way,
        by default, so every kubelet serving certificate names a name the network resolves."""
        if not is_ip_address(member.address):
            return member.name
        return "ip-" + member.address.replace(".", "-")

    def provider_id_command(self) -> str:
        """IMDSv2: a session token (PUT), then the placement zone and the instance id, printed
        as ``aws:///<zone>/<instance-id>``, the form cloud-provider-aws parses. The token
        reaches curl on stdin, never on a command line. Stands alone (identity.sh needs no
        other file); the token code is the credentials' own."""
        return "\n".join([
            *_imds_lines("zone", "id"),
            f"zone=$({_imds_get('placement/availability-zone')}) || return 1",
            f"id=$({_imds_get('instance-id')}) || return 1",
            'printf "aws:///%s/%s\\n" "$zone" "$id"',
        ])
