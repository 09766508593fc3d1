"""Quota policies and their evaluation: exact money, status boundaries, breach dates, the CI gate, changes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest

from dbcost.attribution.model import UNATTRIBUTED, Attribution, DailySpend
from dbcost.emulator.fleet import TEAMS, Fleet, units_to_decimal, unpack
from dbcost.errors import ConfigError
from dbcost.money import sum_amounts
from dbcost.quota import (
    EXIT_BREACH,
    EXIT_WARN,
    TABLE_HEADER,
    Policy,
    PoolPolicy,
    QuotaReport,
    evaluate,
    exit_code,
    format_usd,
    load_policy,
    render_table,
    status_changes,
    table_rows,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "dbcost" / "data" / "policy.example.toml"
NOV = "2026-11"  # 30 days


def d(day: int, month: int = 11) -> dt.date:
    return dt.date(2026, month, day)


Row = tuple[int, str, str, str] | tuple[int, str, str, str, bool]


def attribution(rows: Iterable[Row], *, month: str = NOV, metric: str = "UnblendedCost",
                through: dt.date | None = None) -> Attribution:
    """An attribution with only the daily series filled in (all that evaluation reads)."""
    daily = []
    for row in rows:
        day, team, category, amount = row[:4]
        estimated = bool(row[4]) if len(row) == 5 else False
        year, mon = (int(x) for x in month.split("-"))
        daily.append(DailySpend(dt.date(year, mon, int(day)), str(team), str(category), Decimal(str(amount)),
                                estimated))
    total = sum_amounts(r.amount for r in daily)
    return Attribution(month=month, metric=metric, total=total, unattributed=Decimal(0), teams=[], daily=daily,
                       through=through)


def pool(name: str = "p", team: str = "a", budget: str = "100", **kw: Any) -> PoolPolicy:
    return PoolPolicy.model_validate({"name": name, "team": team, "monthly_budget_usd": budget, **kw})


def one(p: PoolPolicy, attr: Attribution, today: dt.date, **kw: Any) -> Any:
    report = evaluate(Policy(pools=(p,)), attr, today=today, **kw)
    assert len(report.pools) == 1
    return report.pools[0]


def daily(team: str, amount: str, days: Iterable[int], category: str = "compute") -> list[Row]:
    return [(day, team, category, amount) for day in days]


# -------------------------------------------------------------------------------------- numbers


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


# --------------------------------------------------------------------------------------- status


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


# ---------------------------------------------------------------------------------- breach date


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


# ------------------------------------------------------------------------------ estimated, aws, json


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


def test_table_and_usd_formatting() -> None:
    """The table shows cents, percentages and the breach day; format_usd rounds half to even."""
    attr = attribution(daily("a", "12.5", range(1, 10)))
    report = evaluate(Policy(pools=(pool("payments", "a", "500"),)), attr, today=d(10))
    assert table_rows(report) == [("payments", "a", "OK", "$112.50", "$500.00", "22.50%", "$375.00", "-", "no")]
    text = render_table(report)
    assert text.splitlines()[1].split() == [*TABLE_HEADER[:7], "breach", "on", "estimated"]
    assert format_usd(Decimal("1234.565")) == "$1,234.56" and format_usd(Decimal("-0.015")) == "-$0.02"


# ------------------------------------------------------------------------------- gate and changes


def report_with(*statuses: str) -> QuotaReport:
    """A report whose pools have the given statuses (closed month, budget 100, actual chosen per status)."""
    amount = {"OK": "10", "WARN": "90", "BREACH": "150"}
    rows: list[Row] = [(1, f"t{i}", "compute", amount[s]) for i, s in enumerate(statuses)]
    pools = tuple(pool(f"p{i}", f"t{i}", "100") for i in range(len(statuses)))
    report = evaluate(Policy(pools=pools), attribution(rows), today=d(1, 12))
    assert [p.status for p in report.pools] == list(statuses)
    return report


@pytest.mark.parametrize(
    ("statuses", "fail_on", "code"),
    [
        (("OK", "WARN", "BREACH"), None, 0),
        (("OK",), None, 0),
        (("OK", "OK"), "breach", 0),
        (("OK", "WARN"), "breach", 0),
        (("WARN", "BREACH"), "breach", EXIT_BREACH),
        (("OK", "OK"), "warn", 0),
        (("OK", "WARN"), "warn", EXIT_WARN),
        (("BREACH", "WARN"), "warn", EXIT_BREACH),
        (("BREACH",), "warn", 5),
    ],
)
def test_exit_code_matrix(statuses: tuple[str, ...], fail_on: Literal["warn", "breach"] | None, code: int) -> None:
    """0 without fail_on; breach -> 5 on any BREACH; warn -> 5 on BREACH, 4 on WARN, else 0."""
    assert exit_code(report_with(*statuses), fail_on) == code


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


# ---------------------------------------------------------------------------------------- policy


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_policy_loads() -> None:
    """the packaged example policy is valid and budgets teams of the emulator's fleet."""
    pol = load_policy(EXAMPLE)
    assert len(pol.pools) >= 6
    assert {p.team for p in pol.pools} <= set(TEAMS)
    assert all(isinstance(p.monthly_budget_usd, Decimal) for p in pol.pools)
    assert any(p.category_caps for p in pol.pools)


