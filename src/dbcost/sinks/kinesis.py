"""Kinesis Data Streams sink: ``PutRecords`` through :class:`~dbcost.transport.aws.AwsTransport`.

``kinesis://STREAM[?option=value&...]``

==================  ===========  ================================================================
option              default      meaning
==================  ===========  ================================================================
``endpoint_url``    (context)    the Kinesis endpoint; else the :class:`~dbcost.sinks.base.SinkContext`'s,
                                 else botocore's ``AWS_ENDPOINT_URL_KINESIS`` / ``AWS_ENDPOINT_URL``
``region``          (context)    AWS region; else the run's, else the profile's, else ``us-east-1``
``profile``         (context)    AWS profile for the credential chain (else the run's)
``retries``         ``5``        attempts per ``PutRecords`` chunk (the first call included)
``backoff_ms``      ``200``      base of the full-jitter backoff between attempts
``retry_budget_s``  ``120``      total time one chunk may spend retrying
``timeout``         ``30``       connect/read timeout of one call, seconds
``create_stream``   ``false``    create the stream when missing and wait until it is ACTIVE
``shards``          ``1``        ``ShardCount`` of a created stream
==================  ===========  ================================================================

Record: data = ``orjson.dumps(record.to_message())`` (the ``dbcost fetch`` JSONL record plus dataset,
target, version, run_id and ``deleted`` for a tombstone), partition key = the record's natural key when it
fits Kinesis' 256-character limit, else its sha256 hex digest — either way the same key always lands on the
same shard, so the records of one key stay in order.

Calls: at most 500 records and 5 MiB (data + partition key bytes) per ``PutRecords``; a single record over
1 MiB is a fatal :class:`~dbcost.errors.SinkError`. Strictly one ``PutRecords`` is in flight per stream in
this process (an :class:`asyncio.Lock` per stream name shared by every sink instance): Kinesis orders a
shard's records by arrival, and moto's server loses records when calls to one stream overlap.

Guarantee: **at-least-once**. :meth:`KinesisSink.write_unit` returns only when Kinesis accepted every
record of the unit. When a call reports ``FailedRecordCount > 0`` only the failed entries are sent again,
in their original order, after a full-jitter backoff (``ProvisionedThroughputExceededException`` is
throttling and is retried like any other per-record failure); a call that fails as a whole (throttled,
5xx, timeout, connection refused) is repeated whole. When ``retries`` attempts are spent the sink raises
:class:`~dbcost.errors.TransientSinkError`, the pipeline does not checkpoint the unit and ``--resume`` sends
it again. So a record may be stored twice (a timed-out call that had in fact succeeded, a re-sent unit),
always with the same partition key and ``version``: a consumer that **keeps, per key, the record with the
highest ``version`` and drops it when it says ``deleted``** holds exactly the store's content.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from dbcost.clock import Clock, SystemClock
from dbcost.errors import (
    AccessDeniedError,
    ApiError,
    DataUnavailableError,
    DbcostError,
    SinkError,
    TransientSinkError,
    is_retryable,
)
from dbcost.retry import RetryPolicy
from dbcost.sinks._common import ServerUrl, bool_option, check_options, number_option, retry_policy_from, retry_sink
from dbcost.sinks.base import SinkBase, SinkContext, SinkOptions, SinkRecord, UnitRef
from dbcost.transport.base import Transport

__all__ = [
    "MAX_CALL_BYTES",
    "MAX_CALL_RECORDS",
    "MAX_PARTITION_KEY_CHARS",
    "MAX_RECORD_BYTES",
    "KinesisOptions",
    "KinesisSink",
    "partition_key",
    "stream_lock",
]

T = TypeVar("T")

MAX_CALL_RECORDS = 500
MAX_CALL_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_PARTITION_KEY_CHARS = 256

_OPTIONS = frozenset({
    "endpoint_url", "region", "profile", "retries", "backoff_ms", "retry_budget_s", "timeout",
    "create_stream", "shards",
})

#: event loop -> stream name -> the lock that keeps one PutRecords in flight. Keyed by loop because an
#: asyncio.Lock belongs to one loop (each test, each asyncio.run() has its own).
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


def stream_lock(stream: str) -> asyncio.Lock:
    """The process-wide (per event loop) lock for ``stream``: held for the duration of one PutRecords."""
    locks = _LOCKS.setdefault(asyncio.get_running_loop(), {})
    lock = locks.get(stream)
    if lock is None:
        lock = locks[stream] = asyncio.Lock()
    return lock


def partition_key(key: str) -> str:
    """The natural key when Kinesis accepts it (≤ 256 characters), else its sha256 hex digest."""
    if len(key) <= MAX_PARTITION_KEY_CHARS:
        return key
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Entry:
    data: bytes
    partition_key: str
    size: int  # data + partition key bytes, as Kinesis counts them


@dataclass(frozen=True, kw_only=True)
class KinesisOptions(SinkOptions):
    """A parsed ``kinesis://STREAM[?option=value&...]``; ``None`` = not in the URL (the context's, then
    botocore's, applies)."""

    stream: str
    endpoint_url: str | None
    region: str | None
    profile: str | None
    timeout_s: float
    create_stream: bool
    shards: int
    retry: RetryPolicy


