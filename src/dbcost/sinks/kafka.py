"""Kafka sink: one message per record, keyed by the record's natural key, through aiokafka.

``kafka://HOST:PORT/TOPIC[?option=value&...]``, or ``kafka+ssl://...`` for TLS (``security_protocol=SSL``)

=================  ==========================  ==========================================================
option             default                     meaning
=================  ==========================  ==========================================================
``idempotence``    ``true``                    idempotent producer (the broker must grant a producer id)
``compression``    ``none``                    ``none``, ``gzip``, ``lz4``, ``zstd``, ``snappy``
                                               (all but gzip need the ``cramjam`` package)
``batch_size``     ``262144``                  bytes per record batch (``max_batch_size``)
``timeout_ms``     ``30000``                   request timeout; an unacknowledged batch fails after it
``retries``        ``5``                       attempts per batch (the first send included)
``backoff_ms``     ``200``                     base of the full-jitter backoff between attempts
``retry_budget_s`` ``120``                     total time one batch may spend retrying
``create_topics``  ``true``                    create the topic(s) when missing (AIOKafkaAdminClient;
                                               "already exists" and "not authorized" are fine)
``partitions``     ``3``                       partitions of a created topic
``replication``    ``1``                       replication factor of a created topic (3 on a cluster)
``status_topic``   ``<TOPIC>.quota-status``    where :meth:`KafkaSink.publish_status` sends
``client_id``      ``dbcost``                  the Kafka client id
=================  ==========================  ==========================================================

``<TOPIC>.advisories`` is where :meth:`KafkaSink.publish_advisories` sends the events of ``dbcost advise``
(created with the other topics), keyed by the advisory's stable id, each with its ``version``.

Security (TLS, SASL, MSK IAM):

=====================  ========================  ======================================================
option                 default                   meaning
=====================  ========================  ======================================================
``security_protocol``  see below                 ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``
``cafile``             the system's CAs          PEM bundle of the CA(s) the broker's certificate must
                                                 chain to
``certfile``           none                      PEM client certificate for mutual TLS (its key too, or:)
``keyfile``            none                      PEM private key of ``certfile`` (unencrypted)
``check_hostname``     ``true``                  the certificate must name HOST (``false``: the chain is
                                                 still verified, the name is not)
``sasl_mechanism``     none                      ``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``,
                                                 ``OAUTHBEARER``, ``AWS_MSK_IAM``
``password_file``      none                      file holding the password (OAUTHBEARER: the token),
                                                 one line; wins over ``DBCOST_KAFKA_PASSWORD``
``region``             see below                 AWS_MSK_IAM: the cluster's region
``profile``            the run's ``--profile``   AWS_MSK_IAM: the AWS profile of the credential chain
``role_arn``           none                      AWS_MSK_IAM: a role to assume (refreshed before expiry)
``external_id``        none                      AWS_MSK_IAM: the ``ExternalId`` of ``role_arn``
=====================  ========================  ======================================================

* Protocol: ``security_protocol=`` when given (``kafka+ssl://`` accepts only ``SSL``/``SASL_SSL``); else
  ``SSL`` for ``kafka+ssl://`` and ``PLAINTEXT`` for ``kafka://``, or with a ``sasl_mechanism`` ``SASL_SSL``
  (``kafka+ssl://``, and always for ``AWS_MSK_IAM``: MSK serves IAM over TLS only) or ``SASL_PLAINTEXT``.
  TLS options without TLS, SASL without a mechanism, a mechanism without SASL: refused.
* Credentials never go in the URL (a ``user:password@`` or a ``?password=``-like option is refused, and
  the refusal does not repeat it): the user name is the URL's ``USER@`` or ``DBCOST_KAFKA_USERNAME``; the
  password ``password_file=`` (checked when the URL is parsed, read again when the sink opens; for
  OAUTHBEARER at every authentication, so a rotated token file is picked up) or ``DBCOST_KAFKA_PASSWORD``
  (read when the URL is parsed, from :attr:`SinkContext.environ <dbcost.sinks.base.SinkContext>`, the
  process environment by default). PLAIN and SCRAM need both, OAUTHBEARER a token. No message, log line,
  repr or runs-table row holds a password.
* ``AWS_MSK_IAM``: SASL/OAUTHBEARER with tokens signed by AWS's ``aws-msk-iam-sasl-signer-python`` from the
  Cost Explorer calls' credential chain (the run's static keys, else the profile's chain; ``role_arn``
  assumed from it), refreshed before they expire (:mod:`dbcost.sinks._kafka_auth`). The region is
  ``?region=``, else the one in an MSK host name (``b-1.c.x.c2.kafka.REGION.amazonaws.com``), else the
  run's, else the profile's; none is an error when the sink opens.
* Every file option is checked when the URL is parsed: certificates and keys are loaded (a bad PEM, a key
  that does not match, an encrypted key are one-line errors), ``password_file`` must be readable and not
  empty.

Failures: aiokafka reports a failed bootstrap as "Unable to bootstrap" and only logs the cause, so when
the sink cannot connect (at open) it makes one connection of its own to the bootstrap broker to name it:
a TLS handshake and one request (the certificate
expired, is signed by an unknown CA, does not match the host name; a client certificate is required or
refused; the port does not speak TLS, see :mod:`dbcost.sinks._tls`) and, past TLS, aiokafka's own
connection with the SASL settings (authentication failed, mechanism not offered). Such a cause is a
:class:`~dbcost.errors.SinkError` (not retried: another attempt cannot fix a certificate or a password)
in one line naming the sink; the unit is not checkpointed, and ``--resume`` with the option fixed sends
it. A connection refused or timed out stays a :class:`~dbcost.errors.TransientSinkError`, and so does a
broker that fails TLS only later (one other than the bootstrap broker, or a certificate that expires
mid-run): aiokafka retries those connections itself and the sink sees batches not acknowledged.

Parsing the URL (:meth:`KafkaSink.parse`, which :func:`~dbcost.sinks.registry.parse_sink_url` calls up
front) checks every option without importing aiokafka; aiokafka is imported when the sink opens.

Message: key = :attr:`SinkRecord.key` (utf-8: ``dataset|target|period_start|["k1","k2"]``), value =
``orjson.dumps(record.to_message())`` (the ``dbcost fetch`` JSONL record plus dataset, target, version,
run_id and ``deleted`` for a tombstone; amounts stay exact decimal strings). The partition is the
producer's default, murmur2 of the key (as in the Java client), so one key always lands on one partition.

Batching: the sink builds the record batches itself (``create_batch``/``send_batch``), one open batch
per partition, and submits a batch when it is full (``batch_size``) and a unit's last batches as soon as
the unit ends. That replaces the producer's ``linger_ms``: a unit never waits out a linger at its end (the
pipeline checkpoints only after the last acknowledgement), and there is no future per message. Measured
on Tansu, ``send()`` + ``linger_ms=20`` gave ~28k records/s on 870-record units, this ~75k.

Guarantee: **at-least-once**. Every message is produced with ``acks="all"`` and :meth:`write_unit`
returns only when every message of the unit has been acknowledged by the broker, so the pipeline
checkpoints a unit only after Kafka holds all of it. A batch the broker did not acknowledge is sent again
(only its messages, after a full-jitter backoff, ``retries`` attempts in all); one that still fails makes
:meth:`write_unit` raise (:class:`~dbcost.errors.TransientSinkError` when the broker was unavailable), the
unit is not checkpointed and ``--resume`` sends it again. So a message may arrive twice — a retry after a
lost acknowledgement, a re-sent unit — but always with the same key and the same ``version``. The
idempotent producer (the default) keeps the producer's own internal retries from writing a batch twice;
every other duplicate is removed by the consumer: **keep, per key, the message with the highest ``version`` and drop
it when it says ``deleted``** — that is exactly the store's content, whatever was sent twice and in
whichever order. Note that topic compaction keeps the *last offset* per key, not the highest version: a
consumer must compare versions, it cannot rely on log order alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal
import functools
import importlib.util
import os
import re
import ssl
import struct
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import orjson

from dbcost.clock import Clock
from dbcost.errors import ConfigError, DbcostError, SinkError, TransientSinkError, is_retryable
from dbcost.retry import RetryPolicy
from dbcost.sinks import _tls
from dbcost.sinks._common import (
    ServerUrl,
    bool_option,
    check_installed,
    check_options,
    int_option,
    require_client,
    retry_policy_from,
    retry_sink,
)
from dbcost.sinks.base import SECRET_OPTIONS, SinkBase, SinkContext, SinkOptions, SinkRecord, UnitRef, redact_url

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer
    from aiokafka.abc import AbstractTokenProvider
    from aiokafka.partitioner import DefaultPartitioner

__all__ = ["MECHANISMS", "PASSWORD_ENV", "SECURITY_PROTOCOLS", "USERNAME_ENV", "KafkaOptions", "KafkaSink"]

T = TypeVar("T")

_Message = tuple[bytes | None, bytes]
#: a submitted batch: its messages and its delivery future (or the error that kept it from being queued)
_Sent = tuple[list[_Message], "asyncio.Future[Any] | BaseException"]

_FORMS = {"kafka": "kafka://HOST:PORT/TOPIC", "kafka+ssl": "kafka+ssl://HOST:PORT/TOPIC"}
_TLS_OPTIONS = ("cafile", "certfile", "keyfile", "check_hostname")
_AWS_OPTIONS = ("region", "profile", "role_arn", "external_id")
_OPTIONS = frozenset({
    "idempotence", "compression", "batch_size", "timeout_ms", "retries", "backoff_ms",
    "retry_budget_s", "create_topics", "partitions", "replication", "status_topic", "client_id",
    "security_protocol", "sasl_mechanism", "password_file", *_TLS_OPTIONS, *_AWS_OPTIONS,
})

#: where the SASL user name and password come from when the URL has none (read at the edge: SinkContext.environ)
USERNAME_ENV = "DBCOST_KAFKA_USERNAME"
PASSWORD_ENV = "DBCOST_KAFKA_PASSWORD"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM")
_PASSWORD_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})
#: an AWS region name (us-east-1, us-gov-west-1, cn-north-1, ...)
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")
#: the region inside an MSK broker or bootstrap host name (provisioned and serverless clusters)
_MSK_HOST = re.compile(r"\.kafka(?:-serverless)?\.([a-z]{2}(?:-[a-z]+)+-\d{1,2})\.amazonaws\.com(?:\.cn)?$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
_SIGNER = "aws_msk_iam_sasl_signer"



def _api_versions_request() -> bytes:
    """ApiVersions v0 (api key 18, correlation id 1, client id ``dbcost-probe``): what the TLS probe sends,
    so that a broker answers and a refusal that TLS 1.3 delivers after the handshake is read."""
    client_id = b"dbcost-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    return struct.pack(">i", len(body)) + body
_COMPRESSION = {"none": None, "gzip": "gzip", "lz4": "lz4", "zstd": "zstd", "snappy": "snappy"}
#: the codecs aiokafka runs through cramjam (its has_lz4/has_zstd/has_snappy check exactly that import)
_CRAMJAM_CODECS = frozenset({"lz4", "zstd", "snappy"})

#: Messages submitted but not yet confirmed before write_unit waits for the oldest batches: keeps memory
#: bounded on big units while the producer still has plenty in flight.
_MAX_UNCONFIRMED = 20_000


@functools.cache
def _transient_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "not now" even though aiokafka does not flag them ``retriable`` (aiokafka is
    imported here, on first use, never when a URL is parsed)."""
    from aiokafka import errors as kerr

    return (
        OSError,
        TimeoutError,
        kerr.KafkaTimeoutError,
        kerr.KafkaConnectionError,
        kerr.KafkaUnavailableError,
        kerr.NoBrokersAvailable,
        kerr.BrokerNotAvailableError,
        kerr.RequestTimedOutError,
        kerr.QuotaViolationError,
        kerr.NotEnoughReplicasError,
        kerr.NotEnoughReplicasAfterAppendError,
    )


