"""PostgreSQL sink: the store's records table, kept in a shared database, one transaction per unit (asyncpg).

``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?option=value&...]`` (``postgres://`` too)

===================  =========  ================================================================
option               default    meaning
===================  =========  ================================================================
``retries``          ``5``      attempts per unit transaction (the first included)
``backoff_ms``       ``200``    base of the full-jitter backoff between attempts
``retry_budget_s``   ``120``    total time one unit may spend retrying
``timeout``          ``300``    per-statement timeout, seconds (includes waiting for a range lock)
``connect_timeout``  ``10``     connect timeout, seconds
``pool_size``        ``4``      connections (units written at the same time)
===================  =========  ================================================================

Any other query parameter is handed to asyncpg (``sslmode=require``, server settings, ...). asyncpg is
imported when the sink opens, never when its URL is parsed.

Schema (created by :meth:`PostgresSink.open`, ``CREATE TABLE IF NOT EXISTS``)::

    dbcost_records(dataset, target, period_start, period_end, granularity, keys_json, key1, key2, metric,
                   amount numeric(38,10), amount_text, unit, estimated, version, run_id, fetched_at,
                   PRIMARY KEY (dataset, target, period_start, keys_json, metric))
    dbcost_datasets(dataset PRIMARY KEY, key1_name, key2_name, granularity)

Long format, one row per (record, metric), like the embedded store. ``key1``/``key2`` are the record's key
values in the dataset's key-name order and are NULL when absent (a Total-only record has no keys), so they
cannot be primary-key columns. ``keys_json`` is the non-null discriminator that takes their place: the JSON
array of the key values (``["Amazon RDS","team|a"]``, ``[null,null]``) — the same text that ends the
record's natural key (:func:`~dbcost.sinks.base.natural_key`), so a PostgreSQL row, a Kafka message and a
Kinesis record of one record share one identity. JSON keeps an absent key (``null``) apart from an empty
tag value (``""``) and a ``|`` inside a tag value cannot collide with anything; a sentinel string
(``coalesce(key1, '<none>')``) could collide with a real tag value, and ``UNIQUE NULLS NOT DISTINCT``
needs PostgreSQL 15 and cannot be a primary key. ``amount`` is for arithmetic; ``amount_text`` keeps the
exact decimal string Cost Explorer sent. ``period_start`` is ISO text (a date, or a timestamp for HOURLY),
so a unit's range is a text range on the primary key's prefix. ``fetched_at`` is when the sink wrote the
row (a SinkRecord does not carry the fetch time).

Guarantee: **exactly one logical copy, never an older version**. :meth:`PostgresSink.write_unit` runs one
transaction per unit:

1. ``pg_advisory_xact_lock`` on a hash of (dataset, target, start, end), so N shards on N machines writing
   one database never interleave on one range (the second waits, then applies its unit on top);
2. ``COPY`` of the unit's rows into a temporary table;
3. tombstones (``deleted`` records) delete their key's rows — only rows whose version is not newer;
4. rows of the unit's range ``[start, end)`` that the unit does not have (neither as a row nor as a
   tombstone) are deleted: a unit is the store's complete, current content for its range;
5. upsert of the unit's rows, ``ON CONFLICT ... DO UPDATE ... WHERE excluded.version >= version``:
   a restatement supersedes, an older version never overwrites a newer one, and a re-sent unit
   rewrites nothing.

The transaction commits before :meth:`write_unit` returns. A failure rolls it back whole, so a unit is
either entirely there or not at all; a re-sent unit leaves the same single copy. Connection loss,
shutdown, timeouts, serialization failures and deadlocks are
:class:`~dbcost.errors.TransientSinkError` and retried (``retries`` attempts) before they are raised;
authentication, a missing database, permissions and bad data are a fatal :class:`~dbcost.errors.SinkError`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlunsplit

import orjson

from dbcost.clock import Clock
from dbcost.errors import SinkError, TransientSinkError
from dbcost.retry import RetryPolicy
from dbcost.sinks._common import ServerUrl, check_installed, number_option, require_client, retry_policy_from, retry_sink
from dbcost.sinks.base import SinkBase, SinkContext, SinkOptions, SinkRecord, UnitRef

if TYPE_CHECKING:
    import asyncpg

__all__ = ["SCHEMA", "PostgresOptions", "PostgresSink", "keys_json", "range_lock_id"]

T = TypeVar("T")

_OPTIONS = frozenset({"retries", "backoff_ms", "retry_budget_s", "timeout", "connect_timeout", "pool_size"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS dbcost_records (
    dataset      text          NOT NULL,
    target       text          NOT NULL,
    period_start text          NOT NULL,
    period_end   text          NOT NULL,
    granularity  text          NOT NULL,
    keys_json    text          NOT NULL,
    key1         text,
    key2         text,
    metric       text          NOT NULL,
    amount       numeric(38,10) NOT NULL,
    amount_text  text          NOT NULL,
    unit         text          NOT NULL,
    estimated    boolean       NOT NULL,
    version      bigint        NOT NULL,
    run_id       text          NOT NULL,
    fetched_at   timestamptz   NOT NULL,
    PRIMARY KEY (dataset, target, period_start, keys_json, metric)
);
CREATE TABLE IF NOT EXISTS dbcost_datasets (
    dataset     text PRIMARY KEY,
    key1_name   text,
    key2_name   text,
    granularity text NOT NULL
);
"""

