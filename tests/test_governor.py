"""Rate governor: even pacing, in-flight cap, ramp, cut to the accepted rate, additive probe — on fake clocks.

The last tests run whole page chains against a simulated Cost Explorer (a token bucket and a latency) in
virtual time: they prove the governor holds the allowed rate with few throttles, and never sends above
``max_rps``, in milliseconds of real time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from dataclasses import dataclass, field

import pytest

from dbcost.clock import FakeClock
from dbcost.governor import Governor, GovernorSettings


def fixed(**kw: float) -> GovernorSettings:
    """Settings that start at max_rps (the pacing tests want the configured rate from the first request)."""
    return GovernorSettings(**{"initial": 1.0, **kw})  # type: ignore[arg-type]


async def test_bucket_paces_requests_at_the_configured_rate() -> None:
    """20 acquisitions at 5/s with burst 1 take 19 * 0.2 s of (fake) time, evenly spaced."""
    clock = FakeClock()
    gov = Governor(fixed(max_rps=5, burst=1, max_concurrency=50), clock=clock)
    times = []
    for _ in range(20):
        async with gov.slot():
            times.append(clock.monotonic())
    assert times[0] == 0
    assert times[-1] == pytest.approx(19 * 0.2)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g == pytest.approx(0.2) for g in gaps)


async def test_burst_allows_that_many_back_to_back() -> None:
    """With burst 4 the first four go at once, then the rate applies."""
    clock = FakeClock()
    gov = Governor(fixed(max_rps=2, burst=4), clock=clock)
    times = []
    for _ in range(6):
        async with gov.slot():
            times.append(clock.monotonic())
    assert times[:4] == [0, 0, 0, 0]
    assert times[4:] == [pytest.approx(0.5), pytest.approx(1.0)]


async def test_in_flight_cap_is_never_exceeded_by_concurrent_coroutines() -> None:
    """Many coroutines sharing one governor never hold more slots than max_concurrency."""
    clock = FakeClock()
    gov = Governor(fixed(max_rps=1000, burst=1000, max_concurrency=3), clock=clock)
    peak = 0

    async def work() -> None:
        nonlocal peak
        async with gov.slot():
            peak = max(peak, gov.in_flight)
            await clock.sleep(0.01)

    async with asyncio.TaskGroup() as tg:
        for _ in range(20):
            tg.create_task(work())
    assert peak == 3
    assert gov.in_flight == 0


async def test_starts_at_half_and_doubles_every_ramp_while_the_rate_binds() -> None:
    """Before any throttle: 5/s of 10 at first, twice that after ramp_s of successes at a binding rate."""
    clock = FakeClock()
    gov = Governor(GovernorSettings(max_rps=10, initial=0.5, ramp_s=1.0), clock=clock)
    assert gov.rate == 5
    while clock.monotonic() < 0.99:  # one second of back-to-back requests, each waiting for its token
        async with gov.slot():
            pass
        gov.on_success()
    assert gov.rate == pytest.approx(10, rel=0.1)
    for _ in range(50):
        async with gov.slot():
            pass
        gov.on_success()
    assert gov.rate == 10


async def test_rate_does_not_grow_when_it_does_not_bind() -> None:
    """Successes that never waited for a token (the chains, not the rate, hold requests back) raise nothing."""
    clock = FakeClock()
    gov = Governor(GovernorSettings(max_rps=10, initial=0.5), clock=clock)
    for _ in range(50):
        clock.advance(1.0)  # one request a second: far below the 5/s it may send
        async with gov.slot():
            pass
        gov.on_success()
    assert gov.rate == 5


async def test_throttle_cuts_to_just_below_the_accepted_rate_recovers_fast_then_probes_additively() -> None:
    """Sent at 10/s, the service accepted 8/s: ceiling 10, rate 4% below 8; successes climb fast to 4% below the
    ceiling, then add probe x ceiling each."""
    clock = FakeClock()
    gov = Governor(fixed(max_rps=20, backoff=0.04, probe=0.001, probe_double=1e9), clock=clock)
    gov._set_rate(10.0, clock.monotonic())
    for _ in range(24):  # 8 successes a second for 3 seconds
        clock.advance(1 / 8)
        gov.on_success()
    gov.on_throttle()
    assert gov.ceiling == pytest.approx(10.0)
    assert gov.rate == pytest.approx(7.68)
    while gov.rate < 9.6 - 1e-9:  # fast recovery: doubling, at most every 8 successes, capped at 9.6
        async with gov.slot():  # waits for its token: the rate binds
            pass
        gov.on_success()
    assert gov.rate == pytest.approx(9.6)
    rates = []
    for _ in range(3):
        async with gov.slot():
            pass
        gov.on_success()
        rates.append(round(gov.rate, 6))
    assert rates == pytest.approx([9.61, 9.62, 9.63], abs=1e-3)


async def test_a_one_token_bucket_does_not_halve_the_rate() -> None:
    """Every other request throttled (a one-token bucket just below the rate): one cut goes no lower than 3/4."""
    clock = FakeClock()
    gov = Governor(fixed(max_rps=10, backoff=0.04, window_s=2.0), clock=clock)
    for _ in range(8):  # 2 successes per second for 4 seconds
        clock.advance(0.5)
        gov.on_success()
    gov.on_throttle()
    assert gov.ceiling == 10.0 and gov.rate == pytest.approx(7.2)


async def test_probe_climbs_past_the_ceiling_and_never_past_max() -> None:
    """No standing discount: without more throttles the probe passes the old ceiling (raising it), up to max."""
    clock = FakeClock()
    gov = Governor(fixed(max_rps=10, probe=0.01), clock=clock)
    gov.on_throttle()  # nothing measured yet: the cut is from the current rate
    assert gov.ceiling == 10 and gov.rate == pytest.approx(9.6)
    for _ in range(200):
        async with gov.slot():
            pass
        gov.on_success()
    assert gov.rate == 10 and gov.ceiling >= 10


async def test_a_throttle_while_recovering_lowers_the_ceiling() -> None:
    """Throttled again before regaining the old ceiling: the next recovery aims lower."""
    clock = FakeClock()
    gov = Governor(fixed(max_rps=10, backoff=0.1), clock=clock)
    gov.on_throttle()
    assert (gov.ceiling, gov.rate) == (10, 9)
    gov._set_rate(5.0, clock.monotonic())  # still recovering towards 9 ...
    clock.advance(0.1)
    gov.on_throttle(clock.monotonic())  # ... when throttled again
    assert gov.ceiling == pytest.approx(5.0)


async def test_one_cut_per_congestion_event() -> None:
    """Throttles of attempts released before the last cut are counted but do not cut again."""
    clock = FakeClock()
    gov = Governor(fixed(max_rps=8, backoff=0.5), clock=clock)
    sent = clock.monotonic()
    clock.advance(0.1)
    for _ in range(5):  # five in-flight requests come back throttled from the same burst
        gov.on_throttle(sent)
    assert gov.throttles == 5 and gov.cuts == 1 and gov.rate == 4
    clock.advance(0.1)
    gov.on_throttle(clock.monotonic())  # a request sent after the cut: a new event
    assert gov.cuts == 2 and gov.rate == 2


async def test_the_cut_is_from_the_rate_the_service_accepted() -> None:
    """Configured at 10/s but the service accepted 8/s over the last window: the rate goes below 8, not 10."""
    clock = FakeClock()
    gov = Governor(fixed(max_rps=10, backoff=0.5, window_s=2.0), clock=clock)
    for _ in range(32):  # 8 successes per second for 4 seconds
        clock.advance(1 / 8)
        gov.on_success()
    gov.on_throttle()
    assert gov.ceiling == 10.0 and gov.rate == pytest.approx(4.0)


async def test_rate_never_drops_below_minimum() -> None:
    """However many congestion events, the rate stays at min_rps or above."""
    clock = FakeClock()
    gov = Governor(fixed(max_rps=5, min_rps=0.5, backoff=0.3), clock=clock)
    for _ in range(50):
        clock.advance(0.01)
        gov.on_throttle(clock.monotonic())
    assert gov.rate == 0.5


async def test_throttle_slows_subsequent_acquisitions() -> None:
    """After a throttle, the next acquisitions are spaced at the reduced rate."""
    clock = FakeClock()
    gov = Governor(fixed(max_rps=4, burst=1, backoff=0.5, probe=0.0), clock=clock)
    async with gov.slot():
        pass
    gov.on_throttle()  # 2/s now
    t0 = clock.monotonic()
    async with gov.slot():
        pass
    async with gov.slot():
        pass
    assert clock.monotonic() - t0 == pytest.approx(1.0)


def test_settings_reject_nonsense() -> None:
    """Zero or negative rates and caps, shares outside (0, 1), are refused."""
    for kw in ({"max_rps": 0}, {"max_concurrency": 0}, {"burst": 0.5}, {"backoff": 1.5}, {"initial": 0},
               {"probe": -1}, {"ramp_s": 0}):
        with pytest.raises(ValueError, match="must"):
            GovernorSettings(**kw)


# ------------------------------------------------------------------------------ simulated Cost Explorer


class SimClock:
    """Virtual time for many coroutines: ``sleep`` parks the caller until :meth:`run` reaches its wake-up."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self.now + max(0.0, seconds), next(self._seq), fut))
        await fut

    async def run(self, until: float) -> None:
        """Wake sleepers in time order until ``until`` (every runnable coroutine settles between wake-ups)."""
        while True:
            for _ in range(30):
                await asyncio.sleep(0)
            if not self._heap or self._heap[0][0] > until:
                return
            when, _, fut = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            if not fut.cancelled():
                fut.set_result(None)


