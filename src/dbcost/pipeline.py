"""The backfill/sync pipeline: plan -> fetch -> parse -> store -> sinks -> checkpoint.

Units fan out with ``asyncio.TaskGroup``. Per target, at most ``max_concurrency`` units are active (a
unit's page chain is sequential, so that many requests can be in flight), and every request passes the
target's governor. Each page is staged in the store as it arrives (memory holds one page per active
unit, however long the range). A finished unit is committed (replace by window, atomically), sent to
every sink from the store in period order, and only then checkpointed. So:

* a process killed at any point resumes (``--resume``) with no gap and no duplicate: committed units are
  skipped, a staged unit continues from its saved page token (or from page one if the token expired);
* one failing target (breaker open, credentials, ...) marks that target incomplete; the others finish;
* ``--max-requests``/``--max-cost-usd`` stop the run cleanly: units in flight are not committed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from dbcost.aio import cancel_and_wait
from dbcost.api import FetchSettings, open_client
from dbcost.client import PRICE_PER_REQUEST_USD, CostExplorer, RequestBudget, Stats
from dbcost.errors import BudgetExhaustedError, DbcostError, UsageError
from dbcost.models import CostQuery
from dbcost.parse import ParsedPage
from dbcost.plan import Plan, Shard, Window, WorkUnit, add_months, expected_requests, month_start, plan_units
from dbcost.retry import RetryPolicy
from dbcost.sinks.base import Sink, UnitRef, open_sink, redact_url
from dbcost.store import AsyncStore, Store, UnitDiff
from dbcost.targets import TargetConfig

__all__ = [
    "RESTATEMENT_GRACE_DAYS",
    "PipelineProgress",
    "RunOutcome",
    "RunSpec",
    "covered_until",
    "dry_run_plan",
    "make_plan",
    "run_pipeline",
    "sync_spec",
    "sync_start",
    "target_settings",
]

log = logging.getLogger("dbcost.pipeline")

#: Cost Explorer restates the previous month until about the 5th of the next one.
RESTATEMENT_GRACE_DAYS = 5


@dataclass
class RunSpec:
    """Everything a backfill or sync run needs."""

    query: CostQuery
    targets: list[TargetConfig]
    db: Path
    command: str = "backfill"
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())
    window: Window = "auto"
    shard: Shard | None = None
    resume: bool = False
    max_requests: int | None = None
    max_cost_usd: Decimal | None = None
    max_rps: float = 5.0
    max_concurrency: int = 8
    sinks: list[str] = field(default_factory=list)
    label: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker_threshold: int = 8
    breaker_reset_s: float = 30.0
    sink_context: dict[str, Any] = field(default_factory=dict)
    #: explicit credentials for every target (the demo's emulator); None = the AWS credential chain
    credentials: tuple[str, str] | None = field(default=None, repr=False)
    #: more datasets fetched in the same run (e.g. attribution's per-service queries); same range rules
    extra_queries: list[CostQuery] = field(default_factory=list)
    #: label per dataset fingerprint, stored with the dataset
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def queries(self) -> list[CostQuery]:
        return [self.query, *self.extra_queries]

    def request_cap(self) -> int | None:
        caps = []
        if self.max_requests is not None:
            caps.append(self.max_requests)
        if self.max_cost_usd is not None:
            caps.append(int(self.max_cost_usd / PRICE_PER_REQUEST_USD))
        return min(caps) if caps else None

    def settings_for(self, target: TargetConfig) -> FetchSettings:
        return target_settings(target, max_rps=self.max_rps, max_concurrency=self.max_concurrency,
                               credentials=self.credentials, retry=self.retry,
                               breaker_threshold=self.breaker_threshold, breaker_reset_s=self.breaker_reset_s)


def target_settings(
    target: TargetConfig,
    *,
    max_rps: float,
    max_concurrency: int,
    credentials: tuple[str, str] | None = None,
    retry: RetryPolicy | None = None,
    breaker_threshold: int = 8,
    breaker_reset_s: float = 30.0,
) -> FetchSettings:
    """How to reach ``target``: its own rate/concurrency where the targets file sets them."""
    return FetchSettings(
        endpoint_url=target.endpoint_url,
        profile=target.profile,
        region=target.region,
        role_arn=target.role_arn,
        external_id=target.external_id,
        credentials=credentials,
        max_rps=target.max_rps or max_rps,
        max_concurrency=target.max_concurrency or max_concurrency,
        retry=retry or RetryPolicy(),
        breaker_threshold=breaker_threshold,
        breaker_reset_s=breaker_reset_s,
        name=target.name,
    )


class PipelineProgress(Protocol):
    def planned(self, plan: Plan, skipped: int) -> None: ...

    def page(self, unit: WorkUnit, page: int, stats: Stats) -> None: ...

    def unit_done(self, unit: WorkUnit, diff: UnitDiff | None, error: str | None, stats: Stats) -> None: ...


class _NoProgress:
    def planned(self, plan: Plan, skipped: int) -> None:
        return None

    def page(self, unit: WorkUnit, page: int, stats: Stats) -> None:
        return None

    def unit_done(self, unit: WorkUnit, diff: UnitDiff | None, error: str | None, stats: Stats) -> None:
        return None


@dataclass
class RunOutcome:
    run_id: str
    plan: Plan
    status: str  # done | incomplete | stopped
    stats: Stats
    per_target: dict[str, Stats]
    units_done: int = 0
    units_skipped: int = 0
    units_failed: int = 0
    units_stopped: int = 0
    inserted: int = 0
    changed: int = 0
    deleted: int = 0
    quarantined: int = 0
    incomplete_targets: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stopped_reason: str | None = None
    resumed: bool = False
    elapsed_s: float = 0.0  # from the first unit's start to the last unit's end

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "plan_id": self.plan.plan_id,
            "status": self.status,
            "resumed": self.resumed,
            **self.stats.to_json(),
            "quarantined": self.quarantined,
            "units": len(self.plan.units),
            "units_done": self.units_done,
            "units_skipped": self.units_skipped,
            "units_failed": self.units_failed,
            "units_stopped": self.units_stopped,
            "inserted": self.inserted,
            "changed": self.changed,
            "deleted": self.deleted,
            "incomplete_targets": self.incomplete_targets,
            "targets": {name: st.to_json() for name, st in self.per_target.items()},
            "errors": self.errors[:20],
            "stopped_reason": self.stopped_reason,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def make_plan(spec: RunSpec, pages_per_day: dict[str, float] | None = None) -> Plan:
    """The run's plan (pure): every query's range for every target, sharded if asked."""
    names = [t.name for t in spec.targets]
    plans = [plan_units(q, names, today=spec.today, window=spec.window, max_concurrency=spec.max_concurrency,
                        pages_per_day=pages_per_day, sibling_queries=len(spec.queries)) for q in spec.queries]
    if len(plans) == 1 and spec.shard is None:
        return plans[0]
    units = sorted({u for p in plans for u in p.units})
    if spec.shard is not None:
        units = [u for i, u in enumerate(units) if i % spec.shard.count == spec.shard.index - 1]
    plan_id = hashlib.sha256("".join(p.plan_id for p in plans).encode() + str(spec.shard).encode()).hexdigest()[:16]
    return Plan(tuple(units), spec.shard, len(units), expected_requests(units, pages_per_day), plan_id)


def covered_until(store_sync: Any, dataset: str, target: str) -> dt.date | None:
    """The end of the contiguous stretch of completed units of ``dataset`` for ``target``, from its earliest
    completed unit (None if it has none). A hole (a unit that failed) ends the stretch, so sync re-reads it."""
    rows = store_sync.query(
        "SELECT DISTINCT window_start, window_end FROM units WHERE dataset = ? AND target = ? AND status = 'done' "
        "ORDER BY 1, 2",
        [dataset, target],
    )
    cursor: dt.date | None = None
    for ws, we in rows:
        if cursor is not None and ws > cursor:
            break
        cursor = we if cursor is None else max(cursor, we)
    return cursor


def sync_start(store_sync: Any, query: CostQuery, targets: Sequence[str], today: dt.date,
               start: dt.date | None = None) -> dt.date:
    """Where a sync of ``query``'s dataset begins: the earliest of every target's contiguous completed
    coverage end, the restatement window (the open month, the previous month while within
    ``RESTATEMENT_GRACE_DAYS`` of its close, any stored period still ``Estimated``) and ``start``.

    A target with no completed data needs ``start`` (UsageError naming it otherwise).
    """
    ds = query.fingerprint
    ends = {t: covered_until(store_sync, ds, t) for t in targets}
    missing = sorted(t for t, e in ends.items() if e is None)
    if missing and start is None:
        raise UsageError(f"--start: no completed data in the store for target(s) {', '.join(missing)} of this "
                         "dataset; give --start for the first sync (or run backfill)")
    restate = month_start(today)
    if today.day <= RESTATEMENT_GRACE_DAYS:
        restate = add_months(today, -1)
    est = store_sync.query(
        "SELECT min(period_start) FROM records WHERE dataset = ? AND estimated", [ds]
    )
    if est and est[0][0]:
        restate = min(restate, dt.date.fromisoformat(str(est[0][0])[:10]))
    candidates = [e for e in ends.values() if e is not None] + [restate] + ([start] if start else [])
    return min(candidates)


def sync_spec(spec: RunSpec, start: dt.date | None = None) -> RunSpec | None:
    """``spec`` with its query's window set to what a sync fetches now: from :func:`sync_start` over the
    store at ``spec.db`` up to ``spec.today``; None when the store is already up to date.

    ``start`` is where a first sync begins. A store that does not exist yet needs it (UsageError otherwise).
    """
    day = spec.today
    if spec.db.exists():
        with Store(spec.db, read_only=True) as store:
            begin = sync_start(store, spec.query, [t.name for t in spec.targets], day, start)
    elif start is None:
        raise UsageError("--start: the store does not exist yet; give --start for the first sync (or run backfill)")
    else:
        begin = start
    if begin >= day:
        return None
    return replace(spec, query=spec.query.with_window(begin, day))


async def dry_run_plan(spec: RunSpec) -> Plan:
    """The plan :func:`run_pipeline` would run for ``spec`` now, sized by the store's pages-per-day history
    when the store exists. Sends nothing and writes nothing (a missing store is not created)."""

    def pages_per_day() -> dict[str, float]:
        if not spec.db.exists():
            return {}
        with Store(spec.db, read_only=True) as store:
            return store.pages_per_day()

    return make_plan(spec, await asyncio.to_thread(pages_per_day))


async def run_pipeline(
    spec: RunSpec,
    *,
    progress: PipelineProgress | None = None,
    plan: Plan | None = None,
) -> RunOutcome:
    """Run (or resume) the plan for ``spec`` into the store at ``spec.db`` and the sinks."""
    progress = progress or _NoProgress()
    async with AsyncStore(spec.db) as store:
        ppd = await store.call(lambda s: s.pages_per_day())
        if plan is None:
            plan = make_plan(spec, ppd)
        the_plan = plan
        queries = list(plan.datasets.values())
        await store.call(lambda s: [s.register_dataset(q, spec.labels.get(q.fingerprint, spec.label)) for q in queries])

        run: tuple[str, int] | None = None
        if spec.resume:
            run = await store.call(lambda s: s.resumable_run(the_plan.plan_id))
            if run is None:
                log.warning("--resume: no unfinished run of this plan in %s; starting a new run", spec.db)
        resumed = run is not None
        if run is not None:
            run_id, version = run
            await store.call(lambda s: s.reopen_run(run_id))
            done = await store.call(lambda s: s.done_units(run_id))
        else:
            args = {"query": spec.query.model_dump(mode="json"), "targets": [t.name for t in spec.targets],
                    "window": spec.window, "shard": str(spec.shard) if spec.shard else None,
                    "sinks": [redact_url(u) for u in spec.sinks], "today": spec.today.isoformat()}
            run_id, version = await store.call(lambda s: s.begin_run(spec.command, plan_id=the_plan.plan_id, args=args))
            done = set()
        todo = [u for u in plan.units if u.unit_id not in done]

        cap = spec.request_cap()
        if cap is not None:
            need = expected_requests(todo, ppd)
            if need > cap:
                await store.call(lambda s: s.finish_run(run_id, "refused", {}, []))
                raise UsageError(
                    f"the plan needs at least {need} requests (${need * PRICE_PER_REQUEST_USD}) for {len(todo)} "
                    f"unit(s), more than the cap of {cap} requests; raise --max-requests/--max-cost-usd or "
                    "narrow the range"
                )
        budget = RequestBudget(cap)
        per_target = {t.name: Stats() for t in spec.targets}
        outcome = RunOutcome(run_id, plan, "done", Stats(), per_target, units_skipped=len(plan.units) - len(todo),
                             resumed=resumed)
        progress.planned(plan, outcome.units_skipped)
        stop = asyncio.Event()
        failed_targets: set[str] = set()

        async with AsyncExitStack() as stack:
            sinks: list[Sink] = []
            for url in spec.sinks:
                sink = open_sink(url, **spec.sink_context)
                await sink.open()
                stack.push_async_callback(sink.close)
                sinks.append(sink)
            clients: dict[str, CostExplorer] = {}
            for target in spec.targets:
                try:
                    clients[target.name] = await stack.enter_async_context(
                        open_client(spec.settings_for(target), stats=per_target[target.name], budget=budget)
                    )
                except DbcostError as exc:
                    failed_targets.add(target.name)
                    outcome.errors.append(f"{target.name}: {exc}")
                    log.error("target %s: cannot open: %s", target.name, exc)
            sems = {t.name: asyncio.Semaphore(t.max_concurrency or spec.max_concurrency) for t in spec.targets}

            async def run_unit(unit: WorkUnit) -> None:
                ce = clients.get(unit.target)
                if ce is None:
                    outcome.units_failed += 1
                    return
                async with sems[unit.target]:
                    if stop.is_set():
                        outcome.units_stopped += 1
                        return
                    await _run_unit(spec, store, ce, sinks, run_id, version, unit, outcome, progress)

            async def guarded(unit: WorkUnit) -> None:
                try:
                    await run_unit(unit)
                except BudgetExhaustedError as exc:
                    # stop cleanly: this unit is left staged (not committed); --resume continues it
                    stop.set()
                    outcome.stopped_reason = str(exc)
                    outcome.units_stopped += 1
                    progress.unit_done(unit, None, str(exc), per_target[unit.target])
                except DbcostError as exc:
                    failed_targets.add(unit.target)
                    outcome.units_failed += 1
                    outcome.errors.append(f"{unit.unit_id}: {exc}")
                    log.error("unit %s failed: %s", unit.unit_id, exc)
                    message = str(exc)
                    await store.call(lambda s: s.fail_unit(run_id, unit.unit_id, message))
                    progress.unit_done(unit, None, message, per_target[unit.target])

            began = time.monotonic()
            async with asyncio.TaskGroup() as tg:
                for unit in todo:
                    tg.create_task(guarded(unit))
            outcome.elapsed_s = time.monotonic() - began

        for st in per_target.values():
            outcome.stats.add(st)
        outcome.incomplete_targets = sorted(failed_targets)
        if outcome.stopped_reason:
            outcome.status = "stopped"
        elif failed_targets or outcome.units_failed:
            outcome.status = "incomplete"
        await store.call(lambda s: s.finish_run(run_id, outcome.status, outcome.to_json(),
                                                outcome.incomplete_targets))
        return outcome


_DONE = object()


async def _prefetch(pages: AsyncIterator[ParsedPage], depth: int = 2) -> AsyncIterator[ParsedPage]:
    """Keep the page chain running while earlier pages are being staged.

    A unit's requests are sequential (each needs the previous page's token); without this, every
    page's staging time would add to the chain's round trip. At most ``depth`` pages wait in memory.
    """
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=depth)

    async def produce() -> None:
        try:
            async for page in pages:
                await queue.put(page)
        except Exception as exc:  # handed to the consumer, which re-raises it in order
            await queue.put(exc)
            return
        await queue.put(_DONE)

    task = asyncio.create_task(produce())
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, ParsedPage)
            yield item
    finally:
        await cancel_and_wait(task)
        if isinstance(pages, AsyncGenerator):
            await pages.aclose()


async def _run_unit(
    spec: RunSpec,
    store: AsyncStore,
    ce: CostExplorer,
    sinks: list[Sink],
    run_id: str,
    version: int,
    unit: WorkUnit,
    outcome: RunOutcome,
    progress: PipelineProgress,
) -> None:
    key_names = unit.query.columns
    ref = UnitRef(run_id, unit.dataset, unit.target, unit.start, unit.end, unit.query.granularity, key_names)
    uid = unit.unit_id
    saved = await store.call(lambda s: s.unit_progress(run_id, uid)) if spec.resume else None
    token: str | None = None
    first_page = 0
    if saved is not None and saved.status == "running" and saved.next_token:
        token, first_page = saved.next_token, saved.pages
    await store.call(lambda s: s.start_unit(run_id, ref, uid, fresh=token is None))
    if token:
        log.info("unit %s: continuing after page %d", uid, first_page)
    async for page in _prefetch(ce.pages(unit.window_query, dedup=False, resume_token=token,
                                         resume_page=first_page)):
        if page.restarted:
            # the chain restarted (token expired): what was staged from the old chain is superseded
            await store.call(lambda s: s.start_unit(run_id, ref, uid, fresh=True))
        await store.call(lambda s, p=page: s.stage_page(run_id, uid, key_names, p.page, p.records,  # type: ignore[misc]
                                                        p.quarantined, p.next_token))
        progress.page(unit, page.page, ce.stats)
    diff = await store.call(lambda s: s.commit_unit(run_id, version, ref, uid))
    for sink in sinks:
        await sink.write_unit(ref, store.unit_sink_batches(run_id, ref))
    await store.call(lambda s: s.checkpoint_unit(run_id, uid))
    outcome.units_done += 1
    outcome.inserted += diff.inserted
    outcome.changed += diff.changed
    outcome.deleted += diff.deleted
    outcome.quarantined += diff.quarantined
    progress.unit_done(unit, diff, None, ce.stats)
