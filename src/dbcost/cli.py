"""The ``dbcost`` command line (typer + rich). Imports only the public ``dbcost`` package.

Exit codes (every command): 0 done; 1 failed (after saying what completed); 2 bad input (nothing sent,
nothing written); 3 done but records were quarantined and ``--strict`` was given. ``quota check`` adds
4 (WARN) and 5 (BREACH) with ``--fail-on``.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

import dbcost

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


def _fail_usage(message: str) -> NoReturn:
    err_console.print(f"dbcost: error: {message}", markup=False)
    raise typer.Exit(EXIT_USAGE)


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    """Run a command's coroutine; map dbcost errors to one line on stderr and an exit code."""
    try:
        return asyncio.run(_call(main))
    except UsageError as exc:
        _fail_usage(str(exc))
    except DbcostError as exc:
        err_console.print(f"dbcost: failed: {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        err_console.print("dbcost: interrupted", markup=False)
        raise typer.Exit(130) from None


async def _call(main: Callable[[], Awaitable[T]]) -> T:
    return await main()


def _load_filter(text: str | None) -> str | None:
    """``--filter`` takes JSON, or ``@path`` to a JSON file."""
    if text is None or not text.startswith("@"):
        return text
    path = Path(text[1:])
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"filter: cannot read {path}: {exc.strerror}") from None


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
                       summary_json=summary_json, strict=strict)
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
) -> int:
    with _page_status(enabled=err_console.is_terminal) as status:
        outcome = await dbcost.jobs.run_fetch(
            query, settings, output=output, fmt=fmt, quarantine=quarantine,
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
            err_console.print(f"dbcost: quarantined (page {q.page}, {q.period_start}): {q.reason}", markup=False)
        more = len(outcome.quarantined) - 10
        err_console.print(f"dbcost: {len(outcome.quarantined)} group(s) quarantined"
                          + (f", {more} not shown" if more > 0 else "")
                          + " (use --quarantine PATH to keep them with their raw JSON)", markup=False)
    err_console.print(f"dbcost fetch: {stats.summary_line()}", markup=False)
    if outcome.failure is not None:
        where = ""
        if outcome.partial_path is not None:
            where = f"; the {stats.records} records received are in {outcome.partial_path}"
        err_console.print(
            f"dbcost: failed after {outcome.pages_completed} complete page(s): {outcome.failure}{where}",
            markup=False,
        )
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
        err_console.print(f"dbcost: cannot write summary {path}: {exc.strerror}", markup=False)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # e.g. `dbcost fetch ... | head`
        sys.stderr.close()
        sys.exit(EXIT_OK)
