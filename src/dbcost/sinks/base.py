"""The sink interface: where validated records go besides the embedded DuckDB store.

A sink receives one *unit* at a time (one target, one dataset, one window ``[start, end)``), after the
unit has been committed to the store, as batches of :class:`SinkRecord` in period order. When
``write_unit`` returns, everything it was given is durable in the sink (flushed, acknowledged,
committed); only then does the pipeline write the unit's checkpoint. A sink that fails raises
:class:`~dbcost.errors.TransientSinkError` (worth a retry) or :class:`~dbcost.errors.SinkError`; the
unit is then not checkpointed, so ``--resume`` sends it again (at-least-once).

Versions: every record carries ``version``, assigned by the store. It increases when a restated value
is written (and for a record that disappeared in a restatement a ``deleted`` record is sent with a new
version), and stays the same when an unchanged record is sent again. A consumer that keeps, per
``key``, the record with the highest version (dropping ``deleted`` ones) holds exactly the store's
content, whatever was sent twice.

Sinks are named by URL (``--sink``, repeatable): ``jsonl:PATH``, ``parquet:PATH``,
``kafka://HOST:PORT/TOPIC[?idempotence=false]``, ``kinesis://STREAM[?endpoint_url=...&region=...]``,
``postgresql://USER@HOST:PORT/DB``. Heavy clients are imported inside each sink's module, lazily.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qs, urlsplit

from dbcost.errors import ConfigError

__all__ = [
    "SINK_SCHEMES",
    "Sink",
    "SinkRecord",
    "SinkSpec",
    "UnitRef",
    "natural_key",
    "open_sink",
    "parse_sink_url",
    "redact_url",
]


@dataclass(frozen=True, slots=True)
class UnitRef:
    """The unit a batch belongs to: a sink that replaces by range deletes exactly this range."""

    run_id: str
    dataset: str
    target: str
    start: dt.date
    end: dt.date
    granularity: str
    key_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """One record as streaming/server sinks receive it.

    ``record`` is the ``dbcost fetch`` JSONL shape (period_start, period_end, granularity, keys,
    metrics{name: {amount, unit}}, estimated) with amounts as exact decimal strings.
    """

    key: str
    dataset: str
    target: str
    version: int
    run_id: str
    record: dict[str, Any]
    deleted: bool = False

    def to_message(self) -> dict[str, Any]:
        """The message value: the JSONL record plus dataset, target, version, run_id (and deleted)."""
        msg = dict(self.record)
        msg["dataset"] = self.dataset
        msg["target"] = self.target
        msg["version"] = self.version
        msg["run_id"] = self.run_id
        if self.deleted:
            msg["deleted"] = True
        return msg


def natural_key(dataset: str, target: str, period_start: str, key_values: tuple[str | None, ...]) -> str:
    """``dataset|target|period_start|k1|k2``: stable, human-readable, unique per record.

    Key values are JSON-encoded so that ``|`` inside a tag value cannot collide with the separator and an
    absent key (a Total-only record) differs from an empty tag value.
    """
    import orjson

    return "|".join((dataset, target, period_start, orjson.dumps(list(key_values)).decode()))


@runtime_checkable
class Sink(Protocol):
    #: a display name without credentials (``kafka://127.0.0.1:9092/costs``)
    name: str

    async def open(self) -> None: ...

    async def write_unit(self, unit: UnitRef, batches: AsyncIterator[list[SinkRecord]]) -> int:
        """Write every batch of ``unit``; durable on return. Returns the number of records written."""
        ...

    async def publish_status(self, event: dict[str, Any]) -> None:
        """A quota status change (Kafka sends these to a second topic; others may ignore them)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class SinkSpec:
    """A parsed ``--sink`` URL."""

    scheme: str
    url: str
    location: str  # path, topic, stream or DSN
    host: str | None = None
    port: int | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """The URL without a password."""
        return redact_url(self.url)


#: scheme -> "module:factory"; the module is imported only when a sink of that scheme is opened.
SINK_SCHEMES: dict[str, str] = {
    "jsonl": "dbcost.sinks.jsonl:JsonlSink",
    "parquet": "dbcost.sinks.parquet:ParquetSink",
    "kafka": "dbcost.sinks.kafka:KafkaSink",
    "kinesis": "dbcost.sinks.kinesis:KinesisSink",
    "postgresql": "dbcost.sinks.postgres:PostgresSink",
    "postgres": "dbcost.sinks.postgres:PostgresSink",
}


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages, logs and the runs table)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        password = None
    if not password:
        return url
    return url.replace(f":{password}@", ":***@", 1)


def parse_sink_url(url: str) -> SinkSpec:
    """Validate a ``--sink`` URL; a bad one is a :class:`ConfigError` naming it (without its password)."""
    shown = redact_url(url)
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in SINK_SCHEMES:
        known = ", ".join(sorted({"jsonl:PATH", "parquet:PATH", "kafka://HOST:PORT/TOPIC", "kinesis://STREAM",
                                  "postgresql://USER@HOST:PORT/DB"}))
        raise ConfigError(f"--sink {shown!r}: unknown kind (use {known})")
    if scheme in ("jsonl", "parquet"):
        path = rest.removeprefix("//")
        if not path:
            raise ConfigError(f"--sink {shown!r}: a path is required, e.g. {scheme}:out/records.{scheme}")
        return SinkSpec(scheme, url, path)
    parts = urlsplit(url)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"--sink {shown!r}: the port is not a number") from None
    if scheme == "kafka":
        topic = parts.path.lstrip("/")
        if not parts.hostname or not port or not topic:
            raise ConfigError(f"--sink {shown!r}: use kafka://HOST:PORT/TOPIC")
        return SinkSpec(scheme, url, topic, parts.hostname, port, options)
    if scheme == "kinesis":
        stream = (parts.netloc + parts.path).strip("/")
        if not stream:
            raise ConfigError(f"--sink {shown!r}: use kinesis://STREAM")
        return SinkSpec(scheme, url, stream, None, None, options)
    # postgresql
    if not parts.hostname or not parts.path.strip("/"):
        raise ConfigError(f"--sink {shown!r}: use postgresql://USER@HOST:PORT/DB")
    return SinkSpec("postgresql", url, parts.path.strip("/"), parts.hostname, port or 5432, options)


def open_sink(url: str, **context: Any) -> Sink:
    """Build (not yet open) the sink for ``url``. ``context`` carries run-wide settings a sink may use
    (e.g. ``endpoint_url``/``region`` for Kinesis)."""
    spec = parse_sink_url(url)
    module_name, _, factory_name = SINK_SCHEMES[spec.scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = {"kafka": "kafka", "postgresql": "postgres"}.get(spec.scheme)
        hint = f" (pip install 'dbcost[{extra}]')" if extra else ""
        raise ConfigError(f"--sink {spec.display}: its client library is not installed{hint}: {exc}") from None
    factory: Callable[..., Sink] = getattr(module, factory_name)
    return factory(spec, **context)