@functools.cache
def _partitioner() -> DefaultPartitioner:
    """The producer's own default: murmur2(key) like the Java client, so every producer of a topic agrees."""
    from aiokafka.partitioner import DefaultPartitioner

    return DefaultPartitioner()


def _refuse_secrets(url: str) -> None:
    """Refuse a ``?password=``-like option before anything words an error with the URL (which would show it)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return  # ServerUrl.split words this one
    names = sorted({k.lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True)} & SECRET_OPTIONS)
    if names:
        bare = redact_url(urlunsplit(parts._replace(query="")))
        raise ConfigError(f"--sink {bare}?...: ?{names[0]}= would put a secret in the URL (logs, the runs table): "
                          f"use {PASSWORD_ENV} or ?password_file=PATH")


def _file_option(u: ServerUrl, name: str) -> Path | None:
    """``?name=PATH``: an existing, readable file."""
    raw = u.options.get(name)
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ConfigError(f"--sink {u.display}: ?{name}={raw}: no such file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"--sink {u.display}: ?{name}={raw}: not readable")
    return path


def _read_password_file(path: Path) -> str:
    """The one line of a password (or token) file, without its line end; empty or unreadable: ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"password_file={path}: cannot read it ({type(exc).__name__})") from None
    value = text.rstrip("\r\n")
    if not value:
        raise ConfigError(f"password_file={path}: the file is empty")
    return value


