"""The PostgreSQL sink against a real PostgreSQL server on 127.0.0.1 (a throw-away cluster per session,
a fresh database per test)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest

from dbcost.errors import ConfigError, SinkError, TransientSinkError
from dbcost.sinks import SinkRecord, UnitRef, open_sink
from dbcost.sinks.postgres import PostgresSink, range_lock_id
from tests.sinks.conftest import (
    KEY_NAMES,
    PostgresCluster,
    batches,
    create_database,
    expected,
    make_records,
    make_unit,
    message_key,
    tombstone,
)


def sink_for(dsn: str, options: str = "backoff_ms=10") -> PostgresSink:
    sink = open_sink(f"{dsn}?{options}" if options else dsn)
    assert isinstance(sink, PostgresSink)
    return sink


async def table(dsn: str) -> dict[str, dict[str, Any]]:
    """``dbcost_records`` reassembled into messages (the shape Kafka/Kinesis carry), by natural key."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT r.*, d.key1_name, d.key2_name FROM dbcost_records r "
                                "JOIN dbcost_datasets d USING (dataset)")
    finally:
        await conn.close()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        assert orjson.loads(row["keys_json"]) == [row["key1"], row["key2"]]
        assert Decimal(row["amount_text"]) == row["amount"]
        keys = {n: v for n, v in ((row["key1_name"], row["key1"]), (row["key2_name"], row["key2"])) if v is not None}
        msg = {"period_start": row["period_start"], "period_end": row["period_end"],
               "granularity": row["granularity"], "keys": keys, "metrics": {}, "estimated": row["estimated"],
               "dataset": row["dataset"], "target": row["target"], "version": row["version"],
               "run_id": row["run_id"]}
        key = message_key(msg)
        msg = out.setdefault(key, msg)
        assert msg["version"] == row["version"]  # every metric row of a record carries its version
        msg["metrics"][row["metric"]] = {"amount": row["amount_text"], "unit": row["unit"]}
    return out


async def test_units_round_trip_through_copy(pg_dsn: str) -> None:
    """Three units (unicode, '|', absent keys, Total-only) land via COPY, one row per metric, and read back exactly."""
    units = [make_unit(dt.date(2026, 9, 1) + dt.timedelta(days=10 * i)) for i in range(3)]
    sent = [make_records(u) for u in units]
    sink = sink_for(pg_dsn)
    await sink.open()
    try:
        for unit, records in zip(units, sent, strict=True):
            assert await sink.write_unit(unit, batches(records)) == len(records)
    finally:
        await sink.close()
    assert await table(pg_dsn) == expected(*sent)
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM dbcost_records") == 2 * 870
        assert [tuple(r) for r in await conn.fetch("SELECT * FROM dbcost_datasets")] == [
            (units[0].dataset, *KEY_NAMES, "DAILY")]
        # an absent key (NULL) and an empty tag value ('') are different records
        kinds = await conn.fetch("SELECT DISTINCT keys_json FROM dbcost_records WHERE key2 IS NULL OR key2 = ''")
        assert {r["keys_json"] for r in kinds} >= {'[null,null]', '["Amazon DynamoDB",null]', '["Amazon DynamoDB",""]'}
    finally:
        await conn.close()


async def test_restatement_supersedes_tombstones_delete_and_vanished_rows_go(pg_dsn: str) -> None:
    """A restated unit replaces its range: newer versions win, tombstoned and vanished records are deleted."""
    unit = make_unit(days=5)
    v1 = make_records(unit, version=100)
    v2 = make_records(unit, version=200, salt="restated")
    tomb = v2.pop(10)
    vanished = v2.pop(20)  # no tombstone: gone from the store's content for this range
    v2.append(tombstone(tomb, 200))
    other = make_unit(dt.date(2026, 10, 1), days=2)
    neighbours = make_records(other, version=100)
    sink = sink_for(pg_dsn)
    await sink.open()
    try:
        await sink.write_unit(unit, batches(v1))
        await sink.write_unit(other, batches(neighbours))
        await sink.write_unit(unit, batches(v2))
    finally:
        await sink.close()
    got = await table(pg_dsn)
    assert got == expected(v2, neighbours)
    assert tomb.key not in got and vanished.key not in got
    assert {m["version"] for k, m in got.items() if k.split("|")[2] < "2026-10"} == {200}


