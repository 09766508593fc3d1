"""The backfill/sync pipeline: plan -> fetch -> parse -> store -> sinks -> checkpoint.

Units fan out with ``asyncio.TaskGroup``. Per target, at most ``max_concurrency`` units are active (a
unit's page chain is sequential, so that many requests can be in flight), and every request passes the
target's governor. Each page is staged in the store as it arrives (memory holds one page per active
unit, however long the range). A finished unit is committed (replace by window, atomically), sent to
every sink from the store in period order, and only then checkpointed. So:

* a process killed at any point resumes (``--resume``) with no gap and no duplicate: committed units are
  skipped, a staged unit continues from its saved page token (or from page one if the token expired);
* one failing target (breaker open, credentials, ...) marks that target incomplete; the others finish;
* ``--max-requests``/``--max-cost-usd`` stop the run cleanly: units in flight are not committed. Without
  either, the run is capped at the settings' default (``LimitSettings.max_requests``), and each page chain
  at ``LimitSettings.max_chain_pages``;
* ``stop`` (an ``asyncio.Event``: the CLI sets it on SIGTERM/SIGINT) ends the run within moments: no unit
  starts, the requests in flight are abandoned, staged pages stay staged; the run is recorded ``stopped`` and
  ``--resume`` continues it;
* a store failure (disk full, read-only filesystem) ends the run: every unit stops, the run says what
  completed, and the failure is the outcome's ``fatal`` error (the store may be unusable after it);
* before anything is created (no store file, no run row) the plan is made and checked: a range Cost
  Explorer cannot serve, or a plan needing more requests than the cap, is a UsageError (:func:`check_run`);
* ``--resume`` with nothing to resume (no store, or no unfinished run of the plan) sends nothing and says so
  (``RunOutcome.nothing_to_resume``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from dbcost.aio import cancel_and_wait
from dbcost.client import PRICE_PER_REQUEST_USD, CostExplorer, RequestBudget, Stats, open_client
from dbcost.config import FetchSettings, Settings, TargetConfig
from dbcost.errors import BudgetExhaustedError, DbcostError, StoreError, UsageError
from dbcost.models import CostQuery
from dbcost.parse import ParsedPage
from dbcost.plan import Plan, Shard, Window, WorkUnit, expected_requests, plan_units
from dbcost.sinks import Sink, SinkContext, UnitRef, open_sink, redact_url
from dbcost.store import AsyncStore, RunStatus, UnitDiff, UnitStatus

__all__ = [
    "PipelineProgress",
    "RunOutcome",
    "RunSpec",
    "check_run",
    "make_plan",
    "run_pipeline",
]

log = logging.getLogger("dbcost.pipeline")


@dataclass
class RunSpec:
    """Everything a backfill or sync run needs: the query, the :class:`~dbcost.config.Settings` tree (targets,
    rate, retry, breaker, store, sinks) and what this run alone decides (range rules, shard, caps)."""

    query: CostQuery
    settings: Settings = field(default_factory=Settings)
    command: str = "backfill"
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())
    window: Window = "auto"
    shard: Shard | None = None
    resume: bool = False
    max_requests: int | None = None
    max_cost_usd: Decimal | None = None
    label: str | None = None
    sink_context: SinkContext = field(default_factory=SinkContext)
    #: more datasets fetched in the same run (e.g. attribution's per-service queries); same range rules
    extra_queries: list[CostQuery] = field(default_factory=list)
    #: label per dataset fingerprint, stored with the dataset
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def queries(self) -> list[CostQuery]:
        return [self.query, *self.extra_queries]

    @property
    def targets(self) -> tuple[TargetConfig, ...]:
        return self.settings.targets

    @property
    def db(self) -> Path:
        return self.settings.store.path

    @property
    def sinks(self) -> tuple[str, ...]:
        return self.settings.sinks

    @property
    def max_concurrency(self) -> int:
        return self.settings.rate.max_concurrency

    def request_cap(self) -> int | None:
        """Requests the run may send: the lower of ``max_requests`` and ``max_cost_usd`` when either is given,
        else the settings' default limit (``settings.limits.max_requests``; None: no limit)."""
        caps = []
        if self.max_requests is not None:
            caps.append(self.max_requests)
        if self.max_cost_usd is not None:
            caps.append(int(self.max_cost_usd / PRICE_PER_REQUEST_USD))
        return min(caps) if caps else self.settings.limits.max_requests

    @property
    def cap_is_default(self) -> bool:
        """No cap was given for this run: the settings' default applies (messages say how to change it)."""
        return self.max_requests is None and self.max_cost_usd is None

    def settings_for(self, target: TargetConfig) -> FetchSettings:
        return self.settings.fetch_settings(target)


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
    status: RunStatus  # done | incomplete | stopped
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
    #: a failure that ended the whole run (the store's disk is full, a sink could not be opened)
    fatal: str | None = None
    #: ``stop`` was set (SIGTERM/SIGINT): the run ended early and is resumable
    interrupted: bool = False
    #: ``--resume`` found nothing to resume: nothing was sent, nothing written
    nothing_to_resume: str | None = None

    @property
    def ok(self) -> bool:
        """Every unit of the plan is done (and every sink has it)."""
        return self.status == RunStatus.DONE

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
            "fatal": self.fatal,
            "interrupted": self.interrupted,
            "nothing_to_resume": self.nothing_to_resume,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def make_plan(spec: RunSpec, pages_per_day: dict[str, float] | None = None) -> Plan:
    """The run's plan (pure): every query's range for every target, sharded if asked."""
    names = [t.name for t in spec.targets]
    plans = [plan_units(q, names, today=spec.today, window=spec.window, max_concurrency=spec.max_concurrency,
                        pages_per_day=pages_per_day, sibling_queries=len(spec.queries),
                        max_rps=spec.settings.rate.max_rps) for q in spec.queries]
    if len(plans) == 1 and spec.shard is None:
        return plans[0]
    units = sorted({u for p in plans for u in p.units})
    if spec.shard is not None:
        units = [u for i, u in enumerate(units) if i % spec.shard.count == spec.shard.index - 1]
    plan_id = hashlib.sha256("".join(p.plan_id for p in plans).encode() + str(spec.shard).encode()).hexdigest()[:16]
    return Plan(tuple(units), spec.shard, len(units), expected_requests(units, pages_per_day), plan_id)