def _security(u: ServerUrl, *, tls_scheme: bool, environ: Mapping[str, str]) -> dict[str, Any]:
    """The security fields of :class:`KafkaOptions` from ``u`` (see the module doc for the rules)."""
    where = f"--sink {u.display}"
    mechanism = (u.options.get("sasl_mechanism") or "").upper() or None
    if mechanism is not None and mechanism not in MECHANISMS:
        raise ConfigError(f"{where}: ?sasl_mechanism={u.options['sasl_mechanism']!r} (use one of {', '.join(MECHANISMS)})")
    raw_protocol = u.options.get("security_protocol")
    if raw_protocol is not None:
        protocol = raw_protocol.upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(f"{where}: ?security_protocol={raw_protocol!r} (use one of {', '.join(SECURITY_PROTOCOLS)})")
        if tls_scheme and protocol not in ("SSL", "SASL_SSL"):
            raise ConfigError(f"{where}: kafka+ssl:// is TLS: use security_protocol=SSL or SASL_SSL, or kafka://")
    elif mechanism is not None:
        protocol = "SASL_SSL" if tls_scheme or mechanism == "AWS_MSK_IAM" else "SASL_PLAINTEXT"
    else:
        protocol = "SSL" if tls_scheme else "PLAINTEXT"
    sasl, tls = protocol.startswith("SASL_"), protocol in ("SSL", "SASL_SSL")
    if sasl and mechanism is None:
        raise ConfigError(f"{where}: security_protocol={protocol} needs ?sasl_mechanism= "
                          f"({', '.join(MECHANISMS)})")
    if mechanism is not None and not sasl:
        raise ConfigError(f"{where}: ?sasl_mechanism= needs security_protocol=SASL_SSL or SASL_PLAINTEXT, "
                          f"not {protocol}")
    given_tls = [n for n in _TLS_OPTIONS if n in u.options]
    if given_tls and not tls:
        raise ConfigError(f"{where}: ?{given_tls[0]}= is a TLS option: use kafka+ssl:// or "
                          "security_protocol=SSL/SASL_SSL")
    given_aws = [n for n in _AWS_OPTIONS if n in u.options]
    if given_aws and mechanism != "AWS_MSK_IAM":
        raise ConfigError(f"{where}: ?{given_aws[0]}= applies to sasl_mechanism=AWS_MSK_IAM only")

    cafile, certfile, keyfile = (_file_option(u, n) for n in ("cafile", "certfile", "keyfile"))
    if keyfile is not None and certfile is None:
        raise ConfigError(f"{where}: ?keyfile= needs ?certfile= (the client certificate it belongs to)")
    check_hostname = bool_option(u, "check_hostname", True)
    if tls:
        try:  # load every certificate and key now: a bad file is an error before anything is sent
            _tls.client_context(cafile=cafile, certfile=certfile, keyfile=keyfile, check_hostname=check_hostname)
        except _tls.TlsFileError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    password_file = _file_option(u, "password_file")
    if password_file is not None:
        if mechanism is None or mechanism == "AWS_MSK_IAM":
            raise ConfigError(f"{where}: ?password_file= needs sasl_mechanism=PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 "
                              "or OAUTHBEARER")
        try:
            _read_password_file(password_file)
        except ConfigError as exc:
            raise ConfigError(f"{where}: ?{exc}") from None
    username = unquote(u.parts.username) if u.parts.username else environ.get(USERNAME_ENV) or None
    password = None if password_file is not None else environ.get(PASSWORD_ENV) or None
    if mechanism in _PASSWORD_MECHANISMS:
        if not username:
            raise ConfigError(f"{where}: SASL {mechanism} needs a user name: kafka://USER@HOST:PORT/TOPIC or "
                              f"{USERNAME_ENV}")
        if password_file is None and password is None:
            raise ConfigError(f"{where}: SASL {mechanism} needs a password: {PASSWORD_ENV} or ?password_file=PATH")
    elif mechanism == "OAUTHBEARER" and password_file is None and password is None:
        raise ConfigError(f"{where}: SASL OAUTHBEARER needs a token: ?password_file=PATH (re-read at every "
                          f"authentication) or {PASSWORD_ENV}")

    fields: dict[str, Any] = {
        "security_protocol": protocol, "cafile": cafile, "certfile": certfile, "keyfile": keyfile,
        "check_hostname": check_hostname, "sasl_mechanism": mechanism,
        "username": username if mechanism in _PASSWORD_MECHANISMS else None,
        "password": password if mechanism in _PASSWORD_MECHANISMS or mechanism == "OAUTHBEARER" else None,
        "password_file": password_file,
    }
    if mechanism == "AWS_MSK_IAM":
        fields.update(_msk_options(u, where))
    return fields


