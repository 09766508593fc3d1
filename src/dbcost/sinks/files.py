"""Record files: JSONL (the ``dbcost fetch`` shape) and CSV (one row per record and metric); they are
written through :class:`dbcost._files.AtomicOutput`, so a file at the requested path is always complete.

JSONL is written with orjson; amounts stay decimal strings exactly as received (never floats).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from dbcost.models import CostRecord
from dbcost.money import fmt

__all__ = [
    "CSV_BASE_COLUMNS",
    "csv_rows",
    "jsonl_line",
]

#: CSV columns before the group-key columns; after them come ``metric, amount, unit``.
CSV_BASE_COLUMNS = ("period_start", "period_end", "granularity", "estimated")


def jsonl_line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"



def csv_rows(records: Iterable[CostRecord], key_columns: Sequence[str]) -> Iterator[list[str]]:
    """Long CSV rows: one per (record, metric), keys in ``key_columns`` order ('' when absent)."""
    for rec in records:
        base = [rec.period_start, rec.period_end, rec.granularity, "true" if rec.estimated else "false"]
        keys = [rec.keys.get(k, "") for k in key_columns]
        for name, m in rec.metrics.items():
            yield [*base, *keys, name, fmt(m.amount), m.unit]
