"""The fetch job's sink feeds: a sink that fails while the feed queue is full stops the fetch with its error."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from dbcost.errors import SinkError
from dbcost.jobs.fetch import _SinkFeeds
from dbcost.models import CostQuery, CostRecord, Metric
from dbcost.sinks import SinkBase, SinkContext


async def test_fetch_sink_failure_while_the_queue_is_full_raises_instead_of_hanging() -> None:
    """A sink that dies mid-fetch surfaces its error; the fetch does not wait forever."""
    class BadSink(SinkBase):
        name = "bad"

        async def open(self) -> None:
            return None

        async def close(self) -> None:
            return None

        async def write_unit(self, unit: Any, batches: Any) -> int:
            async for _ in batches:
                await asyncio.sleep(0.05)
                raise SinkError("broker gone")
            return 0

    feeds = _SinkFeeds(CostQuery.build(start="2026-01-01", end="2026-01-02"), [], SinkContext())
    feeds.sinks = [BadSink()]
    await feeds.open()
    rec = [CostRecord("2026-01-01", "2026-01-02", "DAILY", {}, {"UnblendedCost": Metric(Decimal(1), "USD")}, False)]

    async def feed() -> None:
        for _ in range(20):
            await feeds.put(rec)
        await feeds.finish()

    with pytest.raises(SinkError, match="broker gone"):
        await asyncio.wait_for(feed(), 5)
    await feeds.close()
