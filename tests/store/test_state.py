"""Run state: staged pages and the page checkpoint survive a reopen, a fresh run abandons the plan's unfinished
runs, units move running -> committed -> done (or failed), coverage is read from done units, quota state keeps
its history, job metadata round-trips."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dbcost.store import RunStatus, Store, UnitStatus
from tests.store.helpers import QUERY, UID, UNIT, load, rec, ref, sql


def test_staged_pages_and_token_survive_a_reopen(tmp_path: Path) -> None:
    """Staged rows and the page checkpoint are durable: a new process sees them and can continue."""
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        run_id, _ = store.begin_run("backfill", plan_id="p", args={})
        store.register_dataset(QUERY)
        store.start_unit(run_id, UNIT, UID, fresh=True)
        store.stage_page(run_id, UID, QUERY.columns, 1, [rec(1, "RDS", "p", "1")], [], "next-token")
    with Store(path) as store:
        progress = store.unit_progress(run_id, UID)
        assert progress is not None and (progress.status, progress.pages, progress.next_token) == ("running", 1,
                                                                                                     "next-token")
        assert sql(store, "SELECT count(*) FROM staging")[0][0] == 2
        assert store.resumable_run("p") is not None


def test_a_fresh_run_abandons_the_plans_unfinished_runs_and_their_staging(tmp_path: Path) -> None:
    """begin_run on a plan with an unfinished run marks it abandoned (not resumable) and drops its staging;
    versions strictly increase."""
    with Store(tmp_path / "s.duckdb") as store:
        old, v1 = store.begin_run("backfill", plan_id="p", args={"a": 1})
        store.start_unit(old, ref(old), UID, fresh=True)
        store.stage_page(old, UID, QUERY.columns, 1, [rec(1, "RDS", "p", "1")], [], "tok")
        assert store.resumable_run("p") == (old, v1)
        new, v2 = store.begin_run("backfill", plan_id="p", args={})
        assert v2 > v1
        assert store.resumable_run("p") == (new, v2)
        assert sql(store, "SELECT status FROM runs WHERE run_id = ?", [old]) == [(RunStatus.ABANDONED,)]
        assert sql(store, "SELECT count(*) FROM staging") == [(0,)]


def test_units_move_through_their_statuses_and_a_done_run_keeps_no_staging(tmp_path: Path) -> None:
    """running -> committed -> done; a failed unit keeps its error; finishing done drops the run's staging;
    a reopened run is running again."""
    with Store(tmp_path / "s.duckdb") as store:
        run_id, version = store.begin_run("backfill", plan_id="p", args={})
        unit = ref(run_id)
        store.register_dataset(QUERY)
        store.start_unit(run_id, unit, UID, fresh=True)
        store.stage_page(run_id, UID, QUERY.columns, 1, [rec(1, "RDS", "p", "1")], [], None)
        store.commit_unit(run_id, version, unit, UID)
        progress = store.unit_progress(run_id, UID)
        assert progress is not None and progress.status == UnitStatus.COMMITTED
        assert store.done_units(run_id) == set()
        store.checkpoint_unit(run_id, UID)
        assert store.done_units(run_id) == {UID}
        store.start_unit(run_id, unit, "u2", fresh=True)
        store.stage_page(run_id, "u2", QUERY.columns, 1, [rec(2, "RDS", "p", "1")], [], "tok")
        store.fail_unit(run_id, "u2", "x" * 3000)
        assert sql(store, "SELECT status, length(error) FROM units WHERE unit_id = 'u2'") == [(UnitStatus.FAILED, 2000)]
        store.finish_run(run_id, RunStatus.INCOMPLETE, {"units": 2}, ["t1"])
        assert sql(store, "SELECT count(*) FROM staging") == [(2,)]
        assert store.resumable_run("p") == (run_id, version)
        store.reopen_run(run_id)
        assert sql(store, "SELECT status, finished_at FROM runs") == [(RunStatus.RUNNING, None)]
        store.finish_run(run_id, RunStatus.DONE, {}, [])
        assert sql(store, "SELECT count(*) FROM staging") == [(0,)]
        assert store.resumable_run("p") is None


def test_plan_done_units_are_those_an_earlier_run_completed_with_at_least_these_sinks(tmp_path: Path) -> None:
    """plan_done_units: done units of any run of the plan (finished or abandoned), only from runs whose sinks
    include the ones asked for; other plans and unfinished units do not count."""
    with Store(tmp_path / "s.duckdb") as store:
        store.register_dataset(QUERY)
        first, _ = store.begin_run("backfill", plan_id="p", args={"sinks": ["s3://b/p", "jsonl:x"]})
        for uid in ("u1", "u2"):
            store.start_unit(first, ref(first), uid, fresh=True)
        store.checkpoint_unit(first, "u1")  # u2 never finished
        store.finish_run(first, RunStatus.INCOMPLETE, {}, [])
        other, _ = store.begin_run("backfill", plan_id="q", args={"sinks": ["s3://b/p"]})
        store.start_unit(other, ref(other), "u3", fresh=True)
        store.checkpoint_unit(other, "u3")
        assert store.plan_done_units("p", ["s3://b/p"]) == {"u1"}
        assert store.plan_done_units("p", []) == {"u1"}
        assert store.plan_done_units("p", ["s3://b/p", "kafka://h:1/t"]) == set()
        assert store.plan_done_units("nope", []) == set()
        store.begin_run("backfill", plan_id="p", args={})  # abandons the first: its done unit still counts
        assert store.plan_done_units("p", ["jsonl:x"]) == {"u1"}


def test_coverage_is_read_from_done_units_per_target(tmp_path: Path) -> None:
    """done_windows lists a target's completed windows (within a range when given); has_done_units says
    whether any overlaps a range; pages_per_day comes from done units only."""
    with Store(tmp_path / "s.duckdb") as store:
        load(store, [rec(1, "RDS", "p", "1")])
        [window] = store.done_windows(QUERY.fingerprint, "t1")
        assert (window.start, window.end) == (UNIT.start, UNIT.end) and isinstance(window.updated_at, dt.datetime)
        assert store.done_windows(QUERY.fingerprint, "t2") == []
        assert store.done_windows(QUERY.fingerprint, "t1", dt.date(2026, 9, 2), UNIT.end) == []
        assert store.done_windows(QUERY.fingerprint, "t1", UNIT.start, UNIT.end) == [window]
        assert store.has_done_units(QUERY.fingerprint, "t1", dt.date(2026, 9, 2), dt.date(2026, 10, 1))
        assert not store.has_done_units(QUERY.fingerprint, "t1", UNIT.end, dt.date(2026, 10, 1))
        assert store.pages_per_day() == {QUERY.fingerprint: 1.0}  # 2 pages over a 2-day window


def test_quota_states_are_the_latest_per_pool_with_history_kept(tmp_path: Path) -> None:
    """record_quota_states appends; quota_states answers the last status per pool of the month."""
    with Store(tmp_path / "s.duckdb") as store:
        store.record_quota_states("2026-10", {"a": ("warn", {"used": "80"}), "b": ("ok", {})})
        store.record_quota_states("2026-10", {"a": ("breach", {"used": "101"})})
        store.record_quota_states("2026-11", {"a": ("ok", {})})
        assert store.quota_states("2026-10") == {"a": "breach", "b": "ok"}
        assert store.quota_states("2026-09") == {}
        assert sql(store, "SELECT count(*) FROM quota_state") == [(4,)]


def test_job_metadata_round_trips_and_the_schema_version_is_the_stores(tmp_path: Path) -> None:
    """get_meta/put_meta keep a job's value (replaced on put); meta_keys lists a prefix's keys in order; the
    store's own key is refused."""
    with Store(tmp_path / "s.duckdb") as store:
        assert store.get_meta("k") is None
        store.put_meta("k", "1")
        store.put_meta("k", '["a"]')
        assert store.get_meta("k") == '["a"]'
        store.put_meta("k|2026-11", "x")
        store.put_meta("k|2026-09", "y")
        assert store.meta_keys("k|") == ["k|2026-09", "k|2026-11"] and store.meta_keys("nope") == []
        with pytest.raises(ValueError, match="belongs to the store"):
            store.put_meta("schema_version", "99")


