"""Runaway paging: a server that never stops handing out fresh NextPageTokens is stopped by default, cheaply,
and every count said about what was received agrees with what was kept."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from aiohttp import web

from tests.hostile.conftest import FAST, Call, Hostile, Q, answer, cli, lines, one_line, page


async def endless_same(call: Call) -> web.StreamResponse:
    """The same page again and again, each with a token never seen before."""
    return answer(page(call, token=f"t{call.n}"))


async def endless_fresh(call: Call) -> web.StreamResponse:
    """A page with a new group every time, and a fresh token: it looks like progress, forever."""
    return answer(page(call, [("Amazon RDS", f"team{call.n}", "0.01")], token=f"t{call.n}"))


async def test_fetch_stops_a_chain_that_brings_nothing_new_within_a_few_pages(tmp_path: Path) -> None:
    """Fresh tokens with no new groups: fetch refuses after a few pages (not 1,000), one line, exit 1."""
    out = tmp_path / "r.jsonl"
    async with Hostile(endless_same) as srv:
        code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--output", str(out))
    assert code == 1
    assert srv.requests <= 5
    failed = [line for line in lines(err) if line.startswith("dbcost: failed")]
    assert len(failed) == 1 and "no new groups" in failed[0], err


async def test_backfill_stops_a_chain_that_brings_nothing_new_and_commits_nothing(tmp_path: Path) -> None:
    """The same in a backfill: the unit fails within a few pages, nothing of it is committed."""
    db = tmp_path / "s.duckdb"
    async with Hostile(endless_same) as srv:
        code, _, err = await cli("backfill", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--db", str(db))
    assert code == 1, err
    assert srv.requests <= 5
    assert "no new groups" in err
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM records").fetchone() == (0,)


async def test_a_chain_that_keeps_bringing_new_groups_stops_at_the_default_page_limit(tmp_path: Path) -> None:
    """No --max-requests given: an endless chain that looks like progress still stops at the default per-chain
    limit (500 pages, $5), with one line saying which limit and how to raise it; what was received is kept."""
    out = tmp_path / "r.jsonl"
    async with Hostile(endless_fresh) as srv:
        code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--output", str(out), timeout=120)
    assert code == 1
    assert srv.requests == 500
    failed = [line for line in lines(err) if line.startswith("dbcost: failed")]
    assert len(failed) == 1 and "--max-pages-per-chain" in failed[0], err
    partial = out.with_name(out.name + ".partial")
    assert len(partial.read_text().splitlines()) == 500


async def test_the_per_chain_limit_is_overridable_and_zero_means_no_limit(tmp_path: Path) -> None:
    """--max-pages-per-chain 20 stops at 20 pages; a backfill says the same limit and stops, resumable."""
    db = tmp_path / "s.duckdb"
    async with Hostile(endless_fresh) as srv:
        code, _, err = await cli("backfill", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--db", str(db), "--max-pages-per-chain", "20")
    assert code == 1
    assert srv.requests == 20
    assert "--max-pages-per-chain" in err and "--resume" in err


async def test_the_default_run_limit_refuses_a_plan_that_needs_more_requests(tmp_path: Path) -> None:
    """A plan whose minimum exceeds the default run limit (5,000 requests) is refused up front: exit 2, one
    line naming the default and how to lift it, nothing sent, no store file."""
    targets = tmp_path / "t.toml"
    async with Hostile() as srv:
        targets.write_text("".join(f'[[target]]\nname = "p{i}"\nendpoint_url = "{srv.url}"\n' for i in range(14)))
        db = tmp_path / "s.duckdb"
        code, _, err = await cli("backfill", "--start", "2025-11-01", *Q, "--targets", str(targets), "--window", "day",
                                 "--db", str(db))
    assert code == 2
    one_line(err, "5000", "--max-requests")
    assert srv.requests == 0 and not db.exists()


async def test_explicit_zero_lifts_the_default_run_limit(tmp_path: Path) -> None:
    """--max-requests 0 (said explicitly) means no run limit: the same plan is accepted by --dry-run."""
    targets = tmp_path / "t.toml"
    async with Hostile() as srv:
        targets.write_text("".join(f'[[target]]\nname = "p{i}"\nendpoint_url = "{srv.url}"\n' for i in range(14)))
        code, out, err = await cli("backfill", "--start", "2025-11-01", *Q, "--targets", str(targets), "--window",
                                   "day", "--db", str(tmp_path / "s.duckdb"), "--max-requests", "0", "--dry-run",
                                   "--json")
    assert code == 0, err
    assert json.loads(out)["min_requests"] > 5000 and srv.requests == 0


async def test_repeated_token_error_counts_what_the_partial_file_holds(tmp_path: Path) -> None:
    """A token repeated: the error's count of records received equals the lines in the .partial file."""

    async def repeat(call: Call) -> web.StreamResponse:
        return answer(page(call, [("Amazon RDS", f"t{call.n}", "1")], token="same"))

    out = tmp_path / "r.jsonl"
    async with Hostile(repeat) as srv:
        code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--output", str(out))
    assert code == 1
    partial = out.with_name(out.name + ".partial")
    held = len(partial.read_text().splitlines())
    failed = [line for line in lines(err) if line.startswith("dbcost: failed")]
    assert len(failed) == 1 and "repeats" in failed[0]
    assert f"the {held} records received are in {partial}" in failed[0], err
    summary = [line for line in lines(err) if line.startswith("dbcost fetch:")]
    assert f"records={held} " in summary[0]
