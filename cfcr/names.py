"""Names that must fit a limit: one rule for every layer (cloud resource names, member names,
certificate common names). Pure; imports nothing of cfcr's."""

from __future__ import annotations

import hashlib

NAME_HASH_LENGTH = 8
"""Hex digits of SHA-256 that stand for the cut part of a shortened name (:func:`fit_name`)."""


def fit_name(name: str, limit: int, *, keep: str = "") -> str:
    """``name`` itself when it has at most ``limit`` characters (so every name that fits today
    stays exactly as it is); otherwise at most ``limit`` characters: the start of ``name``, '-',
    the first 8 hex digits of the SHA-256 of the whole ``name``, then ``keep``.

    ``keep`` is a suffix of ``name`` that should survive (``-cp-0``: which member it is); it is
    dropped when it leaves no room for the rest. The hash is of the full name, so two long names
    never come out alike however much they share; the cut never leaves '-', '.', '_' or '/'
    before the hash, so a name of DNS-label characters stays a DNS label. Raises ``ValueError``
    when ``limit`` cannot hold a hash and one character of the name.
    """
    if len(name) <= limit:
        return name
    if keep and not name.endswith(keep):
        raise ValueError(f"fit_name: {name!r} does not end with {keep!r}")
    digest = hashlib.sha256(name.encode()).hexdigest()[:NAME_HASH_LENGTH]
    if limit - len(keep) - len(digest) - 1 < 1:
        keep = ""
    room = limit - len(keep) - len(digest) - 1
    if room < 1:
        raise ValueError(f"fit_name: {limit} characters cannot hold a shortened {name!r} (need {len(digest) + 2})")
    head = name[: len(name) - len(keep)][:room].rstrip("-._/")
    if not head:
        raise ValueError(f"fit_name: nothing of {name!r} is left before the hash")
    return f"{head}-{digest}{keep}"
