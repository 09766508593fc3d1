"""The report as ONE self-contained HTML file: inline CSS, inline SVG charts, one small inline script.

The page opens offline: no font, image, stylesheet or script from anywhere; its only links are to its own
sections and ``data:`` URIs. The stylesheet (``report.css``) and the script (``report.js``, table sorting)
are package data inlined into the page; the charts are SVG built as text (:mod:`dbcost.report._charts`).
Every value that comes from data (team and cluster names come from user tags) goes through
:func:`html.escape`, in the tables and inside the SVG alike; the script holds no data.

**Order** (what decides action first; at 1400x900 the budgets are above the fold): the header and a table
of contents, the cards (month to date against the *same days* of the previous month; the whole-month
delta labelled as such), the budgets (one bar per pool: actual, forecast, budget, breach date, status
colour), the trend per team over every attributed month and the month's daily spend, then advice and
movers, then the big tables (teams, each team's own section, clusters, composition, unattributed,
business units, quarantine, freshness, quota detail).

**Tables** are built once as rows of :class:`Cell` (the HTML shown, and the exact value behind it), and
rendered twice from that: the HTML table (``class="sortable"``; every numeric cell carries its exact value
in ``data-value``, which the script sorts by) and a CSV download beside it (a ``data:text/csv`` link whose
rows are the table's body rows, amounts at full precision). Every amount shown carries its currency.
"""

from __future__ import annotations

import csv
import functools
import html
import io
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.resources import files
from typing import Final

from dbcost.attribution.model import SHARED_CLUSTER, UNATTRIBUTED, Attribution, ClusterSpend
from dbcost.money import fmt, sum_amounts
from dbcost.quota import PoolEvaluation
from dbcost.report._charts import (
    CATEGORY_COLORS,
    EXTRA_CATEGORY_COLOR,
    OTHER_TEAMS,
    OTHER_TEAMS_COLOR,
    STATUS_COLORS,
    TEAM_PALETTE,
    UNATTRIBUTED_COLOR,
    chart_budgets,
    chart_categories,
    chart_clusters,
    chart_daily,
    chart_history,
    series_of,
)
from dbcost.report._format import Money, QuotaColumn, age, iso, pct, quota_columns, signed_pct, ts
from dbcost.report.data import (
    TOP_CLUSTERS,
    ReportData,
    business_units,
    categories_present,
    change_pct,
    estimated_share,
    month_to_date,
    movers,
    owned_clusters,
    ratio,
    shared_of,
    sorted_teams,
    team_amounts,
    team_month_to_date,
    top_advisories,
)

__all__ = [
    "CATEGORY_COLORS",
    "EXTRA_CATEGORY_COLOR",
    "OTHER_TEAMS",
    "OTHER_TEAMS_COLOR",
    "STATUS_COLORS",
    "TEAM_PALETTE",
    "UNATTRIBUTED_COLOR",
    "Cell",
    "Table",
    "render_html",
]

_STYLESHEET: Final = "report.css"
_SCRIPT: Final = "report.js"
#: a table with more rows scrolls inside a box of about this many rows (its CSV has them all)
_SCROLL_ROWS: Final = 25


@functools.cache
def _asset(name: str) -> str:
    """A file shipped beside this module (the stylesheet, the script), read once."""
    return files("dbcost.report").joinpath(name).read_text(encoding="utf-8")


def _css() -> str:
    return _asset(_STYLESHEET)


