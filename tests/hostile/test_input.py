"""Input the planner used to let through, and refusals that came too late: every exit 2 is one line, before
any request, any file or any run row; and --resume with nothing to resume says so and sends nothing.

The tables of refusals run in this process (:func:`invoke`: the same typer app and error handler, no
interpreter start-up) against a server that counts what reaches it; an assertion names the case."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from tests.hostile.conftest import FAST, CountingServer, Hostile, Q, cli, cli_each, invoke, lines, one_line

_UTC_TODAY = dt.datetime.now(dt.UTC).date()

BACKFILL_RANGES = [
    (["--start", "2099-01-01", "--end", "2099-02-01"], "future"),
    (["--start", "9999-12-01"], "future"),
    (["--start", "9999-12-01", "--end", "9999-12-31"], "future"),
    (["--start", "1999-01-01"], "1999-01-01"),
    (["--start", "2026-09-01", "--end", "2026-09-02", "--granularity", "HOURLY"], "HOURLY"),
]


@pytest.mark.parametrize(("args", "needle"), BACKFILL_RANGES,
                         ids=["future", "year-9999", "year-9999-range", "before-history", "hourly-outside-14-days"])
def test_backfill_refuses_ranges_cost_explorer_cannot_serve(tmp_path: Path, args: list[str], needle: str) -> None:
    """Future ranges (31 requests for 31 zero rows before), year 9999 (a ValueError traceback), before the
    history, HOURLY beyond 14 days: exit 2, one line, nothing sent, no store file."""
    with CountingServer() as srv:
        code, _, err = invoke("backfill", *args, *Q, "--endpoint-url", srv.url, "--db", str(tmp_path / "s.duckdb"))
    assert code == 2, err
    one_line(err, needle)
    assert srv.requests == 0 and not list(tmp_path.iterdir())


@pytest.mark.parametrize(("args", "needle"), [
    (["--start", "2099-01-01", "--end", "2099-02-01"], "future"),
    (["--start", "9999-12-01", "--end", "9999-12-31"], "future"),
    (["--start", (_UTC_TODAY - dt.timedelta(days=40)).isoformat(),
      "--end", (_UTC_TODAY - dt.timedelta(days=39)).isoformat(), "--granularity", "HOURLY"], "HOURLY"),
], ids=["future", "year-9999", "hourly-outside-14-days"])
def test_fetch_refuses_ranges_cost_explorer_cannot_serve(tmp_path: Path, args: list[str], needle: str) -> None:
    """fetch: the same refusals (HOURLY outside the window used to be sent), before anything is sent or written."""
    with CountingServer() as srv:
        code, out, err = invoke("fetch", *args, *Q, "--endpoint-url", srv.url, "--output", str(tmp_path / "r.jsonl"))
    assert code == 2 and not out, err
    one_line(err, needle)
    assert srv.requests == 0 and not list(tmp_path.iterdir())


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["--sink", "parquet:/etc/passwd"], {}, "/etc/passwd"),
    (["--sink", "jsonl:/nonexistent/d/r.jsonl"], {}, "/nonexistent/d"),
    ([], {"DBCOST_DUCKDB_MEMORY_LIMIT": "lots"}, "DBCOST_DUCKDB_MEMORY_LIMIT"),
    ([], {"DBCOST_DUCKDB_MEMORY_LIMIT": "0KB"}, "DBCOST_DUCKDB_MEMORY_LIMIT"),
    (["--max-cost-usd", "-1"], {}, "--max-cost-usd"),
    (["--shard", "3/2"], {}, "--shard"),
    (["--request-timeout-s", "0"], {}, "--request-timeout-s"),
    (["--retry-budget-s", "-1"], {}, "--retry-budget-s"),
    (["--endpoint-url", "notaurl"], {}, "--endpoint-url"),
    (["--region", "bad region!"], {}, "--region"),
    (["--metrics-file", "/nonexistent/d/m.prom"], {}, "--metrics-file"),
], ids=["parquet-on-a-file", "jsonl-in-missing-dir", "memory-limit-word", "memory-limit-zero", "negative-cost",
        "bad-shard", "zero-request-timeout", "negative-retry-budget", "endpoint", "region", "metrics-dir"])
def test_refusals_leave_no_store_file_and_no_run_row(tmp_path: Path, args: list[str], env: dict[str, str],
                                                     needle: str) -> None:
    """Bad sinks (parquet on a file used to leave a run row 'running'), a DuckDB memory limit it cannot run in
    (it left a store file), bad caps, timeouts, endpoint, region, a --metrics-file in a missing directory
    (checked only after the run had spent its requests): exit 2, one line, nothing sent, no store file."""
    with CountingServer() as srv:
        code, _, err = invoke("backfill", "--start", "2026-10-01", "--end", "2026-10-03", *Q, "--endpoint-url", srv.url,
                              "--db", str(tmp_path / "s.duckdb"), *args, env=env)
    assert code == 2, err
    one_line(err, needle)
    assert srv.requests == 0 and not list(tmp_path.iterdir())


@pytest.mark.parametrize("args", [["--max-rps", "0"], ["--max-concurrency", "0"], ["--max-requests", "-1"],
                                  ["--granularity"], ["--nope"]], ids=lambda a: a[0])
def test_option_errors_are_one_line_not_a_box(args: list[str]) -> None:
    """click/typer option errors (--max-rps 0 printed a 5-line box; a missing value, an unknown option): one
    line, exit 2, nothing on stdout."""
    code, out, err = invoke("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *args)
    assert code == 2 and not out, err
    one_line(err, args[0], "dbcost: error:")


async def test_option_errors_are_one_line_in_a_real_process_too() -> None:
    """The same in a real process (rich draws its box only there, on the real stderr)."""
    [(code, out, err)] = await cli_each(("fetch", "--start", "2026-10-01", "--end", "2026-10-02", "--max-rps", "0"))
    assert code == 2 and not out
    one_line(err, "--max-rps", "dbcost: error:")


async def test_refusals_leave_an_existing_store_without_a_new_run_row(tmp_path: Path) -> None:
    """A refusal against an existing store writes no run row (no 'running' left behind, no 'refused' either)."""
    db = tmp_path / "s.duckdb"
    async with Hostile() as srv:
        code, _, err = await cli("backfill", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--db", str(db))
        assert code == 0, err
        bad = (["--start", "1999-01-01"], ["--start", "2026-10-01", "--sink", "parquet:/etc/passwd"],
               ["--start", "2026-10-01", "--max-requests", "1", "--window", "day"])
        results = await cli_each(*(("backfill", *b, *Q, "--endpoint-url", srv.url, "--db", str(db)) for b in bad))
    for b, (code, _, err) in zip(bad, results, strict=True):
        assert code == 2, (b, err)
        assert len(lines(err)) == 1, err
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT status FROM runs").fetchall() == [("done",)]


async def test_resume_with_nothing_to_resume_says_so_and_sends_nothing(tmp_path: Path) -> None:
    """--resume after a finished run (it used to start over and pay for the whole plan again): exit 0, one
    line saying so, nothing sent. --resume on a fresh disk (no store) runs the plan: it is safe to pass on
    every attempt of an orchestrated shard."""
    db = tmp_path / "s.duckdb"
    async with Hostile() as srv:
        base = ["backfill", "--start", "2026-10-01", "--end", "2026-10-03", *Q, "--endpoint-url", srv.url, *FAST]
        code, _, err = await cli(*base, "--db", str(db), "--resume")
        assert code == 0, err
        sent = srv.requests
        assert sent > 0 and db.exists()
        code, _, err = await cli(*base, "--db", str(db), "--resume")
        assert code == 0, err
        one_line(err, "nothing to resume")
        assert srv.requests == sent
