"""The pipeline in process against the emulator: a run stopped mid-unit, rerun and resumed still leaves the
store equal to the ground truth."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from dbcost.config import RateSettings, Settings, StoreSettings, TargetConfig
from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.models import CostQuery
from dbcost.pipeline import RunSpec, run_pipeline
from dbcost.retry import RetryPolicy
from dbcost.store import Store
from tests.conftest import CREDS, TODAY


def total(db: Path) -> tuple[Decimal, int]:
    """The stored records' summed amount and their count."""
    with Store(db, read_only=True) as s:
        return s.record_totals()


async def test_resume_after_a_rerun_of_the_same_unit_keeps_every_page(tmp_path: Path) -> None:
    """A run stopped mid-unit, then a fresh rerun, then --resume: the store still equals the truth."""
    db = tmp_path / "s.duckdb"
    async with Emulator(EmulatorConfig(today=TODAY, page_size=50)) as emu:
        q = CostQuery.build(start="2026-09-01", end="2026-10-01", group_by=["SERVICE", "TAG:db-cluster"])
        truth = Decimal(emu.truth(q.to_request())["metrics"]["UnblendedCost"])
        target = TargetConfig(name="t", endpoint_url=emu.url)

        def spec(**kw: Any) -> RunSpec:
            settings = Settings(targets=(target,), store=StoreSettings(path=db), credentials=CREDS,
                                retry=RetryPolicy.no_wait(), rate=RateSettings(max_rps=500))
            return RunSpec(query=q, settings=settings, today=TODAY, window="month", **kw)

        assert (await run_pipeline(spec(max_requests=3))).status == "stopped"
        assert (await run_pipeline(spec())).status == "done"
        assert total(db)[0] == truth
        await run_pipeline(spec(resume=True))
        assert total(db)[0] == truth


async def test_resume_on_every_attempt_runs_only_what_no_earlier_run_completed(tmp_path: Path) -> None:
    """--resume with no unfinished run: the first attempt runs every unit, after a done run there is nothing to
    resume and nothing is fetched again, and a run with a sink the earlier runs lacked runs every unit (that
    sink never got them)."""
    db = tmp_path / "s.duckdb"
    async with Emulator(EmulatorConfig(today=TODAY, page_size=200)) as emu:
        q = CostQuery.build(start="2026-08-01", end="2026-10-01", group_by=["SERVICE", "TAG:db-cluster"])
        truth = Decimal(emu.truth(q.to_request())["metrics"]["UnblendedCost"])
        target = TargetConfig(name="t", endpoint_url=emu.url)

        def spec(**kw: Any) -> RunSpec:
            settings = Settings(targets=(target,), store=StoreSettings(path=db), credentials=CREDS,
                                retry=RetryPolicy.no_wait(), rate=RateSettings(max_rps=500),
                                sinks=kw.pop("sinks", ()))
            return RunSpec(query=q, settings=settings, today=TODAY, window="month", **kw)

        first = await run_pipeline(spec(resume=True))  # the first attempt: nothing to resume, all units
        assert (first.status, first.units_done, first.resumed) == ("done", 2, False)
        requests = emu.stats()["requests"]
        again = await run_pipeline(spec(resume=True))
        assert again.nothing_to_resume and (again.status, again.units_done) == ("done", 0)
        assert emu.stats()["requests"] == requests and total(db)[0] == truth
        with_sink = await run_pipeline(spec(resume=True, sinks=(f"parquet:{tmp_path / 'pq'}",)))
        assert (with_sink.units_done, with_sink.units_skipped) == (2, 0)
        assert len(list((tmp_path / "pq").iterdir())) == 2
