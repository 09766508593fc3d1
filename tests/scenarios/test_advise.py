"""`dbcost advise` end to end: the CLI against the emulator over real HTTP finds every advisory the emulator's
truth lists, with the exact savings, and no other; --fail-on-new exits 6 on a new advisory; a webhook receiver
and a Kafka broker (Tansu) each get one event per change and none on a rerun without change; bad input exits 2
with one line and writes nothing."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition

from dbcost.advice import KINDS
from dbcost.emulator import Emulator, EmulatorConfig
from tests.conftest import run_cli_async
from tests.scenarios.conftest import TODAY, TODAY_S
from tests.sinks.conftest import TansuBroker

MONTHS = ("2026-10", "2026-11")
#: the contract's keys, in its order
ADVISORY_KEYS = ["kind", "cluster", "team", "service", "account", "region", "monthly_cost",
                 "estimated_monthly_savings", "action", "evidence", "first_seen"]


@pytest.fixture(scope="module")
def attributed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with both months attributed from the emulator (fetched once for the module, no advice state)."""
    db = tmp_path_factory.mktemp("advise") / "s.duckdb"

    async def fill() -> None:
        async with Emulator(EmulatorConfig(today=TODAY)) as emu:
            for month in MONTHS:
                code, _, err = await run_cli_async(
                    "attribute", "--month", month, "--db", str(db), "--endpoint-url", emu.url, "--today", TODAY_S,
                    "--max-rps", "100", "--format", "json",
                    env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},  # module scope: no autouse env
                )
                assert code == 0, err

    asyncio.run(fill())
    return db


@pytest.fixture
def store(attributed: Path, tmp_path: Path) -> Path:
    """This test's copy of the attributed store."""
    copy = tmp_path / "s.duckdb"
    shutil.copyfile(attributed, copy)
    return copy


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(today=TODAY)) as e:
        yield e


async def advise(emu: Emulator, db: Path, *extra: str, month: str = "2026-10") -> tuple[int, dict[str, Any], str]:
    code, out, err = await run_cli_async("advise", "--month", month, "--db", str(db), "--endpoint-url", emu.url,
                                         "--today", TODAY_S, "--format", "json", *extra)
    return code, (json.loads(out) if out.strip() else {}), err


def key(a: dict[str, Any]) -> tuple[Any, ...]:
    return (a["kind"], a["cluster"], a["team"], a["service"], a["account"], a["region"], Decimal(a["monthly_cost"]),
            Decimal(a["estimated_monthly_savings"]))


@pytest.mark.parametrize("month", MONTHS)
async def test_every_advisory_of_the_truth_is_found_with_the_exact_savings(emu: Emulator, store: Path,
                                                                           month: str) -> None:
    """The CLI's advisories are exactly the truth's (kind, cluster, team, service, account, region, cost,
    savings), in the contract's JSON shape, sorted by savings, total included; every kind appears."""
    code, data, err = await advise(emu, store, month=month)
    assert code == 0, err
    truth = emu.advisories(month)
    assert sorted(map(key, data["advisories"])) == sorted(map(key, truth["advisories"]))
    assert list(data) == ["month", "advisories", "total_estimated_monthly_savings"] and data["month"] == month
    assert Decimal(data["total_estimated_monthly_savings"]) == Decimal(truth["total_estimated_monthly_savings"])
    assert all(list(a) == ADVISORY_KEYS for a in data["advisories"])
    savings = [Decimal(a["estimated_monthly_savings"]) for a in data["advisories"]]
    assert savings == sorted(savings, reverse=True)
    assert {a["kind"] for a in data["advisories"]} == set(KINDS)
    untagged = [a for a in data["advisories"] if a["cluster"] == ""]
    assert untagged and all(a["action"].startswith("Spend without a db-cluster tag") for a in untagged)
    reverse = [a for a in data["advisories"] if a["evidence"].get("direction") == "io-optimized-to-standard"]
    assert reverse, "a cluster that moved to I/O-Optimized inside the month"


