"""One Cost Explorer page -> validated :class:`CostRecord` s + :class:`Quarantined` entries.

Rules (what the seed parser got wrong):

* every group of every period is looked at on its own: a malformed group becomes a ``Quarantined`` entry
  with its raw JSON, the reason, the period and the page number, and its neighbours are kept;
* group keys are named from ``GroupDefinitions`` (dimension by its key, ``TAG:<key>``,
  ``COST_CATEGORY:<name>``); a tag group ``key$value`` gives ``value``, untagged ``key$`` gives ``""``;
* a period with a ``Total`` and no groups becomes one record with empty keys, with or without GroupBy;
* amounts go through :func:`dbcost.money.parse_amount`: exact ``Decimal``, never float.

The page as a whole must look like a GetCostAndUsage response (a ``ResultsByTime`` list); if it does
not, that is a :class:`~dbcost.errors.MalformedResponseError`, not a quarantine.

Validation is hand-written over plain dicts rather than a pydantic model of the page: each failure needs
its own reason and must not take the page down, and it runs several times faster than nested models
(``bench/bench_parse.py``).

**The typed decode** (:func:`fast_decoder`, what a backfill's and a JSONL fetch's pages take). A page whose
every group has the query's shape (the keys as strings with their tag prefix, the one metric alone, its amount in
plain notation, a unit) needs none of the per-group reasons above; msgspec decodes such a body straight into typed
structs (in C: no dict per group, no Python check per field) and the columns are made from them, list by list. A body
that is not exactly that shape (anything that would quarantine, a Total-only period, a grouping other than the
query's, a body that is not JSON) is not decoded this way at all: the decoder answers None and the page takes
:func:`parse_page` from the body, so every rule, reason and raw payload stays the general path's. It is that
path's fast case, not a second set of rules: ``tests/test_parse.py`` checks the two agree.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple

import msgspec
import orjson

from dbcost.errors import MalformedResponseError
from dbcost.models import CostRecord, Metric, Quarantined
from dbcost.money import FAST_AMOUNT, AmountError, parse_amount

__all__ = ["FastPage", "PageColumns", "ParsedPage", "column_names", "fast_decoder", "parse_page"]

_PERIOD_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)?")


@dataclass(slots=True)
class PageColumns:
    """A page's records as the store's staging rows, one list per column (one row per record and metric).

    What :func:`parse_page` builds with ``columnar=True`` for the shape nearly every query has (one metric, at
    most two keys), in place of a :class:`CostRecord` (two dicts, a ``Decimal`` and two tuples) per group: a
    backfill stages these lists as Arrow arrays as they are, and every other consumer gets records, made from
    the columns when first asked for (:attr:`ParsedPage.records`). ``amount_text`` is each amount as received
    (the fast path admits only plain notation, which ``format(Decimal(text), "f")`` gives back unchanged); a
    record that took the slow path contributes ``format(amount, "f")`` like any record staged from records.
    """

    granularity: str
    #: the record key names (the page's GroupDefinitions), at most two
    names: tuple[str, ...]
    period_start: list[str] = field(default_factory=list)
    period_end: list[str] = field(default_factory=list)
    key1: list[str | None] = field(default_factory=list)
    key2: list[str | None] = field(default_factory=list)
    metric: list[str] = field(default_factory=list)
    amount_text: list[str] = field(default_factory=list)
    unit: list[str] = field(default_factory=list)
    estimated: list[bool] = field(default_factory=list)
    #: records (groups) held: rows, except where a record has several metrics
    groups: int = 0
    #: first row -> row count, for each record of more than one row (one row per record otherwise)
    multi: dict[int, int] = field(default_factory=dict)

    def fill(self, start: str, end: str, metric: str, estimated: bool, n: int) -> None:
        """The constant columns (period, metric, estimated) of ``n`` rows of one period whose varying columns
        (keys, amount, unit) were appended already; the rows count as ``n`` records."""
        self.period_start.extend([start] * n)
        self.period_end.extend([end] * n)
        self.metric.extend([metric] * n)
        self.estimated.extend([estimated] * n)
        self.groups += n

    def add(self, record: CostRecord) -> None:
        """Append one record (the slow path's, or a Total-only one) as its rows."""
        keys = [*record.keys.values(), None, None]
        first = len(self.amount_text)
        for name, m in record.metrics.items():
            self.period_start.append(record.period_start)
            self.period_end.append(record.period_end)
            self.key1.append(keys[0])
            self.key2.append(keys[1])
            self.metric.append(name)
            self.amount_text.append(format(m.amount, "f"))
            self.unit.append(m.unit)
            self.estimated.append(record.estimated)
        if len(record.metrics) != 1:
            self.multi[first] = len(record.metrics)
        self.groups += 1

    def jsonl(self) -> bytes:
        """The records as ``dbcost fetch``'s JSONL lines (:meth:`CostRecord.to_json`, one line each, in order),
        written from the rows without making the records: ``amount_text`` is already what ``fmt`` writes."""
        names, granularity, dumps = self.names, self.granularity, orjson.dumps
        if self.multi or not 1 <= len(names) <= 2 or None in self.key1 or (len(names) == 2 and None in self.key2):
            # several metrics a record, a keyless (Total-only) record: the records' own lines
            return b"".join(dumps(r.to_json()) + b"\n" for r in self.records())
        n1, n2 = [*names, ""][:2]
        two = len(names) == 2
        lines = [dumps({"period_start": s, "period_end": e, "granularity": granularity,
                        "keys": {n1: k1, n2: k2} if two else {n1: k1},
                        "metrics": {m: {"amount": t, "unit": u}}, "estimated": est})
                 for s, e, k1, k2, m, t, u, est in zip(self.period_start, self.period_end, self.key1, self.key2,
                                                       self.metric, self.amount_text, self.unit, self.estimated,
                                                       strict=True)]
        lines.append(b"")
        return b"\n".join(lines) if len(lines) > 1 else b""

    def records(self) -> list[CostRecord]:
        """The records the rows hold, in order (exact: ``Decimal`` of each amount's text)."""
        out: list[CostRecord] = []
        names = self.names
        i, n = 0, len(self.amount_text)
        while i < n:
            rows = self.multi.get(i, 1)
            keys = {name: v for name, v in zip(names, (self.key1[i], self.key2[i]), strict=False) if v is not None}
            metrics = {self.metric[j]: Metric(Decimal(self.amount_text[j]), self.unit[j]) for j in range(i, i + rows)}
            out.append(CostRecord(self.period_start[i], self.period_end[i], self.granularity, keys, metrics,
                                  self.estimated[i]))
            i += rows
        return out


class ParsedPage:
    """What one page yielded: its records (or the same as :class:`PageColumns`), its quarantine entries, the
    token after it.

    A columnar page (``columns`` given) makes its records only when :attr:`records` is first read; from then
    on the records are the page's one copy (``columns`` is None), so whatever a consumer changes in them is
    what every later reader sees.
    """

    __slots__ = ("_columns", "_records", "next_token", "page", "quarantined", "restarted")

    def __init__(self, page: int, records: list[CostRecord] | None = None,
                 quarantined: list[Quarantined] | None = None, next_token: str | None = None,
                 restarted: bool = False, *, columns: PageColumns | None = None) -> None:
        self.page = page
        self._records = records if records is not None else []
        self._columns = columns
        self.quarantined: list[Quarantined] = quarantined if quarantined is not None else []
        self.next_token = next_token
        #: the first page of a chain restarted after InvalidNextToken/RequestChanged: what an earlier
        #: pass yielded for this query is superseded (consumers that buffer discard it)
        self.restarted = restarted

    @property
    def records(self) -> list[CostRecord]:
        if self._columns is not None:
            self._records, self._columns = self._columns.records(), None
        return self._records

    @records.setter
    def records(self, value: list[CostRecord]) -> None:
        self._records, self._columns = value, None

    @property
    def columns(self) -> PageColumns | None:
        """The records as staging rows, while no one has asked for them as records."""
        return self._columns

    @property
    def n_records(self) -> int:
        """How many records the page holds (without making them)."""
        return self._columns.groups if self._columns is not None else len(self._records)

    @property
    def last_period_start(self) -> str | None:
        """The period of the page's last record (None when it has none)."""
        if self._columns is not None:
            return self._columns.period_start[-1] if self._columns.period_start else None
        return self._records[-1].period_start if self._records else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParsedPage):
            return NotImplemented
        return (self.page, self.records, self.quarantined, self.next_token, self.restarted) == (
            other.page, other.records, other.quarantined, other.next_token, other.restarted)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it was

    def __repr__(self) -> str:
        return (f"ParsedPage(page={self.page}, records={self.n_records}, quarantined={len(self.quarantined)}, "
                f"next_token={self.next_token!r}, restarted={self.restarted})")