async def test_version_never_regresses(pg_dsn: str) -> None:
    """Older rows or an older tombstone written after a newer unit leave the newer rows untouched."""
    unit = make_unit(days=3)
    new = make_records(unit, version=300, salt="new")
    old = make_records(unit, version=100, salt="old")
    old_tomb = [tombstone(r, 200) if i == 5 else r for i, r in enumerate(old)]
    sink = sink_for(pg_dsn)
    await sink.open()
    try:
        await sink.write_unit(unit, batches(new))
        await sink.write_unit(unit, batches(old))
        await sink.write_unit(unit, batches(old_tomb))
    finally:
        await sink.close()
    assert await table(pg_dsn) == expected(new)


async def test_resent_unit_rewrites_nothing(pg_dsn: str) -> None:
    """The same unit sent again (same versions) leaves one copy and does not even rewrite a row (xmin)."""
    unit = make_unit(days=4)
    records = make_records(unit)
    sink = sink_for(pg_dsn)
    await sink.open()
    conn = await asyncpg.connect(pg_dsn)
    try:
        await sink.write_unit(unit, batches(records))
        before = await conn.fetch("SELECT xmin::text, keys_json, metric, period_start FROM dbcost_records")
        await sink.write_unit(unit, batches(records, size=33))
        after = await conn.fetch("SELECT xmin::text, keys_json, metric, period_start FROM dbcost_records")
    finally:
        await conn.close()
        await sink.close()
    assert sorted(map(tuple, before)) == sorted(map(tuple, after))
    assert await table(pg_dsn) == expected(records)


async def test_two_writers_on_disjoint_and_on_the_same_unit(pg_dsn: str) -> None:
    """Two sink instances write disjoint units and one shared unit at once: all there, shared unit at its newest."""
    a = [make_unit(dt.date(2026, 9, 1) + dt.timedelta(days=3 * i), days=3, target="acct-a") for i in range(3)]
    b = [make_unit(dt.date(2026, 9, 1) + dt.timedelta(days=3 * i), days=3, target="acct-b") for i in range(3)]
    shared = make_unit(dt.date(2026, 12, 1), days=6)
    sent_a = [make_records(u) for u in a]
    sent_b = [make_records(u) for u in b]
    shared_old, shared_new = make_records(shared, version=1), make_records(shared, version=2, salt="2")
    sinks = [sink_for(pg_dsn), sink_for(pg_dsn)]
    for s in sinks:
        await s.open()
    try:
        async def shard(sink: PostgresSink, units: list[UnitRef], sent: list[list[SinkRecord]],
                        last: list[SinkRecord]) -> None:
            for unit, records in zip(units, sent, strict=True):
                await sink.write_unit(unit, batches(records, size=20))
            await sink.write_unit(shared, batches(last, size=20))

        async with asyncio.TaskGroup() as tg:
            tg.create_task(shard(sinks[0], a, sent_a, shared_new))
            tg.create_task(shard(sinks[1], b, sent_b, shared_old))
    finally:
        for s in sinks:
            await s.close()
    assert await table(pg_dsn) == expected(*sent_a, *sent_b, shared_new)


