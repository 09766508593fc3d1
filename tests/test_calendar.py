"""Month arithmetic and Cost Explorer's windows: one home, pure, the same answer for the same date."""

from __future__ import annotations

import datetime as dt

import pytest

from dbcost.calendar import (
    RESTATEMENT_GRACE_DAYS,
    add_months,
    daily_window_start,
    month_bounds,
    month_start,
    restatement_start,
)


def test_add_months_crosses_years_both_ways() -> None:
    """add_months lands on the first of the month, across December/January in both directions."""
    assert add_months(dt.date(2026, 12, 31), 1) == dt.date(2027, 1, 1)
    assert add_months(dt.date(2026, 1, 15), -1) == dt.date(2025, 12, 1)
    assert add_months(dt.date(2026, 3, 31), -13) == dt.date(2025, 2, 1)
    assert month_start(dt.date(2026, 2, 28)) == dt.date(2026, 2, 1)


def test_month_bounds_are_half_open_and_refuse_a_non_month() -> None:
    """YYYY-MM gives [first day, first of the next month); anything else is a ValueError."""
    assert month_bounds("2026-12") == (dt.date(2026, 12, 1), dt.date(2027, 1, 1))
    assert month_bounds("2028-02") == (dt.date(2028, 2, 1), dt.date(2028, 3, 1))
    with pytest.raises(ValueError, match="month"):
        month_bounds("2026-13")


def test_daily_window_is_thirteen_months_back() -> None:
    """DAILY data reaches back 13 months, to the first of that month."""
    assert daily_window_start(dt.date(2026, 12, 1)) == dt.date(2025, 11, 1)


@pytest.mark.parametrize(("today", "start"), [
    (dt.date(2026, 12, 1), dt.date(2026, 11, 1)),
    (dt.date(2026, 12, RESTATEMENT_GRACE_DAYS), dt.date(2026, 11, 1)),
    (dt.date(2026, 12, RESTATEMENT_GRACE_DAYS + 1), dt.date(2026, 12, 1)),
    (dt.date(2027, 1, 3), dt.date(2026, 12, 1)),
])
def test_restatement_window_keeps_the_previous_month_until_the_grace_days_end(today: dt.date, start: dt.date) -> None:
    """The previous month may still be restated through the 5th; from the 6th only the open month."""
    assert restatement_start(today) == start


def test_restatement_window_takes_another_grace_day() -> None:
    """The grace day is a parameter (the emulator passes its own): 0 closes the previous month on the 1st."""
    assert restatement_start(dt.date(2026, 12, 1), 0) == dt.date(2026, 12, 1)
    assert restatement_start(dt.date(2026, 12, 8), 8) == dt.date(2026, 11, 1)
