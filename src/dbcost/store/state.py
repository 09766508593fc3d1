"""Run state: runs and their versions, units and their page checkpoints, coverage, quota and advisory state, job
metadata.

A run is ``running`` until it finishes with its outcome's status (:class:`~dbcost.store.RunStatus`); a fresh
run of a plan *abandons* the plan's unfinished runs (they can no longer be resumed, their staging goes). A
unit is ``running`` while its pages are staged (``pages``, ``next_token`` are its checkpoint), ``committed``
once its records replaced the window, ``done`` once every sink has them (:class:`~dbcost.store.UnitStatus`).
*Coverage* is read from done units: which windows of a dataset a target has completed, and when. *Advisory
state* is one row per advisory identity and scope (``dbcost advise``): the month it was last evaluated for, the
advisory as then recorded, when it was first seen and resolved, and its version.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from dbcost.attribution.inventory import InventoryItem, InventoryScope
from dbcost.sinks.base import UnitRef
from dbcost.store._db import StoreBase, now, operation
from dbcost.store._schema import RunStatus, UnitStatus
from dbcost.store.records import skey

__all__ = ["AdvisoryRow", "DoneWindow", "State", "UnitProgress"]

#: run statuses that end a run for good: it is neither resumed nor superseded
_FINAL = (RunStatus.DONE, RunStatus.ABANDONED)
_FINAL_SQL = ", ".join(f"'{s}'" for s in _FINAL)
#: keys of ``meta`` the store owns; jobs keep their own keys beside them
_RESERVED_META = frozenset({"schema_version"})


@dataclass(frozen=True)
class UnitProgress:
    """A unit's checkpoint as stored."""

    status: str
    pages: int
    next_token: str | None


class DoneWindow(NamedTuple):
    """A window of a dataset a target has completed, and when a unit of it last completed."""

    start: dt.date
    end: dt.date
    updated_at: dt.datetime


class AdvisoryRow(NamedTuple):
    """One advisory's stored state: ``payload`` is the advisory as recorded (kind, cluster, team, service, account,
    region, monthly_cost, estimated_monthly_savings, action, evidence); ``resolved_at`` is None while open."""

    id: str
    month: str
    payload: dict[str, Any]
    first_seen: dt.datetime
    resolved_at: dt.datetime | None
    version: int


