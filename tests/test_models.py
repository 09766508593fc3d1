"""CostQuery: every rule that can be checked before a request is checked, with one-line errors."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from dbcost.errors import QueryError
from dbcost.models import CostQuery, parse_group_by


def build(**kw: object) -> CostQuery:
    args: dict[str, object] = {"start": "2026-09-01", "end": "2026-11-01"}
    args.update(kw)
    return CostQuery.build(**args)  # type: ignore[arg-type]


def test_build_valid_query_and_request_body() -> None:
    """A valid query produces the exact GetCostAndUsage request body."""
    q = build(metrics=["unblendedcost", "UsageQuantity"], group_by=["SERVICE", "TAG:db-cluster"],
              filter='{"Dimensions": {"Key": "SERVICE", "Values": ["Amazon DynamoDB"]}}')
    assert q.metrics == ("UnblendedCost", "UsageQuantity")
    assert q.columns == ("SERVICE", "TAG:db-cluster")
    assert q.to_request() == {
        "TimePeriod": {"Start": "2026-09-01", "End": "2026-11-01"},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost", "UsageQuantity"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "db-cluster"}],
        "Filter": {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon DynamoDB"]}},
    }


@pytest.mark.parametrize(
    ("kw", "field", "fragment"),
    [
        ({"start": "2026-9-01"}, "start", "YYYY-MM-DD"),
        ({"start": "2026-02-30"}, "start", "calendar date"),
        ({"end": "yesterday"}, "end", "YYYY-MM-DD"),
        ({"start": "2026-11-01", "end": "2026-11-01"}, "end", "after start"),
        ({"start": "2026-11-02", "end": "2026-11-01"}, "end", "after start"),
        ({"granularity": "WEEKLY"}, "granularity", "DAILY, MONTHLY or HOURLY"),
        ({"granularity": "HOURLY"}, "end", "at most 14 days"),
        ({"metrics": ["Cost"]}, "metrics", "unknown metric"),
        ({"metrics": []}, "metrics", "at least one metric"),
        ({"metrics": ["UnblendedCost", "unblendedcost"]}, "metrics", "given twice"),
        ({"group_by": ["SERVICE", "TAG:a", "TAG:b"]}, "group_by", "at most two"),
        ({"group_by": ["SERVICE", "SERVICE"]}, "group_by", "twice"),
        ({"group_by": ["NOPE"]}, "group_by", "not a GroupBy dimension"),
        ({"group_by": ["RESOURCE_ID"]}, "group_by", "GroupBy of GetCostAndUsageWithResources only"),
        ({"filter": {"Dimensions": {"Key": "RESOURCE_ID", "Values": ["arn:aws:rds:us-east-1:1:db:a"]}}}, "filter",
         "Filter dimension of GetCostAndUsageWithResources only"),
        ({"group_by": ["TAG:"]}, "group_by.key", "at least 1 character"),
        ({"filter": "{"}, "filter", "not valid JSON"),
        ({"filter": {"And": [{"Dimensions": {"Key": "SERVICE", "Values": ["a"]}}]}}, "filter", "at least two"),
        ({"filter": {"Dimensions": {"Key": "SERVICE", "Values": ["a"]}, "Tags": {"Key": "t"}}}, "filter",
         "exactly one root"),
        ({"filter": {}}, "filter", "exactly one root"),
        ({"filter": {"Not": {"Dimensions": {"Key": "SERVICE", "Values": ["a"]}}}}, "filter", "inside Not"),
        ({"filter": {"Dimensions": {"Key": "NOPE", "Values": ["a"]}}}, "filter.Dimensions.Key", "unknown"),
        ({"filter": {"Tags": {"Key": "t", "Values": ["a"], "Bogus": 1}}}, "filter.Tags.Bogus", "unknown field"),
    ],
)
def test_rules_fail_with_field_and_rule(kw: dict[str, object], field: str, fragment: str) -> None:
    """Each broken rule is one QueryError naming the field and the rule, on one line."""
    with pytest.raises(QueryError) as info:
        build(**kw)
    assert info.value.field == field
    assert fragment in info.value.rule
    assert "\n" not in str(info.value)


def test_hourly_within_14_days_uses_timestamps() -> None:
    """HOURLY queries are allowed up to 14 days and send timestamp periods."""
    q = build(start="2026-11-10", end="2026-11-24", granularity="hourly")
    assert q.to_request()["TimePeriod"] == {"Start": "2026-11-10T00:00:00Z", "End": "2026-11-24T00:00:00Z"}


def test_query_is_frozen_and_forbids_extra_fields() -> None:
    """CostQuery cannot be mutated and rejects unknown fields."""
    q = build()
    with pytest.raises(ValidationError):
        q.start = dt.date(2020, 1, 1)  # type: ignore[misc]
    with pytest.raises(ValidationError):
        CostQuery.model_validate({"start": "2026-01-01", "end": "2026-02-01", "bogus": 1})


def test_fingerprint_ignores_the_window_but_not_the_dataset() -> None:
    """Windows of one dataset share a fingerprint; a different metric, grouping or filter does not."""
    q = build(group_by=["SERVICE"])
    assert q.fingerprint == q.with_window(dt.date(2026, 9, 1), dt.date(2026, 9, 2)).fingerprint
    assert q.fingerprint != build(group_by=["USAGE_TYPE"]).fingerprint
    assert q.fingerprint != build(group_by=["SERVICE"], metrics=["AmortizedCost"]).fingerprint
    assert q.fingerprint != build(group_by=["SERVICE"], granularity="MONTHLY").fingerprint
    assert build(metrics=["UnblendedCost", "BlendedCost"]).fingerprint == build(
        metrics=["BlendedCost", "UnblendedCost"]).fingerprint


def test_parse_group_by_forms() -> None:
    """Dimension keys are upper-cased; TAG: and COST_CATEGORY: keep their key's case."""
    assert parse_group_by("service").column == "SERVICE"
    assert parse_group_by("TAG:Team").column == "TAG:Team"
    assert parse_group_by("tag:db-cluster").column == "TAG:db-cluster"
    assert parse_group_by("COST_CATEGORY:BU").column == "COST_CATEGORY:BU"


