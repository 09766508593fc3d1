"""The backfill job's planning: where a sync starts when the targets' coverage differs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dbcost.config import Settings, StoreSettings, TargetConfig
from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.errors import UsageError
from dbcost.jobs.backfill import sync_start
from dbcost.models import CostQuery
from dbcost.pipeline import RunSpec, run_pipeline
from dbcost.retry import RetryPolicy
from dbcost.store import Store
from tests.conftest import CREDS, TODAY


def test_sync_of_with_resources_keeps_the_fourteen_day_window(tmp_path: Path) -> None:
    """A WithResources dataset syncs its last 14 days: never earlier (even with --start), and a first sync
    needs no --start."""
    flt = {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon DynamoDB"]}}
    q = CostQuery.build(start="2026-11-20", end="2026-11-27", filter=flt, operation="GetCostAndUsageWithResources")
    with Store(tmp_path / "s.duckdb") as s:
        assert sync_start(s, q, ["a"], TODAY) == dt.date(2026, 11, 14)
        assert sync_start(s, q, ["a"], TODAY, dt.date(2026, 9, 1)) == dt.date(2026, 11, 14)
        assert sync_start(s, q, ["a"], TODAY, dt.date(2026, 11, 20)) == dt.date(2026, 11, 14)  # restated: re-read


async def test_sync_starts_at_the_coverage_of_the_target_that_has_least(tmp_path: Path) -> None:
    """A target that failed its backfill is not skipped by the next sync (coverage per target, holes end it)."""
    db = tmp_path / "s.duckdb"
    async with Emulator(EmulatorConfig(today=TODAY)) as emu:
        good = TargetConfig(name="b", endpoint_url=emu.url)
        bad = TargetConfig(name="a", endpoint_url="http://127.0.0.1:9")
        q = CostQuery.build(start="2026-09-01", end="2026-10-01", group_by=["SERVICE"])
        settings = Settings(targets=(bad, good), store=StoreSettings(path=db), credentials=CREDS,
                            retry=RetryPolicy.no_wait(max_attempts=2))
        outcome = await run_pipeline(RunSpec(query=q, settings=settings, today=TODAY, window="month"))
        assert outcome.incomplete_targets == ["a"]
    with Store(db, read_only=True) as s:
        with pytest.raises(UsageError, match="target\\(s\\) a"):
            sync_start(s, q, ["a", "b"], TODAY)
        assert sync_start(s, q, ["a", "b"], TODAY, dt.date(2026, 9, 1)) == dt.date(2026, 9, 1)
        assert sync_start(s, q, ["b"], TODAY) == dt.date(2026, 10, 1)
