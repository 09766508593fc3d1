"""S3 Parquet sink: a data-lake layout on S3 through :class:`~dbcost.transport.aws.AwsTransport`.

``s3://BUCKET[/PREFIX][?option=value&...]``

==========================  ===========  ==========================================================
option                      default      meaning
==========================  ===========  ==========================================================
``endpoint_url``            (context)    the S3 endpoint; else the :class:`~dbcost.sinks.base.SinkContext`'s,
                                         else botocore's ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``
``region``                  (context)    AWS region; else the run's, else the profile's, else ``us-east-1``
``profile``                 (context)    AWS profile for the credential chain (else the run's)
``retries``                 ``5``        attempts per S3 call (the first included)
``backoff_ms``              ``200``      base of the full-jitter backoff between attempts
``retry_budget_s``          ``120``      total time one call may spend retrying
``timeout``                 ``60``       connect/read timeout of one call, seconds; a call still unanswered
                                         after twice that (plus a second per MiB it uploads) is abandoned
                                         and retried
``multipart_threshold_mb``  ``8``        objects larger than this go up as a multipart upload
``part_size_mb``            ``8``        size of a multipart part (S3's minimum is 5 MiB)
``compression``             ``snappy``   Parquet compression: snappy, zstd, gzip or none
==========================  ===========  ==========================================================

Layout (Hive-style, so Athena, DuckDB, Spark and Snowflake prune by dataset and month)::

    PREFIX/dataset=<dataset id>/month=YYYY-MM/<target>_<start>_<end>.parquet   one object per unit and month
    PREFIX/dataset=<dataset id>/_manifest/<target>_<start>_<end>.json           one manifest entry per unit
    PREFIX/_tmp/<random>.tmp                                                     uploads not yet in place

The dataset id is the query fingerprint (the store's ``dataset``), ``<target>`` the target name
percent-encoded (:func:`urllib.parse.quote`), ``<start>``/``<end>`` the unit's window (ISO dates, end
exclusive). Names depend on the unit only, so a unit sent again (``--resume``, a retried shard, a rerun)
replaces its own objects: no new keys. A unit writes one object for **every month its window touches**
(a ``--window week`` unit may straddle two), also when that month holds no row (an object with the
schema and no rows): every object a unit wrote before is replaced, and a row Cost Explorer no longer
returns cannot outlive the unit's resend in an old object.

Writing an object: upload to a fresh temporary key under ``_tmp/`` (one ``PutObject``, or above
``multipart_threshold_mb`` a multipart upload of ``part_size_mb`` parts, aborted when it fails), each
upload carrying its SHA-256 so S3 checks every byte; then ``CopyObject`` to the final key, which S3 makes
visible at once (a reader sees the old object or the new one, never a part of one, and a failed upload
never touches the old one); then ``DeleteObject`` of the temporary key (a failure there is only logged:
expire ``_tmp/`` with a lifecycle rule, and ``AbortIncompleteMultipartUpload`` too). The unit's manifest
entry is put last, so an entry means its objects are in place. :meth:`S3Sink.write_unit` returns when
all of that is done; only then does the pipeline checkpoint the unit. Objects are at most 5 GiB (the
``CopyObject`` limit; a unit is one dataset, target and window, far below it).

Manifest: one small JSON entry per unit (dataset, target, window, granularity, key names, the run that
sent it, record/row/deletion counts, the lowest and highest version, and per object its key, month, rows,
bytes and SHA-256 hex). The dataset's manifest is the listing of its ``_manifest/`` prefix. Several
shards write one dataset at the same time; with per-unit entries every object has exactly one writer
(shards own disjoint units; a retry rewrites what its own shard wrote before), so there is no
read-modify-write, no lost update and nothing to lock, on S3 and on any S3-compatible store, with
``s3:PutObject`` only. (A single manifest object updated with conditional writes, ``If-Match``, would
make every unit of every shard contend for one key and retry on each conflict, and needs an endpoint
that supports conditional writes.) Read every entry of a dataset in one query, e.g. DuckDB's
``read_json('s3://BUCKET/PREFIX/dataset=<id>/_manifest/*.json')``.

Columns (one row per record and metric, as the ``parquet:`` sink and ``dbcost export``): dataset, target,
period_start, period_end (``DATE``; ``TIMESTAMP`` UTC for HOURLY), granularity, estimated, key1, key2
(the values of the query's group keys; their names are in the manifest and in the file's metadata as
``key1_name``/``key2_name``), metric, amount (``DECIMAL(38,10)``), unit, version, run_id, deleted. A
record that disappeared in a restatement is one row with ``deleted = true`` and no metric.

Reading back: keep, per record (dataset, target, period_start, key1, key2), the rows of the highest
``version``, once per metric, and drop the record when that version is a deletion (DuckDB)::

    SELECT * EXCLUDE (latest, n) FROM (
      SELECT *, max(version) OVER (PARTITION BY dataset, target, period_start, key1, key2) AS latest,
             row_number() OVER (PARTITION BY dataset, target, period_start, key1, key2, metric
                                ORDER BY version DESC) AS n
      FROM read_parquet('s3://BUCKET/PREFIX/dataset=*/month=*/*.parquet', hive_partitioning = true))
    WHERE version = latest AND n = 1 AND NOT deleted

Within one unit's objects every record appears once; the collapse matters when units of different plans
overlap (a ``sync`` re-reads part of a month a backfill wrote) or hold deletions.

Guarantee: at-least-once per unit, exactly the store's content after collapsing. A call that fails is
retried under ``retries``/``backoff_ms``/``retry_budget_s`` (throttling ``SlowDown``, 5xx, timeouts,
dropped connections); a call that cannot succeed (``NoSuchBucket``, ``AccessDenied``, no credentials) is
a :class:`~dbcost.errors.SinkError` at once, naming the sink and the S3 operation; running out of
attempts is a :class:`~dbcost.errors.TransientSinkError`. Either way the unit is not checkpointed and
``--resume`` sends it again, to the same keys.

IAM: ``s3:PutObject``, ``s3:GetObject`` (the source of ``CopyObject``), ``s3:DeleteObject``,
``s3:AbortMultipartUpload`` on ``arn:aws:s3:::BUCKET/PREFIX/*``; ``s3:ListBucket`` on the bucket lets
the sink check at open that the bucket exists (without it, the first write says so).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import orjson

from dbcost.clock import Clock, SystemClock
from dbcost.errors import AccessDeniedError, ApiError, DbcostError, SinkError, TransientSinkError, is_retryable
from dbcost.retry import RetryPolicy
from dbcost.sinks._common import ServerUrl, check_options, number_option, retry_policy_from, retry_sink
from dbcost.sinks.base import SinkBase, SinkContext, SinkOptions, SinkRecord, UnitRef
from dbcost.transport.base import Transport

__all__ = [
    "COLUMNS",
    "MAX_OBJECT_BYTES",
    "MIN_PART_BYTES",
    "S3Options",
    "S3Sink",
    "S3Stats",
    "manifest_key",
    "object_key",
    "unit_months",
]

T = TypeVar("T")

log = logging.getLogger("dbcost.sinks.s3")

MiB = 1024 * 1024
#: S3's smallest part (every part but the last)
MIN_PART_BYTES = 5 * MiB
#: S3's most parts in one multipart upload
_MAX_PARTS = 10_000
#: the largest object CopyObject copies in one call
MAX_OBJECT_BYTES = 5 * 1024 * MiB

#: the Parquet columns, in file order
COLUMNS = ("dataset", "target", "period_start", "period_end", "granularity", "estimated", "key1", "key2",
           "metric", "amount", "unit", "version", "run_id", "deleted")

_COMPRESSIONS = frozenset({"snappy", "zstd", "gzip", "none"})
_OPTIONS = frozenset({
    "endpoint_url", "region", "profile", "retries", "backoff_ms", "retry_budget_s", "timeout",
    "multipart_threshold_mb", "part_size_mb", "compression",
})
_BUCKET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
_CONTENT_TYPE = "application/vnd.apache.parquet"
_AMOUNT_SCALE = decimal.Decimal("1e-10")  # the store's DECIMAL(38,10)


# -------------------------------------------------------------------------------------------- naming


def _name(text: str) -> str:
    """A path segment for ``text``: percent-encoded, ``/`` included, so no name can reach another folder."""
    return quote(text, safe="")


def _stem(unit: UnitRef) -> str:
    return f"{_name(unit.target)}_{unit.start.isoformat()}_{unit.end.isoformat()}"


def _base(prefix: str) -> str:
    return f"{prefix}/" if prefix else ""


def object_key(prefix: str, unit: UnitRef, month: str) -> str:
    """The key of ``unit``'s object for ``month`` (``YYYY-MM``) under ``prefix`` (no slashes around it)."""
    return f"{_base(prefix)}dataset={_name(unit.dataset)}/month={month}/{_stem(unit)}.parquet"


