"""Request rules, filters, page slicing and malformation, without HTTP."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbcost.emulator import Fleet, malformation
from dbcost.emulator.errors import AwsError
from dbcost.emulator.query import CostResult, Engine, parse_cost_request, render_page, truth_of

from .helpers import TODAY

_SMALL = Fleet(seed=5, clusters=30, accounts=3, anchor=TODAY)


def _req(start: str, end: str, granularity: str = "DAILY", **extra: Any) -> dict[str, Any]:
    return {"TimePeriod": {"Start": start, "End": end}, "Granularity": granularity,
            "Metrics": ["UnblendedCost"], **extra}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (_req("2026/10/01", "2026-10-02"), "not a valid date"),
        (_req("2026-02-30", "2026-03-02"), "not a valid calendar date"),
        (_req("2026-10-02", "2026-10-02"), "should be before end"),
        (_req("2025-09-30", "2025-10-02"), "DAILY data is available from 2025-10-01"),
        (_req("2023-08-01", "2023-10-01", "MONTHLY"), "MONTHLY data is available from 2023-09-01"),
        (_req("2024-03-15", "2024-05-01", "MONTHLY"), "must be the first day of a month"),
        (_req("2026-11-13T00:00:00Z", "2026-11-14T00:00:00Z", "HOURLY"), "last 14 days only"),
        (_req("2026-11-14T00:00:00Z", "2026-11-28T01:00:00Z", "HOURLY"), "at most 14 days"),
        (_req("2026-11-20T10:30:00Z", "2026-11-21T00:00:00Z", "HOURLY"), "whole hour"),
        (_req("2026-10-01", "2026-10-02", "WEEKLY"), "Granularity must be"),
        ({**_req("2026-10-01", "2026-10-02"), "Metrics": ["Cost"]}, "not a valid metric"),
        ({**_req("2026-10-01", "2026-10-02"), "Metrics": []}, "non-empty"),
        ({**_req("2026-10-01", "2026-10-02"), "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}] * 1
          + [{"Type": "TAG", "Key": "team"}, {"Type": "TAG", "Key": "env"}]}, "at most two"),
        ({**_req("2026-10-01", "2026-10-02"), "GroupBy": [{"Type": "DIMENSION", "Key": "AZ"}]}, "not supported"),
        ({**_req("2026-10-01", "2026-10-02"), "GroupBy": [{"Type": "COST_CATEGORY", "Key": "x"}]}, "does not exist"),
        ({**_req("2026-10-01", "2026-10-02"), "GroupBy": [{"Type": "TAG", "Key": "a$b"}]}, "must not contain"),
        ({**_req("2026-10-01", "2026-10-02"), "GroupBy": [{"Type": "TAG", "Key": "team"}] * 2}, "repeats"),
        ({**_req("2026-10-01", "2026-10-02"), "Filter": {}}, "exactly one root"),
        ({**_req("2026-10-01", "2026-10-02"), "Filter": {"Dimensions": {"Key": "SERVICE", "Values": ["x"]},
                                                          "Tags": {"Key": "team", "Values": ["x"]}}},
         "exactly one root"),
        ({**_req("2026-10-01", "2026-10-02"), "Filter": {"CostCategories": {"Key": "c", "Values": ["v"]}}},
         "no cost categories"),
        ({**_req("2026-10-01", "2026-10-02"), "Filter": {"Not": {"Dimensions": {"Key": "SERVICE",
                                                                                 "Values": ["Tax"]}}}},
         "inside Not"),
        ({**_req("2026-10-01", "2026-10-02"), "Filter": {"And": [{"Tags": {"Key": "team", "Values": ["a"]}}]}},
         "at least two"),
        ({**_req("2026-10-01", "2026-10-02"), "Filter": {"Dimensions": {"Key": "AZ", "Values": ["a"]}}},
         "not supported"),
    ],
)
def test_rules_are_validation_exceptions(body: dict[str, Any], fragment: str) -> None:
    """Each broken Cost Explorer rule is a ValidationException (HTTP 400) whose message says which."""
    with pytest.raises(AwsError) as info:
        parse_cost_request(body, today=TODAY)
    assert info.value.code == "ValidationException"
    assert info.value.status == 400
    assert fragment in info.value.message


@pytest.mark.parametrize(
    "body",
    [
        _req("2025-10-01", "2025-10-02"),
        _req("2023-09-01", "2023-10-01", "MONTHLY"),
        _req("2025-10-15", "2025-11-01", "MONTHLY"),
        _req("2026-11-14T00:00:00Z", "2026-11-28T00:00:00Z", "HOURLY"),
        _req("2026-11-20", "2026-11-21", "HOURLY"),
        _req("2026-11-01", "2027-01-01", "MONTHLY"),
    ],
)
def test_edges_of_the_windows_are_accepted(body: dict[str, Any]) -> None:
    """The oldest legal starts (13 months daily, 38 months monthly, 14 days hourly) pass."""
    parse_cost_request(body, today=TODAY)


def _filtered(flt: dict[str, Any]) -> dict[str, Any]:
    body = {**_req("2026-10-05", "2026-10-06"), "Filter": flt,
            "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "team"}]}
    return truth_of(
        Engine(_SMALL).cost_and_usage(parse_cost_request(body, today=TODAY), today=TODAY, version=0),
        seed=_SMALL.seed,
        malformed_rate=0.0,
    )


def test_filters_select_what_they_say() -> None:
    """Dimensions, Tags (incl. untagged), And/Or/Not select the matching groups only."""
    rds = _filtered({"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Relational Database Service"]}})
    assert rds["by_keys"]
    assert {r["keys"]["SERVICE"] for r in rds["by_keys"]} == {"Amazon Relational Database Service"}
    untagged = _filtered({"Tags": {"Key": "team", "MatchOptions": ["ABSENT"]}})
    assert {r["keys"]["TAG:team"] for r in untagged["by_keys"]} == {""}
    empty_value = _filtered({"Tags": {"Key": "team", "Values": [""]}})
    assert empty_value == untagged
    tagged = _filtered({"Not": {"Tags": {"Key": "team", "MatchOptions": ["ABSENT"]}}})
    assert "" not in {r["keys"]["TAG:team"] for r in tagged["by_keys"]}
    both = _filtered({"And": [{"Dimensions": {"Key": "SERVICE", "Values": ["Amazon DynamoDB"]}},
                              {"Tags": {"Key": "team", "Values": ["payments", "search"]}}]})
    assert {(r["keys"]["SERVICE"], r["keys"]["TAG:team"]) for r in both["by_keys"]} <= {
        ("Amazon DynamoDB", "payments"), ("Amazon DynamoDB", "search")}
    either = _filtered({"Or": [{"Dimensions": {"Key": "RECORD_TYPE", "Values": ["Tax"]}},
                               {"Dimensions": {"Key": "USAGE_TYPE", "Values": ["BoxUsage:m5.large"],
                                               "MatchOptions": ["EQUALS"]}}]})
    assert {r["keys"]["SERVICE"] for r in either["by_keys"]} == {"Amazon Elastic Compute Cloud - Compute"}
    prefixed = _filtered({"Dimensions": {"Key": "USAGE_TYPE", "Values": ["euw2-"],
                                         "MatchOptions": ["STARTS_WITH", "CASE_INSENSITIVE"]}})
    all_rows = _filtered({"Dimensions": {"Key": "REGION", "Values": ["eu-west-2"]}})
    assert prefixed["metrics"] == all_rows["metrics"]


def test_malformation_is_a_function_of_group_identity() -> None:
    """The same (seed, granularity, period, keys) is malformed the same way every time; rate ~ share."""
    keys = ("Amazon DynamoDB", "team$search")
    first = [malformation(7, 0.3, "DAILY", f"2026-10-{d:02d}", keys) for d in range(1, 29)]
    again = [malformation(7, 0.3, "DAILY", f"2026-10-{d:02d}", keys) for d in range(1, 29)]
    assert first == again
    assert malformation(7, 0.0, "DAILY", "2026-10-01", keys) is None
    assert malformation(7, 1.0, "DAILY", "2026-10-01", keys) is not None
    many = [malformation(7, 0.2, "DAILY", "2026-10-01", (f"k{i}",)) for i in range(5000)]
    share = sum(m is not None for m in many) / len(many)
    assert 0.17 < share < 0.23
    assert {m for m in many if m} == {"nan", "locale", "empty", "no-unit", "no-metrics", "key-count"}


_RESULT: CostResult = Engine(_SMALL).cost_and_usage(
    parse_cost_request(
        {**_req("2026-10-20", "2026-11-01"), "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"},
                                                         {"Type": "TAG", "Key": "env"}]},
        today=TODAY,
    ),
    today=TODAY,
    version=0,
)


@settings(max_examples=40, deadline=None)
@given(page_size=st.integers(min_value=1, max_value=400))
def test_pages_concatenate_to_the_whole_result(page_size: int) -> None:
    """At any page size, pages hold every group once, in order, and every period appears."""
    offset: int | None = 0
    seen: list[tuple[str, tuple[str, ...]]] = []
    periods: list[str] = []
    while offset is not None:
        page = render_page(_RESULT, offset, page_size, seed=5, malformed_rate=0.0, account_names={})
        assert page.groups <= page_size
        for r in page.payload["ResultsByTime"]:
            if not periods or periods[-1] != r["TimePeriod"]["Start"]:
                periods.append(r["TimePeriod"]["Start"])
            seen.extend((r["TimePeriod"]["Start"], tuple(g["Keys"])) for g in r["Groups"])
        offset = page.next_offset
    expected = [(pr.period.start, keys) for pr in _RESULT.periods for keys, _ in pr.groups]
    assert seen == expected
    assert periods == [pr.period.start for pr in _RESULT.periods]


def test_trailing_empty_periods_come_with_the_last_page() -> None:
    """Periods without groups (from today on) are served on the page where their position falls."""
    result = Engine(_SMALL).cost_and_usage(
        parse_cost_request({**_req("2026-11-26", "2026-12-01"), "GroupBy": [{"Type": "DIMENSION",
                                                                             "Key": "SERVICE"}]}, today=TODAY),
        today=TODAY,
        version=0,
    )
    total = result.total_groups
    assert total > 2
    first = render_page(result, 0, total - 1, seed=5, malformed_rate=0.0, account_names={})
    last = render_page(result, total - 1, total - 1, seed=5, malformed_rate=0.0, account_names={})
    assert first.next_offset == total - 1
    assert last.next_offset is None
    starts = [r["TimePeriod"]["Start"] for r in last.payload["ResultsByTime"]]
    assert starts[-3:] == ["2026-11-28", "2026-11-29", "2026-11-30"]
    assert all(not r["Groups"] for r in last.payload["ResultsByTime"][-3:])


@pytest.mark.parametrize(("today", "through", "estimated"), [
    (dt.date(2026, 12, 1), 5, ["2026-11-01", "2026-11-30"]),  # on the 1st November is not final yet
    (dt.date(2026, 12, 5), 5, ["2026-11-01", "2026-11-30"]),
    (dt.date(2026, 12, 6), 5, []),  # from the 6th it is
    (dt.date(2026, 12, 1), 0, []),
    (dt.date(2026, 12, 9), 10, ["2026-11-01", "2026-11-30"]),
])
def test_previous_month_is_estimated_until_the_configured_day(today: dt.date, through: int,
                                                              estimated: list[str]) -> None:
    """DAILY November is Estimated in December through the engine's ``estimated_through_day``, then final;
    October never is, December's days always are."""
    engine = Engine(_SMALL, estimated_through_day=through)
    result = engine.cost_and_usage(parse_cost_request(_req("2026-10-30", today.isoformat()), today=today,
                                                      check_dates=False), today=today, version=0)
    flagged = [p.period.start for p in result.periods if p.period.estimated]
    november = [s for s in flagged if s.startswith("2026-11")]
    if estimated:
        assert [november[0], november[-1]] == estimated and len(november) == 30
    else:
        assert november == []
    assert not any(s.startswith("2026-10") for s in flagged)
    assert all(p.period.estimated for p in result.periods if p.period.start.startswith("2026-12"))


def test_monthly_periods_are_clipped_and_estimated_on_the_open_month() -> None:
    """MONTHLY windows cut partial months at the edges; only today's month is Estimated."""
    result = Engine(_SMALL).cost_and_usage(
        parse_cost_request(_req("2026-09-15", "2026-12-10", "MONTHLY"), today=TODAY), today=TODAY, version=0
    )
    spans = [(p.period.start, p.period.end, p.period.estimated) for p in result.periods]
    assert spans == [
        ("2026-09-15", "2026-10-01", False),
        ("2026-10-01", "2026-11-01", False),
        ("2026-11-01", "2026-12-01", True),
        ("2026-12-01", "2026-12-10", True),
    ]
    assert result.periods[2].period.days[-1] == dt.date(2026, 11, 27)
