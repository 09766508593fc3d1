"""The ground truth of ``dbcost advise``: the advisories a perfect client of the emulator must find for a month.

It is computed from the fleet's own knowledge, not from usage-type strings: each line's :class:`Role` (set when
the fleet made the line: compute, Standard storage that bills I/O, Multi-AZ usage, Extended Support and its
subject, on-demand requests, ...) and its exact 10⁻¹⁰ integers. What it shares with ``dbcost.advice`` is the
*specification*: the formulas and numbers of the packaged rules file (repeated below, so a change there that
the emulator does not follow is a failing test, not a silently moved target).

What "the client sees" is modelled as ``dbcost advise`` fetches it: per database service, DAILY cost per usage
type and cluster tag value; MONTHLY cluster tag x team tag, cluster tag x env tag, cluster tag x linked account
(each owner, env and account is the value with the most spend, ties alphabetical). With a malformed rate, the
groups the emulator malforms for those shapes are left out, as the client quarantines them; the truth then
stays exact for the demo, which runs with malformed groups on.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any, Final

from dbcost.emulator.fleet import DATABASE_SERVICES, FIELD_BITS, FIELD_MASK, METRIC_INDEX, Fleet, Role, units_to_decimal
from dbcost.emulator.query import malformation, restatement_start

__all__ = ["DEFAULT_NON_PROD", "advisories", "summary"]

DEFAULT_NON_PROD: Final = ("dev", "test", "staging", "qa")
#: class family -> (kind, target family, ratio): the rules file's [[rules.classes]] for the classes the fleet runs
_CLASSES: Final[Mapping[str, tuple[str, str, Decimal]]] = {
    "db.m5": ("graviton", "db.m6g", Decimal("0.89")),
    "db.r5": ("graviton", "db.r6g", Decimal("0.90")),
    "cache.m5": ("graviton", "cache.m6g", Decimal("0.95")),
    "cache.r5": ("graviton", "cache.r6g", Decimal("0.95")),
    "db.m4": ("previous-generation", "db.m6g", Decimal("0.87")),
    "db.r4": ("previous-generation", "db.r6g", Decimal("0.94")),
    "db.t2": ("previous-generation", "db.t4g", Decimal("0.95")),
    "cache.m4": ("previous-generation", "cache.m6g", Decimal("0.95")),
    "cache.r4": ("previous-generation", "cache.r6g", Decimal("0.90")),
}
_COMPUTE_UPLIFT: Final = Decimal("0.30")
_STORAGE_UPLIFT: Final = Decimal("1.25")
_MULTI_AZ_SHARE: Final = Decimal("0.50")
_DDB: Final = {"od-read": (Decimal("0.000000125"), Decimal("0.00013")),
               "od-write": (Decimal("0.000000625"), Decimal("0.00065"))}
_TARGET_UTILIZATION: Final = Decimal("0.70")
_MIN_DAYS: Final = 7
_STEADY: Final = Decimal("0.90")
_SUPERSEDED: Final = frozenset({"graviton", "previous-generation", "aurora-io-optimized", "multi-az-non-prod"})
_Q: Final = Decimal("1E-10")
_WIDE: Final = Context(prec=60)
_PRINT: Final = Context(prec=120)
_RDS, _CACHE, _DDB_SERVICE = ("Amazon Relational Database Service", "Amazon ElastiCache", "Amazon DynamoDB")


def _text(d: Decimal) -> str:
    if d == 0:
        return "0"
    with localcontext(_PRINT):
        return format(d.normalize(), "f")


def _best(amounts: Mapping[str, int]) -> str:
    """The non-empty value with the most spend (ties: alphabetical), or ""."""
    ranked = sorted(((-a, v) for v, a in amounts.items() if v), key=lambda x: x)
    return ranked[0][1] if ranked else ""


class _Group:
    def __init__(self) -> None:
        self.daily: dict[str, dict[dt.date, int]] = defaultdict(lambda: defaultdict(int))
        self.roles: dict[str, Role] = {}

    def total(self, types: Iterable[str]) -> Decimal:
        return units_to_decimal(sum(sum(self.daily[t].values()) for t in types))

    def of(self, *kinds: str) -> list[str]:
        return sorted(t for t, r in self.roles.items() if r.kind in kinds)

    def days(self, types: Iterable[str]) -> set[dt.date]:
        return {d for t in types for d, a in self.daily[t].items() if a != 0}

    def per_day(self, types: Iterable[str]) -> dict[dt.date, int]:
        out: dict[dt.date, int] = defaultdict(int)
        for t in types:
            for d, a in self.daily[t].items():
                out[d] += a
        return out


def advisories(
    fleet: Fleet, *, start: dt.date, end: dt.date, today: dt.date, version: int = 0, metric: str = "UnblendedCost",
    cluster_tag: str = "db-cluster", team_tag: str = "team", env_tag: str = "env",
    non_prod: Iterable[str] = DEFAULT_NON_PROD, min_savings: Decimal = Decimal(0), malformed_rate: float = 0.0,
) -> list[dict[str, Any]]:
    """The advisories of ``[start, end)``, largest savings first, each with kind, cluster, team, service, account,
    region, subject, monthly_cost and estimated_monthly_savings (decimal strings without trailing zeros)."""
    field = METRIC_INDEX[metric] * FIELD_BITS
    seed = fleet.seed
    usage: dict[tuple[dt.date, str, str, str], int] = defaultdict(int)
    monthly: dict[str, dict[tuple[str, str], int]] = {"team": defaultdict(int), "env": defaultdict(int),
                                                       "account": defaultdict(int)}
    role_of: dict[tuple[str, str], Role] = {}
    region_of: dict[tuple[str, str], str] = {}
    restated_from = restatement_start(today)
    day = start
    while day < min(end, today):
        items = fleet.day(day, version if day >= restated_from else 0)
        for tid, packed in zip(items.tids, items.packed, strict=True):
            line = fleet.lines[tid]
            if line.service not in DATABASE_SERVICES:
                continue
            amount = (packed >> field) & FIELD_MASK
            c = line.tags.get(cluster_tag, "")
            usage[(day, line.service, line.usage_type, c)] += amount
            monthly["team"][(c, line.tags.get(team_tag, ""))] += amount
            monthly["env"][(c, line.tags.get(env_tag, ""))] += amount
            monthly["account"][(c, line.account)] += amount
            role_of[(line.service, line.usage_type)] = fleet.role(tid)
            region_of[(line.service, line.usage_type)] = line.region
        day += dt.timedelta(days=1)

    # what the client quarantines: the groups the emulator malforms for the client's request shapes
    period = start.isoformat()
    prefixes = {"team": f"{team_tag}$", "env": f"{env_tag}$", "account": ""}
    facts: dict[str, dict[str, dict[str, int]]] = {k: defaultdict(dict) for k in monthly}
    for what, sums in monthly.items():
        for (c, value), amount in sums.items():
            keys = (f"{cluster_tag}${c}", prefixes[what] + value)
            if malformation(seed, malformed_rate, "MONTHLY", period, keys) is None:
                facts[what][c][value] = facts[what][c].get(value, 0) + amount
    groups: dict[tuple[str, str, str], _Group] = defaultdict(_Group)
    for (d, service, ut, c), amount in usage.items():
        if malformation(seed, malformed_rate, "DAILY", d.isoformat(), (ut, f"{cluster_tag}${c}")) is not None:
            continue
        g = groups[(c, service, region_of[(service, ut)])]
        g.daily[ut][d] += amount
        g.roles[ut] = role_of[(service, ut)]

    low = frozenset(v.casefold() for v in non_prod)
    window_days = (end - start).days
    out: list[dict[str, Any]] = []
    for (c, service, region), g in sorted(groups.items()):
        team = _best(facts["team"].get(c, {})) if c else ""
        account = _best(facts["account"].get(c, {})) if c else ""
        env = _best(facts["env"].get(c, {})) if c else ""
        found: list[tuple[str, str, Decimal, Decimal]] = []  # kind, subject, monthly cost, savings
        _extended_support(g, found)
        _instance_classes(g, service, found)
        if c:
            _aurora(g, service, found)
            if service == _RDS and env.casefold() in low:
                cost = g.total(t for t, r in g.roles.items() if r.multi_az)
                if cost > 0:
                    found.append(("multi-az-non-prod", "multi-az", cost, _MULTI_AZ_SHARE * cost))
            if service == _DDB_SERVICE and window_days >= _MIN_DAYS:
                _dynamodb(g, window_days, found)
            if _idle(g, found):
                found = [f for f in found if f[0] not in _SUPERSEDED]
        for kind, subject, cost, savings in found:
            if savings > 0 and savings >= min_savings:
                out.append({"kind": kind, "cluster": c, "team": team, "service": service, "account": account,
                            "region": region, "subject": subject, "monthly_cost": _text(cost),
                            "estimated_monthly_savings": _text(savings)})
    out.sort(key=lambda a: (-Decimal(a["estimated_monthly_savings"]), a["kind"], a["cluster"], a["service"],
                            a["region"], a["account"], a["subject"]))
    return out


def summary(month: str, found: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"month", "advisories", "total_estimated_monthly_savings"}``, the shape ``dbcost advise`` prints."""
    total = sum((Decimal(a["estimated_monthly_savings"]) for a in found), Decimal(0))
    return {"month": month, "advisories": found, "total_estimated_monthly_savings": _text(total)}


