"""The report as plain JSON data: every amount and share a decimal string at full precision, counts as integers.

:func:`render_json` returns dicts, lists, strings, integers, booleans and ``None`` only (no ``Decimal``,
no ``float``, no date), ready for any JSON encoder. Amounts go through :func:`dbcost.money.fmt` (plain
notation, never an exponent); shares and changes are the rounded ratios of :mod:`dbcost.report.data`;
times are ISO 8601. The ``quota`` member is :meth:`dbcost.quota.QuotaReport.to_json`, as ``dbcost quota
check --json`` prints it. ``currency`` names the currency of every amount. ``month_to_date`` is the
like-for-like comparison the HTML cards lead with (the month so far against the same days of the previous
month, and the whole previous month beside it; null without a previous month); ``daily`` is the month's
spend per day and team (the daily chart), ``history`` every month of the trend. The ``advice`` member is
``null`` when ``dbcost advise`` never ran for the month, else ``{"total_estimated_monthly_savings", "count",
"top": [...], "by_team": [...]}``: ``top`` holds the largest advisories in the ``dbcost advise --format json``
shape, ``by_team`` every advisory's savings per team.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from dbcost.advice import AdviceSet, amount_text
from dbcost.attribution.model import Attribution
from dbcost.money import fmt, sum_amounts
from dbcost.report._format import iso
from dbcost.report.data import (
    MonthToDate,
    ReportData,
    business_units,
    category_totals,
    estimated_share,
    month_to_date,
    movers,
    ratio,
    shared_of,
    sorted_teams,
    team_amounts,
    team_month_to_date,
    top_advisories,
)

__all__ = ["render_json"]


def _advice(advice: AdviceSet | None) -> dict[str, Any] | None:
    if advice is None:
        return None
    return {
        "total_estimated_monthly_savings": amount_text(advice.total_savings),
        "count": len(advice.advisories),
        "top": [a.to_json(advice.seen(a)) for a in top_advisories(advice)],
        "by_team": [{"team": t, "advisories": n, "estimated_monthly_savings": amount_text(v)}
                    for t, n, v in advice.by_team()],
    }


def _mtd(m: MonthToDate | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {"days": m.days, "days_in_month": m.days_in_month, "through": iso(m.through), "partial": m.partial,
            "current": fmt(m.current), "previous_same_days": fmt(m.previous), "delta": fmt(m.delta),
            "delta_pct": fmt(m.delta_pct) if m.delta_pct is not None else None,
            "previous_month": m.previous_month, "previous_whole_month": fmt(m.previous_whole),
            "whole_month_delta": fmt(m.whole_delta),
            "whole_month_delta_pct": fmt(m.whole_delta_pct) if m.whole_delta_pct is not None else None}


def _daily(att: Attribution) -> list[dict[str, Any]]:
    days: dict[str, dict[str, list[Decimal]]] = {}
    for d in att.daily:
        days.setdefault(d.day.isoformat(), {}).setdefault(d.team, []).append(d.amount)
    return [{"day": day, "total": fmt(sum_amounts(v for parts in teams.values() for v in parts)),
             "teams": {t: fmt(sum_amounts(parts)) for t, parts in sorted(teams.items())}}
            for day, teams in sorted(days.items())]


def render_json(data: ReportData) -> dict[str, Any]:
    """The report as plain JSON data: every amount and share a decimal string, counts as integers."""
    cur, prev = data.current, data.previous
    prev_teams = team_amounts(prev) if prev else {}
    teams = []
    for name, amount in sorted_teams(cur):
        team = cur.team(name)
        assert team is not None
        clusters = [{**c.to_json(), "share": fmt(ratio(c.amount, cur.total))}
                    for c in sorted(team.clusters, key=lambda c: (-c.amount, c.cluster))]
        p = prev_teams.get(name) if prev else None
        same = team_month_to_date(cur, prev, name)
        teams.append({
            "team": name,
            "amount": fmt(amount),
            "share": fmt(ratio(amount, cur.total)),
            "previous": fmt(p if p is not None else Decimal(0)) if prev else None,
            "previous_same_days": fmt(same[1]) if same is not None else None,
            "shared": fmt(shared_of(cur, name)),
            "clusters": clusters,
        })
    return {
        "month": data.month,
        "metric": cur.metric,
        "currency": data.currency,
        "generated_at": data.generated_at.isoformat(),
        "through": iso(cur.through),
        "total": fmt(cur.total),
        "attributed": fmt(sum_amounts((cur.total, -cur.unattributed))),
        "unattributed": fmt(cur.unattributed),
        "unattributed_share": fmt(ratio(cur.unattributed, cur.total)),
        "allocated_shared": fmt(cur.allocated_shared),
        "estimated": fmt(cur.estimated_amount),
        "estimated_share": fmt(estimated_share(cur)),
        "previous": {"month": prev.month, "total": fmt(prev.total)} if prev else None,
        "month_to_date": _mtd(month_to_date(cur, prev)),
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
        "business_units": [{"business_unit": k, "amount": fmt(v)} for k, v in business_units(cur)],
        "daily": _daily(cur),
        "history": [
            {"month": a.month, "total": fmt(a.total), "unattributed": fmt(a.unattributed),
             "teams": {t: fmt(v) for t, v in sorted_teams(a)}}
            for a in data.trend()
        ],
        "quarantined": {
            "total": data.quarantined_total,
            "by_reason": [{"reason": r, "count": n} for r, n in data.quarantined_by_reason],
        },
        "freshness": [
            {"target": f.target, "dataset": f.dataset_label, "last_success": iso(f.last_success),
             "through": iso(f.through)}
            for f in data.freshness
        ],
        "quota": data.quota.to_json() if data.quota is not None else None,
        "advice": _advice(data.advice),
        "resource_level": cur.resource_level.to_json() if cur.resource_level is not None else None,
    }
