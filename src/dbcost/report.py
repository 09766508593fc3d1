"""The month report: spend per team, cluster and category as rich tables, JSON, or one self-contained HTML file.

Input is :class:`ReportData` (one month's :class:`~dbcost.attribution.model.Attribution`, the previous month's
for movers, the months before it for the trend, quarantine counts, data freshness, an optional quota file).
Three renderers read it and nothing else:

* :func:`render_json` -- every amount a decimal *string* at full precision (``dbcost.money.fmt``);
* :func:`render_table` -- rich tables; amounts shown with two decimals (``format(d, ",.2f")``);
* :func:`render_html` -- ONE file that opens offline: inline CSS, charts as inline SVG drawn here, no script,
  no font, no image, no stylesheet fetched from anywhere. Every value that comes from data (team and cluster
  names come from user tags) goes through :func:`html.escape`.

Money stays ``Decimal``. The only floats are pixel coordinates: a *ratio* of two amounts becomes a float to
place a rectangle; every amount printed as text (axis ticks, labels, tooltips) is formatted from the Decimal.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import TYPE_CHECKING, Any, Literal

from dbcost.attribution.model import CATEGORY_ORDER, SHARED_CLUSTER, UNATTRIBUTED, Attribution, ClusterSpend
from dbcost.money import fmt, sum_amounts

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "CATEGORY_COLORS",
    "OTHER_TEAMS",
    "TEAM_PALETTE",
    "TOP_CLUSTERS",
    "UNATTRIBUTED_COLOR",
    "Freshness",
    "Mover",
    "ReportData",
    "category_totals",
    "estimated_share",
    "movers",
    "render_html",
    "render_json",
    "render_table",
]

#: Colours of the team series in the trend chart, in order of team size (Tableau 10 without its grey).
TEAM_PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#2f8f9d")
#: Unattributed spend is always its own grey series: visible, never mistaken for a team.
UNATTRIBUTED_COLOR = "#9e9e9e"
#: Teams beyond the palette are drawn together as one series with this name and colour.
OTHER_TEAMS = "other teams"
OTHER_TEAMS_COLOR = "#c9c2b8"
#: One fixed colour per category (Okabe-Ito, colour-blind safe), the same in every chart.
CATEGORY_COLORS: Mapping[str, str] = {
    "compute": "#0072b2", "storage": "#e69f00", "io": "#d55e00", "backup": "#009e73",
    "data_transfer": "#56b4e9", "other": "#f0e442", "shared": "#cc79a7",
}
EXTRA_CATEGORY_COLOR = "#7f7f7f"
#: How many clusters the cluster chart and the table's cluster list show.
TOP_CLUSTERS = 15

_SHARE_QUANTUM = Decimal("0.000001")  # shares are ratios (not money): six places, 0.0001 %
_PCT_QUANTUM = Decimal("0.01")
# Room for any ratio of store-sized amounts (38 digits) before quantizing; no trap: ratios may be inexact.
_RATIO_CTX = Context(prec=80)


# ----------------------------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Freshness:
    """How current one target's data is: the last successful sync and the last day it covers."""

    target: str
    dataset_label: str
    last_success: dt.datetime | None
    through: dt.date | None


@dataclass(frozen=True)
class Mover:
    """One team's or cluster's change against the previous month.

    ``delta_pct`` is ``delta / |previous|`` in percent (two places), ``None`` when ``previous`` is zero (new).
    ``team`` is the owner of a cluster (this month's, or last month's if it is gone); for a team, its name.
    """

    name: str
    kind: Literal["team", "cluster"]
    previous: Decimal
    current: Decimal
    delta: Decimal
    delta_pct: Decimal | None
    team: str


@dataclass
class ReportData:
    """Everything one report shows. ``history`` is oldest first and includes ``current`` (may be just it)."""

    month: str
    current: Attribution
    previous: Attribution | None
    history: list[Attribution]
    quarantined_total: int
    quarantined_by_reason: list[tuple[str, int]]
    freshness: list[Freshness]
    generated_at: dt.datetime
    quota: dict[str, Any] | None = None


# ------------------------------------------------------------------------------------------ derived figures


def _ratio(part: Decimal, whole: Decimal, quantum: Decimal = _SHARE_QUANTUM) -> Decimal:
    """``part / whole`` rounded half-even to ``quantum``; ``0`` when ``whole`` is zero."""
    if whole == 0:
        return Decimal(0).quantize(quantum)
    with localcontext(_RATIO_CTX):
        return (part / whole).quantize(quantum, rounding=ROUND_HALF_EVEN)


def estimated_share(current: Attribution) -> Decimal:
    """The share of the month's total that is still estimated (``estimated_amount / total``), 0 for no spend.

    A ratio, rounded half-even to six decimal places (0.0001 %).
    """
    return _ratio(current.estimated_amount, current.total)


def _team_amounts(att: Attribution) -> dict[str, Decimal]:
    out = {t.team: t.amount for t in att.teams}
    if att.unattributed != 0 or att.unattributed_clusters:
        out[UNATTRIBUTED] = att.unattributed
    return out