@dataclass
class SimService:
    """Cost Explorer's throttle as the emulator models it: a token bucket (rate, burst) checked on arrival,
    then ``latency`` (throttles are answered after it too); arrivals jitter by up to ``jitter`` seconds."""

    rate: float
    burst: int
    latency: float
    jitter: float = 0.003
    tokens: float = field(init=False)
    stamp: float = 0.0
    sent: list[float] = field(default_factory=list)
    ok: int = 0
    throttled: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def admit(self, now: float) -> bool:
        self.sent.append(now)
        arrival = now + self.rng.uniform(0.0, self.jitter)
        self.tokens = min(float(self.burst), self.tokens + max(0.0, arrival - self.stamp) * self.rate)
        self.stamp = max(self.stamp, arrival)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.ok += 1
            return True
        self.throttled += 1
        return False


async def simulate(svc: SimService, max_rps: float, chains: int, seconds: float,
                   max_concurrency: int = 64) -> tuple[SimService, Governor]:
    """``chains`` page chains for ``seconds`` of virtual time, each attempt through the governor as the client
    makes it (slot held for the attempt; throttle -> on_throttle and a jittered backoff; success -> on_success)."""
    clock = SimClock()
    gov = Governor(GovernorSettings(max_rps=max_rps, max_concurrency=max_concurrency), clock=clock)
    rng = random.Random(11)

    async def chain() -> None:
        attempt = 0
        while True:
            async with gov.slot() as sent_at:
                accepted = svc.admit(clock.now)
                await clock.sleep(svc.latency)
                if not accepted:
                    gov.on_throttle(sent_at)
            if accepted:
                gov.on_success()
                attempt = 0
            else:
                attempt += 1
                await clock.sleep(rng.uniform(0.0, min(20.0, 0.5 * 2 ** (attempt - 1))))

    tasks = [asyncio.create_task(chain()) for _ in range(chains)]
    await clock.run(seconds)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return svc, gov


