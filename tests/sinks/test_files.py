"""The file sinks (jsonl:PATH, parquet:DIR) through fetch and backfill, against the emulator."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.errors import ConfigError
from dbcost.sinks import parse_sink_url
from tests.conftest import run_cli_async
from tests.scenarios.conftest import TODAY, TODAY_S

Q = ["--group-by", "SERVICE", "--group-by", "TAG:team"]


def request(start: str, end: str) -> dict[str, object]:
    return {"TimePeriod": {"Start": start, "End": end}, "Granularity": "DAILY", "Metrics": ["UnblendedCost"],
            "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "team"}]}


async def test_fetch_streams_into_jsonl_and_parquet_sinks(tmp_path: Path) -> None:
    """fetch --sink: the sinks receive exactly the records written to --output, keyed and versioned."""
    async with Emulator(EmulatorConfig(today=TODAY, page_size=50, malformed_rate=0.01)) as emu:
        code, _, err = await run_cli_async(
            "fetch", "--start", "2026-10-01", "--end", "2026-10-11", *Q, "--endpoint-url", emu.url,
            "--output", str(tmp_path / "out.jsonl"), "--sink", f"jsonl:{tmp_path / 'sink.jsonl'}",
            "--sink", f"parquet:{tmp_path / 'pq'}")
        assert code == 0, err
        truth = emu.truth(request("2026-10-01", "2026-10-11"))
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    sink = [json.loads(x) for x in (tmp_path / "sink.jsonl").read_text().splitlines()]
    assert len(out) == len(sink) == truth["groups"]
    assert [{k: v for k, v in s.items() if k not in ("key", "dataset", "target", "version", "run_id")}
            for s in sink] == out
    assert len({s["key"] for s in sink}) == len(sink) and len({s["version"] for s in sink}) == 1
    [parquet] = list((tmp_path / "pq").glob("*.parquet"))
    table = pq.read_table(parquet)
    assert table.num_rows == len(out)
    assert sum(table.column("amount").to_pylist()) == Decimal(truth["metrics"]["UnblendedCost"])


async def test_backfill_parquet_sink_replaces_a_unit_file_on_rerun(tmp_path: Path) -> None:
    """parquet:DIR: a rerun (whose plan cuts the days into other units) replaces the days, never duplicates them."""
    async with Emulator(EmulatorConfig(today=TODAY, page_size=200)) as emu:
        args = ["backfill", "--start", "2026-09-01", "--end", "2026-11-01", *Q, "--endpoint-url", emu.url,
                "--db", str(tmp_path / "s.duckdb"), "--sink", f"parquet:{tmp_path / 'pq'}", "--today", TODAY_S]
        for _ in range(2):
            code, _, err = await run_cli_async(*args)
            assert code == 0, err
        truth = emu.truth(request("2026-09-01", "2026-11-01"))
    files = sorted((tmp_path / "pq").glob("*.parquet"))
    total = sum((sum(pq.read_table(f).column("amount").to_pylist()) for f in files), Decimal(0))
    assert total == Decimal(truth["metrics"]["UnblendedCost"])


@pytest.mark.parametrize("url", ["ftp://x", "kafka://host/topic", "kafka://host:99999/t", "jsonl:", "kinesis://",
                                 "postgresql://host"])
def test_bad_sink_urls_are_config_errors(url: str) -> None:
    """A --sink URL that cannot work is refused before anything runs, naming the URL."""
    with pytest.raises(ConfigError, match="--sink"):
        parse_sink_url(url)
