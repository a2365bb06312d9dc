"""AWS: nodes read their secrets from Secrets Manager with the instance profile (IMDSv2),
and their provider ID (``aws:///<availability zone>/<instance id>``) from IMDSv2."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from cfcr.pki.specs import ControlPlaneMember, is_ip_address

IMDS = "http://169.254.169.254/latest"

@dataclass(frozen=True)
class SecretsManagerFetcher:
    """Fetch secrets with the AWS CLI (snap on Ubuntu 24.04); credentials come from IMDSv2."""

    region: str
    """Region of the secrets (passed explicitly: the hop limit keeps IMDS region lookups honest)."""

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
