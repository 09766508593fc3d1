"""What advice is made of: the rows it reads, the facts known per cluster, and the advisories it gives (pure data).

* :class:`UsageLine` -- one stored amount of the attribution's per-service datasets: a day, a SERVICE, a
  USAGE_TYPE, the cluster tag's value (``""`` for spend without one) and the amount of the metric;
* :class:`ClusterFacts` -- what the other datasets say about a cluster: its team (the attribution's owner),
  its env tag value and its linked account (each ``""`` when unknown);
* :class:`Advisory` -- one piece of advice for a (cluster, service, region) group; ``subject`` says what it is
  about inside the group (an engine version, an instance class, a direction), so two advisories of one kind on
  one cluster never share an identity;
* :class:`AdviceSet` -- a month's advisories, largest savings first, with the first time each was seen, in the
  JSON shape ``dbcost advise --format json`` prints (a contract: see :meth:`AdviceSet.to_json`).

Amounts are ``Decimal`` and leave as plain decimal strings without trailing zeros (:func:`amount_text`), so an
exact value prints one way whatever scale the arithmetic left on it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext
from typing import Any, Final

from dbcost.money import fmt, sum_amounts

__all__ = [
    "NO_TEAM",
    "AdviceSet",
    "Advisory",
    "ClusterFacts",
    "UsageLine",
    "Window",
    "advisory_id",
    "amount_text",
    "timestamp_text",
]

#: How the per-team summaries name advisories whose cluster has no owner.
NO_TEAM: Final = "unattributed"
_WIDE: Final = Context(prec=120)


def amount_text(value: Decimal) -> str:
    """A plain decimal string without trailing zeros (``"12.5"``, ``"0"``, ``"-3"``), never an exponent."""
    if value == 0:
        return "0"
    with localcontext(_WIDE):
        return fmt(value.normalize())


def timestamp_text(value: dt.datetime) -> str:
    """An ISO 8601 UTC timestamp to the second, ``2026-11-28T06:00:00Z`` (naive values are UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.replace(microsecond=0).isoformat() + "Z"


@dataclass(frozen=True, slots=True)
class UsageLine:
    day: dt.date
    service: str
    usage_type: str
    cluster: str  # the cluster tag's value; "" = no cluster tag
    amount: Decimal


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    team: str = ""
    env: str = ""
    account: str = ""


@dataclass(frozen=True, slots=True)
class Window:
    """The days advice looks at: ``[start, end)`` of ``month`` (cut at today for the open month)."""

    month: str
    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days


@dataclass(frozen=True)
class Advisory:
    kind: str
    rule: str
    cluster: str
    team: str
    service: str
    account: str
    region: str
    subject: str
    monthly_cost: Decimal
    savings: Decimal
    action: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def sort_key(self) -> tuple[Decimal, str, str, str, str, str, str]:
        """Largest savings first, then a stable order of the identity."""
        return (-self.savings, self.kind, self.cluster, self.service, self.region, self.account, self.subject)

    def to_json(self, first_seen: dt.datetime | None) -> dict[str, Any]:
        """The advisory as ``dbcost advise --format json`` prints it (exactly these keys, in this order)."""
        return {
            "kind": self.kind,
            "cluster": self.cluster,
            "team": self.team,
            "service": self.service,
            "account": self.account,
            "region": self.region,
            "monthly_cost": amount_text(self.monthly_cost),
            "estimated_monthly_savings": amount_text(self.savings),
            "action": self.action,
            "evidence": dict(self.evidence),
            "first_seen": timestamp_text(first_seen) if first_seen is not None else None,
        }


def advisory_id(scope: str, a: Advisory) -> str:
    """The stable identity of an advisory across runs and months: ``scope|kind|["account","region","service",
    "cluster","subject"]`` (JSON-encoded, so a ``|`` inside a tag value cannot collide). ``scope`` is the metric
    and cluster tag it was computed with: the same cluster under another metric is another advisory."""
    return "|".join((scope, a.kind, json.dumps([a.account, a.region, a.service, a.cluster, a.subject],
                                                 ensure_ascii=False, separators=(",", ":"))))


@dataclass(frozen=True)
class AdviceSet:
    """A month's advisories (largest savings first) and when each was first seen (by :func:`advisory_id`)."""

    month: str
    scope: str
    advisories: tuple[Advisory, ...]
    first_seen: Mapping[str, dt.datetime] = field(default_factory=dict)

    @property
    def total_savings(self) -> Decimal:
        return sum_amounts(a.savings for a in self.advisories)

    def seen(self, a: Advisory) -> dt.datetime | None:
        return self.first_seen.get(advisory_id(self.scope, a))

    def by_team(self) -> list[tuple[str, int, Decimal]]:
        """(team, advisories, savings) per owning team (:data:`NO_TEAM` for none), largest savings first."""
        counts: dict[str, int] = {}
        parts: dict[str, list[Decimal]] = {}
        for a in self.advisories:
            team = a.team or NO_TEAM
            counts[team] = counts.get(team, 0) + 1
            parts.setdefault(team, []).append(a.savings)
        rows = [(t, counts[t], sum_amounts(v)) for t, v in parts.items()]
        return sorted(rows, key=lambda r: (-r[2], r[0]))

    def to_json(self) -> dict[str, Any]:
        """``{"month", "advisories": [...], "total_estimated_monthly_savings"}``: the ``dbcost advise`` contract."""
        return {
            "month": self.month,
            "advisories": [a.to_json(self.seen(a)) for a in self.advisories],
            "total_estimated_monthly_savings": amount_text(self.total_savings),
        }
