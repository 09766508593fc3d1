"""The rate governor: a token bucket (requests per second) plus an in-flight cap, shared by every
coroutine that talks to one target. Every attempt, first or retried, passes it.

Adaptive, AIMD-style: a throttle answer multiplies the current rate by ``decrease`` (never below
``min_rps``); each success adds ``max_rps * increase`` back, never above the configured ``max_rps``.
AWS publishes no rate for Cost Explorer (an AWS engineer once suggested 10/s); the defaults here are
deliberately below that: 5 requests/s, 8 in flight, burst 1.

Like aiolimiter, there is no background task: a waiter computes how long until its token exists and
sleeps that long on the injected :class:`~dbcost.clock.Clock`. Waiters queue on an ``asyncio.Lock``,
which is FIFO, so a slow waiter cannot be starved by newcomers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from dbcost.clock import Clock, SystemClock

__all__ = ["DEFAULT_MAX_CONCURRENCY", "DEFAULT_MAX_RPS", "Governor", "GovernorSettings"]

DEFAULT_MAX_RPS = 5.0
DEFAULT_MAX_CONCURRENCY = 16
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class GovernorSettings:
    max_rps: float = DEFAULT_MAX_RPS
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    burst: float = 1.0
    min_rps: float = 0.2
    decrease: float = 0.5
    increase: float = 0.05

    def __post_init__(self) -> None:
        if self.max_rps <= 0:
            raise ValueError("max_rps must be positive")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        if not 0 < self.decrease < 1:
            raise ValueError("decrease must be between 0 and 1")


class Governor:
    """Token bucket + in-flight cap for one target."""

    def __init__(self, settings: GovernorSettings | None = None, *, clock: Clock | None = None) -> None:
        self.settings = settings or GovernorSettings()
        self._clock = clock or SystemClock()
        self._rate = self.settings.max_rps
        self._min_rate = min(self.settings.min_rps, self.settings.max_rps)
        self._tokens = self.settings.burst
        self._last = self._clock.monotonic()
        self._lock = asyncio.Lock()
        self._inflight = asyncio.Semaphore(self.settings.max_concurrency)
        self.in_flight = 0
        self.throttles = 0

    @property
    def rate(self) -> float:
        """The current allowed rate in requests per second."""
        return self._rate

    def _refill(self) -> None:
        now = self._clock.monotonic()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.settings.burst, self._tokens + elapsed * self._rate)

    async def _take_token(self) -> None:
        async with self._lock:
            while True:
                self._refill()
                # tolerate float dust: 0.2 s * 5/s may come out as 0.9999999999999998 tokens
                if self._tokens >= 1.0 - _EPS:
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return
                # sleep exactly until one token exists at the current rate; the rate may change while
                # we sleep (a throttle elsewhere), so loop and recompute rather than assume
                await self._clock.sleep((1.0 - self._tokens) / self._rate)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one in-flight slot and one token for the duration of a single attempt.

        The in-flight slot is taken *before* the token: taking a token and then queueing for a slot
        would let tokens pile up behind slow requests and leave in a burst later.
        """
        async with self._inflight:
            await self._take_token()
            self.in_flight += 1
            try:
                yield
            finally:
                self.in_flight -= 1

    def on_throttle(self) -> None:
        """The service throttled an attempt: cut the rate multiplicatively and drain the bucket."""
        self.throttles += 1
        self._refill()
        self._rate = max(self._min_rate, self._rate * self.settings.decrease)
        self._tokens = min(self._tokens, 0.0)

    def on_success(self) -> None:
        """An attempt succeeded: recover the rate additively, never above the configured maximum."""
        if self._rate < self.settings.max_rps:
            self._refill()
            self._rate = min(self.settings.max_rps, self._rate + self.settings.max_rps * self.settings.increase)
