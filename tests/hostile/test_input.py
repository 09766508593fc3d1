"""Input the planner used to let through, and refusals that came too late: every exit 2 is one line, before
any request, any file or any run row; and --resume with nothing to resume says so and sends nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from tests.hostile.conftest import FAST, TODAY, Hostile, Q, cli, lines, one_line


@pytest.mark.parametrize(("args", "needle"), [
    (["--start", "2099-01-01", "--end", "2099-02-01"], "future"),
    (["--start", "9999-12-01"], "--start"),
    (["--start", "9999-12-01", "--end", "9999-12-31"], "future"),
    (["--start", "1999-01-01"], "1999-01-01"),
    (["--start", "2026-09-01", "--end", "2026-09-02", "--granularity", "HOURLY"], "HOURLY"),
], ids=["future", "year-9999", "year-9999-range", "before-history", "hourly-outside-14-days"])
async def test_backfill_refuses_ranges_cost_explorer_cannot_serve(tmp_path: Path, args: list[str], needle: str) -> None:
    """Future ranges, year 9999 (was a ValueError traceback), before the history, HOURLY beyond 14 days: exit 2,
    one line, nothing sent, no store file."""
    db = tmp_path / "s.duckdb"
    async with Hostile() as srv:
        code, _, err = await cli("backfill", *args, *Q, "--endpoint-url", srv.url, "--db", str(db))
    assert code == 2
    one_line(err, needle)
    assert srv.requests == 0 and not db.exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["--start", "2099-01-01", "--end", "2099-02-01"], "future"),
    (["--start", "9999-12-01", "--end", "9999-12-31"], "future"),
    (["--start", (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=40)).isoformat(),
      "--end", (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=39)).isoformat(), "--granularity", "HOURLY"],
     "HOURLY"),
], ids=["future", "year-9999", "hourly-outside-14-days"])
async def test_fetch_refuses_ranges_cost_explorer_cannot_serve(tmp_path: Path, args: list[str], needle: str) -> None:
    """fetch: the same refusals, before anything is sent or written."""
    out = tmp_path / "r.jsonl"
    async with Hostile() as srv:
        code, stdout, err = await cli("fetch", *args, *Q, "--endpoint-url", srv.url, "--output", str(out))
    assert code == 2 and not stdout
    one_line(err, needle)
    assert srv.requests == 0 and not list(tmp_path.iterdir())


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["--sink", "parquet:/etc/passwd"], {}, "/etc/passwd"),
    (["--sink", "jsonl:/nonexistent/d/r.jsonl"], {}, "/nonexistent/d"),
    ([], {"DBCOST_DUCKDB_MEMORY_LIMIT": "lots"}, "DBCOST_DUCKDB_MEMORY_LIMIT"),
    ([], {"DBCOST_DUCKDB_MEMORY_LIMIT": "0KB"}, "DBCOST_DUCKDB_MEMORY_LIMIT"),
    (["--max-cost-usd", "-1"], {}, "--max-cost-usd"),
    (["--shard", "3/2"], {}, "--shard"),
], ids=["parquet-on-a-file", "jsonl-in-missing-dir", "memory-limit-word", "memory-limit-zero", "negative-cost",
        "bad-shard"])
async def test_refusals_leave_no_store_file_and_no_run_row(tmp_path: Path, args: list[str], env: dict[str, str],
                                                           needle: str) -> None:
    """Bad sinks, a bad DuckDB memory limit, bad caps: exit 2, one line, no store file (so no run row)."""
    import os

    from tests.conftest import run_cli_async

    db = tmp_path / "s.duckdb"
    async with Hostile() as srv:
        code, _, err = await run_cli_async("backfill", "--start", "2026-10-01", "--end", "2026-10-03", *Q,
                                           "--endpoint-url", srv.url, "--db", str(db), *args, "--today",
                                           TODAY.isoformat(), env={**os.environ, **env})
    assert code == 2, err
    one_line(err, needle)
    assert srv.requests == 0 and not db.exists()


async def test_refusals_leave_an_existing_store_without_a_new_run_row(tmp_path: Path) -> None:
    """A refusal against an existing store writes no run row (no 'running' left behind, no 'refused' either)."""
    db = tmp_path / "s.duckdb"
    async with Hostile() as srv:
        code, _, err = await cli("backfill", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--db", str(db))
        assert code == 0, err
        for bad in (["--start", "1999-01-01"], ["--start", "2026-10-01", "--sink", "parquet:/etc/passwd"],
                    ["--start", "2026-10-01", "--max-requests", "1", "--window", "day"]):
            code, _, err = await cli("backfill", *bad, *Q, "--endpoint-url", srv.url, "--db", str(db))
            assert code == 2, err
            assert len(lines(err)) == 1, err
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT status FROM runs").fetchall() == [("done",)]


@pytest.mark.parametrize(("opt", "value"), [("--max-rps", "0"), ("--max-concurrency", "0"), ("--max-requests", "-1"),
                                            ("--granularity", None), ("--nope", None)])
async def test_option_errors_are_one_line_not_a_box(opt: str, value: str | None) -> None:
    """click/typer option errors (--max-rps 0, a missing value, an unknown option): one line, exit 2."""
    args = [opt] if value is None else [opt, value]
    code, out, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *args)
    assert code == 2 and not out
    one_line(err, opt, "dbcost")


async def test_resume_with_nothing_to_resume_says_so_and_sends_nothing(tmp_path: Path) -> None:
    """--resume after a finished run (it used to start over and pay for the whole plan again): exit 0, one
    line saying so, nothing sent; --resume with no store at all: the same, and no store file is made."""
    db = tmp_path / "s.duckdb"
    async with Hostile() as srv:
        base = ["backfill", "--start", "2026-10-01", "--end", "2026-10-03", *Q, "--endpoint-url", srv.url, *FAST]
        code, _, err = await cli(*base, "--db", str(tmp_path / "none.duckdb"), "--resume")
        assert code == 0, err
        one_line(err, "nothing to resume")
        assert not (tmp_path / "none.duckdb").exists() and srv.requests == 0
        code, _, err = await cli(*base, "--db", str(db))
        assert code == 0, err
        sent = srv.requests
        code, _, err = await cli(*base, "--db", str(db), "--resume")
        assert code == 0, err
        one_line(err, "nothing to resume")
        assert srv.requests == sent
