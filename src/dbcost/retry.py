"""Retry: capped exponential backoff with full jitter, bounded attempts and a total time budget.

Only errors carrying the :class:`~dbcost.errors.Retryable` marker are retried; everything else is
raised at once. This is the project's single retry layer: botocore's own retries are set to one attempt
(``dbcost.transport.aws``), so attempts never multiply.

Full jitter (``sleep = uniform(0, min(cap, base * 2**attempt))``) spreads the coroutines of a fan-out
apart after a shared failure, which plain exponential backoff would keep in lock-step.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from dbcost.clock import Clock, SystemClock
from dbcost.errors import RetryExhaustedError, is_retryable

__all__ = ["RetryPolicy", "backoff_delay", "retry"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. ``budget_s`` bounds the total time spent on one call, sleeps included."""

    max_attempts: int = 8
    base_s: float = 0.5
    cap_s: float = 20.0
    budget_s: float = 300.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_s < 0 or self.cap_s < 0 or self.budget_s <= 0:
            raise ValueError("backoff times must be positive")

    @classmethod
    def no_wait(cls, max_attempts: int = 8) -> RetryPolicy:
        """Test mode: same attempts, zero backoff."""
        return cls(max_attempts=max_attempts, base_s=0.0, cap_s=0.0)


def backoff_delay(policy: RetryPolicy, attempt: int) -> float:
    """Full-jitter delay before retry number ``attempt`` (1 = the first retry)."""
    ceiling = min(policy.cap_s, policy.base_s * (2 ** (attempt - 1)))
    return policy.rng.uniform(0.0, ceiling)


async def retry(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    clock: Clock | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    what: str = "call",
) -> T:
    """Run ``call`` until it succeeds, a non-retryable error is raised, or attempts/budget run out.

    ``on_retry(attempt, error, delay)`` is called before each backoff sleep (for accounting and logs).
    ``asyncio.CancelledError`` is never caught.
    """
    clock = clock or SystemClock()
    started = clock.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            if attempt >= policy.max_attempts:
                raise RetryExhaustedError(
                    f"{what}: gave up after {attempt} attempts: {exc}", attempts=attempt
                ) from exc
            delay = backoff_delay(policy, attempt)
            if clock.monotonic() + delay - started > policy.budget_s:
                raise RetryExhaustedError(
                    f"{what}: gave up after {attempt} attempts, time budget of {policy.budget_s:g}s "
                    f"spent: {exc}",
                    attempts=attempt,
                ) from exc
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            await clock.sleep(delay)
