"""The two policy shapes of the pack, on top of pulumi_policy's classes.

Each policy declares the resource types it reads, the clouds they belong to, and its
settings (JSON-schema properties with a ``default``). The settings become the policy's
``config_schema``; at validation time the policy merges ``args.get_config()`` over the
defaults itself, so it behaves the same whether or not the engine filled defaults in, and
the offline runner needs no special path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

Reporter = Callable[[str], None]
"""Report one violation of the resource being validated."""


@dataclass(frozen=True)
class Setting:
    """One configurable property of a policy."""

    name: str
    """Property name in the pack's config (camelCase)."""
    schema: Mapping[str, Any]
    """JSON schema of the value, with ``default`` and ``description``."""

    @property
    def default(self) -> Any:
        """The value used when the pack's config does not set this property."""
        return self.schema.get("default")


@dataclass(frozen=True)
class Resource:
    """What a resource check sees: the resource's type, name, URN, inputs and provider inputs."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    provider_props: Mapping[str, Any]


ResourceCheck = Callable[[Resource, Mapping[str, Any], Reporter], None]
StackCheck = Callable[[Sequence[PolicyResource], Mapping[str, Any], ReportViolation], None]


def _schema(settings: Sequence[Setting]) -> PolicyConfigSchema | None:
    if not settings:
        return None
    return PolicyConfigSchema(properties={s.name: dict(s.schema) for s in settings})


def merged_config(settings: Sequence[Setting], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings' defaults overridden by ``given`` (the pack's config for this policy)."""
    config = {s.name: s.default for s in settings}
    for key, value in (given or {}).items():
        if key != "enforcementLevel":
            config[key] = value
    return config


class _CfcrPolicyMixin:
    """What cfcr's resource and stack policies share: their types, clouds and settings."""

    resource_types: frozenset[str]
    clouds: tuple[str, ...]
    settings: tuple[Setting, ...]

    def _describe(self, resource_types: Iterable[str], clouds: Sequence[str], settings: Sequence[Setting]) -> Any:
        self.resource_types = frozenset(resource_types)
        self.clouds = tuple(clouds)
        self.settings = tuple(settings)
        return _schema(self.settings)

    def config(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults merged with ``given``."""
        return merged_config(self.settings, given)


class CfcrResourcePolicy(_CfcrPolicyMixin, ResourceValidationPolicy):
    """A resource policy over a fixed set of resource types."""

    def __init__(
        self,
        name: str,
        description: str,
        *,
        enforcement: EnforcementLevel,
        resource_types: Iterable[str],
        clouds: Sequence[str],
        check: ResourceCheck,
        settings: Sequence[Setting] = (),
        remediation: str | None = None,
    ) -> None:
        self._check = check
        schema = self._describe(resource_types, clouds, settings)
        ResourceValidationPolicy.__init__(
            self, name, description, validate=self._validate, enforcement_level=enforcement,
            config_schema=schema, remediation_steps=remediation,
        )

    def _validate(self, args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in self.resource_types:
            return
        provider_props: Mapping[str, Any] = args.provider.props if args.provider is not None else {}
        resource = Resource(args.resource_type, args.name, args.urn, args.props, provider_props)
        self._check(resource, self.config(args.get_config()), lambda message: report_violation(message, None))


class CfcrStackPolicy(_CfcrPolicyMixin, StackValidationPolicy):
    """A stack policy: sees every resource, with parents and property dependencies resolved."""

    def __init__(
        self,
        name: str,
        description: str,
        *,
        enforcement: EnforcementLevel,
        resource_types: Iterable[str],
        clouds: Sequence[str],
        check: StackCheck,
        settings: Sequence[Setting] = (),
        remediation: str | None = None,
    ) -> None:
        self._stack_check = check
        schema = self._describe(resource_types, clouds, settings)
        StackValidationPolicy.__init__(
            self, name, description, validate=self._validate, enforcement_level=enforcement,
            config_schema=schema, remediation_steps=remediation,
        )

    def _validate(self, args: StackValidationArgs, report_violation: ReportViolation) -> None:
        self._stack_check(args.resources, self.config(args.get_config()), report_violation)


CfcrPolicy = CfcrResourcePolicy | CfcrStackPolicy


def string_list(description: str, default: Sequence[str]) -> Mapping[str, Any]:
    """Schema of a list of strings."""
    return {"type": "array", "items": {"type": "string"}, "default": list(default), "description": description}


def integer(description: str, default: int, minimum: int = 0) -> Mapping[str, Any]:
    """Schema of an integer."""
    return {"type": "integer", "minimum": minimum, "default": default, "description": description}


def boolean(description: str, default: bool) -> Mapping[str, Any]:
    """Schema of a boolean."""
    return {"type": "boolean", "default": default, "description": description}
