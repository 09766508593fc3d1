"""Regression tests for defects a code review found (each reproduces the failure it guards against)."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dbcost.attribution import AccountRow, UsageRow, build_attribution
from dbcost.client import RequestBudget, open_client
from dbcost.clock import FakeClock
from dbcost.config import FetchSettings, TargetConfig
from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.errors import (
    BudgetExhaustedError,
    ConfigError,
    DataChangedError,
    InvalidNextTokenError,
    MalformedResponseError,
    RetryExhaustedError,
    ServerError,
    SinkError,
    UsageError,
)
from dbcost.jobs.backfill import sync_start
from dbcost.jobs.fetch import _SinkFeeds
from dbcost.models import CostQuery, CostRecord, Metric
from dbcost.parse import parse_page
from dbcost.pipeline import RunSpec, run_pipeline
from dbcost.retry import RetryPolicy
from dbcost.sinks.base import parse_sink_url
from dbcost.store import Store
from dbcost.transport.mock import MockTransport

TODAY = dt.date(2026, 11, 28)
CREDS = ("k", "s")


def total(db: Path) -> tuple[Decimal, int]:
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
            return RunSpec(query=q, targets=[target], db=db, today=TODAY, window="month", credentials=CREDS,
                           retry=RetryPolicy.no_wait(), max_rps=500, **kw)

        assert (await run_pipeline(spec(max_requests=3))).status == "stopped"
        assert (await run_pipeline(spec())).status == "done"
        assert total(db)[0] == truth
        await run_pipeline(spec(resume=True))
        assert total(db)[0] == truth


async def test_sync_starts_at_the_coverage_of_the_target_that_has_least(tmp_path: Path) -> None:
    """A target that failed its backfill is not skipped by the next sync (coverage per target, holes end it)."""
    db = tmp_path / "s.duckdb"
    async with Emulator(EmulatorConfig(today=TODAY)) as emu:
        good = TargetConfig(name="b", endpoint_url=emu.url)
        bad = TargetConfig(name="a", endpoint_url="http://127.0.0.1:9")
        q = CostQuery.build(start="2026-09-01", end="2026-10-01", group_by=["SERVICE"])
        outcome = await run_pipeline(RunSpec(query=q, targets=[bad, good], db=db, today=TODAY, window="month",
                                             credentials=CREDS, retry=RetryPolicy.no_wait(max_attempts=2)))
        assert outcome.incomplete_targets == ["a"]
    with Store(db, read_only=True) as s:
        with pytest.raises(UsageError, match="target\\(s\\) a"):
            sync_start(s, q, ["a", "b"], TODAY)
        assert sync_start(s, q, ["a", "b"], TODAY, dt.date(2026, 9, 1)) == dt.date(2026, 9, 1)
        assert sync_start(s, q, ["b"], TODAY) == dt.date(2026, 10, 1)


async def test_records_outside_the_requested_window_are_quarantined_not_doubled() -> None:
    """A server answering with a period outside the request cannot escape replace-by-window."""
    q = CostQuery.build(start="2026-01-01", end="2026-01-03", group_by=["SERVICE"])

    def handler(op: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}], "ResultsByTime": [
            {"TimePeriod": {"Start": day, "End": end}, "Estimated": False,
             "Groups": [{"Keys": ["RDS"], "Metrics": {"UnblendedCost": {"Amount": "1", "Unit": "USD"}}}]}
            for day, end in (("2026-01-01", "2026-01-02"), ("2026-01-05", "2026-01-06"))]}

    async with open_client(FetchSettings(retry=RetryPolicy.no_wait()), transport=MockTransport(handler)) as ce:
        pages = [p async for p in ce.pages(q)]
    assert [r.period_start for r in pages[0].records] == ["2026-01-01"]
    assert "outside the requested" in pages[0].quarantined[0].reason


def test_impossible_dates_and_missing_results_are_not_accepted() -> None:
    """2026-13-45 is not a period; a page without ResultsByTime is malformed, not empty."""
    page = parse_page({"ResultsByTime": [{"TimePeriod": {"Start": "2026-13-45", "End": "2026-13-46"},
                                          "Total": {"UnblendedCost": {"Amount": "1", "Unit": "USD"}}}]})
    assert not page.records and "TimePeriod" in page.quarantined[0].reason
    with pytest.raises(MalformedResponseError, match="ResultsByTime"):
        parse_page({"message": "oops"})


@pytest.mark.parametrize(("amount", "ok"), [("1.5E-7", True), ("12.50000000000", True), ("0.0000001361", True),
                                            ("1234567890123456789.12345678901", False), ("\u0661\u0662.\u0665", False)])
def test_group_fast_and_slow_paths_agree(amount: str, ok: bool) -> None:
    """A valid amount the fast path does not recognise is parsed by the full check, never quarantined as
    'group is not valid'; a huge or non-ASCII amount is quarantined with its real reason, never a crash."""
    raw = {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}],
           "ResultsByTime": [{"TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"}, "Estimated": False,
                              "Groups": [{"Keys": ["RDS"], "Metrics": {"UnblendedCost": {"Amount": amount,
                                                                                         "Unit": "USD"}}}]}]}
    page = parse_page(raw)
    assert bool(page.records) is ok
    if not ok:
        assert page.quarantined[0].reason != "group is not valid"


async def test_fetch_sink_failure_while_the_queue_is_full_raises_instead_of_hanging() -> None:
    """A sink that dies mid-fetch surfaces its error; the fetch does not wait forever."""
    class BadSink:
        name = "bad"

        async def open(self) -> None:
            return None

        async def close(self) -> None:
            return None

        async def publish_status(self, event: dict[str, Any]) -> None:
            return None

        async def write_unit(self, unit: Any, batches: Any) -> int:
            async for _ in batches:
                await asyncio.sleep(0.05)
                raise SinkError("broker gone")
            return 0

    feeds = _SinkFeeds(CostQuery.build(start="2026-01-01", end="2026-01-02"), [], {})
    feeds.sinks = [BadSink()]
    await feeds.open()
    rec = [CostRecord("2026-01-01", "2026-01-02", "DAILY", {}, {"UnblendedCost": Metric(Decimal(1), "USD")}, False)]

    async def feed() -> None:
        for _ in range(20):
            await feeds.put(rec)
        await feeds.finish()

    with pytest.raises(SinkError, match="broker gone"):
        await asyncio.wait_for(feed(), 5)
    await feeds.close()


def test_allocation_with_credits_does_not_crash() -> None:
    """Negative net spend (credits) in an account's weights is clamped instead of failing the attribution."""
    d = dt.date(2026, 10, 1)
    rds = "Amazon Relational Database Service"
    owners = {"db-1": ("a", "tag"), "db-2": ("b", "tag")}
    rows = [UsageRow(d, rds, "InstanceUsage:db.r6g.large", "db-1", Decimal("-2")),
            UsageRow(d, rds, "InstanceUsage:db.r6g.large", "db-2", Decimal("10")),
            UsageRow(d, rds, "RDS:GP3-Storage", "", Decimal("-5"))]
    accts = [AccountRow(d, rds, "111", "db-1", Decimal("-2")), AccountRow(d, rds, "222", "db-2", Decimal("10"))]
    a = build_attribution("2026-10", "UnblendedCost", rows, owners, account_rows=accts, allocate_shared=True)
    assert a.total == Decimal(3)


