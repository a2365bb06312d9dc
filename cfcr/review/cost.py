"""``cfcr cost``: a monthly estimate of what a render builds, at the list prices of
cfcr/review/prices/<cloud>.yaml (each with its source and the date it was read).

Counted from the render (resources.json), not from the config: members one machine each, node
pools at their size at creation (``desiredSize``, else ``minSize``; the autoscaler moves them
between ``minSize`` and ``maxSize``), spot machines at the on-demand price (their cap). Every
cloud resource type of the render is accounted for: priced, usage-based (listed, not in the
total), free, or listed as **not priced**; none is dropped silently.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cfcr.review.machines import COUNTERS, Count

PRICES = Path(__file__).resolve().parent / "prices"
NOT_CLOUD = ("tls:", "random:", "kubernetes:", "cfcr:", "pulumi:", "pulumi-python:")
"""Resource types with no cloud charge of their own (keys, certificates, Kubernetes objects, components)."""
_HOURLY = ("hour", "vm-hour")


class PriceError(ValueError):
    """A price file is malformed (a price without source or date) or names no cloud we know."""


def load_prices(cloud: str) -> dict[str, Any]:
    """``prices/<cloud>.yaml``, checked: every price has a number, ``per``, ``source`` and ``date``."""
    path = PRICES / f"{cloud}.yaml"
    if not path.is_file():
        raise PriceError(f"no price file for cloud {cloud!r} ({path})")
    data = yaml.safe_load(path.read_text())
    tables = [("", data.get("prices") or {})] + [(f"regions.{k}.", v) for k, v in (data.get("regions") or {}).items()]
    for prefix, table in tables:
        for key, entry in table.items():
            missing = [f for f in ("price", "per", "source", "date") if entry.get(f) in (None, "")]
            if missing or not isinstance(entry.get("price"), (int, float)):
                raise PriceError(f"{path.name}: {prefix}{key}: needs a numeric price, per, source and date "
                                 f"(missing {', '.join(missing) or 'a number'})")
    return dict(data)


@dataclass
class Line:
    """One priced item: ``quantity`` at ``entry``'s price (``None``: not priced)."""

    key: str
    what: str
    quantity: float
    entry: dict[str, Any] | None
    resources: list[str]
    spot: bool
    monthly: float