def manifest_key(prefix: str, unit: UnitRef) -> str:
    """The key of ``unit``'s manifest entry under ``prefix``."""
    return f"{_base(prefix)}dataset={_name(unit.dataset)}/_manifest/{_stem(unit)}.json"


def unit_months(unit: UnitRef) -> list[str]:
    """Every month (``YYYY-MM``) that ``unit``'s window ``[start, end)`` touches, in order."""
    months: list[str] = []
    day = unit.start.replace(day=1)
    while day < unit.end:
        months.append(f"{day.year:04d}-{day.month:02d}")
        day = (day + dt.timedelta(days=32)).replace(day=1)
    return months


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# ----------------------------------------------------------------------------------------- options


@dataclass(frozen=True, kw_only=True)
class S3Options(SinkOptions):
    """A parsed ``s3://BUCKET[/PREFIX][?option=value&...]``; ``None`` = not in the URL (the context's,
    then botocore's, applies)."""

    bucket: str
    #: the key prefix without a leading or trailing ``/`` ('' = the bucket's root)
    prefix: str
    endpoint_url: str | None
    region: str | None
    profile: str | None
    timeout_s: float
    #: objects larger than this many bytes go up as a multipart upload
    multipart_threshold: int
    part_size: int
    compression: str
    retry: RetryPolicy


