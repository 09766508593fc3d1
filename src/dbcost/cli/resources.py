"""``dbcost resources``: what each database instance, cluster and table cost over the last 14 days, and who
owns it (resource-level data, GetCostAndUsageWithResources).

The contract (other tools depend on it)::

    dbcost resources [--start YYYY-MM-DD] [--end YYYY-MM-DD] [--db PATH] [--service NAME ...]
        [--metric UnblendedCost] [--cluster-tag db-cluster] [--team-tag team] [--topology FILE] [--inventory]
        [--endpoint-url URL] [--profile] [--region] [--targets FILE] [--format table|json|csv] [--output PATH|-]

Every rule of the operation is checked before anything is sent (exit 2, one line): the window inside the last
14 days, the services, the topology file, the output path. A payer that has not opted in to resource-level
data is one line naming the Cost Explorer setting to turn on (exit 1).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

import dbcost
import dbcost.defaults
import dbcost.governor
from dbcost.cli.app import EXIT_FAILED, UsageError, fail_usage, run_async, say
from dbcost.cli.options import (
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
from dbcost.cli.views import Out, report_run

if TYPE_CHECKING:
    import dbcost.attribution.resources

__all__ = ["resources"]

#: the CSV's columns: these, then one per category (:data:`dbcost.attribution.resources.RESOURCE_CATEGORIES`)
_CSV_COLUMNS = ("resource_id", "service", "kind", "account", "region", "cluster", "team", "placed_by", "amount")


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
    format_: FormatOpt = "table",
    output: OutputOpt = "-",
    max_rps: MaxRpsOpt = dbcost.governor.DEFAULT_MAX_RPS,
    max_concurrency: MaxConcOpt = dbcost.governor.DEFAULT_MAX_CONCURRENCY,
    max_requests: MaxReqOpt = None,
    request_timeout_s: RequestTimeoutOpt = dbcost.defaults.DEFAULT_REQUEST_TIMEOUT_S,
    retry_budget_s: RetryBudgetOpt = dbcost.defaults.DEFAULT_RETRY_BUDGET_S,
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
    import dbcost.attribution.pools
    import dbcost.jobs.resources

    try:
        day = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
        first, last = _date("--start", start), _date("--end", end)
        if not Path(db).parent.is_dir():
            raise UsageError(f"--db {db}: directory {Path(db).parent} does not exist")
        check_output(output)
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
    out = Out(output)
    if format_ == "json":
        out.json(a.to_json())
    elif format_ == "csv":
        out.text(_csv(a), newline=False)
    else:
        out.draw(lambda console: _table(a, console))
    if out.path is not None:
        say(f"dbcost resources: wrote {out.path}")


def _fail_run(outcome: dbcost.RunOutcome) -> None:
    """A run that did not complete: the not-enabled answer is one line naming the setting, anything else the
    run summary. Exit 1 either way."""
    import dbcost.operations

    setting = dbcost.operations.COST_AND_USAGE_WITH_RESOURCES.opt_in or ""
    not_enabled = next((e for e in outcome.errors if setting and setting in e), None)
    if not_enabled is not None:
        say(f"dbcost: failed: {not_enabled}", level="error")
        raise typer.Exit(EXIT_FAILED)
    report_run(outcome, strict=False, command="resources")
    raise typer.Exit(EXIT_FAILED)


def _csv(a: dbcost.attribution.resources.ResourceAttribution) -> str:
    import dbcost.attribution.resources

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    categories = dbcost.attribution.resources.RESOURCE_CATEGORIES
    w.writerow((*_CSV_COLUMNS, *categories))
    for r in a.resources:
        j = r.to_json()
        w.writerow([*(j[c] if j[c] is not None else "" for c in _CSV_COLUMNS),
                    *(j["categories"][c] for c in categories)])
    return buf.getvalue()


def _table(a: dbcost.attribution.resources.ResourceAttribution, console: Any, limit: int = 40) -> None:
    from rich.table import Table
    from rich.text import Text

    import dbcost.attribution.resources
    import dbcost.money
    from dbcost.report.table import print_table

    table = Table(title=f"Database resources {a.start} to {a.end} (exclusive; {a.metric}, USD): total {a.total:,.2f}, "
                        f"unattributed {a.unattributed:,.2f}", title_justify="left")
    for name in ("resource", "kind", "account", "region", "cluster", "team", "placed by"):
        table.add_column(name, overflow="fold")
    table.add_column("amount", justify="right", no_wrap=True)
    for r in a.resources[:limit]:
        table.add_row(Text(dbcost.attribution.resources.short_id(r.resource_id)), r.kind, r.identity.account,
                      r.region, Text(r.cluster or "-"), Text(r.team or "-"), r.placed_by, f"{r.amount:,.2f}")
    if len(a.resources) > limit:
        rest = a.resources[limit:]
        table.add_row(f"... {len(rest)} more (--format json lists all)", "", "", "", "", "", "",
                      f"{dbcost.money.sum_amounts(r.amount for r in rest):,.2f}")
    table.add_section()
    table.add_row(Text("total", style="bold"), "", "", "", "", "", "", f"{a.total:,.2f}")
    print_table(console, table, drop=("account", "region", "placed by", "kind"))
    teams = Table(title="Teams", title_justify="left")
    teams.add_column("team", overflow="fold")
    teams.add_column("amount", justify="right", no_wrap=True)
    for t, amount in a.teams():
        teams.add_row(Text(t), f"{amount:,.2f}")
    teams.add_row("unattributed", f"{a.unattributed:,.2f}", end_section=True)
    teams.add_row(Text("total", style="bold"), f"{a.total:,.2f}")
    print_table(console, teams)
    rules = ", ".join(f"{p} {amount:,.2f}" for p, amount in a.placed_by_rule().items())
    console.print(f"placed by: {rules}", markup=False)
    if a.quarantined.groups or a.quarantined.placement_groups:
        console.print(f"quarantined: {a.quarantined.groups} group(s) of spend (not in the total), "
                      f"{a.quarantined.placement_groups} of the billing-tag groupings", markup=False)
