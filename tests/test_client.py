"""The client over MockTransport: paging, token rules, chain restart, retries through the governor,
budget and breaker — every path a user runs, with an injected transport and a fake clock."""

from __future__ import annotations

import asyncio
import copy
from decimal import Decimal
from typing import Any

import pytest

from dbcost.breaker import Breaker
from dbcost.client import CostExplorer, RequestBudget, Stats, open_client
from dbcost.clock import FakeClock
from dbcost.config import FetchSettings
from dbcost.errors import (
    BudgetExhaustedError,
    CircuitOpenError,
    DataChangedError,
    InvalidNextTokenError,
    MalformedResponseError,
    RequestChangedError,
    RetryExhaustedError,
    ServerError,
    ThrottledError,
    TransportError,
)
from dbcost.governor import Governor, GovernorSettings
from dbcost.models import CostQuery
from dbcost.retry import RetryPolicy
from dbcost.transport.mock import MockTransport

QUERY = CostQuery.build(start="2026-09-01", end="2026-09-03", group_by=["SERVICE", "TAG:db-cluster"])


def make_pages(n_groups: int, page_size: int) -> list[dict[str, Any]]:
    """A 2-day result cut every page_size groups, so pages end mid-period like Cost Explorer's."""
    flat = [(day, i) for day in ("2026-09-01", "2026-09-02") for i in range(n_groups)]
    pages: list[dict[str, Any]] = []
    for p in range(0, len(flat), page_size):
        chunk = flat[p : p + page_size]
        results: list[dict[str, Any]] = []
        for day, i in chunk:
            if not results or results[-1]["TimePeriod"]["Start"] != day:
                end = "2026-09-02" if day == "2026-09-01" else "2026-09-03"
                results.append({"TimePeriod": {"Start": day, "End": end}, "Total": {}, "Groups": [],
                                "Estimated": False})
            results[-1]["Groups"].append({
                "Keys": ["Amazon Relational Database Service", f"db-cluster$db-{i:04d}"],
                "Metrics": {"UnblendedCost": {"Amount": f"{i}.0000000001", "Unit": "USD"}},
            })
        pages.append({"GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"},
                                           {"Type": "TAG", "Key": "db-cluster"}],
                      "ResultsByTime": results})
    for k, pg in enumerate(pages[:-1]):
        pg["NextPageToken"] = f"tok-{k + 1}"
    return pages


def serve(pages: list[dict[str, Any]], faults: dict[int, list[Exception]] | None = None) -> MockTransport:
    """A handler that serves pages by token and raises the queued faults per page index first."""
    faults = {k: list(v) for k, v in (faults or {}).items()}

    def handler(op: str, params: dict[str, Any]) -> dict[str, Any]:
        token = params.pop("NextPageToken", None)
        idx = 0 if token is None else int(token.split("-")[1])
        if faults.get(idx):
            raise faults[idx].pop(0)
        return pages[idx]

    return MockTransport(handler)


def client(transport: MockTransport, **kw: Any) -> CostExplorer:
    clock = kw.pop("clock", FakeClock())
    return CostExplorer(transport, clock=clock, retry_policy=kw.pop("retry_policy", RetryPolicy.no_wait()),
                        governor=kw.pop("governor", Governor(GovernorSettings(max_rps=1000, burst=1000),
                                                             clock=clock)), **kw)


async def collect(ce: CostExplorer, query: CostQuery = QUERY, *, columnar: bool = False,
                  kinds: list[bool] | None = None) -> tuple[list[Any], list[Any], list[Any]]:
    """Every record, quarantine entry and page of ``query``; ``kinds`` gets, per page, whether it came as columns."""
    recs, quar, pages = [], [], []
    async for page in ce.pages(query, columnar=columnar):
        if kinds is not None:
            kinds.append(page.columns is not None)
        pages.append(page)
        recs.extend(page.records)
        quar.extend(page.quarantined)
    return recs, quar, pages


