"""AWS: nodes read their secrets from Secrets Manager with the instance profile (IMDSv2)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass


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