class _Bad(Exception):
    """A reason to quarantine one group."""


def column_names(group_definitions: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str | None]]:
    """(record key names, tag prefixes): ``SERVICE`` / ``TAG:team`` and ``None`` / ``"team$"``."""
    names: list[str] = []
    prefixes: list[str | None] = []
    for gd in group_definitions:
        if not isinstance(gd, dict):
            raise MalformedResponseError(f"GroupDefinitions entry is not an object: {gd!r:.80}")
        gtype, key = gd.get("Type"), gd.get("Key")
        if not isinstance(key, str) or not key or gtype not in ("DIMENSION", "TAG", "COST_CATEGORY"):
            raise MalformedResponseError(f"GroupDefinitions entry is not valid: {dict(gd)!r:.120}")
        if gtype == "DIMENSION":
            names.append(key)
            prefixes.append(None)
        else:
            names.append(f"{gtype}:{key}")
            prefixes.append(f"{key}$")
    return names, prefixes


def _metric_reason(name: str, value: object) -> str:
    """Why one metric entry is not valid (the slow path, only for bad entries)."""
    if not isinstance(value, dict):
        return f"Metrics.{name} is not an object"
    unit = value.get("Unit")
    if not isinstance(unit, str) or not unit:
        return f"Metrics.{name}.Unit missing or empty"
    if "Amount" not in value:
        return f"Metrics.{name}.Amount missing"
    try:
        parse_amount(value["Amount"])
    except AmountError as exc:
        return f"Metrics.{name}.{exc}"
    return f"Metrics.{name} is not valid"  # pragma: no cover - every failure above has its reason


