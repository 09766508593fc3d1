"""What the sinks share: splitting their URL, reading its options, importing their client library on
open, and retrying a call under the policy those options set.

File URLs: :func:`file_path` reads the path of ``jsonl:PATH``/``parquet:DIR``.

URL: :meth:`ServerUrl.split` splits ``scheme://[USER@]HOST[:PORT]/PATH?name=value&...`` once (a port that
is not a number is a one-line :class:`~dbcost.errors.ConfigError`); each sink's ``parse`` then checks its
own grammar on it (:meth:`ServerUrl.refuse` words the refusal) and reads its options into a typed dataclass.

Options: :func:`check_options` refuses an option the sink does not know; :func:`bool_option`,
:func:`int_option` and :func:`number_option` read one ``?name=value`` of :attr:`ServerUrl.options` (the
default when absent) and raise a one-line :class:`~dbcost.errors.ConfigError` naming ``--sink URL`` when
the value is malformed or below its minimum. :func:`retry_policy_from` builds the sink's
:class:`~dbcost.retry.RetryPolicy` from ``retries`` (attempts, the first included), ``backoff_ms`` (base of
the full-jitter backoff) and ``retry_budget_s`` (total time one call may spend retrying); each sink passes
its own defaults.

Client libraries (aiokafka, asyncpg) are imported when a sink opens, never when its URL is parsed; they
come with an extra (``pip install 'dbcost[kafka]'``), not with a plain install. :func:`check_installed` is
the up-front check a ``parse`` ends with (it finds the module without importing it), so a missing one is
refused before anything is sent or written; :func:`require_client` imports it on open and turns a broken
installation into the same one-line ConfigError naming the extra.

Retrying: :func:`retry_sink` runs a call under :func:`dbcost.retry.retry` and turns running out of
attempts or time into ``TransientSinkError("NAME: gave up after N attempts[, time budget of Xs spent]:
last error")``, so the pipeline does not checkpoint the unit and ``--resume`` sends it again. The call
raises dbcost errors already (each sink translates its library's exceptions itself); only
:class:`~dbcost.errors.Retryable` ones are tried again.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import SplitResult, parse_qs, urlsplit

from dbcost.clock import Clock
from dbcost.errors import ConfigError, RetryExhaustedError, TransientSinkError
from dbcost.retry import RetryPolicy, retry
from dbcost.sinks.base import redact_url

__all__ = [
    "ServerUrl",
    "bool_option",
    "check_installed",
    "check_options",
    "file_path",
    "int_option",
    "number_option",
    "require_client",
    "retry_policy_from",
    "retry_sink",
]

T = TypeVar("T")

_TRUE, _FALSE = frozenset({"true", "1", "yes", "on"}), frozenset({"false", "0", "no", "off"})

#: longest backoff sleep between two attempts, seconds (not an option)
_BACKOFF_CAP_S = 10.0


def file_path(url: str) -> Path:
    """The path of a ``jsonl:``/``parquet:`` URL (a ``//`` after the scheme is optional); none is a ConfigError."""
    scheme, _, rest = url.partition(":")
    path = rest.removeprefix("//")
    if not path:
        scheme = scheme.lower()
        raise ConfigError(f"--sink {redact_url(url)!r}: a path is required, e.g. {scheme}:out/records.{scheme}")
    return Path(path)


@dataclass(frozen=True, slots=True)
class ServerUrl:
    """A ``scheme://...`` ``--sink`` URL split once: what a server sink's ``parse`` reads."""

    url: str
    parts: SplitResult
    port: int | None
    #: ``?name=value`` (the last one of a repeated name; an empty value counts as absent)
    options: dict[str, str]

    @classmethod
    def split(cls, url: str) -> ServerUrl:
        """Split ``url``; a port that is not a number (or out of range) is a ConfigError."""
        parts = urlsplit(url)
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"--sink {redact_url(url)!r}: the port is not a number") from None
        return cls(url, parts, port, options)

    @property
    def display(self) -> str:
        """The URL without a password."""
        return redact_url(self.url)

    def refuse(self, form: str) -> ConfigError:
        """The error for a URL that does not follow the sink's ``form`` (``kafka://HOST:PORT/TOPIC``)."""
        return ConfigError(f"--sink {self.display!r}: use {form}")


def check_installed(display: str, module: str, extra: str) -> None:
    """Refuse a sink whose client library (``module``) is not installed, in one line naming the extra;
    finds the module without importing it (parsing a URL stays cheap)."""
    try:
        missing = importlib.util.find_spec(module) is None
    except ValueError:  # in sys.modules as None: an import of it is refused
        missing = True
    if missing:
        raise ConfigError(f"--sink {display}: needs {module}, which is not installed: "
                          f"pip install 'dbcost[{extra}]'")


def require_client(display: str, module: str, extra: str) -> None:
    """Import a sink's client library (``module``) now; missing, it is a ConfigError naming the extra."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"--sink {display}: its client library is not installed "
                          f"(pip install 'dbcost[{extra}]'): {exc}") from None


def check_options(url: ServerUrl, known: frozenset[str]) -> None:
    """Refuse a ``?name=`` the sink does not know (a typo would otherwise be silently ignored)."""
    unknown = sorted(set(url.options) - known)
    if unknown:
        raise ConfigError(f"--sink {url.display}: unknown option(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")


def bool_option(url: ServerUrl, name: str, default: bool) -> bool:
    """``?name=`` as true/false (also 1/0, yes/no, on/off, any case)."""
    raw = url.options.get(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"--sink {url.display}: ?{name}={raw!r} is not true/false")


def int_option(url: ServerUrl, name: str, default: int, minimum: int) -> int:
    """``?name=`` as an integer of at least ``minimum``."""
    raw = url.options.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"--sink {url.display}: ?{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"--sink {url.display}: ?{name}={value} must be at least {minimum}")
    return value


def number_option(url: ServerUrl, name: str, default: float, minimum: float) -> float:
    """``?name=`` as a number (a float) of at least ``minimum``; NaN is rejected."""
    raw = url.options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"--sink {url.display}: ?{name}={raw!r} is not a number") from None
    if not value >= minimum:  # also rejects NaN
        raise ConfigError(f"--sink {url.display}: ?{name}={raw} must be at least {minimum:g}")
    return value


def retry_policy_from(url: ServerUrl, *, retries: int, backoff_ms: float, budget_s: float,
                      integers: bool = False) -> RetryPolicy:
    """The policy set by ``?retries=``, ``?backoff_ms=`` and ``?retry_budget_s=`` (the keyword arguments
    are their defaults), backoff capped at 10 s.

    ``integers=True`` reads the three as integers (:func:`int_option`: ``retry_budget_s`` at least 1 s),
    else as numbers (:func:`number_option`: ``retries`` truncated, ``retry_budget_s`` at least 1 ms).
    """
    if integers:
        return RetryPolicy(
            max_attempts=int_option(url, "retries", retries, 1),
            base_s=int_option(url, "backoff_ms", int(backoff_ms), 0) / 1000,
            cap_s=_BACKOFF_CAP_S,
            budget_s=float(int_option(url, "retry_budget_s", int(budget_s), 1)),
        )
    return RetryPolicy(
        max_attempts=int(number_option(url, "retries", retries, 1)),
        base_s=number_option(url, "backoff_ms", backoff_ms, 0) / 1000,
        cap_s=_BACKOFF_CAP_S,
        budget_s=number_option(url, "retry_budget_s", budget_s, 0.001),
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
