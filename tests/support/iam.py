"""A small IAM policy evaluator for identity-based policies, enough to check cfcr's own
policies offline against a request we describe.

What it implements (AWS IAM User Guide, "Policy evaluation logic" and "IAM JSON policy
elements: Condition operators"):

- **Decision**: an explicit ``Deny`` in any statement wins; otherwise an ``Allow`` is
  needed; otherwise the request is implicitly denied.
- **Action** / **NotAction**: ``service:Name`` patterns, case-insensitive, ``*`` and ``?``
  wildcards.
- **Resource** / **NotResource**: ARN patterns, case-sensitive, ``*`` and ``?`` wildcards.
- **Condition**: every operator of a block must hold, every key of an operator must hold,
  and any one of a key's values may match. Operators: ``StringEquals``,
  ``StringNotEquals``, ``StringEqualsIgnoreCase``, ``StringNotEqualsIgnoreCase``,
  ``StringLike``, ``StringNotLike``, ``ArnEquals``, ``ArnLike``, ``ArnNotEquals``,
  ``ArnNotLike``, ``Bool``, ``Null``; the ``...IfExists`` suffix; the ``ForAnyValue:`` and
  ``ForAllValues:`` set qualifiers for multivalued keys (``aws:TagKeys``).
- **Missing keys**: a positive operator on a key absent from the request is false; a
  negated one (``StringNotEquals``, ``ArnNotLike``, ...) is true; ``...IfExists`` is true;
  ``ForAllValues`` over an absent or empty key is true, ``ForAnyValue`` false.
- Condition key names are case-insensitive (``aws:ResourceTag/Name`` and
  ``aws:resourcetag/Name`` are one key); values compare case-sensitively.

Anything else (another operator, a policy variable, a single-valued operator on a
multivalued key without a set qualifier) raises ``UnsupportedPolicy``: an evaluator that
guessed would let a test pass for the wrong reason.

A real EC2 call is authorized once per resource it touches (``AttachVolume`` needs the
volume and the instance); :func:`evaluate_all` takes that list and allows the call only if
every resource is allowed.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ContextValue = str | Sequence[str]
"""A request-context value: one string, or a list for a multivalued key."""


class Decision(enum.Enum):
    """Outcome of an evaluation."""

    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"

    @property
    def allowed(self) -> bool:
        """True only for ``ALLOW``."""
        return self is Decision.ALLOW


class UnsupportedPolicy(ValueError):
    """The policy uses something this evaluator does not implement."""


@dataclass(frozen=True)
class Request:
    """One (action, resource) pair of an API call, with its request context."""

    action: str
    """``service:Action``, e.g. ``ec2:DetachVolume``."""
    resource: str
    """The ARN being authorized."""
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    """Condition keys present for this resource (``aws:ResourceTag/<k>``, ``aws:RequestTag/<k>``,
    ``ec2:CreateAction``, ``aws:TagKeys``, ...); a key that is absent is simply not here."""


def resource_context(resource_tags: Mapping[str, str] | None = None, request_tags: Mapping[str, str] | None = None,
                     **extra: ContextValue) -> dict[str, ContextValue]:
    """The context EC2 builds for one resource: ``aws:ResourceTag/<k>`` and
    ``ec2:ResourceTag/<k>`` for each tag the resource carries; ``aws:RequestTag/<k>`` for each
    tag in the request and ``aws:TagKeys`` listing them; plus ``extra`` keys verbatim
    (``ec2:CreateAction=...``; use ``**{"ec2:CreateAction": "CreateVolume"}``)."""
    ctx: dict[str, ContextValue] = {}
    for key, value in (resource_tags or {}).items():
        ctx[f"aws:ResourceTag/{key}"] = value
        ctx[f"ec2:ResourceTag/{key}"] = value
    if request_tags:
        for key, value in request_tags.items():
            ctx[f"aws:RequestTag/{key}"] = value
        ctx["aws:TagKeys"] = list(request_tags)
    ctx.update(extra)
    return ctx


# ----------------------------------------------------------------------------- matching

@lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    if "${" in pattern:
        raise UnsupportedPolicy(f"policy variables are not supported: {pattern!r}")
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM wildcard match: ``*`` any run of characters, ``?`` one character."""
    return _glob(pattern, ignore_case).match(value) is not None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _policy_strings(values: Any) -> list[str]:
    out = []
    for v in _as_list(values):
        if isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, str | int | float):
            if "${" in str(v):
                raise UnsupportedPolicy(f"policy variables are not supported: {v!r}")
            out.append(str(v))
        else:
            raise UnsupportedPolicy(f"condition value {v!r} is not a string")
    return out


def _action_matches(statement: Mapping[str, Any], action: str) -> bool:
    if "Action" in statement:
        return any(glob_match(p, action, ignore_case=True) for p in _as_list(statement["Action"]))
    if "NotAction" in statement:
        return not any(glob_match(p, action, ignore_case=True) for p in _as_list(statement["NotAction"]))
    raise UnsupportedPolicy(f"statement has neither Action nor NotAction: {statement}")


