"""The attribution result: database spend of one month per team, cluster and category (pure data).

Every amount is a ``Decimal``. The invariants (checked by :meth:`Attribution.check`):

* a cluster's amount is the sum of its categories;
* a team's amount is the sum of its clusters (shared spend allocated to a team appears as a cluster named
  ``SHARED_CLUSTER`` with category ``shared``);
* ``total`` = sum of the teams + ``unattributed``: nothing disappears and nothing is counted twice.

``daily`` keeps the same money per (day, team, category) so quota evaluation can compute month-to-date
actuals and burn rates, and reports can draw trends, without re-reading the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dbcost.money import fmt, sum_amounts

__all__ = [
    "CATEGORY_ORDER",
    "SHARED_CLUSTER",
    "UNATTRIBUTED",
    "Attribution",
    "ClusterSpend",
    "DailySpend",
    "ResourceCoverage",
    "TeamSpend",
    "UnclassifiedSpend",
    "UntaggedResource",
]

#: The pool for spend without an owner. It is always shown, never spread unless asked.
UNATTRIBUTED = "unattributed"
#: The pseudo-cluster that carries a team's share of allocated shared spend.
SHARED_CLUSTER = "(shared)"
CATEGORY_ORDER = ("compute", "storage", "io", "backup", "data_transfer", "other", "shared")


@dataclass(frozen=True)
class ClusterSpend:
    """One cluster's spend and what is known of it: families, and (when the data shows them) the linked
    accounts, regions, engines and instance classes its usage types name, and its env from the topology."""

    cluster: str
    amount: Decimal
    categories: dict[str, Decimal]
    families: tuple[str, ...] = ()
    source: str = "tag"  # how the owner was found: tag | topology | account | none
    accounts: tuple[str, ...] = ()  # from the LINKED_ACCOUNT x cluster datasets (allocation, business units)
    regions: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()
    instance_classes: tuple[str, ...] = ()
    env: str = ""  # from the topology file

    def to_json(self) -> dict[str, Any]:
        cats = {c: fmt(self.categories.get(c, Decimal(0))) for c in CATEGORY_ORDER if c != "shared"}
        if "shared" in self.categories:
            cats["shared"] = fmt(self.categories["shared"])
        return {"cluster": self.cluster, "amount": fmt(self.amount), "categories": cats,
                "families": list(self.families), "owner_source": self.source, "accounts": list(self.accounts),
                "regions": list(self.regions), "engines": list(self.engines),
                "instance_classes": list(self.instance_classes), "env": self.env or None}


@dataclass(frozen=True)
class TeamSpend:
    team: str
    amount: Decimal
    clusters: tuple[ClusterSpend, ...]

    def to_json(self) -> dict[str, Any]:
        return {"team": self.team, "amount": fmt(self.amount), "clusters": [c.to_json() for c in self.clusters]}


@dataclass(frozen=True)
class UnclassifiedSpend:
    service: str
    usage_type: str
    amount: Decimal

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "usage_type": self.usage_type, "amount": fmt(self.amount)}


@dataclass(frozen=True)
class DailySpend:
    day: dt.date
    team: str  # a team name or UNATTRIBUTED
    category: str
    amount: Decimal
    estimated: bool


@dataclass(frozen=True)
class UntaggedResource:
    """A resource whose cost carries no team tag in billing, and the tags that would place it there."""

    resource_id: str
    kind: str
    service: str
    region: str
    cluster: str | None
    team: str | None  # who owns it, by the inventory or the topology (None: nobody knows)
    placed_by: str
    amount: Decimal
    add_tags: Mapping[str, str]  # tag key -> value to add ("?" where the value is not known)
    has_tags: bool  # the resource itself carries them (inventory): only the cost allocation tag is missing
    advice: str

    def to_json(self) -> dict[str, Any]:
        return {"resource_id": self.resource_id, "kind": self.kind, "service": self.service, "region": self.region,
                "cluster": self.cluster, "team": self.team, "placed_by": self.placed_by, "amount": fmt(self.amount),
                "add_tags": dict(self.add_tags), "has_tags": self.has_tags, "advice": self.advice}


@dataclass(frozen=True)
class ResourceCoverage:
    """What resource-level data (``dbcost resources``) adds to a month's attribution, for the days it covers.

    ``unattributed`` is the attribution's own unattributed spend on those days; ``untagged`` the resource-level
    spend that billing tags (and the topology's cluster rows) leave without a team; ``placed`` the part of it
    the resources' own tags or the topology's resource rows place (``placed_by`` per rule), and
    ``still_unattributed`` the rest. The two data sets are fetched separately, so ``untagged`` and
    ``unattributed`` agree only when they describe the same days of the same data; both are shown."""

    stretches: tuple[tuple[dt.date, dt.date], ...]
    unattributed: Decimal
    resource_total: Decimal
    untagged: Decimal
    placed: Decimal
    placed_by: Mapping[str, Decimal]
    still_unattributed: Decimal
    costliest_untagged: tuple[UntaggedResource, ...] = ()
    quarantined_groups: int = 0

    @property
    def days(self) -> int:
        return sum((e - s).days for s, e in self.stretches)

    def to_json(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "covered": [{"start": s.isoformat(), "end": e.isoformat()} for s, e in self.stretches],
            "unattributed": fmt(self.unattributed),
            "resource_total": fmt(self.resource_total),
            "untagged": fmt(self.untagged),
            "placed": fmt(self.placed),
            "placed_by": {k: fmt(v) for k, v in self.placed_by.items()},
            "still_unattributed": fmt(self.still_unattributed),
            "costliest_untagged": [r.to_json() for r in self.costliest_untagged],
            "quarantined_groups": self.quarantined_groups,
        }


@dataclass
class Attribution:
    month: str  # YYYY-MM
    metric: str
    total: Decimal
    unattributed: Decimal
    teams: list[TeamSpend]
    unclassified_usage_types: list[UnclassifiedSpend] = field(default_factory=list)
    unattributed_clusters: list[ClusterSpend] = field(default_factory=list)
    daily: list[DailySpend] = field(default_factory=list)
    estimated_amount: Decimal = Decimal(0)
    allocated_shared: Decimal = Decimal(0)
    services: list[str] = field(default_factory=list)
    through: dt.date | None = None  # last day with data (exclusive end of what the store holds)
    business_units: dict[str, Decimal] = field(default_factory=dict)  # by linked account's business unit
    #: resource-level data for the days it covers (None: ``dbcost resources`` stored none for the month)
    resource_level: ResourceCoverage | None = None

    def team(self, name: str) -> TeamSpend | None:
        return next((t for t in self.teams if t.team == name), None)

    def check(self) -> None:
        """Raise ``AssertionError`` if an invariant is broken (a bug, never user input)."""
        for t in self.teams:
            for c in t.clusters:
                assert sum_amounts(c.categories.values()) == c.amount, (t.team, c.cluster)
            assert sum_amounts(c.amount for c in t.clusters) == t.amount, t.team
        assert sum_amounts(t.amount for t in self.teams) + self.unattributed == self.total
        assert sum_amounts(c.amount for c in self.unattributed_clusters) == self.unattributed
        assert sum_amounts(d.amount for d in self.daily) == self.total

    def to_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "metric": self.metric,
            "total": fmt(self.total),
            "unattributed": fmt(self.unattributed),
            "teams": [t.to_json() for t in self.teams],
            "unclassified_usage_types": [u.to_json() for u in self.unclassified_usage_types],
            "unattributed_detail": [c.to_json() for c in self.unattributed_clusters],
            "allocated_shared": fmt(self.allocated_shared),
            "estimated": fmt(self.estimated_amount),
            "services": self.services,
            "through": self.through.isoformat() if self.through else None,
            "business_units": [{"business_unit": k, "amount": fmt(v)} for k, v in self.business_units.items()],
            "resource_level": self.resource_level.to_json() if self.resource_level is not None else None,
        }
