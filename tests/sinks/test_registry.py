"""The sink registry and the Sink protocol: every scheme resolves to a class that parses its own URL into
typed options (without importing its client library), SinkContext reaches the sink, ``async with`` opens
and closes, and only Kafka publishes quota status."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from dbcost.errors import ConfigError, SinkError
from dbcost.sinks import (
    SINK_SCHEMES,
    Sink,
    SinkContext,
    SinkOptions,
    SinkRecord,
    StatusPublisher,
    open_sink,
    parse_sink_url,
)
from dbcost.sinks.jsonl import JsonlOptions, JsonlSink
from dbcost.sinks.kafka import KafkaOptions, KafkaSink
from dbcost.sinks.kinesis import KinesisOptions, KinesisSink
from dbcost.sinks.parquet import ParquetOptions, ParquetSink
from dbcost.sinks.postgres import PostgresOptions, PostgresSink
from dbcost.sinks.registry import SinkClass, sink_class
from dbcost.sinks.s3 import S3Options, S3Sink
from dbcost.transport.mock import MockTransport
from tests.conftest import run_cli_async
from tests.sinks.conftest import batches, make_records, make_unit

#: one working URL per scheme, with the class and options type it must resolve to (typed SinkClass: mypy
#: checks here that every sink class is what the registry expects of one)
EXAMPLES: dict[str, tuple[str, SinkClass, type[SinkOptions]]] = {
    "jsonl": ("jsonl:out/records.jsonl", JsonlSink, JsonlOptions),
    "parquet": ("parquet:out/pq", ParquetSink, ParquetOptions),
    "kafka": ("kafka://127.0.0.1:9092/costs", KafkaSink, KafkaOptions),
    "kafka+ssl": ("kafka+ssl://127.0.0.1:9093/costs", KafkaSink, KafkaOptions),
    "kinesis": ("kinesis://costs", KinesisSink, KinesisOptions),
    "postgresql": ("postgresql://u@127.0.0.1/db", PostgresSink, PostgresOptions),
    "postgres": ("postgres://u@127.0.0.1/db", PostgresSink, PostgresOptions),
    "s3": ("s3://cost-lake/dbcost", S3Sink, S3Options),
}


def test_every_registered_scheme_has_an_example() -> None:
    """The examples below cover the whole registry (a new scheme needs one)."""
    assert set(EXAMPLES) == set(SINK_SCHEMES)


@pytest.mark.parametrize("scheme", sorted(EXAMPLES))
def test_every_scheme_resolves_to_its_class_and_options(scheme: str) -> None:
    """Each scheme (any case) resolves to its sink class; parse_sink_url returns that class's typed options,
    and open_sink builds an unopened instance of it."""
    url, cls, options = EXAMPLES[scheme]
    assert sink_class(url) is cls
    assert sink_class(url.replace(scheme, scheme.upper(), 1)) is cls
    parsed = parse_sink_url(url)
    assert type(parsed) is options and parsed == cls.parse(url) and parsed.url == url
    expected: object = cls
    sink = open_sink(url)
    assert type(sink) is expected and isinstance(sink, Sink)


def test_unknown_scheme_message_is_unchanged() -> None:
    """An unknown kind lists every form, sorted, and hides a password."""
    with pytest.raises(ConfigError) as info:
        parse_sink_url("ftp://u:pw@x")
    assert str(info.value) == ("--sink 'ftp://u:***@x': unknown kind (use jsonl:PATH, kafka://HOST:PORT/TOPIC, "
                               "kinesis://STREAM, parquet:PATH, postgresql://USER@HOST:PORT/DB, s3://BUCKET/PREFIX)")


@pytest.mark.parametrize(("url", "message"), [
    ("jsonl:", "--sink 'jsonl:': a path is required, e.g. jsonl:out/records.jsonl"),
    ("PARQUET://", "--sink 'PARQUET://': a path is required, e.g. parquet:out/records.parquet"),
    ("kafka://host/topic", "--sink 'kafka://host/topic': use kafka://HOST:PORT/TOPIC"),
    ("kafka://host:99999/t", "--sink 'kafka://host:99999/t': the port is not a number"),
    ("kinesis://", "--sink 'kinesis://': use kinesis://STREAM"),
    ("postgresql://u:pw@host", "--sink 'postgresql://u:***@host': use postgresql://USER@HOST:PORT/DB"),
    ("kafka://h:1/t?idempotence=maybe", "--sink kafka://h:1/t?idempotence=maybe: ?idempotence='maybe' is not true/false"),
    ("kinesis://s?shards=0", "--sink kinesis://s?shards=0: ?shards=0 must be at least 1"),
    ("postgresql://u:pw@h/db?timeout=0", "--sink postgresql://u:***@h/db?timeout=0: ?timeout=0 must be at least 0.01"),
])
def test_each_sink_words_its_own_url_errors_as_before(url: str, message: str) -> None:
    """Grammar and option errors keep their exact one-line text, now raised by the sink's own parser."""
    with pytest.raises(ConfigError) as info:
        parse_sink_url(url)
    assert str(info.value) == message


