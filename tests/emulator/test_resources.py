"""GetCostAndUsageWithResources over real HTTP: pages vs the per-resource truth, the split vs GetCostAndUsage, the
resource ids, the untagged clusters, the operation's rules and the not-enabled answer."""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest

from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.emulator.fleet import DATABASE_SERVICES, METRICS, NO_RESOURCE_ID
from dbcost.emulator.query import WITH_RESOURCES

from .helpers import TODAY, ce_client, error_code

DB_FILTER: dict[str, Any] = {"Dimensions": {"Key": "SERVICE", "Values": sorted(DATABASE_SERVICES)}}
#: the 14 days resource-level data covers before TODAY, grouped by resource
LAST_14_BY_RESOURCE: dict[str, Any] = {
    "TimePeriod": {"Start": "2026-11-14", "End": "2026-11-28"},
    "Granularity": "DAILY",
    "Metrics": ["UnblendedCost", "UsageQuantity"],
    "Filter": DB_FILTER,
    "GroupBy": [{"Type": "DIMENSION", "Key": "RESOURCE_ID"}],
}
ARN_FORMS = {
    "db-instance": re.compile(r"arn:aws:rds:[a-z0-9-]+:\d{12}:db:db-\d{4}(-instance-\d)?"),
    "db-cluster": re.compile(r"arn:aws:rds:[a-z0-9-]+:\d{12}:cluster:cluster-[A-Z2-7]{26}"),
    "table": re.compile(r"arn:aws:dynamodb:[a-z0-9-]+:\d{12}:table/db-\d{4}"),
    "cache-cluster": re.compile(r"arn:aws:elasticache:[a-z0-9-]+:\d{12}:cluster:db-\d{4}"),
    "redshift-cluster": re.compile(r"arn:aws:redshift:[a-z0-9-]+:\d{12}:cluster:db-\d{4}"),
}


async def fetch_resources(ce: Any, request: dict[str, Any], *, retry_5xx: bool = False) -> list[dict[str, Any]]:
    """Every page of a GetCostAndUsageWithResources request (5xx and throttling retried when asked)."""
    pages: list[dict[str, Any]] = []
    token: str | None = None
    attempts = 0
    while True:
        params = dict(request)
        if token is not None:
            params["NextPageToken"] = token
        try:
            page = await ce.get_cost_and_usage_with_resources(**params)
        except Exception as exc:
            code = error_code(exc)
            if not retry_5xx or code not in ("InternalServerError", "ServiceUnavailable", "LimitExceededException"):
                raise
            attempts += 1
            assert attempts < 500, "runaway retries"
            continue
        pages.append(page)
        token = page.get("NextPageToken")
        if not token:
            return pages
        assert len(pages) < 1000, "runaway paging"


