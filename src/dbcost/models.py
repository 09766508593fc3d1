"""Data shapes: the validated query, the records it produces, and the raw Cost Explorer page shapes.

* :class:`CostQuery` (pydantic v2, frozen, ``extra="forbid"``) checks every Cost Explorer rule that can be
  checked before a request is sent. :meth:`CostQuery.build` turns CLI-style strings into a query and
  every broken rule into one :class:`~dbcost.errors.QueryError` line that names the field and the rule.
* :class:`CostRecord` (a ``NamedTuple``) and :class:`Quarantined` (a slotted dataclass) are the parser's
  output, not pydantic models: the parser builds hundreds of thousands of them from input it has already
  validated field by field, and a ``BaseModel`` per record costs several times more (mostly in cyclic GC,
  measured in ``bench/bench_parse.py``).
* The ``Raw*`` TypedDicts document the wire shapes (every field optional, as in botocore's model).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple, Self, TypedDict

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dbcost.calendar import HOURLY_MAX_DAYS
from dbcost.errors import QueryError
from dbcost.money import fmt
from dbcost.operations import COST_AND_USAGE, EXTRA_DIMENSIONS, OPERATIONS, Operation

__all__ = [
    "COST_METRICS",
    "FILTER_DIMENSIONS",
    "GROUP_BY_DIMENSIONS",
    "CostQuery",
    "CostRecord",
    "Expression",
    "Granularity",
    "GroupBy",
    "Metric",
    "Quarantined",
    "RawGroup",
    "RawPage",
    "RawResultByTime",
    "parse_group_by",
]

Granularity = Literal["DAILY", "MONTHLY", "HOURLY"]
GroupType = Literal["DIMENSION", "TAG", "COST_CATEGORY"]

#: Metric names GetCostAndUsage accepts (botocore model + the newer billing-view metrics).
COST_METRICS: tuple[str, ...] = (
    "AmortizedCost",
    "BlendedCost",
    "NetAmortizedCost",
    "NetUnblendedCost",
    "NormalizedUsageAmount",
    "UnblendedCost",
    "UsageQuantity",
    "BilledCost",
    "ContractedCost",
    "ListCost",
    "PublicEquivalentBilledCost",
    "PublicOnDemandCost",
)
_METRIC_BY_LOWER = {m.lower(): m for m in COST_METRICS}

#: DIMENSION keys valid in GroupBy (GetCostAndUsage documentation).
GROUP_BY_DIMENSIONS: frozenset[str] = frozenset(
    {
        "AZ",
        "INSTANCE_TYPE",
        "LEGAL_ENTITY_NAME",
        "INVOICING_ENTITY",
        "LINKED_ACCOUNT",
        "OPERATION",
        "PLATFORM",
        "PURCHASE_TYPE",
        "SERVICE",
        "TENANCY",
        "RECORD_TYPE",
        "USAGE_TYPE",
        # REGION is accepted by the service for GroupBy as well, though the documentation list omits it
        "REGION",
    }
)

#: DIMENSION keys valid in a Filter expression (botocore's ``Dimension`` enum).
FILTER_DIMENSIONS: frozenset[str] = frozenset(
    {
        "AZ",
        "INSTANCE_TYPE",
        "LINKED_ACCOUNT",
        "PAYER_ACCOUNT",
        "OPERATION",
        "PURCHASE_TYPE",
        "REGION",
        "SERVICE",
        "USAGE_TYPE",
        "USAGE_TYPE_GROUP",
        "RECORD_TYPE",
        "OPERATING_SYSTEM",
        "TENANCY",
        "SCOPE",
        "PLATFORM",
        "SUBSCRIPTION_ID",
        "LEGAL_ENTITY_NAME",
        "DEPLOYMENT_OPTION",
        "DATABASE_ENGINE",
        "CACHE_ENGINE",
        "INSTANCE_TYPE_FAMILY",
        "BILLING_ENTITY",
        "RESERVATION_ID",
        "RESOURCE_ID",
        "RIGHTSIZING_TYPE",
        "SAVINGS_PLANS_TYPE",
        "SAVINGS_PLAN_ARN",
        "PAYMENT_OPTION",
        "INVOICING_ENTITY",
    }
)

_MATCH_OPTIONS = frozenset(
    {"EQUALS", "ABSENT", "STARTS_WITH", "ENDS_WITH", "CONTAINS", "CASE_SENSITIVE", "CASE_INSENSITIVE",
     "GREATER_THAN_OR_EQUAL"}
)
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


# --------------------------------------------------------------------------------------------- filter


class _Values(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    key: str = Field(alias="Key", min_length=1)
    values: tuple[str, ...] = Field(default=(), alias="Values")
    match_options: tuple[str, ...] | None = Field(default=None, alias="MatchOptions")

    @field_validator("match_options")
    @classmethod
    def _known_options(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for opt in v or ():
            if opt not in _MATCH_OPTIONS:
                raise ValueError(f"unknown MatchOptions value {opt!r}")
        return v


class _DimensionValues(_Values):
    @field_validator("key")
    @classmethod
    def _known_dimension(cls, v: str) -> str:
        if v not in FILTER_DIMENSIONS:
            raise ValueError(f"unknown dimension {v!r}")
        return v


class Expression(BaseModel):
    """A Cost Explorer filter ``Expression``: exactly one root operator per expression."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    and_: tuple[Expression, ...] | None = Field(default=None, alias="And")
    or_: tuple[Expression, ...] | None = Field(default=None, alias="Or")
    not_: Expression | None = Field(default=None, alias="Not")
    dimensions: _DimensionValues | None = Field(default=None, alias="Dimensions")
    tags: _Values | None = Field(default=None, alias="Tags")
    cost_categories: _Values | None = Field(default=None, alias="CostCategories")

    @model_validator(mode="after")
    def _one_root(self) -> Self:
        roots = [
            name
            for name, value in (
                ("And", self.and_),
                ("Or", self.or_),
                ("Not", self.not_),
                ("Dimensions", self.dimensions),
                ("Tags", self.tags),
                ("CostCategories", self.cost_categories),
            )
            if value is not None
        ]
        if len(roots) != 1:
            found = ", ".join(roots) or "none"
            raise ValueError(f"an expression needs exactly one root operator, found {found}")
        for name, group in (("And", self.and_), ("Or", self.or_)):
            if group is not None and len(group) < 2:
                raise ValueError(f"{name} needs at least two expressions")
        if self.not_ is not None and _mentions_service(self.not_):
            raise ValueError("Cost Explorer rejects a SERVICE dimension inside Not")
        return self

    def to_api(self) -> dict[str, Any]:
        """The expression as Cost Explorer expects it (API field names, no empty members)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _dimension_keys(expr: Expression) -> set[str]:
    """Every DIMENSION key the expression names, at any depth."""
    out = {expr.dimensions.key} if expr.dimensions is not None else set()
    for child in (*(expr.and_ or ()), *(expr.or_ or ()), *((expr.not_,) if expr.not_ is not None else ())):
        out |= _dimension_keys(child)
    return out


def _filter_services(expr: Expression | None) -> frozenset[str] | None:
    """The SERVICE values a filter restricts the data to (None: it does not restrict SERVICE).

    A ``Dimensions SERVICE`` leaf matched by equality restricts to its values; ``And`` to the intersection of
    its restricting members; ``Or`` to the union when every member restricts; anything else restricts nothing.
    """
    if expr is None:
        return None
    if expr.dimensions is not None:
        d = expr.dimensions
        if d.key != "SERVICE" or any(o not in ("EQUALS", "CASE_SENSITIVE") for o in d.match_options or ()):
            return None
        return frozenset(d.values)
    if expr.and_ is not None:
        parts = [p for p in (_filter_services(c) for c in expr.and_) if p is not None]
        return frozenset.intersection(*parts) if parts else None
    if expr.or_ is not None:
        alts = [_filter_services(c) for c in expr.or_]
        if any(a is None for a in alts):
            return None
        return frozenset().union(*(a for a in alts if a is not None))
    return None


def _operations_with(dimension: str) -> str:
    return ", ".join(sorted(n for n, op in OPERATIONS.items() if dimension in op.extra_dimensions))


def _mentions_service(expr: Expression) -> bool:
    if expr.dimensions is not None and expr.dimensions.key == "SERVICE":
        return True
    children: list[Expression] = [*(expr.and_ or ()), *(expr.or_ or ())]
    if expr.not_ is not None:
        children.append(expr.not_)
    return any(_mentions_service(c) for c in children)


# -------------------------------------------------------------------------------------------- group by


class GroupBy(BaseModel):
    """One GroupBy entry: a dimension key, a tag key or a cost category name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: GroupType
    key: Annotated[str, Field(min_length=1, max_length=1024)]

    @model_validator(mode="after")
    def _valid_key(self) -> Self:
        # an operation-only dimension (RESOURCE_ID) is a valid key here; CostQuery checks its operation
        if self.type == "DIMENSION" and self.key not in GROUP_BY_DIMENSIONS | EXTRA_DIMENSIONS:
            valid = ", ".join(sorted(GROUP_BY_DIMENSIONS))
            raise ValueError(f"{self.key!r} is not a GroupBy dimension (valid: {valid})")
        if self.type != "DIMENSION" and "$" in self.key:
            raise ValueError(f"{self.type} key {self.key!r} must not contain '$'")
        return self

    @property
    def column(self) -> str:
        """The record key name: ``SERVICE`` for a dimension, ``TAG:team`` for a tag."""
        return self.key if self.type == "DIMENSION" else f"{self.type}:{self.key}"

    def to_api(self) -> dict[str, str]:
        return {"Type": self.type, "Key": self.key}


