"""The response path of the record-shaped operations (transport/aws.py): decoded by orjson without botocore's
shape walk, yet the same answer botocore gives; everything else still parsed by botocore. Real HTTP: the
emulator, and a hostile server for what the emulator never sends."""

from __future__ import annotations

import os
from typing import Any

import aioboto3
import pytest
from aiohttp import web
from botocore.parsers import BaseJSONParser

from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.errors import ThrottledError
from dbcost.transport.aws import RAW_OPERATIONS, AwsTransport
from tests.hostile.conftest import Call, Hostile, answer, page

REQUEST: dict[str, Any] = {
    "TimePeriod": {"Start": "2026-10-01", "End": "2026-10-04"}, "Granularity": "DAILY", "Metrics": ["UnblendedCost"],
    "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}, {"Type": "TAG", "Key": "db-cluster"}],
}
KEYS = ("bench", "bench")


@pytest.fixture(autouse=True)
def _no_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """No profile file of the machine's user reaches these clients."""
    for name, value in (("AWS_CONFIG_FILE", os.devnull), ("AWS_SHARED_CREDENTIALS_FILE", os.devnull)):
        monkeypatch.setenv(name, value)


def _walked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every output shape botocore walks (the walk starts with the response's top-level structure)."""
    walked: list[str] = []
    original = BaseJSONParser._handle_structure

    def spy(self: BaseJSONParser, shape: Any, value: Any) -> Any:
        walked.append(shape.name)
        return original(self, shape, value)

    monkeypatch.setattr(BaseJSONParser, "_handle_structure", spy)
    return walked


async def test_a_page_is_not_walked_and_equals_botocores_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """GetCostAndUsage through AwsTransport: no shape walk, and the same dict an unmodified aioboto3 client
    returns for the same request (every page of the chain)."""
    assert {"GetCostAndUsage", "GetCostAndUsageWithResources"} == RAW_OPERATIONS
    async with Emulator(EmulatorConfig(page_size=100, clusters=24)) as emu:
        ours: list[dict[str, Any]] = []
        walked = _walked(monkeypatch)
        async with AwsTransport(endpoint_url=emu.url, region="us-east-1", credentials=KEYS) as t:
            params = dict(REQUEST)
            while True:
                got = await t.call("GetCostAndUsage", params)
                ours.append(got)
                if "NextPageToken" not in got:
                    break
                params["NextPageToken"] = got["NextPageToken"]
            assert not [name for name in walked if "CostAndUsage" in name]
            await t.call("GetDimensionValues", {"TimePeriod": REQUEST["TimePeriod"], "Dimension": "SERVICE"})
            assert "GetDimensionValuesResponse" in walked  # every other operation: botocore's parser, as before
        session = aioboto3.Session(aws_access_key_id=KEYS[0], aws_secret_access_key=KEYS[1])
        theirs: list[dict[str, Any]] = []
        async with session.client("ce", endpoint_url=emu.url, region_name="us-east-1") as plain:
            params = dict(REQUEST)
            while True:
                got = await plain.get_cost_and_usage(**params)
                got.pop("ResponseMetadata")
                theirs.append(got)
                if "NextPageToken" not in got:
                    break
                params["NextPageToken"] = got["NextPageToken"]
    assert len(ours) == len(theirs) > 1
    for a, b in zip(ours, theirs, strict=True):  # tokens are issued afresh per request; the rest is the same
        assert (a.pop("NextPageToken", None) is None) == (b.pop("NextPageToken", None) is None)
        assert a == b


async def test_errors_still_go_through_botocore_and_the_one_mapping() -> None:
    """A 400 throttle answer to a raw operation is parsed by botocore and mapped once, as before."""

    async def throttle(call: Call) -> web.StreamResponse:
        return answer({"__type": "LimitExceededException", "message": "Rate exceeded"}, 400)

    async with Hostile(throttle) as srv, AwsTransport(endpoint_url=srv.url, region="us-east-1",
                                                      credentials=KEYS) as t:
        with pytest.raises(ThrottledError, match="Rate exceeded") as info:
            await t.call("GetCostAndUsage", REQUEST)
    assert info.value.code == "LimitExceededException" and info.value.status == 400


async def test_a_null_groups_member_reads_as_no_groups_and_unknown_keys_are_kept() -> None:
    """What the walk used to do that the raw path does not: a null member is still read as absent by the
    parser (Groups: null is a period without groups), and a key the model does not know reaches the caller."""

    async def odd(call: Call) -> web.StreamResponse:
        body = page(call)
        body["ResultsByTime"][0]["Groups"][0]["Extra"] = "kept"
        body["ResultsByTime"].append({"TimePeriod": {"Start": "2026-10-02", "End": "2026-10-03"}, "Groups": None,
                                      "Total": {}, "Estimated": False})
        return answer(body)

    from dbcost.parse import parse_page

    async with Hostile(odd) as srv, AwsTransport(endpoint_url=srv.url, region="us-east-1", credentials=KEYS) as t:
        got = await t.call("GetCostAndUsage", REQUEST)
    assert got["ResultsByTime"][0]["Groups"][0]["Extra"] == "kept"
    parsed = parse_page(got, granularity="DAILY", metrics=["UnblendedCost"])
    assert len(parsed.records) == 1 and parsed.quarantined == []


async def test_a_columnar_chain_is_decoded_typed_and_holds_what_the_dict_path_holds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A backfill's columnar pages over real HTTP: every emulator page takes the typed decode (parse_page is never
    called, no shape walk) and the chain's records are the ones the orjson + parse_page path gives."""
    import dbcost.client
    import dbcost.parse
    from dbcost.client import CostExplorer
    from dbcost.governor import Governor, GovernorSettings
    from dbcost.models import CostQuery

    query = CostQuery.build(start="2026-10-01", end="2026-10-08", group_by=["USAGE_TYPE", "TAG:db-cluster"])
    general = dbcost.parse.parse_page
    parsed: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        parsed.append(kwargs.get("page", 0))
        return general(*args, **kwargs)

    async with Emulator(EmulatorConfig(page_size=100, clusters=24)) as emu:
        async def chain(columnar: bool) -> tuple[list[Any], int]:
            async with AwsTransport(endpoint_url=emu.url, region="us-east-1", credentials=KEYS) as t:
                ce = CostExplorer(t, governor=Governor(GovernorSettings(max_rps=1000, burst=1000)))
                records, pages = [], 0
                async for p in ce.pages(query, dedup=False, columnar=columnar):
                    pages += 1
                    assert not p.quarantined
                    records.extend(p.records)
                return records, pages

        plain, n = await chain(False)
        monkeypatch.setattr(dbcost.client, "parse_page", counting)
        walked = _walked(monkeypatch)
        typed, m = await chain(True)
    assert parsed == [] and not [name for name in walked if "CostAndUsage" in name]
    assert n == m > 1 and typed == plain and len(typed) > 100


