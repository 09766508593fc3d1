"""Process faults: SIGTERM (what timeout, Kubernetes, ECS and systemd send) and SIGINT end a run within a few
seconds with one line saying what completed and how to resume; kill -9 loses nothing that was committed."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from aiohttp import web

from dbcost.emulator import Emulator, EmulatorConfig
from tests.hostile.conftest import (
    FAST,
    TODAY,
    Call,
    Hostile,
    Q,
    answer,
    assert_clean,
    cli,
    finish,
    lines,
    page,
    resume_command,
    spawn,
    wait_for,
)

SIGNALS = [(signal.SIGTERM, 143), (signal.SIGINT, 130)]
IDS = ["SIGTERM", "SIGINT"]


def slow_emulator() -> EmulatorConfig:
    """Small pages with latency: a backfill of two months takes several seconds."""
    return EmulatorConfig(today=TODAY, page_size=40, latency_ms=25)


def _backfill(url: str, db: Path) -> list[str]:
    """The two-month backfill these tests stop, against ``url`` into ``db`` (two units at a time)."""
    return ["backfill", "--start", "2026-09-01", "--end", "2026-11-01", *Q, "--endpoint-url", url, *FAST,
            "--max-concurrency", "2", "--db", str(db)]


def truth_total(emu: Emulator, start: str, end: str) -> Decimal:
    t = emu.truth({"TimePeriod": {"Start": start, "End": end}, "Granularity": "DAILY", "Metrics": ["UnblendedCost"],
                   "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "team"}]})
    return Decimal(t["metrics"]["UnblendedCost"])


def stored_total(db: Path) -> Decimal:
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT coalesce(sum(amount), 0) FROM records").fetchone()
    assert row is not None
    return Decimal(row[0])


@pytest.mark.parametrize(("sig", "code"), SIGNALS, ids=IDS)
async def test_a_signalled_backfill_says_what_completed_and_resumes_exactly(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """SIGTERM/SIGINT mid-backfill: exit 143/130 within a few seconds, one line with what completed and the
    exact --resume command; that command finishes the plan and the store equals the truth."""
    db = tmp_path / "s.duckdb"
    async with Emulator(slow_emulator()) as emu:
        args = _backfill(emu.url, db)
        proc = await spawn(*args)
        await wait_for(lambda: emu.stats()["pages_served"] >= 12)
        proc.send_signal(sig)
        sent = time.monotonic()
        got, _, err = await finish(proc)
        assert time.monotonic() - sent < 5
        assert got == code, err
        assert_clean(err)
        said = [line for line in lines(err) if "--resume" in line]
        assert len(said) == 1, err
        assert "unit(s) done" in said[0] and signal.Signals(sig).name in said[0]
        resume = resume_command(err)
        assert resume[0] == "dbcost" and resume[1:] == [*args, "--today", TODAY.isoformat(), "--resume"]
        if sig != signal.SIGTERM:
            return  # the same path: SIGTERM's run resumes it
        got, out, err = await cli(*resume[1:-3], "--resume", "--json")
        assert got == 0, err
        summary = json.loads(out)
        assert summary["resumed"] is True and summary["units_skipped"] + summary["units_done"] == summary["units"]
        assert stored_total(db) == truth_total(emu, "2026-09-01", "2026-11-01")


async def slow_pages(call: Call) -> web.StreamResponse:
    """A new group a page, 30 ms a page, forever (until the client stops asking)."""
    await asyncio.sleep(0.03)
    return answer(page(call, [("Amazon RDS", f"team{call.n}", "0.5")], token=f"t{call.n}"))


@pytest.mark.parametrize(("sig", "code"), SIGNALS, ids=IDS)
async def test_a_signalled_fetch_keeps_whole_records_in_the_partial_file_and_says_so(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """SIGTERM/SIGINT mid-fetch: exit 143/130, PATH.partial holds every record received (whole lines), the
    line says how many and where; no PATH, no temporary file left."""
    out = tmp_path / "r.jsonl"
    async with Hostile(slow_pages) as srv:
        proc = await spawn("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url", srv.url,
                           *FAST, "--output", str(out))
        await wait_for(lambda: srv.requests >= 8)
        proc.send_signal(sig)
        got, _, err = await finish(proc)
    assert got == code, err
    assert_clean(err)
    partial = out.with_name(out.name + ".partial")
    held = [json.loads(line) for line in partial.read_text().splitlines()]  # every line whole
    assert len(held) >= 7
    said = [line for line in lines(err) if str(partial) in line]
    assert len(said) == 1 and f"{len(held)} records" in said[0] and signal.Signals(sig).name in said[0], err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [partial.name]


async def test_sigterm_before_the_first_page_leaves_no_store_row_running(tmp_path: Path) -> None:
    """SIGTERM while the first request is still out: exit 143; the run is recorded as stopped (resumable), not
    left 'running'."""

    async def never(call: Call) -> web.StreamResponse:
        await asyncio.sleep(30)
        return answer(page(call))

    db = tmp_path / "s.duckdb"
    async with Hostile(never) as srv:
        proc = await spawn("backfill", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url", srv.url,
                           *FAST, "--db", str(db))
        await wait_for(lambda: srv.requests >= 1)
        proc.send_signal(signal.SIGTERM)
        got, _, err = await finish(proc)
    assert got == 143, err
    assert_clean(err)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT status FROM runs").fetchall() == [("stopped",)]


async def test_kill_9_mid_backfill_then_resume_equals_the_truth(tmp_path: Path) -> None:
    """kill -9 mid-run (no handler can run), then --resume: the store equals the truth."""
    db = tmp_path / "s.duckdb"
    async with Emulator(slow_emulator()) as emu:
        args = _backfill(emu.url, db)
        proc = await spawn(*args)
        await wait_for(lambda: emu.stats()["pages_served"] >= 10)
        proc.send_signal(signal.SIGKILL)
        got, _, _ = await finish(proc)
        assert got == -9
        got, _, err = await cli(*args, "--resume")
        assert got == 0, err
        assert stored_total(db) == truth_total(emu, "2026-09-01", "2026-11-01")


async def test_a_second_backfill_on_a_store_in_use_is_refused_with_one_line(tmp_path: Path) -> None:
    """Two backfills on one store: the second is refused cleanly (one line naming the store, nothing sent by
    it), and the first is not disturbed."""

    async def slow(call: Call) -> web.StreamResponse:
        if call.n <= 2:  # the first run's two units: long enough for the second run to come and go
            await asyncio.sleep(2.5)
        return answer(page(call))

    db = tmp_path / "s.duckdb"
    async with Hostile(slow) as srv:
        args = ["backfill", "--start", "2026-10-01", "--end", "2026-10-03", *Q, "--endpoint-url", srv.url, *FAST,
                "--db", str(db)]
        first = await spawn(*args)
        try:
            # both of the first run's units in flight (each held 2.5 s): any later request is the second run's
            await wait_for(lambda: srv.requests >= 2)
            sent = srv.requests
            code, _, err = await cli(*args)
            assert code == 1
            line = [x for x in lines(err) if str(db) in x]
            assert len(lines(err)) == 1 and line, err
            assert_clean(err)
            assert srv.requests == sent
        finally:  # never leave the first run behind, whatever failed above
            got, _, err = await finish(first)
        assert got == 0, err


async def test_a_sync_stopped_by_sigterm_is_finished_by_its_resume_command(tmp_path: Path) -> None:
    """A first sync stopped by SIGTERM: its printed --resume command finishes it (a sync's window moves with what
    it completed, so the resumed plan may differ: it then syncs what is still missing), store == truth."""
    db = tmp_path / "s.duckdb"
    async with Emulator(slow_emulator()) as emu:
        args = ["sync", "--start", "2026-10-01", *Q, "--endpoint-url", emu.url, *FAST, "--max-concurrency", "2",
                "--db", str(db)]
        proc = await spawn(*args)
        await wait_for(lambda: emu.stats()["pages_served"] >= 8)
        proc.send_signal(signal.SIGTERM)
        got, _, err = await finish(proc)
        assert got == 143, err
        resume = resume_command(err)
        got, _, err = await cli(*resume[1:-3], "--resume")
        assert got == 0, err
        assert_clean(err)
        assert stored_total(db) == truth_total(emu, "2026-10-01", TODAY.isoformat())


async def test_sigterm_ends_any_other_command_at_once_with_one_line(tmp_path: Path) -> None:
    """A command with no clean stop of its own (attribute, waiting on its first request) is cancelled at once:
    exit 143, one line, no traceback, no leak report."""

    async def never(call: Call) -> web.StreamResponse:
        await asyncio.sleep(30)
        return answer(page(call))

    async with Hostile(never) as srv:
        proc = await spawn("attribute", "--month", "2026-10", "--endpoint-url", srv.url, "--db",
                           str(tmp_path / "s.duckdb"), "--today", TODAY.isoformat())
        await wait_for(lambda: srv.requests >= 1)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        got, _, err = await finish(proc)
    assert time.monotonic() - sent < 3
    assert got == 143
    assert lines(err) == ["dbcost: interrupted by SIGTERM"], err


async def test_a_signal_sent_twice_at_once_is_one_request_to_stop(tmp_path: Path) -> None:
    """timeout(1) sends SIGTERM to the command and then to its process group: the same signal twice within
    moments is one request, so the backfill still stops cleanly and says what completed and how to resume."""
    db = tmp_path / "s.duckdb"
    async with Emulator(slow_emulator()) as emu:
        proc = await spawn(*_backfill(emu.url, db))
        await wait_for(lambda: emu.stats()["pages_served"] >= 12)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        got, _, err = await finish(proc)
    assert got == 143, err
    assert_clean(err)
    said = [line for line in lines(err) if "--resume" in line]
    assert len(said) == 1 and "unit(s) done" in said[0], err


async def test_a_backfill_cancelled_by_a_second_signal_still_says_how_to_resume(tmp_path: Path) -> None:
    """Ctrl-C and at once SIGTERM (a second request: the run is cancelled, not stopped cleanly): exit 128 + the
    signal that came first (the two arrive together, in either order), one line that still gives the --resume
    command line, and that command finishes the plan exactly."""
    db = tmp_path / "s.duckdb"
    async with Emulator(slow_emulator()) as emu:
        args = _backfill(emu.url, db)
        proc = await spawn(*args)
        await wait_for(lambda: emu.stats()["pages_served"] >= 12)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        got, _, err = await finish(proc)
        assert got in (130, 143), err
        assert_clean(err)
        said = [line for line in lines(err) if "--resume" in line]
        assert len(said) == 1 and signal.Signals(got - 128).name in said[0], err
        resume = resume_command(err)
        assert resume[1:] == [*args, "--today", TODAY.isoformat(), "--resume"]
        got, _, err = await cli(*resume[1:-3], "--resume")
        assert got == 0, err
        assert stored_total(db) == truth_total(emu, "2026-09-01", "2026-11-01")
