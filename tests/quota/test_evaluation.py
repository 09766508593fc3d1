"""Quota evaluation: exact money, run-rate forecasts, status boundaries, breach dates, the JSON contract, changes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import pytest

from dbcost.attribution.model import UNATTRIBUTED
from dbcost.errors import ConfigError
from dbcost.quota import Policy, QuotaReport, evaluate, render_table, status_changes, table_rows
from tests.quota.helpers import Row, attribution, d, daily, one, pool, report_with

# ------------------------------------------------------------------------------------------ numbers


def test_actual_burn_and_forecast_are_exact() -> None:
    """100 spent over 3 days: burn 33.3333333333 (10 places), forecast exactly 1000 (not 999.9999999991)."""
    attr = attribution([(1, "a", "compute", "30"), (2, "a", "storage", "30"), (3, "a", "compute", "40")])
    e = one(pool(budget="5000"), attr, d(4))
    assert e.actual == Decimal("100")
    assert e.days_elapsed == 3 and e.days_remaining == 27
    assert e.burn_rate_per_day == Decimal("33.3333333333")
    assert e.forecast == Decimal("1000") and str(e.forecast) == "1000.0000000000"

def test_actual_is_never_rounded() -> None:
    """An actual with 10 decimal places comes back digit for digit, in the JSON too."""
    attr = attribution([(1, "a", "io", "0.0000000001"), (2, "a", "io", "12345678901234567.1234567891")])
    e = one(pool(budget="1"), attr, d(3))
    assert e.actual == Decimal("12345678901234567.1234567892")
    assert e.to_json()["actual"] == "12345678901234567.1234567892"

@pytest.mark.parametrize(("amount", "burn"), [("0.0000000001", "0E-10"), ("0.0000000003", "2E-10")])
def test_burn_rate_rounds_half_even(amount: str, burn: str) -> None:
    """A tie at the 11th place rounds to even: 0.5e-10 -> 0, 1.5e-10 -> 2e-10."""
    e = one(pool(), attribution([(1, "a", "io", amount)]), d(3))
    assert e.days_elapsed == 2
    assert e.burn_rate_per_day == Decimal(burn)

def test_only_days_before_today_count() -> None:
    """Spend on `today` itself (an incomplete day) and later is not month-to-date actual."""
    attr = attribution(daily("a", "10", range(1, 12)))
    e = one(pool(budget="1000"), attr, d(10))
    assert e.actual == Decimal("90") and e.days_elapsed == 9 and e.days_remaining == 21
    assert e.forecast == Decimal("300")

def test_attribution_through_shortens_the_elapsed_days() -> None:
    """When the data stops before today (billing lag), the burn rate uses only the days with data."""
    attr = attribution(daily("a", "10", range(1, 8)), through=d(8))
    report = evaluate(Policy(pools=(pool(budget="1000"),)), attr, today=d(10))
    e = report.pools[0]
    assert report.data_end == d(8)
    assert e.days_elapsed == 7 and e.burn_rate_per_day == Decimal("10") and e.forecast == Decimal("300")

def test_closed_month_forecast_is_actual() -> None:
    """A month that is over counts every day (the 30th included) and forecasts exactly its actual."""
    attr = attribution(daily("a", "2.5", range(1, 31)))
    e = one(pool(budget="1000"), attr, d(15, 12))
    assert e.actual == Decimal("75") and e.forecast == Decimal("75")
    assert e.days_elapsed == 30 and e.days_remaining == 0
    assert e.projected_breach_date is None

def test_future_month_has_no_data() -> None:
    """Evaluated before the month starts: actual and forecast 0, status OK."""
    attr = attribution(daily("a", "10", range(1, 5)))
    e = one(pool(), attr, d(20, 10))
    assert e.actual == 0 and e.forecast == 0 and e.status == "OK" and e.days_remaining == 30

def test_first_day_of_month_guards_the_division() -> None:
    """On the 1st no day is complete: days_elapsed is 1 (the guard), burn 0, forecast 0."""
    e = one(pool(), attribution([]), d(1))
    assert e.days_elapsed == 1 and e.burn_rate_per_day == 0 and e.forecast == 0 and e.status == "OK"

def test_team_without_spend_is_ok() -> None:
    """A pool whose team spent nothing: actual 0, OK, no categories, no breach date."""
    attr = attribution(daily("b", "99", range(1, 10)))
    e = one(pool(team="a"), attr, d(10))
    assert (e.actual, e.forecast, e.status, e.categories, e.projected_breach_date) == (0, 0, "OK", (), None)
    assert e.reasons == ()

def test_pool_on_unattributed_spend() -> None:
    """A pool may budget the spend without an owner (team "unattributed")."""
    attr = attribution(daily(UNATTRIBUTED, "10", range(1, 10)) + daily("a", "1", range(1, 10)))
    e = one(pool(team=UNATTRIBUTED, budget="50"), attr, d(10))
    assert e.actual == Decimal("90") and e.status == "BREACH"

def test_shared_spend_counts_toward_the_budget() -> None:
    """Allocated shared spend is part of the team's actual and reported as category `shared`."""
    attr = attribution([(1, "a", "compute", "10"), (1, "a", "shared", "5")])
    e = one(pool(budget="1000"), attr, d(2))
    assert e.actual == Decimal("15")
    assert [(c.category, c.actual, c.cap, c.status) for c in e.categories] == [
        ("compute", Decimal("10"), None, None), ("shared", Decimal("5"), None, None)]


