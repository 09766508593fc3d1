"""jobs/resources as a library call against the emulator: the run into the store, a sync of its datasets keeping
the 14-day window, and the store read attribute uses (only the days every dataset covers)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dbcost.config import Settings, StoreSettings, TargetConfig
from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.errors import UsageError
from dbcost.jobs.backfill import sync_spec
from dbcost.jobs.resources import ResourcesSpec, resources_from_store, run_resources
from dbcost.pipeline import RunSpec
from dbcost.retry import RetryPolicy
from dbcost.store import Store
from tests.conftest import CREDS, TODAY

SERVICES = ["Amazon DynamoDB", "Amazon ElastiCache"]


def spec(url: str, db: Path, **kw: object) -> ResourcesSpec:
    settings = Settings(targets=(TargetConfig(name="payer", endpoint_url=url),), store=StoreSettings(path=db),
                        credentials=CREDS, retry=RetryPolicy.no_wait(max_attempts=3))
    return ResourcesSpec(settings=settings, services=list(SERVICES), today=TODAY, **kw)  # type: ignore[arg-type]


async def test_a_run_is_stored_synced_and_read_back(tmp_path: Path) -> None:
    """The run stores every dataset; a sync of one of them re-reads exactly the last 14 days; the store read gives
    the same placement for the window and only the covered days of a wider one."""
    db = tmp_path / "s.duckdb"
    async with Emulator(EmulatorConfig(today=TODAY, clusters=40)) as emu:
        result = await run_resources(spec(emu.url, db, start=dt.date(2026, 11, 20)))
        assert result.fetched is not None and result.fetched.ok
        assert set(result.services) == set(SERVICES) and result.attribution.resources
        again = await run_resources(spec(emu.url, db, start=dt.date(2026, 11, 20)))
        assert again.fetched is None and again.attribution.to_json() == result.attribution.to_json()
        q = result.datasets.usage["Amazon DynamoDB"]
        synced = sync_spec(RunSpec(query=q, settings=spec(emu.url, db).settings, today=TODAY))
        assert synced is not None and (synced.query.start, synced.query.end) == (dt.date(2026, 11, 14), TODAY)
    with Store(db, read_only=True) as store:
        found = resources_from_store(store, metric="UnblendedCost", cluster_tag="db-cluster", team_tag="team",
                                     start=dt.date(2026, 11, 1), end=dt.date(2026, 12, 1), targets=["payer"])
        assert found is not None
        placed, stretches = found
        assert stretches == [(dt.date(2026, 11, 20), TODAY)]
        assert placed.total == result.attribution.total
        assert resources_from_store(store, metric="UnblendedCost", cluster_tag="db-cluster", team_tag="team",
                                    start=dt.date(2026, 10, 1), end=dt.date(2026, 11, 1), targets=["payer"]) is None
        assert resources_from_store(store, metric="BlendedCost", cluster_tag="db-cluster", team_tag="team",
                                    start=dt.date(2026, 11, 1), end=dt.date(2026, 12, 1), targets=["payer"]) is None


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"start": dt.date(2026, 11, 13)}, "serves the last 14 days only"),
        ({"end": dt.date(2026, 11, 29)}, "after today"),
        ({"start": dt.date(2026, 11, 20), "end": dt.date(2026, 11, 20)}, "must be after --start"),
        ({"services": ["Amazon Simple Storage Service"]}, "not a database service"),
        ({"metric": "Cost"}, "unknown metric"),
    ],
)
def test_the_spec_refuses_what_cost_explorer_would(tmp_path: Path, kw: dict[str, object], fragment: str) -> None:
    """Every refusal is a UsageError before anything is sent or created."""
    s = spec("http://127.0.0.1:9", tmp_path / "s.duckdb")
    for k, v in kw.items():
        setattr(s, k, v)
    with pytest.raises(UsageError, match=fragment):
        s.check()
    assert not (tmp_path / "s.duckdb").exists()
