"""Backfills into each sink end to end: the CLI against the emulator (with 5xx, dropped connections and
malformed groups), killed mid-run with SIGKILL and resumed; read back from the real server, keeping the
highest version per key, the sink holds exactly the emulator's ground truth. A restatement reaches Kafka
with a higher version."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from dbcost.emulator import Emulator, EmulatorConfig
from tests.conftest import kill_after_pages, run_cli_async
from tests.sinks.conftest import PostgresCluster, TansuBroker, collapse
from tests.sinks.test_kafka import read_topic
from tests.sinks.test_kinesis import read_stream

TODAY = dt.date(2026, 11, 28)
START = "2026-08-01"
Q = ["--group-by", "SERVICE", "--group-by", "TAG:team"]


def faulty(today: dt.date = TODAY) -> EmulatorConfig:
    return EmulatorConfig(today=today, page_size=80, latency_ms=10, fault_rate=0.03, drop_rate=0.02,
                          malformed_rate=0.004)


def truth(emu: Emulator, start: str = START, end: str = TODAY.isoformat()) -> dict[str, Any]:
    return emu.truth({"TimePeriod": {"Start": start, "End": end}, "Granularity": "DAILY",
                      "Metrics": ["UnblendedCost"],
                      "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "team"}]})


def by_keys(records: list[dict[str, Any]]) -> dict[tuple[str, str], Decimal]:
    out: dict[tuple[str, str], Decimal] = {}
    for r in records:
        k = (r["keys"].get("SERVICE", ""), r["keys"].get("TAG:team", ""))
        out[k] = out.get(k, Decimal(0)) + Decimal(r["metrics"]["UnblendedCost"]["amount"])
    return out


def truth_by_keys(t: dict[str, Any]) -> dict[tuple[str, str], Decimal]:
    return {(r["keys"]["SERVICE"], r["keys"]["TAG:team"]): Decimal(r["metrics"]["UnblendedCost"])
            for r in t["by_keys"]}


async def killed_then_resumed(emu: Emulator, db: Path, sink: str, seed: int) -> None:
    """One backfill into ``sink`` killed with SIGKILL at a random point of its progress (after 10 to 60 of
    the about 93 pages it needs), then --resume until done."""
    args = [sys.executable, "-m", "dbcost", "backfill", "--start", START, *Q, "--endpoint-url", emu.url, "--db",
            str(db), "--sink", sink, "--max-rps", "100", "--max-concurrency", "4", "--today", TODAY.isoformat()]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    killed = await kill_after_pages(proc, emu, random.Random(seed).randint(10, 60))
    code, _, err = await run_cli_async(*args[3:], "--resume")
    assert code == 0, err
    assert killed, "the first run finished before the kill point"


def check(records: list[dict[str, Any]], t: dict[str, Any]) -> None:
    assert len(records) == t["groups"]
    assert by_keys(records) == truth_by_keys(t)
    assert sum(by_keys(records).values()) == Decimal(t["metrics"]["UnblendedCost"])


async def test_kafka_holds_the_ground_truth_after_kill_and_resume(tansu: TansuBroker, tmp_path: Path) -> None:
    """Kafka: at-least-once with versions; the collapsed topic equals the truth after a kill -9 + resume."""
    topic = f"e2e-{os.getpid()}-{random.randrange(10**6)}"
    async with Emulator(faulty()) as emu:
        await killed_then_resumed(emu, tmp_path / "s.duckdb", f"kafka://{tansu.bootstrap}/{topic}?idempotence=false", 1)
        t = truth(emu)
    messages = [m for _, m in await read_topic(tansu.bootstrap, topic)]
    check(list(collapse(messages).values()), t)
    assert len(messages) >= t["groups"]  # duplicates from the re-sent unit(s) are allowed, and collapse


async def test_restated_record_reaches_kafka_with_a_higher_version(tansu: TansuBroker, tmp_path: Path) -> None:
    """After the emulator restates October, `dbcost sync` sends the changed records again with a higher
    version; keeping the highest version per key gives the new truth."""
    topic = f"restate-{os.getpid()}-{random.randrange(10**6)}"
    today = dt.date(2026, 11, 3)
    sink = f"kafka://{tansu.bootstrap}/{topic}?idempotence=false"
    async with Emulator(EmulatorConfig(today=today, page_size=200)) as emu:
        common = [*Q, "--endpoint-url", emu.url, "--db", str(tmp_path / "s.duckdb"), "--sink", sink, "--max-rps",
                  "100", "--today", today.isoformat()]
        code, _, err = await run_cli_async("backfill", "--start", START, *common)
        assert code == 0, err
        before = {m["period_start"] + "|" + repr(sorted(m["keys"].items())): m
                  for _, m in await read_topic(tansu.bootstrap, topic)}
        emu.restate()
        code, _, err = await run_cli_async("sync", *common)
        assert code == 0, err
        t = truth(emu, START, today.isoformat())
    messages = [m for _, m in await read_topic(tansu.bootstrap, topic)]
    latest = collapse(messages)
    check(list(latest.values()), t)
    restated = [m for m in latest.values()
                if (old := before.get(m["period_start"] + "|" + repr(sorted(m["keys"].items())))) is not None
                and old["metrics"] != m["metrics"]]
    assert restated, "the restatement changed nothing the sink saw"
    for m in restated:
        old = before[m["period_start"] + "|" + repr(sorted(m["keys"].items()))]
        assert m["version"] > old["version"] and m["period_start"] >= "2026-10-01"


async def test_kinesis_holds_the_ground_truth_after_kill_and_resume(moto: str, tmp_path: Path) -> None:
    """Kinesis (moto's server): the collapsed stream equals the truth after a kill -9 + resume."""
    stream = f"e2e-{random.randrange(10**6)}"
    sink = f"kinesis://{stream}?endpoint_url={moto}&create_stream=true&shards=2&backoff_ms=10"
    async with Emulator(faulty()) as emu:
        await killed_then_resumed(emu, tmp_path / "s.duckdb", sink, 2)
        t = truth(emu)
    messages = [m for _, m in await read_stream(moto, stream)]
    check(list(collapse(messages).values()), t)


async def test_postgres_holds_the_ground_truth_after_kill_and_resume(pg_cluster: PostgresCluster, pg_dsn: str,
                                                                     tmp_path: Path) -> None:
    """PostgreSQL: exactly one row per natural key and metric, equal to the truth after a kill -9 + resume."""
    async with Emulator(faulty()) as emu:
        await killed_then_resumed(emu, tmp_path / "s.duckdb", pg_dsn, 3)
        t = truth(emu)
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch("SELECT period_start, key1, key2, amount_text, unit FROM dbcost_records "
                                "WHERE metric = 'UnblendedCost'")
        dup = await conn.fetchval("SELECT count(*) FROM (SELECT 1 FROM dbcost_records GROUP BY dataset, target, "
                                  "period_start, keys_json, metric HAVING count(*) > 1) d")
    finally:
        await conn.close()
    assert dup == 0
    records = [{"keys": {"SERVICE": r["key1"] or "", "TAG:team": r["key2"] or ""},
                "metrics": {"UnblendedCost": {"amount": r["amount_text"], "unit": r["unit"]}}} for r in rows]
    check(records, t)


async def test_quota_status_changes_go_to_the_status_topic(tansu: TansuBroker, tmp_path: Path) -> None:
    """`dbcost quota check --sink kafka://…/TOPIC` publishes each pool's status change to TOPIC.quota-status,
    once: a second check with nothing changed publishes nothing."""
    topic = f"costs-{random.randrange(10**6)}"
    db = tmp_path / "s.duckdb"
    async with Emulator(EmulatorConfig(today=TODAY)) as emu:
        code, _, err = await run_cli_async("attribute", "--month", "2026-11", "--db", str(db), "--endpoint-url",
                                           emu.url, "--today", TODAY.isoformat(), "--max-rps", "100")
        assert code == 0, err
    policy = tmp_path / "policy.toml"
    policy.write_text('[[pool]]\nname = "platform"\nteam = "platform"\nmonthly_budget_usd = 50000\n\n'
                      '[[pool]]\nname = "search"\nteam = "search"\nmonthly_budget_usd = 999999\n')
    args = ["quota", "check", "--month", "2026-11", "--db", str(db), "--policy", str(policy), "--today",
            TODAY.isoformat(), "--sink", f"kafka://{tansu.bootstrap}/{topic}?idempotence=false"]
    code, _, err = await run_cli_async(*args)
    assert code == 0, err
    code, _, err = await run_cli_async(*args)
    assert code == 0, err
    events = [m for _, m in await read_topic(tansu.bootstrap, f"{topic}.quota-status")]
    assert [(e["pool"], e["old"], e["new"]) for e in events] == [("platform", None, "BREACH")]
