"""Scale-out into a data lake, end to end: three ``dbcost backfill`` shard processes at once, each with its own
store, all into one S3 prefix on moto's server, ``--resume`` passed on every attempt as the README's recipes
do; one shard is SIGKILLed mid-run and restarted. The objects, read back with pyarrow and collapsed to the
highest version per key, equal the emulator's ground truth; a second full run rewrites the same keys."""

from __future__ import annotations

import asyncio
import signal
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from dbcost.emulator import Emulator, EmulatorConfig
from tests.scenarios.conftest import TODAY, TODAY_S, dbcost
from tests.sinks.conftest import collapse_rows, create_bucket, lake_rows, read_bucket, s3_client

START, END = "2026-08-01", "2026-11-01"
Q = ["--group-by", "SERVICE", "--group-by", "TAG:team"]
BUCKET, PREFIX = "finops-lake", "dbcost/costs"


def truth_request() -> dict[str, object]:
    return {"TimePeriod": {"Start": START, "End": END}, "Granularity": "DAILY", "Metrics": ["UnblendedCost"],
            "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "team"}]}


def lake_by_keys(rows: list[dict[str, Any]]) -> tuple[dict[tuple[tuple[str, str], ...], Decimal], int]:
    """The collapsed lake's UnblendedCost per (SERVICE, team) and its number of records."""
    out: dict[tuple[tuple[str, str], ...], Decimal] = {}
    records = set()
    for (_, _, period, key1, key2, metric), row in collapse_rows(rows).items():
        records.add((period, key1, key2))
        if metric == "UnblendedCost":
            k = tuple(sorted((n, v) for n, v in (("SERVICE", key1), ("TAG:team", key2)) if v is not None))
            out[k] = out.get(k, Decimal(0)) + row["amount"]
    return out, len(records)


def manifest_windows(moto: str) -> set[tuple[str, str]]:
    """The (start, end) of every unit with a manifest entry in the prefix: the units whose objects are in place."""
    out = set()
    for page in s3_client(moto).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            if "/_manifest/" in obj["Key"]:
                _, start, end = obj["Key"].rsplit("/", 1)[1].removesuffix(".json").rsplit("_", 2)
                out.add((start, end))
    return out


def truth_by_keys(truth: dict[str, Any]) -> dict[tuple[tuple[str, str], ...], Decimal]:
    return {tuple(sorted(r["keys"].items())): Decimal(r["metrics"]["UnblendedCost"]) for r in truth["by_keys"]}


async def test_three_shards_into_one_prefix_one_killed_and_resumed_equal_the_truth(moto: str, tmp_path: Path) -> None:
    """Three shards at once into one bucket prefix, shard 2 SIGKILLed and restarted with --resume: the collapsed
    objects equal the ground truth (per key, in total, record count), one manifest entry per unit; a second
    full run rewrites exactly the same keys with the same rows."""
    create_bucket(moto, BUCKET)
    sink = f"s3://{BUCKET}/{PREFIX}?endpoint_url={moto}&backoff_ms=10"
    cfg = EmulatorConfig(today=TODAY, page_size=150, latency_ms=5, fault_rate=0.01)
    async with Emulator(cfg) as emu:
        base = ["backfill", "--start", START, "--end", END, *Q, "--endpoint-url", emu.url, "--max-rps", "200",
                "--window", "week", "--max-concurrency", "1", "--sink", sink, "--today", TODAY_S, "--json"]

        def shard(k: int, *extra: str) -> list[str]:
            return [*base, "--shard", f"{k}/3", "--db", str(tmp_path / f"shard-{k}.duckdb"), *extra]

        truth = emu.truth(truth_request())
        code, out, err = await dbcost(*shard(2, "--dry-run"))
        assert code == 0, err
        mine = {(u["start"], u["end"]) for u in orjson.loads(out)["units"]}
        assert len(mine) >= 4
        procs = [await asyncio.create_subprocess_exec(sys.executable, "-m", "dbcost", *shard(k, "--resume"),
                                                      stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                 for k in (1, 2, 3)]
        # a point of progress, not of time: shard 2 has put two of its units in place (so at least one is
        # checkpointed), and has more to go
        while len(mine & manifest_windows(moto)) < 2:
            if procs[1].returncode is not None:
                _, stderr = await procs[1].communicate()
                raise AssertionError(f"shard 2 ended before the kill: {stderr.decode()[-2000:]}")
            await asyncio.sleep(0.02)
        procs[1].send_signal(signal.SIGKILL)
        await procs[1].wait()
        assert len(mine & manifest_windows(moto)) < len(mine), "shard 2 finished before the kill"
        for k in (0, 2):
            _, stderr = await procs[k].communicate()
            assert procs[k].returncode == 0, stderr.decode()[-2000:]
        code, out, err = await dbcost(*shard(2, "--resume"))
        assert code == 0, err
        restarted = orjson.loads(out)
        assert restarted["resumed"] is True and restarted["status"] == "done"
        assert restarted["units_skipped"] >= 1 and restarted["units_done"] >= 1  # it continued where it was killed
        assert restarted["units_skipped"] + restarted["units_done"] == restarted["units"] == len(mine)
        first = read_bucket(moto, BUCKET, PREFIX)

        # the second full run: fresh runs (no --resume) of every shard, one after another
        for k in (1, 2, 3):
            code, _, err = await dbcost(*shard(k))
            assert code == 0, err
        second = read_bucket(moto, BUCKET, PREFIX)

    placed = {k for k in first if "/_tmp/" not in k}
    assert all(("/month=" in k and k.endswith(".parquet")) or ("/_manifest/" in k and k.endswith(".json"))
               for k in placed)
    entries = [orjson.loads(first[k]) for k in placed if k.endswith(".json")]
    parquet = {k for k in placed if k.endswith(".parquet")}
    assert parquet == {o["key"] for e in entries for o in e["objects"]}
    assert len({(e["target"], e["start"], e["end"]) for e in entries}) == len(entries) >= 13  # a week each
    assert sum(e["rows"] for e in entries) == len(lake_rows({k: first[k] for k in parquet}))

    got, records = lake_by_keys(lake_rows(first))
    assert got == truth_by_keys(truth)
    assert sum(got.values()) == Decimal(truth["metrics"]["UnblendedCost"])
    assert records == truth["groups"]

    replaced = {k for k in second if "/_tmp/" not in k}
    assert replaced == placed  # no new keys
    assert len(lake_rows(second)) == len(lake_rows(first))
    assert lake_by_keys(lake_rows(second)) == (got, records)
    rewritten = {orjson.loads(second[k])["run_id"] for k in replaced if k.endswith(".json")}
    assert rewritten.isdisjoint({e["run_id"] for e in entries})  # every entry was written again, by the new runs
