"""The quota report as plain text: one row of display strings per pool, and a fixed-width table of them.

Presentation only: amounts are dollars rounded to cents (:func:`~dbcost.quota.format_usd`), percentages
as evaluated (two places). The CLI prints :func:`render_table`; another front end may draw its own table
from :func:`table_rows` and :data:`TABLE_HEADER`.
"""

from __future__ import annotations

from typing import Final

from dbcost.attribution.model import UNATTRIBUTED
from dbcost.quota.evaluation import QuotaReport, format_usd

__all__ = ["TABLE_HEADER", "render_table", "table_rows"]

TABLE_HEADER: Final[tuple[str, ...]] = (
    "pool", "team", "status", "actual", "budget", "used", "forecast", "breach on", "estimated",
)
_NUMERIC: Final = frozenset({3, 4, 5, 6})  # columns right-aligned: actual, budget, used, forecast


def table_rows(report: QuotaReport) -> list[tuple[str, ...]]:
    """One row of display strings per pool (cents, percentages), in :data:`TABLE_HEADER` order."""
    rows: list[tuple[str, ...]] = []
    for p in report.pools:
        used = p.pct_of_budget
        rows.append((
            p.pool,
            p.team,
            p.status,
            format_usd(p.actual),
            format_usd(p.budget),
            f"{used}%" if used is not None else "-",
            format_usd(p.forecast),
            p.projected_breach_date.isoformat() if p.projected_breach_date else "-",
            "yes" if p.estimated else "no",
        ))
    return rows


def render_table(report: QuotaReport) -> str:
    """A plain-text table of the report (the CLI may draw its own from :func:`table_rows`)."""
    rows = [TABLE_HEADER, *table_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER))]
    lines = [
        "  ".join(cell.rjust(widths[i]) if i in _NUMERIC else cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip()
        for r in rows
    ]
    title = f"quota {report.month} ({report.metric}) as of {report.today.isoformat()}: worst {report.worst}"
    notes = []
    if report.estimated:
        notes.append("estimated = the month is still open in Cost Explorer; amounts may change")
    if any(p.team == UNATTRIBUTED for p in report.pools):
        notes.append(f"team {UNATTRIBUTED!r} = spend without an owner")
    return "\n".join([title, *lines, *notes])