@pytest.mark.parametrize(("rate", "burst", "latency", "chains", "share"),
                         [(8, 1, 0.25, 16, 0.93), (20, 5, 0.05, 16, 0.98), (2, 1, 0.25, 8, 0.92), (5, 5, 0.25, 8, 0.98),
                          (5, 1, 0.8, 16, 0.90)])
async def test_holds_the_allowed_rate_with_few_throttles_when_told_two_and_a_half_times_it(
        rate: float, burst: int, latency: float, chains: int, share: float) -> None:
    """Told 2.5x what the service allows, over 5 virtual minutes: most of the allowed rate succeeds (all of it
    with a burst of 5; a one-token bucket throttles early arrivals, so a little less) and <= 2.5% is throttled."""
    seconds = 300.0
    svc, _ = await simulate(SimService(rate, burst, latency), rate * 2.5, chains, seconds)
    assert svc.ok / seconds >= share * rate
    assert svc.throttled / len(svc.sent) <= 0.025


@pytest.mark.parametrize("burst", [1.0, 3.0])
async def test_never_sends_above_max_rps_in_any_window(burst: float) -> None:
    """A service that never throttles: in every 1-second window at most max_rps + burst attempts leave."""
    clock = SimClock()
    gov = Governor(GovernorSettings(max_rps=10, burst=burst, max_concurrency=64), clock=clock)
    sent: list[float] = []

    async def chain() -> None:
        while True:
            async with gov.slot():
                sent.append(clock.now)
                await clock.sleep(0.01)
            gov.on_success()

    tasks = [asyncio.create_task(chain()) for _ in range(40)]
    await clock.run(30.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert len(sent) >= 0.9 * 10 * 30
    j = 0
    for i, when in enumerate(sent):
        while sent[j] <= when - 1.0:
            j += 1
        assert i - j + 1 <= 10 + burst
