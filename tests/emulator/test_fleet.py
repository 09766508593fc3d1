"""The synthetic fleet and the pure truth function: shape, determinism, restatement, speed."""

from __future__ import annotations

import collections
import datetime as dt
import re
import time
from decimal import Decimal
from typing import Any

import pytest

from dbcost.emulator import DATABASE_SERVICES, REGIONS, Fleet, truth
from dbcost.emulator.fleet import units_to_str, unpack
from dbcost.emulator.query import Engine, parse_cost_request, unit_of

from .helpers import OCTOBER_BY_SERVICE_AND_TEAM, TODAY


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet(seed=7, clusters=240, accounts=6, anchor=TODAY)


def _daily(start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {"TimePeriod": {"Start": start, "End": end}, "Granularity": "DAILY", "Metrics": ["UnblendedCost"],
            **extra}


def test_fleet_has_the_enterprise_shape(fleet: Fleet) -> None:
    """Hundreds of clusters over 6 named 12-digit accounts, six regions, every database service."""
    assert len(fleet.clusters) == 240
    assert len(fleet.accounts) == 6
    assert all(re.fullmatch(r"\d{12}", a.id) for a in fleet.accounts)
    assert len({a.id for a in fleet.accounts}) == 6
    assert {a.name for a in fleet.accounts} >= {"payments-prod", "sandbox-dev"}
    assert {c.region for c in fleet.clusters} == set(REGIONS)
    assert {c.service for c in fleet.clusters} == DATABASE_SERVICES
    deployments = {(c.engine, c.deployment) for c in fleet.clusters}
    for wanted in [("aurora-postgresql", "serverless-v2"), ("aurora-postgresql", "io-optimized"),
                   ("rds-mysql", "multi-az"), ("rds-postgresql", "single-az"), ("dynamodb", "on-demand"),
                   ("dynamodb", "provisioned")]:
        assert wanted in deployments


def test_usage_types_carry_region_prefixes_and_the_s3_dynamodb_collision(fleet: Fleet) -> None:
    """Usage types are prefixed outside us-east-1 and TimedStorage-ByteHrs is both S3 and DynamoDB."""
    by_region = collections.defaultdict(set)
    for line in fleet.lines:
        by_region[line.region].add(line.usage_type)
    assert "Aurora:StorageUsage" in by_region["us-east-1"]
    assert any(u.startswith("EUW2-") for u in by_region["eu-west-2"])
    assert all(u.startswith("USW2-") for u in by_region["us-west-2"])
    storage_services = {line.service for line in fleet.lines if line.usage_type == "TimedStorage-ByteHrs"}
    assert storage_services == {"Amazon DynamoDB", "Amazon Simple Storage Service"}
    usage_types = {line.usage_type for line in fleet.lines}
    assert any(u.startswith("InstanceUsageIOOptimized:db.") for u in usage_types)
    assert any(u.endswith("Aurora:ServerlessV2Usage") for u in usage_types)
    assert any("Multi-AZUsage:db." in u for u in usage_types)


def test_some_spend_is_untagged_or_team_less(fleet: Fleet) -> None:
    """5% of clusters carry no tags, 5% carry db-cluster but no team; some shared lines are untagged."""
    no_tags = sum(1 for c in fleet.clusters if not c.tags)
    no_team = sum(1 for c in fleet.clusters if "db-cluster" in c.tags and "team" not in c.tags)
    assert no_tags == no_team == 12
    tagged_cluster_ids = {c.id for c in fleet.clusters if c.tags}
    assert any(line.cluster in tagged_cluster_ids and not line.tags for line in fleet.lines)


def test_tax_is_a_monthly_line_on_the_first(fleet: Fleet) -> None:
    """RECORD_TYPE Tax appears on the 1st of a month only, untagged, under SERVICE Tax."""
    taxed = {line.tid for line in fleet.lines if line.record_type == "Tax"}
    assert len(taxed) == len(fleet.accounts)
    assert all(not fleet.lines[t].tags and fleet.lines[t].service == "Tax" for t in taxed)
    assert taxed <= set(fleet.day(dt.date(2026, 10, 1)).tids)
    assert not taxed & set(fleet.day(dt.date(2026, 10, 2)).tids)


def test_group_set_changes_over_time(fleet: Fleet) -> None:
    """Clusters are created and retired, so the db-cluster groups differ from month to month."""
    def clusters_in(start: str, end: str) -> set[str]:
        t = truth(fleet, {"TimePeriod": {"Start": start, "End": end}, "Granularity": "MONTHLY",
                          "Metrics": ["UnblendedCost"], "GroupBy": [{"Type": "TAG", "Key": "db-cluster"}]},
                  today=TODAY)
        return {row["keys"]["TAG:db-cluster"] for row in t["by_keys"]}

    early, late = clusters_in("2024-01-01", "2024-02-01"), clusters_in("2026-10-01", "2026-11-01")
    assert early - late, "some clusters retired"
    assert late - early, "some clusters created"


def test_same_seed_same_truth_and_other_seed_differs() -> None:
    """Two fleets with one seed give identical truth; another seed gives different numbers."""
    a = truth(Fleet(seed=11, clusters=60, anchor=TODAY), OCTOBER_BY_SERVICE_AND_TEAM, today=TODAY)
    b = truth(Fleet(seed=11, clusters=60, anchor=TODAY), OCTOBER_BY_SERVICE_AND_TEAM, today=TODAY)
    c = truth(Fleet(seed=12, clusters=60, anchor=TODAY), OCTOBER_BY_SERVICE_AND_TEAM, today=TODAY)
    assert a == b
    assert a["metrics"] != c["metrics"]


def test_numbers_do_not_depend_on_query_order_or_window() -> None:
    """A day's amounts are the same whether computed first, last, alone or inside a larger window."""
    warm = Fleet(seed=3, clusters=40, anchor=TODAY)
    truth(warm, _daily("2026-09-01", "2026-11-01"), today=TODAY)  # touch many days first
    late = truth(warm, _daily("2026-10-10", "2026-10-12"), today=TODAY)
    cold = truth(Fleet(seed=3, clusters=40, anchor=TODAY), _daily("2026-10-10", "2026-10-12"), today=TODAY)
    assert late == cold
    wide = truth(warm, _daily("2026-10-01", "2026-11-01"), today=TODAY)
    assert [p for p in wide["by_period"] if p["period_start"] in ("2026-10-10", "2026-10-11")] == cold["by_period"]


def test_hourly_parts_add_up_exactly_to_the_day(fleet: Fleet) -> None:
    """HOURLY splits each item in 24 parts with the remainder in the last hour: hours sum to the day."""
    group_by = [{"Type": "DIMENSION", "Key": "SERVICE"}]
    hourly = truth(fleet, {"TimePeriod": {"Start": "2026-11-20T00:00:00Z", "End": "2026-11-21T00:00:00Z"},
                           "Granularity": "HOURLY", "Metrics": ["UnblendedCost", "UsageQuantity"],
                           "GroupBy": group_by}, today=TODAY)
    daily = truth(fleet, {**_daily("2026-11-20", "2026-11-21", GroupBy=group_by),
                          "Metrics": ["UnblendedCost", "UsageQuantity"]}, today=TODAY)
    assert hourly["periods"] == 24
    assert hourly["by_keys"] == daily["by_keys"]
    assert hourly["metrics"] == daily["metrics"]


def test_no_data_from_today_on(fleet: Fleet) -> None:
    """Days from today on have no line items: their Totals are zero and they have no groups."""
    t = truth(fleet, _daily("2026-11-26", "2026-11-30"), today=TODAY)
    amounts = [Decimal(p["metrics"]["UnblendedCost"]) for p in t["by_period"]]
    assert amounts[0] > 0
    assert amounts[1] > 0
    assert amounts[2:] == [0, 0]
    grouped = truth(fleet, _daily("2026-11-28", "2026-11-30", GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}]),
                    today=TODAY)
    assert grouped["groups"] == 0