async def test_restatement_during_a_streamed_fetch_fails_instead_of_mixing_versions() -> None:
    """If a page-chain restart finds a different value for a group already written, the fetch fails;
    a malformed group served again after the restart is reported once."""
    q = CostQuery.build(start="2026-01-01", end="2026-01-03", group_by=["SERVICE"])
    state = {"version": 1}

    def page(day: str, amount: str, token: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}], "ResultsByTime": [
            {"TimePeriod": {"Start": day, "End": day[:-1] + str(int(day[-1]) + 1)}, "Estimated": False,
             "Groups": [{"Keys": ["RDS"], "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}},
                        {"Keys": ["BAD"], "Metrics": {"UnblendedCost": {"Amount": "NaN", "Unit": "USD"}}}]}]}
        if token:
            out["NextPageToken"] = token
        return out

    def handler(op: str, params: dict[str, Any]) -> dict[str, Any]:
        v, tok = state["version"], params.get("NextPageToken")
        if tok is None:
            return page("2026-01-01", "10.00" if v == 1 else "12.00", f"t{v}")
        if tok != f"t{v}":
            raise InvalidNextTokenError("data updated", code="InvalidNextTokenException")
        return page("2026-01-02", "5.00", None)

    quarantined = 0

    async def drain(ce: Any) -> None:
        nonlocal quarantined
        async for p in ce.pages(q):
            quarantined += len(p.quarantined)
            state["version"] = 2  # Cost Explorer restates right after the first page

    async with open_client(FetchSettings(retry=RetryPolicy.no_wait()), transport=MockTransport(handler)) as ce:
        with pytest.raises(DataChangedError):
            await drain(ce)
    assert quarantined == 1