# ------------------------------------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("actual", "status"),
    [("79.9999999999", "OK"), ("80", "WARN"), ("99.9999999999", "WARN"), ("100", "BREACH"), ("250", "BREACH")],
)
def test_status_boundaries(actual: str, status: str) -> None:
    """In a closed month (forecast = actual): exactly warn_at x budget is WARN, exactly the budget is BREACH."""
    attr = attribution([(3, "a", "compute", actual)])
    e = one(pool(budget="100", warn_at="0.8"), attr, d(1, 12))
    assert e.status == status
    assert e.warn_threshold == Decimal("80")

def test_warn_at_is_per_pool() -> None:
    """warn_at 0.5 warns at half the budget."""
    attr = attribution([(3, "a", "compute", "50")])
    assert one(pool(budget="100", warn_at=0.5), attr, d(1, 12)).status == "WARN"
    assert one(pool(budget="100", warn_at=0.51), attr, d(1, 12)).status == "OK"

@pytest.mark.parametrize(("budget", "status"), [("60", "WARN"), ("59.9999999999", "WARN"), ("60.0000000001", "OK")])
def test_forecast_driven_warn(budget: str, status: str) -> None:
    """10 spent in 5 days forecasts 60: WARN when the forecast reaches the budget, long before actual does."""
    attr = attribution(daily("a", "2", range(1, 6)))
    e = one(pool(budget=budget, warn_at="1"), attr, d(6))
    assert e.forecast == Decimal("60")
    assert e.status == status
    if status == "WARN":
        assert any(r.startswith("forecast $60.00 >= budget") for r in e.reasons)

def test_category_cap_breach() -> None:
    """A category at its cap breaches the pool even far under the pool budget."""
    attr = attribution(daily("a", "1", range(1, 6), "io") + daily("a", "1", range(1, 6)))
    e = one(pool(budget="1000", category_caps={"io": 5}), attr, d(6))
    assert e.status == "BREACH"
    io = next(c for c in e.categories if c.category == "io")
    assert (io.cap, io.actual, io.forecast, io.status) == (Decimal(5), Decimal(5), Decimal(30), "BREACH")
    assert e.reasons == ("io actual $5.00 >= cap $5.00",)

def test_category_cap_warn_from_forecast() -> None:
    """A category forecast to reach its cap warns; a capped category under it is OK; uncapped has no status."""
    attr = attribution(daily("a", "1", range(1, 6), "io") + daily("a", "1", range(1, 6), "storage")
                       + daily("a", "1", range(1, 6)))
    e = one(pool(budget="1000", category_caps={"io": "30", "storage": "31"}), attr, d(6))
    by = {c.category: c for c in e.categories}
    assert by["io"].status == "WARN" and by["storage"].status == "OK" and by["compute"].status is None
    assert e.status == "WARN"
    assert [c.category for c in e.categories] == ["compute", "storage", "io"]  # CATEGORY_ORDER

