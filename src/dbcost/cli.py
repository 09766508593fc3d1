"""The ``dbcost`` command line (typer + rich). Imports only the public ``dbcost`` package.

Exit codes (every command): 0 done; 1 failed (after saying what completed); 2 bad input (nothing sent,
nothing written); 3 done but records were quarantined and ``--strict`` was given. ``quota check`` adds
4 (WARN) and 5 (BREACH) with ``--fail-on``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

import dbcost
import dbcost.emulator.cli

DbcostError = dbcost.errors.DbcostError
UsageError = dbcost.errors.UsageError

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_QUARANTINED = 3

app = typer.Typer(
    name="dbcost",
    help=(
        "Async ingestion of AWS Cost Explorer data for database cost attribution and quota automation.\n\n"
        "Every page is fetched, every group is a validated record or a quarantined one, money is exact "
        "Decimal end to end. Credentials come from the standard AWS chain (env, ~/.aws files, SSO, "
        "instance/container roles); --profile picks a profile; --endpoint-url or "
        "AWS_ENDPOINT_URL_COST_EXPLORER points at another endpoint (e.g. `dbcost emulator serve`).\n\n"
        "Exit codes: 0 done, 1 failed (after saying what completed), 2 bad input, "
        "3 records quarantined with --strict."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
app.add_typer(dbcost.emulator.cli.app, name="emulator", help="A local Cost Explorer look-alike (for trying dbcost).")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"dbcost {dbcost.__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    log_level: Annotated[
        str, typer.Option("--log-level", help="dbcost's own log level on stderr: DEBUG, INFO, WARNING, ERROR.")
    ] = "WARNING",
    log_format: Annotated[
        str, typer.Option("--log-format", help="text, or json for one JSON object per log line.")
    ] = "text",
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    if log_format not in ("text", "json"):
        _fail_usage(f"--log-format: must be text or json, got {log_format!r}")
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        _fail_usage(f"--log-level: unknown level {log_level!r}")
    dbcost.logs.setup_logging(log_level, "json" if log_format == "json" else "text")
    _JSON_LOGS["on"] = log_format == "json"


def _fail_usage(message: str) -> NoReturn:
    _say(f"dbcost: error: {message}", level="error")
    raise typer.Exit(EXIT_USAGE)


_JSON_LOGS = {"on": False}


def _say(message: str, *, level: str = "info") -> None:
    """A message for the operator on stderr: plain text, or a JSON log line with --log-format json."""
    if _JSON_LOGS["on"]:
        sys.stderr.write(dbcost.logs.json_line(level, "dbcost.cli", message) + "\n")
        sys.stderr.flush()
    else:
        err_console.print(message, markup=False)


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    """Run a command's coroutine; map dbcost errors to one line on stderr and an exit code."""
    try:
        return asyncio.run(_call(main))
    except UsageError as exc:
        _fail_usage(str(exc))
    except DbcostError as exc:
        _say(f"dbcost: failed: {exc}", level="error")
        raise typer.Exit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        _say("dbcost: interrupted")
        raise typer.Exit(130) from None


async def _call(main: Callable[[], Awaitable[T]]) -> T:
    return await main()


def _load_filter(text: str | None) -> str | None:
    """``--filter`` takes JSON, or ``@path`` to a JSON file."""
    if text is None or not text.startswith("@"):
        return text
    return dbcost.errors.read_text_file(text[1:], f"filter {text[1:]}")


# ----------------------------------------------------------------------------------------------- fetch

