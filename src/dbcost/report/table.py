"""The report as rich tables on a terminal: the only module of the report that imports rich.

:func:`render_table` prints a header line and the month-to-date comparison (like for like: the same days of
the previous month; the whole previous month beside it, labelled), then the budgets (quota), then one
table per section (teams, top clusters, movers, unattributed and unclassified spend, business units,
quarantine, freshness, advice: the largest advisories and the savings per team) and the estimated share.
Amounts have two decimals, their currency and are right-aligned. Every name from the data (teams and
clusters come from user tags, advisory actions quote them) goes into a :class:`rich.text.Text`, so markup in
a name is printed, never interpreted. ``dbcost.report`` loads this module only when ``render_table`` is asked for.

Width (:func:`print_table`, which the CLI's tables use too): a table is printed at its natural width, capped
by the console's. On a terminal narrower than a table's minimum, its low-priority columns (named by the
caller, in the order they may go: a per-category breakdown, never a total or a name) are left out, one at a
time, and a caption names them; names fold onto a second line, amounts are never wrapped or cut. A console
that is not a terminal is made wide (:data:`NATURAL_WIDTH`) so the output is the full table, stable
whatever the width of the terminal that started the command.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich.console import Console
from rich.measure import Measurement
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

__all__ = ["NATURAL_WIDTH", "print_table", "render_resource_level", "render_table"]

#: the width of a console that is not a terminal: wide enough that no table is ever squeezed
NATURAL_WIDTH = 10_000
#: the narrowest a folding name column gets on a narrow terminal
_NAME_MIN = 12


def _money_col(table: Table, name: str) -> None:
    table.add_column(name, justify="right", no_wrap=True)


def _name_col(table: Table, name: str) -> None:
    table.add_column(name, overflow="fold")


def print_table(console: Console, table: Table, *, drop: Sequence[str] = ()) -> None:
    """Print ``table`` at its natural width, at most the console's; left out to fit, in order, the columns
    named in ``drop`` while the table cannot fit (module docstring)."""
    options = console.options.update(max_width=NATURAL_WIDTH)  # measured unclamped: what it needs, not what fits
    for column in table.columns:
        if column.min_width is not None:
            continue
        widest = max((Measurement.get(console, options, cell).maximum for cell in (column.header, *column.cells)),
                     default=0)
        if column.no_wrap:  # an amount: rich measures it as if it could wrap; it must keep its whole width
            column.min_width = widest
        elif column.overflow == "fold":  # a name: may fold onto more lines, but not into a sliver
            column.min_width = min(widest, _NAME_MIN)
    dropped: list[str] = []
    for name in drop:
        if Measurement.get(console, options, table).minimum <= console.width:
            break
        for i, column in enumerate(table.columns):
            if str(column.header) == name and len(table.columns) > 1:
                del table.columns[i]
                dropped.append(name)
                break
    if dropped:
        note = f"left out to fit {console.width} columns: {', '.join(dropped)} (--format csv or json has them)"
        table.caption = f"{table.caption}; {note}" if table.caption else note
        table.caption_justify = "left"
    console.print(table, width=min(Measurement.get(console, options, table).maximum, console.width))


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
    print_table(console, table, drop=("Placed by", "Kind", "Owner"))


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
        print_table(console, quota)

    prev_teams = team_amounts(prev) if prev else {}
    teams = Table(title=f"Spend per team, {data.month}", title_justify="left")
    _name_col(teams, "Team")
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
    print_table(console, teams, drop=("Shared", "Clusters"))

    cats = categories_present(cur)
    clusters = Table(title=f"Top {TOP_CLUSTERS} clusters by spend", title_justify="left")
    _name_col(clusters, "Cluster")
    _name_col(clusters, "Team")
    for cat in cats:
        _money_col(clusters, cat)
    _money_col(clusters, "Total")
    for team_name, c in top_clusters(cur):
        clusters.add_row(Text(c.cluster), Text(team_name),
                         *[fm.money(c.categories.get(cat, Decimal(0))) for cat in cats], fm.money(c.amount))
    print_table(console, clusters, drop=(*reversed(cats), "Team"))

    if prev is not None:
        moves = Table(title=f"Largest movers, {prev.month} → {data.month}", title_justify="left")
        moves.add_column("Kind")
        _name_col(moves, "Name")
        _name_col(moves, "Team")
        _money_col(moves, prev.month)
        _money_col(moves, data.month)
        _money_col(moves, "Δ")
        _money_col(moves, "Δ %")
        for m in movers(cur, prev):
            moves.add_row(m.kind, Text(m.name), Text(m.team), fm.money(m.previous), fm.money(m.current),
                          fm.signed(m.delta), signed_pct(m.delta_pct))
        print_table(console, moves, drop=("Δ %", "Kind"))
    else:
        console.print("No previous month in the store: no movers.")

    unatt = Table(title=f"Unattributed spend: {fm.money(cur.unattributed)}", title_justify="left")
    _name_col(unatt, "Cluster / resource")
    _name_col(unatt, "Families")
    _money_col(unatt, "Amount")
    for c in sorted(cur.unattributed_clusters, key=lambda c: (-c.amount, c.cluster)):
        unatt.add_row(Text(c.cluster), Text(", ".join(c.families)), fm.money(c.amount))
    print_table(console, unatt)

    if cur.resource_level is not None:
        render_resource_level(cur.resource_level, console, fm)

    if cur.unclassified_usage_types:
        uncl = Table(title="Unclassified usage types (category 'other')", title_justify="left")
        uncl.add_column("Service")
        _name_col(uncl, "Usage type")
        _money_col(uncl, "Amount")
        for u in cur.unclassified_usage_types:
            uncl.add_row(Text(u.service), Text(u.usage_type), fm.money(u.amount))
        print_table(console, uncl)

    if cur.business_units:
        units = Table(title="Spend per business unit (linked accounts)", title_justify="left")
        _name_col(units, "Business unit")
        _money_col(units, "Amount")
        _money_col(units, "Share")
        for name, amount in business_units(cur):
            units.add_row(Text(name), fm.money(amount), pct(ratio(amount, cur.total)))
        print_table(console, units)

    quar = Table(title=f"Quarantined records: {data.quarantined_total}", title_justify="left")
    _name_col(quar, "Reason")
    _money_col(quar, "Count")
    for reason, count in data.quarantined_by_reason:
        quar.add_row(Text(reason), str(count))
    print_table(console, quar)

    fresh = Table(title="Data freshness", title_justify="left")
    fresh.add_column("Target")
    _name_col(fresh, "Dataset")
    fresh.add_column("Last success")
    fresh.add_column("Through")
    for f in data.freshness:
        fresh.add_row(Text(f.target), Text(f.dataset_label),
                      f"{ts(f.last_success)} {age(data.generated_at, f.last_success)}".strip(),
                      iso(f.through) or "-")
    print_table(console, fresh)

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
        print_table(console, top, drop=("Team", "Kind"))
        per_team = Table(title="Advice per team", title_justify="left")
        _name_col(per_team, "Team")
        _money_col(per_team, "Advisories")
        _money_col(per_team, "Savings/month")
        for owner, n, savings in advice.by_team():
            per_team.add_row(Text(owner), str(n), fm.money(savings))
        print_table(console, per_team)

    console.print(Text(f"Estimated share of {data.month}: {pct(share_est)} "
                       f"({fm.money(cur.estimated_amount)} of {fm.money(cur.total)} not final yet)"))
