"""The report as rich tables on a terminal: the only module of the report that imports rich.

:func:`render_table` prints a header line and the month-to-date comparison (like for like: the same days of
the previous month; the whole previous month beside it, labelled), then the budgets (quota), then one
table per section (teams, top clusters, movers, unattributed and unclassified spend, business units,
quarantine, freshness, advice: the largest advisories and the savings per team) and the estimated share.
Amounts have two decimals, their currency and are right-aligned. Every name from the data (teams and
clusters come from user tags, advisory actions quote them) goes into a :class:`rich.text.Text`, so markup in
a name is printed, never interpreted. ``dbcost.report`` loads this module only when ``render_table`` is asked for.
"""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dbcost.attribution.model import SHARED_CLUSTER, UNATTRIBUTED, ResourceCoverage
from dbcost.attribution.resources import short_id
from dbcost.money import sum_amounts
from dbcost.report._format import Money, age, iso, pct, quota_columns, signed_pct, ts
from dbcost.report.data import (
    TOP_CLUSTERS,
    ReportData,
    business_units,
    categories_present,
    estimated_share,
    month_to_date,
    movers,
    ratio,
    shared_of,
    sorted_teams,
    team_amounts,
    top_advisories,
    top_clusters,
)

__all__ = ["render_resource_level", "render_table"]


def _money_col(table: Table, name: str) -> None:
    table.add_column(name, justify="right", no_wrap=True)


def render_resource_level(cov: ResourceCoverage, console: Console, fm: Money | None = None) -> None:
    """What resource-level data placed of the unattributed spend on the days it covers, and the costliest
    resources without a team tag in billing with the tags to add (``attribute`` and ``report`` both)."""
    fm = fm or Money()
    spans = ", ".join(f"{s.isoformat()}..{e.isoformat()}" for s, e in cov.stretches)
    rules = ", ".join(f"{k} {fm.money(v)}" for k, v in cov.placed_by.items())
    console.print(Text(f"Resource-level data ({cov.days} day(s): {spans}, end exclusive): unattributed on those days "
                       f"{fm.money(cov.unattributed)}; resources without a team tag in billing "
                       f"{fm.money(cov.untagged)}, of which placed {fm.money(cov.placed)} ({rules}), still "
                       f"unattributed {fm.money(cov.still_unattributed)}"
                       + (f"; {cov.quarantined_groups} group(s) quarantined" if cov.quarantined_groups else "")))
    if not cov.costliest_untagged:
        return
    table = Table(title="Costliest resources without a team tag in billing", title_justify="left")
    for name in ("Resource", "Kind", "Owner", "Placed by"):
        table.add_column(name, overflow="fold")
    _money_col(table, "Amount")
    table.add_column("Tag to add", overflow="fold")
    for r in cov.costliest_untagged:
        tags = ", ".join(f"{k}={v}" for k, v in r.add_tags.items())
        table.add_row(Text(short_id(r.resource_id)), Text(r.kind), Text(r.team or "-"), Text(r.placed_by),
                      fm.money(r.amount), Text(f"{tags}" + (" (on the resource; activate it for billing)"
                                                            if r.has_tags else "")))
    console.print(table)


