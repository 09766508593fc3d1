"""Named read models: what the use-cases read from the store, one method per question.

A job asks a question (the amounts of a metric over a month, when each target last completed a dataset,
the latest run of each command, the records to export) and gets plain values back: rows as named tuples,
``Decimal`` amounts, dates. What the job does with them (attribute, render metrics, check a total, write a
file) stays in the job; the SQL stays here. Exports stream: :meth:`Reads.export_rows` is a cursor read in
batches, :meth:`Reads.export_parquet` Arrow batches into one Parquet writer, one dataset after the other.
Both take an :class:`ExportSelection` (which datasets, targets and periods) and export only what it names:
which datasets a user meant is the job's question (``--dataset``), never answered here by exporting
everything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from dbcost.attribution.inventory import InventoryItem
from dbcost.errors import StoreError
from dbcost.store._db import Database, Row, Rows, StoreBase, operation
from dbcost.store._schema import UnitStatus

__all__ = ["AmountRow", "DatasetSummary", "ExportRows", "ExportSelection", "LastSuccess", "LatestRun", "Reads"]


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


class DatasetSummary(NamedTuple):
    """One dataset and what the store holds of it: ``records`` rows (one per period, group and metric, as the
    CSV and Parquet exports have them), the first period start and last period end as stored (None when it
    holds none), and when the newest of them was fetched (naive UTC)."""

    dataset: str
    label: str | None
    operation: str
    granularity: str
    metrics: tuple[str, ...]
    key_names: tuple[str, ...]
    query: dict[str, Any]
    records: int
    start: str | None
    end: str | None
    fetched_at: dt.datetime | None


@dataclass(frozen=True)
class ExportSelection:
    """What an export reads: these datasets (at least one), of one target or all, with a period starting in
    ``[start, end)`` (ISO dates; either may be open).

    ``key_columns`` renames key columns (a key name such as ``TAG:db-cluster`` -> the column it is written
    as; unnamed keys keep their name); ``extra`` adds constant text columns per dataset (dataset id ->
    column -> value), e.g. the dataset's label and query when several datasets share one file; ``typed``
    writes periods as DATE (TIMESTAMP WITH TIME ZONE when an HOURLY dataset is among them) instead of the
    strings Cost Explorer sent.
    """

    datasets: tuple[str, ...]
    target: str | None = None
    start: str | None = None
    end: str | None = None
    key_columns: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    typed: bool = False


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _literal(value: str | None) -> str:
    """A SQL string literal (the export's constant columns); NULL for None."""
    if value is None:
        return "NULL::VARCHAR"
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    """A quoted SQL identifier (key names are users' tag keys: any character may appear)."""
    return '"' + name.replace('"', '""') + '"'


class Reads(StoreBase):
    """Read models for reports, attribution, metrics, the demo and exports (a part of :class:`~dbcost.store.Store`)."""

    # -------------------------------------------------------------------------------------- inventory

    @operation("read inventory")
    def inventory_items(self, targets: Sequence[str] | None = None) -> list[InventoryItem]:
        """The latest reading of every target (or of ``targets``), in (target, ARN) order; ``read_at`` in UTC."""
        if targets is not None and not targets:
            return []
        where = f"WHERE target IN ({_marks(targets)})" if targets else ""
        rows = self._db.all(
            "SELECT target, arn, aliases, service, kind, account, region, name, cluster, engine, engine_version, "
            f"instance_class, multi_az, tags, read_at FROM inventory {where} ORDER BY target, arn",
            list(targets or ()),
        )
        return [
            InventoryItem(arn=str(arn), aliases=tuple(aliases), service=str(service), kind=str(kind),
                          account=str(account), region=str(region), name=str(name), cluster=cluster, engine=engine,
                          engine_version=version, instance_class=klass, multi_az=multi_az, tags=orjson.loads(tags),
                          read_at=read_at.replace(tzinfo=dt.UTC), target=str(target))
            for (target, arn, aliases, service, kind, account, region, name, cluster, engine, version, klass,
                 multi_az, tags, read_at) in rows
        ]

    # ---------------------------------------------------------------------------------------- reports

    @operation("read quarantined groups")
    def quarantined_groups(self, datasets: Sequence[str], *, target: str | None = None, start: str | None = None,
                           end: str | None = None) -> list[dict[str, Any]]:
        """The quarantined groups of ``datasets`` (of ``target``, with a period starting in ``[start, end)``
        when given) in the ``fetch --quarantine`` JSONL shape (reason, period_start, period_end, page, raw)
        plus dataset, target and run_id; in (dataset, target, period, page) order."""
        if not datasets:
            return []
        where, params = [f"dataset IN ({_marks(datasets)})"], list(datasets)
        for clause, value in (("target = ?", target), ("period_start >= ?", start), ("period_start < ?", end)):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = self._db.all(
            "SELECT dataset, target, reason, period_start, period_end, page, raw, run_id FROM quarantine "
            f"WHERE {' AND '.join(where)} ORDER BY dataset, target, period_start NULLS FIRST, page, reason",
            params,
        )
        return [{"dataset": ds, "target": t, "reason": reason, "period_start": ps, "period_end": pe, "page": page,
                 "raw": orjson.loads(raw) if raw is not None else None, "run_id": run}
                for ds, t, reason, ps, pe, page, raw, run in rows]

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

    # --------------------------------------------------------------------------------------- datasets

    @operation("summarize datasets")
    def dataset_summaries(self) -> list[DatasetSummary]:
        """Every dataset, oldest first, with how many record rows the store holds of it, the periods they
        span and when the newest was fetched (``dbcost datasets``)."""
        rows = self._db.all(
            "SELECT d.dataset, d.label, d.operation, d.granularity, d.metrics, d.key1_name, d.key2_name, d.query, "
            "coalesce(r.n, 0), r.first_start, r.last_end, r.last_fetched FROM datasets d LEFT JOIN ("
            "SELECT dataset, count(*) AS n, min(period_start) AS first_start, max(period_end) AS last_end, "
            "max(fetched_at) AS last_fetched FROM records GROUP BY dataset) r USING (dataset) "
            "ORDER BY d.created_at, d.dataset"
        )
        return [DatasetSummary(str(ds), label, str(op), str(gran), tuple(metrics), tuple(n for n in (k1, k2) if n),
                               orjson.loads(query), int(n), first, last, fetched)
                for ds, label, op, gran, metrics, k1, k2, query, n, first, last, fetched in rows]

    # ---------------------------------------------------------------------------------------- exports

    def _export_sqls(self, sel: ExportSelection, *, amount_text: bool) -> list[str]:
        """The long export as one query per dataset, in dataset order, each in (target, period, keys, metric)
        order: the same columns in each (the fetch CSV columns + dataset/target, one column per key name of
        every exported dataset, then ``sel.extra``'s columns). Run one after the other they are the whole
        export in (dataset, target, period, keys, metric) order; one sort per dataset, not one over all of
        them, keeps an export of every dataset inside the store's memory cap."""
        known = {ds: (gran, [n for n in (n1, n2) if n]) for ds, gran, n1, n2 in self._db.all(
            "SELECT dataset, granularity, key1_name, key2_name FROM datasets ORDER BY created_at")}
        missing = [ds for ds in sel.datasets if ds not in known]
        if not sel.datasets or missing:
            raise StoreError(f"store {self.path}: export: no dataset {missing[0]!r}" if missing else
                             f"store {self.path}: export: no dataset selected")
        names = sorted({n for ds in sel.datasets for n in known[ds][1]})
        cols = {n: sel.key_columns.get(n, n) for n in names}
        extra_cols = sorted({c for ds in sel.datasets for c in sel.extra.get(ds, {})})
        hourly = any(known[ds][0] == "HOURLY" for ds in sel.datasets)
        period_type = ("TIMESTAMPTZ" if hourly else "DATE") if sel.typed else None
        selects: list[str] = []
        for ds in sel.datasets:
            kn: list[str | None] = [*known[ds][1], None, None]
            key_cols = ", ".join(
                (f"r.key1 AS {_ident(cols[n])}" if n == kn[0] else f"r.key2 AS {_ident(cols[n])}" if n == kn[1]
                 else f"NULL::VARCHAR AS {_ident(cols[n])}")
                for n in names
            )
            where = ["r.dataset = " + _literal(ds)]
            if sel.target is not None:
                where.append("r.target = " + _literal(sel.target))
            if sel.start is not None:
                where.append("r.period_start >= " + _literal(sel.start))
            if sel.end is not None:
                where.append("r.period_start < " + _literal(sel.end))
            periods = ("r.period_start, r.period_end" if period_type is None else
                       f"CAST(r.period_start AS {period_type}) AS period_start, "
                       f"CAST(r.period_end AS {period_type}) AS period_end")
            extra = ", ".join(f"{_literal(sel.extra.get(ds, {}).get(c))} AS {_ident(c)}" for c in extra_cols)
            selects.append(
                f"SELECT r.dataset, r.target, {periods}, ds.granularity, r.estimated"
                + (", " + key_cols if key_cols else "")
                + ", r.metric, " + ("r.amount_text AS amount" if amount_text else "r.amount")
                + ", r.unit" + (", " + extra if extra else "")
                + f" FROM records r JOIN datasets ds USING (dataset) WHERE {' AND '.join(where)}"
                + " ORDER BY target, period_start" + "".join(f", {_ident(cols[n])} NULLS FIRST" for n in names)
                + ", metric"
            )
        return [q for _, q in sorted(zip(sel.datasets, selects, strict=True))]

    @operation("export rows")
    def export_rows(self, selection: ExportSelection, *, batch_rows: int = 10_000) -> ExportRows:
        """The long export of ``selection`` with amounts as the exact strings received, streamed (``columns``,
        then batches of rows); close it or use it as a context manager. A StoreError if a dataset is unknown."""
        return ExportRows(self._db, self._export_sqls(selection, amount_text=True), batch_rows)

    @operation("export parquet")
    def export_parquet(self, path: Path, selection: ExportSelection, *,
                       metadata: Mapping[str, str] | None = None) -> int:
        """Write the long export of ``selection``, amounts as ``DECIMAL(38,10)``, to a Parquet file at ``path``
        with ``metadata`` as the file's key-value metadata; its row count. Batches stream from DuckDB into one
        writer (row groups of at most 20,000 rows): memory stays flat however large the export."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer: Any = None
        schema: Any = None
        n = 0
        sqls = self._export_sqls(selection, amount_text=False)
        try:  # pyarrow's errors (a full disk, a bad path) leave as StoreError too, naming the operation
            try:
                for sql in sqls:
                    for batch in self._db.arrow_batches(sql):
                        if writer is None:
                            # nullable everywhere: a key column one dataset fills is NULL in another's rows
                            schema = pa.schema([f.with_nullable(True) for f in batch.schema],
                                               metadata=dict(metadata or {}))
                            writer = pq.ParquetWriter(str(path), schema)
                        writer.write_table(pa.Table.from_batches([batch]).cast(schema))
                        n += batch.num_rows
                if writer is None:  # nothing matched: an empty file with the export's columns
                    empty = self._db.arrow_table(f"SELECT * FROM ({sqls[0]}) LIMIT 0")
                    writer = pq.ParquetWriter(str(path), empty.schema.with_metadata(dict(metadata or {})))
                    writer.write_table(empty)
            finally:
                if writer is not None:
                    writer.close()
        except (pa.ArrowException, OSError) as exc:
            raise StoreError(f"store {self.path}: export parquet: {exc}") from exc
        return n


class ExportRows:
    """An export's rows, streamed: ``columns``, then batches of rows, one dataset's query after the other (each
    through its own cursor); close it, or use it as a context manager. Read after the call that made it
    returned, its errors still name that call's operation."""

    def __init__(self, db: Database, sqls: list[str], batch_rows: int) -> None:
        self._db, self._sqls, self._batch = db, sqls, batch_rows
        self._doing = db.doing
        self._current: Rows | None = db.rows(sqls[0], batch_rows=batch_rows)
        self.columns = self._current.columns

    def __iter__(self) -> Iterator[list[Row]]:
        for i in range(len(self._sqls)):
            if i > 0:
                with self._db.doing_as(self._doing):
                    self._current = self._db.rows(self._sqls[i], batch_rows=self._batch)
            current = self._current
            if current is None:
                return
            try:
                yield from current
            finally:
                current.close()
                self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None

    def __enter__(self) -> ExportRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