@dataclass
class Estimate:
    """A stack's monthly estimate."""

    stack: str
    cloud: str
    region: str
    prices: dict[str, Any]
    lines: list[Line] = field(default_factory=list)
    usage: dict[str, tuple[int, str]] = field(default_factory=dict)
    not_priced: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """The sum of the priced lines, per month."""
        return sum(line.monthly for line in self.lines)

    @property
    def priced_for_region(self) -> bool:
        """Whether the price file has the stack's region (else its reference region's prices are used)."""
        return self.region == self.prices.get("region") or self.region in (self.prices.get("regions") or {})

    def by_key(self) -> dict[str, float]:
        """Per month, summed by price key (``instance/m7i.large``...)."""
        out: dict[str, float] = defaultdict(float)
        for line in self.lines:
            out[line.key] += line.monthly
        return dict(out)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable estimate (``cfcr cost --json``)."""
        return {
            "stack": self.stack, "cloud": self.cloud, "region": self.region, "currency": self.prices["currency"],
            "pricesRegion": self.region if self.priced_for_region else self.prices["region"],
            "pricesDate": self.prices["date"], "hoursPerMonth": self.prices["hoursPerMonth"],
            "total": round(self.total, 2),
            "lines": [{"key": line.key, "what": line.what, "quantity": line.quantity, "spot": line.spot,
                       "monthly": round(line.monthly, 2), "resources": line.resources,
                       **({"price": line.entry["price"], "per": line.entry["per"], "source": line.entry["source"],
                           "date": line.entry["date"], "confirmed": bool(line.entry.get("confirmed"))}
                          if line.entry else {"price": None})} for line in self.lines],
            "usageBased": {t: {"count": n, "note": note} for t, (n, note) in self.usage.items()},
            "notPriced": self.not_priced,
        }

    def format(self) -> str:
        """The report a person reads."""
        p = self.prices
        where = self.region if self.priced_for_region else (
            f"{p['region']} (the stack is in {self.region}, which the price file does not have: "
            f"{p['region']}'s prices are used)")
        out = [f"cfcr cost: stack {self.stack} ({self.cloud}, {self.region}); list prices of {where}, read {p['date']}, "
               f"{p['hoursPerMonth']} h a month, {p['currency']}",
               "node pools at their size at creation (desiredSize, else minSize); spot machines at the on-demand "
               "price, their cap"]
        for line in self.lines:
            if line.entry is None:
                price = "NOT PRICED"
            else:
                unit = line.entry["per"]
                price = f"${line.entry['price']:g}/{unit}" + ("" if line.entry.get("confirmed") else " (unconfirmed)")
            qty = f"{line.quantity:g}"
            out.append(f"  {line.key:<30} {qty:>6} x {price:<34} ${line.monthly:>9,.2f}  {line.what}"
                       + (" (spot)" if line.spot else ""))
        unconfirmed = sum(1 for line in self.lines if line.entry and not line.entry.get("confirmed"))
        out.append(f"total: ${self.total:,.2f} a month (prices read {p['date']}; {unconfirmed} of "
                   f"{len(self.lines)} lines at unconfirmed prices; sources in cfcr/review/prices/{self.cloud}.yaml)")
        notes = {line.key: line.entry["note"] for line in self.lines if line.entry and line.entry.get("note")}
        out += [f"note on {key}: {note}" for key, note in sorted(notes.items())]
        for type_, (n, note) in sorted(self.usage.items()):
            out.append(f"usage-based, not in the total: {type_} x{n}: {note}")
        for type_, n in sorted(self.not_priced.items()):
            out.append(f"not priced: {type_} x{n} (no price in cfcr/review/prices/{self.cloud}.yaml)")
        return "\n".join(out)


def _price(prices: dict[str, Any], region: str, key: str) -> dict[str, Any] | None:
    regional = (prices.get("regions") or {}).get(region) or {}
    found = regional.get(key) or (prices.get("prices") or {}).get(key)
    return dict(found) if found else None


def estimate(resources: list[dict[str, Any]], cloud: str, region: str, stack: str = "") -> Estimate:
    """Price the rows of a render of ``cloud`` in ``region``."""
    prices = load_prices(cloud)
    counter, counted_types = COUNTERS[cloud]
    result = Estimate(stack, cloud, region, prices)
    merged: dict[tuple[str, str, bool], Count] = {}
    for c in counter(resources):
        key = (c.key, c.what, c.spot)
        if key in merged:
            merged[key].quantity += c.quantity
            merged[key].resources += c.resources
        else:
            merged[key] = Count(c.key, c.quantity, c.what, list(c.resources), c.spot)
    hours = float(prices["hoursPerMonth"])
    for c in merged.values():
        entry = _price(prices, region, c.key)
        monthly = 0.0 if entry is None else c.quantity * float(entry["price"]) * (hours if entry["per"] in _HOURLY
                                                                                  else 1.0)
        result.lines.append(Line(c.key, c.what, c.quantity, entry, c.resources, c.spot, monthly))
    result.lines.sort(key=lambda ln: (not ln.key.startswith("instance/"), not ln.key.startswith("disk/"), ln.key, ln.what))
    usage = prices.get("usage") or {}
    free = set(prices.get("free") or [])
    for r in resources:
        t = r["type"]
        if t.startswith(NOT_CLOUD) or t in counted_types or t in free:
            continue
        if t in usage:
            n, note = result.usage.get(t, (0, usage[t]))
            result.usage[t] = (n + 1, note)
        else:
            result.not_priced[t] = result.not_priced.get(t, 0) + 1
    return result


def stack_estimate(stack: str, project_dir: Path | None = None, config: dict[str, Any] | None = None) -> Estimate:
    """Render ``stack`` (with ``config``, if given) and estimate it."""
    from cfcr.config import load_spec, read_stack_config
    from cfcr.render import render_stack
    from cfcr.render.writer import resource_entries

    raw = config if config is not None else read_stack_config(stack, project_dir)
    spec = load_spec(raw, stack)
    result = render_stack(stack, None, project_dir=project_dir, config=raw)
    return estimate(resource_entries(result.resources, False), spec.cloud, spec.region, stack)
