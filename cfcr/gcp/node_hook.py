"""GCP: nodes read their secrets from Secret Manager with the VM's service account, and
their provider ID (``gce://<project>/<zone>/<instance name>``) from the metadata server."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import ClassVar

from cfcr.node.context import UserDataLimit

_TOKEN_URL = "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
_API = "https://secretmanager.googleapis.com/v1"
_METADATA = "http://metadata.google.internal/computeMetadata/v1"


@dataclass(frozen=True)
class GcpNodeHook:
    """REST with curl: an access token from the metadata server, then ``versions/latest:access``.

    The token travels to curl on stdin (``-H @-``), never on a command line.
    """

    user_data_limit: ClassVar[UserDataLimit] = UserDataLimit(max_bytes=262144, gzip=False)
    """GCP: 256 KB in one metadata value, which is text: no gzip stream."""

    project: str
    """Project that owns the secrets."""

    def packages(self) -> list[str]:
        """curl (python3 ships with the image)."""
        return ["curl"]

    def setup_commands(self) -> list[str]:
        """Nothing to install."""
        return []

    def fetch_command(self, secret_id: str) -> str:
        """Print the latest version of ``secret_id`` (base64-decoded payload)."""
        url = f"{_API}/projects/{self.project}/secrets/{secret_id}/versions/latest:access"
        token = (
            f"curl -fsS --retry 5 -H 'Metadata-Flavor: Google' {shlex.quote(_TOKEN_URL)}"
            " | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
        )
        return (
            f'printf "Authorization: Bearer %s\\n" "$({token})"'
            f" | curl -fsS --retry 5 -H @- {shlex.quote(url)}"
            " | python3 -c 'import base64,json,sys; "
            "sys.stdout.buffer.write(base64.b64decode(json.load(sys.stdin)[\"payload\"][\"data\"]))'"
        )

    def provider_id_command(self) -> str:
        """The VM's project, zone (the metadata server answers ``projects/<n>/zones/<zone>``)
        and name, printed as ``gce://<project>/<zone>/<name>``."""
        get = f"curl -fsS --retry 5 -H 'Metadata-Flavor: Google' {_METADATA}"
        return "\n".join([
            "local project zone name",
            f"project=$({get}/project/project-id) || return 1",
            f"zone=$({get}/instance/zone) || return 1",
            f"name=$({get}/instance/name) || return 1",
            'printf "gce://%s/%s/%s\\n" "$project" "${zone##*/}" "$name"',
        ])