StartOpt = Annotated[str, typer.Option("--start", help="First day, YYYY-MM-DD (inclusive).")]
EndOpt = Annotated[str, typer.Option("--end", help="Day after the last, YYYY-MM-DD (exclusive, as in the API).")]
GranularityOpt = Annotated[str, typer.Option("--granularity", help="DAILY, MONTHLY or HOURLY (last 14 days).")]
MetricOpt = Annotated[
    list[str] | None,
    typer.Option("--metric", help="Metric to fetch; repeatable. Default UnblendedCost. E.g. AmortizedCost."),
]
GroupByOpt = Annotated[
    list[str] | None,
    typer.Option("--group-by", help="SERVICE, USAGE_TYPE, LINKED_ACCOUNT, ... or TAG:<key>; at most two."),
]
FilterOpt = Annotated[
    str | None, typer.Option("--filter", help="Cost Explorer Filter expression as JSON, or @file.json.")
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="Cost Explorer endpoint (default: AWS_ENDPOINT_URL_COST_EXPLORER, else the public endpoint).",
    ),
]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="AWS profile (default: AWS_PROFILE / chain).")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="Signing region (default: profile's, else us-east-1).")]
MaxRpsOpt = Annotated[
    float, typer.Option("--max-rps", help="Requests per second to Cost Explorer (adaptive below this).", min=0.01)
]
MaxConcOpt = Annotated[int, typer.Option("--max-concurrency", help="Requests in flight at most.", min=1)]
MaxReqOpt = Annotated[
    int | None,
    typer.Option("--max-requests", help="Stop before sending more than N requests ($0.01 each).", min=0),
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Exit 3 if any group was quarantined.")]


@app.command()
def fetch(
    start: StartOpt,
    end: EndOpt,
    granularity: GranularityOpt = "DAILY",
    metric: MetricOpt = None,
    group_by: GroupByOpt = None,
    filter_: Annotated[
        str | None, typer.Option("--filter", help="Cost Explorer Filter expression as JSON, or @file.json.")
    ] = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    max_rps: MaxRpsOpt = dbcost.DEFAULT_MAX_RPS,
    max_concurrency: MaxConcOpt = dbcost.DEFAULT_MAX_CONCURRENCY,
    max_requests: MaxReqOpt = None,
    strict: StrictOpt = False,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Where records go: a file path, or - for stdout.")
    ] = "-",
    format_: Annotated[str, typer.Option("--format", help="jsonl (default), csv or table.")] = "jsonl",
    quarantine: Annotated[
        str | None,
        typer.Option("--quarantine", help="Write quarantined groups (reason, period, page, raw JSON) as JSONL here."),
    ] = None,
    summary_json: Annotated[
        str | None, typer.Option("--summary-json", help="Write the run's counters as JSON here.")
    ] = None,
    sink: Annotated[
        list[str] | None,
        typer.Option("--sink", help="Also send records to: jsonl:PATH, parquet:DIR, kafka://H:P/TOPIC, "
                                    "kinesis://STREAM, postgresql://USER@H:P/DB. Repeatable."),
    ] = None,
) -> None:
    """Run one GetCostAndUsage query, following every page, and write validated records.

    Records go to --output as JSONL (one record a line, amounts as decimal strings exactly as received),
    CSV (one row per record and metric) or a table. Malformed groups are quarantined, never dropped:
    --quarantine keeps them with their raw JSON. A summary line goes to stderr at the end.
    """
    if format_ not in ("jsonl", "csv", "table"):
        _fail_usage(f"--format: must be jsonl, csv or table, got {format_!r}")
    if quarantine is not None and quarantine == output:
        _fail_usage("--quarantine: must not be the same file as --output")
    try:
        for url in sink or []:
            dbcost.sinks.parse_sink_url(url)
        query = dbcost.CostQuery.build(
            start=start,
            end=end,
            granularity=granularity,
            metrics=metric or ["UnblendedCost"],
            group_by=group_by or [],
            filter=_load_filter(filter_),
        )
    except UsageError as exc:
        _fail_usage(str(exc))
    settings = dbcost.FetchSettings(
        endpoint_url=endpoint_url,
        profile=profile,
        region=region,
        max_rps=max_rps,
        max_concurrency=max_concurrency,
        max_requests=max_requests,
    )
    code = run_async(
        lambda: _fetch(query, settings, output=output, fmt=format_, quarantine=quarantine,
                       summary_json=summary_json, strict=strict, sinks=list(sink or []),
                       sink_context={"region": region, "profile": profile})
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
    sink_context: dict[str, Any],
) -> int:
    with _page_status(enabled=err_console.is_terminal and not _JSON_LOGS["on"]) as status:
        outcome = await dbcost.jobs.run_fetch(
            query, settings, output=output, fmt=fmt, quarantine=quarantine, sinks=sinks, sink_context=sink_context,
            on_page=lambda n, st: status(f"page {n}: {st.records} records, {st.quarantined} quarantined, "
                                         f"{st.requests} requests"),
            render_table=_print_table,
        )
    stats = outcome.stats
    if summary_json:
        _write_summary(summary_json, stats, extra={"status": "failed" if outcome.failure else "done",
                                                   "pages_completed": outcome.pages_completed,
                                                   "query": query.describe()})
    if outcome.quarantined and quarantine is None:
        for q in outcome.quarantined[:10]:
            _say(f"dbcost: quarantined (page {q.page}, {q.period_start}): {q.reason}")
        more = len(outcome.quarantined) - 10
        _say(f"dbcost: {len(outcome.quarantined)} group(s) quarantined"
                          + (f", {more} not shown" if more > 0 else "")
                          + " (use --quarantine PATH to keep them with their raw JSON)")
    _say(f"dbcost fetch: {stats.summary_line()}")
    if outcome.failure is not None:
        where = ""
        if outcome.partial_path is not None:
            where = f"; the {stats.records} records received are in {outcome.partial_path}"
        _say(f"dbcost: failed after {outcome.pages_completed} complete page(s): {outcome.failure}{where}",
             level="error")
        return EXIT_FAILED
    if strict and stats.quarantined:
        return EXIT_QUARANTINED
    return EXIT_OK


class _page_status:
    """A rich status spinner on a terminal; nothing otherwise."""

    def __init__(self, *, enabled: bool) -> None:
        self._status: Any = err_console.status("fetching…") if enabled else None

    def __enter__(self) -> Callable[[str], None]:
        if self._status is None:
            return lambda _msg: None
        self._status.__enter__()
        return self._status.update  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)


