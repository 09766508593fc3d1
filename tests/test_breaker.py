"""The circuit breaker: opens after consecutive failures, fails fast, half-open probes, on a fake clock."""

from __future__ import annotations

import pytest

from dbcost.breaker import Breaker, BreakerState
from dbcost.clock import FakeClock
from dbcost.errors import (
    CircuitOpenError,
)


def test_breaker_opens_after_consecutive_failures_and_fails_fast() -> None:
    """N consecutive failures open it; calls then fail fast with CircuitOpenError."""
    clock = FakeClock()
    b = Breaker(failure_threshold=3, reset_timeout_s=10, clock=clock)
    for _ in range(3):
        b.before_call()
        b.on_failure()
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError, match="circuit open"):
        b.before_call()


def test_success_resets_the_consecutive_count() -> None:
    """Failures separated by a success never open the breaker."""
    b = Breaker(failure_threshold=3, clock=FakeClock())
    for _ in range(10):
        b.on_failure()
        b.on_failure()
        b.on_success()
    assert b.state is BreakerState.CLOSED


def test_half_open_probe_after_cool_down() -> None:
    """After the cool-down one probe goes through; others fail fast; success closes, failure re-opens."""
    clock = FakeClock()
    b = Breaker(failure_threshold=1, reset_timeout_s=10, clock=clock)
    b.on_failure()
    clock.advance(9.9)
    with pytest.raises(CircuitOpenError):
        b.before_call()
    clock.advance(0.2)
    b.before_call()  # the probe
    assert b.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError, match="probe"):
        b.before_call()
    b.on_failure()
    assert b.state.value == "open"  # (a value compare: mypy keeps the HALF_OPEN narrowing from above)
    clock.advance(10)
    b.before_call()
    b.on_success()
    assert b.state.value == "closed"
    b.before_call()


def test_throttles_are_neutral_for_the_breaker() -> None:
    """A throttle releases a half-open probe slot without opening or closing the breaker."""
    clock = FakeClock()
    b = Breaker(failure_threshold=1, reset_timeout_s=1, clock=clock)
    b.on_failure()
    clock.advance(2)
    b.before_call()
    b.on_neutral()
    assert b.state is BreakerState.HALF_OPEN
    b.before_call()  # a new probe is allowed