def _clusters(att: Attribution) -> list[tuple[str, ClusterSpend]]:
    """Every real cluster with its owner (unattributed clusters under UNATTRIBUTED); not the shared pool."""
    out = [(t.team, c) for t in att.teams for c in t.clusters if c.cluster != SHARED_CLUSTER]
    out.extend((UNATTRIBUTED, c) for c in att.unattributed_clusters)
    return out


def _cluster_amounts(att: Attribution) -> tuple[dict[str, Decimal], dict[str, str]]:
    """Cluster name -> amount (summed by name, so a cluster that changed owner is one cluster), and its owner."""
    parts: dict[str, list[Decimal]] = {}
    owner: dict[str, str] = {}
    for team, c in _clusters(att):
        parts.setdefault(c.cluster, []).append(c.amount)
        owner.setdefault(c.cluster, team)
    return {name: sum_amounts(v) for name, v in parts.items()}, owner


def _mover_key(m: Mover) -> tuple[Decimal, str, str]:
    return (-abs(m.delta), m.name, m.kind)


def _diff(prev: Mapping[str, Decimal], cur: Mapping[str, Decimal], kind: Literal["team", "cluster"],
          owners: Mapping[str, str]) -> list[Mover]:
    out: list[Mover] = []
    for name in prev.keys() | cur.keys():
        p = prev.get(name, Decimal(0))
        c = cur.get(name, Decimal(0))
        delta = sum_amounts((c, -p))
        if delta == 0:
            continue
        pct = None if p == 0 else _ratio(delta * 100, abs(p), _PCT_QUANTUM)
        out.append(Mover(name, kind, p, c, delta, pct, owners.get(name, name)))
    out.sort(key=_mover_key)
    return out


def movers(current: Attribution, previous: Attribution | None, top: int = 10) -> list[Mover]:
    """The largest changes against the previous month: up to ``top`` teams and up to ``top`` clusters.

    Teams include the unattributed pool; clusters are real clusters (unattributed ones too), summed by name,
    without the per-team shared pseudo-cluster. Unchanged ones are left out. The merged list is sorted by
    absolute delta, largest first, ties by name then kind. No previous month: no movers.
    """
    if previous is None:
        return []
    teams = _diff(_team_amounts(previous), _team_amounts(current), "team", {})[:top]
    cur_clusters, cur_owner = _cluster_amounts(current)
    prev_clusters, prev_owner = _cluster_amounts(previous)
    clusters = _diff(prev_clusters, cur_clusters, "cluster", {**prev_owner, **cur_owner})[:top]
    return sorted(teams + clusters, key=_mover_key)


def category_totals(att: Attribution) -> dict[str, Decimal]:
    """Spend per category over every team and unattributed cluster (shared included), in CATEGORY_ORDER.

    The values sum to ``att.total`` exactly when the attribution's invariants hold.
    """
    parts: dict[str, list[Decimal]] = {}
    clusters = [c for t in att.teams for c in t.clusters] + list(att.unattributed_clusters)
    for c in clusters:
        for cat, amount in c.categories.items():
            parts.setdefault(cat, []).append(amount)
    order = [c for c in CATEGORY_ORDER if c in parts] + sorted(parts.keys() - set(CATEGORY_ORDER))
    return {cat: sum_amounts(parts[cat]) for cat in order}


def _categories_present(att: Attribution) -> list[str]:
    return [c for c, v in category_totals(att).items() if v != 0 and c != "shared"]


def _sorted_teams(att: Attribution) -> list[tuple[str, Decimal]]:
    return sorted(((t.team, t.amount) for t in att.teams), key=lambda x: (-x[1], x[0]))


def _top_clusters(att: Attribution, n: int = TOP_CLUSTERS) -> list[tuple[str, ClusterSpend]]:
    return sorted(_clusters(att), key=lambda tc: (-tc[1].amount, tc[1].cluster, tc[0]))[:n]


def _history(data: ReportData) -> list[Attribution]:
    """``data.history`` by month, with ``data.current`` standing for its own month (added if missing)."""
    by_month = {a.month: a for a in data.history}
    by_month[data.current.month] = data.current
    return [by_month[m] for m in sorted(by_month)]


def _business_units(att: Attribution) -> list[tuple[str, Decimal]]:
    """Spend per business unit of the linked accounts, largest first (empty when none are mapped)."""
    return sorted(att.business_units.items(), key=lambda kv: (-kv[1], kv[0]))


def _shared_of(att: Attribution, team: str) -> Decimal:
    t = att.team(team)
    if t is None:
        return Decimal(0)
    return sum_amounts(c.amount for c in t.clusters if c.cluster == SHARED_CLUSTER)


# ---------------------------------------------------------------------------------------------------- JSON


