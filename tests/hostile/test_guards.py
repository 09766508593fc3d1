"""The guards themselves, over MockTransport and values: the idle-page and chain guards, the grouping check, the
request deadline, the retry budget as a wall-clock deadline, the default limits of the Settings tree."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from dbcost.client import CostExplorer
from dbcost.clock import FakeClock
from dbcost.config import (
    DEFAULT_IDLE_PAGES,
    DEFAULT_MAX_CHAIN_PAGES,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_REQUEST_TIMEOUT_S,
    FetchSettings,
    LimitSettings,
    Settings,
    StoreSettings,
    load_settings,
)
from dbcost.errors import (
    BudgetExhaustedError,
    ConfigError,
    MalformedResponseError,
    RetryExhaustedError,
    TransportError,
)
from dbcost.governor import Governor, GovernorSettings
from dbcost.models import CostQuery
from dbcost.pipeline import RunSpec
from dbcost.retry import RetryPolicy, retry
from dbcost.transport.mock import MockTransport

QUERY = CostQuery.build(start="2026-09-01", end="2026-09-02", group_by=["SERVICE", "TAG:team"])
DEFS = [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "team"}]


def a_page(teams: list[str], token: str | None, defs: list[dict[str, str]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "GroupDefinitions": DEFS if defs is None else defs,
        "ResultsByTime": [{"TimePeriod": {"Start": "2026-09-01", "End": "2026-09-02"}, "Total": {}, "Estimated": False,
                           "Groups": [{"Keys": ["Amazon RDS", f"team${t}"],
                                       "Metrics": {"UnblendedCost": {"Amount": "1", "Unit": "USD"}}} for t in teams]}],
    }
    if token is not None:
        out["NextPageToken"] = token
    return out


def client(handler: Any, **kw: Any) -> tuple[CostExplorer, MockTransport]:
    clock = FakeClock()
    transport = MockTransport(handler)
    ce = CostExplorer(transport, clock=clock, retry_policy=kw.pop("retry_policy", RetryPolicy.no_wait()),
                      governor=Governor(GovernorSettings(max_rps=1000, burst=1000), clock=clock), **kw)
    return ce, transport


async def drain(ce: CostExplorer, **kw: Any) -> list[Any]:
    return [p async for p in ce.pages(QUERY, **kw)]


@pytest.mark.parametrize("columnar", [False, True])
async def test_pages_that_bring_nothing_new_are_refused_after_the_idle_limit(columnar: bool) -> None:
    """The same groups with a fresh token each time: refused at page 1 + idle_pages, and the refused page is
    billed but not counted as received; a backfill's columnar pages are compared as surely."""
    counter = iter(range(10**6))
    ce, transport = client(lambda op, p: a_page(["a"], f"t{next(counter)}"))
    with pytest.raises(MalformedResponseError, match="3 pages in a row brought no new groups"):
        await drain(ce, dedup=not columnar, columnar=columnar)
    assert len(transport.calls) == 1 + DEFAULT_IDLE_PAGES
    # a backfill's chain does not deduplicate (the store does, on commit): each page's group counts there
    assert ce.stats.billed_requests == 4 and ce.stats.pages == 3 and ce.stats.records == (3 if columnar else 1)


async def test_empty_pages_with_fresh_tokens_are_refused_too_but_a_few_are_tolerated() -> None:
    """Two empty pages with tokens then real data: accepted; empty pages for ever: refused."""
    pages = [a_page([], "t1"), a_page([], "t2"), a_page(["a"], None)]
    ce, _ = client(lambda op, p: pages[0 if "NextPageToken" not in p else int(p["NextPageToken"][1:])])
    assert sum(len(p.records) for p in await drain(ce)) == 1
    counter = iter(range(10**6))
    ce, _ = client(lambda op, p: a_page([], f"t{next(counter)}"))
    with pytest.raises(MalformedResponseError, match="no new groups"):
        await drain(ce)


async def test_a_chain_stops_at_its_page_limit_as_a_budget_stop() -> None:
    """New groups on every page, for ever: stopped before page max_chain_pages + 1 is sent."""
    counter = iter(range(10**6))

    def handler(op: str, p: dict[str, Any]) -> dict[str, Any]:
        n = next(counter)
        return a_page([f"team{n}"], f"t{n}")

    ce, transport = client(handler, max_chain_pages=25)
    with pytest.raises(BudgetExhaustedError, match="page chain limit reached: 25 pages"):
        await drain(ce)
    assert len(transport.calls) == 25 and ce.stats.pages == 25


