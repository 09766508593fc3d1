"""The month report: spend per team, cluster and category as JSON, rich tables, or one self-contained HTML file.

Input is :class:`ReportData` (one month's :class:`~dbcost.attribution.model.Attribution`, the previous month's
for movers, the months before it for the trend, quarantine counts, data freshness, an optional
:class:`~dbcost.quota.QuotaReport`). The package is the model, then one module per renderer:

* :mod:`dbcost.report.data` -- :class:`ReportData` and the figures derived from it (:func:`movers`,
  :func:`category_totals`, :func:`estimated_share`, ...), pure functions over attributions;
* :mod:`dbcost.report.json` -- :func:`render_json`: every amount a decimal *string* at full precision;
* :mod:`dbcost.report.table` -- :func:`render_table`: rich tables, amounts with two decimals;
* :mod:`dbcost.report.html` -- :func:`render_html`: ONE file that opens offline (inline CSS and script
  from the package's ``report.css`` and ``report.js``, charts as inline SVG from
  :mod:`dbcost.report._charts`, no external reference), every value from data escaped; its tables sort on a
  click and each has a CSV download (a ``data:`` URI).

The renderers read the model and nothing else. Importing ``dbcost.report`` does not import rich: the
table renderer (the only module that needs it) is loaded on first use of ``render_table``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbcost.report.data import TOP_CLUSTERS, Freshness, Mover, ReportData, category_totals, estimated_share, movers
from dbcost.report.html import (
    CATEGORY_COLORS,
    OTHER_TEAMS,
    STATUS_COLORS,
    TEAM_PALETTE,
    UNATTRIBUTED_COLOR,
    render_html,
)
from dbcost.report.json import render_json

if TYPE_CHECKING:
    from dbcost.report.table import render_table

__all__ = [
    "CATEGORY_COLORS",
    "OTHER_TEAMS",
    "STATUS_COLORS",
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


def __getattr__(name: str) -> Any:
    # rich is a terminal concern: load the table renderer (and rich with it) only when it is asked for
    if name == "render_table":
        from dbcost.report.table import render_table

        return render_table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