def _jsonable(value: Any) -> Any:
    """Decimals as decimal strings, dates as ISO strings, containers recursively; floats are refused."""
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        # a float amount in a quota file has already lost its exact value; keep its shortest repr as text
        return repr(value)
    return value


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def render_json(data: ReportData) -> dict[str, Any]:
    """The report as plain JSON data: every amount and share a decimal string, counts as integers."""
    cur, prev = data.current, data.previous
    prev_teams = _team_amounts(prev) if prev else {}
    teams = []
    for name, amount in _sorted_teams(cur):
        team = cur.team(name)
        assert team is not None
        clusters = [{**c.to_json(), "share": fmt(_ratio(c.amount, cur.total))}
                    for c in sorted(team.clusters, key=lambda c: (-c.amount, c.cluster))]
        p = prev_teams.get(name) if prev else None
        teams.append({
            "team": name,
            "amount": fmt(amount),
            "share": fmt(_ratio(amount, cur.total)),
            "previous": fmt(p if p is not None else Decimal(0)) if prev else None,
            "shared": fmt(_shared_of(cur, name)),
            "clusters": clusters,
        })
    return {
        "month": data.month,
        "metric": cur.metric,
        "generated_at": data.generated_at.isoformat(),
        "through": _iso(cur.through),
        "total": fmt(cur.total),
        "attributed": fmt(sum_amounts((cur.total, -cur.unattributed))),
        "unattributed": fmt(cur.unattributed),
        "unattributed_share": fmt(_ratio(cur.unattributed, cur.total)),
        "allocated_shared": fmt(cur.allocated_shared),
        "estimated": fmt(cur.estimated_amount),
        "estimated_share": fmt(estimated_share(cur)),
        "previous": {"month": prev.month, "total": fmt(prev.total)} if prev else None,
        "teams": teams,
        "unattributed_clusters": [c.to_json() for c in sorted(cur.unattributed_clusters,
                                                               key=lambda c: (-c.amount, c.cluster))],
        "categories": {cat: fmt(v) for cat, v in category_totals(cur).items()},
        "movers": [
            {"name": m.name, "kind": m.kind, "team": m.team, "previous": fmt(m.previous), "current": fmt(m.current),
             "delta": fmt(m.delta), "delta_pct": fmt(m.delta_pct) if m.delta_pct is not None else None}
            for m in movers(cur, prev)
        ],
        "unclassified_usage_types": [u.to_json() for u in cur.unclassified_usage_types],
        "business_units": [{"business_unit": k, "amount": fmt(v)} for k, v in _business_units(cur)],
        "history": [
            {"month": a.month, "total": fmt(a.total), "unattributed": fmt(a.unattributed),
             "teams": {t: fmt(v) for t, v in _sorted_teams(a)}}
            for a in _history(data)
        ],
        "quarantined": {
            "total": data.quarantined_total,
            "by_reason": [{"reason": r, "count": n} for r, n in data.quarantined_by_reason],
        },
        "freshness": [
            {"target": f.target, "dataset": f.dataset_label, "last_success": _iso(f.last_success),
             "through": _iso(f.through)}
            for f in data.freshness
        ],
        "quota": _jsonable(data.quota) if data.quota is not None else None,
    }


# --------------------------------------------------------------------------------------- display helpers


def _money(d: Decimal) -> str:
    """Two decimals with thousands separators, for display (JSON keeps full precision)."""
    return format(d, ",.2f")


def _exact(d: Decimal) -> str:
    """The exact amount with thousands separators: every significant decimal, at least two."""
    if d == d.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN):
        return format(d, ",.2f")
    return format(d.normalize(), ",f")


def _pct(share: Decimal) -> str:
    """A ratio (0.1234) as a percentage with one decimal ("12.3 %")."""
    return f"{share * 100:.1f} %"


def _signed(d: Decimal) -> str:
    return ("+" if d > 0 else "") + _money(d)


def _signed_pct(p: Decimal | None) -> str:
    if p is None:
        return "new"
    text = f"{p:.1f}"
    if text.lstrip("-") == "0.0":  # a change that rounds away shows no sign
        return "0.0 %"
    return ("+" if p > 0 else "") + text + " %"


def _compact(d: Decimal) -> str:
    """A short label for a chart ("12.5k", "1.2M", "350"), formatted from the Decimal."""
    a = abs(d)
    for exp, suffix in ((9, "B"), (6, "M"), (3, "k")):
        if a >= Decimal(1).scaleb(exp):
            text = f"{d.scaleb(-exp):.1f}"
            return text.removesuffix(".0") + suffix
    if a >= 100:
        return f"{d:.0f}"
    return f"{d:.2f}".rstrip("0").rstrip(".") or "0"


def _ts(value: dt.datetime | None) -> str:
    if value is None:
        return "never"
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.strftime("%Y-%m-%d %H:%M")


def _age(now: dt.datetime, then: dt.datetime | None) -> str:
    if then is None or (now.tzinfo is None) != (then.tzinfo is None):
        return ""
    seconds = (now - then).total_seconds()
    if seconds < 0:
        return "in the future"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


