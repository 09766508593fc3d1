"""The embedded store: one DuckDB file holding records, quarantine, runs, checkpoints and change history.

Records are long (one row per record and metric) with ``amount DECIMAL(38,10)`` plus ``amount_text``,
the string exactly as received (what exports write back out). The natural key is
(dataset, target, period_start, key1, key2, metric); ``dataset`` is the query fingerprint.

Writes are idempotent by *unit replacement*: a unit's pages are staged (bulk, through Arrow), and
``commit_unit`` replaces everything the store holds for (dataset, target, period in the unit's window)
by the staged rows, in one transaction. A rerun, a resume or a restatement therefore replaces, never
adds; a group that vanished in a restatement disappears (and is logged as deleted). Versions: a row
keeps its version while its value is unchanged and takes the run's (strictly increasing) version when
it is new or changed, so downstream consumers can keep "the highest version per key".

The unit's staging rows and its page checkpoint (next page token, pages done) are written in the same
transaction, so a process killed at any point resumes from a consistent state: a committed unit is
complete, a staged one continues from its token (or restarts from page one if the token has expired).

All DuckDB calls run on one dedicated thread (:class:`AsyncStore`): a DuckDB connection must not be used
from several threads at once, and bulk statements must not block the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from dbcost.config import DEFAULT_DB, StoreSettings
from dbcost.errors import ConfigError, StoreError
from dbcost.models import CostQuery, CostRecord, Quarantined
from dbcost.money import fmt
from dbcost.sinks.base import SinkRecord, UnitRef

__all__ = ["SCHEMA_VERSION", "AsyncStore", "Store", "UnitDiff", "UnitProgress", "open_store"]

T = TypeVar("T")
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS datasets (
    dataset VARCHAR PRIMARY KEY,
    granularity VARCHAR NOT NULL,
    metrics VARCHAR[] NOT NULL,
    key1_name VARCHAR,
    key2_name VARCHAR,
    query JSON NOT NULL,
    label VARCHAR,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    dataset VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    period_start VARCHAR NOT NULL,
    period_end VARCHAR NOT NULL,
    key1 VARCHAR,
    key2 VARCHAR,
    metric VARCHAR NOT NULL,
    amount DECIMAL(38,10) NOT NULL,
    amount_text VARCHAR NOT NULL,
    unit VARCHAR NOT NULL,
    estimated BOOLEAN NOT NULL,
    version BIGINT NOT NULL,
    run_id VARCHAR NOT NULL,
    fetched_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS staging (
    unit_id VARCHAR NOT NULL,
    seq BIGINT NOT NULL,
    period_start VARCHAR NOT NULL,
    period_end VARCHAR NOT NULL,
    key1 VARCHAR,
    key2 VARCHAR,
    metric VARCHAR NOT NULL,
    amount_text VARCHAR NOT NULL,
    unit VARCHAR NOT NULL,
    estimated BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS staging_quarantine (
    unit_id VARCHAR NOT NULL,
    period_start VARCHAR,
    period_end VARCHAR,
    page INTEGER NOT NULL,
    reason VARCHAR NOT NULL,
    raw JSON
);
CREATE TABLE IF NOT EXISTS quarantine (
    dataset VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    window_start DATE NOT NULL,
    window_end DATE NOT NULL,
    period_start VARCHAR,
    period_end VARCHAR,
    page INTEGER NOT NULL,
    reason VARCHAR NOT NULL,
    raw JSON,
    run_id VARCHAR NOT NULL,
    quarantined_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    command VARCHAR NOT NULL,
    plan_id VARCHAR,
    version BIGINT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status VARCHAR NOT NULL,
    args JSON,
    stats JSON,
    incomplete_targets VARCHAR[]
);
CREATE TABLE IF NOT EXISTS units (
    run_id VARCHAR NOT NULL,
    unit_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    window_start DATE NOT NULL,
    window_end DATE NOT NULL,
    status VARCHAR NOT NULL,
    pages INTEGER NOT NULL DEFAULT 0,
    next_token VARCHAR,
    records BIGINT NOT NULL DEFAULT 0,
    quarantined BIGINT NOT NULL DEFAULT 0,
    inserted BIGINT NOT NULL DEFAULT 0,
    changed BIGINT NOT NULL DEFAULT 0,
    deleted BIGINT NOT NULL DEFAULT 0,
    error VARCHAR,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    run_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    period_start VARCHAR NOT NULL,
    key1 VARCHAR,
    key2 VARCHAR,
    metric VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    old_amount DECIMAL(38,10),
    new_amount DECIMAL(38,10),
    changed_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS quota_state (
    pool VARCHAR NOT NULL,
    month VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    detail JSON,
    changed_at TIMESTAMP NOT NULL
);
"""

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


