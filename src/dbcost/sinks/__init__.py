"""Sinks: where validated records go besides the embedded DuckDB store (see :mod:`dbcost.sinks.base`)."""

from __future__ import annotations

from dbcost.sinks.base import Sink, SinkRecord, SinkSpec, UnitRef, natural_key, open_sink, parse_sink_url

__all__ = ["Sink", "SinkRecord", "SinkSpec", "UnitRef", "natural_key", "open_sink", "parse_sink_url"]
