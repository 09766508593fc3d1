"""The emulator over real HTTP with aioboto3: paging vs truth, errors as botocore sees them, lookups."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import itertools
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.parse import parse_page

from .helpers import OCTOBER_BY_SERVICE_AND_TEAM, TODAY, ce_client, error_code, fetch_all, group_sums

# ---------------------------------------------------------------------------------------------- paging


async def test_paging_ends_mid_period_and_sums_match_truth_exactly(emu: Emulator, ce: Any) -> None:
    """Several pages, a page ending mid-period, and every group summed equals the truth to the cent."""
    pages = await fetch_all(ce, OCTOBER_BY_SERVICE_AND_TEAM)
    truth = emu.truth(OCTOBER_BY_SERVICE_AND_TEAM)
    assert len(pages) >= 4
    split = [
        (a["ResultsByTime"][-1]["TimePeriod"], b["ResultsByTime"][0]["TimePeriod"])
        for a, b in itertools.pairwise(pages)
    ]
    assert any(last == first for last, first in split), "some page ends mid-period"
    for metric in ("UnblendedCost", "UsageQuantity"):
        total, n = group_sums(pages, metric)
        assert total == Decimal(truth["metrics"][metric])
        assert n == truth["groups"]
    assert truth["malformed_groups"] == 0
    assert sum(len(p["ResultsByTime"]) for p in pages) > truth["periods"]  # periods repeat across pages
    assert pages[0]["GroupDefinitions"] == OCTOBER_BY_SERVICE_AND_TEAM["GroupBy"]
    assert all(r["Total"] == {} for p in pages for r in p["ResultsByTime"])
    stats = emu.stats()
    assert stats["pages_served"] == len(pages)
    assert stats["groups_served"] == truth["groups"]


async def test_project_parser_agrees_with_truth_under_malformation() -> None:
    """dbcost.parse quarantines exactly the malformed groups and its records sum to the truth."""
    request = {**OCTOBER_BY_SERVICE_AND_TEAM, "Metrics": ["UnblendedCost", "AmortizedCost", "UsageQuantity"]}
    async with Emulator(EmulatorConfig(today=TODAY, page_size=300, malformed_rate=0.04)) as emu:
        async with ce_client(emu.url) as ce:
            pages = await fetch_all(ce, request)
        truth = emu.truth(request)
        assert emu.stats()["malformed_groups_served"] == truth["malformed_groups"]
    parsed = [
        parse_page(p, page=i + 1, granularity="DAILY", group_definitions=request["GroupBy"],
                   metrics=request["Metrics"])
        for i, p in enumerate(pages)
    ]
    records = [r for p in parsed for r in p.records]
    quarantined = [q for p in parsed for q in p.quarantined]
    assert truth["malformed_groups"] > 0
    assert len(quarantined) == truth["malformed_groups"]
    assert len(records) == truth["groups"]
    for metric in request["Metrics"]:
        assert sum(r.metrics[metric].amount for r in records) == Decimal(truth["metrics"][metric])
    by_keys = {tuple(row["keys"].items()): Decimal(row["metrics"]["UnblendedCost"]) for row in truth["by_keys"]}
    mine: dict[tuple[tuple[str, str], ...], Decimal] = {}
    for r in records:
        k = tuple(r.keys.items())
        mine[k] = mine.get(k, Decimal(0)) + r.metrics["UnblendedCost"].amount
    assert mine == by_keys
    kinds = {_malformation_kind(q.raw, len(request["GroupBy"])) for q in quarantined}
    assert kinds == {"nan", "locale", "empty", "no-unit", "no-metrics", "key-count"}


def _malformation_kind(raw: Any, nkeys: int) -> str:
    """Which of the six malformations a quarantined raw group shows, read from its shape."""
    if len(raw["Keys"]) != nkeys:
        return "key-count"
    if "Metrics" not in raw:
        return "no-metrics"
    first = next(iter(raw["Metrics"].values()))
    if "Unit" not in first:
        return "no-unit"
    return {"NaN": "nan", "": "empty"}.get(first["Amount"], "locale" if "," in first["Amount"] else "?")


async def test_malformed_groups_are_the_same_in_two_windowings() -> None:
    """At a 5% rate about 5% of groups are malformed, the same ones in a window and a sub-window."""
    narrow_req = {**OCTOBER_BY_SERVICE_AND_TEAM, "TimePeriod": {"Start": "2026-10-10", "End": "2026-10-20"}}
    async with (
        Emulator(EmulatorConfig(today=TODAY, page_size=400, malformed_rate=0.05)) as emu,
        ce_client(emu.url) as ce,
    ):
        wide = await fetch_all(ce, OCTOBER_BY_SERVICE_AND_TEAM)
        narrow = await fetch_all(ce, narrow_req)
        again = await fetch_all(ce, narrow_req)

    def bad(pages: list[dict[str, Any]]) -> set[tuple[str, tuple[str, ...]]]:
        out = set()
        for i, p in enumerate(pages):
            for q in parse_page(p, page=i + 1, granularity="DAILY",
                                group_definitions=OCTOBER_BY_SERVICE_AND_TEAM["GroupBy"],
                                metrics=OCTOBER_BY_SERVICE_AND_TEAM["Metrics"]).quarantined:
                assert q.period_start is not None
                out.add((q.period_start, tuple(q.raw["Keys"][:2])))
        return out

    total = sum(len(r["Groups"]) for p in wide for r in p["ResultsByTime"])
    wide_bad = bad(wide)
    assert 0.03 < len(wide_bad) / total < 0.07
    in_window = {b for b in wide_bad if "2026-10-10" <= b[0] < "2026-10-20"}
    assert bad(narrow) == in_window
    assert bad(again) == in_window
    assert [p["ResultsByTime"] for p in narrow] == [p["ResultsByTime"] for p in again]


async def test_total_only_results_have_zero_totals_from_today(emu: Emulator, ce: Any) -> None:
    """Without GroupBy: one page, Groups [] and Total per period; periods from today on are "0"."""
    req = {"TimePeriod": {"Start": "2026-11-25", "End": "2026-11-30"}, "Granularity": "DAILY",
           "Metrics": ["UnblendedCost", "UsageQuantity"]}
    pages = await fetch_all(ce, req)
    assert len(pages) == 1
    results = pages[0]["ResultsByTime"]
    assert "GroupDefinitions" not in pages[0]
    assert [r["Groups"] for r in results] == [[]] * 5
    assert [r["Total"]["UnblendedCost"]["Amount"] for r in results][3:] == ["0", "0"]
    assert results[0]["Total"]["UnblendedCost"]["Unit"] == "USD"
    assert results[0]["Total"]["UsageQuantity"]["Unit"] == "N/A"
    truth = emu.truth(req)
    assert sum(Decimal(r["Total"]["UnblendedCost"]["Amount"]) for r in results) == Decimal(
        truth["metrics"]["UnblendedCost"])
    assert truth["groups"] == 5


async def test_estimated_is_true_only_on_the_open_month(ce: Any) -> None:
    """MONTHLY October (closed) is not Estimated; November (today's month) is."""
    req = {"TimePeriod": {"Start": "2026-10-01", "End": "2026-12-01"}, "Granularity": "MONTHLY",
           "Metrics": ["UnblendedCost"]}
    pages = await fetch_all(ce, req)
    assert [(r["TimePeriod"]["Start"], r["Estimated"]) for r in pages[0]["ResultsByTime"]] == [
        ("2026-10-01", False), ("2026-11-01", True)]


async def test_linked_account_grouping_names_accounts(emu: Emulator, ce: Any) -> None:
    """GroupBy LINKED_ACCOUNT fills DimensionValueAttributes with each account's name."""
    req = {"TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"}, "Granularity": "MONTHLY",
           "Metrics": ["UnblendedCost"], "GroupBy": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]}
    pages = await fetch_all(ce, req)
    attrs = {a["Value"]: a["Attributes"]["description"] for a in pages[0]["DimensionValueAttributes"]}
    assert attrs == {a.id: a.name for a in emu.fleet.accounts}