#: advisory lock taken while creating the schema: concurrent CREATE TABLE IF NOT EXISTS can still collide
_SCHEMA_LOCK = 0x6462636F73745F31  # "dbcost_1"

#: per session, emptied at every commit: created once per connection (IF NOT EXISTS costs a catalog lookup),
#: and safe behind a transaction-pooling proxy since it is only ever used inside one transaction
_STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS dbcost_stage (
    dataset text, target text, period_start text, period_end text, granularity text, keys_json text,
    key1 text, key2 text, metric text, amount numeric(38,10), amount_text text, unit text, estimated boolean,
    version bigint, run_id text, fetched_at timestamptz, deleted boolean
) ON COMMIT DELETE ROWS
"""
_STAGE_COLUMNS = ("dataset", "target", "period_start", "period_end", "granularity", "keys_json", "key1", "key2",
                  "metric", "amount", "amount_text", "unit", "estimated", "version", "run_id", "fetched_at",
                  "deleted")

_DELETE_TOMBSTONED = """
DELETE FROM dbcost_records r USING dbcost_stage s
WHERE s.deleted AND r.dataset = s.dataset AND r.target = s.target AND r.period_start = s.period_start
  AND r.keys_json = s.keys_json AND r.version <= s.version
"""
_DELETE_VANISHED = """
DELETE FROM dbcost_records r
WHERE r.dataset = $1 AND r.target = $2 AND r.period_start >= $3 AND r.period_start < $4
  AND NOT EXISTS (SELECT 1 FROM dbcost_stage s
                  WHERE s.period_start = r.period_start AND s.keys_json = r.keys_json
                    AND (s.deleted OR s.metric = r.metric))
"""
_UPSERT = """
INSERT INTO dbcost_records AS r (dataset, target, period_start, period_end, granularity, keys_json, key1, key2,
                                 metric, amount, amount_text, unit, estimated, version, run_id, fetched_at)
SELECT DISTINCT ON (period_start, keys_json, metric)
       dataset, target, period_start, period_end, granularity, keys_json, key1, key2,
       metric, amount, amount_text, unit, estimated, version, run_id, fetched_at
FROM dbcost_stage WHERE NOT deleted
ORDER BY period_start, keys_json, metric, version DESC
ON CONFLICT (dataset, target, period_start, keys_json, metric) DO UPDATE SET
    period_end = excluded.period_end, granularity = excluded.granularity, key1 = excluded.key1,
    key2 = excluded.key2, amount = excluded.amount, amount_text = excluded.amount_text, unit = excluded.unit,
    estimated = excluded.estimated, version = excluded.version, run_id = excluded.run_id,
    fetched_at = excluded.fetched_at
-- a newer version wins; the same version rewrites only if its content differs (a re-sent unit is a no-op)
WHERE excluded.version > r.version
   OR (excluded.version = r.version
       AND (excluded.amount_text, excluded.unit, excluded.estimated, excluded.period_end)
           IS DISTINCT FROM (r.amount_text, r.unit, r.estimated, r.period_end))
"""
_UPSERT_DATASET = """
INSERT INTO dbcost_datasets (dataset, key1_name, key2_name, granularity) VALUES ($1, $2, $3, $4)
ON CONFLICT (dataset) DO UPDATE SET key1_name = excluded.key1_name, key2_name = excluded.key2_name,
                                    granularity = excluded.granularity
WHERE (dbcost_datasets.key1_name, dbcost_datasets.key2_name, dbcost_datasets.granularity)
      IS DISTINCT FROM (excluded.key1_name, excluded.key2_name, excluded.granularity)
