"""``dbcost fetch`` and the library's front door: fetch one query, every page, to memory or to files and sinks.

    import asyncio, dbcost

    async def main():
        query = dbcost.CostQuery.build(start="2026-09-01", end="2026-11-01",
                                       group_by=["SERVICE", "TAG:db-cluster"])
        result = await dbcost.fetch(query, dbcost.FetchSettings(profile="billing"))
        print(len(result.records), result.stats.cost_usd)

    asyncio.run(main())
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from dbcost._files import AtomicOutput
from dbcost.aio import cancel_and_wait
from dbcost.client import Stats, open_client
from dbcost.config import FetchSettings
from dbcost.errors import DbcostError, SinkError, UsageError
from dbcost.models import CostQuery, CostRecord, Quarantined
from dbcost.parse import ParsedPage
from dbcost.sinks import Sink, SinkContext, SinkRecord, UnitRef, open_sink
from dbcost.sinks.files import CSV_BASE_COLUMNS, csv_rows, jsonl_line
from dbcost.transport.base import Transport

__all__ = ["FetchOutcome", "FetchResult", "fetch", "fetch_pages", "run_fetch"]


@dataclass
class FetchResult:
    records: list[CostRecord]
    quarantined: list[Quarantined]
    stats: Stats


async def fetch_pages(
    query: CostQuery, settings: FetchSettings, *, stats: Stats | None = None, transport: Transport | None = None
) -> AsyncIterator[ParsedPage]:
    """Every parsed page of ``query``; replays after a page-chain restart are not yielded twice."""
    async with open_client(settings, stats=stats, transport=transport) as ce:
        async for page in ce.pages(query):
            yield page


async def fetch(
    query: CostQuery, settings: FetchSettings | None = None, *, transport: Transport | None = None
) -> FetchResult:
    """Fetch every page of ``query`` into memory (for small queries; stream with :func:`fetch_pages`)."""
    stats = Stats()
    records: list[CostRecord] = []
    quarantined: list[Quarantined] = []
    async for page in fetch_pages(query, settings or FetchSettings(), stats=stats, transport=transport):
        records.extend(page.records)
        quarantined.extend(page.quarantined)
    return FetchResult(records, quarantined, stats)


@dataclass
class FetchOutcome:
    """What a fetch did: counters, pages completed, the error that stopped it (if any)."""

    stats: Stats
    pages_completed: int = 0
    failure: DbcostError | None = None
    partial_path: Path | None = None
    quarantined: list[Quarantined] = field(default_factory=list)


async def run_fetch(
    query: CostQuery,
    settings: FetchSettings,
    *,
    output: str | None = "-",
    fmt: str = "jsonl",
    quarantine: str | None = None,
    on_page: Callable[[int, Stats], None] | None = None,
    render_table: Callable[[IO[str], CostQuery, list[CostRecord]], None] | None = None,
    sinks: Sequence[str] = (),
    sink_context: SinkContext | None = None,
) -> FetchOutcome:
    """Fetch every page of ``query`` and write records to ``output`` (``-`` = stdout) and to ``sinks``.

    ``output`` is written atomically: complete on success, kept as ``<output>.partial`` on failure (the
    records in it were paid for). An API failure is returned in the outcome, not raised; bad input
    (:class:`~dbcost.errors.UsageError`) is raised before anything is sent.

    Each sink receives the whole query as one unit, streamed page by page; it is durable in the sink when
    this returns without failure. fetch has no store to compare with, so every record carries the run's
    version (its start time in milliseconds): later fetches supersede earlier ones.
    """
    if fmt not in ("jsonl", "csv", "table"):
        raise UsageError(f"--format: must be jsonl, csv or table, got {fmt!r}")
    outcome = FetchOutcome(stats=Stats())
    out = AtomicOutput(output, binary=fmt == "jsonl")
    qout = AtomicOutput(quarantine) if quarantine else None
    table_rows: list[CostRecord] = []
    feeds = _SinkFeeds(query, list(sinks), sink_context or SinkContext())
    try:
        await feeds.open()
        with out as f, (qout if qout is not None else _Null()) as qf:
            writer = None
            if fmt == "csv":
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow([*CSV_BASE_COLUMNS, *query.columns, "metric", "amount", "unit"])
            async for page in fetch_pages(query, settings, stats=outcome.stats):
                outcome.pages_completed = page.page
                if writer is not None:
                    writer.writerows(csv_rows(page.records, query.columns))
                elif fmt == "jsonl":
                    f.write(b"".join(jsonl_line(r.to_json()) for r in page.records))
                else:
                    table_rows.extend(page.records)
                for q in page.quarantined:
                    if qf is not None:
                        qf.write(jsonl_line(q.to_json()))
                    outcome.quarantined.append(q)
                await feeds.put(page.records)
                if on_page is not None:
                    on_page(page.page, outcome.stats)
            await feeds.finish()
            if fmt == "table":
                (render_table or _plain_table)(f, query, table_rows)
    except UsageError:
        await feeds.abort()
        raise
    except DbcostError as exc:
        await feeds.abort()
        outcome.failure = exc
    finally:
        await feeds.close()
    outcome.partial_path = out.partial_path
    return outcome


class _SinkFeeds:
    """Streams fetch's pages into each sink's ``write_unit`` (one unit: the whole query), with backpressure."""

    def __init__(self, query: CostQuery, urls: list[str], context: SinkContext) -> None:
        self.query = query
        self.sinks: list[Sink] = [open_sink(u, context) for u in urls]
        self.version = int(time.time() * 1000)
        self.run_id = f"fetch-{self.version}"
        self.unit = UnitRef(self.run_id, query.fingerprint, "default", query.start, query.end, query.granularity,
                            query.columns)
        self._queues: list[asyncio.Queue[list[SinkRecord] | None]] = []
        self._tasks: list[asyncio.Task[int]] = []
        self._stack = contextlib.AsyncExitStack()

    async def open(self) -> None:
        for sink in self.sinks:
            await self._stack.enter_async_context(sink)
            queue: asyncio.Queue[list[SinkRecord] | None] = asyncio.Queue(maxsize=4)
            self._queues.append(queue)
            self._tasks.append(asyncio.create_task(sink.write_unit(self.unit, self._drain(queue))))

    @staticmethod
    async def _drain(queue: asyncio.Queue[list[SinkRecord] | None]) -> AsyncIterator[list[SinkRecord]]:
        while (batch := await queue.get()) is not None:
            yield batch

    async def put(self, records: list[CostRecord]) -> None:
        if not self._queues or not records:
            return
        batch = [SinkRecord.from_record(self.unit, r.to_json(), version=self.version, run_id=self.run_id)
                 for r in records]
        for queue, task in zip(self._queues, self._tasks, strict=True):
            await _put_or_fail(queue, batch, task)

    async def finish(self) -> None:
        for queue, task in zip(self._queues, self._tasks, strict=True):
            await _put_or_fail(queue, None, task)
        for task in self._tasks:
            await task

    async def abort(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)

    async def close(self) -> None:
        with contextlib.suppress(DbcostError):  # every sink is closed; a close error is not the fetch's
            await self._stack.aclose()


async def _put_or_fail(
    queue: asyncio.Queue[list[SinkRecord] | None], item: list[SinkRecord] | None, sink_task: asyncio.Task[int]
) -> None:
    """Put ``item`` for a sink, or raise the sink's error if it dies while the queue is full (no hang)."""
    if sink_task.done():
        sink_task.result()
    put = asyncio.ensure_future(queue.put(item))
    try:
        await asyncio.wait({put, sink_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not put.done():
            put.cancel()
    if not put.done() or put.cancelled():
        sink_task.result()  # the sink finished first: raise its error
        raise SinkError("a sink stopped reading before the fetch finished")  # pragma: no cover
    put.result()


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _plain_table(f: IO[str], query: CostQuery, records: list[CostRecord]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    for row in csv_rows(records, query.columns):
        w.writerow(row)
    f.write(buf.getvalue())
