"""Error translation: whatever DuckDB raises inside any public store method (a closed connection, a missing
table) leaves as StoreError naming the store and the operation, never as a duckdb exception."""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbcost.attribution.inventory import InventoryItem, InventoryScope
from dbcost.errors import StoreError
from dbcost.parse import ParsedPage
from dbcost.store import AsyncStore, ExportSelection, Store
from dbcost.store.records import stage_batch
from dbcost.store.state import AdvisoryRow
from tests.store.helpers import QUERY, UID, load, rec, ref, sql

D = dt.date(2026, 9, 1)
FP = QUERY.fingerprint

#: one call of every public Store method (a new method must be added here: see the completeness test)
CALLS: dict[str, Callable[[Store], Any]] = {
    "register_dataset": lambda s: s.register_dataset(QUERY),
    "datasets": lambda s: s.datasets(),
    "stage_page": lambda s: s.stage_page("r", UID, QUERY.columns, 1, [rec(1, "RDS", "p", "1")], [], None),
    "stage_pages": lambda s: s.stage_pages("r", UID, [stage_batch(QUERY.columns, [ParsedPage(1, [rec(1, "RDS", "p",
                                                                                                  "1")])])]),
    "commit_unit": lambda s: s.commit_unit("r", 1, ref("r"), UID),
    "deleted_keys": lambda s: s.deleted_keys("r", ref("r")),
    "iter_records": lambda s: list(s.iter_records()),
    "unit_sink_records": lambda s: list(s.unit_sink_records("r", ref("r"))),
    "begin_run": lambda s: s.begin_run("backfill", plan_id="p", args={}),
    "resumable_run": lambda s: s.resumable_run("p"),
    "probe_run": lambda s: s.probe_run("p"),
    "run_args": lambda s: s.run_args("r"),
    "last_run_args": lambda s: s.last_run_args("p"),
    "set_run_args": lambda s: s.set_run_args("r", {"probe": True}),
    "plan_done_units": lambda s: s.plan_done_units("p", []),
    "reopen_run": lambda s: s.reopen_run("r"),
    "finish_run": lambda s: s.finish_run("r", "done", {}, []),
    "unit_progress": lambda s: s.unit_progress("r", UID),
    "done_units": lambda s: s.done_units("r"),
    "start_unit": lambda s: s.start_unit("r", ref("r"), UID, fresh=True),
    "checkpoint_unit": lambda s: s.checkpoint_unit("r", UID),
    "fail_unit": lambda s: s.fail_unit("r", UID, "boom"),
    "pages_per_day": lambda s: s.pages_per_day(),
    "done_windows": lambda s: s.done_windows(FP, "t1"),
    "has_done_units": lambda s: s.has_done_units(FP, "t1", D, D),
    "quota_states": lambda s: s.quota_states("2026-09"),
    "record_quota_states": lambda s: s.record_quota_states("2026-09", {"a": ("ok", {})}),
    "advisory_states": lambda s: s.advisory_states("UnblendedCost|db-cluster"),
    "record_advisories": lambda s: s.record_advisories("UnblendedCost|db-cluster", [
        AdvisoryRow("k", "2026-09", {"kind": "idle"}, dt.datetime(2026, 9, 1), None, 1)]),
    "record_inventory": lambda s: s.record_inventory([InventoryScope("t1", "rds", "eu-west-1")], [
        InventoryItem(arn="arn:aws:rds:eu-west-1:1:db:a", service="rds", kind="db-instance", account="1",
                      region="eu-west-1", name="a", read_at=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), target="t1")]),
    "inventory_items": lambda s: s.inventory_items(),
    "get_meta": lambda s: s.get_meta("k"),
    "meta_keys": lambda s: s.meta_keys("k"),
    "put_meta": lambda s: s.put_meta("k", "v"),
    "quarantine_summary": lambda s: s.quarantine_summary([FP], "2026-09-01", "2026-10-01"),
    "quarantined_groups": lambda s: s.quarantined_groups([FP], start="2026-09-01"),
    "freshness": lambda s: s.freshness([FP]),
    "metric_amounts": lambda s: s.metric_amounts(FP, "UnblendedCost", "2026-09-01", "2026-10-01", ["t1"]),
    "earliest_estimated_period": lambda s: s.earliest_estimated_period(FP),
    "latest_runs": lambda s: s.latest_runs(),
    "last_successes": lambda s: s.last_successes(),
    "record_totals": lambda s: s.record_totals(),
    "record_count": lambda s: s.record_count(),
    "top_keys": lambda s: s.top_keys(FP, "2026-09-01", "2026-10-01"),
    "dataset_summaries": lambda s: s.dataset_summaries(),
    "export_rows": lambda s: list(s.export_rows(ExportSelection((FP,)))),
    "export_parquet": lambda s: s.export_parquet(Path("unused.parquet"), ExportSelection((FP,))),
}

