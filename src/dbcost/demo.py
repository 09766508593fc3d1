"""``dbcost demo``: the whole job on this machine, with no AWS account and no cost.

Starts the built-in Cost Explorer emulator in-process on a free loopback port (a synthetic fleet of
hundreds of database clusters, with some throttling, 5xx answers and malformed groups switched on so
the safety nets are exercised), backfills the last months into a DuckDB file through the real AWS
client path (aioboto3, SigV4, paging), and checks the result against the emulator's ground truth.
Later stages (attribution, quota check, HTML report) run on the same store.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.errors import ConfigError
from dbcost.models import CostQuery
from dbcost.pipeline import RunOutcome, RunSpec, run_pipeline
from dbcost.plan import add_months
from dbcost.retry import RetryPolicy
from dbcost.store import Store
from dbcost.targets import TargetConfig

__all__ = ["DemoResult", "run_demo"]

DEMO_CREDENTIALS = ("dbcost-demo", "dbcost-demo-secret")


@dataclass
class DemoResult:
    directory: Path
    db: Path
    emulator_url: str
    outcome: RunOutcome
    truth_total: Decimal
    stored_total: Decimal
    malformed: int
    top_services: list[tuple[str, Decimal]] = field(default_factory=list)
    month: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return self.truth_total == self.stored_total and self.malformed == self.outcome.quarantined


def _fresh_directory(directory: Path, db: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--dir {directory}: cannot create: {exc.strerror}") from None
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)


async def run_demo(
    directory: Path,
    *,
    months: int = 3,
    today: dt.date | None = None,
    seed: int = 7,
    say: Callable[[str], None] = lambda _m: None,
) -> DemoResult:
    """Run the demo into ``directory`` (created if missing); the store is rebuilt from scratch."""
    today = today or dt.datetime.now(dt.UTC).date()
    db = directory / "dbcost.duckdb"
    await asyncio.to_thread(_fresh_directory, directory, db)
    start = add_months(today, -(months - 1))
    cfg = EmulatorConfig(today=today, seed=seed, max_rps=40.0, burst=10, fault_rate=0.01, drop_rate=0.005,
                         malformed_rate=0.001, page_size=500)
    async with Emulator(cfg) as emu:
        say(f"emulator: {emu.url} ({len(emu.fleet.clusters)} database clusters, "
            f"{len(emu.fleet.accounts)} linked accounts, throttling above {cfg.max_rps:g} requests/s)")
        query = CostQuery.build(start=start.isoformat(), end=today.isoformat(), granularity="DAILY",
                                metrics=["UnblendedCost"], group_by=["SERVICE", "TAG:db-cluster"])
        spec = RunSpec(
            query=query, targets=[TargetConfig(name="demo", endpoint_url=emu.url)], db=db, command="backfill",
            today=today, max_rps=30.0, max_concurrency=8, credentials=DEMO_CREDENTIALS,
            retry=RetryPolicy(base_s=0.1, cap_s=2.0), label="demo: daily spend by service and cluster",
        )
        say(f"backfill: {start} .. {today} DAILY, grouped by SERVICE and TAG:db-cluster")
        outcome = await run_pipeline(spec)
        truth = emu.truth(query.to_request())
    with Store(db, read_only=True) as store:
        stored = store.query("SELECT coalesce(sum(amount), 0) FROM records WHERE dataset = ?", [query.fingerprint])
        month = add_months(today, -1)
        top = store.query(
            "SELECT key1, sum(amount) FROM records WHERE dataset = ? AND period_start >= ? AND period_start < ? "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
            [query.fingerprint, month.isoformat(), today.replace(day=1).isoformat()],
        )
    return DemoResult(
        directory=directory, db=db, emulator_url=emu.url, outcome=outcome,
        truth_total=Decimal(truth["metrics"]["UnblendedCost"]), stored_total=Decimal(stored[0][0]),
        malformed=int(truth["malformed_groups"]), top_services=[(str(k), Decimal(v)) for k, v in top],
        month=month.strftime("%Y-%m"),
    )