async def test_a_page_the_typed_decode_declines_still_quarantines_its_bad_group() -> None:
    """A malformed group (a number amount) in a columnar chain over HTTP: the page takes the general path, the
    group is quarantined with its raw JSON and reason, its neighbours are kept; the clean next page is typed."""
    from dbcost.client import CostExplorer
    from dbcost.governor import Governor, GovernorSettings
    from dbcost.models import CostQuery

    async def serve(call: Call) -> web.StreamResponse:
        if call.token is None:
            body = page(call, [("Amazon RDS", "a", "1.25"), ("Amazon RDS", "b", "x"), ("Amazon RDS", "c", "2.5")],
                        token="t-1")
            body["ResultsByTime"][0]["Groups"][1]["Metrics"]["UnblendedCost"]["Amount"] = 3.5
            return answer(body)
        return answer(page(call, [("Amazon RDS", "d", "4")], day="2026-10-02"))

    query = CostQuery.build(start="2026-10-01", end="2026-10-03", group_by=["SERVICE", "TAG:team"])
    async with Hostile(serve) as srv, AwsTransport(endpoint_url=srv.url, region="us-east-1",
                                                   credentials=KEYS) as t:
        ce = CostExplorer(t, governor=Governor(GovernorSettings(max_rps=1000, burst=1000)))
        pages = [p async for p in ce.pages(query, dedup=False, columnar=True)]
    first, second = pages
    assert [q.reason for q in first.quarantined] == ["Metrics.UnblendedCost.amount must be a string, got float"]
    assert first.quarantined[0].raw["Keys"] == ["Amazon RDS", "team$b"]
    assert [(r.keys["TAG:team"], str(r.metrics["UnblendedCost"].amount)) for r in first.records] == [
        ("a", "1.25"), ("c", "2.5")]
    assert second.columns is not None and second.columns.key2 == ["d"] and not second.quarantined
