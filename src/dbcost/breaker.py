"""Circuit breaker: closed -> open after consecutive failures -> half-open probe after a cool-down.

What counts as a failure: an attempt that ended in a retryable error other than a throttle (5xx,
dropped connection, timeout). A throttle is the service's request to slow down, which the governor
answers; it neither trips nor heals the breaker. Any answer that shows the service is up (success, or a
non-retryable API error such as ``ValidationException``) closes it.

While open, calls fail fast with :class:`~dbcost.errors.CircuitOpenError`. After ``reset_timeout_s``
one call is let through as a probe (half-open); others keep failing fast until the probe's outcome is
known: success closes the breaker, failure re-opens it for another cool-down.
"""

from __future__ import annotations

import enum

from dbcost.clock import Clock, SystemClock
from dbcost.errors import CircuitOpenError

__all__ = ["DEFAULT_FAILURE_THRESHOLD", "DEFAULT_RESET_TIMEOUT_S", "Breaker", "BreakerState"]


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


#: consecutive failures that open the breaker
DEFAULT_FAILURE_THRESHOLD = 8
#: seconds the breaker stays open before it lets one probe through
DEFAULT_RESET_TIMEOUT_S = 30.0


class Breaker:
    def __init__(
        self,
        *,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        reset_timeout_s: float = DEFAULT_RESET_TIMEOUT_S,
        clock: Clock | None = None,
        name: str = "target",
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.name = name
        self._clock = clock or SystemClock()
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.times_opened = 0

    def before_call(self) -> None:
        """Raise :class:`CircuitOpenError` unless a call may go out now."""
        if self.state is BreakerState.CLOSED:
            return
        if self.state is BreakerState.OPEN:
            waited = self._clock.monotonic() - self._opened_at
            if waited < self.reset_timeout_s:
                raise CircuitOpenError(
                    f"{self.name}: circuit open after {self.consecutive_failures} consecutive failures; "
                    f"next probe in {self.reset_timeout_s - waited:.1f}s"
                )
            self.state = BreakerState.HALF_OPEN
        if self._probe_in_flight:
            raise CircuitOpenError(f"{self.name}: circuit half-open, a probe is in flight")
        self._probe_in_flight = True

    def on_success(self) -> None:
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self._probe_in_flight = False

    def on_failure(self) -> None:
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN or self.consecutive_failures >= self.failure_threshold:
            if self.state is not BreakerState.OPEN:
                self.times_opened += 1
            self.state = BreakerState.OPEN
            self._opened_at = self._clock.monotonic()
        self._probe_in_flight = False

    def on_neutral(self) -> None:
        """An outcome that says nothing about health (a throttle): release a probe slot, change nothing."""
        self._probe_in_flight = False
