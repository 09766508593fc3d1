"""Quotas (layer L2, pure): monthly budgets per pool, and their evaluation against an attribution.

A *policy* file (TOML) names pools; each pool matches one team of the attribution::

    [[pool]]
    name = "payments"                 # required, unique
    team = "payments"                 # the team, as the attribution names it ("unattributed" works too)
    monthly_budget_usd = 90000        # > 0; int, float or string, always read as an exact Decimal
    warn_at = 0.8                     # optional, 0 < warn_at <= 1 (default 0.8)
    metric = "UnblendedCost"          # optional; a Cost Explorer cost metric (default UnblendedCost)

    [pool.category_caps]              # optional: USD cap per category (any category but "shared")
    io = 8000

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
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dbcost._files import read_text_file
from dbcost.attribution.model import CATEGORY_ORDER, UNATTRIBUTED, Attribution, DailySpend
from dbcost.errors import ConfigError
from dbcost.models import COST_METRICS
from dbcost.money import AmountError, fmt, parse_amount, sum_amounts

__all__ = [
    "BUDGET_METRICS",
    "CAP_CATEGORIES",
    "EXIT_BREACH",
    "EXIT_WARN",
    "PCT_PLACES",
    "RATE_PLACES",
    "STATUS_RANK",
    "TABLE_HEADER",
    "CategoryEvaluation",
    "Policy",
    "PoolEvaluation",
    "PoolPolicy",
    "QuotaReport",
    "Status",
    "StatusChange",
    "evaluate",
    "example_policy_text",
    "exit_code",
    "format_usd",
    "load_policy",
    "render_table",
    "status_changes",
    "table_rows",
]

Status = Literal["OK", "WARN", "BREACH"]
#: Severity order: a report's ``worst`` is the status with the highest rank.
STATUS_RANK: Final[Mapping[str, int]] = {"OK": 0, "WARN": 1, "BREACH": 2}
#: Exit codes of the quota gate (``exit_code``); 2 is taken by usage errors.
EXIT_WARN: Final = 4
EXIT_BREACH: Final = 5
#: Categories a pool may cap: the attribution's categories except allocated ``shared`` spend.
CAP_CATEGORIES: Final[tuple[str, ...]] = tuple(c for c in CATEGORY_ORDER if c != "shared")
#: Metrics a USD budget makes sense for: Cost Explorer's metrics minus the two usage quantities.
BUDGET_METRICS: Final[tuple[str, ...]] = tuple(
    m for m in COST_METRICS if m not in ("UsageQuantity", "NormalizedUsageAmount")
)
_METRIC_BY_LOWER: Final = {m.lower(): m for m in BUDGET_METRICS}
#: Decimal places of the rounded results (burn rate, forecasts); ROUND_HALF_EVEN.
RATE_PLACES: Final = 10
#: Decimal places of percentages; ROUND_HALF_EVEN.
PCT_PLACES: Final = 2
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_EXACT: Final = Context(prec=100, traps=[InvalidOperation, Inexact])
_POOL_KEYS: Final = ("name", "team", "monthly_budget_usd", "warn_at", "metric", "category_caps")


# ------------------------------------------------------------------------------------------- policy


def _decimal(value: object) -> Decimal:
    """An exact Decimal from a TOML int/float/string (floats through ``str``: ``0.1`` -> ``Decimal("0.1")``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"must be a number or a decimal string, got {type(value).__name__}")
    try:
        return parse_amount(value if isinstance(value, str) else str(value))
    except AmountError as exc:
        raise ValueError(str(exc)) from None


def _positive(value: object) -> Decimal:
    d = _decimal(value)
    if d <= 0:
        raise ValueError(f"must be greater than 0, got {fmt(d)}")
    return d


class PoolPolicy(BaseModel):
    """One budget: a pool name, the team it matches, a monthly budget in USD and optional category caps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    team: str = Field(min_length=1)
    monthly_budget_usd: Decimal
    warn_at: Decimal = Decimal("0.8")
    metric: str = "UnblendedCost"
    category_caps: dict[str, Decimal] = Field(default_factory=dict)

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: object) -> object:
        if isinstance(v, str) and _NAME_RE.fullmatch(v) is None:
            raise ValueError("must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
        return v

    @field_validator("monthly_budget_usd", mode="before")
    @classmethod
    def _budget(cls, v: object) -> Decimal:
        return _positive(v)

    @field_validator("warn_at", mode="before")
    @classmethod
    def _warn_at(cls, v: object) -> Decimal:
        d = _decimal(v)
        if not 0 < d <= 1:
            raise ValueError(f"must be > 0 and <= 1, got {fmt(d)}")
        return d

    @field_validator("metric", mode="before")
    @classmethod
    def _metric(cls, v: object) -> str:
        canonical = _METRIC_BY_LOWER.get(str(v).lower()) if isinstance(v, str) else None
        if canonical is None:
            raise ValueError(f"unknown cost metric {v!r} (valid: {', '.join(BUDGET_METRICS)})")
        return canonical

    @field_validator("category_caps", mode="before")
    @classmethod
    def _caps(cls, v: object) -> dict[str, Decimal]:
        if not isinstance(v, Mapping):
            raise ValueError("must be a table of category = USD cap")
        unknown = [str(k) for k in v if k not in CAP_CATEGORIES]
        if unknown:
            raise ValueError(f"unknown category {unknown[0]!r} (valid: {', '.join(CAP_CATEGORIES)})")
        caps: dict[str, Decimal] = {}
        for cat in CAP_CATEGORIES:  # canonical order, whatever the file's
            if cat in v:
                try:
                    caps[cat] = _positive(v[cat])
                except ValueError as exc:
                    raise ValueError(f"{cat}: {exc}") from None
        return caps


class Policy(BaseModel):
    """A validated policy: at least one pool, pool names unique."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pools: tuple[PoolPolicy, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        seen: set[str] = set()
        for p in self.pools:
            if p.name in seen:
                raise ValueError(f"duplicate pool name {p.name!r}")
            seen.add(p.name)
        return self

    def pool(self, name: str) -> PoolPolicy | None:
        return next((p for p in self.pools if p.name == name), None)


