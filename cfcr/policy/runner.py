"""Run the whole pack offline over recorded resources (an offline render), as the engine would.

Each recorded resource becomes a ``ResourceValidationArgs`` (its inputs, secrets unwrapped —
the engine hands policies plain values too) and every policy's ``validate`` is called with a
``report_violation`` callback; stack policies get one ``StackValidationArgs`` with every
resource, parents and (property) dependencies resolved. The pack's config has the shape of a
Pulumi policy config file: ``{"all": level, "<policy>": level | {"enforcementLevel": level, ...}}``;
unset properties take the same defaults as under ``pulumi preview``.

Until a cloud layer puts the user-data on machines (launch templates, instances, scale sets),
the render's user-data per role is presented as a resource of type
:data:`~cfcr.policy.types.RENDERED_USER_DATA`, so the user-data policies judge it anyway;
once machines carry it, it is judged on them only.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.policy import _NotApplicableError

from cfcr.policy.base import CfcrPolicy, CfcrResourcePolicy
from cfcr.policy.config_keys import config_keys
from cfcr.policy.registry import BY_NAME, POLICIES, default_level
from cfcr.policy.types import BOOTSTRAP, MACHINES, RENDERED_USER_DATA
from cfcr.render.mocks import RecordedResource, unwrap


class PolicyConfigError(ValueError):
    """The pack's config names an unknown policy, property or enforcement level."""


@dataclass(frozen=True)
class Violation:
    """One reported violation."""

    policy: str
    enforcement: EnforcementLevel
    urn: str | None
    message: str

    @property
    def resource(self) -> str:
        """``type::name`` from the URN, or ``(stack)``."""
        if not self.urn:
            return "(stack)"
        parts = self.urn.split("::", 3)
        if len(parts) < 4:
            return self.urn
        return f"{parts[2].rsplit('$', 1)[-1]}::{parts[3]}"


@dataclass
class PackReport:
    """What a run of the pack found."""

    violations: list[Violation] = field(default_factory=list)
    not_applicable: list[tuple[str, str]] = field(default_factory=list)
    checked: int = 0

    @property
    def mandatory(self) -> list[Violation]:
        """Violations that block a deployment."""
        return [v for v in self.violations if v.enforcement == EnforcementLevel.MANDATORY]

    @property
    def advisory(self) -> list[Violation]:
        """Violations that only warn."""
        return [v for v in self.violations if v.enforcement == EnforcementLevel.ADVISORY]

    def pairs(self, level: EnforcementLevel | None = None) -> set[tuple[str, str]]:
        """``(policy, resource)`` of every violation (of one level)."""
        return {(v.policy, v.resource) for v in self.violations if level is None or v.enforcement == level}

    def groups(self) -> list[ViolationGroup]:
        """The violations grouped by cause: one group per (level, policy, message), with every resource
        it names, mandatory groups first, in the order the pack found them."""
        found: dict[tuple[str, str, str], ViolationGroup] = {}
        for v in self.violations:
            key = (v.enforcement.value, v.policy, v.message)
            if key not in found:
                found[key] = ViolationGroup(v.policy, v.enforcement, v.message, config_keys(v.policy, v.message))
            found[key].urns.append(v.urn or "(stack)")
        return sorted(found.values(), key=lambda g: g.enforcement != EnforcementLevel.MANDATORY)

    def format(self) -> str:
        """The report a person reads: one block per cause (policy and message) with the config key
        that fixes it and the resources it names, then a summary line."""
        lines: list[str] = []
        for g in self.groups():
            count = len(g.urns)
            lines.append(f"[{g.enforcement.value}] {g.policy} ({count} resource{'s' if count != 1 else ''})")
            lines.append(f"    {g.message}")
            lines.append(f"    config key: {', '.join(g.config_keys)}" if g.config_keys
                         else "    config key: none (cfcr sets this; look for a resource built or changed outside it)")
            lines.extend(f"    resource: {urn}" for urn in g.urns)
        lines.append(f"{len(self.mandatory)} mandatory, {len(self.advisory)} advisory violation(s) "
                     f"in {len(self.groups())} group(s) over {self.checked} resource(s), {len(POLICIES)} policies")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report (``cfcr check --json``)."""
        return {
            "mandatory": len(self.mandatory),
            "advisory": len(self.advisory),
            "checked": self.checked,
            "groups": [g.to_json() for g in self.groups()],
            "notApplicable": [{"policy": p, "reason": r} for p, r in self.not_applicable],
        }


@dataclass
class ViolationGroup:
    """Violations with one cause: the same policy reporting the same message, over several resources."""

    policy: str
    enforcement: EnforcementLevel
    message: str
    config_keys: tuple[str, ...]
    urns: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{"policy", "enforcement", "configKey", "message", "resources"}``; ``configKey`` is a key,
        a list of keys, or null where cfcr itself sets what the policy judges."""
        keys: Any = None if not self.config_keys else (
            self.config_keys[0] if len(self.config_keys) == 1 else list(self.config_keys))
        return {"policy": self.policy, "enforcement": self.enforcement.value, "configKey": keys,
                "message": self.message, "resources": list(self.urns)}