@pytest.mark.parametrize("columnar", [False, True])
async def test_follows_every_page_and_resends_the_identical_request(columnar: bool) -> None:
    """7,002 groups over 29 pages: every group arrives once, each request identical but for the token (pages
    of records, and pages of columns deduplicated as columns)."""
    pages = make_pages(3501, 250)
    transport = serve(pages)
    ce = client(transport)
    kinds: list[bool] = []
    recs, quar, got = await collect(ce, columnar=columnar, kinds=kinds)
    assert kinds == [columnar] * 29
    assert len(got) == len(pages) == 29 and len(recs) == 7002 and not quar
    assert sum(r.metrics["UnblendedCost"].amount for r in recs) == 2 * sum(
        Decimal(f"{i}.0000000001") for i in range(3501))
    first = transport.calls[0][1]
    for k, (op, params) in enumerate(transport.calls):
        assert op == "GetCostAndUsage"
        token = params.pop("NextPageToken", None)
        assert token == (None if k == 0 else f"tok-{k}")
        assert params == first
    assert ce.stats.pages == 29 and ce.stats.billed_requests == 29 and ce.stats.cost_usd == Decimal("0.29")


async def test_repeated_token_is_refused() -> None:
    """A server that hands out the same token twice cannot make the client loop (and spend) forever."""
    pages = make_pages(10, 4)
    pages[2]["NextPageToken"] = "tok-1"
    with pytest.raises(MalformedResponseError, match="repeats"):
        await collect(client(serve(pages)))


@pytest.mark.parametrize("columnar", [False, True])
@pytest.mark.parametrize("exc_type", [InvalidNextTokenError, RequestChangedError])
async def test_token_error_restarts_the_chain_once_without_duplicates(
    exc_type: type[InvalidNextTokenError | RequestChangedError], columnar: bool,
) -> None:
    """A token error mid-chain restarts from page 1; what was already yielded is not yielded again (a columnar
    first pass's signatures match the records its replays are compared as)."""
    pages = make_pages(10, 4)  # 20 groups, 5 pages
    transport = serve(pages, faults={3: [exc_type("expired", code=exc_type.__name__)]})
    ce = client(transport)
    recs, quar, got = await collect(ce, columnar=columnar)
    assert len(recs) == 20 and not quar
    assert len({r.identity for r in recs}) == 20
    assert ce.stats.restarts == 1 and ce.stats.replayed == 12
    assert [p.restarted for p in got] == [False, False, False, True, False, False, False, False]


async def test_second_token_error_in_one_query_fails() -> None:
    """The chain restarts once; a second token error is raised."""
    pages = make_pages(10, 4)
    transport = serve(pages, faults={2: [InvalidNextTokenError("x"), InvalidNextTokenError("x")]})
    with pytest.raises(InvalidNextTokenError):
        await collect(client(transport))


@pytest.mark.parametrize("columnar", [False, True])
@pytest.mark.parametrize("where", ["same page", "next page"])
async def test_duplicate_group_within_a_chain_is_quarantined(columnar: bool, where: str) -> None:
    """A server that repeats a group cannot double a cent: the repeat is quarantined, on the page that repeats
    it or on a later one, whether the pages hold records or columns."""
    pages = make_pages(4, 4)  # 2 pages, one day each
    repeat = pages[0]["ResultsByTime"][0]["Groups"][0]
    target = pages[0] if where == "same page" else pages[1]
    target["ResultsByTime"].insert(0, {"TimePeriod": {"Start": "2026-09-01", "End": "2026-09-02"}, "Total": {},
                                       "Groups": [copy.deepcopy(repeat)], "Estimated": False})
    recs, quar, _ = await collect(client(serve(pages)), columnar=columnar)
    assert len(recs) == 8 and len({r.identity for r in recs}) == 8
    assert len(quar) == 1 and "duplicate" in quar[0].reason


