"""``dbcost resources``: what each database instance, cluster and table cost over the last 14 days, and who
owns it (resource-level data, GetCostAndUsageWithResources).

The contract (other tools depend on it)::

    dbcost resources [--start YYYY-MM-DD] [--end YYYY-MM-DD] [--db PATH] [--service NAME ...]
        [--metric UnblendedCost] [--cluster-tag db-cluster] [--team-tag team] [--topology FILE] [--inventory]
        [--endpoint-url URL] [--profile] [--region] [--targets FILE] [--format table|json|csv] [--output PATH]

Every rule of the operation is checked before anything is sent (exit 2, one line): the window inside the last
14 days, the services, the topology file, the output path. A payer that has not opted in to resource-level
data is one line naming the Cost Explorer setting to turn on (exit 1).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Annotated

import typer

import dbcost
import dbcost._files
import dbcost.attribution.pools
import dbcost.attribution.resources
import dbcost.config
import dbcost.governor
import dbcost.jobs.resources
import dbcost.money
import dbcost.operations
from dbcost.cli.app import EXIT_FAILED, UsageError, fail_usage, run_async, say
from dbcost.cli.options import (
    ClusterTagOpt,
    DbOpt,
    EndpointOpt,
    MaxConcOpt,
    MaxReqOpt,
    MaxRpsOpt,
    ProfileOpt,
    RegionOpt,
    RequestTimeoutOpt,
    RetryBudgetOpt,
    TargetsOpt,
    TeamTagOpt,
    TodayOpt,
    TopologyOpt,
    settings_for,
)
from dbcost.cli.views import report_run

__all__ = ["resources"]

_CSV_COLUMNS = ("resource_id", "service", "kind", "account", "region", "cluster", "team", "placed_by", "amount",
                *dbcost.attribution.resources.RESOURCE_CATEGORIES)


def _date(option: str, text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        if len(text) != 10:
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: must be a date YYYY-MM-DD, got {text!r}") from None


def resources(
    start: Annotated[str | None, typer.Option(
        "--start", help="First day, YYYY-MM-DD (default: 14 days ago; no earlier).")] = None,
    end: Annotated[str | None, typer.Option(
        "--end", help="Day after the last, YYYY-MM-DD (exclusive; default: today).")] = None,
    db: DbOpt = "dbcost.duckdb",
    service: Annotated[list[str] | None, typer.Option(
        "--service", help="Cost Explorer SERVICE to cover; repeatable (default: every database service with "
                          "spend, discovered).")] = None,
    metric: Annotated[str, typer.Option("--metric", help="Cost metric to attribute.")] = "UnblendedCost",
    cluster_tag: ClusterTagOpt = "db-cluster",
    team_tag: TeamTagOpt = "team",
    topology: TopologyOpt = None,
    inventory: Annotated[bool, typer.Option(
        "--inventory", help="Also read the databases' own APIs (RDS, DynamoDB, ElastiCache) for their tags and "
                            "cluster membership.")] = False,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    targets: TargetsOpt = None,
    format_: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    max_rps: MaxRpsOpt = dbcost.governor.DEFAULT_MAX_RPS,
    max_concurrency: MaxConcOpt = dbcost.governor.DEFAULT_MAX_CONCURRENCY,
    max_requests: MaxReqOpt = None,
    request_timeout_s: RequestTimeoutOpt = dbcost.config.DEFAULT_REQUEST_TIMEOUT_S,
    retry_budget_s: RetryBudgetOpt = dbcost.config.DEFAULT_RETRY_BUDGET_S,
    today: TodayOpt = None,
) -> None:
    """What each database instance, cluster and table cost, tagged or not (resource-level data, last 14 days).

    Fetches GetCostAndUsageWithResources through the backfill pipeline into the store (per database service:
    RESOURCE_ID x USAGE_TYPE; once each: RESOURCE_ID x the cluster tag, RESOURCE_ID x the team tag), unless the
    store holds it fresh. Each resource is placed by the first rule that knows its team: the billing tag on its
    cost (billing-tag), the tags on the resource itself with --inventory (inventory-tag), the topology file by
    resource_id or cluster (topology); otherwise it is unattributed. The payer must have opted in to
    resource-level data in Cost Explorer's preferences.
    """
    if format_ not in ("table", "json", "csv"):
        fail_usage(f"--format: must be table, json or csv, got {format_!r}")
    try:
        day = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
        first, last = _date("--start", start), _date("--end", end)
        if not Path(db).parent.is_dir():
            raise UsageError(f"--db {db}: directory {Path(db).parent} does not exist")
        if output is not None:
            out = Path(output)
            if not out.parent.is_dir():
                raise UsageError(f"--output {output}: directory {out.parent} does not exist")
            if out.is_dir():
                raise UsageError(f"--output {output}: is a directory")
        topo = dbcost.attribution.pools.load_topology(topology) if topology else None
        settings = settings_for(targets=targets, endpoint_url=endpoint_url, profile=profile, region=region, db=db,
                                max_rps=max_rps, max_concurrency=max_concurrency, request_timeout_s=request_timeout_s,
                                retry_budget_s=retry_budget_s, max_requests=max_requests)
        spec = dbcost.jobs.resources.ResourcesSpec(
            settings=settings, start=first, end=last, metric=metric, services=list(service) if service else None,
            cluster_tag=cluster_tag, team_tag=team_tag, topology=topo, inventory=inventory, today=day,
            max_requests=max_requests or None,
        )
        spec.check()
    except (UsageError, ValueError) as exc:
        fail_usage(str(exc).replace("metrics:", "--metric:"))
    result = run_async(lambda: dbcost.jobs.resources.run_resources(spec))
    if result.fetched is not None:
        say(f"dbcost resources: fetched {len(result.services)} database service(s): "
            f"{result.fetched.stats.summary_line()}")
        if not result.fetched.ok:
            _fail_run(result.fetched)
    a = result.attribution
    if result.inventory is not None:
        say(f"dbcost resources: read the inventory (RDS, DynamoDB, ElastiCache): {result.inventory.requests} "
            "request(s)")
    if a.quarantined.groups or a.quarantined.placement_groups:
        say(f"dbcost resources: {a.quarantined.groups} group(s) of spend quarantined (their amounts are not in "
            f"the total) and {a.quarantined.placement_groups} of the billing-tag groupings; `quarantined` in the "
            "JSON lists the reasons", level="warning")
    if format_ == "json":
        import orjson

        text = orjson.dumps(a.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
    elif format_ == "csv":
        text = _csv(a)
    else:
        text = _table(a)
    if output is None:
        typer.echo(text, nl=False)
    else:
        dbcost._files.write_text_atomic(output, text)
        say(f"dbcost resources: wrote {output}")


def _fail_run(outcome: dbcost.RunOutcome) -> None:
    """A run that did not complete: the not-enabled answer is one line naming the setting, anything else the
    run summary. Exit 1 either way."""
    setting = dbcost.operations.COST_AND_USAGE_WITH_RESOURCES.opt_in or ""
    not_enabled = next((e for e in outcome.errors if setting and setting in e), None)
    if not_enabled is not None:
        say(f"dbcost: failed: {not_enabled}", level="error")
        raise typer.Exit(EXIT_FAILED)
    report_run(outcome, as_json=False, strict=False, command="resources")
    raise typer.Exit(EXIT_FAILED)


def _csv(a: dbcost.attribution.resources.ResourceAttribution) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_CSV_COLUMNS)
    for r in a.resources:
        j = r.to_json()
        w.writerow([*(j[c] if j[c] is not None else "" for c in _CSV_COLUMNS[:9]),
                    *(j["categories"][c] for c in _CSV_COLUMNS[9:])])
    return buf.getvalue()


def _table(a: dbcost.attribution.resources.ResourceAttribution, limit: int = 40) -> str:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=io.StringIO(), width=170, force_terminal=False)
    table = Table(title=f"Database resources {a.start} to {a.end} (exclusive; {a.metric}, USD): total {a.total:,.2f}, "
                        f"unattributed {a.unattributed:,.2f}", title_justify="left")
    for name in ("resource", "kind", "account", "region", "cluster", "team", "placed by", "amount"):
        table.add_column(name, justify="right" if name == "amount" else "left", overflow="fold")
    for r in a.resources[:limit]:
        table.add_row(Text(dbcost.attribution.resources.short_id(r.resource_id)), r.kind, r.identity.account,
                      r.region, Text(r.cluster or "-"), Text(r.team or "-"), r.placed_by, f"{r.amount:,.2f}")
    if len(a.resources) > limit:
        rest = a.resources[limit:]
        table.add_row(f"... {len(rest)} more (--format json lists all)", "", "", "", "", "", "",
                      f"{dbcost.money.sum_amounts(r.amount for r in rest):,.2f}")
    console.print(table)
    teams = Table(title="Teams", title_justify="left")
    teams.add_column("team")
    teams.add_column("amount", justify="right")
    for t, amount in a.teams():
        teams.add_row(Text(t), f"{amount:,.2f}")
    teams.add_row("unattributed", f"{a.unattributed:,.2f}")
    console.print(teams)
    rules = ", ".join(f"{p} {amount:,.2f}" for p, amount in a.placed_by_rule().items())
    console.print(f"placed by: {rules}")
    if a.quarantined.groups or a.quarantined.placement_groups:
        console.print(f"quarantined: {a.quarantined.groups} group(s) of spend (not in the total), "
                      f"{a.quarantined.placement_groups} of the billing-tag groupings")
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()
