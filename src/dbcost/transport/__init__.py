"""Transports: how a request reaches an AWS API. ``AwsTransport`` is imported lazily (it pulls in
aioboto3); ``MockTransport`` is for tests of everything above the transport."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbcost.transport.base import Transport
from dbcost.transport.mock import MockTransport

if TYPE_CHECKING:
    from dbcost.transport.aws import AwsTransport

__all__ = ["AwsTransport", "MockTransport", "Transport"]


def __getattr__(name: str) -> Any:
    if name == "AwsTransport":
        from dbcost.transport.aws import AwsTransport

        return AwsTransport
    raise AttributeError(name)
