"""The store driven from async code: every call runs on one dedicated thread, in order.

A DuckDB connection must not be used from several threads at once, and bulk statements must not block the
event loop; so :class:`AsyncStore` owns a single-worker executor and the :class:`~dbcost.store.Store` it
opened there. ``call(fn)`` runs ``fn(store)`` on that thread; :meth:`AsyncStore.unit_sink_batches` streams a
committed unit to the sinks one batch at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from dbcost.attribution.inventory import InventoryItem, InventoryScope
from dbcost.config import StoreSettings
from dbcost.parse import ParsedPage
from dbcost.sinks.base import SinkRecord, UnitRef
from dbcost.store._store import Store
from dbcost.store.records import StageBatch, stage_batch

__all__ = ["AsyncStore"]

T = TypeVar("T")


class AsyncStore:
    """A :class:`~dbcost.store.Store` driven from async code: every call runs on one dedicated thread, in order."""

    def __init__(self, path: str | Path | StoreSettings) -> None:
        self.settings = path if isinstance(path, StoreSettings) else StoreSettings(path=Path(path))
        self.path = self.settings.path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbcost-store")
        self._store: Store | None = None

    async def __aenter__(self) -> AsyncStore:
        try:
            self._store = await self._run(lambda: Store(self.settings))
        except BaseException:
            self._pool.shutdown(wait=True)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            await self._run(store.close)
        self._pool.shutdown(wait=True)

    @property
    def sync(self) -> Store:
        """The store itself (use it only on the store's thread, i.e. inside :meth:`call`)."""
        if self._store is None:
            raise RuntimeError("AsyncStore used outside 'async with'")
        return self._store

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn)

    async def call(self, fn: Callable[[Store], T]) -> T:
        """``fn(store)`` on the store's thread."""
        store = self.sync
        return await self._run(lambda: fn(store))

    async def prepare(self, key_names: Sequence[str], page: ParsedPage) -> StageBatch:
        """``page`` as a :class:`~dbcost.store.records.StageBatch`, built on the store's thread (off the event
        loop): a page waiting to be staged is held as compact Arrow columns, not one object per record."""
        return await self._run(lambda: stage_batch(key_names, [page]))

    async def record_inventory(self, scopes: Sequence[InventoryScope], items: Sequence[InventoryItem]) -> None:
        """:meth:`Store.record_inventory <dbcost.store.state.State.record_inventory>` on the store's thread."""
        await self.call(lambda s: s.record_inventory(scopes, items))

    async def inventory_items(self, targets: Sequence[str] | None = None) -> list[InventoryItem]:
        """:meth:`Store.inventory_items <dbcost.store.reads.Reads.inventory_items>` on the store's thread."""
        return await self.call(lambda s: s.inventory_items(targets))

    async def unit_sink_batches(self, run_id: str, unit: UnitRef) -> AsyncIterator[list[SinkRecord]]:
        """Stream a committed unit's sink records without blocking the loop (one batch at a time)."""
        it = await self.call(lambda s: s.unit_sink_records(run_id, unit))
        sentinel: list[SinkRecord] | None = None
        while True:
            batch = await self._run(lambda: next(it, sentinel))
            if batch is None:
                return
            yield batch