def _metrics(raw: object, required: frozenset[str] | None) -> dict[str, Metric]:
    if type(raw) is not dict or not raw:
        raise _Bad("Metrics missing or empty")
    out: dict[str, Metric] = {}
    for name, value in raw.items():
        # fast path: the shape Cost Explorer sends, checked with as few calls as possible
        if type(value) is dict:
            text = value.get("Amount")
            unit = value.get("Unit")
            if type(unit) is str and unit and type(text) is str:
                try:
                    out[name] = Metric(parse_amount(text), unit)
                    continue
                except AmountError:
                    pass
        raise _Bad(_metric_reason(name, value))
    if required and not required <= out.keys():
        raise _Bad(f"Metrics lacks {', '.join(sorted(required - out.keys()))}")
    return out


def _group_reason(
    group: object, names: list[str], prefixes: list[str | None], required: frozenset[str] | None
) -> str:
    """Why a group failed the fast path (the slow path runs only for groups that will be quarantined)."""
    try:
        if not isinstance(group, dict):
            raise _Bad("group is not an object")
        raw_keys = group.get("Keys")
        if not isinstance(raw_keys, list):
            raise _Bad("Keys missing or not a list")
        if len(raw_keys) != len(names):
            raise _Bad(f"Keys has {len(raw_keys)} values, GroupDefinitions has {len(names)}")
        for name, prefix, raw in zip(names, prefixes, raw_keys, strict=True):
            if not isinstance(raw, str):
                raise _Bad(f"key {name} is not a string")
            if prefix is not None and not raw.startswith(prefix):
                raise _Bad(f"key {raw!r:.60} does not start with {prefix!r}")
        _metrics(group.get("Metrics"), required)
    except _Bad as bad:
        return str(bad)
    return "group is not valid"  # pragma: no cover - the fast path accepts whatever passes the checks above


