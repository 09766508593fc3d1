"""Backfill end to end through the CLI against the emulator over real HTTP: exact sums under throttling,
faults, dropped connections and malformed groups; kill -9 and resume; shards; targets; caps; sync."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dbcost.emulator import Emulator, EmulatorConfig
from tests.conftest import free_port, kill_after_pages
from tests.scenarios.conftest import TODAY, TODAY_S, by_keys, dbcost, exported, sums

Q = ["--group-by", "SERVICE", "--group-by", "TAG:team"]


def truth_request(start: str, end: str = TODAY_S, gran: str = "DAILY") -> dict[str, object]:
    return {"TimePeriod": {"Start": start, "End": end}, "Granularity": gran, "Metrics": ["UnblendedCost"],
            "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "team"}]}


def truth_by_keys(truth: dict[str, object]) -> dict[tuple[tuple[str, str], ...], Decimal]:
    out: dict[tuple[tuple[str, str], ...], Decimal] = {}
    for row in truth["by_keys"]:  # type: ignore[attr-defined]
        out[tuple(sorted(row["keys"].items()))] = Decimal(row["metrics"]["UnblendedCost"])
    return out


async def test_thirteen_month_backfill_equals_ground_truth_under_faults(tmp_path: Path) -> None:
    """13 months, throttling + 5xx + dropped connections + malformed groups: exported sums equal the
    emulator's ground truth exactly, per key and in total, and quarantined equals malformed."""
    cfg = EmulatorConfig(today=TODAY, page_size=300, max_rps=30, burst=5, fault_rate=0.03, drop_rate=0.02,
                         malformed_rate=0.005)
    async with Emulator(cfg) as emu:
        db = tmp_path / "s.duckdb"
        code, out, err = await dbcost("backfill", "--start", "2025-10-01", *Q, "--endpoint-url", emu.url,
                                      "--db", str(db), "--max-rps", "40", "--json")
        assert code == 0, err
        summary = json.loads(out)
        truth = emu.truth(truth_request("2025-10-01"))
        stats = emu.stats()
    assert stats["throttled"] > 0 and stats["faults"] > 0 and stats["dropped"] > 0
    code, _, err = await dbcost("export", "--db", str(db), "--output", str(tmp_path / "all.jsonl"))
    assert code == 0, err
    records = exported(tmp_path / "all.jsonl")
    assert sums(records) == Decimal(truth["metrics"]["UnblendedCost"])
    assert by_keys(records) == truth_by_keys(truth)
    assert len(records) == truth["groups"]
    assert summary["quarantined"] == truth["malformed_groups"] > 0
    assert summary["units"] == 14 and summary["units_done"] == 14 and summary["status"] == "done"
    assert summary["retries"] > 0 and summary["throttled"] > 0
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM quarantine").fetchone() == (truth["malformed_groups"],)
        dup = con.execute("SELECT count(*) FROM (SELECT 1 FROM records GROUP BY dataset, target, period_start, "
                          "key1, key2, metric HAVING count(*) > 1)").fetchone()
        assert dup == (0,)


