"""Calendar arithmetic for Cost Explorer: months, the history windows it serves, the restatement window.

Cost Explorer's periods are half-open ``[start, end)`` dates in UTC. What it serves (see
``../shared/design/COST-EXPLORER-FACTS.md``, "Date rules"):

* DAILY data for the last :data:`DAILY_HISTORY_MONTHS` (13) months, MONTHLY for
  :data:`MONTHLY_HISTORY_MONTHS` (38), HOURLY for :data:`HOURLY_MAX_DAYS` (14) days;
* a month's figures are *estimated* while it is open and through the :data:`RESTATEMENT_GRACE_DAYS`-th (5th)
  day of the next month, and may be restated until then (:func:`restatement_start`); a period still
  stored as ``Estimated`` after that is re-read by ``sync`` all the same.

Everything here is pure and takes ``today`` as an argument (no clock read), so one date gives one answer.
This is the only home of month arithmetic: the planner, sync, attribution, quotas and the demo use it.
"""

from __future__ import annotations

import datetime as dt

__all__ = [
    "DAILY_HISTORY_MONTHS",
    "HOURLY_MAX_DAYS",
    "MONTHLY_HISTORY_MONTHS",
    "RESTATEMENT_GRACE_DAYS",
    "add_months",
    "daily_window_start",
    "month_bounds",
    "month_start",
    "restatement_start",
]

#: how far back Cost Explorer serves DAILY data, months
DAILY_HISTORY_MONTHS = 13
#: how far back it serves MONTHLY data, months
MONTHLY_HISTORY_MONTHS = 38
#: how far back it serves HOURLY data (when enabled), days
HOURLY_MAX_DAYS = 14
#: Cost Explorer restates the previous month until about the 5th of the next one.
RESTATEMENT_GRACE_DAYS = 5


def month_start(d: dt.date) -> dt.date:
    """The first day of ``d``'s month."""
    return d.replace(day=1)


def add_months(d: dt.date, months: int) -> dt.date:
    """First day of the month ``months`` after ``d``'s month (``ValueError`` naming ``d`` past year 9999)."""
    y, m = divmod(d.year * 12 + (d.month - 1) + months, 12)
    if not dt.MINYEAR <= y <= dt.MAXYEAR:
        raise ValueError(f"{d}: {months:+d} months is beyond the calendar (years {dt.MINYEAR}-{dt.MAXYEAR})")
    return dt.date(y, m + 1, 1)


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """``[first day, first day of the next month)`` of ``month`` (``YYYY-MM``; ValueError otherwise)."""
    start = dt.date.fromisoformat(f"{month}-01")
    return start, add_months(start, 1)


def daily_window_start(today: dt.date, months: int = DAILY_HISTORY_MONTHS) -> dt.date:
    """The earliest date Cost Explorer serves DAILY data for."""
    return add_months(today, -months)


def restatement_start(today: dt.date, grace_days: int = RESTATEMENT_GRACE_DAYS) -> dt.date:
    """The first day that may still be restated (and is still ``Estimated``): the open month's start, or the
    previous month's through the ``grace_days``-th day of the new month. The emulator serves ``Estimated`` by
    the same rule, so a client's sync window and the data it reads agree on when a month is final."""
    return add_months(today, -1) if today.day <= grace_days else month_start(today)
