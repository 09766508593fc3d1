"""What the server sinks (:mod:`~dbcost.sinks.kafka`, :mod:`~dbcost.sinks.kinesis`,
:mod:`~dbcost.sinks.postgres`) share: reading their URL options and retrying a call under the policy
those options set.

Options: :func:`check_options` refuses an option the sink does not know; :func:`bool_option`,
:func:`int_option` and :func:`number_option` read one ``?name=value`` of
:attr:`SinkSpec.options <dbcost.sinks.base.SinkSpec.options>` (the default when absent) and raise a
one-line :class:`~dbcost.errors.ConfigError` naming ``--sink URL`` when the value is malformed or below
its minimum. :func:`retry_policy_from` builds the sink's :class:`~dbcost.retry.RetryPolicy` from
``retries`` (attempts, the first included), ``backoff_ms`` (base of the full-jitter backoff) and
``retry_budget_s`` (total time one call may spend retrying); each sink passes its own defaults.

Retrying: :func:`retry_sink` runs a call under :func:`dbcost.retry.retry` and turns running out of
attempts or time into ``TransientSinkError("NAME: gave up after N attempts[, time budget of Xs spent]:
last error")``, so the pipeline does not checkpoint the unit and ``--resume`` sends it again. The call
raises dbcost errors already (each sink translates its library's exceptions itself); only
:class:`~dbcost.errors.Retryable` ones are tried again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from dbcost.clock import Clock
from dbcost.errors import ConfigError, RetryExhaustedError, TransientSinkError
from dbcost.retry import RetryPolicy, retry
from dbcost.sinks.base import SinkSpec

__all__ = ["bool_option", "check_options", "int_option", "number_option", "retry_policy_from", "retry_sink"]

T = TypeVar("T")

_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})

#: longest backoff sleep between two attempts, seconds (not an option)
_BACKOFF_CAP_S = 10.0


def check_options(spec: SinkSpec, known: frozenset[str]) -> None:
    """Refuse a ``?name=`` the sink does not know (a typo would otherwise be silently ignored)."""
    unknown = sorted(set(spec.options) - known)
    if unknown:
        raise ConfigError(f"--sink {spec.display}: unknown option(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")


def bool_option(spec: SinkSpec, name: str, default: bool) -> bool:
    """``?name=`` as true/false (also 1/0, yes/no, on/off, any case)."""
    raw = spec.options.get(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"--sink {spec.display}: ?{name}={raw!r} is not true/false")


def int_option(spec: SinkSpec, name: str, default: int, minimum: int) -> int:
    """``?name=`` as an integer of at least ``minimum``."""
    raw = spec.options.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"--sink {spec.display}: ?{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"--sink {spec.display}: ?{name}={value} must be at least {minimum}")
    return value


def number_option(spec: SinkSpec, name: str, default: float, minimum: float) -> float:
    """``?name=`` as a number (a float) of at least ``minimum``; NaN is rejected."""
    raw = spec.options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"--sink {spec.display}: ?{name}={raw!r} is not a number") from None
    if not value >= minimum:  # also rejects NaN
        raise ConfigError(f"--sink {spec.display}: ?{name}={raw} must be at least {minimum:g}")
    return value


def retry_policy_from(spec: SinkSpec, *, retries: int, backoff_ms: float, budget_s: float,
                      integers: bool = False) -> RetryPolicy:
    """The policy set by ``?retries=``, ``?backoff_ms=`` and ``?retry_budget_s=`` (the keyword arguments
    are their defaults), backoff capped at 10 s.

    ``integers=True`` reads the three as integers (:func:`int_option`: ``retry_budget_s`` at least 1 s),
    else as numbers (:func:`number_option`: ``retries`` truncated, ``retry_budget_s`` at least 1 ms).
    """
    if integers:
        return RetryPolicy(
            max_attempts=int_option(spec, "retries", retries, 1),
            base_s=int_option(spec, "backoff_ms", int(backoff_ms), 0) / 1000,
            cap_s=_BACKOFF_CAP_S,
            budget_s=float(int_option(spec, "retry_budget_s", int(budget_s), 1)),
        )
    return RetryPolicy(
        max_attempts=int(number_option(spec, "retries", retries, 1)),
        base_s=number_option(spec, "backoff_ms", backoff_ms, 0) / 1000,
        cap_s=_BACKOFF_CAP_S,
        budget_s=number_option(spec, "retry_budget_s", budget_s, 0.001),
    )


async def retry_sink(name: str, call: Callable[[], Awaitable[T]], policy: RetryPolicy, *,
                     clock: Clock | None, what: str) -> T:
    """``call`` under ``policy``; running out of attempts or time is a TransientSinkError naming sink ``name``.

    The message carries the last error without its own ``name: `` prefix, on one line.
    """
    try:
        return await retry(call, policy, clock=clock, what=what)
    except RetryExhaustedError as exc:
        cause = exc.__cause__
        detail = str(cause).removeprefix(f"{name}: ") if cause is not None else str(exc)
        why = "" if exc.attempts >= policy.max_attempts else f", time budget of {policy.budget_s:g}s spent"
        raise TransientSinkError(f"{name}: gave up after {exc.attempts} attempts{why}: "
                                 f"{detail}".replace("\n", " ")) from exc