async def test_kill_9_at_random_points_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """Killed mid-run three times at random points, resumed: identical to a run never interrupted."""
    cfg = EmulatorConfig(today=TODAY, page_size=40, latency_ms=20, malformed_rate=0.003, fault_rate=0.02)
    args = ["--start", "2026-05-01", *Q, "--max-rps", "100", "--max-concurrency", "4"]
    async with Emulator(cfg) as emu:
        ref_db, db = tmp_path / "ref.duckdb", tmp_path / "killed.duckdb"
        before = emu.stats()["pages_served"]
        code, _, err = await dbcost("backfill", *args, "--endpoint-url", emu.url, "--db", str(ref_db))
        assert code == 0, err
        reference_pages = emu.stats()["pages_served"] - before
        rng = random.Random(int(os.environ.get("DBCOST_TEST_SEED", "4242")))
        kills = 0
        for attempt in range(10):
            cmd = [sys.executable, "-m", "dbcost", "backfill", *args, "--endpoint-url", emu.url, "--db", str(db),
                   "--today", TODAY_S] + (["--resume"] if attempt else [])
            proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.DEVNULL)
            # a random point of progress, 10-25% of the pages a whole run serves: three kills fit in one run
            if kills < 3 and await kill_after_pages(proc, emu, round(rng.uniform(0.10, 0.25) * reference_pages)):
                kills += 1
                continue
            await proc.wait()
            assert proc.returncode == 0
            break
        assert kills == 3
    for name, path in (("ref", ref_db), ("killed", db)):
        code, _, err = await dbcost("export", "--db", str(path), "--output", str(tmp_path / f"{name}.jsonl"))
        assert code == 0, err
    assert exported(tmp_path / "killed.jsonl") == exported(tmp_path / "ref.jsonl")
    with duckdb.connect(str(db), read_only=True) as con:
        qa = con.execute("SELECT count(*) FROM quarantine").fetchone()
    with duckdb.connect(str(ref_db), read_only=True) as con:
        qb = con.execute("SELECT count(*) FROM quarantine").fetchone()
    assert qa == qb


async def test_three_shards_equal_a_single_run_without_overlap(tmp_path: Path) -> None:
    """Shards 1/3, 2/3, 3/3 into separate stores: together exactly the single run, no unit twice."""
    async with Emulator(EmulatorConfig(today=TODAY, page_size=400, malformed_rate=0.002)) as emu:
        base = ["--start", "2026-01-01", "--end", "2026-11-01", *Q, "--endpoint-url", emu.url, "--max-rps", "100"]
        code, _, err = await dbcost("backfill", *base, "--db", str(tmp_path / "single.duckdb"))
        assert code == 0, err
        for k in (1, 2, 3):
            code, _, err = await dbcost("backfill", *base, "--shard", f"{k}/3", "--db", str(tmp_path / f"s{k}.duckdb"))
            assert code == 0, err
    merged: list[dict[str, object]] = []
    windows: list[tuple[str, str]] = []
    for k in (1, 2, 3):
        await dbcost("export", "--db", str(tmp_path / f"s{k}.duckdb"), "--output", str(tmp_path / f"s{k}.jsonl"))
        merged += exported(tmp_path / f"s{k}.jsonl")
        with duckdb.connect(str(tmp_path / f"s{k}.duckdb"), read_only=True) as con:
            windows += con.execute("SELECT window_start::VARCHAR, window_end::VARCHAR FROM units").fetchall()
    await dbcost("export", "--db", str(tmp_path / "single.duckdb"), "--output", str(tmp_path / "single.jsonl"))
    single = exported(tmp_path / "single.jsonl")
    key = lambda r: (r["period_start"], sorted(r["keys"].items()))  # noqa: E731
    assert sorted(merged, key=key) == sorted(single, key=key)
    assert len(windows) == len(set(windows)) == 10  # ten months, each window in exactly one shard


async def test_one_failing_target_does_not_stop_the_others(tmp_path: Path) -> None:
    """Two healthy payer targets and one that refuses connections: the healthy ones complete,
    exit 1, and the summary names the incomplete target."""
    async with Emulator(EmulatorConfig(today=TODAY, seed=1)) as a, Emulator(EmulatorConfig(today=TODAY, seed=2)) as b:
        targets = tmp_path / "targets.toml"
        targets.write_text(
            f'[[target]]\nname = "payer-a"\nendpoint_url = "{a.url}"\n\n'
            f'[[target]]\nname = "payer-b"\nendpoint_url = "{b.url}"\nmax_rps = 50\n\n'
            f'[[target]]\nname = "payer-down"\nendpoint_url = "http://127.0.0.1:{free_port()}"\n'
        )
        db = tmp_path / "s.duckdb"
        code, out, err = await dbcost("backfill", "--start", "2026-10-01", "--end", "2026-11-01", *Q,
                                      "--targets", str(targets), "--db", str(db), "--json", "--max-rps", "50",
                                      timeout=300)
        ta, tb = a.truth(truth_request("2026-10-01", "2026-11-01")), b.truth(truth_request("2026-10-01", "2026-11-01"))
    assert code == 1
    summary = json.loads(out)
    assert summary["incomplete_targets"] == ["payer-down"] and "payer-down" in err
    for name, t in (("payer-a", ta), ("payer-b", tb)):
        code, _, _ = await dbcost("export", "--db", str(db), "--target", name, "--output", str(tmp_path / f"{name}.jsonl"))
        assert sums(exported(tmp_path / f"{name}.jsonl")) == Decimal(t["metrics"]["UnblendedCost"])


