"""Reusable validated value types for the stack config (labels, taints, CIDRs, names)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_FLAG_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


class Model(BaseModel):
    """Base for every config object: camelCase keys, unknown keys refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )


def dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(
            "must be a DNS label: 1-63 lowercase letters, digits or '-', starting and ending alphanumeric"
        )
    return value


def dns_subdomain(value: str) -> str:
    if not _DNS_SUBDOMAIN.match(value):
        raise ValueError("must be a DNS name: dot-separated lowercase labels, at most 253 characters")
    return value


def cidr(value: str) -> str:
    if "/" not in value:
        raise ValueError("must be a CIDR with a prefix length, like 10.0.0.0/16")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"must be a CIDR with host bits zero, like 10.0.0.0/16 ({exc})") from None
    return str(net)


def ipv4_cidr(value: str) -> str:
    value = cidr(value)
    if ipaddress.ip_network(value).version != 4:
        raise ValueError("must be an IPv4 CIDR like 10.96.0.0/12 (dual-stack is not supported yet)")
    return value


def label_key(value: str) -> str:
    prefix, sep, name = value.rpartition("/")
    if sep and not _DNS_SUBDOMAIN.match(prefix):
        raise ValueError("label key prefix must be a DNS subdomain, like example.com/name")
    if not _LABEL_NAME.match(name):
        raise ValueError(
            "label key name must be 1-63 characters of letters, digits, '-', '_' or '.', "
            "starting and ending alphanumeric"
        )
    if not kubelet_may_set(value):
        raise ValueError(
            "a kubelet may set labels under kubernetes.io and k8s.io only with the prefixes "
            "kubelet.kubernetes.io/ and node.kubernetes.io/ (NodeRestriction); node-role and "
            "node-restriction labels need an admin"
        )
    return value


# Labels a kubelet may set on its own Node: NodeRestriction (and the kubelet itself) refuse
# other kubernetes.io / k8s.io labels.
KUBELET_LABEL_PREFIXES = ("kubelet.kubernetes.io/", "node.kubernetes.io/")
KUBELET_LABEL_KEYS = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os",
    "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region", "topology.kubernetes.io/zone",
})


def kubelet_may_set(key: str) -> bool:
    """Whether a kubelet may put label ``key`` on its own Node."""
    prefix, sep, _ = key.rpartition("/")
    if not sep or not (prefix in {"kubernetes.io", "k8s.io"} or prefix.endswith((".kubernetes.io", ".k8s.io"))):
        return True
    return key in KUBELET_LABEL_KEYS or key.startswith(KUBELET_LABEL_PREFIXES)


def label_value(value: str) -> str:
    if value and not _LABEL_NAME.match(value):
        raise ValueError(
            "label value must be empty or 1-63 characters of letters, digits, '-', '_' or '.', "
            "starting and ending alphanumeric"
        )
    return value


def flag_name(value: str) -> str:
    if value.startswith("-"):
        raise ValueError("write the flag name without leading dashes, e.g. 'audit-log-maxage'")
    if not _FLAG_NAME.match(value):
        raise ValueError("must be a command-line flag name: lowercase letters, digits and '-'")
    return value


def url(value: str) -> str:
    if not re.match(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/\S*)?$", value):
        raise ValueError("must be an http:// or https:// URL, like https://mirror.example.com")
    return value


DnsLabel = Annotated[str, AfterValidator(dns_label)]
DnsName = Annotated[str, AfterValidator(dns_subdomain)]
Cidr = Annotated[str, AfterValidator(cidr)]
Ipv4Cidr = Annotated[str, AfterValidator(ipv4_cidr)]
LabelKey = Annotated[str, AfterValidator(label_key)]
LabelValue = Annotated[str, AfterValidator(label_value)]
FlagName = Annotated[str, AfterValidator(flag_name)]
Url = Annotated[str, AfterValidator(url)]
Architecture = Literal["amd64", "arm64"]


class Taint(Model):
    """A node taint, written in config as ``key=value:Effect`` or ``key:Effect``."""

    key: str
    value: str
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


def parse_taint(value: object) -> object:
    """Turn ``key=value:Effect`` into a Taint mapping; other shapes go to normal validation."""
    if not isinstance(value, str):
        return value
    match = re.match(r"^(?P<key>[^=:\s]+)(=(?P<value>[^:\s]*))?:(?P<effect>[A-Za-z]+)$", value)
    if not match:
        raise ValueError("taint must be written key=value:Effect or key:Effect")
    if match["effect"] not in TAINT_EFFECTS:
        raise ValueError(f"taint effect must be one of {', '.join(TAINT_EFFECTS)}")
    label_key(match["key"])
    label_value(match["value"] or "")
    return {"key": match["key"], "value": match["value"] or "", "effect": match["effect"]}
