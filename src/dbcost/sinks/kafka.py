"""Kafka sink: one message per record, keyed by the record's natural key, through aiokafka.

``kafka://HOST:PORT/TOPIC[?option=value&...]``

=================  ==========================  ==========================================================
option             default                     meaning
=================  ==========================  ==========================================================
``idempotence``    ``true``                    idempotent producer (the broker must grant a producer id)
``compression``    ``none``                    ``none``, ``gzip``, ``lz4``, ``zstd``, ``snappy``
                                               (all but gzip need the ``cramjam`` package)
``batch_size``     ``262144``                  bytes per record batch (``max_batch_size``)
``timeout_ms``     ``30000``                   request timeout; an unacknowledged batch fails after it
``retries``        ``5``                       attempts per batch (the first send included)
``backoff_ms``     ``200``                     base of the full-jitter backoff between attempts
``retry_budget_s`` ``120``                     total time one batch may spend retrying
``create_topics``  ``true``                    create the topic(s) when missing (AIOKafkaAdminClient;
                                               "already exists" and "not authorized" are fine)
``partitions``     ``3``                       partitions of a created topic
``replication``    ``1``                       replication factor of a created topic (3 on a cluster)
``status_topic``   ``<TOPIC>.quota-status``    where :meth:`KafkaSink.publish_status` sends
``client_id``      ``dbcost``                  the Kafka client id
=================  ==========================  ==========================================================

``<TOPIC>.advisories`` is where :meth:`KafkaSink.publish_advisories` sends the events of ``dbcost advise``
(created with the other topics), keyed by the advisory's stable id, each with its ``version``.

Parsing the URL (:meth:`KafkaSink.parse`, which :func:`~dbcost.sinks.registry.parse_sink_url` calls up
front) checks every option without importing aiokafka; aiokafka is imported when the sink opens.

Message: key = :attr:`SinkRecord.key` (utf-8: ``dataset|target|period_start|["k1","k2"]``), value =
``orjson.dumps(record.to_message())`` (the ``dbcost fetch`` JSONL record plus dataset, target, version,
run_id and ``deleted`` for a tombstone; amounts stay exact decimal strings). The partition is the
producer's default, murmur2 of the key (as in the Java client), so one key always lands on one partition.

Batching: the sink builds the record batches itself (``create_batch``/``send_batch``), one open batch
per partition, and submits a batch when it is full (``batch_size``) and a unit's last batches as soon as
the unit ends. That replaces the producer's ``linger_ms``: a unit never waits out a linger at its end (the
pipeline checkpoints only after the last acknowledgement), and there is no future per message. Measured
on Tansu, ``send()`` + ``linger_ms=20`` gave ~28k records/s on 870-record units, this ~75k.

Guarantee: **at-least-once**. Every message is produced with ``acks="all"`` and :meth:`write_unit`
returns only when every message of the unit has been acknowledged by the broker, so the pipeline
checkpoints a unit only after Kafka holds all of it. A batch the broker did not acknowledge is sent again
(only its messages, after a full-jitter backoff, ``retries`` attempts in all); one that still fails makes
:meth:`write_unit` raise (:class:`~dbcost.errors.TransientSinkError` when the broker was unavailable), the
unit is not checkpointed and ``--resume`` sends it again. So a message may arrive twice — a retry after a
lost acknowledgement, a re-sent unit — but always with the same key and the same ``version``. The
idempotent producer (the default) keeps the producer's own internal retries from writing a batch twice;
every other duplicate is removed by the consumer: **keep, per key, the message with the highest ``version`` and drop
it when it says ``deleted``** — that is exactly the store's content, whatever was sent twice and in
whichever order. Note that topic compaction keeps the *last offset* per key, not the highest version: a
consumer must compare versions, it cannot rely on log order alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal
import functools
import importlib.util
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from dbcost.clock import Clock
from dbcost.errors import ConfigError, SinkError, TransientSinkError
from dbcost.retry import RetryPolicy
from dbcost.sinks._common import (
    ServerUrl,
    bool_option,
    check_options,
    int_option,
    require_client,
    retry_policy_from,
    retry_sink,
)
from dbcost.sinks.base import SinkBase, SinkContext, SinkOptions, SinkRecord, UnitRef

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

__all__ = ["KafkaOptions", "KafkaSink"]

T = TypeVar("T")

_Message = tuple[bytes | None, bytes]
#: a submitted batch: its messages and its delivery future (or the error that kept it from being queued)
_Sent = tuple[list[_Message], "asyncio.Future[Any] | BaseException"]

_FORM = "kafka://HOST:PORT/TOPIC"
_OPTIONS = frozenset({
    "idempotence", "compression", "batch_size", "timeout_ms", "retries", "backoff_ms",
    "retry_budget_s", "create_topics", "partitions", "replication", "status_topic", "client_id",
})
_COMPRESSION = {"none": None, "gzip": "gzip", "lz4": "lz4", "zstd": "zstd", "snappy": "snappy"}
#: the codecs aiokafka runs through cramjam (its has_lz4/has_zstd/has_snappy check exactly that import)
_CRAMJAM_CODECS = frozenset({"lz4", "zstd", "snappy"})

#: Messages submitted but not yet confirmed before write_unit waits for the oldest batches: keeps memory
#: bounded on big units while the producer still has plenty in flight.
_MAX_UNCONFIRMED = 20_000


@functools.cache
def _transient_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "not now" even though aiokafka does not flag them ``retriable`` (aiokafka is
    imported here, on first use, never when a URL is parsed)."""
    from aiokafka import errors as kerr

    return (
        OSError,
        TimeoutError,
        kerr.KafkaTimeoutError,
        kerr.KafkaConnectionError,
        kerr.KafkaUnavailableError,
        kerr.NoBrokersAvailable,
        kerr.BrokerNotAvailableError,
        kerr.RequestTimedOutError,
        kerr.QuotaViolationError,
        kerr.NotEnoughReplicasError,
        kerr.NotEnoughReplicasAfterAppendError,
    )


