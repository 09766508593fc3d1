"""GetCostAndUsage and GetCostAndUsageWithResources over the synthetic fleet: request rules, filters, grouping,
periods, pages, truth.

Pure computation, no I/O: :mod:`dbcost.emulator.server` wraps it in HTTP. Kept apart so that the
ground truth a test asks for and the pages a client receives come from *one* computed
:class:`CostResult`: a page is a slice of it, the truth is a sum over it of exactly the amounts a page
would carry (per-group, per-period values at the wire's ten decimal places), so a perfect client's
totals and the truth can be compared to the cent with ``==``.

Malformed groups are chosen here too, from a hash of ``(seed, granularity, period start, group keys)``:
the same group is malformed in every window, page size and retry that contains it, which is what lets a
test compare two windowings, and what makes the truth's ``malformed_groups`` a fact rather than a
statistic.

The two operations are one code path (an operation table, :data:`OPERATIONS`): GetCostAndUsageWithResources
aggregates the fleet's *resource lines* (:attr:`Fleet.resource_lines`, each billing line split exactly over
its resources) instead of its billing lines, accepts the ``RESOURCE_ID`` dimension, and has its own rules, the
service's: ``Filter`` required; DAILY (HOURLY only when the Filter restricts SERVICE to EC2 instances, the one
service with hourly resource-level data; MONTHLY never); the start no earlier than 14 days before today.
``RESOURCE_ID`` on GetCostAndUsage is the service's ``Dimension RESOURCE_ID is not allowed.``
"""

from __future__ import annotations

import datetime as dt
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from dbcost.calendar import RESTATEMENT_GRACE_DAYS
from dbcost.calendar import restatement_start as calendar_restatement_start
from dbcost.emulator.errors import validation
from dbcost.emulator.fleet import (
    COST_METRICS,
    F_COUNT,
    F_USQ,
    F_USUM,
    FIELD_BITS,
    FIELD_MASK,
    METRIC_INDEX,
    METRICS,
    N_FIELDS,
    Day,
    Fleet,
    Line,
    month_add,
    pack,
    units_to_str,
    unpack,
)
from dbcost.emulator.fleet import (
    _digest as digest,
)

__all__ = [
    "COST_AND_USAGE",
    "DIMENSIONS",
    "MALFORMATIONS",
    "OPERATIONS",
    "RESOURCE_DAYS",
    "RESOURCE_DIMENSIONS",
    "WITH_RESOURCES",
    "CostRequest",
    "CostResult",
    "Engine",
    "GroupDef",
    "compile_filter",
    "make_request",
    "malformation",
    "parse_cost_request",
    "render_page",
    "resource_truth",
    "truth",
    "truth_for",
    "truth_of",
]

#: Dimensions this emulator knows (GroupBy and Filter); others are refused with a ValidationException.
DIMENSIONS: Final[Mapping[str, Callable[[Line], str]]] = {
    "SERVICE": lambda line: line.service,
    "USAGE_TYPE": lambda line: line.usage_type,
    "LINKED_ACCOUNT": lambda line: line.account,
    "REGION": lambda line: line.region,
    "RECORD_TYPE": lambda line: line.record_type,
}
#: The operations served from the fleet's records: name -> their GroupBy/Filter dimensions.
COST_AND_USAGE: Final = "GetCostAndUsage"
WITH_RESOURCES: Final = "GetCostAndUsageWithResources"
RESOURCE_DIMENSIONS: Final[Mapping[str, Callable[[Line], str]]] = {
    **DIMENSIONS, "RESOURCE_ID": lambda line: line.resource_id,
}
OPERATIONS: Final[Mapping[str, Mapping[str, Callable[[Line], str]]]] = {
    COST_AND_USAGE: DIMENSIONS,
    WITH_RESOURCES: RESOURCE_DIMENSIONS,
}
#: resource-level data: the last 14 days
RESOURCE_DAYS: Final = 14
#: the SERVICE value of EC2 instances, the only service with HOURLY resource-level data
EC2_INSTANCES: Final = "Amazon Elastic Compute Cloud - Compute"
#: Malformation kinds, rotated per group by hash.
MALFORMATIONS: Final[tuple[str, ...]] = ("nan", "locale", "empty", "no-unit", "no-metrics", "key-count")

HOURLY_DAYS: Final = 14
DAILY_MONTHS: Final = 13
MONTHLY_MONTHS: Final = 38
MAX_PERIODS: Final = 20_000

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INSTANT_RE = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})Z")
_MATCH_DIM: Final = frozenset({"EQUALS", "CASE_SENSITIVE", "CASE_INSENSITIVE", "STARTS_WITH", "ENDS_WITH",
                               "CONTAINS"})
_MATCH_TAG: Final = _MATCH_DIM | {"ABSENT"}
_COUNTER_SHIFT: Final = F_COUNT * FIELD_BITS
_METRIC_MASK: Final = (1 << _COUNTER_SHIFT) - 1


# ---------------------------------------------------------------------------------------------- dates


