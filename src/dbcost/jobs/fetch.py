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
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dbcost._files import AtomicOutput
from dbcost.aio import cancel_and_wait
from dbcost.client import Stats, open_client
from dbcost.config import FetchSettings
from dbcost.errors import DbcostError, OutputError, SinkError, UsageError
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
    query: CostQuery, settings: FetchSettings, *, stats: Stats | None = None, transport: Transport | None = None,
    columnar: bool = False,
) -> AsyncIterator[ParsedPage]:
    """Every parsed page of ``query``; replays after a page-chain restart are not yielded twice. ``columnar``:
    pages hold their records as columns where the query allows (:meth:`CostExplorer.pages`)."""
    async with open_client(settings, stats=stats, transport=transport) as ce:
        async for page in ce.pages(query, columnar=columnar):
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
    """What a fetch did: counters, pages completed, the error that stopped it (if any), whether ``stop`` ended
    it, and how many records the output holds (in ``partial_path`` when it did not complete)."""

    stats: Stats
    pages_completed: int = 0
    failure: DbcostError | None = None
    partial_path: Path | None = None
    quarantined: list[Quarantined] = field(default_factory=list)
    #: records written to the output (whole records: a .partial file holds exactly these)
    records_written: int = 0
    #: ``stop`` was set: the fetch ended after its last whole page (the caller knows why)
    interrupted: bool = False


def _opened(out: AtomicOutput, what: str) -> IO[Any]:
    """``out`` entered; an OSError (read-only filesystem, no permission, disk full) is one line naming it."""
    try:
        return out.__enter__()
    except OSError as exc:
        raise OutputError(f"{what} {out.path}: cannot write: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def _writing(out: AtomicOutput | None, what: str) -> Iterator[None]:
    """Writes to ``out`` inside the block: an OSError is one line naming the file (the block's error wins)."""
    try:
        yield
    except OSError as exc:
        where = out.path if out is not None and out.path is not None else "stdout"
        raise OutputError(f"{what} {where}: {exc.strerror or exc}") from exc


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
    stop: asyncio.Event | None = None,
) -> FetchOutcome:
    """Fetch every page of ``query`` and write records to ``output`` (``-`` = stdout) and to ``sinks``.

    ``output`` is written atomically: complete on success, kept as ``<output>.partial`` on failure (the
    records in it were paid for: whole records only, ``records_written`` of them). An API or output failure
    is returned in the outcome, not raised; bad input (:class:`~dbcost.errors.UsageError`) is raised before
    anything is sent. When ``stop`` is set (SIGTERM), the request in flight is abandoned and the fetch ends
    as a failed one does, with ``interrupted`` set.

    Each sink receives the whole query as one unit, streamed page by page; it is durable in the sink when
    this returns without failure. fetch has no store to compare with, so every record carries the run's
    version (its start time in milliseconds): later fetches supersede earlier ones.
    """
    if fmt not in ("jsonl", "csv", "table"):
        raise UsageError(f"--format: must be jsonl, csv or table, got {fmt!r}")
    outcome = FetchOutcome(stats=Stats())
    out = AtomicOutput(output, binary=fmt == "jsonl")
    qout = AtomicOutput(quarantine) if quarantine else None
    feeds = _SinkFeeds(query, list(sinks), sink_context or SinkContext())
    work = asyncio.ensure_future(_fetch_into(query, settings, outcome, out, qout, fmt, feeds, on_page, render_table))
    watch = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        if watch is not None:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():  # stopped: abandon the request in flight; what was written is whole pages
                outcome.interrupted = True
                await cancel_and_wait(work)
        if not outcome.interrupted:
            await work
    except UsageError:
        raise
    except DbcostError as exc:
        outcome.failure = exc
    finally:
        await cancel_and_wait(work)
        if watch is not None:
            await cancel_and_wait(watch)
    outcome.partial_path = out.partial_path
    return outcome


async def _fetch_into(
    query: CostQuery,
    settings: FetchSettings,
    outcome: FetchOutcome,
    out: AtomicOutput,
    qout: AtomicOutput | None,
    fmt: str,
    feeds: _SinkFeeds,
    on_page: Callable[[int, Stats], None] | None,
    render_table: Callable[[IO[str], CostQuery, list[CostRecord]], None] | None,
) -> None:
    """The fetch itself: pages to the output (marked after each page: a failure leaves whole records) and to
    the sinks. Cancelled (``stop``), it ends between two writes, never inside one."""
    table_rows: list[CostRecord] = []
    try:
        await feeds.open()
        f = _opened(out, "output")
        try:
            qf = _opened(qout, "--quarantine") if qout is not None else None
            try:
                writer = None
                if fmt == "csv":
                    with _writing(out, "output"):
                        writer = csv.writer(f, lineterminator="\n")
                        writer.writerow([*CSV_BASE_COLUMNS, *query.columns, "metric", "amount", "unit"])
                        out.mark()
                # JSONL is written from a page's columns (no record per group) unless a sink asks for records
                columnar = fmt == "jsonl" and not feeds.active
                async for page in fetch_pages(query, settings, stats=outcome.stats, columnar=columnar):
                    with _writing(out, "output"):
                        if writer is not None:
                            writer.writerows(csv_rows(page.records, query.columns))
                        elif fmt == "jsonl":
                            cols = page.columns
                            f.write(cols.jsonl() if cols is not None else
                                    b"".join(jsonl_line(r.to_json()) for r in page.records))
                        else:
                            table_rows.extend(page.records)
                        out.mark()
                    if fmt != "table":
                        outcome.records_written += page.n_records
                    outcome.pages_completed = page.page
                    if page.quarantined:
                        with _writing(qout, "--quarantine"):
                            for q in page.quarantined:
                                if qf is not None:
                                    qf.write(jsonl_line(q.to_json()))
                            if qout is not None:
                                qout.mark()
                    outcome.quarantined.extend(page.quarantined)
                    if feeds.active:
                        await feeds.put(page.records)
                    if on_page is not None:
                        on_page(page.page, outcome.stats)
                await feeds.finish()
                if fmt == "table":
                    with _writing(out, "output"):
                        (render_table or _plain_table)(f, query, table_rows)
                    outcome.records_written = len(table_rows)
            except BaseException as exc:
                if qout is not None:
                    qout.__exit__(type(exc), exc, exc.__traceback__)
                raise
            if qout is not None:
                with _writing(qout, "--quarantine"):
                    qout.__exit__(None, None, None)
        except BaseException as exc:
            out.__exit__(type(exc), exc, exc.__traceback__)
            raise
        with _writing(out, "output"):
            out.__exit__(None, None, None)
    except BaseException:
        await feeds.abort()
        raise
    finally:
        await feeds.close()


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

    @property
    def active(self) -> bool:
        """Whether any sink is fed (known once :meth:`open` has run: it opens them)."""
        return bool(self._queues)

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
