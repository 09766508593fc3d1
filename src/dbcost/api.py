"""The library's front door: open a client for a target, fetch a query.

    import asyncio, dbcost

    async def main():
        query = dbcost.CostQuery.build(start="2026-09-01", end="2026-11-01",
                                       group_by=["SERVICE", "TAG:db-cluster"])
        result = await dbcost.fetch(query, dbcost.FetchSettings(profile="billing"))
        print(len(result.records), result.stats.cost_usd)

    asyncio.run(main())
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from dbcost.breaker import Breaker
from dbcost.client import CostExplorer, RequestBudget, Stats
from dbcost.clock import Clock, SystemClock
from dbcost.governor import DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RPS, Governor, GovernorSettings
from dbcost.models import CostQuery, CostRecord, Quarantined
from dbcost.parse import ParsedPage
from dbcost.retry import RetryPolicy
from dbcost.transport.base import Transport

__all__ = ["FetchResult", "FetchSettings", "fetch", "fetch_pages", "open_client"]


@dataclass(frozen=True)
class FetchSettings:
    """Where and how fast to talk to Cost Explorer for one target."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    credentials: tuple[str, str] | None = field(default=None, repr=False)
    max_rps: float = DEFAULT_MAX_RPS
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    burst: float = 1.0
    max_requests: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker_threshold: int = 8
    breaker_reset_s: float = 30.0
    name: str = "default"


@dataclass
class FetchResult:
    records: list[CostRecord]
    quarantined: list[Quarantined]
    stats: Stats


@asynccontextmanager
async def open_client(
    settings: FetchSettings,
    *,
    stats: Stats | None = None,
    budget: RequestBudget | None = None,
    transport: Transport | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[CostExplorer]:
    """A :class:`CostExplorer` for ``settings``; the AWS client is closed on exit.

    ``transport`` overrides the AWS transport (tests pass a ``MockTransport``).
    """
    clock = clock or SystemClock()
    governor = Governor(
        GovernorSettings(max_rps=settings.max_rps, max_concurrency=settings.max_concurrency, burst=settings.burst),
        clock=clock,
    )
    breaker = Breaker(
        failure_threshold=settings.breaker_threshold, reset_timeout_s=settings.breaker_reset_s, clock=clock,
        name=settings.name,
    )
    budget = budget if budget is not None else RequestBudget(settings.max_requests)

    def client(t: Transport) -> CostExplorer:
        return CostExplorer(t, governor=governor, breaker=breaker, retry_policy=settings.retry, clock=clock,
                            stats=stats, budget=budget, name=settings.name)

    if transport is not None:
        yield client(transport)
        return
    from dbcost.transport.aws import AwsTransport

    async with AwsTransport(
        profile=settings.profile,
        region=settings.region,
        endpoint_url=settings.endpoint_url,
        role_arn=settings.role_arn,
        external_id=settings.external_id,
        credentials=settings.credentials,
        max_pool_connections=max(10, settings.max_concurrency * 2),
    ) as aws:
        yield client(aws)


async def fetch_pages(
    query: CostQuery, settings: FetchSettings, *, stats: Stats | None = None, transport: Transport | None = None
) -> AsyncIterator[ParsedPage]:
    """Every parsed page of ``query``; replays after a page-chain restart are not yielded twice."""
    async with open_client(settings, stats=stats, transport=transport) as ce:
        async for page in ce.pages(query):
            yield page


async def fetch(
    query: CostQuery, settings: FetchSettings | None = None, *, transport: Transport | None = None
) -> FetchResult:
    """Fetch every page of ``query`` into memory (for small queries; stream with :func:`fetch_pages`)."""
    stats = Stats()
    records: list[CostRecord] = []
    quarantined: list[Quarantined] = []
    async for page in fetch_pages(query, settings or FetchSettings(), stats=stats, transport=transport):
        records.extend(page.records)
        quarantined.extend(page.quarantined)
    return FetchResult(records, quarantined, stats)
