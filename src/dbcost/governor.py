"""The rate governor: a token bucket (requests per second) plus an in-flight cap, shared by every
coroutine that talks to one target. Every attempt, first or retried, passes it.

Adaptive, because AWS publishes no rate for Cost Explorer (an AWS engineer once suggested 10/s) and a
user's ``--max-rps`` is a guess. The governor *searches* for the service's limit between two bounds and holds
just under it, rather than saw-toothing around it:

* **even pacing**: one token every ``1/rate`` seconds, at most ``burst`` (default 1) saved up, so requests
  leave evenly spaced; nothing is ever sent above ``max_rps`` (the rate never exceeds it and the bucket never
  holds more than ``burst`` tokens);
* **evidence is per rate**: a success counts for a rate only if its attempt was released at that rate (after
  the rate was last set) and while the rate binds (a request recently waited for its token: a run held back by
  its chains proves nothing about the service). ``streak`` (8) such successes in a row make the rate
  *sustained* (``try_streak``, 32, for a try above the sustained rate: a bucket with saved tokens carries a
  rate just above its limit for a while, and a try that passed on them would be a sustained rate that is
  not): the lower bound :attr:`Governor.floor` rises to it;
* **the upper bound** :attr:`Governor.ceiling` is the rate an attempt was released at when the service
  throttled it (one *congestion event*: throttles of attempts released before the last cut are counted but do
  not cut again);
* **start**: at ``initial`` x ``max_rps`` (default half); each sustained rate grows by ``ramp`` (1.25x), up to
  ``max_rps`` or the first event. Growth per sustained streak is a ramp per round trip: the answers that prove
  a rate come back one latency later. A gentle one, because a bucket with saved tokens (a burst) lets a rate
  above its limit pass for a while, and whatever was ramped to meanwhile is the overshoot;
* **a shallow bucket**: the starting rate refused among its first ``shallow_within`` (2) answers, before any
  rate was sustained, is a bucket of about one token (:attr:`Governor.shallow`): one with saved tokens carries
  a start above its limit for a while (a 5-token bucket some 25 attempts at 1.25x its rate). Such a bucket
  cannot carry a rate above its limit past its first early attempt, so what it sustained it sustains: a failed
  try goes back to the sustained rate itself, and tries are smaller (every one above the limit is refused).
  Decided once, at the first event, and only for a refused start (after a ramp, saved tokens may have carried
  the rates sustained before the refusal);
* **a congestion event**, by what it says:

  - the first one, or one right after a cut (within ``2 x streak`` successes; for a shallow bucket only while
    no rate is sustained): the start overshot by an unknown amount, or the cut was not enough; the rate goes
    to ``first_cut`` (0.75: one ramp step back and 6% more) of the refused rate and the sustained rate is
    forgotten (a bursty bucket's saved tokens may have carried it);
  - a try above the sustained rate failed: back to the sustained rate, less ``backoff`` (4%) unless the bucket
    is shallow: near the limit a bursty bucket's saved tokens make a rate just above it look sustained for a
    while;
  - a refusal at a rate that held a while (the limit fell, saved tokens ran out, an early arrival: a one-token
    bucket refuses an attempt that arrives a few milliseconds early, and network or scheduling jitter is
    enough near its limit), or a shallow bucket's refusal at its sustained rate: the rate, and the sustained
    rate, step ``backoff`` below the refused rate.

  Nothing saved up survives: the next request waits a full interval at the new rate, counted from the cut (the
  pause lets a bursty bucket save a little) or, for a shallow bucket, from the last release (its state is only
  its last accepted arrival, and the cut comes a round trip later: counting from it would idle the quota);
* **the search**: a sustained rate with the ceiling more than ``settle`` (2.5%) above it tries half-way to it,
  by at most ``step`` (5%; ``shallow_step``, 2.5%, for a shallow bucket: a try above a one-token bucket's
  limit throttles every other attempt for one round trip, and near the limit early arrivals do too), and only
  after ``window`` (50) attempts in a row were accepted, so tries do not pile throttles onto throttles. Within
  ``settle`` the governor holds: no standing discount beyond that gap;
* **a limit that rises**: after ``hold`` (400) successes without an event the ceiling is raised by twice
  ``settle``, so the search tries once more above it: at most one failed try per ``hold`` successes when the
  limit has not moved.

The throttles of the start-up search are the price of finding the limit: they do not hold back the first tries
(they leave the window once a rate is first sustained). ``bench/bench_rate.py`` measures all of this against
the emulator over HTTP; ``tests/test_governor.py`` runs it against a simulated service in virtual time. The
parameters were chosen on a virtual-time model of the benchmark's matrix (allowed 2-20/s, burst 1 and 5,
50-800 ms, told 2.5x), with the scheduling jitter measured on the emulator.

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
    #: the starting rate, as a share of max_rps
    initial: float = 0.5
    #: successes in a row, released at a binding rate, that make it sustained
    streak: int = 8
    #: ... and that make a try above the sustained rate sustained (a bursty bucket's saved tokens carry a rate
    #: just above its limit for a while)
    try_streak: int = 32
    #: before the first congestion event, a sustained rate grows by this factor
    ramp: float = 1.25
    #: with no sustained rate yet, an event cuts to this share of the refused rate
    first_cut: float = 0.75
    #: a failed try, or a refusal at a rate that held, steps the rate this share down
    backoff: float = 0.04
    #: the search stops when the refused rate is within this share above the sustained one
    settle: float = 0.025
    #: successes without an event after which the search tries above the limit again
    hold: int = 400
    #: a try above the sustained rate waits until this many attempts in a row were accepted
    window: int = 50
    #: a try above the sustained rate goes at most this share higher
    step: float = 0.05
    #: the starting rate refused within this many answers at it marks a shallow bucket (0: never); a bucket with
    #: saved tokens would have carried the start for a while
    shallow_within: int = 2
    #: ... and then a try goes at most this share higher (every try above a shallow bucket's limit is refused)
    shallow_step: float = 0.025

    def __post_init__(self) -> None:
        if self.max_rps <= 0:
            raise ValueError("max_rps must be positive")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        if not 0 < self.initial <= 1:
            raise ValueError("initial must be between 0 and 1")
        shares = {"first_cut": self.first_cut, "backoff": self.backoff, "settle": self.settle, "step": self.step,
                  "shallow_step": self.shallow_step}
        for name, value in shares.items():
            if not 0 < value < 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.ramp <= 1:
            raise ValueError("ramp must be above 1")
        if self.streak < 1 or self.try_streak < 1 or self.hold < 1 or self.window < 1:
            raise ValueError("streak, try_streak, hold and window must be at least 1")
        if self.shallow_within < 0:
            raise ValueError("shallow_within must be at least 0")


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
        #: the rate the service last refused, raised after every ``hold`` quiet successes (None before the
        #: first congestion event)
        self.ceiling: float | None = None
        #: the highest rate the service sustained since the rate last fell below it (None: none yet)
        self.floor: float | None = None
        self._set_at = self._last  # when the rate was last set: only attempts released since count for it
        self._streak = 0  # successes in a row at the current rate
        self._answered = 0  # successes of attempts released at the current rate
        #: the service's bucket holds about one token: the start was refused at once (see ``shallow_within``)
        self.shallow = False
        self._quiet = 0  # successes since the last congestion event
        self._settled = False  # the start-up search is over
        self._outcomes: deque[bool] = deque(maxlen=self.settings.window)  # recent attempts: throttled or not
        self._last_cut = float("-inf")
        self._waited_at = float("-inf")  # when a request last had to wait for its token
        self._released_at = self._last  # when a token was last taken (the start, before any)
        self._history: deque[tuple[float, float]] = deque([(self._last, self._rate)])  # (since, rate)

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
                    self._released_at = self._last
                    return
                # sleep exactly until one token exists at the current rate; the rate may change while
                # we sleep (a throttle elsewhere), so loop and recompute rather than assume
                self._waited_at = self._clock.monotonic()
                await self._clock.sleep((1.0 - self._tokens) / self._rate)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Hold one in-flight slot and one token for the duration of a single attempt; yields the time
        the attempt was released (pass it to :meth:`on_throttle` and :meth:`on_success`).

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
        congestion event is accounted for already): the refused rate becomes the upper bound, the rate goes
        back to the last sustained one (or ``first_cut`` of the refused one), nothing saved up survives."""
        self.throttles += 1
        self._outcomes.append(True)
        if sent_at is not None and sent_at < self._last_cut:
            return
        s = self.settings
        self._refill()
        self.cuts += 1
        now = self._clock.monotonic()
        refused = self._rate_at(sent_at) if sent_at is not None else self._rate
        self.ceiling = max(self._min_rate, refused)
        floor = self.floor
        if self.cuts == 1 and floor is None and self._answered < s.shallow_within:
            self.shallow = True  # the starting rate, refused at once: nothing saved up carried it
        if floor is not None and floor < refused:  # a try above the sustained rate failed: back to the floor
            if not self.shallow:  # saved tokens may have carried the sustained rate (a one-token bucket has none)
                floor *= 1.0 - s.backoff
            target = floor
        elif self.cuts == 1 or (self._quiet < 2 * s.streak and not (self.shallow and floor is not None)):
            # the first event (the start overshot by an unknown amount), or refused again right after a cut
            # (that cut was not enough, or a bursty bucket's saved tokens carried the rate taken as sustained)
            target, floor = refused * s.first_cut, None
        else:  # refused at a rate that held a while (the limit fell, saved tokens ran out, an early arrival), or a
            # shallow bucket refused its sustained rate (an early arrival: nothing saved up carried that rate)
            target = refused * (1.0 - s.backoff)
            floor = None if floor is None else target
        self.floor = floor
        target = max(self._min_rate, min(target, s.max_rps))
        self._set_rate(target, now)
        # nothing saved up survives a cut: the next attempt waits one full interval at the new rate, counted for a
        # shallow bucket from the last release (all its state is the last accepted arrival, so the part of an
        # interval idled by counting from the cut, a round trip later, buys nothing) and otherwise from the cut
        # (the pause lets a bursty bucket save a little towards what the overshoot took)
        since = self._released_at if self.shallow else now
        self._tokens = min(self._tokens, 1.0, max(0.0, now - since) * target)
        self._last_cut = now
        self._quiet = 0

    def on_success(self, sent_at: float | None = None) -> None:
        """An attempt released at ``sent_at`` succeeded: a streak of them at a binding rate makes the rate
        sustained, and then the rate ramps (before any event), tries towards the ceiling (while the bounds are
        apart and the last ``window`` attempts were accepted), or holds; never above ``max_rps``."""
        s = self.settings
        now = self._clock.monotonic()
        self._quiet += 1
        self._outcomes.append(False)
        if self.ceiling is not None and self._quiet >= s.hold and self._quiet % s.hold == 0:
            self.ceiling *= 1.0 + 2.0 * s.settle  # the limit may have risen: try once more above it
        if sent_at is not None and sent_at < self._set_at:
            return  # released at an older rate: no evidence for this one
        self._answered += 1
        # the rate binds if a request waited for a token within about two token intervals
        if now - self._waited_at > 2.0 / self._rate + 0.05:
            self._streak = 0
            return
        self._streak += 1
        trying = self.ceiling is not None and self.floor is not None and self._rate > self.floor  # (not the ramp)
        if self._streak < (s.try_streak if trying else s.streak):
            return
        rate = self._rate
        if self.floor is None and self.ceiling is not None and self.cuts and not self._settled:
            self._settled = True  # the start-up search found a rate the service sustains: its throttles were
            self._outcomes.clear()  # the price of finding it, not a sign of how the search does from here
        self.floor = rate if self.floor is None else max(self.floor, rate)
        if self.ceiling is None:
            nxt = rate * s.ramp
        elif self.ceiling > rate * (1.0 + s.settle) and not any(self._outcomes):
            # half-way, but by at most ``step``: a try above the limit costs the attempts of one round trip
            nxt = min((rate + self.ceiling) / 2.0, rate * (1.0 + (s.shallow_step if self.shallow else s.step)))
        else:
            self._streak = 0
            return
        nxt = min(s.max_rps, nxt)
        if nxt > rate:
            self._set_rate(nxt, now)

    def _set_rate(self, rate: float, now: float) -> None:
        self._rate = rate
        self._set_at = now
        self._streak = 0
        self._answered = 0
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