async def test_writers_of_one_range_wait_for_its_lock(pg_dsn: str) -> None:
    """While another session holds the unit's range lock, write_unit waits; it completes once released."""
    unit = make_unit(days=2)
    records = make_records(unit)
    sink = sink_for(pg_dsn)
    await sink.open()
    holder = await asyncpg.connect(pg_dsn)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", range_lock_id(unit))
        task = asyncio.create_task(sink.write_unit(unit, batches(records)))
        await asyncio.sleep(0.5)
        assert not task.done()
        await tx.rollback()
        assert await asyncio.wait_for(task, 10) == len(records)
    finally:
        await holder.close()
        await sink.close()
    assert await table(pg_dsn) == expected(records)


async def test_bad_database_is_fatal_and_password_is_hidden(pg_cluster: PostgresCluster) -> None:
    """A database that does not exist is a SinkError at open (not retried); the name hides the password."""
    dsn = pg_cluster.dsn("no_such_db", user="postgres:s3cret")
    sink = sink_for(dsn, "retries=5&backoff_ms=2000")
    assert "s3cret" not in sink.name and ":***@" in sink.name
    started = time.monotonic()
    with pytest.raises(SinkError, match="no_such_db") as info:
        await sink.open()
    assert not isinstance(info.value, TransientSinkError) and time.monotonic() - started < 5
    assert "s3cret" not in str(info.value)
    await sink.close()


def test_bad_options_are_config_errors() -> None:
    """Sink options are validated before connecting."""
    with pytest.raises(ConfigError, match="retries"):
        open_sink("postgresql://u@127.0.0.1/db?retries=none")
    with pytest.raises(ConfigError, match="at least 1"):
        open_sink("postgresql://u@127.0.0.1/db?pool_size=0")


async def test_records_outside_the_unit_are_refused(pg_dsn: str) -> None:
    """A record of another target or outside [start, end) is a SinkError and nothing is written."""
    unit = make_unit(days=2)
    stray = make_records(make_unit(dt.date(2026, 9, 3), days=1))[:1]
    sink = sink_for(pg_dsn)
    await sink.open()
    try:
        with pytest.raises(SinkError, match="does not belong"):
            await sink.write_unit(unit, batches(make_records(unit) + stray))
    finally:
        await sink.close()
    assert await table(pg_dsn) == {}


async def test_server_stops_mid_transaction_then_resend_leaves_one_copy() -> None:
    """PostgreSQL stops mid-transaction -> TransientSinkError, nothing kept; after a restart the re-sent unit lands once."""
    with PostgresCluster() as cluster:
        dsn = await create_database(cluster, "failover")
        first, unit = make_unit(days=3), make_unit(dt.date(2026, 9, 10), days=5)
        before, records = make_records(first), make_records(unit)
        sink = sink_for(dsn, "retries=2&backoff_ms=100&connect_timeout=2")
        await sink.open()
        try:
            await sink.write_unit(first, batches(before))
            holder = await asyncpg.connect(dsn)
            tx = holder.transaction()
            await tx.start()
            await holder.execute("SELECT pg_advisory_xact_lock($1)", range_lock_id(unit))

            async def stopping() -> AsyncIterator[list[SinkRecord]]:
                async for batch in batches(records):
                    yield batch
                # the sink's transaction starts right after this and blocks on the range lock
                asyncio.get_running_loop().call_later(0.5, cluster.stop)

            started = time.monotonic()
            with pytest.raises(TransientSinkError, match="gave up after 2 attempts") as info:
                await sink.write_unit(unit, stopping())
            assert time.monotonic() - started < 20 and sink.name in str(info.value)
            holder.terminate()

            cluster.start()
            check = await asyncpg.connect(dsn)
            try:  # the failed transaction left nothing behind
                assert await check.fetchval("SELECT count(*) FROM dbcost_records WHERE period_start >= $1",
                                            unit.start.isoformat()) == 0
            finally:
                await check.close()
            assert await sink.write_unit(unit, batches(records)) == len(records)
            assert await sink.write_unit(unit, batches(records)) == len(records)
        finally:
            await sink.close()
        assert await table(dsn) == expected(before, records)
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM dbcost_records") == 2 * (len(before) + len(records))
        finally:
            await conn.close()
