"""Pure helpers the policies share: reading props the way the engine hands them over,
number coercion, CIDR classification and user-data decoding.

Nothing here knows Pulumi's runtime; every function takes plain values (dicts, lists,
strings, numbers) as ``ResourceValidationArgs.props`` carries them.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml

AZURE_WORLD_TAGS = frozenset({"*", "internet", "any"})
"""Azure NSG source prefixes that mean "anyone on the internet"."""

PRIVATE_RANGES: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "fc00::/7",
    "::1/128",
)
"""Address space that is not reachable from the internet (RFC 1918, CGNAT, loopback, ULA)."""


def get(value: Any, *path: str | int) -> Any:
    """``value[path[0]][path[1]]...``, or None where a step is missing or of the wrong shape."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, Sequence) or isinstance(value, str) or step >= len(value):
                return None
            value = value[step]
        else:
            if not isinstance(value, Mapping):
                return None
            value = value.get(step)
    return value


def as_list(value: Any) -> list[Any]:
    """A list for a list, ``[value]`` for a single object (providers flatten max-one blocks), [] for None."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def as_number(value: Any) -> float | None:
    """A number from an int, float or numeric string (the engine sends numbers as floats)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def as_bool(value: Any) -> bool | None:
    """True/False from a bool or a "true"/"false" string (launch templates and metadata use strings)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    return None


def fmt_number(value: float) -> str:
    """``3`` for 3.0, ``2.5`` for 2.5."""
    return str(int(value)) if float(value).is_integer() else str(value)


# ----------------------------------------------------------------------------- networks


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An IP network from a CIDR or a bare address; None for anything else (tags, '*')."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def is_world(source: str) -> bool:
    """True for 0.0.0.0/0, ::/0 and Azure's internet tags."""
    if source.strip().lower() in AZURE_WORLD_TAGS:
        return True
    net = parse_network(source)
    return net is not None and net.prefixlen == 0


def within_any(source: str, cidrs: Sequence[str]) -> bool:
    """True if the network ``source`` lies inside one of ``cidrs``."""
    net = parse_network(source)
    if net is None:
        return False
    for cidr in cidrs:
        outer = parse_network(cidr)
        if outer is not None and outer.version == net.version and net.subnet_of(outer):  # type: ignore[arg-type]
            return True
    return False


# ----------------------------------------------------------------------------- user-data

_PEM_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
_BOOTSTRAP_TOKEN = re.compile(r"(?<![A-Za-z0-9.])[a-z0-9]{6}\.[a-z0-9]{16}(?![A-Za-z0-9])")
_ENCRYPTION_SECRET = re.compile(r"\bsecret:\s*[\"']?([A-Za-z0-9+/]{42,}={0,2})[\"']?\s*$", re.MULTILINE)
_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}\s*$")
_CLIENT_KEY_DATA = re.compile(r"\bclient-key-data:\s*[\"']?[A-Za-z0-9+/]{16,}")
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{64,}={0,2}")
_GZIP_MAGIC = b"\x1f\x8b"


def decode_blob(value: Any, *, base64_encoded: bool | None = None) -> bytes:
    """The bytes a VM would see: base64 undone (when asked, or when the text is clearly base64),
    gzip undone (cloud-init detects it by its magic bytes)."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
        stripped = value.strip()
        wants = base64_encoded if base64_encoded is not None else (
            len(stripped) >= 16 and _BASE64.match(stripped) is not None and len(stripped.replace("\n", "")) % 4 == 0
        )
        if wants and stripped:
            try:
                data = base64.b64decode(stripped, validate=False)
            except (binascii.Error, ValueError):
                data = value.encode()
    else:
        return b""
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            pass
    return data


def _write_files_contents(text: str) -> Iterator[str]:
    """The decoded content of each cloud-config ``write_files`` entry (b64 / gzip encodings undone)."""
    if not text.lstrip().startswith("#cloud-config"):
        return
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    for entry in as_list(get(doc, "write_files")):
        content = get(entry, "content")
        if not isinstance(content, str):
            continue
        encoding = str(get(entry, "encoding") or "").lower()
        if encoding in {"b64", "base64", "gz+b64", "gz+base64", "gzip+b64", "gzip+base64"}:
            yield decode_blob(content, base64_encoded=True).decode(errors="replace")
        else:
            yield content


def user_data_texts(value: Any, *, base64_encoded: bool | None = None) -> list[str]:
    """The user-data as text, followed by every embedded file's decoded content."""
    data = decode_blob(value, base64_encoded=base64_encoded)
    text = data.decode(errors="replace")
    return [text, *_write_files_contents(text)]


def _base64_private_key(text: str) -> bool:
    """True if a base64 run in ``text`` decodes to a PEM private key (kube-env's ``KUBELET_KEY``,
    a kubeconfig's key data)."""
    for match in _BASE64_RUN.finditer(text):
        run = match.group(0)
        try:
            decoded = base64.b64decode(run[: len(run) - len(run) % 4] if "=" not in run else run, validate=True)
        except (binascii.Error, ValueError):
            continue
        if _PEM_PRIVATE_KEY.search(decoded.decode(errors="replace")):
            return True
    return False


def key_material_findings(texts: Sequence[str]) -> list[str]:
    """What looks like key material in ``texts``: PEM private keys (also base64-encoded),
    kubeconfig client keys, bootstrap tokens, encryption keys."""
    found: list[str] = []
    for text in texts:
        if _PEM_PRIVATE_KEY.search(text):
            found.append("a PEM private key")
        if _CLIENT_KEY_DATA.search(text):
            found.append("a kubeconfig with client-key-data")
        if _base64_private_key(text):
            found.append("a base64-encoded PEM private key")
        if _BOOTSTRAP_TOKEN.search(text):
            found.append("a kubeadm bootstrap token (xxxxxx.xxxxxxxxxxxxxxxx)")
        if _ENCRYPTION_SECRET.search(text):
            found.append("an encryption key (a base64 'secret:' value)")
    return list(dict.fromkeys(found))


def yaml_documents(texts: Sequence[str]) -> Iterator[Mapping[str, Any]]:
    """Every YAML mapping document with a ``kind`` found in ``texts`` (files inside user-data)."""
    for text in texts:
        if "kind:" not in text:
            continue
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            continue
        for doc in docs:
            if isinstance(doc, Mapping) and "kind" in doc:
                yield doc


def extra_args(component: Any) -> dict[str, str]:
    """kubeadm ``extraArgs``: a v1beta4 list of ``{name, value}`` or a v1beta3 map."""
    raw = get(component, "extraArgs")
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    for item in as_list(raw):
        if isinstance(item, Mapping) and "name" in item:
            out[str(item["name"])] = str(item.get("value", ""))
    return out
