"""The Prometheus textfile (--metrics-file) written from what the store recorded, parsed as Prometheus would."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from dbcost.emulator import Emulator, EmulatorConfig
from tests.conftest import run_cli_async
from tests.scenarios.conftest import TODAY, TODAY_S


async def test_metrics_file_is_prometheus_text_with_run_counters(tmp_path: Path) -> None:
    """After a backfill, --metrics-file holds parseable Prometheus text: requests, billed requests, dollars,
    throttles, retries, records, quarantined per target, and the last success per target and dataset."""
    metrics = tmp_path / "dbcost.prom"
    async with Emulator(EmulatorConfig(today=TODAY, max_rps=20, burst=2, fault_rate=0.05, malformed_rate=0.01)) as emu:
        code, out, err = await run_cli_async(
            "backfill", "--start", "2026-10-01", "--end", "2026-11-01", "--group-by", "SERVICE", "--endpoint-url",
            emu.url, "--db", str(tmp_path / "s.duckdb"), "--max-rps", "60", "--json", "--metrics-file", str(metrics),
            "--today", TODAY_S)
    assert code == 0, err
    summary = json.loads(out)
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    sample = {(f.name, s.labels.get("target")): s.value for f in families.values() for s in f.samples}
    assert sample[("dbcost_requests", "default")] == summary["requests"]
    assert sample[("dbcost_billed_requests", "default")] == summary["billed_requests"]
    assert sample[("dbcost_throttled", "default")] == summary["throttled"] > 0
    assert sample[("dbcost_retries", "default")] == summary["retries"]
    assert sample[("dbcost_records", "default")] == summary["records"]
    assert sample[("dbcost_cost_usd", "default")] == float(summary["cost_usd"])
    assert families["dbcost_quarantined"].samples[0].value == summary["quarantined"]
    last = families["dbcost_last_success_timestamp_seconds"].samples
    assert last and last[0].labels["target"] == "default" and last[0].labels["dataset"]
    assert families["dbcost_run_ok"].samples[0].value == 1
