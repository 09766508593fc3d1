"""The export job's rules without a store: which datasets --dataset names, the period options, SQL-safe key
column names."""

from __future__ import annotations

import pytest

from dbcost.errors import UsageError
from dbcost.jobs.datasets import DatasetInfo, describe_query, select_datasets
from dbcost.jobs.export import period_range, safe_key_columns
from dbcost.models import CostQuery
from dbcost.store import DatasetSummary


def info(dataset: str, label: str | None, **query: object) -> DatasetInfo:
    q = CostQuery.build(start="2026-10-01", end="2026-11-01", **query)  # type: ignore[arg-type]
    summary = DatasetSummary(dataset, label, "GetCostAndUsage", q.granularity, q.metrics, q.columns,
                             q.model_dump(mode="json"), 0, None, None, None)
    return DatasetInfo(summary, q)


A = info("a1b2c3d4e5f60718", "daily", group_by=["SERVICE"])
B = info("a1b2c3ffffffffff", "by cluster", group_by=["SERVICE", "TAG:db-cluster"])
C = info("0123456789abcdef", "by cluster", filter={"Dimensions": {"Key": "SERVICE", "Values": ["Amazon RDS"]}})


def test_one_dataset_needs_no_selector_several_do() -> None:
    """The only dataset is chosen alone; several without --dataset is a UsageError naming each; none too."""
    assert select_datasets([A], None) == [A]
    with pytest.raises(UsageError, match=r"holds 2 datasets.*a1b2c3d4e5f60718 \(daily\); a1b2c3ffffffffff"):
        select_datasets([A, B], None)
    with pytest.raises(UsageError, match="holds no datasets"):
        select_datasets([], "all")


def test_selector_is_all_an_id_a_label_or_a_unique_prefix() -> None:
    """`all`, an exact id, a unique label and a prefix of six or more characters each name datasets; an
    ambiguous label or prefix, or a short prefix, does not."""
    infos = [A, B, C]
    assert select_datasets(infos, "all") == infos
    assert select_datasets(infos, "a1b2c3ffffffffff") == [B]
    assert select_datasets(infos, "daily") == [A]
    assert select_datasets(infos, "012345") == [C]
    for ambiguous in ("by cluster", "a1b2c3"):
        with pytest.raises(UsageError, match="names 2 datasets"):
            select_datasets(infos, ambiguous)
    with pytest.raises(UsageError, match="not in the store"):
        select_datasets(infos, "01234")


def test_a_query_is_described_in_one_line() -> None:
    """The description names operation, granularity, metrics, GroupBy keys and the filter."""
    assert describe_query(B) == "GetCostAndUsage DAILY UnblendedCost by SERVICE, TAG:db-cluster"
    assert describe_query(C) == "GetCostAndUsage DAILY UnblendedCost (total) where SERVICE = Amazon RDS"


def test_period_options_become_one_half_open_range() -> None:
    """--month is its month; --start/--end pass through; a month with a start, a bad date or an end not
    after the start is a UsageError."""
    assert period_range(None, None, "2026-12") == ("2026-12-01", "2027-01-01")
    assert period_range("2026-10-05", None, None) == ("2026-10-05", None)
    assert period_range(None, None, None) == (None, None)
    for args, fragment in (((None, None, "2026-13"), "YYYY-MM"), (("2026-10-01", None, "2026-10"), "not both"),
                           (("10/01/2026", None, None), "--start"), (("2026-10-02", "2026-10-02", None), "--end")):
        with pytest.raises(UsageError, match=fragment):
            period_range(*args)


def test_key_columns_are_safe_and_distinct() -> None:
    """Tag and dimension keys become lower-case identifiers; clashes (with each other or the export's own
    columns) get a numbered suffix."""
    assert safe_key_columns(["SERVICE", "TAG:db-cluster", "TAG:db_cluster", "TAG:metric", "TAG:9lives",
                             "COST_CATEGORY:Team Name"]) == {
        "SERVICE": "service", "TAG:db-cluster": "tag_db_cluster", "TAG:db_cluster": "tag_db_cluster_2",
        "TAG:metric": "tag_metric", "TAG:9lives": "tag_9lives", "COST_CATEGORY:Team Name": "cost_category_team_name"}
    assert safe_key_columns(["METRIC", "Amount"]) == {"METRIC": "metric_2", "Amount": "amount_2"}
