"""``parquet:DIR`` (also ``parquet://DIR``): one Parquet file per unit, replaced atomically when the unit is written again.

Files are named after the unit (dataset, target, window), so a resumed or re-synced unit overwrites its
own file. Units of another plan may cut the same days differently (the planner sizes units from what the
store learnt: a rerun may split a month into 4-day windows, a ``sync`` re-reads part of a month): after a
unit's file is in place, every other file of the same dataset and target whose window overlaps it loses
the rows of the unit's days (rewritten atomically, or removed when nothing is left). So the directory
always holds exactly the latest content of every day written to it (no duplicates to collapse); a crash
between the two steps leaves duplicates that the unit's resend removes, never a gap.

Columns: the fetch CSV columns (long, one row per record and metric) plus
dataset, target, version, deleted; ``amount`` is ``decimal128(38, 10)``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbcost._files import atomic_path
from dbcost.errors import ConfigError, SinkError
from dbcost.sinks._common import file_path
from dbcost.sinks.base import SinkBase, SinkContext, SinkOptions, SinkRecord, UnitRef

__all__ = ["ParquetOptions", "ParquetSink"]

#: the window at the end of a unit file's name: ``<dataset>_<target>_<start>_<end>.parquet``
_WINDOW = re.compile(r"(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})\.parquet")


@dataclass(frozen=True, kw_only=True)
class ParquetOptions(SinkOptions):
    """A parsed ``parquet:DIR``."""

    dir: Path


class ParquetSink(SinkBase):
    """Writes each unit to its own file in ``DIR``; see the module doc. pyarrow is imported on the first write."""

    @classmethod
    def parse(cls, url: str) -> ParquetOptions:
        return ParquetOptions(url=url, dir=file_path(url))

    @classmethod
    def from_url(cls, url: str, ctx: SinkContext) -> ParquetSink:
        return cls(cls.parse(url))

    def __init__(self, options: ParquetOptions) -> None:
        self.dir = options.dir
        self.name = f"parquet:{self.dir}"

    async def open(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--sink {self.name}: cannot create directory: {exc.strerror}") from None

    async def write_unit(self, unit: UnitRef, batches: AsyncIterator[list[SinkRecord]]) -> int:
        import decimal

        import pyarrow as pa
        import pyarrow.parquet as pq

        cols: dict[str, list[Any]] = {c: [] for c in (
            "dataset", "target", "period_start", "period_end", "granularity", "estimated", "key1", "key2",
            "metric", "amount", "unit", "version", "deleted")}
        n = 0
        async for batch in batches:
            for r in batch:
                n += 1
                rec = r.record
                keys = [rec.get("keys", {}).get(k) for k in unit.key_names] + [None, None]
                metrics = rec.get("metrics") or {None: {"amount": None, "unit": None}}
                for metric, m in metrics.items():
                    cols["dataset"].append(r.dataset)
                    cols["target"].append(r.target)
                    cols["period_start"].append(rec.get("period_start"))
                    cols["period_end"].append(rec.get("period_end"))
                    cols["granularity"].append(rec.get("granularity"))
                    cols["estimated"].append(rec.get("estimated"))
                    cols["key1"].append(keys[0])
                    cols["key2"].append(keys[1])
                    cols["metric"].append(metric)
                    cols["amount"].append(decimal.Decimal(m["amount"]) if m["amount"] is not None else None)
                    cols["unit"].append(m["unit"])
                    cols["version"].append(r.version)
                    cols["deleted"].append(r.deleted)
        schema = pa.schema([(c, pa.decimal128(38, 10) if c == "amount" else pa.int64() if c == "version"
                             else pa.bool_() if c in ("estimated", "deleted") else pa.string()) for c in cols])
        table = pa.table(cols, schema=schema).replace_schema_metadata(
            {"key1_name": unit.key_names[0] if unit.key_names else "",
             "key2_name": unit.key_names[1] if len(unit.key_names) > 1 else ""})
        name = f"{unit.dataset}_{unit.target}_{unit.start.isoformat()}_{unit.end.isoformat()}.parquet"
        try:
            with atomic_path(self.dir / name) as tmp:
                pq.write_table(table, tmp)
        except OSError as exc:
            raise SinkError(f"{self.name}: write failed: {exc.strerror}") from exc
        self._trim_overlapping(unit, name)
        return n

    def _trim_overlapping(self, unit: UnitRef, written: str) -> None:
        """Remove the days of ``unit`` from every other file of its dataset and target (module doc)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        prefix = f"{unit.dataset}_{unit.target}_"
        start, end = unit.start.isoformat(), unit.end.isoformat()
        for path in sorted(self.dir.glob(f"{prefix}*.parquet")):
            window = _WINDOW.fullmatch(path.name[len(prefix):])
            if path.name == written or window is None:  # another target whose name starts with this one's
                continue
            other_start, other_end = (dt.date.fromisoformat(d) for d in window.groups())
            if not (other_start < unit.end and unit.start < other_end):
                continue
            try:
                table = pq.read_table(path)
                # ISO dates and timestamps compare as text: a period inside [start, end) is the unit's now
                period = table.column("period_start")
                inside = pc.and_(pc.greater_equal(period, start), pc.less(period, end))
                kept = table.filter(pc.invert(pc.fill_null(inside, False)))
                if kept.num_rows == 0:
                    path.unlink()
                elif kept.num_rows < table.num_rows:
                    with atomic_path(path) as tmp:
                        pq.write_table(kept, tmp)
            except (OSError, pa.ArrowException) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise SinkError(f"{self.name}: cannot replace the days of {path.name}: {reason}") from exc

    async def close(self) -> None:
        return None
