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

Lifecycle: a :class:`Sink` is an async context manager: ``async with sink:`` opens it (connects,
creates what it needs) and closes it (flushes, disconnects), also when a write failed. A sink is built,
not yet open, by :func:`dbcost.sinks.registry.open_sink` from its ``--sink`` URL and a
:class:`SinkContext` (the run-wide settings a sink may use); every sink parses its own URL into its own
typed options. :class:`SinkBase` gives a sink's ``open``/``close`` the ``async with`` form.

Quota status: a sink that also carries quota status changes (Kafka, to a second topic) implements
:class:`StatusPublisher` besides :class:`Sink`; the record interface knows nothing of them. Advisory events
(``dbcost advise``) likewise go to a sink that implements :class:`AdvisoryPublisher` (Kafka: ``<topic>.advisories``).
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

if TYPE_CHECKING:
    from dbcost.clock import Clock
    from dbcost.transport.base import Transport

__all__ = [
    "SECRET_OPTIONS",
    "AdvisoryPublisher",
    "Sink",
    "SinkBase",
    "SinkContext",
    "SinkOptions",
    "SinkRecord",
    "StatusPublisher",
    "UnitRef",
    "natural_key",
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
    metrics{name: {amount, unit}}, estimated) with amounts as exact decimal strings. Build one with
    :meth:`from_record`, which derives ``key`` the one way every sink and consumer relies on.
    """

    key: str
    dataset: str
    target: str
    version: int
    run_id: str
    record: dict[str, Any]
    deleted: bool = False

    @classmethod
    def from_record(cls, unit: UnitRef, record: dict[str, Any], *, version: int, run_id: str,
                    deleted: bool = False) -> SinkRecord:
        """The sink record of ``record`` (the JSONL shape; a tombstone needs only period_start,
        granularity and keys) in ``unit``: keyed by :func:`natural_key` over the unit's key names, an
        absent key being ``None``. ``run_id`` is the run that wrote this version (not always the unit's)."""
        keys: Mapping[str, str] = record.get("keys") or {}
        key = natural_key(unit.dataset, unit.target, record["period_start"],
                          tuple(keys.get(name) for name in unit.key_names))
        return cls(key, unit.dataset, unit.target, version, run_id, record, deleted)

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


def natural_key(dataset: str, target: str, period_start: str, key_values: Sequence[str | None]) -> str:
    """``dataset|target|period_start|k1|k2``: stable, human-readable, unique per record.

    Key values are JSON-encoded so that ``|`` inside a tag value cannot collide with the separator and an
    absent key (a Total-only record) differs from an empty tag value.
    """
    import orjson

    return "|".join((dataset, target, period_start, orjson.dumps(list(key_values)).decode()))


#: ``?name=`` options whose value is a secret, in any sink URL. The Kafka sink refuses them (its credentials
#: come from the environment or a file) without repeating their value; redaction must never show one.
SECRET_OPTIONS: frozenset[str] = frozenset({
    "password", "passwd", "pass", "secret", "token", "access_token", "api_key", "sasl_password",
    "sasl_plain_password", "sasl_oauth_token", "ssl_password", "ssl_key_password", "key_password",
    "keyfile_password", "aws_secret_access_key", "aws_session_token",
})

#: query parameters whose value is a secret, compared without case, ``-`` and ``_``, also as a suffix
#: (``sasl_password``, ``api_key``, ``access_token``, ``client_secret``)
_SECRET_PARAMS = ("password", "passwd", "pwd", "sslpassword", "token", "secret", "key", "apikey", "signature",
                  "credential", "credentials", "auth", "authorization", "sig")


def _is_secret(name: str) -> bool:
    if name.lower() in SECRET_OPTIONS:
        return True
    norm = name.lower().replace("-", "").replace("_", "")
    return any(norm == s or norm.endswith(s) for s in _SECRET_PARAMS)


def redact_url(url: str) -> str:
    """``url`` with every secret-bearing part replaced by ``***``: the userinfo password, and the value of any
    query parameter named like a secret (``password``, ``sslpassword``, ``token``, ``secret``, ``key`` and
    their spellings such as ``sasl_password``, ``api_key``, ``access_token``). For messages, logs and the
    runs table: the URL stays recognisable (scheme, host, path, the other options). A URL that cannot be
    split is shown without anything after its host."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        head = url.split("?", 1)[0].split("#", 1)[0]
        if "@" in head:
            scheme, sep, rest = head.partition("://")
            head = f"{scheme}{sep}***@{rest.rsplit('@', 1)[1]}" if sep else "***@" + head.rsplit("@", 1)[1]
        return head + ("?***" if "?" in url else "")
    netloc = parts.netloc
    if password:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_is_secret(k) for k, _ in pairs):
            query = "&".join(f"{quote(k, safe='')}={'***' if _is_secret(k) else quote(v, safe='')}" for k, v in pairs)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class SinkContext:
    """Run-wide settings a sink may use besides its URL; the URL's own options win over them.

    ``endpoint_url``/``region``/``profile``/``credentials`` reach the AWS sinks (Kinesis): the CLI passes
    the run's region and profile, never its Cost Explorer endpoint. ``transport`` (an already-open
    :class:`~dbcost.transport.base.Transport`, owned by the caller) and ``clock`` (a
    :class:`~dbcost.clock.Clock` for the retry backoff and token ages) are how tests and benchmarks reach a
    sink's seams; ``environ`` replaces the process environment for the variables a sink reads.
    """

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    #: (access key id, secret access key); None = the AWS credential chain
    credentials: tuple[str, str] | None = field(default=None, repr=False)
    transport: Transport | None = field(default=None, repr=False, compare=False)
    clock: Clock | None = field(default=None, repr=False, compare=False)
    #: the environment the sinks' documented variables are read from (``DBCOST_KAFKA_USERNAME``,
    #: ``DBCOST_KAFKA_PASSWORD``) when a sink is built; None = the process environment
    environ: Mapping[str, str] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class SinkOptions:
    """What every sink's typed options carry: the URL they were parsed from (not in the repr: it may
    hold a password)."""

    url: str = field(repr=False)

    @property
    def display(self) -> str:
        """The URL without a password."""
        return redact_url(self.url)


@runtime_checkable
class Sink(Protocol):
    """Where committed units go. ``async with sink:`` opens and closes it; ``open``/``close`` are the same
    two steps for a caller that manages the lifetime itself."""

    #: a display name without credentials (``kafka://127.0.0.1:9092/costs``)
    name: str

    async def open(self) -> None:
        """Connect and create what the sink needs; a sink whose open fails leaves nothing open."""
        ...

    async def write_unit(self, unit: UnitRef, batches: AsyncIterator[list[SinkRecord]]) -> int:
        """Write every batch of ``unit``; durable on return. Returns the number of records written."""
        ...

    async def close(self) -> None:
        """Flush and disconnect; a no-op when not open."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None: ...


@runtime_checkable
class StatusPublisher(Protocol):
    """A sink that also carries quota status changes (``dbcost quota check --sink``), once open."""

    async def publish_status(self, event: Mapping[str, Any]) -> None:
        """Deliver one status change (a JSON object: pool, month, old, new, ...); durable on return."""
        ...


@runtime_checkable
class AdvisoryPublisher(Protocol):
    """A sink that also carries advisory events (``dbcost advise --sink``), once open."""

    async def publish_advisories(self, events: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Deliver advisory events, each (stable key, JSON object with a ``version``); durable on return."""
        ...


class SinkBase(abc.ABC):
    """The ``async with`` form of a sink's ``open``/``close``; the sinks of this package derive from it."""

    name: str

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def write_unit(self, unit: UnitRef, batches: AsyncIterator[list[SinkRecord]]) -> int: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.open()  # a failed open cleans up after itself: there is nothing for __aexit__ to close
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        # closed on every way out; a close error replaces the body's (chained to it), as with try/finally
        await self.close()