def _pages_per_day(spec: RunSpec) -> dict[str, float]:
    """The store's pages-per-day history, read without creating or changing anything (empty: no store yet)."""
    if not spec.db.exists():
        return {}
    from dbcost.store import Store

    with Store(spec.settings.store, read_only=True) as store:
        return store.pages_per_day()


def check_run(spec: RunSpec, plan: Plan | None = None) -> Plan:
    """The run's plan, checked before anything is created: a range Cost Explorer cannot serve, or a plan whose
    minimum needs more requests than the cap, is a :class:`UsageError` (no store file, no run row). Reads the
    store's history read-only when the store exists (it sizes the plan). ``--resume`` is checked against the
    requests the unfinished units still need, by :func:`run_pipeline`."""
    ppd = _pages_per_day(spec)
    the_plan = plan if plan is not None else make_plan(spec, ppd)
    if not spec.resume:
        _check_cap(spec, the_plan.units, ppd)
    return the_plan


def _check_cap(spec: RunSpec, units: tuple[WorkUnit, ...] | list[WorkUnit], ppd: dict[str, float]) -> None:
    cap = spec.request_cap()
    if cap is None:
        return
    need = expected_requests(units, ppd)
    if need > cap:
        how = ("the default cap; --max-requests N or --max-cost-usd X raises it, --max-requests 0 lifts it"
               if spec.cap_is_default else "raise --max-requests/--max-cost-usd")
        raise UsageError(
            f"the plan needs at least {need} requests (${need * PRICE_PER_REQUEST_USD}) for {len(units)} "
            f"unit(s), more than the cap of {cap} requests ({how}) or narrow the range"
        )