def _records_of(groups: list[Any], start: str, end: str, estimated: bool, page: int, granularity: str,
                specs: list[tuple[str, str | None, int]], names: list[str], prefixes: list[str | None],
                required: frozenset[str] | None, records: list[CostRecord], quarantined: list[Quarantined]) -> None:
    """One period's groups as records (or quarantine entries), by every rule of the module docstring; called
    once per period, so the loop over groups stays one Python frame. The columnar path calls it for the rare
    group its own fast path does not cover."""
    nkeys = len(specs)
    # the most common shape (a dimension and a tag, e.g. SERVICE x TAG:db-cluster) gets an unrolled path
    two_dim_tag = nkeys == 2 and prefixes[0] is None and prefixes[1] is not None
    name0, name1 = [*names, "", ""][:2]
    prefix1 = prefixes[1] if two_dim_tag and prefixes[1] is not None else ""
    plen1 = len(prefix1)
    # the most common metric set (one metric, e.g. UnblendedCost) gets an unrolled path too
    one_metric = next(iter(required)) if required is not None and len(required) == 1 else None
    fast_amount = FAST_AMOUNT
    new = tuple.__new__  # Metric and CostRecord are NamedTuples: this skips their Python-level __new__
    for group in groups:
        # Fast path: the shape Cost Explorer sends, with as few Python-level calls as possible
        # (this loop runs once per group; bench/bench_parse.py measures it). Anything unusual falls
        # through to _group_reason, which finds the precise reason for the quarantine entry.
        if type(group) is dict:
            raw_keys = group.get("Keys")
            raw_metrics = group.get("Metrics")
            if type(raw_keys) is list and len(raw_keys) == nkeys and type(raw_metrics) is dict and raw_metrics:
                keys: dict[str, str] | None
                if two_dim_tag:  # the common SERVICE x TAG shape, unrolled
                    k0, k1 = raw_keys
                    keys = ({name0: k0, name1: k1[plen1:]}
                            if type(k0) is str and type(k1) is str and k1.startswith(prefix1) else None)
                else:
                    keys = {}
                    for (name, prefix, plen), raw in zip(specs, raw_keys, strict=False):
                        if type(raw) is not str:
                            keys = None
                            break
                        if prefix is None:
                            keys[name] = raw
                        elif raw.startswith(prefix):
                            keys[name] = raw[plen:]
                        else:
                            keys = None
                            break
                if keys is not None and one_metric is not None and len(raw_metrics) == 1:
                    mval = raw_metrics.get(one_metric)
                    if type(mval) is dict:
                        text = mval.get("Amount")
                        unit = mval.get("Unit")
                        if type(text) is str and type(unit) is str and unit and fast_amount(text):
                            records.append(new(CostRecord, (start, end, granularity, keys,
                                                            {one_metric: new(Metric, (Decimal(text), unit))},
                                                            estimated)))
                            continue
                    # anything else (an exponent form, a wrong name or shape): the general loop below
                if keys is not None:
                    values: dict[str, Metric] = {}
                    for mname, mval in raw_metrics.items():
                        if type(mval) is not dict:
                            break
                        text = mval.get("Amount")
                        unit = mval.get("Unit")
                        if type(text) is not str or type(unit) is not str or not unit:
                            break
                        if fast_amount(text):
                            amount = Decimal(text)
                        else:  # rare forms (an exponent): the full check, the same as the slow path
                            try:
                                amount = parse_amount(text)
                            except AmountError:
                                break
                        values[mname] = new(Metric, (amount, unit))
                    else:
                        if required is None or required <= values.keys():
                            records.append(new(CostRecord, (start, end, granularity, keys, values, estimated)))
                            continue
        quarantined.append(
            Quarantined(_group_reason(group, names, prefixes, required), start, end, page, group)
        )