async def test_hourly_is_served_and_exact(emu: Emulator, ce: Any) -> None:
    """HOURLY within 14 days: 24 periods a day, and the hours sum to the day's truth."""
    req = {"TimePeriod": {"Start": "2026-11-20T00:00:00Z", "End": "2026-11-21T00:00:00Z"},
           "Granularity": "HOURLY", "Metrics": ["UnblendedCost"],
           "GroupBy": [{"Type": "DIMENSION", "Key": "REGION"}]}
    pages = await fetch_all(ce, req)
    starts = {r["TimePeriod"]["Start"] for p in pages for r in p["ResultsByTime"]}
    assert len(starts) == 24
    assert "2026-11-20T23:00:00Z" in starts
    total, _ = group_sums(pages, "UnblendedCost")
    daily = emu.truth({**req, "Granularity": "DAILY", "TimePeriod": {"Start": "2026-11-20", "End": "2026-11-21"}})
    assert total == Decimal(daily["metrics"]["UnblendedCost"])


# ------------------------------------------------------------------------------------------- tokens


async def _first_token(ce: Any, request: dict[str, Any]) -> str:
    page = await ce.get_cost_and_usage(**request)
    token = page.get("NextPageToken")
    assert isinstance(token, str)
    return token


async def test_changed_request_with_token_is_request_changed(ce: Any) -> None:
    """Resending a token with a different request body is RequestChangedException (HTTP 400)."""
    token = await _first_token(ce, OCTOBER_BY_SERVICE_AND_TEAM)
    changed = {**OCTOBER_BY_SERVICE_AND_TEAM, "Metrics": ["BlendedCost"], "NextPageToken": token}
    with pytest.raises(ce.exceptions.RequestChangedException) as info:
        await ce.get_cost_and_usage(**changed)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_tampered_and_foreign_tokens_are_invalid(emu: Emulator, ce: Any) -> None:
    """A modified token, garbage, or a token from another emulator is InvalidNextTokenException."""
    token = await _first_token(ce, OCTOBER_BY_SERVICE_AND_TEAM)
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[-3] ^= 0x01
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode()
    async with Emulator(EmulatorConfig(today=TODAY, page_size=250)) as other, ce_client(other.url) as ce2:
        foreign = await _first_token(ce2, OCTOBER_BY_SERVICE_AND_TEAM)
    for bad in (tampered, "not-a-token!", foreign):
        with pytest.raises(ce.exceptions.InvalidNextTokenException) as info:
            await ce.get_cost_and_usage(**OCTOBER_BY_SERVICE_AND_TEAM, NextPageToken=bad)
        assert "Try again without a pagination token" in info.value.response["Error"]["Message"]
    assert emu.stats()["invalid_tokens"] == 3