@pytest.mark.parametrize(("today", "moved_from"), [
    (TODAY, "2026-11-01"),  # the 28th: October is final, only the open month moves
    (dt.date(2026, 11, 5), "2026-10-01"),  # through the 5th: October is still estimated and moves too
])
def test_restatement_moves_only_the_window(fleet: Fleet, today: dt.date, moved_from: str) -> None:
    """A new data version changes the days still estimated (this month, and last month through the 5th);
    earlier days keep every cent."""
    req = _daily("2026-09-01", today.isoformat())
    v0 = {p["period_start"]: p["metrics"]["UnblendedCost"] for p in truth(fleet, req, today=today)["by_period"]}
    v1 = {p["period_start"]: p["metrics"]["UnblendedCost"]
          for p in truth(fleet, req, today=today, data_version=1)["by_period"]}
    assert len(v0) == (today - dt.date(2026, 9, 1)).days
    for day, amount in v0.items():
        if day < moved_from:
            assert v1[day] == amount, day
        else:
            assert v1[day] != amount, day


def test_amount_strings_are_lossless() -> None:
    """10^-10 integers render as plain decimals without trailing zeros, zero as "0"."""
    assert units_to_str(0) == "0"
    assert units_to_str(403527508453) == "40.3527508453"
    assert units_to_str(390170000000) == "39.017"
    assert units_to_str(1) == "0.0000000001"
    assert units_to_str(10**10 * 100) == "100"
    assert Decimal(units_to_str(123456789012345678901234567)) * 10**10 == 123456789012345678901234567


def test_usage_quantity_unit_is_shared_or_na(fleet: Fleet) -> None:
    """UsageQuantity carries the usage unit when a group has one, N/A when units mix."""
    engine = Engine(fleet)
    req = parse_cost_request(
        {**_daily("2026-10-05", "2026-10-06"), "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}]},
        today=TODAY,
    )
    result = engine.cost_and_usage(req, today=TODAY, version=0)

    units = {keys[0]: unit_of(unpack(p), fleet.units) for keys, p in result.periods[0].groups}
    assert units["Aurora:StorageIOUsage"] == "IOs"
    assert units["TimedStorage-ByteHrs"] == "GB-Mo"
    assert all(u != "N/A" for u in units.values())
    by_service = engine.cost_and_usage(
        parse_cost_request({**_daily("2026-10-05", "2026-10-06"),
                            "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}]}, today=TODAY),
        today=TODAY, version=0,
    )
    service_units = {k[0]: unit_of(unpack(p), fleet.units) for k, p in by_service.periods[0].groups}
    assert service_units["Amazon Relational Database Service"] == "N/A"
    assert service_units["AmazonCloudWatch"] == "Metrics"


def test_a_month_two_key_groupby_aggregates_fast(fleet: Fleet) -> None:
    """A 31-day, two-key GroupBy over the default fleet aggregates in well under 100 ms once days exist."""
    engine = Engine(fleet)
    req = parse_cost_request(OCTOBER_BY_SERVICE_AND_TEAM, today=TODAY)
    t0 = time.perf_counter()
    engine.cost_and_usage(req, today=TODAY, version=0)  # may generate the 31 days
    cold = time.perf_counter() - t0
    best = float("inf")
    for _ in range(3):
        fresh = Engine(fleet)
        t0 = time.perf_counter()
        fresh.cost_and_usage(req, today=TODAY, version=0)
        best = min(best, time.perf_counter() - t0)
    assert cold < 1.0
    assert best < 0.1
