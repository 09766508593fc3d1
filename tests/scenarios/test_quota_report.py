"""quota check and report end to end through the CLI, on attribution fetched from the emulator: exit codes
for OK / WARN / BREACH, a webhook notified once per status change (retried on 500, silent when nothing
changed), the HTML report rendered by headless Chromium, and the demo's whole job."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dbcost.emulator import Emulator, EmulatorConfig
from tests.conftest import run_cli_async
from tests.report.test_browser import colour_counts, read_png, screenshot
from tests.scenarios.conftest import TODAY, TODAY_S

MONTH = "2026-11"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with October and November attributed from the emulator (fetched once for the module)."""
    db = tmp_path_factory.mktemp("quota") / "s.duckdb"

    async def fill() -> None:
        async with Emulator(EmulatorConfig(today=TODAY)) as emu:
            for month in ("2026-10", MONTH):
                code, _, err = await run_cli_async(
                    "attribute", "--month", month, "--db", str(db), "--endpoint-url", emu.url, "--today", TODAY_S,
                    "--max-rps", "100", "--format", "json",
                    env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},  # module scope: no autouse env
                )
                assert code == 0, err

    asyncio.run(fill())
    return db


def policy(tmp_path: Path, budgets: dict[str, str]) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text("".join(f'[[pool]]\nname = "{t}"\nteam = "{t}"\nmonthly_budget_usd = {b}\n\n'
                            for t, b in budgets.items()))
    return path


async def check(store: Path, pol: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = await run_cli_async("quota", "check", "--month", MONTH, "--db", str(store), "--policy", str(pol),
                                         "--today", TODAY_S, "--json", *extra)
    return code, (json.loads(out) if out.strip() else {}), err


async def test_exit_codes_gate_ok_warn_breach(store: Path, tmp_path: Path) -> None:
    """--fail-on turns the worst status into the exit code: 0 OK, 4 WARN, 5 BREACH; without it, 0."""
    # platform spent ~87.5k by the 28th: budgets around that land in each status
    ok = policy(tmp_path, {"platform": "500000"})
    code, data, _ = await check(store, ok, "--fail-on", "warn")
    assert code == 0 and data["pools"][0]["status"] == "OK"
    warn = policy(tmp_path, {"platform": "95000"})  # forecast (~97k) over budget, actual under
    code, data, _ = await check(store, warn, "--fail-on", "warn")
    assert code == 4 and data["pools"][0]["status"] == "WARN"
    code, _, _ = await check(store, warn, "--fail-on", "breach")
    assert code == 0
    breach = policy(tmp_path, {"platform": "50000"})
    code, data, _ = await check(store, breach, "--fail-on", "breach")
    assert code == 5 and data["pools"][0]["status"] == "BREACH"
    pool = data["pools"][0]
    assert {"pool", "budget", "actual", "forecast", "status"} <= set(pool)
    assert pool["projected_breach_date"] is not None and pool["estimated"] is True
    code, _, _ = await check(store, breach)
    assert code == 0


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]], list[int]]]:
    """A local HTTP receiver that answers 500 to every other first attempt and records what it got."""
    got: list[dict[str, Any]] = []
    attempts: list[int] = []

    async def hook(request: web.Request) -> web.Response:
        attempts.append(1)
        if len(attempts) % 2 == 1:
            return web.Response(status=500, text="try again")
        got.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/hook", got, attempts
    finally:
        await runner.cleanup()


async def test_webhook_once_per_status_change(store: Path, tmp_path: Path,
                                              receiver: tuple[str, list[dict[str, Any]], list[int]]) -> None:
    """A webhook gets one Slack-compatible message per status change (after a retried 500), none when
    nothing changed, and a new one when a pool changes again."""
    url, got, attempts = receiver
    copy = tmp_path / "s.duckdb"
    copy.write_bytes(store.read_bytes())
    pol = policy(tmp_path, {"platform": "50000", "search": "500000"})
    code, _, err = await check(copy, pol, "--webhook", url)
    assert code == 0, err
    assert len(got) == 1 and len(attempts) == 2  # 500 first, retried
    msg = got[0]
    assert "platform" in msg["text"] and "BREACH" in msg["text"] and isinstance(msg["blocks"], list)
    assert "search" not in msg["text"]  # first-time OK is not news
    code, _, _ = await check(copy, pol, "--webhook", url)
    assert code == 0 and len(got) == 1  # nothing changed: no message
    relaxed = policy(tmp_path, {"platform": "500000", "search": "500000"})
    code, _, _ = await check(copy, relaxed, "--webhook", url)
    assert len(got) == 2 and "BREACH" in got[1]["text"] and "OK" in got[1]["text"]


