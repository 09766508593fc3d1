"""The report as rich tables: every section listed, names printed literally, the quota pools from typed fields."""

from __future__ import annotations

from tests.report.helpers import (
    attribution,
    cluster,
    quota_pool,
    quota_report,
    realistic_data,
    small_data,
    table_text,
    team,
)


def test_table_lists_teams_clusters_movers_and_the_rest() -> None:
    """The rich output names every team, cluster, mover, quarantine reason and freshness target."""
    text = table_text(small_data())
    for needle in ("payments", "search", "analytics", "pay-main", "warehouse", "orphan-db", "legacy-db",
                   "USE1-Mystery:Thing", "group has no Keys", "staging", "cost-explorer daily",
                   "$1,995.88", "$3,495.87", "+$255.88", "+14.7 %", "new", "2.9 %"):
        assert needle in text, needle
    assert "1995.875" not in text  # display rounds to two places


def test_table_does_not_interpret_markup_in_names() -> None:
    """A team named like rich markup is printed literally, not interpreted."""
    may = attribution("2024-05", [team("[bold]ops[/bold]", cluster("[red]db[/red]", compute="1"))])
    text = table_text(small_data(current=may, previous=None, history=[may]))
    assert "[bold]ops[/bold]" in text and "[red]db[/red]" in text
    assert "No previous month" in text


def test_table_shows_the_quota_pools() -> None:
    """When a quota report is given, its pools are the first table (Budgets): amounts with two decimals and the
    currency, percentages, reasons."""
    text = table_text(realistic_data())
    assert text.index("Budgets, 2025-06") < text.index("Spend per team")
    assert "$60,000.00" in text and "30,814.71" in text and "102.7 %" in text
    assert "BREACH" in text and "2025-06-27" in text and "actual 102.7% of budget" in text
    assert "days_elapsed" not in text and "warn_threshold" not in text  # internal fields are left out


def test_table_leaves_out_quota_columns_no_pool_fills() -> None:
    """Without a breach date or a reason in any pool, the quota table has no such columns; with one, it has."""
    quiet = quota_report(quota_pool("pay", "OK", budget="100", actual="10", forecast="20"), month="2024-05")
    text = table_text(small_data(quota=quiet))
    assert "Budgets" in text and "Forecast used" in text and "20.0 %" in text
    assert "Breach on" not in text and "Reasons" not in text
    full = table_text(realistic_data())
    assert "Breach on" in full and "Reasons" in full


def test_table_leads_with_the_like_for_like_month_to_date() -> None:
    """The line under the header compares the month so far with the same days of the previous month and
    labels the whole-month comparison as not like for like while the month is open."""
    text = table_text(realistic_data())
    line = next(row for row in text.splitlines() if row.startswith("Month to date"))
    assert "(27 of 30 days)" in line and "same days of 2025-05" in line and "not like for like" in line
