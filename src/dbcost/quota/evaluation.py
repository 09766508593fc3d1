"""Quota evaluation (pure): a policy and one month's attribution in, a :class:`QuotaReport` out.

:func:`evaluate` turns a policy and one month's :class:`~dbcost.attribution.model.Attribution` into a
:class:`QuotaReport`. It reads nothing but its arguments (``today`` included), so the same inputs always
give the same report.

**The month.** Only ``attribution.daily`` rows of the pool's team that fall in ``[month start, data end)``
count, where *data end* is ``today`` clamped into the month (a closed month ends at its last day, a future
month has no data), and, when the attribution says its data stops earlier (``Attribution.through``, the
exclusive end of what the store holds), that earlier day: a day not yet billed must not dilute the burn
rate. ``days_elapsed = max(1, data_end - month_start)``; ``days_remaining = month_end - data_end``.

**Numbers.**

* ``actual`` = the exact sum of the rows (never rounded);
* ``burn_rate_per_day`` = actual / days_elapsed;
* ``forecast`` = actual + burn * days_remaining (run-rate; equals ``actual`` once the month is over);
* ``projected_breach_date`` = the first day whose end-of-day spend reaches the budget: read from the daily
  series when ``actual`` already reached it, else ``data_end + (k - 1)`` days for the smallest ``k >= 1``
  with ``actual + burn * k >= budget``; ``None`` when that day is not in the month (or burn <= 0). It is
  about the pool budget only (a category over its cap breaches the pool but has no date of its own);
* ``aws_forecast`` (optional, from the caller, keyed by pool name) is Cost Explorer's full-month figure,
  shown beside the run rate with ``forecast_delta_pct = (aws_forecast - forecast) / forecast * 100``; it
  never changes a status.

**Rounding.** The arithmetic is exact (``fractions.Fraction``); only results that a division produces are
rounded, once, to :data:`RATE_PLACES` (10) decimal places with ``ROUND_HALF_EVEN``: ``burn_rate_per_day``
and every ``forecast`` (pool and category). Percentages (``pct_of_budget``, ``forecast_pct_of_budget``,
``forecast_delta_pct``) are rounded to 2 places, ``ROUND_HALF_EVEN``. ``actual``, ``budget``, caps and
``warn_threshold`` (= warn_at * budget, a product of two decimals) are exact. Status rules compare the
*reported* forecast, so what the JSON shows is what the status was decided on. Human text (reasons,
table) shows dollars rounded to cents; JSON always carries the full decimal strings.

**Status** (``OK < WARN < BREACH``; every rule that fires is listed in ``reasons``):

* ``BREACH`` if actual >= budget, or any category's actual >= its cap;
* ``WARN`` if actual >= warn_at * budget, or forecast >= budget, or any category's forecast >= its cap;
* ``OK`` otherwise (a team with no spend in the month is OK with actual 0).

A category with a cap is ``BREACH`` (actual >= cap), ``WARN`` (forecast >= cap) or ``OK``; a category
without a cap is reported with ``cap``/``status`` ``None``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final, Literal

from dbcost.attribution.model import CATEGORY_ORDER, Attribution, DailySpend
from dbcost.calendar import month_bounds
from dbcost.errors import ConfigError
from dbcost.money import fmt, sum_amounts

if TYPE_CHECKING:
    # only for the annotations: evaluation reads a policy's fields and needs nothing of pydantic
    from dbcost.quota.policy import Policy, PoolPolicy

__all__ = [
    "PCT_PLACES",
    "RATE_PLACES",
    "STATUS_RANK",
    "CategoryEvaluation",
    "PoolEvaluation",
    "QuotaReport",
    "Status",
    "StatusChange",
    "evaluate",
    "format_usd",
    "status_changes",
]

Status = Literal["OK", "WARN", "BREACH"]
#: Severity order: a report's ``worst`` is the status with the highest rank.
STATUS_RANK: Final[Mapping[str, int]] = {"OK": 0, "WARN": 1, "BREACH": 2}
#: Decimal places of the rounded results (burn rate, forecasts); ROUND_HALF_EVEN.
RATE_PLACES: Final = 10
#: Decimal places of percentages; ROUND_HALF_EVEN.
PCT_PLACES: Final = 2
_EXACT: Final = Context(prec=100, traps=[InvalidOperation, Inexact])


def _round(value: Fraction, places: int) -> Decimal:
    """``value`` rounded once to ``places`` decimal places, ROUND_HALF_EVEN (``round`` on a Fraction)."""
    units = round(value * 10**places)  # Fraction.__round__ rounds half to even, exactly
    return Decimal(f"{units}E-{places}")  # from a string: exact whatever the context precision


def _pct(part: Decimal | Fraction, whole: Decimal) -> Decimal | None:
    return None if whole == 0 else _round(Fraction(part) * 100 / Fraction(whole), PCT_PLACES)


def format_usd(value: Decimal) -> str:
    """Dollars for humans: rounded to cents (ROUND_HALF_EVEN), thousands separated: ``$1,234.57``."""
    cents = _round(Fraction(value), 2)
    return f"-${cents.copy_negate():,}" if cents < 0 else f"${cents:,}"


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else fmt(value)


@dataclass(frozen=True)
class CategoryEvaluation:
    """One category of a pool: its cap (if any), month-to-date actual, run-rate forecast and status."""

    category: str
    cap: Decimal | None
    actual: Decimal
    forecast: Decimal
    status: Status | None  # None when the category has no cap

    def to_json(self) -> dict[str, Any]:
        return {"category": self.category, "cap": _opt(self.cap), "actual": fmt(self.actual),
                "forecast": fmt(self.forecast), "status": self.status}


@dataclass(frozen=True)
class PoolEvaluation:
    """The evaluation of one pool for one month (see the module docstring for every rule)."""

    pool: str
    team: str
    metric: str
    budget: Decimal
    warn_at: Decimal
    warn_threshold: Decimal
    actual: Decimal
    burn_rate_per_day: Decimal
    forecast: Decimal
    days_elapsed: int
    days_remaining: int
    projected_breach_date: dt.date | None
    status: Status
    estimated: bool
    categories: tuple[CategoryEvaluation, ...]
    reasons: tuple[str, ...]
    aws_forecast: Decimal | None = None
    forecast_delta_pct: Decimal | None = None

    @property
    def pct_of_budget(self) -> Decimal | None:
        return _pct(self.actual, self.budget)

    @property
    def forecast_pct_of_budget(self) -> Decimal | None:
        return _pct(self.forecast, self.budget)

    def to_json(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "team": self.team,
            "metric": self.metric,
            "status": self.status,
            "budget": fmt(self.budget),
            "warn_at": fmt(self.warn_at),
            "warn_threshold": fmt(self.warn_threshold),
            "actual": fmt(self.actual),
            "pct_of_budget": _opt(self.pct_of_budget),
            "estimated": self.estimated,
            "burn_rate_per_day": fmt(self.burn_rate_per_day),
            "forecast": fmt(self.forecast),
            "forecast_pct_of_budget": _opt(self.forecast_pct_of_budget),
            "aws_forecast": _opt(self.aws_forecast),
            "forecast_delta_pct": _opt(self.forecast_delta_pct),
            "projected_breach_date": self.projected_breach_date.isoformat() if self.projected_breach_date else None,
            "days_elapsed": self.days_elapsed,
            "days_remaining": self.days_remaining,
            "reasons": list(self.reasons),
            "categories": [c.to_json() for c in self.categories],
        }


@dataclass(frozen=True)
class QuotaReport:
    """Every pool of a policy evaluated for one month, as of ``today``.

    ``data_end`` is the exclusive end of the days counted (see the module docstring).
    """

    month: str
    metric: str
    today: dt.date
    data_end: dt.date
    days_in_month: int
    pools: tuple[PoolEvaluation, ...]

    @property
    def worst(self) -> Status:
        """The most severe status of any pool (``OK`` for a report without pools)."""
        return max((p.status for p in self.pools), key=STATUS_RANK.__getitem__, default="OK")

    @property
    def estimated(self) -> bool:
        return any(p.estimated for p in self.pools)

    def pool(self, name: str) -> PoolEvaluation | None:
        return next((p for p in self.pools if p.pool == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "today": self.today.isoformat(),
            "metric": self.metric,
            "data_end": self.data_end.isoformat(),
            "days_in_month": self.days_in_month,
            "worst": self.worst,
            "estimated": self.estimated,
            "pools": [p.to_json() for p in self.pools],
        }


def _run_rate(actual: Decimal, days_elapsed: int, days_remaining: int) -> tuple[Fraction, Decimal]:
    """(exact burn per day, forecast rounded to RATE_PLACES)."""
    burn = Fraction(actual) / days_elapsed
    return burn, _round(Fraction(actual) + burn * days_remaining, RATE_PLACES)


def _breach_date(
    rows: Iterable[DailySpend], actual: Decimal, burn: Fraction, budget: Decimal, data_end: dt.date, month_end: dt.date
) -> dt.date | None:
    if actual >= budget:
        # already reached: the first day whose running total reaches the budget (it exists: the
        # final running total is `actual`; with credits the total may dip and rise again)
        per_day: dict[dt.date, list[Decimal]] = defaultdict(list)
        for r in rows:
            per_day[r.day].append(r.amount)
        running = Decimal(0)
        for day in sorted(per_day):
            running = sum_amounts((running, *per_day[day]))
            if running >= budget:
                return day
        return None  # pragma: no cover - unreachable while sum(rows) == actual
    if burn <= 0:
        return None
    k = max(1, math.ceil((Fraction(budget) - Fraction(actual)) / burn))
    if k > (month_end - data_end).days:
        return None  # not within the month (checked before building a date: k may be huge)
    return data_end + dt.timedelta(days=k - 1)


def _evaluate_pool(
    pool: PoolPolicy,
    rows: list[DailySpend],
    *,
    days_elapsed: int,
    days_remaining: int,
    data_end: dt.date,
    month_end: dt.date,
    aws_forecast: Decimal | None,
) -> PoolEvaluation:
    budget = pool.monthly_budget_usd
    actual = sum_amounts(r.amount for r in rows)
    burn, forecast = _run_rate(actual, days_elapsed, days_remaining)
    with localcontext(_EXACT):  # a product of two store-sized decimals: exact in 100 digits
        warn_threshold = pool.warn_at * budget

    by_cat: dict[str, list[Decimal]] = defaultdict(list)
    for r in rows:
        by_cat[r.category].append(r.amount)
    categories: list[CategoryEvaluation] = []
    breach: list[str] = []
    warn: list[str] = []
    if actual >= budget:
        breach.append(f"actual {format_usd(actual)} >= budget {format_usd(budget)}")
    elif actual >= warn_threshold:
        warn.append(f"actual {format_usd(actual)} >= {_pct(pool.warn_at, Decimal(1))}% of budget {format_usd(budget)}")
    if actual < budget and forecast >= budget:
        warn.append(f"forecast {format_usd(forecast)} >= budget {format_usd(budget)}")
    extra = sorted(set(by_cat) - set(CATEGORY_ORDER))  # unknown categories: reported after the known ones
    for cat in (*CATEGORY_ORDER, *extra):
        cap = pool.category_caps.get(cat)
        if cap is None and cat not in by_cat:
            continue
        c_actual = sum_amounts(by_cat.get(cat, ()))
        _, c_forecast = _run_rate(c_actual, days_elapsed, days_remaining)
        c_status: Status | None = None
        if cap is not None:
            if c_actual >= cap:
                c_status = "BREACH"
                breach.append(f"{cat} actual {format_usd(c_actual)} >= cap {format_usd(cap)}")
            elif c_forecast >= cap:
                c_status = "WARN"
                warn.append(f"{cat} forecast {format_usd(c_forecast)} >= cap {format_usd(cap)}")
            else:
                c_status = "OK"
        categories.append(CategoryEvaluation(cat, cap, c_actual, c_forecast, c_status))
    status: Status = "BREACH" if breach else "WARN" if warn else "OK"
    delta = _pct(Fraction(aws_forecast) - Fraction(forecast), forecast) if aws_forecast is not None else None
    return PoolEvaluation(
        pool=pool.name,
        team=pool.team,
        metric=pool.metric,
        budget=budget,
        warn_at=pool.warn_at,
        warn_threshold=warn_threshold,
        actual=actual,
        burn_rate_per_day=_round(burn, RATE_PLACES),
        forecast=forecast,
        days_elapsed=days_elapsed,
        days_remaining=days_remaining,
        projected_breach_date=_breach_date(rows, actual, burn, budget, data_end, month_end),
        status=status,
        estimated=any(r.estimated for r in rows),
        categories=tuple(categories),
        reasons=tuple(breach + warn),
        aws_forecast=aws_forecast,
        forecast_delta_pct=delta,
    )


def evaluate(
    policy: Policy,
    attribution: Attribution,
    *,
    today: dt.date,
    aws_forecasts: Mapping[str, Decimal] | None = None,
) -> QuotaReport:
    """Evaluate every pool of ``policy`` against ``attribution`` (one month) as of ``today``.

    ``aws_forecasts`` maps pool names to Cost Explorer's own full-month forecast (month-to-date actual +
    GetCostForecast's total for the rest of the month); it is reported beside the run-rate forecast and
    never changes a status. Raises :class:`ConfigError` when a pool's metric is not the attribution's.
    """
    for i, pool in enumerate(policy.pools, 1):
        if pool.metric != attribution.metric:
            raise ConfigError(
                f"policy: pool #{i} {pool.name!r}: metric: {pool.metric} differs from the attribution's metric "
                f"{attribution.metric} (evaluate pools of one metric against an attribution of that metric)"
            )
    month_start, month_end = month_bounds(attribution.month)
    data_end = min(max(today, month_start), month_end)
    if attribution.through is not None:
        data_end = min(data_end, max(attribution.through, month_start))
    days_elapsed = max(1, (data_end - month_start).days)
    days_remaining = (month_end - data_end).days
    rows_by_team: dict[str, list[DailySpend]] = defaultdict(list)
    for r in attribution.daily:
        if month_start <= r.day < data_end:
            rows_by_team[r.team].append(r)
    forecasts = aws_forecasts or {}
    pools = tuple(
        _evaluate_pool(
            pool,
            rows_by_team.get(pool.team, []),
            days_elapsed=days_elapsed,
            days_remaining=days_remaining,
            data_end=data_end,
            month_end=month_end,
            aws_forecast=forecasts.get(pool.name),
        )
        for pool in policy.pools
    )
    return QuotaReport(
        month=attribution.month,
        metric=attribution.metric,
        today=today,
        data_end=data_end,
        days_in_month=(month_end - month_start).days,
        pools=pools,
    )


# ------------------------------------------------------------------------------------------ changes


@dataclass(frozen=True)
class StatusChange:
    """A pool whose status differs from the previous run's (``old`` is None for a pool seen first)."""

    pool: str
    old: str | None
    new: Status
    evaluation: PoolEvaluation


def status_changes(report: QuotaReport, previous: Mapping[str, str]) -> list[StatusChange]:
    """Pools whose status changed since ``previous`` (pool name -> status), in report order.

    A pool absent from ``previous`` is reported only when it is WARN or BREACH: a new pool that is OK is
    the normal state, not news (and a first run over a whole policy would otherwise notify every pool).
    Pools in ``previous`` but no longer in the report are ignored.
    """
    out: list[StatusChange] = []
    for p in report.pools:
        old = previous.get(p.pool)
        if old == p.status or (old is None and p.status == "OK"):
            continue
        out.append(StatusChange(p.pool, old, p.status, p))
    return out
