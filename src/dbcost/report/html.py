"""The report as ONE self-contained HTML file: inline CSS, charts as inline SVG drawn here, nothing fetched.

The page opens offline: no script, no font, no image, no stylesheet from anywhere. The stylesheet is
package data (``report.css`` beside this module) inlined into a ``<style>`` element; the three charts
(spend per team per month, the category split of the largest clusters, a category donut) are SVG built
as text. Every value that comes from data (team and cluster names come from user tags) goes through
:func:`html.escape`, in the tables and inside the SVG alike.

Money stays ``Decimal``. The only floats are pixel coordinates: a *ratio* of two amounts becomes a float to
place a rectangle; every amount printed as text (axis ticks, labels, tooltips) is formatted from the Decimal.
Colours are fixed per series (:data:`TEAM_PALETTE`, :data:`UNATTRIBUTED_COLOR`, :data:`CATEGORY_COLORS`),
so the same team or category looks the same in every chart.
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_CEILING, Decimal, localcontext
from importlib.resources import files
from typing import Final

from dbcost.attribution.model import SHARED_CLUSTER, UNATTRIBUTED, Attribution
from dbcost.money import sum_amounts
from dbcost.quota import PoolEvaluation
from dbcost.report._format import (
    QuotaColumn,
    age,
    compact,
    exact,
    iso,
    money,
    pct,
    quota_columns,
    signed,
    signed_pct,
    truncate,
    ts,
)
from dbcost.report.data import (
    RATIO_CONTEXT,
    TOP_CLUSTERS,
    ReportData,
    business_units,
    categories_present,
    category_totals,
    change_pct,
    estimated_share,
    movers,
    owned_clusters,
    ratio,
    shared_of,
    sorted_teams,
    team_amounts,
    top_advisories,
    top_clusters,
)

__all__ = [
    "CATEGORY_COLORS",
    "EXTRA_CATEGORY_COLOR",
    "OTHER_TEAMS",
    "OTHER_TEAMS_COLOR",
    "TEAM_PALETTE",
    "UNATTRIBUTED_COLOR",
    "render_html",
]

#: Colours of the team series in the trend chart, in order of team size (Tableau 10 without its grey).
TEAM_PALETTE: Final = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                       "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#2f8f9d")
#: Unattributed spend is always its own grey series: visible, never mistaken for a team.
UNATTRIBUTED_COLOR: Final = "#9e9e9e"
#: Teams beyond the palette are drawn together as one series with this name and colour.
OTHER_TEAMS: Final = "other teams"
OTHER_TEAMS_COLOR: Final = "#c9c2b8"
#: One fixed colour per category (Okabe-Ito, colour-blind safe), the same in every chart.
CATEGORY_COLORS: Final[Mapping[str, str]] = {
    "compute": "#0072b2", "storage": "#e69f00", "io": "#d55e00", "backup": "#009e73",
    "data_transfer": "#56b4e9", "other": "#f0e442", "shared": "#cc79a7",
}
#: A category outside CATEGORY_COLORS (one a rules file adds) is drawn in this grey.
EXTRA_CATEGORY_COLOR: Final = "#7f7f7f"
_STYLESHEET: Final = "report.css"


@functools.cache
def _css() -> str:
    """The page's stylesheet, read once from the package (it ships in the wheel beside this module)."""
    return files("dbcost.report").joinpath(_STYLESHEET).read_text(encoding="utf-8")


# -------------------------------------------------------------------------------------------------- SVG charts


def _e(value: object) -> str:
    """Escape any value for HTML/SVG text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def _px(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _frac(part: Decimal, whole: Decimal) -> float:
    """A ratio of two amounts as a float, for pixel geometry only (never shown as text)."""
    if whole <= 0 or part <= 0:
        return 0.0
    with localcontext(RATIO_CONTEXT):
        return float(part / whole)


def _nice_ticks(top: Decimal, count: int = 5) -> list[Decimal]:
    """Round axis ticks 0, step, 2*step, ... covering ``top`` with a step of 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return [Decimal(0), Decimal(1)]
    with localcontext(RATIO_CONTEXT):
        raw = top / count
        magnitude = Decimal(1).scaleb(raw.adjusted())
        step = next(m * magnitude for m in (Decimal(1), Decimal(2), Decimal(5), Decimal(10)) if m * magnitude >= raw)
        n = int((top / step).to_integral_value(rounding=ROUND_CEILING))
        return [step * i for i in range(n + 1)]


