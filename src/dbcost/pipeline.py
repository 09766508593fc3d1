"""The backfill/sync pipeline: plan -> fetch -> parse -> store -> sinks -> checkpoint.

Units fan out with ``asyncio.TaskGroup``. Per target, at most ``max_concurrency`` units are active (a
unit's page chain is sequential, so that many requests can be in flight), and every request passes the
target's governor. A unit's pages are staged in the store a few at a time (``STAGE_PAGES`` pages or
``STAGE_ROWS`` rows, one transaction each) and its last ones with its commit, so a unit that fits in one batch
costs one transaction; memory holds at most that batch and one page ahead per active unit, however long the
range. A finished unit is committed (replace by window, atomically), sent to every sink from the store in period
order, and only then checkpointed. So:

* a process killed at any point resumes (``--resume``) with no gap and no duplicate: committed units are
  skipped, a staged unit continues from its saved page token (or from page one if the token expired). A kill -9
  loses the pages fetched since the last batch was staged (fewer than ``STAGE_PAGES`` per unit in flight):
  ``--resume`` buys them again. A signal or a request cap stages them before the run ends;
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
  (``RunOutcome.nothing_to_resume``);
* the units depend on the store's pages-per-day history (the planner sizes windows with it), so every run
  records the history it was planned with (``runs.args.plan_pages_per_day``) and a continued run re-plans
  with it: its units are the ones its first part completed or staged;
* ``backfill --dry-run --probe`` (:func:`probe_pipeline`) stages the first pages of each target's first and last
  unit as a ``stopped`` run of the plan, within max(2, 2%) of the estimated run, and estimates that run; the
  next run of the plan without ``--resume`` continues the probe's run: a unit staged whole is committed without
  a request, a partial one continues from its saved token (``RunOutcome.pages_reused``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
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
from dbcost.store import AsyncStore, RunStatus, StageBatch, UnitDiff, UnitStatus

__all__ = [
    "PROBE_MIN_REQUESTS",
    "PROBE_SHARE",
    "PipelineProgress",
    "ProbeOutcome",
    "RunOutcome",
    "RunSpec",
    "check_run",
    "make_plan",
    "probe_pipeline",
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

    def page(self, unit: WorkUnit, page: int, stats: Stats, *, through: str | None = None) -> None:
        """A page of ``unit`` is staged; ``through`` is the latest period start in it (pages follow the
        time order of ResultsByTime, inferred: a display may estimate the unit's share done from it)."""
        ...

    def unit_done(self, unit: WorkUnit, diff: UnitDiff | None, error: str | None, stats: Stats) -> None: ...


class _NoProgress:
    def planned(self, plan: Plan, skipped: int) -> None:
        return None

    def page(self, unit: WorkUnit, page: int, stats: Stats, *, through: str | None = None) -> None:
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
    #: this run continued a probe's (``backfill --dry-run --probe``) run of the same plan
    continued_probe: bool = False
    #: pages staged before this run (by a probe or the run's killed first part) that it committed without buying
    pages_reused: int = 0

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
            "continued_probe": self.continued_probe,
            "pages_reused": self.pages_reused,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def make_plan(spec: RunSpec, pages_per_day: dict[str, float] | None = None,
              fixed: Sequence[tuple[dt.date, dt.date]] = ()) -> Plan:
    """The run's plan (pure): every query's range for every target, sharded if asked; ``fixed`` windows (a
    probe's) stay units of their own."""
    names = [t.name for t in spec.targets]
    plans = [plan_units(q, names, today=spec.today, window=spec.window, max_concurrency=spec.max_concurrency,
                        pages_per_day=pages_per_day, sibling_queries=len(spec.queries),
                        max_rps=spec.settings.rate.max_rps, fixed=fixed) for q in spec.queries]
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
        probe: tuple[str, int] | None = None
        if not spec.resume:
            # a probe (backfill --dry-run --probe) staged pages of this plan: continue its run, buy them once
            probe = await store.call(lambda s: s.probe_run(the_plan.plan_id))
            run = probe
        elif (run := await store.call(lambda s: s.resumable_run(the_plan.plan_id))) is not None:
            resumed_id = run[0]
            done = await store.call(lambda s: s.done_units(resumed_id))
        planned: dict[str, Any] = {}
        if run is not None:
            run_id0 = run[0]
            planned = await store.call(lambda s: s.run_args(run_id0))
        elif spec.resume:  # no unfinished run: the units the plan's last run completed are what --resume skips
            planned = await store.call(lambda s: s.last_run_args(the_plan.plan_id))
        if planned and not given_plan:
            # the units are sized by the history (pages per day) and a probe's windows: a continued run keeps
            # what it was planned with, so the units its first part staged or completed are the same units now
            with_ppd, fixed = _planned_with(planned)
            if with_ppd is not None:
                ppd = with_ppd
                plan = the_plan = make_plan(spec, ppd, fixed=fixed)
        if spec.resume:
            if run is None:  # safe on every attempt: the units no earlier run of the plan completed (with these sinks)
                shown = [redact_url(u) for u in spec.sinks]
                done = await store.call(lambda s: s.plan_done_units(the_plan.plan_id, shown))
                if all(u.unit_id in done for u in the_plan.units):
                    return _nothing_to_resume(spec, plan, f"every unit of this plan in {spec.db} is done already")
                log.warning("--resume: no unfinished run of this plan in %s; starting a new run of the %d unit(s) "
                            "no earlier run completed", spec.db, sum(u.unit_id not in done for u in the_plan.units))
            _check_cap(spec, [u for u in the_plan.units if u.unit_id not in done], ppd)
        queries = list(plan.datasets.values())
        await store.call(lambda s: [s.register_dataset(q, spec.labels.get(q.fingerprint, spec.label)) for q in queries])

        resumed = run is not None and spec.resume
        if run is not None:
            run_id, version = run
            await store.call(lambda s: s.reopen_run(run_id))
            if probe is not None:  # this run now owns the probe's run: its sinks, no longer a probe
                continued = {**planned, "sinks": [redact_url(u) for u in spec.sinks], "probe": False,
                             "continued_probe": True}
                await store.call(lambda s: s.set_run_args(run_id, continued))
        else:
            args = {"query": spec.query.model_dump(mode="json"), "targets": [t.name for t in spec.targets],
                    "window": spec.window, "shard": str(spec.shard) if spec.shard else None,
                    "sinks": [redact_url(u) for u in spec.sinks], "today": spec.today.isoformat(),
                    "plan_pages_per_day": ppd}
            run_id, version = await store.call(lambda s: s.begin_run(spec.command, plan_id=the_plan.plan_id, args=args))
        todo = [u for u in plan.units if u.unit_id not in done]
        per_target = {t.name: Stats() for t in spec.targets}
        outcome = RunOutcome(run_id, plan, RunStatus.DONE, Stats(), per_target, units_skipped=len(plan.units) - len(todo),
                             resumed=resumed, continued_probe=probe is not None)
        try:
            await _run_units(spec, store, run_id, version, todo, outcome, progress, stop, load_progress=run is not None)
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


def _planned_with(args: dict[str, Any]) -> tuple[dict[str, float] | None, list[tuple[dt.date, dt.date]]]:
    """The pages-per-day history and the fixed (probe) windows a run was planned with, from its arguments."""
    raw = args.get("plan_pages_per_day")
    ppd = {str(k): float(v) for k, v in raw.items()} if isinstance(raw, dict) else None
    fixed = [(dt.date.fromisoformat(a), dt.date.fromisoformat(b)) for a, b in args.get("probe_windows") or ()]
    return ppd, fixed


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
    *,
    load_progress: bool = False,
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
                    await _run_unit(spec, store, ce, sinks, run_id, version, unit, outcome, progress,
                                    load_progress=load_progress)
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

#: pages staged together: a unit's fetched pages wait in memory until this many pages or rows are there (or the
#: unit ends: its last pages go into the records with its commit, in one transaction, never through staging). A
#: kill -9 loses what waits: at most STAGE_PAGES - 1 pages per unit in flight ($0.07), bought again by --resume (a
#: signal or a cap stages them first). A staged row is written twice (staging, then the records): at 4 pages
#: (4,000 rows) a 3-month DAILY backfill staged two thirds of its rows and spent 0.19 s more of the store thread
#: than at 8, a 13-month one 0.55 s more (bench/bench_cpu.py; waiting pages are compact Arrow, ~130 KB each)
STAGE_PAGES = 8
STAGE_ROWS = 8_000


@dataclass(frozen=True, slots=True)
class _Fetched:
    """A fetched page as it waits to be staged: its rows already compact (a StageBatch), its records let go."""

    page: int
    restarted: bool
    quarantined: int
    batch: StageBatch
    #: the page's last period start (pages and their groups follow ResultsByTime's time order: inferred),
    #: for a display's estimate of how far into its window the unit is
    through: str | None = None


async def _no_pages() -> AsyncIterator[_Fetched]:
    """An empty chain: the unit's pages are all staged already."""
    return
    yield  # pragma: no cover - makes this an async generator


async def _prefetch(pages: AsyncIterator[ParsedPage], prepare: Callable[[ParsedPage], Awaitable[StageBatch]],
                    depth: int = 1) -> AsyncIterator[_Fetched]:
    """Keep the page chain running while earlier pages are being staged.

    A unit's requests are sequential (each needs the previous page's token); without this, every
    page's staging time would add to the chain's round trip. Each page is ``prepare``d (made a compact
    StageBatch) as it arrives; at most ``depth`` of them wait, plus the one the chain holds.
    """
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=depth)

    async def produce() -> None:
        try:
            async for page in pages:
                through = page.last_period_start
                fetched = _Fetched(page.page, page.restarted, len(page.quarantined), await prepare(page), through)
                del page  # its records are in the batch now
                await queue.put(fetched)
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
            assert isinstance(item, _Fetched)
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
    *,
    load_progress: bool = False,
) -> None:
    key_names = unit.query.columns
    ref = UnitRef(run_id, unit.dataset, unit.target, unit.start, unit.end, unit.query.granularity, key_names)
    uid = unit.unit_id
    saved = await store.call(lambda s: s.unit_progress(run_id, uid)) if load_progress else None
    token: str | None = None
    first_page = 0
    # a chain staged whole (a probe's, or a run killed between its last page and its commit): commit it as it is
    whole = saved is not None and saved.status == UnitStatus.RUNNING and saved.pages > 0 and not saved.next_token
    if saved is not None and saved.status == UnitStatus.RUNNING and saved.next_token:
        token, first_page = saved.next_token, saved.pages
    await store.call(lambda s: s.start_unit(run_id, ref, uid, fresh=token is None and not whole))
    if whole and saved is not None:
        outcome.pages_reused += saved.pages
        log.info("unit %s: its %d page(s) are staged already; committing them", uid, saved.pages)
    elif first_page:
        outcome.pages_reused += first_page
    if token:
        log.info("unit %s: continuing after page %d", uid, first_page)
    # the parser's quarantine count of this unit's pages; the store's count (duplicates found on commit
    # included) replaces it once the unit is committed, so every count said of the run is the store's
    parsed_quarantine = 0
    # pages fetched but not staged yet: staged together (one transaction) once STAGE_PAGES pages or STAGE_ROWS
    # rows wait, and the unit's last ones with its commit (module docstring: what a kill -9 costs)
    pending: list[StageBatch] = []
    pending_rows = 0

    async def flush() -> None:
        nonlocal pending, pending_rows
        batch, pending, pending_rows = pending, [], 0
        if batch:
            await store.call(lambda s: s.stage_pages(run_id, uid, batch))

    try:
        try:
            async for page in _prefetch(ce.pages(unit.window_query, dedup=False, resume_token=token,
                                                 resume_page=first_page, columnar=True),
                                        lambda p: store.prepare(key_names, p)):
                if page.restarted:
                    # the chain restarted (token expired): what was staged from the old chain is superseded
                    pending, pending_rows = [], 0
                    await store.call(lambda s: s.start_unit(run_id, ref, uid, fresh=True))
                    ce.stats.quarantined -= parsed_quarantine
                    parsed_quarantine = 0
                pending.append(page.batch)
                pending_rows += page.batch.size
                parsed_quarantine += page.quarantined
                if page.batch.next_token is not None and (len(pending) >= STAGE_PAGES or pending_rows >= STAGE_ROWS):
                    await flush()
                progress.page(unit, page.page, ce.stats, through=page.through)
        except (asyncio.CancelledError, BudgetExhaustedError):
            # stopped (a signal, a cap): what was fetched stays staged, so --resume continues after it
            if pending:
                with contextlib.suppress(StoreError):  # a failed store: they are fetched again on --resume
                    await asyncio.shield(flush())
            raise
        batch = pending
        pending = []
        # with no sink to send it to, the unit is done once committed: its checkpoint goes in the same transaction
        diff = await store.call(lambda s: s.commit_unit(run_id, version, ref, uid, batch, done=not sinks))
    except BaseException:
        ce.stats.quarantined -= parsed_quarantine  # nothing of this unit was committed
        raise
    ce.stats.quarantined += diff.quarantined - parsed_quarantine
    if sinks:
        for sink in sinks:
            await sink.write_unit(ref, store.unit_sink_batches(run_id, ref))
        await store.call(lambda s: s.checkpoint_unit(run_id, uid))
    outcome.units_done += 1
    outcome.inserted += diff.inserted
    outcome.changed += diff.changed
    outcome.deleted += diff.deleted
    outcome.quarantined += diff.quarantined
    progress.unit_done(unit, diff, None, ce.stats)