def render_table(data: ReportData, console: Console) -> None:
    """Print the report as rich tables on ``console`` (amounts with two decimals, right-aligned)."""
    cur, prev = data.current, data.previous
    fm = Money(data.currency)
    share_est = estimated_share(cur)

    head = Text()
    head.append(f"dbcost report {data.month}", style="bold")
    head.append(f"  metric {cur.metric}  total {fm.money(cur.total)}  unattributed {fm.money(cur.unattributed)}"
                f" ({pct(ratio(cur.unattributed, cur.total))})  estimated {pct(share_est)}"
                f"  through {iso(cur.through) or '-'}  generated {ts(data.generated_at)}")
    console.print(head)
    mtd = month_to_date(cur, prev)
    if mtd is not None:
        console.print(Text(f"Month to date ({mtd.days} of {mtd.days_in_month} days): {fm.money(mtd.current)} vs "
                           f"{fm.money(mtd.previous)} on the same days of {mtd.previous_month}: {fm.signed(mtd.delta)} "
                           f"({signed_pct(mtd.delta_pct)}); whole {mtd.previous_month}: {fm.money(mtd.previous_whole)}"
                           + (" (not like for like)" if mtd.partial else "")))

    if data.quota is not None and data.quota.pools:
        columns = quota_columns(data.quota)
        quota = Table(title=f"Budgets, {data.month}", title_justify="left")
        for column in columns:
            quota.add_column(column.heading, justify="right" if column.kind == "amount" else "left")
        for pool in data.quota.pools:
            quota.add_row(*[Text(column.cell(pool, fm)) for column in columns])
        console.print(quota)

    prev_teams = team_amounts(prev) if prev else {}
    teams = Table(title=f"Spend per team, {data.month}", title_justify="left")
    teams.add_column("Team")
    _money_col(teams, "Amount")
    _money_col(teams, "Share")
    _money_col(teams, "Clusters")
    _money_col(teams, "Shared")
    if prev:
        _money_col(teams, f"Δ vs {prev.month}")
    for name, amount in sorted_teams(cur):
        team = cur.team(name)
        assert team is not None
        n_clusters = sum(1 for c in team.clusters if c.cluster != SHARED_CLUSTER)
        row: list[Text | str] = [Text(name), fm.money(amount), pct(ratio(amount, cur.total)), str(n_clusters),
                                 fm.money(shared_of(cur, name))]
        if prev:
            row.append(fm.signed(sum_amounts((amount, -prev_teams.get(name, Decimal(0))))))
        teams.add_row(*row)
    unatt_row: list[Text | str] = [Text(UNATTRIBUTED, style="dim"), fm.money(cur.unattributed),
                                   pct(ratio(cur.unattributed, cur.total)), str(len(cur.unattributed_clusters)), ""]
    if prev:
        unatt_row.append(fm.signed(sum_amounts((cur.unattributed, -prev.unattributed))))
    teams.add_row(*unatt_row, end_section=True)
    total_row: list[Text | str] = [Text("total", style="bold"), fm.money(cur.total),
                                   pct(Decimal(1) if cur.total else Decimal(0)), "", ""]
    if prev:
        total_row.append(fm.signed(sum_amounts((cur.total, -prev.total))))
    teams.add_row(*total_row)
    console.print(teams)

    cats = categories_present(cur)
    clusters = Table(title=f"Top {TOP_CLUSTERS} clusters by spend", title_justify="left")
    clusters.add_column("Cluster")
    clusters.add_column("Team")
    for cat in cats:
        _money_col(clusters, cat)
    _money_col(clusters, "Total")
    for team_name, c in top_clusters(cur):
        clusters.add_row(Text(c.cluster), Text(team_name),
                         *[fm.money(c.categories.get(cat, Decimal(0))) for cat in cats], fm.money(c.amount))
    console.print(clusters)

    if prev is not None:
        moves = Table(title=f"Largest movers, {prev.month} → {data.month}", title_justify="left")
        moves.add_column("Kind")
        moves.add_column("Name")
        moves.add_column("Team")
        _money_col(moves, prev.month)
        _money_col(moves, data.month)
        _money_col(moves, "Δ")
        _money_col(moves, "Δ %")
        for m in movers(cur, prev):
            moves.add_row(m.kind, Text(m.name), Text(m.team), fm.money(m.previous), fm.money(m.current),
                          fm.signed(m.delta), signed_pct(m.delta_pct))
        console.print(moves)
    else:
        console.print("No previous month in the store: no movers.")

    unatt = Table(title=f"Unattributed spend: {fm.money(cur.unattributed)}", title_justify="left")
    unatt.add_column("Cluster / resource")
    unatt.add_column("Families")
    _money_col(unatt, "Amount")
    for c in sorted(cur.unattributed_clusters, key=lambda c: (-c.amount, c.cluster)):
        unatt.add_row(Text(c.cluster), Text(", ".join(c.families)), fm.money(c.amount))
    console.print(unatt)

    if cur.resource_level is not None:
        render_resource_level(cur.resource_level, console, fm)

    if cur.unclassified_usage_types:
        uncl = Table(title="Unclassified usage types (category 'other')", title_justify="left")
        uncl.add_column("Service")
        uncl.add_column("Usage type")
        _money_col(uncl, "Amount")
        for u in cur.unclassified_usage_types:
            uncl.add_row(Text(u.service), Text(u.usage_type), fm.money(u.amount))
        console.print(uncl)

    if cur.business_units:
        units = Table(title="Spend per business unit (linked accounts)", title_justify="left")
        units.add_column("Business unit")
        _money_col(units, "Amount")
        _money_col(units, "Share")
        for name, amount in business_units(cur):
            units.add_row(Text(name), fm.money(amount), pct(ratio(amount, cur.total)))
        console.print(units)

    quar = Table(title=f"Quarantined records: {data.quarantined_total}", title_justify="left")
    quar.add_column("Reason")
    _money_col(quar, "Count")
    for reason, count in data.quarantined_by_reason:
        quar.add_row(Text(reason), str(count))
    console.print(quar)

    fresh = Table(title="Data freshness", title_justify="left")
    fresh.add_column("Target")
    fresh.add_column("Dataset")
    fresh.add_column("Last success")
    fresh.add_column("Through")
    for f in data.freshness:
        fresh.add_row(Text(f.target), Text(f.dataset_label),
                      f"{ts(f.last_success)} {age(data.generated_at, f.last_success)}".strip(),
                      iso(f.through) or "-")
    console.print(fresh)

    if data.advice is None:
        console.print(Text(f"Advice: no advisories stored for {data.month}; run `dbcost advise --month "
                           f"{data.month}`."))
    else:
        advice = data.advice
        top = Table(title=f"Advice: {len(advice.advisories)} advisories, estimated savings "
                          f"{fm.money(advice.total_savings)}/month", title_justify="left")
        _money_col(top, "Savings/month")
        for name in ("Kind", "Cluster", "Team", "Action"):
            top.add_column(name, overflow="fold")
        for a in top_advisories(advice):
            top.add_row(fm.money(a.savings), a.kind, Text(a.cluster or "(untagged)"), Text(a.team or UNATTRIBUTED),
                        Text(a.action))
        console.print(top)
        per_team = Table(title="Advice per team", title_justify="left")
        per_team.add_column("Team")
        _money_col(per_team, "Advisories")
        _money_col(per_team, "Savings/month")
        for owner, n, savings in advice.by_team():
            per_team.add_row(Text(owner), str(n), fm.money(savings))
        console.print(per_team)

    console.print(Text(f"Estimated share of {data.month}: {pct(share_est)} "
                       f"({fm.money(cur.estimated_amount)} of {fm.money(cur.total)} not final yet)"))