def _msk_options(u: ServerUrl, where: str) -> dict[str, Any]:
    region = u.options.get("region")
    if region is not None and not _REGION.match(region):
        raise ConfigError(f"{where}: ?region={region!r} is not an AWS region name (like us-east-1)")
    if region is None and u.parts.hostname and (m := _MSK_HOST.search(u.parts.hostname.lower())):
        region = m.group(1)
    role_arn = u.options.get("role_arn")
    if role_arn is not None and not _ROLE_ARN.match(role_arn):
        raise ConfigError(f"{where}: ?role_arn={role_arn!r} is not an IAM role ARN "
                          "(arn:aws:iam::123456789012:role/NAME)")
    external_id = u.options.get("external_id")
    if external_id is not None and role_arn is None:
        raise ConfigError(f"{where}: ?external_id= needs ?role_arn=")
    if importlib.util.find_spec(_SIGNER) is None:
        raise ConfigError(f"{where}: sasl_mechanism=AWS_MSK_IAM needs AWS's signer, aws-msk-iam-sasl-signer-python "
                          "(pip install 'dbcost[kafka]')")
    return {"aws_region": region, "aws_profile": u.options.get("profile"), "role_arn": role_arn,
            "external_id": external_id}


def _scram_server_error(exc: BaseException) -> str | None:
    """The ``e=...`` server-error of the SCRAM message aiokafka failed to read (RFC 5802: ``e=unknown-user``,
    ``e=invalid-proof``), found as the argument of its frame in the traceback; None when ``exc`` is not that."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if (frame.f_globals.get("__name__") == "aiokafka.conn"
                and frame.f_code.co_name in ("process_server_first_message", "process_server_final_message")):
            message = frame.f_locals.get("server_final", frame.f_locals.get("server_first"))
            if isinstance(message, str) and message.startswith("e="):
                return message.split(",", 1)[0]
            return None
        tb = tb.tb_next
    return None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, dt.date | dt.datetime):
        return obj.isoformat()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    """Mark a delivery future's exception as retrieved (its failure is handled through the message list)."""
    if not fut.cancelled():
        fut.exception()