async def test_caps_refuse_up_front_and_stop_cleanly_then_resume_finishes(tmp_path: Path) -> None:
    """A cap below the plan's minimum is refused (exit 2, nothing sent); a cap hit mid-run stops cleanly
    (exit 1, no partial unit committed) and --resume finishes with the truth."""
    async with Emulator(EmulatorConfig(today=TODAY, page_size=50)) as emu:
        base = ["--start", "2026-09-01", "--end", "2026-11-01", *Q, "--endpoint-url", emu.url, "--max-rps", "100",
                "--db", str(tmp_path / "s.duckdb")]
        code, _, err = await dbcost("backfill", *base, "--max-requests", "2")
        assert code == 2 and "cap" in err and emu.stats()["requests"] == 0
        code, _, err = await dbcost("backfill", *base, "--max-cost-usd", "0.25")
        assert code == 1 and "--resume" in err
        assert emu.stats()["requests"] <= 25
        with duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True) as con:
            statuses = dict(con.execute("SELECT status, count(*) FROM units GROUP BY 1").fetchall())
        assert statuses.get("running", 0) >= 1
        code, _, err = await dbcost("backfill", *base, "--resume")
        assert code == 0, err
        truth = emu.truth(truth_request("2026-09-01", "2026-11-01"))
    await dbcost("export", "--db", str(tmp_path / "s.duckdb"), "--output", str(tmp_path / "all.jsonl"))
    assert sums(exported(tmp_path / "all.jsonl")) == Decimal(truth["metrics"]["UnblendedCost"])


async def test_resume_after_expired_token_restarts_the_unit_from_page_one(tmp_path: Path) -> None:
    """A unit stopped mid-chain, whose saved token then expires (the data was updated meanwhile), restarts
    from its first page on --resume: no duplicate, no gap, and the store holds the updated data."""
    async with Emulator(EmulatorConfig(today=TODAY, page_size=40)) as emu:
        base = ["--start", "2026-10-01", "--end", "2026-11-01", *Q, "--endpoint-url", emu.url, "--max-rps", "100",
                "--window", "month", "--db", str(tmp_path / "s.duckdb")]
        code, _, _ = await dbcost("backfill", *base, "--max-requests", "5")
        assert code == 1
        emu.restate()  # Cost Explorer updates its data: tokens issued before are no longer valid
        code, out, err = await dbcost("backfill", *base, "--resume", "--json")
        assert code == 0, err
        assert json.loads(out)["restarts"] == 1
        truth = emu.truth(truth_request("2026-10-01", "2026-11-01"))
    await dbcost("export", "--db", str(tmp_path / "s.duckdb"), "--output", str(tmp_path / "all.jsonl"))
    records = exported(tmp_path / "all.jsonl")
    assert len(records) == truth["groups"]
    assert sums(records) == Decimal(truth["metrics"]["UnblendedCost"])


