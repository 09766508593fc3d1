"""The transport seam: one async call per AWS operation, JSON in, JSON out, errors in ``dbcost.errors``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["Transport"]


class Transport(Protocol):
    """Sends one request for ``operation`` (e.g. ``"GetCostAndUsage"``) and returns the parsed response.

    Implementations raise only :mod:`dbcost.errors` exceptions, never a library's own.
    """

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]: ...
