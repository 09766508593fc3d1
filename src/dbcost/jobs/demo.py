"""``dbcost demo``: the whole job on this machine, with no AWS account and no cost.

Starts the built-in Cost Explorer emulator in-process on a free loopback port (a synthetic fleet of
hundreds of database clusters, with some throttling, 5xx answers and malformed groups switched on so
the safety nets are exercised), backfills the last months into a DuckDB file through the real AWS
client path (aioboto3, SigV4, paging), attributes the last months per team, cluster and category,
computes the month's right-sizing advisories (``dbcost advise``), checks the quotas of an example policy and
writes the HTML report — checking the money and every advisory against the emulator's ground truth on the
way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from dbcost.advice import AdviceSet
from dbcost.attribution.model import Attribution
from dbcost.calendar import add_months
from dbcost.calendar import month_start as first_day_of
from dbcost.client import Stats
from dbcost.config import DEFAULT_TARGET, RateSettings, Settings, StoreSettings, TargetConfig
from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.errors import ConfigError
from dbcost.jobs.advise import AdviseSpec, run_advise
from dbcost.jobs.attribute import AttributeSpec, attribution_datasets, month_range, run_attribute_months
from dbcost.jobs.quota import attribution_for
from dbcost.jobs.report import gather_report, write_report
from dbcost.models import CostQuery
from dbcost.pipeline import RunOutcome, RunSpec, run_pipeline
from dbcost.quota import QuotaReport, evaluate, example_policy_text, load_policy
from dbcost.retry import RetryPolicy
from dbcost.store import Store

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
    attribution: Attribution | None = None
    attribution_exact: bool = False
    quota: QuotaReport | None = None
    report_path: Path | None = None
    policy_path: Path | None = None
    requests: Stats = field(default_factory=Stats)
    advice: AdviceSet | None = None
    advice_exact: bool = False
    #: the backfill's window: the first day of the first of ``months`` months, up to today (exclusive)
    start: dt.date | None = None
    end: dt.date | None = None
    months: int = 0
    #: groups the report counts as quarantined (``month``'s attribution datasets, not the backfill's), and
    #: the malformed groups the emulator served to those queries for that month
    report_quarantined: int = 0
    report_malformed: int = 0

    @property
    def exact(self) -> bool:
        return (self.truth_total == self.stored_total and self.malformed == self.outcome.quarantined
                and self.attribution_exact and self.advice_exact and self.report_quarantined == self.report_malformed)


def _advice_key(a: dict[str, Any]) -> tuple[str, str, str, str, str, str, Decimal, Decimal]:
    return (str(a["kind"]), str(a["cluster"]), str(a["team"]), str(a["service"]), str(a["account"]),
            str(a["region"]), Decimal(str(a["monthly_cost"])), Decimal(str(a["estimated_monthly_savings"])))


def _same_advice(advice: AdviceSet, truth: dict[str, Any]) -> bool:
    """Every advisory the truth lists, found with the same amounts, and no other (compared as Decimals)."""
    ours = sorted(_advice_key(a.to_json(None)) for a in advice.advisories)
    return ours == sorted(_advice_key(a) for a in truth["advisories"])


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
    # the month the quota check and report are about: this one, unless it has no complete day yet
    month_start = first_day_of(today) if today.day > 1 else add_months(today, -1)
    month = month_start.strftime("%Y-%m")
    # the backfill covers the same `months` months the attribution and the report's trend do (from the 1st)
    start = add_months(month_start, -(months - 1))
    cfg = EmulatorConfig(today=today, seed=seed, max_rps=100.0, burst=20, fault_rate=0.01, drop_rate=0.005,
                         malformed_rate=0.001, page_size=500)
    total = Stats()
    async with Emulator(cfg) as emu:
        # the demo's client: fast retries and a rate just under the emulator's limit, so throttling is rare
        # but exercised; explicit credentials (the emulator checks SigV4, not who signed)
        settings = Settings(
            # the CLI's default target name, so the "next:" commands (report, quota check) read these rows
            targets=(TargetConfig(name=DEFAULT_TARGET.name, endpoint_url=emu.url),),
            rate=RateSettings(max_rps=80.0, max_concurrency=16),
            retry=RetryPolicy(base_s=0.1, cap_s=2.0),
            store=StoreSettings(path=db),
            credentials=DEMO_CREDENTIALS,
        )
        say(f"emulator: {emu.url} ({len(emu.fleet.clusters)} database clusters, "
            f"{len(emu.fleet.accounts)} linked accounts, throttling above {cfg.max_rps:g} requests/s, "
            "with 5xx, dropped connections and malformed groups)")
        query = CostQuery.build(start=start.isoformat(), end=today.isoformat(), granularity="DAILY",
                                metrics=["UnblendedCost"], group_by=["SERVICE", "TAG:db-cluster"])
        spec = RunSpec(query=query, settings=settings, command="backfill", today=today,
                       label="demo: daily spend by service and cluster")
        say(f"backfill: {start} .. {today} DAILY, grouped by SERVICE and TAG:db-cluster")
        outcome = await run_pipeline(spec)
        total.add(outcome.stats)
        truth = emu.truth(query.to_request())

        # every month in one attribute run (as `dbcost attribute --months N`), so the report's trend has them all
        span = [add_months(month_start, -back).strftime("%Y-%m") for back in range(months - 1, -1, -1)]
        say(f"attribute: {span[0]} to {span[-1]} per team, cluster and category, in one run (database services "
            "discovered from the API)")
        ranged = await run_attribute_months(AttributeSpec(month=month, settings=settings, today=today), span)
        if ranged.fetched is not None:
            total.add(ranged.fetched.stats)
        attribution: Attribution | None = ranged.attributions[-1] if ranged.attributions else None
        # every dollar of each month's database spend is attributed once: the attribution's total equals the
        # ground truth of the per-service datasets it was built from (malformed groups excluded)
        attribution_exact = bool(ranged.results)
        for result in ranged.results:
            expected = sum((Decimal(emu.truth(q.to_request())["metrics"]["UnblendedCost"])
                            for q in result.datasets.usage.values()), Decimal(0))
            attribution_exact = attribution_exact and expected == result.attribution.total
        say(f"advise: {month} right-sizing advisories (the rules of dbcost/advice/rules.toml; env tag and accounts "
            "fetched beside the attribution)")
        advised = await run_advise(AdviseSpec(attribute=AttributeSpec(month=month, settings=settings, today=today)))
        for fetched in advised.fetched:
            total.add(fetched.stats)
        advice = advised.advice if advised.failed is None else None
        advice_exact = advice is not None and _same_advice(advice, emu.advisories(month))
        assert attribution is not None
        # the report's quarantine count is of the month's attribution datasets (another query, one month),
        # not of the backfill: the groups the emulator served malformed to those queries, for that month
        first, end = month_range(month, today)
        report_malformed = sum(int(emu.truth(q.to_request())["malformed_groups"]) for q in attribution_datasets(
            attribution.services, first, end, metric="UnblendedCost", cluster_tag="db-cluster", team_tag="team",
            with_accounts=False).all())
    policy_path = directory / "policy.toml"
    await asyncio.to_thread(policy_path.write_text, example_policy_text(), "utf-8")
    aspec = AttributeSpec(month=month, settings=settings, today=today)
    quota = evaluate(load_policy(policy_path), attribution_for(aspec), today=today)
    say(f"quota check: {policy_path} against {month}: worst status {quota.worst}")
    report_path = directory / "report.html"
    data = await asyncio.to_thread(gather_report, aspec, quota=quota)
    await asyncio.to_thread(write_report, data, "html", report_path)
    say(f"report: {report_path}")
    with Store(db, read_only=True) as store:
        stored, _ = store.record_totals(query.fingerprint)
        top = store.top_keys(query.fingerprint, month_start.isoformat(), add_months(month_start, 1).isoformat(), 5)
    return DemoResult(
        directory=directory, db=db, emulator_url=emu.url, outcome=outcome,
        truth_total=Decimal(truth["metrics"]["UnblendedCost"]), stored_total=stored,
        malformed=int(truth["malformed_groups"]), top_services=[(str(k), Decimal(v)) for k, v in top],
        month=month, attribution=attribution, attribution_exact=attribution_exact, quota=quota,
        report_path=report_path, policy_path=policy_path, requests=total, advice=advice, advice_exact=advice_exact,
        start=start, end=today, months=months, report_quarantined=data.quarantined_total,
        report_malformed=report_malformed,
    )
