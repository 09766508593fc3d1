"""The report's data model and the figures derived from it: pure functions over attributions, no output.

:class:`ReportData` is everything one report shows: one month's
:class:`~dbcost.attribution.model.Attribution`, the previous month's (for :func:`movers`), the months
before it (for the trend), the quarantine counts, the data :class:`Freshness` per target, optionally
the month's :class:`~dbcost.quota.QuotaReport` (the typed object: renderers read its fields, the JSON
renderer calls its ``to_json``) and the month's :class:`~dbcost.advice.AdviceSet` (``None`` when ``dbcost
advise`` never ran for the month: the Advice section then says so). The renderers read a ``ReportData`` and
the functions here, nothing else.

Every figure is a ``Decimal``. Amounts are exact sums (:func:`dbcost.money.sum_amounts`); a *share* is a
ratio of two amounts rounded half-even to six places (0.0001 %), a *change* in percent to two places
(:func:`ratio`). Grouping rules:

* teams are the attribution's teams plus the unattributed pool (:func:`team_amounts`);
* clusters are real clusters, unattributed ones under ``UNATTRIBUTED``, without the per-team shared
  pseudo-cluster (:func:`owned_clusters`); :func:`movers` sums them by name, so a cluster that changed
  owner is one cluster;
* categories cover every team and unattributed cluster, shared included, in ``CATEGORY_ORDER``
  (:func:`category_totals`), and sum to the month's total;
* the month-to-date comparison is like for like (:func:`month_to_date`): the month's spend through its
  last day with data against the *same days* of the previous month; the whole previous month is compared
  only beside it, labelled as such, since a partial month against a whole one always looks like a drop;
* the daily series (:func:`daily_by_series`) is the attribution's own per-day money, so a month's bars sum
  to its total.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Final, Literal

from dbcost.advice import AdviceSet, Advisory
from dbcost.attribution.model import CATEGORY_ORDER, SHARED_CLUSTER, UNATTRIBUTED, Attribution, ClusterSpend
from dbcost.money import sum_amounts
from dbcost.quota import QuotaReport

__all__ = [
    "PCT_QUANTUM",
    "RATIO_CONTEXT",
    "SHARE_QUANTUM",
    "TOP_ADVISORIES",
    "TOP_CLUSTERS",
    "Freshness",
    "MonthToDate",
    "Mover",
    "ReportData",
    "business_units",
    "categories_present",
    "category_totals",
    "change_pct",
    "daily_by_series",
    "daily_totals",
    "data_end",
    "estimated_share",
    "month_to_date",
    "movers",
    "owned_clusters",
    "ratio",
    "shared_of",
    "sorted_teams",
    "team_amounts",
    "team_month_to_date",
    "top_advisories",
    "top_clusters",
]

#: How many clusters the cluster chart and the table's cluster list show.
TOP_CLUSTERS: Final = 15
#: How many advisories the Advice section lists (its per-team totals cover all of them).
TOP_ADVISORIES: Final = 10
#: Shares are ratios (not money): six places, 0.0001 %.
SHARE_QUANTUM: Final = Decimal("0.000001")
#: Changes in percent: two places.
PCT_QUANTUM: Final = Decimal("0.01")
#: Room for any ratio of store-sized amounts (38 digits) before quantizing; no trap: ratios may be inexact.
RATIO_CONTEXT: Final = Context(prec=80)


# ----------------------------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Freshness:
    """How current one target's data is: the last successful sync and the last day it covers."""

    target: str
    dataset_label: str
    last_success: dt.datetime | None
    through: dt.date | None


@dataclass(frozen=True)
class Mover:
    """One team's or cluster's change against the previous month.

    ``delta_pct`` is ``delta / |previous|`` in percent (two places), ``None`` when ``previous`` is zero (new).
    ``team`` is the owner of a cluster (this month's, or last month's if it is gone); for a team, its name.
    """

    name: str
    kind: Literal["team", "cluster"]
    previous: Decimal
    current: Decimal
    delta: Decimal
    delta_pct: Decimal | None
    team: str


@dataclass
class ReportData:
    """Everything one report shows. ``history`` is oldest first and includes ``current`` (may be just it)."""

    month: str
    current: Attribution
    previous: Attribution | None
    history: list[Attribution]
    quarantined_total: int
    quarantined_by_reason: list[tuple[str, int]]
    freshness: list[Freshness]
    generated_at: dt.datetime
    quota: QuotaReport | None = None
    advice: AdviceSet | None = None
    #: the currency of every amount (Cost Explorer reports cost in USD)
    currency: str = "USD"

    def trend(self) -> list[Attribution]:
        """``history`` by month, with ``current`` standing for its own month (added if missing)."""
        by_month = {a.month: a for a in self.history}
        by_month[self.current.month] = self.current
        return [by_month[m] for m in sorted(by_month)]


# ------------------------------------------------------------------------------------------ derived figures


