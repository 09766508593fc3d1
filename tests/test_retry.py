"""Retry (full-jitter backoff, bounded attempts, time budget), on a fake clock."""

from __future__ import annotations

import random

import pytest

from dbcost.clock import FakeClock
from dbcost.errors import (
    RetryExhaustedError,
    ServerError,
    ServiceValidationError,
    ThrottledError,
    TransportError,
)
from dbcost.retry import RetryPolicy, backoff_delay, retry


def failing(n: int, exc: Exception, result: str = "ok") -> tuple[list[int], object]:
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        if len(calls) <= n:
            raise exc
        return result

    return calls, call


async def test_retries_retryable_errors_until_success() -> None:
    """Three 5xx then success: four attempts, three backoff sleeps, result returned."""
    clock = FakeClock()
    calls, call = failing(3, ServerError("boom", status=500))
    seen: list[int] = []
    out: str = await retry(call, RetryPolicy(rng=random.Random(1)), clock=clock,  # type: ignore[arg-type]
                           on_retry=lambda a, e, d: seen.append(a))
    assert out == "ok" and len(calls) == 4 and seen == [1, 2, 3] and len(clock.slept) == 3


async def test_fatal_errors_are_not_retried() -> None:
    """A ValidationException is raised at once, no sleep."""
    clock = FakeClock()
    calls, call = failing(1, ServiceValidationError("bad date", code="ValidationException"))
    with pytest.raises(ServiceValidationError):
        await retry(call, RetryPolicy(), clock=clock)  # type: ignore[arg-type]
    assert len(calls) == 1 and clock.slept == []


async def test_attempts_are_bounded() -> None:
    """After max_attempts retryable failures: RetryExhaustedError chained to the last error."""
    calls, call = failing(100, ThrottledError("slow down", code="LimitExceededException"))
    with pytest.raises(RetryExhaustedError) as info:
        await retry(call, RetryPolicy(max_attempts=5), clock=FakeClock())  # type: ignore[arg-type]
    assert len(calls) == 5 and info.value.attempts == 5
    assert isinstance(info.value.__cause__, ThrottledError)


async def test_time_budget_is_bounded() -> None:
    """Backoff stops when the next sleep would exceed the total time budget."""
    clock = FakeClock()
    calls, call = failing(100, TransportError("dropped"))
    policy = RetryPolicy(max_attempts=100, base_s=1.0, cap_s=10.0, budget_s=30.0, rng=random.Random(3))
    with pytest.raises(RetryExhaustedError, match="time budget"):
        await retry(call, policy, clock=clock)  # type: ignore[arg-type]
    assert clock.monotonic() <= 30.0
    assert len(calls) < 100


def test_full_jitter_stays_under_the_capped_exponential() -> None:
    """Each delay is uniform in [0, min(cap, base * 2**(n-1))]."""
    policy = RetryPolicy(base_s=0.5, cap_s=4.0, rng=random.Random(0))
    for attempt in range(1, 12):
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        delays = [backoff_delay(policy, attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter actually spreads over the range


def test_no_wait_policy_for_tests() -> None:
    """RetryPolicy.no_wait keeps attempts but never sleeps."""
    policy = RetryPolicy.no_wait(3)
    assert policy.max_attempts == 3 and backoff_delay(policy, 5) == 0
