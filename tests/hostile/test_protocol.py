"""Protocol violations: answers that are not what was asked, bodies cut short or not JSON, throttles without a
code. Each ends in what the user can act on (a retry that succeeds, or one line), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from aiohttp import web

from tests.hostile.conftest import (
    FAST,
    Call,
    CountingServer,
    Hostile,
    Q,
    answer,
    assert_clean,
    cli,
    invoke,
    lines,
    one_line,
    page,
)

USAGE_TYPE_CLUSTER = [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}, {"Type": "TAG", "Key": "db-cluster"}]
SERVICE_CLUSTER_Q = ["--group-by", "SERVICE", "--group-by", "TAG:db-cluster"]


async def wrong_groups(call: Call) -> web.StreamResponse:
    """Asked SERVICE x TAG:db-cluster, answers USAGE_TYPE x TAG:db-cluster: three groups a day."""
    body = page(call, group_defs=USAGE_TYPE_CLUSTER)
    start = call.window[0]
    body["ResultsByTime"][0]["Groups"] = [
        {"Keys": [usage, "db-cluster$orders"], "Metrics": {"UnblendedCost": {"Amount": "2.5", "Unit": "USD"}}}
        for usage in ("InstanceUsage:db.r6g.large", "RDS:GP3-Storage", "RDS:ChargedBackupUsage")]
    body["ResultsByTime"][0]["TimePeriod"]["Start"] = start
    return answer(body)


async def test_backfill_refuses_a_response_grouped_differently_from_the_query(tmp_path: Path) -> None:
    """GroupDefinitions differ from the query: the unit fails with one line naming both; nothing committed,
    nothing quarantined, exit 1."""
    db = tmp_path / "s.duckdb"
    async with Hostile(wrong_groups) as srv:
        code, _, err = await cli("backfill", "--start", "2026-10-01", "--end", "2026-10-03", *SERVICE_CLUSTER_Q,
                                 "--endpoint-url", srv.url, *FAST, "--db", str(db), "--window", "day")
    assert code == 1
    assert_clean(err)
    said = [line for line in lines(err) if "USAGE_TYPE" in line]
    assert said and all("SERVICE" in line for line in said), err
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM records").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)


async def test_fetch_refuses_a_response_grouped_differently_from_the_query(tmp_path: Path) -> None:
    """The same for fetch: exit 1, the failure line names both groupings, no record written."""
    out = tmp_path / "r.jsonl"
    async with Hostile(wrong_groups) as srv:
        code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *SERVICE_CLUSTER_Q,
                                 "--endpoint-url", srv.url, *FAST, "--output", str(out))
    assert code == 1
    assert_clean(err)
    failed = [line for line in lines(err) if line.startswith("dbcost: failed")]
    assert len(failed) == 1 and "USAGE_TYPE" in failed[0] and "SERVICE" in failed[0], err
    assert not out.exists()


def flaky(bad: int, how: str):  # type: ignore[no-untyped-def]
    """The first ``bad`` answers go wrong in the way ``how`` names; then a good page."""

    async def behaviour(call: Call) -> web.StreamResponse:
        if call.n > bad:
            return answer(page(call))
        if how == "truncated":
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-amz-json-1.1"})
            resp.content_length = 4096
            await resp.prepare(call.request)
            await resp.write(b'{"ResultsByTime": [{"TimePeriod": {"Start": "2026-10-01", "End"')
            transport = call.request.transport
            assert transport is not None
            transport.close()
            return resp
        if how == "html200":
            return web.Response(status=200, text="<html><body>Service Temporarily Unavailable</body></html>",
                                content_type="text/html")
        if how == "html502":
            return web.Response(status=502, text="<html><body><h1>502 Bad Gateway</h1></body></html>",
                                content_type="text/html")
        if how == "429":
            return web.Response(status=429)
        raise AssertionError(how)

    return behaviour


async def test_truncated_bodies_are_retried_then_the_fetch_completes(tmp_path: Path) -> None:
    """A body cut short (Content-Length not met, connection closed) is a transport error: retried, exit 0."""
    out = tmp_path / "r.jsonl"
    async with Hostile(flaky(2, "truncated")) as srv:
        code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--output", str(out))
    assert code == 0, err
    assert_clean(err)
    assert srv.requests == 3 and "retries=2" in err
    assert len(out.read_text().splitlines()) == 1


async def test_a_body_that_stays_truncated_fails_with_one_line(tmp_path: Path) -> None:
    """Truncated every time: exit 1 within the retry budget, one failure line, no traceback."""
    async with Hostile(flaky(10**6, "truncated")) as srv:
        code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--retry-budget-s", "1.5", "--output", str(tmp_path / "r.jsonl"))
    assert code == 1
    assert_clean(err)
    failed = [line for line in lines(err) if line.startswith("dbcost: failed")]
    assert len(failed) == 1 and "GetCostAndUsage" in failed[0], err


async def test_an_html_error_page_with_5xx_is_retried(tmp_path: Path) -> None:
    """502 with an HTML body (a proxy's page): a server error, retried; the fetch completes."""
    async with Hostile(flaky(2, "html502")) as srv:
        code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--output", str(tmp_path / "r.jsonl"))
    assert code == 0, err
    assert_clean(err)
    assert srv.requests == 3


async def test_an_html_body_with_200_is_not_taken_for_a_page(tmp_path: Path) -> None:
    """200 with an HTML body: not a Cost Explorer response; retried as a transport fault, then completes."""
    out = tmp_path / "r.jsonl"
    async with Hostile(flaky(1, "html200")) as srv:
        code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--output", str(out))
    assert code == 0, err
    assert_clean(err)
    assert srv.requests == 2 and len(out.read_text().splitlines()) == 1


async def test_html_200_every_time_fails_with_one_line(tmp_path: Path) -> None:
    """HTML every time: exit 1 within the budget, one failure line saying the body was not JSON."""
    async with Hostile(flaky(10**6, "html200")) as srv:
        code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--retry-budget-s", "1.5", "--output", str(tmp_path / "r.jsonl"))
    assert code == 1
    assert_clean(err)
    failed = [line for line in lines(err) if line.startswith("dbcost: failed")]
    assert len(failed) == 1 and "not JSON" in failed[0], err


async def test_429_without_an_error_code_is_a_throttle(tmp_path: Path) -> None:
    """429 with an empty body: counted as throttled, retried, completes."""
    async with Hostile(flaky(2, "429")) as srv:
        code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", *Q, "--endpoint-url",
                                 srv.url, *FAST, "--output", "-", "--summary-json", str(tmp_path / "s.json"))
    assert code == 0, err
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["throttled"] == 2 and summary["retries"] == 2