def test_capped_category_without_spend_is_reported() -> None:
    """A cap on a category the team did not use shows actual 0, OK."""
    e = one(pool(category_caps={"backup": 10}), attribution(daily("a", "1", [1])), d(2))
    backup = next(c for c in e.categories if c.category == "backup")
    assert (backup.actual, backup.forecast, backup.status) == (0, 0, "OK")


# -------------------------------------------------------------------------------------- breach date


def test_projected_breach_date_within_month() -> None:
    """50 spent at 10/day by the 6th, budget 100: the 10th is the first day ending at >= 100."""
    e = one(pool(budget="100", warn_at="1"), attribution(daily("a", "10", range(1, 6))), d(6))
    assert e.projected_breach_date == d(10)
    assert e.status == "WARN"

def test_projected_breach_date_rounds_up_to_a_whole_day() -> None:
    """Budget 100.0000000001 needs a sixth day of 10: the 11th."""
    e = one(pool(budget="100.0000000001"), attribution(daily("a", "10", range(1, 6))), d(6))
    assert e.projected_breach_date == d(11)

@pytest.mark.parametrize(("budget", "day"), [("30", 3), ("35", 4), ("10", 1)])
def test_breach_date_when_already_breached(budget: str, day: int) -> None:
    """Already over budget: the breach date is the first day the running total reached it."""
    e = one(pool(budget=budget), attribution(daily("a", "10", range(1, 10))), d(10))
    assert e.status == "BREACH" and e.projected_breach_date == d(day)

def test_breach_date_with_a_credit_uses_the_first_crossing() -> None:
    """A credit that dips the running total back under the budget does not move the first crossing."""
    rows: list[Row] = [(1, "a", "compute", "60"), (2, "a", "other", "-30"), (3, "a", "compute", "30")]
    e = one(pool(budget="50"), attribution(rows), d(4))
    assert e.projected_breach_date == d(1)

@pytest.mark.parametrize("rows", [daily("a", "1", range(1, 6)), [], [(1, "a", "other", "-5")]])
def test_no_breach_date_when_not_reached_this_month(rows: list[Row]) -> None:
    """A run rate that does not reach the budget by the 30th (or no/negative burn) gives no date."""
    e = one(pool(budget="1000"), attribution(rows), d(6))
    assert e.projected_breach_date is None

def test_breach_on_the_last_day_of_the_month() -> None:
    """A budget reached exactly at the end of the 30th is still in the month."""
    e = one(pool(budget="300"), attribution(daily("a", "10", range(1, 6))), d(6))
    assert e.forecast == Decimal("300") and e.projected_breach_date == d(30)


# ----------------------------------------------------------------------------- estimated, aws, json


def test_estimated_flag() -> None:
    """One estimated day among the counted ones marks the pool (and report) estimated; later days do not."""
    rows: list[Row] = [(1, "a", "compute", "1"), (2, "a", "compute", "1", True), (3, "b", "compute", "1"),
                       (9, "b", "compute", "1", True)]
    report = evaluate(Policy(pools=(pool("pa", "a"), pool("pb", "b"))), attribution(rows), today=d(5))
    assert report.pool("pa") is not None and report.pool("pa").estimated  # type: ignore[union-attr]
    assert not report.pools[1].estimated
    assert report.estimated and report.to_json()["estimated"] is True
    assert report.to_json()["pools"][0]["estimated"] is True
    assert [r[-1] for r in table_rows(report)] == ["yes", "no"]
    assert "estimated" in render_table(report)

