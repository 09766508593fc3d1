"""The rate governor: a token bucket (requests per second) plus an in-flight cap, shared by every
coroutine that talks to one target. Every attempt, first or retried, passes it.

Adaptive, because AWS publishes no rate for Cost Explorer (an AWS engineer once suggested 10/s) and a
user's ``--max-rps`` is a guess. In the spirit of TCP's congestion control:

* a throttle answer records a *ceiling* — the rate the service actually accepted over the last
  ``window_s`` seconds (or the current rate, if lower or not yet measurable) — and cuts the rate to
  ``decrease`` x that ceiling (never below ``min_rps``). Requests already sent at the old rate that
  come back throttled after the cut do not cut again: one cut per congestion event;
* below ``margin`` x ceiling, successes recover the rate quickly (``increase`` x max per success), so a
  transient slowdown costs little;
* near the ceiling, successes only probe slowly (``probe`` x max per success), so the rate settles just
  under the service's limit instead of bouncing off it; a probe that passes the old ceiling raises it.
* never above the configured ``max_rps``.

Defaults: 5 requests/s, 16 in flight, burst 1 (below the 10/s once suggested).

Like aiolimiter, there is no background task: a waiter computes how long until its token exists and
sleeps that long on the injected :class:`~dbcost.clock.Clock`. Waiters queue on an ``asyncio.Lock``,
which is FIFO, so a slow waiter cannot be starved by newcomers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from dbcost.clock import Clock, SystemClock

__all__ = ["DEFAULT_BURST", "DEFAULT_MAX_CONCURRENCY", "DEFAULT_MAX_RPS", "Governor", "GovernorSettings"]

DEFAULT_MAX_RPS = 5.0
DEFAULT_MAX_CONCURRENCY = 16
DEFAULT_BURST = 1.0
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class GovernorSettings:
    max_rps: float = DEFAULT_MAX_RPS
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    burst: float = DEFAULT_BURST
    min_rps: float = 0.2
    decrease: float = 0.7
    increase: float = 0.05
    probe: float = 0.0005
    margin: float = 0.9
    window_s: float = 2.0

    def __post_init__(self) -> None:
        if self.max_rps <= 0:
            raise ValueError("max_rps must be positive")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        if not 0 < self.decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        if not 0 < self.margin <= 1:
            raise ValueError("margin must be between 0 and 1")


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
        self.cuts = 0
        self.ceiling: float | None = None
        self._last_cut = float("-inf")
        self._started = self._clock.monotonic()
        self._accepted: deque[float] = deque()  # times of recent successes, for the accepted rate

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
    async def slot(self) -> AsyncIterator[float]:
        """Hold one in-flight slot and one token for the duration of a single attempt; yields the time
        the attempt was released (pass it to :meth:`on_throttle`).

        The in-flight slot is taken *before* the token: taking a token and then queueing for a slot
        would let tokens pile up behind slow requests and leave in a burst later.
        """
        async with self._inflight:
            await self._take_token()
            self.in_flight += 1
            try:
                yield self._clock.monotonic()
            finally:
                self.in_flight -= 1

    def on_throttle(self, sent_at: float | None = None) -> None:
        """The service throttled an attempt released at ``sent_at``: remember the ceiling, cut the rate,
        drain the bucket — unless the attempt left before the last cut (already accounted for)."""
        self.throttles += 1
        if sent_at is not None and sent_at < self._last_cut:
            return
        self._refill()
        self.cuts += 1
        now = self._clock.monotonic()
        ceiling = self._rate
        accepted = self._accepted_rate(now)
        if accepted is not None:
            ceiling = min(ceiling, max(accepted, self._min_rate))
        self.ceiling = ceiling
        self._rate = max(self._min_rate, ceiling * self.settings.decrease)
        self._tokens = min(self._tokens, 0.0)
        self._last_cut = now

    def _accepted_rate(self, now: float) -> float | None:
        """Successes per second over the last ``window_s`` (None until a full window has passed)."""
        horizon = now - self.settings.window_s
        while self._accepted and self._accepted[0] <= horizon:
            self._accepted.popleft()
        if now - self._started < self.settings.window_s:
            return None
        return len(self._accepted) / self.settings.window_s

    def on_success(self) -> None:
        """An attempt succeeded: recover fast below the ceiling, probe slowly near it, never above max."""
        s = self.settings
        now = self._clock.monotonic()
        self._accepted.append(now)
        if len(self._accepted) > 4 * s.max_rps * s.window_s + 16:  # bounded even if nothing ever throttles
            self._accepted.popleft()
        if self._rate >= s.max_rps:
            return
        self._refill()
        if self.ceiling is None:
            self._rate = min(s.max_rps, self._rate + s.max_rps * s.increase)
        elif self._rate < self.ceiling * s.margin:
            self._rate = min(s.max_rps, self.ceiling * s.margin, self._rate + s.max_rps * s.increase)
        else:
            self._rate = min(s.max_rps, self._rate + s.max_rps * s.probe)
            self.ceiling = max(self.ceiling, self._rate)