"""


@functools.cache
def _transient_pg() -> tuple[type[BaseException], ...]:
    """Errors worth another attempt: the network, connection loss (class 08), operator intervention (57),
    serialization failures and deadlocks (40), lack of resources (53). asyncpg is imported on first use."""
    import asyncpg

    return (
        OSError,
        TimeoutError,
        asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
        asyncpg.exceptions.LockNotAvailableError,
        asyncpg.exceptions.InsufficientResourcesError,  # too many connections, out of memory, disk full
        asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.exceptions.ClientCannotConnectError,
        asyncpg.exceptions.ConnectionFailureError,
        asyncpg.exceptions.TransactionResolutionUnknownError,
        asyncpg.exceptions.QueryCanceledError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.CrashShutdownError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.IdleSessionTimeoutError,
    )


def keys_json(values: list[str | None]) -> str:
    """The non-null discriminator of a record's keys: the JSON array that ends its natural key."""
    return orjson.dumps(values).decode()


def range_lock_id(unit: UnitRef) -> int:
    """The advisory lock of a unit's range: the same 64-bit number on every machine."""
    ident = "\x1f".join((unit.dataset, unit.target, unit.start.isoformat(), unit.end.isoformat()))
    return int.from_bytes(hashlib.sha256(ident.encode()).digest()[:8], "big", signed=True)


@dataclass(frozen=True, kw_only=True)
class PostgresOptions(SinkOptions):
    """A parsed ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?option=value&...]``."""

    #: the connection string asyncpg gets: the URL without this sink's own options (a secret: not in repr)
    dsn: str = field(repr=False)
    timeout_s: float
    connect_timeout_s: float
    pool_size: int
    retry: RetryPolicy