def parse_group_by(text: str) -> GroupBy:
    """``SERVICE`` -> dimension, ``TAG:team`` -> tag, ``COST_CATEGORY:name`` -> cost category."""
    kind, sep, key = text.partition(":")
    if sep and kind.upper() in ("TAG", "COST_CATEGORY"):
        return GroupBy(type=kind.upper(), key=key)
    return GroupBy(type="DIMENSION", key=text.upper())


# ---------------------------------------------------------------------------------------------- query


class CostQuery(BaseModel):
    """A validated Cost Explorer query of a record-shaped operation (GetCostAndUsage by default, or
    GetCostAndUsageWithResources). ``end`` is exclusive, as in the API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: dt.date
    end: dt.date
    operation: str = COST_AND_USAGE.name
    granularity: Granularity = "DAILY"
    metrics: tuple[str, ...] = ("UnblendedCost",)
    group_by: tuple[GroupBy, ...] = ()
    filter: Expression | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _iso_date(cls, v: object) -> object:
        if isinstance(v, str):
            if not _DATE_RE.fullmatch(v):
                raise ValueError(f"must be a date YYYY-MM-DD, got {v!r}")
            try:
                return dt.date.fromisoformat(v)
            except ValueError:
                raise ValueError(f"must be a real calendar date YYYY-MM-DD, got {v!r}") from None
        return v

    @field_validator("metrics", mode="before")
    @classmethod
    def _known_metrics(cls, v: object) -> object:
        if isinstance(v, str):
            v = (v,)
        if not isinstance(v, list | tuple) or not v:
            raise ValueError("at least one metric is required")
        out: list[str] = []
        for name in v:
            canonical = _METRIC_BY_LOWER.get(str(name).lower())
            if canonical is None:
                raise ValueError(f"unknown metric {name!r} (valid: {', '.join(COST_METRICS)})")
            if canonical in out:
                raise ValueError(f"metric {canonical!r} given twice")
            out.append(canonical)
        return tuple(out)

    @field_validator("operation")
    @classmethod
    def _record_operation(cls, v: str) -> str:
        op = OPERATIONS.get(v)
        if op is None or op.shape != "results_by_time":
            known = ", ".join(sorted(n for n, o in OPERATIONS.items() if o.shape == "results_by_time"))
            raise ValueError(f"must be one of {known}, got {v!r}")
        return v

    @field_validator("group_by")
    @classmethod
    def _two_groups(cls, v: tuple[GroupBy, ...]) -> tuple[GroupBy, ...]:
        if len(v) > 2:
            raise ValueError(f"at most two GroupBy entries are allowed, got {len(v)}")
        if len({g.column for g in v}) != len(v):
            raise ValueError("the same GroupBy entry is given twice")
        return v

    @model_validator(mode="after")
    def _rules(self) -> Self:
        # model-level rules name their field as "field: rule" (see _query_error)
        if self.start >= self.end:
            raise ValueError(f"end: must be after start {self.start} (end is exclusive), got {self.end}")
        if self.granularity == "HOURLY" and (self.end - self.start).days > HOURLY_MAX_DAYS:
            raise ValueError(
                f"end: HOURLY granularity covers at most {HOURLY_MAX_DAYS} days, "
                f"got {(self.end - self.start).days}"
            )
        op = self.op
        if self.granularity not in op.granularities:
            raise ValueError(f"granularity: {op.name} accepts {', '.join(sorted(op.granularities))}, "
                             f"got {self.granularity}")
        if op.filter_required and self.filter is None:
            raise ValueError(f"filter: {op.name} requires a Filter")
        for g in self.group_by:
            if g.type == "DIMENSION" and g.key in EXTRA_DIMENSIONS - op.extra_dimensions:
                raise ValueError(f"group_by: {g.key} is a GroupBy of {_operations_with(g.key)} only "
                                 f"(dbcost resources), not of {op.name}")
        if self.filter is not None:
            foreign = sorted(_dimension_keys(self.filter) & (EXTRA_DIMENSIONS - op.extra_dimensions))
            if foreign:
                raise ValueError(f"filter: {foreign[0]} is a Filter dimension of {_operations_with(foreign[0])} "
                                 f"only (dbcost resources), not of {op.name}")
        if self.granularity == "HOURLY" and op.hourly_services \
                and _filter_services(self.filter) != op.hourly_services:
            raise ValueError(f"granularity: {op.name} serves HOURLY only for a Filter of SERVICE = "
                             f"{', '.join(sorted(op.hourly_services))} (EC2 instances); use DAILY")
        if op.history_days is not None and (self.end - self.start).days > op.history_days:
            raise ValueError(f"end: {op.name} covers at most {op.history_days} days, "
                             f"got {(self.end - self.start).days}")
        return self

    # -- construction from CLI strings --------------------------------------------------------------

    @classmethod
    def build(
        cls,
        *,
        start: str | dt.date,
        end: str | dt.date,
        granularity: str = "DAILY",
        metrics: list[str] | tuple[str, ...] = ("UnblendedCost",),
        group_by: list[str] | tuple[str, ...] = (),
        filter: str | dict[str, Any] | None = None,
        operation: str = COST_AND_USAGE.name,
    ) -> CostQuery:
        """Validate CLI-style input; any broken rule raises one :class:`QueryError` line."""
        flt: object = filter
        if isinstance(filter, str):
            try:
                flt = orjson.loads(filter)
            except orjson.JSONDecodeError as exc:
                raise QueryError("filter", f"not valid JSON ({exc})") from None
        gran = granularity.upper()
        groups: list[GroupBy] = []
        for text in group_by:
            try:
                groups.append(parse_group_by(text))
            except ValidationError as exc:
                raise _query_error(exc, prefix="group_by") from None
        try:
            return cls.model_validate(
                {
                    "start": start,
                    "end": end,
                    "operation": operation,
                    "granularity": gran,
                    "metrics": tuple(metrics),
                    "group_by": tuple(groups),
                    "filter": flt,
                }
            )
        except ValidationError as exc:
            raise _query_error(exc) from None

    # -- derived -------------------------------------------------------------------------------------

    @property
    def op(self) -> Operation:
        """The Cost Explorer operation this query calls (its paging and date rules)."""
        return OPERATIONS[self.operation]

    @property
    def columns(self) -> tuple[str, ...]:
        """Record key names in GroupBy order (``SERVICE``, ``TAG:team``)."""
        return tuple(g.column for g in self.group_by)

    def time_period(self, start: dt.date | None = None, end: dt.date | None = None) -> dict[str, str]:
        s, e = start or self.start, end or self.end
        if self.granularity == "HOURLY":
            return {"Start": f"{s.isoformat()}T00:00:00Z", "End": f"{e.isoformat()}T00:00:00Z"}
        return {"Start": s.isoformat(), "End": e.isoformat()}

    def to_request(self, start: dt.date | None = None, end: dt.date | None = None) -> dict[str, Any]:
        """The GetCostAndUsage request body (without a page token), optionally for a sub-window."""
        req: dict[str, Any] = {
            "TimePeriod": self.time_period(start, end),
            "Granularity": self.granularity,
            "Metrics": list(self.metrics),
        }
        if self.group_by:
            req["GroupBy"] = [g.to_api() for g in self.group_by]
        if self.filter is not None:
            req["Filter"] = self.filter.to_api()
        return req

    def with_window(self, start: dt.date, end: dt.date) -> CostQuery:
        return self.model_copy(update={"start": start, "end": end})

    def identity_json(self) -> dict[str, Any]:
        """The query as JSON for identities (plan ids): the operation is left out when it is GetCostAndUsage,
        so a plan an earlier release started keeps its id and stays resumable after an upgrade."""
        out = self.model_dump(mode="json")
        if self.operation == COST_AND_USAGE.name:
            del out["operation"]
        return out

    @property
    def fingerprint(self) -> str:
        """Identity of the dataset this query feeds: everything but the time period.

        Two windows of one backfill share a fingerprint; a different operation, metric set, grouping,
        filter or granularity is a different dataset. The operation enters the hash only when it is not
        GetCostAndUsage, so every dataset id a store, a sink table or a Kafka key already holds (all of them
        GetCostAndUsage) stays what it was: changing them would make downstream "highest version per key"
        readers count the same spend twice.
        """
        ident: dict[str, Any] = {
            "granularity": self.granularity,
            "metrics": sorted(self.metrics),
            "group_by": [g.to_api() for g in self.group_by],
            "filter": self.filter.to_api() if self.filter is not None else None,
        }
        if self.operation != COST_AND_USAGE.name:
            ident["operation"] = self.operation
        digest = hashlib.sha256(orjson.dumps(ident, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return digest[:16]

    def describe(self) -> str:
        groups = ",".join(self.columns) or "-"
        op = "" if self.operation == COST_AND_USAGE.name else f"{self.operation} "
        return (
            f"{op}{self.start}..{self.end} {self.granularity} metrics={','.join(self.metrics)} group_by={groups}"
            + (" filtered" if self.filter is not None else "")
        )


def _query_error(exc: ValidationError, prefix: str = "") -> QueryError:
    """The first pydantic error as one line: ``field: rule``."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
    msg = err["msg"].removeprefix("Value error, ")
    if not loc and re.match(r"[a-z_]+: ", msg):
        loc, msg = msg.split(": ", 1)
    fld = ".".join(p for p in (prefix, loc) if p) or "query"
    if err["type"] == "literal_error" and loc == "granularity":
        msg = f"must be DAILY, MONTHLY or HOURLY, got {err['input']!r}"
    elif err["type"] == "extra_forbidden":
        msg = "unknown field"
    return QueryError(fld, msg)