class KinesisSink(SinkBase):
    """Puts each record into ``STREAM``; see the module doc for options and the guarantee.

    From the :class:`~dbcost.sinks.base.SinkContext`: ``endpoint_url``, ``region``, ``profile`` (used when
    the URL has none) and ``credentials`` for the ``AwsTransport``; ``transport`` (an already-open
    :class:`~dbcost.transport.base.Transport` to use instead of an ``AwsTransport``; the caller owns it)
    and ``clock`` (a :class:`~dbcost.clock.Clock` for the backoff).
    """

    @classmethod
    def parse(cls, url: str) -> KinesisOptions:
        """The options of ``url``; a bad one is a ConfigError."""
        u = ServerUrl.split(url)
        stream = (u.parts.netloc + u.parts.path).strip("/")
        if not stream:
            raise u.refuse("kinesis://STREAM")
        check_options(u, _OPTIONS)
        return KinesisOptions(
            url=url, stream=stream,
            endpoint_url=u.options.get("endpoint_url") or None,
            region=u.options.get("region") or None,
            profile=u.options.get("profile") or None,
            timeout_s=number_option(u, "timeout", 30.0, 0.05),
            create_stream=bool_option(u, "create_stream", False),
            shards=int(number_option(u, "shards", 1, 1)),
            retry=retry_policy_from(u, retries=5, backoff_ms=200, budget_s=120),
        )

    @classmethod
    def from_url(cls, url: str, ctx: SinkContext) -> KinesisSink:
        return cls(cls.parse(url), ctx)

    def __init__(self, options: KinesisOptions, ctx: SinkContext | None = None) -> None:
        ctx = ctx if ctx is not None else SinkContext()
        self.options = options
        self.name = options.display
        self.stream = options.stream
        self.endpoint_url = options.endpoint_url or ctx.endpoint_url or None
        self.region = options.region or ctx.region or None
        self.profile = options.profile or ctx.profile or None
        self.credentials = ctx.credentials
        self.timeout_s = options.timeout_s
        self.create_stream = options.create_stream
        self.shards = options.shards
        self.policy = options.retry
        self._given_transport: Transport | None = ctx.transport
        self._clock: Clock = ctx.clock or SystemClock()
        self._transport: Transport | None = None
        self._stack: AsyncExitStack | None = None

    def __repr__(self) -> str:
        return f"KinesisSink({self.name!r})"

    # -- errors ----------------------------------------------------------------------------------------
    def _translate(self, exc: DbcostError, what: str) -> SinkError:
        if isinstance(exc, SinkError):
            return exc
        cls = TransientSinkError if is_retryable(exc) else SinkError
        text = str(exc)  # transport errors already name their operation
        return cls(f"{self.name}: {text if text.startswith(what) else f'{what}: {text}'}".replace("\n", " "))

    async def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """One call; the transport's dbcost errors become SinkError / TransientSinkError naming the sink."""
        transport = self._require()
        try:
            return await transport.call(operation, params)
        except SinkError:
            raise
        except DbcostError as exc:
            raise self._translate(exc, operation) from exc

    async def _retry(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """``call`` under the sink's bounded policy; running out of attempts is a TransientSinkError."""
        return await retry_sink(self.name, call, self.policy, clock=self._clock, what=what)

    def _require(self) -> Transport:
        if self._transport is None:
            raise SinkError(f"{self.name}: used before open()")
        return self._transport

    # -- lifecycle -------------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._transport is not None:
            return
        if self._given_transport is not None:
            self._transport = self._given_transport
        else:
            from dbcost.transport.aws import AwsTransport

            stack = AsyncExitStack()
            aws = AwsTransport(service="kinesis", endpoint_url=self.endpoint_url, region=self.region,
                               profile=self.profile, credentials=self.credentials,
                               connect_timeout_s=min(self.timeout_s, 10.0), read_timeout_s=self.timeout_s,
                               max_pool_connections=4)
            try:
                self._transport = await stack.enter_async_context(aws)
            except DbcostError as exc:
                await stack.aclose()
                raise self._translate(exc, "open") from exc
            self._stack = stack
        try:
            await self._ensure_stream()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        self._transport = None
        if stack is not None:
            await stack.aclose()

    async def _describe(self) -> dict[str, Any] | None:
        """The stream's summary, or None when it does not exist. No permission to describe: assume it does."""
        transport = self._require()

        async def once() -> dict[str, Any] | None:
            try:
                response = await transport.call("DescribeStreamSummary", {"StreamName": self.stream})
            except DataUnavailableError as exc:
                if exc.code == "ResourceNotFoundException":
                    return None
                raise self._translate(exc, "DescribeStreamSummary") from exc
            except AccessDeniedError:
                return {"StreamStatus": "ACTIVE"}
            except DbcostError as exc:
                raise self._translate(exc, "DescribeStreamSummary") from exc
            summary: dict[str, Any] = response.get("StreamDescriptionSummary", {})
            return summary

        return await self._retry(once, "DescribeStreamSummary")

    async def _ensure_stream(self) -> None:
        summary = await self._describe()
        if summary is None:
            if not self.create_stream:
                raise SinkError(f"{self.name}: stream {self.stream!r} does not exist "
                                "(create it, or add ?create_stream=true)")
            transport = self._require()

            async def create() -> None:
                try:
                    await transport.call("CreateStream", {"StreamName": self.stream, "ShardCount": self.shards})
                except ApiError as exc:
                    if exc.code != "ResourceInUseException":  # created meanwhile by another process
                        raise self._translate(exc, "CreateStream") from exc
                except DbcostError as exc:
                    raise self._translate(exc, "CreateStream") from exc

            await self._retry(create, "CreateStream")
            summary = {}
        # a new (or updating) stream takes a few seconds to become ACTIVE; PutRecords fails until then
        deadline = self._clock.monotonic() + max(60.0, self.timeout_s)
        delay = 0.1
        while summary is None or summary.get("StreamStatus") != "ACTIVE":
            if summary is not None and summary.get("StreamStatus") == "DELETING":
                raise SinkError(f"{self.name}: stream {self.stream!r} is being deleted")
            if self._clock.monotonic() > deadline:
                raise TransientSinkError(f"{self.name}: stream {self.stream!r} did not become ACTIVE")
            await self._clock.sleep(delay)
            delay = min(delay * 2, 2.0)
            summary = await self._describe()

    # -- writing ---------------------------------------------------------------------------------------
    def encode(self, record: SinkRecord) -> _Entry:
        data = orjson.dumps(record.to_message())
        pk = partition_key(record.key)
        size = len(data) + len(pk.encode())
        if size > MAX_RECORD_BYTES:
            raise SinkError(f"{self.name}: record {record.key!r} is {size} bytes, over Kinesis' "
                            f"{MAX_RECORD_BYTES}-byte record limit")
        return _Entry(data, pk, size)

    async def write_unit(self, unit: UnitRef, batches: AsyncIterator[list[SinkRecord]]) -> int:
        """Put every record of ``unit``; returns once Kinesis accepted all of them."""
        chunk: list[_Entry] = []
        chunk_bytes = 0
        written = 0
        async for batch in batches:
            for record in batch:
                entry = self.encode(record)
                if len(chunk) == MAX_CALL_RECORDS or chunk_bytes + entry.size > MAX_CALL_BYTES:
                    await self._put(chunk)
                    chunk, chunk_bytes = [], 0
                chunk.append(entry)
                chunk_bytes += entry.size
                written += 1
        if chunk:
            await self._put(chunk)
        return written

    async def _put(self, entries: list[_Entry]) -> None:
        """One chunk, retried: a failed call is repeated whole, a partial failure re-sends only failed entries."""
        pending = entries
        total = len(entries)
        lock = stream_lock(self.stream)

        async def attempt() -> None:
            nonlocal pending
            params = {"StreamName": self.stream,
                      "Records": [{"Data": e.data, "PartitionKey": e.partition_key} for e in pending]}
            async with lock:  # held for the call only, never across a backoff sleep
                response = await self._call("PutRecords", params)
            if not response.get("FailedRecordCount"):
                return
            results = response.get("Records") or []
            if len(results) != len(pending):
                raise SinkError(f"{self.name}: PutRecords answered {len(results)} results for "
                                f"{len(pending)} records")
            failed = [e for e, r in zip(pending, results, strict=True) if r.get("ErrorCode")]
            codes = Counter(str(r["ErrorCode"]) for r in results if r.get("ErrorCode"))
            pending = failed
            summary = ", ".join(f"{code} x{n}" for code, n in codes.most_common())
            raise TransientSinkError(f"PutRecords: {len(failed)} of {total} records failed ({summary})")

        await self._retry(attempt, "PutRecords")