def _extended_support(g: _Group, found: list[tuple[str, str, Decimal, Decimal]]) -> None:
    subjects: dict[str, list[str]] = defaultdict(list)
    for t in g.of("extended-support"):
        subjects[g.roles[t].subject or ""].append(t)
    for subject, types in sorted(subjects.items()):
        cost = g.total(types)
        if cost > 0:
            found.append(("extended-support", subject, cost, cost))


def _instance_classes(g: _Group, service: str, found: list[tuple[str, str, Decimal, Decimal]]) -> None:
    if service not in (_RDS, _CACHE):
        return
    by_class: dict[str, list[str]] = defaultdict(list)
    for t in g.of("compute", "optimized-compute"):
        klass = g.roles[t].instance_class
        if klass is not None and klass.rsplit(".", 1)[0] in _CLASSES:
            by_class[klass].append(t)
    for klass, types in sorted(by_class.items()):
        kind, _, ratio = _CLASSES[klass.rsplit(".", 1)[0]]
        # previous-generation classes have no I/O-Optimized Aurora usage type in the rule's pattern
        cost = g.total(t for t in types if kind == "graviton" or g.roles[t].kind == "compute")
        if cost > 0:
            found.append((kind, klass, cost, cost * (1 - ratio)))


def _aurora(g: _Group, service: str, found: list[tuple[str, str, Decimal, Decimal]]) -> None:
    if service != _RDS:
        return
    io_types = [t for t in g.of("io") if g.roles[t].io_billed]
    std_days = g.days(io_types)
    opt_days = g.days(g.of("optimized-compute", "optimized-storage")) - std_days
    if opt_days and (not std_days or max(opt_days) > max(std_days)):
        if not std_days:
            return  # I/O-Optimized all along: nothing shows the I/O it would pay on Standard
        co = units_to_decimal(sum(a for d, a in g.per_day(g.of("optimized-compute")).items() if d in opt_days))
        so = units_to_decimal(sum(a for d, a in g.per_day(g.of("optimized-storage")).items() if d in opt_days))
        io = g.total(io_types)
        with localcontext(_WIDE):
            standard = co / (1 + _COMPUTE_UPLIFT) + so / (1 + _STORAGE_UPLIFT) + io * len(opt_days) / len(std_days)
            savings = (co + so - standard).quantize(_Q, rounding=ROUND_HALF_EVEN)
        if savings > 0:
            found.append(("aurora-io-optimized", "io-optimized-to-standard", co + so, savings))
        return
    io = g.total(io_types)
    compute = g.total(g.of("compute"))
    storage = g.total(t for t in g.of("storage") if g.roles[t].io_billed)
    savings = io - _COMPUTE_UPLIFT * compute - _STORAGE_UPLIFT * storage
    if io > 0 and savings > 0:
        found.append(("aurora-io-optimized", "standard-to-io-optimized", io + compute + storage, savings))


