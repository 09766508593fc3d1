"""Records: unit replacement is idempotent, versions move only on change, deletions are logged, duplicates are
quarantined, quarantine is replaced with its unit, records read back in the fetch shape."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

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


def test_pending_pages_go_to_the_records_without_staging_and_a_repeat_across_them_is_quarantined(tmp_path: Path) -> None:
    """A unit's last pages handed to commit_unit never enter the staging table, and a group staged earlier that
    comes again in them is stored once (the staged, earlier one wins) with the repeat quarantined."""
    from dbcost.parse import ParsedPage
    from dbcost.store.records import stage_batch
    from tests.store.helpers import UID

    with Store(tmp_path / "s.duckdb") as store:
        run_id, version = store.begin_run("backfill", plan_id="p", args={})
        store.register_dataset(QUERY)
        store.start_unit(run_id, ref(run_id), UID, fresh=True)
        store.stage_pages(run_id, UID, [stage_batch(QUERY.columns, [ParsedPage(1, [rec(1, "RDS", "p", "1.5")], [], "t1")])])
        assert sql(store, "SELECT count(*) FROM staging") == [(2,)]
        last = ParsedPage(2, [rec(1, "RDS", "p", "9"), rec(2, "EC2", "q", "2")], [], None)
        diff = store.commit_unit(run_id, version, ref(run_id), UID, [stage_batch(QUERY.columns, [last])])
        assert (diff.rows, diff.inserted, diff.duplicates, diff.quarantined) == (4, 4, 2, 2)
        assert sql(store, "SELECT key1, amount_text FROM records WHERE metric = 'UnblendedCost' ORDER BY 1") == [
            ("EC2", "2"), ("RDS", "1.5")]
        assert sql(store, "SELECT count(*) FROM staging") == [(0,)]


def test_a_unit_committed_as_done_is_done_in_the_same_step(tmp_path: Path) -> None:
    """commit_unit(done=True) (no sink to send the unit to) leaves the unit done, not merely committed."""
    from dbcost.parse import ParsedPage
    from dbcost.store.records import stage_batch
    from tests.store.helpers import UID

    with Store(tmp_path / "s.duckdb") as store:
        run_id, version = store.begin_run("backfill", plan_id="p", args={})
        store.register_dataset(QUERY)
        store.start_unit(run_id, ref(run_id), UID, fresh=True)
        page = ParsedPage(1, [rec(1, "RDS", "p", "1")], [], None)
        store.commit_unit(run_id, version, ref(run_id), UID, [stage_batch(QUERY.columns, [page])], done=True)
        assert store.done_units(run_id) == {UID}


def test_keys_and_amounts_pass_the_arrow_staging_exactly(tmp_path: Path) -> None:
    """What the Arrow arrays carry into DuckDB is what was parsed: an empty key stays "" (not NULL), a missing
    one NULL, any characters survive, and an amount keeps every digit (its text and its DECIMAL value)."""
    from dbcost.models import CostRecord, Metric
    from dbcost.parse import ParsedPage
    from dbcost.store.records import stage_batch
    from tests.store.helpers import UID

    odd = 'é "quoted", \'single\'\nnew line\t\\ 雪'
    records = [
        CostRecord("2026-09-01", "2026-09-02", "DAILY", {"SERVICE": odd, "TAG:team": ""},
                   {"UnblendedCost": Metric(Decimal("12345678901234567890123456.0123456789"), "USD")}, True),
        CostRecord("2026-09-01", "2026-09-02", "DAILY", {"SERVICE": "RDS"},
                   {"UnblendedCost": Metric(Decimal("-0.0000000001"), "USD")}, False),
    ]
    with Store(tmp_path / "s.duckdb") as store:
        run_id, version = store.begin_run("backfill", plan_id="p", args={})
        store.register_dataset(QUERY)
        store.start_unit(run_id, ref(run_id), UID, fresh=True)
        store.stage_pages(run_id, UID, [stage_batch(QUERY.columns, [ParsedPage(1, records[:1], [], "t")])])
        last = stage_batch(QUERY.columns, [ParsedPage(2, records[1:], [], None)])
        store.commit_unit(run_id, version, ref(run_id), UID, [last])
        assert sql(store, "SELECT key1, key2, amount_text, amount, estimated FROM records ORDER BY key1") == [
            ("RDS", None, "-0.0000000001", Decimal("-0.0000000001"), False),
            (odd, "", "12345678901234567890123456.0123456789", Decimal("12345678901234567890123456.0123456789"), True)]


def test_staging_and_committing_load_no_pyarrow() -> None:
    """The store's write path builds its Arrow arrays with nanoarrow: a process that stages and commits a unit
    never imports pyarrow (about 30 MB of a backfill's peak memory)."""
    import subprocess
    import sys

    code = """
import sys, tempfile, pathlib
from tests.store.helpers import QUERY, load, rec
from dbcost.store import Store
with Store(pathlib.Path(tempfile.mkdtemp()) / "s.duckdb") as store:
    load(store, [rec(1, "RDS", "p", "1.5"), rec(2, "EC2", "q", "2")])
print(sorted(m for m in sys.modules if m.split(".")[0] == "pyarrow"))
"""
    root = Path(__file__).resolve().parents[2]  # tests.store.helpers imports from the checkout's root
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]"


