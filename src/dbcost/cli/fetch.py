"""``dbcost fetch``: one GetCostAndUsage query, every page, records to a file or stdout (no store)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Literal

import typer

import dbcost
import dbcost.defaults
import dbcost.governor
from dbcost.cli.app import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_QUARANTINED,
    UsageError,
    exit_for_signal,
    fail_usage,
    interrupted_by,
    live_progress,
    run_async,
    say,
    stop_requested,
)
from dbcost.cli.options import (
    ChainPagesOpt,
    EndOpt,
    EndpointOpt,
    FilterOpt,
    GranularityOpt,
    GroupByOpt,
    MaxConcOpt,
    MaxReqOpt,
    MaxRpsOpt,
    MetricOpt,
    ProfileOpt,
    RegionOpt,
    RequestTimeoutOpt,
    RetryBudgetOpt,
    SinkOpt,
    StartOpt,
    StrictOpt,
    check_metrics_file,
    check_sinks,
    load_filter,
    settings_for,
)
from dbcost.cli.views import page_status, print_table, write_summary

if TYPE_CHECKING:
    import dbcost.sinks

__all__ = ["fetch"]


def fetch(
    start: StartOpt,
    end: EndOpt,
    granularity: GranularityOpt = "DAILY",
    metric: MetricOpt = None,
    group_by: GroupByOpt = None,
    filter_: FilterOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    max_rps: MaxRpsOpt = dbcost.governor.DEFAULT_MAX_RPS,
    max_concurrency: MaxConcOpt = dbcost.governor.DEFAULT_MAX_CONCURRENCY,
    max_requests: MaxReqOpt = None,
    max_pages_per_chain: ChainPagesOpt = None,
    request_timeout_s: RequestTimeoutOpt = dbcost.defaults.DEFAULT_REQUEST_TIMEOUT_S,
    retry_budget_s: RetryBudgetOpt = dbcost.defaults.DEFAULT_RETRY_BUDGET_S,
    strict: StrictOpt = False,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Where records go: a file path, or - for stdout.")
    ] = "-",
    format_: Annotated[
        Literal["jsonl", "csv", "table"],
        typer.Option("--format", case_sensitive=False,
                     help="jsonl (one record a line), csv (one row per record and metric) or table (at its "
                          "natural width, with a total row)."),
    ] = "jsonl",
    quarantine: Annotated[
        str | None,
        typer.Option("--quarantine", help="Write quarantined groups (reason, period, page, raw JSON) as JSONL here."),
    ] = None,
    summary_json: Annotated[
        str | None, typer.Option("--summary-json", help="Write the run's counters as JSON here.")
    ] = None,
    sink: SinkOpt = None,
) -> None:
    """Run one GetCostAndUsage query, following every page, and write validated records.

    Records go to --output as JSONL (one record a line, amounts as decimal strings exactly as received),
    CSV (one row per record and metric) or a table. Malformed groups are quarantined, never dropped:
    --quarantine keeps them with their raw JSON. A summary line goes to stderr at the end. A fetch that fails
    or is stopped (SIGTERM/SIGINT: exit 143/130) keeps what it received as PATH.partial, whole records only.
    """
    import dbcost.plan
    import dbcost.sinks

    if quarantine is not None and quarantine == output:
        fail_usage("--quarantine: must not be the same file as --output")
    try:
        check_sinks(sink or [])
        query = dbcost.CostQuery.build(
            start=start,
            end=end,
            granularity=granularity,
            metrics=metric or ["UnblendedCost"],
            group_by=group_by or [],
            filter=load_filter(filter_),
        )
        dbcost.plan.check_range(query, dt.datetime.now(dt.UTC).date())
        check_metrics_file(summary_json, "--summary-json")
        settings = settings_for(targets=None, endpoint_url=endpoint_url, profile=profile, region=region,
                                max_rps=max_rps, max_concurrency=max_concurrency, request_timeout_s=request_timeout_s,
                                retry_budget_s=retry_budget_s, max_requests=max_requests,
                                max_chain_pages=max_pages_per_chain).fetch_settings()
    except UsageError as exc:
        fail_usage(str(exc))
    code = run_async(
        lambda: _fetch(query, settings, output=output, fmt=format_, quarantine=quarantine,
                       summary_json=summary_json, strict=strict, sinks=list(sink or []),
                       sink_context=dbcost.sinks.SinkContext(region=region, profile=profile))
    )
    raise typer.Exit(code)


async def _fetch(
    query: dbcost.CostQuery,
    settings: dbcost.FetchSettings,
    *,
    output: str,
    fmt: str,
    quarantine: str | None,
    summary_json: str | None,
    strict: bool,
    sinks: list[str],
    sink_context: dbcost.sinks.SinkContext,
) -> int:
    import dbcost.jobs.fetch

    with page_status(enabled=live_progress()) as status:
        outcome = await dbcost.jobs.fetch.run_fetch(
            query, settings, output=output, fmt=fmt, quarantine=quarantine, sinks=sinks, sink_context=sink_context,
            on_page=lambda n, st: status(f"page {n}: {st.records} records, {st.quarantined} quarantined, "
                                         f"{st.requests} requests"),
            render_table=print_table, stop=stop_requested(),
        )
    stats = outcome.stats
    sig = interrupted_by() if outcome.interrupted else None
    if summary_json:
        state = "interrupted" if sig is not None else "failed" if outcome.failure else "done"
        write_summary(summary_json, stats, extra={"status": state,
                                                  "pages_completed": outcome.pages_completed,
                                                  "query": query.describe()})
    if outcome.quarantined and quarantine is None:
        for q in outcome.quarantined[:10]:
            say(f"dbcost: quarantined (page {q.page}, {q.period_start}): {q.reason}")
        more = len(outcome.quarantined) - 10
        say(f"dbcost: {len(outcome.quarantined)} group(s) quarantined"
            + (f", {more} not shown" if more > 0 else "")
            + " (use --quarantine PATH to keep them with their raw JSON)")
    if stats.requests or outcome.failure is None:  # a fetch that failed before sending anything: one line
        say(f"dbcost fetch: {stats.summary_line()}", fields=stats.to_json())
    kept = ""
    if outcome.partial_path is not None:
        kept = f"; the {outcome.records_written} records received are in {outcome.partial_path}"
    elif output == "-" and outcome.records_written:
        kept = f"; the {outcome.records_written} records received were written to stdout"
    if sig is not None:
        say(f"dbcost: interrupted by {sig.name} after {outcome.pages_completed} complete page(s){kept}",
            level="error")
        return exit_for_signal(sig)
    if outcome.failure is not None:
        say(f"dbcost: failed after {outcome.pages_completed} complete page(s): {outcome.failure}{kept}",
            level="error")
        return EXIT_FAILED
    if strict and stats.quarantined:
        return EXIT_QUARANTINED
    return EXIT_OK
