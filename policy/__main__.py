"""The cfcr CrossGuard pack: `pulumi preview --policy-pack policy`.

Only this file builds the PolicyPack (constructing one starts the analyzer server and
blocks until the engine ends it); the policies live in the importable ``cfcr.policy``.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from cfcr.policy import PACK_NAME, POLICIES


def build() -> None:
    """Serve the pack to the Pulumi engine (blocks)."""
    PolicyPack(
        name=PACK_NAME,
        policies=list(POLICIES),
        enforcement_level=EnforcementLevel.ADVISORY,
        description="Guardrails for cfcr clusters: network exposure, machine hardening, key material, "
                    "PKI, node pools, secret access and IAM, tags.",
    )


if __name__ == "__main__":
    build()