def parse_date(value: object, field: str) -> dt.date:
    """A ``YYYY-MM-DD`` date, or a ValidationException naming the field."""
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise validation(f"{field}: {value!r} is not a valid date; expected YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise validation(f"{field}: {value!r} is not a valid calendar date") from None


def parse_instant(value: object, field: str) -> dt.datetime:
    """``YYYY-MM-DDThh:mm:ssZ`` on a whole hour (or a bare date, meaning midnight), for HOURLY."""
    if isinstance(value, str) and _DATE_RE.fullmatch(value):
        return dt.datetime.combine(parse_date(value, field), dt.time())
    m = _INSTANT_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise validation(f"{field}: {value!r} is not a valid time; expected YYYY-MM-DDThh:mm:ssZ")
    day = parse_date(m.group(1), field)
    hh, mm, ss = int(m.group(2)), int(m.group(3)), int(m.group(4))
    if hh > 23 or mm or ss:
        raise validation(f"{field}: {value!r} must be on a whole hour for HOURLY granularity")
    return dt.datetime.combine(day, dt.time(hh))


def restatement_start(today: dt.date, estimated_through_day: int = RESTATEMENT_GRACE_DAYS) -> dt.date:
    """The first day whose amounts still move (and are served ``Estimated``): the first of the month before
    today's month through its ``estimated_through_day``-th day, then the first of today's month. It is the
    client's restatement window (:func:`dbcost.calendar.restatement_start`) with the emulator's own day, so a
    month the emulator calls final never changes again."""
    return calendar_restatement_start(today, estimated_through_day)


# -------------------------------------------------------------------------------------------- filters

Predicate = Callable[[Line], bool]


def _values_matcher(spec: Mapping[str, Any], path: str, allowed: frozenset[str]) -> tuple[
    list[str], set[str], Callable[[str], bool]
]:
    values = spec.get("Values", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise validation(f"{path}.Values must be a list of strings")
    options = spec.get("MatchOptions") or []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise validation(f"{path}.MatchOptions must be a list of strings")
    opts = set(options)
    bad = opts - allowed
    if bad:
        raise validation(f"{path}.MatchOptions: {', '.join(sorted(bad))} not supported here")
    fold = "CASE_INSENSITIVE" in opts
    wanted = [v.lower() for v in values] if fold else list(values)
    if "STARTS_WITH" in opts:
        def test(v: str) -> bool:
            v = v.lower() if fold else v
            return any(v.startswith(w) for w in wanted)
    elif "ENDS_WITH" in opts:
        def test(v: str) -> bool:
            v = v.lower() if fold else v
            return any(v.endswith(w) for w in wanted)
    elif "CONTAINS" in opts:
        def test(v: str) -> bool:
            v = v.lower() if fold else v
            return any(w in v for w in wanted)
    else:
        exact = frozenset(wanted)

        def test(v: str) -> bool:
            return (v.lower() if fold else v) in exact
    return values, opts, test


def compile_filter(expr: object, path: str = "Filter",
                   dimensions: Mapping[str, Callable[[Line], str]] = DIMENSIONS) -> Predicate:
    """A Cost Explorer ``Expression`` as a predicate over fleet lines (exactly one root per expression), with the
    dimensions of the operation it is for."""
    if not isinstance(expr, Mapping):
        raise validation(f"{path} must be an object")
    known = ("And", "Or", "Not", "Dimensions", "Tags", "CostCategories")
    unknown = sorted(set(expr) - set(known))
    if unknown:
        raise validation(f"{path}: unknown field {unknown[0]!r}")
    roots = [k for k in known if expr.get(k) is not None]
    if len(roots) != 1:
        raise validation(
            f"{path}: an expression must have exactly one root operator (And, Or, Not, Dimensions, Tags, "
            f"CostCategories); found {', '.join(roots) or 'none'}"
        )
    root = roots[0]
    body = expr[root]
    if root in ("And", "Or"):
        if not isinstance(body, list) or len(body) < 2:
            raise validation(f"{path}.{root} needs a list of at least two expressions")
        parts = [compile_filter(e, f"{path}.{root}[{i}]", dimensions) for i, e in enumerate(body)]
        if root == "And":
            return lambda line: all(p(line) for p in parts)
        return lambda line: any(p(line) for p in parts)
    if root == "Not":
        if _mentions_service(body):
            raise validation(f"{path}.Not: the SERVICE dimension cannot be used inside Not")
        inner = compile_filter(body, f"{path}.Not", dimensions)
        return lambda line: not inner(line)
    if root == "CostCategories":
        raise validation(f"{path}.CostCategories: no cost categories are defined in this account")
    if not isinstance(body, Mapping):
        raise validation(f"{path}.{root} must be an object")
    key = body.get("Key")
    if not isinstance(key, str) or not key:
        raise validation(f"{path}.{root}.Key is required")
    if root == "Dimensions":
        getter = dimensions.get(key)
        if getter is None:
            if key in RESOURCE_DIMENSIONS:  # the service's own words (aws/aws-sdk#700)
                raise validation(f"Dimension {key} is not allowed.")
            raise validation(
                f"{path}.Dimensions.Key {key!r} is not supported; use one of {', '.join(sorted(dimensions))}"
            )
        values, _opts, test = _values_matcher(body, f"{path}.Dimensions", _MATCH_DIM)
        if not values:
            raise validation(f"{path}.Dimensions.Values must not be empty")
        return lambda line: test(getter(line))
    # Tags
    values, opts, test = _values_matcher(body, f"{path}.Tags", _MATCH_TAG)
    absent = "ABSENT" in opts or "" in values
    present_values = [v for v in values if v]
    any_value = not values and "ABSENT" not in opts

    def tag_pred(line: Line) -> bool:
        v = line.tags.get(key)
        if v is None or v == "":
            return absent
        return any_value or (bool(present_values) and test(v))

    return tag_pred


def _mentions_service(expr: object) -> bool:
    if not isinstance(expr, Mapping):
        return False
    dims = expr.get("Dimensions")
    if isinstance(dims, Mapping) and dims.get("Key") == "SERVICE":
        return True
    children: list[object] = []
    for k in ("And", "Or"):
        if isinstance(expr.get(k), list):
            children.extend(expr[k])
    if expr.get("Not") is not None:
        children.append(expr["Not"])
    return any(_mentions_service(c) for c in children)


# ------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class GroupDef:
    """One GroupBy entry."""

    type: str
    key: str

    @property
    def column(self) -> str:
        """The key name a client gives it: ``SERVICE`` or ``TAG:team``."""
        return self.key if self.type == "DIMENSION" else f"{self.type}:{self.key}"

    def to_api(self) -> dict[str, str]:
        return {"Type": self.type, "Key": self.key}

    def key_of(self) -> Callable[[Line], str]:
        if self.type == "DIMENSION":
            return RESOURCE_DIMENSIONS[self.key]
        tag = self.key
        prefix = f"{tag}$"
        return lambda line: prefix + line.tags.get(tag, "")


@dataclass(frozen=True, slots=True)
class CostRequest:
    """A parsed GetCostAndUsage request (dates as naive UTC datetimes; midnight unless HOURLY)."""

    granularity: str
    start: dt.datetime
    end: dt.datetime
    metrics: tuple[str, ...]
    group_by: tuple[GroupDef, ...]
    filter: Predicate | None
    #: identity of the aggregation: everything but the metrics (all metrics are computed anyway)
    fingerprint: str
    #: GetCostAndUsage (billing lines) or GetCostAndUsageWithResources (resource lines)
    operation: str = COST_AND_USAGE

    @property
    def by_resource(self) -> bool:
        """True when the request aggregates the fleet's resource lines."""
        return self.operation == WITH_RESOURCES


def parse_group_by(raw: object, dimensions: Mapping[str, Callable[[Line], str]] = DIMENSIONS
                   ) -> tuple[GroupDef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise validation("GroupBy must be a list")
    if len(raw) > 2:
        raise validation(f"GroupBy accepts at most two entries (DIMENSION or TAG); got {len(raw)}")
    out: list[GroupDef] = []
    for i, g in enumerate(raw):
        if not isinstance(g, Mapping):
            raise validation(f"GroupBy[{i}] must be an object with Type and Key")
        gtype, key = g.get("Type"), g.get("Key")
        if not isinstance(key, str) or not key:
            raise validation(f"GroupBy[{i}].Key is required")
        if gtype == "DIMENSION":
            if key not in dimensions:
                if key in RESOURCE_DIMENSIONS:
                    raise validation(f"Dimension {key} is not allowed.")
                raise validation(
                    f"GroupBy[{i}]: dimension {key!r} is not supported for grouping here; "
                    f"use one of {', '.join(sorted(dimensions))}"
                )
        elif gtype == "TAG":
            if "$" in key:
                raise validation(f"GroupBy[{i}]: tag key {key!r} must not contain '$'")
        elif gtype == "COST_CATEGORY":
            raise validation(f"GroupBy[{i}]: cost category {key!r} does not exist in this account")
        else:
            raise validation(f"GroupBy[{i}].Type must be DIMENSION, TAG or COST_CATEGORY; got {gtype!r}")
        gd = GroupDef(gtype, key)
        if gd in out:
            raise validation(f"GroupBy[{i}] repeats {gtype} {key}")
        out.append(gd)
    return tuple(out)


def parse_metrics(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise validation("Metrics must be a non-empty list")
    out: list[str] = []
    for name in raw:
        if not isinstance(name, str) or name not in METRIC_INDEX:
            raise validation(f"Metrics: {name!r} is not a valid metric; use one of {', '.join(METRICS)}")
        if name not in out:
            out.append(name)
    return tuple(out)


def parse_cost_request(body: Mapping[str, Any], *, today: dt.date, check_dates: bool = True,
                       operation: str = COST_AND_USAGE) -> CostRequest:
    """Validate a GetCostAndUsage (or ``operation``) body; every broken rule is a ``ValidationException``."""
    dimensions = OPERATIONS[operation]
    gran = body.get("Granularity")
    if gran not in ("DAILY", "MONTHLY", "HOURLY"):
        raise validation(f"Granularity must be DAILY, MONTHLY or HOURLY; got {gran!r}")
    if operation == WITH_RESOURCES:
        _check_with_resources(body, gran)
    tp = body.get("TimePeriod")
    if not isinstance(tp, Mapping):
        raise validation("TimePeriod with Start and End is required")
    if gran == "HOURLY":
        start = parse_instant(tp.get("Start"), "TimePeriod.Start")
        end = parse_instant(tp.get("End"), "TimePeriod.End")
    else:
        start = dt.datetime.combine(parse_date(tp.get("Start"), "TimePeriod.Start"), dt.time())
        end = dt.datetime.combine(parse_date(tp.get("End"), "TimePeriod.End"), dt.time())
    metrics = parse_metrics(body.get("Metrics"))
    group_by = parse_group_by(body.get("GroupBy"), dimensions)
    raw_filter = body.get("Filter")
    if start >= end:
        raise validation("Start date (and hour) should be before end date (and hour)")
    if check_dates:
        check_date_rules(gran, start, end, today)
        if operation == WITH_RESOURCES:
            earliest = dt.datetime.combine(today - dt.timedelta(days=RESOURCE_DAYS), dt.time())
            if start < earliest:
                # the service's words, for DAILY too (aws/aws-sdk-net#1773); the window is resource-level data's
                raise validation(
                    "start date is too old for hourly, the max supported days for hourly granularity is 14 days "
                    f"(resource-level data starts {earliest.date().isoformat()})"
                )
    periods = _period_count(gran, start, end)
    if periods > MAX_PERIODS:
        raise validation(f"the request spans {periods} {gran} periods; the emulator serves at most {MAX_PERIODS}")
    return make_request(gran, start, end, metrics, group_by, raw_filter, operation=operation)


def _check_with_resources(body: Mapping[str, Any], gran: object) -> None:
    """GetCostAndUsageWithResources' own rules: a Filter, and DAILY (HOURLY for EC2 instances only)."""
    if body.get("Filter") is None:
        raise validation("Filter is required for GetCostAndUsageWithResources")
    if gran == "MONTHLY":
        # inferred wording: the service serves resource-level data DAILY (and HOURLY for EC2) only
        raise validation("MONTHLY granularity is not supported for resource-level data; use DAILY")
    if gran == "HOURLY" and not _restricts_service(body["Filter"], EC2_INSTANCES):
        # the service's words (aws/aws-sdk#590); hourly resource-level data exists for EC2 instances only
        raise validation(
            "Hourly timePeriod is not supported for this request: hourly resource-level data exists for "
            f"{EC2_INSTANCES!r} only; the Filter must restrict SERVICE to it"
        )


def _restricts_service(expr: object, service: str) -> bool:
    """True when every line the filter admits has SERVICE ``service``: a SERVICE dimension naming only it, alone
    or as one operand of an And."""
    if not isinstance(expr, Mapping):
        return False
    dims = expr.get("Dimensions")
    if isinstance(dims, Mapping) and dims.get("Key") == "SERVICE":
        values = dims.get("Values")
        return isinstance(values, list) and bool(values) and all(v == service for v in values) and not (
            set(dims.get("MatchOptions") or []) - {"EQUALS", "CASE_SENSITIVE"})
    operands = expr.get("And")
    return isinstance(operands, list) and any(_restricts_service(e, service) for e in operands)


def make_request(
    granularity: str,
    start: dt.datetime,
    end: dt.datetime,
    metrics: tuple[str, ...],
    group_by: tuple[GroupDef, ...],
    raw_filter: object,
    *,
    operation: str = COST_AND_USAGE,
) -> CostRequest:
    """A :class:`CostRequest` from parts already checked (the filter is compiled here)."""
    predicate = compile_filter(raw_filter, dimensions=OPERATIONS[operation]) if raw_filter is not None else None
    parts: list[Any] = [granularity, start.isoformat(), end.isoformat(), [g.to_api() for g in group_by], raw_filter]
    if operation != COST_AND_USAGE:  # GetCostAndUsage's cache keys stay what they were
        parts.append(operation)
    fingerprint = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS).decode()
    return CostRequest(granularity, start, end, metrics, group_by, predicate, fingerprint, operation)


def check_date_rules(gran: str, start: dt.datetime, end: dt.datetime, today: dt.date) -> None:
    """Cost Explorer's history windows, as the service enforces them."""
    earliest_daily = month_add(today, -DAILY_MONTHS)
    earliest_monthly = month_add(today, -MONTHLY_MONTHS)
    s = start.date()
    if gran == "DAILY" and s < earliest_daily:
        raise validation(
            f"DAILY data is available from {earliest_daily.isoformat()} (13 months before the current month); "
            f"start {s.isoformat()} is too old"
        )
    if gran == "MONTHLY":
        if s < earliest_monthly:
            raise validation(
                f"MONTHLY data is available from {earliest_monthly.isoformat()} (38 months); "
                f"start {s.isoformat()} is too old"
            )
        if s < earliest_daily and s.day != 1:
            raise validation(
                f"a MONTHLY start before {earliest_daily.isoformat()} must be the first day of a month; "
                f"got {s.isoformat()}"
            )
    if gran == "HOURLY":
        earliest_hourly = dt.datetime.combine(today - dt.timedelta(days=HOURLY_DAYS), dt.time())
        if start < earliest_hourly:
            raise validation(
                f"HOURLY data is available for the last {HOURLY_DAYS} days only (from "
                f"{earliest_hourly.date().isoformat()}); start {start.isoformat()}Z is too old"
            )
        if end - start > dt.timedelta(days=HOURLY_DAYS):
            raise validation(f"an HOURLY request may span at most {HOURLY_DAYS} days")


def _period_count(gran: str, start: dt.datetime, end: dt.datetime) -> int:
    if gran == "HOURLY":
        return int((end - start).total_seconds() // 3600)
    if gran == "DAILY":
        return (end.date() - start.date()).days
    return (end.year * 12 + end.month) - (start.year * 12 + start.month) + 1


# -------------------------------------------------------------------------------------------- periods


@dataclass(frozen=True, slots=True)
class Period:
    """One entry of ResultsByTime: its wire labels and the fleet days whose data it holds."""

    start: str
    end: str
    days: tuple[dt.date, ...]
    hour: int | None
    estimated: bool


def build_periods(req: CostRequest, today: dt.date,
                  estimated_through_day: int = RESTATEMENT_GRACE_DAYS) -> list[Period]:
    """The periods of a request; data exists only for days before ``today``. A period is ``Estimated`` from
    :func:`restatement_start` on: the open month, and the previous month until its data is final (through the
    ``estimated_through_day``-th day of the new month), as Cost Explorer keeps it estimated until about the 5th."""
    estimated_from = restatement_start(today, estimated_through_day)
    out: list[Period] = []
    if req.granularity == "HOURLY":
        t = req.start
        while t < req.end:
            nxt = t + dt.timedelta(hours=1)
            day = t.date()
            out.append(
                Period(
                    f"{t.isoformat()}Z",
                    f"{nxt.isoformat()}Z",
                    (day,) if day < today else (),
                    t.hour,
                    day >= estimated_from,
                )
            )
            t = nxt
        return out
    end_day = req.end.date()
    cur = req.start.date()
    while cur < end_day:
        after = cur + dt.timedelta(days=1) if req.granularity == "DAILY" else min(month_add(cur, 1), end_day)
        last = min(after, today)
        days = tuple(dt.date.fromordinal(o) for o in range(cur.toordinal(), last.toordinal()))
        out.append(Period(cur.isoformat(), after.isoformat(), days, None, cur >= estimated_from))
        cur = after
    return out


# ------------------------------------------------------------------------------------------- results


@dataclass(slots=True)
class PeriodResult:
    period: Period
    #: (group key strings, packed sums), sorted by keys; without GroupBy: one ``((), packed)`` entry
    groups: list[tuple[tuple[str, ...], int]]


@dataclass(slots=True)
class CostResult:
    """Every period and group of one request at one data version: what pages are cut from."""

    request: CostRequest
    periods: list[PeriodResult]
    offsets: list[int]
    total_groups: int
    units: tuple[str, ...]

    @property
    def grouped(self) -> bool:
        return bool(self.request.group_by)


class Engine:
    """Aggregates the fleet for requests, with a bounded cache of results per (request, version, today and
    the day the previous month becomes final: :attr:`estimated_through_day`, which the server keeps equal to its
    configuration's)."""

    def __init__(self, fleet: Fleet, *, cache_size: int = 64,
                 estimated_through_day: int = RESTATEMENT_GRACE_DAYS) -> None:
        self.fleet = fleet
        self.estimated_through_day = estimated_through_day
        self._results: OrderedDict[tuple[str, int, dt.date, int], CostResult] = OrderedDict()
        self._cache_size = cache_size

    def keymap(self, req: CostRequest) -> list[tuple[str, ...] | None]:
        """For each fleet line: its group keys, or ``None`` when the filter drops it."""
        getters = [g.key_of() for g in req.group_by]
        pred = req.filter
        out: list[tuple[str, ...] | None] = []
        for line in self.fleet.resource_lines if req.by_resource else self.fleet.lines:
            if pred is not None and not pred(line):
                out.append(None)
            else:
                out.append(tuple(g(line) for g in getters))
        return out

    def cost_and_usage(self, req: CostRequest, *, today: dt.date, version: int) -> CostResult:
        key = (req.fingerprint, version, today, self.estimated_through_day)
        cached = self._results.get(key)
        if cached is not None:
            self._results.move_to_end(key)
            return cached
        result = self._compute(req, today=today, version=version)
        self._results[key] = result
        while len(self._results) > self._cache_size:
            self._results.popitem(last=False)
        return result

    def _items(self, req: CostRequest) -> Callable[[dt.date, int], Day]:
        """Where a request's daily items come from: billing lines, or resource lines."""
        return self.fleet.resource_day if req.by_resource else self.fleet.day

    def _day_sums(
        self, days: Sequence[dt.date], keymap: list[tuple[str, ...] | None], today: dt.date, version: int,
        items: Callable[[dt.date, int], Day],
    ) -> dict[tuple[str, ...], int]:
        acc: dict[tuple[str, ...], int] = {}
        restated_from = restatement_start(today, self.estimated_through_day)
        get = acc.get
        for day in days:
            d = items(day, version if day >= restated_from else 0)
            for tid, p in zip(d.tids, d.packed, strict=True):
                k = keymap[tid]
                if k is not None:
                    acc[k] = get(k, 0) + p
        return acc

    def _hour_sums(
        self, day: dt.date, keymap: list[tuple[str, ...] | None], today: dt.date, version: int,
        items: Callable[[dt.date, int], Day],
    ) -> list[dict[tuple[str, ...], int]]:
        """24 hourly sums of one day: each item split in 24 parts, the remainder in the last hour."""
        d = items(day, version if day >= restatement_start(today, self.estimated_through_day) else 0)
        total: dict[tuple[str, ...], int] = {}
        floor: dict[tuple[str, ...], int] = {}
        for tid, p in zip(d.tids, d.packed, strict=True):
            k = keymap[tid]
            if k is None:
                continue
            total[k] = total.get(k, 0) + p
            floor[k] = floor.get(k, 0) + _floor24(p)
        last: dict[tuple[str, ...], int] = {}
        for k, t in total.items():
            tf, ff = unpack(t), unpack(floor[k])
            fields = [tf[i] - 23 * ff[i] for i in range(F_COUNT)] + ff[F_COUNT:]
            last[k] = pack(fields)
        return [floor] * 23 + [last]

    def _compute(self, req: CostRequest, *, today: dt.date, version: int) -> CostResult:
        keymap = self.keymap(req)
        items = self._items(req)
        periods = build_periods(req, today, self.estimated_through_day)
        results: list[PeriodResult] = []
        hourly_cache: dict[dt.date, list[dict[tuple[str, ...], int]]] = {}
        for period in periods:
            if period.hour is not None:
                if not period.days:
                    sums: dict[tuple[str, ...], int] = {}
                else:
                    day = period.days[0]
                    if day not in hourly_cache:
                        hourly_cache[day] = self._hour_sums(day, keymap, today, version, items)
                    sums = hourly_cache[day][period.hour]
            else:
                sums = self._day_sums(period.days, keymap, today, version, items)
            no_keys: tuple[str, ...] = ()
            groups = sorted(sums.items()) if req.group_by else [(no_keys, sums.get(no_keys, 0))]
            results.append(PeriodResult(period, groups))
        offsets: list[int] = []
        pos = 0
        for r in results:
            offsets.append(pos)
            if req.group_by:
                pos += len(r.groups)
        return CostResult(req, results, offsets, pos, self.fleet.units)


def _floor24(p: int) -> int:
    f = unpack(p)
    for i in range(F_COUNT):
        f[i] //= 24
    return pack(f)


# ----------------------------------------------------------------------------------------- rendering


def unit_of(fields: Sequence[int], units: Sequence[str]) -> str:
    """The usage unit shared by every item of a group, else ``N/A``."""
    n, s, q = fields[F_COUNT], fields[F_USUM], fields[F_USQ]
    if n and n * q == s * s:
        return units[s // n - 1]
    return "N/A"


def metric_values(packed: int, metrics: Sequence[str], units: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{"UnblendedCost": {"Amount": "12.5", "Unit": "USD"}, ...}`` for one group or Total."""
    fields = [(packed >> (FIELD_BITS * i)) & FIELD_MASK for i in range(N_FIELDS)]
    out: dict[str, dict[str, str]] = {}
    for m in metrics:
        amount = units_to_str(fields[METRIC_INDEX[m]])
        if m in COST_METRICS:
            unit = "USD"
        elif m == "UsageQuantity":
            unit = unit_of(fields, units)
        else:
            unit = "N/A"
        out[m] = {"Amount": amount, "Unit": unit}
    return out


def malformation(seed: int, rate: float, granularity: str, period_start: str, keys: Sequence[str]) -> str | None:
    """Which malformation (if any) this group gets: a pure function of its identity, not of the request."""
    if rate <= 0:
        return None
    h = digest("\x1f".join([str(seed), "malformed", granularity, period_start, *keys]).encode())
    if h % 1_000_000 >= int(rate * 1_000_000):
        return None
    return MALFORMATIONS[(h // 1_000_000) % len(MALFORMATIONS)]


def _malform(group: dict[str, Any], kind: str, keys: Sequence[str]) -> None:
    metrics: dict[str, dict[str, str]] = group["Metrics"]
    first = metrics[next(iter(metrics))]
    if kind == "nan":
        first["Amount"] = "NaN"
    elif kind == "locale":
        amount = first["Amount"]
        first["Amount"] = amount.replace(".", ",") if "." in amount else f"{amount},00"
    elif kind == "empty":
        first["Amount"] = ""
    elif kind == "no-unit":
        del first["Unit"]
    elif kind == "no-metrics":
        del group["Metrics"]
    else:  # key-count
        group["Keys"] = [*keys, keys[-1]] if keys else ["?"]


@dataclass(slots=True)
class Page:
    payload: dict[str, Any]
    next_offset: int | None
    groups: int
    malformed: int


def render_page(
    result: CostResult,
    offset: int,
    page_size: int,
    *,
    seed: int,
    malformed_rate: float,
    account_names: Mapping[str, str],
) -> Page:
    """The page that starts at flattened group position ``offset`` (periods in order, groups by keys)."""
    req = result.request
    metrics = req.metrics
    units = result.units
    results_by_time: list[dict[str, Any]] = []
    payload: dict[str, Any] = {}
    if not result.grouped:
        payload["ResultsByTime"] = [
            {
                "TimePeriod": {"Start": pr.period.start, "End": pr.period.end},
                "Total": metric_values(pr.groups[0][1], metrics, units),
                "Groups": [],
                "Estimated": pr.period.estimated,
            }
            for pr in result.periods
        ]
        payload["DimensionValueAttributes"] = []
        return Page(payload, None, 0, 0)

    stop = offset + page_size
    total = result.total_groups
    is_last = stop >= total
    served = malformed = 0
    accounts: set[str] = set()
    account_col = next((i for i, g in enumerate(req.group_by) if g.type == "DIMENSION"
                        and g.key == "LINKED_ACCOUNT"), None)
    for pr, s in zip(result.periods, result.offsets, strict=True):
        n = len(pr.groups)
        if n == 0:
            if not (offset <= s < stop or (is_last and s >= offset)):
                continue
            chosen: list[tuple[tuple[str, ...], int]] = []
        else:
            if s >= stop or s + n <= offset:
                continue
            chosen = pr.groups[max(s, offset) - s : min(s + n, stop) - s]
        groups: list[dict[str, Any]] = []
        for keys, packed in chosen:
            group: dict[str, Any] = {"Keys": list(keys), "Metrics": metric_values(packed, metrics, units)}
            kind = malformation(seed, malformed_rate, req.granularity, pr.period.start, keys)
            if kind is not None:
                _malform(group, kind, keys)
                malformed += 1
            groups.append(group)
            if account_col is not None:
                accounts.add(keys[account_col])
        served += len(groups)
        results_by_time.append(
            {
                "TimePeriod": {"Start": pr.period.start, "End": pr.period.end},
                "Total": {},
                "Groups": groups,
                "Estimated": pr.period.estimated,
            }
        )
    payload["GroupDefinitions"] = [g.to_api() for g in req.group_by]
    payload["ResultsByTime"] = results_by_time
    payload["DimensionValueAttributes"] = [
        {"Value": a, "Attributes": {"description": account_names.get(a, a)}} for a in sorted(accounts)
    ]
    return Page(payload, None if is_last else stop, served, malformed)


# --------------------------------------------------------------------------------------------- truth


def truth_of(result: CostResult, *, seed: int, malformed_rate: float) -> dict[str, Any]:
    """What a perfect client ends up with for this result: sums of the served per-group amounts.

    Amounts are summed as the exact 10⁻¹⁰ integers a page carries (each group's wire string is a
    lossless rendering of that integer), split into valid and malformed groups.
    """
    req = result.request
    metrics = req.metrics
    idx = [METRIC_INDEX[m] for m in metrics]
    valid_total = 0
    bad_total = 0
    n_valid = n_bad = 0
    by_keys: dict[tuple[str, ...], int] = {}
    by_period: list[dict[str, Any]] = []
    for pr in result.periods:
        period_sum = 0
        for keys, packed in pr.groups:
            p = packed & _METRIC_MASK
            if result.grouped and malformation(seed, malformed_rate, req.granularity, pr.period.start, keys):
                bad_total += p
                n_bad += 1
                continue
            period_sum += p
            n_valid += 1
            by_keys[keys] = by_keys.get(keys, 0) + p
        valid_total += period_sum
        by_period.append({"period_start": pr.period.start, "metrics": _amounts(period_sum, metrics, idx)})
    columns = [g.column for g in req.group_by]
    prefixes = [len(g.key) + 1 if g.type != "DIMENSION" else 0 for g in req.group_by]
    return {
        "metrics": _amounts(valid_total, metrics, idx),
        "groups": n_valid,
        "malformed_groups": n_bad,
        "malformed_metrics": _amounts(bad_total, metrics, idx),
        "periods": len(result.periods),
        "by_keys": [
            {
                "keys": {c: k[p:] for c, k, p in zip(columns, keys, prefixes, strict=True)},
                "metrics": _amounts(v, metrics, idx),
            }
            for keys, v in sorted(by_keys.items())
        ],
        "by_period": by_period,
    }


def resource_truth(engine: Engine, req: CostRequest, *, today: dt.date, version: int) -> list[dict[str, Any]]:
    """The exact amount of every resource the request's window and filter cover, whatever its GroupBy and with
    no malformation taken out (what the fleet spent), with each resource's true owner:
    ``[{"resource_id", "kind", "service", "account", "region", "name", "cluster", "team", "env", "engine",
    "billing_tags", "tagged_in_billing", "resource_tags", "orphan", "cluster_resource_id", "instance_class", "metrics",
    "untagged_metrics", "categories"}]``
    sorted by id. ``untagged_metrics``: the part billed on lines that carry no tag at all (an untagged cluster's
    whole spend; a tagged one's untagged data transfer). ``categories``: metrics per line category (compute,
    storage, io, backup, transfer, other). :data:`NO_RESOURCE_ID` (charges of no resource) has no owner. DAILY
    only: an HOURLY window may cut days."""
    if req.granularity != "DAILY":
        raise ValueError("the per-resource truth is computed for DAILY requests only")
    fleet = engine.fleet
    lines = fleet.resource_lines
    pred = req.filter
    keep = [pred is None or pred(line) for line in lines]
    restated_from = restatement_start(today, engine.estimated_through_day)
    total: dict[str, int] = {}
    untagged: dict[str, int] = {}
    by_category: dict[str, dict[str, int]] = {}
    for period in build_periods(req, today, engine.estimated_through_day):
        for day in period.days:
            d = fleet.resource_day(day, version if day >= restated_from else 0)
            for tid, packed in zip(d.tids, d.packed, strict=True):
                if not keep[tid]:
                    continue
                line = lines[tid]
                rid = line.resource_id
                p = packed & _METRIC_MASK
                total[rid] = total.get(rid, 0) + p
                if not line.tags:
                    untagged[rid] = untagged.get(rid, 0) + p
                cats = by_category.setdefault(rid, {})
                cats[line.category] = cats.get(line.category, 0) + p
    metrics = req.metrics
    idx = [METRIC_INDEX[m] for m in metrics]
    out: list[dict[str, Any]] = []
    for rid in sorted(total):
        res = fleet.resources.get(rid)
        owner: dict[str, Any] = res.to_json() if res is not None else {
            "resource_id": rid, "kind": None, "service": None, "account": None, "region": None, "name": None,
            "cluster": None, "team": None, "env": None, "engine": None, "billing_tags": {},
            "tagged_in_billing": False, "resource_tags": {}, "orphan": False, "cluster_resource_id": None,
            "instance_class": None,
        }
        owner["metrics"] = _amounts(total[rid], metrics, idx)
        owner["untagged_metrics"] = _amounts(untagged.get(rid, 0), metrics, idx)
        owner["categories"] = {c: _amounts(v, metrics, idx) for c, v in sorted(by_category[rid].items())}
        out.append(owner)
    return out


def _amounts(packed: int, metrics: Sequence[str], idx: Sequence[int]) -> dict[str, str]:
    return {m: units_to_str((packed >> (FIELD_BITS * i)) & FIELD_MASK) for m, i in zip(metrics, idx, strict=True)}


def truth(
    fleet: Fleet,
    request: Mapping[str, Any],
    *,
    today: dt.date,
    data_version: int = 0,
    malformed_rate: float = 0.0,
    estimated_through_day: int = RESTATEMENT_GRACE_DAYS,
) -> dict[str, Any]:
    """The ground truth of a GetCostAndUsage body over ``fleet`` (no date rules, no paging, no cache); with
    ``"Operation": "GetCostAndUsageWithResources"`` in the body, of that operation, plus ``resources``
    (:func:`resource_truth`)."""
    engine = Engine(fleet, cache_size=1, estimated_through_day=estimated_through_day)
    return truth_for(engine, request, today=today, version=data_version, malformed_rate=malformed_rate)


def truth_for(engine: Engine, request: Mapping[str, Any], *, today: dt.date, version: int,
              malformed_rate: float) -> dict[str, Any]:
    """The truth of a request body (``Operation`` picks the operation, default GetCostAndUsage) at one data
    version: :func:`truth_of`, and for GetCostAndUsageWithResources ``operation`` and ``resources`` too."""
    body = dict(request)
    operation = body.pop("Operation", COST_AND_USAGE)
    if operation not in OPERATIONS:
        raise ValueError(f"Operation must be one of {', '.join(OPERATIONS)}; got {operation!r}")
    req = parse_cost_request(body, today=today, check_dates=False, operation=operation)
    result = engine.cost_and_usage(req, today=today, version=version)
    out = truth_of(result, seed=engine.fleet.seed, malformed_rate=malformed_rate)
    if operation != COST_AND_USAGE:
        out["operation"] = operation
        # per resource for DAILY only (an HOURLY window may cut days); None says it was not computed
        out["resources"] = (resource_truth(engine, req, today=today, version=version)
                            if req.granularity == "DAILY" else None)
    return out
