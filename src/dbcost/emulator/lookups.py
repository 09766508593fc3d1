"""GetDimensionValues, GetTags and GetCostForecast over the fleet.

They reuse :class:`~dbcost.emulator.query.Engine` so that "a value with data" means exactly "a value
some GetCostAndUsage group would show for the same window and filter", and a forecast is built from the
same daily amounts a client could fetch.

The forecast is deliberately simple and documented rather than clever: the mean of the last
:data:`FORECAST_HISTORY_DAYS` complete days (those before ``today``) matching the filter, times the days
of each forecast period; the prediction interval is the empirical band of those daily totals at the
requested level (nearest rank), times the days. Everything is integer arithmetic at 10⁻¹⁰, rounded
half-even once per period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from dbcost.emulator.errors import AwsError, validation
from dbcost.emulator.fleet import METRIC_INDEX, month_add, units_to_str, unpack
from dbcost.emulator.query import (
    DIMENSIONS,
    MONTHLY_MONTHS,
    Engine,
    GroupDef,
    compile_filter,
    make_request,
    parse_date,
)

__all__ = [
    "FORECAST_HISTORY_DAYS",
    "FORECAST_METRICS",
    "cost_forecast",
    "dimension_values",
    "tag_values",
]

FORECAST_HISTORY_DAYS: Final = 28
#: GetCostForecast's Metric enum -> GetCostAndUsage metric (usage metrics belong to GetUsageForecast).
FORECAST_METRICS: Final[Mapping[str, str]] = {
    "UNBLENDED_COST": "UnblendedCost",
    "BLENDED_COST": "BlendedCost",
    "AMORTIZED_COST": "AmortizedCost",
    "NET_UNBLENDED_COST": "NetUnblendedCost",
    "NET_AMORTIZED_COST": "NetAmortizedCost",
}
_FORECAST_DAILY_DAYS: Final = 93
_FORECAST_MONTHLY_MONTHS: Final = 12


def _window(body: Mapping[str, Any], today: dt.date) -> tuple[dt.date, dt.date]:
    tp = body.get("TimePeriod")
    if not isinstance(tp, Mapping):
        raise validation("TimePeriod with Start and End is required")
    start = parse_date(tp.get("Start"), "TimePeriod.Start")
    end = parse_date(tp.get("End"), "TimePeriod.End")
    if start >= end:
        raise validation("Start date should be before end date")
    earliest = month_add(today, -MONTHLY_MONTHS)
    if start < earliest:
        raise validation(f"data is available from {earliest.isoformat()}; start {start.isoformat()} is too old")
    return start, end


def _search(body: Mapping[str, Any]) -> str | None:
    search = body.get("SearchString")
    if search is not None and not isinstance(search, str):
        raise validation("SearchString must be a string")
    return search.lower() if search else None


def _sums_by(
    engine: Engine,
    group: GroupDef,
    start: dt.date,
    end: dt.date,
    raw_filter: object,
    *,
    today: dt.date,
    version: int,
) -> dict[str, list[int]]:
    """Per key of ``group``: unpacked field sums over ``[start, end)`` (keys with at least one item)."""
    req = make_request(
        "MONTHLY",
        dt.datetime.combine(start, dt.time()),
        dt.datetime.combine(end, dt.time()),
        ("UnblendedCost",),
        (group,),
        raw_filter,
    )
    result = engine.cost_and_usage(req, today=today, version=version)
    sums: dict[str, int] = {}
    for pr in result.periods:
        for keys, packed in pr.groups:
            sums[keys[0]] = sums.get(keys[0], 0) + packed
    return {k: unpack(v) for k, v in sums.items()}


def dimension_values(
    engine: Engine, body: Mapping[str, Any], *, today: dt.date, version: int
) -> list[dict[str, Any]]:
    """Every ``DimensionValues`` entry of a GetDimensionValues request, in order (before paging).

    Order: by ``SortBy`` when given (a metric, ascending or descending), else by UnblendedCost
    descending, ties by value, as the real service appears to return them.
    """
    start, end = _window(body, today)
    dimension = body.get("Dimension")
    if dimension not in DIMENSIONS:
        raise validation(f"Dimension {dimension!r} is not supported; use one of {', '.join(sorted(DIMENSIONS))}")
    context = body.get("Context", "COST_AND_USAGE")
    if context != "COST_AND_USAGE":
        raise validation(f"Context {context!r} is not supported by the emulator; use COST_AND_USAGE")
    search = _search(body)
    raw_filter = body.get("Filter")
    if raw_filter is not None:
        compile_filter(raw_filter)
    metric, descending = "UnblendedCost", True
    sort_by = body.get("SortBy")
    if sort_by:
        if not isinstance(sort_by, list) or not isinstance(sort_by[0], Mapping):
            raise validation("SortBy must be a list of {Key, SortOrder}")
        metric = sort_by[0].get("Key", "")
        if metric not in METRIC_INDEX:
            raise validation(f"SortBy.Key {metric!r} is not a metric")
        order = sort_by[0].get("SortOrder", "DESCENDING")
        if order not in ("ASCENDING", "DESCENDING"):
            raise validation(f"SortBy.SortOrder {order!r} must be ASCENDING or DESCENDING")
        descending = order == "DESCENDING"
    sums = _sums_by(engine, GroupDef("DIMENSION", str(dimension)), start, end, raw_filter,
                    today=today, version=version)
    idx = METRIC_INDEX[metric]
    values = [v for v in sums if search is None or search in v.lower()]
    values.sort(key=lambda v: ((-sums[v][idx]) if descending else sums[v][idx], v))
    if dimension == "LINKED_ACCOUNT":
        return [{"Value": v, "Attributes": {"description": engine.fleet.account_name(v)}} for v in values]
    return [{"Value": v, "Attributes": {}} for v in values]


def tag_values(engine: Engine, body: Mapping[str, Any], *, today: dt.date) -> list[str]:
    """GetTags: the tag keys with data (no ``TagKey``), or that key's non-empty values, sorted, bare."""
    start, end = _window(body, today)
    tag_key = body.get("TagKey")
    if tag_key is not None and (not isinstance(tag_key, str) or not tag_key):
        raise validation("TagKey must be a non-empty string")
    search = _search(body)
    raw_filter = body.get("Filter")
    pred = compile_filter(raw_filter) if raw_filter is not None else None
    lines = [
        line
        for line in engine.fleet.lines_active(start, min(end, today))
        if pred is None or pred(line)
    ]
    found: set[str] = set()
    if tag_key is None:
        for line in lines:
            found.update(k for k, v in line.tags.items() if v)
    else:
        found.update(v for line in lines if (v := line.tags.get(tag_key)))
    return sorted(v for v in found if search is None or search in v.lower())