def ratio(part: Decimal, whole: Decimal, quantum: Decimal = SHARE_QUANTUM) -> Decimal:
    """``part / whole`` rounded half-even to ``quantum``; ``0`` when ``whole`` is zero."""
    if whole == 0:
        return Decimal(0).quantize(quantum)
    with localcontext(RATIO_CONTEXT):
        return (part / whole).quantize(quantum, rounding=ROUND_HALF_EVEN)


def change_pct(delta: Decimal, previous: Decimal) -> Decimal | None:
    """``delta / |previous|`` in percent (two places); ``None`` when there was nothing before (new)."""
    return None if previous == 0 else ratio(delta * 100, abs(previous), PCT_QUANTUM)


def estimated_share(current: Attribution) -> Decimal:
    """The share of the month's total that is still estimated (``estimated_amount / total``), 0 for no spend.

    A ratio, rounded half-even to six decimal places (0.0001 %).
    """
    return ratio(current.estimated_amount, current.total)


def team_amounts(att: Attribution) -> dict[str, Decimal]:
    """Team -> amount, with the unattributed pool as a team when it has spend or clusters."""
    out = {t.team: t.amount for t in att.teams}
    if att.unattributed != 0 or att.unattributed_clusters:
        out[UNATTRIBUTED] = att.unattributed
    return out


def owned_clusters(att: Attribution) -> list[tuple[str, ClusterSpend]]:
    """Every real cluster with its owner (unattributed clusters under UNATTRIBUTED); not the shared pool."""
    out = [(t.team, c) for t in att.teams for c in t.clusters if c.cluster != SHARED_CLUSTER]
    out.extend((UNATTRIBUTED, c) for c in att.unattributed_clusters)
    return out


def _cluster_amounts(att: Attribution) -> tuple[dict[str, Decimal], dict[str, str]]:
    """Cluster name -> amount (summed by name, so a cluster that changed owner is one cluster), and its owner."""
    parts: dict[str, list[Decimal]] = {}
    owner: dict[str, str] = {}
    for team, c in owned_clusters(att):
        parts.setdefault(c.cluster, []).append(c.amount)
        owner.setdefault(c.cluster, team)
    return {name: sum_amounts(v) for name, v in parts.items()}, owner


def _mover_key(m: Mover) -> tuple[Decimal, str, str]:
    return (-abs(m.delta), m.name, m.kind)


def _diff(prev: Mapping[str, Decimal], cur: Mapping[str, Decimal], kind: Literal["team", "cluster"],
          owners: Mapping[str, str]) -> list[Mover]:
    out: list[Mover] = []
    for name in prev.keys() | cur.keys():
        p = prev.get(name, Decimal(0))
        c = cur.get(name, Decimal(0))
        delta = sum_amounts((c, -p))
        if delta == 0:
            continue
        out.append(Mover(name, kind, p, c, delta, change_pct(delta, p), owners.get(name, name)))
    out.sort(key=_mover_key)
    return out


def movers(current: Attribution, previous: Attribution | None, top: int = 10) -> list[Mover]:
    """The largest changes against the previous month: up to ``top`` teams and up to ``top`` clusters.

    Teams include the unattributed pool; clusters are real clusters (unattributed ones too), summed by name,
    without the per-team shared pseudo-cluster. Unchanged ones are left out. The merged list is sorted by
    absolute delta, largest first, ties by name then kind. No previous month: no movers.
    """
    if previous is None:
        return []
    teams = _diff(team_amounts(previous), team_amounts(current), "team", {})[:top]
    cur_clusters, cur_owner = _cluster_amounts(current)
    prev_clusters, prev_owner = _cluster_amounts(previous)
    clusters = _diff(prev_clusters, cur_clusters, "cluster", {**prev_owner, **cur_owner})[:top]
    return sorted(teams + clusters, key=_mover_key)


def category_totals(att: Attribution) -> dict[str, Decimal]:
    """Spend per category over every team and unattributed cluster (shared included), in CATEGORY_ORDER.

    The values sum to ``att.total`` exactly when the attribution's invariants hold.
    """
    parts: dict[str, list[Decimal]] = {}
    clusters = [c for t in att.teams for c in t.clusters] + list(att.unattributed_clusters)
    for c in clusters:
        for cat, amount in c.categories.items():
            parts.setdefault(cat, []).append(amount)
    order = [c for c in CATEGORY_ORDER if c in parts] + sorted(parts.keys() - set(CATEGORY_ORDER))
    return {cat: sum_amounts(parts[cat]) for cat in order}


def categories_present(att: Attribution) -> list[str]:
    """The categories with spend this month, in :func:`category_totals` order, without ``shared``."""
    return [c for c, v in category_totals(att).items() if v != 0 and c != "shared"]


def sorted_teams(att: Attribution) -> list[tuple[str, Decimal]]:
    """(team, amount), largest first, ties by name; the unattributed pool is not a team here."""
    return sorted(((t.team, t.amount) for t in att.teams), key=lambda x: (-x[1], x[0]))


