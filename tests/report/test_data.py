"""The report's derived figures: movers (exact deltas, order, new and gone), estimated share, category totals."""

from __future__ import annotations

from decimal import Decimal

from dbcost.attribution.model import SHARED_CLUSTER, UNATTRIBUTED
from dbcost.money import sum_amounts
from dbcost.report import Mover, category_totals, estimated_share, movers
from dbcost.report.data import daily_totals, month_to_date, team_month_to_date
from tests.report.helpers import attribution, small_data, small_history, spread_month

D = Decimal


def test_movers_exact_deltas_and_order() -> None:
    """Movers are exact Decimal differences per team and cluster, by absolute delta, ties by name."""
    data = small_data()
    got = movers(data.current, data.previous)
    assert [(m.kind, m.name) for m in got] == [
        ("team", "analytics"), ("cluster", "warehouse"), ("team", "payments"), ("cluster", "pay-main"),
        ("team", "search"), ("cluster", "search-pg"), ("cluster", "legacy-db"), ("cluster", "orphan-db"),
        ("team", UNATTRIBUTED),
    ]
    by = {(m.kind, m.name): m for m in got}
    assert by["team", "payments"] == Mover("payments", "team", D("1740"), D("1995.875"), D("255.875"), D("14.71"),
                                           "payments")
    assert by["team", "search"].delta == D("-160") and by["team", "search"].delta_pct == D("-16.33")
    assert by["cluster", "pay-main"].delta == D("205.875")
    assert by["cluster", "legacy-db"] == Mover("legacy-db", "cluster", D("60"), D("0"), D("-60"), D("-100.00"),
                                               "search")
    assert by["team", UNATTRIBUTED].delta_pct == D("-20.00")


def test_movers_new_cluster_has_no_percentage() -> None:
    """A team or cluster with nothing last month has delta = its amount and delta_pct None."""
    data = small_data()
    by = {(m.kind, m.name): m for m in movers(data.current, data.previous)}
    assert by["cluster", "warehouse"] == Mover("warehouse", "cluster", D("0"), D("599.9900000001"),
                                               D("599.9900000001"), None, "analytics")
    assert by["team", "analytics"].delta_pct is None


def test_movers_leave_out_unchanged_and_shared_and_respect_top() -> None:
    """Unchanged clusters and the shared pseudo-cluster are not movers; ``top`` caps teams and clusters each."""
    data = small_data()
    names = {m.name for m in movers(data.current, data.previous)}
    assert "pay-replica" not in names and SHARED_CLUSTER not in names
    top1 = movers(data.current, data.previous, top=1)
    assert [(m.kind, m.name) for m in top1] == [("team", "analytics"), ("cluster", "warehouse")]


def test_movers_without_previous_month() -> None:
    """No previous month gives no movers."""
    assert movers(small_history()[-1], None) == []


def test_estimated_share() -> None:
    """estimated_share is estimated_amount / total (six places), and 0 when the month has no spend."""
    may = small_history()[-1]
    assert may.total == D("3495.8650000001")
    assert estimated_share(may) == (D("100") / may.total).quantize(D("0.000001"))
    assert estimated_share(may) == D("0.028605")
    empty = attribution("2024-06", [])
    assert estimated_share(empty) == 0


def test_category_totals_add_up_to_the_total() -> None:
    """Category totals cover teams, shared and unattributed spend, summing to the month's total exactly."""
    may = small_history()[-1]
    totals = category_totals(may)
    assert list(totals) == ["compute", "storage", "io", "backup", "other", "shared"]
    assert totals["compute"] == D("2976.0000000001")
    assert sum_amounts(totals.values()) == may.total


def test_trend_is_the_history_by_month_with_the_current_month() -> None:
    """trend() orders the history by month and stands the current month in for its own (added if missing)."""
    march, april, _ = small_history()
    data = small_data(history=[april, march])
    assert [a.month for a in data.trend()] == ["2024-03", "2024-04", "2024-05"]
    assert data.trend()[-1] is data.current
    assert [a.month for a in small_data(history=[]).trend()] == ["2024-05"]


def test_month_to_date_compares_the_same_days_and_labels_the_whole_month() -> None:
    """June through the 10th (10/day) against May (20/day, all 31 days): the like-for-like delta is 100 vs the
    200 of May 1-10 (-50 %); the whole-month delta (100 vs 620) is reported beside it, the month partial."""
    june, may = spread_month("2024-06", "pay", "10", 10), spread_month("2024-05", "pay", "20", 31)
    m = month_to_date(june, may)
    assert m is not None
    assert (m.days, m.days_in_month, m.current, m.previous, m.delta, m.delta_pct) == (
        10, 30, D("100"), D("200"), D("-100"), D("-50.00"))
    assert (m.previous_month, m.previous_whole, m.whole_delta, m.whole_delta_pct, m.partial) == (
        "2024-05", D("620"), D("-520"), D("-83.87"), True)
    assert team_month_to_date(june, may, "pay") == (D("100"), D("200"))
    assert month_to_date(june, None) is None


def test_a_shorter_previous_month_counts_all_of_it() -> None:
    """March 1-30 against a 29-day February: the same days are all of February; a complete month is not partial."""
    march, feb = spread_month("2024-03", "pay", "1", 31), spread_month("2024-02", "pay", "2", 29)
    m = month_to_date(march, feb)
    assert m is not None and (m.days, m.previous, m.partial) == (31, D("58"), False)


def test_daily_totals_cover_every_day_of_the_month_and_sum_to_the_total() -> None:
    """Daily totals have one entry per calendar day (zero after the data ends) and sum to the month's total."""
    june = spread_month("2024-06", "pay", "10", 10)
    days = daily_totals(june)
    assert len(days) == 30 and sum(days.values()) == june.total and days[max(days)] == 0