async def test_token_is_invalid_after_restate_and_after_ttl(emu: Emulator, ce: Any) -> None:
    """A restatement in between, or an expired token (tiny ttl), is InvalidNextTokenException."""
    token = await _first_token(ce, OCTOBER_BY_SERVICE_AND_TEAM)
    emu.restate()
    with pytest.raises(ce.exceptions.InvalidNextTokenException):
        await ce.get_cost_and_usage(**OCTOBER_BY_SERVICE_AND_TEAM, NextPageToken=token)
    emu.update(token_ttl_s=0.05)
    token = await _first_token(ce, OCTOBER_BY_SERVICE_AND_TEAM)
    await asyncio.sleep(0.15)
    with pytest.raises(ce.exceptions.InvalidNextTokenException) as info:
        await ce.get_cost_and_usage(**OCTOBER_BY_SERVICE_AND_TEAM, NextPageToken=token)
    assert "expired" in info.value.response["Error"]["Message"]


async def test_restate_changes_only_the_window_over_http(emu: Emulator, ce: Any) -> None:
    """After restate the served totals change for the days still estimated, not before, and match the truth:
    on the 5th last month moves too; on the 28th (the fixture's today) only this month does."""
    req = {"TimePeriod": {"Start": "2026-09-28", "End": "2026-10-03"}, "Granularity": "DAILY",
           "Metrics": ["UnblendedCost"]}

    def amounts(pages: list[dict[str, Any]]) -> list[str]:
        return [r["Total"]["UnblendedCost"]["Amount"] for r in pages[0]["ResultsByTime"]]

    emu.update(today=dt.date(2026, 11, 5))
    before = amounts(await fetch_all(ce, req))
    assert emu.restate() == 1
    after = amounts(await fetch_all(ce, req))
    assert after[:3] == before[:3]
    assert all(a != b for a, b in zip(after[3:], before[3:], strict=True))
    assert [p["metrics"]["UnblendedCost"] for p in emu.truth(req)["by_period"]] == after
    emu.update(today=dt.date(2026, 11, 28))  # October is final now: a restatement leaves it alone
    before = amounts(await fetch_all(ce, req))
    emu.restate()
    assert amounts(await fetch_all(ce, req)) == before


