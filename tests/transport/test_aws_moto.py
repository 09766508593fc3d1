"""The real AWS path (aioboto3, SigV4, AWS JSON 1.1 over HTTP) against moto's server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import dbcost
from dbcost.errors import ApiError, CredentialsError, TransportError
from dbcost.transport.aws import AwsTransport
from tests.conftest import free_port


def queue_results(moto_url: str, results: list[dict[str, Any]]) -> None:
    body = json.dumps({"results": results}).encode()
    req = urllib.request.Request(f"{moto_url}/moto-api/static/ce/cost-and-usage-results", data=body,
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 201


def moto_pages() -> list[dict[str, Any]]:
    """Three pages; page 2 continues page 1's period (a page ending mid-period)."""
    def group(svc: str, cluster: str, amount: str) -> dict[str, Any]:
        return {"Keys": [svc, f"db-cluster${cluster}"],
                "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}}

    gd = [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "db-cluster"}]
    p1 = {"GroupDefinitions": gd, "NextPageToken": "page-2",
          "ResultsByTime": [{"TimePeriod": {"Start": "2026-09-01", "End": "2026-09-02"}, "Total": {},
                             "Estimated": False,
                             "Groups": [group("Amazon DynamoDB", "db-0001", "1.1000000000"),
                                        group("Amazon DynamoDB", "db-0002", "2.2000000000")]}]}
    p2 = {"GroupDefinitions": gd, "NextPageToken": "page-3",
          "ResultsByTime": [{"TimePeriod": {"Start": "2026-09-01", "End": "2026-09-02"}, "Total": {},
                             "Estimated": False,
                             "Groups": [group("Amazon Relational Database Service", "", "3.3000000000"),
                                        {"Keys": ["Amazon Redshift", "db-cluster$db-0009"],
                                         "Metrics": {"UnblendedCost": {"Amount": "NaN", "Unit": "USD"}}}]},
                            {"TimePeriod": {"Start": "2026-09-02", "End": "2026-09-03"}, "Total": {},
                             "Estimated": True,
                             "Groups": [group("Amazon DynamoDB", "db-0001", "0.0000000001")]}]}
    p3 = {"GroupDefinitions": gd,
          "ResultsByTime": [{"TimePeriod": {"Start": "2026-09-02", "End": "2026-09-03"}, "Total": {},
                             "Estimated": True,
                             "Groups": [group("Amazon ElastiCache", "db-0003", "4.4000000000")]}]}
    return [p1, p2, p3]


QUERY = dbcost.CostQuery.build(start="2026-09-01", end="2026-09-03", group_by=["SERVICE", "TAG:db-cluster"])


async def test_fetch_follows_next_page_token_over_real_http(moto: str) -> None:
    """aioboto3 -> moto: all three pages fetched, groups named, NaN quarantined, exact Decimal sum."""
    queue_results(moto, moto_pages())
    result = await dbcost.fetch(QUERY, dbcost.FetchSettings(endpoint_url=moto))
    assert result.stats.pages == 3 and result.stats.billed_requests == 3
    assert len(result.records) == 5 and len(result.quarantined) == 1
    assert sum(r.metrics["UnblendedCost"].amount for r in result.records) == Decimal("11.0000000001")
    assert {"SERVICE": "Amazon Relational Database Service", "TAG:db-cluster": ""} in [
        r.keys for r in result.records]
    assert result.quarantined[0].page == 2 and result.quarantined[0].raw["Keys"][0] == "Amazon Redshift"


