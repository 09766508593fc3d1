"""The rate governor: a token bucket (requests per second) plus an in-flight cap, shared by every
coroutine that talks to one target. Every attempt, first or retried, passes it.

Adaptive, because AWS publishes no rate for Cost Explorer (an AWS engineer once suggested 10/s) and a
user's ``--max-rps`` is a guess. Additive increase, multiplicative decrease, with the decrease anchored on
what the service was seen to accept rather than on what was asked:

* **even pacing**: one token every ``1/rate`` seconds, at most ``burst`` (default 1) saved up, so the
  requests leave evenly spaced; nothing is ever sent above ``max_rps`` (the rate never exceeds it and the
  bucket never holds more than ``burst`` tokens);
* **start**: at ``initial`` x ``max_rps`` (default half), doubling every ``ramp_s`` seconds (and at most every
  8 successes) while requests succeed and the rate is what holds them back, up to ``max_rps`` or the first
  throttle. A client told
  2.5x the service's limit then overshoots by less, for a shorter time, than one that starts at the top;
* **a throttle** (one *congestion event*: throttles of attempts released before the last cut are counted
  but do not cut again) sets the *ceiling* to the rate in force when the throttled attempt was released (the
  rate the service refused), and the rate ``backoff`` (4%) below:

  - the first event cuts from what the service accepted (successes per second from their spacing over the
    last ``window_s``), but to no less than 3/4 of the ceiling: a one-token bucket answers a client just above
    its rate with every other request throttled, so the accepted rate alone would halve the rate each time;
  - an event within 50 successes of the last one means the recovery aimed too high: the new ceiling is
    half-way between where the cut lands and where the attempt was sent (a bisection, not 4% steps);
  - any other event is a probe that passed the limit: the rate steps back to 4% below where it was passed.

  The bucket is drained, so the next request waits a full interval at the new rate;
* **after it**, successes climb fast (the ramp) back to 4% below the ceiling, then probe additively: each
  success adds ``probe`` x ceiling (0.03%), a step that doubles every ``probe_double`` (128) successes
  without a throttle. So the rate saw-tooths between 0.96 and a little over 1.0 x the service's limit, there
  is no standing discount, about one event per hundred-odd requests costs one or two throttled (retried,
  unbilled) attempts, and a limit that rises is found again within a few hundred requests;
* growth only when the rate binds: successes raise the rate only while a request recently had to wait
  for its token, so a run held back by its chains (latency, few units) does not drift up to ``max_rps``
  and then release a burst when more chains start.

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
#: a congestion event within this many successes of the last one means the recovery aimed too high
_SOON = 50
#: one event cuts to no less than this share of the rate that was refused (then 4% below)
_FLOOR = 0.75


@dataclass(frozen=True, slots=True)
class GovernorSettings:
    max_rps: float = DEFAULT_MAX_RPS
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    burst: float = DEFAULT_BURST
    min_rps: float = 0.2
    #: the starting rate, as a share of max_rps
    initial: float = 0.5
    #: before the first throttle the rate doubles every ramp_s seconds (while it binds)
    ramp_s: float = 0.5
    #: a congestion event sets the rate this share below the accepted rate
    backoff: float = 0.04
    #: after one, each success adds this share of the ceiling
    probe: float = 0.0003
    #: ... and that step doubles every probe_double successes without a throttle
    probe_double: float = 128.0
    #: the accepted rate is measured over this many seconds
    window_s: float = 2.0

    def __post_init__(self) -> None:
        if self.max_rps <= 0:
            raise ValueError("max_rps must be positive")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        if not 0 < self.initial <= 1:
            raise ValueError("initial must be between 0 and 1")
        if not 0 <= self.backoff < 1:
            raise ValueError("backoff must be between 0 and 1")
        if self.probe < 0 or self.ramp_s <= 0 or self.window_s <= 0 or self.probe_double <= 0:
            raise ValueError("probe must be >= 0, ramp_s, window_s and probe_double must be positive")


class Governor:
    """Token bucket + in-flight cap for one target."""

    def __init__(self, settings: GovernorSettings | None = None, *, clock: Clock | None = None) -> None:
        self.settings = settings or GovernorSettings()
        s = self.settings
        self._clock = clock or SystemClock()
        self._min_rate = min(s.min_rps, s.max_rps)
        self._rate = max(self._min_rate, s.max_rps * s.initial)
        self._tokens = s.burst
        self._last = self._clock.monotonic()
        self._lock = asyncio.Lock()
        self._inflight = asyncio.Semaphore(s.max_concurrency)
        self.in_flight = 0
        self.throttles = 0
        self.cuts = 0
        self.ceiling: float | None = None
        self._last_cut = float("-inf")
        self._since_cut = 0
        self._started = self._clock.monotonic()
        self._last_grow = self._started
        self._waited_at = float("-inf")  # when a request last had to wait for its token
        self._accepted: deque[float] = deque()  # times of recent successes, for the accepted rate
        self._history: deque[tuple[float, float]] = deque([(self._started, self._rate)])  # (since, rate)

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
                self._waited_at = self._clock.monotonic()
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
        """The service throttled an attempt released at ``sent_at`` — unless it left before the last cut (that
        congestion event is accounted for already): the ceiling becomes the rate it was released at, the
        rate ``backoff`` below what the service accepted (by at most a quarter), the bucket is drained."""
        self.throttles += 1
        if sent_at is not None and sent_at < self._last_cut:
            return
        self._refill()
        self.cuts += 1
        now = self._clock.monotonic()
        sent_rate = self._rate_at(sent_at) if sent_at is not None else self._rate
        accepted = self._accepted_rate(now)
        # what the service accepted, but not below 3/4 of the rate sent at: a bucket of one token answers a client
        # just above its rate with every other request throttled, so the accepted rate alone would halve it (a
        # client far above the limit takes a few events of 25% to come down: the bisection then finds it)
        measured = sent_rate if accepted is None else min(sent_rate, max(accepted, sent_rate * _FLOOR))
        if self.ceiling is None:  # the first event: all there is to go by
            ceiling, base = sent_rate, measured
        elif self._since_cut < _SOON:
            # throttled again soon after the last cut: the recovery aimed too high; the limit lies between where
            # this cut lands and where the attempt was sent, so aim half-way (a bisection)
            ceiling, base = (sent_rate + measured) / 2.0, measured
        else:  # a probe passed the limit: step back just below where it was passed
            ceiling, base = sent_rate, sent_rate
        self.ceiling = max(ceiling, self._min_rate)
        self._set_rate(max(self._min_rate, base * (1.0 - self.settings.backoff)), now)
        self._tokens = min(self._tokens, 0.0)
        self._last_cut = now
        self._since_cut = 0

    def _set_rate(self, rate: float, now: float) -> None:
        self._rate = rate
        hist = self._history
        hist.append((now, rate))
        while len(hist) > 1 and hist[1][0] <= now - 60.0:  # a minute back: longer than any request may take
            hist.popleft()

    def _rate_at(self, when: float) -> float:
        """The rate in force at ``when`` (the current one if ``when`` is older than the history kept)."""
        rate = self._rate
        for t, r in reversed(self._history):
            rate = r
            if t <= when:
                break
        return rate

    def _accepted_rate(self, now: float) -> float | None:
        """Successes per second, from their spacing: ``(n - 1) / (last - first)`` over the successes of the last
        ``window_s`` (at least the last 8). Spacing, not a count per window: at 2 requests/s a 2-second window
        holds 4 or 5 of them, a 25% error; and the first answers' latency does not count as idle time. None
        with fewer than 3 successes: too few to say."""
        acc = self._accepted
        horizon = now - self.settings.window_s
        while len(acc) > 8 and acc[0] <= horizon:
            acc.popleft()
        if len(acc) < 3 or acc[-1] <= acc[0]:
            return None
        return (len(acc) - 1) / (acc[-1] - acc[0])

    def on_success(self) -> None:
        """An attempt succeeded: ramp up before the first throttle, recover fast below the last ceiling, probe
        additively beyond it, never above ``max_rps``, and only while the rate is what holds requests back."""
        s = self.settings
        now = self._clock.monotonic()
        self._accepted.append(now)
        if len(self._accepted) > 4 * s.max_rps * s.window_s + 16:  # bounded even if nothing ever throttles
            self._accepted.popleft()
        # a pause (no success for a while) is not a reason to grow: at most two token intervals count
        since, self._last_grow = min(now - self._last_grow, 2.0 / self._rate), now
        if self._rate >= s.max_rps:
            return
        # the rate binds if a request waited for a token within about two token intervals
        if now - self._waited_at > 2.0 / self._rate + 0.05:
            return
        self._refill()
        # doubling every ramp_s, and at most every 8 successes: at 2 requests/s a time-only ramp would double
        # between two requests, and a bucket's saved token hides the overshoot for a few more
        ramped = self._rate * 2.0 ** min(since / s.ramp_s, 0.125)
        if self.ceiling is None:
            self._set_rate(min(s.max_rps, ramped), now)
            return
        target = self.ceiling * (1.0 - s.backoff)
        if self._rate < target:  # below where the last event says the limit is: nothing to fear there
            self._set_rate(min(s.max_rps, target, ramped), now)
            return
        # additive, with a step that doubles every probe_double successes since the last cut: near the limit
        # it climbs gently (few congestion events); if the limit rose, it finds it within a few hundred requests
        step = self.ceiling * s.probe * 2.0 ** min(16.0, self._since_cut / s.probe_double)
        self._set_rate(min(s.max_rps, self._rate + step), now)
        self.ceiling = max(self.ceiling, self._rate / (1.0 - s.backoff))
