"""A trickling server (status and headers, then a byte now and then) cannot hold a request or a run past
the wall-clock deadlines --request-timeout-s and --retry-budget-s set."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web

from tests.hostile.conftest import FAST, Call, Hostile, Q, cli, lines


async def trickle(call: Call) -> web.StreamResponse:
    """200 and a long Content-Length at once, then one byte of body every 0.2 s: no read ever waits long."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-amz-json-1.1"})
    resp.content_length = 100_000
    await resp.prepare(call.request)
    try:
        for _ in range(100_000):
            await resp.write(b" ")
            await asyncio.sleep(0.2)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return resp


async def test_request_timeout_is_the_whole_request_not_the_gap_between_bytes(tmp_path: Path) -> None:
    """--request-timeout-s 0.6 --retry-budget-s 2: fetch gives up in about 2 s, one line naming the timeout."""
    started = time.monotonic()
    async with Hostile(trickle) as srv:
        code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--request-timeout-s", "0.6", "--retry-budget-s", "2",
                                 "--output", str(tmp_path / "r.jsonl"))
    elapsed = time.monotonic() - started
    assert code == 1
    assert elapsed < 6, elapsed
    assert 1 <= srv.requests <= 4
    failed = [line for line in lines(err) if line.startswith("dbcost: failed")]
    assert len(failed) == 1 and "timed out" in failed[0] and "time budget of 2s" in failed[0], err


async def test_retry_budget_is_a_wall_clock_deadline_inside_an_attempt(tmp_path: Path) -> None:
    """A request timeout longer than the budget: the budget still ends the call on time (it is not checked
    only between attempts)."""
    started = time.monotonic()
    async with Hostile(trickle) as srv:
        code, _, err = await cli("backfill", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--request-timeout-s", "30", "--retry-budget-s", "1.5",
                                 "--db", str(tmp_path / "s.duckdb"))
    elapsed = time.monotonic() - started
    assert code == 1
    assert elapsed < 6, elapsed
    assert srv.requests == 1
    assert "time budget of 1.5s" in err