async def test_breaker_probe_slot_is_released_when_the_budget_refuses_or_the_call_is_cancelled() -> None:
    """A half-open probe that never reached the service (budget refused, task cancelled) does not leave the
    breaker stuck 'half-open' forever."""
    clock = FakeClock()

    def down(op: str, params: dict[str, Any]) -> dict[str, Any]:
        raise ServerError("boom", status=500)

    settings = FetchSettings(retry=RetryPolicy.no_wait(max_attempts=1), breaker_threshold=1, breaker_reset_s=1)
    async with open_client(settings, transport=MockTransport(down), clock=clock, budget=RequestBudget(1)) as ce:
        with pytest.raises(RetryExhaustedError):
            await ce.call("GetCostAndUsage", {})
        clock.advance(5)
        with pytest.raises(BudgetExhaustedError):
            await ce.call("GetCostAndUsage", {})
        ce.budget.max_requests = None
        with pytest.raises(RetryExhaustedError):  # a probe goes out (and fails): not CircuitOpenError
            await ce.call("GetCostAndUsage", {})

    release = asyncio.Event()

    async def slow(op: str, params: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {"ResultsByTime": []}

    transport = MockTransport(down)
    async with open_client(settings, transport=transport, clock=clock) as ce:
        with pytest.raises(RetryExhaustedError):
            await ce.call("X", {})
        clock.advance(5)
        transport._handler = slow
        probe = asyncio.create_task(ce.call("X", {}))
        await asyncio.sleep(0.01)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        release.set()
        assert await ce.call("X", {}) == {"ResultsByTime": []}  # a new probe went out: not CircuitOpenError
        assert ce.breaker.state.value == "closed"


def test_sink_url_errors_never_show_the_password() -> None:
    """A bad --sink URL with a password is reported without it."""
    with pytest.raises(ConfigError) as info:
        parse_sink_url("postgresql://dbuser:S3cretPW@db.example:5432")
    assert "S3cretPW" not in str(info.value) and "***" in str(info.value)


async def test_attribution_of_a_month_beyond_the_daily_window_is_refused(tmp_path: Path) -> None:
    """Attribution needs DAILY data: a month older than the 13-month window is a clear exit-2 error, not $0."""
    from dbcost.jobs.attribute import AttributeSpec, run_attribute

    spec = AttributeSpec(month="2025-09", db=tmp_path / "s.duckdb", targets=[TargetConfig(name="t")], today=TODAY)
    with pytest.raises(UsageError, match="13 months"):
        await run_attribute(spec)


async def test_attribution_counts_only_the_targets_asked_for(tmp_path: Path) -> None:
    """Two payers in one store: attributing one of them does not add the other's spend."""
    from dbcost.jobs.attribute import AttributeSpec, run_attribute

    db = tmp_path / "s.duckdb"
    async with Emulator(EmulatorConfig(today=TODAY)) as emu:
        a, b = TargetConfig(name="payer-a", endpoint_url=emu.url), TargetConfig(name="payer-b", endpoint_url=emu.url)
        first = await run_attribute(AttributeSpec(month="2026-10", db=db, targets=[a], today=TODAY, credentials=CREDS,
                                                  max_rps=100))
        second = await run_attribute(AttributeSpec(month="2026-10", db=db, targets=[b], today=TODAY, credentials=CREDS,
                                                   max_rps=100))
    assert first.attribution.total == second.attribution.total > 0


@pytest.mark.parametrize("reader", ["targets", "topology", "rules", "policy"])
def test_a_file_that_is_not_utf8_is_one_config_error_line(reader: str, tmp_path: Path) -> None:
    """Every file option goes through one reader: bytes that are not UTF-8 give a ConfigError naming the
    file (before, targets, topology and rules files raised a bare UnicodeDecodeError traceback)."""
    from dbcost.attribution.classify import load_rules
    from dbcost.attribution.pools import load_topology
    from dbcost.config import load_targets
    from dbcost.quota import load_policy

    path = tmp_path / ("bad.csv" if reader == "topology" else "bad.toml")
    path.write_bytes(b'name = "\xff\xfe"\n')
    load = {"targets": load_targets, "topology": load_topology, "rules": load_rules, "policy": load_policy}[reader]
    with pytest.raises(ConfigError, match=r"bad\.(csv|toml): not UTF-8 text$") as info:
        load(path)
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


async def test_fetch_filter_file_that_is_not_utf8_exits_2_with_one_line(tmp_path: Path) -> None:
    from tests.conftest import run_cli_async

    bad = tmp_path / "filter.json"
    bad.write_bytes(b'{"Dimensions": "\xff"}')
    for path, message in ((bad, "not UTF-8 text"), (tmp_path / "absent.json", "cannot read: No such file")):
        code, out, err = await run_cli_async("fetch", "--start", "2026-10-01", "--end", "2026-10-02", "--filter",
                                             f"@{path}", "--endpoint-url", "http://127.0.0.1:9")
        assert code == 2 and not out
        [line] = err.strip().splitlines()
        assert message in line and str(path) in line
