"""``dbcost quota check`` and ``dbcost quota example``: monthly budgets per team, evaluated from the store."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

import dbcost
import dbcost.config
import dbcost.notify
import dbcost.quota
import dbcost.sinks
from dbcost.cli.app import UsageError, fail_usage, run_async, say
from dbcost.cli.options import (
    AllocateOpt,
    ClusterTagOpt,
    DbOpt,
    EndpointOpt,
    MetricOneOpt,
    MonthOpt,
    ProfileOpt,
    RegionOpt,
    RequestTimeoutOpt,
    RetryBudgetOpt,
    TargetsOpt,
    TeamTagOpt,
    TodayOpt,
    TopologyOpt,
    attribute_spec,
)

__all__ = ["quota_app"]

quota_app = typer.Typer(name="quota", help="Monthly database budgets per team: check, gate, notify.",
                        no_args_is_help=True, add_completion=False)


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
    request_timeout_s: RequestTimeoutOpt = dbcost.config.DEFAULT_REQUEST_TIMEOUT_S,
    retry_budget_s: RetryBudgetOpt = dbcost.config.DEFAULT_RETRY_BUDGET_S,
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
        fail_usage(f"--fail-on: must be warn or breach, got {fail_on!r}")
    try:
        spec = attribute_spec(month=month, db=db, metric=metric, cluster_tag=cluster_tag, team_tag=team_tag,
                              topology=topology, allocate_shared=allocate_shared, endpoint_url=endpoint_url,
                              profile=profile, region=region, targets=targets, today=today,
                              request_timeout_s=request_timeout_s, retry_budget_s=retry_budget_s)
        check = dbcost.QuotaCheckSpec(attribute=spec, policy=dbcost.quota.load_policy(policy), webhook=webhook,
                                      sinks=list(sink or []), aws_forecast=aws_forecast,
                                      fail_on=fail_on)  # type: ignore[arg-type]
        if webhook:
            dbcost.notify.safe_url(webhook)
        for url in sink or []:
            dbcost.sinks.parse_sink_url(url)
    except (UsageError, ValueError) as exc:
        fail_usage(str(exc))
    result = run_async(lambda: dbcost.run_quota_check(check))
    if as_json:
        import orjson

        typer.echo(orjson.dumps(result.report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(dbcost.quota.render_table(result.report))
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


@quota_app.command("example")
def quota_example() -> None:
    """Print an example policy file (the one the demo uses) to start from."""
    typer.echo(dbcost.quota.example_policy_text(), nl=False)
