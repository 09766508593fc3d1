"""The advise job in process, against the emulator: it finds the truth's advisories, reuses what the store holds
fresh, records first-seen and resolved state only after a delivery was accepted, and refuses bad input before
anything is sent or written."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dbcost.advice import advisory_id
from dbcost.config import RateSettings, Settings, StoreSettings, TargetConfig
from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.errors import UsageError
from dbcost.jobs.advise import (
    EXIT_NEW,
    AdviseSpec,
    advice_from_store,
    check_advise_spec,
    parse_min_savings,
    parse_non_prod,
    run_advise,
)
from dbcost.jobs.attribute import AttributeSpec
from dbcost.store import Store
from tests.conftest import CREDS, TODAY

MONTH = "2026-10"
T0 = dt.datetime(2026, 11, 28, 6, 0)


def spec_for(db: Path, url: str, **kw: Any) -> AdviseSpec:
    settings = Settings(targets=(TargetConfig(name="payer", endpoint_url=url),), store=StoreSettings(path=db),
                        credentials=CREDS, rate=RateSettings(max_rps=100))
    return AdviseSpec(attribute=AttributeSpec(month=MONTH, settings=settings, today=TODAY), **kw)


def keys(advisories: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((a["kind"], a["cluster"], a["team"], a["service"], a["account"], a["region"],
                   Decimal(a["monthly_cost"]), Decimal(a["estimated_monthly_savings"])) for a in advisories)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """One block of 50 clusters: every pattern once, fast."""
    async with Emulator(EmulatorConfig(today=TODAY, clusters=50)) as e:
        yield e


@pytest.fixture
async def hook() -> AsyncIterator[tuple[str, list[dict[str, Any]], list[int]]]:
    """A receiver on 127.0.0.1 answering each POST with the next planned status (200 once the plan is empty)."""
    got: list[dict[str, Any]] = []
    plan: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(status=plan.pop(0) if plan else 200, text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/hook", got, plan
    finally:
        await runner.cleanup()


async def test_advice_equals_the_truth_and_a_rerun_fetches_nothing_and_sends_nothing(emu: Emulator,
                                                                                      tmp_path: Path) -> None:
    """First run: the truth's advisories, all new, first seen now. Second: no request, no event, first_seen kept."""
    db = tmp_path / "s.duckdb"
    first = await run_advise(spec_for(db, emu.url, now=lambda: T0, fail_on_new=True))
    assert keys(first.advice.to_json()["advisories"]) == keys(emu.advisories(MONTH)["advisories"])
    assert first.exit_code == EXIT_NEW and len(first.new) == len(first.advice.advisories) > 0
    assert {a["first_seen"] for a in first.advice.to_json()["advisories"]} == {"2026-11-28T06:00:00Z"}
    sent = emu.stats()["requests"]
    second = await run_advise(spec_for(db, emu.url, now=lambda: T0 + dt.timedelta(hours=1), fail_on_new=True))
    assert emu.stats()["requests"] == sent
    assert (second.exit_code, second.changes.events) == (0, [])
    assert second.advice.to_json() == first.advice.to_json()
    with Store(db, read_only=True) as store:
        rows = store.advisory_states(spec_for(db, emu.url).scope)
        assert len(rows) == len(first.advice.advisories) and {r.first_seen for r in rows} == {T0}
        assert advice_from_store(spec_for(db, emu.url), store) == second.advice