async def test_sync_rereads_the_restatement_window_and_records_changes(tmp_path: Path) -> None:
    """After a restatement, sync replaces the restated records (higher version) and logs what changed;
    the store then equals the new truth."""
    today = "2026-11-03"  # within the 5-day grace: October is re-read too
    async with Emulator(EmulatorConfig(today=__import__("datetime").date(2026, 11, 3))) as emu:
        db = tmp_path / "s.duckdb"
        common = [*Q, "--endpoint-url", emu.url, "--db", str(db), "--max-rps", "100", "--today", today]
        code, _, err = await run(["backfill", "--start", "2026-08-01", *common])
        assert code == 0, err
        with duckdb.connect(str(db), read_only=True) as con:
            v_before = con.execute("SELECT max(version) FROM records").fetchone()
        emu.restate()
        code, out, err = await run(["sync", *common, "--json"])
        assert code == 0, err
        summary = json.loads(out)
        truth = emu.truth(truth_request("2026-08-01", today))
    assert summary["changed"] > 0
    with duckdb.connect(str(db), read_only=True) as con:
        changed = con.execute("SELECT count(*), min(period_start) FROM changes WHERE kind = 'changed'").fetchall()
        v_after = con.execute("SELECT max(version) FROM records").fetchall()
        untouched = con.execute("SELECT count(*) FROM records WHERE period_start < '2026-10-01' AND version > ?",
                                [v_before[0] if v_before else 0]).fetchall()
    assert changed[0][0] == summary["changed"] and changed[0][1] >= "2026-10-01"
    assert v_before is not None and v_after[0][0] > v_before[0] and untouched == [(0,)]
    await dbcost("export", "--db", str(db), "--output", str(tmp_path / "all.jsonl"))
    assert sums(exported(tmp_path / "all.jsonl")) == Decimal(truth["metrics"]["UnblendedCost"])


async def run(args: list[str]) -> tuple[int, str, str]:
    from tests.conftest import run_cli_async

    return await run_cli_async(*args)


async def test_dry_run_prints_units_requests_and_dollars_and_sends_nothing(tmp_path: Path) -> None:
    """--dry-run: the plan as JSON (units, minimum requests, dollars), no request to the server."""
    async with Emulator(EmulatorConfig(today=TODAY)) as emu:
        code, out, err = await dbcost("backfill", "--start", "2025-10-01", *Q, "--endpoint-url", emu.url,
                                      "--db", str(tmp_path / "s.duckdb"), "--dry-run", "--json")
        assert code == 0, err
        assert emu.stats()["requests"] == 0
    plan = json.loads(out)
    assert len(plan["units"]) == plan["min_requests"] == 14 and plan["min_cost_usd"] == "0.14"


@pytest.mark.parametrize("bad", [["--shard", "4/3"], ["--window", "weekly"], ["--sink", "ftp://x"],
                                 ["--targets", "/nonexistent.toml"], ["--start", "2026-02-30"]])
