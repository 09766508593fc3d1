"""The report's charts as inline SVG text: the trend per team, the daily spend of the month, the budgets,
the category split of the largest clusters and a category donut.

Every value that comes from data (team and cluster names come from user tags) goes through
:func:`html.escape`. Money stays ``Decimal``: the only floats are pixel coordinates (a *ratio* of two
amounts places a rectangle); every amount printed as text (ticks, labels, tooltips) is formatted from the
Decimal, with its currency (:class:`~dbcost.report._format.Money`). Colours are fixed per series
(:data:`TEAM_PALETTE`, :data:`UNATTRIBUTED_COLOR`, :data:`CATEGORY_COLORS`, :data:`STATUS_COLORS`), so the
same team, category or status looks the same in every chart. Each chart is one ``<svg class="chart"
data-chart=NAME>`` whose drawn segments carry ``data-`` attributes and a ``<title>`` with the exact amount.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from decimal import ROUND_CEILING, Decimal, localcontext
from typing import Final

from dbcost.attribution.model import UNATTRIBUTED, Attribution
from dbcost.money import sum_amounts
from dbcost.quota import QuotaReport
from dbcost.report._format import Money, iso, pct, truncate
from dbcost.report.data import (
    RATIO_CONTEXT,
    ReportData,
    category_totals,
    daily_by_series,
    daily_totals,
    data_end,
    ratio,
    top_clusters,
)

__all__ = [
    "CATEGORY_COLORS",
    "EXTRA_CATEGORY_COLOR",
    "OTHER_TEAMS",
    "OTHER_TEAMS_COLOR",
    "STATUS_COLORS",
    "TEAM_PALETTE",
    "UNATTRIBUTED_COLOR",
    "chart_budgets",
    "chart_categories",
    "chart_clusters",
    "chart_daily",
    "chart_history",
    "series_of",
]

#: Colours of the team series in the trend chart, in order of team size (Tableau 10 without its grey).
TEAM_PALETTE: Final = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                       "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#2f8f9d")
#: Unattributed spend is always its own grey series: visible, never mistaken for a team.
UNATTRIBUTED_COLOR: Final = "#9e9e9e"
#: Teams beyond the palette are drawn together as one series with this name and colour.
OTHER_TEAMS: Final = "other teams"
OTHER_TEAMS_COLOR: Final = "#c9c2b8"
#: One colour per quota status (the badges' colours), for the budget bars.
STATUS_COLORS: Final[Mapping[str, str]] = {"OK": "#12b76a", "WARN": "#f79009", "BREACH": "#d92d20"}
#: One fixed colour per category (Okabe-Ito, colour-blind safe), the same in every chart.
CATEGORY_COLORS: Final[Mapping[str, str]] = {
    "compute": "#0072b2", "storage": "#e69f00", "io": "#d55e00", "backup": "#009e73",
    "data_transfer": "#56b4e9", "other": "#f0e442", "shared": "#cc79a7",
}
#: A category outside CATEGORY_COLORS (one a rules file adds) is drawn in this grey.
EXTRA_CATEGORY_COLOR: Final = "#7f7f7f"
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


def series_of(history: Sequence[Attribution]) -> list[tuple[str, str]]:
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


def chart_history(history: Sequence[Attribution], metric: str, fm: Money) -> str:
    """Stacked bars: spend per team (and unattributed, grey) per month, one ``<rect>`` per segment."""
    width, height = 1320, 420
    left, right, top, bottom = 78, 290, 34, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    series = series_of(history)
    amounts = [_series_amounts(a, series) for a in history]
    stack_tops = [sum_amounts(v for v in am.values() if v > 0) for am in amounts]
    ticks = _nice_ticks(max(stack_tops, default=Decimal(0)))
    scale = ticks[-1]
    out = [_svg_open("history", width, height, f"{metric} per team and month")]
    out.append(f'<text class="axis-title" x="{left}" y="18">{_e(metric)} per month</text>')
    for tick in ticks:
        y = top + plot_h - _frac(tick, scale) * plot_h
        out.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{_px(y)}" y2="{_px(y)}"/>'
                   f'<text class="tick" x="{left - 8}" y="{_px(y + 4)}" text-anchor="end">{_e(fm.compact(tick))}</text>')
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
                       f'<title>{_e(name)}, {_e(att.month)}: {_e(fm.exact(amount))}</title></rect>')
        out.append("</g>")
        out.append(f'<text class="bar-total" x="{_px(x + bar_w / 2)}" y="{_px(y - 6)}" text-anchor="middle">'
                   f'<title>{_e(att.month)} total: {_e(fm.exact(att.total))}</title>{_e(fm.compact(att.total))}</text>')
        out.append(f'<text class="tick" x="{_px(x + bar_w / 2)}" y="{top + plot_h + 20}" '
                   f'text-anchor="middle">{_e(att.month)}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    lx = left + plot_w + 30
    last = amounts[-1] if amounts else {}
    out.append(f'<text class="legend-title" x="{lx}" y="{top + 4}">Series (latest month)</text>')
    for j, (name, color) in enumerate(reversed(series)):  # legend top-down = stack top-down
        amount = last.get(name, Decimal(0))
        out.append(_legend_item(lx, top + 16 + j * 22, color, truncate(name, 22), f"{name}: {fm.exact(amount)}",
                                fm.compact(amount)))
    if negative:
        out.append(f'<text class="muted" x="{left}" y="{height - 4}">Negative amounts (credits) are not drawn.</text>')
    out.append("</svg>")
    return "".join(out)


def chart_clusters(att: Attribution, fm: Money) -> str:
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
                       f'<title>{_e(c.cluster)}, {_e(cat)}: {_e(fm.exact(amount))}</title></rect>')
            bx += w
        out.append(f'<text class="amount" x="{_px(bx + 6)}" y="{y + 15}">'
                   f'<title>{_e(c.cluster)}: {_e(fm.exact(c.amount))}</title>{_e(fm.money(c.amount))}</text></g>')
    out.append("</svg>")
    return "".join(out)


def _arc(cx: float, cy: float, r_out: float, r_in: float, a0: float, a1: float) -> str:
    """An SVG path for a donut segment between angles a0 and a1 (radians, clockwise from 12 o'clock)."""
    def pt(r: float, a: float) -> str:
        return f"{_px(cx + r * math.sin(a))} {_px(cy - r * math.cos(a))}"

    large = 1 if a1 - a0 > math.pi else 0
    return (f"M {pt(r_out, a0)} A {_px(r_out)} {_px(r_out)} 0 {large} 1 {pt(r_out, a1)} "
            f"L {pt(r_in, a1)} A {_px(r_in)} {_px(r_in)} 0 {large} 0 {pt(r_in, a0)} Z")


def chart_categories(att: Attribution, fm: Money) -> str:
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
        title = f"<title>{_e(cat)}: {_e(fm.exact(amount))} ({_e(pct(ratio(amount, att.total)))})</title>"
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
               f'{_e(fm.compact(att.total))}</text>'
               f'<text class="muted" x="{_px(cx)}" y="{_px(cy + 20)}" text-anchor="middle">total</text>')
    for j, (cat, amount) in enumerate(totals.items()):  # the legend is a small table: category, amount, share
        y = legend_top + j * row_h
        out.append(f'<g class="legend-item"><title>{_e(cat)}: {_e(fm.exact(amount))}</title>'
                   f'<rect x="8" y="{y}" width="12" height="12" rx="2" '
                   f'fill="{CATEGORY_COLORS.get(cat, EXTRA_CATEGORY_COLOR)}"/>'
                   f'<text x="28" y="{y + 10}">{_e(truncate(cat, 16))}</text>'
                   f'<text x="{width - 70}" y="{y + 10}" text-anchor="end">{_e(fm.money(amount))}</text>'
                   f'<text class="muted" x="{width - 4}" y="{y + 10}" text-anchor="end">'
                   f"{_e(pct(ratio(amount, att.total)))}</text></g>")
    out.append("</svg>")
    return "".join(out)