@functools.cache
def _partitioner() -> DefaultPartitioner:
    """The producer's own default: murmur2(key) like the Java client, so every producer of a topic agrees."""
    from aiokafka.partitioner import DefaultPartitioner

    return DefaultPartitioner()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, dt.date | dt.datetime):
        return obj.isoformat()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    """Mark a delivery future's exception as retrieved (its failure is handled through the message list)."""
    if not fut.cancelled():
        fut.exception()


@dataclass(frozen=True, kw_only=True)
class KafkaOptions(SinkOptions):
    """A parsed ``kafka://HOST:PORT/TOPIC[?option=value&...]``; see the module doc for each option."""

    host: str
    port: int
    topic: str
    status_topic: str
    idempotence: bool
    compression: str | None  # aiokafka's compression_type
    batch_size: int
    timeout_ms: int
    create_topics: bool
    partitions: int
    replication: int
    client_id: str
    retry: RetryPolicy

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


class KafkaSink(SinkBase):
    """Produces each record to ``TOPIC`` (quota status events to ``status_topic``, advisory events to
    ``<TOPIC>.advisories``); see the module doc.

    Also a :class:`~dbcost.sinks.base.StatusPublisher` and an :class:`~dbcost.sinks.base.AdvisoryPublisher`.
    ``ctx.clock`` runs the backoff (tests inject a FakeClock to run it without sleeping).
    """

    @classmethod
    def parse(cls, url: str) -> KafkaOptions:
        """The options of ``url``, checked without importing aiokafka; a bad one is a ConfigError."""
        u = ServerUrl.split(url)
        topic = u.parts.path.lstrip("/")
        if not u.parts.hostname or not u.port or not topic:
            raise u.refuse(_FORM)
        check_options(u, _OPTIONS)
        status_topic = u.options.get("status_topic") or f"{topic}.quota-status"
        idempotence = bool_option(u, "idempotence", True)
        compression = u.options.get("compression", "none").lower()
        if compression not in _COMPRESSION:
            raise ConfigError(f"--sink {u.display}: ?compression={compression!r} "
                              f"(use one of {', '.join(_COMPRESSION)})")
        if compression in _CRAMJAM_CODECS and importlib.util.find_spec("cramjam") is None:
            raise ConfigError(f"--sink {u.display}: ?compression={compression} needs the 'cramjam' package "
                              "(pip install cramjam), or use gzip")
        return KafkaOptions(
            url=url, host=u.parts.hostname, port=u.port, topic=topic, status_topic=status_topic,
            idempotence=idempotence, compression=_COMPRESSION[compression],
            batch_size=int_option(u, "batch_size", 256 * 1024, 1024),
            timeout_ms=int_option(u, "timeout_ms", 30_000, 100),
            create_topics=bool_option(u, "create_topics", True),
            partitions=int_option(u, "partitions", 3, 1),
            replication=int_option(u, "replication", 1, 1),
            client_id=u.options.get("client_id") or "dbcost",
            retry=retry_policy_from(u, retries=5, backoff_ms=200, budget_s=120, integers=True),
        )

    @classmethod
    def from_url(cls, url: str, ctx: SinkContext) -> KafkaSink:
        return cls(cls.parse(url), ctx)

    def __init__(self, options: KafkaOptions, ctx: SinkContext | None = None) -> None:
        self.options = options
        self.name = options.display
        self.topic = options.topic
        self.status_topic = options.status_topic
        self.advisories_topic = f"{options.topic}.advisories"
        self.idempotence = options.idempotence
        self.policy = options.retry
        self._clock: Clock | None = ctx.clock if ctx is not None else None
        self._producer: AIOKafkaProducer | None = None
        # An idempotent producer retries a batch until it succeeds (aiokafka never expires it), so the wait
        # for acknowledgements is bounded here rather than by the producer.
        self._delivery_timeout_s = 2 * options.timeout_ms / 1000 + 1.0

    def __repr__(self) -> str:
        return f"KafkaSink({self.name!r})"

    # -- errors ----------------------------------------------------------------------------------------
    @staticmethod
    def _is_transient(exc: BaseException) -> bool:
        from aiokafka import errors as kerr

        if isinstance(exc, SinkError):
            return isinstance(exc, TransientSinkError)
        if isinstance(exc, _transient_errors()):
            return True
        return isinstance(exc, kerr.KafkaError) and bool(exc.retriable)

    def _detail(self, exc: BaseException) -> str:
        from aiokafka import errors as kerr

        text = str(exc)
        detail = text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"
        detail = detail.replace("\n", " ")
        if self.idempotence and isinstance(exc, kerr.UnknownError | kerr.UnsupportedVersionError |
                                           kerr.ClusterAuthorizationFailedError):
            detail += " (the broker refused an idempotent producer; add ?idempotence=false)"
        return detail

    def _translate(self, exc: BaseException, what: str) -> SinkError:
        """One library exception -> a one-line dbcost error naming this sink."""
        if isinstance(exc, SinkError):
            return exc
        cls = TransientSinkError if self._is_transient(exc) else SinkError
        return cls(f"{self.name}: {what}: {self._detail(exc)}")

    async def _retry(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """``call`` under the sink's bounded policy; running out of attempts is a TransientSinkError."""
        return await retry_sink(self.name, call, self.policy, clock=self._clock, what=what)

    # -- lifecycle -------------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._producer is not None:
            return
        require_client(self.name, "aiokafka", "kafka")
        if self.options.create_topics:
            await self._retry(self._create_topics_once, "create topics")
        self._producer = await self._retry(self._start_producer_once, "connect")

    async def _create_topics_once(self) -> None:
        from aiokafka import errors as kerr
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        o = self.options
        admin = AIOKafkaAdminClient(bootstrap_servers=o.bootstrap, client_id=o.client_id,
                                    request_timeout_ms=o.timeout_ms)
        try:
            await admin.start()
            topics = [NewTopic(t, o.partitions, o.replication) for t in dict.fromkeys(
                (self.topic, self.status_topic, self.advisories_topic))]
            response = await admin.create_topics(topics)
        except Exception as exc:
            raise self._translate(exc, "create topics") from exc
        finally:
            await admin.close()
        for entry in response.topic_errors:
            topic, code = entry[0], entry[1]
            if code in (0, kerr.TopicAlreadyExistsError.errno, kerr.TopicAuthorizationFailedError.errno,
                        kerr.ClusterAuthorizationFailedError.errno):
                continue  # exists, or not ours to create: the producer's metadata check below decides
            err = kerr.for_code(code)()
            raise self._translate(err, f"create topic {topic!r}") from err

    async def _start_producer_once(self) -> AIOKafkaProducer:
        from aiokafka import AIOKafkaProducer

        o = self.options
        producer = AIOKafkaProducer(
            bootstrap_servers=o.bootstrap,
            client_id=o.client_id,
            acks="all",
            enable_idempotence=o.idempotence,
            max_batch_size=o.batch_size,
            max_request_size=max(o.batch_size, 1024 * 1024),
            compression_type=o.compression,
            request_timeout_ms=o.timeout_ms,
        )
        try:
            await producer.start()
            # fail here, not on the first record, when the topic is missing and cannot be auto-created
            await producer.partitions_for(self.topic)
        except Exception as exc:
            with contextlib.suppress(Exception):  # the start error is the one worth reporting
                await producer.stop()
            raise self._translate(exc, "connect") from exc
        return producer

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            # stop() flushes what is still queued; bounded, because an idempotent producer would wait forever
            # for a broker that is gone.
            async with asyncio.timeout(self._delivery_timeout_s):
                await producer.stop()
        except TimeoutError as exc:
            raise TransientSinkError(f"{self.name}: close: pending messages not flushed within "
                                     f"{self._delivery_timeout_s:g}s") from exc
        except Exception as exc:
            raise self._translate(exc, "close") from exc

    def _require(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise SinkError(f"{self.name}: used before open()")
        return self._producer

    # -- writing ---------------------------------------------------------------------------------------
    def encode(self, record: SinkRecord) -> tuple[bytes, bytes]:
        """(key, value) of the message for ``record``."""
        return record.key.encode(), orjson.dumps(record.to_message(), default=_json_default)

    async def _batcher(self, topic: str) -> _Batcher:
        producer = self._require()
        try:
            partitions = sorted(await producer.partitions_for(topic))
        except Exception as exc:
            raise self._translate(exc, f"metadata of {topic}") from exc
        return _Batcher(self, producer, topic, partitions)

    async def _send(self, topic: str, messages: Sequence[_Message]) -> list[_Sent]:
        """Submit ``messages`` in full per-partition batches; returns them with their delivery futures."""
        try:
            batcher = await self._batcher(topic)
        except TransientSinkError as exc:
            return [(list(messages), exc)]
        for key, value in messages:
            await batcher.add(key, value)
        await batcher.finish()
        return batcher.take()

    async def _confirm(self, topic: str, sent: list[_Sent]) -> None:
        """Wait until every batch of ``sent`` is acknowledged; re-send the messages of failed batches only,
        after a backoff, ``retries`` attempts in all."""
        state = sent
        resend: list[_Message] = []
        total = sum(len(msgs) for msgs, _ in sent)

        async def attempt() -> None:
            nonlocal state, resend
            if resend:
                state, resend = await self._send(topic, resend), []
            futures = [f for _, f in state if isinstance(f, asyncio.Future)]
            if futures:
                # asyncio.wait, not gather: a timeout must not cancel the producer's delivery futures
                await asyncio.wait(futures, timeout=self._delivery_timeout_s)
            first = ""
            for msgs, f in state:
                if isinstance(f, asyncio.Future):
                    if not f.done():
                        error = f"no acknowledgement within {self._delivery_timeout_s:g}s"
                    elif f.cancelled():
                        error = "delivery cancelled"
                    elif (exc := f.exception()) is not None:
                        if not self._is_transient(exc):
                            raise self._translate(exc, f"deliver to {topic}") from exc
                        error = self._detail(exc)
                    else:
                        continue
                else:
                    error = str(f).removeprefix(f"{self.name}: ") if isinstance(f, SinkError) else self._detail(f)
                resend.extend(msgs)
                first = first or error
            if resend:
                raise TransientSinkError(f"write to {topic}: {len(resend)} of {total} messages not acknowledged "
                                         f"({first})")

        await self._retry(attempt, f"write to {topic}")

    async def write_unit(self, unit: UnitRef, batches: AsyncIterator[list[SinkRecord]]) -> int:
        """Produce every record of ``unit``; returns once the broker acknowledged all of them."""
        pending: deque[_Sent] = deque()
        unconfirmed = 0
        written = 0
        try:
            batcher = await self._batcher(self.topic)
        except TransientSinkError as exc:
            # no metadata now: take the unit in anyway and let the retry loop send it after a backoff
            held: list[_Message] = [self.encode(r) async for batch in batches for r in batch]
            await self._confirm(self.topic, [(held, exc)])
            return len(held)
        async for batch in batches:
            for record in batch:
                await batcher.add(*self.encode(record))
            written += len(batch)
            for sent in batcher.take():
                pending.append(sent)
                unconfirmed += len(sent[0])
            while unconfirmed > _MAX_UNCONFIRMED and pending:
                oldest = pending.popleft()
                unconfirmed -= len(oldest[0])
                await self._confirm(self.topic, [oldest])
        await batcher.finish()  # the unit's last, partly filled batches go now
        pending.extend(batcher.take())
        await self._confirm(self.topic, list(pending))
        return written

    async def publish_status(self, event: Mapping[str, Any]) -> None:
        """Send a quota status event to ``status_topic`` (key = the event's ``pool``), acknowledged."""
        pool = event.get("pool")
        key = str(pool).encode() if pool is not None else None
        value = orjson.dumps(event, default=_json_default)
        await self._confirm(self.status_topic, await self._send(self.status_topic, [(key, value)]))

    async def publish_advisories(self, events: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Send advisory events to ``advisories_topic`` (key = the advisory's stable id), all acknowledged."""
        messages: list[_Message] = [(key.encode(), orjson.dumps(event, default=_json_default)) for key, event in events]
        if messages:
            await self._confirm(self.advisories_topic, await self._send(self.advisories_topic, messages))


class _Batcher:
    """One open batch per partition of ``topic``; a full batch is submitted at once, the rest by ``finish()``.

    Building the record batches here (``create_batch``/``send_batch``) instead of one ``send()`` per
    message saves a future and a callback per message, and a unit's last batches need no linger wait.
    After a transient failure to submit, later batches are not tried: they are marked failed with it.
    """

    def __init__(self, sink: KafkaSink, producer: AIOKafkaProducer, topic: str, partitions: list[int]) -> None:
        self.sink = sink
        self.producer = producer
        self.topic = topic
        self.partitions = partitions
        self.partitioner = _partitioner()
        self.open: dict[int, tuple[Any, list[_Message]]] = {}
        self.sent: list[_Sent] = []
        self.failed: BaseException | None = None

    async def add(self, key: bytes | None, value: bytes) -> None:
        partition: int = self.partitioner(key, self.partitions, self.partitions)
        entry = self.open.get(partition)
        if entry is None:
            entry = self.open[partition] = (self.producer.create_batch(), [])
        if entry[0].append(key=key, value=value, timestamp=None) is None:
            await self._submit(partition)
            entry = self.open[partition] = (self.producer.create_batch(), [])
            entry[0].append(key=key, value=value, timestamp=None)  # an empty batch takes any one message
        entry[1].append((key, value))

    async def _submit(self, partition: int) -> None:
        builder, messages = self.open.pop(partition)
        if self.failed is not None:
            self.sent.append((messages, self.failed))
            return
        builder.close()  # a closed batch is sent at once; an open one would wait for more messages
        try:
            fut = await self.producer.send_batch(builder, self.topic, partition=partition)
        except Exception as exc:
            if not self.sink._is_transient(exc):
                raise self.sink._translate(exc, f"send to {self.topic}") from exc
            self.failed = exc
            self.sent.append((messages, exc))
            return
        fut.add_done_callback(_consume_exception)
        self.sent.append((messages, fut))

    async def finish(self) -> None:
        for partition in list(self.open):
            await self._submit(partition)

    def take(self) -> list[_Sent]:
        sent, self.sent = self.sent, []
        return sent