# ------------------------------------------------------------------------------------------ the typed decode


class FastPage(NamedTuple):
    """A page :func:`fast_decoder` decoded: its records as columns (every group valid) and the token after it."""

    columns: PageColumns
    next_token: str | None


class _MetricValue(msgspec.Struct, gc=False):
    Amount: str
    Unit: str


class _Period(msgspec.Struct, gc=False):
    Start: str
    End: str


class _GroupDef(msgspec.Struct, gc=False):
    Type: str
    Key: str


@lru_cache(maxsize=32)
def _page_type(metric: str, nkeys: int) -> Any:
    """The msgspec type of a page whose groups have ``nkeys`` string keys and exactly the one ``metric``."""
    # the metric's name is the member's JSON name; any other metric, or none, fails the decode
    metrics = msgspec.defstruct("_Metrics", [("value", _MetricValue)], rename={"value": metric},
                                forbid_unknown_fields=True, gc=False)
    group = msgspec.defstruct("_Group", [("Keys", tuple[(str,) * nkeys]), ("Metrics", metrics)],  # type: ignore[misc]
                              gc=False)
    result = msgspec.defstruct("_Result", [
        ("TimePeriod", _Period),
        ("Groups", list[group] | None, None),  # type: ignore[valid-type]
        ("Total", dict[str, Any] | None, None),
        ("Estimated", bool, True),  # absent: the general path's "not final" too
    ], gc=False)
    page = msgspec.defstruct("_Page", [
        ("ResultsByTime", list[result]),  # type: ignore[valid-type]
        ("NextPageToken", str | None, None),
        ("GroupDefinitions", list[_GroupDef] | None, None),
    ], gc=False)
    return msgspec.json.Decoder(page)


def _values(raw: list[str], prefix: str | None) -> list[str | None] | None:
    """A key column's values: the raw keys, or with their tag prefix taken off; None if one lacks the prefix."""
    if prefix is None:
        return list(raw)
    if not all(k.startswith(prefix) for k in raw):
        return None
    n = len(prefix)
    return [k[n:] for k in raw]


def fast_decoder(group_definitions: Sequence[Mapping[str, Any]], metrics: Sequence[str],
                 granularity: str) -> Any:
    """A function ``body -> FastPage | None`` for the pages of a query grouped by ``group_definitions`` (its
    GroupBy, API form) with the one metric ``metrics``; None when the query has another shape (several metrics,
    no key or more than two). The function answers None for a body the general path must see (module
    docstring); it never raises."""
    if len(metrics) != 1 or not 1 <= len(group_definitions) <= 2:
        return None
    try:
        names, prefixes = column_names(group_definitions)
    except MalformedResponseError:
        return None
    metric = metrics[0]
    decoder = _page_type(metric, len(names))
    asked = [(gd["Type"], gd["Key"]) for gd in group_definitions]
    p1, p2 = [*prefixes, None][:2]
    fast_amount, period_re = FAST_AMOUNT, _PERIOD_RE.fullmatch
    two = len(names) == 2

    def decode(body: bytes) -> FastPage | None:
        try:
            page = decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        token = page.NextPageToken
        if token == "":
            return None
        if page.GroupDefinitions is not None and [(g.Type, g.Key) for g in page.GroupDefinitions] != asked:
            return None
        cols = PageColumns(granularity, tuple(names))
        for result in page.ResultsByTime:
            tp = result.TimePeriod
            start, end = tp.Start, tp.End
            if not (period_re(start) and period_re(end) and _real_period(start, end)):
                return None
            groups = result.Groups
            if not groups:
                if result.Total:  # a Total-only period: the general path's record
                    return None
                continue
            keys = [g.Keys for g in groups]
            values = [g.Metrics.value for g in groups]
            texts = [v.Amount for v in values]
            units = [v.Unit for v in values]
            if not (all(map(fast_amount, texts)) and all(units)):
                return None
            k1 = _values([k[0] for k in keys], p1)
            k2 = _values([k[1] for k in keys], p2) if two else [None] * len(keys)
            if k1 is None or k2 is None:
                return None
            cols.key1 += k1
            cols.key2 += k2
            cols.amount_text += texts
            cols.unit += units
            cols.fill(start, end, metric, result.Estimated, len(groups))
        return FastPage(cols, token)

    return decode