#: The quota columns shown (key in ``QuotaReport.to_json()["pools"][i]``, heading, kind); others are left out.
_QUOTA_COLUMNS: tuple[tuple[str, str, Literal["text", "money", "pct", "list"]], ...] = (
    ("pool", "Pool", "text"), ("team", "Team", "text"), ("status", "Status", "text"),
    ("budget", "Budget", "money"), ("actual", "Actual", "money"), ("pct_of_budget", "Used", "pct"),
    ("forecast", "Forecast", "money"), ("forecast_pct_of_budget", "Forecast used", "pct"),
    ("projected_breach_date", "Breach on", "text"), ("estimated", "Estimated", "text"),
    ("reasons", "Reasons", "list"),
)


def _quota_pools(quota: Mapping[str, Any] | None) -> tuple[list[tuple[str, str, str]], list[Mapping[str, Any]]]:
    """The quota report's pools and the known columns that at least one pool fills."""
    if not quota:
        return [], []
    pools = [p for p in quota.get("pools") or [] if isinstance(p, Mapping)]
    columns = [c for c in _QUOTA_COLUMNS if any(p.get(c[0]) not in (None, "", [], ()) for p in pools)]
    return list(columns), pools


def _as_amount(value: Any) -> Decimal | None:
    """A quota value that is a number (Decimal, int, or a plain decimal string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal | int):
        return Decimal(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
        return Decimal(value)
    return None


def _quota_cell(value: Any, kind: str) -> str:
    """Display text for one quota value: amounts with two decimals, percentages with "%", lists joined."""
    if value is None:
        return "-" if kind in ("money", "pct") else ""
    number = _as_amount(value)
    if kind == "money" and number is not None:
        return _money(number)
    if kind == "pct" and number is not None:
        return f"{number:.1f} %"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if kind == "list" and isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    return str(value)


# --------------------------------------------------------------------------------------------------- table


def render_table(data: ReportData, console: Console) -> None:
    """Print the report as rich tables on ``console`` (amounts with two decimals, right-aligned)."""
    from rich.table import Table
    from rich.text import Text

    cur, prev = data.current, data.previous
    share_est = estimated_share(cur)

    def money_col(table: Table, name: str) -> None:
        table.add_column(name, justify="right", no_wrap=True)

    head = Text()
    head.append(f"dbcost report {data.month}", style="bold")
    head.append(f"  metric {cur.metric}  total {_money(cur.total)}  unattributed {_money(cur.unattributed)}"
                f" ({_pct(_ratio(cur.unattributed, cur.total))})  estimated {_pct(share_est)}"
                f"  through {_iso(cur.through) or '-'}  generated {_ts(data.generated_at)}")
    console.print(head)

    prev_teams = _team_amounts(prev) if prev else {}
    teams = Table(title=f"Spend per team, {data.month}", title_justify="left")
    teams.add_column("Team")
    money_col(teams, "Amount")
    money_col(teams, "Share")
    money_col(teams, "Clusters")
    money_col(teams, "Shared")
    if prev:
        money_col(teams, f"Δ vs {prev.month}")
    for name, amount in _sorted_teams(cur):
        team = cur.team(name)
        assert team is not None
        n_clusters = sum(1 for c in team.clusters if c.cluster != SHARED_CLUSTER)
        row: list[Text | str] = [Text(name), _money(amount), _pct(_ratio(amount, cur.total)), str(n_clusters),
                                 _money(_shared_of(cur, name))]
        if prev:
            row.append(_signed(sum_amounts((amount, -prev_teams.get(name, Decimal(0))))))
        teams.add_row(*row)
    unatt_row: list[Text | str] = [Text(UNATTRIBUTED, style="dim"), _money(cur.unattributed),
                                   _pct(_ratio(cur.unattributed, cur.total)), str(len(cur.unattributed_clusters)), ""]
    if prev:
        unatt_row.append(_signed(sum_amounts((cur.unattributed, -prev.unattributed))))
    teams.add_row(*unatt_row, end_section=True)
    total_row: list[Text | str] = [Text("total", style="bold"), _money(cur.total),
                                   _pct(Decimal(1) if cur.total else Decimal(0)), "", ""]
    if prev:
        total_row.append(_signed(sum_amounts((cur.total, -prev.total))))
    teams.add_row(*total_row)
    console.print(teams)

    cats = _categories_present(cur)
    clusters = Table(title=f"Top {TOP_CLUSTERS} clusters by spend", title_justify="left")
    clusters.add_column("Cluster")
    clusters.add_column("Team")
    for cat in cats:
        money_col(clusters, cat)
    money_col(clusters, "Total")
    for team_name, c in _top_clusters(cur):
        clusters.add_row(Text(c.cluster), Text(team_name),
                         *[_money(c.categories.get(cat, Decimal(0))) for cat in cats], _money(c.amount))
    console.print(clusters)

    if prev is not None:
        moves = Table(title=f"Largest movers, {prev.month} → {data.month}", title_justify="left")
        moves.add_column("Kind")
        moves.add_column("Name")
        moves.add_column("Team")
        money_col(moves, prev.month)
        money_col(moves, data.month)
        money_col(moves, "Δ")
        money_col(moves, "Δ %")
        for m in movers(cur, prev):
            moves.add_row(m.kind, Text(m.name), Text(m.team), _money(m.previous), _money(m.current),
                          _signed(m.delta), _signed_pct(m.delta_pct))
        console.print(moves)
    else:
        console.print("No previous month in the store: no movers.")

    unatt = Table(title=f"Unattributed spend: {_money(cur.unattributed)}", title_justify="left")
    unatt.add_column("Cluster / resource")
    unatt.add_column("Families")
    money_col(unatt, "Amount")
    for c in sorted(cur.unattributed_clusters, key=lambda c: (-c.amount, c.cluster)):
        unatt.add_row(Text(c.cluster), Text(", ".join(c.families)), _money(c.amount))
    console.print(unatt)

    if cur.unclassified_usage_types:
        uncl = Table(title="Unclassified usage types (category 'other')", title_justify="left")
        uncl.add_column("Service")
        uncl.add_column("Usage type")
        money_col(uncl, "Amount")
        for u in cur.unclassified_usage_types:
            uncl.add_row(Text(u.service), Text(u.usage_type), _money(u.amount))
        console.print(uncl)

    if cur.business_units:
        units = Table(title="Spend per business unit (linked accounts)", title_justify="left")
        units.add_column("Business unit")
        money_col(units, "Amount")
        money_col(units, "Share")
        for name, amount in _business_units(cur):
            units.add_row(Text(name), _money(amount), _pct(_ratio(amount, cur.total)))
        console.print(units)

    quar = Table(title=f"Quarantined records: {data.quarantined_total}", title_justify="left")
    quar.add_column("Reason")
    money_col(quar, "Count")
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
                      f"{_ts(f.last_success)} {_age(data.generated_at, f.last_success)}".strip(),
                      _iso(f.through) or "-")
    console.print(fresh)

    columns, pools = _quota_pools(data.quota)
    if pools:
        quota = Table(title="Quota", title_justify="left")
        for _, heading, kind in columns:
            quota.add_column(heading, justify="right" if kind in ("money", "pct") else "left")
        for pool in pools:
            quota.add_row(*[Text(_quota_cell(pool.get(key), kind)) for key, _, kind in columns])
        console.print(quota)

    console.print(Text(f"Estimated share of {data.month}: {_pct(share_est)} "
                       f"({_money(cur.estimated_amount)} of {_money(cur.total)} not final yet)"))


# ---------------------------------------------------------------------------------------------------- HTML


def _e(value: object) -> str:
    """Escape any value for HTML/SVG text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def _px(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _frac(part: Decimal, whole: Decimal) -> float:
    """A ratio of two amounts as a float, for pixel geometry only (never shown as text)."""
    if whole <= 0 or part <= 0:
        return 0.0
    with localcontext(_RATIO_CTX):
        return float(part / whole)


def _nice_ticks(top: Decimal, count: int = 5) -> list[Decimal]:
    """Round axis ticks 0, step, 2*step, ... covering ``top`` with a step of 1, 2 or 5 times a power of ten."""
    if top <= 0:
        return [Decimal(0), Decimal(1)]
    with localcontext(_RATIO_CTX):
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
                   f'<text class="tick" x="{left - 8}" y="{_px(y + 4)}" text-anchor="end">{_e(_compact(tick))}</text>')
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
                       f'<title>{_e(name)}, {_e(att.month)}: {_e(_exact(amount))}</title></rect>')
        out.append("</g>")
        out.append(f'<text class="bar-total" x="{_px(x + bar_w / 2)}" y="{_px(y - 6)}" text-anchor="middle">'
                   f'<title>{_e(att.month)} total: {_e(_exact(att.total))}</title>{_e(_compact(att.total))}</text>')
        out.append(f'<text class="tick" x="{_px(x + bar_w / 2)}" y="{top + plot_h + 20}" '
                   f'text-anchor="middle">{_e(att.month)}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    lx = left + plot_w + 30
    last = amounts[-1] if amounts else {}
    out.append(f'<text class="legend-title" x="{lx}" y="{top + 4}">Series (latest month)</text>')
    for j, (name, color) in enumerate(reversed(series)):  # legend top-down = stack top-down
        amount = last.get(name, Decimal(0))
        out.append(_legend_item(lx, top + 16 + j * 22, color, _truncate(name, 22), f"{name}: {_exact(amount)}",
                                _compact(amount)))
    if negative:
        out.append(f'<text class="muted" x="{left}" y="{height - 4}">Negative amounts (credits) are not drawn.</text>')
    out.append("</svg>")
    return "".join(out)


def _chart_clusters(att: Attribution) -> str:
    """Horizontal stacked bars: the category split of the largest clusters, one ``<rect>`` per category."""
    top_clusters = _top_clusters(att)
    cats = [c for c in category_totals(att) if c != "shared"]
    row_h, label_w, amount_w, pad_top = 24, 330, 96, 44
    width = 1000
    height = pad_top + row_h * max(len(top_clusters), 1) + 16
    bar_max = width - label_w - amount_w
    biggest = max((c.amount for _, c in top_clusters), default=Decimal(0))
    out = [_svg_open("clusters", width, height, f"Category split of the top {len(top_clusters)} clusters")]
    x = 0.0
    for cat in cats:  # legend on top
        out.append(_legend_item(x, 4, CATEGORY_COLORS.get(cat, EXTRA_CATEGORY_COLOR), cat, cat))
        x += 30 + 7.0 * len(cat)
    if not top_clusters:
        out.append(f'<text class="muted" x="0" y="{pad_top + 14}">No cluster spend this month.</text>')
    for i, (team, c) in enumerate(top_clusters):
        y = pad_top + i * row_h
        out.append(f'<g class="row" data-cluster="{_e(c.cluster)}">'
                   f'<text class="label" x="{label_w - 10}" y="{y + 15}" text-anchor="end">'
                   f'<title>{_e(c.cluster)} ({_e(team)})</title>{_e(_truncate(c.cluster, 30))}'
                   f'<tspan class="muted"> \u00b7 {_e(_truncate(team, 14))}</tspan></text>')
        bx = float(label_w)
        for cat in cats:
            amount = c.categories.get(cat, Decimal(0))
            if amount <= 0:
                continue
            w = _frac(amount, biggest) * bar_max
            out.append(f'<rect class="seg" data-cluster="{_e(c.cluster)}" data-category="{_e(cat)}" x="{_px(bx)}" '
                       f'y="{y + 3}" width="{_px(w)}" height="{row_h - 6}" '
                       f'fill="{CATEGORY_COLORS.get(cat, EXTRA_CATEGORY_COLOR)}">'
                       f'<title>{_e(c.cluster)}, {_e(cat)}: {_e(_exact(amount))}</title></rect>')
            bx += w
        out.append(f'<text class="amount" x="{_px(bx + 6)}" y="{y + 15}">'
                   f'<title>{_e(c.cluster)}: {_e(_exact(c.amount))}</title>{_e(_money(c.amount))}</text></g>')
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
        title = f"<title>{_e(cat)}: {_e(_exact(amount))} ({_e(_pct(_ratio(amount, att.total)))})</title>"
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
               f'{_e(_compact(att.total))}</text>'
               f'<text class="muted" x="{_px(cx)}" y="{_px(cy + 20)}" text-anchor="middle">total</text>')
    for j, (cat, amount) in enumerate(totals.items()):  # the legend is a small table: category, amount, share
        y = legend_top + j * row_h
        out.append(f'<g class="legend-item"><title>{_e(cat)}: {_e(_exact(amount))}</title>'
                   f'<rect x="8" y="{y}" width="12" height="12" rx="2" '
                   f'fill="{CATEGORY_COLORS.get(cat, EXTRA_CATEGORY_COLOR)}"/>'
                   f'<text x="28" y="{y + 10}">{_e(_truncate(cat, 16))}</text>'
                   f'<text x="{width - 70}" y="{y + 10}" text-anchor="end">{_e(_money(amount))}</text>'
                   f'<text class="muted" x="{width - 4}" y="{y + 10}" text-anchor="end">'
                   f"{_e(_pct(_ratio(amount, att.total)))}</text></g>")
    out.append("</svg>")
    return "".join(out)


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
    return f'<span class="{cls}">{_e(_signed(d))}</span>'


