"""Named read models: each answers its question from what was loaded, with Decimal amounts, per target where
it should, and exports stream the long table (CSV amounts as received, Parquet as decimals)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dbcost.errors import StoreError
from dbcost.models import CostQuery, Quarantined
from dbcost.store import ExportSelection, RunStatus, Store
from tests.store.helpers import QUERY, load, rec

FP = QUERY.fingerprint


def _two_targets(store: Store) -> None:
    load(store, [rec(1, "RDS", "payments", "1.5"), rec(2, "DynamoDB", "", "3", estimated=True)], label="by team")
    load(store, [rec(1, "RDS", "payments", "10")], target="t2")


def test_metric_amounts_are_those_of_the_targets_asked_for(tmp_path: Path) -> None:
    """metric_amounts returns (period, key1, key2, Decimal amount, estimated) of the named targets only."""
    with Store(tmp_path / "s.duckdb") as store:
        _two_targets(store)
        got = sorted(store.metric_amounts(FP, "UnblendedCost", "2026-09-01", "2026-09-03", ["t1"]))
        assert got == [("2026-09-01", "RDS", "payments", Decimal("1.5"), False),
                       ("2026-09-02", "DynamoDB", "", Decimal("3"), True)]
        assert sum(r.amount for r in store.metric_amounts(FP, "UnblendedCost", "2026-09-01", "2026-09-02",
                                                          ["t1", "t2"])) == Decimal("11.5")
        assert store.metric_amounts(FP, "UnblendedCost", "2026-09-01", "2026-09-03", []) == []
        assert store.earliest_estimated_period(FP) == "2026-09-02"
        assert store.earliest_estimated_period("nope") is None


def test_totals_counts_and_top_keys(tmp_path: Path) -> None:
    """record_totals sums every amount (of a dataset when named), record_count counts rows, top_keys ranks
    first-key values by their sum."""
    with Store(tmp_path / "s.duckdb") as store:
        assert store.record_totals() == (Decimal(0), 0) and store.record_count() == 0
        _two_targets(store)
        assert store.record_totals() == (Decimal("17.5"), 6)  # 14.5 UnblendedCost + 3 x 1 UsageQuantity
        assert store.record_totals(FP) == store.record_totals() and store.record_totals("nope") == (Decimal(0), 0)
        assert store.record_count() == 6
        assert store.top_keys(FP, "2026-09-01", "2026-10-01", 1) == [("RDS", Decimal("13.5"))]


def test_freshness_and_quarantine_summary(tmp_path: Path) -> None:
    """freshness gives (target, label, last completed, last day covered) per target; quarantine_summary
    counts reasons within the period range."""
    bad = Quarantined("Metrics missing or empty", "2026-09-01", "2026-09-02", 1, {"Keys": ["a", "team$"]})
    with Store(tmp_path / "s.duckdb") as store:
        load(store, [rec(1, "RDS", "p", "1")], [bad], label="by team")
        load(store, [rec(1, "RDS", "p", "1")], target="t2")
        fresh = store.freshness([FP])
        assert [(t, label, str(we)) for t, label, _, we in fresh] == [("t1", "by team", "2026-09-03"),
                                                                       ("t2", "by team", "2026-09-03")]
        assert store.freshness([]) == []
        assert store.quarantine_summary([FP], "2026-09-01", "2026-10-01") == [("Metrics missing or empty", 1)]
        assert store.quarantine_summary([FP], "2026-10-01", "2026-11-01") == []
        assert store.quarantine_summary([], "2026-09-01", "2026-10-01") == []
        [group] = store.quarantined_groups([FP])
        assert {k: group[k] for k in ("dataset", "target", "reason", "period_start", "page", "raw")} == {
            "dataset": FP, "target": "t1", "reason": "Metrics missing or empty", "period_start": "2026-09-01",
            "page": 1, "raw": {"Keys": ["a", "team$"]}}
        assert store.quarantined_groups([FP], target="t2") == store.quarantined_groups([FP], start="2026-09-02") == []


def test_latest_runs_and_last_successes(tmp_path: Path) -> None:
    """latest_runs is the newest run with stats per command (stats parsed); last_successes has one line per
    (target, dataset) that completed a unit."""
    with Store(tmp_path / "s.duckdb") as store:
        run1, _ = load(store, [rec(1, "RDS", "p", "1")])
        store.finish_run(run1, RunStatus.DONE, {"quarantined": 0}, [])
        run2, _ = load(store, [rec(1, "RDS", "p", "1")], target="t2")
        store.finish_run(run2, RunStatus.INCOMPLETE, {"quarantined": 2}, ["t3"])
        [latest] = store.latest_runs()
        assert (latest.command, latest.run_id, latest.status, latest.stats) == ("backfill", run2, "incomplete",
                                                                                {"quarantined": 2})
        assert [(s.target, s.dataset) for s in store.last_successes()] == [("t1", FP), ("t2", FP)]
        assert all(s.at > 0 for s in store.last_successes())


def test_export_rows_stream_the_long_table_with_amounts_as_received(tmp_path: Path) -> None:
    """export_rows names the columns (one per key name) and yields rows in (dataset, target, period, keys,
    metric) order, filtered by target; amounts are the strings received."""
    with Store(tmp_path / "s.duckdb") as store:
        _two_targets(store)
        with store.export_rows(ExportSelection((FP,), target="t2"), batch_rows=1) as result:
            assert result.columns == ["dataset", "target", "period_start", "period_end", "granularity",
                                      "estimated", "SERVICE", "TAG:team", "metric", "amount", "unit"]
            batches = list(result)
        assert len(batches) == 2 and [len(b) for b in batches] == [1, 1]
        assert [r[1:] for b in batches for r in b] == [
            ("t2", "2026-09-01", "2026-09-02", "DAILY", False, "RDS", "payments", "UnblendedCost", "10", "USD"),
            ("t2", "2026-09-01", "2026-09-02", "DAILY", False, "RDS", "payments", "UsageQuantity", "1", "Hrs")]
        with pytest.raises(StoreError, match="no dataset 'nope'"):
            store.export_rows(ExportSelection(("nope",)))
        with pytest.raises(StoreError, match="no dataset selected"):
            store.export_rows(ExportSelection(()))


def test_export_rows_filter_periods_rename_keys_and_add_constant_columns(tmp_path: Path) -> None:
    """A period filter keeps periods starting in [start, end); key columns take the names asked for (quotes
    and all) and ``extra`` adds one constant column per dataset."""
    with Store(tmp_path / "s.duckdb") as store:
        _two_targets(store)
        sel = ExportSelection((FP,), start="2026-09-02", end="2026-09-03",
                              key_columns={"TAG:team": 'team "tag"'}, extra={FP: {"dataset_label": "by team"}})
        with store.export_rows(sel) as result:
            assert result.columns[6:] == ["SERVICE", 'team "tag"', "metric", "amount", "unit", "dataset_label"]
            got = [r for b in result for r in b]
    assert [(r[2], r[6], r[8], r[11]) for r in got] == [("2026-09-02", "DynamoDB", "UnblendedCost", "by team"),
                                                       ("2026-09-02", "DynamoDB", "UsageQuantity", "by team")]


def test_export_parquet_writes_decimal_amounts_and_counts_rows(tmp_path: Path) -> None:
    """export_parquet writes every matching row with DECIMAL amounts, DATE periods when typed, and the
    key-value metadata given, and returns how many rows it wrote."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with Store(tmp_path / "s.duckdb") as store:
        _two_targets(store)
        out = tmp_path / "o'quote.parquet"  # the path is a SQL literal: quotes are escaped
        assert store.export_parquet(out, ExportSelection((FP,), typed=True),
                                    metadata={"dbcost.key'columns": '{"a": "b"}'}) == 6
    table = pq.read_table(out)
    assert sum(table.column("amount").to_pylist()) == Decimal("17.5")
    assert set(table.column("target").to_pylist()) == {"t1", "t2"}
    assert table.schema.field("period_start").type == pa.date32()
    assert table.schema.field("amount").type == pa.decimal128(38, 10)
    assert table.schema.metadata[b"dbcost.key'columns"] == b'{"a": "b"}'


def test_dataset_summaries_count_rows_and_span_periods(tmp_path: Path) -> None:
    """dataset_summaries lists every dataset with its rows, first period start, last period end and the
    newest fetch; a dataset without records has zero rows and no span."""
    with Store(tmp_path / "s.duckdb") as store:
        _two_targets(store)
        empty = CostQuery.build(start="2026-09-01", end="2026-09-03", granularity="MONTHLY")
        store.register_dataset(empty)
        [full, none] = store.dataset_summaries()
    assert (full.dataset, full.label, full.operation, full.records, full.start, full.end) == (
        FP, "by team", "GetCostAndUsage", 6, "2026-09-01", "2026-09-03")
    assert full.key_names == ("SERVICE", "TAG:team") and full.metrics == ("UnblendedCost", "UsageQuantity")
    assert full.fetched_at is not None and full.query["group_by"][1] == {"type": "TAG", "key": "team"}
    assert (none.dataset, none.records, none.start, none.end, none.fetched_at) == (empty.fingerprint, 0, None, None,
                                                                                   None)