def parse_page(
    payload: Mapping[str, Any],
    *,
    page: int = 1,
    granularity: str = "",
    group_definitions: Sequence[Mapping[str, Any]] | None = None,
    metrics: Sequence[str] | None = None,
    columnar: bool = False,
) -> ParsedPage:
    """Parse one GetCostAndUsage response page.

    ``group_definitions`` (the query's GroupBy in API form) names the keys when the page carries no
    ``GroupDefinitions`` of its own; ``metrics`` are the metric names every group must carry;
    ``granularity`` is stamped on each record (the API does not echo it). ``columnar``: build the records as
    :class:`PageColumns` when the query has one metric (what a backfill stages; the page makes records from
    them if asked); the validation, the quarantine and the order are the same either way.
    """
    if not isinstance(payload, dict):
        raise MalformedResponseError(f"page {page}: response is not a JSON object")
    results = payload.get("ResultsByTime")
    if not isinstance(results, list):
        raise MalformedResponseError(f"page {page}: ResultsByTime is missing or not a list")
    defs = payload.get("GroupDefinitions")
    if defs is None:
        defs = group_definitions or []
    elif not isinstance(defs, list):
        raise MalformedResponseError(f"page {page}: GroupDefinitions is not a list")
    names, prefixes = column_names(defs)
    nkeys = len(names)
    specs = [(n, p, len(p) if p is not None else 0) for n, p in zip(names, prefixes, strict=True)]
    required = frozenset(metrics) if metrics else None
    one_metric = next(iter(required)) if required is not None and len(required) == 1 else None
    # the DIMENSION x TAG shape's tag prefix (the columnar path unrolls that shape)
    tag_prefix = prefixes[1] if nkeys == 2 and prefixes[0] is None else None
    token = payload.get("NextPageToken")
    if token is not None and (not isinstance(token, str) or not token):
        raise MalformedResponseError(f"page {page}: NextPageToken is not a non-empty string")

    cols = PageColumns(granularity, tuple(names)) if columnar and one_metric is not None and nkeys <= 2 else None
    out = ParsedPage(page=page, next_token=token, columns=cols)
    records: list[CostRecord] = []
    quarantined = out.quarantined

    for result in results:
        if not isinstance(result, dict):
            quarantined.append(Quarantined("ResultsByTime entry is not an object", None, None, page, result))
            continue
        tp = result.get("TimePeriod")
        start = tp.get("Start") if isinstance(tp, dict) else None
        end = tp.get("End") if isinstance(tp, dict) else None
        groups = result.get("Groups")
        if groups is None:  # absent, or null (botocore's shape walk used to drop a null member)
            groups = []
        if not (
            isinstance(start, str)
            and isinstance(end, str)
            and _PERIOD_RE.fullmatch(start)
            and _PERIOD_RE.fullmatch(end)
            and _real_period(start, end)
        ):
            # without a valid period nothing in this result can be placed: quarantine it whole
            quarantined.append(
                Quarantined("TimePeriod missing or not a date", _str_or_none(start), _str_or_none(end), page,
                            result)
            )
            continue
        estimated = result.get("Estimated")
        if not isinstance(estimated, bool):
            # unknown: treat as not final, so a sync re-reads it
            estimated = True
        if not isinstance(groups, list):
            quarantined.append(Quarantined("Groups is not a list", start, end, page, result))
            continue
        if cols is not None:
            assert one_metric is not None  # a columnar page has one metric
            _columns_of(cols, groups, start, end, estimated, page, one_metric, specs, names, prefixes, required,
                        tag_prefix, quarantined)
        else:
            _records_of(groups, start, end, estimated, page, granularity, specs, names, prefixes, required,
                        records, quarantined)
        if not groups:
            total = result.get("Total")
            if total:  # a Total-only period (no GroupBy, or GroupBy with nothing to group)
                try:
                    record = CostRecord(start, end, granularity, {}, _metrics(total, required), estimated)
                except _Bad as bad:
                    quarantined.append(Quarantined(f"Total: {bad}", start, end, page, result))
                else:
                    if cols is not None:
                        cols.add(record)
                    else:
                        records.append(record)
    if cols is None:
        out.records = records
    return out