async def test_endpoint_from_standard_env_var(moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_ENDPOINT_URL_COST_EXPLORER is honoured when no --endpoint-url is given."""
    queue_results(moto, moto_pages()[2:])
    monkeypatch.setenv("AWS_ENDPOINT_URL_COST_EXPLORER", moto)
    result = await dbcost.fetch(QUERY)
    assert len(result.records) == 1


async def test_connection_refused_maps_to_transport_error() -> None:
    """No server listening: a retryable TransportError from dbcost.errors, not a botocore exception."""
    url = f"http://127.0.0.1:{free_port()}"
    async with AwsTransport(endpoint_url=url) as t:
        with pytest.raises(TransportError):
            await t.call("GetCostAndUsage", QUERY.to_request())


async def test_service_error_maps_to_api_error(moto: str) -> None:
    """An error the service answers with becomes an ApiError carrying code, status and operation."""
    async with AwsTransport(endpoint_url=moto) as t:
        with pytest.raises(ApiError) as info:
            await t.call("DescribeCostCategoryDefinition", {"CostCategoryArn": "arn:aws:ce::1:costcategory/x"})
    assert info.value.operation == "DescribeCostCategoryDefinition"
    assert info.value.code


async def test_unknown_profile_is_a_credentials_error() -> None:
    """--profile naming a missing profile fails with a clear CredentialsError."""
    with pytest.raises(CredentialsError, match="nope"):
        async with AwsTransport(profile="nope"):
            pass


async def test_missing_credentials_is_a_credentials_error(monkeypatch: pytest.MonkeyPatch, moto: str) -> None:
    """No credentials anywhere in the chain: CredentialsError, nothing sent."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    async with AwsTransport(endpoint_url=moto) as t:
        with pytest.raises(CredentialsError):
            await t.call("GetCostAndUsage", QUERY.to_request())


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "dbcost", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_cli_fetch_against_moto_writes_jsonl_quarantine_and_summary(moto: str, tmp_path: Path) -> None:
    """`dbcost fetch` end to end: JSONL records, quarantine file, summary JSON, exit 0 (3 with --strict)."""
    queue_results(moto, moto_pages())
    out, quar, summary = tmp_path / "r.jsonl", tmp_path / "q.jsonl", tmp_path / "s.json"
    proc = run_cli("fetch", "--start", "2026-09-01", "--end", "2026-09-03", "--group-by", "SERVICE",
                   "--group-by", "TAG:db-cluster", "--endpoint-url", moto, "--output", str(out),
                   "--quarantine", str(quar), "--summary-json", str(summary))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 5
    assert lines[0] == {"period_start": "2026-09-01", "period_end": "2026-09-02", "granularity": "DAILY",
                        "keys": {"SERVICE": "Amazon DynamoDB", "TAG:db-cluster": "db-0001"},
                        "metrics": {"UnblendedCost": {"amount": "1.1000000000", "unit": "USD"}},
                        "estimated": False}
    [q] = [json.loads(x) for x in quar.read_text().splitlines()]
    assert q["page"] == 2 and q["period_start"] == "2026-09-01" and "plain decimal" in q["reason"]
    assert q["raw"]["Metrics"]["UnblendedCost"]["Amount"] == "NaN"
    s = json.loads(summary.read_text())
    assert (s["pages"], s["billed_requests"], s["records"], s["quarantined"], s["cost_usd"]) == (3, 3, 5, 1, "0.03")
    assert "records=5" in proc.stderr and "quarantined=1" in proc.stderr
    # the same query again: moto replays the same pages per identical body; --strict turns quarantine into 3
    proc = run_cli("fetch", "--start", "2026-09-01", "--end", "2026-09-03", "--group-by", "SERVICE",
                   "--group-by", "TAG:db-cluster", "--endpoint-url", moto, "--strict", "--output", str(out))
    assert proc.returncode == 3, proc.stderr


def test_cli_bad_input_exits_2_and_sends_nothing(moto: str, tmp_path: Path) -> None:
    """A bad date: one line naming the field, exit 2, no request reaches the server, no output file."""
    out = tmp_path / "r.jsonl"
    proc = run_cli("fetch", "--start", "2026-09-31", "--end", "2026-10-01", "--endpoint-url", moto,
                   "--output", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "start" in proc.stderr
    assert not out.exists()


def test_cli_unreachable_endpoint_exits_1_and_says_what_completed(tmp_path: Path) -> None:
    """Connection refused until retries run out: exit 1, a line saying 0 pages completed, no output file."""
    out = tmp_path / "r.jsonl"
    proc = run_cli("fetch", "--start", "2026-09-01", "--end", "2026-09-03", "--endpoint-url",
                   f"http://127.0.0.1:{free_port()}", "--output", str(out), "--max-requests", "3")
    assert proc.returncode == 1
    assert "failed after 0 complete page(s)" in proc.stderr
    assert not out.exists()


def test_credentials_never_appear_in_output(moto: str, tmp_path: Path) -> None:
    """With debug logging, neither the secret key nor a session token shows up on stdout or stderr."""
    queue_results(moto, moto_pages())
    secret, token = "SECRETKEYdoNotLeak123", "SESSIONTOKENdoNotLeak456"
    proc = run_cli("--log-level", "DEBUG", "fetch", "--start", "2026-09-01", "--end", "2026-09-03",
                   "--group-by", "SERVICE", "--group-by", "TAG:db-cluster", "--endpoint-url", moto,
                   env_extra={"AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token})
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    assert token not in proc.stdout + proc.stderr


async def test_assume_role_signs_sts_with_the_chains_own_credentials(moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """--role-arn: the STS call is signed with the chain's credentials, not with the assumed ones it is fetching
    (that used to wait on itself forever); Cost Explorer then answers every page."""
    import asyncio

    queue_results(moto, moto_pages())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "chain-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "chain-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto)
    settings = dbcost.FetchSettings(endpoint_url=moto, role_arn="arn:aws:iam::123456789012:role/dbcost-read")
    async with asyncio.timeout(30):
        result = await dbcost.fetch(QUERY, settings)
    assert result.stats.pages == 3 and len(result.records) == 5