def chart_budgets(quota: QuotaReport, fm: Money) -> str:
    """One bar per pool: the actual (in the status colour), the run-rate forecast beyond it (lighter), the budget
    (a dark mark on a grey track); beside it the amounts, the shares of the budget and the breach date.
    Each row is scaled to its own budget or forecast, whichever is larger, so every budget reads alike."""
    pools = quota.pools
    row_h, label_w, bar_w, pad_top = 34, 250, 420, 26
    width = 1320
    height = pad_top + row_h * max(len(pools), 1) + 8
    out = [_svg_open("budgets", width, height, f"Budgets of {quota.month}: actual, forecast and budget per pool")]
    out.append(f'<text class="axis-title" x="0" y="14">Pool \u00b7 team</text>'
               f'<text class="axis-title" x="{label_w}" y="14">actual \u25a0 forecast \u25a1 budget |</text>'
               f'<text class="axis-title" x="{label_w + bar_w + 24}" y="14">data through {_e(iso(quota.data_end))}'
               f" ({quota.days_in_month}-day month)</text>")
    if not pools:
        out.append(f'<text class="muted" x="0" y="{pad_top + 16}">No pool in the policy.</text>')
    for i, p in enumerate(pools):
        y = pad_top + i * row_h
        color = STATUS_COLORS.get(p.status, "#667085")
        scale = max(p.budget, p.forecast, p.actual, Decimal(1))
        budget_x = label_w + _frac(p.budget, scale) * bar_w
        actual_w = _frac(p.actual, scale) * bar_w
        forecast_w = _frac(max(p.forecast - p.actual, Decimal(0)), scale) * bar_w
        out.append(f'<g class="pool" data-pool="{_e(p.pool)}" data-status="{_e(p.status)}">'
                   f'<text class="label" x="0" y="{y + 17}"><title>{_e(p.pool)} ({_e(p.team)})</title>'
                   f'{_e(truncate(p.pool, 22))}'
                   + (f'<tspan class="muted"> \u00b7 {_e(truncate(p.team, 16))}</tspan>' if p.team != p.pool else "")
                   + "</text>"
                   f'<text class="status" x="{label_w - 12}" y="{y + 17}" text-anchor="end" fill="{color}">'
                   f"<title>{_e('; '.join(p.reasons) or p.status)}</title>{_e(p.status)}</text>"
                   f'<rect class="track" x="{label_w}" y="{y + 6}" width="{_px(budget_x - label_w)}" height="16" rx="3"/>'
                   f'<rect class="actual" data-pool="{_e(p.pool)}" x="{label_w}" y="{y + 6}" width="{_px(actual_w)}" '
                   f'height="16" rx="3" fill="{color}"><title>{_e(p.pool)} actual: {_e(fm.exact(p.actual))}</title></rect>'
                   f'<rect class="forecast" data-pool="{_e(p.pool)}" x="{_px(label_w + actual_w)}" y="{y + 6}" '
                   f'width="{_px(forecast_w)}" height="16" fill="{color}" fill-opacity="0.3" stroke="{color}">'
                   f"<title>{_e(p.pool)} forecast: {_e(fm.exact(p.forecast))}</title></rect>"
                   f'<line class="budget" data-pool="{_e(p.pool)}" x1="{_px(budget_x)}" x2="{_px(budget_x)}" '
                   f'y1="{y + 2}" y2="{y + 26}"><title>{_e(p.pool)} budget: {_e(fm.exact(p.budget))}</title></line>')
        used = f" ({p.pct_of_budget:.1f} %)" if p.pct_of_budget is not None else ""
        fused = f" ({p.forecast_pct_of_budget:.1f} %)" if p.forecast_pct_of_budget is not None else ""
        out.append(f'<text class="amount" x="{label_w + bar_w + 24}" y="{y + 17}">{_e(fm.money(p.actual))}{_e(used)} '
                   f'<tspan class="muted">of {_e(fm.money(p.budget))} \u00b7 forecast </tspan>'
                   f"{_e(fm.money(p.forecast))}{_e(fused)}"
                   + (f'<tspan class="breach" dx="8">breach {_e(iso(p.projected_breach_date))}</tspan>'
                      if p.projected_breach_date else
                      f'<tspan class="muted" dx="8">{_e(truncate(p.reasons[0], 30))}</tspan>'
                      if p.status != "OK" and p.reasons else "")
                   + "</text></g>")
    out.append("</svg>")
    return "".join(out)


