"""``dbcost report``: a month's spend, movers, freshness and quota as tables, JSON or one HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import dbcost
import dbcost.jobs.quota
import dbcost.jobs.report
import dbcost.quota
import dbcost.report
from dbcost.cli.app import DbcostError, UsageError, fail, fail_usage, say
from dbcost.cli.options import (
    AllocateOpt,
    ClusterTagOpt,
    DbOpt,
    MetricOneOpt,
    MonthOpt,
    TeamTagOpt,
    TodayOpt,
    TopologyOpt,
    attribute_spec,
)

__all__ = ["report"]


def report(
    month: MonthOpt,
    db: DbOpt = "dbcost.duckdb",
    format_: Annotated[str, typer.Option("--format", help="table, json or html.")] = "table",
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
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

    --format html writes one self-contained file with charts (trend per team, category split per cluster)
    that opens offline. Reads the store only: run `dbcost attribute --month` for each month first.
    """
    if format_ not in ("table", "json", "html"):
        fail_usage(f"--format: must be table, json or html, got {format_!r}")
    if format_ == "html" and output is None:
        fail_usage("--output: the html report needs a file path")
    try:
        spec = attribute_spec(month=month, db=db, metric=metric, cluster_tag=cluster_tag, team_tag=team_tag,
                              topology=topology, allocate_shared=allocate_shared, endpoint_url=None, profile=None,
                              region=None, targets=None, today=today)
        pol = dbcost.quota.load_policy(policy) if policy else None
        if output is not None and not Path(output).parent.is_dir():
            raise UsageError(f"--output {output}: directory {Path(output).parent} does not exist")
        data = dbcost.jobs.report.build_report(spec, history_months=months, policy=pol)
    except UsageError as exc:
        fail_usage(str(exc))
    except DbcostError as exc:
        fail(exc)
    if format_ == "table":
        console = Console(file=open(output, "w", encoding="utf-8") if output else None, width=160)  # noqa: SIM115
        dbcost.report.render_table(data, console)
        if output:
            console.file.close()
        return
    text = dbcost.jobs.report.write_report(data, format_, Path(output) if output else None)
    if text is not None:
        typer.echo(text, nl=False)
    else:
        say(f"dbcost report: wrote {output}")
