"""The report as JSON: every amount a decimal string at full precision, no float anywhere, the quota as its own JSON."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from dbcost.money import fmt
from dbcost.quota import Policy, PoolPolicy, evaluate
from dbcost.report import render_json
from tests.report.helpers import quota_pool, quota_report, small_data, spread_month, walk

D = Decimal


def test_json_amounts_are_the_input_decimals_as_strings() -> None:
    """Every amount in the JSON is a decimal string equal to the input Decimal, at full precision."""
    data = small_data()
    out = render_json(data)
    may = data.current
    assert out["month"] == "2024-05" and out["metric"] == "UnblendedCost"
    assert out["total"] == "3495.8650000001" == fmt(may.total)
    assert out["unattributed"] == "80.0" and D(out["unattributed"]) == may.unattributed
    assert out["estimated_share"] == "0.028605"
    teams = {t["team"]: t for t in out["teams"]}
    assert [t["team"] for t in out["teams"]] == ["payments", "search", "analytics"]
    assert teams["analytics"]["amount"] == "599.9900000001"
    assert teams["payments"]["previous"] == "1740" and teams["payments"]["shared"] == "50"
    warehouse = teams["analytics"]["clusters"][0]
    assert warehouse["amount"] == "599.9900000001" and warehouse["categories"]["compute"] == "500.0000000001"
    assert {m["name"]: m["delta_pct"] for m in out["movers"]}["warehouse"] is None
    assert {m["name"]: m["delta"] for m in out["movers"]}["payments"] == "255.875"
    assert out["unclassified_usage_types"] == [{"service": "Amazon Relational Database Service",
                                                "usage_type": "USE1-Mystery:Thing", "amount": "4.5"}]
    assert out["quarantined"] == {"total": 7, "by_reason": [
        {"reason": "amount 'NaN' is not a plain decimal number", "count": 5},
        {"reason": "group has no Keys", "count": 2}]}
    assert out["freshness"][0] == {"target": "prod", "dataset": "cost-explorer daily",
                                   "last_success": "2024-06-03T06:00:00+00:00", "through": "2024-06-02"}
    assert out["freshness"][1]["last_success"] is None
    assert [h["month"] for h in out["history"]] == ["2024-03", "2024-04", "2024-05"]
    assert out["quota"] is None


def test_json_has_no_floats_and_serialises() -> None:
    """The JSON holds no float anywhere and round-trips through json.dumps; quota Decimals become strings."""
    data = small_data(quota=quota_report(quota_pool("p", "OK", budget="10.50", actual="9.1", forecast="9.1"),
                                         month="2024-05"))
    out = render_json(data)
    assert not any(isinstance(v, float) for v in walk(out))
    assert json.loads(json.dumps(out)) == out
    assert out["quota"]["pools"][0]["budget"] == "10.50"


def test_json_quota_is_the_quota_reports_own_json() -> None:
    """The quota member is exactly QuotaReport.to_json() of the evaluated report the data carries."""
    data = small_data()
    policy = Policy(pools=(PoolPolicy(name="pay", team="payments", monthly_budget_usd=D("1500")),
                           PoolPolicy(name="search", team="search", monthly_budget_usd=D("5000"))))
    report = evaluate(policy, data.current, today=dt.date(2024, 5, 20))
    out = render_json(small_data(quota=report))
    assert out["quota"] == report.to_json()
    assert out["quota"]["pools"][0]["actual"] == "1995.875" and out["quota"]["worst"] == "BREACH"
    assert json.loads(json.dumps(out))["quota"] == report.to_json()


def test_json_carries_the_currency_the_month_to_date_and_the_daily_series() -> None:
    """The JSON has the figures the HTML leads with: currency, the like-for-like month to date beside the
    whole-month delta, and spend per day and team (summing to the total)."""
    june, may = spread_month("2024-06", "pay", "10", 10), spread_month("2024-05", "pay", "20", 31)
    out = render_json(small_data(month="2024-06", current=june, previous=may, history=[may, june]))
    assert out["currency"] == "USD"
    assert out["month_to_date"] == {
        "days": 10, "days_in_month": 30, "through": "2024-06-11", "partial": True, "current": "100",
        "previous_same_days": "200", "delta": "-100", "delta_pct": "-50.00", "previous_month": "2024-05",
        "previous_whole_month": "620", "whole_month_delta": "-520", "whole_month_delta_pct": "-83.87"}
    assert len(out["daily"]) == 10 and sum(D(d["total"]) for d in out["daily"]) == june.total
    assert out["daily"][0] == {"day": "2024-06-01", "total": "10", "teams": {"pay": "10"}}
    assert out["teams"][0]["previous_same_days"] == "200"
    assert render_json(small_data(previous=None))["month_to_date"] is None