def chart_daily(data: ReportData, series: Sequence[tuple[str, str]], fm: Money) -> str:
    """Stacked bars of the month's spend per day and team (the trend's series and colours), with the
    previous month's daily total on the same day numbers as a dashed line; days without data yet are empty."""
    att, prev = data.current, data.previous
    width, height = 1320, 300
    left, right, top, bottom = 78, 290, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    named = {name for name, _ in series}
    mapping = {t.team: (t.team if t.team in named else OTHER_TEAMS) for t in att.teams}
    mapping[UNATTRIBUTED] = UNATTRIBUTED
    mapping[""] = OTHER_TEAMS
    days = daily_by_series(att, mapping)
    totals = {d: sum_amounts(v for v in by.values() if v > 0) for d, by in days.items()}
    prev_totals = daily_totals(prev) if prev is not None else {}
    prev_by_dom = {d.day: v for d, v in prev_totals.items()}
    end = data_end(att)
    top_value = max([*totals.values(), *(v for v in prev_by_dom.values()), Decimal(0)])
    ticks = _nice_ticks(top_value)
    scale = ticks[-1]
    out = [_svg_open("daily", width, height, f"{att.metric} per day of {att.month} and team")]
    out.append(f'<text class="axis-title" x="{left}" y="16">{_e(att.metric)} per day</text>')
    for tick in ticks:
        y = top + plot_h - _frac(tick, scale) * plot_h
        out.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{_px(y)}" y2="{_px(y)}"/>'
                   f'<text class="tick" x="{left - 8}" y="{_px(y + 4)}" text-anchor="end">{_e(fm.compact(tick))}</text>')
    slot = plot_w / max(len(days), 1)
    bar_w = max(2.0, slot * 0.72)
    points: list[str] = []
    for i, (day, by) in enumerate(days.items()):
        x = left + slot * i + (slot - bar_w) / 2
        y = float(top + plot_h)
        out.append(f'<g class="day" data-day="{day.isoformat()}">')
        for name, color in series:
            amount = by.get(name, Decimal(0))
            if amount <= 0:
                continue
            h = _frac(amount, scale) * plot_h
            y -= h
            out.append(f'<rect class="seg" data-day="{day.isoformat()}" data-series="{_e(name)}" x="{_px(x)}" '
                       f'y="{_px(y)}" width="{_px(bar_w)}" height="{_px(h)}" fill="{color}">'
                       f"<title>{_e(name)}, {day.isoformat()}: {_e(fm.exact(amount))}</title></rect>")
        out.append("</g>")
        if day.day in prev_by_dom:
            py = top + plot_h - _frac(prev_by_dom[day.day], scale) * plot_h
            points.append(f"{_px(x + bar_w / 2)},{_px(py)}")
        if day.day == 1 or day.day % 5 == 0:
            muted = " muted" if day >= end else ""
            out.append(f'<text class="tick{muted}" x="{_px(x + bar_w / 2)}" y="{top + plot_h + 18}" '
                       f'text-anchor="middle">{day.day}</text>')
    if points and prev is not None:
        out.append(f'<polyline class="previous" points="{" ".join(points)}"><title>{_e(prev.month)} per day, '
                   f"on the same day numbers</title></polyline>")
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    lx = left + plot_w + 30
    out.append(f'<text class="legend-title" x="{lx}" y="{top + 4}">Series (this month)</text>')
    month_amounts: dict[str, Decimal] = {}
    for by in days.values():
        for name, v in by.items():
            month_amounts[name] = month_amounts.get(name, Decimal(0)) + v
    shown = [(n, c) for n, c in series if month_amounts.get(n, Decimal(0)) != 0]
    for j, (name, color) in enumerate(reversed(shown)):
        amount = month_amounts.get(name, Decimal(0))
        out.append(_legend_item(lx, top + 16 + j * 20, color, truncate(name, 22), f"{name}: {fm.exact(amount)}",
                                fm.compact(amount)))
    if prev is not None:
        y = top + 16 + len(shown) * 20 + 6
        out.append(f'<g class="legend-item"><line class="previous" x1="{lx}" x2="{lx + 14}" y1="{y + 6}" '
                   f'y2="{y + 6}"/><text x="{lx + 18}" y="{y + 10}">{_e(prev.month)}, same days</text></g>')
    out.append("</svg>")
    return "".join(out)
