"""The attribute job in process: it refuses a month beyond the DAILY window and counts only the targets
it was asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbcost.config import RateSettings, Settings, StoreSettings, TargetConfig
from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.errors import UsageError
from dbcost.jobs.attribute import (
    AttributeSpec,
    attributed_months,
    months_between,
    run_attribute,
    run_attribute_months,
)
from dbcost.store import Store
from tests.conftest import CREDS, TODAY


async def test_attribution_of_a_month_beyond_the_daily_window_is_refused(tmp_path: Path) -> None:
    """Attribution needs DAILY data: a month older than the 13-month window is a clear exit-2 error, not $0."""
    spec = AttributeSpec(month="2025-09", settings=Settings(store=StoreSettings(path=tmp_path / "s.duckdb")),
                         today=TODAY)
    with pytest.raises(UsageError, match="13 months"):
        await run_attribute(spec)


async def test_attribution_counts_only_the_targets_asked_for(tmp_path: Path) -> None:
    """Two payers in one store: attributing one of them does not add the other's spend."""
    db = tmp_path / "s.duckdb"
    async with Emulator(EmulatorConfig(today=TODAY)) as emu:
        a, b = TargetConfig(name="payer-a", endpoint_url=emu.url), TargetConfig(name="payer-b", endpoint_url=emu.url)

        def settings(t: TargetConfig) -> Settings:
            return Settings(targets=(t,), store=StoreSettings(path=db), credentials=CREDS,
                            rate=RateSettings(max_rps=100))

        first = await run_attribute(AttributeSpec(month="2026-10", settings=settings(a), today=TODAY))
        second = await run_attribute(AttributeSpec(month="2026-10", settings=settings(b), today=TODAY))
    assert first.attribution.total == second.attribution.total > 0


async def test_a_range_of_months_is_attributed_in_one_run_and_then_read_from_the_store(tmp_path: Path) -> None:
    """Three months in one pipeline run (one `attribute` run in the store) give each month the attribution a
    one-month run gives it; run again, nothing is fetched; the store lists the three as attributed."""
    db = tmp_path / "s.duckdb"
    async with Emulator(EmulatorConfig(today=TODAY, clusters=40, accounts=2)) as emu:
        settings = Settings(targets=(TargetConfig(name="payer", endpoint_url=emu.url),), store=StoreSettings(path=db),
                            credentials=CREDS, rate=RateSettings(max_rps=200))
        spec = AttributeSpec(month="2026-11", settings=settings, today=TODAY)
        months = months_between("2026-09", "2026-11")
        result = await run_attribute_months(spec, months)
        again = await run_attribute_months(spec, months)
        alone = await run_attribute(AttributeSpec(month="2026-10", settings=Settings(
            targets=settings.targets, store=StoreSettings(path=tmp_path / "alone.duckdb"), credentials=CREDS,
            rate=RateSettings(max_rps=200)), today=TODAY))
    assert result.fetched is not None and result.fetched.ok and again.fetched is None
    assert [a.month for a in result.attributions] == months
    assert [a.total for a in again.attributions] == [a.total for a in result.attributions]
    october = result.attributions[1]
    assert october.total == alone.attribution.total and october.unattributed == alone.attribution.unattributed
    assert {t.team: t.amount for t in october.teams} == {t.team: t.amount for t in alone.attribution.teams}
    with Store(db, read_only=True) as store:
        assert attributed_months(spec, store) == months
        assert [(r.command, r.run_id) for r in store.latest_runs()] == [("attribute", result.fetched.run_id)]
    # one run planned every month: each dataset's units start in each of the three months
    assert {u.start.strftime("%Y-%m") for u in result.fetched.plan.units} == set(months)


def test_months_between_counts_inclusively_and_refuses_bad_ranges() -> None:
    """A range is inclusive; an end before the start, a bad month or more than 24 months is a UsageError."""
    assert months_between("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    for args, fragment in ((("2026-02", "2025-11"), "before"), (("2026-2", "2026-03"), "YYYY-MM"),
                           (("2020-01", "2026-01"), "more than 24")):
        with pytest.raises(UsageError, match=fragment):
            months_between(*args)
