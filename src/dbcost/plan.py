"""The planner (pure): a query over a date range becomes work units that Cost Explorer will accept.

Date rules (``COST-EXPLORER-FACTS.md``; AWS does not publish all of them, so they are parameters):

* DAILY data reaches back 13 months plus the current month: the earliest daily date is the first day of
  the month 13 months before today's month. A DAILY range that starts earlier is planned as MONTHLY
  units (first-of-month starts) up to the daily window, and DAILY units from there on. A MONTHLY part
  must start on the 1st of a month: a mid-month start beyond the daily window is refused.
* MONTHLY data reaches back 38 months (with multi-year data enabled); earlier is refused.
* HOURLY data covers the last 14 days only.
* Nothing is served for days after today: a range that starts in the future is refused, and the units of a
  range that runs past today stop at today's unit (a future day would cost a request and bring nothing).

Windows are calendar-aligned (months, half-months, ISO weeks, k-day grids or days), so the same range and the same
history always yield the same units. ``auto`` sizes them between two limits:

* **enough chains for the latency.** A unit is one page chain, and a chain is sequential: it sends its next
  request only when the last one has answered, so it carries at most ``1 / latency`` requests a second. To
  let the governor reach ``max_rps``, about ``ceil(max_rps x latency_s)`` chains must be in flight (Little's
  law; ``latency_s`` defaults to :data:`DEFAULT_LATENCY_S`, an inferred typical Cost Explorer answer time),
  capped at ``max_concurrency``. That count is used only where the dataset's pages per day are known (below);
  without them, half of ``max_concurrency`` (at least 2), as a cautious split that a first run's unknown data
  can afford. Targets and sibling datasets run their own chains side by side, so they share that number;
* **no more partial pages than the data allows.** Cost Explorer pages the groups of a query's days as one
  flat list, so a unit of ``d`` days costs ``ceil(pages_per_day x d)`` requests and every unit boundary adds
  about half a page. When the store knows the dataset's pages per day (earlier runs, or a probe), the
  windows are never so fine that the units would add more than :data:`MAX_SPLIT_OVERHEAD` (5%) over the
  fewest requests the data allows (one chain over the range): more chains only where the data is large
  enough to pay for them. Without that history the chain count alone decides (months are the coarsest);
* **whole rounds.** At most ``max_concurrency`` units of a target run at once (shared by its datasets), and
  the units of a window are about equal: 30 of them in 24 slots run as 24 and then 6, whose chains cannot
  carry the rate. With the pages per day known, a window that makes between one and three rounds of units
  becomes equal ``<k>``-day windows (on a grid of day numbers divisible by ``k``, so still deterministic) that
  all fit in one round.

Units are ordered by (target, dataset, start) and sharded round-robin over that order: ``--shard K/N`` takes
a deterministic, disjoint share.

Each unit costs at least one request (one page); the expected count uses pages-per-day from earlier
runs of the same dataset when the store has them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

import orjson

from dbcost.calendar import (
    DAILY_HISTORY_MONTHS,
    HOURLY_MAX_DAYS,
    MONTHLY_HISTORY_MONTHS,
    add_months,
    daily_window_start,
    month_start,
)
from dbcost.errors import UsageError
from dbcost.models import CostQuery

__all__ = [
    "DEFAULT_LATENCY_S",
    "MAX_SPLIT_OVERHEAD",
    "Density",
    "Plan",
    "Shard",
    "Window",
    "WorkUnit",
    "chains_wanted",
    "check_range",
    "describe_units",
    "expected_requests",
    "parse_shard",
    "plan_units",
]

Window = Literal["auto", "month", "semimonth", "week", "day"]
PRICE_PER_REQUEST = Decimal("0.01")
#: a typical Cost Explorer answer time for a page of groups (inferred: AWS publishes none; 0.3-1 s is what
#: users report), used to size the chains in flight
DEFAULT_LATENCY_S = 0.5
#: the share of extra (partial-page) requests the split into units may add over one chain per range
MAX_SPLIT_OVERHEAD = 0.05


@dataclass(frozen=True, order=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str | None) -> Shard | None:
    """``K/N`` with 1 <= K <= N."""
    if text is None:
        return None
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard: must be K/N like 2/3, got {text!r}") from None
    if not 1 <= k <= n:
        raise UsageError(f"--shard: K must be between 1 and N, got {text!r}")
    return Shard(k, n)


@dataclass(frozen=True, order=True)
class WorkUnit:
    """One request chain: one target, one dataset (query), one window ``[start, end)``."""

    target: str
    dataset: str
    start: dt.date
    end: dt.date
    query: CostQuery = field(compare=False)

    @property
    def unit_id(self) -> str:
        return f"{self.dataset}/{self.target}/{self.start.isoformat()}/{self.end.isoformat()}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def window_query(self) -> CostQuery:
        return self.query.with_window(self.start, self.end)


@dataclass(frozen=True)
class Plan:
    units: tuple[WorkUnit, ...]
    shard: Shard | None
    min_requests: int
    expected_requests: int
    plan_id: str

    @property
    def min_cost_usd(self) -> Decimal:
        return self.min_requests * PRICE_PER_REQUEST

    @property
    def expected_cost_usd(self) -> Decimal:
        return self.expected_requests * PRICE_PER_REQUEST

    @property
    def datasets(self) -> dict[str, CostQuery]:
        return {u.dataset: u.query for u in self.units}

    @property
    def targets(self) -> list[str]:
        return sorted({u.target for u in self.units})


#: windows ``auto`` may choose, coarsest first: the user's choices plus runs of 4 and 2 days between a week and a
#: day (aligned on the day number, so the same range always splits the same way)
_AUTO_WINDOWS: tuple[str, ...] = ("month", "semimonth", "week", "4day", "2day", "day")


def _split(start: dt.date, end: dt.date, window: str) -> list[tuple[dt.date, dt.date]]:
    """Calendar-aligned windows covering ``[start, end)``."""
    if window.endswith("day") and window[:-3].isdigit():  # "4day", "2day" or a whole-rounds "<k>day"
        k = int(window[:-3])
        bounds_k = {start, end} | {dt.date.fromordinal(o) for o in range(start.toordinal() + 1, end.toordinal())
                                   if o % k == 0}
        return list(itertools.pairwise(sorted(bounds_k)))
    if window == "day":
        return [(start + dt.timedelta(days=i), start + dt.timedelta(days=i + 1)) for i in range((end - start).days)]
    bounds: set[dt.date] = {start, end}
    if window == "week":
        # ISO weeks (Monday starts): equal lengths, so concurrent chains finish together
        b = start + dt.timedelta(days=(7 - start.weekday()) % 7 or 7)
        while b < end:
            bounds.add(b)
            b += dt.timedelta(days=7)
        edges = sorted(bounds)
        return list(itertools.pairwise(edges))
    cuts_in_month = {"month": (1,), "semimonth": (1, 16)}[window]
    m = month_start(start)
    while m < end:
        for day in cuts_in_month:
            b = m.replace(day=day)
            if start < b < end:
                bounds.add(b)
        m = add_months(m, 1)
    edges = sorted(bounds)
    return list(itertools.pairwise(edges))


def _cut(windows: list[tuple[dt.date, dt.date]],
         fixed: Sequence[tuple[dt.date, dt.date]]) -> list[tuple[dt.date, dt.date]]:
    """``windows`` (contiguous, in order) cut at every bound of ``fixed`` that falls strictly inside one."""
    if not windows:
        return windows
    lo, hi = windows[0][0], windows[-1][1]
    edges = {b for w in windows for b in w} | {b for w in fixed for b in w if lo < b < hi}
    return list(itertools.pairwise(sorted(edges)))


def _auto_window(start: dt.date, end: dt.date, want_units: int, pages_per_day: float | None = None) -> str:
    """The coarsest window that gives ``want_units`` units; with a known ``pages_per_day``, never one so fine that
    its partial pages (about half a page per unit) add more than :data:`MAX_SPLIT_OVERHEAD` (months at most)."""
    candidates = _AUTO_WINDOWS if pages_per_day is not None else ("month", "semimonth", "week", "day")
    fewest = (pages_per_day or 0.0) * (end - start).days
    chosen = "month"
    for w in candidates:
        n = len(_split(start, end, w))
        if pages_per_day is not None and w != "month" and 0.5 * (n - 1) > MAX_SPLIT_OVERHEAD * max(1.0, fewest):
            break  # this fine a split costs more than it could save
        chosen = w
        if n >= want_units:
            break
    return chosen


def _whole_rounds(start: dt.date, end: dt.date, window: str, slots: int) -> str:
    """``window``, or equal ``<k>day`` windows that fit in one round of ``slots`` units at a time.

    The units of a window are about equal, and at most ``slots`` of them run at once: 30 units in 24 slots run
    as 24, then 6 alone, and those 6 chains cannot carry the rate (at 800 ms, 20/s takes 16 chains), so the
    last round takes as long as the first at a fraction of the rate. Between one and three rounds' worth, fewer
    but longer units that all start at once do better (and cost fewer partial pages); from three rounds on
    the tail is a small share of the run."""
    n = len(_split(start, end, window))
    if slots < 2 or not slots < n < 3 * slots:
        return window
    k = math.ceil((end - start).days / (slots - 1))  # one fewer: the k-day grid may cut a partial unit at each end
    return f"{k}day" if k > 1 else "day"


def chains_wanted(max_concurrency: int, max_rps: float | None, latency_s: float = DEFAULT_LATENCY_S) -> int:
    """Chains in flight that let ``max_rps`` requests a second pass at ``latency_s`` each (Little's law), at most
    ``max_concurrency``; without ``max_rps``, half of ``max_concurrency`` (at least 2)."""
    if max_rps is None:
        return max(2, math.ceil(max_concurrency / 2))
    return max(2, min(max_concurrency, math.ceil(max_rps * latency_s)))


def check_range(query: CostQuery, today: dt.date) -> None:
    """What any command that sends ``query`` must refuse before sending it (:class:`UsageError`): a range that
    starts after ``today``, an HOURLY range outside the last :data:`HOURLY_MAX_DAYS` days, and a range of an
    operation that serves only recent days (GetCostAndUsageWithResources: 14) that starts before them."""
    if query.start > today:
        raise UsageError(f"start: {query.start} is in the future (today is {today}, UTC); Cost Explorer has no "
                         "data for it yet")
    days = query.op.history_days
    if days is not None and query.start < today - dt.timedelta(days=days):
        raise UsageError(f"start: {query.op.name} serves the last {days} days only (from "
                         f"{today - dt.timedelta(days=days)}, today is {today}, UTC), got {query.start}")
    if query.granularity == "HOURLY":
        earliest = today - dt.timedelta(days=HOURLY_MAX_DAYS)
        if query.start < earliest:
            raise UsageError(f"start: HOURLY data covers the last {HOURLY_MAX_DAYS} days only (from {earliest}), "
                             f"got {query.start}")


def plan_units(
    query: CostQuery,
    targets: Sequence[str],
    *,
    today: dt.date,
    window: Window = "auto",
    max_concurrency: int = 8,
    shard: Shard | None = None,
    pages_per_day: dict[str, float] | None = None,
    daily_history_months: int = DAILY_HISTORY_MONTHS,
    monthly_history_months: int = MONTHLY_HISTORY_MONTHS,
    sibling_queries: int = 1,
    max_rps: float | None = None,
    latency_s: float = DEFAULT_LATENCY_S,
    fixed: Sequence[tuple[dt.date, dt.date]] = (),
) -> Plan:
    """Units for ``query`` over its range for every target. Raises :class:`UsageError` for a range
    Cost Explorer would refuse.

    ``sibling_queries``: how many queries (datasets) run in the same plan; their chains run side by side,
    so each one needs fewer, larger windows to keep the requests flowing. ``max_rps``/``latency_s`` size the
    chains (:func:`chains_wanted`); ``pages_per_day`` (per dataset) bounds how fine the windows may get.
    ``fixed``: windows that must stay units of their own (a probe's, whose pages the run reuses): the split of a
    DAILY or HOURLY range is cut at their bounds too.
    """
    if not targets:
        raise UsageError("targets: at least one target is required")
    if len(set(targets)) != len(targets):
        raise UsageError("targets: target names must be unique")
    check_range(query, today)
    pieces: list[tuple[CostQuery, dt.date, dt.date]] = []  # (query for granularity, start, end)
    daily_from = daily_window_start(today, daily_history_months)
    monthly_from = add_months(today, -monthly_history_months)
    if query.granularity == "HOURLY":
        pieces.append((query, query.start, query.end))
    elif query.granularity == "MONTHLY":
        if query.start < monthly_from:
            raise UsageError(
                f"start: MONTHLY data reaches back {monthly_history_months} months (to {monthly_from}), "
                f"got {query.start}"
            )
        if query.start < daily_from and query.start.day != 1:
            raise UsageError(f"start: beyond the daily window ({daily_from}) a MONTHLY start must be the 1st of a month")
        pieces.append((query, query.start, query.end))
    elif query.start < daily_from:
        if query.start < monthly_from:
            raise UsageError(
                f"start: data reaches back {monthly_history_months} months (to {monthly_from}), got {query.start}"
            )
        if query.start.day != 1:
            raise UsageError(
                f"start: {query.start} is before the {daily_history_months}-month DAILY window "
                f"(earliest {daily_from}); the part before it is fetched MONTHLY, which needs a "
                "first-of-month start"
            )
        monthly_end = min(daily_from, query.end)
        if monthly_end.day != 1 and monthly_end != query.end:  # pragma: no cover - daily_from is a 1st
            raise UsageError("end: MONTHLY part must end on the 1st of a month")
        monthly = query.model_copy(update={"granularity": "MONTHLY"})
        pieces.append((monthly, query.start, monthly_end))
        if query.end > daily_from:
            pieces.append((query, daily_from, query.end))
    else:
        pieces.append((query, query.start, query.end))

    total_days = (query.end - query.start).days
    # Enough units for the chains the rate and the latency need (a chain is sequential), but no more than the
    # data pays for: every unit ends in a partly filled page, i.e. one more $0.01 request. Targets and sibling
    # datasets run their own chains side by side, so they count towards that.
    share = len(targets) * max(1, sibling_queries)
    units: list[WorkUnit] = []
    for q, s, e in pieces:
        if q.granularity == "MONTHLY":
            win: str = "month"
        elif window == "auto":
            density = (pages_per_day or {}).get(q.fingerprint)
            # the latency's chain count only where the data is known to pay for the splits it takes
            want = max(1, math.ceil(chains_wanted(max_concurrency, max_rps if density is not None else None,
                                                  latency_s) / share))
            win = _auto_window(query.start, min(query.end, add_months(today, 2)), want, density)
            if density is not None:
                slots = max(1, max_concurrency // max(1, sibling_queries)) - len(fixed)
                win = _whole_rounds(s, min(e, add_months(today, 2)), win, slots)
        else:
            win = window
        # a unit starting after today would bring nothing; the split stops well past today's unit (whose own
        # end is kept), so a far end (year 9999) costs no time
        stop = min(e, add_months(today, 2))
        windows = _split(s, stop, win)
        if fixed and q.granularity != "MONTHLY":
            windows = _cut(windows, fixed)
        for target in targets:
            units.extend(WorkUnit(target, q.fingerprint, ws, we, q) for ws, we in windows if ws <= today)
    units.sort()
    if shard is not None:
        units = [u for i, u in enumerate(units) if i % shard.count == shard.index - 1]
    expected = expected_requests(units, pages_per_day)
    ident = {
        "query": query.identity_json(),
        "targets": sorted(targets),
        "window": window,
        "shard": str(shard) if shard else None,
        "today_daily_from": daily_from.isoformat(),
        "total_days": total_days,
    }
    plan_id = hashlib.sha256(orjson.dumps(ident, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    return Plan(tuple(units), shard, len(units), expected, plan_id)


def expected_requests(units: Iterable[WorkUnit], pages_per_day: dict[str, float] | None) -> int:
    """At least one request per unit; more where earlier runs of the dataset needed more pages per day."""
    ppd = pages_per_day or {}
    return sum(max(1, math.ceil(ppd.get(u.dataset, 0.0) * u.days)) for u in units)


def describe_units(units: Iterable[WorkUnit]) -> list[dict[str, str]]:
    return [
        {"target": u.target, "dataset": u.dataset, "granularity": u.query.granularity,
         "start": u.start.isoformat(), "end": u.end.isoformat()}
        for u in units
    ]


@dataclass
class Density:
    """What a probe learnt of one target's data: groups per day near each end of the range and the page size.

    Cost Explorer pages a query's groups as one flat list over its periods (the emulator does; inferred for
    AWS, whose page size is undocumented), so a unit of ``d`` days costs about ``ceil(groups per day x d /
    page size)`` requests. The groups per day move with the fleet, so they are interpolated linearly between
    the two ends. A MONTHLY unit has one period holding about one day's groups (the same resources, summed;
    inferred), so it costs ``ceil(groups per day / page size)``.
    """

    #: (day, groups) of every period a probe saw whole
    days: list[tuple[dt.date, int]] = field(default_factory=list)
    #: groups on a page that had a next page: the page size (None: no page was full)
    page_size: int | None = None
    #: the most groups seen on one page: a lower bound for the page size
    largest_page: int = 0
    #: groups seen so far of a period still open (its next page not fetched): a lower bound for a day
    open_groups: dict[str, int] = field(default_factory=dict)

    def add_page(self, groups_by_period: dict[str, int], has_next: bool) -> None:
        """One probed page: its groups per period (in order; the last one continues on the next page when
        ``has_next``)."""
        total = sum(groups_by_period.values())
        self.largest_page = max(self.largest_page, total)
        if has_next and total:
            self.page_size = max(self.page_size or 0, total)
        periods = [(p, n + self.open_groups.pop(p, 0)) for p, n in groups_by_period.items()]
        whole = periods[:-1] if has_next else periods
        self.days.extend((dt.date.fromisoformat(p[:10]), n) for p, n in whole)
        if has_next and periods:
            self.open_groups = {periods[-1][0]: periods[-1][1]}

    def known(self) -> bool:
        """Something was seen: a whole day, or part of one."""
        return bool(self.days or self.open_groups)

    def complete_days(self) -> int:
        return len(self.days)

    def _page(self) -> int:
        return max(1, self.page_size or self.largest_page)

    def groups_on(self, day: dt.date) -> float:
        """Groups per day at ``day``: the line through the two ends seen (the days either side of the widest gap
        between the days seen, each end its mean), flat outside them and when the days seen are close together;
        a lower bound from part of a day when no whole day was seen."""
        if not self.days:  # part of a day only: at least that many
            return float(max(self.open_groups.values(), default=0))
        seen = sorted(self.days)
        gaps = [(b[0] - a[0]).days for a, b in itertools.pairwise(seen)]
        if not gaps or max(gaps) <= 7:
            return sum(n for _, n in seen) / len(seen)
        cut = gaps.index(max(gaps)) + 1
        early, late = seen[:cut], seen[cut:]

        def centre(part: list[tuple[dt.date, int]]) -> tuple[float, float]:
            return (sum(d.toordinal() for d, _ in part) / len(part), sum(n for _, n in part) / len(part))

        (t0, g0), (t1, g1) = centre(early), centre(late)
        t = min(1.0, max(0.0, (day.toordinal() - t0) / (t1 - t0)))
        return g0 + (g1 - g0) * t

    def pages(self, unit: WorkUnit) -> int:
        """The requests ``unit`` is expected to take (at least one)."""
        if unit.query.granularity == "MONTHLY":
            return max(1, math.ceil(self.groups_on(unit.start + dt.timedelta(days=14)) / self._page()))
        total = sum(self.groups_on(unit.start + dt.timedelta(days=i)) for i in range(unit.days))
        return max(1, math.ceil(total / self._page()))

    def pages_per_day(self, start: dt.date, end: dt.date) -> float:
        """The mean pages per day over ``[start, end)`` (what the planner sizes windows with)."""
        days = max(1, (end - start).days)
        mid = start + dt.timedelta(days=days // 2)
        return self.groups_on(mid) / self._page()