async def test_a_change_resolves_and_reopens_with_higher_versions(emu: Emulator, tmp_path: Path) -> None:
    """--non-prod qa resolves the Multi-AZ advisories (one event each); back to the default reopens them."""
    db = tmp_path / "s.duckdb"
    first = await run_advise(spec_for(db, emu.url, now=lambda: T0))
    multi_az = {advisory_id(first.advice.scope, a) for a in first.advice.advisories if a.kind == "multi-az-non-prod"}
    assert multi_az
    narrowed = await run_advise(spec_for(db, emu.url, non_prod=("qa",), now=lambda: T0 + dt.timedelta(days=1)))
    assert {e.key for e in narrowed.resolved} == multi_az and narrowed.new == []
    again = await run_advise(spec_for(db, emu.url, now=lambda: T0 + dt.timedelta(days=2), fail_on_new=True))
    assert {e.key for e in again.new} == multi_az and again.exit_code == EXIT_NEW
    versions = {e.key: e.version for e in narrowed.resolved}
    assert all(e.version > versions[e.key] for e in again.new)


async def test_state_is_recorded_only_after_the_webhook_accepted(emu: Emulator, tmp_path: Path,
                                                                 hook: tuple[str, list[dict[str, Any]], list[int]]) -> None:
    """A 400 from the webhook: exit 1, nothing recorded; the next run sends every event again and records them."""
    url, got, plan = hook
    db = tmp_path / "s.duckdb"
    plan.append(400)
    failed = await run_advise(spec_for(db, emu.url, webhook=url))
    assert failed.exit_code == 1 and "HTTP 400" in (failed.notify_error or "")
    with Store(db, read_only=True) as store:
        assert store.advisory_states(failed.advice.scope) == []
    ok = await run_advise(spec_for(db, emu.url, webhook=url))
    assert ok.exit_code == 0 and ok.notified == len(ok.new) == len(failed.new)
    assert len(got) == 2 and len(got[1]["events"]) == len(ok.advice.advisories)
    with Store(db, read_only=True) as store:
        assert len(store.advisory_states(ok.advice.scope)) == len(ok.advice.advisories)


async def test_fail_on_new_wins_over_a_failed_delivery(emu: Emulator, tmp_path: Path,
                                                       hook: tuple[str, list[dict[str, Any]], list[int]]) -> None:
    """A new advisory with --fail-on-new exits 6 even when the delivery failed (as quota's --fail-on does)."""
    url, _, plan = hook
    plan.append(403)
    result = await run_advise(spec_for(tmp_path / "s.duckdb", emu.url, webhook=url, fail_on_new=True))
    assert result.exit_code == EXIT_NEW and result.notify_error


@pytest.mark.parametrize(("change", "fragment"), [
    ({"sinks": ["jsonl:/tmp/advice.jsonl"]}, "cannot carry advisory events"),
    ({"sinks": ["kafka://127.0.0.1:9/t?colour=red"]}, "colour"),
    ({"webhook": "ftp://example.com/hook"}, "--webhook"),
    ({"env_tag": "db-cluster"}, "--env-tag"),
    ({"non_prod": ("dev", "")}, "--non-prod"),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path, change: dict[str, Any],
                                                         fragment: str) -> None:
    """A sink that cannot carry events, a bad URL, the env tag equal to the cluster tag, an empty value: a
    UsageError naming the option, and no store file."""
    spec = spec_for(tmp_path / "s.duckdb", "http://127.0.0.1:9", **change)
    with pytest.raises(UsageError, match=fragment):
        check_advise_spec(spec)
    assert not (tmp_path / "s.duckdb").exists()


def test_non_prod_and_min_savings_are_parsed_strictly() -> None:
    """Comma-separated tag values (spaces around items dropped), no empty or repeated item; an exact USD floor."""
    assert parse_non_prod("dev, test ,staging,qa") == ("dev", "test", "staging", "qa")
    assert parse_non_prod("pre prod") == ("pre prod",)
    for bad in ("", ",", "dev,,qa", "dev,DEV", "dev;qa", "dev\tqa"):
        with pytest.raises(UsageError, match="--non-prod"):
            parse_non_prod(bad)
    assert parse_min_savings("12.50") == Decimal("12.50")
    for bad in ("-1", "abc", "nan", "inf"):
        with pytest.raises(UsageError, match="--min-savings-usd"):
            parse_min_savings(bad)
