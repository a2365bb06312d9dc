"""Which stack config key fixes a violation of each policy: the key a person changes, named in the
grouped report (``cfcr check``) and its JSON.

A policy absent here judges something cfcr always sets right (the group then says
``configKey: null``): its violation means a resource built outside cfcr's components, or a
transform that changed one. Every key named here is a key of the config schema
(tests/test_review_check.py holds both lists to it).
"""

from __future__ import annotations

CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "kubernetes-version": ("cfcr:kubernetes.version",),
    "control-plane-count": ("cfcr:controlPlane.count", "cfcr:production"),
    "api-allowed-cidrs": ("cfcr:networking.apiAllowedCidrs",),
    "api-private-unless-public": ("cfcr:networking.apiPublic", "cfcr:networking.apiAllowedCidrs"),
    "gcp-disk-keys": ("cfcr:gcp.diskKmsKey",),
    "secrets-encrypted-at-rest": ("cfcr:components.apiServer.extraArgs",),
    "audit-logging-enabled": ("cfcr:components.apiServer.extraArgs",),
    "cni-network-policy": ("cfcr:cni",),
    "node-pool-max-size": ("cfcr:nodePools[].maxSize",),
    "certificate-validity": ("cfcr:pki.caValidityHours", "cfcr:pki.leafValidityHours", "cfcr:pki.earlyRenewalHours"),
    "certificate-key-algorithms": ("cfcr:pki.keyAlgorithm",),
    "required-tags": ("cfcr:tags",),
}
"""Policy name -> the config keys that decide what it judges."""

_BY_MESSAGE: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "certificate-validity": (
        ("earlyRenewalHours", ("cfcr:pki.earlyRenewalHours",)),
        ("CA certificate", ("cfcr:pki.caValidityHours",)),
        ("leaf certificate", ("cfcr:pki.leafValidityHours",)),
    ),
    # only GCP's customer-managed keys have a key of their own (AWS and Azure encryption cfcr sets)
    "disks-encrypted": (("KMS key", ("cfcr:gcp.diskKmsKey",)),),
    "key-vault-hardened": (("enablePurgeProtection", ("cfcr:production",)),),
}
"""Where one of a policy's messages names its cause, the narrower key: first matching fragment wins."""


def config_keys(policy: str, message: str = "") -> tuple[str, ...]:
    """The config keys that fix ``policy``'s violation saying ``message`` (empty if cfcr sets it)."""
    for fragment, keys in _BY_MESSAGE.get(policy, ()):
        if fragment in message:
            return keys
    return CONFIG_KEYS.get(policy, ())
