"""The approval rules of postfinance's kubelet-csr-approver, as a function of its chart values.

The approver's image cannot run here (its Go module is not served by the proxy), so its rules
are modelled from its source (``internal/controller/csr_controller.go`` and
``regex_ip_checks.go`` of postfinance/kubelet-csr-approver, read through the code index). Its
versions differ in one point: whether the provider regex is also applied when DNS resolution
is bypassed. The model takes the stricter reading (always applied), so a CSR it approves is
approved by every version.

A ``kubernetes.io/kubelet-serving`` CSR is approved when: the requester is ``system:node:<n>``;
the request's CN is the requester; it has at least one SAN; at most ``allowedDnsNames`` DNS
names; each DNS name starts with ``<n>`` (unless ``bypassHostnameCheck``), matches
``providerRegex``, and (unless ``bypassDnsResolution``) resolves to addresses inside
``providerIpPrefixes`` that cover every IP SAN; and every IP SAN lies in ``providerIpPrefixes``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Resolver = Callable[[str], Sequence[str]]
"""DNS as the approver's pod sees it: name -> addresses (empty when it does not resolve)."""


@dataclass(frozen=True)
class ServingRequest:
    """What the approver reads from a serving CSR."""

    username: str
    common_name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]


def decide(values: Mapping[str, Any], request: ServingRequest, resolve: Resolver) -> tuple[bool, str]:
    """(approved, reason) for ``request`` under the chart ``values``."""
    if not request.username.startswith("system:node:"):
        return False, "requester is not system:node:<name>"
    if not request.dns_names and not request.ip_addresses:
        return False, "no SAN"
    if request.common_name != request.username:
        return False, "CN differs from the requester"
    node = request.username.removeprefix("system:node:")
    prefixes = [ipaddress.ip_network(p, strict=False) for p in _prefixes(values.get("providerIpPrefixes", []))]

    def allowed_ip(ip: str) -> bool:
        return any(ipaddress.ip_address(ip) in p for p in prefixes) if prefixes else True

    allowed = int(values.get("allowedDnsNames", 1))
    if len(request.dns_names) > allowed:
        return False, f"{len(request.dns_names)} DNS names, {allowed} allowed: {list(request.dns_names)}"
    pattern = re.compile(str(values["providerRegex"]))
    resolved: set[str] = set()
    for name in request.dns_names:
        if not name.startswith(node) and not values.get("bypassHostnameCheck", False):
            return False, f"DNS name {name} is not prefixed by the node name {node}"
        if not pattern.search(name):
            return False, f"DNS name {name} does not match providerRegex {pattern.pattern}"
        if not values.get("bypassDnsResolution", False):
            addresses = list(resolve(name))
            if not addresses:
                return False, f"DNS name {name} does not resolve"
            outside = [a for a in addresses if not allowed_ip(a)]
            if outside:
                return False, f"DNS name {name} resolves outside providerIpPrefixes: {outside}"
            resolved.update(addresses)
    if request.dns_names and not values.get("bypassDnsResolution", False):
        missing = [ip for ip in request.ip_addresses if ip not in resolved]
        if missing:
            return False, f"IP SANs {missing} are not what the DNS names resolve to ({sorted(resolved)})"
    outside = [ip for ip in request.ip_addresses if not allowed_ip(ip)]
    if outside:
        return False, f"IP SANs {outside} are outside providerIpPrefixes"
    return True, "approved"


def _prefixes(value: Any) -> list[str]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return [str(p) for p in value]


def serving_request(username: str, addresses: Sequence[Mapping[str, str]]) -> ServingRequest:
    """The serving CSR a kubelet makes for its node ``addresses`` (``status.addresses``): DNS
    names from the Hostname and *DNS addresses, IPs from the *IP ones, de-duplicated in order
    (kubelet: pkg/kubelet/certificate, addressesToHostnamesAndIPs)."""
    dns = tuple(dict.fromkeys(a["address"] for a in addresses if a["type"] in ("Hostname", "InternalDNS", "ExternalDNS")))
    ips = tuple(dict.fromkeys(a["address"] for a in addresses if a["type"] in ("InternalIP", "ExternalIP")))
    return ServingRequest(username, username, dns, ips)
