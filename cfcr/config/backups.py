"""The ``cfcr:etcdBackups`` key: scheduled, encrypted etcd snapshots from the control plane to
the cloud's object storage (S3 on AWS, Cloud Storage on GCP, Blob Storage on Azure). docs/backups.md.

By default (``enabled: true`` and nothing else) a cluster gets a snapshot every 30 minutes, kept
14 days, in a bucket cfcr creates for it.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import Field, field_validator

from cfcr.config.values import Model

CALENDAR_SHORTHANDS: tuple[str, ...] = (
    "minutely", "hourly", "daily", "weekly", "monthly", "quarterly", "semiannually", "yearly", "annually",
)
"""The shorthand OnCalendar expressions systemd knows (systemd.time(7), "Calendar Events")."""

_WEEKDAY = r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*"
_WEEKDAYS = rf"{_WEEKDAY}(?:\.\.{_WEEKDAY})?(?:,{_WEEKDAY}(?:\.\.{_WEEKDAY})?)*"
_VALUE = r"(?:\*|[0-9]+(?:\.\.[0-9]+)?)(?:/[0-9]+)?"
_VALUES = rf"{_VALUE}(?:,{_VALUE})*"
_DATE = rf"{_VALUES}(?:-|~){_VALUES}(?:(?:-|~){_VALUES})?"
_TIME = rf"{_VALUES}:{_VALUES}(?::{_VALUES}(?:\.[0-9]+)?)?"
_CALENDAR = re.compile(
    rf"^(?:{_WEEKDAYS})?(?:\s+)?(?:{_DATE})?(?:\s+)?(?:{_TIME})?(?:\s+(?:UTC|[A-Za-z_]+/[A-Za-z_+-]+))?$",
    re.IGNORECASE,
)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

DEFAULT_SCHEDULE = "*:0/30"
"""Every 30 minutes, on the hour and the half hour."""


def calendar_ok(value: str) -> bool:
    """Whether ``value`` has the shape of a systemd OnCalendar expression: a shorthand
    (``hourly``) or ``[weekdays] [date] [time] [timezone]`` with ``*``, ``a..b``, ``/step`` and
    ``,`` lists (``*:0/30``, ``Mon..Fri *-*-* 02:00``). systemd has the last word when the timer
    loads; this catches typos before anything is deployed."""
    text = value.strip()
    if not text or "\n" in text:
        return False
    if text.lower() in CALENDAR_SHORTHANDS:
        return True
    if _CALENDAR.match(text) is None:
        return False
    for token in text.split():
        if ":" in token and not _in_range(token.split(":"), _TIME_RANGES):
            return False
        if re.fullmatch(_DATE, token) and not _in_range(re.split("[-~]", token)[-2:], _DATE_RANGES):
            return False
    return True


_TIME_RANGES = ((0, 23), (0, 59), (0, 59))
_DATE_RANGES = ((1, 12), (1, 31))


def _in_range(parts: list[str], ranges: tuple[tuple[int, int], ...]) -> bool:
    """Every number of each part (not a /step) within its (low, high) range, a step above 0."""
    for part, (low, high) in zip(parts, ranges):
        for item in part.split(","):
            value, _, step = item.partition("/")
            if step and int(step.split(".")[0]) == 0:
                return False
            # "a..b" is a range; a single "." starts the fraction of a second, not checked
            whole = value if ".." in value else value.split(".")[0]
            for number in re.findall(r"[0-9]+", whole):
                if not low <= int(number) <= high:
                    return False
    return True


_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


def gcs_bucket_name_ok(value: str) -> bool:
    """Cloud Storage bucket naming rules (names without dots): 3-63 characters of lowercase
    letters, digits, '-', '_' and '.', starting and ending alphanumeric, not starting with
    ``goog`` and not containing ``google``."""
    return bool(_GCS_BUCKET.match(value)) and not value.startswith("goog") and "google" not in value


def bucket_name_ok(value: str) -> bool:
    """S3 general purpose bucket naming rules: 3-63 characters of lowercase letters, digits,
    '.' and '-', starting and ending alphanumeric, no '..', not an IP address, none of the
    reserved prefixes and suffixes."""
    if not _BUCKET.match(value) or ".." in value:
        return False
    try:
        ipaddress.IPv4Address(value)
        return False
    except ValueError:
        pass
    reserved_prefixes = ("xn--", "sthree-", "amzn-s3-demo-")
    reserved_suffixes = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
    return not value.startswith(reserved_prefixes) and not value.endswith(reserved_suffixes)


class EtcdBackupsConfig(Model):
    """Scheduled etcd snapshots to the cloud's object storage, and how long they are kept."""

    enabled: bool = Field(
        True,
        description="Take scheduled, encrypted etcd snapshots to the cloud's object storage (AWS: S3, GCP: Cloud Storage, "
                    "Azure: Blob Storage).",
    )
    schedule: str = Field(
        DEFAULT_SCHEDULE,
        description="When, as a systemd OnCalendar expression (`hourly`, `*:0/15`, `*-*-* 02:00`); every "
                    "control-plane member's timer fires and the etcd leader of the moment takes the snapshot.",
    )
    retention_days: int = Field(
        14, ge=1, le=3650,
        description="Days a snapshot is kept in the bucket cfcr creates; an expired or overwritten one stays "
                    "recoverable 7 days more (noncurrent version).",
    )
    existing_bucket: str | None = Field(
        None,
        description="Write to this existing bucket instead of creating one; its owner sets its encryption, "
                    "retention and access (aws and gcp; not azure).",
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        if not calendar_ok(value):
            raise ValueError(
                "must be a systemd OnCalendar expression: a shorthand (" + ", ".join(CALENDAR_SHORTHANDS[1:5])
                + ", ...) or [weekdays] [date] time, like *:0/30, 02:00 or Mon..Fri *-*-* 03:15")
        return value.strip()

    @field_validator("existing_bucket")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        if value is not None and not (bucket_name_ok(value) or gcs_bucket_name_ok(value)):
            raise ValueError(
                "must be a bucket name: 3-63 lowercase letters, digits, '.' or '-' (and '_' on gcp), starting and "
                "ending with a letter or digit (no s3:// or gs:// and no path)")
        return value