@pytest.mark.parametrize(("literal", "expected"), [("0.1", "0.1"), ('"0.1"', "0.1"), ("100", "100"),
                                                   ("1_000.25", "1000.25"), ("2.5e3", "2.5E+3")])
def test_budget_is_an_exact_decimal(tmp_path: Path, literal: str, expected: str) -> None:
    """TOML floats, strings and ints all become exact Decimals: 0.1 is Decimal("0.1"), never a float."""
    pol = load_policy(write(tmp_path, f'[[pool]]\nname = "x"\nteam = "a"\nmonthly_budget_usd = {literal}\n'
                                      f"warn_at = 0.7\n[pool.category_caps]\nio = 0.3\n"))
    p = pol.pools[0]
    assert p.monthly_budget_usd == Decimal(expected) and str(p.monthly_budget_usd) == expected
    assert p.warn_at == Decimal("0.7") and p.category_caps == {"io": Decimal("0.3")}


def test_python_floats_go_through_str() -> None:
    """A float given in code is converted with Decimal(str(x)): 0.1 -> Decimal("0.1")."""
    p = PoolPolicy.model_validate({"name": "x", "team": "a", "monthly_budget_usd": 0.1, "warn_at": 0.9,
                                   "category_caps": {"io": 0.2}})
    assert (p.monthly_budget_usd, p.warn_at, p.category_caps["io"]) == (Decimal("0.1"), Decimal("0.9"),
                                                                          Decimal("0.2"))


def test_defaults_and_metric_case() -> None:
    """warn_at defaults to 0.8, metric to UnblendedCost; a metric name is matched case-insensitively."""
    p = pool()
    assert p.warn_at == Decimal("0.8") and p.metric == "UnblendedCost" and p.category_caps == {}
    assert pool(metric="amortizedcost").metric == "AmortizedCost"


