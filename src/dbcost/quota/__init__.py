"""Quotas (layer L2, pure): monthly budgets per pool, and their evaluation against an attribution.

A policy (TOML, one ``[[pool]]`` table per budget) is read and validated into a :class:`Policy`;
:func:`evaluate` turns it and one month's :class:`~dbcost.attribution.model.Attribution` into a
:class:`QuotaReport` (actual, run-rate forecast, projected breach date and an ``OK``/``WARN``/``BREACH``
status per pool); :func:`status_changes` compares that with the statuses of the previous run. Nothing
here does I/O but reading the policy file, and nothing reads a clock: ``today`` is an argument.

One module per concern; each one's docstring is its part of the spec:

* :mod:`dbcost.quota.policy` -- the policy file format and its loader, :func:`example_policy_text`;
* :mod:`dbcost.quota.evaluation` -- the month, the numbers, the rounding and the status rules;
* :mod:`dbcost.quota.gate` -- ``--fail-on``: the exit codes :data:`EXIT_WARN` (4) and :data:`EXIT_BREACH` (5);
* :mod:`dbcost.quota.table` -- the report as plain text (:func:`render_table`, :func:`table_rows`).

Every public name is importable from ``dbcost.quota`` itself.
"""

from __future__ import annotations

from dbcost.quota.evaluation import (
    PCT_PLACES,
    RATE_PLACES,
    STATUS_RANK,
    CategoryEvaluation,
    PoolEvaluation,
    QuotaReport,
    Status,
    StatusChange,
    evaluate,
    format_usd,
    status_changes,
)
from dbcost.quota.gate import EXIT_BREACH, EXIT_WARN, exit_code
from dbcost.quota.policy import BUDGET_METRICS, CAP_CATEGORIES, Policy, PoolPolicy, example_policy_text, load_policy
from dbcost.quota.table import TABLE_HEADER, render_table, table_rows

__all__ = [
    "BUDGET_METRICS",
    "CAP_CATEGORIES",
    "EXIT_BREACH",
    "EXIT_WARN",
    "PCT_PLACES",
    "RATE_PLACES",
    "STATUS_RANK",
    "TABLE_HEADER",
    "CategoryEvaluation",
    "Policy",
    "PoolEvaluation",
    "PoolPolicy",
    "QuotaReport",
    "Status",
    "StatusChange",
    "evaluate",
    "example_policy_text",
    "exit_code",
    "format_usd",
    "load_policy",
    "render_table",
    "status_changes",
    "table_rows",
]
