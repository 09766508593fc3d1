"""``dbcost backfill`` and ``dbcost sync``: a range (or the store's gap up to today) through the pipeline.

A backfill plans ``[start, end)`` into units and runs them (:func:`dbcost.pipeline.run_pipeline`); ``--dry-run``
plans with the store's pages-per-day history and sends nothing (:func:`plan_backfill`; without history it can only
count one request per unit, :func:`has_history`); ``--dry-run --probe`` spends a little to estimate well and keeps
what it bought for the run (:func:`probe_backfill`); :func:`check_backfill`
makes and checks the plan (range, cap) before anything is created, which the CLI does before it runs. A sync starts where the
store's contiguous completed coverage ends, and re-reads the restatement window (:func:`sync_start`).

``sync --dataset ID|LABEL|all`` re-reads datasets the store already holds without the query being restated:
:func:`dataset_sync_specs` takes each dataset's stored query (``datasets.query``, the query identity the
first run registered) and makes one sync spec of it, with the same guarantees as a sync given the query.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from dbcost.calendar import restatement_start
from dbcost.errors import UsageError
from dbcost.models import CostQuery
from dbcost.pipeline import (
    PipelineProgress,
    ProbeOutcome,
    RunOutcome,
    RunSpec,
    check_run,
    make_plan,
    probe_pipeline,
    run_pipeline,
)
from dbcost.plan import Plan

if TYPE_CHECKING:
    from dbcost.store import Store

__all__ = ["DatasetSync", "ProbeOutcome", "RunOutcome", "RunSpec", "check_backfill", "covered_until",
           "dataset_sync_specs", "has_history", "plan_backfill", "probe_backfill", "quarantine_reasons", "run_backfill",
           "sync_spec", "sync_start"]


async def run_backfill(spec: RunSpec, *, progress: PipelineProgress | None = None,
                       stop: asyncio.Event | None = None) -> RunOutcome:
    """Run ``spec`` (a backfill or a sync) through the pipeline; ``stop`` ends it early and resumable (SIGTERM);
    see :func:`dbcost.pipeline.run_pipeline`."""
    return await run_pipeline(spec, progress=progress, stop=stop)


def check_backfill(spec: RunSpec) -> Plan:
    """The plan of ``spec``, checked before anything is created (a UsageError for a range Cost Explorer cannot
    serve or a plan over the cap); reads an existing store read-only. See :func:`dbcost.pipeline.check_run`."""
    return check_run(spec)


def sync_spec(spec: RunSpec, start: dt.date | None = None) -> RunSpec | None:
    """``spec`` with its query's window set to what a sync fetches now: from :func:`sync_start` over the
    store up to ``spec.today``; None when the store is already up to date.

    ``start`` is where a first sync begins. A store that does not exist yet needs it (UsageError otherwise),
    except for an operation that serves only the last N days, whose first sync takes those N days.
    """
    from dbcost.store import Store

    day = spec.today
    if spec.db.exists():
        with Store(spec.settings.store, read_only=True) as store:
            begin = sync_start(store, spec.query, [t.name for t in spec.targets], day, start)
    elif spec.query.op.history_days is not None:
        earliest = day - dt.timedelta(days=spec.query.op.history_days)
        begin = max(start, earliest) if start is not None else earliest
    elif start is None:
        raise UsageError("--start: the store does not exist yet; give --start for the first sync (or run backfill)")
    else:
        begin = start
    if begin >= day:
        return None
    return replace(spec, query=spec.query.with_window(begin, day))


@dataclass(frozen=True)
class DatasetSync:
    """One dataset of ``sync --dataset``: its id and label, and the sync spec of its stored query (None: the
    dataset is up to date)."""

    dataset: str
    label: str | None
    spec: RunSpec | None


def dataset_sync_specs(spec: RunSpec, selector: str, start: dt.date | None = None) -> list[DatasetSync]:
    """One sync of each dataset ``selector`` names (an id, a unique id prefix, a label, or ``all``: see
    :func:`dbcost.jobs.datasets.select_datasets`), each ``spec`` with its query replaced by the dataset's
    stored one and windowed by :func:`sync_spec`; read-only. A store that does not exist, an unknown dataset
    or a stored query that no longer validates is a UsageError naming it (``dbcost datasets`` lists ids)."""
    from dbcost.jobs.datasets import list_datasets, select_datasets

    if not spec.db.exists():
        raise UsageError(f"--dataset: no store at {spec.db} (--db); `dbcost datasets --db PATH` lists a store's "
                         "datasets")
    out: list[DatasetSync] = []
    for info in select_datasets(list_datasets(spec.settings.store), selector):
        query = info.query
        if query is None or query.fingerprint != info.dataset:
            raise UsageError(f"--dataset {info.dataset}: its stored query does not validate any more (a store "
                             "edited by hand?); sync it by restating the query")
        own = replace(spec, query=query, label=info.label, extra_queries=[], labels={})
        out.append(DatasetSync(info.dataset, info.label, sync_spec(own, start)))
    return out


async def plan_backfill(spec: RunSpec) -> Plan:
    """The plan ``spec`` would run, sized by the store's pages-per-day history when the store exists. Sends
    nothing and writes nothing (a missing store is not created)."""
    from dbcost.store import Store

    def read() -> dict[str, float]:
        if not spec.db.exists():
            return {}
        with Store(spec.settings.store, read_only=True) as store:
            return store.pages_per_day()

    return make_plan(spec, await asyncio.to_thread(read))


async def probe_backfill(spec: RunSpec) -> ProbeOutcome:
    """``--dry-run --probe``: spend at most max(2, 2%) of the run's requests on the first and last unit of the range
    to learn the groups per day and the page size, stage those pages in the store (the next run of the same plan
    continues the probe's run and commits them without buying them again) and estimate what that run will send.
    See :func:`dbcost.pipeline.probe_pipeline`."""
    return await probe_pipeline(spec)


async def has_history(spec: RunSpec) -> bool:
    """Whether the store has completed units of every dataset of ``spec`` (what a plain ``--dry-run`` sizes the
    estimate with); False when the store does not exist yet."""
    from dbcost.store import Store

    def read() -> bool:
        if not spec.db.exists():
            return False
        with Store(spec.settings.store, read_only=True) as store:
            known = store.pages_per_day()
        return all(q.fingerprint in known for q in spec.queries)

    return await asyncio.to_thread(read)


def quarantine_reasons(spec: RunSpec) -> list[tuple[str, int]]:
    """(reason, count) of the groups the store holds quarantined for ``spec``'s dataset and window, most
    frequent first: what ``--strict``'s exit 3 is about (read-only; empty when the store does not exist)."""
    from dbcost.store import Store

    if not spec.db.exists():
        return []
    with Store(spec.settings.store, read_only=True) as store:
        return store.quarantine_summary([spec.query.fingerprint], spec.query.start.isoformat(),
                                        spec.query.end.isoformat())


def covered_until(store_sync: Store, dataset: str, target: str) -> dt.date | None:
    """The end of the contiguous stretch of completed units of ``dataset`` for ``target``, from its earliest
    completed unit (None if it has none). A hole (a unit that failed) ends the stretch, so sync re-reads it."""
    cursor: dt.date | None = None
    for ws, we, _ in store_sync.done_windows(dataset, target):
        if cursor is not None and ws > cursor:
            break
        cursor = we if cursor is None else max(cursor, we)
    return cursor


def sync_start(store_sync: Store, query: CostQuery, targets: Sequence[str], today: dt.date,
               start: dt.date | None = None) -> dt.date:
    """Where a sync of ``query``'s dataset begins: the earliest of every target's contiguous completed
    coverage end, the restatement window (the open month, the previous month while within
    ``RESTATEMENT_GRACE_DAYS`` of its close, any stored period still ``Estimated``) and ``start``; for an
    operation that serves only the last N days (GetCostAndUsageWithResources), never before ``today - N``.

    A target with no completed data needs ``start`` (UsageError naming it otherwise), except for such an
    operation, whose window is the default ``start``.
    """
    ds = query.fingerprint
    if start is None and query.op.history_days is not None:
        start = today - dt.timedelta(days=query.op.history_days)  # the whole window it serves
    ends = {t: covered_until(store_sync, ds, t) for t in targets}
    missing = sorted(t for t, e in ends.items() if e is None)
    if missing and start is None:
        raise UsageError(f"--start: no completed data in the store for target(s) {', '.join(missing)} of this "
                         "dataset; give --start for the first sync (or run backfill)")
    restate = restatement_start(today)
    est = store_sync.earliest_estimated_period(ds)
    if est:
        restate = min(restate, dt.date.fromisoformat(est[:10]))
    candidates = [e for e in ends.values() if e is not None] + [restate] + ([start] if start else [])
    begin = min(candidates)
    if query.op.history_days is not None:
        # an operation that serves only the last N days (GetCostAndUsageWithResources: 14) keeps that window
        # current: nothing older can be asked for, so the sync never starts before it; and since those days
        # lie inside the restatement window (or before a coverage end), in practice it re-reads all N
        begin = max(begin, today - dt.timedelta(days=query.op.history_days))
    return begin
