"""S3 sink benchmark: what a 13-month backfill of the demo fleet puts in the lake, and how long the writes take.

Starts the emulator (the demo fleet: 240 database clusters, 6 accounts, seed 7; no throttling, no faults) and
moto's S3 server in their own processes on 127.0.0.1, then:

1. ``dbcost backfill`` of 13 months (2025-10-01 to 2026-11-28: DAILY in the 13-month window, MONTHLY before
   it, as the planner splits it; grouped by SERVICE and TAG:db-cluster, the demo's query) into a
   DuckDB store, no sink: the baseline wall time;
2. the same backfill into a second store with ``--sink s3://bench/lake``: wall time, and what it left in the
   bucket (objects, bytes: Parquet and manifest entries apart);
3. every unit of that store written again through one :class:`~dbcost.sinks.s3.S3Sink`, one unit after the
   other (as ``--resume`` or a rerun would send them): the time of the writes alone, split into Parquet
   encoding and S3 calls.

moto keeps every object in its Python process: the S3 times are this machine's moto, not what AWS takes.

    python -m bench.bench_s3 [--start 2025-10-01] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.sinks.conftest import MotoServer, create_bucket, s3_client

from bench._emulator import serve_emulator
from dbcost.sinks import UnitRef, open_sink
from dbcost.sinks.s3 import S3Sink
from dbcost.store import Store

TODAY = dt.date(2026, 11, 28)
BUCKET = "bench"


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    return serve_emulator("--today", TODAY.isoformat())


def backfill(emulator: str, start: dt.date, db: Path, *sink: str) -> tuple[float, dict[str, Any]]:
    """Wall seconds and the --json summary of one backfill."""
    cmd = [sys.executable, "-m", "dbcost", "backfill", "--start", start.isoformat(), "--end", TODAY.isoformat(),
           "--group-by", "SERVICE", "--group-by", "TAG:db-cluster", "--endpoint-url", emulator, "--db", str(db),
           "--max-rps", "200", "--today", TODAY.isoformat(), "--json", *sink]
    began = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=dict(os.environ))
    wall = time.perf_counter() - began
    if out.returncode != 0:
        raise SystemExit(f"backfill failed ({out.returncode}): {out.stderr[-2000:]}")
    return wall, json.loads(out.stdout)


def bucket_contents(moto: str, prefix: str) -> dict[str, int]:
    """Objects and bytes under ``prefix``, Parquet and manifest entries apart."""
    counts = {"parquet_objects": 0, "parquet_bytes": 0, "manifest_entries": 0, "manifest_bytes": 0, "other": 0}
    for page in s3_client(moto).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".parquet"):
                counts["parquet_objects"] += 1
                counts["parquet_bytes"] += obj["Size"]
            elif "/_manifest/" in obj["Key"]:
                counts["manifest_entries"] += 1
                counts["manifest_bytes"] += obj["Size"]
            else:
                counts["other"] += 1
    return counts


async def replay(db: Path, url: str) -> dict[str, Any]:
    """Every done unit of the store's latest run, written again through one sink, one after the other."""
    with Store(db, read_only=True) as store:
        [latest] = [r for r in store.latest_runs() if r.command == "backfill"]
        datasets = {d["dataset"]: d for d in store.datasets()}
        units = []
        for ds, d in datasets.items():
            for target in ("default",):
                for start, end, _ in store.done_windows(ds, target):
                    unit = UnitRef(latest.run_id, ds, target, start, end, d["granularity"], tuple(d["key_names"]))
                    units.append((unit, [b for b in store.unit_sink_records(latest.run_id, unit)]))
    sink = open_sink(url)
    assert isinstance(sink, S3Sink)
    records = 0
    async with sink:
        began = time.perf_counter()
        for unit, batches in units:
            async def feed(b: list[Any] = batches) -> Any:
                for batch in b:
                    yield batch
            records += await sink.write_unit(unit, feed())
        wall = time.perf_counter() - began
    s = sink.stats
    return {"units": s.units, "records": records, "rows": s.rows, "objects": s.objects, "bytes": s.bytes,
            "wall_s": round(wall, 3), "s3_calls_s": round(s.s3_seconds, 3),
            "encode_and_other_s": round(wall - s.s3_seconds, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", default="2025-10-01",
                    help="first day (default: the 13-month backfill of the scenario tests, to today 2026-11-28)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    start = dt.date.fromisoformat(args.start)
    emulator, emu_url = start_emulator()
    try:
        with MotoServer() as moto, tempfile.TemporaryDirectory(prefix="dbcost-bench-s3-") as tmp:
            create_bucket(moto.url, BUCKET)
            sink = f"s3://{BUCKET}/lake?endpoint_url={moto.url}"
            base_wall, _ = backfill(emu_url, start, Path(tmp) / "a.duckdb")
            sink_wall, summary = backfill(emu_url, start, Path(tmp) / "b.duckdb", "--sink", sink)
            lake = bucket_contents(moto.url, "lake/")
            again = asyncio.run(replay(Path(tmp) / "b.duckdb", f"s3://{BUCKET}/replay?endpoint_url={moto.url}"))
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    result = {
        "range": f"{start}..{TODAY}", "units": summary["units"], "records": summary["records"],
        "requests": summary["requests"], "backfill_wall_s": round(base_wall, 2),
        "backfill_with_s3_wall_s": round(sink_wall, 2), "lake": lake, "rewrite_every_unit": again,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['range']}: {summary['units']} units, {summary['records']} records, {summary['requests']} requests")
    print(f"backfill without a sink {base_wall:.2f} s, with --sink s3:// {sink_wall:.2f} s")
    print(f"lake: {lake['parquet_objects']} Parquet objects, {lake['parquet_bytes']} bytes; "
          f"{lake['manifest_entries']} manifest entries, {lake['manifest_bytes']} bytes")
    print(f"every unit written again, one after the other: {again['wall_s']} s ({again['s3_calls_s']} s in S3 calls, "
          f"{again['encode_and_other_s']} s encoding); {again['rows']} rows")


if __name__ == "__main__":
    main()
