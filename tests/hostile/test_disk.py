"""Write faults: a full disk (a 1 MB tmpfs), a read-only filesystem, a directory that does not exist. Each
is one line naming the path, exit 1 (or 2 when it is bad input found before anything is sent), and no torn
record is left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from dbcost.emulator import Emulator, EmulatorConfig
from tests.hostile.conftest import (
    FAST,
    TODAY,
    Call,
    Hostile,
    Q,
    Tmpfs,
    answer,
    assert_clean,
    cli,
    fill,
    lines,
    one_line,
    page,
)


async def test_backfill_into_a_full_disk_fails_with_one_line_and_a_summary(tmpfs: Tmpfs) -> None:
    """The store's disk fills mid-backfill: exit 1, a summary of what completed and one failure line naming
    the store and the cause; no ExceptionGroup, no traceback."""
    db = tmpfs.path / "s.duckdb"
    async with Emulator(EmulatorConfig(today=TODAY, page_size=500)) as emu:
        code, _, err = await cli("backfill", "--start", "2026-01-01", "--end", "2026-11-01", *Q, "--endpoint-url",
                                 emu.url, *FAST, "--db", str(db), "--window", "week")
    assert code == 1, err
    assert_clean(err)
    failed = [line for line in lines(err) if "No space left on device" in line]
    assert failed and str(db) in failed[0], err
    assert any(line.startswith("dbcost backfill:") for line in lines(err)), err


async def test_fetch_into_a_full_disk_keeps_only_whole_records(tmpfs: Tmpfs) -> None:
    """--output on a disk that fills mid-fetch: exit 1, one failure line naming the file and the cause, and
    the .partial file holds whole records only, as many as the line says."""

    async def pages(call: Call) -> web.StreamResponse:
        groups = [("Amazon Relational Database Service", f"team-{call.n}-{i}-" + "x" * 40, "1.5") for i in range(200)]
        return answer(page(call, groups, token=f"t{call.n}" if call.n < 40 else None))

    fill(tmpfs.path, leave=300_000)
    out = tmpfs.path / "r.jsonl"
    async with Hostile(pages) as srv:
        code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--output", str(out))
    assert code == 1
    assert_clean(err)
    failed = [line for line in lines(err) if line.startswith("dbcost: failed")]
    assert len(failed) == 1 and "No space left on device" in failed[0] and str(out) in failed[0], err
    partial = out.with_name(out.name + ".partial")
    text = partial.read_text()
    assert text.endswith("\n")
    held = [json.loads(line) for line in text.splitlines()]
    assert held and f"the {len(held)} records received are in {partial}" in failed[0]


async def test_a_read_only_store_is_one_line(tmpfs: Tmpfs) -> None:
    """A store on a filesystem remounted read-only: exit 1, one line naming the store; nothing sent."""
    db = tmpfs.path / "s.duckdb"
    async with Hostile() as srv:
        code, _, err = await cli("backfill", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--db", str(db))
        assert code == 0, err
        tmpfs.readonly()
        before = srv.requests
        code, _, err = await cli("backfill", "--start", "2026-10-01", "--end", "2026-10-03", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--db", str(db))
        assert code == 1
        one_line(err, str(db))
        assert srv.requests == before


async def test_fetch_onto_a_read_only_filesystem_is_one_line_before_anything_is_sent(tmpfs: Tmpfs) -> None:
    """--output on a read-only filesystem: one line naming the file, exit 1, no request sent."""
    tmpfs.readonly()
    out = tmpfs.path / "r.jsonl"
    async with Hostile() as srv:
        code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, "--output", str(out))
    assert code == 1
    one_line(err, str(out), "Read-only file system")
    assert srv.requests == 0


@pytest.mark.parametrize("tmpfs", ["1m"], indirect=True)
async def test_the_metrics_file_on_a_full_disk_is_one_line_and_the_run_keeps_its_exit(tmp_path: Path,
                                                                                   tmpfs: Tmpfs) -> None:
    """The metrics file cannot be written (disk full): the run's data stands, one extra line names the file and
    the cause, and the exit is 1 (a run asked for metrics it did not get); no temporary file is left."""
    fill(tmpfs.path)
    async with Hostile() as srv:
        code, _, err = await cli("backfill", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--db", str(tmp_path / "s.duckdb"), "--metrics-file",
                                 str(tmpfs.path / "m.prom"))
    assert code == 1
    assert_clean(err)
    said = [line for line in lines(err) if "m.prom" in line]
    assert len(said) == 1 and "No space left on device" in said[0], err
    assert sorted(p.name for p in tmpfs.path.iterdir()) == ["filler"]
