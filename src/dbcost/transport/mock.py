"""``MockTransport``: a transport whose answers come from a handler function, for unit tests.

As in httpx, tests inject a handler instead of patching the library::

    def handler(operation, params):
        if params.get("NextPageToken") is None:
            return {"ResultsByTime": [...], "NextPageToken": "t1"}
        raise ThrottledError("Rate limit exceeded", code="LimitExceededException", status=400)

    transport = MockTransport(handler)

The handler may be sync or async, returns the response dict, or raises a :mod:`dbcost.errors` error.
Every call is recorded in ``transport.calls`` (a deep copy of the params as sent).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["Handler", "MockTransport"]

Handler = Callable[[str, dict[str, Any]], dict[str, Any] | Awaitable[dict[str, Any]]]


class MockTransport:
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        sent = copy.deepcopy(dict(params))
        self.calls.append((operation, sent))
        result = self._handler(operation, copy.deepcopy(sent))
        if inspect.isawaitable(result):
            result = await result
        return copy.deepcopy(result)

    async def __aenter__(self) -> MockTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
