"""Shared helpers for the emulator tests: AWS clients pointed at an emulator and page collection.

Kept out of ``conftest.py`` so test modules can import them by name (``from .helpers import ...``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

TODAY = dt.date(2026, 11, 28)

#: A 31-day, two-key request whose pages end mid-period at the page sizes the tests use.
OCTOBER_BY_SERVICE_AND_TEAM: dict[str, Any] = {
    "TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"},
    "Granularity": "DAILY",
    "Metrics": ["UnblendedCost", "UsageQuantity"],
    "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "team"}],
}


@asynccontextmanager
async def ce_client(url: str) -> AsyncIterator[Any]:
    """An aioboto3 Cost Explorer client for ``url`` with botocore retries off (one attempt)."""
    import aioboto3
    from aiobotocore.config import AioConfig

    session = aioboto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    config = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=20, connect_timeout=5)
    async with session.client("ce", region_name="us-east-1", endpoint_url=url, config=config) as client:
        yield client


async def fetch_all(ce: Any, request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every page of a GetCostAndUsage request, resending it unchanged with each NextPageToken."""
    pages: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        params = dict(request)
        if token is not None:
            params["NextPageToken"] = token
        page = await ce.get_cost_and_usage(**params)
        pages.append(page)
        token = page.get("NextPageToken")
        if not token:
            return pages
        assert len(pages) < 1000, "runaway paging"


def group_sums(pages: list[dict[str, Any]], metric: str) -> tuple[Decimal, int]:
    """(sum of ``metric`` over every group of every page, number of groups) -- all groups well formed."""
    total = Decimal(0)
    n = 0
    for page in pages:
        for result in page["ResultsByTime"]:
            for group in result["Groups"]:
                total += Decimal(group["Metrics"][metric]["Amount"])
                n += 1
    return total, n


def error_code(exc: BaseException) -> str:
    """The AWS error code botocore put on a ClientError."""
    response = getattr(exc, "response", None)
    assert isinstance(response, dict), f"not a ClientError: {exc!r}"
    return str(response["Error"]["Code"])