async def test_throttles_and_5xx_are_retried_and_every_attempt_passes_the_governor() -> None:
    """LimitExceededException, 500 and dropped connections are retried; each attempt takes a governor slot."""
    pages = make_pages(6, 4)
    faults: dict[int, list[Exception]] = {
        0: [ThrottledError("Rate limit exceeded", code="LimitExceededException", status=400)],
        1: [ServerError("oops", status=500), TransportError("dropped")],
        2: [ThrottledError("Rate limit exceeded", code="LimitExceededException", status=400)],
    }
    clock = FakeClock()
    gov = Governor(GovernorSettings(max_rps=1000, burst=1000, initial=1.0, first_cut=0.5), clock=clock)
    slots = 0
    real_slot = gov.slot

    def counting_slot() -> Any:
        nonlocal slots
        slots += 1
        return real_slot()

    gov.slot = counting_slot  # type: ignore[method-assign]
    ce = client(serve(pages, faults), clock=clock, governor=gov)
    recs, _, _ = await collect(ce)
    assert len(recs) == 12
    assert ce.stats.requests == slots == 3 + 4
    assert ce.stats.retries == 4 and ce.stats.throttled == 2
    assert ce.stats.billed_requests == 3
    assert gov.cuts == 2 and gov.rate == 250  # two congestion events a page apart: first_cut twice, no streak since


async def test_budget_stops_before_spending_more() -> None:
    """--max-requests N: the (N+1)th request is never sent."""
    pages = make_pages(10, 4)
    transport = serve(pages)
    ce = client(transport, budget=RequestBudget(3))
    got: list[Any] = []

    async def drain() -> None:
        got.extend([page async for page in ce.pages(QUERY)])

    with pytest.raises(BudgetExhaustedError, match="3 of 3"):
        await drain()
    assert not got and len(transport.calls) == 3


async def test_breaker_opens_on_persistent_failures_and_fails_fast() -> None:
    """Consecutive 5xx open the breaker; the next call fails fast without reaching the transport."""
    clock = FakeClock()

    def handler(op: str, params: dict[str, Any]) -> dict[str, Any]:
        raise ServerError("down", status=503)

    transport = MockTransport(handler)
    ce = client(transport, clock=clock, breaker=Breaker(failure_threshold=4, reset_timeout_s=60, clock=clock),
                retry_policy=RetryPolicy.no_wait(10))
    with pytest.raises(CircuitOpenError):
        await collect(ce)
    assert len(transport.calls) == 4
    with pytest.raises(CircuitOpenError):
        await collect(ce)
    assert len(transport.calls) == 4


async def test_retries_exhausted_is_reported() -> None:
    """A target that keeps throttling ends in RetryExhaustedError after bounded attempts."""
    def handler(op: str, params: dict[str, Any]) -> dict[str, Any]:
        raise ThrottledError("Rate limit exceeded", code="LimitExceededException")

    with pytest.raises(RetryExhaustedError):
        await collect(client(MockTransport(handler), retry_policy=RetryPolicy.no_wait(3)))


async def test_dimension_values_and_tags_follow_pages() -> None:
    """GetDimensionValues and GetTags are paged too (no botocore paginator exists for them)."""
    def handler(op: str, params: dict[str, Any]) -> dict[str, Any]:
        tok = params.get("NextPageToken")
        if op == "GetDimensionValues":
            if tok is None:
                return {"DimensionValues": [{"Value": "Amazon DynamoDB", "Attributes": {}}], "NextPageToken": "a"}
            return {"DimensionValues": [{"Value": "Amazon Redshift", "Attributes": {}}]}
        if tok is None:
            return {"Tags": ["payments"], "NextPageToken": "b"}
        return {"Tags": ["search"]}

    ce = client(MockTransport(handler))
    assert await ce.dimension_values("SERVICE", "2026-01-01", "2026-02-01") == ["Amazon DynamoDB", "Amazon Redshift"]
    assert await ce.tags("2026-01-01", "2026-02-01", tag_key="team") == ["payments", "search"]
    assert ce.stats.billed_requests == 4


def test_stats_json_has_the_contract_fields() -> None:
    """The summary JSON carries the fields other tools read."""
    s = Stats(requests=3, billed_requests=2)
    data = s.to_json()
    for key in ("requests", "billed_requests", "pages", "retries", "throttled", "records", "quarantined",
                "cost_usd"):
        assert key in data
    assert data["cost_usd"] == "0.02"


