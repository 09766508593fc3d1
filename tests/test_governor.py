"""Rate governor: token bucket pace, in-flight cap, adaptive cut and recovery — on a fake clock."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from dbcost.clock import FakeClock
from dbcost.governor import Governor, GovernorSettings


async def test_bucket_paces_requests_at_the_configured_rate() -> None:
    """20 acquisitions at 5/s with burst 1 take 19 * 0.2 s of (fake) time."""
    clock = FakeClock()
    gov = Governor(GovernorSettings(max_rps=5, burst=1, max_concurrency=50), clock=clock)
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
    gov = Governor(GovernorSettings(max_rps=2, burst=4), clock=clock)
    times = []
    for _ in range(6):
        async with gov.slot():
            times.append(clock.monotonic())
    assert times[:4] == [0, 0, 0, 0]
    assert times[4:] == [pytest.approx(0.5), pytest.approx(1.0)]


async def test_in_flight_cap_is_never_exceeded_by_concurrent_coroutines() -> None:
    """Many coroutines sharing one governor never hold more slots than max_concurrency."""
    clock = FakeClock()
    gov = Governor(GovernorSettings(max_rps=1000, burst=1000, max_concurrency=3), clock=clock)
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


async def test_throttle_cuts_below_the_ceiling_recovers_fast_then_probes_slowly() -> None:
    """A throttle at 10/s sets the ceiling and halves the rate; successes climb fast to margin x ceiling,
    then only probe, and never pass the configured maximum."""
    gov = Governor(GovernorSettings(max_rps=10, decrease=0.5, increase=0.1, probe=0.01, margin=0.9),
                   clock=FakeClock())
    gov.on_throttle()
    assert (gov.ceiling, gov.rate) == (10, 5)
    rates = []
    for _ in range(6):
        gov.on_success()
        rates.append(round(gov.rate, 6))
    assert rates == [6, 7, 8, 9, 9.1, 9.2]
    for _ in range(1000):
        gov.on_success()
    assert gov.rate == 10


async def test_one_cut_per_congestion_event() -> None:
    """Throttles of attempts released before the last cut are counted but do not cut again."""
    clock = FakeClock()
    gov = Governor(GovernorSettings(max_rps=8, decrease=0.5), clock=clock)
    sent = clock.monotonic()
    clock.advance(0.1)
    for _ in range(5):  # five in-flight requests come back throttled from the same burst
        gov.on_throttle(sent)
    assert gov.throttles == 5 and gov.cuts == 1 and gov.rate == 4
    clock.advance(0.1)
    gov.on_throttle(clock.monotonic())  # a request sent after the cut: a new event
    assert gov.cuts == 2 and gov.rate == 2


async def test_ceiling_is_the_rate_the_service_accepted() -> None:
    """Configured at 10/s but the service accepted 2/s over the last window: the ceiling is 2, not 10."""
    clock = FakeClock()
    gov = Governor(GovernorSettings(max_rps=10, decrease=0.5, window_s=2.0), clock=clock)
    for _ in range(8):  # 2 successes per second for 4 seconds
        clock.advance(0.5)
        gov.on_success()
    gov.on_throttle()
    assert gov.ceiling == 2.0 and gov.rate == 1.0


async def test_rate_never_drops_below_minimum() -> None:
    """However many congestion events, the rate stays at min_rps or above."""
    clock = FakeClock()
    gov = Governor(GovernorSettings(max_rps=5, min_rps=0.5), clock=clock)
    for _ in range(50):
        clock.advance(0.01)
        gov.on_throttle(clock.monotonic())
    assert gov.rate == 0.5


async def test_throttle_slows_subsequent_acquisitions() -> None:
    """After a throttle, the next acquisitions are spaced at the reduced rate."""
    clock = FakeClock()
    gov = Governor(GovernorSettings(max_rps=4, burst=1, decrease=0.5, increase=0.0, probe=0.0), clock=clock)
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
    """Zero or negative rates and caps are refused."""
    for kw in ({"max_rps": 0}, {"max_concurrency": 0}, {"burst": 0.5}, {"decrease": 1.5}, {"margin": 0}):
        with pytest.raises(ValueError, match="must"):
            GovernorSettings(**kw)