# -------------------------------------------------------------------------------------------- records


class Metric(NamedTuple):
    """One metric value: an exact ``Decimal`` amount as received, and its unit (``USD``, ``N/A``, ...)."""

    amount: Decimal
    unit: str


class CostRecord(NamedTuple):
    """One validated group of one period: group keys named from GroupDefinitions, metrics as Decimal.

    A ``NamedTuple``, so it is immutable and the parser can build it with ``tuple.__new__`` (the cheapest
    object Python can make: a slotted dataclass's ``__init__`` cost the parser about 6% of its rate, a
    frozen dataclass a third; ``bench/bench_parse.py``). Its dicts are not to be changed either.
    """

    period_start: str
    period_end: str
    granularity: str
    keys: dict[str, str]
    metrics: dict[str, Metric]
    estimated: bool

    def to_json(self) -> dict[str, Any]:
        """The JSONL shape of ``dbcost fetch``: amounts as decimal strings exactly as received."""
        return {
            "period_start": self.period_start,
            "period_end": self.period_end,
            "granularity": self.granularity,
            "keys": self.keys,
            "metrics": {n: {"amount": fmt(m.amount), "unit": m.unit} for n, m in self.metrics.items()},
            "estimated": self.estimated,
        }

    @property
    def identity(self) -> tuple[str, tuple[str, ...]]:
        """(period start, key values): unique within one query's result."""
        return (self.period_start, tuple(self.keys.values()))


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A group (or result) that failed validation: kept with its raw JSON, the reason and where it was."""

    reason: str
    period_start: str | None
    period_end: str | None
    page: int
    raw: Any = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "page": self.page,
            "raw": self.raw,
        }


# ------------------------------------------------------------------------------------------ raw shapes


class RawMetricValue(TypedDict, total=False):
    Amount: str
    Unit: str


class RawGroup(TypedDict, total=False):
    Keys: list[str]
    Metrics: dict[str, RawMetricValue]


class RawDateInterval(TypedDict, total=False):
    Start: str
    End: str


class RawResultByTime(TypedDict, total=False):
    TimePeriod: RawDateInterval
    Total: dict[str, RawMetricValue]
    Groups: list[RawGroup]
    Estimated: bool


class RawGroupDefinition(TypedDict, total=False):
    Type: str
    Key: str


class RawPage(TypedDict, total=False):
    NextPageToken: str
    GroupDefinitions: list[RawGroupDefinition]
    ResultsByTime: list[RawResultByTime]
    DimensionValueAttributes: list[dict[str, Any]]
