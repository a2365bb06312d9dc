"""AWS: nodes read their secrets from Secrets Manager with the instance profile (IMDSv2),
and their provider ID (``aws:///<availability zone>/<instance id>``) from IMDSv2; the control
plane rotates the join token in Secrets Manager and swaps a joined worker's instance profile
for its pool's joined profile, which cannot read the join secrets."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from cfcr.pki.specs import ControlPlaneMember, is_ip_address

IMDS = "http://169.254.169.254/latest"

@dataclass(frozen=True)
class SecretsManagerFetcher:
    """Fetch secrets with the AWS CLI (snap on Ubuntu 24.04); credentials come from IMDSv2."""

    region: str
    """Region of the secrets (passed explicitly: the hop limit keeps IMDS region lookups honest)."""
    joined_profiles: Mapping[str, str] = field(default_factory=dict)
    """Each pool's join instance profile name -> its joined profile name (cfcr.aws.identity)."""
    cluster: str = ""
    """The cluster name (its ``kubernetes.io/cluster/<name>`` tag marks its instances)."""

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