class State(StoreBase):
    """Runs, units, checkpoints, coverage and quota state (a part of :class:`~dbcost.store.Store`)."""

    # ------------------------------------------------------------------------------------------ runs

    @operation("begin run")
    def begin_run(self, command: str, *, plan_id: str | None, args: dict[str, Any]) -> tuple[str, int]:
        """A new run and its version (strictly greater than every earlier run's)."""
        run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        db = self._db
        with db.transaction():
            last = db.scalar("SELECT max(version) FROM runs")
            version = max(int(time.time() * 1000), (int(last) if last is not None else 0) + 1)
            if plan_id is not None:
                # a fresh run of a plan supersedes its unfinished runs: they can no longer be resumed
                stale = [r[0] for r in db.all(f"SELECT run_id FROM runs WHERE plan_id = ? AND status NOT IN ({_FINAL_SQL})",
                                              [plan_id])]
                for old in stale:
                    db.run("UPDATE runs SET status = ? WHERE run_id = ?", [RunStatus.ABANDONED, old])
                    db.run("DELETE FROM staging WHERE unit_id LIKE ?", [f"{old}|%"])
                    db.run("DELETE FROM staging_quarantine WHERE unit_id LIKE ?", [f"{old}|%"])
            db.run(
                "INSERT INTO runs (run_id, command, plan_id, version, started_at, status, args) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [run_id, command, plan_id, version, now(), RunStatus.RUNNING, orjson.dumps(args, default=str).decode()],
            )
        if plan_id is not None:
            for old in stale:
                self._forget_staging(old)
        self._own_runs.add(run_id)
        return run_id, version

    @operation("find resumable run")
    def resumable_run(self, plan_id: str) -> tuple[str, int] | None:
        """The latest run of this plan that did not finish, if any."""
        row = self._db.one(
            f"SELECT run_id, version FROM runs WHERE plan_id = ? AND status NOT IN ({_FINAL_SQL}) "
            "ORDER BY started_at DESC LIMIT 1",
            [plan_id],
        )
        return (str(row[0]), int(row[1])) if row else None

    @operation("read the plan's done units")
    def plan_done_units(self, plan_id: str, sinks: Sequence[str]) -> set[str]:
        """The units of ``plan_id`` that an earlier run completed while sending to at least ``sinks`` (display
        URLs, as ``runs.args`` records them): what ``--resume`` with no unfinished run does not run again.
        A run that had fewer sinks does not count: the sink it lacked never got its units."""
        wanted = set(sinks)
        runs = [str(run_id) for run_id, args in self._db.all("SELECT run_id, args FROM runs WHERE plan_id = ?", [plan_id])
                if wanted <= set((orjson.loads(args) if args else {}).get("sinks") or ())]
        if not runs:
            return set()
        marks = ", ".join("?" for _ in runs)
        rows = self._db.all(f"SELECT DISTINCT unit_id FROM units WHERE status = ? AND run_id IN ({marks})",
                            [UnitStatus.DONE, *runs])
        return {str(r[0]) for r in rows}

    @operation("read run arguments")
    def run_args(self, run_id: str) -> dict[str, Any]:
        """The arguments a run was begun with (``{}`` for an unknown run)."""
        row = self._db.one("SELECT args FROM runs WHERE run_id = ?", [run_id])
        args = orjson.loads(row[0]) if row and row[0] else {}
        return args if isinstance(args, dict) else {}

    @operation("read the plan's last run arguments")
    def last_run_args(self, plan_id: str) -> dict[str, Any]:
        """The arguments of the latest run of this plan, of any status (``{}`` if none)."""
        row = self._db.one("SELECT args FROM runs WHERE plan_id = ? ORDER BY started_at DESC LIMIT 1", [plan_id])
        args = orjson.loads(row[0]) if row and row[0] else {}
        return args if isinstance(args, dict) else {}

    @operation("record run arguments")
    def set_run_args(self, run_id: str, args: dict[str, Any]) -> None:
        """Replace the arguments recorded for a run (a probe records the plan it learnt)."""
        self._db.run("UPDATE runs SET args = ? WHERE run_id = ?", [orjson.dumps(args, default=str).decode(), run_id])

    @operation("find a probe to continue")
    def probe_run(self, plan_id: str) -> tuple[str, int] | None:
        """The latest unfinished run of this plan if it is a probe's (``backfill --dry-run --probe``): the next run
        of the plan continues it, so the probe's staged pages are not bought twice."""
        row = self._db.one(
            f"SELECT run_id, version, args FROM runs WHERE plan_id = ? AND status NOT IN ({_FINAL_SQL}) "
            "ORDER BY started_at DESC LIMIT 1",
            [plan_id],
        )
        if row is None or not row[2] or not (orjson.loads(row[2]) or {}).get("probe"):
            return None
        return str(row[0]), int(row[1])

    @operation("reopen run")
    def reopen_run(self, run_id: str) -> None:
        """Mark a resumed run running again."""
        self._db.run("UPDATE runs SET status = ?, finished_at = NULL WHERE run_id = ?", [RunStatus.RUNNING, run_id])

    @operation("finish run")
    def finish_run(self, run_id: str, status: str, stats: dict[str, Any], incomplete_targets: Sequence[str]) -> None:
        """Record a run's outcome; a done run keeps no staging."""
        db = self._db
        if status == RunStatus.DONE:  # nothing left to resume: drop whatever staging a failed attempt left
            db.run("DELETE FROM staging WHERE unit_id LIKE ?", [f"{run_id}|%"])
            db.run("DELETE FROM staging_quarantine WHERE unit_id LIKE ?", [f"{run_id}|%"])
            self._forget_staging(run_id)
        db.run(
            "UPDATE runs SET status = ?, finished_at = ?, stats = ?, incomplete_targets = ? WHERE run_id = ?",
            [str(status), now(), orjson.dumps(stats, default=str).decode(), list(incomplete_targets), run_id],
        )

    # ----------------------------------------------------------------------------------------- units

    @operation("read unit progress")
    def unit_progress(self, run_id: str, unit_id: str) -> UnitProgress | None:
        """The unit's checkpoint in this run, if it was started."""
        row = self._db.one("SELECT status, pages, next_token FROM units WHERE run_id = ? AND unit_id = ?",
                           [run_id, unit_id])
        return UnitProgress(str(row[0]), int(row[1]), row[2]) if row else None

    @operation("read done units")
    def done_units(self, run_id: str) -> set[str]:
        """The units of this run every sink has."""
        rows = self._db.all("SELECT unit_id FROM units WHERE run_id = ? AND status = ?", [run_id, UnitStatus.DONE])
        return {str(r[0]) for r in rows}

    @operation("start unit")
    def start_unit(self, run_id: str, unit: UnitRef, unit_id: str, *, fresh: bool) -> None:
        """Mark a unit in progress; ``fresh`` discards anything staged for it before (a restart)."""
        db = self._db
        key = skey(run_id, unit_id)
        # one look first: a unit seen for the first time (every unit of a new run) has nothing to discard, and
        # its row is then one auto-committed INSERT rather than a transaction of five statements. A run this
        # store began needs no look: its units' rows and staging are all this store's (StoreBase)
        own = run_id in self._own_runs
        if own:
            staged = self._staged.get(key)
            has_row, has_staged = key in self._started, staged is not None and bool(staged.keys or staged.quarantine)
        else:
            found = db.one(
                "SELECT (SELECT count(*) FROM units WHERE run_id = $run_id AND unit_id = $unit_id), "
                "(SELECT count(*) FROM staging WHERE unit_id = $key) + (SELECT count(*) FROM staging_quarantine "
                "WHERE unit_id = $key)",
                {"run_id": run_id, "unit_id": unit_id, "key": key},
            )
            has_row, has_staged = (bool(n) for n in found) if found else (False, False)
        insert = ("INSERT INTO units (run_id, unit_id, dataset, target, window_start, window_end, status, "
                  "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        row = [run_id, unit_id, unit.dataset, unit.target, unit.start, unit.end, UnitStatus.RUNNING, now()]
        if not fresh or not (has_row or has_staged):
            if not has_row:
                db.run(insert, row)
                if own:
                    self._started.add(key)
            return
        with db.transaction():
            if has_staged:
                db.run("DELETE FROM staging WHERE unit_id = ?", [key])
                db.run("DELETE FROM staging_quarantine WHERE unit_id = ?", [key])
            db.run("DELETE FROM units WHERE run_id = ? AND unit_id = ?", [run_id, unit_id])
            db.run(insert, row)
        if own:
            self._staged.pop(key, None)
            self._started.add(key)

    @operation("checkpoint unit")
    def checkpoint_unit(self, run_id: str, unit_id: str) -> None:
        """The unit is committed and every sink has it durably: done."""
        self._db.run("UPDATE units SET status = ?, updated_at = ? WHERE run_id = ? AND unit_id = ?",
                     [UnitStatus.DONE, now(), run_id, unit_id])

    @operation("record unit failure")
    def fail_unit(self, run_id: str, unit_id: str, error: str) -> None:
        """The unit failed (its error, cut at 2000 characters, is kept)."""
        self._db.run("UPDATE units SET status = ?, error = ?, updated_at = ? WHERE run_id = ? AND unit_id = ?",
                     [UnitStatus.FAILED, error[:2000], now(), run_id, unit_id])

    # -------------------------------------------------------------------------------------- coverage

    @operation("read pages per day")
    def pages_per_day(self) -> dict[str, float]:
        """Pages per day of window, per dataset, from completed units (the planner's estimate)."""
        rows = self._db.all(
            "SELECT dataset, sum(pages)::DOUBLE / sum(date_diff('day', window_start, window_end)) FROM units "
            "WHERE status = ? AND pages > 0 GROUP BY dataset",
            [UnitStatus.DONE],
        )
        return {r[0]: float(r[1]) for r in rows}

    @operation("read coverage")
    def done_windows(self, dataset: str, target: str, start: dt.date | None = None,
                     end: dt.date | None = None) -> list[DoneWindow]:
        """The distinct windows of ``dataset`` that ``target`` completed (within [start, end) when given), in
        window order, each with when a unit of it last completed."""
        where = ["dataset = ?", "target = ?", "status = ?"]
        params: list[object] = [dataset, target, UnitStatus.DONE]
        if start is not None:
            where.append("window_start >= ?")
            params.append(start)
        if end is not None:
            where.append("window_end <= ?")
            params.append(end)
        rows = self._db.all(f"SELECT window_start, window_end, max(updated_at) FROM units WHERE {' AND '.join(where)} "
                            "GROUP BY 1, 2 ORDER BY 1, 2", params)
        return [DoneWindow(ws, we, ts) for ws, we, ts in rows]

    @operation("read coverage")
    def has_done_units(self, dataset: str, target: str, start: dt.date, end: dt.date) -> bool:
        """Whether ``target`` completed any unit of ``dataset`` overlapping [start, end)."""
        n = self._db.scalar("SELECT count(*) FROM units WHERE dataset = ? AND target = ? AND status = ? "
                            "AND window_start < ? AND window_end > ?", [dataset, target, UnitStatus.DONE, end, start])
        return bool(n)

    # ------------------------------------------------------------------------------------ quota state

    @operation("read quota state")
    def quota_states(self, month: str) -> dict[str, str]:
        """The last *notified* status of every pool for ``month``."""
        rows = self._db.all(
            "SELECT pool, status FROM quota_state q WHERE month = ? AND changed_at = "
            "(SELECT max(changed_at) FROM quota_state q2 WHERE q2.pool = q.pool AND q2.month = q.month)",
            [month],
        )
        return {str(p): str(s) for p, s in rows}

    @operation("record quota state")
    def record_quota_states(self, month: str, states: dict[str, tuple[str, dict[str, Any]]]) -> None:
        """Remember what was notified: pool -> (status, detail). History is kept (one row per change)."""
        stamp = now()
        with self._db.transaction():
            for pool, (status, detail) in sorted(states.items()):
                self._db.run("INSERT INTO quota_state VALUES (?, ?, ?, ?::JSON, ?)",
                             [pool, month, status, orjson.dumps(detail, default=str).decode(), stamp])

    # --------------------------------------------------------------------------------- advisory state

    @operation("read advisory state")
    def advisory_states(self, scope: str) -> list[AdvisoryRow]:
        """Every advisory ``dbcost advise`` recorded under ``scope`` (open and resolved), in id order."""
        rows = self._db.all(
            "SELECT id, month, payload, first_seen, resolved_at, version FROM advisories WHERE scope = ? ORDER BY id",
            [scope],
        )
        return [AdvisoryRow(str(i), str(m), orjson.loads(p), fs, ra, int(v)) for i, m, p, fs, ra, v in rows]

    @operation("record advisory state")
    def record_advisories(self, scope: str, rows: Sequence[AdvisoryRow]) -> None:
        """Write ``rows`` (new, updated or resolved advisories) in one transaction, replacing each id's row."""
        stamp = now()
        with self._db.transaction():
            for r in rows:
                p = r.payload
                self._db.run(
                    "INSERT INTO advisories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::JSON, ?, ?, ?, ?) "
                    "ON CONFLICT (scope, id) DO UPDATE SET kind = excluded.kind, cluster = excluded.cluster, "
                    "team = excluded.team, service = excluded.service, account = excluded.account, "
                    "region = excluded.region, month = excluded.month, monthly_cost = excluded.monthly_cost, "
                    "estimated_monthly_savings = excluded.estimated_monthly_savings, payload = excluded.payload, "
                    "first_seen = excluded.first_seen, resolved_at = excluded.resolved_at, "
                    "version = excluded.version, updated_at = excluded.updated_at",
                    [scope, r.id, str(p.get("kind", "")), str(p.get("cluster", "")), str(p.get("team", "")),
                     str(p.get("service", "")), str(p.get("account", "")), str(p.get("region", "")), r.month,
                     str(p.get("monthly_cost", "0")), str(p.get("estimated_monthly_savings", "0")),
                     orjson.dumps(p, default=str).decode(), r.first_seen, r.resolved_at, r.version, stamp],
                )

    # -------------------------------------------------------------------------------------- inventory

    @operation("record inventory")
    def record_inventory(self, scopes: Sequence[InventoryScope], items: Sequence[InventoryItem]) -> None:
        """Keep a reading in one transaction: every scope read loses its earlier rows (resources gone included),
        then each item is written under (target, ARN) with the time it was read (naive UTC)."""
        with self._db.transaction():
            for scope in scopes:
                self._db.run("DELETE FROM inventory WHERE target = ? AND service = ? AND region = ?",
                             [scope.target, scope.service, scope.region])
            seen: set[tuple[str, str]] = set()
            for item in items:
                key = (item.target, item.arn)
                if key in seen:  # the same resource read twice in one reading (two regions cannot: one ARN each)
                    continue
                seen.add(key)
                self._db.run("DELETE FROM inventory WHERE target = ? AND arn = ?", list(key))
                read_at = item.read_at.astimezone(dt.UTC).replace(tzinfo=None) if item.read_at.tzinfo else item.read_at
                self._db.run(
                    "INSERT INTO inventory VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::JSON, ?)",
                    [item.target, item.arn, list(item.aliases), item.service, item.kind, item.account, item.region,
                     item.name, item.cluster, item.engine, item.engine_version, item.instance_class, item.multi_az,
                     orjson.dumps(dict(item.tags)).decode(), read_at],
                )

    # ------------------------------------------------------------------------------------- job state

    @operation("read metadata")
    def get_meta(self, key: str) -> str | None:
        """A job's value under ``key`` in ``meta`` (None if never set)."""
        value = self._db.scalar("SELECT value FROM meta WHERE key = ?", [key])
        return None if value is None else str(value)

    @operation("read metadata keys")
    def meta_keys(self, prefix: str) -> list[str]:
        """The jobs' ``meta`` keys starting with ``prefix``, sorted."""
        rows = self._db.all("SELECT key FROM meta WHERE starts_with(key, ?) ORDER BY key", [prefix])
        return [str(k) for (k,) in rows]

    @operation("write metadata")
    def put_meta(self, key: str, value: str) -> None:
        """Set a job's value under ``key``; the store's own keys (``schema_version``) are refused."""
        if key in _RESERVED_META:
            raise ValueError(f"meta key {key!r} belongs to the store")
        self._db.run("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     [key, value])
