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