def _print_table(f: Any, query: dbcost.CostQuery, records: list[dbcost.CostRecord]) -> None:
    from rich.table import Table

    table = Table(show_lines=False)
    for col in ("period", *query.columns):
        table.add_column(col)
    for m in query.metrics:
        table.add_column(m, justify="right")
    table.add_column("est.")
    for r in records:
        table.add_row(
            r.period_start,
            *(r.keys.get(c, "") for c in query.columns),
            *(f"{r.metrics[m].amount} {r.metrics[m].unit}" if m in r.metrics else "" for m in query.metrics),
            "yes" if r.estimated else "",
        )
    buf = io.StringIO()
    Console(file=buf, width=200).print(table)
    f.write(buf.getvalue())


def _write_summary(path: str, stats: dbcost.Stats, *, extra: dict[str, Any]) -> None:
    try:
        dbcost.jobs.write_json(path, {**stats.to_json(), **extra})
    except OSError as exc:
        _say(f"dbcost: cannot write summary {path}: {exc.strerror}")


# -------------------------------------------------------------------------------------- backfill/sync

DbOpt = Annotated[str, typer.Option("--db", help="The DuckDB store file.")]
TargetsOpt = Annotated[
    str | None,
    typer.Option("--targets", help="TOML/YAML file of payer targets (name, profile or role_arn, max_rps, ...)."),
]
ShardOpt = Annotated[str | None, typer.Option("--shard", help="K/N: run the K-th of N disjoint shares of the units.")]
SinkOpt = Annotated[
    list[str] | None,
    typer.Option("--sink", help="Also send records to: jsonl:PATH, parquet:DIR, kafka://H:P/TOPIC, "
                                "kinesis://STREAM, postgresql://USER@H:P/DB. Repeatable."),
]
WindowOpt = Annotated[str, typer.Option("--window", help="Unit window: auto, month, semimonth, week, day.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the run summary as JSON on stdout.")]


def _run_spec(
    *, command: str, start: str | None, end: str | None, granularity: str, metric: list[str] | None,
    group_by: list[str] | None, filter_: str | None, targets: str | None, endpoint_url: str | None,
    profile: str | None, region: str | None, db: str, resume: bool, shard: str | None,
    max_requests: int | None, max_cost_usd: float | None, max_rps: float, max_concurrency: int,
    sinks: list[str] | None, window: str, today: str | None,
) -> dbcost.RunSpec:
    """Options -> a validated RunSpec; every problem is a UsageError (exit 2, nothing sent)."""
    from decimal import Decimal

    day = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
    # sync computes its own range from the store: it builds the query on a placeholder window first
    query = dbcost.CostQuery.build(
        start=start or (day - dt.timedelta(days=1)).isoformat(), end=end or day.isoformat(),
        granularity=granularity, metrics=metric or ["UnblendedCost"], group_by=group_by or [],
        filter=_load_filter(filter_),
    )
    if window not in ("auto", "month", "semimonth", "week", "day"):
        raise UsageError(f"--window: must be auto, month, semimonth, week or day, got {window!r}")
    if targets:
        if endpoint_url or profile or region:
            raise UsageError("--targets: give profiles/endpoints in the targets file, not also on the command line")
        target_list = dbcost.load_targets(targets)
    else:
        target_list = [dbcost.TargetConfig(name="default", profile=profile, region=region, endpoint_url=endpoint_url)]
    for url in sinks or []:
        dbcost.sinks.parse_sink_url(url)
    spec = dbcost.RunSpec(
        query=query, targets=target_list, db=Path(db), command=command, today=day,
        window=window,  # type: ignore[arg-type]  # checked above
        shard=dbcost.parse_shard(shard), resume=resume, max_requests=max_requests,
        max_cost_usd=Decimal(str(max_cost_usd)) if max_cost_usd is not None else None,
        max_rps=max_rps, max_concurrency=max_concurrency, sinks=list(sinks or []),
        sink_context={"endpoint_url": None, "region": region, "profile": profile},
    )
    return spec


class _RunProgress:
    """Rich progress bars on a terminal; one plain line per finished unit otherwise."""

    def __init__(self, *, live: bool) -> None:
        self.live = live
        self._progress: Any = None
        self._task: Any = None
        self._done = 0
        self._total = 0
        self._stats: dict[str, dbcost.Stats] = {}

    def __enter__(self) -> _RunProgress:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]units"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"), console=err_console, transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def _info(self) -> str:
        st = dbcost.Stats()
        for s in self._stats.values():
            st.add(s)
        return (f"pages {st.pages}  records {st.records}  requests {st.requests}  ${st.cost_usd}  "
                f"throttled {st.throttled}  quarantined {st.quarantined}")

    def planned(self, plan: dbcost.Plan, skipped: int) -> None:
        self._total = len(plan.units)
        self._done = skipped
        if self._progress is not None:
            self._task = self._progress.add_task("units", total=self._total, completed=skipped, info="")
        else:
            _say(f"dbcost: plan {plan.plan_id}: {self._total} unit(s), {skipped} already done")

    def page(self, unit: dbcost.WorkUnit, page: int, stats: dbcost.Stats) -> None:
        self._stats[unit.target] = stats
        if self._progress is not None:
            self._progress.update(self._task, info=self._info())

    def unit_done(self, unit: dbcost.WorkUnit, diff: Any, error: str | None, stats: dbcost.Stats) -> None:
        self._stats[unit.target] = stats
        self._done += 1
        if self._progress is not None:
            self._progress.update(self._task, advance=1, info=self._info())
        elif error is None:
            _say(
                f"dbcost: unit {self._done}/{self._total} done: {unit.target} {unit.query.granularity} "
                f"{unit.start}..{unit.end} rows={diff.rows} new={diff.inserted} changed={diff.changed} "
                f"deleted={diff.deleted} quarantined={diff.quarantined} | {self._info()}")
        else:
            _say(f"dbcost: unit {unit.target} {unit.start}..{unit.end} failed: {error}")