def _columns_of(cols: PageColumns, groups: list[Any], start: str, end: str, estimated: bool, page: int,
                metric: str, specs: list[tuple[str, str | None, int]], names: list[str],
                prefixes: list[str | None], required: frozenset[str] | None, tag_prefix: str | None,
                quarantined: list[Quarantined]) -> None:
    """One period's groups into ``cols`` (the columnar fast path: a backfill's every group passes here).

    Per group, only what varies is appended (the keys, the amount's text, its unit); the period, the metric
    and the estimated flag are the same for the period's every row and are extended once per run of fast
    rows. A group the fast path does not cover takes :func:`_records_of` and joins the columns in its place."""
    a1, a2, at, au = cols.key1.append, cols.key2.append, cols.amount_text.append, cols.unit.append
    fast_amount = FAST_AMOUNT
    nkeys = len(specs)
    plen = len(tag_prefix) if tag_prefix is not None else 0

    def flush() -> None:
        # the constant columns catch up with the rows appended since the last flush
        lag = len(cols.amount_text) - len(cols.period_start)
        if lag:
            cols.fill(start, end, metric, estimated, lag)

    for group in groups:
        if type(group) is dict:
            raw_keys = group.get("Keys")
            raw_metrics = group.get("Metrics")
            if type(raw_keys) is list and len(raw_keys) == nkeys and type(raw_metrics) is dict and len(raw_metrics) == 1:
                mval = raw_metrics.get(metric)
                if type(mval) is dict:
                    text = mval.get("Amount")
                    unit = mval.get("Unit")
                    if type(text) is str and type(unit) is str and unit and fast_amount(text):
                        if tag_prefix is not None:  # the common DIMENSION x TAG shape, unrolled
                            k0, k1 = raw_keys
                            if type(k0) is str and type(k1) is str and k1.startswith(tag_prefix):
                                a1(k0)
                                a2(k1[plen:])
                                at(text)
                                au(unit)
                                continue
                        else:
                            values: list[str | None] = []
                            for (_, prefix, n), raw in zip(specs, raw_keys, strict=False):
                                if type(raw) is not str:
                                    break
                                if prefix is None:
                                    values.append(raw)
                                elif raw.startswith(prefix):
                                    values.append(raw[n:])
                                else:
                                    break
                            else:
                                values += [None, None]
                                a1(values[0])
                                a2(values[1])
                                at(text)
                                au(unit)
                                continue
        made: list[CostRecord] = []  # the general rules, for this one group
        _records_of([group], start, end, estimated, page, cols.granularity, specs, names, prefixes, required, made,
                    quarantined)
        if made:
            flush()
            cols.add(made[0])
    flush()


def _real_period(start: str, end: str) -> bool:
    """Both ends are real calendar dates and the period is not empty (the regex only checks the shape)."""
    try:
        return dt.date.fromisoformat(start[:10]) <= dt.date.fromisoformat(end[:10]) and start < end
    except ValueError:
        return False


def _str_or_none(v: object) -> str | None:
    return v if isinstance(v, str) else None