def _resource_matches(statement: Mapping[str, Any], resource: str) -> bool:
    if "Resource" in statement:
        return any(glob_match(p, resource) for p in _as_list(statement["Resource"]))
    if "NotResource" in statement:
        return not any(glob_match(p, resource) for p in _as_list(statement["NotResource"]))
    raise UnsupportedPolicy(f"statement has neither Resource nor NotResource: {statement}")


# ----------------------------------------------------------------------------- conditions

def _string_equals(policy: str, value: str) -> bool:
    return policy == value


def _string_equals_ignore_case(policy: str, value: str) -> bool:
    return policy.lower() == value.lower()


def _string_like(policy: str, value: str) -> bool:
    return glob_match(policy, value)


def _bool(policy: str, value: str) -> bool:
    return policy.lower() == value.lower()


_POSITIVE = {
    "StringEquals": _string_equals,
    "StringEqualsIgnoreCase": _string_equals_ignore_case,
    "StringLike": _string_like,
    "ArnEquals": _string_like,  # ArnEquals and ArnLike both take wildcards (IAM docs)
    "ArnLike": _string_like,
    "Bool": _bool,
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _lookup(context: Mapping[str, ContextValue], key: str) -> ContextValue | None:
    lowered = key.lower()
    for k, v in context.items():
        if k.lower() == lowered:
            return v
    return None


def _condition_holds(operator: str, key: str, policy_values: Any, context: Mapping[str, ContextValue]) -> bool:
    values = _policy_strings(policy_values)
    present = _lookup(context, key)
    qualifier = ""
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
        if qualifier not in ("ForAnyValue", "ForAllValues"):
            raise UnsupportedPolicy(f"unknown set qualifier {qualifier!r}")
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator

    if base == "Null":
        if qualifier or if_exists:
            raise UnsupportedPolicy(f"{qualifier}:{operator} is not supported")
        absent = present is None or (not isinstance(present, str) and len(present) == 0)
        return any((v == "true") == absent for v in values)

    negated = base in _NEGATED
    compare = _POSITIVE.get(_NEGATED.get(base, base))
    if compare is None:
        raise UnsupportedPolicy(f"condition operator {operator!r} is not supported")

    def matches(one: str) -> bool:
        hit = any(compare(p, one) for p in values)
        return not hit if negated else hit

    if qualifier:
        items = [] if present is None else _as_list(present)
        if qualifier == "ForAllValues":
            return all(matches(i) for i in items)
        return any(matches(i) for i in items)
    if present is None:
        return True if (if_exists or negated) else False
    if not isinstance(present, str):
        raise UnsupportedPolicy(f"{operator} on the multivalued key {key!r} needs ForAnyValue or ForAllValues")
    return matches(present)


def conditions_hold(condition: Mapping[str, Mapping[str, Any]] | None, context: Mapping[str, ContextValue]) -> bool:
    """True if every operator and key of a statement's ``Condition`` block holds."""
    if not condition:
        return True
    return all(
        _condition_holds(operator, key, values, context)
        for operator, keys in condition.items()
        for key, values in keys.items()
    )


# ----------------------------------------------------------------------------- evaluation

def statements(policies: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Every statement of every policy document."""
    out: list[Mapping[str, Any]] = []
    for doc in policies:
        out.extend(_as_list(doc.get("Statement", [])))
    return out


def statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    """True if the statement's action, resource and conditions all match the request."""
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise UnsupportedPolicy(f"Effect must be Allow or Deny: {statement}")
    if "Principal" in statement or "NotPrincipal" in statement:
        raise UnsupportedPolicy("resource-based policies (Principal) are not evaluated here")
    return (_action_matches(statement, request.action) and _resource_matches(statement, request.resource)
            and conditions_hold(statement.get("Condition"), request.context))


def evaluate(policies: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    """The decision of a principal's identity policies on one (action, resource) pair."""
    applicable = [s for s in statements(policies) if statement_applies(s, request)]
    if any(s["Effect"] == "Deny" for s in applicable):
        return Decision.EXPLICIT_DENY
    if any(s["Effect"] == "Allow" for s in applicable):
        return Decision.ALLOW
    return Decision.IMPLICIT_DENY


def evaluate_all(policies: Sequence[Mapping[str, Any]], requests: Iterable[Request]) -> Decision:
    """One API call that touches several resources: allowed only if each one is; an explicit
    deny on any of them is the answer."""
    decisions = [evaluate(policies, r) for r in requests]
    if not decisions:
        raise ValueError("no request to evaluate")
    if Decision.EXPLICIT_DENY in decisions:
        return Decision.EXPLICIT_DENY
    if all(d is Decision.ALLOW for d in decisions):
        return Decision.ALLOW
    return Decision.IMPLICIT_DENY


def allowing_statements(policies: Iterable[Mapping[str, Any]], request: Request) -> list[str]:
    """Sids (or indexes) of the Allow statements that match ``request``: which grant did it."""
    return [str(s.get("Sid", i)) for i, s in enumerate(statements(policies))
            if s.get("Effect") == "Allow" and statement_applies(s, request)]