# ------------------------------------------------------------------------------------------------- probe

#: the probe may spend this share of the run's expected requests (or PROBE_MIN_REQUESTS, whichever is more)
PROBE_SHARE = 0.02
PROBE_MIN_REQUESTS = 2


@dataclass
class ProbeOutcome:
    """What ``backfill --dry-run --probe`` learnt and spent, and the plan the following run executes."""

    plan: Plan
    run_id: str
    #: attempts the probe sent (throttled and retried ones included) and the billed (successful) ones
    requests: int
    billed_requests: int
    #: the probe may send at most this many: max(PROBE_MIN_REQUESTS, PROBE_SHARE x the run's requests)
    allowance: int
    #: pages the probe staged, which the run commits without buying them again
    staged_pages: int
    #: requests the run itself is expected to send (the staged pages are not counted again)
    expected_requests: int
    probe_units: list[str] = field(default_factory=list)
    #: per target: groups per day seen at each end of the range, and the page size
    learnt: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: False if some target's probe saw no whole day within the allowance (the estimate is then a lower bound)
    complete: bool = True

    @property
    def expected_cost_usd(self) -> Decimal:
        return self.expected_requests * PRICE_PER_REQUEST_USD

    def to_json(self) -> dict[str, Any]:
        return {
            "probe_run_id": self.run_id, "probe_requests": self.requests,
            "probe_billed_requests": self.billed_requests,
            "probe_cost_usd": str(self.billed_requests * PRICE_PER_REQUEST_USD),
            "probe_allowance": self.allowance, "probe_pages_reused": self.staged_pages,
            "probe_units": self.probe_units, "probe_complete": self.complete, "probe_learnt": self.learnt,
            "expected_total_requests": self.billed_requests + self.expected_requests,
        }