def _level(value: Any, where: str) -> EnforcementLevel:
    try:
        return EnforcementLevel(str(value))
    except ValueError:
        allowed = ", ".join(level.value for level in EnforcementLevel)
        raise PolicyConfigError(f"{where}: enforcement level {value!r}; allowed: {allowed}") from None


def resolve_config(config: Mapping[str, Any] | None) -> dict[str, tuple[EnforcementLevel, dict[str, Any]]]:
    """Each policy's enforcement level and properties (without defaults; policies add them)."""
    config = dict(config or {})
    everything = _level(config.pop("all"), "all") if "all" in config else None
    out: dict[str, tuple[EnforcementLevel, dict[str, Any]]] = {
        p.name: (everything or default_level(p), {}) for p in POLICIES
    }
    for name, value in config.items():
        if name not in BY_NAME:
            raise PolicyConfigError(f"unknown policy {name!r}; policies: {', '.join(BY_NAME)}")
        level, props = out[name]
        if isinstance(value, str):
            out[name] = (_level(value, name), props)
            continue
        if not isinstance(value, Mapping):
            raise PolicyConfigError(f"{name}: expected an enforcement level or an object, got {value!r}")
        known = {s.name for s in BY_NAME[name].settings}
        for key in value:
            if key != "enforcementLevel" and key not in known:
                raise PolicyConfigError(f"{name}: unknown property {key!r}; known: {', '.join(sorted(known)) or 'none'}")
        if "enforcementLevel" in value:
            level = _level(value["enforcementLevel"], name)
        out[name] = (level, {k: v for k, v in value.items() if k != "enforcementLevel"})
    return out


@dataclass(frozen=True)
class _Entry:
    type: str
    name: str
    urn: str
    props: dict[str, Any]
    state: dict[str, Any]
    parent: str | None
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    provider: str | None
    additional_secret_outputs: list[str]


def _entries(resources: Sequence[RecordedResource], stack: str,
             user_data: Mapping[str, bytes] | None) -> list[_Entry]:
    entries = [
        _Entry(
            type=r.type, name=r.name, urn=r.urn, props=unwrap(r.inputs),
            state={**unwrap(r.inputs), **unwrap(r.outputs), **unwrap(r.registered_outputs)},
            parent=r.parent, dependencies=list(r.dependencies),
            property_dependencies={k: list(v) for k, v in r.property_dependencies.items()},
            provider=r.provider, additional_secret_outputs=list(r.additional_secret_outputs),
        )
        for r in resources
    ]
    if any(e.type in MACHINES for e in entries):
        return entries  # the cloud layer carries the user-data: judge it there, once
    bootstrap = next((e.urn for e in entries if e.type == BOOTSTRAP), None)
    project = entries[0].urn.split("::")[1] if entries else "cfcr"
    for role, data in sorted((user_data or {}).items()):
        props = {"role": role, "userData": base64.b64encode(data).decode()}
        entries.append(_Entry(
            type=RENDERED_USER_DATA, name=role, urn=f"urn:pulumi:{stack}::{project}::{RENDERED_USER_DATA}::{role}",
            props=props, state=dict(props), parent=bootstrap, dependencies=[], property_dependencies={},
            provider=None, additional_secret_outputs=[],
        ))
    return entries