def test_quarantine_in_a_units_last_pages_is_kept_with_its_raw_payload(tmp_path: Path) -> None:
    """A malformed group in the pages handed to commit_unit (never staged) is quarantined with its reason,
    period and raw JSON, and counted in the unit's diff."""
    from dbcost.parse import ParsedPage
    from dbcost.store.records import stage_batch
    from tests.store.helpers import UID

    bad = Quarantined("Metrics missing or empty", "2026-09-02", "2026-09-03", 2, {"Keys": ["RDS", "team$x"]})
    with Store(tmp_path / "s.duckdb") as store:
        run_id, version = store.begin_run("backfill", plan_id="p", args={})
        store.register_dataset(QUERY)
        store.start_unit(run_id, ref(run_id), UID, fresh=True)
        last = stage_batch(QUERY.columns, [ParsedPage(2, [rec(1, "RDS", "p", "1")], [bad], None)])
        diff = store.commit_unit(run_id, version, ref(run_id), UID, [last])
        assert (diff.rows, diff.quarantined) == (2, 1)
        got = sql(store, "SELECT period_start, page, reason, raw::VARCHAR FROM quarantine")
        assert got == [("2026-09-02", 2, "Metrics missing or empty", '{"Keys":["RDS","team$x"]}')]


def _commit_split(path: Path, pages: list[list[Any]], staged: int, *, own: bool) -> tuple[Any, list[Any], list[Any]]:
    """Stage the first ``staged`` pages, commit the rest as pending; ``own=False`` makes the store forget that
    it began the run (what a store resuming another process's run knows), so it asks DuckDB instead."""
    from dbcost.parse import ParsedPage
    from dbcost.store.records import stage_batch
    from tests.store.helpers import UID

    with Store(path) as store:
        run_id, version = store.begin_run("backfill", plan_id="p", args={})
        if not own:
            store._own_runs.clear()
        store.register_dataset(QUERY)
        store.start_unit(run_id, ref(run_id), UID, fresh=True)
        batches = [stage_batch(QUERY.columns, [ParsedPage(i + 1, recs, [], f"t{i + 1}")]) for i, recs in enumerate(pages)]
        for b in batches[:staged]:
            store.stage_pages(run_id, UID, [b])
        diff = store.commit_unit(run_id, version, ref(run_id), UID, batches[staged:])
        return (diff, sql(store, "SELECT period_start, key1, key2, metric, amount_text FROM records ORDER BY ALL"),
                sql(store, "SELECT period_start, reason, raw FROM quarantine ORDER BY ALL"))


@pytest.mark.parametrize("staged", [0, 1, 2, 3])
@pytest.mark.parametrize("layout", ["none", "within a page", "across pages", "staged and pending"])
def test_a_store_knows_its_own_runs_staging_as_duckdb_would_tell_it(tmp_path: Path, layout: str, staged: int) -> None:
    """For a run it began, the store commits from what it knows it staged (counts, key hashes) without asking
    DuckDB; the records, the quarantined duplicates and the counts are those of a store that has to ask (one
    resuming another process's run), wherever the duplicates lie among staged and pending pages."""
    a, b, c = rec(1, "RDS", "p", "1.5"), rec(1, "EC2", "q", "2"), rec(2, "RDS", "p", "3")
    repeat = rec(1, "RDS", "p", "9")  # a's key, another amount: the first one staged wins
    pages = {"none": [[a], [b], [c]], "within a page": [[a, repeat], [b], [c]],
             "across pages": [[a], [b, repeat], [c]], "staged and pending": [[a], [b], [c, repeat]]}[layout]
    known = _commit_split(tmp_path / "own.duckdb", pages, staged, own=True)
    asked = _commit_split(tmp_path / "asked.duckdb", pages, staged, own=False)
    assert known == asked
    assert known[0].duplicates == (0 if layout == "none" else 2) and known[0].inserted == 6
