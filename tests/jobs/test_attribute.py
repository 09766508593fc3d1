"""The attribute job in process: it refuses a month beyond the DAILY window and counts only the targets
it was asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbcost.config import RateSettings, Settings, StoreSettings, TargetConfig
from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.errors import UsageError
from dbcost.jobs.attribute import AttributeSpec, run_attribute
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