def _options(entry: _Entry) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0),
                                 entry.additional_secret_outputs, entry.parent)


def _provider(entry: _Entry, by_urn: Mapping[str, _Entry]) -> PolicyProviderResource | None:
    if not entry.provider:
        return None
    urn = entry.provider.rsplit("::", 1)[0]
    found = by_urn.get(urn)
    if found is None:
        return None
    return PolicyProviderResource(found.type, found.props, found.urn, found.name)


def _run(result: Any) -> None:
    if inspect.isawaitable(result):
        async def wait() -> None:
            await result

        asyncio.run(wait())


def run_pack(
    resources: Sequence[RecordedResource],
    *,
    stack: str = "stack",
    user_data: Mapping[str, bytes] | None = None,
    config: Mapping[str, Any] | None = None,
    policies: Sequence[CfcrPolicy] = POLICIES,
) -> PackReport:
    """Validate ``resources`` (and the rendered ``user_data``) against ``policies``."""
    settings = resolve_config(config)
    entries = _entries(resources, stack, user_data)
    by_urn = {e.urn: e for e in entries}
    report = PackReport(checked=len(entries))

    def reporter(p: CfcrPolicy, level: EnforcementLevel, default_urn: str | None) -> Any:
        def report_violation(message: str, urn: str | None = None) -> None:
            report.violations.append(Violation(p.name, level, urn or default_urn, message))
        return report_violation

    for p in policies:
        level, props = settings[p.name]
        if level == EnforcementLevel.DISABLED:
            continue
        if level == EnforcementLevel.REMEDIATE:
            level = EnforcementLevel.MANDATORY
        try:
            if isinstance(p, CfcrResourcePolicy):
                for e in entries:
                    if e.type not in p.resource_types:
                        continue
                    args = ResourceValidationArgs(e.type, e.props, e.urn, e.name, _options(e),
                                                  _provider(e, by_urn), props)
                    _run(p.validate(args, reporter(p, level, e.urn)))
            else:
                _run(p.validate(StackValidationArgs(_stack_resources(entries, by_urn), props),
                                reporter(p, level, None)))
        except _NotApplicableError as exc:
            report.not_applicable.append((p.name, exc.reason or ""))
    return report


def _stack_resources(entries: Sequence[_Entry], by_urn: Mapping[str, _Entry]) -> list[PolicyResource]:
    made = {
        e.urn: PolicyResource(e.type, e.state, e.urn, e.name, _options(e), _provider(e, by_urn), None, [], {})
        for e in entries
    }
    for e in entries:
        r = made[e.urn]
        r.parent = made.get(e.parent) if e.parent else None
        r.dependencies = [made[u] for u in e.dependencies if u in made]
        r.property_dependencies = {k: [made[u] for u in v if u in made] for k, v in e.property_dependencies.items()}
    return list(made.values())


def check_stack(
    stack: str,
    *,
    project_dir: Any = None,
    stack_config: Mapping[str, Any] | None = None,
    policy_config: Mapping[str, Any] | None = None,
) -> PackReport:
    """Render ``stack`` offline (secrets visible to the policies, nothing written) and run the pack."""
    from cfcr.render import render_stack

    result = render_stack(stack, None, show_secrets=True, project_dir=project_dir,
                          config=dict(stack_config) if stack_config is not None else None)
    return run_pack(result.resources, stack=stack, user_data=result.user_data, config=policy_config)