async def _run_backfill(spec: dbcost.RunSpec, *, dry_run: bool, as_json: bool, strict: bool,
                        metrics_file: str | None) -> int:
    if dry_run:
        _print_plan(await dbcost.pipeline.dry_run_plan(spec), as_json)
        return EXIT_OK
    with _RunProgress(live=err_console.is_terminal and not as_json and not _JSON_LOGS["on"]) as progress:
        outcome = await dbcost.run_pipeline(spec, progress=progress)
    if metrics_file:
        dbcost.write_metrics_file(metrics_file, spec.db)
    return _report_run(outcome, as_json=as_json, strict=strict, command=spec.command)


def _print_plan(plan: dbcost.Plan, as_json: bool) -> None:
    units = dbcost.describe_units(plan.units)
    if as_json:
        import orjson

        typer.echo(orjson.dumps({
            "plan_id": plan.plan_id, "shard": str(plan.shard) if plan.shard else None, "units": units,
            "min_requests": plan.min_requests, "expected_requests": plan.expected_requests,
            "min_cost_usd": str(plan.min_cost_usd), "expected_cost_usd": str(plan.expected_cost_usd),
        }, option=orjson.OPT_INDENT_2).decode())
        return
    from rich.table import Table

    table = Table(title=f"plan {plan.plan_id}" + (f" shard {plan.shard}" if plan.shard else ""))
    for col in ("target", "granularity", "start", "end", "dataset"):
        table.add_column(col)
    for u in units:
        table.add_row(u["target"], u["granularity"], u["start"], u["end"], u["dataset"])
    Console().print(table)
    typer.echo(f"{len(units)} unit(s); at least {plan.min_requests} request(s) (${plan.min_cost_usd}), "
               f"expected {plan.expected_requests} (${plan.expected_cost_usd}) at $0.01 per request/page")


def _report_run(outcome: dbcost.RunOutcome, *, as_json: bool, strict: bool, command: str) -> int:
    if as_json:
        import orjson

        typer.echo(orjson.dumps(outcome.to_json(), option=orjson.OPT_INDENT_2).decode())
    st = outcome.stats
    _say(
        f"dbcost {command}: {outcome.status}: units {outcome.units_done} done, {outcome.units_skipped} skipped "
        f"(earlier run), {outcome.units_failed} failed, {outcome.units_stopped} stopped | rows new "
        f"{outcome.inserted} changed {outcome.changed} deleted {outcome.deleted} | {st.summary_line()}",
        level="info" if outcome.status == "done" else "error",
    )
    if outcome.stopped_reason:
        _say(f"dbcost: stopped: {outcome.stopped_reason}; run again with --resume to continue")
    if outcome.incomplete_targets:
        _say(f"dbcost: incomplete target(s): {', '.join(outcome.incomplete_targets)}")
        for e in outcome.errors[:5]:
            _say(f"  {e}")
    if outcome.status != "done":
        return EXIT_FAILED
    if strict and outcome.quarantined:
        return EXIT_QUARANTINED
    return EXIT_OK


TodayOpt = Annotated[str | None, typer.Option("--today", hidden=True, help="Pretend today is this date (tests).")]
MetricsFileOpt = Annotated[
    str | None,
    typer.Option("--metrics-file", help="Write Prometheus text-format metrics here (node_exporter textfile)."),
]


@app.command()
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
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the units, requests and dollars; send nothing.")] = False,
    max_requests: MaxReqOpt = None,
    max_cost_usd: Annotated[
        float | None, typer.Option("--max-cost-usd", help="Refuse/stop before spending more than this.", min=0)
    ] = None,
    max_rps: MaxRpsOpt = dbcost.DEFAULT_MAX_RPS,
    max_concurrency: MaxConcOpt = dbcost.DEFAULT_MAX_CONCURRENCY,
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
        spec = _run_spec(command="backfill", start=start, end=end, granularity=granularity, metric=metric,
                         group_by=group_by, filter_=filter_, targets=targets, endpoint_url=endpoint_url,
                         profile=profile, region=region, db=db, resume=resume, shard=shard,
                         max_requests=max_requests, max_cost_usd=max_cost_usd, max_rps=max_rps,
                         max_concurrency=max_concurrency, sinks=sink, window=window, today=today)
    except (UsageError, ValueError) as exc:
        _fail_usage(str(exc))
    code = run_async(lambda: _run_backfill(spec, dry_run=dry_run, as_json=as_json, strict=strict,
                                           metrics_file=metrics_file))
    raise typer.Exit(code)


