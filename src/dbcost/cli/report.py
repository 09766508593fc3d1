"""``dbcost report``: a month's spend, movers, freshness and quota as tables, JSON or one HTML file."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from dbcost.cli.app import DbcostError, UsageError, fail, fail_usage, say
from dbcost.cli.options import (
    AllocateOpt,
    ClusterTagOpt,
    DbOpt,
    MetricOneOpt,
    MonthOpt,
    OutputOpt,
    TeamTagOpt,
    TodayOpt,
    TopologyOpt,
    attribute_spec,
    check_output,
)
from dbcost.cli.views import ATTRIBUTION_CSV, Out, attribution_rows

__all__ = ["report"]


def report(
    month: MonthOpt,
    db: DbOpt = "dbcost.duckdb",
    format_: Annotated[
        Literal["table", "json", "csv", "html"],
        typer.Option("--format", case_sensitive=False,
                     help="table to read, json, csv (one row per team, cluster and category, exact amounts) or "
                          "html (one self-contained page)."),
    ] = "table",
    output: OutputOpt = "-",
    months: Annotated[int | None, typer.Option(
        "--months", min=1, max=24, help="Months in the trend chart (default: every attributed month).")] = None,
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

    --format html is one self-contained page with charts (trend per team, category split per cluster)
    that opens offline; like every format it goes to stdout unless --output names a file. Reads the store
    only: run `dbcost attribute --month` for each month first.
    """
    import dbcost.jobs.report
    import dbcost.quota
    import dbcost.report

    try:
        check_output(output)
        spec = attribute_spec(month=month, db=db, metric=metric, cluster_tag=cluster_tag, team_tag=team_tag,
                              topology=topology, allocate_shared=allocate_shared, endpoint_url=None, profile=None,
                              region=None, targets=None, today=today)
        pol = dbcost.quota.load_policy(policy) if policy else None
        data = dbcost.jobs.report.build_report(spec, history_months=months, policy=pol)
    except UsageError as exc:
        fail_usage(str(exc))
    except DbcostError as exc:
        fail(exc)
    out = Out(output)
    if format_ == "table":
        out.draw(lambda console: dbcost.report.render_table(data, console))
    elif format_ == "csv":
        out.csv(ATTRIBUTION_CSV, attribution_rows(data.current))
    else:
        text = dbcost.jobs.report.write_report(data, format_, None)
        assert text is not None
        out.text(text, newline=False)
    if out.path is not None:
        say(f"dbcost report: wrote {out.path}")
