"""The Kinesis sink against moto's real server on 127.0.0.1 (through AwsTransport, SigV4 and all).

moto never fails single entries of a PutRecords call, so partial failures are injected at the transport
boundary by :class:`Wrapper`, which forwards the entries it does not fail to the real moto server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from dbcost.clock import FakeClock
from dbcost.errors import ServerError, SinkError, ThrottledError, TransientSinkError
from dbcost.sinks import SinkContext, SinkRecord, open_sink
from dbcost.sinks.kinesis import (
    MAX_CALL_BYTES,
    MAX_CALL_RECORDS,
    KinesisSink,
    partition_key,
    stream_lock,
)
from dbcost.transport.aws import AwsTransport
from dbcost.transport.mock import MockTransport
from tests.sinks.conftest import (
    MotoServer,
    batches,
    collapse,
    decode,
    expected,
    make_records,
    make_unit,
    message_key,
    tombstone,
)

STREAM = "dbcost-costs"


def sink_for(moto: str, options: str = "", stream: str = STREAM, ctx: SinkContext | None = None) -> KinesisSink:
    url = f"kinesis://{stream}?endpoint_url={moto}&create_stream=true&shards=2&backoff_ms=10"
    sink = open_sink(url + (f"&{options}" if options else ""), ctx)
    assert isinstance(sink, KinesisSink)
    return sink


async def read_stream(moto: str, stream: str = STREAM) -> list[tuple[str, dict[str, Any]]]:
    """Every record in every shard, from TRIM_HORIZON: (partition key, decoded data)."""
    out: list[tuple[str, dict[str, Any]]] = []
    async with AwsTransport(service="kinesis", endpoint_url=moto, region="us-east-1") as t:
        shards = (await t.call("ListShards", {"StreamName": stream}))["Shards"]
        for shard in shards:
            it = (await t.call("GetShardIterator", {"StreamName": stream, "ShardId": shard["ShardId"],
                                                    "ShardIteratorType": "TRIM_HORIZON"}))["ShardIterator"]
            while it:
                resp = await t.call("GetRecords", {"ShardIterator": it, "Limit": 10000})
                if not resp["Records"]:
                    break
                out.extend((r["PartitionKey"], decode(r["Data"])) for r in resp["Records"])
                it = resp.get("NextShardIterator")
    return out


class Wrapper:
    """A transport in front of the real one: records every PutRecords, counts calls in flight, and fails
    the entries ``fail(call_number, index)`` picks with ProvisionedThroughputExceededException (forwarding
    the others to moto)."""

    def __init__(self, inner: AwsTransport, fail: Callable[[int, int], bool] | None = None,
                 delay_s: float = 0.0) -> None:
        self.inner = inner
        self.fail = fail
        self.delay_s = delay_s
        self.calls: list[list[dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if operation != "PutRecords":
            return await self.inner.call(operation, params)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)  # room for a second caller to overlap, if the sink let it
            records = list(params["Records"])
            self.calls.append(records)
            n = len(self.calls)
            failing = {i for i in range(len(records)) if self.fail is not None and self.fail(n, i)}
            forward = [r for i, r in enumerate(records) if i not in failing]
            answers = iter((await self.inner.call("PutRecords", {**params, "Records": forward}))["Records"]
                           if forward else [])
            results = [{"ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": "Rate exceeded for shard shardId-000000000000"} if i in failing
                       else next(answers) for i in range(len(records))]
            return {"FailedRecordCount": len(failing), "Records": results}
        finally:
            self.in_flight -= 1


def size_of(entries: list[dict[str, Any]]) -> int:
    return sum(len(e["Data"]) + len(e["PartitionKey"].encode()) for e in entries)


async def test_units_round_trip_restatement_and_resend_collapse(moto: str) -> None:
    """Several units, a re-sent unit and a restated one (with a tombstone) collapse to the final content."""
    units = [make_unit(dt.date(2026, 9, 1) + dt.timedelta(days=5 * i), days=5) for i in range(3)]
    sent = [make_records(u, version=10) for u in units]
    restated = make_records(units[1], version=20, salt="restated")
    gone = restated.pop(3)
    restated.append(tombstone(gone, 20))
    sink = sink_for(moto)
    await sink.open()
    try:
        for unit, records in zip(units, sent, strict=True):
            assert await sink.write_unit(unit, batches(records)) == len(records)
        await sink.write_unit(units[0], batches(sent[0]))  # re-sent: same keys, same versions
        await sink.write_unit(units[1], batches(restated))
    finally:
        await sink.close()
    got = await read_stream(moto)
    assert len(got) == 4 * len(sent[0]) + len(restated)
    assert all(pk == partition_key(message_key(m)) for pk, m in got)
    final = collapse(m for _, m in got)
    assert final == expected(*sent, restated)
    assert gone.key not in final


# aiobotocore hands aiohttp the request body as bytes, and aiohttp warns about any body over 1 MiB
@pytest.mark.filterwarnings("ignore:Sending a large body directly with raw bytes:ResourceWarning")
async def test_big_units_split_into_calls_of_500_records_and_5_mib(moto: str) -> None:
    """1160 small records -> calls of <= 500; 300 records of ~20 KiB (> 5 MiB) -> calls of <= 5 MiB."""
    small_unit, big_unit = make_unit(days=40), make_unit(dt.date(2026, 11, 1), days=10)
    small = make_records(small_unit)
    big = make_records(big_unit, pad=20_000)
    assert len(small) > 2 * MAX_CALL_RECORDS
    assert sum(len(r.key) + 20_000 for r in big) > MAX_CALL_BYTES
    async with AwsTransport(service="kinesis", endpoint_url=moto, region="us-east-1") as aws:
        wrapper = Wrapper(aws)
        sink = sink_for(moto, ctx=SinkContext(transport=wrapper))
        await sink.open()
        try:
            await sink.write_unit(small_unit, batches(small, size=250))
            small_calls = list(wrapper.calls)
            await sink.write_unit(big_unit, batches(big))
            big_calls = wrapper.calls[len(small_calls):]
        finally:
            await sink.close()
    assert [len(c) for c in small_calls] == [500, 500, len(small) - 1000]
    assert len(big_calls) >= 2 and all(size_of(c) <= MAX_CALL_BYTES for c in big_calls)
    assert size_of(big_calls[0]) > MAX_CALL_BYTES - 25_000  # filled up to the limit, not split early
    assert [e["PartitionKey"] for c in small_calls + big_calls for e in c] == \
        [partition_key(r.key) for r in small + big]  # order kept
    got = await read_stream(moto)
    assert len(got) == len(small) + len(big)
    assert collapse(m for _, m in got) == expected(small, big)


async def test_partial_failure_retries_only_the_failed_entries_in_order(moto: str) -> None:
    """Throttled entries (every 3rd) are re-sent alone and in order; the stream ends with each record once."""
    unit = make_unit(days=5)
    records = make_records(unit)
    async with AwsTransport(service="kinesis", endpoint_url=moto, region="us-east-1") as aws:
        wrapper = Wrapper(aws, fail=lambda call, i: call == 1 and i % 3 == 0)
        sink = sink_for(moto, ctx=SinkContext(transport=wrapper))
        await sink.open()
        try:
            assert await sink.write_unit(unit, batches(records)) == len(records)
        finally:
            await sink.close()
    first, second = wrapper.calls
    assert len(first) == len(records)
    assert second == [e for i, e in enumerate(first) if i % 3 == 0]
    got = await read_stream(moto)
    assert len(got) == len(records)  # nothing sent twice: only the failed entries were retried
    assert collapse(m for _, m in got) == expected(records)


async def test_persistent_partial_failure_raises_transient_after_bounded_attempts() -> None:
    """Entries that keep failing: retries=4 makes 4 shrinking calls, then TransientSinkError (FakeClock, no sleep)."""
    calls: list[int] = []

    def handler(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "DescribeStreamSummary":
            return {"StreamDescriptionSummary": {"StreamStatus": "ACTIVE"}}
        records = params["Records"]
        calls.append(len(records))
        # the first entry of each call goes through, the rest are throttled
        results = [{"SequenceNumber": "1", "ShardId": "s"} if i == 0 else
                   {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
                   for i in range(len(records))]
        return {"FailedRecordCount": len(records) - 1, "Records": results}

    clock = FakeClock()
    sink = open_sink("kinesis://s?retries=4&backoff_ms=500", SinkContext(transport=MockTransport(handler), clock=clock))
    await sink.open()
    unit = make_unit(days=1)
    with pytest.raises(TransientSinkError, match=r"gave up after 4 attempts.*ProvisionedThroughputExceeded"):
        await sink.write_unit(unit, batches(make_records(unit)))
    await sink.close()
    assert calls == [29, 28, 27, 26]
    assert len(clock.slept) == 3


async def test_throttled_or_failed_calls_are_retried_whole_then_succeed() -> None:
    """A call that fails as a whole (throttling, 5xx) is repeated with the same entries."""
    seen: list[list[str]] = []
    failures = [ThrottledError("Rate exceeded", code="ProvisionedThroughputExceededException", status=400),
                ServerError("boom", code="InternalFailure", status=500)]

    def handler(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "DescribeStreamSummary":
            return {"StreamDescriptionSummary": {"StreamStatus": "ACTIVE"}}
        seen.append([r["PartitionKey"] for r in params["Records"]])
        if failures:
            raise failures.pop(0)
        return {"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1"} for _ in params["Records"]]}

    sink = open_sink("kinesis://s?retries=3", SinkContext(transport=MockTransport(handler), clock=FakeClock()))
    await sink.open()
    unit = make_unit(days=1)
    assert await sink.write_unit(unit, batches(make_records(unit))) == 29
    await sink.close()
    assert len(seen) == 3 and seen[0] == seen[1] == seen[2]


async def test_one_put_records_in_flight_per_stream_across_sink_instances(moto: str) -> None:
    """Two sinks writing one stream concurrently never overlap PutRecords calls, and moto keeps every record."""
    units = [make_unit(days=20, target="acct-a"), make_unit(days=20, target="acct-b")]
    sent = [make_records(u) for u in units]
    async with AwsTransport(service="kinesis", endpoint_url=moto, region="us-east-1") as aws:
        wrapper = Wrapper(aws, delay_s=0.02)
        sinks = [sink_for(moto, ctx=SinkContext(transport=wrapper)), sink_for(moto, ctx=SinkContext(transport=wrapper))]
        for s in sinks:
            await s.open()
        try:
            async with asyncio.TaskGroup() as tg:
                for sink, unit, records in zip(sinks, units, sent, strict=True):
                    tg.create_task(sink.write_unit(unit, batches(records, size=60)))
        finally:
            for s in sinks:
                await s.close()
    assert wrapper.max_in_flight == 1 and len(wrapper.calls) == 4
    got = await read_stream(moto)
    assert len(got) == len(sent[0]) + len(sent[1])
    assert collapse(m for _, m in got) == expected(*sent)


async def test_stream_lock_is_shared_per_stream_name() -> None:
    """Same stream -> same lock; another stream -> another lock."""
    assert stream_lock("a") is stream_lock("a")
    assert stream_lock("a") is not stream_lock("b")


async def test_record_over_1_mib_is_fatal_and_not_sent() -> None:
    """A single record over 1 MiB raises SinkError (not transient) before any PutRecords."""
    calls: list[str] = []

    def handler(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        calls.append(operation)
        return {"StreamDescriptionSummary": {"StreamStatus": "ACTIVE"}}

    sink = open_sink("kinesis://s", SinkContext(transport=MockTransport(handler)))
    await sink.open()
    unit = make_unit(days=1)
    huge = make_records(unit, services=1, total=False, pad=1024 * 1024)[:1]
    with pytest.raises(SinkError, match="1048576-byte record limit") as info:
        await sink.write_unit(unit, batches(huge))
    assert not isinstance(info.value, TransientSinkError)
    await sink.close()
    assert calls == ["DescribeStreamSummary"]


def test_partition_key_is_the_natural_key_or_its_sha256() -> None:
    """Keys up to 256 characters are used as they are; longer ones become a 64-char sha256 hex digest."""
    short = "ds|acct|2026-09-01|[\"Amazon RDS\",\"team|a\"]"
    assert partition_key(short) == short
    long = "ds|acct|2026-09-01|" + "x" * 300
    assert len(partition_key(long)) == 64 and partition_key(long) == partition_key(long)
    assert partition_key("é" * 256) == "é" * 256


async def test_endpoint_from_aws_endpoint_url_kinesis(moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no endpoint in the URL or the context, botocore's AWS_ENDPOINT_URL_KINESIS is honoured."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", moto)
    sink = open_sink(f"kinesis://{STREAM}?create_stream=true", SinkContext(endpoint_url=None, region=None, profile=None))
    await sink.open()
    unit = make_unit(days=1)
    try:
        await sink.write_unit(unit, batches(make_records(unit)))
    finally:
        await sink.close()
    assert len(await read_stream(moto)) == 29


async def test_context_endpoint_used_and_missing_stream_is_fatal(moto: str) -> None:
    """The run's endpoint_url (context) is used; a missing stream without ?create_stream=true is fatal at open."""
    sink = open_sink("kinesis://nope", SinkContext(endpoint_url=moto, region="us-east-1"))
    with pytest.raises(SinkError, match="does not exist") as info:
        await sink.open()
    assert not isinstance(info.value, TransientSinkError)
    await sink.close()