async def test_bad_run_options_exit_2_with_one_line(bad: list[str], tmp_path: Path) -> None:
    """Bad run options: exit 2, one line naming the option, no store file created."""
    args = ["backfill", "--start", "2026-10-01", *Q, "--db", str(tmp_path / "s.duckdb"), *bad]
    code, _, err = await dbcost(*args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.duckdb").exists()


async def test_strict_exit_3_says_why_in_one_line(tmp_path: Path) -> None:
    """backfill --strict with malformed groups: exit 3 and one line saying how many were quarantined, why, and
    where they are kept (issue 14: it exited 3 silently)."""
    async with Emulator(EmulatorConfig(today=TODAY, malformed_rate=0.01, page_size=500)) as emu:
        db = tmp_path / "s.duckdb"
        code, out, err = await dbcost("backfill", "--start", "2026-10-01", "--end", "2026-10-15", *Q,
                                      "--endpoint-url", emu.url, "--db", str(db), "--strict", "--json")
        truth = emu.truth(truth_request("2026-10-01", "2026-10-15"))
    assert code == 3, err
    n = json.loads(out)["quarantined"]
    assert n == truth["malformed_groups"] > 0
    [line] = [x for x in err.splitlines() if "--strict" in x]
    assert f"exit 3 (--strict): {n} group(s) quarantined in this run (" in line
    # the command the line names shows exactly those groups, with their reason and raw JSON
    see = line.split("see them with their raw JSON: ", 1)[1].split()
    assert see[:2] == ["dbcost", "export"] and see[-1] == "--quarantine"
    code, _, err = await dbcost(*see[1:], "--output", str(tmp_path / "q.jsonl"))
    assert code == 0, err
    groups = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert len(groups) == n and all(g["reason"] and "raw" in g and g["target"] == "default" for g in groups)


def _json_stream(text: str) -> list[dict[str, Any]]:
    """Every JSON value of ``text``, one after the other (what `jq` reads)."""
    decoder, out, i = json.JSONDecoder(), list[dict[str, Any]](), 0
    while i < len(text.strip()):
        value, i = decoder.raw_decode(text, i)
        out.append(value)
        while i < len(text) and text[i].isspace():
            i += 1
    return out


async def test_sync_dataset_rereads_a_stored_dataset_without_restating_its_query(tmp_path: Path) -> None:
    """`sync --dataset ID` syncs one stored dataset with the query the store keeps (restated values replaced,
    the store equal to the new truth, the other dataset untouched); `--dataset all` syncs each in its own run
    (a JSON stream of summaries); a bad id, a restated query or a missing store is exit 2 and one line."""
    today = "2026-11-03"  # within the 5-day grace: October is re-read too
    async with Emulator(EmulatorConfig(today=__import__("datetime").date(2026, 11, 3))) as emu:
        db = tmp_path / "s.duckdb"
        common = ["--endpoint-url", emu.url, "--db", str(db), "--max-rps", "100", "--today", today]
        for query in ([*Q, "--start", "2026-10-01"], ["--group-by", "SERVICE", "--granularity", "MONTHLY",
                                                     "--start", "2026-08-01"]):
            code, _, err = await run(["backfill", *query, *common])
            assert code == 0, err
        code, out, err = await run(["datasets", "--db", str(db), "--format", "json"])
        assert code == 0, err
        daily, monthly = (d["dataset"] for d in json.loads(out))
        with duckdb.connect(str(db), read_only=True) as con:
            versions = dict(con.execute("SELECT dataset, max(version) FROM records GROUP BY 1").fetchall())
        emu.restate()
        code, out, err = await run(["sync", "--dataset", daily[:8], *common, "--json"])
        assert code == 0, err
        summary = json.loads(out)
        truth = emu.truth(truth_request("2026-10-01", today))
        assert summary["changed"] > 0 and summary["status"] == "done"
        with duckdb.connect(str(db), read_only=True) as con:
            after = dict(con.execute("SELECT dataset, max(version) FROM records GROUP BY 1").fetchall())
        assert after[daily] > versions[daily] and after[monthly] == versions[monthly]
        code, _, err = await dbcost("export", "--db", str(db), "--dataset", daily, "--output", str(tmp_path / "d.jsonl"))
        assert code == 0, err
        assert sums(exported(tmp_path / "d.jsonl")) == Decimal(truth["metrics"]["UnblendedCost"])

        code, out, err = await run(["sync", "--dataset", "all", *common, "--json"])
        assert code == 0, err
        runs = _json_stream(out)
        assert [r["status"] for r in runs] == ["done", "done"] and runs[0]["run_id"] != runs[1]["run_id"]
        assert f"dataset {monthly}" in err and f"dataset {daily}" in err

    for bad, message in ((["--dataset", "feedfacecafe"], "--dataset feedfacecafe: not in the store (`dbcost datasets`"),
                         (["--dataset", daily, "--group-by", "SERVICE"],
                          f"--dataset {daily}: the store keeps the dataset's query; do not restate it (--group-by)"),
                         (["--dataset", "all", "--db", str(tmp_path / "none.duckdb")], "--dataset: no store at")):
        code, out, err = await run(["sync", "--db", str(db), *bad, "--endpoint-url", "http://127.0.0.1:9"])
        assert code == 2 and not out, err
        [line] = err.strip().splitlines()
        assert message in line, line