@app.command()
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
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the units, requests and dollars; send nothing.")] = False,
    max_requests: MaxReqOpt = None,
    max_cost_usd: Annotated[float | None, typer.Option("--max-cost-usd", min=0, help="Spending cap.")] = None,
    max_rps: MaxRpsOpt = dbcost.DEFAULT_MAX_RPS,
    max_concurrency: MaxConcOpt = dbcost.DEFAULT_MAX_CONCURRENCY,
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
        spec = _run_spec(command="sync", start=None, end=None, granularity=granularity,
                         metric=metric, group_by=group_by, filter_=filter_, targets=targets,
                         endpoint_url=endpoint_url, profile=profile, region=region, db=db, resume=resume,
                         shard=shard, max_requests=max_requests, max_cost_usd=max_cost_usd, max_rps=max_rps,
                         max_concurrency=max_concurrency, sinks=sink, window=window, today=today)
        first = dbcost.CostQuery.build(start=start, end=spec.today.isoformat()).start if start is not None else None
        windowed = dbcost.pipeline.sync_spec(spec, first)
        if windowed is None:
            _say("dbcost sync: nothing to do (the store is up to date)")
            raise typer.Exit(EXIT_OK)
    except (UsageError, ValueError) as exc:
        _fail_usage(str(exc))
    code = run_async(lambda: _run_backfill(windowed, dry_run=dry_run, as_json=as_json, strict=strict,
                                           metrics_file=metrics_file))
    raise typer.Exit(code)


@app.command()
def export(
    db: DbOpt = "dbcost.duckdb",
    format_: Annotated[str, typer.Option("--format", help="jsonl, csv or parquet.")] = "jsonl",
    output: Annotated[str, typer.Option("--output", "-o", help="File to write, or - for stdout (jsonl/csv).")] = "-",
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only this dataset (fingerprint).")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Only this target.")] = None,
) -> None:
    """Write the stored records in the `dbcost fetch` JSONL shape (plus dataset, target, version and the
    run_id that wrote it), or as CSV/Parquet with the fetch CSV columns (plus dataset, target)."""
    if format_ not in ("jsonl", "csv", "parquet"):
        _fail_usage(f"--format: must be jsonl, csv or parquet, got {format_!r}")
    if format_ == "parquet" and output == "-":
        _fail_usage("--output: parquet needs a file path")
    try:
        n = dbcost.jobs.run_export(Path(db), fmt=format_, output=output, dataset=dataset, target=target)
    except UsageError as exc:
        _fail_usage(str(exc))
    except DbcostError as exc:
        _say(f"dbcost: failed: {exc}", level="error")
        raise typer.Exit(EXIT_FAILED) from None
    _say(f"dbcost export: {n} record(s) written")


@app.command()
def demo(
    dir_: Annotated[
        str, typer.Option("--dir", help="Where the demo writes its DuckDB store and report.")
    ] = "dbcost-demo",
    months: Annotated[int, typer.Option("--months", min=1, max=13, help="Months of daily data to backfill.")] = 3,
    seed: Annotated[int, typer.Option("--seed", help="The synthetic fleet's seed.")] = 7,
    today: TodayOpt = None,
) -> None:
    """Run the whole job locally against the built-in Cost Explorer emulator (no AWS account, no cost).

    Backfill into DuckDB, attribution per team/cluster/category for the last months, a quota check with an
    example policy and the HTML report, each checked against the emulator's ground truth. About 10 s.
    """
    def say(message: str) -> None:
        _say(f"dbcost demo: {message}")

    try:
        day = dt.date.fromisoformat(today) if today else None
    except ValueError:
        _fail_usage(f"--today: must be YYYY-MM-DD, got {today!r}")
    result = run_async(lambda: dbcost.run_demo(Path(dir_), months=months, today=day, seed=seed, say=say))
    o = result.outcome
    st = result.requests
    a = result.attribution
    q = result.quota
    assert a is not None and q is not None
    lines = [
        "",
        f"dbcost demo finished in {result.directory}/",
        "",
        f"  backfill      {o.units_done} units, {o.stats.pages} pages, {o.stats.records} records, "
        f"{o.quarantined} quarantined (== {result.malformed} malformed groups served)",
        f"                stored {result.stored_total:,.10f} USD == emulator ground truth {result.truth_total:,.10f}: "
        + ("exact" if result.truth_total == result.stored_total else "MISMATCH"),
        f"  requests      {st.requests} sent, {st.billed_requests} billed (${st.cost_usd} at real prices), "
        f"{st.retries} retried, {st.throttled} throttled",
        f"  attribution   {result.month}: {a.total:,.2f} USD of database spend over {len(a.teams)} teams, "
        f"{a.unattributed:,.2f} unattributed"
        + (" (exact against the ground truth)" if result.attribution_exact else " (MISMATCH against the ground truth)"),
    ]
    lines.extend(f"                {t.amount:>14,.2f}  {t.team}" for t in a.teams[:5])
    statuses = ", ".join(f"{p.pool} {p.status}" for p in q.pools if p.status != "OK") or "all OK"
    lines += [
        f"  quota         {result.policy_path}: {statuses}",
        f"  report        {result.report_path}",
        "",
        "next:",
        f"  dbcost report --db {result.db} --month {result.month}              # the same report as tables",
        f"  dbcost quota check --db {result.db} --policy {result.policy_path} --month {result.month} --fail-on breach",
        f"  dbcost export --db {result.db} --format csv -o costs.csv     # every stored record",
        "  dbcost emulator serve &                                       # a local Cost Explorer; it prints its URL",
        "  AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x dbcost fetch --endpoint-url URL \\",
        f"      --start {dt.date.today().replace(day=1)} --end {dt.date.today()} --group-by SERVICE --format table",
        "",
    ]
    typer.echo("\n".join(lines))
    raise typer.Exit(EXIT_OK if result.exact and o.status == "done" else EXIT_FAILED)


