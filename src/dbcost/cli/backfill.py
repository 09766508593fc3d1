"""``dbcost backfill`` and ``dbcost sync``: planned runs into the DuckDB store, resumable.

Both build one :class:`~dbcost.RunSpec` from the same options; ``sync`` then lets the pipeline set its
window from the store (:func:`dbcost.jobs.backfill.sync_spec`). ``--dry-run`` prints the plan and sends nothing.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from typing import Annotated

import typer

import dbcost
import dbcost.defaults
import dbcost.governor
from dbcost.cli.app import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_QUARANTINED,
    DbcostError,
    UsageError,
    exit_for_signal,
    fail,
    fail_usage,
    interrupted_by,
    live_progress,
    resume_hint,
    run_async,
    say,
    stop_requested,
)
from dbcost.cli.options import (
    ChainPagesOpt,
    DbOpt,
    EndpointOpt,
    FilterOpt,
    FormatOpt,
    GranularityOpt,
    GroupByOpt,
    JsonOpt,
    MaxConcOpt,
    MaxReqOpt,
    MaxRpsOpt,
    MetricOpt,
    MetricsFileOpt,
    OutputOpt,
    ProfileOpt,
    RegionOpt,
    RequestTimeoutOpt,
    RetryBudgetOpt,
    ShardCountOpt,
    ShardIndexEnvOpt,
    ShardOpt,
    SinkOpt,
    StartOpt,
    StrictOpt,
    TargetsOpt,
    TodayOpt,
    WindowOpt,
    check_output,
    run_spec,
)
from dbcost.cli.views import Out, RunProgress, print_plan, report_run

__all__ = ["backfill", "resume_command", "sync"]


def backfill(
    start: StartOpt,
    end: Annotated[str | None, typer.Option("--end", help="Day after the last, YYYY-MM-DD (default: today).")] = None,
    granularity: GranularityOpt = "DAILY",
    metric: MetricOpt = None,
    group_by: GroupByOpt = None,
    filter_: FilterOpt = None,
    targets: TargetsOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    db: DbOpt = "dbcost.duckdb",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the last unfinished run of this plan.")] = False,
    shard: ShardOpt = None,
    shard_index_env: ShardIndexEnvOpt = None,
    shard_count: ShardCountOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the units, requests and dollars; send nothing.")] = False,
    probe: Annotated[bool, typer.Option(
        "--probe", help="With --dry-run: spend at most max(2, 2%) of the run's requests to learn the groups per day, "
        "estimate within about 10%, and keep the pages fetched for the run (it does not buy them again).")] = False,
    max_requests: MaxReqOpt = None,
    max_cost_usd: Annotated[
        float | None, typer.Option("--max-cost-usd", help="Refuse/stop before spending more than this "
                                   "(instead of the default cap of $50; 0 = no limit).")
    ] = None,
    max_pages_per_chain: ChainPagesOpt = None,
    max_rps: MaxRpsOpt = dbcost.governor.DEFAULT_MAX_RPS,
    max_concurrency: MaxConcOpt = dbcost.governor.DEFAULT_MAX_CONCURRENCY,
    request_timeout_s: RequestTimeoutOpt = dbcost.defaults.DEFAULT_REQUEST_TIMEOUT_S,
    retry_budget_s: RetryBudgetOpt = dbcost.defaults.DEFAULT_RETRY_BUDGET_S,
    sink: SinkOpt = None,
    window: WindowOpt = "auto",
    format_: FormatOpt = "table",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
    strict: StrictOpt = False,
    metrics_file: MetricsFileOpt = None,
    today: TodayOpt = None,
) -> None:
    """Backfill a date range into the DuckDB store: planned units, run concurrently under one rate.

    Units that Cost Explorer's date rules allow (DAILY in the 13-month window, MONTHLY beyond it) fan out
    across targets; each page is staged as it arrives, each unit is committed atomically and
    checkpointed, so a killed run continues with --resume. Records are idempotent on their natural key:
    a rerun replaces, never adds. SIGTERM/SIGINT stop it within seconds (exit 143/130) with the exact --resume
    command; --resume with nothing to resume says so and sends nothing.
    """
    import dbcost.jobs.backfill

    try:
        spec = run_spec(command="backfill", start=start, end=end, granularity=granularity, metric=metric,
                        group_by=group_by, filter_=filter_, targets=targets, endpoint_url=endpoint_url,
                        profile=profile, region=region, db=db, resume=resume, shard=shard,
                        max_requests=max_requests, max_cost_usd=max_cost_usd, max_rps=max_rps,
                        max_concurrency=max_concurrency, sinks=sink, window=window, today=today,
                        request_timeout_s=request_timeout_s, retry_budget_s=retry_budget_s,
                        max_chain_pages=max_pages_per_chain, metrics_file=metrics_file,
                        shard_index_env=shard_index_env, shard_count=shard_count)
        check_output(output)
        if probe and not dry_run:
            raise UsageError("--probe: only with --dry-run (a run continues what the probe fetched by itself)")
        if probe and resume:
            raise UsageError("--probe: not with --resume (the probe starts what the next run continues)")
        if not dry_run:
            dbcost.jobs.backfill.check_backfill(spec)
    except (UsageError, ValueError) as exc:
        fail_usage(str(exc))
    except DbcostError as exc:  # the store cannot be read (in use by another run, not a store)
        fail(exc)
    fmt = "json" if as_json else format_
    code = run_async(lambda: _run(spec, dry_run=dry_run, fmt=fmt, out=Out(output), strict=strict,
                                  metrics_file=metrics_file, probe=probe))
    raise typer.Exit(code)


def sync(
    ctx: typer.Context,
    start: Annotated[
        str | None,
        typer.Option("--start", help="Only for a first sync: where to begin (later syncs continue from the store)."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="Sync a dataset the store holds, by id (or a unique prefix), label, or `all` "
                                       "(one sync each), with its stored query: no query options. `dbcost "
                                       "datasets` lists them."),
    ] = None,
    granularity: GranularityOpt = "DAILY",
    metric: MetricOpt = None,
    group_by: GroupByOpt = None,
    filter_: FilterOpt = None,
    targets: TargetsOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    db: DbOpt = "dbcost.duckdb",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the last unfinished sync of this plan.")] = False,
    shard: ShardOpt = None,
    shard_index_env: ShardIndexEnvOpt = None,
    shard_count: ShardCountOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the units, requests and dollars; send nothing.")] = False,
    max_requests: MaxReqOpt = None,
    max_cost_usd: Annotated[float | None, typer.Option("--max-cost-usd", help="Spending cap (instead of the "
                                                       "default cap of $50; 0 = no limit).")] = None,
    max_pages_per_chain: ChainPagesOpt = None,
    max_rps: MaxRpsOpt = dbcost.governor.DEFAULT_MAX_RPS,
    max_concurrency: MaxConcOpt = dbcost.governor.DEFAULT_MAX_CONCURRENCY,
    request_timeout_s: RequestTimeoutOpt = dbcost.defaults.DEFAULT_REQUEST_TIMEOUT_S,
    retry_budget_s: RetryBudgetOpt = dbcost.defaults.DEFAULT_RETRY_BUDGET_S,
    sink: SinkOpt = None,
    window: WindowOpt = "auto",
    format_: FormatOpt = "table",
    as_json: JsonOpt = False,
    output: OutputOpt = "-",
    strict: StrictOpt = False,
    metrics_file: MetricsFileOpt = None,
    today: TodayOpt = None,
) -> None:
    """Bring a dataset up to today and re-read what Cost Explorer may still restate.

    Fetches from the last completed checkpoint to today, and re-reads the restatement window: the open
    month, the previous month until the 5th, and any stored period still marked Estimated. Restated
    records replace the old ones (new version); what changed is recorded in the store's changes table.
    With --dataset the query is the one the store keeps for that dataset (or for each, with `all`).
    """
    import dbcost.jobs.backfill

    if dataset is not None:
        restated = [flag for name, flag in _QUERY_OPTIONS
                    if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"]
        if restated:
            fail_usage(f"--dataset {dataset}: the store keeps the dataset's query; do not restate it "
                       f"({', '.join(restated)})")
        _sync_datasets(dataset, start=start, targets=targets, endpoint_url=endpoint_url, profile=profile,
                       region=region, db=db, resume=resume, shard=shard, shard_index_env=shard_index_env,
                       shard_count=shard_count, dry_run=dry_run, max_requests=max_requests,
                       max_cost_usd=max_cost_usd, max_pages_per_chain=max_pages_per_chain, max_rps=max_rps,
                       max_concurrency=max_concurrency, request_timeout_s=request_timeout_s,
                       retry_budget_s=retry_budget_s, sink=sink, window=window,
                       fmt="json" if as_json else format_, output=output, strict=strict, metrics_file=metrics_file,
                       today=today)
    try:
        spec = run_spec(command="sync", start=None, end=None, granularity=granularity,
                        metric=metric, group_by=group_by, filter_=filter_, targets=targets,
                        endpoint_url=endpoint_url, profile=profile, region=region, db=db, resume=resume,
                        shard=shard, max_requests=max_requests, max_cost_usd=max_cost_usd, max_rps=max_rps,
                        max_concurrency=max_concurrency, sinks=sink, window=window, today=today,
                        request_timeout_s=request_timeout_s, retry_budget_s=retry_budget_s,
                        max_chain_pages=max_pages_per_chain, metrics_file=metrics_file,
                        shard_index_env=shard_index_env, shard_count=shard_count)
        check_output(output)
        first = dbcost.CostQuery.build(start=start, end=spec.today.isoformat()).start if start is not None else None
        windowed = dbcost.jobs.backfill.sync_spec(spec, first)
        if windowed is None:
            say("dbcost sync: nothing to do (the store is up to date)")
            raise typer.Exit(EXIT_OK)
        if not dry_run:
            dbcost.jobs.backfill.check_backfill(windowed)
    except (UsageError, ValueError) as exc:
        fail_usage(str(exc))
    except DbcostError as exc:  # the store cannot be read (in use by another run, not a store)
        fail(exc)
    fmt = "json" if as_json else format_
    code = run_async(lambda: _run(windowed, dry_run=dry_run, fmt=fmt, out=Out(output), strict=strict,
                                  metrics_file=metrics_file))
    raise typer.Exit(code)


#: the options that state a query: ``sync --dataset`` takes the dataset's stored query instead
_QUERY_OPTIONS = (("granularity", "--granularity"), ("metric", "--metric"), ("group_by", "--group-by"),
                  ("filter_", "--filter"))


def _sync_datasets(selector: str, *, start: str | None, targets: str | None, endpoint_url: str | None,
                   profile: str | None, region: str | None, db: str, resume: bool, shard: str | None,
                   shard_index_env: str | None, shard_count: int | None, dry_run: bool, max_requests: int | None,
                   max_cost_usd: float | None, max_pages_per_chain: int | None, max_rps: float,
                   max_concurrency: int, request_timeout_s: float, retry_budget_s: float, sink: list[str] | None,
                   window: str, fmt: str, output: str, strict: bool, metrics_file: str | None,
                   today: str | None) -> None:
    """``sync --dataset``: one sync per dataset named, each with its stored query, one after the other (each
    its own run, resumable as any sync). With ``--json`` each run's summary is printed as it ends (several: a
    JSON stream, one object per dataset, as ``jq`` reads it; CSV: one row each under one header; to
    ``--output`` all at once when the last ends). The exit code is the worst: 1 if a sync failed,
    else 3 if one quarantined with ``--strict``; a signal stops the loop (the rest are not started)."""
    import dbcost.jobs.backfill

    try:
        base = run_spec(command="sync", start=None, end=None, granularity="DAILY", metric=None, group_by=None,
                        filter_=None, targets=targets, endpoint_url=endpoint_url, profile=profile, region=region,
                        db=db, resume=resume, shard=shard, max_requests=max_requests, max_cost_usd=max_cost_usd,
                        max_rps=max_rps, max_concurrency=max_concurrency, sinks=sink, window=window, today=today,
                        request_timeout_s=request_timeout_s, retry_budget_s=retry_budget_s,
                        max_chain_pages=max_pages_per_chain, metrics_file=metrics_file,
                        shard_index_env=shard_index_env, shard_count=shard_count)
        check_output(output)
        first = dbcost.CostQuery.build(start=start, end=base.today.isoformat()).start if start is not None else None
        syncs = dbcost.jobs.backfill.dataset_sync_specs(base, selector, first)
        for one in syncs:
            if one.spec is not None and not dry_run:
                dbcost.jobs.backfill.check_backfill(one.spec)
    except (UsageError, ValueError) as exc:
        fail_usage(str(exc))
    except DbcostError as exc:  # the store cannot be read (in use by another run, not a store)
        fail(exc)

    out = Out(output, several=True)

    async def run_all() -> int:
        try:
            return await each()
        finally:
            out.finish()

    async def each() -> int:
        codes: list[int] = []
        for one in syncs:
            name = one.dataset + (f" ({one.label})" if one.label else "")
            if one.spec is None:
                say(f"dbcost sync: dataset {name}: nothing to do (the store is up to date)")
                continue
            say(f"dbcost sync: dataset {name}: {one.spec.query.start} to {one.spec.query.end}")
            code = await _run(one.spec, dry_run=dry_run, fmt=fmt, out=out, strict=strict, metrics_file=metrics_file)
            if interrupted_by() is not None:
                return code
            codes.append(code)
        return EXIT_FAILED if EXIT_FAILED in codes else max(codes, default=EXIT_OK)

    raise typer.Exit(run_async(run_all))


async def _run(spec: dbcost.RunSpec, *, dry_run: bool, fmt: str, out: Out, strict: bool,
               metrics_file: str | None, probe: bool = False) -> int:
    import dbcost.jobs.backfill

    if dry_run and probe:
        probed = await dbcost.jobs.backfill.probe_backfill(spec)
        print_plan(probed.plan, fmt, out, probe=probed)
        return EXIT_OK
    if dry_run:
        history = await dbcost.jobs.backfill.has_history(spec)
        print_plan(await dbcost.jobs.backfill.plan_backfill(spec), fmt, out, history=history)
        if not history:
            say(f"dbcost: {spec.db} has no history of this dataset, so the estimate counts one request per unit and "
                "cannot estimate well; --dry-run --probe spends a few requests to estimate within about 10%")
        return EXIT_OK
    metrics_ok = True
    resume_hint(resume_command(pin_end=spec.query.end.isoformat() if spec.command == "backfill" else None))
    try:
        with RunProgress(live=live_progress() and not (fmt != "table" and out.terminal)) as progress:
            outcome = await dbcost.jobs.backfill.run_backfill(spec, progress=progress, stop=stop_requested())
            if outcome.nothing_to_resume and spec.command == "sync" and spec.db.exists():
                # a sync's window moves with what it completed: an interrupted sync's plan may not be found
                # again, but catching up is what a sync does; its window is what is still missing
                say(f"dbcost sync: no unfinished sync of this plan; syncing from {spec.query.start}")
                spec = dataclasses.replace(spec, resume=False)
                outcome = await dbcost.jobs.backfill.run_backfill(spec, progress=progress, stop=stop_requested())
    finally:
        # on every way out (a failure included): the run has recorded how it ended, the metrics say it
        if metrics_file and spec.db.exists():
            metrics_ok = _write_metrics(metrics_file, spec)
    command = spec.command
    if outcome.nothing_to_resume:
        if fmt == "json":
            out.json(outcome.to_json())
        elif fmt == "csv":
            out.rows([outcome.to_json()])
        say(f"dbcost {command}: nothing to resume ({outcome.nothing_to_resume}); nothing was sent")
        return EXIT_OK
    code = report_run(outcome, strict=strict, command=command, fmt=fmt, out=out)
    if code == EXIT_QUARANTINED:
        _say_quarantined(outcome, spec, command)
    sig = interrupted_by() if outcome.interrupted else None
    if outcome.fatal:
        say(f"dbcost: failed: {outcome.fatal}", level="error")
    elif sig is not None:
        say(f"dbcost {command}: interrupted by {sig.name}: {outcome.units_done} unit(s) done in this run, "
            f"{outcome.units_skipped} before it, {outcome.units_stopped} stopped (resumable); "
            f"continue with: {resume_command(pin_end=spec.query.end.isoformat() if command == 'backfill' else None)}",
            level="error")
        return exit_for_signal(sig)
    return code if metrics_ok else max(code, EXIT_FAILED)


def _say_quarantined(outcome: dbcost.RunOutcome, spec: dbcost.RunSpec, command: str) -> None:
    """Why ``--strict`` exits 3, in one line: how many groups, for which reasons, and where they are kept."""
    import dbcost.jobs.backfill

    try:
        reasons = dbcost.jobs.backfill.quarantine_reasons(spec)
    except DbcostError:  # the run's own result stands; the reasons are a courtesy
        reasons = []
    shown = "; ".join(f"{n} x {reason}" for reason, n in reasons[:3]) + ("; ..." if len(reasons) > 3 else "")
    see = shlex.join(["dbcost", "export", "--db", str(spec.db), "--dataset", spec.query.fingerprint,
                      "--quarantine"])
    say(f"dbcost {command}: exit {EXIT_QUARANTINED} (--strict): {outcome.quarantined} group(s) quarantined in this "
        f"run" + (f" ({shown})" if shown else "") + f", their spend in no record; see them with their raw JSON: "
        f"{see}", level="error")


def _write_metrics(path: str, spec: dbcost.RunSpec) -> bool:
    """The metrics file from the store; a failure is one line (the run's own result stands, exit 1)."""
    import dbcost.jobs.metrics

    try:
        dbcost.jobs.metrics.write_metrics_file(path, spec.db)
    except DbcostError as exc:
        say(f"dbcost: {exc}", level="error")
        return False
    return True


def resume_command(argv: list[str] | None = None, *, pin_end: str | None = None) -> str:
    """The command line that continues this run: the same arguments, with ``--resume``. A backfill whose end
    was today by default gets it pinned (``pin_end``): tomorrow's default end would be another plan."""
    args = list(sys.argv[1:] if argv is None else argv)
    if pin_end is not None and not any(a == "--end" or a.startswith("--end=") for a in args):
        args += ["--end", pin_end]
    if "--resume" not in args:
        args.append("--resume")
    return shlex.join(["dbcost", *args])