@dataclass
class S3Stats:
    """What the sink wrote since it was built: units (manifest entries), objects in place, their bytes and
    rows, multipart uploads, and the seconds spent in S3 calls (summed over calls in flight at once;
    Parquet encoding excluded)."""

    units: int = 0
    objects: int = 0
    bytes: int = 0
    rows: int = 0
    multipart_uploads: int = 0
    s3_seconds: float = 0.0


# ------------------------------------------------------------------------------------------ columns


@dataclass
class _Columns:
    """The rows of one object, column by column."""

    values: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in COLUMNS})

    def __len__(self) -> int:
        return len(self.values["dataset"])

    def add(self, r: SinkRecord, key_names: tuple[str, ...], period: Callable[[str | None], Any]) -> None:
        rec = r.record
        keys: dict[str, str] = rec.get("keys") or {}
        key1 = keys.get(key_names[0]) if len(key_names) > 0 else None
        key2 = keys.get(key_names[1]) if len(key_names) > 1 else None
        start, end = period(rec.get("period_start")), period(rec.get("period_end"))
        metrics: dict[str | None, dict[str, Any]] = rec.get("metrics") or {None: {"amount": None, "unit": None}}
        v = self.values
        for metric, m in metrics.items():
            amount = m.get("amount")
            v["dataset"].append(r.dataset)
            v["target"].append(r.target)
            v["period_start"].append(start)
            v["period_end"].append(end)
            v["granularity"].append(rec.get("granularity"))
            v["estimated"].append(rec.get("estimated"))
            v["key1"].append(key1)
            v["key2"].append(key2)
            v["metric"].append(metric)
            # the store holds DECIMAL(38,10): the same rounding, so the lake sums to the store's totals
            v["amount"].append(decimal.Decimal(amount).quantize(_AMOUNT_SCALE) if amount is not None else None)
            v["unit"].append(m.get("unit"))
            v["version"].append(r.version)
            v["run_id"].append(r.run_id)
            v["deleted"].append(r.deleted)


def _period_parser(granularity: str) -> Callable[[str | None], Any]:
    """``period_start`` text -> ``date`` (DAILY, MONTHLY) or an aware UTC ``datetime`` (HOURLY)."""
    if granularity == "HOURLY":
        def hourly(text: str | None) -> dt.datetime | None:
            if text is None:
                return None
            when = dt.datetime.fromisoformat(text)
            return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
        return hourly

    def daily(text: str | None) -> dt.date | None:
        return dt.date.fromisoformat(text[:10]) if text is not None else None
    return daily