async def test_failed_webhook_exits_1_and_retries_next_run(store: Path, tmp_path: Path) -> None:
    """An unreachable webhook: exit 1, the change is not recorded, so the next run notifies again."""
    copy = tmp_path / "s.duckdb"
    copy.write_bytes(store.read_bytes())
    pol = policy(tmp_path, {"platform": "50000"})
    from tests.conftest import free_port

    code, _, err = await check(copy, pol, "--webhook", f"http://127.0.0.1:{free_port()}/x")
    assert code == 1 and "notification failed" in err
    code, _, err = await check(copy, pol, "--webhook", f"http://127.0.0.1:{free_port()}/x")
    assert "platform new -> BREACH" in err


async def test_quota_without_attribution_says_what_to_run(tmp_path: Path) -> None:
    """No attribution in the store: one line naming `dbcost attribute`, exit 2."""
    pol = policy(tmp_path, {"platform": "1"})
    code, _, err = await check(tmp_path / "none.duckdb", pol)
    assert code == 2 and "dbcost attribute" in err


async def test_html_report_renders_in_headless_chromium(store: Path, tmp_path: Path) -> None:
    """`dbcost report --format html` from the emulator's data: a self-contained page that Chromium draws
    with charts (many non-background pixels in several colours)."""
    html = tmp_path / "report.html"
    code, _, err = await run_cli_async("report", "--month", MONTH, "--db", str(store), "--format", "html",
                                       "--output", str(html), "--today", TODAY_S, "--policy",
                                       str(policy(tmp_path, {"platform": "50000"})))
    assert code == 0, err
    text = html.read_text()
    assert "<svg" in text and "https://" not in text and "<script src" not in text
    png = tmp_path / "report.png"
    await asyncio.to_thread(screenshot, html, png, tmp_path / "chromium-profile")
    width, height, rows = read_png(png)
    counts = colour_counts(rows)
    total = width * height
    background = max(counts.values())
    assert total - background > total * 0.2
    assert len([c for c, n in counts.items() if n > 300]) >= 8


async def test_report_json_and_table(store: Path) -> None:
    """report --format json carries teams, movers against October and freshness; table names the teams."""
    code, out, err = await run_cli_async("report", "--month", MONTH, "--db", str(store), "--format", "json",
                                         "--today", TODAY_S)
    assert code == 0, err
    data = json.loads(out)
    assert data["month"] == MONTH and data["teams"] and data["movers"] and data["freshness"]
    assert data["previous"] is not None
    code, out, _ = await run_cli_async("report", "--month", MONTH, "--db", str(store), "--today", TODAY_S)
    assert code == 0 and "platform" in out


async def test_demo_runs_the_whole_job(tmp_path: Path) -> None:
    """`dbcost demo` (README's first command): backfill, attribution, quota, report; exact and exit 0."""
    code, out, err = await run_cli_async("demo", "--dir", str(tmp_path / "demo"), "--today", TODAY_S, timeout=120)
    assert code == 0, err + out
    assert "exact" in out and "MISMATCH" not in out
    assert (tmp_path / "demo" / "report.html").exists() and (tmp_path / "demo" / "policy.toml").exists()
    # the statuses the example policy's comments promise for a late-month run are the ones it shows
    from tests.scenarios.test_demo import promised_statuses, shown_statuses

    assert shown_statuses(out) == promised_statuses("late in a month")
    # the report command the demo suggests reads the demo's rows (same target name), not an empty month
    db = str(tmp_path / "demo" / "dbcost.duckdb")
    code, out, err = await run_cli_async("report", "--db", db, "--month", MONTH, "--format", "json", "--today", TODAY_S)
    assert code == 0, err
    assert Decimal(json.loads(out)["total"]) > 0


async def test_without_a_webhook_no_run_claims_a_status_change(store: Path, tmp_path: Path) -> None:
    """No --webhook/--sink: the stored (notified) status does not move, so no run says "status changed"; each
    says nothing was notified, and a later run with a webhook still notifies the change (issue 14)."""
    copy = tmp_path / "s.duckdb"
    copy.write_bytes(store.read_bytes())
    pol = policy(tmp_path, {"platform": "50000"})
    for _ in range(2):
        code, _, err = await check(copy, pol)
        assert code == 0, err
        assert "status changed" not in err
        assert "nothing notified (no --webhook or --sink); 1 pool(s) differ from the last notified status: " \
               "platform new -> BREACH" in err
    from tests.conftest import free_port

    code, _, err = await check(copy, pol, "--webhook", f"http://127.0.0.1:{free_port()}/x")
    assert code == 1 and "status changed: platform new -> BREACH" in err