@dataclass(frozen=True, kw_only=True)
class KafkaOptions(SinkOptions):
    """A parsed ``kafka://HOST:PORT/TOPIC[?option=value&...]``; see the module doc for each option."""

    host: str
    port: int
    topic: str
    status_topic: str
    idempotence: bool
    compression: str | None  # aiokafka's compression_type
    batch_size: int
    timeout_ms: int
    create_topics: bool
    partitions: int
    replication: int
    client_id: str
    retry: RetryPolicy
    security_protocol: str = "PLAINTEXT"
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    check_hostname: bool = True
    sasl_mechanism: str | None = None  # as given (AWS_MSK_IAM included); aiokafka gets OAUTHBEARER for it
    username: str | None = None
    #: DBCOST_KAFKA_PASSWORD when there is no password_file (never shown: not in the repr)
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    aws_region: str | None = None  # AWS_MSK_IAM: ?region= or the MSK host name's
    aws_profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def tls(self) -> bool:
        """The connection is TLS (``SSL`` or ``SASL_SSL``)."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext:
        """A fresh client context for these options (raises :class:`~dbcost.sinks._tls.TlsFileError`)."""
        return _tls.client_context(cafile=self.cafile, certfile=self.certfile, keyfile=self.keyfile,
                                   check_hostname=self.check_hostname)


class KafkaSink(SinkBase):
    """Produces each record to ``TOPIC`` (quota status events to ``status_topic``, advisory events to
    ``<TOPIC>.advisories``); see the module doc.

    Also a :class:`~dbcost.sinks.base.StatusPublisher` and an :class:`~dbcost.sinks.base.AdvisoryPublisher`.
    ``ctx.clock`` runs the backoff (tests inject a FakeClock to run it without sleeping).
    """

    @classmethod
    def parse(cls, url: str, environ: Mapping[str, str] | None = None) -> KafkaOptions:
        """The options of ``url``, checked without importing aiokafka; a bad one is a ConfigError.

        ``environ`` holds ``DBCOST_KAFKA_USERNAME``/``DBCOST_KAFKA_PASSWORD`` (None: the process environment).
        """
        _refuse_secrets(url)
        u = ServerUrl.split(url)
        scheme = u.parts.scheme.lower()
        form = _FORMS.get(scheme, _FORMS["kafka"])
        topic = u.parts.path.lstrip("/")
        if not u.parts.hostname or not u.port or not topic:
            raise u.refuse(form)
        if u.parts.password is not None:
            raise ConfigError(f"--sink {u.display}: a password does not belong in the URL (it would reach logs and "
                              f"the runs table): use {PASSWORD_ENV} or ?password_file=PATH")
        check_options(u, _OPTIONS)
        security = _security(u, tls_scheme=scheme == "kafka+ssl", environ=os.environ if environ is None else environ)
        status_topic = u.options.get("status_topic") or f"{topic}.quota-status"
        idempotence = bool_option(u, "idempotence", True)
        compression = u.options.get("compression", "none").lower()
        if compression not in _COMPRESSION:
            raise ConfigError(f"--sink {u.display}: ?compression={compression!r} "
                              f"(use one of {', '.join(_COMPRESSION)})")
        if compression in _CRAMJAM_CODECS and importlib.util.find_spec("cramjam") is None:
            raise ConfigError(f"--sink {u.display}: ?compression={compression} needs the 'cramjam' package "
                              "(pip install cramjam), or use gzip")
        check_installed(u.display, "aiokafka", "kafka")
        return KafkaOptions(
            url=url, host=u.parts.hostname, port=u.port, topic=topic, status_topic=status_topic,
            idempotence=idempotence, compression=_COMPRESSION[compression],
            batch_size=int_option(u, "batch_size", 256 * 1024, 1024),
            timeout_ms=int_option(u, "timeout_ms", 30_000, 100),
            create_topics=bool_option(u, "create_topics", True),
            partitions=int_option(u, "partitions", 3, 1),
            replication=int_option(u, "replication", 1, 1),
            client_id=u.options.get("client_id") or "dbcost",
            retry=retry_policy_from(u, retries=5, backoff_ms=200, budget_s=120, integers=True),
            **security,
        )

    @classmethod
    def from_url(cls, url: str, ctx: SinkContext) -> KafkaSink:
        return cls(cls.parse(url, ctx.environ), ctx)

    def __init__(self, options: KafkaOptions, ctx: SinkContext | None = None) -> None:
        ctx = ctx if ctx is not None else SinkContext()
        self.options = options
        self.name = options.display
        self.topic = options.topic
        self.status_topic = options.status_topic
        self.advisories_topic = f"{options.topic}.advisories"
        self.idempotence = options.idempotence
        self.policy = options.retry
        self._clock: Clock | None = ctx.clock
        # AWS_MSK_IAM: the URL's region/profile win over the run's (the Cost Explorer calls' own)
        self.aws_region = options.aws_region or ctx.region or None
        self.aws_profile = options.aws_profile or ctx.profile or None
        self._aws_credentials = ctx.credentials
        self._producer: AIOKafkaProducer | None = None
        self._client_options: dict[str, Any] | None = None
        # An idempotent producer retries a batch until it succeeds (aiokafka never expires it), so the wait
        # for acknowledgements is bounded here rather than by the producer.
        self._delivery_timeout_s = 2 * options.timeout_ms / 1000 + 1.0

    def __repr__(self) -> str:
        return f"KafkaSink({self.name!r})"

    # -- security --------------------------------------------------------------------------------------
    def client_options(self) -> dict[str, Any]:
        """The keyword arguments every aiokafka client of this sink gets (producer, admin client, probe):
        bootstrap, client id, timeout and the security settings (SSL context, SASL mechanism and
        credentials or token provider). Built on first use, then the same objects (one token cache)."""
        if self._client_options is not None:
            return self._client_options
        o = self.options
        kw: dict[str, Any] = {"bootstrap_servers": o.bootstrap, "client_id": o.client_id,
                              "request_timeout_ms": o.timeout_ms, "security_protocol": o.security_protocol}
        try:
            if o.tls:
                kw["ssl_context"] = o.ssl_context()
            if o.sasl_mechanism in _PASSWORD_MECHANISMS:
                password = _read_password_file(o.password_file) if o.password_file else o.password
                kw.update(sasl_mechanism=o.sasl_mechanism, sasl_plain_username=o.username,
                          sasl_plain_password=password)
            elif o.sasl_mechanism == "OAUTHBEARER":
                kw.update(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=self._bearer_provider())
            elif o.sasl_mechanism == "AWS_MSK_IAM":
                kw.update(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=self._msk_provider())
        except (_tls.TlsFileError, ConfigError) as exc:  # a file changed since the URL was parsed
            raise SinkError(f"{self.name}: {exc}") from None
        self._client_options = kw
        return kw

    def _bearer_provider(self) -> AbstractTokenProvider:
        from dbcost.sinks._kafka_auth import BearerTokenProvider

        o = self.options
        if o.password_file is not None:
            return BearerTokenProvider(path=o.password_file)
        return BearerTokenProvider(token=o.password)

    def _msk_provider(self) -> AbstractTokenProvider:
        from dbcost.sinks._kafka_auth import AwsCredentialChain, MskIamTokenProvider

        if self.aws_region is None:  # last: the profile's (or AWS_REGION / AWS_DEFAULT_REGION) region
            from aiobotocore.session import AioSession

            self.aws_region = AioSession(profile=self.aws_profile).get_config_variable("region") or None
        if self.aws_region is None:
            raise SinkError(f"{self.name}: sasl_mechanism=AWS_MSK_IAM needs the cluster's region: add "
                            "?region= (or --region)")
        chain = AwsCredentialChain(profile=self.aws_profile, region=self.aws_region,
                                   credentials=self._aws_credentials, role_arn=self.options.role_arn,
                                   external_id=self.options.external_id)
        return MskIamTokenProvider(self.aws_region, chain, clock=self._clock)

    @property
    def token_provider(self) -> AbstractTokenProvider | None:
        """The OAUTHBEARER/AWS_MSK_IAM token provider the clients use (None without one)."""
        provider: AbstractTokenProvider | None = self.client_options().get("sasl_oauth_token_provider")
        return provider

    # -- errors ----------------------------------------------------------------------------------------
    @staticmethod
    def _is_transient(exc: BaseException) -> bool:
        from aiokafka import errors as kerr

        if isinstance(exc, SinkError):
            return isinstance(exc, TransientSinkError)
        if isinstance(exc, ssl.SSLError):  # an OSError, but no retry fixes a certificate
            return False
        if isinstance(exc, DbcostError):
            return is_retryable(exc)
        if isinstance(exc, _transient_errors()):
            return True
        return isinstance(exc, kerr.KafkaError) and bool(exc.retriable)

    def _detail(self, exc: BaseException) -> str:
        from aiokafka import errors as kerr

        text = str(exc)
        detail = text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"
        detail = detail.replace("\n", " ")
        if self.idempotence and isinstance(exc, kerr.UnknownError | kerr.UnsupportedVersionError |
                                           kerr.ClusterAuthorizationFailedError):
            detail += " (the broker refused an idempotent producer; add ?idempotence=false)"
        return detail

    def _translate(self, exc: BaseException, what: str) -> SinkError:
        """One library exception -> a one-line dbcost error naming this sink; a TLS, SASL or AWS credential
        failure is a SinkError (never retried) naming its cause."""
        if isinstance(exc, SinkError):
            return exc
        cause = self._auth_cause(exc)
        if cause is not None:
            return SinkError(f"{self.name}: {what}: {cause}")
        cls = TransientSinkError if self._is_transient(exc) else SinkError
        return cls(f"{self.name}: {what}: {self._detail(exc)}")

    def _auth_cause(self, exc: BaseException) -> str | None:
        """One line naming a TLS, SASL or AWS credential failure, or None when ``exc`` is none of those."""
        from aiokafka import errors as kerr

        o = self.options
        if isinstance(exc, ssl.SSLError):
            return _tls.describe(exc, o.host, o.port, client_cert=o.certfile is not None)
        mechanism = o.sasl_mechanism
        who = f" as {o.username!r}" if o.username else ""
        if isinstance(exc, kerr.SaslAuthenticationFailed | kerr.IllegalSaslStateError):
            hint = (" (does the IAM policy allow kafka-cluster:Connect on this cluster?)"
                    if mechanism == "AWS_MSK_IAM" else "")
            said = str(exc.args[0]) if exc.args and exc.args[0] else type(exc).__name__  # the broker's message
            return f"SASL {mechanism} authentication{who} failed: {said}{hint}".replace("\n", " ")
        if isinstance(exc, kerr.UnsupportedSaslMechanismError):
            return f"SASL: {exc}".replace("\n", " ")
        if mechanism and mechanism.startswith("SCRAM-") and isinstance(exc, KeyError | ValueError):
            server_error = _scram_server_error(exc)
            if server_error is not None:
                # aiokafka 0.14 does not read RFC 5802's "e=" server-error: it fails looking for the signature
                return f"SASL {mechanism} authentication{who} failed: the broker answered {server_error!r}"
        if mechanism == "AWS_MSK_IAM" and isinstance(exc, DbcostError) and not is_retryable(exc):
            return f"AWS_MSK_IAM: {exc}".replace("\n", " ")  # no credentials, AssumeRole refused (STS down: retried)
        return None

    async def _diagnose(self, exc: BaseException, what: str) -> SinkError:
        """The error for a failed connect. aiokafka's bootstrap only says "Unable to bootstrap" (it logs the
        cause), so then one connection of our own names a TLS or SASL cause (see the module doc)."""
        from aiokafka import errors as kerr

        error = self._translate(exc, what)
        if not isinstance(error, TransientSinkError) or not isinstance(exc, kerr.KafkaConnectionError):
            return error
        cause = await self._probe()
        return SinkError(f"{self.name}: {what}: {cause}") if cause is not None else error

    async def _probe(self) -> str | None:
        """A TLS handshake + one request (TLS causes), then aiokafka's own connection with the SASL settings
        (SASL causes): the cause in one line, or None when neither fails for a reason of its own."""
        from aiokafka.conn import create_conn

        o = self.options
        kw = self.client_options()
        if o.tls:
            cause = await _tls.probe(o.host, o.port, kw["ssl_context"], request=_api_versions_request(),
                                     timeout_s=o.timeout_ms / 1000, client_cert=o.certfile is not None)
            if cause is not None:
                return cause
        if o.sasl_mechanism is None:
            return None
        conn_kw = {k: v for k, v in kw.items() if k != "bootstrap_servers"}
        try:
            conn = await create_conn(o.host, o.port, **conn_kw)
        except Exception as exc:
            return self._auth_cause(exc)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await conn.close()
        return None

    async def _retry(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """``call`` under the sink's bounded policy; running out of attempts is a TransientSinkError."""
        return await retry_sink(self.name, call, self.policy, clock=self._clock, what=what)

    # -- lifecycle -------------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._producer is not None:
            return
        require_client(self.name, "aiokafka", "kafka")
        if self.options.sasl_mechanism == "AWS_MSK_IAM":
            require_client(self.name, _SIGNER, "kafka")
        self.client_options()  # the SSL context and credentials, once, before the first connection
        if self.options.create_topics:
            await self._retry(self._create_topics_once, "create topics")
        self._producer = await self._retry(self._start_producer_once, "connect")

    async def _create_topics_once(self) -> None:
        from aiokafka import errors as kerr
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        o = self.options
        admin = AIOKafkaAdminClient(**self.client_options())
        try:
            await admin.start()
            topics = [NewTopic(t, o.partitions, o.replication) for t in dict.fromkeys(
                (self.topic, self.status_topic, self.advisories_topic))]
            response = await admin.create_topics(topics)
        except Exception as exc:
            raise await self._diagnose(exc, "create topics") from exc
        finally:
            await admin.close()
        for entry in response.topic_errors:
            topic, code = entry[0], entry[1]
            if code in (0, kerr.TopicAlreadyExistsError.errno, kerr.TopicAuthorizationFailedError.errno,
                        kerr.ClusterAuthorizationFailedError.errno):
                continue  # exists, or not ours to create: the producer's metadata check below decides
            err = kerr.for_code(code)()
            raise self._translate(err, f"create topic {topic!r}") from err

    async def _start_producer_once(self) -> AIOKafkaProducer:
        from aiokafka import AIOKafkaProducer

        o = self.options
        producer = AIOKafkaProducer(
            **self.client_options(),
            acks="all",
            enable_idempotence=o.idempotence,
            max_batch_size=o.batch_size,
            max_request_size=max(o.batch_size, 1024 * 1024),
            compression_type=o.compression,
        )
        try:
            await producer.start()
            # fail here, not on the first record, when the topic is missing and cannot be auto-created
            await producer.partitions_for(self.topic)
        except Exception as exc:
            with contextlib.suppress(Exception):  # the start error is the one worth reporting
                await producer.stop()
            raise await self._diagnose(exc, "connect") from exc
        return producer

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            # stop() flushes what is still queued; bounded, because an idempotent producer would wait forever
            # for a broker that is gone.
            async with asyncio.timeout(self._delivery_timeout_s):
                await producer.stop()
        except TimeoutError as exc:
            raise TransientSinkError(f"{self.name}: close: pending messages not flushed within "
                                     f"{self._delivery_timeout_s:g}s") from exc
        except Exception as exc:
            raise self._translate(exc, "close") from exc

    def _require(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise SinkError(f"{self.name}: used before open()")
        return self._producer

    # -- writing ---------------------------------------------------------------------------------------
    def encode(self, record: SinkRecord) -> tuple[bytes, bytes]:
        """(key, value) of the message for ``record``."""
        return record.key.encode(), orjson.dumps(record.to_message(), default=_json_default)

    async def _batcher(self, topic: str) -> _Batcher:
        producer = self._require()
        try:
            partitions = sorted(await producer.partitions_for(topic))
        except Exception as exc:
            raise self._translate(exc, f"metadata of {topic}") from exc
        return _Batcher(self, producer, topic, partitions)

    async def _send(self, topic: str, messages: Sequence[_Message]) -> list[_Sent]:
        """Submit ``messages`` in full per-partition batches; returns them with their delivery futures."""
        try:
            batcher = await self._batcher(topic)
        except TransientSinkError as exc:
            return [(list(messages), exc)]
        for key, value in messages:
            await batcher.add(key, value)
        await batcher.finish()
        return batcher.take()

    async def _confirm(self, topic: str, sent: list[_Sent]) -> None:
        """Wait until every batch of ``sent`` is acknowledged; re-send the messages of failed batches only,
        after a backoff, ``retries`` attempts in all."""
        state = sent
        resend: list[_Message] = []
        total = sum(len(msgs) for msgs, _ in sent)

        async def attempt() -> None:
            nonlocal state, resend
            if resend:
                state, resend = await self._send(topic, resend), []
            futures = [f for _, f in state if isinstance(f, asyncio.Future)]
            if futures:
                # asyncio.wait, not gather: a timeout must not cancel the producer's delivery futures
                await asyncio.wait(futures, timeout=self._delivery_timeout_s)
            first = ""
            for msgs, f in state:
                if isinstance(f, asyncio.Future):
                    if not f.done():
                        error = f"no acknowledgement within {self._delivery_timeout_s:g}s"
                    elif f.cancelled():
                        error = "delivery cancelled"
                    elif (exc := f.exception()) is not None:
                        if not self._is_transient(exc):
                            raise self._translate(exc, f"deliver to {topic}") from exc
                        error = self._detail(exc)
                    else:
                        continue
                else:
                    error = str(f).removeprefix(f"{self.name}: ") if isinstance(f, SinkError) else self._detail(f)
                resend.extend(msgs)
                first = first or error
            if resend:
                raise TransientSinkError(f"write to {topic}: {len(resend)} of {total} messages not acknowledged "
                                         f"({first})")

        await self._retry(attempt, f"write to {topic}")

    async def write_unit(self, unit: UnitRef, batches: AsyncIterator[list[SinkRecord]]) -> int:
        """Produce every record of ``unit``; returns once the broker acknowledged all of them."""
        pending: deque[_Sent] = deque()
        unconfirmed = 0
        written = 0
        try:
            batcher = await self._batcher(self.topic)
        except TransientSinkError as exc:
            # no metadata now: take the unit in anyway and let the retry loop send it after a backoff
            held: list[_Message] = [self.encode(r) async for batch in batches for r in batch]
            await self._confirm(self.topic, [(held, exc)])
            return len(held)
        async for batch in batches:
            for record in batch:
                await batcher.add(*self.encode(record))
            written += len(batch)
            for sent in batcher.take():
                pending.append(sent)
                unconfirmed += len(sent[0])
            while unconfirmed > _MAX_UNCONFIRMED and pending:
                oldest = pending.popleft()
                unconfirmed -= len(oldest[0])
                await self._confirm(self.topic, [oldest])
        await batcher.finish()  # the unit's last, partly filled batches go now
        pending.extend(batcher.take())
        await self._confirm(self.topic, list(pending))
        return written

    async def publish_status(self, event: Mapping[str, Any]) -> None:
        """Send a quota status event to ``status_topic`` (key = the event's ``pool``), acknowledged."""
        pool = event.get("pool")
        key = str(pool).encode() if pool is not None else None
        value = orjson.dumps(event, default=_json_default)
        await self._confirm(self.status_topic, await self._send(self.status_topic, [(key, value)]))

    async def publish_advisories(self, events: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Send advisory events to ``advisories_topic`` (key = the advisory's stable id), all acknowledged."""
        messages: list[_Message] = [(key.encode(), orjson.dumps(event, default=_json_default)) for key, event in events]
        if messages:
            await self._confirm(self.advisories_topic, await self._send(self.advisories_topic, messages))


class _Batcher:
    """One open batch per partition of ``topic``; a full batch is submitted at once, the rest by ``finish()``.

    Building the record batches here (``create_batch``/``send_batch``) instead of one ``send()`` per
    message saves a future and a callback per message, and a unit's last batches need no linger wait.
    After a transient failure to submit, later batches are not tried: they are marked failed with it.
    """

    def __init__(self, sink: KafkaSink, producer: AIOKafkaProducer, topic: str, partitions: list[int]) -> None:
        self.sink = sink
        self.producer = producer
        self.topic = topic
        self.partitions = partitions
        self.partitioner = _partitioner()
        self.open: dict[int, tuple[Any, list[_Message]]] = {}
        self.sent: list[_Sent] = []
        self.failed: BaseException | None = None

    async def add(self, key: bytes | None, value: bytes) -> None:
        partition: int = self.partitioner(key, self.partitions, self.partitions)
        entry = self.open.get(partition)
        if entry is None:
            entry = self.open[partition] = (self.producer.create_batch(), [])
        if entry[0].append(key=key, value=value, timestamp=None) is None:
            await self._submit(partition)
            entry = self.open[partition] = (self.producer.create_batch(), [])
            entry[0].append(key=key, value=value, timestamp=None)  # an empty batch takes any one message
        entry[1].append((key, value))

    async def _submit(self, partition: int) -> None:
        builder, messages = self.open.pop(partition)
        if self.failed is not None:
            self.sent.append((messages, self.failed))
            return
        builder.close()  # a closed batch is sent at once; an open one would wait for more messages
        try:
            fut = await self.producer.send_batch(builder, self.topic, partition=partition)
        except Exception as exc:
            if not self.sink._is_transient(exc):
                raise self.sink._translate(exc, f"send to {self.topic}") from exc
            self.failed = exc
            self.sent.append((messages, exc))
            return
        fut.add_done_callback(_consume_exception)
        self.sent.append((messages, fut))

    async def finish(self) -> None:
        for partition in list(self.open):
            await self._submit(partition)

    def take(self) -> list[_Sent]:
        sent, self.sent = self.sent, []
        return sent