def _groups_by_period(page: ParsedPage) -> dict[str, int]:
    """Groups (records and quarantined ones) per period of one page, in period order."""
    out: dict[str, int] = {}
    for r in page.records:
        out[r.period_start] = out.get(r.period_start, 0) + 1
    for q in page.quarantined:
        if q.period_start is not None:
            out[q.period_start] = out.get(q.period_start, 0) + 1
    return dict(sorted(out.items()))


def _probe_estimate(plan: Plan, densities: dict[str, Any]) -> int:
    """The requests of ``plan`` by the densities learnt per target (a unit of a target with none: one)."""
    from dbcost.plan import Density

    total = 0
    for u in plan.units:
        d = densities.get(u.target)
        total += d.pages(u) if isinstance(d, Density) and d.known() else 1
    return total


def _probe_ppd(plan: Plan, densities: dict[str, Any]) -> dict[str, float]:
    """Pages per day per dataset (the planner's window sizing), from the first target with a density."""
    from dbcost.plan import Density

    out: dict[str, float] = {}
    for u in plan.units:
        d = densities.get(u.target)
        if isinstance(d, Density) and d.known() and u.query.granularity != "MONTHLY" and u.dataset not in out:
            out[u.dataset] = d.pages_per_day(u.query.start, u.query.end)
    return out


