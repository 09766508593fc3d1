"""``backfill --dry-run [--probe]`` on a fresh store, through the CLI against the emulator over real HTTP: the plain
dry run sends nothing and says it cannot estimate; the probe spends at most max(2, 2%), estimates the following
run within 10%, and that run commits the probe's pages without buying them again."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import duckdb

from dbcost.emulator import Emulator, EmulatorConfig
from tests.scenarios.conftest import TODAY, dbcost, exported, sums

START, END = "2025-11-01", "2026-11-01"
Q = ["--start", START, "--end", END, "--group-by", "SERVICE", "--group-by", "TAG:db-cluster"]
TRUTH = {"TimePeriod": {"Start": START, "End": END}, "Granularity": "DAILY", "Metrics": ["UnblendedCost"],
         "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "db-cluster"}]}


async def test_probe_estimates_the_run_within_ten_percent_and_the_run_reuses_its_pages(tmp_path: Path) -> None:
    """12 months DAILY, fresh store: plain --dry-run sends nothing and says so in one line; --probe spends <= max(2,
    2%) and its estimate is within 10% of what the run then spends (the emulator's counter); the run continues the
    probe's run (its pages are not bought twice) and the store equals the ground truth."""
    async with Emulator(EmulatorConfig(today=TODAY, clusters=60, page_size=100)) as emu:
        db = tmp_path / "s.duckdb"
        common = [*Q, "--endpoint-url", emu.url, "--db", str(db), "--max-rps", "200"]

        code, out, err = await dbcost("backfill", *common, "--dry-run", "--json")
        assert code == 0, err
        plain = json.loads(out)
        assert emu.stats()["requests"] == 0 and not db.exists()
        assert plain["estimate_from"] == "none" and "expected_requests" in plain and "expected_cost_usd" in plain
        lines = [ln for ln in err.splitlines() if "cannot estimate well" in ln]
        assert len(lines) == 1 and "--probe" in lines[0]

        code, out, err = await dbcost("backfill", *common, "--dry-run", "--probe", "--json")
        assert code == 0, err
        probe = json.loads(out)
        probe_sent = emu.stats()["requests"]
        assert probe_sent == probe["probe_requests"] and probe["probe_complete"]
        assert probe["estimate_from"] == "probe" and Decimal(probe["expected_cost_usd"]) == probe["expected_requests"] * \
            Decimal("0.01")

        code, out, err = await dbcost("backfill", *common, "--json")
        assert code == 0, err
        run = json.loads(out)
        run_sent = emu.stats()["requests"] - probe_sent
        truth = emu.truth(TRUTH)
    assert run["status"] == "done" and run["continued_probe"] and run["requests"] == run_sent
    assert probe_sent <= max(2, math.floor(0.02 * run_sent))
    assert abs(probe["expected_requests"] - run_sent) <= 0.10 * run_sent
    # nothing bought twice: the run committed the probe's staged pages, and probe + run stay within 5% of the
    # fewest requests the data allows (one chain over the whole range)
    assert run["pages_reused"] == probe["probe_pages_reused"] > 0
    fewest = math.ceil(truth["groups"] / 100)
    assert probe_sent + run_sent <= 1.05 * fewest
    code, _, err = await dbcost("export", "--db", str(db), "--output", str(tmp_path / "all.jsonl"))
    assert code == 0, err
    records = exported(tmp_path / "all.jsonl")
    assert len(records) == truth["groups"] and sums(records) == Decimal(truth["metrics"]["UnblendedCost"])
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (1,)  # the probe's run, continued


async def test_probe_is_only_for_a_dry_run(tmp_path: Path) -> None:
    """--probe without --dry-run is a usage error (exit 2, one line) and sends nothing."""
    async with Emulator(EmulatorConfig(today=TODAY, clusters=5)) as emu:
        code, _, err = await dbcost("backfill", *Q, "--endpoint-url", emu.url, "--db", str(tmp_path / "s.duckdb"),
                                    "--probe")
        assert emu.stats()["requests"] == 0
    assert code == 2 and "--probe" in err and len(err.strip().splitlines()) == 1