async def test_previous_month_stays_estimated_through_the_configured_day(emu: Emulator, ce: Any) -> None:
    """October is served Estimated through November 5th (the default) and final from the 6th; the day is a
    runtime knob (0: final on the 1st)."""
    req = {"TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"}, "Granularity": "MONTHLY",
           "Metrics": ["UnblendedCost"]}

    async def october_estimated() -> bool:
        [page] = await fetch_all(ce, req)
        return bool(page["ResultsByTime"][0]["Estimated"])

    assert emu.config.estimated_through_day == 5
    for day, estimated in ((1, True), (5, True), (6, False)):
        emu.update(today=dt.date(2026, 11, day))
        assert await october_estimated() is estimated, day
    emu.update(today=dt.date(2026, 11, 6), estimated_through_day=8)
    assert await october_estimated() is True
    emu.update(today=dt.date(2026, 11, 1), estimated_through_day=0)
    assert await october_estimated() is False
    with pytest.raises(ValueError, match="estimated_through_day must be <= 28"):
        emu.update(estimated_through_day=31)


# ------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("time_period", "granularity", "group_by"),
    [
        ({"Start": "2026-10-05", "End": "2026-10-01"}, "DAILY", []),
        ({"Start": "2025-09-01", "End": "2025-10-01"}, "DAILY", []),
        ({"Start": "2023-01-01", "End": "2023-02-01"}, "MONTHLY", []),
        ({"Start": "2026-11-01T00:00:00Z", "End": "2026-11-02T00:00:00Z"}, "HOURLY", []),
        ({"Start": "2026-10-01", "End": "2026-10-02"}, "DAILY",
         [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "team"}, {"Type": "TAG", "Key": "env"}]),
    ],
)
async def test_date_rules_and_group_limits_reach_botocore_as_validation(
    emu: Emulator, ce: Any, time_period: dict[str, str], granularity: str, group_by: list[dict[str, str]]
) -> None:
    """Broken date rules and a third GroupBy are ClientError ValidationException, HTTP 400."""
    params: dict[str, Any] = {"TimePeriod": time_period, "Granularity": granularity, "Metrics": ["UnblendedCost"]}
    if group_by:
        params["GroupBy"] = group_by
    with pytest.raises(Exception) as info:  # noqa: PT011 - the assertion below pins the code
        await ce.get_cost_and_usage(**params)
    assert error_code(info.value) == "ValidationException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400  # type: ignore[attr-defined]
    assert info.value.response["ResponseMetadata"]["RequestId"]  # type: ignore[attr-defined]
    assert emu.stats()["validation_errors"] == 1


async def test_throttling_is_limit_exceeded() -> None:
    """Over max_rps the service answers LimitExceededException "Rate limit exceeded", counted in stats."""
    async with Emulator(EmulatorConfig(today=TODAY, clusters=20, max_rps=2.0, burst=2)) as emu:
        async with ce_client(emu.url) as ce:
            codes = []
            answers = []
            for _ in range(6):
                try:
                    await ce.get_tags(TimePeriod={"Start": "2026-10-01", "End": "2026-11-01"})
                    codes.append("ok")
                except ce.exceptions.LimitExceededException as exc:
                    meta = exc.response["ResponseMetadata"]
                    answers.append((exc.response["Error"]["Message"], meta["HTTPStatusCode"]))
                    codes.append("throttled")
            assert set(answers) == {("Rate limit exceeded", 400)}
            assert codes[:2] == ["ok", "ok"]
            assert "throttled" in codes
            await asyncio.sleep(0.6)
            await ce.get_tags(TimePeriod={"Start": "2026-10-01", "End": "2026-11-01"})
        stats = emu.stats()
    assert stats["throttled"] == codes.count("throttled")
    assert stats["pages_served"] == codes.count("ok") + 1


async def test_faults_and_drops_surface_as_errors_not_hangs() -> None:
    """fault_rate=1 gives 5xx ClientErrors; drop_rate=1 gives a botocore connection error promptly."""
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    async with Emulator(EmulatorConfig(today=TODAY, clusters=20, fault_rate=1.0)) as emu:
        async with ce_client(emu.url) as ce:
            seen = set()
            for _ in range(8):
                with pytest.raises(Exception) as info:  # noqa: PT011 - code checked below
                    await ce.get_tags(TimePeriod={"Start": "2026-10-01", "End": "2026-11-01"})
                seen.add((error_code(info.value),
                          info.value.response["ResponseMetadata"]["HTTPStatusCode"]))  # type: ignore[attr-defined]
            assert seen <= {("InternalServerError", 500), ("ServiceUnavailable", 503)}
            emu.update(fault_rate=0.0, drop_rate=1.0)
            async with asyncio.timeout(15):
                with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
                    await ce.get_tags(TimePeriod={"Start": "2026-10-01", "End": "2026-11-01"})
        stats = emu.stats()
    assert stats["faults"] == 8
    assert stats["dropped"] == 1
    assert stats["pages_served"] == 0