def _card(label: str, value: str, note: str = "", cls: str = "") -> str:
    return (f'<div class="card {cls}"><div class="card-label">{_e(label)}</div>'
            f'<div class="card-value">{_e(value)}</div><div class="card-note">{_e(note)}</div></div>')


_CSS = """
:root { --fg:#1f2328; --muted:#667085; --line:#e4e7ec; --bg:#f6f7f9; --card:#fff; --up:#b42318; --down:#067647; }
* { box-sizing: border-box; }
html { background: var(--bg); }
body { margin: 0 auto; padding: 24px 28px 40px; max-width: 1380px; color: var(--fg); background: var(--bg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 10px; }
.sub, .muted { color: var(--muted); }
section, figure { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px;
  margin: 0 0 18px; break-inside: avoid; }
figure { margin: 0 0 18px; }
figcaption { font-weight: 600; font-size: 15px; margin-bottom: 8px; }
figcaption .muted { font-weight: 400; font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin: 18px 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card-label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card-value { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card-note { color: var(--muted); font-size: 12px; min-height: 1em; }
.card.warn { border-color: #f5b14c; background: #fffaf0; }
.notice { border-left: 4px solid #f5b14c; background: #fffaf0; padding: 8px 12px; margin: 0 0 12px; border-radius: 4px; }
.grid2 { display: grid; grid-template-columns: minmax(0, 2.6fr) minmax(0, 1fr); gap: 18px; align-items: start; }
.grid2 > figure { margin: 0 0 18px; }
svg.chart { display: block; width: 100%; height: auto; max-width: 100%; font-size: 12px; }
svg .grid { stroke: #eef0f3; }
svg .axis { stroke: #98a2b3; }
svg .tick, svg .muted { fill: var(--muted); }
svg .axis-title, svg .legend-title { fill: var(--muted); font-weight: 600; }
svg .bar-total { font-weight: 600; fill: var(--fg); }
svg .label, svg .amount { fill: var(--fg); }
svg .donut-total { font-size: 20px; font-weight: 650; fill: var(--fg); }
svg .seg:hover { opacity: .8; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .03em; }
td.num, th.num { text-align: right; white-space: nowrap; }
tfoot td { font-weight: 650; border-top: 2px solid var(--line); }
.up { color: var(--up); } .down { color: var(--down); }
.st { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; background: #eef0f3; }
.st-ok { background: #dcfae6; color: #067647; }
.st-warn, .st-warning, .st-at_risk, .st-forecast_breach { background: #fef0c7; color: #93370d; }
.st-breach, .st-exceeded, .st-over, .st-critical { background: #fee4e2; color: #b42318; }
.wrap { word-break: break-all; }
footer { color: var(--muted); font-size: 12px; margin-top: 8px; }
@media print {
  html, body { background: #fff; }
  body { max-width: none; padding: 0; font-size: 11px; }
  section, figure, .card { border-color: #ccc; box-shadow: none; }
  .grid2 { grid-template-columns: 1fr; }
  tr { break-inside: avoid; }
}
@page { size: A4 landscape; margin: 12mm; }
"""


