"""AWS: nodes read their secrets from Secrets Manager with the instance profile (IMDSv2),
and their provider ID (``aws:///<availability zone>/<instance id>``) from IMDSv2; the control
plane rotates the join token in Secrets Manager and swaps a joined worker's instance profile
for its pool's joined profile, which cannot read the join secrets; and the control plane
uploads etcd snapshots to S3 through a role that may write them and nothing else
(``cfcr.aws.backups``)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from cfcr.aws.tags import partition_of
from cfcr.config.topology import ControlPlaneMember
from cfcr.node.context import UserDataLimit
from cfcr.pki.specs import is_ip_address

IMDS = "http://169.254.169.254/latest"
MAX_SINGLE_PUT = 5 * 1024**3
"""The largest object one S3 PutObject takes (S3 User Guide, "Uploading objects")."""
ACCOUNT_PLACEHOLDER = "@ACCOUNT@"
"""Stands for the AWS account id in a name a node completes at run time (``sts get-caller-identity``)."""


@dataclass(frozen=True)
class S3SnapshotTarget:
    """Where a control-plane member uploads etcd snapshots (``cfcr.aws.backups``)."""

    bucket: str
    """The bucket; :data:`ACCOUNT_PLACEHOLDER` stands for the account id, which the node reads."""
    writer_role: str
    """Name of the role that may write snapshots and nothing else; assumed for each upload."""


@dataclass(frozen=True)
class AwsNodeHook:
    """Fetch secrets with the AWS CLI (snap on Ubuntu 24.04); credentials come from IMDSv2."""

    user_data_limit: ClassVar[UserDataLimit] = UserDataLimit(max_bytes=16384, gzip=True)
    """AWS: 16384 bytes of user data (EC2 User Guide, "Instance user data"); cloud-init unpacks gzip."""

    region: str
    """Region of the secrets (passed explicitly: the hop limit keeps IMDS region lookups honest)."""
    joined_profiles: Mapping[str, str] = field(default_factory=dict)
    """Each pool's join instance profile name -> its joined profile name (cfcr.aws.identity)."""
    cluster: str = ""
    """The cluster name (its ``kubernetes.io/cluster/<name>`` tag marks its instances)."""
    backups: S3SnapshotTarget | None = None
    """Where etcd snapshots go; None: this cluster takes none."""

    def packages(self) -> list[str]:
        """Nothing from apt: the CLI is a snap."""
        return []

    def setup_commands(self) -> list[str]:
        """Install the AWS CLI once."""
        return ["command -v aws >/dev/null 2>&1 || snap install aws-cli --classic"]

    def fetch_command(self, secret_id: str) -> str:
        """``aws secretsmanager get-secret-value`` printing the SecretString."""
        return (
            f"aws secretsmanager get-secret-value --region {shlex.quote(self.region)} "
            f"--secret-id {shlex.quote(secret_id)} --query SecretString --output text"
        )

    def store_command(self, secret_id: str) -> str:
        """``aws secretsmanager put-secret-value`` with the value read from standard input."""
        return (
            f"aws secretsmanager put-secret-value --region {shlex.quote(self.region)} "
            f"--secret-id {shlex.quote(secret_id)} --secret-string file:///dev/stdin --output text >/dev/null"
        )

    def revoke_command(self) -> str:
        """Read ``aws:///<zone>/<instance-id>`` lines; for each instance still associated with a
        pool's join profile, replace the association with the pool's joined profile."""
        region = shlex.quote(self.region)
        cases = [f"      {shlex.quote(join)}) new={shlex.quote(joined)} ;;"
                 for join, joined in sorted(self.joined_profiles.items())]
        return "\n".join([
            "local ids=() batch assoc arn new",
            "mapfile -t ids < <(sed -n 's#^aws:///[^/]*/\\(i-[0-9a-f]*\\)$#\\1#p' | sort -u)",
            "while [ ${#ids[@]} -gt 0 ]; do",
            "  batch=$(IFS=,; echo \"${ids[*]:0:100}\")",
            "  ids=(\"${ids[@]:100}\")",
            "  while read -r assoc arn; do",
            "    [ -n \"$assoc\" ] || continue",
            "    case \"${arn##*/}\" in",
            *cases,
            "      *) continue ;;",
            "    esac",
            f"    aws ec2 replace-iam-instance-profile-association --region {region} \\",
            "      --association-id \"$assoc\" --iam-instance-profile \"Name=$new\" --output text >/dev/null || return 1",
            "    echo \"$assoc: ${arn##*/} -> $new\"",
            f"  done < <(aws ec2 describe-iam-instance-profile-associations --region {region} \\",
            "    --filters Name=state,Values=associated \"Name=instance-id,Values=$batch\" \\",
            "    --query 'IamInstanceProfileAssociations[].[AssociationId,IamInstanceProfile.Arn]' --output text)",
            "done",
        ])

    def candidate_command(self) -> str:
        """``NAME`` is ``ip-a-b-c-d`` (or ``i-…``), optionally with a domain: succeed when a running
        instance of that address (or id), tagged as a worker of this cluster, holds a join profile."""
        region = shlex.quote(self.region)
        tag = shlex.quote(f"Name=tag:kubernetes.io/cluster/{self.cluster},Values=owned")
        joins = " | ".join(shlex.quote(j) for j in sorted(self.joined_profiles)) or "''"
        return "\n".join([
            "local name=${1%%.*} filter profile",
            "case \"$name\" in",
            "  ip-[0-9]*-[0-9]*-[0-9]*-[0-9]*) filter=\"Name=private-ip-address,Values=$(printf '%s' \"${name#ip-}\" | tr - .)\" ;;",
            "  i-[0-9a-f]*) filter=\"Name=instance-id,Values=$name\" ;;",
            "  *) return 1 ;;",
            "esac",
            f"profile=$(aws ec2 describe-instances --region {region} --filters \"$filter\" {tag} \\",
            "  Name=tag:cfcr.io/role,Values=worker Name=instance-state-name,Values=pending,running \\",
            "  --query 'Reservations[].Instances[].IamInstanceProfile.Arn' --output text) || return 1",
            "case \"${profile##*/}\" in",
            f"  {joins}) return 0 ;;",
            "esac",
            "return 1",
        ])

    def snapshot_upload_command(self) -> str | None:
        """``cfcr_backup_upload FILE KEY``: the account id and temporary credentials of the writer
        role (``sts assume-role`` with the instance's own, 15 minutes), then one ``s3api put-object``
        of FILE as KEY with those credentials, in their environment only. One PUT needs only
        ``s3:PutObject`` and ``kms:GenerateDataKey`` (a multipart upload would need
        ``kms:Decrypt`` too) and takes up to 5 GiB: a larger database fails here, saying so. No
        encryption header: the bucket's default (SSE-KMS with the backup key) applies."""
        if self.backups is None:
            return None
        region = shlex.quote(self.region)
        bucket = self.backups.bucket.replace(ACCOUNT_PLACEHOLDER, "$account")
        role = f"arn:{partition_of(self.region)}:iam::$account:role/{self.backups.writer_role}"
        return "\n".join([
            "local account creds id secret token",
            f"[ \"$(stat -c %s \"$1\")\" -le {MAX_SINGLE_PUT} ] || {{ echo \"$1 is over S3's {MAX_SINGLE_PUT}-byte single upload\" >&2; return 1; }}",
            f"account=$(aws sts get-caller-identity --region {region} --query Account --output text) || return 1",
            f"creds=$(aws sts assume-role --region {region} --role-arn \"{role}\" --duration-seconds 900 \\",
            "  --role-session-name \"${CFCR_MEMBER:-etcd-backup}\" \\",
            "  --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text) || return 1",
            "read -r id secret token <<<\"$creds\"",
            "AWS_ACCESS_KEY_ID=$id AWS_SECRET_ACCESS_KEY=$secret AWS_SESSION_TOKEN=$token \\",
            f"  aws s3api put-object --region {region} --bucket \"{bucket}\" --key \"$2\" --body \"$1\" \\",
            "  --checksum-algorithm SHA256 --output text >/dev/null",
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
        reaches curl on stdin, never on a command line."""
        get = 'printf "X-aws-ec2-metadata-token: %s\\n" "$token" | curl -fsS --retry 5 -H @-'
        return "\n".join([
            "local token zone id",
            "token=$(curl -fsS --retry 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "
            f"{IMDS}/api/token) || return 1",
            f"zone=$({get} {IMDS}/meta-data/placement/availability-zone) || return 1",
            f"id=$({get} {IMDS}/meta-data/instance-id) || return 1",
            'printf "aws:///%s/%s\\n" "$zone" "$id"',
        ])
