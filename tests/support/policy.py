"""Calling one policy the way the engine does: ``validate()`` with ``ResourceValidationArgs`` /
``StackValidationArgs`` built from constructed props (tests/test_policy_rules.py, test_policy_gcp.py)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from cfcr.policy import CfcrResourcePolicy, CfcrStackPolicy, policy

OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def check(name: str, type_token: str, props: Mapping[str, Any], config: Mapping[str, Any] | None = None,
          provider_props: Mapping[str, Any] | None = None) -> list[str]:
    """Messages one resource policy reports for one constructed resource."""
    p = policy(name)
    assert isinstance(p, CfcrResourcePolicy)
    assert type_token in p.resource_types, f"{name} does not read {type_token}"
    provider = PolicyProviderResource("pulumi:providers:x", provider_props, "urn:p", "p") if provider_props else None
    args = ResourceValidationArgs(type_token, props, f"urn:pulumi:s::p::{type_token}::r", "r", OPTS, provider,
                                  config)
    found: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    assert p.validate(args, report) is None
    return found


def stack_check(name: str, resources: list[PolicyResource], config: Mapping[str, Any] | None = None
                ) -> list[tuple[str, str | None]]:
    """``(message, urn)`` one stack policy reports over ``resources``."""
    p = policy(name)
    assert isinstance(p, CfcrStackPolicy)
    found: list[tuple[str, str | None]] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append((message, urn))

    p.validate(StackValidationArgs(resources, config), report)
    return found


def res(type_token: str, name: str, props: Mapping[str, Any]) -> PolicyResource:
    """A stack policy's view of one resource (no parent, no dependencies)."""
    return PolicyResource(type_token, props, f"urn:pulumi:s::p::{type_token}::{name}", name, OPTS, None, None, [], {})


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()