def _status_class(status: object) -> str:
    return "st st-" + re.sub(r"[^a-z0-9_-]", "", str(status).lower())[:24]


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML document (inline CSS and SVG, no script, no external reference)."""
    cur, prev = data.current, data.previous
    history = _history(data)
    share_est = estimated_share(cur)
    share_unatt = _ratio(cur.unattributed, cur.total)
    attributed = sum_amounts((cur.total, -cur.unattributed))
    title = f"dbcost report {data.month}"
    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>Database spend {_e(data.month)}</h1>"
        f'<div class="sub">{_e(cur.metric)} · data through {_e(_iso(cur.through) or "-")} · '
        f"generated {_e(_ts(data.generated_at))}"
        + (f" · services: {_e(', '.join(cur.services))}" if cur.services else "")
        + "</div></header>",
    ]

    vs_prev = ""
    if prev is not None:
        d = sum_amounts((cur.total, -prev.total))
        pct = _signed_pct(None if prev.total == 0 else _ratio(d * 100, abs(prev.total), _PCT_QUANTUM))
        vs_prev = f"{_signed(d)} ({pct}) vs {prev.month}"
    parts.append('<div class="cards">'
                 + _card("Total", _money(cur.total), vs_prev)
                 + _card("Attributed to teams", _money(attributed), _pct(_ratio(attributed, cur.total)))
                 + _card("Unattributed", _money(cur.unattributed), _pct(share_unatt),
                         "warn" if cur.unattributed > 0 else "")
                 + _card("Estimated (not final)", _pct(share_est), _money(cur.estimated_amount),
                         "warn" if share_est > 0 else "")
                 + _card("Shared, allocated", _money(cur.allocated_shared), "spread over teams")
                 + _card("Quarantined records", f"{data.quarantined_total:,}", "not in these figures",
                         "warn" if data.quarantined_total else "")
                 + "</div>")
    if share_est > 0:
        parts.append(f'<div class="notice">{_e(_pct(share_est))} of {_e(data.month)} '
                     f"({_e(_money(cur.estimated_amount))}) is estimated: Cost Explorer has not finalised it, "
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
    prev_teams = _team_amounts(prev) if prev else {}
    headers: list[tuple[str, bool]] = [("Team", False), ("Amount", True), ("Share", True), ("Clusters", True),
                                       ("Shared", True)]
    if prev:
        headers += [(prev.month, True), ("Δ", True)]
    rows = []
    team_rows = [*_sorted_teams(cur), (UNATTRIBUTED, cur.unattributed)]
    for name, amount in team_rows:
        team = cur.team(name) if name != UNATTRIBUTED else None
        n_clusters = (sum(1 for c in team.clusters if c.cluster != SHARED_CLUSTER) if team
                      else len(cur.unattributed_clusters))
        row = [f'<span class="muted">{_e(name)}</span>' if team is None else _e(name),
               _e(_money(amount)), _e(_pct(_ratio(amount, cur.total))), str(n_clusters),
               _e(_money(_shared_of(cur, name)))]
        if prev:
            p = prev_teams.get(name, Decimal(0))
            row += [_e(_money(p)), _delta_html(sum_amounts((amount, -p)))]
        rows.append(row)
    foot = ["Total", _e(_money(cur.total)), _e(_pct(Decimal(1) if cur.total else Decimal(0))), "",
            _e(_money(cur.allocated_shared))]
    if prev:
        foot += [_e(_money(prev.total)), _delta_html(sum_amounts((cur.total, -prev.total)))]
    parts.append(f'<section id="teams"><h2>Spend per team</h2>{_table(headers, rows, foot=foot)}</section>')

    # clusters
    cats = _categories_present(cur)
    headers = [("Cluster", False), ("Team", False), ("Owner from", False), ("Families", False),
               *[(c, True) for c in cats], ("Total", True)]
    rows = []
    for team_name, c in sorted(_clusters(cur), key=lambda tc: (-tc[1].amount, tc[1].cluster, tc[0])):
        rows.append([f'<span class="wrap">{_e(c.cluster)}</span>', _e(team_name), _e(c.source),
                     _e(", ".join(c.families)),
                     *[_e(_money(c.categories.get(cat, Decimal(0)))) for cat in cats], _e(_money(c.amount))])
    note = (f'<p class="muted">Allocated shared spend ({_e(_money(cur.allocated_shared))}) is carried per team '
            "(column Shared above), not per cluster.</p>") if cur.allocated_shared else ""
    parts.append(f'<section id="clusters"><h2>Spend per cluster and category</h2>{_table(headers, rows)}{note}'
                 "</section>")

    # movers
    if prev is not None:
        headers = [("Kind", False), ("Name", False), ("Team", False), (prev.month, True), (data.month, True),
                   ("Δ", True), ("Δ %", True)]
        rows = [[_e(m.kind), f'<span class="wrap">{_e(m.name)}</span>', _e(m.team), _e(_money(m.previous)),
                 _e(_money(m.current)), _delta_html(m.delta), _e(_signed_pct(m.delta_pct))]
                for m in movers(cur, prev)]
        parts.append(f'<section id="movers"><h2>Largest movers, {_e(prev.month)} → {_e(data.month)}</h2>'
                     f'{_table(headers, rows, empty="No change.")}</section>')
    else:
        parts.append('<section id="movers"><h2>Largest movers</h2>'
                     '<p class="muted">No previous month to compare with.</p></section>')

    # unattributed + unclassified
    headers = [("Cluster / resource", False), ("Families", False), ("Amount", True)]
    rows = [[f'<span class="wrap">{_e(c.cluster)}</span>', _e(", ".join(c.families)), _e(_money(c.amount))]
            for c in sorted(cur.unattributed_clusters, key=lambda c: (-c.amount, c.cluster))]
    unatt = _table(headers, rows, foot=["Unattributed", "", _e(_money(cur.unattributed))],
                   empty="All spend is attributed.")
    headers = [("Service", False), ("Usage type", False), ("Amount", True)]
    rows = [[_e(u.service), f'<span class="wrap">{_e(u.usage_type)}</span>', _e(_money(u.amount))]
            for u in cur.unclassified_usage_types]
    uncl = _table(headers, rows, empty="Every usage type is classified.")
    parts.append(f'<section id="unattributed"><h2>Unattributed spend: {_e(_money(cur.unattributed))} '
                 f'<span class="muted">({_e(_pct(share_unatt))})</span></h2>{unatt}'
                 f'<h2 style="margin-top:16px">Unclassified usage types <span class="muted">(counted as '
                 f"category other)</span></h2>{uncl}</section>")

    if cur.business_units:
        headers = [("Business unit", False), ("Amount", True), ("Share", True)]
        rows = [[_e(name), _e(_money(amount)), _e(_pct(_ratio(amount, cur.total)))]
                for name, amount in _business_units(cur)]
        parts.append('<section id="business-units"><h2>Spend per business unit <span class="muted">(linked '
                     f"accounts)</span></h2>{_table(headers, rows)}</section>")

    # quarantine + freshness
    headers = [("Reason", False), ("Records", True)]
    rows = [[f'<span class="wrap">{_e(r)}</span>', f"{n:,}"] for r, n in data.quarantined_by_reason]
    parts.append(f'<section id="quarantine"><h2>Quarantined records: {data.quarantined_total:,}</h2>'
                 f'{_table(headers, rows, empty="Nothing quarantined.")}</section>')
    headers = [("Target", False), ("Dataset", False), ("Last success", False), ("Age", False), ("Through", False)]
    rows = [[_e(f.target), _e(f.dataset_label), _e(_ts(f.last_success)), _e(_age(data.generated_at, f.last_success)),
             _e(_iso(f.through) or "-")] for f in data.freshness]
    parts.append(f'<section id="freshness"><h2>Data freshness</h2>'
                 f'{_table(headers, rows, empty="No sync recorded.")}</section>')

    # quota
    columns, pools = _quota_pools(data.quota)
    if pools:
        rows = []
        for pool in pools:
            cells = []
            for key, _, kind in columns:
                text = _quota_cell(pool.get(key), kind)
                cells.append(f'<span class="{_e(_status_class(text))}">{_e(text)}</span>' if key == "status" and text
                             else _e(text))
            rows.append(cells)
        parts.append(f'<section id="quota"><h2>Quota</h2>'
                     f"{_table([(h, k in ('money', 'pct')) for _, h, k in columns], rows)}</section>")

    parts.append(f"<footer>dbcost · {_e(title)} · amounts in {_e(cur.metric)}, shown with two decimals "
                 "(hover a chart segment for the exact amount; the JSON report keeps full precision).</footer>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
