"""Azure: nodes read their secrets from Key Vault with the VM's managed identity, and their
provider ID (``azure://<resource id>``) from the instance metadata service."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote

from cfcr.node.context import UserDataLimit

_IMDS_RESOURCE_ID = "http://169.254.169.254/metadata/instance/compute/resourceId?api-version=2021-02-01&format=text"
_IMDS_TOKEN = "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"


@dataclass(frozen=True)
class AzureNodeHook:
    """REST with curl: a managed-identity token from IMDS, then ``GET secrets/<name>``.

    The token travels to curl on stdin (``-H @-``), never on a command line.
    """

    user_data_limit: ClassVar[UserDataLimit] = UserDataLimit(max_bytes=65535, gzip=True)
    """Azure: custom data holds at most 65,535 decoded bytes (the anchors in the project notes); cloud-init unpacks gzip."""

    vault_name: str
    """Key Vault name (``https://<name>.vault.azure.net``)."""
    client_id: str | None = None
    """Client id of a user-assigned identity; None uses the system-assigned one."""

    def packages(self) -> list[str]:
        """curl (python3 ships with the image)."""
        return ["curl"]

    def setup_commands(self) -> list[str]:
        """Nothing to install."""
        return []

    def fetch_command(self, secret_id: str) -> str:
        """Print the current version of secret ``secret_id``."""
        token_url = _IMDS_TOKEN + (f"&client_id={quote(self.client_id)}" if self.client_id else "")
        url = f"https://{self.vault_name}.vault.azure.net/secrets/{quote(secret_id)}?api-version=7.4"
        token = (
            f"curl -fsS --retry 5 -H Metadata:true {shlex.quote(token_url)}"
            " | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])'"
        )
        return (
            f'printf "Authorization: Bearer %s\\n" "$({token})"'
            f" | curl -fsS --retry 5 -H @- {shlex.quote(url)}"
            " | python3 -c 'import json,sys; sys.stdout.write(json.load(sys.stdin)[\"value\"])'"
        )

    def provider_id_command(self) -> str:
        """The VM's (or scale-set instance's) ARM resource id from IMDS, printed as
        ``azure://<resource id>`` (the id starts with ``/subscriptions/``)."""
        return "\n".join([
            "local rid",
            f"rid=$(curl -fsS --retry 5 -H Metadata:true {shlex.quote(_IMDS_RESOURCE_ID)}) || return 1",
            '[ -n "$rid" ] || return 1',
            'printf "azure://%s\\n" "$rid"',
        ])