def test_parsing_imports_no_client_library() -> None:
    """parse_sink_url and open_sink for every scheme import neither aiokafka, asyncpg, pyarrow nor botocore."""
    urls = [url for url, _, _ in EXAMPLES.values()]
    code = ("import sys\nfrom dbcost.sinks import open_sink, parse_sink_url\n"
            f"for url in {urls!r}:\n    parse_sink_url(url)\n    open_sink(url)\n"
            "print(sorted(m for m in ('aiokafka', 'asyncpg', 'pyarrow', 'botocore', 'aiobotocore') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_kafka_parses_its_own_url_into_typed_options() -> None:
    """Every Kafka option lands typed in KafkaOptions; the defaults are the documented ones."""
    o = KafkaSink.parse("kafka://broker:9093/costs?idempotence=false&compression=GZIP&batch_size=2048"
                        "&timeout_ms=500&retries=2&backoff_ms=10&retry_budget_s=5&create_topics=no"
                        "&partitions=6&replication=3&status_topic=q&client_id=me")
    assert (o.host, o.port, o.topic, o.bootstrap, o.status_topic) == ("broker", 9093, "costs", "broker:9093", "q")
    assert (o.idempotence, o.compression, o.batch_size, o.timeout_ms, o.create_topics) == (False, "gzip", 2048, 500, False)
    assert (o.partitions, o.replication, o.client_id) == (6, 3, "me")
    assert (o.retry.max_attempts, o.retry.base_s, o.retry.budget_s) == (2, 0.01, 5.0)
    d = KafkaSink.parse("kafka://broker:9093/costs")
    assert (d.status_topic, d.idempotence, d.compression, d.batch_size, d.timeout_ms) == (
        "costs.quota-status", True, None, 256 * 1024, 30_000)
    assert (d.create_topics, d.partitions, d.replication, d.client_id, d.retry.max_attempts) == (True, 3, 1, "dbcost", 5)


def test_postgres_options_leave_the_dsn_and_the_password_out_of_sight() -> None:
    """The asyncpg DSN drops the sink's own options, keeps the others, normalises postgres://; repr hides secrets."""
    o = PostgresSink.parse("postgres://u:s3cret@h:6543/db?sslmode=require&retries=3&pool_size=2")
    assert o.dsn == "postgresql://u:s3cret@h:6543/db?sslmode=require"
    assert (o.pool_size, o.retry.max_attempts, o.timeout_s, o.connect_timeout_s) == (2, 3, 300, 10)
    assert o.display == "postgres://u:***@h:6543/db?sslmode=require&retries=3&pool_size=2"
    assert "s3cret" not in repr(o)


def test_sink_context_reaches_kinesis_and_the_url_wins() -> None:
    """endpoint_url/region/profile/credentials come from SinkContext when the URL has none; the URL's win."""
    ctx = SinkContext(endpoint_url="http://ctx:1", region="eu-west-1", profile="ctx", credentials=("AKID", "secret"))
    sink = open_sink("kinesis://s", ctx)
    assert isinstance(sink, KinesisSink)
    assert (sink.endpoint_url, sink.region, sink.profile, sink.credentials) == (
        "http://ctx:1", "eu-west-1", "ctx", ("AKID", "secret"))
    sink = open_sink("kinesis://s?endpoint_url=http://url:2&region=ap-south-1&profile=url", ctx)
    assert isinstance(sink, KinesisSink)
    assert (sink.endpoint_url, sink.region, sink.profile) == ("http://url:2", "ap-south-1", "url")
    assert "secret" not in repr(ctx)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.region = "x"  # type: ignore[misc]


async def test_context_credentials_reach_the_kinesis_transport(moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no credentials in the environment, SinkContext.credentials are the ones Kinesis signs with."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    url = f"kinesis://creds?endpoint_url={moto}&create_stream=true&retries=1"
    with pytest.raises(SinkError, match="credentials"):
        async with open_sink(url, SinkContext(region="us-east-1")):
            pass
    unit = make_unit(days=1)
    async with open_sink(url, SinkContext(region="us-east-1", credentials=("AKIDCTX", "ctx-secret"))) as sink:
        assert await sink.write_unit(unit, batches(make_records(unit))) == 29


async def test_context_transport_and_clock_reach_kinesis() -> None:
    """SinkContext.transport replaces the AwsTransport (the caller's seam) for every call of the sink."""
    calls: list[str] = []

    def handler(operation: str, params: dict[str, object]) -> dict[str, object]:
        calls.append(operation)
        if operation == "DescribeStreamSummary":
            return {"StreamDescriptionSummary": {"StreamStatus": "ACTIVE"}}
        return {"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1"}]}

    unit = make_unit(days=1)
    async with open_sink("kinesis://s", SinkContext(transport=MockTransport(handler))) as sink:
        await sink.write_unit(unit, batches(make_records(unit)[:1]))
    assert calls == ["DescribeStreamSummary", "PutRecords"]


