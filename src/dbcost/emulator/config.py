"""The emulator's knobs, checked once, in one place.

The same rules serve the Python API (``EmulatorConfig(...)``, ``Emulator.update(...)``), the admin
endpoint (``POST /_emulator/config``) and the CLI, so a bad value is refused with the same one-line
message everywhere (the CLI turns it into exit code 2). Rates and latency are the only floats in the
emulator; money never is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from dbcost.calendar import RESTATEMENT_GRACE_DAYS

__all__ = ["RUNTIME_KNOBS", "EmulatorConfig", "parse_today"]

#: Knobs that ``Emulator.update`` / ``POST /_emulator/config`` may change while serving.
RUNTIME_KNOBS: Final[frozenset[str]] = frozenset(
    {
        "fault_rate",
        "drop_rate",
        "malformed_rate",
        "max_rps",
        "burst",
        "latency_ms",
        "page_size",
        "today",
        "token_ttl_s",
        "estimated_through_day",
        "resource_data_enabled",
    }
)


def parse_today(value: object) -> dt.date | None:
    """``None``, a ``date`` or an ISO ``YYYY-MM-DD`` string; anything else is a ``ValueError``."""
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"today must be a date YYYY-MM-DD, got {value!r}") from None
    raise ValueError(f"today must be a date YYYY-MM-DD, got {value!r}")


def _rate(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")


def _count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Everything that shapes one emulator: where it listens, the fleet, and the misbehaviour knobs.

    ``today=None`` means the real (UTC) date, read per request. ``max_rps=None`` disables throttling;
    ``burst`` defaults to ``max(1, int(max_rps))``. ``fault_rate`` (HTTP 500/503) and ``drop_rate``
    (connection closed without an answer) are drawn from one uniform number, so their sum must be <= 1.
    ``estimated_through_day``: the previous month is served ``Estimated`` (and still moves on ``restate()``)
    through this day of the new month, as Cost Explorer keeps it until it is final (about the 5th); 0 makes it
    final on the 1st. The default is the client's restatement window (``dbcost.calendar.RESTATEMENT_GRACE_DAYS``).
    ``resource_data_enabled=False``: the payer has not opted in to resource-level data, and every
    GetCostAndUsageWithResources request is answered with the not-enabled error (:mod:`dbcost.emulator.server`).
    """

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 7
    clusters: int = 240
    accounts: int = 6
    today: dt.date | None = None
    max_rps: float | None = None
    burst: int | None = None
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    page_size: int = 500
    token_ttl_s: float = 600.0
    estimated_through_day: int = RESTATEMENT_GRACE_DAYS
    resource_data_enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ValueError("host must be a non-empty string")
        _count("port", self.port, 0)
        if self.port > 65535:
            raise ValueError(f"port must be <= 65535, got {self.port}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        _count("clusters", self.clusters, 0)
        _count("accounts", self.accounts, 1)
        parse_today(self.today)
        if self.max_rps is not None and (
            isinstance(self.max_rps, bool) or not isinstance(self.max_rps, int | float) or self.max_rps <= 0
        ):
            raise ValueError(f"max_rps must be a number > 0 (or unset for no throttling), got {self.max_rps!r}")
        if self.burst is not None:
            _count("burst", self.burst, 1)
        if (
            isinstance(self.latency_ms, bool)
            or not isinstance(self.latency_ms, int | float)
            or not 0 <= self.latency_ms <= 600_000
        ):
            raise ValueError(f"latency_ms must be between 0 and 600000, got {self.latency_ms!r}")
        for name in ("fault_rate", "drop_rate", "malformed_rate"):
            _rate(name, getattr(self, name))
        if self.fault_rate + self.drop_rate > 1.0:
            raise ValueError(
                f"fault_rate + drop_rate must be <= 1, got {self.fault_rate} + {self.drop_rate}"
            )
        _count("page_size", self.page_size, 1)
        if (
            isinstance(self.token_ttl_s, bool)
            or not isinstance(self.token_ttl_s, int | float)
            or self.token_ttl_s <= 0
        ):
            raise ValueError(f"token_ttl_s must be a number > 0, got {self.token_ttl_s!r}")
        _count("estimated_through_day", self.estimated_through_day, 0)
        if self.estimated_through_day > 28:
            raise ValueError(f"estimated_through_day must be <= 28 (a day every month has), "
                             f"got {self.estimated_through_day}")
        if not isinstance(self.resource_data_enabled, bool):
            raise ValueError(f"resource_data_enabled must be true or false, got {self.resource_data_enabled!r}")

    @property
    def effective_burst(self) -> int:
        """The token-bucket capacity: ``burst`` if set, else ``max(1, int(max_rps))``."""
        if self.burst is not None:
            return self.burst
        return max(1, int(self.max_rps or 1))

    def with_knobs(self, knobs: dict[str, Any]) -> EmulatorConfig:
        """A copy with runtime knobs changed (``today`` may be an ISO string); unknown knobs refused."""
        unknown = sorted(set(knobs) - RUNTIME_KNOBS)
        if unknown:
            raise ValueError(
                f"unknown or fixed knob {unknown[0]!r}; runtime knobs are {', '.join(sorted(RUNTIME_KNOBS))}"
            )
        changes = dict(knobs)
        if "today" in changes:
            changes["today"] = parse_today(changes["today"])
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["today"] = self.today.isoformat() if self.today else None
        out["effective_burst"] = self.effective_burst if self.max_rps is not None else None
        return out