def test_fingerprint_of_get_cost_and_usage_is_what_earlier_releases_stored() -> None:
    """GetCostAndUsage datasets keep the id earlier releases gave them (stores and sink keys stay valid)."""
    import hashlib

    import orjson

    q = build(group_by=["SERVICE", "TAG:db-cluster"], metrics=["UnblendedCost"])
    ident = {"granularity": "DAILY", "metrics": ["UnblendedCost"],
             "group_by": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "db-cluster"}],
             "filter": None}
    assert q.operation == "GetCostAndUsage"
    assert q.fingerprint == hashlib.sha256(orjson.dumps(ident, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def test_the_operation_is_part_of_the_dataset_and_its_rules() -> None:
    """Another operation is another dataset; WithResources needs a Filter, DAILY/HOURLY, at most 14 days."""
    flt = {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon DynamoDB"]}}
    plain = CostQuery.build(start="2026-11-20", end="2026-11-27", filter=flt)
    res = CostQuery.build(start="2026-11-20", end="2026-11-27", filter=flt, operation="GetCostAndUsageWithResources")
    assert res.op.name == "GetCostAndUsageWithResources" and res.op.opt_in
    assert res.fingerprint != plain.fingerprint
    assert res.to_request() == plain.to_request()  # the same request shape; the operation name differs
    with pytest.raises(QueryError, match="filter: GetCostAndUsageWithResources requires a Filter"):
        CostQuery.build(start="2026-11-20", end="2026-11-27", operation="GetCostAndUsageWithResources")
    with pytest.raises(QueryError, match="granularity: GetCostAndUsageWithResources accepts DAILY, HOURLY"):
        CostQuery.build(start="2026-11-01", end="2026-12-01", granularity="MONTHLY", filter=flt,
                        operation="GetCostAndUsageWithResources")
    with pytest.raises(QueryError, match="end: GetCostAndUsageWithResources covers at most 14 days, got 15"):
        CostQuery.build(start="2026-11-01", end="2026-11-16", filter=flt, operation="GetCostAndUsageWithResources")
    with pytest.raises(QueryError, match="operation: must be one of"):
        CostQuery.build(start="2026-11-01", end="2026-11-02", operation="GetTags")


WR = "GetCostAndUsageWithResources"
EC2 = {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Elastic Compute Cloud - Compute"]}}
RDS = {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Relational Database Service"]}}


def test_resource_id_is_valid_only_in_with_resources() -> None:
    """RESOURCE_ID as GroupBy or Filter (at any depth) is accepted by WithResources and refused elsewhere."""
    rid = {"Dimensions": {"Key": "RESOURCE_ID", "Values": ["arn:aws:dynamodb:us-east-1:1:table/t"]}}
    q = CostQuery.build(start="2026-11-20", end="2026-11-27", group_by=["RESOURCE_ID", "USAGE_TYPE"],
                        filter={"And": [RDS, rid]}, operation=WR)
    assert q.columns == ("RESOURCE_ID", "USAGE_TYPE")
    assert q.to_request()["GroupBy"][0] == {"Type": "DIMENSION", "Key": "RESOURCE_ID"}
    with pytest.raises(QueryError, match="filter: RESOURCE_ID is a Filter dimension of") as info:
        CostQuery.build(start="2026-11-20", end="2026-11-27", filter={"Not": rid})
    assert "not of GetCostAndUsage" in str(info.value)


def test_hourly_with_resources_is_for_ec2_instances_only() -> None:
    """HOURLY WithResources needs a Filter that is exactly EC2 instances (alone or inside an And)."""
    CostQuery.build(start="2026-11-20", end="2026-11-27", granularity="HOURLY", filter=EC2, operation=WR)
    CostQuery.build(start="2026-11-20", end="2026-11-27", granularity="HOURLY", operation=WR,
                    filter={"And": [EC2, {"Tags": {"Key": "team", "Values": ["a"]}}]})
    both = {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Elastic Compute Cloud - Compute",
                                                        "Amazon Relational Database Service"]}}
    for flt in (RDS, both, {"Or": [EC2, RDS]}, {"Tags": {"Key": "team", "Values": ["a"]}},
                {"Dimensions": {**EC2["Dimensions"], "MatchOptions": ["STARTS_WITH"]}}):
        with pytest.raises(QueryError, match=r"granularity: .* HOURLY only for a Filter of SERVICE = Amazon Elastic"):
            CostQuery.build(start="2026-11-20", end="2026-11-27", granularity="HOURLY", filter=flt, operation=WR)
    CostQuery.build(start="2026-11-20", end="2026-11-27", granularity="HOURLY", filter=RDS)  # plain HOURLY: any