async def test_a_page_grouped_otherwise_than_the_query_is_refused_naming_both() -> None:
    """GroupDefinitions USAGE_TYPE x TAG:team for a SERVICE x TAG:team query: one line naming both."""
    wrong = [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}, {"Type": "TAG", "Key": "team"}]
    ce, _ = client(lambda op, p: a_page(["a"], None, wrong))
    with pytest.raises(MalformedResponseError) as info:
        await drain(ce)
    assert "USAGE_TYPE x TAG:team" in str(info.value) and "SERVICE x TAG:team" in str(info.value)
    assert ce.stats.records == 0 and ce.stats.pages == 0


async def test_the_request_deadline_covers_the_whole_request() -> None:
    """A transport that never answers: a TransportError after request_timeout_s, retried, then the budget."""

    async def never(op: str, p: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError

    ce, transport = client(never, request_timeout_s=0.05, retry_policy=RetryPolicy(max_attempts=3, base_s=0, cap_s=0))
    started = time.monotonic()
    with pytest.raises(RetryExhaustedError) as info:
        await drain(ce)
    assert time.monotonic() - started < 2
    assert len(transport.calls) == 3
    assert isinstance(info.value.__cause__, TransportError) and "timed out after 0.05s" in str(info.value)


async def test_the_retry_budget_ends_an_attempt_in_flight_only_with_deadline() -> None:
    """budget_s as a wall-clock deadline: an attempt longer than the budget is abandoned at the budget; without
    deadline=True (the sinks) the attempt is waited for."""

    async def slow() -> str:
        await asyncio.sleep(0.3)
        return "late"

    policy = RetryPolicy(budget_s=0.05)
    started = time.monotonic()
    with pytest.raises(RetryExhaustedError, match=r"time budget of 0\.05s spent waiting for the first answer"):
        await retry(slow, policy, deadline=True, what="x")
    assert time.monotonic() - started < 0.25
    assert await retry(slow, policy, what="x") == "late"


def test_the_defaults_are_limits_not_unlimited() -> None:
    """A library caller and the CLI get the same finite defaults; None (the CLI's 0) lifts a limit."""
    limits = Settings().limits
    assert limits == LimitSettings()
    assert (limits.max_requests, limits.max_chain_pages, limits.request_timeout_s) == (
        DEFAULT_MAX_REQUESTS, DEFAULT_MAX_CHAIN_PAGES, DEFAULT_REQUEST_TIMEOUT_S)
    assert Settings().retry.budget_s == 300.0
    fs = FetchSettings()
    assert (fs.max_requests, fs.max_chain_pages, fs.request_timeout_s) == (5000, 500, 60.0)
    assert RunSpec(query=QUERY).request_cap() == 5000
    assert RunSpec(query=QUERY, max_cost_usd=None, max_requests=12).request_cap() == 12
    lifted = load_settings(max_requests=None, max_chain_pages=None)
    assert RunSpec(query=QUERY, settings=lifted).request_cap() is None
    assert lifted.fetch_settings().max_chain_pages is None


@pytest.mark.parametrize("bad", [{"request_timeout_s": 0}, {"max_requests": 0}, {"max_chain_pages": -1},
                                 {"idle_pages": 0}])
def test_limits_refuse_values_that_cannot_work(bad: dict[str, Any]) -> None:
    """A zero timeout or a zero cap in the settings is a ConfigError (the CLI's 0 means None)."""
    with pytest.raises(ConfigError):
        LimitSettings(**bad)


def test_load_settings_refuses_a_bad_endpoint_region_budget_or_memory_limit() -> None:
    """What botocore or DuckDB would fail on later is one ConfigError line now."""
    for kw, needle in (({"endpoint_url": "notaurl"}, "--endpoint-url"), ({"region": "bad region!"}, "--region"),
                       ({"retry_budget_s": 0}, "--retry-budget-s"),
                       ({"environ": {"DBCOST_DUCKDB_MEMORY_LIMIT": "1MB"}}, "at least 16MB")):
        with pytest.raises(ConfigError, match=needle):
            load_settings(**kw)
    with pytest.raises(ConfigError, match="at least 16MB"):
        StoreSettings(memory_limit="512KiB")