async def run_pipeline(
    spec: RunSpec,
    *,
    progress: PipelineProgress | None = None,
    plan: Plan | None = None,
    stop: asyncio.Event | None = None,
) -> RunOutcome:
    """Run (or resume) the plan for ``spec`` into the store at ``spec.db`` and the sinks; ``stop`` ends it early
    (module docstring)."""
    progress = progress or _NoProgress()
    ppd = await asyncio.to_thread(_pages_per_day, spec)
    given_plan = plan is not None
    if plan is None:
        plan = make_plan(spec, ppd)
    the_plan = plan
    if not spec.resume:
        _check_cap(spec, plan.units, ppd)
    async with AsyncStore(spec.settings.store) as store:
        run: tuple[str, int] | None = None
        done: set[str] = set()
        if spec.resume:
            run = await store.call(lambda s: s.resumable_run(the_plan.plan_id))
            if run is not None:
                resumed_id = run[0]
                done = await store.call(lambda s: s.done_units(resumed_id))
                # the units are sized by the history (pages per day): the resumed run keeps the history it was
                # planned with, so the units its first part completed are the same units now
                planned_with = (await store.call(lambda s: s.run_args(resumed_id))).get("plan_pages_per_day")
                if isinstance(planned_with, dict) and planned_with != ppd and not given_plan:
                    ppd = {str(k): float(v) for k, v in planned_with.items()}
                    plan = the_plan = make_plan(spec, ppd)
            else:  # safe on every attempt: the units no earlier run of the plan completed (with these sinks)
                shown = [redact_url(u) for u in spec.sinks]
                done = await store.call(lambda s: s.plan_done_units(the_plan.plan_id, shown))
                if all(u.unit_id in done for u in the_plan.units):
                    return _nothing_to_resume(spec, plan, f"every unit of this plan in {spec.db} is done already")
                log.warning("--resume: no unfinished run of this plan in %s; starting a new run of the %d unit(s) "
                            "no earlier run completed", spec.db, sum(u.unit_id not in done for u in the_plan.units))
            _check_cap(spec, [u for u in the_plan.units if u.unit_id not in done], ppd)
        queries = list(plan.datasets.values())
        await store.call(lambda s: [s.register_dataset(q, spec.labels.get(q.fingerprint, spec.label)) for q in queries])

        resumed = run is not None
        if run is not None:
            run_id, version = run
            await store.call(lambda s: s.reopen_run(run_id))
        else:
            args = {"query": spec.query.model_dump(mode="json"), "targets": [t.name for t in spec.targets],
                    "window": spec.window, "shard": str(spec.shard) if spec.shard else None,
                    "sinks": [redact_url(u) for u in spec.sinks], "today": spec.today.isoformat(),
                    "plan_pages_per_day": ppd}
            run_id, version = await store.call(lambda s: s.begin_run(spec.command, plan_id=the_plan.plan_id, args=args))
        todo = [u for u in plan.units if u.unit_id not in done]
        per_target = {t.name: Stats() for t in spec.targets}
        outcome = RunOutcome(run_id, plan, RunStatus.DONE, Stats(), per_target, units_skipped=len(plan.units) - len(todo),
                             resumed=resumed)
        try:
            await _run_units(spec, store, run_id, version, todo, outcome, progress, stop)
        except BaseException as exc:
            # a run that raises (a sink that cannot be opened, cancellation) still says how it ended: the
            # metrics file and `--resume` read the run's row
            if isinstance(exc, asyncio.CancelledError):
                outcome.interrupted = True
            else:
                outcome.fatal = outcome.fatal or str(exc)
            await _finish(store, run_id, outcome, per_target)
            raise
        await _finish(store, run_id, outcome, per_target)
        return outcome


def _nothing_to_resume(spec: RunSpec, plan: Plan, why: str) -> RunOutcome:
    outcome = RunOutcome("", plan, RunStatus.DONE, Stats(), {t.name: Stats() for t in spec.targets})
    outcome.nothing_to_resume = why
    return outcome


async def _finish(store: AsyncStore, run_id: str, outcome: RunOutcome, per_target: dict[str, Stats]) -> None:
    """Record the run's outcome (shielded: a cancelled run is still recorded); a store that cannot take it
    (its disk is full) leaves the run 'running', which ``--resume`` continues just the same."""
    outcome.stats = Stats()
    for st in per_target.values():
        outcome.stats.add(st)
    if outcome.fatal:
        outcome.status = RunStatus.INCOMPLETE
    elif outcome.stopped_reason or outcome.interrupted:
        outcome.status = RunStatus.STOPPED
    elif outcome.incomplete_targets or outcome.units_failed:
        outcome.status = RunStatus.INCOMPLETE
    record = outcome.to_json()
    status, targets = outcome.status, outcome.incomplete_targets
    try:
        await asyncio.shield(store.call(lambda s: s.finish_run(run_id, status, record, targets)))
    except StoreError as exc:
        log.error("run %s: its outcome could not be recorded: %s", run_id, exc)
        if outcome.fatal is None:
            outcome.fatal = str(exc)