async def test_requests_without_sigv4_are_refused(emu: Emulator) -> None:
    """No Authorization header is 403 MissingAuthenticationToken; a malformed one IncompleteSignature."""
    headers = {"X-Amz-Target": "AWSInsightsIndexService.GetTags", "Content-Type": "application/x-amz-json-1.1"}
    body = b'{"TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"}}'
    async with aiohttp.ClientSession() as http:
        async with http.post(emu.url + "/", data=body, headers=headers) as resp:
            assert resp.status == 403
            assert resp.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
            assert resp.headers["x-amzn-RequestId"]
            assert (await resp.json(content_type=None))["__type"] == "MissingAuthenticationTokenException"
        bad = {**headers, "Authorization": "AWS4-HMAC-SHA256 Credential=testing", "X-Amz-Date": "20261128T000000Z"}
        async with http.post(emu.url + "/", data=body, headers=bad) as resp:
            assert resp.status == 403
            assert resp.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"
        sig = "0" * 64
        good_form = {**headers, "X-Amz-Date": "20261128T000000Z",
                     "Authorization": f"AWS4-HMAC-SHA256 Credential=AKID/20261128/us-east-1/ce/aws4_request, "
                                      f"SignedHeaders=host;x-amz-date;x-amz-target, Signature={sig}"}
        async with http.post(emu.url + "/", data=body, headers=good_form) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("application/x-amz-json-1.1")
            assert (await resp.json(content_type=None))["Tags"] == ["db-cluster", "env", "team"]
        unknown = {**good_form, "X-Amz-Target": "AWSInsightsIndexService.GetReservationCoverage"}
        async with http.post(emu.url + "/", data=body, headers=unknown) as resp:
            assert resp.status == 400
            assert resp.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert emu.stats()["auth_refused"] == 2


# ------------------------------------------------------------------------------------------ lookups


async def test_dimension_values_shape_search_and_paging(emu: Emulator, ce: Any) -> None:
    """GetDimensionValues: values with data, account names as attributes, SearchString, MaxResults paging."""
    window = {"Start": "2026-10-01", "End": "2026-11-01"}
    services = await ce.get_dimension_values(TimePeriod=window, Dimension="SERVICE")
    values = [v["Value"] for v in services["DimensionValues"]]
    assert {"Amazon Relational Database Service", "Amazon DynamoDB", "Amazon ElastiCache", "Amazon Redshift",
            "Amazon DocumentDB (with MongoDB compatibility)", "Amazon Neptune", "Tax"} <= set(values)
    assert services["TotalSize"] == services["ReturnSize"] == len(values)
    assert all(v["Attributes"] == {} for v in services["DimensionValues"])
    elastic = await ce.get_dimension_values(TimePeriod=window, Dimension="SERVICE", SearchString="elastic")
    assert sorted(v["Value"] for v in elastic["DimensionValues"]) == [
        "Amazon ElastiCache", "Amazon Elastic Compute Cloud - Compute"]
    accounts = await ce.get_dimension_values(TimePeriod=window, Dimension="LINKED_ACCOUNT")
    assert {v["Value"]: v["Attributes"]["description"] for v in accounts["DimensionValues"]} == {
        a.id: a.name for a in emu.fleet.accounts}
    collected: list[str] = []
    token = None
    while True:
        extra: dict[str, str] = {"NextPageToken": token} if token else {}
        page = await ce.get_dimension_values(TimePeriod=window, Dimension="USAGE_TYPE", MaxResults=25, **extra)
        assert page["ReturnSize"] <= 25
        collected.extend(v["Value"] for v in page["DimensionValues"])
        token = page.get("NextPageToken")
        if not token:
            break
    whole = await ce.get_dimension_values(TimePeriod=window, Dimension="USAGE_TYPE")
    assert collected == [v["Value"] for v in whole["DimensionValues"]]
    assert page["TotalSize"] == len(collected) > 25