async def test_pages_sends_the_operation_the_query_names() -> None:
    """A WithResources query pages through the same client path, under its own operation name."""
    flt = {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Relational Database Service"]}}
    query = CostQuery.build(start="2026-09-01", end="2026-09-03", group_by=["SERVICE", "TAG:db-cluster"],
                            filter=flt, operation="GetCostAndUsageWithResources")
    transport = serve(make_pages(10, 4))
    recs, _, got = await collect(client(transport), query)
    assert len(got) == 5 and len(recs) == 20
    assert {op for op, _ in transport.calls} == {"GetCostAndUsageWithResources"}


@pytest.mark.parametrize("columnar", [False, True])
async def test_records_outside_the_requested_window_are_quarantined_not_doubled(columnar: bool) -> None:
    """A server answering with a period outside the request cannot escape replace-by-window (nor in a
    backfill's columnar pages)."""
    q = CostQuery.build(start="2026-01-01", end="2026-01-03", group_by=["SERVICE"])

    def handler(op: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}], "ResultsByTime": [
            {"TimePeriod": {"Start": day, "End": end}, "Estimated": False,
             "Groups": [{"Keys": ["RDS"], "Metrics": {"UnblendedCost": {"Amount": "1", "Unit": "USD"}}}]}
            for day, end in (("2026-01-01", "2026-01-02"), ("2026-01-05", "2026-01-06"))]}

    async with open_client(FetchSettings(retry=RetryPolicy.no_wait()), transport=MockTransport(handler)) as ce:
        pages = [p async for p in ce.pages(q, dedup=not columnar, columnar=columnar)]
    assert pages[0].n_records == 1 and pages[0].last_period_start == "2026-01-01"
    assert [r.period_start for r in pages[0].records] == ["2026-01-01"]
    assert "outside the requested" in pages[0].quarantined[0].reason


@pytest.mark.parametrize("columnar", [False, True])
async def test_restatement_during_a_streamed_fetch_fails_instead_of_mixing_versions(columnar: bool) -> None:
    """If a page-chain restart finds a different value for a group already written, the fetch fails;
    a malformed group served again after the restart is reported once (pages of records or of columns)."""
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
        async for p in ce.pages(q, columnar=columnar):
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


@pytest.mark.parametrize("columnar", [False, True])
@pytest.mark.parametrize(("before", "after", "changed"), [
    ("10.00", "10.0", False), ("10.5", "10.50", False), ("-0.00", "0", False), ("100", "100.0", False),
    ("1.5E+1", "15", False), ("10.00", "10.01", True), ("100", "10", True), ("0.1", "-0.1", True),
])
async def test_a_replay_is_compared_by_value_not_notation(columnar: bool, before: str, after: str,
                                                          changed: bool) -> None:
    """After a chain restart a group served again with the same value in another notation is a replay (skipped);
    a different value is a restatement (the fetch fails), whether the first pass came as records or columns."""
    q = CostQuery.build(start="2026-01-01", end="2026-01-03", group_by=["SERVICE"])
    state = {"pass": 1}

    def handler(op: str, params: dict[str, Any]) -> dict[str, Any]:
        tok = params.get("NextPageToken")
        if tok is None:
            amount = before if state["pass"] == 1 else after
            return {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}], "NextPageToken": f"t{state['pass']}",
                    "ResultsByTime": [{"TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"}, "Estimated": False,
                                       "Groups": [{"Keys": ["RDS"], "Metrics": {"UnblendedCost": {
                                           "Amount": amount, "Unit": "USD"}}}]}]}
        if tok != f"t{state['pass']}":
            raise InvalidNextTokenError("expired", code="InvalidNextTokenException")
        return {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}], "ResultsByTime": [
            {"TimePeriod": {"Start": "2026-01-02", "End": "2026-01-03"}, "Estimated": False,
             "Groups": [{"Keys": ["RDS"], "Metrics": {"UnblendedCost": {"Amount": "5", "Unit": "USD"}}}]}]}

    ce = client(MockTransport(handler))

    async def drain() -> list[Any]:
        out = []
        async for p in ce.pages(q, columnar=columnar):
            out.extend(p.records)
            state["pass"] = 2  # the first page's token expires: the chain restarts from page 1
        return out

    if changed:
        with pytest.raises(DataChangedError):
            await drain()
        return
    recs = await drain()
    assert [(r.period_start, r.metrics["UnblendedCost"].amount) for r in recs] == [
        ("2026-01-01", Decimal(before)), ("2026-01-02", Decimal(5))]
    assert ce.stats.restarts == 1 and ce.stats.replayed == 1
