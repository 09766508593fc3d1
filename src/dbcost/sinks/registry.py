"""The sink registry: which class serves a ``--sink`` URL, and the two entry points that use it.

Sinks are named by URL (``--sink``, repeatable): ``jsonl:PATH``, ``parquet:PATH``,
``kafka[+ssl]://HOST:PORT/TOPIC[?idempotence=false]``, ``kinesis://STREAM[?endpoint_url=...&region=...]``,
``postgresql://USER@HOST:PORT/DB``, ``s3://BUCKET/PREFIX``. The scheme (before the first ``:``, any case)
picks the class from :data:`SINK_SCHEMES`; everything after it is that class's business:

* :func:`parse_sink_url` asks the class to ``parse`` the URL into its typed options, and is the up-front
  validator (the CLI calls it before anything is sent): a URL that cannot work is a one-line
  :class:`~dbcost.errors.ConfigError` naming it without its password.
* :func:`open_sink` builds the sink (not yet open: ``async with`` opens it) from the URL and a
  :class:`~dbcost.sinks.base.SinkContext`.

A sink module is imported the first time its scheme is used and is light: its client library
(aiokafka, asyncpg, pyarrow, the AWS transport) is imported when the sink opens or writes. Adding a sink:
a module with a class that has ``parse(url) -> options`` and ``from_url(url, ctx) -> sink`` classmethods
(see :class:`SinkClass`), and one line here.
"""

from __future__ import annotations

import importlib
from typing import Protocol, cast

from dbcost.errors import ConfigError
from dbcost.sinks.base import Sink, SinkContext, SinkOptions, redact_url

__all__ = ["SINK_SCHEMES", "SinkClass", "open_sink", "parse_sink_url", "sink_class"]

#: scheme -> "module:Class"; the module is imported only when a URL of that scheme is parsed or opened.
SINK_SCHEMES: dict[str, str] = {
    "jsonl": "dbcost.sinks.jsonl:JsonlSink",
    "parquet": "dbcost.sinks.parquet:ParquetSink",
    "kafka": "dbcost.sinks.kafka:KafkaSink",
    "kafka+ssl": "dbcost.sinks.kafka:KafkaSink",
    "kinesis": "dbcost.sinks.kinesis:KinesisSink",
    "postgresql": "dbcost.sinks.postgres:PostgresSink",
    "postgres": "dbcost.sinks.postgres:PostgresSink",
    "s3": "dbcost.sinks.s3:S3Sink",
}

#: the URL forms the unknown-kind message offers (one per sink, not per alias)
_FORMS = ("jsonl:PATH", "parquet:PATH", "kafka://HOST:PORT/TOPIC", "kinesis://STREAM",
          "postgresql://USER@HOST:PORT/DB", "s3://BUCKET/PREFIX")


class SinkClass(Protocol):
    """What the registry needs of a sink class: it parses its own URL and builds itself from it."""

    def parse(self, url: str) -> SinkOptions:
        """The typed options of ``url`` (a classmethod); a URL that cannot work is a ConfigError."""
        ...

    def from_url(self, url: str, ctx: SinkContext) -> Sink:
        """The sink for ``url``, not yet open (a classmethod); ``parse`` errors propagate."""
        ...


def sink_class(url: str) -> SinkClass:
    """The class serving ``url``'s scheme; an unknown scheme is a ConfigError listing the known forms."""
    scheme, sep, _ = url.partition(":")
    path = SINK_SCHEMES.get(scheme.lower()) if sep else None
    if path is None:
        known = ", ".join(sorted(_FORMS))
        raise ConfigError(f"--sink {redact_url(url)!r}: unknown kind (use {known})")
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # the sink modules import no client at the top: a broken installation
        raise ConfigError(f"--sink {redact_url(url)}: its client library is not installed: {exc}") from None
    return cast(SinkClass, getattr(module, class_name))


def parse_sink_url(url: str) -> SinkOptions:
    """Validate a ``--sink`` URL, options included, without connecting or importing its client library;
    a bad one is a :class:`ConfigError` naming it (without its password)."""
    return sink_class(url).parse(url)


def open_sink(url: str, ctx: SinkContext | None = None) -> Sink:
    """Build (not yet open) the sink for ``url``; ``ctx`` carries the run-wide settings it may use."""
    return sink_class(url).from_url(url, ctx if ctx is not None else SinkContext())