async def test_the_issue_formulas_hold_to_the_cent_on_the_truths_usage(emu: Emulator, store: Path) -> None:
    """extended-support = the cost of its usage, aurora-io-optimized = IO - 0.30 C - 1.25 S, multi-az-non-prod =
    50 % of the Multi-AZ usage: recomputed from each advisory's per-usage-type evidence, to the cent."""
    _, data, _ = await advise(emu, store)
    cent = Decimal("0.01")
    for a in data["advisories"]:
        ev, savings = a["evidence"], Decimal(a["estimated_monthly_savings"])
        parts = {k: Decimal(v) for k, v in ev.get("usage_types", {}).items()}
        if a["kind"] == "extended-support":
            expected = sum(parts.values(), Decimal(0))
        elif a["kind"] == "aurora-io-optimized" and ev["direction"] == "standard-to-io-optimized":
            io = sum(v for k, v in parts.items() if k.endswith("Aurora:StorageIOUsage"))
            c = sum(v for k, v in parts.items() if "InstanceUsage:" in k or "ServerlessV2Usage" in k)
            s = sum(v for k, v in parts.items() if k.endswith("Aurora:StorageUsage"))
            expected = io - Decimal("0.30") * c - Decimal("1.25") * s
        elif a["kind"] == "multi-az-non-prod":
            expected = Decimal("0.5") * sum(parts.values(), Decimal(0))
        else:
            continue
        assert savings.quantize(cent) == expected.quantize(cent), a


async def test_fail_on_new_exits_6_when_a_new_advisory_appears(emu: Emulator, store: Path) -> None:
    """First run: every advisory is new -> 6; rerun: 0; narrower --non-prod only resolves -> 0; back: new -> 6."""
    code, first, err = await advise(emu, store, "--fail-on-new")
    assert code == 6, err
    assert "new" in err
    code, again, _ = await advise(emu, store, "--fail-on-new")
    assert code == 0 and again["advisories"] == first["advisories"]  # first_seen kept
    code, narrowed, err = await advise(emu, store, "--fail-on-new", "--non-prod", "qa")
    assert code == 0 and "resolved" in err
    assert not any(a["kind"] == "multi-az-non-prod" for a in narrowed["advisories"])
    code, _, _ = await advise(emu, store, "--fail-on-new")
    assert code == 6
    code, _, _ = await advise(emu, store)
    assert code == 0


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as b:
        yield b


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on 127.0.0.1 that records every POSTed JSON body."""
    got: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/services/T0/B0/secret", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/services/T0/B0/secret", got
    finally:
        await runner.cleanup()


async def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, dict[str, Any]]]:
    """Every message of ``topic`` from the beginning, drained until two polls come back empty."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                                request_timeout_ms=10_000)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[bytes | None, dict[str, Any]]] = []
        empty = 0
        while empty < 2:
            data = await consumer.getmany(timeout_ms=300, max_records=5000)
            if not any(data.values()):
                empty += 1
                continue
            empty = 0
            out.extend((m.key, json.loads(m.value)) for batch in data.values() for m in batch)
        return out
    finally:
        await consumer.stop()


