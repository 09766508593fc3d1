"""Retry: capped exponential backoff with full jitter, bounded attempts and a total time budget.

Only errors carrying the :class:`~dbcost.errors.Retryable` marker are retried; everything else is
raised at once. This is the project's single retry layer: botocore's own retries are set to one attempt
(``dbcost.transport.aws``), so attempts never multiply.

Full jitter (``sleep = uniform(0, min(cap, base * 2**attempt))``) spreads the coroutines of a fan-out
apart after a shared failure, which plain exponential backoff would keep in lock-step.

The time budget is always checked before a backoff sleep (a sleep that would end past it is not taken).
With ``deadline=True`` (the Cost Explorer client) it is also a wall-clock deadline (``asyncio.timeout``) over
the whole call: an attempt still in flight when the budget runs out is abandoned, so a server that trickles
its answer a byte at a time cannot stretch one call past the budget. Sinks keep the between-attempts check
only: cutting a write in flight is worse for them than waiting for it.
"""

from __future__ import annotations

import asyncio
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
    deadline: bool = False,
) -> T:
    """Run ``call`` until it succeeds, a non-retryable error is raised, or attempts/budget run out.

    ``on_retry(attempt, error, delay)`` is called before each backoff sleep (for accounting and logs).
    ``deadline=True`` makes ``policy.budget_s`` a wall-clock deadline over the whole call (module docstring).
    ``asyncio.CancelledError`` from outside is never caught.
    """
    clock = clock or SystemClock()
    state = _Attempts()
    if not deadline:
        return await _attempts(call, policy, clock, on_retry, what, state)
    try:
        async with asyncio.timeout(policy.budget_s) as timer:
            return await _attempts(call, policy, clock, on_retry, what, state)
    except TimeoutError as exc:
        if not timer.expired():
            raise
        last = state.last
        said = f": {last}" if last is not None else " waiting for the first answer"
        raise RetryExhaustedError(
            f"{what}: gave up after {state.attempt} attempt(s), time budget of {policy.budget_s:g}s spent{said}",
            attempts=state.attempt,
        ) from (last or exc)


class _Attempts:
    """How far a call got: the attempt under way and the last retryable error (for the deadline's message)."""

    __slots__ = ("attempt", "last")

    def __init__(self) -> None:
        self.attempt = 0
        self.last: BaseException | None = None


async def _attempts(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    clock: Clock,
    on_retry: Callable[[int, BaseException, float], None] | None,
    what: str,
    state: _Attempts,
) -> T:
    started = clock.monotonic()
    while True:
        state.attempt += 1
        attempt = state.attempt
        try:
            return await call()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            state.last = exc
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
