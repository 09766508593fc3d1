"""`dbcost fetch` against the emulator over real HTTP, with throttling, 5xx, dropped connections and malformed
groups switched on: the records equal the ground truth to the last decimal and the quarantine holds
exactly the malformed groups."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from dbcost.emulator import Emulator, EmulatorConfig
from tests.conftest import run_cli_async
from tests.scenarios.conftest import TODAY


async def test_fetch_equals_ground_truth_under_throttling_faults_and_malformed_groups(tmp_path: Path) -> None:
    """61 days, DAILY, SERVICE x TAG:db-cluster, pages of 250: every page, every cent, every bad group."""
    cfg = EmulatorConfig(today=TODAY, page_size=250, max_rps=8, burst=2, fault_rate=0.05, drop_rate=0.03,
                         malformed_rate=0.005)
    request = {"TimePeriod": {"Start": "2026-09-01", "End": "2026-11-01"}, "Granularity": "DAILY",
               "Metrics": ["UnblendedCost"],
               "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "db-cluster"}]}
    async with Emulator(cfg) as emu:
        code, _, err = await run_cli_async(
            "fetch", "--start", "2026-09-01", "--end", "2026-11-01", "--group-by", "SERVICE", "--group-by",
            "TAG:db-cluster", "--endpoint-url", emu.url, "--max-rps", "20", "--output", str(tmp_path / "r.jsonl"),
            "--quarantine", str(tmp_path / "q.jsonl"), "--summary-json", str(tmp_path / "s.json"))
        truth = emu.truth(request)
        stats = emu.stats()
    assert code == 0, err
    records = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    quarantined = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert stats["throttled"] > 0 and stats["faults"] > 0 and stats["dropped"] > 0
    assert summary["throttled"] > 0 and summary["retries"] > 0
    assert len(records) == truth["groups"] and summary["pages"] > 20
    assert sum(Decimal(r["metrics"]["UnblendedCost"]["amount"]) for r in records) == Decimal(
        truth["metrics"]["UnblendedCost"])
    assert len(quarantined) == summary["quarantined"] == truth["malformed_groups"] > 0
    assert all(q["raw"] is not None and q["reason"] and q["period_start"] for q in quarantined)
