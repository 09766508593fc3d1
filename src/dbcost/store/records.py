"""Records: datasets, staging a unit's pages, committing a unit by replacement, and reading records back.

Records are long (one row per record and metric) with ``amount DECIMAL(38,10)`` plus ``amount_text``, the
string exactly as received (what exports write back out). The natural key is
(dataset, target, period_start, key1, key2, metric); ``dataset`` is the query fingerprint.

Writes are idempotent by *unit replacement*: a unit's pages are staged (bulk, through Arrow), and
:meth:`Records.commit_unit` replaces everything the store holds for (dataset, target, period in the unit's
window) by the staged rows, in one transaction. A rerun, a resume or a restatement therefore replaces, never
adds; a group that vanished in a restatement disappears (and is logged as deleted). Versions: a row keeps its
version while its value is unchanged and takes the run's (strictly increasing) version when it is new or
changed, so downstream consumers can keep "the highest version per key".

Staged pages and their checkpoint (the next page token after the last, pages done) are written in one
transaction (:meth:`Records.stage_pages`: the pipeline stages a few pages at a time, and a unit's last pages
with its commit, :meth:`Records.commit_unit` ``pending``), so a process killed at any point resumes from a
consistent state: a committed unit is complete, a staged one continues from its token (or restarts from page
one if the token has expired).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from dbcost.models import CostQuery, CostRecord, Quarantined
from dbcost.parse import ParsedPage
from dbcost.sinks.base import SinkRecord, UnitRef
from dbcost.store._db import Row, Staged, StoreBase, now, operation
from dbcost.store._schema import UnitStatus

__all__ = ["Records", "StageBatch", "UnitDiff", "stage_batch"]

#: the operation of a query written before the store knew operations (and of a CostQuery without one)
DEFAULT_OPERATION = "GetCostAndUsage"

#: the staging columns a page provides, in table order (after unit_id and seq)
_STAGE_COLUMNS = ("period_start", "period_end", "key1", "key2", "metric", "amount_text", "unit", "estimated")

#: a staged row's columns as every statement on staging reads them (the unit's key aside)
_SEQ_COLUMNS = ", ".join(("seq", *_STAGE_COLUMNS))

#: the records of a unit's window
_RECORDS_IN_WINDOW = "dataset = $dataset AND target = $target AND period_start >= $start AND period_start < $end"
#: the quarantine entries of a unit's window (by period, or by the window they were found in)
_QUARANTINE_IN_WINDOW = ("dataset = $dataset AND target = $target AND ((period_start >= $start AND period_start < $end) "
                         "OR (window_start >= $wstart AND window_end <= $wend))")

_NAME = re.compile(r"\$([a-z_]+)")

# Joins on the natural key: key1/key2 may be NULL (a Total-only record), so compare NOT DISTINCT.
_SAME_KEY = (
    "n.period_start = o.period_start AND n.key1 IS NOT DISTINCT FROM o.key1 "
    "AND n.key2 IS NOT DISTINCT FROM o.key2 AND n.metric = o.metric"
)


@dataclass(frozen=True)
class UnitDiff:
    """What committing a unit changed in the store."""

    rows: int
    inserted: int
    changed: int
    deleted: int
    unchanged: int
    quarantined: int
    duplicates: int


def skey(run_id: str, unit_id: str) -> str:
    """Staging belongs to one run's attempt at a unit: another run starting the same unit afresh must not
    discard it (the first run may still be resumed from its saved page token)."""
    return f"{run_id}|{unit_id}"


@dataclass(frozen=True, slots=True)
class StageBatch:
    """Pages of one unit made ready for staging (:func:`stage_batch`): what waits in memory between a page's
    arrival and its staging, as compact Arrow columns rather than a Python object per record."""

    #: the rows: one Arrow array per column of ``_STAGE_COLUMNS``, None when the pages brought none
    rows: tuple[Any, ...] | None
    #: the quarantine entries (period_start, period_end, page, reason, raw) as one Arrow struct array, None
    #: when there are none
    quarantine: Any
    #: the last page's number and the token after it (the unit's checkpoint once staged)
    page: int
    next_token: str | None
    #: rows + quarantine entries
    size: int
    #: rows alone
    n_rows: int = 0
    #: the hashes of the rows' natural keys (period_start, key1, key2, metric), 8 bytes a row: the commit finds
    #: from them whether the unit holds a duplicate (a set of them, made then, for one unit at a time)
    keys: array[int] = field(default_factory=lambda: array("q"))


@functools.cache
def _schemas() -> tuple[Any, Any]:
    """The Arrow schemas of a staged row (with its sequence number) and of a quarantine entry."""
    import nanoarrow as na

    rows = na.struct({"seq": na.int64(), **{name: na.bool_() if name == "estimated" else na.string()
                                           for name in _STAGE_COLUMNS}})
    quarantine = na.struct({"period_start": na.string(), "period_end": na.string(), "page": na.int32(),
                            "reason": na.string(), "raw": na.string()})
    return rows, quarantine


def stage_batch(key_names: Sequence[str], pages: Sequence[ParsedPage]) -> StageBatch:
    """Consecutive pages of a unit as one :class:`StageBatch` (pure; runs on the store's thread in a backfill).

    The hot path of a backfill (every record passes here once). A backfill's pages are columnar
    (:class:`~dbcost.parse.PageColumns`): their lists are the staging columns already; a page of records becomes
    rows by one comprehension over the record tuples (no method call per row, no row object). The columns become
    Arrow arrays, nanoarrow's (the Arrow project's C library): DuckDB reads them through the Arrow C interface,
    and a backfill loads neither pyarrow (about 30 MB of a process's memory) nor its import time. The batch also
    carries its rows' key hashes, from which the commit of a run this store began knows whether the unit holds
    a duplicate without searching for one."""
    import nanoarrow as na

    # a missing key name reads as "", which no record's keys hold: .get gives None without a branch per row
    k1 = key_names[0] if len(key_names) > 0 else ""
    k2 = key_names[1] if len(key_names) > 1 else ""
    # a columnar page's lists are the staging columns already; a page of records becomes rows, by one
    # comprehension over the record tuples (no method call per row, no row object).
    # CostRecord is (period_start, period_end, granularity, keys, metrics, estimated), Metric (amount, unit);
    # format(amount, "f") is money.fmt inline: for an amount received in plain notation, the exact string
    lists: list[list[Any]] = [[] for _ in _STAGE_COLUMNS]
    for p in pages:
        cols = p.columns
        if cols is not None and cols.names == tuple(key_names[:len(cols.names)]):
            page_lists: tuple[list[Any], ...] = (cols.period_start, cols.period_end, cols.key1, cols.key2,
                                                 cols.metric, cols.amount_text, cols.unit, cols.estimated)
            for out, col in zip(lists, page_lists, strict=True):
                out.extend(col)
            continue
        rows = [(r[0], r[1], r[3].get(k1), r[3].get(k2), name, format(m[0], "f"), m[1], r[5])
                for r in p.records for name, m in r[4].items()]
        for out, values in zip(lists, zip(*rows, strict=True), strict=False):
            out.extend(values)
    n_rows = len(lists[0])
    # the natural keys' hashes: the commit knows from them that a unit holds no duplicate without a search
    keys = array("q", map(hash, zip(lists[0], lists[2], lists[3], lists[4], strict=True)))
    columns = None
    if n_rows:
        string, boolean = na.string(), na.bool_()
        columns = tuple(na.c_array(col, boolean if name == "estimated" else string)
                        for name, col in zip(_STAGE_COLUMNS, lists, strict=True))
    quarantined = [q for p in pages for q in p.quarantined]
    qarray = None
    if quarantined:
        qarray = na.c_array_from_buffers(_schemas()[1], len(quarantined), [None], children=[
            na.c_array([q.period_start for q in quarantined], na.string()),
            na.c_array([q.period_end for q in quarantined], na.string()),
            na.c_array([q.page for q in quarantined], na.int32()),
            na.c_array([q.reason for q in quarantined], na.string()),
            na.c_array([orjson.dumps(q.raw, default=str).decode() for q in quarantined], na.string()),
        ])
    last = pages[-1]
    return StageBatch(columns, qarray, last.page, last.next_token, n_rows + len(quarantined), n_rows, keys)


def _named(sql: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values ``sql`` names (``$name``): DuckDB refuses a named parameter the statement does not use."""
    return {name: values[name] for name in set(_NAME.findall(sql))}


class Records(StoreBase):
    """Datasets and records (a part of :class:`~dbcost.store.Store`)."""

    #: the next staging sequence number (staged rows keep their arrival order across a crash)
    _seq: int

    # -------------------------------------------------------------------------------------- datasets

    @operation("register dataset")
    def register_dataset(self, query: CostQuery, label: str | None = None) -> str:
        """Record the dataset of ``query`` (its fingerprint), keeping an earlier label unless one is given."""
        cols: list[str | None] = [*query.columns, None, None]
        op = getattr(query, "operation", None) or DEFAULT_OPERATION
        self._db.run(
            "INSERT INTO datasets (dataset, granularity, metrics, key1_name, key2_name, query, label, created_at, "
            "operation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dataset) DO UPDATE SET "
            "label = COALESCE(excluded.label, datasets.label)",
            [query.fingerprint, query.granularity, list(query.metrics), cols[0], cols[1], query.model_dump_json(),
             label, now(), str(op)],
        )
        return query.fingerprint

    @operation("list datasets")
    def datasets(self) -> list[dict[str, Any]]:
        """Every dataset, oldest first: fingerprint, granularity, metrics, key names, label, operation, query."""
        rows = self._db.all(
            "SELECT dataset, granularity, metrics, key1_name, key2_name, label, query, operation FROM datasets "
            "ORDER BY created_at"
        )
        return [
            {"dataset": r[0], "granularity": r[1], "metrics": list(r[2]), "key_names": [n for n in r[3:5] if n],
             "label": r[5], "query": orjson.loads(r[6]), "operation": r[7]}
            for r in rows
        ]

    # ---------------------------------------------------------------------------------------- staging

    @operation("stage page")
    def stage_page(
        self,
        run_id: str,
        unit_id: str,
        key_names: Sequence[str],
        page: int,
        records: Sequence[CostRecord],
        quarantined: Sequence[Quarantined],
        next_token: str | None,
    ) -> None:
        """Stage one page (bulk through Arrow) and its checkpoint, atomically."""
        batch = stage_batch(key_names, [ParsedPage(page, list(records), list(quarantined), next_token)])
        self.stage_pages(run_id, unit_id, [batch])

    @operation("stage pages")
    def stage_pages(self, run_id: str, unit_id: str, batches: Sequence[StageBatch]) -> None:
        """Stage consecutive pages of a unit (prepared by :func:`stage_batch`; one bulk insert) and the checkpoint
        after the last (its page number and next token), atomically."""
        if not batches:
            return
        db = self._db
        with db.transaction():
            self._stage(run_id, unit_id, batches)
            last = batches[-1]
            db.run("UPDATE units SET pages = ?, next_token = ?, updated_at = ? WHERE run_id = ? AND unit_id = ?",
                   [last.page, last.next_token, now(), run_id, unit_id])
        if run_id in self._own_runs:
            staged = self._staged.setdefault(skey(run_id, unit_id), Staged())
            for b in batches:
                staged.keys.extend(b.keys)
                staged.quarantine += b.size - b.n_rows

    def _numbered(self, batches: Sequence[StageBatch]) -> tuple[Any, Any]:
        """The batches' rows as one Arrow array led by their staging sequence numbers (staged rows keep their
        arrival order: the first of a duplicate key wins on commit), and their quarantine entries as one; None
        for either when there is none. DuckDB may read either several times (an Arrow array, not a stream)."""
        import nanoarrow as na

        row_schema = _schemas()[0]
        chunks = []
        for b in batches:
            if b.rows is not None:
                base = self._seq
                self._seq += b.n_rows
                seq = na.c_array(range(base, base + b.n_rows), na.int64())
                chunks.append(na.c_array_from_buffers(row_schema, b.n_rows, [None], children=[seq, *b.rows]))
        qchunks = [b.quarantine for b in batches if b.quarantine is not None]
        rows = na.Array.from_chunks(chunks) if chunks else None
        quarantine = na.Array.from_chunks(qchunks) if qchunks else None
        return rows, quarantine

    def _stage(self, run_id: str, unit_id: str, batches: Sequence[StageBatch]) -> None:
        """Insert the batches' rows and quarantine entries into staging (inside the caller's transaction); the
        unit's staging key is a parameter of the INSERT, not a column repeated per row."""
        key = skey(run_id, unit_id)
        db = self._db
        table, qtable = self._numbered(batches)
        if table is not None:
            with db.registered("_stage_batch", table):
                db.run(f"INSERT INTO staging SELECT ?, {_SEQ_COLUMNS} FROM _stage_batch", [key])
        if qtable is not None:
            with db.registered("_stage_q", qtable):
                db.run("INSERT INTO staging_quarantine SELECT ?, period_start, period_end, page, reason, raw::JSON "
                       "FROM _stage_q", [key])

    # ------------------------------------------------------------------------------------------ commit

    @operation("commit unit")
    def commit_unit(self, run_id: str, version: int, unit: UnitRef, unit_id: str,
                    pending: Sequence[StageBatch] = (), *, done: bool = False) -> UnitDiff:
        """Replace the store's rows for the unit's window by its staged rows and the ``pending`` pages (its last
        pages, not staged yet: they go from memory straight into the records, in the same transaction, so a
        unit that fits in one batch costs one transaction and its rows are written once); log what changed.
        ``done``: no sink is to receive the unit, so it is done once committed (its checkpoint, in the same
        transaction)."""
        db = self._db
        # the statements' named parameters
        values: dict[str, Any] = {
            "key": skey(run_id, unit_id), "dataset": unit.dataset, "target": unit.target,
            "start": unit.start.isoformat(), "end": unit.end.isoformat(), "wstart": unit.start, "wend": unit.end,
            "version": version, "run_id": run_id, "stamp": now(),
        }
        key = values["key"]
        # what earlier transactions staged for the unit (nothing when it fits in one batch) and whether its rows
        # share a natural key: known here for a run this store began (StoreBase), else looked up
        known = self._staged.get(key, Staged()) if run_id in self._own_runs else None
        look_sql = (
            ("" if known is not None else
             "(SELECT count(*) FROM staging WHERE unit_id = $key), "
             "(SELECT count(*) FROM staging_quarantine WHERE unit_id = $key), ")
            + f"EXISTS (SELECT 1 FROM records WHERE {_RECORDS_IN_WINDOW}), "
            f"EXISTS (SELECT 1 FROM quarantine WHERE {_QUARANTINE_IN_WINDOW})"
        )
        duplicated: bool | None = None
        if known is not None:
            hashes = (known.keys, *(b.keys for b in pending))
            duplicated = len(set(itertools.chain.from_iterable(hashes))) < sum(len(h) for h in hashes)
        with db.transaction():
            # one look at what the commit has to do: whether the window holds records (a rerun) or quarantine
            # entries already, and what is staged unless that is known
            look = db.one(f"SELECT {look_sql}", _named(look_sql, values))
            assert look is not None
            if known is not None:
                staged_rows, staged_quarantine = len(known.keys), known.quarantine
                has_old, old_quarantine = bool(look[0]), bool(look[1])
            else:
                staged_rows, staged_quarantine = int(look[0]), int(look[1])
                has_old, old_quarantine = bool(look[2]), bool(look[3])
            rows, quarantine = self._numbered(pending)
            with contextlib.ExitStack() as stack:
                if rows is not None:
                    stack.enter_context(db.registered("_pending", rows))
                if quarantine is not None:
                    stack.enter_context(db.registered("_pending_q", quarantine))
                diff = self._replace(unit, unit_id, values, staged=staged_rows > 0,
                                     pending=rows is not None, has_old=has_old, old_quarantine=old_quarantine,
                                     staged_quarantine=staged_quarantine,
                                     pending_quarantine=len(quarantine) if quarantine is not None else 0,
                                     last_page=pending[-1].page if pending else None, done=done,
                                     duplicated=duplicated)
        self._staged.pop(key, None)  # the commit emptied the unit's staging
        return diff

    def _replace(self, unit: UnitRef, unit_id: str, values: dict[str, Any], *, staged: bool, pending: bool,
                 has_old: bool, old_quarantine: bool, staged_quarantine: int, pending_quarantine: int,
                 last_page: int | None, done: bool, duplicated: bool | None = None) -> UnitDiff:
        """The body of :meth:`commit_unit`, inside its transaction (``values``: the statements' named
        parameters): the unit's rows are the staged ones (``staged``) followed by the pending ones (``pending``,
        registered as ``_pending``)."""
        db = self._db
        run_id = values["run_id"]

        def run(sql: str) -> None:
            db.run(sql, _named(sql, values))

        def one(sql: str) -> Row | None:
            return db.one(sql, _named(sql, values))

        parts = ([f"SELECT {_SEQ_COLUMNS} FROM staging WHERE unit_id = $key"] if staged else []) + (
            [f"SELECT {_SEQ_COLUMNS} FROM _pending"] if pending else [])
        source = f"({' UNION ALL '.join(parts or [f'SELECT {_SEQ_COLUMNS} FROM staging WHERE false'])})"
        # the unit's rows, first occurrence of each natural key (a later duplicate is quarantined); whether there
        # is any duplicate is known from the batches' key hashes (``duplicated``) or, when not, found by a
        # grouping for a fifth of the window function's cost; the window function runs only when there is one
        if duplicated is None:
            duplicated = one(f"SELECT 1 FROM {source} GROUP BY period_start, key1, key2, metric "
                             "HAVING count(*) > 1 LIMIT 1") is not None
        dup_rows: list[Row] = []
        new = source
        if duplicated:
            # read twice below (the duplicates, then the rows kept): materialised once
            run("DROP TABLE IF EXISTS _new")
            run(f"CREATE TEMP TABLE _new AS SELECT *, row_number() OVER (PARTITION BY period_start, key1, key2, "
                f"metric ORDER BY seq) AS _rn FROM {source}")
            dup_rows = db.all(
                "SELECT period_start, period_end, key1, key2, metric, amount_text, unit FROM _new WHERE _rn > 1"
            )
            run("DELETE FROM _new WHERE _rn > 1")
            new = "_new"
        if has_old:
            # a rerun or a restatement: the unit's rows against the window's stored ones, joined once (a full join:
            # new, changed, unchanged and vanished rows alike) into one table that the counts, the change log and
            # the replacement then read
            run("DROP TABLE IF EXISTS _cmp")
            run(
                f"""
                CREATE TEMP TABLE _cmp AS
                SELECT n.seq, n.period_start, n.period_end, n.key1, n.key2, n.metric, n.amount_text, n.unit,
                       n.estimated, o.period_start AS o_period_start, o.key1 AS o_key1, o.key2 AS o_key2,
                       o.metric AS o_metric, o.amount AS o_amount, o.version AS o_version, o.run_id AS o_run_id,
                       CASE WHEN o.metric IS NULL THEN 'inserted' WHEN n.metric IS NULL THEN 'deleted'
                            WHEN o.amount_text <> n.amount_text OR o.unit <> n.unit OR o.estimated <> n.estimated
                            THEN 'changed' ELSE 'unchanged' END AS kind
                FROM {new} n FULL OUTER JOIN (SELECT * FROM records WHERE {_RECORDS_IN_WINDOW}) o ON {_SAME_KEY}
                """
            )
            counts = one(
                "SELECT count(*) FILTER (WHERE kind = 'inserted'), count(*) FILTER (WHERE kind = 'changed'), "
                "count(*) FILTER (WHERE kind = 'deleted'), count(*) FILTER (WHERE kind <> 'deleted') FROM _cmp"
            )
            assert counts is not None
            inserted, changed, deleted, total = (int(c) for c in counts)
            if changed or deleted:
                # change log: changed and deleted rows (new rows are only counted, a backfill would log everything)
                run(
                    """
                    INSERT INTO changes
                    SELECT $run_id, $dataset, $target, coalesce(period_start, o_period_start),
                           CASE WHEN kind = 'deleted' THEN o_key1 ELSE key1 END,
                           CASE WHEN kind = 'deleted' THEN o_key2 ELSE key2 END,
                           coalesce(metric, o_metric), kind, o_amount,
                           CASE WHEN kind = 'deleted' THEN NULL ELSE amount_text::DECIMAL(38,10) END, $stamp
                    FROM _cmp WHERE kind IN ('changed', 'deleted')
                    ORDER BY kind, seq
                    """
                )
            # replace: unchanged rows keep their version, new/changed rows take this run's
            run(f"DELETE FROM records WHERE {_RECORDS_IN_WINDOW}")
            run(
                """
                INSERT INTO records
                SELECT $dataset, $target, period_start, period_end, key1, key2, metric,
                       amount_text::DECIMAL(38,10), amount_text, unit, estimated,
                       CASE WHEN kind = 'unchanged' THEN o_version ELSE $version END,
                       CASE WHEN kind = 'unchanged' THEN o_run_id ELSE $run_id END,
                       $stamp
                FROM _cmp WHERE kind <> 'deleted'
                ORDER BY seq
                """
            )
            run("DROP TABLE _cmp")
        else:
            # the window holds nothing yet (a first backfill): every row is new, nothing changed or vanished,
            # so the joins against the old rows and the change log have nothing to do; the INSERT counts the rows.
            # No ORDER BY seq: the source is read in arrival order already (staged rows, then pending ones), and
            # no read depends on the records' physical order (each orders what it reads); the sort was a third
            # of the INSERT
            written = one(
                "INSERT INTO records SELECT $dataset, $target, n.period_start, n.period_end, n.key1, n.key2, n.metric, "
                "n.amount_text::DECIMAL(38,10), n.amount_text, n.unit, n.estimated, $version, $run_id, $stamp "
                f"FROM {new} n"
            )
            total = int(written[0]) if written else 0
            inserted, changed, deleted = total, 0, 0
        if new == "_new":
            run("DROP TABLE _new")
        # quarantine of this window: replaced too, so it always describes the current data
        if old_quarantine:
            run(f"DELETE FROM quarantine WHERE {_QUARANTINE_IN_WINDOW}")
        if staged_quarantine:
            run("INSERT INTO quarantine SELECT $dataset, $target, $wstart, $wend, period_start, period_end, page, "
                "reason, raw, $run_id, $stamp FROM staging_quarantine WHERE unit_id = $key")
        if pending_quarantine:
            run("INSERT INTO quarantine SELECT $dataset, $target, $wstart, $wend, period_start, period_end, page, "
                "reason, raw::JSON, $run_id, $stamp FROM _pending_q")
        for d in dup_rows:
            db.run(
                "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, 0, "
                "'duplicate row: same period, keys and metric already staged for this unit', ?::JSON, ?, ?)",
                [unit.dataset, unit.target, unit.start, unit.end, d[0], d[1],
                 orjson.dumps({"key1": d[2], "key2": d[3], "metric": d[4], "amount": d[5], "unit": d[6]}).decode(),
                 run_id, values["stamp"]],
            )
        nq = staged_quarantine + pending_quarantine + len(dup_rows)
        if staged:
            run("DELETE FROM staging WHERE unit_id = $key")
        if staged_quarantine:
            run("DELETE FROM staging_quarantine WHERE unit_id = $key")
        db.run(
            "UPDATE units SET status = ?, records = ?, quarantined = ?, inserted = ?, changed = ?, "
            "deleted = ?, next_token = NULL, pages = coalesce(?, pages), updated_at = ? "
            "WHERE run_id = ? AND unit_id = ?",
            [UnitStatus.DONE if done else UnitStatus.COMMITTED, total, nq, inserted, changed, deleted, last_page,
             values["stamp"], run_id, unit_id],
        )
        return UnitDiff(total, inserted, changed, deleted, total - inserted - changed, nq, len(dup_rows))

    @operation("read deleted keys")
    def deleted_keys(self, run_id: str, unit: UnitRef) -> list[tuple[str, str | None, str | None]]:
        """(period_start, key1, key2) of records this run deleted from the unit's window."""
        rows = self._db.all(
            "SELECT DISTINCT period_start, key1, key2 FROM changes WHERE run_id = ? AND dataset = ? AND target = ? "
            "AND kind = 'deleted' AND period_start >= ? AND period_start < ? ORDER BY 1, 2, 3",
            [run_id, unit.dataset, unit.target, unit.start.isoformat(), unit.end.isoformat()],
        )
        return [(str(r[0]), r[1], r[2]) for r in rows]

    # ---------------------------------------------------------------------------------------- reading

    @operation("read records")
    def iter_records(
        self,
        *,
        dataset: str | None = None,
        target: str | None = None,
        start: str | None = None,
        end: str | None = None,
        batch_rows: int = 50_000,
    ) -> Iterator[list[dict[str, Any]]]:
        """Stored records reassembled into the ``dbcost fetch`` JSONL shape (+ dataset, target, version,
        run_id), in (dataset, target, period, keys) order, in bounded batches."""
        where, params = ["TRUE"], []
        for col, val, op in (("r.dataset", dataset, "="), ("r.target", target, "="),
                             ("r.period_start", start, ">="), ("r.period_start", end, "<")):
            if val is not None:
                where.append(f"{col} {op} ?")
                params.append(val)
        sql = f"""
            SELECT r.dataset, r.target, r.period_start, r.period_end, d.granularity, d.key1_name, d.key2_name,
                   r.key1, r.key2, r.metric, r.amount_text, r.unit, r.estimated, r.version, r.run_id
            FROM records r JOIN datasets d USING (dataset)
            WHERE {' AND '.join(where)}
            ORDER BY r.dataset, r.target, r.period_start, r.key1 NULLS FIRST, r.key2 NULLS FIRST, r.metric
        """
        with self._db.rows(sql, params, batch_rows=batch_rows) as result:
            current: dict[str, Any] | None = None
            ident: tuple[Any, ...] | None = None
            out: list[dict[str, Any]] = []
            for rows in result:
                for (ds, tg, ps, pe, gran, n1, n2, k1, k2, metric, amount, unit, est, version, run_id) in rows:
                    this = (ds, tg, ps, k1, k2)
                    if this != ident:
                        if current is not None:
                            out.append(current)
                        ident = this
                        keys: dict[str, str] = {}
                        if n1 is not None and k1 is not None:
                            keys[n1] = k1
                        if n2 is not None and k2 is not None:
                            keys[n2] = k2
                        current = {"period_start": ps, "period_end": pe, "granularity": gran, "keys": keys,
                                   "metrics": {}, "estimated": bool(est), "dataset": ds, "target": tg,
                                   "version": int(version), "run_id": run_id}
                    assert current is not None
                    current["metrics"][metric] = {"amount": amount, "unit": unit}
                    current["estimated"] = current["estimated"] or bool(est)
                    current["version"] = max(current["version"], int(version))
                if len(out) >= 1000:
                    yield out
                    out = []
            if current is not None:
                out.append(current)
            if out:
                yield out

    @operation("read unit for sinks")
    def unit_sink_records(self, run_id: str, unit: UnitRef) -> Iterator[list[SinkRecord]]:
        """The unit's committed records (and this run's deletions) as sink batches, in period order."""
        for batch in self.iter_records(dataset=unit.dataset, target=unit.target, start=unit.start.isoformat(),
                                       end=unit.end.isoformat()):
            out = []
            for rec in batch:
                version, rid = rec.pop("version"), rec.pop("run_id")
                del rec["dataset"], rec["target"]  # the unit's, as iter_records was asked for
                out.append(SinkRecord.from_record(unit, rec, version=version, run_id=rid))
            yield out
        deleted = self.deleted_keys(run_id, unit)
        if deleted:
            version = int(self._db.scalar("SELECT version FROM runs WHERE run_id = ?", [run_id]) or 0)
            out = []
            for ps, k1, k2 in deleted:
                keys = {n: v for n, v in zip(unit.key_names, (k1, k2), strict=False) if v is not None}
                out.append(SinkRecord.from_record(unit, {"period_start": ps, "granularity": unit.granularity,
                                                         "keys": keys}, version=version, run_id=run_id, deleted=True))
            yield out
