"""Structured logs (--log-format json): one JSON object per line, every field a log shipper needs."""

from __future__ import annotations

import json
from pathlib import Path

from dbcost.emulator import Emulator, EmulatorConfig
from tests.conftest import run_cli_async
from tests.scenarios.conftest import TODAY


async def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    """--log-format json: every stderr line is a JSON object with ts, level, logger and message; retries
    are logged at INFO with the error, and credentials never appear."""
    async with Emulator(EmulatorConfig(today=TODAY, fault_rate=0.3, page_size=5, seed=3)) as emu:
        code, _, err = await run_cli_async(
            "--log-format", "json", "--log-level", "INFO", "fetch", "--start", "2026-10-01", "--end", "2026-10-05",
            "--group-by", "SERVICE", "--endpoint-url", emu.url, "--output", str(tmp_path / "r.jsonl"),
            env={"AWS_SECRET_ACCESS_KEY": "SECRETdoNotLeak"})
    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "message"} <= set(x) for x in lines)
    assert any("retrying" in x["message"] for x in lines)
    assert any(x["message"].startswith("dbcost fetch: requests=") for x in lines)
    assert "SECRETdoNotLeak" not in err


async def test_json_log_lines_carry_the_counters_as_fields(tmp_path: Path) -> None:
    """--log-format json: a run's summary line has its counters as JSON fields (numbers), not only inside the
    message text, and keeps ts, level, logger and message (issue 14)."""
    async with Emulator(EmulatorConfig(today=TODAY, page_size=50)) as emu:
        code, _, err = await run_cli_async(
            "--log-format", "json", "fetch", "--start", "2026-10-01", "--end", "2026-10-03",
            "--group-by", "SERVICE", "--endpoint-url", emu.url, "--output", str(tmp_path / "r.jsonl"))
        assert code == 0, err
        [fetched] = [x for x in map(json.loads, err.splitlines()) if x["message"].startswith("dbcost fetch:")]
        code, _, err = await run_cli_async(
            "--log-format", "json", "backfill", "--start", "2026-10-01", "--end", "2026-10-03", "--today",
            TODAY.isoformat(), "--endpoint-url", emu.url, "--db", str(tmp_path / "s.duckdb"))
        assert code == 0, err
        [run] = [x for x in map(json.loads, err.splitlines()) if x["message"].startswith("dbcost backfill:")]
    assert {"ts", "level", "logger", "message"} <= set(fetched)
    assert fetched["requests"] == fetched["billed_requests"] == fetched["pages"] >= 1
    assert fetched["records"] > 0 and fetched["cost_usd"] == f"{fetched['billed_requests'] / 100:.2f}"
    assert run["status"] == "done" and run["units_done"] == run["units"] >= 1 and run["requests"] >= 1
    assert f"requests={run['requests']} " in run["message"]  # the text still says it for a human reader