class PostgresSink(SinkBase):
    """Writes each unit into ``dbcost_records`` in one transaction; see the module doc.

    ``ctx.clock`` runs the backoff (tests inject a FakeClock to run it without sleeping).
    """

    @classmethod
    def parse(cls, url: str) -> PostgresOptions:
        """The options of ``url`` (``postgres://`` too), checked without importing asyncpg."""
        u = ServerUrl.split(url)
        if not u.parts.hostname or not u.parts.path.strip("/"):
            raise u.refuse("postgresql://USER@HOST:PORT/DB")
        retry = retry_policy_from(u, retries=5, backoff_ms=200, budget_s=120)
        timeout_s = number_option(u, "timeout", 300, 0.01)
        connect_timeout_s = number_option(u, "connect_timeout", 10, 0.01)
        pool_size = int(number_option(u, "pool_size", 4, 1))
        # our options are not connection parameters: asyncpg would send unknown ones as server settings
        query = [(k, v) for k, v in parse_qsl(u.parts.query, keep_blank_values=True) if k not in _OPTIONS]
        dsn = urlunsplit(u.parts._replace(scheme="postgresql", query=urlencode(query)))
        check_installed(u.display, "asyncpg", "postgres")
        return PostgresOptions(url=url, dsn=dsn, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s,
                               pool_size=pool_size, retry=retry)

    @classmethod
    def from_url(cls, url: str, ctx: SinkContext) -> PostgresSink:
        return cls(cls.parse(url), ctx)

    def __init__(self, options: PostgresOptions, ctx: SinkContext | None = None) -> None:
        self.options = options
        self.name = options.display
        self.policy = options.retry
        self.timeout_s = options.timeout_s
        self.connect_timeout_s = options.connect_timeout_s
        self.pool_size = options.pool_size
        self._dsn = options.dsn
        self._clock: Clock | None = ctx.clock if ctx is not None else None
        self._pool: asyncpg.Pool | None = None
        self._datasets: set[tuple[str, str | None, str | None, str]] = set()

    def __repr__(self) -> str:
        return f"PostgresSink({self.name!r})"

    # -- errors ----------------------------------------------------------------------------------------
    def _translate(self, exc: BaseException, what: str) -> SinkError:
        import asyncpg

        if isinstance(exc, SinkError):
            return exc
        transient = isinstance(exc, _transient_pg()) or (
            # the server closed the connection under a statement (shutdown, crash, network)
            isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)
        )
        cls = TransientSinkError if transient else SinkError
        detail = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        return cls(f"{self.name}: {what}: {detail}")

    async def _retry(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """``call`` under the sink's bounded policy, asyncpg errors translated; running out of attempts
        is a TransientSinkError."""
        import asyncpg

        async def translated() -> T:
            try:
                return await call()
            except SinkError:
                raise
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                raise self._translate(exc, what) from exc

        return await retry_sink(self.name, translated, self.policy, clock=self._clock, what=what)

    # -- lifecycle -------------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            return
        require_client(self.name, "asyncpg", "postgres")
        self._pool = await self._retry(self._connect, "connect")
        try:
            await self._retry(self._create_schema, "create schema")
        except BaseException:
            await self.close()
            raise

    async def _connect(self) -> asyncpg.Pool:
        import asyncpg

        pool: asyncpg.Pool = await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self.pool_size, timeout=self.connect_timeout_s,
            command_timeout=self.timeout_s)
        return pool

    async def _create_schema(self) -> None:
        async with self._require().acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            await conn.execute(SCHEMA)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await pool.close()
        except Exception:
            pool.terminate()  # a server that is gone cannot acknowledge a graceful close
            raise

    def _require(self) -> asyncpg.Pool:
        if self._pool is None:
            raise SinkError(f"{self.name}: used before open()")
        return self._pool

    # -- writing ---------------------------------------------------------------------------------------
    def rows(self, unit: UnitRef, records: list[SinkRecord], now: dt.datetime) -> list[tuple[Any, ...]]:
        """The staging rows of ``records``: one per (record, metric); one per tombstone."""
        if len(unit.key_names) > 2:
            raise SinkError(f"{self.name}: dataset {unit.dataset!r} has {len(unit.key_names)} keys; "
                            "Cost Explorer groups by at most 2")
        start, end = unit.start.isoformat(), unit.end.isoformat()
        out: list[tuple[Any, ...]] = []
        for r in records:
            rec = r.record
            ps = rec.get("period_start")
            if r.dataset != unit.dataset or r.target != unit.target or not isinstance(ps, str) \
                    or not start <= ps < end:
                raise SinkError(f"{self.name}: record {r.key!r} does not belong to unit "
                                f"{unit.dataset}/{unit.target} [{start}, {end})")
            keys = rec.get("keys") or {}
            values: list[str | None] = [keys.get(name) for name in unit.key_names]
            kj = keys_json(values)
            k1 = values[0] if values else None
            k2 = values[1] if len(values) > 1 else None
            pe = rec.get("period_end") or ps
            gran = rec.get("granularity") or unit.granularity
            if r.deleted:
                out.append((r.dataset, r.target, ps, pe, gran, kj, k1, k2, "", None, "", "", False,
                            r.version, r.run_id, now, True))
                continue
            estimated = bool(rec.get("estimated", False))
            for metric, m in (rec.get("metrics") or {}).items():
                text = str(m["amount"])
                try:
                    amount = Decimal(text)
                except InvalidOperation:
                    raise SinkError(f"{self.name}: record {r.key!r} metric {metric}: amount {text!r} "
                                    "is not a decimal") from None
                if not amount.is_finite():
                    raise SinkError(f"{self.name}: record {r.key!r} metric {metric}: amount {text!r} is not finite")
                out.append((r.dataset, r.target, ps, pe, gran, kj, k1, k2, metric, amount, text,
                            str(m.get("unit", "")), estimated, r.version, r.run_id, now, False))
        return out

    async def write_unit(self, unit: UnitRef, batches: AsyncIterator[list[SinkRecord]]) -> int:
        """Replace ``unit``'s range with its records in one transaction; returns the records written."""
        now = dt.datetime.now(dt.UTC)
        rows: list[tuple[Any, ...]] = []
        count = tombstones = 0
        # the whole unit is kept in memory: a retried transaction needs its rows again
        async for batch in batches:
            rows.extend(self.rows(unit, batch, now))
            count += len(batch)
            tombstones += sum(1 for r in batch if r.deleted)
        await self._ensure_dataset(unit)
        await self._retry(lambda: self._write_once(unit, rows, tombstones > 0), "write unit "
                          f"{unit.dataset}/{unit.target} [{unit.start}, {unit.end})")
        return count

    async def _ensure_dataset(self, unit: UnitRef) -> None:
        names = (*unit.key_names, None, None)
        ident = (unit.dataset, names[0], names[1], unit.granularity)
        if ident in self._datasets:
            return

        async def once() -> None:
            async with self._require().acquire() as conn:
                await conn.execute(_UPSERT_DATASET, *ident)

        await self._retry(once, f"register dataset {unit.dataset}")
        self._datasets.add(ident)

    async def _write_once(self, unit: UnitRef, rows: list[tuple[Any, ...]], tombstones: bool) -> None:
        async with self._require().acquire() as conn, conn.transaction():
            # every writer of this range, on any machine, queues here until the previous one commits
            await conn.execute("SELECT pg_advisory_xact_lock($1)", range_lock_id(unit))
            await conn.execute(_STAGE)
            if rows:
                await conn.copy_records_to_table("dbcost_stage", records=rows, columns=_STAGE_COLUMNS)
            if tombstones:
                await conn.execute("ANALYZE dbcost_stage")  # a few tombstones: index lookups, not a scan
                await conn.execute(_DELETE_TOMBSTONED)
            await conn.execute(_DELETE_VANISHED, unit.dataset, unit.target, unit.start.isoformat(),
                               unit.end.isoformat())
            if rows:
                await conn.execute(_UPSERT)