def _dynamodb(g: _Group, days: int, found: list[tuple[str, str, Decimal, Decimal]]) -> None:
    od_total, prov_total = Decimal(0), Decimal(0)
    for kind, (request_price, capacity_price) in _DDB.items():
        daily = g.per_day(g.of(kind))
        od = units_to_decimal(sum(daily.values()))
        if od <= 0:
            continue
        peak = units_to_decimal(max(daily.values()))
        with localcontext(_WIDE):
            prov = (peak * days * capacity_price * 24 / (request_price * 86400 * _TARGET_UTILIZATION)).quantize(
                _Q, rounding=ROUND_HALF_EVEN)
        od_total += od
        prov_total += prov
    if od_total > 0 and od_total - prov_total > 0:
        found.append(("dynamodb-capacity-mode", "on-demand-to-provisioned", od_total, od_total - prov_total))


def _idle(g: _Group, found: list[tuple[str, str, Decimal, Decimal]]) -> bool:
    if not any(r.kind == "storage" and r.io_billed for r in g.roles.values()):
        return False
    if any(g.total([t]) != 0 for t in g.of("io", "transfer")):
        return False
    compute = g.of("compute", "optimized-compute")
    daily = g.per_day(compute)
    seen = g.days(g.roles)
    if len(seen) < _MIN_DAYS or any(daily.get(d, 0) <= 0 for d in seen):
        return False
    smallest, largest = min(daily[d] for d in seen), max(daily[d] for d in seen)
    if Decimal(smallest) < _STEADY * Decimal(largest):
        return False
    cost = g.total(compute)
    found.append(("idle", "idle", g.total(g.roles), cost))
    return True