@dataclass(frozen=True)
class UnitProgress:
    """A unit's checkpoint as stored."""

    status: str
    pages: int
    next_token: str | None


def _skey(run_id: str, unit_id: str) -> str:
    """Staging belongs to one run's attempt at a unit: another run starting the same unit afresh must not
    discard it (the first run may still be resumed from its saved page token)."""
    return f"{run_id}|{unit_id}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Store:
    """Synchronous DuckDB store (use :class:`AsyncStore` from async code)."""

    def __init__(self, path: str | Path | StoreSettings, *, read_only: bool = False) -> None:
        import duckdb

        self.settings = path if isinstance(path, StoreSettings) else StoreSettings(path=Path(path))
        self.path = self.settings.path
        if not read_only and not self.path.parent.exists():
            raise ConfigError(f"--db {self.path}: directory {self.path.parent} does not exist")
        if read_only and not self.path.exists():
            raise ConfigError(f"--db {self.path}: no such store (run `dbcost backfill` first)")
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"--db {self.path}: cannot open: {exc}") from exc
        self._duckdb = duckdb
        self._seq = 0
        # DuckDB's default cache is 80% of RAM; a bounded cache keeps a long backfill's memory flat
        # (DuckDB spills to <db>.tmp beyond it).
        with self._errors("configure"):
            self.con.execute(f"SET memory_limit = '{self.settings.memory_limit}'")
            # Rows committed since the last checkpoint stay in memory: checkpoint more often than the
            # 16 MB default so a long run's memory does not grow with its range.
            self.con.execute(f"SET checkpoint_threshold = '{self.settings.checkpoint_threshold}'")
        if not read_only:
            self._migrate()
            # staging rows of a killed run survive; new ones continue after them, in order
            row = self.con.execute("SELECT coalesce(max(seq) + 1, 0) FROM staging").fetchone()
            self._seq = int(row[0]) if row else 0

    # ------------------------------------------------------------------------------------ lifecycle

    def _migrate(self) -> None:
        with self._errors("create schema"):
            self.con.execute(_SCHEMA)
            row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self.con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: store schema version {row[0]} is newer than this dbcost ({SCHEMA_VERSION})"
                )

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    class _Errors:
        def __init__(self, store: Store, what: str) -> None:
            self.store, self.what = store, what

        def __enter__(self) -> None:
            return None

        def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
            if exc is not None and isinstance(exc, self.store._duckdb.Error):
                raise StoreError(f"store {self.store.path}: {self.what}: {exc}") from exc

    def _errors(self, what: str) -> Store._Errors:
        return Store._Errors(self, what)

    def _tx(self, fn: Callable[[], T], what: str) -> T:
        with self._errors(what):
            self.con.execute("BEGIN TRANSACTION")
            try:
                out = fn()
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            self.con.execute("COMMIT")
            return out

    # -------------------------------------------------------------------------------------- datasets

    def register_dataset(self, query: CostQuery, label: str | None = None) -> str:
        cols: list[str | None] = [*query.columns, None, None]
        with self._errors("register dataset"):
            self.con.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dataset) DO UPDATE SET "
                "label = COALESCE(excluded.label, datasets.label)",
                [query.fingerprint, query.granularity, list(query.metrics), cols[0], cols[1],
                 query.model_dump_json(), label, _now()],
            )
        return query.fingerprint

    def datasets(self) -> list[dict[str, Any]]:
        rows = self.con.execute(
            "SELECT dataset, granularity, metrics, key1_name, key2_name, label, query FROM datasets ORDER BY created_at"
        ).fetchall()
        return [
            {"dataset": r[0], "granularity": r[1], "metrics": list(r[2]), "key_names": [n for n in r[3:5] if n],
             "label": r[5], "query": orjson.loads(r[6])}
            for r in rows
        ]

    def pages_per_day(self) -> dict[str, float]:
        """Pages per day of window, per dataset, from completed units (the planner's estimate)."""
        rows = self.con.execute(
            "SELECT dataset, sum(pages)::DOUBLE / sum(date_diff('day', window_start, window_end)) FROM units "
            "WHERE status = 'done' AND pages > 0 GROUP BY dataset"
        ).fetchall()
        return {r[0]: float(r[1]) for r in rows}

    # ------------------------------------------------------------------------------------------ runs

    def begin_run(self, command: str, *, plan_id: str | None, args: dict[str, Any]) -> tuple[str, int]:
        """A new run and its version (strictly greater than every earlier run's)."""
        run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"

        def tx() -> int:
            row = self.con.execute("SELECT max(version) FROM runs").fetchone()
            last = int(row[0]) if row and row[0] is not None else 0
            version = max(int(time.time() * 1000), last + 1)
            if plan_id is not None:
                # a fresh run of a plan supersedes its unfinished runs: they can no longer be resumed
                stale = [r[0] for r in self.con.execute(
                    "SELECT run_id FROM runs WHERE plan_id = ? AND status NOT IN ('done', 'abandoned')", [plan_id]
                ).fetchall()]
                for old in stale:
                    self.con.execute("UPDATE runs SET status = 'abandoned' WHERE run_id = ?", [old])
                    self.con.execute("DELETE FROM staging WHERE unit_id LIKE ?", [f"{old}|%"])
                    self.con.execute("DELETE FROM staging_quarantine WHERE unit_id LIKE ?", [f"{old}|%"])
            self.con.execute(
                "INSERT INTO runs (run_id, command, plan_id, version, started_at, status, args) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?)",
                [run_id, command, plan_id, version, _now(), orjson.dumps(args, default=str).decode()],
            )
            return version

        return run_id, self._tx(tx, "begin run")

    def resumable_run(self, plan_id: str) -> tuple[str, int] | None:
        """The latest run of this plan that did not finish, if any."""
        row = self.con.execute(
            "SELECT run_id, version FROM runs WHERE plan_id = ? AND status NOT IN ('done', 'abandoned') "
            "ORDER BY started_at DESC LIMIT 1",
            [plan_id],
        ).fetchone()
        return (str(row[0]), int(row[1])) if row else None

    def reopen_run(self, run_id: str) -> None:
        with self._errors("reopen run"):
            self.con.execute("UPDATE runs SET status = 'running', finished_at = NULL WHERE run_id = ?", [run_id])

    def finish_run(self, run_id: str, status: str, stats: dict[str, Any], incomplete_targets: Sequence[str]) -> None:
        with self._errors("finish run"):
            if status == "done":  # nothing left to resume: drop whatever staging a failed attempt left
                self.con.execute("DELETE FROM staging WHERE unit_id LIKE ?", [f"{run_id}|%"])
                self.con.execute("DELETE FROM staging_quarantine WHERE unit_id LIKE ?", [f"{run_id}|%"])
            self.con.execute(
                "UPDATE runs SET status = ?, finished_at = ?, stats = ?, incomplete_targets = ? WHERE run_id = ?",
                [status, _now(), orjson.dumps(stats, default=str).decode(), list(incomplete_targets), run_id],
            )

    # ----------------------------------------------------------------------------------------- units

    def unit_progress(self, run_id: str, unit_id: str) -> UnitProgress | None:
        row = self.con.execute(
            "SELECT status, pages, next_token FROM units WHERE run_id = ? AND unit_id = ?", [run_id, unit_id]
        ).fetchone()
        return UnitProgress(str(row[0]), int(row[1]), row[2]) if row else None

    def done_units(self, run_id: str) -> set[str]:
        rows = self.con.execute("SELECT unit_id FROM units WHERE run_id = ? AND status = 'done'", [run_id]).fetchall()
        return {str(r[0]) for r in rows}

    def start_unit(self, run_id: str, unit: UnitRef, unit_id: str, *, fresh: bool) -> None:
        """Mark a unit in progress; ``fresh`` discards anything staged for it before (a restart)."""

        def tx() -> None:
            if fresh:
                self.con.execute("DELETE FROM staging WHERE unit_id = ?", [_skey(run_id, unit_id)])
                self.con.execute("DELETE FROM staging_quarantine WHERE unit_id = ?", [_skey(run_id, unit_id)])
                self.con.execute("DELETE FROM units WHERE run_id = ? AND unit_id = ?", [run_id, unit_id])
            exists = self.con.execute(
                "SELECT 1 FROM units WHERE run_id = ? AND unit_id = ?", [run_id, unit_id]
            ).fetchone()
            if exists is None:
                self.con.execute(
                    "INSERT INTO units (run_id, unit_id, dataset, target, window_start, window_end, status, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
                    [run_id, unit_id, unit.dataset, unit.target, unit.start, unit.end, _now()],
                )

        self._tx(tx, "start unit")

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
        import pyarrow as pa

        cols: dict[str, list[Any]] = {k: [] for k in ("period_start", "period_end", "key1", "key2", "metric",
                                                      "amount_text", "unit", "estimated")}
        k1 = key_names[0] if len(key_names) > 0 else None
        k2 = key_names[1] if len(key_names) > 1 else None
        for r in records:
            key1 = r.keys.get(k1) if k1 is not None else None
            key2 = r.keys.get(k2) if k2 is not None else None
            for name, m in r.metrics.items():
                cols["period_start"].append(r.period_start)
                cols["period_end"].append(r.period_end)
                cols["key1"].append(key1)
                cols["key2"].append(key2)
                cols["metric"].append(name)
                cols["amount_text"].append(fmt(m.amount))
                cols["unit"].append(m.unit)
                cols["estimated"].append(r.estimated)
        n = len(cols["metric"])
        base = self._seq
        self._seq += n
        table = pa.table({
            "unit_id": pa.array([_skey(run_id, unit_id)] * n, pa.string()),
            "seq": pa.array(range(base, base + n), pa.int64()),
            **{k: pa.array(v, pa.bool_() if k == "estimated" else pa.string()) for k, v in cols.items()},
        })
        qtable = pa.table({
            "unit_id": pa.array([_skey(run_id, unit_id)] * len(quarantined), pa.string()),
            "period_start": pa.array([q.period_start for q in quarantined], pa.string()),
            "period_end": pa.array([q.period_end for q in quarantined], pa.string()),
            "page": pa.array([q.page for q in quarantined], pa.int32()),
            "reason": pa.array([q.reason for q in quarantined], pa.string()),
            "raw": pa.array([orjson.dumps(q.raw, default=str).decode() for q in quarantined], pa.string()),
        })

        def tx() -> None:
            if n:
                self.con.register("_stage_batch", table)
                self.con.execute("INSERT INTO staging SELECT * FROM _stage_batch")
                self.con.unregister("_stage_batch")
            if quarantined:
                self.con.register("_stage_q", qtable)
                self.con.execute(
                    "INSERT INTO staging_quarantine SELECT unit_id, period_start, period_end, page, reason, "
                    "raw::JSON FROM _stage_q"
                )
                self.con.unregister("_stage_q")
            self.con.execute(
                "UPDATE units SET pages = ?, next_token = ?, updated_at = ? WHERE run_id = ? AND unit_id = ?",
                [page, next_token, _now(), run_id, unit_id],
            )

        self._tx(tx, "stage page")

    def commit_unit(self, run_id: str, version: int, unit: UnitRef, unit_id: str) -> UnitDiff:
        """Replace the store's rows for the unit's window by its staged rows; log what changed."""
        now = _now()
        params_range = [unit.dataset, unit.target, unit.start.isoformat(), unit.end.isoformat()]
        skey = _skey(run_id, unit_id)

        def tx() -> UnitDiff:
            con = self.con
            # the staged rows, first occurrence of each natural key (a later duplicate is quarantined)
            con.execute("DROP TABLE IF EXISTS _new")
            con.execute(
                "CREATE TEMP TABLE _new AS SELECT *, row_number() OVER (PARTITION BY period_start, key1, key2, metric "
                "ORDER BY seq) AS _rn FROM staging WHERE unit_id = ?",
                [skey],
            )
            dup_rows = con.execute(
                "SELECT period_start, period_end, key1, key2, metric, amount_text, unit FROM _new WHERE _rn > 1"
            ).fetchall()
            con.execute("DELETE FROM _new WHERE _rn > 1")
            con.execute("DROP TABLE IF EXISTS _old")
            con.execute(
                "CREATE TEMP TABLE _old AS SELECT * FROM records WHERE dataset = ? AND target = ? "
                "AND period_start >= ? AND period_start < ?",
                params_range,
            )
            counts = con.execute(
                f"""
                SELECT
                    count(*) FILTER (WHERE o.metric IS NULL) AS inserted,
                    count(*) FILTER (WHERE o.metric IS NOT NULL AND (o.amount_text <> n.amount_text
                        OR o.unit <> n.unit OR o.estimated <> n.estimated)) AS changed,
                    count(*) AS total
                FROM _new n LEFT JOIN _old o ON {_SAME_KEY}
                """
            ).fetchone()
            assert counts is not None
            inserted, changed, total = (int(c) for c in counts)
            deleted_row = con.execute(
                f"SELECT count(*) FROM _old o WHERE NOT EXISTS (SELECT 1 FROM _new n WHERE {_SAME_KEY})"
            ).fetchone()
            deleted = int(deleted_row[0]) if deleted_row else 0
            # change log: changed and deleted rows (new rows are only counted, a backfill would log everything)
            con.execute(
                f"""
                INSERT INTO changes
                SELECT ?, ?, ?, n.period_start, n.key1, n.key2, n.metric, 'changed', o.amount,
                       n.amount_text::DECIMAL(38,10), ?
                FROM _new n JOIN _old o ON {_SAME_KEY}
                WHERE o.amount_text <> n.amount_text OR o.unit <> n.unit OR o.estimated <> n.estimated
                """,
                [run_id, unit.dataset, unit.target, now],
            )
            con.execute(
                f"""
                INSERT INTO changes
                SELECT ?, ?, ?, o.period_start, o.key1, o.key2, o.metric, 'deleted', o.amount, NULL, ?
                FROM _old o WHERE NOT EXISTS (SELECT 1 FROM _new n WHERE {_SAME_KEY})
                """,
                [run_id, unit.dataset, unit.target, now],
            )
            # replace: unchanged rows keep their version, new/changed rows take this run's
            con.execute(
                "DELETE FROM records WHERE dataset = ? AND target = ? AND period_start >= ? AND period_start < ?",
                params_range,
            )
            con.execute(
                f"""
                INSERT INTO records
                SELECT ?, ?, n.period_start, n.period_end, n.key1, n.key2, n.metric,
                       n.amount_text::DECIMAL(38,10), n.amount_text, n.unit, n.estimated,
                       CASE WHEN o.metric IS NOT NULL AND o.amount_text = n.amount_text AND o.unit = n.unit
                                 AND o.estimated = n.estimated THEN o.version ELSE ? END,
                       CASE WHEN o.metric IS NOT NULL AND o.amount_text = n.amount_text AND o.unit = n.unit
                                 AND o.estimated = n.estimated THEN o.run_id ELSE ? END,
                       ?
                FROM _new n LEFT JOIN _old o ON {_SAME_KEY}
                ORDER BY n.seq
                """,
                [unit.dataset, unit.target, version, run_id, now],
            )
            # quarantine of this window: replaced too, so it always describes the current data
            con.execute(
                "DELETE FROM quarantine WHERE dataset = ? AND target = ? AND "
                "((period_start >= ? AND period_start < ?) OR (window_start >= ? AND window_end <= ?))",
                [*params_range, unit.start, unit.end],
            )
            con.execute(
                "INSERT INTO quarantine SELECT ?, ?, ?, ?, period_start, period_end, page, reason, raw, ?, ? "
                "FROM staging_quarantine WHERE unit_id = ?",
                [unit.dataset, unit.target, unit.start, unit.end, run_id, now, skey],
            )
            for d in dup_rows:
                con.execute(
                    "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, 0, "
                    "'duplicate row: same period, keys and metric already staged for this unit', ?::JSON, ?, ?)",
                    [unit.dataset, unit.target, unit.start, unit.end, d[0], d[1],
                     orjson.dumps({"key1": d[2], "key2": d[3], "metric": d[4], "amount": d[5], "unit": d[6]}).decode(),
                     run_id, now],
                )
            q_row = con.execute(
                "SELECT count(*) FROM staging_quarantine WHERE unit_id = ?", [skey]
            ).fetchone()
            nq = (int(q_row[0]) if q_row else 0) + len(dup_rows)
            con.execute("DELETE FROM staging WHERE unit_id = ?", [skey])
            con.execute("DELETE FROM staging_quarantine WHERE unit_id = ?", [skey])
            con.execute("DROP TABLE _new")
            con.execute("DROP TABLE _old")
            con.execute(
                "UPDATE units SET status = 'committed', records = ?, quarantined = ?, inserted = ?, changed = ?, "
                "deleted = ?, next_token = NULL, updated_at = ? WHERE run_id = ? AND unit_id = ?",
                [total, nq, inserted, changed, deleted, now, run_id, unit_id],
            )
            return UnitDiff(total, inserted, changed, deleted, total - inserted - changed, nq, len(dup_rows))

        return self._tx(tx, "commit unit")

    def checkpoint_unit(self, run_id: str, unit_id: str) -> None:
        """The unit is committed and every sink has it durably: done."""
        with self._errors("checkpoint unit"):
            self.con.execute(
                "UPDATE units SET status = 'done', updated_at = ? WHERE run_id = ? AND unit_id = ?",
                [_now(), run_id, unit_id],
            )

    def fail_unit(self, run_id: str, unit_id: str, error: str) -> None:
        with self._errors("record unit failure"):
            self.con.execute(
                "UPDATE units SET status = 'failed', error = ?, updated_at = ? WHERE run_id = ? AND unit_id = ?",
                [error[:2000], _now(), run_id, unit_id],
            )

    def deleted_keys(self, run_id: str, unit: UnitRef) -> list[tuple[str, str | None, str | None]]:
        """(period_start, key1, key2) of records this run deleted from the unit's window."""
        rows = self.con.execute(
            "SELECT DISTINCT period_start, key1, key2 FROM changes WHERE run_id = ? AND dataset = ? AND target = ? "
            "AND kind = 'deleted' AND period_start >= ? AND period_start < ? ORDER BY 1, 2, 3",
            [run_id, unit.dataset, unit.target, unit.start.isoformat(), unit.end.isoformat()],
        ).fetchall()
        return [(str(r[0]), r[1], r[2]) for r in rows]

    # --------------------------------------------------------------------------------------- reading

    def iter_records(
        self,
        *,
        dataset: str | None = None,
        target: str | None = None,
        start: str | None = None,
        end: str | None = None,
        batch_rows: int = 50_000,
    ) -> Iterator[list[dict[str, Any]]]:
        """Stored records reassembled into the ``dbcost fetch`` JSONL shape (+ dataset, target, version),
        in (dataset, target, period, keys) order, in bounded batches."""
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
        cur = self.con.cursor()
        try:
            cur.execute(sql, params)
            current: dict[str, Any] | None = None
            ident: tuple[Any, ...] | None = None
            out: list[dict[str, Any]] = []
            while True:
                rows = cur.fetchmany(batch_rows)
                if not rows:
                    break
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
        finally:
            cur.close()

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
            row = self.con.execute("SELECT version FROM runs WHERE run_id = ?", [run_id]).fetchone()
            version = int(row[0]) if row else 0
            out = []
            for ps, k1, k2 in deleted:
                keys = {n: v for n, v in zip(unit.key_names, (k1, k2), strict=False) if v is not None}
                out.append(SinkRecord.from_record(unit, {"period_start": ps, "granularity": unit.granularity,
                                                         "keys": keys}, version=version, run_id=run_id, deleted=True))
            yield out

    # ------------------------------------------------------------------------------------ quota state

    def quota_states(self, month: str) -> dict[str, str]:
        """The last *notified* status of every pool for ``month``."""
        rows = self.con.execute(
            "SELECT pool, status FROM quota_state q WHERE month = ? AND changed_at = "
            "(SELECT max(changed_at) FROM quota_state q2 WHERE q2.pool = q.pool AND q2.month = q.month)",
            [month],
        ).fetchall()
        return {str(p): str(s) for p, s in rows}

    def record_quota_states(self, month: str, states: dict[str, tuple[str, dict[str, Any]]]) -> None:
        """Remember what was notified: pool -> (status, detail). History is kept (one row per change)."""
        now = _now()

        def tx() -> None:
            for pool, (status, detail) in sorted(states.items()):
                self.con.execute("INSERT INTO quota_state VALUES (?, ?, ?, ?::JSON, ?)",
                                 [pool, month, status, orjson.dumps(detail, default=str).decode(), now])

        self._tx(tx, "record quota state")

    def quarantine_summary(self, datasets: Sequence[str], start: str, end: str) -> list[tuple[str, int]]:
        """(reason, count) of quarantined groups of ``datasets`` with a period in [start, end)."""
        if not datasets:
            return []
        marks = ", ".join("?" for _ in datasets)
        rows = self.con.execute(
            f"SELECT reason, count(*) FROM quarantine WHERE dataset IN ({marks}) AND "
            "(period_start IS NULL OR (period_start >= ? AND period_start < ?)) GROUP BY 1 ORDER BY 2 DESC, 1",
            [*datasets, start, end],
        ).fetchall()
        return [(str(r), int(n)) for r, n in rows]

    def freshness(self, datasets: Sequence[str]) -> list[tuple[str, str, dt.datetime | None, dt.date | None]]:
        """(target, dataset label, last completed unit, last day covered) per target and dataset."""
        if not datasets:
            return []
        marks = ", ".join("?" for _ in datasets)
        rows = self.con.execute(
            f"SELECT u.target, coalesce(d.label, u.dataset), max(u.updated_at), max(u.window_end) FROM units u "
            f"JOIN datasets d USING (dataset) WHERE u.status = 'done' AND u.dataset IN ({marks}) GROUP BY 1, 2 "
            "ORDER BY 1, 2",
            list(datasets),
        ).fetchall()
        return [(str(t), str(label), ts, we) for t, label, ts, we in rows]

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._errors("query"):
            return list(self.con.execute(sql, list(params)).fetchall())

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._errors("execute"):
            self.con.execute(sql, list(params))


