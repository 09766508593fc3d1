"""Advisory events through the Kafka sink, against Tansu on 127.0.0.1: they land on '<topic>.advisories' (created
at open, beside the records' and the status topics), keyed by the advisory's id, values as sent; only Kafka is an
AdvisoryPublisher."""

from __future__ import annotations

import pytest

from dbcost.sinks import SINK_SCHEMES, AdvisoryPublisher, open_sink
from dbcost.sinks.kafka import KafkaSink
from tests.sinks.conftest import TansuBroker
from tests.sinks.test_kafka import FAST, read_topic

EVENTS = [
    ("UnblendedCost|db-cluster|idle|[\"1\",\"us-east-1\",\"RDS\",\"db-1\",\"idle\"]",
     {"id": "a", "event": "new", "version": 1764568800000, "estimated_monthly_savings": "12.5"}),
    ("UnblendedCost|db-cluster|graviton|[\"1\",\"eu-west-2\",\"RDS\",\"db-é\",\"db.m5.large\"]",
     {"id": "b", "event": "resolved", "version": 1764568800001, "deleted": True}),
]


async def test_advisory_events_go_to_the_advisories_topic_keyed_by_id(tansu: TansuBroker, topic: str) -> None:
    """Two events: both on '<topic>.advisories' with their keys (utf-8), nothing on the records' topic; an empty
    batch sends nothing."""
    sink = open_sink(f"kafka://{tansu.bootstrap}/{topic}?{FAST}")
    assert isinstance(sink, KafkaSink) and sink.advisories_topic == f"{topic}.advisories"
    async with sink:
        await sink.publish_advisories(EVENTS)
        await sink.publish_advisories([])
    got = await read_topic(tansu.bootstrap, f"{topic}.advisories")
    assert sorted(got, key=lambda kv: kv[1]["id"]) == [(k.encode(), v) for k, v in EVENTS]
    assert await read_topic(tansu.bootstrap, topic) == []


@pytest.mark.parametrize("scheme", sorted(SINK_SCHEMES))
def test_only_kafka_carries_advisory_events(scheme: str) -> None:
    """Advisory publishing is apart from the record Sink: only the Kafka sink is an AdvisoryPublisher."""
    url = {"jsonl": "jsonl:/tmp/x.jsonl", "parquet": "parquet:/tmp/x", "kafka": "kafka://127.0.0.1:9/t",
           "kinesis": "kinesis://s?region=us-east-1", "postgresql": "postgresql://u@127.0.0.1:5/db",
           "postgres": "postgres://u@127.0.0.1:5/db", "s3": "s3://bucket/prefix",
           "kafka+ssl": "kafka+ssl://127.0.0.1:9/t"}[scheme]
    assert isinstance(open_sink(url), AdvisoryPublisher) is scheme.startswith("kafka")