def test_a_bad_endpoint_url_or_region_is_one_line_exit_2() -> None:
    """fetch --endpoint-url notaurl (an AttributeError traceback of 104 lines) and --region 'bad region!' (96
    lines): exit 2, one line, nothing sent (backfill's are in test_input's refusal table)."""
    with CountingServer() as srv:
        code, out, err = invoke("fetch", "--start", "2026-10-01", "--end", "2026-10-02", "--endpoint-url", "notaurl")
        assert code == 2 and not out
        one_line(err, "--endpoint-url", "notaurl")
        code, out, err = invoke("fetch", "--start", "2026-10-01", "--end", "2026-10-02", "--endpoint-url", srv.url,
                                "--region", "bad region!")
        assert code == 2 and not out
        one_line(err, "--region")
    assert srv.requests == 0


async def test_a_refused_connection_is_one_line_within_the_budget(tmp_path: Path) -> None:
    """Nothing listening: exit 1, one failure line that says what completed, no traceback."""
    code, _, err = await cli("fetch", "--start", "2026-10-01", "--end", "2026-10-02", "--endpoint-url",
                             "http://127.0.0.1:9", "--retry-budget-s", "1", "--output", str(tmp_path / "r.jsonl"))
    assert code == 1
    assert_clean(err)
    failed = [line for line in lines(err) if line.startswith("dbcost: failed")]
    assert len(failed) == 1 and "0 complete page(s)" in failed[0]
