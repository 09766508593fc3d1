"""The quota gate: the exit code a CI job or cron run gets from a :class:`~dbcost.quota.QuotaReport`.

The evaluation decides statuses; whether a status should fail the run is the caller's choice
(``--fail-on``), so the mapping lives here, apart from the pure evaluation. The codes extend the
CLI's own (0 done, 1 failed, 2 bad input, 3 quarantined under ``--strict``): :data:`EXIT_WARN` (4) and
:data:`EXIT_BREACH` (5).
"""

from __future__ import annotations

from typing import Final, Literal

from dbcost.quota.evaluation import QuotaReport

__all__ = ["EXIT_BREACH", "EXIT_WARN", "exit_code"]

#: Exit codes of the quota gate (``exit_code``); 2 is taken by usage errors.
EXIT_WARN: Final = 4
EXIT_BREACH: Final = 5


def exit_code(report: QuotaReport, fail_on: Literal["warn", "breach"] | None) -> int:
    """The CI gate: 0 without ``fail_on``; with ``"breach"`` 5 on any BREACH; with ``"warn"`` also 4 on WARN."""
    if fail_on is None:
        return 0
    worst = report.worst
    if worst == "BREACH":
        return EXIT_BREACH
    if worst == "WARN" and fail_on == "warn":
        return EXIT_WARN
    return 0