def _round_div(num: int, den: int) -> int:
    """``num / den`` rounded half-even, in integers."""
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q % 2):
        q += 1
    return q


def cost_forecast(
    engine: Engine, body: Mapping[str, Any], *, today: dt.date, version: int
) -> dict[str, Any]:
    """A GetCostForecast response: mean of recent daily cost x days, with an empirical band."""
    metric_enum = body.get("Metric")
    if metric_enum in ("USAGE_QUANTITY", "NORMALIZED_USAGE_AMOUNT"):
        raise validation(f"Metric {metric_enum} is not a cost metric; use GetUsageForecast")
    metric = FORECAST_METRICS.get(str(metric_enum))
    if metric is None:
        raise validation(f"Metric must be one of {', '.join(FORECAST_METRICS)}; got {metric_enum!r}")
    gran = body.get("Granularity")
    if gran not in ("DAILY", "MONTHLY"):
        raise validation(f"Granularity must be DAILY or MONTHLY for a forecast; got {gran!r}")
    tp = body.get("TimePeriod")
    if not isinstance(tp, Mapping):
        raise validation("TimePeriod with Start and End is required")
    start = parse_date(tp.get("Start"), "TimePeriod.Start")
    end = parse_date(tp.get("End"), "TimePeriod.End")
    if start < today:
        raise validation(f"Start date must be today ({today.isoformat()}) or later for a forecast")
    if start >= end:
        raise validation("Start date should be before end date")
    limit = (
        today + dt.timedelta(days=_FORECAST_DAILY_DAYS)
        if gran == "DAILY"
        else month_add(today, _FORECAST_MONTHLY_MONTHS + 1)
    )
    if end > limit:
        raise validation(f"a {gran} forecast can end no later than {limit.isoformat()}")
    level = body.get("PredictionIntervalLevel", 80)
    if isinstance(level, bool) or not isinstance(level, int) or not 51 <= level <= 99:
        raise validation(f"PredictionIntervalLevel must be an integer from 51 to 99; got {level!r}")
    raw_filter = body.get("Filter")
    hist_start = today - dt.timedelta(days=FORECAST_HISTORY_DAYS)
    req = make_request(
        "DAILY",
        dt.datetime.combine(hist_start, dt.time()),
        dt.datetime.combine(today, dt.time()),
        (metric,),
        (),
        raw_filter,
    )
    result = engine.cost_and_usage(req, today=today, version=version)
    idx = METRIC_INDEX[metric]
    daily = sorted(unpack(pr.groups[0][1])[idx] for pr in result.periods)
    n = len(daily)
    total = sum(daily)
    if total == 0:
        raise AwsError(
            "DataUnavailableException",
            "Insufficient amount of historical data to generate a forecast for this filter.",
        )
    # nearest-rank quantiles of the daily totals: ((100 - level) / 2)% and ((100 + level) / 2)%
    k_lo = max(0, -(-(100 - level) * n // 200) - 1)
    k_hi = min(n - 1, -(-(100 + level) * n // 200) - 1)
    periods: list[dict[str, Any]] = []
    forecast_total = 0
    cur = start
    while cur < end:
        nxt = cur + dt.timedelta(days=1) if gran == "DAILY" else min(month_add(cur, 1), end)
        days = (nxt - cur).days
        mean = _round_div(total * days, n)
        lower = min(daily[k_lo] * days, mean)
        upper = max(daily[k_hi] * days, mean)
        forecast_total += mean
        periods.append(
            {
                "TimePeriod": {"Start": cur.isoformat(), "End": nxt.isoformat()},
                "MeanValue": units_to_str(mean),
                "PredictionIntervalLowerBound": units_to_str(lower),
                "PredictionIntervalUpperBound": units_to_str(upper),
            }
        )
        cur = nxt
    return {
        "Total": {"Amount": units_to_str(forecast_total), "Unit": "USD"},
        "ForecastResultsByTime": periods,
    }
