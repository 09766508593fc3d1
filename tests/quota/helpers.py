"""Builders shared by the quota tests (kept out of conftest so tests import them by name): attributions with
only the daily series, pools, one-pool evaluations, and reports with chosen statuses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from dbcost.attribution.model import Attribution, DailySpend
from dbcost.money import sum_amounts
from dbcost.quota import Policy, PoolPolicy, QuotaReport, evaluate

#: The example policy shipped as package data beside dbcost.quota.policy.
EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "dbcost" / "quota" / "policy.example.toml"
NOV = "2026-11"  # 30 days


def d(day: int, month: int = 11) -> dt.date:
    """A day of 2026 (November by default)."""
    return dt.date(2026, month, day)


Row = tuple[int, str, str, str] | tuple[int, str, str, str, bool]


def attribution(rows: Iterable[Row], *, month: str = NOV, metric: str = "UnblendedCost",
                through: dt.date | None = None) -> Attribution:
    """An attribution with only the daily series filled in (all that evaluation reads)."""
    daily = []
    for row in rows:
        day, team, category, amount = row[:4]
        estimated = bool(row[4]) if len(row) == 5 else False
        year, mon = (int(x) for x in month.split("-"))
        daily.append(DailySpend(dt.date(year, mon, int(day)), str(team), str(category), Decimal(str(amount)),
                                estimated))
    total = sum_amounts(r.amount for r in daily)
    return Attribution(month=month, metric=metric, total=total, unattributed=Decimal(0), teams=[], daily=daily,
                       through=through)


def pool(name: str = "p", team: str = "a", budget: str = "100", **kw: Any) -> PoolPolicy:
    """A validated pool (budget 100 for team ``a`` unless told otherwise)."""
    return PoolPolicy.model_validate({"name": name, "team": team, "monthly_budget_usd": budget, **kw})


def one(p: PoolPolicy, attr: Attribution, today: dt.date, **kw: Any) -> Any:
    """The evaluation of the single pool ``p`` against ``attr`` as of ``today``."""
    report = evaluate(Policy(pools=(p,)), attr, today=today, **kw)
    assert len(report.pools) == 1
    return report.pools[0]


def daily(team: str, amount: str, days: Iterable[int], category: str = "compute") -> list[Row]:
    """The same spend of ``team`` on each of ``days``."""
    return [(day, team, category, amount) for day in days]


def report_with(*statuses: str) -> QuotaReport:
    """A report whose pools have the given statuses (closed month, budget 100, actual chosen per status)."""
    amount = {"OK": "10", "WARN": "90", "BREACH": "150"}
    rows: list[Row] = [(1, f"t{i}", "compute", amount[s]) for i, s in enumerate(statuses)]
    pools = tuple(pool(f"p{i}", f"t{i}", "100") for i in range(len(statuses)))
    report = evaluate(Policy(pools=pools), attribution(rows), today=d(1, 12))
    assert [p.status for p in report.pools] == list(statuses)
    return report
