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