async def test_get_tags_keys_and_bare_values(ce: Any) -> None:
    """GetTags lists the tag keys with data, or one key's bare values (no key$ prefix), searchable."""
    window = {"Start": "2026-10-01", "End": "2026-11-01"}
    keys = await ce.get_tags(TimePeriod=window)
    assert keys["Tags"] == ["db-cluster", "env", "team"]
    teams = await ce.get_tags(TimePeriod=window, TagKey="team")
    assert 8 <= len(teams["Tags"]) <= 12
    assert all("$" not in t for t in teams["Tags"])
    envs = await ce.get_tags(TimePeriod=window, TagKey="env", SearchString="PRO")
    assert envs["Tags"] == ["prod"]
    assert envs["TotalSize"] == envs["ReturnSize"] == 1


async def test_cost_forecast_projects_recent_mean(emu: Emulator, ce: Any) -> None:
    """GetCostForecast: mean of the last 28 days x days per period, bounds around it, Start >= today."""
    fc = await ce.get_cost_forecast(TimePeriod={"Start": "2026-11-28", "End": "2027-01-01"},
                                    Metric="UNBLENDED_COST", Granularity="MONTHLY")
    periods = fc["ForecastResultsByTime"]
    assert [p["TimePeriod"] for p in periods] == [{"Start": "2026-11-28", "End": "2026-12-01"},
                                                   {"Start": "2026-12-01", "End": "2027-01-01"}]
    for p in periods:
        assert Decimal(p["PredictionIntervalLowerBound"]) <= Decimal(p["MeanValue"]) <= Decimal(
            p["PredictionIntervalUpperBound"])
    assert Decimal(fc["Total"]["Amount"]) == sum(Decimal(p["MeanValue"]) for p in periods)
    assert fc["Total"]["Unit"] == "USD"
    history = emu.truth({"TimePeriod": {"Start": "2026-10-31", "End": "2026-11-28"}, "Granularity": "DAILY",
                         "Metrics": ["UnblendedCost"]})
    mean_daily = Decimal(history["metrics"]["UnblendedCost"]) / 28
    assert abs(Decimal(periods[1]["MeanValue"]) - mean_daily * 31) < Decimal("0.000000001")
    with pytest.raises(Exception) as info:  # noqa: PT011 - code checked below
        await ce.get_cost_forecast(TimePeriod={"Start": "2026-11-27", "End": "2026-12-01"},
                                   Metric="UNBLENDED_COST", Granularity="DAILY")
    assert error_code(info.value) == "ValidationException"
    rds = await ce.get_cost_forecast(
        TimePeriod={"Start": "2026-11-28", "End": "2026-11-30"}, Metric="NET_AMORTIZED_COST", Granularity="DAILY",
        Filter={"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Relational Database Service"]}},
        PredictionIntervalLevel=95,
    )
    assert len(rds["ForecastResultsByTime"]) == 2
    assert Decimal(rds["Total"]["Amount"]) < Decimal(fc["Total"]["Amount"])


# -------------------------------------------------------------------------------------------- admin


async def test_admin_endpoints(emu: Emulator, ce: Any) -> None:
    """stats, truth, restate, config and fleet are served without auth and agree with the library API."""
    await ce.get_tags(TimePeriod={"Start": "2026-10-01", "End": "2026-11-01"})
    async with aiohttp.ClientSession() as http:
        async with http.get(emu.url + "/_emulator/stats") as resp:
            stats = await resp.json()
        assert stats["requests"] == 1
        assert stats["by_operation"] == {"GetTags": 1}
        for key in ("throttled", "faults", "dropped", "pages_served", "bytes_served", "malformed_groups_served",
                    "validation_errors"):
            assert key in stats
        async with http.post(emu.url + "/_emulator/truth", json=OCTOBER_BY_SERVICE_AND_TEAM) as resp:
            assert await resp.json() == emu.truth(OCTOBER_BY_SERVICE_AND_TEAM)
        async with http.post(emu.url + "/_emulator/truth", json={"Granularity": "DAILY"}) as resp:
            assert resp.status == 400
            assert (await resp.json())["__type"] == "ValidationException"
        async with http.post(emu.url + "/_emulator/restate") as resp:
            assert await resp.json() == {"data_version": 1}
        async with http.post(emu.url + "/_emulator/config", json={"malformed_rate": 0.1, "page_size": 99}) as resp:
            assert resp.status == 200
            assert (await resp.json())["page_size"] == 99
        assert emu.config.malformed_rate == 0.1
        async with http.post(emu.url + "/_emulator/config", json={"fault_rate": 1.5}) as resp:
            assert resp.status == 400
            assert "fault_rate" in (await resp.json())["Message"]
        async with http.post(emu.url + "/_emulator/config", json={"seed": 3}) as resp:
            assert resp.status == 400
        async with http.get(emu.url + "/_emulator/fleet") as resp:
            fleet = await resp.json()
    assert len(fleet["clusters"]) == 240
    assert {a["name"] for a in fleet["accounts"]} == {a.name for a in emu.fleet.accounts}
    sample = fleet["clusters"][0]
    for key in ("id", "account", "region", "service", "engine", "team", "env", "tags_present", "created",
                "retired"):
        assert key in sample


