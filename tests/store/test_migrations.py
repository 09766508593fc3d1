"""Schema migrations: a store written by the schema-v1 release (``tests/data/store-v1.duckdb``, made at commit
d5782ed by the script in ``tests/data/README.md``) opens with today's code, is upgraded in place in one
transaction, keeps every record, unit and run readable through the named reads, and takes new writes: a
resumed run and a sync. A store newer than the code is refused with one line; a failed upgrade changes
nothing; a fresh store and an upgraded one have the same schema."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dbcost.config import RateSettings, Settings, StoreSettings, TargetConfig
from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.errors import StoreError
from dbcost.jobs.backfill import covered_until, sync_start
from dbcost.models import CostQuery
from dbcost.pipeline import RunSpec, run_pipeline
from dbcost.retry import RetryPolicy
from dbcost.store import SCHEMA_VERSION, RunStatus, Store, UnitStatus, _schema
from tests.store.helpers import sql

V1 = Path(__file__).resolve().parents[1] / "data" / "store-v1.duckdb"
#: what the fixture was made with (tests/data/README.md)
TODAY = dt.date(2026, 11, 3)
EMULATOR = EmulatorConfig(today=TODAY, clusters=12, accounts=2, page_size=40, malformed_rate=0.02)
DAILY = CostQuery.build(start="2026-10-01", end="2026-11-03", granularity="DAILY", group_by=["SERVICE", "TAG:team"])
STAGED = CostQuery.build(start="2026-10-01", end="2026-10-31", granularity="DAILY",
                         group_by=["SERVICE", "LINKED_ACCOUNT"])
SERVICES_KEY = "attribution-services|UnblendedCost|db-cluster|team|2026-10"


@pytest.fixture
def v1_copy(tmp_path: Path) -> Path:
    path = tmp_path / "old.duckdb"
    shutil.copyfile(V1, path)
    return path


def _raw(path: Path, query: str) -> list[tuple[Any, ...]]:
    """Rows of ``query`` on the file, read with DuckDB itself (not through the store)."""
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(query).fetchall()


def _columns(path: Path) -> list[tuple[Any, ...]]:
    return _raw(path, "SELECT table_name, column_name, ordinal_position, data_type, is_nullable, column_default "
                      "FROM information_schema.columns WHERE table_schema = 'main' ORDER BY 1, 3")


def test_the_fixture_is_a_v1_store() -> None:
    """The committed file is what the v1 release wrote: version 1, no datasets.operation, every table filled."""
    assert _raw(V1, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]
    assert "operation" not in {c[1] for c in _columns(V1) if c[0] == "datasets"}
    for table in ("datasets", "records", "staging", "staging_quarantine", "quarantine", "runs", "units", "changes",
                  "quota_state"):
        assert _raw(V1, f"SELECT count(*) FROM {table}")[0][0] > 0, table


def test_a_v1_store_is_upgraded_in_place_and_keeps_everything(v1_copy: Path) -> None:
    """Opened read-write, the v1 store becomes current (v2: datasets.operation = GetCostAndUsage; v3: an empty
    advisories table; v4: an empty inventory table) and its records, sums, units, runs, quarantine, quota state
    and metadata read back unchanged through the named reads."""
    sums = dict(_raw(V1, "SELECT dataset, sum(amount) FROM records GROUP BY 1"))
    counts = dict(_raw(V1, "SELECT dataset, count(*) FROM records GROUP BY 1"))
    units = dict(_raw(V1, "SELECT status, count(*) FROM units GROUP BY 1"))
    labels = _raw(V1, "SELECT dataset, label FROM datasets ORDER BY created_at")
    quarantine = _raw(V1, "SELECT reason, count(*) FROM quarantine GROUP BY 1 ORDER BY 2 DESC, 1")
    tables = {c[:2] for c in _columns(V1)}
    with Store(v1_copy) as store:
        assert sql(store, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        assert SCHEMA_VERSION == 4
        assert store.advisory_states("UnblendedCost|db-cluster") == []
        assert store.inventory_items() == []
        datasets = store.datasets()
        assert [(d["dataset"], d["label"]) for d in datasets] == labels
        assert {d["operation"] for d in datasets} == {"GetCostAndUsage"}
        for ds, total in sums.items():
            assert store.record_totals(ds) == (total, counts[ds])
        # one metric: a record is a row
        assert sum(len(b) for b in store.iter_records(dataset=DAILY.fingerprint)) == counts[DAILY.fingerprint]
        assert dict(sql(store, "SELECT status, count(*) FROM units GROUP BY 1")) == units
        assert units == {UnitStatus.DONE: 11, UnitStatus.FAILED: 3, UnitStatus.RUNNING: 1}
        assert store.quarantine_summary([d["dataset"] for d in datasets], "2026-01-01", "2027-01-01") == \
            quarantine
        assert store.quota_states("2026-10") == {"payments": "breach", "search": "ok"}
        assert store.get_meta(SERVICES_KEY) == '["Amazon RDS"]'
        assert {r.command: r.status for r in store.latest_runs()} == {"backfill": RunStatus.STOPPED,
                                                                      "sync": RunStatus.DONE}
        assert [t for t, *_ in store.freshness([DAILY.fingerprint])] == ["payer-a", "payer-b"]
        assert covered_until(store, DAILY.fingerprint, "payer-a") == TODAY
        assert sync_start(store, DAILY, ["payer-a", "payer-b"], TODAY) == dt.date(2026, 10, 1)
    advisories = {c[:2] for c in _columns(v1_copy) if c[0] == "advisories"}
    assert {name for _, name in advisories} >= {"scope", "id", "first_seen", "resolved_at", "version", "payload"}
    inventory = {c[:2] for c in _columns(v1_copy) if c[0] == "inventory"}
    assert {name for _, name in inventory} >= {"target", "arn", "aliases", "tags", "read_at"}
    assert {c[:2] for c in _columns(v1_copy)} == tables | {("datasets", "operation")} | advisories | inventory


def test_an_upgraded_store_has_the_schema_of_a_fresh_one(v1_copy: Path, tmp_path: Path) -> None:
    """Every column (name, position, type, nullability, default) of an upgraded v1 store equals a new store's."""
    Store(v1_copy).close()
    Store(tmp_path / "new.duckdb").close()
    assert _columns(v1_copy) == _columns(tmp_path / "new.duckdb")
    assert ("datasets", "operation", 9, "VARCHAR", "NO", "'GetCostAndUsage'") in _columns(v1_copy)


