"""Physical names of AWS resources that fit AWS's limits, for every cluster name the config
accepts (a DNS label of up to 63 characters) and every pool name.

Pulumi names a resource that is given no name ``<logical name>-<7 random hex>`` (its
*autonamed form*), and the deployment fails when that exceeds the type's maximum: an ELB
name over 32 characters, an IAM role name over 64, ... So:

- :func:`physical_name` returns ``None`` when the autonamed form fits: the resource gets no
  name argument and keeps exactly the name Pulumi gives it today (no stack whose names fit
  sees a change, nothing is replaced). Otherwise it returns an explicit name that fits
  (:func:`fit`: the start of the logical name and a hash of all of it). An explicit name
  cannot be created next to its predecessor, so pass ``delete_before_replace`` as
  :func:`replace_first` says.
- :func:`check_name` raises a clear error for an explicit name (a secret's, an alias') that
  would not fit.

``NAME_LIMITS`` lists every named type cfcr creates, with its limit and where that is
documented; ``tests/test_aws_names.py`` checks every rendered name against it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cfcr.config.topology import fit_name

AUTONAME_SUFFIX = 8
"""What Pulumi adds to the logical name: '-' and 7 random hex digits (pulumi-terraform-bridge
``AutoName``: ``Randlen: 7``, separator '-')."""


@dataclass(frozen=True)
class NameLimit:
    """The naming rule of one resource type."""

    field: str
    """The input property that holds the physical name (``name``, ``targetId``), as the engine sees it."""
    max_length: int
    """The longest name AWS (or the provider's validation) accepts."""
    pattern: str
    """Characters AWS accepts (a regular expression for the whole name)."""
    autonamed: bool
    """Whether Pulumi names the resource when the program does not."""
    source: str
    """Where the limit is documented."""


_ALNUM_HYPHEN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_IAM = r"[\w+=,.@-]+"

NAME_LIMITS: dict[str, NameLimit] = {
    "aws:lb/loadBalancer:LoadBalancer": NameLimit(
        "name", 32, _ALNUM_HYPHEN, True,
        "ELB API CreateLoadBalancer: Name at most 32 characters, alphanumerics and hyphens, not "
        "starting or ending with a hyphen (pulumi-aws autonames it with the generic limit 255)"),
    "aws:lb/targetGroup:TargetGroup": NameLimit(
        "name", 32, _ALNUM_HYPHEN, True,
        "ELB API CreateTargetGroup: Name at most 32 characters; pulumi-aws provider/aliases.go "
        "aws_lb_target_group AutoName(\"name\", 32, \"-\")"),
    "aws:iam/role:Role": NameLimit(
        "name", 64, _IAM, True,
        "IAM API CreateRole: RoleName 1-64 characters [\\w+=,.@-]; pulumi-aws resource_overrides.go "
        "aws_iam_role AutoName(\"name\", 64, \"-\")"),
    "aws:iam/instanceProfile:InstanceProfile": NameLimit(
        "name", 128, _IAM, True,
        "IAM API CreateInstanceProfile: InstanceProfileName 1-128 characters [\\w+=,.@-]"),
    "aws:iam/policy:Policy": NameLimit(
        "name", 128, _IAM, True, "IAM API CreatePolicy: PolicyName 1-128 characters [\\w+=,.@-]"),
    "aws:iam/rolePolicy:RolePolicy": NameLimit(
        "name", 128, _IAM, True, "IAM API PutRolePolicy: PolicyName 1-128 characters [\\w+=,.@-]"),
    "aws:cloudwatch/eventRule:EventRule": NameLimit(
        "name", 64, r"[.\-_A-Za-z0-9]+", True,
        "EventBridge API PutRule: Name 1-64 characters [.\\-_A-Za-z0-9]; pulumi-aws "
        "resource_overrides.go aws_cloudwatch_event_rule AutoName(\"name\", 64, \"-\")"),
    "aws:cloudwatch/eventTarget:EventTarget": NameLimit(
        "targetId", 64, r"[.\-_A-Za-z0-9]+", True,
        "EventBridge API PutTargets: Target Id 1-64 characters (terraform-provider-aws "
        "validateTargetID); pulumi-aws autonames targetId with limit 255, so only AWS catches it"),
    "aws:sqs/queue:Queue": NameLimit(
        "name", 80, r"[A-Za-z0-9_-]+", True,
        "SQS API CreateQueue: QueueName up to 80 characters [A-Za-z0-9_-]; pulumi-aws "
        "resource_overrides.go aws_sqs_queue Maxlen 80"),
    "aws:ec2/launchTemplate:LaunchTemplate": NameLimit(
        "name", 125, r"[A-Za-z0-9().\-/_]+", True,
        "EC2 API CreateLaunchTemplate: LaunchTemplateName 3-128 characters; terraform-provider-aws "
        "ValidLaunchTemplateName allows at most 125"),
    "aws:autoscaling/group:Group": NameLimit(
        "name", 255, r"[^:]+", True,
        "Auto Scaling API CreateAutoScalingGroup: AutoScalingGroupName 1-255 characters"),
    "aws:ec2/securityGroup:SecurityGroup": NameLimit(
        "name", 255, r"[^\x00-\x1f]+", True, "EC2 API CreateSecurityGroup: GroupName up to 255 characters"),
    "aws:kms/alias:Alias": NameLimit(
        "name", 256, r"alias/[A-Za-z0-9/_-]+", True,
        "KMS API CreateAlias: AliasName 1-256 characters, 'alias/' then [A-Za-z0-9/_-]"),
    "aws:secretsmanager/secret:Secret": NameLimit(
        "name", 512, r"[A-Za-z0-9/_+=.@-]+", True,
        "Secrets Manager API CreateSecret: Name 1-512 characters [A-Za-z0-9/_+=.@-]"),
    "aws:route53/zone:Zone": NameLimit(
        "name", 253, r"[a-z0-9.-]+", False,
        "a DNS name: at most 253 characters, labels of at most 63 (RFC 1035 2.3.4)"),
    "aws:route53/record:Record": NameLimit(
        "name", 253, r"[a-z0-9.*-]+", False,
        "a DNS name: at most 253 characters, labels of at most 63 (RFC 1035 2.3.4)"),
}
"""Every named resource type cfcr creates on AWS -> its naming rule."""


def fit(name: str, limit: int, *, keep: str = "") -> str:
    """``name`` unchanged when it has at most ``limit`` characters, else shortened with a
    stable hash of the whole name (``cfcr.config.topology.fit_name``; ``keep``: a suffix to keep)."""
    return fit_name(name, limit, keep=keep)


def autonamed_form_fits(token: str, logical: str) -> bool:
    """Whether Pulumi's ``<logical>-<7 hex>`` fits the type's limit."""
    return len(logical) + AUTONAME_SUFFIX <= NAME_LIMITS[token].max_length


def physical_name(token: str, logical: str, *, keep: str = "") -> str | None:
    """The name argument for a resource of type ``token`` named ``logical``: ``None`` when
    Pulumi's autonamed form fits (leave the name to Pulumi, as before), else an explicit name
    that fits the type's limit. ``keep``: a suffix of ``logical`` to keep in a shortened name."""
    if autonamed_form_fits(token, logical):
        return None
    return fit(logical, NAME_LIMITS[token].max_length, keep=keep)


def replace_first(explicit: str | None) -> bool | None:
    """``delete_before_replace`` for a resource given ``explicit`` as its name: an explicit
    name is taken until the old resource is gone (``None`` leaves Pulumi's default)."""
    return True if explicit is not None else None


def check_name(token: str, name: str) -> str:
    """``name`` if it is a valid explicit name for ``token``; ``ValueError`` saying why not."""
    rule = NAME_LIMITS[token]
    if len(name) > rule.max_length:
        raise ValueError(f"{token} name {name!r} has {len(name)} characters; AWS allows {rule.max_length} "
                         f"({rule.source})")
    if not re.fullmatch(rule.pattern, name):
        raise ValueError(f"{token} name {name!r} does not match {rule.pattern} ({rule.source})")
    return name
