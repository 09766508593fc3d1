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


async def test_throttle_cuts_rate_and_success_recovers_it_never_above_max() -> None:
    """A throttle halves the rate; successes add it back gradually and stop at the configured maximum."""
    gov = Governor(GovernorSettings(max_rps=10, decrease=0.5, increase=0.1), clock=FakeClock())
    gov.on_throttle()
    assert gov.rate == 5
    gov.on_throttle()
    assert gov.rate == 2.5
    gov.on_success()
    assert gov.rate == pytest.approx(3.5)
    for _ in range(100):
        gov.on_success()
    assert gov.rate == 10


async def test_rate_never_drops_below_minimum() -> None:
    """However many throttles, the rate stays at min_rps or above."""
    gov = Governor(GovernorSettings(max_rps=5, min_rps=0.5), clock=FakeClock())
    for _ in range(50):
        gov.on_throttle()
    assert gov.rate == 0.5


async def test_throttle_slows_subsequent_acquisitions() -> None:
    """After a throttle, the next acquisitions are spaced at the reduced rate."""
    clock = FakeClock()
    gov = Governor(GovernorSettings(max_rps=4, burst=1, increase=0.0), clock=clock)
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
    for kw in ({"max_rps": 0}, {"max_concurrency": 0}, {"burst": 0.5}, {"decrease": 1.5}):
        with pytest.raises(ValueError, match="must"):
            GovernorSettings(**kw)