def test_a_read_only_open_upgrades_an_older_store_but_never_creates_one(v1_copy: Path, tmp_path: Path) -> None:
    """Read-only commands (export, report) on a v1 store see the current schema; on an empty file they create
    nothing."""
    with Store(v1_copy, read_only=True) as store:
        assert {d["operation"] for d in store.datasets()} == {"GetCostAndUsage"}
        assert store.advisory_states("UnblendedCost|db-cluster") == []
    assert _raw(v1_copy, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with Store(empty, read_only=True) as store, pytest.raises(StoreError, match="list datasets"):
        store.datasets()
    assert _raw(empty, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main'") == [(0,)]


def test_a_store_newer_than_the_code_is_refused_with_one_line(v1_copy: Path) -> None:
    """schema_version above SCHEMA_VERSION: StoreError, one line, read-write and read-only alike."""
    with duckdb.connect(str(v1_copy)) as con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    for read_only in (False, True):
        with pytest.raises(StoreError) as info:
            Store(v1_copy, read_only=read_only)
        message = str(info.value)
        assert message == f"{v1_copy}: store schema version 99 is newer than this dbcost ({SCHEMA_VERSION})"
        assert "\n" not in message
    assert _raw(v1_copy, "SELECT value FROM meta WHERE key = 'schema_version'") == [("99",)]


def test_a_failed_upgrade_leaves_the_file_as_it_was(v1_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The steps run in one transaction: a step that fails rolls back the steps before it and the version."""
    nxt = SCHEMA_VERSION + 1
    broken = _schema.Migration(nxt, "broken", ("ALTER TABLE datasets ADD COLUMN x INTEGER", "SELECT * FROM nowhere"))
    monkeypatch.setattr(_schema, "MIGRATIONS", (*_schema.MIGRATIONS, broken))
    monkeypatch.setattr(_schema, "SCHEMA_VERSION", nxt)
    with pytest.raises(StoreError, match="upgrade schema: Catalog Error"):
        Store(v1_copy)
    assert _raw(v1_copy, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]
    assert {c[1] for c in _columns(v1_copy) if c[0] == "datasets"}.isdisjoint({"operation", "x"})
    assert "advisories" not in {c[0] for c in _columns(v1_copy)}


def test_an_upgraded_v1_store_keeps_advisory_state(v1_copy: Path) -> None:
    """The advisories table an upgrade adds takes rows, replaces them per (scope, id) and reads them back."""
    from dbcost.store.state import AdvisoryRow

    seen = dt.datetime(2026, 11, 3, 6, 0)
    row = AdvisoryRow("k1", "2026-10", {"kind": "idle", "estimated_monthly_savings": "12.5"}, seen, None, 7)
    with Store(v1_copy) as store:
        store.record_advisories("UnblendedCost|db-cluster", [row])
        store.record_advisories("UnblendedCost|db-cluster", [row._replace(resolved_at=seen, version=8)])
        store.record_advisories("AmortizedCost|db-cluster", [row])
    with Store(v1_copy, read_only=True) as store:
        assert store.advisory_states("UnblendedCost|db-cluster") == [row._replace(resolved_at=seen, version=8)]
        assert store.advisory_states("AmortizedCost|db-cluster") == [row]


def test_a_new_store_records_the_current_version(tmp_path: Path) -> None:
    """A store created by this code is at SCHEMA_VERSION and reopens without change."""
    path = tmp_path / "s.duckdb"
    Store(path).close()
    with Store(path) as store:
        assert sql(store, "SELECT key, value FROM meta") == [("schema_version", str(SCHEMA_VERSION))]


async def test_an_upgraded_store_resumes_its_stopped_run_and_takes_a_sync(v1_copy: Path) -> None:
    """After the upgrade, the v1 release's stopped run resumes from its staged pages to the emulator's truth,
    and a sync of the daily dataset from where coverage ends re-reads the restatement window to the truth."""
    async with Emulator(EMULATOR) as emu:
        a = TargetConfig(name="payer-a", endpoint_url=emu.url)
        b = TargetConfig(name="payer-b", endpoint_url=emu.url)

        def spec(q: CostQuery, targets: list[TargetConfig], **kw: Any) -> RunSpec:
            settings = Settings(targets=tuple(targets), store=StoreSettings(path=v1_copy), credentials=("k", "s"),
                                retry=RetryPolicy.no_wait(max_attempts=2), rate=RateSettings(max_rps=500))
            return RunSpec(query=q, settings=settings, today=TODAY, window="month", **kw)

        resumed = await run_pipeline(spec(STAGED, [a], resume=True))
        assert resumed.status == RunStatus.DONE and resumed.resumed
        with Store(v1_copy, read_only=True) as store:
            begin = sync_start(store, DAILY, ["payer-a", "payer-b"], TODAY)
        synced = await run_pipeline(spec(CostQuery.build(start=begin, end=TODAY, granularity="DAILY",
                                                         group_by=["SERVICE", "TAG:team"]), [a, b], command="sync"))
        assert synced.status == RunStatus.DONE and synced.changed > 0  # the fixture holds restated amounts
        staged_truth = Decimal(emu.truth(STAGED.to_request())["metrics"]["UnblendedCost"])
        daily_truth = Decimal(emu.truth(DAILY.to_request())["metrics"]["UnblendedCost"])
    with Store(v1_copy) as store:
        s, e = "2026-10-01", "2026-11-03"
        assert sum(r.amount for r in store.metric_amounts(STAGED.fingerprint, "UnblendedCost", s, e,
                                                          ["payer-a"])) == staged_truth
        for target in ("payer-a", "payer-b"):
            assert sum(r.amount for r in store.metric_amounts(DAILY.fingerprint, "UnblendedCost", s, e,
                                                              [target])) == daily_truth
        assert store.resumable_run(resumed.plan.plan_id) is None
        assert sql(store, "SELECT count(*) FROM staging") == [(0,)]