def test_pages_staged_together_checkpoint_the_last_and_pending_pages_commit_with_the_unit(tmp_path: Path) -> None:
    """stage_pages stages several pages in one step and checkpoints after the last; the unit's last pages, handed
    to commit_unit unstaged, land with it: the same rows, versions and page count as staging page by page."""
    from dbcost.parse import ParsedPage
    from dbcost.store.records import stage_batch

    days = [[rec(1, "RDS", "p", "1"), rec(1, "RDS", "q", "2")], [rec(2, "RDS", "p", "3")], [rec(2, "EC2", "", "4")]]
    results = []
    for how in ("page by page", "batched"):
        with Store(tmp_path / f"{how}.duckdb") as store:
            run_id, version = store.begin_run("backfill", plan_id="p", args={})
            unit = ref(run_id)
            store.register_dataset(QUERY)
            store.start_unit(run_id, unit, UID, fresh=True)
            pages = [ParsedPage(i + 1, recs, [], f"t{i + 1}" if i < 2 else None) for i, recs in enumerate(days)]
            if how == "page by page":
                for p in pages:
                    store.stage_page(run_id, UID, QUERY.columns, p.page, p.records, p.quarantined, p.next_token)
                diff = store.commit_unit(run_id, version, unit, UID)
            else:
                store.stage_pages(run_id, UID, [stage_batch(QUERY.columns, [p]) for p in pages[:2]])
                progress = store.unit_progress(run_id, UID)
                assert progress is not None and (progress.pages, progress.next_token) == (2, "t2")
                diff = store.commit_unit(run_id, version, unit, UID, [stage_batch(QUERY.columns, pages[2:])])
            results.append((diff, sql(store, "SELECT period_start, key1, key2, metric, amount_text, version = ? FROM "
                                             "records ORDER BY ALL", [version]),
                            sql(store, "SELECT pages, status FROM units"), sql(store, "SELECT count(*) FROM staging")))
    assert results[0] == results[1]
    assert results[1][0].inserted == 8 and results[1][2] == [(3, "committed")] and results[1][3] == [(0,)]
