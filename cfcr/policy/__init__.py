"""cfcr's CrossGuard policies, importable without starting anything.

``POLICIES`` holds every policy (``pulumi_policy`` resource and stack policies, each with its
config schema and default enforcement level). Only ``policy/__main__.py`` builds the
``PolicyPack`` from them (constructing one starts the analyzer server and blocks); tests and
the offline runner (:mod:`cfcr.policy.runner`, ``python -m cfcr check``) call ``validate()``.
"""

from cfcr.policy.base import CfcrPolicy, CfcrResourcePolicy, CfcrStackPolicy, Resource, Setting
from cfcr.policy.registry import BY_NAME, PACK_NAME, POLICIES, default_config, default_level, policy

__all__ = [
    "BY_NAME",
    "PACK_NAME",
    "POLICIES",
    "CfcrPolicy",
    "CfcrResourcePolicy",
    "CfcrStackPolicy",
    "Resource",
    "Setting",
    "default_config",
    "default_level",
    "policy",
]