def test_aws_forecast_is_reported_beside() -> None:
    """Cost Explorer's own forecast is shown with its difference to the run rate; it never sets the status."""
    attr = attribution(daily("a", "2", range(1, 6)))
    e = one(pool(budget="1000"), attr, d(6), aws_forecasts={"p": Decimal("66"), "other": Decimal("1")})
    assert e.aws_forecast == Decimal("66") and e.forecast == Decimal("60")
    assert e.forecast_delta_pct == Decimal("10.00") and e.status == "OK"
    no_aws = one(pool(budget="1000"), attr, d(6))
    assert no_aws.aws_forecast is None and no_aws.forecast_delta_pct is None

def test_metric_mismatch_names_the_pool() -> None:
    """A pool of another metric than the attribution's is a ConfigError naming the pool and both metrics."""
    pol = Policy(pools=(pool("ok"), pool("amortized", metric="AmortizedCost")))
    with pytest.raises(ConfigError, match=r"pool #2 'amortized': metric: AmortizedCost .* UnblendedCost"):
        evaluate(pol, attribution([]), today=d(5))

def test_report_json_contract() -> None:
    """to_json: month, today, pools with pool/team/budget/actual/forecast/status; every amount a decimal string."""
    attr = attribution(daily("a", "12.5", range(1, 10), "io") + daily("b", "1", range(1, 10)), metric="UnblendedCost")
    pol = Policy(pools=(pool("payments", "a", "500", category_caps={"io": "100"}), pool("search", "b", "1000")))
    report = evaluate(pol, attr, today=d(10), aws_forecasts={"payments": Decimal("380.5")})
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["month"] == "2026-11" and doc["today"] == "2026-11-10" and doc["worst"] == "BREACH"
    p = doc["pools"][0]
    assert {k: p[k] for k in ("pool", "team", "budget", "actual", "forecast", "status")} == {
        "pool": "payments", "team": "a", "budget": "500", "actual": "112.5", "forecast": "375.0000000000",
        "status": "BREACH"}
    assert p["burn_rate_per_day"] == "12.5000000000" and p["projected_breach_date"] is None  # the pool budget: io breached
    assert p["aws_forecast"] == "380.5" and p["forecast_delta_pct"] == "1.47"
    assert p["pct_of_budget"] == "22.50" and p["warn_threshold"] == "400.0"
    assert p["categories"] == [{"category": "io", "cap": "100", "actual": "112.5", "forecast": "375.0000000000",
                                "status": "BREACH"}]

    def amounts(node: Any) -> Iterable[Any]:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("budget", "actual", "forecast", "burn_rate_per_day", "cap", "aws_forecast"):
                    yield v
                yield from amounts(v)
        elif isinstance(node, list):
            for v in node:
                yield from amounts(v)

    found = [a for a in amounts(doc) if a is not None]
    assert found and all(isinstance(a, str) and Decimal(a) == Decimal(a) for a in found)


# -------------------------------------------------------------------------------- worst and changes


def test_worst() -> None:
    """worst orders OK < WARN < BREACH; a report without pools is OK."""
    assert report_with("OK", "BREACH", "WARN").worst == "BREACH"
    assert report_with("WARN", "OK").worst == "WARN"
    assert report_with("OK").worst == "OK"
    assert QuotaReport("2026-11", "UnblendedCost", d(2), d(2), 30, ()).worst == "OK"

def test_status_changes() -> None:
    """First-seen OK is silent, first-seen WARN/BREACH is news, OK->WARN and BREACH->OK are reported,
    WARN->WARN is not."""
    report = report_with("OK", "WARN", "BREACH", "WARN", "OK", "OK")
    previous = {"p3": "WARN", "p4": "BREACH", "p5": "OK", "gone": "BREACH"}
    changes = status_changes(report, previous)
    assert [(c.pool, c.old, c.new) for c in changes] == [
        ("p1", None, "WARN"), ("p2", None, "BREACH"), ("p4", "BREACH", "OK")]
    assert changes[0].evaluation is report.pools[1]
    ok_to_warn = status_changes(report_with("WARN"), {"p0": "OK"})
    assert [(c.old, c.new) for c in ok_to_warn] == [("OK", "WARN")]
    assert status_changes(report, {p.pool: p.status for p in report.pools}) == []