#: the table whose loss breaks each method (for the methods that read or write one table first)
TABLES = {
    "register_dataset": "datasets", "datasets": "datasets", "stage_page": "units", "stage_pages": "units",
    "commit_unit": "staging",
    "deleted_keys": "changes", "iter_records": "records", "unit_sink_records": "records", "begin_run": "runs",
    "resumable_run": "runs", "probe_run": "runs", "run_args": "runs", "last_run_args": "runs", "set_run_args": "runs",
    "plan_done_units": "runs", "reopen_run": "runs", "finish_run": "staging",
    "unit_progress": "units",
    "done_units": "units", "start_unit": "staging", "checkpoint_unit": "units", "fail_unit": "units",
    "pages_per_day": "units", "done_windows": "units", "has_done_units": "units", "quota_states": "quota_state",
    "record_quota_states": "quota_state", "advisory_states": "advisories", "record_advisories": "advisories",
    "record_inventory": "inventory", "inventory_items": "inventory",
    "get_meta": "meta", "meta_keys": "meta", "put_meta": "meta", "quarantine_summary": "quarantine",
    "quarantined_groups": "quarantine",
    "freshness": "units", "metric_amounts": "records", "earliest_estimated_period": "records",
    "latest_runs": "runs", "last_successes": "units", "record_totals": "records", "record_count": "records",
    "top_keys": "records", "dataset_summaries": "datasets", "export_rows": "datasets", "export_parquet": "datasets",
}


def _public_methods() -> set[str]:
    return {n for n, v in inspect.getmembers(Store, inspect.isfunction) if not n.startswith("_")} - {"close"}


def test_every_public_method_is_a_translated_operation_and_is_tested_here() -> None:
    """Each public Store method is declared as a store operation, and has a call in CALLS and TABLES below."""
    methods = _public_methods()
    assert methods == set(CALLS) == set(TABLES)
    for name in methods | {"close"}:
        assert getattr(getattr(Store, name), "__store_operation__", None), f"Store.{name} is not an operation"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_closed_store_raises_store_error(tmp_path: Path, name: str) -> None:
    """On a closed connection every method raises StoreError (chained from DuckDB's error), never duckdb.Error."""
    store = Store(tmp_path / "s.duckdb")
    load(store, [rec(1, "RDS", "p", "1")])
    store.close()
    with pytest.raises(StoreError, match=r"store .*s\.duckdb: .*closed") as info:
        CALLS[name](store)
    assert type(info.value.__cause__).__module__.startswith(("duckdb", "_duckdb"))


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_missing_table_raises_store_error_naming_the_operation(tmp_path: Path, name: str) -> None:
    """With a table of the schema dropped, every method raises StoreError naming what it was doing."""
    with Store(tmp_path / "s.duckdb") as store:
        load(store, [rec(1, "RDS", "p", "1")])
        store._db.run(f"DROP TABLE {TABLES[name]}")
        with pytest.raises(StoreError) as info:
            CALLS[name](store)
        assert f"s.duckdb: {getattr(Store, name).__store_operation__}: " in str(info.value)
        assert "Catalog Error" in str(info.value)


def test_an_export_read_after_its_call_returned_still_names_the_export(tmp_path: Path) -> None:
    """export_rows is read after the method returned: a failure while streaming names "export rows" too."""
    store = Store(tmp_path / "s.duckdb")
    load(store, [rec(1, "RDS", "p", "1")])
    result = store.export_rows(ExportSelection((FP,)), batch_rows=1)
    store.close()
    with pytest.raises(StoreError, match=r"s\.duckdb: export rows: "):
        list(result)


def test_a_failed_write_rolls_back_its_transaction(tmp_path: Path) -> None:
    """A write that fails midway leaves nothing of itself behind (its transaction is rolled back)."""
    with Store(tmp_path / "s.duckdb") as store:
        run_id, _ = store.begin_run("backfill", plan_id="p", args={})
        store.register_dataset(QUERY)
        store.start_unit(run_id, ref(run_id), UID, fresh=True)
        store._db.run("DROP TABLE quarantine")  # commit_unit fails after it has replaced the records
        store.stage_page(run_id, UID, QUERY.columns, 1, [rec(1, "RDS", "p", "1")], [], None)
        with pytest.raises(StoreError, match="commit unit"):
            store.commit_unit(run_id, 1, ref(run_id), UID)
        assert sql(store, "SELECT count(*) FROM records") == [(0,)]
        assert sql(store, "SELECT count(*) FROM staging") == [(2,)]
        store.start_unit(run_id, ref(run_id), "u2", fresh=True)  # the connection is usable after the rollback


def test_opening_a_store_that_is_not_duckdb_is_a_store_error(tmp_path: Path) -> None:
    """A file that is not a DuckDB database is refused with one StoreError line, read-only or not."""
    path = tmp_path / "s.duckdb"
    path.write_text("not a database\n")
    for read_only in (False, True):
        with pytest.raises(StoreError, match="cannot open"):
            Store(path, read_only=read_only)


async def test_the_async_store_translates_too(tmp_path: Path) -> None:
    """Through AsyncStore, a failing call raises StoreError in the awaiting task."""
    async with AsyncStore(tmp_path / "s.duckdb") as store:
        await store.call(lambda s: s._db.run("DROP TABLE units"))
        with pytest.raises(StoreError, match="read done units"):
            await store.call(lambda s: s.done_units("r"))
