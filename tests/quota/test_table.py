"""The quota report as plain text: cents, percentages, the breach day; format_usd rounds half to even."""

from __future__ import annotations

from decimal import Decimal

from dbcost.quota import TABLE_HEADER, Policy, evaluate, format_usd, render_table, table_rows
from tests.quota.helpers import attribution, d, daily, pool


def test_table_and_usd_formatting() -> None:
    """The table shows cents, percentages and the breach day; format_usd rounds half to even."""
    attr = attribution(daily("a", "12.5", range(1, 10)))
    report = evaluate(Policy(pools=(pool("payments", "a", "500"),)), attr, today=d(10))
    assert table_rows(report) == [("payments", "a", "OK", "$112.50", "$500.00", "22.50%", "$375.00", "-", "no")]
    text = render_table(report)
    assert text.splitlines()[1].split() == [*TABLE_HEADER[:7], "breach", "on", "estimated"]
    assert format_usd(Decimal("1234.565")) == "$1,234.56" and format_usd(Decimal("-0.015")) == "-$0.02"
