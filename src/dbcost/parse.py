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

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dbcost.errors import MalformedResponseError
from dbcost.models import CostRecord, Metric, Quarantined
from dbcost.money import AmountError, parse_amount

__all__ = ["ParsedPage", "column_names", "parse_page"]

_PERIOD_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}Z)?")


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
        if not isinstance(gd, Mapping):
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


def _metrics(raw: object, required: Sequence[str] | None) -> dict[str, Metric]:
    if not isinstance(raw, Mapping) or not raw:
        raise _Bad("Metrics missing or empty")
    out: dict[str, Metric] = {}
    for name, value in raw.items():
        if not isinstance(value, Mapping):
            raise _Bad(f"Metrics.{name} is not an object")
        unit = value.get("Unit")
        if not isinstance(unit, str) or not unit:
            raise _Bad(f"Metrics.{name}.Unit missing or empty")
        if "Amount" not in value:
            raise _Bad(f"Metrics.{name}.Amount missing")
        try:
            amount = parse_amount(value["Amount"])
        except AmountError as exc:
            raise _Bad(f"Metrics.{name}.{exc}") from None
        out[name] = Metric(amount, unit)
    if required:
        missing = [m for m in required if m not in out]
        if missing:
            raise _Bad(f"Metrics lacks {', '.join(missing)}")
    return out


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
    if not isinstance(payload, Mapping):
        raise MalformedResponseError(f"page {page}: response is not a JSON object")
    results = payload.get("ResultsByTime", [])
    if not isinstance(results, list):
        raise MalformedResponseError(f"page {page}: ResultsByTime is not a list")
    defs = payload.get("GroupDefinitions")
    if defs is None:
        defs = group_definitions or []
    elif not isinstance(defs, list):
        raise MalformedResponseError(f"page {page}: GroupDefinitions is not a list")
    names, prefixes = column_names(defs)
    nkeys = len(names)
    token = payload.get("NextPageToken")
    if token is not None and (not isinstance(token, str) or not token):
        raise MalformedResponseError(f"page {page}: NextPageToken is not a non-empty string")

    out = ParsedPage(page=page, next_token=token)
    records = out.records
    quarantined = out.quarantined

    for result in results:
        if not isinstance(result, Mapping):
            quarantined.append(Quarantined("ResultsByTime entry is not an object", None, None, page, result))
            continue
        tp = result.get("TimePeriod")
        start = tp.get("Start") if isinstance(tp, Mapping) else None
        end = tp.get("End") if isinstance(tp, Mapping) else None
        groups = result.get("Groups", [])
        if not (
            isinstance(start, str)
            and isinstance(end, str)
            and _PERIOD_RE.fullmatch(start)
            and _PERIOD_RE.fullmatch(end)
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
            try:
                if not isinstance(group, Mapping):
                    raise _Bad("group is not an object")
                raw_keys = group.get("Keys")
                if not isinstance(raw_keys, list):
                    raise _Bad("Keys missing or not a list")
                if len(raw_keys) != nkeys:
                    raise _Bad(f"Keys has {len(raw_keys)} values, GroupDefinitions has {nkeys}")
                keys: dict[str, str] = {}
                for name, prefix, raw in zip(names, prefixes, raw_keys, strict=True):
                    if not isinstance(raw, str):
                        raise _Bad(f"key {name} is not a string")
                    if prefix is None:
                        keys[name] = raw
                    elif raw.startswith(prefix):
                        keys[name] = raw[len(prefix) :]
                    else:
                        raise _Bad(f"key {raw!r:.60} does not start with {prefix!r}")
                records.append(
                    CostRecord(start, end, granularity, keys, _metrics(group.get("Metrics"), metrics), estimated)
                )
            except _Bad as bad:
                quarantined.append(Quarantined(str(bad), start, end, page, group))
        if not groups:
            total = result.get("Total")
            if total:  # a Total-only period (no GroupBy, or GroupBy with nothing to group)
                try:
                    records.append(CostRecord(start, end, granularity, {}, _metrics(total, metrics), estimated))
                except _Bad as bad:
                    quarantined.append(Quarantined(f"Total: {bad}", start, end, page, result))
    return out


def _str_or_none(v: object) -> str | None:
    return v if isinstance(v, str) else None
