"""``dbcost attribute``: a month's (or a range of months') database spend per team, cluster and category,
fetching what it needs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

import dbcost
import dbcost.defaults
import dbcost.governor
from dbcost.cli.app import EXIT_FAILED, UsageError, fail_usage, live_progress, run_async, say
from dbcost.cli.options import (
    AllocateOpt,
    ChainPagesOpt,
    ClusterTagOpt,
    DbOpt,
    EndpointOpt,
    FormatOpt,
    MaxConcOpt,
    MaxReqOpt,
    MaxRpsOpt,
    OutputOpt,
    ProfileOpt,
    RegionOpt,
    RequestTimeoutOpt,
    RetryBudgetOpt,
    TargetsOpt,
    TeamTagOpt,
    TodayOpt,
    TopologyOpt,
    check_output,
    settings_for,
)
from dbcost.cli.views import Out, RunProgress, print_attribution, print_attribution_range, report_run

__all__ = ["attribute"]


def _months(month: str | None, start_month: str | None, end_month: str | None, months: int | None,
            today: dt.date) -> list[str] | None:
    """The range asked for (None: one --month); exactly one of --month, --start-month[/--end-month], --months."""
    import dbcost.calendar
    import dbcost.jobs.attribute

    given = [name for name, v in (("--month", month), ("--start-month", start_month), ("--months", months))
             if v is not None]
    if len(given) != 1:
        raise UsageError("--month: give one of --month, --start-month/--end-month or --months"
                         + (f" (got {', '.join(given)})" if given else ""))
    if end_month is not None and start_month is None:
        raise UsageError("--end-month: needs --start-month")
    if month is not None:
        return None
    if months is not None:
        first = dbcost.calendar.add_months(today, -(months - 1)).strftime("%Y-%m")
        return dbcost.jobs.attribute.months_between(first, today.strftime("%Y-%m"))
    assert start_month is not None
    return dbcost.jobs.attribute.months_between(start_month, end_month or today.strftime("%Y-%m"))


def attribute(
    month: Annotated[str | None, typer.Option("--month", help="The month, YYYY-MM.")] = None,
    start_month: Annotated[str | None, typer.Option(
        "--start-month", help="First month of a range, YYYY-MM (attributed in one run).")] = None,
    end_month: Annotated[str | None, typer.Option(
        "--end-month", help="Last month of the range, YYYY-MM (default: this month).")] = None,
    months: Annotated[int | None, typer.Option(
        "--months", min=1, max=14, help="The last N months, this one included (one run).")] = None,
    db: DbOpt = "dbcost.duckdb",
    metric: Annotated[str, typer.Option("--metric", help="Cost metric to attribute.")] = "UnblendedCost",
    cluster_tag: ClusterTagOpt = "db-cluster",
    team_tag: TeamTagOpt = "team",
    topology: TopologyOpt = None,
    allocate_shared: AllocateOpt = False,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    targets: TargetsOpt = None,
    format_: FormatOpt = "table",
    output: OutputOpt = "-",
    refresh: Annotated[bool, typer.Option("--refresh", help="Fetch again even if the store is fresh.")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="Never call Cost Explorer; use the store only.")] = False,
    max_age_hours: Annotated[
        float, typer.Option("--max-age-hours", min=0, help="Store data younger than this is fresh enough.")
    ] = 6.0,
    max_rps: MaxRpsOpt = dbcost.governor.DEFAULT_MAX_RPS,
    max_concurrency: MaxConcOpt = dbcost.governor.DEFAULT_MAX_CONCURRENCY,
    max_requests: MaxReqOpt = None,
    max_pages_per_chain: ChainPagesOpt = None,
    request_timeout_s: RequestTimeoutOpt = dbcost.defaults.DEFAULT_REQUEST_TIMEOUT_S,
    retry_budget_s: RetryBudgetOpt = dbcost.defaults.DEFAULT_RETRY_BUDGET_S,
    today: TodayOpt = None,
) -> None:
    """Database spend of a month per team, cluster and category (compute, storage, io, backup, ...).

    Fetches what it needs through the backfill pipeline (per database service: USAGE_TYPE x cluster tag;
    once: cluster tag x team tag), unless the store already holds it and it is fresh. Database services are
    discovered with GetDimensionValues. The team comes from the team tag, else the topology file; spend
    with no owner is shown as `unattributed`, never spread unless --allocate-shared.

    A range (--start-month/--end-month, or --months N) is attributed in one pipeline run; JSON is then a
    list of the months' attributions, oldest first.
    """
    import dbcost.attribution.pools
    import dbcost.jobs.attribute

    try:
        check_output(output)
        day = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
        span = _months(month, start_month, end_month, months, day)
        dbcost.CostQuery.build(start="2026-01-01", end="2026-01-02", metrics=[metric])  # validates the metric
        topo = dbcost.attribution.pools.load_topology(topology) if topology else None
        settings = settings_for(targets=targets, endpoint_url=endpoint_url, profile=profile, region=region, db=db,
                                max_rps=max_rps, max_concurrency=max_concurrency, request_timeout_s=request_timeout_s,
                                retry_budget_s=retry_budget_s, max_requests=max_requests,
                                max_chain_pages=max_pages_per_chain)
        spec = dbcost.AttributeSpec(
            month=month or (span or [""])[-1], settings=settings, metric=metric, cluster_tag=cluster_tag,
            team_tag=team_tag, topology=topo, allocate_shared=allocate_shared, today=day,
            max_age=dt.timedelta(hours=max_age_hours), refresh=refresh, offline=offline,
            max_requests=max_requests or None,  # 0: no cap (settings_for lifted the default)
        )
        for m in span or [spec.month]:
            dbcost.jobs.attribute.month_range(m, day)
    except (UsageError, ValueError) as exc:
        fail_usage(str(exc).replace("metrics:", "--metric:"))
    if span is not None:
        _attribute_range(spec, span, format_, Out(output))
        return
    out = Out(output)
    with RunProgress(live=live_progress() and not (format_ != "table" and out.terminal)) as progress:
        result = run_async(lambda: dbcost.jobs.attribute.run_attribute(spec, progress=progress))
    if result.fetched is not None:
        say(f"dbcost attribute: fetched {len(result.services)} database service(s): "
            f"{result.fetched.stats.summary_line()}", fields=result.fetched.stats.to_json())
        if not result.fetched.ok:
            report_run(result.fetched, strict=False, command="attribute")
            raise typer.Exit(EXIT_FAILED)
    print_attribution(result.attribution, format_, out)


def _attribute_range(spec: dbcost.AttributeSpec, span: list[str], format_: str, out: Out) -> None:
    import dbcost.jobs.attribute

    with RunProgress(live=live_progress() and not (format_ != "table" and out.terminal)) as progress:
        result = run_async(lambda: dbcost.jobs.attribute.run_attribute_months(spec, span, progress=progress))
    if result.fetched is not None:
        say(f"dbcost attribute: fetched {span[0]}..{span[-1]}, {len(result.services)} database service(s): "
            f"{result.fetched.stats.summary_line()}", fields=result.fetched.stats.to_json())
        if not result.fetched.ok:
            report_run(result.fetched, strict=False, command="attribute")
            raise typer.Exit(EXIT_FAILED)
    print_attribution_range(result.attributions, spec.metric, format_, out)
