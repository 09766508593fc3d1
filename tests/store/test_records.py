"""Records: unit replacement is idempotent, versions move only on change, deletions are logged, duplicates are
quarantined, quarantine is replaced with its unit, records read back in the fetch shape."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from dbcost.models import CostQuery, Quarantined
from dbcost.store import Store
from tests.store.helpers import QUERY, load, rec, ref, rows, sql


def test_commit_is_idempotent_and_keeps_versions_of_unchanged_rows(tmp_path: Path) -> None:
    """Loading the same unit twice leaves the same rows with their first versions: replace, never add."""
    with Store(tmp_path / "s.duckdb") as store:
        data = [rec(1, "RDS", "payments", "1.5"), rec(1, "RDS", "", "2.25"), rec(2, "DynamoDB", "search", "3")]
        _, v1 = load(store, data)
        first = rows(store)
        _, v2 = load(store, data)
        assert v2 > v1
        assert rows(store) == first
        assert len(first) == 6 and {r[5] for r in first} == {v1}
        assert sql(store, "SELECT count(*) FROM changes")[0][0] == 0


def test_restated_values_replace_with_new_version_and_vanished_rows_are_deleted_and_logged(tmp_path: Path) -> None:
    """A restatement changes one amount and drops one group: new version for it, deletion logged."""
    with Store(tmp_path / "s.duckdb") as store:
        _, v1 = load(store, [rec(1, "RDS", "payments", "1.5"), rec(2, "DynamoDB", "search", "3")])
        run2, v2 = load(store, [rec(1, "RDS", "payments", "1.75")])
        got = {(r[0], r[1], r[3]): (r[4], r[5]) for r in rows(store)}
        assert got == {("2026-09-01", "RDS", "UnblendedCost"): (Decimal("1.75"), v2),
                       ("2026-09-01", "RDS", "UsageQuantity"): (Decimal("1"), v1)}
        changes = sql(store, "SELECT kind, metric, old_amount, new_amount FROM changes ORDER BY kind, metric")
        assert changes == [("changed", "UnblendedCost", Decimal("1.5"), Decimal("1.75")),
                           ("deleted", "UnblendedCost", Decimal("3"), None),
                           ("deleted", "UsageQuantity", Decimal("1"), None)]
        sent = [r for batch in store.unit_sink_records(run2, ref(run2)) for r in batch]
        assert [r.deleted for r in sent] == [False, True]
        assert sent[1].record["keys"] == {"SERVICE": "DynamoDB", "TAG:team": "search"} and sent[1].version == v2
        assert store.deleted_keys(run2, ref(run2)) == [("2026-09-02", "DynamoDB", "search")]


def test_duplicate_rows_in_a_unit_are_quarantined_not_doubled(tmp_path: Path) -> None:
    """The same group staged twice (across a crash, say) is stored once; the repeat is quarantined."""
    with Store(tmp_path / "s.duckdb") as store:
        r = rec(1, "RDS", "payments", "1.5")
        load(store, [r, rec(2, "x", "y", "1"), r])
        assert sql(store, "SELECT sum(amount) FROM records WHERE metric = 'UnblendedCost'")[0][0] == Decimal("2.5")
        assert sql(store, "SELECT count(*) FROM quarantine WHERE reason LIKE 'duplicate%'")[0][0] == 2  # 2 metrics


def test_quarantine_is_replaced_with_the_unit(tmp_path: Path) -> None:
    """A re-read that no longer has the malformed group leaves no stale quarantine entry."""
    with Store(tmp_path / "s.duckdb") as store:
        bad = Quarantined("Metrics missing or empty", "2026-09-01", "2026-09-02", 1, {"Keys": ["a", "team$"]})
        load(store, [rec(1, "RDS", "p", "1")], [bad])
        assert sql(store, "SELECT count(*) FROM quarantine")[0][0] == 1
        load(store, [rec(1, "RDS", "p", "1")])
        assert sql(store, "SELECT count(*) FROM quarantine")[0][0] == 0


def test_export_shape_matches_fetch(tmp_path: Path) -> None:
    """Stored records read back in the fetch JSONL shape, amounts as the exact strings received."""
    with Store(tmp_path / "s.duckdb") as store:
        load(store, [rec(1, "RDS", "", "1.5000000000")])
        [[r]] = list(store.iter_records())
        assert r["keys"] == {"SERVICE": "RDS", "TAG:team": ""}
        assert r["metrics"]["UnblendedCost"] == {"amount": "1.5000000000", "unit": "USD"}
        assert {"period_start", "period_end", "granularity", "estimated", "dataset", "target", "version"} <= set(r)


def test_register_dataset_records_the_operation_and_keeps_an_earlier_label(tmp_path: Path) -> None:
    """A dataset's row names its Cost Explorer operation (GetCostAndUsage for a query that carries none) and
    a later registration without a label keeps the earlier one."""
    with Store(tmp_path / "s.duckdb") as store:
        assert store.register_dataset(QUERY, "by team") == QUERY.fingerprint
        store.register_dataset(QUERY)
        [d] = store.datasets()
        assert (d["dataset"], d["label"], d["operation"], d["key_names"]) == (
            QUERY.fingerprint, "by team", getattr(QUERY, "operation", "GetCostAndUsage"), ["SERVICE", "TAG:team"])
        total = CostQuery.build(start="2026-09-01", end="2026-09-03")
        store.register_dataset(total)
        assert [d["key_names"] for d in store.datasets()] == [["SERVICE", "TAG:team"], []]