def _e(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


# ------------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Cell:
    """One table cell: the escaped HTML shown, the exact value behind it (sorting and the CSV: a full-precision
    decimal for amounts, the plain text otherwise) and whether it is numeric (right-aligned)."""

    html: str
    value: str
    num: bool = False


def _text(value: object, *, muted: bool = False, wrap: bool = False) -> Cell:
    cls = " ".join(c for c, on in (("muted", muted), ("wrap", wrap)) if on)
    shown = f'<span class="{cls}">{_e(value)}</span>' if cls else _e(value)
    return Cell(shown, str(value))


def _count(n: int) -> Cell:
    return Cell(f"{n:,}", str(n), True)


@dataclass
class Table:
    """A table built once and rendered as sortable HTML and as CSV (see the module docstring)."""

    name: str
    headers: list[tuple[str, bool]]
    rows: list[list[Cell]] = field(default_factory=list)
    foot: list[Cell] | None = None
    empty: str = "None."

    def csv_text(self) -> str:
        """The header and body rows as CSV (exact values; the footer is a sum, not a row)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([h for h, _ in self.headers])
        w.writerows([c.value for c in row] for row in self.rows)
        return buf.getvalue()

    def render(self, month: str) -> str:
        head = "".join(f'<th{" class=num" if num else ""} scope="col">{_e(h)}</th>' for h, num in self.headers)
        body = ["<tr>" + "".join(
            f'<td class="num" data-value="{_e(c.value)}">{c.html}</td>' if c.num else f"<td>{c.html}</td>"
            for c in row) + "</tr>" for row in self.rows]
        if not body:
            body.append(f'<tr><td class="muted" colspan="{len(self.headers)}">{_e(self.empty)}</td></tr>')
        tfoot = ""
        if self.foot is not None:
            tfoot = "<tfoot><tr>" + "".join(f'<td{" class=num" if c.num else ""}>{c.html}</td>'
                                            for c in self.foot) + "</tr></tfoot>"
        href = "data:text/csv;charset=utf-8," + urllib.parse.quote(self.csv_text(), safe="")
        tools = (f'<div class="table-tools"><a class="csv" download="dbcost-{_e(month)}-{_e(self.name)}.csv" '
                 f'href="{href}">CSV</a><span class="muted">{len(self.rows):,} row(s) \u00b7 click a heading to '
                 "sort</span></div>") if self.rows else ""
        table = (f'<table class="sortable" data-table="{_e(self.name)}"><thead><tr>{head}</tr></thead>'
                 f'<tbody>{"".join(body)}</tbody>{tfoot}</table>')
        if len(self.rows) > _SCROLL_ROWS:  # a long table scrolls in its own box (headings stay on top)
            table = f'<div class="scroll">{table}</div>'
        return tools + table


# -------------------------------------------------------------------------------------------------- page


class _Page:
    """One report being rendered: its data, its currency's formatters and the cells they make."""

    def __init__(self, data: ReportData) -> None:
        self.data = data
        self.fm = Money(data.currency)
        self.cur, self.prev = data.current, data.previous
        self.mtd = month_to_date(self.cur, self.prev)

    def amount(self, d: Decimal) -> Cell:
        return Cell(_e(self.fm.money(d)), fmt(d), True)

    def delta(self, d: Decimal) -> Cell:
        cls = "up" if d > 0 else "down" if d < 0 else "muted"
        return Cell(f'<span class="{cls}">{_e(self.fm.signed(d))}</span>', fmt(d), True)

    def share(self, part: Decimal, whole: Decimal) -> Cell:
        r = ratio(part, whole)
        return Cell(_e(pct(r)), fmt(r), True)

    def change(self, p: Decimal | None) -> Cell:
        return Cell(_e(signed_pct(p)), fmt(p) if p is not None else "", True)

    def delta_text(self, d: Decimal) -> str:
        cls = "up" if d > 0 else "down" if d < 0 else "muted"
        return f'<span class="{cls}">{_e(self.fm.signed(d))}</span>'


def _card(label: str, value: str, note_html: str = "", cls: str = "") -> str:
    return (f'<div class="card {cls}"><div class="card-label">{_e(label)}</div>'
            f'<div class="card-value">{_e(value)}</div><div class="card-note">{note_html}</div></div>')


def _cards(pg: _Page) -> str:
    d, cur, fm = pg.data, pg.cur, pg.fm
    share_est = estimated_share(cur)
    attributed = sum_amounts((cur.total, -cur.unattributed))
    mtd = pg.mtd
    if mtd is not None:
        like = (f"{pg.delta_text(mtd.delta)} ({_e(signed_pct(mtd.delta_pct))}) vs the same {mtd.days} days of "
                f"{_e(mtd.previous_month)}")
        whole_label = f"vs whole {mtd.previous_month}"
        whole = (f"{_e(fm.money(mtd.previous_whole))}"
                 + (f"; {mtd.days} of {mtd.days_in_month} days so far: not like for like" if mtd.partial else ""))
        whole_card = _card(whole_label, f"{fm.signed(mtd.whole_delta)} ({signed_pct(mtd.whole_delta_pct)})", whole)
    else:
        like, whole_card = '<span class="muted">no previous month to compare with</span>', ""
    title = "Spend, month to date" if mtd is not None and mtd.partial else "Spend"
    return ('<div class="cards" id="cards">'
            + _card(title, fm.money(cur.total), like)
            + whole_card
            + _card("Attributed to teams", fm.money(attributed), _e(pct(ratio(attributed, cur.total))))
            + _card("Unattributed", fm.money(cur.unattributed), _e(pct(ratio(cur.unattributed, cur.total))),
                    "warn" if cur.unattributed > 0 else "")
            + _card("Estimated (not final)", pct(share_est), _e(fm.money(cur.estimated_amount)),
                    "warn" if share_est > 0 else "")
            + _card("Shared, allocated", fm.money(cur.allocated_shared), "spread over teams")
            + _card("Quarantined records", f"{d.quarantined_total:,}", "not in these figures",
                    "warn" if d.quarantined_total else "")
            + "</div>")


def _notices(pg: _Page) -> str:
    d, cur = pg.data, pg.cur
    share_est = estimated_share(cur)
    out = []
    if share_est > 0:
        out.append(f"{_e(pct(share_est))} of {_e(d.month)} ({_e(pg.fm.money(cur.estimated_amount))}) is estimated: "
                   "Cost Explorer has not finalised it, so these figures can still change.")
    if d.quarantined_total:
        out.append(f"{d.quarantined_total:,} record(s) failed validation and are quarantined; their spend is not "
                   'in this report (see <a href="#quarantine">Quarantine</a>).')
    return "".join(f'<div class="notice">{n}</div>' for n in out)


def _budgets(pg: _Page) -> str:
    q = pg.data.quota
    if q is None:
        body = ('<p class="muted">No budgets in this report: give <code>--policy FILE</code> '
                "(<code>dbcost quota example</code> writes one).</p>")
    else:
        counts = {s: sum(1 for p in q.pools if p.status == s) for s in ("BREACH", "WARN", "OK")}
        summary = " \u00b7 ".join(f'<span class="st st-{s.lower()}">{n} {s}</span>' for s, n in counts.items() if n)
        body = (f'<div class="budget-summary">{summary}<span class="muted">run-rate forecast to the month end; '
                "hover a bar for its exact amount</span></div>" + chart_budgets(q, pg.fm))
    return f'<section id="budgets"><h2>Budgets, {_e(pg.data.month)}</h2>{body}</section>'


def _trend(pg: _Page, history: Sequence[Attribution]) -> str:
    months = f"{history[0].month} to {history[-1].month}" if len(history) > 1 else history[0].month
    return (f'<figure id="trend"><figcaption>Spend per team per month, {_e(months)} <span class="muted">(every '
            "attributed month, stacked; unattributed in grey; hover a segment for its exact amount)</span>"
            f"</figcaption>{chart_history(history, pg.cur.metric, pg.fm)}</figure>")


def _daily(pg: _Page, series: Sequence[tuple[str, str]]) -> str:
    mtd = pg.mtd
    note = ""
    if mtd is not None:
        note = (f'<p class="mtd">Month to date, {mtd.days} day(s) through {_e(iso(mtd.through))} (exclusive): '
                f"<b>{_e(pg.fm.money(mtd.current))}</b> against <b>{_e(pg.fm.money(mtd.previous))}</b> on the same "
                f"days of {_e(mtd.previous_month)}: {pg.delta_text(mtd.delta)} ({_e(signed_pct(mtd.delta_pct))}). "
                f'<span class="muted">Whole {_e(mtd.previous_month)}: {_e(pg.fm.money(mtd.previous_whole))}.</span>'
                "</p>")
    return (f'<figure id="daily"><figcaption>Daily spend in {_e(pg.data.month)}, by team <span class="muted">'
            f"(dashed: the previous month on the same day numbers)</span></figcaption>"
            f"{chart_daily(pg.data, series, pg.fm)}{note}</figure>")


def _advice(pg: _Page) -> str:
    """After the trend, before the movers: the month's largest advisories (``dbcost advise``) and the savings
    per team, or a line saying how to compute them."""
    d = pg.data
    if d.advice is None:
        return ('<section id="advice"><h2>Advice</h2><p class="muted">No advisories stored for '
                f"{_e(d.month)}: run <code>dbcost advise --month {_e(d.month)}</code>.</p></section>")
    advice = d.advice
    top = Table("advice", [("Savings/month", True), ("Kind", False), ("Cluster", False), ("Team", False),
                           ("Region", False), ("Action", False)],
                empty="No advisory: nothing to right-size this month.")
    for a in top_advisories(advice):
        top.rows.append([pg.amount(a.savings), _text(a.kind), _text(a.cluster or "(untagged)", wrap=True),
                         _text(a.team or UNATTRIBUTED), _text(a.region), _text(a.action, wrap=True)])
    per_team = Table("advice-per-team", [("Team", False), ("Advisories", True), ("Savings/month", True)],
                     empty="No advisory.")
    for team, n, savings in advice.by_team():
        per_team.rows.append([_text(team), _count(n), pg.amount(savings)])
    per_team.foot = [_text("Total"), _count(len(advice.advisories)), pg.amount(advice.total_savings)]
    return (f'<section id="advice"><h2>Advice: {len(advice.advisories)} advisories, estimated savings '
            f"{_e(pg.fm.money(advice.total_savings))}/month</h2>{top.render(d.month)}"
            f'<h2 style="margin-top:16px">Advice per team</h2>{per_team.render(d.month)}</section>')


def _movers(pg: _Page) -> str:
    cur, prev, d = pg.cur, pg.prev, pg.data
    if prev is None:
        return ('<section id="movers"><h2>Largest movers</h2>'
                '<p class="muted">No previous month to compare with.</p></section>')
    t = Table("movers", [("Kind", False), ("Name", False), ("Team", False), (f"{prev.month} (whole)", True),
                         (d.month, True), ("Δ", True), ("Δ %", True)], empty="No change.")
    for m in movers(cur, prev):
        t.rows.append([_text(m.kind), _text(m.name, wrap=True), _text(m.team), pg.amount(m.previous),
                       pg.amount(m.current), pg.delta(m.delta), pg.change(m.delta_pct)])
    partial = pg.mtd is not None and pg.mtd.partial
    label = (f'<p class="muted">Whole {_e(prev.month)} against {_e(d.month)} so far ({pg.mtd.days} of '
             f"{pg.mtd.days_in_month} days): not like for like; the teams table has the same-days comparison.</p>"
             if partial and pg.mtd is not None else "")
    return (f'<section id="movers"><h2>Largest movers, {_e(prev.month)} → {_e(d.month)}</h2>{label}'
            f"{t.render(d.month)}</section>")


def _teams(pg: _Page) -> str:
    cur, prev, d = pg.cur, pg.prev, pg.data
    prev_teams = team_amounts(prev) if prev else {}
    headers: list[tuple[str, bool]] = [("Team", False), ("Amount", True), ("Share", True), ("Clusters", True),
                                       ("Shared", True)]
    if prev is not None and pg.mtd is not None:
        headers += [(f"{prev.month}, same {pg.mtd.days} days", True), ("Δ same days", True), ("Δ %", True),
                    (f"{prev.month} whole", True)]
    t = Table("teams", headers)
    for name, amount in [*sorted_teams(cur), (UNATTRIBUTED, cur.unattributed)]:
        team = cur.team(name) if name != UNATTRIBUTED else None
        n_clusters = (sum(1 for c in team.clusters if c.cluster != SHARED_CLUSTER) if team
                      else len(cur.unattributed_clusters))
        row = [_text(name, muted=team is None), pg.amount(amount), pg.share(amount, cur.total), _count(n_clusters),
               pg.amount(shared_of(cur, name))]
        same = team_month_to_date(cur, prev, name)
        if same is not None:
            now, before = same
            delta = sum_amounts((now, -before))
            row += [pg.amount(before), pg.delta(delta), pg.change(change_pct(delta, before)),
                    pg.amount(prev_teams.get(name, Decimal(0)))]
        t.rows.append(row)
    t.foot = [_text("Total"), pg.amount(cur.total), Cell(_e(pct(Decimal(1) if cur.total else Decimal(0))), "", True),
              Cell("", ""), pg.amount(cur.allocated_shared)]
    if pg.mtd is not None and prev is not None:
        t.foot += [pg.amount(pg.mtd.previous), pg.delta(pg.mtd.delta), pg.change(pg.mtd.delta_pct),
                   pg.amount(prev.total)]
    return f'<section id="teams"><h2>Spend per team</h2>{t.render(d.month)}</section>'


def _facts(clusters: Sequence[tuple[str, ClusterSpend]]) -> list[tuple[str, Callable[[ClusterSpend], str]]]:
    """The descriptive cluster columns that some cluster fills (account, region, engine, class, env)."""
    every: list[tuple[str, Callable[[ClusterSpend], str]]] = [
        ("Env", lambda c: c.env), ("Account", lambda c: ", ".join(c.accounts)),
        ("Region", lambda c: ", ".join(c.regions)),
        ("Engine / family", lambda c: ", ".join(c.engines or c.families)),
        ("Class", lambda c: ", ".join(c.instance_classes)),
    ]
    return [(h, get) for h, get in every if any(get(c) for _, c in clusters)]


def _cluster_table(pg: _Page, name: str, clusters: Sequence[tuple[str, ClusterSpend]], *, with_team: bool) -> Table:
    cats = categories_present(pg.cur)
    facts = _facts(clusters)
    headers: list[tuple[str, bool]] = [("Cluster", False)]
    if with_team:
        headers += [("Team", False), ("Owner from", False)]
    headers += [(h, False) for h, _ in facts] + [(c, True) for c in cats] + [("Total", True)]
    t = Table(name, headers)
    for team_name, c in sorted(clusters, key=lambda tc: (-tc[1].amount, tc[1].cluster, tc[0])):
        row = [_text(c.cluster, wrap=True)]
        if with_team:
            row += [_text(team_name), _text(c.source)]
        row += [_text(get(c)) for _, get in facts]
        row += [pg.amount(c.categories.get(cat, Decimal(0))) for cat in cats] + [pg.amount(c.amount)]
        t.rows.append(row)
    return t


def _clusters(pg: _Page) -> str:
    cur, fm = pg.cur, pg.fm
    t = _cluster_table(pg, "clusters", owned_clusters(cur), with_team=True)
    note = (f'<p class="muted">Allocated shared spend ({_e(fm.money(cur.allocated_shared))}) is carried per team '
            "(column Shared of the teams table), not per cluster.</p>") if cur.allocated_shared else ""
    return (f'<section id="clusters"><h2>Spend per cluster and category</h2>{t.render(pg.data.month)}{note}'
            "</section>")


def _team_details(pg: _Page) -> str:
    cur, prev, d = pg.cur, pg.prev, pg.data
    if not cur.teams:
        return ""
    pools = {p.team: p for p in d.quota.pools} if d.quota is not None else {}
    parts = []
    for i, (name, amount) in enumerate(sorted_teams(cur), 1):
        team = cur.team(name)
        assert team is not None
        clusters = [(name, c) for c in team.clusters if c.cluster != SHARED_CLUSTER]
        same = team_month_to_date(cur, prev, name)
        bits = [f"<b>{_e(name)}</b>", _e(pg.fm.money(amount)), _e(pct(ratio(amount, cur.total)))]
        if same is not None:
            delta = sum_amounts((same[0], -same[1]))
            bits.append(f"{pg.delta_text(delta)} vs the same days of {_e(prev.month if prev else '')}")
        pool = pools.get(name)
        if pool is not None:
            bits.append(f'budget <span class="{_e("st st-" + pool.status.lower())}">{_e(pool.status)}</span> '
                        f"{_e(pg.fm.money(pool.actual))} of {_e(pg.fm.money(pool.budget))}")
        cats = {c: sum_amounts(cl.categories.get(c, Decimal(0)) for _, cl in clusters) for c in categories_present(cur)}
        split = " \u00b7 ".join(f"{_e(c)} {_e(pg.fm.money(v))}" for c, v in cats.items() if v)
        summary = " \u00b7 ".join(bits)
        parts.append(f'<details class="team" id="team-{i}"><summary>{summary}</summary>'
                     f'<p class="muted">{split}</p>'
                     f"{_cluster_table(pg, f'team-{i}-clusters', clusters, with_team=False).render(d.month)}</details>")
    return ('<section id="team-details"><h2>Each team <span class="muted">(open one for its clusters)</span></h2>'
            + "".join(parts) + "</section>")


def _composition(pg: _Page) -> str:
    d, cur = pg.data, pg.cur
    return ('<div class="grid2" id="composition">'
            f'<figure id="clusters-chart"><figcaption>Category split of the top {TOP_CLUSTERS} clusters, '
            f'{_e(d.month)} <span class="muted">(bar length = cluster spend)</span></figcaption>'
            f"{chart_clusters(cur, pg.fm)}</figure>"
            f'<figure id="categories-chart"><figcaption>Spend per category, {_e(d.month)}</figcaption>'
            f"{chart_categories(cur, pg.fm)}</figure></div>")


def _unattributed(pg: _Page) -> str:
    cur, d = pg.cur, pg.data
    t = Table("unattributed", [("Cluster / resource", False), ("Families", False), ("Amount", True)],
              empty="All spend is attributed.")
    t.rows = [[_text(c.cluster, wrap=True), _text(", ".join(c.families)), pg.amount(c.amount)]
              for c in sorted(cur.unattributed_clusters, key=lambda c: (-c.amount, c.cluster))]
    t.foot = [_text("Unattributed"), Cell("", ""), pg.amount(cur.unattributed)]
    u = Table("unclassified", [("Service", False), ("Usage type", False), ("Amount", True)],
              empty="Every usage type is classified.")
    u.rows = [[_text(x.service), _text(x.usage_type, wrap=True), pg.amount(x.amount)]
              for x in cur.unclassified_usage_types]
    return (f'<section id="unattributed"><h2>Unattributed spend: {_e(pg.fm.money(cur.unattributed))} '
            f'<span class="muted">({_e(pct(ratio(cur.unattributed, cur.total)))})</span></h2>{t.render(d.month)}'
            f'<h2 style="margin-top:16px">Unclassified usage types <span class="muted">(counted as category '
            f"other)</span></h2>{u.render(d.month)}</section>")


def _resource_level(pg: _Page) -> str:
    """What resource-level data placed of the unattributed spend, and the untagged resources to tag."""
    cov = pg.cur.resource_level
    if cov is None:
        return ""
    spans = ", ".join(f"{s.isoformat()}..{e.isoformat()}" for s, e in cov.stretches)
    t = Table("untagged-resources", [("Resource", False), ("Kind", False), ("Owner", False), ("Placed by", False),
                                     ("Amount", True), ("Tag to add", False)],
              empty="Every resource carries its team tag in billing.")
    t.rows = [[_text(r.resource_id or "(no resource id)", wrap=True), _text(r.kind), _text(r.team or "-"),
               _text(r.placed_by), pg.amount(r.amount),
               _text(", ".join(f"{k}={v}" for k, v in r.add_tags.items())
                     + (" (on the resource; activate it for billing)" if r.has_tags else ""), wrap=True)]
              for r in cov.costliest_untagged]
    rules = ", ".join(f"{k} {pg.fm.money(v)}" for k, v in cov.placed_by.items())
    return (f'<section id="resource-level"><h2>Resource-level data <span class="muted">({cov.days} day(s): '
            f"{_e(spans)}, end exclusive)</span></h2><p>Unattributed on those days {_e(pg.fm.money(cov.unattributed))};"
            f" resources without a team tag in billing {_e(pg.fm.money(cov.untagged))}, of which placed "
            f"{_e(pg.fm.money(cov.placed))} ({_e(rules)}), still unattributed "
            f"{_e(pg.fm.money(cov.still_unattributed))}.</p>"
            f'<h2 style="margin-top:16px">Costliest resources without a team tag in billing</h2>'
            f"{t.render(pg.data.month)}</section>")


def _business_units(pg: _Page) -> str:
    cur = pg.cur
    if not cur.business_units:
        return ""
    t = Table("business-units", [("Business unit", False), ("Amount", True), ("Share", True)])
    t.rows = [[_text(name), pg.amount(amount), pg.share(amount, cur.total)] for name, amount in business_units(cur)]
    return ('<section id="business-units"><h2>Spend per business unit <span class="muted">(linked accounts)</span>'
            f"</h2>{t.render(pg.data.month)}</section>")


def _quarantine(pg: _Page) -> str:
    d = pg.data
    t = Table("quarantine", [("Reason", False), ("Records", True)], empty="Nothing quarantined.")
    t.rows = [[_text(r, wrap=True), _count(n)] for r, n in d.quarantined_by_reason]
    return f'<section id="quarantine"><h2>Quarantined records: {d.quarantined_total:,}</h2>{t.render(d.month)}</section>'


def _freshness(pg: _Page) -> str:
    d = pg.data
    t = Table("freshness", [("Target", False), ("Dataset", False), ("Last success", False), ("Age", False),
                            ("Through", False)], empty="No sync recorded.")
    t.rows = [[_text(f.target), _text(f.dataset_label), _text(ts(f.last_success)),
               _text(age(d.generated_at, f.last_success)), _text(iso(f.through) or "-")] for f in d.freshness]
    return f'<section id="freshness"><h2>Data freshness</h2>{t.render(d.month)}</section>'


def _quota_cell(column: QuotaColumn, pool: PoolEvaluation, fm: Money) -> Cell:
    """One cell of the quota table; a status is a badge whose class names it ("st st-breach")."""
    text = column.cell(pool, fm)
    if column.kind == "status" and text:
        return Cell(f'<span class="{_e("st st-" + text.lower())}">{_e(text)}</span>', text)
    if column.kind == "amount":
        return Cell(_e(text), _quota_value(column, pool) or text, True)
    return _text(text)


def _quota_value(column: QuotaColumn, pool: PoolEvaluation) -> str | None:
    exact = {"Budget": pool.budget, "Actual": pool.actual, "Forecast": pool.forecast,
             "Used": pool.pct_of_budget, "Forecast used": pool.forecast_pct_of_budget}.get(column.heading)
    return fmt(exact) if exact is not None else None


def _quota(pg: _Page) -> str:
    q = pg.data.quota
    if q is None or not q.pools:
        return ""
    columns = quota_columns(q)
    t = Table("quota", [(c.heading, c.kind == "amount") for c in columns])
    t.rows = [[_quota_cell(c, p, pg.fm) for c in columns] for p in q.pools]
    return f'<section id="quota"><h2>Quota detail</h2>{t.render(pg.data.month)}</section>'


#: the table of contents: (section id, title), in page order; a section the page lacks is left out
_TOC: Final = (("budgets", "Budgets"), ("trend", "Trend"), ("daily", "Daily"), ("advice", "Advice"),
               ("movers", "Movers"), ("teams", "Teams"), ("team-details", "Each team"), ("clusters", "Clusters"),
               ("composition", "Categories"), ("unattributed", "Unattributed"), ("business-units", "Business units"),
               ("quarantine", "Quarantine"), ("freshness", "Freshness"), ("quota", "Quota detail"))


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML document (inline CSS, SVG and script; no external reference)."""
    pg = _Page(data)
    cur = pg.cur
    history = data.trend()
    series = series_of(history)
    title = f"dbcost report {data.month}"
    body = [
        _cards(pg), _notices(pg), _budgets(pg), _trend(pg, history), _daily(pg, series),
        _advice(pg),  # advice, then movers, then the big tables
        _movers(pg), _teams(pg), _team_details(pg), _clusters(pg), _composition(pg), _unattributed(pg), _resource_level(pg),
        _business_units(pg), _quarantine(pg), _freshness(pg), _quota(pg),
    ]
    page = "\n".join(b for b in body if b)
    toc = "".join(f'<a href="#{sid}">{_e(label)}</a>' for sid, label in _TOC if f'id="{sid}"' in page)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light">',
        f"<title>{_e(title)}</title><style>\n{_css()}</style></head><body>",
        f"<header><h1>Database spend {_e(data.month)}</h1>"
        f'<div class="sub">{_e(cur.metric)} in {_e(data.currency)} · data through {_e(iso(cur.through) or "-")} '
        f"(exclusive) · generated {_e(ts(data.generated_at))}"
        + (f" · services: {_e(', '.join(cur.services))}" if cur.services else "")
        + f'</div><nav class="toc" aria-label="Contents">{toc}</nav></header>',
        page,
        f"<footer>dbcost · {_e(title)} · amounts in {_e(cur.metric)} ({_e(data.currency)}), shown with two "
        "decimals (hover a chart segment for the exact amount; each table's CSV and the JSON report keep full "
        "precision).</footer>",
        f"<script>\n{_asset(_SCRIPT)}</script>",
        "</body></html>\n",
    ])
