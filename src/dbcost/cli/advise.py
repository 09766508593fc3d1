"""``dbcost advise``: right-sizing advisories for a month, largest savings first; triggers on change."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from dbcost.cli.app import EXIT_FAILED, UsageError, fail_usage, run_async, say
from dbcost.cli.options import (
    ClusterTagOpt,
    DbOpt,
    EndpointOpt,
    FormatOpt,
    MonthOpt,
    OutputOpt,
    ProfileOpt,
    RegionOpt,
    TargetsOpt,
    TeamTagOpt,
    TodayOpt,
    check_output,
    settings_for,
)
from dbcost.cli.views import Out, report_run

__all__ = ["NON_PROD_DEFAULT", "advise"]

#: ``--non-prod``'s default: :data:`dbcost.advice.DEFAULT_NON_PROD`, comma-separated, written here so that mounting
#: the command does not import the advice rules (tests/cli/test_help.py holds the two equal)
NON_PROD_DEFAULT = "dev,test,staging,qa"


def _print_table(advice: Any, cluster_tag: str, out: Out) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    import dbcost.advice
    from dbcost.report.table import print_table

    fmt = dbcost.advice.amount_text
    table = Table(title=f"Advisories {advice.month}: {len(advice.advisories)} (USD/month)", title_justify="left")
    for name in ("savings/month", "kind", cluster_tag, "team", "region", "action"):
        if name == "savings/month":
            table.add_column(name, justify="right", no_wrap=True)
        else:
            table.add_column(name, overflow="fold")
    for a in advice.advisories:
        table.add_row(f"{a.savings:,.2f}", a.kind, Text(a.cluster or "(untagged)"), Text(a.team or "-"),
                      a.region, Text(a.action))
    table.add_section()
    table.add_row(Text(f"{advice.total_savings:,.2f}", style="bold"), Text("total", style="bold"), "", "", "", "")

    def render(console: Console) -> None:
        if advice.advisories:
            print_table(console, table, drop=("region", "team"))
        else:
            console.print(f"No advisory for {advice.month} (total {fmt(advice.total_savings)}).", markup=False)

    out.draw(render)


def advise(
    month: MonthOpt,
    db: DbOpt = "dbcost.duckdb",
    metric: Annotated[str, typer.Option("--metric", help="Cost metric the advice is computed in.")] = "UnblendedCost",
    cluster_tag: ClusterTagOpt = "db-cluster",
    team_tag: TeamTagOpt = "team",
    env_tag: Annotated[str, typer.Option("--env-tag", help="Tag key naming the environment (prod, dev, ...).")] = "env",
    non_prod: Annotated[
        str, typer.Option("--non-prod", help="Env tag values that are not production (comma-separated).")
    ] = NON_PROD_DEFAULT,
    rules: Annotated[
        str | None, typer.Option("--rules", help="Advisory rules TOML (default: the packaged advice/rules.toml).")
    ] = None,
    min_savings_usd: Annotated[
        str, typer.Option("--min-savings-usd", help="Leave out advisories saving less than this (USD per month).")
    ] = "0",
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    targets: TargetsOpt = None,
    format_: FormatOpt = "table",
    output: OutputOpt = "-",
    fail_on_new: Annotated[
        bool, typer.Option("--fail-on-new", help="Exit 6 when a new advisory appeared (a CI gate).")
    ] = False,
    sink: Annotated[
        list[str] | None,
        typer.Option("--sink", help="Send new/resolved advisories to kafka://H:P/TOPIC (topic <TOPIC>.advisories)."),
    ] = None,
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="POST a Slack-compatible message here when advisories change.")
    ] = None,
    today: TodayOpt = None,
) -> None:
    """Right-sizing advisories for a month, largest savings first: Extended Support, Aurora I/O-Optimized,
    Multi-AZ outside production, Graviton and previous-generation classes, DynamoDB capacity mode, idle clusters.

    Reads what `dbcost attribute` stores (fetching what is missing or stale through the same pipeline) plus each
    cluster's env tag and account. Advisories are remembered in the store (first seen, resolved); a new or
    resolved one is sent to --webhook and --sink. --fail-on-new exits 6 when a new advisory appeared.
    """
    import dbcost.advice
    import dbcost.jobs.advise

    try:
        check_output(output)
        day = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
        dbcost.CostQuery.build(start="2026-01-01", end="2026-01-02", metrics=[metric])  # validates the metric
        settings = settings_for(targets=targets, endpoint_url=endpoint_url, profile=profile, region=region, db=db)
        attribute = dbcost.AttributeSpec(month=month, settings=settings, metric=metric, cluster_tag=cluster_tag,
                                         team_tag=team_tag, today=day)
        spec = dbcost.jobs.advise.AdviseSpec(
            attribute=attribute, env_tag=env_tag, non_prod=dbcost.jobs.advise.parse_non_prod(non_prod),
            rules=dbcost.advice.load_advice_rules(Path(rules)) if rules else None,
            min_savings=dbcost.jobs.advise.parse_min_savings(min_savings_usd), fail_on_new=fail_on_new,
            sinks=list(sink or []), webhook=webhook,
        )
        dbcost.jobs.advise.check_advise_spec(spec)
    except (UsageError, ValueError) as exc:
        fail_usage(str(exc).replace("metrics:", "--metric:"))
    result = run_async(lambda: dbcost.jobs.advise.run_advise(spec))
    for outcome in result.fetched:
        say(f"dbcost advise: fetched: {outcome.stats.summary_line()}", fields=outcome.stats.to_json())
    if result.failed is not None:
        report_run(result.failed, strict=False, command="advise")
        raise typer.Exit(EXIT_FAILED)
    out = Out(output)
    if format_ == "json":
        out.json(result.advice.to_json())
    elif format_ == "csv":
        out.rows(result.advice.to_json()["advisories"])
    else:
        _print_table(result.advice, cluster_tag, out)
    if result.new or result.resolved:
        say(f"dbcost advise: {len(result.new)} new, {len(result.resolved)} resolved advisor"
            f"{'y' if len(result.new) + len(result.resolved) == 1 else 'ies'}")
    if result.notified:
        say(f"dbcost advise: sent {result.notified} change(s)")
    if result.notify_error:
        say(f"dbcost advise: delivery failed (nothing recorded; the next run sends again): {result.notify_error}")
    raise typer.Exit(result.exit_code)
