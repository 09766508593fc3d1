"""Secrets in URLs never reach an output, a log or the store; counts said anywhere agree with what was kept;
the metrics file tells the truth about the run that just ended, failures included."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from aiohttp import web

from dbcost.sinks import redact_url
from tests.hostile.conftest import FAST, Call, Hostile, Q, answer, assert_clean, cli, lines, page

SECRET = "S3cr3tPW-xyzzy"


@pytest.mark.parametrize("url", [
    f"postgresql://dbuser:{SECRET}@db.example:5432/costs",
    f"postgresql://dbuser@db.example:5432/costs?password={SECRET}",
    f"postgresql://dbuser@db.example/costs?sslmode=require&sslpassword={SECRET}",
    f"kafka://127.0.0.1:9092/costs?sasl_password={SECRET}",
    f"kinesis://stream?token={SECRET}&region=eu-west-1",
    f"https://hooks.example/x?secret={SECRET}",
    f"https://hooks.example/x?api_key={SECRET}&key={SECRET}",
    f"https://hooks.example/x?Password={SECRET}",
    f"https://hooks.example/x?access_token={SECRET}#frag",
])
def test_redact_url_hides_userinfo_and_secret_query_parameters(url: str) -> None:
    """Every secret-bearing part (userinfo password, password/sslpassword/token/secret/key and their
    spellings) becomes ***; the rest of the URL is kept so it can still be recognised."""
    shown = redact_url(url)
    assert SECRET not in shown and "***" in shown
    assert shown.split("://")[0] == url.split("://", maxsplit=1)[0]


def test_redact_url_keeps_urls_without_secrets_and_survives_garbage() -> None:
    """Nothing to hide: the URL is unchanged; a URL urlsplit cannot read is returned without its query."""
    for url in ("kafka://127.0.0.1:9092/costs?idempotence=false", "jsonl:out/r.jsonl", "postgresql://u@h/db"):
        assert redact_url(url) == url
    assert SECRET not in redact_url(f"http://[::1/x?password={SECRET}")


async def test_a_password_query_parameter_never_reaches_stderr_logs_or_the_runs_table(tmp_path: Path) -> None:
    """?password= in a PostgreSQL sink URL (asyncpg accepts it) used to be printed and stored in runs.args."""
    db = tmp_path / "s.duckdb"
    sink = f"postgresql://dbuser@127.0.0.1:9/costs?password={SECRET}&connect_timeout=1&retries=1"
    async with Hostile() as srv:
        code, out, err = await cli("--log-level", "DEBUG", "backfill", "--start", "2026-10-01", "--end",
                                   "2026-10-02", *Q, "--endpoint-url", srv.url, *FAST, "--db", str(db),
                                   "--sink", sink)
    assert code == 1
    assert SECRET not in out + err
    with duckdb.connect(str(db), read_only=True) as con:
        for table in ("runs", "units"):
            dump = json.dumps(con.execute(f"SELECT * FROM {table}").fetchall(), default=str)
            assert SECRET not in dump, table


async def duplicates(call: Call) -> web.StreamResponse:
    """Each window's page carries the same group three times (the store keeps one, quarantines two)."""
    return answer(page(call, [("Amazon RDS", "a", "1.25")] * 3))


async def test_the_run_summary_counts_the_quarantine_the_store_holds(tmp_path: Path) -> None:
    """A summary line said quarantined=0 while the store held 2: every count now says the store's number."""
    db = tmp_path / "s.duckdb"
    async with Hostile(duplicates) as srv:
        code, out, err = await cli("backfill", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                   srv.url, *FAST, "--db", str(db), "--json")
    assert code == 0, err
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM quarantine").fetchone()
    assert row is not None
    held = int(row[0])
    assert held == 2
    assert json.loads(out)["quarantined"] == held
    summary = [line for line in lines(err) if line.startswith("dbcost backfill:")]
    assert len(summary) == 1 and f"quarantined={held}" in summary[0], err
    assert "quarantined=0" not in err


async def test_the_metrics_file_says_the_run_failed_when_sink_delivery_failed(tmp_path: Path) -> None:
    """A good run writes dbcost_run_ok 1; the next run, whose sink fails (exit 1), must turn it to 0."""
    db, metrics = tmp_path / "s.duckdb", tmp_path / "m.prom"
    async with Hostile() as srv:
        base = ["backfill", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url", srv.url, *FAST,
                "--db", str(db), "--metrics-file", str(metrics)]
        code, _, err = await cli(*base)
        assert code == 0, err
        assert 'dbcost_run_ok{command="backfill"} 1' in metrics.read_text()
        code, _, err = await cli(*base, "--sink", "postgresql://dbuser@127.0.0.1:9/costs?connect_timeout=1&retries=1")
    assert code == 1
    assert_clean(err)
    assert 'dbcost_run_ok{command="backfill"} 0' in metrics.read_text()


async def test_the_metrics_file_is_written_when_the_run_raises(tmp_path: Path) -> None:
    """A run that ends in an error (the endpoint refuses every connection) still rewrites the metrics file."""
    db, metrics = tmp_path / "s.duckdb", tmp_path / "m.prom"
    async with Hostile() as srv:
        code, _, err = await cli("backfill", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--db", str(db), "--metrics-file", str(metrics))
        assert code == 0, err
    code, _, err = await cli("backfill", "--start", "2026-10-01", "--end", "2026-10-03", *Q, "--endpoint-url",
                             "http://127.0.0.1:9", *FAST, "--db", str(db), "--metrics-file", str(metrics),
                             "--retry-budget-s", "0.5")
    assert code == 1
    assert_clean(err)
    assert 'dbcost_run_ok{command="backfill"} 0' in metrics.read_text()
