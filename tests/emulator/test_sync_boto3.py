"""Sync boto3 (urllib3 under botocore) against the emulator: the same wire, a different HTTP stack.

The emulator stays on the test's event loop; the blocking client runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from dbcost.emulator import Emulator, EmulatorConfig

from .helpers import OCTOBER_BY_SERVICE_AND_TEAM, TODAY


def _with_client(url: str, fn: Callable[[Any], Any]) -> Any:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "ce",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=20),
    )
    try:
        return fn(client)
    finally:
        client.close()


def _collect(client: Any) -> tuple[int, Decimal, int]:
    pages, total, groups = 0, Decimal(0), 0
    token = None
    while True:
        extra: dict[str, str] = {"NextPageToken": token} if token else {}
        page = client.get_cost_and_usage(**OCTOBER_BY_SERVICE_AND_TEAM, **extra)
        pages += 1
        for result in page["ResultsByTime"]:
            for group in result["Groups"]:
                total += Decimal(group["Metrics"]["UnblendedCost"]["Amount"])
                groups += 1
        token = page.get("NextPageToken")
        if not token:
            return pages, total, groups


async def test_sync_boto3_pages_sum_to_truth(emu: Emulator) -> None:
    """boto3 follows NextPageToken over several pages and the group sum equals the truth exactly."""
    pages, total, groups = await asyncio.to_thread(_with_client, emu.url, _collect)
    truth = emu.truth(OCTOBER_BY_SERVICE_AND_TEAM)
    assert pages >= 4
    assert total == Decimal(truth["metrics"]["UnblendedCost"])
    assert groups == truth["groups"]


def _error_codes(client: Any) -> list[tuple[str, int]]:
    from botocore.exceptions import ClientError

    out = []
    calls: list[dict[str, Any]] = [
        {"TimePeriod": {"Start": "2024-01-01", "End": "2024-02-01"}, "Granularity": "DAILY",
         "Metrics": ["UnblendedCost"]},
        {**OCTOBER_BY_SERVICE_AND_TEAM, "NextPageToken": "bm9wZQ=="},
        {"TimePeriod": {"Start": "2026-10-01", "End": "2026-10-02"}, "Granularity": "DAILY",
         "Metrics": ["UnblendedCost"]},
        {"TimePeriod": {"Start": "2026-10-01", "End": "2026-10-02"}, "Granularity": "DAILY",
         "Metrics": ["UnblendedCost"]},
    ]
    for params in calls:
        try:
            client.get_cost_and_usage(**params)
            out.append(("ok", 200))
        except ClientError as exc:
            out.append((exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]))
    return out


async def test_sync_boto3_maps_errors_to_client_error_codes() -> None:
    """ValidationException, InvalidNextTokenException and LimitExceededException arrive as ClientError codes."""
    async with Emulator(EmulatorConfig(today=TODAY, clusters=30, max_rps=0.5, burst=3)) as emu:
        codes = await asyncio.to_thread(_with_client, emu.url, _error_codes)
    assert codes == [
        ("ValidationException", 400),
        ("InvalidNextTokenException", 400),
        ("ok", 200),
        ("LimitExceededException", 400),
    ]


def _dropped(client: Any) -> str:
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    try:
        client.get_tags(TimePeriod={"Start": "2026-10-01", "End": "2026-11-01"})
    except (ConnectionClosedError, EndpointConnectionError) as exc:
        return type(exc).__name__
    return "answered"


async def test_sync_boto3_sees_a_dropped_connection_as_a_connection_error() -> None:
    """A dropped connection is a botocore connection error for urllib3 too, not a hang."""
    async with Emulator(EmulatorConfig(today=TODAY, clusters=10, drop_rate=1.0)) as emu:
        async with asyncio.timeout(30):
            name = await asyncio.to_thread(_with_client, emu.url, _dropped)
    assert name in ("ConnectionClosedError", "EndpointConnectionError")