GOOD = '[[pool]]\nname = "a"\nteam = "a"\nmonthly_budget_usd = 1\n'


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\nbudget = 5\n',
         "pool #2 'b': budget: unknown key"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = -5\n',
         "pool #2 'b': monthly_budget_usd: must be greater than 0, got -5"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 0\n',
         "pool #2 'b': monthly_budget_usd: must be greater than 0"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = "12,50"\n',
         "pool #2 'b': monthly_budget_usd: amount '12,50' is not a plain decimal number"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = nan\n',
         "pool #2 'b': monthly_budget_usd: amount 'NaN' is not a plain decimal number"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = true\n',
         "pool #2 'b': monthly_budget_usd: must be a number or a decimal string, got bool"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\n[pool.category_caps]\ngpu = 3\n',
         "pool #2 'b': category_caps: unknown category 'gpu'"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\n[pool.category_caps]\nshared = 3\n',
         "pool #2 'b': category_caps: unknown category 'shared'"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\n[pool.category_caps]\nio = -3\n',
         "pool #2 'b': category_caps: io: must be greater than 0, got -3"),
        (GOOD + '[[pool]]\nname = "a"\nteam = "b"\nmonthly_budget_usd = 1\n',
         "pool #2 'a': name: duplicate pool name (already used by pool #1)"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\nwarn_at = 1.5\n',
         "pool #2 'b': warn_at: must be > 0 and <= 1, got 1.5"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\nwarn_at = 0\n',
         "pool #2 'b': warn_at: must be > 0 and <= 1, got 0"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\nmetric = "UsageQuantity"\n',
         "pool #2 'b': metric: unknown cost metric 'UsageQuantity'"),
        (GOOD + '[[pool]]\nname = "b"\nmonthly_budget_usd = 1\n', "pool #2 'b': team: required"),
        (GOOD + '[[pool]]\nteam = "b"\nmonthly_budget_usd = 1\n', "pool #2 (no name): name: required"),
        (GOOD + '[[pool]]\nname = "b c"\nteam = "b"\nmonthly_budget_usd = 1\n', "pool #2 'b c': name: must be"),
        ('[pool]\nname = "a"\n', "pool: write each pool as [[pool]]"),
        ("# nothing\n", "no pools"),
        (GOOD + "[defaults]\nwarn_at = 0.5\n", "unknown top-level key 'defaults'"),
        (GOOD + "[[pool]\n", "not valid TOML"),
    ],
)
def test_bad_policy_is_one_config_error_line(tmp_path: Path, text: str, where: str) -> None:
    """Each kind of bad policy is one ConfigError line naming the file, the pool (index, name) and the field."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"policy {path}: ")
    assert where in message


def test_unreadable_policy(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming it."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"^policy .*nope\.toml: cannot read: No such file"):
        load_policy(missing)


def test_several_errors_in_one_pool_are_counted(tmp_path: Path) -> None:
    """Only the first error is spelled out; the line says how many more there are."""
    with pytest.raises(ConfigError, match=r"pool #1 'x': team: required \(and 1 more error\)$"):
        load_policy(write(tmp_path, '[[pool]]\nname = "x"\nmonthly_budget_usd = -1\n'))


def test_policy_models_are_frozen_and_unique() -> None:
    """Policy objects are immutable, and building one in code also refuses duplicate pool names."""
    p = pool()
    with pytest.raises(ValueError, match="frozen"):
        p.team = "b"  # type: ignore[misc]
    with pytest.raises(ValueError, match="duplicate pool name 'p'"):
        Policy(pools=(pool(), pool()))
    with pytest.raises(ValueError, match="at least 1"):
        Policy(pools=())


def test_example_policy_gives_a_mix_of_statuses_on_the_fleet() -> None:
    """On the emulator's default fleet (2026-11-28, database spend by team tag) the example policy yields
    OK, WARN and BREACH pools."""
    today = d(28)
    fleet = Fleet(seed=7, clusters=240, accounts=6, anchor=today)
    category_of = {"transfer": "data_transfer"}
    rows: list[DailySpend] = []
    day = d(1)
    while day < today:
        item = fleet.day(day)
        for tid, packed in zip(item.tids, item.packed, strict=True):
            line = fleet.lines[tid]
            team = line.tags.get("team")
            if line.cluster is None or team is None:
                continue
            rows.append(DailySpend(day, team, category_of.get(line.category, line.category),
                                   units_to_decimal(unpack(packed)[0]), False))
        day += dt.timedelta(days=1)
    attr = Attribution(month=NOV, metric="UnblendedCost", total=sum_amounts(r.amount for r in rows),
                       unattributed=Decimal(0), teams=[], daily=rows)
    report = evaluate(load_policy(EXAMPLE), attr, today=today)
    statuses = {p.pool: p.status for p in report.pools}
    assert set(statuses.values()) == {"OK", "WARN", "BREACH"}, statuses