class AsyncStore:
    """A :class:`Store` driven from async code: every call runs on one dedicated thread, in order."""

    def __init__(self, path: str | Path | StoreSettings) -> None:
        self.settings = path if isinstance(path, StoreSettings) else StoreSettings(path=Path(path))
        self.path = self.settings.path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbcost-store")
        self._store: Store | None = None

    async def __aenter__(self) -> AsyncStore:
        self._store = await self._run(lambda: Store(self.settings))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            await self._run(store.close)
        self._pool.shutdown(wait=True)

    @property
    def sync(self) -> Store:
        if self._store is None:
            raise RuntimeError("AsyncStore used outside 'async with'")
        return self._store

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn)

    async def call(self, fn: Callable[[Store], T]) -> T:
        store = self.sync
        return await self._run(lambda: fn(store))

    async def unit_sink_batches(self, run_id: str, unit: UnitRef) -> AsyncIterator[list[SinkRecord]]:
        """Stream a committed unit's sink records without blocking the loop (one batch at a time)."""
        it = await self.call(lambda s: s.unit_sink_records(run_id, unit))
        sentinel: list[SinkRecord] | None = None
        while True:
            batch = await self._run(lambda: next(it, sentinel))
            if batch is None:
                return
            yield batch


def open_store(store: StoreSettings | str | Path = DEFAULT_DB, *, read_only: bool = False) -> Store:
    """The store at ``store`` (a path or :class:`~dbcost.config.StoreSettings`), created or upgraded in place
    unless ``read_only``; use it as a context manager (``with dbcost.open_store("x.duckdb") as s:``)."""
    return Store(store, read_only=read_only)