def _svg_open(chart: str, width: int, height: int, label: str) -> str:
    return (f'<svg class="chart" data-chart="{chart}" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{_e(label)}" preserveAspectRatio="xMinYMin meet">')


def _legend_item(x: float, y: float, color: str, label: str, full: str, extra: str = "") -> str:
    return (f'<g class="legend-item"><title>{_e(full)}</title>'
            f'<rect x="{_px(x)}" y="{_px(y)}" width="12" height="12" rx="2" fill="{color}"/>'
            f'<text x="{_px(x + 18)}" y="{_px(y + 10)}">{_e(label)}'
            + (f'<tspan class="muted" dx="6">{_e(extra)}</tspan>' if extra else "")
            + "</text></g>")


def _series(history: Sequence[Attribution]) -> list[tuple[str, str]]:
    """(series name, colour) for the trend chart: teams by total over the months, the rest grouped, then
    unattributed."""
    parts: dict[str, list[Decimal]] = {}
    for att in history:
        for t in att.teams:
            parts.setdefault(t.team, []).append(t.amount)
    ranked = sorted(parts, key=lambda name: (-sum_amounts(parts[name]), name))
    if len(ranked) > len(TEAM_PALETTE):
        named = ranked[: len(TEAM_PALETTE) - 1]
        series = [(name, TEAM_PALETTE[i]) for i, name in enumerate(named)]
        series.append((OTHER_TEAMS, OTHER_TEAMS_COLOR))
    else:
        series = [(name, TEAM_PALETTE[i]) for i, name in enumerate(ranked)]
    series.append((UNATTRIBUTED, UNATTRIBUTED_COLOR))
    return series


def _series_amounts(att: Attribution, series: Sequence[tuple[str, str]]) -> dict[str, Decimal]:
    named = {name for name, _ in series}
    out = {t.team: t.amount for t in att.teams if t.team in named}
    if OTHER_TEAMS in named:
        out[OTHER_TEAMS] = sum_amounts(t.amount for t in att.teams if t.team not in named)
    out[UNATTRIBUTED] = att.unattributed
    return out