async def test_server_hangs_mid_unit_then_dies_and_comes_back(moto: str) -> None:
    """moto hangs mid-unit, then dies: TransientSinkError each time; once back, the re-sent unit collapses exactly."""
    unit = make_unit(days=20)
    records = make_records(unit)  # 580: one full call of 500, then 80
    with MotoServer() as server:
        sink = open_sink(f"kinesis://{STREAM}?endpoint_url={server.url}&create_stream=true&retries=2"
                         "&backoff_ms=10&timeout=1")
        await sink.open()
        try:
            async def hanging() -> AsyncIterator[list[SinkRecord]]:
                async for batch in batches(records):
                    yield batch
                server.pause()  # the first 500 are in; the last call of the unit hangs

            started = time.monotonic()
            try:
                with pytest.raises(TransientSinkError, match="gave up after 2 attempts") as info:
                    await sink.write_unit(unit, hanging())
            finally:
                server.resume()
            assert time.monotonic() - started < 15 and sink.name in str(info.value)

            assert await sink.write_unit(unit, batches(records)) == len(records)
            got = await read_stream(server.url)
            assert len(got) >= len(records) + 500
            assert collapse(m for _, m in got) == expected(records)

            server.kill()
            with pytest.raises(TransientSinkError, match="connection failed"):
                await sink.write_unit(unit, batches(records[:10]))
        finally:
            await sink.close()