# ----------------------------------------------------------------------------------------- attribution

MonthOpt = Annotated[str, typer.Option("--month", help="The month, YYYY-MM.")]
FormatTJ = Annotated[str, typer.Option("--format", help="table or json.")]


def _targets_for(targets: str | None, endpoint_url: str | None, profile: str | None,
                 region: str | None) -> list[dbcost.TargetConfig]:
    if targets:
        if endpoint_url or profile or region:
            raise UsageError("--targets: give profiles/endpoints in the targets file, not also on the command line")
        return dbcost.load_targets(targets)
    return [dbcost.TargetConfig(name="default", profile=profile, region=region, endpoint_url=endpoint_url)]


@app.command()
def attribute(
    month: MonthOpt,
    db: DbOpt = "dbcost.duckdb",
    metric: Annotated[str, typer.Option("--metric", help="Cost metric to attribute.")] = "UnblendedCost",
    cluster_tag: Annotated[str, typer.Option("--cluster-tag", help="Tag key naming the cluster.")] = "db-cluster",
    team_tag: Annotated[str, typer.Option("--team-tag", help="Tag key naming the owning team.")] = "team",
    topology: Annotated[
        str | None, typer.Option("--topology", help="CSV/YAML (cluster,team,env,owner) for clusters whose tags are missing.")
    ] = None,
    allocate_shared: Annotated[
        bool, typer.Option("--allocate-shared", help="Spread unattributed spend over teams by account and service.")
    ] = False,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    targets: TargetsOpt = None,
    format_: FormatTJ = "table",
    refresh: Annotated[bool, typer.Option("--refresh", help="Fetch again even if the store is fresh.")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="Never call Cost Explorer; use the store only.")] = False,
    max_age_hours: Annotated[
        float, typer.Option("--max-age-hours", min=0, help="Store data younger than this is fresh enough.")
    ] = 6.0,
    max_rps: MaxRpsOpt = dbcost.DEFAULT_MAX_RPS,
    max_concurrency: MaxConcOpt = dbcost.DEFAULT_MAX_CONCURRENCY,
    max_requests: MaxReqOpt = None,
    today: TodayOpt = None,
) -> None:
    """Database spend of a month per team, cluster and category (compute, storage, io, backup, ...).

    Fetches what it needs through the backfill pipeline (per database service: USAGE_TYPE x cluster tag;
    once: cluster tag x team tag), unless the store already holds it and it is fresh. Database services are
    discovered with GetDimensionValues. The team comes from the team tag, else the topology file; spend
    with no owner is shown as `unattributed`, never spread unless --allocate-shared.
    """
    if format_ not in ("table", "json"):
        _fail_usage(f"--format: must be table or json, got {format_!r}")
    try:
        day = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
        dbcost.CostQuery.build(start="2026-01-01", end="2026-01-02", metrics=[metric])  # validates the metric
        topo = dbcost.attribution.load_topology(topology) if topology else None
        spec = dbcost.AttributeSpec(
            month=month, db=Path(db), targets=_targets_for(targets, endpoint_url, profile, region), metric=metric,
            cluster_tag=cluster_tag, team_tag=team_tag, topology=topo, allocate_shared=allocate_shared, today=day,
            max_age=dt.timedelta(hours=max_age_hours), refresh=refresh, offline=offline, max_rps=max_rps,
            max_concurrency=max_concurrency, max_requests=max_requests,
        )
        dbcost.month_range(month, day)
    except (UsageError, ValueError) as exc:
        _fail_usage(str(exc).replace("metrics:", "--metric:"))
    result = run_async(lambda: dbcost.run_attribute(spec))
    if result.fetched is not None:
        _say(f"dbcost attribute: fetched {len(result.services)} database service(s): "
                          f"{result.fetched.stats.summary_line()}")
        if result.fetched.status != "done":
            _report_run(result.fetched, as_json=False, strict=False, command="attribute")
            raise typer.Exit(EXIT_FAILED)
    a = result.attribution
    if format_ == "json":
        import orjson

        typer.echo(orjson.dumps(a.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        _print_attribution(a)


def _print_attribution(a: Any) -> None:
    from rich.table import Table

    console = Console()
    cats = ("compute", "storage", "io", "backup", "data_transfer", "other", "shared")
    teams = Table(title=f"Database spend {a.month} ({a.metric}), total {a.total:,.2f} USD")
    teams.add_column("team")
    teams.add_column("amount", justify="right")
    teams.add_column("share", justify="right")
    teams.add_column("clusters", justify="right")
    for t in a.teams:
        share = (t.amount / a.total * 100) if a.total else 0
        teams.add_row(t.team, f"{t.amount:,.2f}", f"{share:.1f}%", str(len(t.clusters)))
    teams.add_row("unattributed", f"{a.unattributed:,.2f}",
                  f"{(a.unattributed / a.total * 100) if a.total else 0:.1f}%", str(len(a.unattributed_clusters)),
                  style="yellow")
    console.print(teams)
    clusters = Table(title="Top clusters by category")
    for col in ("team", "cluster", "amount", *cats):
        clusters.add_column(col, justify="right" if col not in ("team", "cluster") else "left")
    rows = sorted(((t.team, c) for t in a.teams for c in t.clusters), key=lambda x: -x[1].amount)[:25]
    for team, c in rows:
        clusters.add_row(team, c.cluster, f"{c.amount:,.2f}", *(f"{c.categories.get(k, 0):,.2f}" for k in cats))
    console.print(clusters)
    if a.unclassified_usage_types:
        un = Table(title="Unclassified usage types (category 'other')")
        un.add_column("service")
        un.add_column("usage type")
        un.add_column("amount", justify="right")
        for u in a.unclassified_usage_types[:20]:
            un.add_row(u.service, u.usage_type, f"{u.amount:,.2f}")
        console.print(un)
    if a.estimated_amount:
        console.print(f"estimated (month still open): {a.estimated_amount:,.2f} USD of {a.total:,.2f}")


# ------------------------------------------------------------------------------------------ quota/report

quota_app = typer.Typer(name="quota", help="Monthly database budgets per team: check, gate, notify.",
                        no_args_is_help=True, add_completion=False)
app.add_typer(quota_app, name="quota")

def _attribute_spec(
    *, month: str, db: str, metric: str, cluster_tag: str, team_tag: str, topology: str | None,
    allocate_shared: bool, endpoint_url: str | None, profile: str | None, region: str | None,
    targets: str | None, today: str | None,
) -> dbcost.AttributeSpec:
    day = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
    dbcost.month_range(month, day)
    return dbcost.AttributeSpec(
        month=month, db=Path(db), targets=_targets_for(targets, endpoint_url, profile, region), metric=metric,
        cluster_tag=cluster_tag, team_tag=team_tag,
        topology=dbcost.attribution.load_topology(topology) if topology else None,
        allocate_shared=allocate_shared, today=day,
    )


ClusterTagOpt = Annotated[str, typer.Option("--cluster-tag", help="Tag key naming the cluster.")]
TeamTagOpt = Annotated[str, typer.Option("--team-tag", help="Tag key naming the owning team.")]
TopologyOpt = Annotated[
    str | None, typer.Option("--topology", help="CSV/YAML (cluster,team,env,owner) for clusters whose tags are missing.")
]
AllocateOpt = Annotated[
    bool, typer.Option("--allocate-shared", help="Spread unattributed spend over teams by account and service.")
]
MetricOneOpt = Annotated[str, typer.Option("--metric", help="Cost metric the attribution was built with.")]


@quota_app.command("check")
def quota_check(
    month: MonthOpt,
    policy: Annotated[str, typer.Option("--policy", help="Policy TOML: [[pool]] name, team, monthly_budget_usd, ...")],
    db: DbOpt = "dbcost.duckdb",
    as_json: Annotated[bool, typer.Option("--json", help="Print the evaluation as JSON.")] = False,
    fail_on: Annotated[
        str | None, typer.Option("--fail-on", help="warn or breach: turn the result into the exit code (4 WARN, 5 BREACH).")
    ] = None,
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="POST a Slack-compatible message here when a pool's status changes.")
    ] = None,
    sink: Annotated[
        list[str] | None,
        typer.Option("--sink", help="Also publish status changes (kafka://H:P/TOPIC: to <topic>.quota-status)."),
    ] = None,
    aws_forecast: Annotated[
        bool, typer.Option("--aws-forecast", help="Cross-check the run-rate forecast with Cost Explorer's GetCostForecast.")
    ] = False,
    metric: MetricOneOpt = "UnblendedCost",
    cluster_tag: ClusterTagOpt = "db-cluster",
    team_tag: TeamTagOpt = "team",
    topology: TopologyOpt = None,
    allocate_shared: AllocateOpt = False,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    targets: TargetsOpt = None,
    today: TodayOpt = None,
) -> None:
    """Evaluate each pool's month against its budget: actual, daily burn, run-rate forecast, breach date.

    Status: BREACH (actual >= budget or a category over its cap), WARN (actual >= warn_at x budget, or
    the forecast >= budget or a category cap), OK. With --fail-on the exit code gates CI/CD: 0 OK,
    4 WARN, 5 BREACH. --webhook posts only when a pool's status changed since the last notification
    (state kept in the store), so a cron job does not spam. Reads the attribution from the store:
    run `dbcost attribute --month` first.
    """
    if fail_on not in (None, "warn", "breach"):
        _fail_usage(f"--fail-on: must be warn or breach, got {fail_on!r}")
    try:
        spec = _attribute_spec(month=month, db=db, metric=metric, cluster_tag=cluster_tag, team_tag=team_tag,
                               topology=topology, allocate_shared=allocate_shared, endpoint_url=endpoint_url,
                               profile=profile, region=region, targets=targets, today=today)
        check = dbcost.QuotaCheckSpec(attribute=spec, policy=dbcost.quota.load_policy(policy), webhook=webhook,
                                      sinks=list(sink or []), aws_forecast=aws_forecast,
                                      fail_on=fail_on)  # type: ignore[arg-type]
        if webhook:
            dbcost.notify.safe_url(webhook)
        for url in sink or []:
            dbcost.sinks.parse_sink_url(url)
    except (UsageError, ValueError) as exc:
        _fail_usage(str(exc))
    result = run_async(lambda: dbcost.run_quota_check(check))
    if as_json:
        import orjson

        typer.echo(orjson.dumps(result.report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(dbcost.quota.render_table(result.report))
    if result.data_age is not None and result.data_age > dt.timedelta(hours=24):
        _say(f"dbcost quota: the attribution data is {result.data_age.days} day(s) old; run "
                          "`dbcost attribute` to refresh it")
    if result.changes:
        _say("dbcost quota: status changed: " + ", ".join(
            f"{c.pool} {c.old or 'new'} -> {c.new}" for c in result.changes))
    if result.notified:
        _say(f"dbcost quota: notified {len(result.notified)} change(s)")
    if result.notify_error:
        _say(f"dbcost quota: notification failed (will retry next run): {result.notify_error}")
    raise typer.Exit(result.exit_code)


@quota_app.command("example")
def quota_example() -> None:
    """Print an example policy file (the one the demo uses) to start from."""
    typer.echo(dbcost.quota.example_policy_text(), nl=False)


@app.command()
def report(
    month: MonthOpt,
    db: DbOpt = "dbcost.duckdb",
    format_: Annotated[str, typer.Option("--format", help="table, json or html.")] = "table",
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    months: Annotated[int, typer.Option("--months", min=1, max=24, help="Months in the trend chart.")] = 6,
    policy: Annotated[str | None, typer.Option("--policy", help="Include the quota evaluation of this policy.")] = None,
    metric: MetricOneOpt = "UnblendedCost",
    cluster_tag: ClusterTagOpt = "db-cluster",
    team_tag: TeamTagOpt = "team",
    topology: TopologyOpt = None,
    allocate_shared: AllocateOpt = False,
    today: TodayOpt = None,
) -> None:
    """Spend per team, cluster and category for a month, the largest movers against the previous month,
    unattributed spend, quarantined records, data freshness and the estimated share.

    --format html writes one self-contained file with charts (trend per team, category split per cluster)
    that opens offline. Reads the store only: run `dbcost attribute --month` for each month first.
    """
    if format_ not in ("table", "json", "html"):
        _fail_usage(f"--format: must be table, json or html, got {format_!r}")
    if format_ == "html" and output is None:
        _fail_usage("--output: the html report needs a file path")
    try:
        spec = _attribute_spec(month=month, db=db, metric=metric, cluster_tag=cluster_tag, team_tag=team_tag,
                               topology=topology, allocate_shared=allocate_shared, endpoint_url=None, profile=None,
                               region=None, targets=None, today=today)
        pol = dbcost.quota.load_policy(policy) if policy else None
        if output is not None and not Path(output).parent.is_dir():
            raise UsageError(f"--output {output}: directory {Path(output).parent} does not exist")
        quota_report = None
        if pol is not None:
            quota_report = dbcost.quota.evaluate(pol, dbcost.checks.attribution_for(spec), today=spec.today)
        data = dbcost.checks.gather_report(spec, history_months=months, quota=quota_report)
    except UsageError as exc:
        _fail_usage(str(exc))
    except DbcostError as exc:
        _say(f"dbcost: failed: {exc}", level="error")
        raise typer.Exit(EXIT_FAILED) from None
    if format_ == "table":
        console = Console(file=open(output, "w", encoding="utf-8") if output else None, width=160)  # noqa: SIM115
        dbcost.report.render_table(data, console)
        if output:
            console.file.close()
        return
    text = dbcost.checks.write_report(data, format_, Path(output) if output else None)
    if text is not None:
        typer.echo(text, nl=False)
    else:
        _say(f"dbcost report: wrote {output}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # e.g. `dbcost fetch ... | head`
        sys.stderr.close()
        sys.exit(EXIT_OK)
