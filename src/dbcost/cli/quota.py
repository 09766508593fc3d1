"""``dbcost quota check`` and ``dbcost quota example``: monthly budgets per team, evaluated from the store."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Literal

import typer

import dbcost
import dbcost.defaults
from dbcost.cli.app import UsageError, fail_usage, run_async, say
from dbcost.cli.options import (
    AllocateOpt,
    ClusterTagOpt,
    DbOpt,
    EndpointOpt,
    FormatOpt,
    MetricOneOpt,
    MonthOpt,
    OutputOpt,
    ProfileOpt,
    RegionOpt,
    RequestTimeoutOpt,
    RetryBudgetOpt,
    TargetsOpt,
    TeamTagOpt,
    TodayOpt,
    TopologyOpt,
    attribute_spec,
    check_output,
)
from dbcost.cli.views import Out

if TYPE_CHECKING:
    import dbcost.quota

__all__ = ["quota_app"]

quota_app = typer.Typer(name="quota", help="Monthly database budgets per team: check, gate, notify.",
                        no_args_is_help=True, add_completion=False, rich_markup_mode="markdown")


@quota_app.command("check")
def quota_check(
    month: MonthOpt,
    policy: Annotated[str, typer.Option("--policy", help="Policy TOML: [[pool]] name, team, monthly_budget_usd, ...")],
    db: DbOpt = "dbcost.duckdb",
    format_: FormatOpt = "table",
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
    output: OutputOpt = "-",
    fail_on: Annotated[
        Literal["warn", "breach"] | None,
        typer.Option("--fail-on", case_sensitive=False, help="Make the result the exit code: 4 WARN, 5 BREACH."),
    ] = None,
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="POST a Slack-compatible message here when a pool's status changes.")
    ] = None,
    sink: Annotated[
        list[str] | None,
        typer.Option("--sink", help="Also publish status changes (kafka://H:P/TOPIC: to TOPIC.quota-status)."),
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
    request_timeout_s: RequestTimeoutOpt = dbcost.defaults.DEFAULT_REQUEST_TIMEOUT_S,
    retry_budget_s: RetryBudgetOpt = dbcost.defaults.DEFAULT_RETRY_BUDGET_S,
    today: TodayOpt = None,
) -> None:
    """Evaluate each pool's month against its budget: actual, daily burn, run-rate forecast, breach date.

    Status: BREACH (actual >= budget or a category over its cap), WARN (actual >= warn_at x budget, or
    the forecast >= budget or a category cap), OK. With --fail-on the exit code gates CI/CD: 0 OK,
    4 WARN, 5 BREACH. --webhook posts only when a pool's status changed since the last notification
    (state kept in the store), so a cron job does not spam. Reads the attribution from the store:
    run `dbcost attribute --month` first.
    """
    import dbcost.notify
    import dbcost.quota
    import dbcost.sinks

    try:
        check_output(output)
        spec = attribute_spec(month=month, db=db, metric=metric, cluster_tag=cluster_tag, team_tag=team_tag,
                              topology=topology, allocate_shared=allocate_shared, endpoint_url=endpoint_url,
                              profile=profile, region=region, targets=targets, today=today,
                              request_timeout_s=request_timeout_s, retry_budget_s=retry_budget_s)
        check = dbcost.QuotaCheckSpec(attribute=spec, policy=dbcost.quota.load_policy(policy), webhook=webhook,
                                      sinks=list(sink or []), aws_forecast=aws_forecast,
                                      fail_on=fail_on)
        if webhook:
            dbcost.notify.safe_url(webhook)
        for url in sink or []:
            dbcost.sinks.parse_sink_url(url)
    except (UsageError, ValueError) as exc:
        fail_usage(str(exc))
    result = run_async(lambda: dbcost.run_quota_check(check))
    out, fmt = Out(output), "json" if as_json else format_
    if fmt == "json":
        out.json(result.report.to_json())
    elif fmt == "csv":
        out.rows(result.report.to_json()["pools"])
    else:
        _print_table(result.report, out)
    if result.data_age is not None and result.data_age > dt.timedelta(hours=24):
        say(f"dbcost quota: the attribution data is {result.data_age.days} day(s) old; run "
            "`dbcost attribute` to refresh it")
    changes = ", ".join(f"{c.pool} {c.old or 'new'} -> {c.new}" for c in result.changes)
    if result.changes and (webhook or sink):
        say(f"dbcost quota: status changed: {changes}")
    elif result.changes:
        # the store keeps the last *notified* status: with nowhere to notify it does not move, so calling
        # this a change would repeat on every run; recording it would swallow the first real notification
        say(f"dbcost quota: nothing notified (no --webhook or --sink); {len(result.changes)} pool(s) differ from "
            f"the last notified status: {changes}")
    if result.notified:
        say(f"dbcost quota: notified {len(result.notified)} change(s)")
    if result.notify_error:
        say(f"dbcost quota: notification failed (will retry next run): {result.notify_error}")
    raise typer.Exit(result.exit_code)


def _print_table(report: dbcost.quota.QuotaReport, out: Out) -> None:
    """The pools as a rich table (:func:`dbcost.quota.table_rows`), its notes under it. No total row: pools
    may overlap (a team's pool and a category's), so their sum is not a figure of the bill."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    import dbcost.quota
    from dbcost.report.table import print_table

    amounts = {"actual", "budget", "used", "forecast"}
    table = Table(title=f"quota {report.month} ({report.metric}) as of {report.today.isoformat()}: worst "
                        f"{report.worst}", title_justify="left")
    for name in dbcost.quota.TABLE_HEADER:
        if name in amounts:
            table.add_column(name, justify="right", no_wrap=True)
        else:
            table.add_column(name, overflow="fold")
    for row in dbcost.quota.table_rows(report):
        table.add_row(*(Text(cell) for cell in row))
    notes = dbcost.quota.render_table(report).splitlines()[len(report.pools) + 2:]

    def render(console: Console) -> None:
        print_table(console, table, drop=("estimated", "team", "breach on", "used"))
        for note in notes:
            console.print(note, markup=False)

    out.draw(render)


@quota_app.command("example")
def quota_example(output: OutputOpt = "-") -> None:
    """Print an example policy file (the one the demo uses) to start from."""
    import dbcost.quota

    try:
        check_output(output)
    except UsageError as exc:
        fail_usage(str(exc))
    Out(output).text(dbcost.quota.example_policy_text(), newline=False)
