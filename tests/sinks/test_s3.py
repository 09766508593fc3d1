"""The S3 Parquet sink against moto's S3 server on 127.0.0.1: the Hive-style layout, one object per unit and
month with a deterministic name (a resend replaces it), the Parquet schema, the manifest entries, multipart
above the threshold, the temporary key, retries and error mapping, and the read-back query README.md
documents, run with DuckDB over what the sink wrote."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import logging
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from dbcost.errors import (
    AccessDeniedError,
    ApiError,
    ConfigError,
    DbcostError,
    ServerError,
    SinkError,
    TransientSinkError,
)
from dbcost.sinks import SinkContext, SinkRecord, UnitRef, open_sink
from dbcost.sinks.s3 import S3Sink, manifest_key, object_key, unit_months
from dbcost.transport.aws import AwsTransport
from tests.sinks.conftest import (
    KEY_NAMES,
    LAKE_COLLAPSE_SQL,
    LakeKey,
    MotoServer,
    batches,
    collapse_rows,
    create_bucket,
    expected,
    lake_rows,
    make_records,
    make_unit,
    mirror,
    read_bucket,
    s3_client,
    tombstone,
)

BUCKET = "cost-lake"
README = Path(__file__).resolve().parents[2] / "README.md"


def url(moto: str, prefix: str = "dbcost/v1", **options: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"endpoint_url": moto, **options}.items())
    return f"s3://{BUCKET}/{prefix}?{query}"


def expected_rows(*generations: list[SinkRecord]) -> dict[LakeKey, Decimal]:
    """The amounts the lake must hold after ``generations`` (later ones supersede earlier ones), keyed like
    :func:`collapse_rows`."""
    out: dict[LakeKey, Decimal] = {}
    for msg in expected(*generations).values():
        keys = msg["keys"]
        rk = (msg["dataset"], msg["target"], dt.date.fromisoformat(msg["period_start"]),
              keys.get(KEY_NAMES[0]), keys.get(KEY_NAMES[1]))
        for metric, m in msg["metrics"].items():
            out[(*rk, metric)] = Decimal(m["amount"])
    return out


def amounts(rows: list[dict[str, Any]]) -> dict[LakeKey, Decimal]:
    return {k: r["amount"] for k, r in collapse_rows(rows).items()}


class Seam:
    """The real AwsTransport on moto behind the SinkContext's transport seam, recording every operation and
    raising, once each, the errors queued for an operation (the injected failure; the rest is S3's own)."""

    def __init__(self, inner: AwsTransport, fail: Mapping[str, list[DbcostError]] | None = None) -> None:
        self.inner = inner
        self.fail = {op: list(errors) for op, errors in (fail or {}).items()}
        self.calls: list[str] = []

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(operation)
        queued = self.fail.get(operation)
        if queued:
            raise queued.pop(0)
        return await self.inner.call(operation, params)


@pytest.fixture
def bucket(moto: str) -> str:
    """moto, reset, with the test bucket."""
    create_bucket(moto, BUCKET)
    return moto


# ------------------------------------------------------------------------------------------------ parse


def test_parse_reads_every_option_typed_and_the_documented_defaults() -> None:
    """Bucket, prefix without slashes, every option typed; the defaults are the module doc's."""
    o = S3Sink.parse("s3://lake/a/b/?endpoint_url=http://h:1&region=eu-west-1&profile=p&retries=2&backoff_ms=10"
                     "&retry_budget_s=5&timeout=3&multipart_threshold_mb=16&part_size_mb=6&compression=ZSTD")
    assert (o.bucket, o.prefix, o.endpoint_url, o.region, o.profile) == ("lake", "a/b", "http://h:1", "eu-west-1", "p")
    assert (o.timeout_s, o.multipart_threshold, o.part_size, o.compression) == (3.0, 16 << 20, 6 << 20, "zstd")
    assert (o.retry.max_attempts, o.retry.base_s, o.retry.budget_s) == (2, 0.01, 5.0)
    d = S3Sink.parse("s3://lake")
    assert (d.prefix, d.endpoint_url, d.region, d.timeout_s, d.compression) == ("", None, None, 60.0, "snappy")
    assert (d.multipart_threshold, d.part_size, d.retry.max_attempts, d.retry.budget_s) == (8 << 20, 8 << 20, 5, 120)


@pytest.mark.parametrize(("bad", "message"), [
    ("s3://", "--sink 's3://': use s3://BUCKET/PREFIX"),
    ("s3:///prefix", "--sink 's3:///prefix': use s3://BUCKET/PREFIX"),
    ("s3://user:pw@lake/p", "--sink 's3://user:***@lake/p': use s3://BUCKET/PREFIX"),
    ("s3://lake/p?part_size_mb=4", "--sink s3://lake/p?part_size_mb=4: ?part_size_mb=4 must be at least 5"),
    ("s3://lake/p?compression=lz4", "--sink 's3://lake/p?compression=lz4': use s3://BUCKET/PREFIX?compression="
                                    "snappy|zstd|gzip|none"),
    ("s3://lake/p?multipart=yes", "--sink s3://lake/p?multipart=yes: unknown option(s) multipart (known: backoff_ms, "
                                  "compression, endpoint_url, multipart_threshold_mb, part_size_mb, profile, region, "
                                  "retries, retry_budget_s, timeout)"),
])
def test_a_bad_url_is_one_config_error(bad: str, message: str) -> None:
    """A URL the sink cannot use is a ConfigError with its exact one line (password hidden)."""
    with pytest.raises(ConfigError) as info:
        S3Sink.parse(bad)
    assert str(info.value) == message


def test_names_are_deterministic_hive_style_and_cannot_escape_their_folder() -> None:
    """Object and manifest keys depend on the unit only; a target with '/' or spaces stays one path segment;
    a week window straddling two months touches both."""
    unit = UnitRef("run-x", "ds1", "payer/eu west", dt.date(2026, 9, 28), dt.date(2026, 10, 5), "DAILY", KEY_NAMES)
    assert unit_months(unit) == ["2026-09", "2026-10"]
    assert object_key("p", unit, "2026-10") == "p/dataset=ds1/month=2026-10/payer%2Feu%20west_2026-09-28_2026-10-05.parquet"
    assert manifest_key("", unit) == "dataset=ds1/_manifest/payer%2Feu%20west_2026-09-28_2026-10-05.json"
    year = UnitRef("r", "ds1", "t", dt.date(2025, 11, 1), dt.date(2026, 2, 1), "MONTHLY", ())
    assert unit_months(year) == ["2025-11", "2025-12", "2026-01"]


# --------------------------------------------------------------------------------------------- writing


async def test_a_unit_straddling_two_months_is_one_object_per_month_and_a_manifest_entry(bucket: str) -> None:
    """A week unit over a month end: two objects under dataset=/month=, rows by period month, the export's
    typed columns (DATE, DECIMAL(38,10), version, run_id, deleted); the manifest entry counts them and holds
    each object's SHA-256; no temporary object is left."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    unit = make_unit(dt.date(2026, 9, 28), days=7)
    records = make_records(unit)
    async with open_sink(url(bucket)) as sink:
        assert await sink.write_unit(unit, batches(records)) == len(records) == 7 * 29
    objects = read_bucket(bucket, BUCKET)
    stem = "acct-111122223333_2026-09-28_2026-10-05"
    base = f"dbcost/v1/dataset={unit.dataset}"
    assert sorted(objects) == [f"{base}/_manifest/{stem}.json", f"{base}/month=2026-09/{stem}.parquet",
                               f"{base}/month=2026-10/{stem}.parquet"]
    september = pq.read_table(io.BytesIO(objects[f"{base}/month=2026-09/{stem}.parquet"]))
    assert september.schema.names == ["dataset", "target", "period_start", "period_end", "granularity", "estimated",
                                      "key1", "key2", "metric", "amount", "unit", "version", "run_id", "deleted"]
    types = {f.name: f.type for f in september.schema}
    assert (types["period_start"], types["amount"], types["version"], types["deleted"]) == (
        pa.date32(), pa.decimal128(38, 10), pa.int64(), pa.bool_())
    assert september.schema.metadata[b"key1_name"] == b"SERVICE" and september.schema.metadata[b"key2_name"] == b"TAG:team"
    assert {d.month for d in september.column("period_start").to_pylist()} == {9}
    assert september.num_rows == 3 * 29 * 2  # three September days, two metrics per record
    assert amounts(lake_rows(objects)) == expected_rows(records)
    entry = orjson.loads(objects[f"{base}/_manifest/{stem}.json"])
    assert {k: entry[k] for k in ("dataset", "target", "start", "end", "granularity", "key_names", "run_id",
                                  "records", "deleted", "rows", "versions")} == {
        "dataset": unit.dataset, "target": unit.target, "start": "2026-09-28", "end": "2026-10-05",
        "granularity": "DAILY", "key_names": list(KEY_NAMES), "run_id": "run-1", "records": 203, "deleted": 0,
        "rows": 406, "versions": {"min": 1, "max": 1}}
    for obj in entry["objects"]:
        body = objects[obj["key"]]
        assert (obj["bytes"], obj["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert [o["rows"] for o in entry["objects"]] == [174, 232]


async def test_a_resent_unit_replaces_its_objects_and_the_documented_query_collapses_them(
        bucket: str, tmp_path: Path) -> None:
    """A restated unit (new amounts, some records deleted) sent again rewrites the same keys; a month it no
    longer has rows in still gets its (empty) object; README's DuckDB query over the objects, and the same
    rule over pyarrow's rows, give exactly the latest content."""
    unit = make_unit(dt.date(2026, 9, 28), days=7)
    first = make_records(unit)
    async with open_sink(url(bucket)) as sink:
        await sink.write_unit(unit, batches(first))
        keys_before = set(read_bucket(bucket, BUCKET))
        october = [r for r in first if r.record["period_start"] >= "2026-10-01"]
        restated = [SinkRecord(r.key, r.dataset, r.target, 2, "run-2", r.record) for r in october[10:]]
        gone = [tombstone(r, 2) for r in first if r.record["period_start"] < "2026-10-01"] + [
            tombstone(r, 2) for r in october[:10]]
        await sink.write_unit(unit, batches(restated + gone))
    objects = read_bucket(bucket, BUCKET)
    assert set(objects) == keys_before
    assert amounts(lake_rows(objects)) == expected_rows(first, restated + gone)
    # an unrelated overlapping unit (a later sync's window) holds copies of version-2 rows: still counted once
    overlap = make_unit(dt.date(2026, 10, 1), days=2, run_id="run-3")
    again = [r for r in restated if r.record["period_start"] < "2026-10-03"]  # as the store holds them
    async with open_sink(url(bucket)) as sink:
        await sink.write_unit(overlap, batches(again))
    objects = read_bucket(bucket, BUCKET)
    lake = expected_rows(first, restated + gone)
    assert amounts(lake_rows(objects)) == lake
    root = mirror(objects, tmp_path / "lake")
    query = LAKE_COLLAPSE_SQL.format(glob=f"{root}/dbcost/v1/dataset=*/month=*/*.parquet")
    with duckdb.connect() as con:
        got = con.execute(f"SELECT dataset, target, period_start, key1, key2, metric, amount, month FROM ({query})"
                          ).fetchall()
    assert {tuple(r[:6]): r[6] for r in got} == lake
    assert all(r[7] == r[2].strftime("%Y-%m") for r in got)  # the month partition is the period's month


async def test_units_written_at_once_by_two_sinks_are_all_in_place(bucket: str) -> None:
    """Eight units of one dataset written concurrently by two sink instances (two shards): every object and
    every manifest entry is there, each entry matching its objects, and no temporary object remains."""
    units = [make_unit(dt.date(2026, 9, 1) + dt.timedelta(days=4 * i), days=4) for i in range(8)]
    async with open_sink(url(bucket)) as a, open_sink(url(bucket)) as b:
        await asyncio.gather(*(
            (a if i % 2 else b).write_unit(u, batches(make_records(u))) for i, u in enumerate(units)))
    objects = read_bucket(bucket, BUCKET)
    entries = [orjson.loads(v) for k, v in objects.items() if "/_manifest/" in k]
    assert len(entries) == 8 and not [k for k in objects if "/_tmp/" in k]
    parquet = {k for k in objects if k.endswith(".parquet")}
    assert parquet == {o["key"] for e in entries for o in e["objects"]} and len(parquet) == 9  # one unit straddles
    assert amounts(lake_rows(objects)) == expected_rows(*(make_records(u) for u in units))


def _big_records(unit: UnitRef, n: int, size: int) -> list[SinkRecord]:
    """``n`` records with a random tag value of ``size`` bytes each: a Parquet object of about n * size bytes."""
    from dbcost.sinks.base import natural_key

    out = []
    for i in range(n):
        team = os.urandom(size // 2).hex()
        ps = (unit.start + dt.timedelta(days=i % 3)).isoformat()
        key = natural_key(unit.dataset, unit.target, ps, ("svc", team))
        out.append(SinkRecord(key, unit.dataset, unit.target, 1, unit.run_id, {
            "period_start": ps, "period_end": ps, "granularity": "DAILY", "keys": {"SERVICE": "svc", "TAG:team": team},
            "metrics": {"UnblendedCost": {"amount": f"{i}.5", "unit": "USD"}}, "estimated": False}))
    return out


async def test_an_object_above_the_threshold_goes_up_in_parts_and_lands_whole(bucket: str) -> None:
    """An object over multipart_threshold_mb is a multipart upload of part_size_mb parts (the last smaller),
    completed and then copied in place: the final object is byte for byte the one the manifest describes."""
    unit = make_unit(days=3)
    records = _big_records(unit, 2200, 2600)  # ~5.7 MiB uncompressed: two parts of 5 MiB
    async with AwsTransport(service="s3", endpoint_url=bucket) as aws:
        seam = Seam(aws)
        sink = open_sink(url(bucket, compression="none", multipart_threshold_mb=5, part_size_mb=5),
                         SinkContext(transport=seam))
        assert isinstance(sink, S3Sink)
        async with sink:
            await sink.write_unit(unit, batches(records))
    assert seam.calls == ["HeadBucket", "CreateMultipartUpload", "UploadPart", "UploadPart",
                          "CompleteMultipartUpload", "CopyObject", "DeleteObject", "PutObject"]
    assert (sink.stats.multipart_uploads, sink.stats.objects, sink.stats.units) == (1, 1, 1)
    objects = read_bucket(bucket, BUCKET)
    [entry] = [orjson.loads(v) for k, v in objects.items() if k.endswith(".json")]
    [obj] = entry["objects"]
    assert obj["bytes"] > 5 << 20 and hashlib.sha256(objects[obj["key"]]).hexdigest() == obj["sha256"]
    assert len(lake_rows(objects)) == len(records)
    assert s3_client(bucket).list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


# --------------------------------------------------------------------------------------------- failures


async def test_a_transient_failure_is_retried_and_a_failed_upload_never_touches_the_old_object(
        bucket: str, caplog: pytest.LogCaptureFixture) -> None:
    """A 5xx on CopyObject is retried; a multipart upload whose completion is refused is aborted, the unit
    fails with a SinkError naming the operation, and the object from before is intact; a temporary key that
    cannot be deleted is only a warning."""
    unit = make_unit(days=2)
    records = make_records(unit)
    denied = AccessDeniedError("Access Denied", code="AccessDenied", status=403, operation="DeleteObject")
    async with AwsTransport(service="s3", endpoint_url=bucket) as aws:
        seam = Seam(aws, {"CopyObject": [ServerError("We encountered an internal error", code="InternalError",
                                                     status=500, operation="CopyObject")],
                          "DeleteObject": [denied] * 5})
        async with open_sink(url(bucket, backoff_ms=1), SinkContext(transport=seam)) as sink:
            with caplog.at_level(logging.WARNING, logger="dbcost.sinks.s3"):
                assert await sink.write_unit(unit, batches(records)) == len(records)
        assert seam.calls.count("CopyObject") == 2 and seam.calls.count("DeleteObject") == 1
        assert "could not delete temporary object" in caplog.text and "AccessDenied" in caplog.text
        before = read_bucket(bucket, BUCKET)
        assert len([k for k in before if "/_tmp/" in k]) == 1  # the one left behind, for the lifecycle rule

        refused = ApiError("One or more of the specified parts could not be found", code="InvalidPart", status=400,
                           operation="CompleteMultipartUpload")
        seam = Seam(aws, {"CompleteMultipartUpload": [refused]})
        restated = [SinkRecord(r.key, r.dataset, r.target, 2, "run-2", r.record) for r in make_records(unit, salt="x")]
        async with open_sink(url(bucket, multipart_threshold_mb=0, backoff_ms=1), SinkContext(transport=seam)) as sink:
            with pytest.raises(SinkError, match="CompleteMultipartUpload: InvalidPart") as info:
                await sink.write_unit(unit, batches(restated))
        assert not isinstance(info.value, TransientSinkError) and sink.name in str(info.value)
        assert seam.calls[-1] == "AbortMultipartUpload"
    after = read_bucket(bucket, BUCKET)
    assert {k: v for k, v in after.items() if "/_tmp/" not in k} == {k: v for k, v in before.items() if "/_tmp/" not in k}
    assert s3_client(bucket).list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


async def test_a_missing_bucket_or_missing_credentials_fail_at_open(moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No bucket: a SinkError at open saying so (before anything is fetched); no credentials: a SinkError
    naming them; neither is retried."""
    with pytest.raises(SinkError) as info:
        async with open_sink(url(moto, retries=3)):
            pass
    assert str(info.value).endswith(f": bucket '{BUCKET}' does not exist")
    assert not isinstance(info.value, TransientSinkError)
    create_bucket(moto, BUCKET)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SinkError, match="credentials"):
        async with open_sink(url(moto, retries=3)):
            pass


async def test_the_endpoint_comes_from_aws_endpoint_url_s3(moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no endpoint in the URL or the context, botocore's AWS_ENDPOINT_URL_S3 is where the sink writes."""
    create_bucket(moto, BUCKET)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto)
    unit = make_unit(days=1)
    async with open_sink(f"s3://{BUCKET}/env", SinkContext(region="us-east-1")) as sink:
        await sink.write_unit(unit, batches(make_records(unit)))
    assert len(read_bucket(moto, BUCKET, "env/")) == 2


async def test_a_hung_then_dead_server_is_a_transient_error_and_the_resend_lands(tmp_path: Path) -> None:
    """moto hangs (SIGSTOP) then dies: TransientSinkError naming the sink each time, within the time the
    options allow; once it answers again the same unit lands on the same keys."""
    unit = make_unit(days=2)
    records = make_records(unit)
    with MotoServer() as server:
        create_bucket(server.url, BUCKET)
        sink = open_sink(url(server.url, retries=2, backoff_ms=10, timeout=0.5))
        await sink.open()
        try:
            server.pause()
            try:
                with pytest.raises(TransientSinkError, match="gave up after 2 attempts") as info:
                    await sink.write_unit(unit, batches(records))
            finally:
                server.resume()
            assert sink.name in str(info.value)
            assert await sink.write_unit(unit, batches(records)) == len(records)
            assert amounts(lake_rows(read_bucket(server.url, BUCKET))) == expected_rows(records)
            server.kill()
            with pytest.raises(TransientSinkError, match="connection failed"):
                await sink.write_unit(unit, batches(records))
        finally:
            await sink.close()


async def test_an_hourly_unit_has_utc_timestamp_periods(bucket: str) -> None:
    """HOURLY records keep their hour: period_start/period_end are UTC timestamps, the month from the period."""
    import pyarrow as pa

    unit = UnitRef("run-1", "ds-hourly", "t", dt.date(2026, 11, 20), dt.date(2026, 11, 21), "HOURLY", ("SERVICE",))
    recs = [SinkRecord.from_record(unit, {"period_start": f"2026-11-20T{h:02d}:00:00Z",
                                          "period_end": f"2026-11-20T{h + 1:02d}:00:00Z", "granularity": "HOURLY",
                                          "keys": {"SERVICE": "RDS"}, "estimated": True,
                                          "metrics": {"UnblendedCost": {"amount": "0.25", "unit": "USD"}}},
                                   version=1, run_id="run-1") for h in range(3)]
    async with open_sink(url(bucket)) as sink:
        await sink.write_unit(unit, batches(recs))
    objects = read_bucket(bucket, BUCKET)
    [key] = [k for k in objects if k.endswith(".parquet")]
    assert "/dataset=ds-hourly/month=2026-11/" in key
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(objects[key]))
    assert table.schema.field("period_start").type == pa.timestamp("us", tz="UTC")
    assert table.column("period_start").to_pylist()[2] == dt.datetime(2026, 11, 20, 2, tzinfo=dt.UTC)


def test_readme_documents_the_layout_and_the_tested_read_back_query() -> None:
    """README.md shows the layout and exactly the query these tests run (whitespace aside)."""
    text = " ".join(README.read_text().split())
    query = " ".join(LAKE_COLLAPSE_SQL.format(glob="s3://BUCKET/PREFIX/dataset=*/month=*/*.parquet").split())
    assert query in text
    assert re.search(r"PREFIX/dataset=<dataset id>/month=YYYY-MM/<target>_<start>_<end>\.parquet", text)