async def test_async_with_closes_a_sink_whose_write_failed(tmp_path: Path) -> None:
    """A write that fails inside ``async with`` propagates, and the sink is closed all the same."""
    unit = make_unit(days=1)
    records = make_records(unit)

    async def failing() -> AsyncIterator[list[SinkRecord]]:
        yield records[:5]
        raise SinkError("upstream gone")

    path = tmp_path / "records.jsonl"
    with pytest.raises(SinkError, match="upstream gone"):
        async with open_sink(f"jsonl:{path}") as sink:
            await sink.write_unit(unit, failing())
    with pytest.raises(SinkError, match="not open"):
        await sink.write_unit(unit, batches(records))
    assert path.read_bytes() == b"".join(  # what was written before the failure is there, complete lines
        orjson.dumps({"key": r.key, **r.to_message()}) + b"\n" for r in records[:5])


async def test_a_failed_open_leaves_nothing_to_close(tmp_path: Path) -> None:
    """``async with`` on a sink that cannot open raises the open error and never enters the body."""
    entered = False
    with pytest.raises(ConfigError, match="does not exist"):
        async with open_sink(f"jsonl:{tmp_path / 'missing' / 'x.jsonl'}"):
            entered = True
    assert not entered


async def test_missing_client_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without aiokafka (asyncpg) installed, checking the URL already refuses it in one line naming the extra
    to install (before anything is sent or written), and so does opening it."""
    monkeypatch.setitem(sys.modules, "aiokafka", None)
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(ConfigError, match=r"^--sink kafka://127\.0\.0\.1:1/t: needs aiokafka, which is not installed: "
                                          r"pip install 'dbcost\[kafka\]'$"):
        parse_sink_url("kafka://127.0.0.1:1/t")
    with pytest.raises(ConfigError, match=r"pip install 'dbcost\[kafka\]'"):
        async with open_sink("kafka://127.0.0.1:1/t"):
            pass
    with pytest.raises(ConfigError, match=r"needs asyncpg, which is not installed: pip install 'dbcost\[postgres\]'$"):
        parse_sink_url("postgresql://u@127.0.0.1:1/db")
    with pytest.raises(ConfigError, match=r"pip install 'dbcost\[postgres\]'"):
        async with open_sink("postgresql://u@127.0.0.1:1/db"):
            pass


@pytest.mark.parametrize("scheme", sorted(EXAMPLES))
def test_only_kafka_publishes_quota_status(scheme: str) -> None:
    """Quota status publishing is apart from the record Sink: only the Kafka sink is a StatusPublisher."""
    url, _, _ = EXAMPLES[scheme]
    assert isinstance(open_sink(url), StatusPublisher) is scheme.startswith("kafka")


def test_sink_record_from_record_derives_the_natural_key() -> None:
    """SinkRecord.from_record keys a record by the unit's key names (an absent key is null) and keeps it whole."""
    unit = make_unit()
    rec = {"period_start": "2026-09-01", "keys": {"TAG:team": "team|a"}, "metrics": {}}
    r = SinkRecord.from_record(unit, rec, version=7, run_id="run-0")
    assert r.key == f'{unit.dataset}|{unit.target}|2026-09-01|[null,"team|a"]'
    assert (r.dataset, r.target, r.version, r.run_id, r.record, r.deleted) == (
        unit.dataset, unit.target, 7, "run-0", rec, False)
    gone = SinkRecord.from_record(unit, {"period_start": "2026-09-01", "granularity": "DAILY", "keys": {}},
                                  version=8, run_id=unit.run_id, deleted=True)
    assert gone.key.endswith("|[null,null]") and gone.to_message()["deleted"] is True


async def test_a_bad_sink_option_is_refused_before_the_run_starts(tmp_path: Path) -> None:
    """backfill with an unknown sink option: exit 2, the option's one line, and no store file (no run row)."""
    db = tmp_path / "s.duckdb"
    code, _, err = await run_cli_async("backfill", "--start", "2026-10-01", "--end", "2026-11-01", "--db", str(db),
                                       "--sink", "kafka://127.0.0.1:1/t?idempotance=false")
    assert code == 2
    assert err.strip().splitlines() == [
        "dbcost: error: --sink kafka://127.0.0.1:1/t?idempotance=false: unknown option(s) idempotance (known: "
        "backoff_ms, batch_size, cafile, certfile, check_hostname, client_id, compression, create_topics, "
        "external_id, idempotence, keyfile, partitions, password_file, profile, region, replication, retries, "
        "retry_budget_s, role_arn, sasl_mechanism, security_protocol, status_topic, timeout_ms)"]
    assert not db.exists()
