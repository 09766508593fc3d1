"""The planner: legal windows under Cost Explorer's date rules, deterministic order, disjoint shards."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import pytest

from dbcost.errors import UsageError
from dbcost.models import CostQuery
from dbcost.plan import Density, Shard, _split, _whole_rounds, chains_wanted, parse_shard, plan_units

TODAY = dt.date(2026, 11, 28)


def q(start: str, end: str, granularity: str = "DAILY") -> CostQuery:
    return CostQuery.build(start=start, end=end, granularity=granularity, group_by=["SERVICE"])


def test_thirteen_month_daily_backfill_is_monthly_windows_covering_the_range_exactly() -> None:
    """13 months of DAILY data: calendar-month units, contiguous, no gap, no overlap."""
    plan = plan_units(q("2025-10-01", "2026-11-28"), ["t"], today=TODAY)
    units = plan.units
    assert units[0].start == dt.date(2025, 10, 1) and units[-1].end == dt.date(2026, 11, 28)
    assert all(a.end == b.start for a, b in itertools.pairwise(units))
    assert all(u.start.day == 1 for u in units)
    assert len(units) == 14 and plan.min_requests == 14


def test_range_before_the_daily_window_is_planned_monthly() -> None:
    """A DAILY range reaching past the 13-month window gets MONTHLY units before it, DAILY after."""
    plan = plan_units(q("2025-01-01", "2026-03-01"), ["t"], today=TODAY)
    monthly = [u for u in plan.units if u.query.granularity == "MONTHLY"]
    daily = [u for u in plan.units if u.query.granularity == "DAILY"]
    assert monthly[0].start == dt.date(2025, 1, 1) and monthly[-1].end == dt.date(2025, 10, 1)
    assert daily[0].start == dt.date(2025, 10, 1) and daily[-1].end == dt.date(2026, 3, 1)
    assert {u.dataset for u in monthly} != {u.dataset for u in daily}  # different granularity, different dataset


@pytest.mark.parametrize(
    ("start", "end", "gran", "fragment"),
    [
        ("2025-01-15", "2026-03-01", "DAILY", "first-of-month"),
        ("2023-01-01", "2023-03-01", "DAILY", "reaches back 38 months"),
        ("2023-01-01", "2023-03-01", "MONTHLY", "reaches back 38 months"),
        ("2025-03-15", "2025-05-01", "MONTHLY", "1st of a month"),
        ("2026-11-01", "2026-11-10", "HOURLY", "last 14 days"),
    ],
)
def test_ranges_cost_explorer_refuses_are_refused_up_front(start: str, end: str, gran: str, fragment: str) -> None:
    """Date-rule violations are a UsageError naming the rule, before any request."""
    with pytest.raises(UsageError, match=fragment):
        plan_units(q(start, end, gran), ["t"], today=TODAY)


def test_with_resources_serves_the_last_fourteen_days_by_today() -> None:
    """A GetCostAndUsageWithResources range starting before today - 14 days is refused; from it, planned."""
    flt = {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon DynamoDB"]}}
    old = CostQuery.build(start="2026-11-13", end="2026-11-20", filter=flt, operation="GetCostAndUsageWithResources")
    with pytest.raises(UsageError, match=r"start: GetCostAndUsageWithResources serves the last 14 days only "
                                         r"\(from 2026-11-14, today is 2026-11-28, UTC\), got 2026-11-13"):
        plan_units(old, ["t"], today=TODAY)
    ok = old.with_window(dt.date(2026, 11, 14), dt.date(2026, 11, 28))
    plan = plan_units(ok, ["t"], today=TODAY)
    assert plan.units[0].start == dt.date(2026, 11, 14) and plan.units[-1].end == TODAY
    assert {u.query.operation for u in plan.units} == {"GetCostAndUsageWithResources"}


def test_short_ranges_use_smaller_aligned_windows_for_concurrency() -> None:
    """A 61-day range is cut finer than months so several chains can run at once; boundaries are aligned."""
    plan = plan_units(q("2026-09-01", "2026-11-01"), ["t"], today=TODAY, max_concurrency=8)
    assert len(plan.units) >= 4
    assert all(u.start.day in (1, 16) for u in plan.units)


def test_units_cover_every_target_in_deterministic_order() -> None:
    """Two targets: each gets every window; the order is the same on every call."""
    a = plan_units(q("2026-01-01", "2026-06-01"), ["b", "a"], today=TODAY)
    b = plan_units(q("2026-01-01", "2026-06-01"), ["a", "b"], today=TODAY)
    assert a.units == b.units and a.plan_id == b.plan_id
    assert {u.target for u in a.units} == {"a", "b"}
    assert list(a.units) == sorted(a.units)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_shards_are_disjoint_and_complete(n: int) -> None:
    """Shards 1..N of a plan partition its units: no overlap, nothing missing."""
    full = plan_units(q("2025-10-01", "2026-11-28"), ["a", "b"], today=TODAY).units
    parts = [plan_units(q("2025-10-01", "2026-11-28"), ["a", "b"], today=TODAY, shard=Shard(k, n)).units
             for k in range(1, n + 1)]
    ids = [u.unit_id for p in parts for u in p]
    assert len(ids) == len(set(ids)) == len(full)
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_expected_requests_use_history() -> None:
    """With pages-per-day history the estimate grows with the window; without it, one request per unit."""
    query = q("2026-01-01", "2026-03-01")
    assert plan_units(query, ["t"], today=TODAY, window="month").expected_requests == 2
    ppd = {query.fingerprint: 0.5}
    assert plan_units(query, ["t"], today=TODAY, window="month", pages_per_day=ppd).expected_requests == 16 + 14


@pytest.mark.parametrize("text", ["1/0", "0/3", "4/3", "a/b", "2", ""])
def test_bad_shard_is_a_usage_error(text: str) -> None:
    """--shard must be K/N with 1 <= K <= N."""
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_known_density_splits_for_the_latency_but_not_past_five_percent_of_partial_pages() -> None:
    """With pages per day known: 40 req/s x 0.5 s wants 16 chains; ISO weeks would make 18 units, two rounds of
    16 slots, so the 4-month range is cut into 9-day windows (15 units, one round, about 7 extra half pages over
    492 pages); with a tenth of the data the same range stays in months."""
    query = q("2026-07-01", "2026-11-01")
    big = plan_units(query, ["t"], today=TODAY, max_rps=40, max_concurrency=16, pages_per_day={query.fingerprint: 4.0})
    assert len(big.units) == 15 and all(u.days <= 9 for u in big.units)
    assert sum(u.days for u in big.units) == (query.end - query.start).days
    small = plan_units(query, ["t"], today=TODAY, max_rps=40, max_concurrency=16,
                       pages_per_day={query.fingerprint: 0.4})
    assert len(small.units) == 4
    unknown = plan_units(query, ["t"], today=TODAY, max_rps=40, max_concurrency=16)  # no history: half the cap
    assert len(unknown.units) == 8


def test_units_fill_whole_rounds_of_the_slots() -> None:
    """Between one and three rounds of units, equal k-day windows that all run at once instead (a second round of
    a few chains could not carry the rate); under one round or from three rounds on, the window stays."""
    start, end = dt.date(2026, 5, 12), dt.date(2026, 11, 28)  # 200 days: 30 ISO weeks, about
    assert _whole_rounds(start, end, "week", 24) == "9day"
    assert len(_split(start, end, "9day")) <= 24
    assert _whole_rounds(start, end, "week", 40) == "week"  # one round already
    assert _whole_rounds(start, end, "day", 24) == "day"  # 200 units: eight rounds, a small tail
    assert _whole_rounds(start, end, "week", 1) == "week"


def test_chains_follow_littles_law_capped_by_concurrency() -> None:
    """ceil(max_rps x latency) chains, at least 2, at most max_concurrency; without a rate, half the cap."""
    assert chains_wanted(16, 20, 0.5) == 10
    assert chains_wanted(16, 50, 0.8) == 16
    assert chains_wanted(16, 1, 0.5) == 2
    assert chains_wanted(16, None) == 8


def test_fixed_windows_stay_units_of_their_own() -> None:
    """A probe's windows (first and last unit of an earlier plan) cut the new split at their bounds."""
    query = q("2026-01-01", "2026-05-01")
    fixed = [(dt.date(2026, 1, 1), dt.date(2026, 1, 16)), (dt.date(2026, 4, 16), dt.date(2026, 5, 1))]
    plan = plan_units(query, ["t"], today=TODAY, window="month", fixed=fixed)
    windows = [(u.start, u.end) for u in plan.units]
    assert windows[0] == fixed[0] and windows[-1] == fixed[1]
    assert all(a.end == b.start for a, b in itertools.pairwise(plan.units)) and len(windows) == 6


def test_density_estimates_pages_by_interpolating_groups_per_day() -> None:
    """200 groups a day at the start, 300 at the end, 500 a page: a 10-day unit in the middle costs 5 pages."""
    d = Density()
    d.add_page({"2026-01-01": 200, "2026-01-02": 200, "2026-01-03": 100}, has_next=True)  # a full page of 500
    d.add_page({"2026-01-03": 100}, has_next=False)
    d.add_page({"2026-12-31": 300}, has_next=False)
    assert d.page_size == 500 and [n for _, n in d.days] == [200, 200, 200, 300]
    query = q("2026-01-01", "2027-01-01")
    unit = plan_units(query, ["t"], today=dt.date(2027, 1, 5), window="day").units[0]
    assert d.pages(unit) == 1
    mid = next(u for u in plan_units(query, ["t"], today=dt.date(2027, 1, 5), window="month").units
               if u.start == dt.date(2026, 7, 1))
    assert d.groups_on(dt.date(2026, 1, 2)) == 200 and d.groups_on(dt.date(2026, 12, 31)) == 300
    assert d.pages(mid) == math.ceil(sum(d.groups_on(dt.date(2026, 7, i)) for i in range(1, 32)) / 500) == 16