def collapse(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a consumer keeps: per id the highest version, resolved (deleted) ones dropped."""
    best: dict[str, dict[str, Any]] = {}
    for m in messages:
        if m["id"] not in best or m["version"] > best[m["id"]]["version"]:
            best[m["id"]] = m
    return {k: m for k, m in best.items() if not m.get("deleted")}


async def test_webhook_and_kafka_get_one_event_per_change_and_none_on_a_rerun(
        emu: Emulator, store: Path, broker: TansuBroker, receiver: tuple[str, list[dict[str, Any]]]) -> None:
    """Run 1: one webhook message carrying an event per advisory, and a Kafka message per advisory on
    <topic>.advisories keyed by its id. Run 2, nothing changed: nothing sent. Run 3, --non-prod qa: one event per
    resolved Multi-AZ advisory on both. The Kafka topic collapses to run 3's advisories."""
    url, got = receiver
    topic = f"costs-{uuid.uuid4().hex[:8]}"
    sink = f"kafka://{broker.bootstrap}/{topic}?idempotence=false"
    code, first, err = await advise(emu, store, "--webhook", url, "--sink", sink)
    assert code == 0, err
    n = len(first["advisories"])
    assert len(got) == 1 and len(got[0]["events"]) == n and got[0]["text"].startswith("dbcost advise 2026-10")
    messages = await read_topic(broker.bootstrap, f"{topic}.advisories")
    assert len(messages) == n and {m["event"] for _, m in messages} == {"new"}
    assert all(k is not None and k.decode() == m["id"] for k, m in messages)

    code, _, err = await advise(emu, store, "--webhook", url, "--sink", sink)
    assert code == 0 and "sent" not in err
    assert len(got) == 1 and len(await read_topic(broker.bootstrap, f"{topic}.advisories")) == n

    code, third, _ = await advise(emu, store, "--webhook", url, "--sink", sink, "--non-prod", "qa")
    resolved = n - len(third["advisories"])
    assert code == 0 and resolved > 0
    assert len(got) == 2 and [e["event"] for e in got[1]["events"]] == ["resolved"] * resolved
    messages = await read_topic(broker.bootstrap, f"{topic}.advisories")
    assert len(messages) == n + resolved
    assert sum(bool(m.get("deleted")) for _, m in messages) == resolved  # partitions keep no global order
    assert sorted(map(key, collapse([m for _, m in messages]).values())) == sorted(map(key, third["advisories"]))
    assert await read_topic(broker.bootstrap, topic) == []  # records' topic: advise sends no records


def _unknown_kind_rules(tmp_path: Path) -> str:
    path = tmp_path / "rules.toml"
    path.write_text('schema_version = 1\n[[rules]]\nname = "x"\nkind = "cheaper"\nservices = ["rds"]\n'
                    "pattern = 'x'\nformula = \"f\"\nuntagged = false\nconfirmed = false\nsource = \"s\"\n")
    return str(path)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--month", "2026-13"], "--month"),
    (["--month", "2026-10", "--rules", "@unknown-kind"], "unknown kind 'cheaper'"),
    (["--month", "2026-10", "--rules", "/nonexistent/rules.toml"], "--rules"),
    (["--month", "2026-10", "--non-prod", "dev,,qa"], "--non-prod"),
    (["--month", "2026-10", "--non-prod", ""], "--non-prod"),
    (["--month", "2026-10", "--non-prod", "dev;qa"], "--non-prod"),
    (["--month", "2026-10", "--min-savings-usd", "-5"], "--min-savings-usd"),
    (["--month", "2026-10", "--format", "xml"], "--format"),
    (["--month", "2026-10", "--metric", "Dollars"], "--metric"),
    (["--month", "2026-10", "--sink", "jsonl:/tmp/advice.jsonl"], "cannot carry advisory events"),
    (["--month", "2026-10", "--webhook", "ftp://example.com/x"], "--webhook"),
])
async def test_bad_input_exits_2_with_one_line_and_writes_nothing(args: list[str], fragment: str,
                                                                  tmp_path: Path) -> None:
    """Unknown rule kind, bad month, bad --non-prod list, and the other options: exit 2, one line, no store."""
    args = [_unknown_kind_rules(tmp_path) if a == "@unknown-kind" else a for a in args]
    db = tmp_path / "s.duckdb"
    code, out, err = await run_cli_async("advise", "--db", str(db), "--endpoint-url", "http://127.0.0.1:9",
                                         "--today", TODAY_S, *args)
    assert code == 2, err
    assert fragment in err and len(err.strip().splitlines()) == 1 and out == ""
    assert not db.exists()