def sums_by_key(pages: list[dict[str, Any]], metric: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for page in pages:
        for result in page["ResultsByTime"]:
            for group in result["Groups"]:
                key = group["Keys"][0]
                out[key] = out.get(key, Decimal(0)) + Decimal(group["Metrics"][metric]["Amount"])
    return out


async def raw_call(emu: Emulator, target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST a body the SDK would refuse to send (no Filter) with a well-formed SigV4 header."""
    headers = {"X-Amz-Target": f"AWSInsightsIndexService.{target}", "Content-Type": "application/x-amz-json-1.1",
               "X-Amz-Date": "20261128T000000Z",
               "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20261128/us-east-1/ce/aws4_request, "
                                f"SignedHeaders=host;x-amz-date;x-amz-target, Signature={'0' * 64}"}
    async with aiohttp.ClientSession() as http, http.post(emu.url + "/", data=orjson.dumps(body),
                                                          headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


# ------------------------------------------------------------------------------------------- truth


async def test_pages_sum_to_the_per_resource_truth_exactly(emu: Emulator, ce: Any) -> None:
    """14 days by RESOURCE_ID over several pages: each resource's served sum is its truth to the 10^-10."""
    pages = await fetch_resources(ce, LAST_14_BY_RESOURCE)
    truth = emu.truth({**LAST_14_BY_RESOURCE, "Operation": WITH_RESOURCES})
    assert len(pages) > 3
    assert truth["operation"] == WITH_RESOURCES
    for metric in ("UnblendedCost", "UsageQuantity"):
        served = sums_by_key(pages, metric)
        expected = {r["resource_id"]: Decimal(r["metrics"][metric]) for r in truth["resources"]}
        assert served == expected
        assert sum(served.values()) == Decimal(truth["metrics"][metric])
    assert sum(len(r["Groups"]) for p in pages for r in p["ResultsByTime"]) == truth["groups"]
    stats = emu.stats()
    assert stats["by_operation"][WITH_RESOURCES] == len(pages)
    assert stats["pages_by_operation"][WITH_RESOURCES] == len(pages)
    assert pages[0]["GroupDefinitions"] == LAST_14_BY_RESOURCE["GroupBy"]


async def test_the_split_per_resource_sums_to_get_cost_and_usage(emu: Emulator) -> None:
    """Every metric: the resources' sums equal GetCostAndUsage's answer, in total and per service and day."""
    window = {"TimePeriod": {"Start": "2026-11-14", "End": "2026-11-28"}, "Granularity": "DAILY",
              "Metrics": list(METRICS), "Filter": DB_FILTER}
    plain = emu.truth(window)
    with_resources = emu.truth({**window, "Operation": WITH_RESOURCES})
    assert with_resources["metrics"] == plain["metrics"]
    assert with_resources["by_period"] == plain["by_period"]
    for metric in METRICS:
        assert sum(Decimal(r["metrics"][metric]) for r in with_resources["resources"]) == Decimal(
            plain["metrics"][metric])
    by_service = emu.truth({**window, "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}]})
    per_service: Counter[str] = Counter()
    for r in with_resources["resources"]:
        per_service[r["service"]] += Decimal(r["metrics"]["UnblendedCost"])  # type: ignore[assignment]
    assert {row["keys"]["SERVICE"]: Decimal(row["metrics"]["UnblendedCost"]) for row in by_service["by_keys"]} == \
        dict(per_service)


async def test_faults_throttling_and_malformed_groups_take_the_same_path() -> None:
    """With 5xx, throttling and malformed groups on, the valid groups sum to the truth and the malformed ones
    are exactly the truth's, as for GetCostAndUsage."""
    cfg = EmulatorConfig(today=TODAY, page_size=400, fault_rate=0.2, malformed_rate=0.03, max_rps=200, burst=5)
    async with Emulator(cfg) as emu, ce_client(emu.url) as ce:
        pages = await fetch_resources(ce, LAST_14_BY_RESOURCE, retry_5xx=True)
        truth = emu.truth({**LAST_14_BY_RESOURCE, "Operation": WITH_RESOURCES})
        stats = emu.stats()
    assert stats["faults"] > 0
    assert truth["malformed_groups"] > 0
    assert stats["malformed_groups_served"] == truth["malformed_groups"]
    valid = Decimal(0)
    for page in pages:
        for result in page["ResultsByTime"]:
            for group in result["Groups"]:
                try:
                    amount = Decimal(group["Metrics"]["UnblendedCost"]["Amount"])
                    ok = (amount.is_finite() and len(group["Keys"]) == 1
                          and "Unit" in group["Metrics"]["UnblendedCost"])
                except (KeyError, ArithmeticError):
                    ok = False
                if ok:
                    valid += amount
    assert valid == Decimal(truth["metrics"]["UnblendedCost"])


# -------------------------------------------------------------------------------------- resources


async def test_every_resource_id_has_its_arn_form_and_true_owner(emu: Emulator) -> None:
    """RDS, Aurora cluster/instances, DynamoDB, ElastiCache, Redshift ARNs; every resource has a cluster and team."""
    resources = emu.resources()
    kinds = Counter(r["kind"] for r in resources)
    assert set(kinds) == set(ARN_FORMS)
    for r in resources:
        assert ARN_FORMS[r["kind"]].fullmatch(r["resource_id"]), r
        assert r["resource_id"].split(":")[3:5] == [r["region"], r["account"]]
        assert r["cluster"] and r["team"]
    clusters = {c["id"]: c for c in emu.fleet.to_json()["clusters"]}
    for r in resources:
        assert r["team"] == clusters[r["cluster"]]["team"]


async def test_aurora_cluster_charges_and_instance_charges_go_where_they_belong(emu: Emulator) -> None:
    """Storage, I/O and backup on the cluster id; compute and transfer split exactly over its instances."""
    req = {"TimePeriod": {"Start": "2026-11-20", "End": "2026-11-21"}, "Granularity": "DAILY",
           "Metrics": ["UnblendedCost"], "Filter": DB_FILTER, "Operation": WITH_RESOURCES}
    truth = emu.truth(req)
    by_cluster: dict[str, list[dict[str, Any]]] = {}
    for r in truth["resources"]:
        if r["engine"] and r["engine"].startswith("aurora"):
            by_cluster.setdefault(r["cluster"], []).append(r)
    multi = [rs for rs in by_cluster.values() if sum(r["kind"] == "db-instance" for r in rs) >= 2]
    assert multi
    for rs in by_cluster.values():
        for r in rs:
            cats = set(r["categories"])
            if r["kind"] == "db-cluster":
                assert cats <= {"storage", "io", "backup"}
            else:
                assert cats <= {"compute", "transfer"}
    for rs in multi:
        computes = [Decimal(r["categories"]["compute"]["UnblendedCost"]) for r in rs if r["kind"] == "db-instance"]
        assert max(computes) - min(computes) <= Decimal("1E-10")  # an exact integer split of one day


async def test_untagged_clusters_group_under_the_empty_tag_and_keep_their_owner(emu: Emulator) -> None:
    """5 % of clusters carry no tags: their resources say so, and untagged spend is exactly ``db-cluster$``."""
    clusters = emu.fleet.to_json()["clusters"]
    untagged = {c["id"] for c in clusters if not c["tags"]}
    assert len(untagged) == round(len(clusters) * 0.05)
    for r in emu.resources():
        assert r["tagged_in_billing"] == (r["cluster"] not in untagged)
    window = {"TimePeriod": {"Start": "2026-11-14", "End": "2026-11-28"}, "Granularity": "DAILY",
              "Metrics": ["UnblendedCost"], "Filter": DB_FILTER}
    with_resources = emu.truth({**window, "Operation": WITH_RESOURCES})
    by_tag = emu.truth({**window, "GroupBy": [{"Type": "TAG", "Key": "db-cluster"}]})
    empty = next(row for row in by_tag["by_keys"] if row["keys"]["TAG:db-cluster"] == "")
    assert Decimal(empty["metrics"]["UnblendedCost"]) == sum(
        Decimal(r["untagged_metrics"]["UnblendedCost"]) for r in with_resources["resources"])
    for r in with_resources["resources"]:
        if r["cluster"] in untagged:
            assert r["untagged_metrics"] == r["metrics"] and r["billing_tags"] == {}


async def test_resources_admin_endpoint_and_no_resource_id_for_other_charges(emu: Emulator) -> None:
    """``GET /_emulator/resources`` lists the fleet's resources; non-database charges carry NoResourceId."""
    async with aiohttp.ClientSession() as http, http.get(emu.url + "/_emulator/resources") as resp:
        assert resp.status == 200
        listed = (await resp.json())["resources"]
    assert listed == emu.resources()
    truth = emu.truth({"TimePeriod": {"Start": "2026-11-20", "End": "2026-11-21"}, "Granularity": "DAILY",
                       "Metrics": ["UnblendedCost"], "Operation": WITH_RESOURCES,
                       "Filter": {"Not": {"Dimensions": {"Key": "RECORD_TYPE", "Values": ["Tax"]}}}})
    ids = {r["resource_id"] for r in truth["resources"]}
    assert NO_RESOURCE_ID in ids
    assert next(r for r in truth["resources"] if r["resource_id"] == NO_RESOURCE_ID)["cluster"] is None


# ------------------------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("target", "change", "fragment"),
    [
        (WITH_RESOURCES, {"Filter": None}, "Filter is required"),
        (WITH_RESOURCES, {"Granularity": "MONTHLY"}, "MONTHLY"),
        (WITH_RESOURCES, {"Granularity": "HOURLY", "TimePeriod": {"Start": "2026-11-20T00:00:00Z",
                                                                  "End": "2026-11-21T00:00:00Z"}},
         "Hourly timePeriod is not supported"),
        (WITH_RESOURCES, {"TimePeriod": {"Start": "2026-11-13", "End": "2026-11-28"}}, "start date is too old"),
        ("GetCostAndUsage", {}, "Dimension RESOURCE_ID is not allowed."),
        ("GetCostAndUsage", {"GroupBy": None, "Filter": {"Dimensions": {"Key": "RESOURCE_ID", "Values": ["x"]}}},
         "Dimension RESOURCE_ID is not allowed."),
    ],
)
async def test_each_rule_is_a_validation_exception(emu: Emulator, target: str, change: dict[str, Any],
                                                   fragment: str) -> None:
    """No Filter, MONTHLY, HOURLY on database services, a start over 14 days back, RESOURCE_ID on plain
    GetCostAndUsage: each is HTTP 400 ValidationException naming the rule."""
    body = {k: v for k, v in {**LAST_14_BY_RESOURCE, **change}.items() if v is not None}
    status, answer = await raw_call(emu, target, body)
    assert status == 400
    assert answer["__type"] == "ValidationException"
    assert fragment in answer["Message"]
    assert emu.stats()["validation_errors"] == 1


async def test_hourly_is_served_when_the_filter_restricts_to_ec2(emu: Emulator, ce: Any) -> None:
    """HOURLY resource-level data exists for EC2 instances: with that filter it is served, 24 periods a day."""
    req = {"TimePeriod": {"Start": "2026-11-20T00:00:00Z", "End": "2026-11-21T00:00:00Z"}, "Granularity": "HOURLY",
           "Metrics": ["UnblendedCost"], "GroupBy": [{"Type": "DIMENSION", "Key": "RESOURCE_ID"}],
           "Filter": {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Elastic Compute Cloud - Compute"]}}}
    pages = await fetch_resources(ce, req)
    assert len({r["TimePeriod"]["Start"] for p in pages for r in p["ResultsByTime"]}) == 24


async def test_a_with_resources_token_is_not_a_get_cost_and_usage_token(emu: Emulator, ce: Any) -> None:
    """The page token is bound to its operation: sent to GetCostAndUsage it is refused."""
    first = await ce.get_cost_and_usage_with_resources(**LAST_14_BY_RESOURCE)
    plain = {k: v for k, v in LAST_14_BY_RESOURCE.items() if k != "GroupBy"}
    with pytest.raises(Exception) as info:  # noqa: PT011 - the assertion below pins the code
        await ce.get_cost_and_usage(**plain, NextPageToken=first["NextPageToken"])
    assert error_code(info.value) in ("RequestChangedException", "InvalidNextTokenException")


# ------------------------------------------------------------------------------------- not enabled


async def test_not_enabled_is_data_unavailable_and_a_runtime_knob() -> None:
    """--no-resource-data: every WithResources request is DataUnavailableException; GetCostAndUsage still works;
    the knob turns it back on at runtime."""
    async with Emulator(EmulatorConfig(today=TODAY, resource_data_enabled=False)) as emu, ce_client(emu.url) as ce:
        with pytest.raises(Exception) as info:  # noqa: PT011 - the assertion below pins the code
            await ce.get_cost_and_usage_with_resources(**LAST_14_BY_RESOURCE)
        assert error_code(info.value) == "DataUnavailableException"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400  # type: ignore[attr-defined]
        await ce.get_cost_and_usage(**{k: v for k, v in LAST_14_BY_RESOURCE.items() if k != "GroupBy"})
        emu.update(resource_data_enabled=True)
        assert (await ce.get_cost_and_usage_with_resources(**LAST_14_BY_RESOURCE))["ResultsByTime"]


def test_the_opt_in_knob_must_be_a_boolean() -> None:
    """``resource_data_enabled`` refuses anything but true/false, in one line."""
    with pytest.raises(ValueError, match="resource_data_enabled must be true or false"):
        EmulatorConfig(resource_data_enabled="no")  # type: ignore[arg-type]


async def test_resources_carry_their_own_tags_even_when_billing_has_none(emu: Emulator) -> None:
    """``resource_tags`` (what the resource's own API returns) name the owner, untagged in billing or not, except on
    the orphans: half of the untagged clusters, tagged nowhere."""
    resources = emu.resources()
    untagged = {r["cluster"] for r in resources if not r["tagged_in_billing"]}
    orphans = {r["cluster"] for r in resources if r["orphan"]}
    assert orphans < untagged
    assert len(orphans) == len(untagged) // 2
    for r in resources:
        expected = {} if r["orphan"] else {"db-cluster": r["cluster"], "env": r["env"], "team": r["team"]}
        assert r["resource_tags"] == expected


async def test_hourly_truth_has_totals_but_no_per_resource_breakdown(emu: Emulator) -> None:
    """An HOURLY WithResources truth still has its totals; ``resources`` is None (not computed for hours)."""
    truth = emu.truth({"TimePeriod": {"Start": "2026-11-20T00:00:00Z", "End": "2026-11-20T06:00:00Z"},
                       "Granularity": "HOURLY", "Metrics": ["UnblendedCost"], "Operation": WITH_RESOURCES,
                       "Filter": {"Dimensions": {"Key": "SERVICE",
                                                 "Values": ["Amazon Elastic Compute Cloud - Compute"]}}})
    assert truth["resources"] is None
    assert truth["periods"] == 6 and Decimal(truth["metrics"]["UnblendedCost"]) > 0
