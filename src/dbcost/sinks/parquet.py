"""``parquet:DIR`` (also ``parquet://DIR``): one Parquet file per unit, replaced atomically when the unit is written again.

Files are named after the unit (dataset, target, window), so a resumed or re-synced unit overwrites its
own file: the directory always holds exactly the latest content of every unit written to it (no
duplicates to collapse). Columns: the fetch CSV columns (long, one row per record and metric) plus
dataset, target, version, deleted; ``amount`` is ``decimal128(38, 10)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbcost._files import atomic_path
from dbcost.errors import ConfigError, SinkError
from dbcost.sinks._common import file_path
from dbcost.sinks.base import SinkBase, SinkContext, SinkOptions, SinkRecord, UnitRef

__all__ = ["ParquetOptions", "ParquetSink"]


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
        return n

    async def close(self) -> None:
        return None