def _pool_error(origin: str, index: int, entry: object, exc: ValidationError) -> ConfigError:
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = ".".join(str(x) for x in err["loc"]) or "pool"
    if err["type"] == "extra_forbidden":
        msg = f"unknown key (valid: {', '.join(_POOL_KEYS)})"
    elif err["type"] == "missing":
        msg = "required"
    else:
        msg = re.sub(r"^Value error, ", "", err["msg"])
    more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return ConfigError(f"{origin}: {_pool_label(index, entry)}: {loc}: {msg}{more}")


def _pool_label(index: int, entry: object) -> str:
    name = entry.get("name") if isinstance(entry, Mapping) else None
    return f"pool #{index} {name!r}" if isinstance(name, str) else f"pool #{index} (no name)"


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; every error is one ``ConfigError`` line naming file, pool, field."""
    p = Path(path)
    origin = f"policy {p}"
    text = read_text_file(p, origin)
    try:
        # parse_float=Decimal: a TOML float never becomes a binary float on its way to a budget
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {str(exc).splitlines()[0]}") from None
    unknown = sorted(k for k in data if k != "pool")
    if unknown:
        raise ConfigError(f"{origin}: unknown top-level key {unknown[0]!r} (expected only [[pool]] tables)")
    entries = data.get("pool")
    if isinstance(entries, dict):
        raise ConfigError(f"{origin}: pool: write each pool as [[pool]] (an array of tables), not [pool]")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{origin}: no pools: expected at least one [[pool]] table")
    pools: list[PoolPolicy] = []
    first_index: dict[str, int] = {}
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ConfigError(f"{origin}: pool #{i}: expected a table")
        try:
            pool = PoolPolicy.model_validate(entry)
        except ValidationError as exc:
            raise _pool_error(origin, i, entry, exc) from None
        if pool.name in first_index:
            raise ConfigError(f"{origin}: {_pool_label(i, entry)}: name: duplicate pool name "
                              f"(already used by pool #{first_index[pool.name]})")
        first_index[pool.name] = i
        pools.append(pool)
    return Policy(pools=tuple(pools))


# --------------------------------------------------------------------------------------- evaluation


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


def _month_bounds(month: str) -> tuple[dt.date, dt.date]:
    start = dt.date.fromisoformat(f"{month}-01")
    end = dt.date(start.year + 1, 1, 1) if start.month == 12 else dt.date(start.year, start.month + 1, 1)
    return start, end


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
    month_start, month_end = _month_bounds(attribution.month)
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


# ------------------------------------------------------------------------------------ gate, changes


def exit_code(report: QuotaReport, fail_on: Literal["warn", "breach"] | None) -> int:
    """The CI gate: 0 without ``fail_on``; with ``"breach"`` 5 on any BREACH; with ``"warn"`` also 4 on WARN."""
    if fail_on is None:
        return 0
    worst = report.worst
    if worst == "BREACH":
        return EXIT_BREACH
    if worst == "WARN" and fail_on == "warn":
        return EXIT_WARN
    return 0


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


# -------------------------------------------------------------------------------------------- table

TABLE_HEADER: Final[tuple[str, ...]] = (
    "pool", "team", "status", "actual", "budget", "used", "forecast", "breach on", "estimated",
)


def table_rows(report: QuotaReport) -> list[tuple[str, ...]]:
    """One row of display strings per pool (cents, percentages), in :data:`TABLE_HEADER` order."""
    rows: list[tuple[str, ...]] = []
    for p in report.pools:
        used = p.pct_of_budget
        rows.append((
            p.pool,
            p.team,
            p.status,
            format_usd(p.actual),
            format_usd(p.budget),
            f"{used}%" if used is not None else "-",
            format_usd(p.forecast),
            p.projected_breach_date.isoformat() if p.projected_breach_date else "-",
            "yes" if p.estimated else "no",
        ))
    return rows


def render_table(report: QuotaReport) -> str:
    """A plain-text table of the report (the CLI may draw its own from :func:`table_rows`)."""
    rows = [TABLE_HEADER, *table_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER))]
    numeric = {3, 4, 5, 6}
    lines = [
        "  ".join(cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip()
        for r in rows
    ]
    title = f"quota {report.month} ({report.metric}) as of {report.today.isoformat()}: worst {report.worst}"
    notes = []
    if report.estimated:
        notes.append("estimated = the month is still open in Cost Explorer; amounts may change")
    if any(p.team == UNATTRIBUTED for p in report.pools):
        notes.append(f"team {UNATTRIBUTED!r} = spend without an owner")
    return "\n".join([title, *lines, *notes])


def example_policy_text() -> str:
    """The packaged example policy (budgets for the emulator's fleet), to copy and edit."""
    from importlib.resources import files

    return files("dbcost").joinpath("data/policy.example.toml").read_text(encoding="utf-8")