def top_clusters(att: Attribution, n: int = TOP_CLUSTERS) -> list[tuple[str, ClusterSpend]]:
    """The ``n`` largest of :func:`owned_clusters`, ties by cluster then owner."""
    return sorted(owned_clusters(att), key=lambda tc: (-tc[1].amount, tc[1].cluster, tc[0]))[:n]


def top_advisories(advice: AdviceSet, n: int = TOP_ADVISORIES) -> list[Advisory]:
    """The ``n`` advisories with the largest savings (the set is sorted that way already)."""
    return list(advice.advisories[:n])


def business_units(att: Attribution) -> list[tuple[str, Decimal]]:
    """Spend per business unit of the linked accounts, largest first (empty when none are mapped)."""
    return sorted(att.business_units.items(), key=lambda kv: (-kv[1], kv[0]))


def shared_of(att: Attribution, team: str) -> Decimal:
    """The shared spend allocated to ``team`` (its shared pseudo-cluster), 0 for an unknown team."""
    t = att.team(team)
    if t is None:
        return Decimal(0)
    return sum_amounts(c.amount for c in t.clusters if c.cluster == SHARED_CLUSTER)


# ------------------------------------------------------------------------------------------- month to date


@dataclass(frozen=True)
class MonthToDate:
    """The month so far against the same days of the previous month, and the whole previous month.

    ``days`` is how many days of the month have data (through ``through``, exclusive); ``previous`` sums the
    previous month's days ``1..days`` (all of it when it is shorter). ``partial`` says the month is not over,
    so ``whole_delta`` (against the whole previous month) is not like for like.
    """

    days: int
    days_in_month: int
    through: dt.date
    current: Decimal
    previous: Decimal
    delta: Decimal
    delta_pct: Decimal | None
    previous_month: str
    previous_whole: Decimal
    whole_delta: Decimal
    whole_delta_pct: Decimal | None

    @property
    def partial(self) -> bool:
        return self.days < self.days_in_month


def _month_start(att: Attribution) -> dt.date:
    return dt.date.fromisoformat(f"{att.month}-01")


def _days_in(month_start: dt.date) -> int:
    nxt = (month_start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return (nxt - month_start).days


def data_end(att: Attribution) -> dt.date:
    """The exclusive end of the month's data: ``through`` when known, else the month's end."""
    start = _month_start(att)
    end = start + dt.timedelta(days=_days_in(start))
    return min(att.through, end) if att.through is not None else end


def _same_days(att: Attribution, days: int, team: str | None = None) -> Decimal:
    return sum_amounts(d.amount for d in att.daily if d.day.day <= days and (team is None or d.team == team))


def month_to_date(current: Attribution, previous: Attribution | None) -> MonthToDate | None:
    """The like-for-like comparison of ``current`` with ``previous`` (None without a previous month)."""
    if previous is None:
        return None
    start = _month_start(current)
    through = data_end(current)
    days = max(0, (through - start).days)
    prev = _same_days(previous, days)
    cur = _same_days(current, days)
    delta = sum_amounts((cur, -prev))
    whole = sum_amounts((current.total, -previous.total))
    return MonthToDate(days, _days_in(start), through, cur, prev, delta, change_pct(delta, prev), previous.month,
                       previous.total, whole, change_pct(whole, previous.total))


def team_month_to_date(current: Attribution, previous: Attribution | None, team: str) -> tuple[Decimal, Decimal] | None:
    """(this month so far, the same days of the previous month) of one team (or UNATTRIBUTED)."""
    if previous is None:
        return None
    days = max(0, (data_end(current) - _month_start(current)).days)
    return _same_days(current, days, team), _same_days(previous, days, team)


def daily_totals(att: Attribution) -> dict[dt.date, Decimal]:
    """Spend per day of the month (every day of it, 0 where there is none)."""
    start = _month_start(att)
    parts: dict[dt.date, list[Decimal]] = {start + dt.timedelta(days=i): [] for i in range(_days_in(start))}
    for d in att.daily:
        parts.setdefault(d.day, []).append(d.amount)
    return {day: sum_amounts(v) for day, v in sorted(parts.items())}


def daily_by_series(att: Attribution, series: Mapping[str, str]) -> dict[dt.date, dict[str, Decimal]]:
    """Spend per day of the month and series: ``series`` maps a team (or UNATTRIBUTED) to the series it is
    drawn in (teams beyond the palette share one); a team it does not name goes to the series of ``""``."""
    start = _month_start(att)
    parts: dict[dt.date, dict[str, list[Decimal]]] = {start + dt.timedelta(days=i): {} for i in range(_days_in(start))}
    for d in att.daily:
        name = series.get(d.team, series.get("", d.team))
        parts.setdefault(d.day, {}).setdefault(name, []).append(d.amount)
    return {day: {k: sum_amounts(v) for k, v in by.items()} for day, by in sorted(parts.items())}