def _chart_history(history: Sequence[Attribution], metric: str) -> str:
    """Stacked bars: spend per team (and unattributed, grey) per month, one ``<rect>`` per segment."""
    width, height = 1320, 420
    left, right, top, bottom = 78, 290, 34, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    series = _series(history)
    amounts = [_series_amounts(a, series) for a in history]
    stack_tops = [sum_amounts(v for v in am.values() if v > 0) for am in amounts]
    ticks = _nice_ticks(max(stack_tops, default=Decimal(0)))
    scale = ticks[-1]
    out = [_svg_open("history", width, height, f"{metric} per team and month")]
    out.append(f'<text class="axis-title" x="{left}" y="18">{_e(metric)} per month</text>')
    for tick in ticks:
        y = top + plot_h - _frac(tick, scale) * plot_h
        out.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{_px(y)}" y2="{_px(y)}"/>'
                   f'<text class="tick" x="{left - 8}" y="{_px(y + 4)}" text-anchor="end">{_e(compact(tick))}</text>')
    slot = plot_w / max(len(history), 1)
    bar_w = min(72.0, slot * 0.62)
    negative = False
    for i, (att, am) in enumerate(zip(history, amounts, strict=True)):
        x = left + slot * i + (slot - bar_w) / 2
        y = float(top + plot_h)
        out.append(f'<g class="bar" data-month="{_e(att.month)}">')
        for name, color in series:
            amount = am.get(name, Decimal(0))
            if amount < 0:
                negative = True
            if amount <= 0:
                continue
            h = _frac(amount, scale) * plot_h
            y -= h
            out.append(f'<rect class="seg" data-month="{_e(att.month)}" data-series="{_e(name)}" x="{_px(x)}" '
                       f'y="{_px(y)}" width="{_px(bar_w)}" height="{_px(h)}" fill="{color}">'
                       f'<title>{_e(name)}, {_e(att.month)}: {_e(exact(amount))}</title></rect>')
        out.append("</g>")
        out.append(f'<text class="bar-total" x="{_px(x + bar_w / 2)}" y="{_px(y - 6)}" text-anchor="middle">'
                   f'<title>{_e(att.month)} total: {_e(exact(att.total))}</title>{_e(compact(att.total))}</text>')
        out.append(f'<text class="tick" x="{_px(x + bar_w / 2)}" y="{top + plot_h + 20}" '
                   f'text-anchor="middle">{_e(att.month)}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    lx = left + plot_w + 30
    last = amounts[-1] if amounts else {}
    out.append(f'<text class="legend-title" x="{lx}" y="{top + 4}">Series (latest month)</text>')
    for j, (name, color) in enumerate(reversed(series)):  # legend top-down = stack top-down
        amount = last.get(name, Decimal(0))
        out.append(_legend_item(lx, top + 16 + j * 22, color, truncate(name, 22), f"{name}: {exact(amount)}",
                                compact(amount)))
    if negative:
        out.append(f'<text class="muted" x="{left}" y="{height - 4}">Negative amounts (credits) are not drawn.</text>')
    out.append("</svg>")
    return "".join(out)


def _chart_clusters(att: Attribution) -> str:
    """Horizontal stacked bars: the category split of the largest clusters, one ``<rect>`` per category."""
    shown = top_clusters(att)
    cats = [c for c in category_totals(att) if c != "shared"]
    row_h, label_w, amount_w, pad_top = 24, 330, 96, 44
    width = 1000
    height = pad_top + row_h * max(len(shown), 1) + 16
    bar_max = width - label_w - amount_w
    biggest = max((c.amount for _, c in shown), default=Decimal(0))
    out = [_svg_open("clusters", width, height, f"Category split of the top {len(shown)} clusters")]
    x = 0.0
    for cat in cats:  # legend on top
        out.append(_legend_item(x, 4, CATEGORY_COLORS.get(cat, EXTRA_CATEGORY_COLOR), cat, cat))
        x += 30 + 7.0 * len(cat)
    if not shown:
        out.append(f'<text class="muted" x="0" y="{pad_top + 14}">No cluster spend this month.</text>')
    for i, (team, c) in enumerate(shown):
        y = pad_top + i * row_h
        out.append(f'<g class="row" data-cluster="{_e(c.cluster)}">'
                   f'<text class="label" x="{label_w - 10}" y="{y + 15}" text-anchor="end">'
                   f'<title>{_e(c.cluster)} ({_e(team)})</title>{_e(truncate(c.cluster, 30))}'
                   f'<tspan class="muted"> \u00b7 {_e(truncate(team, 14))}</tspan></text>')
        bx = float(label_w)
        for cat in cats:
            amount = c.categories.get(cat, Decimal(0))
            if amount <= 0:
                continue
            w = _frac(amount, biggest) * bar_max
            out.append(f'<rect class="seg" data-cluster="{_e(c.cluster)}" data-category="{_e(cat)}" x="{_px(bx)}" '
                       f'y="{y + 3}" width="{_px(w)}" height="{row_h - 6}" '
                       f'fill="{CATEGORY_COLORS.get(cat, EXTRA_CATEGORY_COLOR)}">'
                       f'<title>{_e(c.cluster)}, {_e(cat)}: {_e(exact(amount))}</title></rect>')
            bx += w
        out.append(f'<text class="amount" x="{_px(bx + 6)}" y="{y + 15}">'
                   f'<title>{_e(c.cluster)}: {_e(exact(c.amount))}</title>{_e(money(c.amount))}</text></g>')
    out.append("</svg>")
    return "".join(out)


def _arc(cx: float, cy: float, r_out: float, r_in: float, a0: float, a1: float) -> str:
    """An SVG path for a donut segment between angles a0 and a1 (radians, clockwise from 12 o'clock)."""
    def pt(r: float, a: float) -> str:
        return f"{_px(cx + r * math.sin(a))} {_px(cy - r * math.cos(a))}"

    large = 1 if a1 - a0 > math.pi else 0
    return (f"M {pt(r_out, a0)} A {_px(r_out)} {_px(r_out)} 0 {large} 1 {pt(r_out, a1)} "
            f"L {pt(r_in, a1)} A {_px(r_in)} {_px(r_in)} 0 {large} 0 {pt(r_in, a0)} Z")


def _chart_categories(att: Attribution) -> str:
    """A donut of the month's spend per category, with a legend holding each amount and share."""
    totals = category_totals(att)
    positive = sum_amounts(v for v in totals.values() if v > 0)
    width, row_h, legend_top = 320, 22, 250
    height = legend_top + row_h * max(len(totals), 1)
    cx, cy, r_out, r_in = 160.0, 118.0, 104.0, 64.0
    out = [_svg_open("categories", width, height, "Spend per category")]
    angle = 0.0
    for cat, amount in totals.items():
        if amount <= 0:
            continue
        color = CATEGORY_COLORS.get(cat, EXTRA_CATEGORY_COLOR)
        title = f"<title>{_e(cat)}: {_e(exact(amount))} ({_e(pct(ratio(amount, att.total)))})</title>"
        sweep = _frac(amount, positive) * 2 * math.pi
        if sweep >= 2 * math.pi - 1e-9:  # one category: a full ring (an arc cannot close on itself)
            out.append(f'<circle class="seg" data-category="{_e(cat)}" cx="{_px(cx)}" cy="{_px(cy)}" '
                       f'r="{_px((r_out + r_in) / 2)}" fill="none" stroke="{color}" '
                       f'stroke-width="{_px(r_out - r_in)}">{title}</circle>')
        else:
            out.append(f'<path class="seg" data-category="{_e(cat)}" d="{_arc(cx, cy, r_out, r_in, angle, angle + sweep)}"'
                       f' fill="{color}">{title}</path>')
        angle += sweep
    if positive == 0:
        out.append(f'<circle cx="{_px(cx)}" cy="{_px(cy)}" r="{_px((r_out + r_in) / 2)}" fill="none" '
                   f'stroke="#e5e7eb" stroke-width="{_px(r_out - r_in)}"/>')
    out.append(f'<text class="donut-total" x="{_px(cx)}" y="{_px(cy + 2)}" text-anchor="middle">'
               f'{_e(compact(att.total))}</text>'
               f'<text class="muted" x="{_px(cx)}" y="{_px(cy + 20)}" text-anchor="middle">total</text>')
    for j, (cat, amount) in enumerate(totals.items()):  # the legend is a small table: category, amount, share
        y = legend_top + j * row_h
        out.append(f'<g class="legend-item"><title>{_e(cat)}: {_e(exact(amount))}</title>'
                   f'<rect x="8" y="{y}" width="12" height="12" rx="2" '
                   f'fill="{CATEGORY_COLORS.get(cat, EXTRA_CATEGORY_COLOR)}"/>'
                   f'<text x="28" y="{y + 10}">{_e(truncate(cat, 16))}</text>'
                   f'<text x="{width - 70}" y="{y + 10}" text-anchor="end">{_e(money(amount))}</text>'
                   f'<text class="muted" x="{width - 4}" y="{y + 10}" text-anchor="end">'
                   f"{_e(pct(ratio(amount, att.total)))}</text></g>")
    out.append("</svg>")
    return "".join(out)


# -------------------------------------------------------------------------------------------------------- page


def _table(headers: Sequence[tuple[str, bool]], rows: Iterable[Sequence[str]], *, cls: str = "",
           foot: Sequence[str] | None = None, empty: str = "None.") -> str:
    """An HTML table; ``headers`` are (label, numeric); cells are already-escaped HTML."""
    head = "".join(f'<th{" class=num" if num else ""}>{_e(h)}</th>' for h, num in headers)
    body = ["<tr>" + "".join(f'<td{" class=num" if num else ""}>{cell}</td>'
                             for (_, num), cell in zip(headers, row, strict=True)) + "</tr>"
            for row in rows]
    if not body:
        body.append(f'<tr><td class="muted" colspan="{len(headers)}">{_e(empty)}</td></tr>')
    tfoot = ""
    if foot is not None:
        tfoot = "<tfoot><tr>" + "".join(f'<td{" class=num" if num else ""}>{cell}</td>'
                                        for (_, num), cell in zip(headers, foot, strict=True)) + "</tr></tfoot>"
    return (f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>{tfoot}</table>')


def _delta_html(d: Decimal) -> str:
    cls = "up" if d > 0 else "down" if d < 0 else "muted"
    return f'<span class="{cls}">{_e(signed(d))}</span>'


def _card(label: str, value: str, note: str = "", cls: str = "") -> str:
    return (f'<div class="card {cls}"><div class="card-label">{_e(label)}</div>'
            f'<div class="card-value">{_e(value)}</div><div class="card-note">{_e(note)}</div></div>')


def _quota_cell(column: QuotaColumn, pool: PoolEvaluation) -> str:
    """One escaped cell of the quota table; a status is a badge whose class names it ("st st-breach")."""
    text = column.cell(pool)
    if column.kind == "status" and text:
        return f'<span class="{_e("st st-" + text.lower())}">{_e(text)}</span>'
    return _e(text)


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML document (inline CSS and SVG, no script, no external reference)."""
    cur, prev = data.current, data.previous
    history = data.trend()
    share_est = estimated_share(cur)
    share_unatt = ratio(cur.unattributed, cur.total)
    attributed = sum_amounts((cur.total, -cur.unattributed))
    title = f"dbcost report {data.month}"
    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light">',
        f"<title>{_e(title)}</title><style>\n{_css()}</style></head><body>",
        f"<header><h1>Database spend {_e(data.month)}</h1>"
        f'<div class="sub">{_e(cur.metric)} · data through {_e(iso(cur.through) or "-")} · '
        f"generated {_e(ts(data.generated_at))}"
        + (f" · services: {_e(', '.join(cur.services))}" if cur.services else "")
        + "</div></header>",
    ]

    vs_prev = ""
    if prev is not None:
        d = sum_amounts((cur.total, -prev.total))
        vs_prev = f"{signed(d)} ({signed_pct(change_pct(d, prev.total))}) vs {prev.month}"
    parts.append('<div class="cards">'
                 + _card("Total", money(cur.total), vs_prev)
                 + _card("Attributed to teams", money(attributed), pct(ratio(attributed, cur.total)))
                 + _card("Unattributed", money(cur.unattributed), pct(share_unatt),
                         "warn" if cur.unattributed > 0 else "")
                 + _card("Estimated (not final)", pct(share_est), money(cur.estimated_amount),
                         "warn" if share_est > 0 else "")
                 + _card("Shared, allocated", money(cur.allocated_shared), "spread over teams")
                 + _card("Quarantined records", f"{data.quarantined_total:,}", "not in these figures",
                         "warn" if data.quarantined_total else "")
                 + "</div>")
    if share_est > 0:
        parts.append(f'<div class="notice">{_e(pct(share_est))} of {_e(data.month)} '
                     f"({_e(money(cur.estimated_amount))}) is estimated: Cost Explorer has not finalised it, "
                     "so these figures can still change.</div>")
    if data.quarantined_total:
        parts.append(f'<div class="notice">{data.quarantined_total:,} record(s) failed validation and are '
                     "quarantined; their spend is not in this report (see Quarantine below).</div>")

    months = f"{history[0].month} to {history[-1].month}" if len(history) > 1 else history[0].month
    parts.append(f'<figure id="trend"><figcaption>Spend per team per month, {_e(months)} '
                 '<span class="muted">(stacked; unattributed in grey; hover a segment for its exact amount)'
                 f"</span></figcaption>{_chart_history(history, cur.metric)}</figure>")
    parts.append('<div class="grid2">'
                 f'<figure id="clusters-chart"><figcaption>Category split of the top {TOP_CLUSTERS} clusters, '
                 f'{_e(data.month)} <span class="muted">(bar length = cluster spend)</span></figcaption>'
                 f"{_chart_clusters(cur)}</figure>"
                 f'<figure id="categories-chart"><figcaption>Spend per category, {_e(data.month)}</figcaption>'
                 f"{_chart_categories(cur)}</figure>"
                 "</div>")

    # teams
    prev_teams = team_amounts(prev) if prev else {}
    headers: list[tuple[str, bool]] = [("Team", False), ("Amount", True), ("Share", True), ("Clusters", True),
                                       ("Shared", True)]
    if prev:
        headers += [(prev.month, True), ("Δ", True)]
    rows = []
    team_rows = [*sorted_teams(cur), (UNATTRIBUTED, cur.unattributed)]
    for name, amount in team_rows:
        team = cur.team(name) if name != UNATTRIBUTED else None
        n_clusters = (sum(1 for c in team.clusters if c.cluster != SHARED_CLUSTER) if team
                      else len(cur.unattributed_clusters))
        row = [f'<span class="muted">{_e(name)}</span>' if team is None else _e(name),
               _e(money(amount)), _e(pct(ratio(amount, cur.total))), str(n_clusters),
               _e(money(shared_of(cur, name)))]
        if prev:
            p = prev_teams.get(name, Decimal(0))
            row += [_e(money(p)), _delta_html(sum_amounts((amount, -p)))]
        rows.append(row)
    foot = ["Total", _e(money(cur.total)), _e(pct(Decimal(1) if cur.total else Decimal(0))), "",
            _e(money(cur.allocated_shared))]
    if prev:
        foot += [_e(money(prev.total)), _delta_html(sum_amounts((cur.total, -prev.total)))]
    parts.append(f'<section id="teams"><h2>Spend per team</h2>{_table(headers, rows, foot=foot)}</section>')

    # clusters
    cats = categories_present(cur)
    headers = [("Cluster", False), ("Team", False), ("Owner from", False), ("Families", False),
               *[(c, True) for c in cats], ("Total", True)]
    rows = []
    for team_name, c in sorted(owned_clusters(cur), key=lambda tc: (-tc[1].amount, tc[1].cluster, tc[0])):
        rows.append([f'<span class="wrap">{_e(c.cluster)}</span>', _e(team_name), _e(c.source),
                     _e(", ".join(c.families)),
                     *[_e(money(c.categories.get(cat, Decimal(0)))) for cat in cats], _e(money(c.amount))])
    note = (f'<p class="muted">Allocated shared spend ({_e(money(cur.allocated_shared))}) is carried per team '
            "(column Shared above), not per cluster.</p>") if cur.allocated_shared else ""
    parts.append(f'<section id="clusters"><h2>Spend per cluster and category</h2>{_table(headers, rows)}{note}'
                 "</section>")

    # movers
    if prev is not None:
        headers = [("Kind", False), ("Name", False), ("Team", False), (prev.month, True), (data.month, True),
                   ("Δ", True), ("Δ %", True)]
        rows = [[_e(m.kind), f'<span class="wrap">{_e(m.name)}</span>', _e(m.team), _e(money(m.previous)),
                 _e(money(m.current)), _delta_html(m.delta), _e(signed_pct(m.delta_pct))]
                for m in movers(cur, prev)]
        parts.append(f'<section id="movers"><h2>Largest movers, {_e(prev.month)} → {_e(data.month)}</h2>'
                     f'{_table(headers, rows, empty="No change.")}</section>')
    else:
        parts.append('<section id="movers"><h2>Largest movers</h2>'
                     '<p class="muted">No previous month to compare with.</p></section>')

    # unattributed + unclassified
    headers = [("Cluster / resource", False), ("Families", False), ("Amount", True)]
    rows = [[f'<span class="wrap">{_e(c.cluster)}</span>', _e(", ".join(c.families)), _e(money(c.amount))]
            for c in sorted(cur.unattributed_clusters, key=lambda c: (-c.amount, c.cluster))]
    unatt = _table(headers, rows, foot=["Unattributed", "", _e(money(cur.unattributed))],
                   empty="All spend is attributed.")
    headers = [("Service", False), ("Usage type", False), ("Amount", True)]
    rows = [[_e(u.service), f'<span class="wrap">{_e(u.usage_type)}</span>', _e(money(u.amount))]
            for u in cur.unclassified_usage_types]
    uncl = _table(headers, rows, empty="Every usage type is classified.")
    parts.append(f'<section id="unattributed"><h2>Unattributed spend: {_e(money(cur.unattributed))} '
                 f'<span class="muted">({_e(pct(share_unatt))})</span></h2>{unatt}'
                 f'<h2 style="margin-top:16px">Unclassified usage types <span class="muted">(counted as '
                 f"category other)</span></h2>{uncl}</section>")

    if cur.business_units:
        headers = [("Business unit", False), ("Amount", True), ("Share", True)]
        rows = [[_e(name), _e(money(amount)), _e(pct(ratio(amount, cur.total)))]
                for name, amount in business_units(cur)]
        parts.append('<section id="business-units"><h2>Spend per business unit <span class="muted">(linked '
                     f"accounts)</span></h2>{_table(headers, rows)}</section>")

    # quarantine + freshness
    headers = [("Reason", False), ("Records", True)]
    rows = [[f'<span class="wrap">{_e(r)}</span>', f"{n:,}"] for r, n in data.quarantined_by_reason]
    parts.append(f'<section id="quarantine"><h2>Quarantined records: {data.quarantined_total:,}</h2>'
                 f'{_table(headers, rows, empty="Nothing quarantined.")}</section>')
    headers = [("Target", False), ("Dataset", False), ("Last success", False), ("Age", False), ("Through", False)]
    rows = [[_e(f.target), _e(f.dataset_label), _e(ts(f.last_success)), _e(age(data.generated_at, f.last_success)),
             _e(iso(f.through) or "-")] for f in data.freshness]
    parts.append(f'<section id="freshness"><h2>Data freshness</h2>'
                 f'{_table(headers, rows, empty="No sync recorded.")}</section>')

    # quota
    if data.quota is not None and data.quota.pools:
        columns = quota_columns(data.quota)
        rows = [[_quota_cell(column, pool) for column in columns] for pool in data.quota.pools]
        parts.append(f'<section id="quota"><h2>Quota</h2>'
                     f"{_table([(c.heading, c.kind == 'amount') for c in columns], rows)}</section>")

    # advice
    if data.advice is None:
        parts.append('<section id="advice"><h2>Advice</h2><p class="muted">No advisories stored for '
                     f"{_e(data.month)}: run <code>dbcost advise --month {_e(data.month)}</code>.</p></section>")
    else:
        advice = data.advice
        headers = [("Savings/month", True), ("Kind", False), ("Cluster", False), ("Team", False), ("Region", False),
                   ("Action", False)]
        rows = [[_e(money(a.savings)), _e(a.kind), f'<span class="wrap">{_e(a.cluster or "(untagged)")}</span>',
                 _e(a.team or UNATTRIBUTED), _e(a.region), f'<span class="wrap">{_e(a.action)}</span>']
                for a in top_advisories(advice)]
        top = _table(headers, rows, empty="No advisory: nothing to right-size this month.")
        rows = [[_e(team), str(n), _e(money(savings))] for team, n, savings in advice.by_team()]
        per_team = _table([("Team", False), ("Advisories", True), ("Savings/month", True)], rows,
                          foot=["Total", str(len(advice.advisories)), _e(money(advice.total_savings))],
                          empty="No advisory.")
        parts.append(f'<section id="advice"><h2>Advice: {len(advice.advisories)} advisories, estimated savings '
                     f'{_e(money(advice.total_savings))}/month</h2>{top}'
                     f'<h2 style="margin-top:16px">Advice per team</h2>{per_team}</section>')

    parts.append(f"<footer>dbcost · {_e(title)} · amounts in {_e(cur.metric)}, shown with two decimals "
                 "(hover a chart segment for the exact amount; the JSON report keeps full precision).</footer>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
