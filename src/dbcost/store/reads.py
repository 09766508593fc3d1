"""Named read models: what the use-cases read from the store, one method per question.

A job asks a question (the amounts of a metric over a month, when each target last completed a dataset,
the latest run of each command, the records to export) and gets plain values back: rows as named tuples,
``Decimal`` amounts, dates. What the job does with them (attribute, render metrics, check a total, write a
file) stays in the job; the SQL stays here. Exports stream: :meth:`Reads.export_rows` is a cursor read in
batches, :meth:`Reads.export_parquet` a DuckDB ``COPY``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from dbcost.errors import StoreError
from dbcost.store._db import Rows, StoreBase, operation
from dbcost.store._schema import UnitStatus

__all__ = ["AmountRow", "LastSuccess", "LatestRun", "Reads"]


class AmountRow(NamedTuple):
    """One stored amount of a metric: its period, its two key values (None when absent), amount, estimated."""

    period_start: str
    key1: str | None
    key2: str | None
    amount: Decimal
    estimated: bool


class LatestRun(NamedTuple):
    """The latest run of a command that recorded stats."""

    command: str
    run_id: str
    status: str
    stats: dict[str, Any]
    started_at: float  # epoch seconds


class LastSuccess(NamedTuple):
    """When a unit of ``dataset`` last completed for ``target`` (epoch seconds)."""

    target: str
    dataset: str
    at: float


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _literal(value: str) -> str:
    """A SQL string literal (for ``COPY``, which takes no parameters)."""
    return "'" + value.replace("'", "''") + "'"


class Reads(StoreBase):
    """Read models for reports, attribution, metrics, the demo and exports (a part of :class:`~dbcost.store.Store`)."""

    # ---------------------------------------------------------------------------------------- reports

    @operation("read quarantine summary")
    def quarantine_summary(self, datasets: Sequence[str], start: str, end: str) -> list[tuple[str, int]]:
        """(reason, count) of quarantined groups of ``datasets`` with a period in [start, end)."""
        if not datasets:
            return []
        rows = self._db.all(
            f"SELECT reason, count(*) FROM quarantine WHERE dataset IN ({_marks(datasets)}) AND "
            "(period_start IS NULL OR (period_start >= ? AND period_start < ?)) GROUP BY 1 ORDER BY 2 DESC, 1",
            [*datasets, start, end],
        )
        return [(str(r), int(n)) for r, n in rows]

    @operation("read freshness")
    def freshness(self, datasets: Sequence[str]) -> list[tuple[str, str, dt.datetime | None, dt.date | None]]:
        """(target, dataset label, last completed unit, last day covered) per target and dataset."""
        if not datasets:
            return []
        rows = self._db.all(
            f"SELECT u.target, coalesce(d.label, u.dataset), max(u.updated_at), max(u.window_end) FROM units u "
            f"JOIN datasets d USING (dataset) WHERE u.status = ? AND u.dataset IN ({_marks(datasets)}) "
            "GROUP BY 1, 2 ORDER BY 1, 2",
            [UnitStatus.DONE, *datasets],
        )
        return [(str(t), str(label), ts, we) for t, label, ts, we in rows]

    # ------------------------------------------------------------------------------------ attribution

    @operation("read amounts")
    def metric_amounts(self, dataset: str, metric: str, start: str, end: str,
                       targets: Sequence[str]) -> list[AmountRow]:
        """Every stored amount of ``metric`` in ``dataset`` with a period in [start, end), of ``targets`` only
        (a store may hold several payers' data), in storage order."""
        if not targets:
            return []
        rows = self._db.all(
            "SELECT period_start, key1, key2, amount, estimated FROM records WHERE dataset = ? AND metric = ? "
            f"AND period_start >= ? AND period_start < ? AND target IN ({_marks(targets)})",
            [dataset, metric, start, end, *targets],
        )
        return [AmountRow(ps, k1, k2, amount, bool(est)) for ps, k1, k2, amount, est in rows]

    @operation("read estimated periods")
    def earliest_estimated_period(self, dataset: str) -> str | None:
        """The first period of ``dataset`` still held as ``Estimated`` (it may yet change)."""
        value = self._db.scalar("SELECT min(period_start) FROM records WHERE dataset = ? AND estimated", [dataset])
        return None if value is None else str(value)

    # ---------------------------------------------------------------------------------------- metrics

    @operation("read latest runs")
    def latest_runs(self) -> list[LatestRun]:
        """The latest run (with stats) of each command."""
        rows = self._db.all(
            "SELECT command, run_id, status, stats, epoch(started_at) FROM runs r WHERE stats IS NOT NULL AND "
            "started_at = (SELECT max(started_at) FROM runs r2 WHERE r2.command = r.command AND r2.stats IS NOT NULL)"
        )
        return [LatestRun(str(c), str(rid), str(st), orjson.loads(stats), float(ts)) for c, rid, st, stats, ts in rows]

    @operation("read last successes")
    def last_successes(self) -> list[LastSuccess]:
        """When each (target, dataset) last completed a unit, in (target, dataset) order."""
        rows = self._db.all(
            "SELECT target, dataset, epoch(max(updated_at)) FROM units WHERE status = ? GROUP BY 1, 2 ORDER BY 1, 2",
            [UnitStatus.DONE],
        )
        return [LastSuccess(str(t), str(d), float(ts)) for t, d, ts in rows]

    @operation("read record totals")
    def record_totals(self, dataset: str | None = None) -> tuple[Decimal, int]:
        """(sum of every amount, number of rows) of the records held, of ``dataset`` only when given."""
        where, params = ("WHERE dataset = ?", [dataset]) if dataset is not None else ("", [])
        row = self._db.one(f"SELECT coalesce(sum(amount), 0), count(*) FROM records {where}", params)
        assert row is not None
        return Decimal(row[0]), int(row[1])

    @operation("count records")
    def record_count(self) -> int:
        """How many rows (one per record and metric) the store holds."""
        return int(self._db.scalar("SELECT count(*) FROM records"))

    @operation("read top keys")
    def top_keys(self, dataset: str, start: str, end: str, limit: int = 5) -> list[tuple[str | None, Decimal]]:
        """The ``limit`` first-key values of ``dataset`` with the largest sums over periods in [start, end)."""
        rows = self._db.all(
            "SELECT key1, sum(amount) FROM records WHERE dataset = ? AND period_start >= ? AND period_start < ? "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT ?",
            [dataset, start, end, limit],
        )
        return [(k, Decimal(v)) for k, v in rows]

    # ---------------------------------------------------------------------------------------- exports

    def _export_sql(self, dataset: str | None, target: str | None, *, amount_text: bool) -> str:
        """The long export (the fetch CSV columns + dataset/target, one column per key name of the exported
        datasets), in (dataset, target, period, keys, metric) order."""
        datasets = [(ds, [n for n in (n1, n2) if n])
                    for ds, n1, n2 in self._db.all("SELECT dataset, key1_name, key2_name FROM datasets ORDER BY created_at")
                    if dataset is None or ds == dataset]
        if not datasets:
            raise StoreError(f"store {self.path}: export: no dataset {dataset!r}" if dataset else
                             f"store {self.path}: export: no datasets")
        names = sorted({n for _, key_names in datasets for n in key_names})
        selects = []
        for ds, key_names in datasets:
            kn: list[str | None] = [*key_names, None, None]
            key_cols = ", ".join(
                (f"r.key1 AS \"{n}\"" if n == kn[0] else f"r.key2 AS \"{n}\"" if n == kn[1] else f"NULL::VARCHAR AS \"{n}\"")
                for n in names
            )
            where = "r.dataset = " + _literal(ds)
            if target is not None:
                where += " AND r.target = " + _literal(target)
            selects.append(
                "SELECT r.dataset, r.target, r.period_start, r.period_end, ds.granularity, r.estimated"
                + (", " + key_cols if key_cols else "")
                + ", r.metric, " + ("r.amount_text AS amount" if amount_text else "r.amount")
                + f", r.unit FROM records r JOIN datasets ds USING (dataset) WHERE {where}"
            )
        sql = " UNION ALL BY NAME ".join(f"({q})" for q in selects)
        return f"SELECT * FROM ({sql}) ORDER BY dataset, target, period_start" + "".join(
            f', "{n}" NULLS FIRST' for n in names) + ", metric"

    @operation("export rows")
    def export_rows(self, *, dataset: str | None = None, target: str | None = None,
                    batch_rows: int = 10_000) -> Rows:
        """The long export with amounts as the exact strings received, streamed (``columns``, then batches of
        rows); close it or use it as a context manager. A StoreError if no dataset matches."""
        return self._db.rows(self._export_sql(dataset, target, amount_text=True), batch_rows=batch_rows)

    @operation("export parquet")
    def export_parquet(self, path: Path, *, dataset: str | None = None, target: str | None = None) -> int:
        """Write the long export, amounts as ``DECIMAL(38,10)``, to a Parquet file at ``path``; its row count."""
        sql = self._export_sql(dataset, target, amount_text=False)
        self._db.run(f"COPY ({sql}) TO {_literal(str(path))} (FORMAT PARQUET)")
        return int(self._db.scalar(f"SELECT count(*) FROM read_parquet({_literal(str(path))})"))