async def _run_units(
    spec: RunSpec,
    store: AsyncStore,
    run_id: str,
    version: int,
    todo: list[WorkUnit],
    outcome: RunOutcome,
    progress: PipelineProgress,
    stop: asyncio.Event | None,
) -> None:
    cap = spec.request_cap()
    budget = RequestBudget(cap)
    per_target = outcome.per_target
    progress.planned(outcome.plan, outcome.units_skipped)
    halt = asyncio.Event()  # no unit starts once set (a cap was reached, the run was stopped, the store failed)
    failed_targets: set[str] = set()

    async with AsyncExitStack() as stack:
        # opened in order, closed in reverse when the run ends (also when it fails)
        sinks: list[Sink] = [await stack.enter_async_context(open_sink(url, spec.sink_context))
                             for url in spec.sinks]
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
        running: set[asyncio.Task[None]] = set()

        def halt_all() -> None:
            halt.set()
            for task in running:
                task.cancel()

        async def run_unit(unit: WorkUnit) -> None:
            ce = clients.get(unit.target)
            if ce is None:
                outcome.units_failed += 1
                return
            async with sems[unit.target]:
                if halt.is_set():
                    outcome.units_stopped += 1
                    return
                task = asyncio.current_task()
                assert task is not None
                running.add(task)
                try:
                    await _run_unit(spec, store, ce, sinks, run_id, version, unit, outcome, progress)
                finally:
                    running.discard(task)

        async def guarded(unit: WorkUnit) -> None:
            try:
                await run_unit(unit)
            except asyncio.CancelledError:
                # stopped (a signal) or halted (the store failed): left staged, --resume continues it
                outcome.units_stopped += 1
                current = asyncio.current_task()
                if current is None or not halt.is_set():
                    raise  # cancelled from outside the run (the caller's own cancellation)
                current.uncancel()
            except BudgetExhaustedError as exc:
                # stop cleanly: this unit is left staged (not committed); --resume continues it
                halt.set()
                outcome.stopped_reason = str(exc)
                outcome.units_stopped += 1
                progress.unit_done(unit, None, str(exc), per_target[unit.target])
            except StoreError as exc:
                # the store failed (disk full, read-only): it may be unusable; stop everything
                if outcome.fatal is None:
                    outcome.fatal = str(exc)  # the outcome says it (the CLI prints it once)
                    log.info("unit %s: the store failed: %s", unit.unit_id, exc)
                outcome.units_stopped += 1
                halt_all()
            except DbcostError as exc:
                failed_targets.add(unit.target)
                outcome.units_failed += 1
                outcome.errors.append(f"{unit.unit_id}: {exc}")
                log.error("unit %s failed: %s", unit.unit_id, exc)
                message = str(exc)
                try:
                    await store.call(lambda s: s.fail_unit(run_id, unit.unit_id, message))
                except StoreError as store_exc:
                    if outcome.fatal is None:
                        outcome.fatal = str(store_exc)
                    halt_all()
                progress.unit_done(unit, None, message, per_target[unit.target])

        async def watch(event: asyncio.Event) -> None:
            await event.wait()
            outcome.interrupted = True
            halt_all()

        began = time.monotonic()
        watcher = asyncio.ensure_future(watch(stop)) if stop is not None else None
        try:
            async with asyncio.TaskGroup() as tg:
                for unit in todo:
                    tg.create_task(guarded(unit))
        finally:
            if watcher is not None:
                await cancel_and_wait(watcher)
        outcome.elapsed_s = time.monotonic() - began
    outcome.incomplete_targets = sorted(failed_targets)


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
    if saved is not None and saved.status == UnitStatus.RUNNING and saved.next_token:
        token, first_page = saved.next_token, saved.pages
    await store.call(lambda s: s.start_unit(run_id, ref, uid, fresh=token is None))
    if token:
        log.info("unit %s: continuing after page %d", uid, first_page)
    # the parser's quarantine count of this unit's pages; the store's count (duplicates found on commit
    # included) replaces it once the unit is committed, so every count said of the run is the store's
    parsed_quarantine = 0
    try:
        async for page in _prefetch(ce.pages(unit.window_query, dedup=False, resume_token=token,
                                             resume_page=first_page)):
            if page.restarted:
                # the chain restarted (token expired): what was staged from the old chain is superseded
                await store.call(lambda s: s.start_unit(run_id, ref, uid, fresh=True))
                ce.stats.quarantined -= parsed_quarantine
                parsed_quarantine = 0
            await store.call(lambda s, p=page: s.stage_page(run_id, uid, key_names, p.page, p.records,  # type: ignore[misc]
                                                            p.quarantined, p.next_token))
            parsed_quarantine += len(page.quarantined)
            progress.page(unit, page.page, ce.stats)
        diff = await store.call(lambda s: s.commit_unit(run_id, version, ref, uid))
    except BaseException:
        ce.stats.quarantined -= parsed_quarantine  # nothing of this unit was committed
        raise
    ce.stats.quarantined += diff.quarantined - parsed_quarantine
    for sink in sinks:
        await sink.write_unit(ref, store.unit_sink_batches(run_id, ref))
    await store.call(lambda s: s.checkpoint_unit(run_id, uid))
    outcome.units_done += 1
    outcome.inserted += diff.inserted
    outcome.changed += diff.changed
    outcome.deleted += diff.deleted
    outcome.quarantined += diff.quarantined
    progress.unit_done(unit, diff, None, ce.stats)
