"""``dbcost backfill`` and ``dbcost sync``: planned runs into the DuckDB store, resumable.

Both build one :class:`~dbcost.RunSpec` from the same options; ``sync`` then lets the pipeline set its
window from the store (:func:`dbcost.jobs.backfill.sync_spec`). ``--dry-run`` prints the plan and sends nothing.
"""

from __future__ import annotations

from typing import Annotated

import typer

import dbcost
import dbcost.governor
import dbcost.jobs.backfill
import dbcost.jobs.metrics
from dbcost.cli.app import EXIT_OK, UsageError, fail_usage, live_progress, run_async, say
from dbcost.cli.options import (
    DbOpt,
    EndpointOpt,
    FilterOpt,
    GranularityOpt,
    GroupByOpt,
    JsonOpt,
    MaxConcOpt,
    MaxReqOpt,
    MaxRpsOpt,
    MetricOpt,
    MetricsFileOpt,
    ProfileOpt,
    RegionOpt,
    ShardCountOpt,
    ShardIndexEnvOpt,
    ShardOpt,
    SinkOpt,
    StartOpt,
    StrictOpt,
    TargetsOpt,
    TodayOpt,
    WindowOpt,
    run_spec,
)
from dbcost.cli.views import RunProgress, print_plan, report_run

__all__ = ["backfill", "sync"]


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
    max_requests: MaxReqOpt = None,
    max_cost_usd: Annotated[
        float | None, typer.Option("--max-cost-usd", help="Refuse/stop before spending more than this.", min=0)
    ] = None,
    max_rps: MaxRpsOpt = dbcost.governor.DEFAULT_MAX_RPS,
    max_concurrency: MaxConcOpt = dbcost.governor.DEFAULT_MAX_CONCURRENCY,
    sink: SinkOpt = None,
    window: WindowOpt = "auto",
    as_json: JsonOpt = False,
    strict: StrictOpt = False,
    metrics_file: MetricsFileOpt = None,
    today: TodayOpt = None,
) -> None:
    """Backfill a date range into the DuckDB store: planned units, run concurrently under one rate.

    Units that Cost Explorer's date rules allow (DAILY in the 13-month window, MONTHLY beyond it) fan out
    across targets; each page is staged as it arrives, each unit is committed atomically and
    checkpointed, so a killed run continues with --resume. Records are idempotent on their natural key:
    a rerun replaces, never adds.
    """
    try:
        spec = run_spec(command="backfill", start=start, end=end, granularity=granularity, metric=metric,
                        group_by=group_by, filter_=filter_, targets=targets, endpoint_url=endpoint_url,
                        profile=profile, region=region, db=db, resume=resume, shard=shard,
                        max_requests=max_requests, max_cost_usd=max_cost_usd, max_rps=max_rps,
                        max_concurrency=max_concurrency, sinks=sink, window=window, today=today,
                        shard_index_env=shard_index_env, shard_count=shard_count)
    except (UsageError, ValueError) as exc:
        fail_usage(str(exc))
    code = run_async(lambda: _run(spec, dry_run=dry_run, as_json=as_json, strict=strict, metrics_file=metrics_file))
    raise typer.Exit(code)


def sync(
    start: Annotated[
        str | None,
        typer.Option("--start", help="Only for a first sync: where to begin (later syncs continue from the store)."),
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
    max_cost_usd: Annotated[float | None, typer.Option("--max-cost-usd", min=0, help="Spending cap.")] = None,
    max_rps: MaxRpsOpt = dbcost.governor.DEFAULT_MAX_RPS,
    max_concurrency: MaxConcOpt = dbcost.governor.DEFAULT_MAX_CONCURRENCY,
    sink: SinkOpt = None,
    window: WindowOpt = "auto",
    as_json: JsonOpt = False,
    strict: StrictOpt = False,
    metrics_file: MetricsFileOpt = None,
    today: TodayOpt = None,
) -> None:
    """Bring a dataset up to today and re-read what Cost Explorer may still restate.

    Fetches from the last completed checkpoint to today, and re-reads the restatement window: the open
    month, the previous month until the 5th, and any stored period still marked Estimated. Restated
    records replace the old ones (new version); what changed is recorded in the store's changes table.
    """
    try:
        spec = run_spec(command="sync", start=None, end=None, granularity=granularity,
                        metric=metric, group_by=group_by, filter_=filter_, targets=targets,
                        endpoint_url=endpoint_url, profile=profile, region=region, db=db, resume=resume,
                        shard=shard, max_requests=max_requests, max_cost_usd=max_cost_usd, max_rps=max_rps,
                        max_concurrency=max_concurrency, sinks=sink, window=window, today=today,
                        shard_index_env=shard_index_env, shard_count=shard_count)
        first = dbcost.CostQuery.build(start=start, end=spec.today.isoformat()).start if start is not None else None
        windowed = dbcost.jobs.backfill.sync_spec(spec, first)
        if windowed is None:
            say("dbcost sync: nothing to do (the store is up to date)")
            raise typer.Exit(EXIT_OK)
    except (UsageError, ValueError) as exc:
        fail_usage(str(exc))
    code = run_async(lambda: _run(windowed, dry_run=dry_run, as_json=as_json, strict=strict,
                                  metrics_file=metrics_file))
    raise typer.Exit(code)


async def _run(spec: dbcost.RunSpec, *, dry_run: bool, as_json: bool, strict: bool, metrics_file: str | None) -> int:
    if dry_run:
        print_plan(await dbcost.jobs.backfill.plan_backfill(spec), as_json)
        return EXIT_OK
    with RunProgress(live=live_progress() and not as_json) as progress:
        outcome = await dbcost.jobs.backfill.run_backfill(spec, progress=progress)
    if metrics_file:
        dbcost.jobs.metrics.write_metrics_file(metrics_file, spec.db)
    return report_run(outcome, as_json=as_json, strict=strict, command=spec.command)