def _probe_windows(plan: Plan) -> list[WorkUnit]:
    """The units a probe pages: per target, the first and the last unit of its DAILY/HOURLY part (of the MONTHLY
    part when there is no other)."""
    chosen: list[WorkUnit] = []
    for target in plan.targets:
        mine = [u for u in plan.units if u.target == target]
        daily = [u for u in mine if u.query.granularity != "MONTHLY"] or mine
        for u in (daily[0], daily[-1]):
            if u not in chosen:
                chosen.append(u)
    return chosen


async def probe_pipeline(spec: RunSpec) -> ProbeOutcome:
    """Learn the groups per day (and the page size) from the first and last unit of each target's range, page by
    page, within max(PROBE_MIN_REQUESTS, PROBE_SHARE x the estimated run); stage what it fetched as a run of the
    plan that the next (non-resume) run of the same plan continues, so nothing is bought twice; and estimate the
    requests that run will send. Writes the store (the staged pages and a ``stopped`` probe run); no sinks."""
    from dbcost.plan import Density

    ppd0 = await asyncio.to_thread(_pages_per_day, spec)
    plan0 = make_plan(spec, ppd0)
    probes = _probe_windows(plan0)
    densities: dict[str, Density] = {t.name: Density() for t in spec.targets}
    per_target = {t.name: Stats() for t in spec.targets}
    staged_units: dict[str, int] = {}  # unit id -> pages staged
    chains_done: set[str] = set()

    def spent() -> int:
        return sum(st.requests for st in per_target.values())

    def allowance() -> int:
        ppd = _probe_ppd(plan0, densities)
        plan = make_plan(spec, ppd, fixed=[(u.start, u.end) for u in probes])
        return max(PROBE_MIN_REQUESTS, math.floor(PROBE_SHARE * _probe_estimate(plan, densities)))

    async with AsyncStore(spec.settings.store) as store:
        queries = list(plan0.datasets.values())
        await store.call(lambda s: [s.register_dataset(q, spec.labels.get(q.fingerprint, spec.label)) for q in queries])
        args = {"query": spec.query.model_dump(mode="json"), "targets": [t.name for t in spec.targets],
                "window": spec.window, "shard": str(spec.shard) if spec.shard else None, "sinks": [],
                "today": spec.today.isoformat(), "probe": True}
        run_id, _version = await store.call(lambda s: s.begin_run(spec.command, plan_id=plan0.plan_id, args=args))
        budget = RequestBudget(None)
        async with AsyncExitStack() as stack:
            clients: dict[str, CostExplorer] = {}
            for unit in probes:
                if spent() >= allowance():
                    break
                target = next(t for t in spec.targets if t.name == unit.target)
                if target.name not in clients:
                    clients[target.name] = await stack.enter_async_context(
                        open_client(spec.settings_for(target), stats=per_target[target.name], budget=budget))
                ce = clients[target.name]
                ref = UnitRef(run_id, unit.dataset, unit.target, unit.start, unit.end, unit.query.granularity,
                              unit.query.columns)
                uid = unit.unit_id
                await store.call(lambda s, r=ref, i=uid: s.start_unit(run_id, r, i, fresh=True))  # type: ignore[misc]
                density = densities[unit.target]
                seen_before = density.complete_days()
                pages = ce.pages(unit.window_query, dedup=False)
                try:
                    async for page in pages:
                        if page.restarted:  # token expired: what was staged of this chain is superseded
                            await store.call(lambda s, r=ref, i=uid: s.start_unit(run_id, r, i, fresh=True))  # type: ignore[misc]
                            staged_units[uid] = 0
                        await store.call(lambda s, p=page, i=uid, k=unit.query.columns: s.stage_page(  # type: ignore[misc]
                            run_id, i, k, p.page, p.records, p.quarantined, p.next_token))
                        staged_units[uid] = staged_units.get(uid, 0) + 1
                        density.add_page(_groups_by_period(page), page.next_token is not None)
                        if page.next_token is None:
                            chains_done.add(uid)
                            break
                        # enough: a whole day and the page size are known, or the allowance is spent
                        if density.complete_days() > seen_before and density.page_size is not None:
                            break
                        if spent() + 1 > allowance():
                            break
                finally:
                    if isinstance(pages, AsyncGenerator):
                        await pages.aclose()
        ppd = _probe_ppd(plan0, densities)
        fixed = [(u.start, u.end) for u in probes if u.unit_id in staged_units]
        plan = make_plan(spec, ppd, fixed=fixed)
        staged = sum(staged_units.values())
        remaining = 0
        for u in plan.units:
            d = densities.get(u.target)
            est = d.pages(u) if d is not None and d.known() else 1
            if u.unit_id in chains_done:
                est = 0
            elif u.unit_id in staged_units:
                est = max(1, est - staged_units[u.unit_id])
            remaining += est
        stats = Stats()
        for st in per_target.values():
            stats.add(st)
        record = {**stats.to_json(), "probe": True, "probe_units": sorted(staged_units)}
        planned = {**args, "plan_pages_per_day": ppd, "probe_windows": [[a.isoformat(), b.isoformat()] for a, b in fixed]}
        await store.call(lambda s: s.set_run_args(run_id, planned))
        await store.call(lambda s: s.finish_run(run_id, RunStatus.STOPPED, record, []))
    learnt = {
        name: {"days_seen": len(d.days), "groups_per_day_start": round(d.groups_on(spec.query.start), 1),
               "groups_per_day_end": round(d.groups_on(spec.query.end - dt.timedelta(days=1)), 1),
               "page_size": d.page_size, "largest_page": d.largest_page}
        for name, d in densities.items()
    }
    return ProbeOutcome(plan, run_id, stats.requests, stats.billed_requests, allowance(), staged, remaining,
                        sorted(staged_units), learnt, complete=all(d.days for d in densities.values()))