async def test_update_changes_today_and_page_size(emu: Emulator, ce: Any) -> None:
    """update(today=..., page_size=...) takes effect on the next request."""
    emu.update(page_size=1000, today=dt.date(2026, 11, 5))
    pages = await fetch_all(ce, OCTOBER_BY_SERVICE_AND_TEAM)
    assert len(pages) == 2
    assert emu.stats()["today"] == "2026-11-05"
    with pytest.raises(ValueError, match="page_size"):
        emu.update(page_size=0)


async def test_latency_delays_every_aws_response() -> None:
    """latency_ms holds each AWS answer (errors included) for at least that long."""
    import time

    async with Emulator(EmulatorConfig(today=TODAY, clusters=10, latency_ms=150)) as emu, ce_client(emu.url) as ce:
        t0 = time.perf_counter()
        await ce.get_tags(TimePeriod={"Start": "2026-10-01", "End": "2026-11-01"})
        ok = time.perf_counter() - t0
        t0 = time.perf_counter()
        with pytest.raises(ce.exceptions.ClientError):
            await ce.get_tags(TimePeriod={"Start": "2026-10-05", "End": "2026-10-01"})
        failed = time.perf_counter() - t0
    assert ok >= 0.15
    assert failed >= 0.15


@contextlib.contextmanager
def _served_from_a_thread(cfg: EmulatorConfig, *, build_thread: bool) -> Iterator[Emulator]:
    """The emulator on its own event loop in a thread, as a separate server would be: a build that holds that
    loop does not hold the client's."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    emu = Emulator(cfg, build_thread=build_thread)
    asyncio.run_coroutine_threadsafe(emu.start(), loop).result(30)
    try:
        yield emu
    finally:
        asyncio.run_coroutine_threadsafe(emu.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        runner.join(30)
        loop.close()


@pytest.mark.parametrize("build_thread", [True, False])
async def test_a_page_being_built_does_not_hold_up_admission_on_the_build_thread(build_thread: bool) -> None:
    """With answers built on the worker thread (as `emulator serve` does), a throttle is decided and answered
    while a long build (a 13-month truth, about a second) runs; built inline, the same throttle waits for it."""
    cfg = EmulatorConfig(today=TODAY, max_rps=0.1, burst=1)  # one token, the next in 10 s
    long_truth = {"TimePeriod": {"Start": "2025-10-01", "End": "2026-11-28"}, "Granularity": "DAILY",
                  "Metrics": ["UnblendedCost"], "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"},
                                                            {"Type": "TAG", "Key": "db-cluster"}]}
    with _served_from_a_thread(cfg, build_thread=build_thread) as emu:
        async with ce_client(emu.url) as ce:
            await ce.get_tags(TimePeriod={"Start": "2026-10-01", "End": "2026-11-01"})  # takes the one token
            loop = asyncio.get_running_loop()
            began = loop.time()
            took: dict[str, float] = {}

            async def truth() -> None:
                async with aiohttp.ClientSession() as http, http.post(emu.url + "/_emulator/truth",
                                                                      json=long_truth) as resp:
                    assert resp.status == 200
                    await resp.read()
                took["truth"] = loop.time() - began

            async def throttled() -> None:
                await asyncio.sleep(0.2)  # the build is under way
                with pytest.raises(ce.exceptions.LimitExceededException):
                    await ce.get_tags(TimePeriod={"Start": "2026-10-01", "End": "2026-11-01"})
                took["throttle"] = loop.time() - began

            await asyncio.gather(truth(), throttled())
    if build_thread:  # answered while the build ran
        assert took["throttle"] < 0.5 * took["truth"]
    else:  # held up until the build was done
        assert took["throttle"] > 0.8 * took["truth"]
