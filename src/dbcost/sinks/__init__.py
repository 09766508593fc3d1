"""Sinks: where validated records go besides the embedded DuckDB store.

The interface (:class:`Sink`, :class:`StatusPublisher`, :class:`SinkRecord`) is :mod:`dbcost.sinks.base`;
which class serves a ``--sink`` URL is :mod:`dbcost.sinks.registry`; one module per sink, each light to
import (its client library loads when it opens).
"""

from __future__ import annotations

from dbcost.sinks.base import (
    AdvisoryPublisher,
    Sink,
    SinkBase,
    SinkContext,
    SinkOptions,
    SinkRecord,
    StatusPublisher,
    UnitRef,
    natural_key,
    redact_url,
)
from dbcost.sinks.registry import SINK_SCHEMES, open_sink, parse_sink_url

__all__ = [
    "SINK_SCHEMES",
    "AdvisoryPublisher",
    "Sink",
    "SinkBase",
    "SinkContext",
    "SinkOptions",
    "SinkRecord",
    "StatusPublisher",
    "UnitRef",
    "natural_key",
    "open_sink",
    "parse_sink_url",
    "redact_url",
]
