"""Encryption of Secrets at rest (``apiserver.config.k8s.io/v1`` EncryptionConfiguration).

The API server encrypts every Secret it writes with the first provider, ``secretbox``
(XSalsa20 + Poly1305, authenticated, 32-byte key), and reads with whichever provider
decrypts the stored value; ``identity`` last lets it read Secrets written before
encryption was on. ``aescbc`` is not used: upstream no longer recommends it (CBC is
open to padding-oracle attacks), and ``aesgcm`` needs a rotation every 200k writes.

The key never rides in user-data. The template holds the literal placeholder
:data:`KEY_PLACEHOLDER`; the boot script fetches the control plane's
``encryption-key`` secret (standard base64 of 32 random bytes) and substitutes it,
then writes the file with mode 0600 to ``ENCRYPTION_CONFIG_PATH``.

Rotating the key (no downtime, every step a rolling change of the control plane):

1. Add the new key as ``key2`` *after* ``key1`` on every API server, so that all of
   them can read values written with either key.
2. Move ``key2`` first on every API server: new writes now use it.
3. Rewrite every Secret so it is stored under the new key:
   ``kubectl get secrets -A -o json | kubectl replace -f -``.
4. Remove ``key1``. (Do not remove it before step 3 has finished, or Secrets written
   with it become unreadable.)
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = [
    "ENCRYPTED_RESOURCES",
    "KEY_NAME",
    "KEY_PLACEHOLDER",
    "PROVIDER",
    "encryption_config",
    "encryption_config_template",
    "render_encryption_config",
]

KEY_PLACEHOLDER = "@ENCRYPTION_KEY@"
"""Replaced on the node by the base64 32-byte key fetched from the secret store."""
KEY_NAME = "key1"
"""Name of the active key (names are how the API server tells keys apart)."""
PROVIDER = "secretbox"
"""The encrypting provider."""
ENCRYPTED_RESOURCES: tuple[str, ...] = ("secrets",)
"""Resources encrypted at rest (the CIS benchmark item covers Secrets)."""

_HEADER = (
    "# Encryption of Secrets at rest; written by cfcr. Rotation: add a new key after\n"
    "# key1 everywhere, then put it first, rewrite all Secrets, then drop key1.\n"
)


def encryption_config(secret: str = KEY_PLACEHOLDER) -> dict[str, Any]:
    """The EncryptionConfiguration as a dict, with ``secret`` as the key material."""
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": list(ENCRYPTED_RESOURCES),
                "providers": [
                    {PROVIDER: {"keys": [{"name": KEY_NAME, "secret": secret}]}},
                    {"identity": {}},
                ],
            }
        ],
    }


def encryption_config_template() -> str:
    """The YAML text with :data:`KEY_PLACEHOLDER` where the key goes (quoted, so the
    substituted base64 stays one YAML string)."""
    body = yaml.safe_dump(encryption_config(), sort_keys=False, default_flow_style=False)
    if KEY_PLACEHOLDER not in body:  # pragma: no cover - guards the quoting assumption
        raise AssertionError("placeholder lost in YAML rendering")
    return _HEADER + body


def render_encryption_config(key_b64: str) -> str:
    """What the boot script produces: the template with the key substituted.

    Checks the key the same way the API server will (standard base64 of 32 bytes).
    """
    from cfcr.pki.specs import validate_encryption_key

    validate_encryption_key(key_b64)
    return encryption_config_template().replace(KEY_PLACEHOLDER, key_b64)
