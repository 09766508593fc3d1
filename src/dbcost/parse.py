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
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dbcost.errors import MalformedResponseError
from dbcost.models import CostRecord, Metric, Quarantined
from dbcost.money import FAST_AMOUNT, AmountError, parse_amount

__all__ = ["ParsedPage", "column_names", "parse_page"]

_PERIOD_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)?")


@dataclass(slots=True)
class ParsedPage:
    """What one page yielded."""

    page: int
    records: list[CostRecord] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    next_token: str | None = None
    #: the first page of a chain restarted after InvalidNextToken/RequestChanged: what an earlier
    #: pass yielded for this query is superseded (consumers that buffer discard it)
    restarted: bool = False


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


def parse_page(
    payload: Mapping[str, Any],
    *,
    page: int = 1,
    granularity: str = "",
    group_definitions: Sequence[Mapping[str, Any]] | None = None,
    metrics: Sequence[str] | None = None,
) -> ParsedPage:
    """Parse one GetCostAndUsage response page.

    ``group_definitions`` (the query's GroupBy in API form) names the keys when the page carries no
    ``GroupDefinitions`` of its own; ``metrics`` are the metric names every group must carry;
    ``granularity`` is stamped on each record (the API does not echo it).
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
    # the most common shape (a dimension and a tag, e.g. SERVICE x TAG:db-cluster) gets an unrolled path
    two_dim_tag = nkeys == 2 and prefixes[0] is None and prefixes[1] is not None
    name0, name1 = [*names, "", ""][:2]
    prefix1 = prefixes[1] if two_dim_tag and prefixes[1] is not None else ""
    plen1 = len(prefix1)
    required = frozenset(metrics) if metrics else None
    # the most common metric set (one metric, e.g. UnblendedCost) gets an unrolled path too
    one_metric = next(iter(required)) if required is not None and len(required) == 1 else None
    fast_amount = FAST_AMOUNT
    new = tuple.__new__  # Metric and CostRecord are NamedTuples: this skips their Python-level __new__
    token = payload.get("NextPageToken")
    if token is not None and (not isinstance(token, str) or not token):
        raise MalformedResponseError(f"page {page}: NextPageToken is not a non-empty string")

    out = ParsedPage(page=page, next_token=token)
    records = out.records
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
        if not groups:
            total = result.get("Total")
            if total:  # a Total-only period (no GroupBy, or GroupBy with nothing to group)
                try:
                    records.append(CostRecord(start, end, granularity, {}, _metrics(total, required), estimated))
                except _Bad as bad:
                    quarantined.append(Quarantined(f"Total: {bad}", start, end, page, result))
    return out


def _real_period(start: str, end: str) -> bool:
    """Both ends are real calendar dates and the period is not empty (the regex only checks the shape)."""
    try:
        return dt.date.fromisoformat(start[:10]) <= dt.date.fromisoformat(end[:10]) and start < end
    except ValueError:
        return False


def _str_or_none(v: object) -> str | None:
    return v if isinstance(v, str) else None
