"""FOCUS rows from records (pure): each column from what the record, its GroupBy keys or its Filter say, null
where Cost Explorer says nothing."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from dbcost.errors import UsageError
from dbcost.focus import COLUMNS, FocusSource, fixed_values, focus_row
from dbcost.models import CostQuery

RDS = "Amazon Relational Database Service"


def record(keys: dict[str, str], **metrics: str) -> dict[str, Any]:
    return {"period_start": "2026-10-31", "period_end": "2026-11-01", "granularity": "DAILY", "keys": keys,
            "metrics": {m: {"amount": a, "unit": "Hrs" if m == "UsageQuantity" else "USD"} for m, a in metrics.items()},
            "estimated": True, "dataset": "ds", "target": "payer"}


def source(group_by: list[str], metrics: list[str], flt: dict[str, Any] | None = None) -> FocusSource:
    q = CostQuery.build(start="2026-10-01", end="2026-11-01", metrics=metrics, group_by=group_by, filter=flt)
    return FocusSource.of("ds", q)


def test_every_column_is_present_and_named_once() -> None:
    """A row has exactly the export's columns; FOCUS names, then ServiceSubcategory, then the x_ columns."""
    src = source(["SERVICE"], ["UnblendedCost"])
    row = focus_row(src, record({"SERVICE": RDS}, UnblendedCost="1"), "payer")
    names = [c.name for c in COLUMNS]
    assert set(row) == set(names) and len(row) == len(names)
    assert len(names) == len(set(names)) and names.index("ServiceSubcategory") < names.index("x_UsageType")


def test_costs_periods_and_service_from_a_grouped_record() -> None:
    """BilledCost prefers NetUnblendedCost, EffectiveCost NetAmortizedCost; periods are UTC instants in the
    record's calendar month; an RDS row is Databases / Relational, published by AWS."""
    src = source(["SERVICE", "USAGE_TYPE"], ["UnblendedCost", "NetUnblendedCost", "AmortizedCost"])
    row = focus_row(src, record({"SERVICE": RDS, "USAGE_TYPE": "EUW1-InstanceUsage:db.r6g.large"},
                                UnblendedCost="2.5", NetUnblendedCost="2.25", AmortizedCost="2"), "payer")
    assert (row["BilledCost"], row["EffectiveCost"], row["BillingCurrency"]) == (Decimal("2.25"), Decimal("2"), "USD")
    assert row["ChargePeriodStart"] == dt.datetime(2026, 10, 31, tzinfo=dt.UTC)
    assert (row["BillingPeriodStart"], row["BillingPeriodEnd"]) == (dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
                                                                    dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    assert (row["ServiceCategory"], row["ServiceSubcategory"], row["PublisherName"], row["ProviderName"]) == (
        "Databases", "Relational", "AWS", "AWS")
    assert (row["RegionId"], row["x_DbcostCategory"], row["x_Estimated"]) == ("eu-west-1", "compute", True)
    assert row["ListCost"] is row["ContractedCost"] is row["ChargeCategory"] is None


def test_a_filter_pinning_one_value_fills_its_column_and_record_type_the_charge_category() -> None:
    """SERVICE and RECORD_TYPE pinned by an And filter fill ServiceName and ChargeCategory/Frequency; usage of
    one usage type carries its ConsumedQuantity; tags become a JSON object without empty values."""
    flt = {"And": [{"Dimensions": {"Key": "SERVICE", "Values": [RDS]}},
                   {"Dimensions": {"Key": "RECORD_TYPE", "Values": ["Usage"]}}]}
    src = source(["USAGE_TYPE", "TAG:db-cluster"], ["UnblendedCost", "UsageQuantity"], flt)
    row = focus_row(src, record({"USAGE_TYPE": "RDS:GP3-Storage", "TAG:db-cluster": "db-7"}, UnblendedCost="1",
                                UsageQuantity="30"), "payer", lambda cluster, month: f"team-of-{cluster}")
    assert (row["ServiceName"], row["ChargeCategory"], row["ChargeFrequency"]) == (RDS, "Usage", "Usage-Based")
    assert (row["ConsumedQuantity"], row["ConsumedUnit"]) == (Decimal("30"), "Hrs")
    assert json.loads(row["Tags"]) == {"db-cluster": "db-7"}
    assert (row["x_Cluster"], row["x_Team"], row["x_UsageType"]) == ("db-7", "team-of-db-7", "RDS:GP3-Storage")
    untagged = focus_row(src, record({"USAGE_TYPE": "RDS:GP3-Storage", "TAG:db-cluster": ""}, UnblendedCost="1",
                                     UsageQuantity="1"), "payer")
    assert json.loads(untagged["Tags"]) == {} and untagged["x_Cluster"] is None


def test_what_cost_explorer_does_not_say_stays_null() -> None:
    """Without SERVICE or RECORD_TYPE the service and charge columns are null, not guessed; a tax record type
    is Tax with no frequency; a non-database service has no category; no quantity off a usage row."""
    src = source(["LINKED_ACCOUNT", "RECORD_TYPE"], ["UnblendedCost", "UsageQuantity"])
    row = focus_row(src, record({"LINKED_ACCOUNT": "111122223333", "RECORD_TYPE": "Tax"}, UnblendedCost="1",
                                UsageQuantity="1"), "payer")
    assert (row["SubAccountId"], row["ChargeCategory"], row["ChargeFrequency"]) == ("111122223333", "Tax", None)
    assert row["ServiceName"] is row["ServiceCategory"] is row["PublisherName"] is row["Tags"] is None
    assert row["ConsumedQuantity"] is None and row["EffectiveCost"] is None
    ec2 = focus_row(source(["SERVICE"], ["UnblendedCost"]), record({"SERVICE": "Amazon EC2"}, UnblendedCost="1"),
                    "payer")
    assert ec2["ServiceCategory"] is None and ec2["ServiceSubcategory"] is None


def test_fixed_values_take_plain_matches_under_and_only() -> None:
    """One value pins its key; several values only narrow it; Or, Not and non-EQUALS matches pin nothing."""
    one, some = fixed_values({"And": [
        {"Dimensions": {"Key": "SERVICE", "Values": ["A", "B"]}},
        {"Tags": {"Key": "env", "Values": ["prod"]}},
        {"Or": [{"Dimensions": {"Key": "REGION", "Values": ["x"]}}, {"Dimensions": {"Key": "AZ", "Values": ["y"]}}]},
        {"Dimensions": {"Key": "USAGE_TYPE", "Values": ["u"], "MatchOptions": ["STARTS_WITH"]}},
    ]})
    assert one == {"TAG:env": "prod"} and some["SERVICE"] == {"A", "B"} and "REGION" not in some
    assert fixed_values(None) == ({}, {})


def test_a_dataset_without_a_billed_metric_is_refused() -> None:
    """BilledCost needs UnblendedCost or NetUnblendedCost: an AmortizedCost-only dataset is a UsageError."""
    with pytest.raises(UsageError, match="BilledCost cannot be filled"):
        source(["SERVICE"], ["AmortizedCost"])