def _encode(unit: UnitRef, cols: _Columns, compression: str) -> bytes:
    """The Parquet file of ``cols`` (pyarrow, imported here: the sink module itself stays light)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    period = pa.timestamp("us", tz="UTC") if unit.granularity == "HOURLY" else pa.date32()
    types = {"period_start": period, "period_end": period, "estimated": pa.bool_(), "deleted": pa.bool_(),
             "amount": pa.decimal128(38, 10), "version": pa.int64()}
    schema = pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])
    table = pa.table(cols.values, schema=schema).replace_schema_metadata({
        "key1_name": unit.key_names[0] if unit.key_names else "",
        "key2_name": unit.key_names[1] if len(unit.key_names) > 1 else "",
        "dataset": unit.dataset, "target": unit.target, "granularity": unit.granularity,
        "window_start": unit.start.isoformat(), "window_end": unit.end.isoformat(),
    })
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=compression)
    return bytes(sink.getvalue().to_pybytes())


# --------------------------------------------------------------------------------------------- sink


class S3Sink(SinkBase):
    """Writes each unit as Parquet objects under ``s3://BUCKET/PREFIX``; see the module doc.

    From the :class:`~dbcost.sinks.base.SinkContext`: ``endpoint_url``, ``region``, ``profile`` (used when
    the URL has none) and ``credentials`` for the ``AwsTransport``; ``transport`` (an already-open
    :class:`~dbcost.transport.base.Transport` to use instead; the caller owns it) and ``clock`` (for the
    backoff). Safe for concurrent ``write_unit`` calls (the pipeline sends several units at once).
    """

    @classmethod
    def parse(cls, url: str) -> S3Options:
        """The options of ``url``; a bad one is a ConfigError."""
        u = ServerUrl.split(url)
        bucket = u.parts.netloc
        if not bucket or not set(bucket) <= _BUCKET_CHARS or not 3 <= len(bucket) <= 255:
            raise u.refuse("s3://BUCKET/PREFIX")
        check_options(u, _OPTIONS)
        compression = (u.options.get("compression") or "snappy").lower()
        if compression not in _COMPRESSIONS:
            raise u.refuse("s3://BUCKET/PREFIX?compression=snappy|zstd|gzip|none")
        return S3Options(
            url=url, bucket=bucket, prefix=u.parts.path.strip("/"),
            endpoint_url=u.options.get("endpoint_url") or None,
            region=u.options.get("region") or None,
            profile=u.options.get("profile") or None,
            timeout_s=number_option(u, "timeout", 60.0, 0.05),
            multipart_threshold=int(number_option(u, "multipart_threshold_mb", 8, 0) * MiB),
            part_size=int(number_option(u, "part_size_mb", 8, MIN_PART_BYTES / MiB) * MiB),
            compression=compression,
            retry=retry_policy_from(u, retries=5, backoff_ms=200, budget_s=120),
        )

    @classmethod
    def from_url(cls, url: str, ctx: SinkContext) -> S3Sink:
        return cls(cls.parse(url), ctx)

    def __init__(self, options: S3Options, ctx: SinkContext | None = None) -> None:
        ctx = ctx if ctx is not None else SinkContext()
        self.options = options
        self.name = options.display
        self.bucket = options.bucket
        self.prefix = options.prefix
        self.endpoint_url = options.endpoint_url or ctx.endpoint_url or None
        self.region = options.region or ctx.region or None
        self.profile = options.profile or ctx.profile or None
        self.credentials = ctx.credentials
        self.policy = options.retry
        self.stats = S3Stats()
        self._given_transport: Transport | None = ctx.transport
        self._clock: Clock = ctx.clock or SystemClock()
        self._transport: Transport | None = None
        self._stack: AsyncExitStack | None = None

    def __repr__(self) -> str:
        return f"S3Sink({self.name!r})"

    # -- errors ----------------------------------------------------------------------------------------
    def _translate(self, exc: DbcostError, what: str) -> SinkError:
        if isinstance(exc, SinkError):
            return exc
        if isinstance(exc, ApiError) and exc.code == "NoSuchBucket":
            return SinkError(f"{self.name}: bucket {self.bucket!r} does not exist")
        cls = TransientSinkError if is_retryable(exc) else SinkError
        text = str(exc)  # transport errors already name their operation
        return cls(f"{self.name}: {text if text.startswith(what) else f'{what}: {text}'}".replace("\n", " "))

    async def _call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """One call, timed and under a deadline; the transport's dbcost errors become SinkError /
        TransientSinkError naming the sink.

        The deadline is the sink's own: aiobotocore's read timeout does not cover an upload that waits for
        ``100 Continue`` (PutObject, UploadPart), so a hung endpoint would otherwise hold the unit forever.
        """
        transport = self._require()
        body = params.get("Body")
        deadline = 2 * self.options.timeout_s + (len(body) / MiB if isinstance(body, bytes) else 0.0)
        began = time.perf_counter()
        try:
            async with asyncio.timeout(deadline):
                return await transport.call(operation, params)
        except TimeoutError:
            raise TransientSinkError(f"{self.name}: {operation}: no answer within {deadline:.3g} s") from None
        except SinkError:
            raise
        except DbcostError as exc:
            raise self._translate(exc, operation) from exc
        finally:
            self.stats.s3_seconds += time.perf_counter() - began

    async def _retry(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """``call`` under the sink's bounded policy; running out of attempts is a TransientSinkError."""
        return await retry_sink(self.name, call, self.policy, clock=self._clock, what=what)

    async def _s3(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """``operation`` retried under the sink's policy."""
        return await self._retry(lambda: self._call(operation, params), operation)

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
            timeout = self.options.timeout_s
            aws = AwsTransport(service="s3", endpoint_url=self.endpoint_url, region=self.region,
                               profile=self.profile, credentials=self.credentials,
                               connect_timeout_s=min(timeout, 10.0), read_timeout_s=timeout,
                               max_pool_connections=16)
            try:
                self._transport = await stack.enter_async_context(aws)
            except DbcostError as exc:
                await stack.aclose()
                raise self._translate(exc, "open") from exc
            self._stack = stack
        try:
            await self._check_bucket()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        was_open = self._transport is not None
        self._transport = None
        if was_open and self.stats.units:
            s = self.stats
            log.info("%s: %d unit(s), %d object(s), %d bytes, %d rows; %.3f s in S3 calls", self.name, s.units,
                     s.objects, s.bytes, s.rows, s.s3_seconds)
        if stack is not None:
            await stack.aclose()

    async def _check_bucket(self) -> None:
        """Fail at open, before anything is fetched, when the bucket does not exist. Without permission to
        ask (``s3:ListBucket``), assume it does: the first write will tell."""
        async def once() -> None:
            try:
                await self._require().call("HeadBucket", {"Bucket": self.bucket})
            except AccessDeniedError:
                return
            except ApiError as exc:
                if exc.status == 404 or exc.code in ("404", "NoSuchBucket"):
                    raise SinkError(f"{self.name}: bucket {self.bucket!r} does not exist") from exc
                raise self._translate(exc, "HeadBucket") from exc
            except DbcostError as exc:
                raise self._translate(exc, "HeadBucket") from exc

        await self._retry(once, "HeadBucket")

    # -- writing ---------------------------------------------------------------------------------------
    async def write_unit(self, unit: UnitRef, batches: AsyncIterator[list[SinkRecord]]) -> int:
        """Write ``unit``'s objects (one per month of its window) and its manifest entry; durable on return."""
        self._require()
        period = _period_parser(unit.granularity)
        months: dict[str, _Columns] = {m: _Columns() for m in unit_months(unit)}
        records = deleted = 0
        lowest: int | None = None
        highest: int | None = None
        async for batch in batches:
            for r in batch:
                records += 1
                deleted += r.deleted
                lowest = r.version if lowest is None else min(lowest, r.version)
                highest = r.version if highest is None else max(highest, r.version)
                month = str(r.record["period_start"])[:7]
                cols = months.get(month)
                if cols is None:  # not in the window's months (never from the store): its own object all the same
                    cols = months[month] = _Columns()
                cols.add(r, unit.key_names, period)
        objects: list[dict[str, Any]] = []
        for month in sorted(months):
            cols = months[month]
            body = await asyncio.to_thread(_encode, unit, cols, self.options.compression)
            key = object_key(self.prefix, unit, month)
            sha256 = hashlib.sha256(body).hexdigest()
            await self._publish(key, body, {"sha256": sha256, "rows": str(len(cols)), "run-id": unit.run_id})
            objects.append({"key": key, "month": month, "rows": len(cols), "bytes": len(body), "sha256": sha256})
            self.stats.objects += 1
            self.stats.bytes += len(body)
            self.stats.rows += len(cols)
        entry = {
            "format": 1, "dataset": unit.dataset, "target": unit.target, "start": unit.start.isoformat(),
            "end": unit.end.isoformat(), "granularity": unit.granularity, "key_names": list(unit.key_names),
            "run_id": unit.run_id, "records": records, "deleted": deleted,
            "rows": sum(o["rows"] for o in objects),
            "versions": {"min": lowest, "max": highest} if records else None,
            "objects": objects,
            "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        }
        # one PutObject is atomic already, and an entry is small: no temporary key
        await self._s3("PutObject", {"Bucket": self.bucket, "Key": manifest_key(self.prefix, unit),
                                     "Body": orjson.dumps(entry, option=orjson.OPT_INDENT_2),
                                     "ContentType": "application/json"})
        self.stats.units += 1
        return records

    async def _publish(self, key: str, body: bytes, metadata: dict[str, str]) -> None:
        """Upload ``body`` to a temporary key, copy it to ``key``, delete the temporary key."""
        if len(body) > MAX_OBJECT_BYTES:
            raise SinkError(f"{self.name}: object {key!r} would be {len(body)} bytes, over S3's "
                            f"{MAX_OBJECT_BYTES}-byte copy limit (use a shorter --window)")
        tmp = f"{_base(self.prefix)}_tmp/{uuid.uuid4().hex}.tmp"
        head = {"Bucket": self.bucket, "Key": tmp, "ContentType": _CONTENT_TYPE, "Metadata": metadata}
        if len(body) > self.options.multipart_threshold:
            await self._multipart(head, body)
        else:
            await self._s3("PutObject", {**head, "Body": body, "ChecksumSHA256": _b64_sha256(body)})
        await self._s3("CopyObject", {"Bucket": self.bucket, "Key": key, "MetadataDirective": "COPY",
                                      "CopySource": {"Bucket": self.bucket, "Key": tmp},
                                      "ChecksumAlgorithm": "SHA256"})
        try:
            await self._s3("DeleteObject", {"Bucket": self.bucket, "Key": tmp})
        except SinkError as exc:  # the object is in place; a stray temporary key is only garbage
            log.warning("%s: could not delete temporary object %s (expire _tmp/ with a lifecycle rule): %s",
                        self.name, tmp, exc)

    async def _multipart(self, head: dict[str, Any], body: bytes) -> None:
        """``body`` as a multipart upload to ``head["Key"]``, each part with its SHA-256; aborted on failure."""
        created = await self._s3("CreateMultipartUpload", {**head, "ChecksumAlgorithm": "SHA256"})
        upload = {"Bucket": head["Bucket"], "Key": head["Key"], "UploadId": created["UploadId"]}
        size = max(self.options.part_size, -(-len(body) // _MAX_PARTS))
        try:
            parts: list[dict[str, Any]] = []
            view = memoryview(body)
            for number, offset in enumerate(range(0, len(body), size), start=1):
                chunk = bytes(view[offset:offset + size])
                checksum = _b64_sha256(chunk)
                answer = await self._s3("UploadPart", {**upload, "PartNumber": number, "Body": chunk,
                                                       "ChecksumSHA256": checksum})
                parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})
            await self._s3("CompleteMultipartUpload", {**upload, "MultipartUpload": {"Parts": parts}})
        except Exception:
            try:  # one attempt: what it leaves behind, AbortIncompleteMultipartUpload clears
                await self._call("AbortMultipartUpload", upload)
            except SinkError as exc:
                log.warning("%s: could not abort multipart upload of %s: %s", self.name, head["Key"], exc)
            raise
        self.stats.multipart_uploads += 1
