"""`dbcost resources` against the emulator over real HTTP, with throttling, 5xx and malformed groups on:
per-resource amounts equal the truth exactly, quarantined groups are accounted for, a topology keyed by
resource id gives the true team totals (only spend without an owner stays unattributed), the operation's rules
are refused before anything is sent, a payer without resource-level data is one line, and `attribute` shows
what the resources placed."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.emulator.fleet import DATABASE_SERVICES
from tests.conftest import run_cli_async
from tests.scenarios.conftest import TODAY, TODAY_S

WR = "GetCostAndUsageWithResources"
START, END = "2026-11-14", "2026-11-28"  # the last 14 complete days before TODAY
#: the fleet is small (fast) but has untagged clusters and every database service
CLUSTERS = 60


async def resources(emu: Emulator, db: Path, *extra: str, code: int = 0) -> tuple[dict[str, Any], str]:
    rc, out, err = await run_cli_async("resources", "--db", str(db), "--endpoint-url", emu.url, "--format", "json",
                                       "--max-rps", "200", "--today", TODAY_S, *extra)
    assert rc == code, err
    return (json.loads(out) if rc == 0 else {}), err


def truth(emu: Emulator, service: str) -> dict[str, Any]:
    """The emulator's truth for the money dataset of ``service`` (the same request dbcost sends)."""
    return emu.truth({"Operation": WR, "TimePeriod": {"Start": START, "End": END}, "Granularity": "DAILY",
                      "Metrics": ["UnblendedCost"],
                      "GroupBy": [{"Type": "DIMENSION", "Key": "RESOURCE_ID"}, {"Type": "DIMENSION", "Key": "USAGE_TYPE"}],
                      "Filter": {"Dimensions": {"Key": "SERVICE", "Values": [service]}}})


def expected(emu: Emulator, services: list[str]) -> tuple[dict[str, Decimal], dict[str, Decimal], int,
                                                         list[dict[str, Any]]]:
    """(valid amount per resource id, all amounts per resource id incl. malformed groups, malformed groups,
    the truth's resources with their owners), over ``services``."""
    valid: dict[str, Decimal] = defaultdict(Decimal)
    whole: dict[str, Decimal] = {}
    bad = 0
    owners: list[dict[str, Any]] = []
    for s in services:
        t = truth(emu, s)
        for row in t["by_keys"]:
            valid[row["keys"]["RESOURCE_ID"]] += Decimal(row["metrics"]["UnblendedCost"])
        bad += t["malformed_groups"]
        for r in t["resources"]:
            whole[r["resource_id"]] = whole.get(r["resource_id"], Decimal(0)) + Decimal(r["metrics"]["UnblendedCost"])
            owners.append(r)
    return dict(valid), whole, bad, owners


@pytest.fixture
async def emu() -> Any:
    cfg = EmulatorConfig(today=TODAY, page_size=300, max_rps=15, burst=2, fault_rate=0.03, malformed_rate=0.003,
                         clusters=CLUSTERS)
    async with Emulator(cfg) as e:
        yield e


async def test_per_resource_amounts_equal_the_truth_and_quarantine_is_counted(emu: Emulator, tmp_path: Path) -> None:
    """Every resource once, its amount the truth's to the last decimal; the total is their sum; each malformed
    group is counted (per reason, and on the resource it belongs to), so nothing is silently lost."""
    data, err = await resources(emu, tmp_path / "s.duckdb")
    stats = emu.stats()
    assert stats["throttled"] > 0 and stats["faults"] > 0 and stats["malformed_groups_served"] > 0
    assert (data["start"], data["end"]) == (START, END)
    valid, whole, bad, _ = expected(emu, data["services"])
    ours = {r["resource_id"]: Decimal(r["amount"]) for r in data["resources"]}
    assert len(ours) == len(data["resources"])  # each resource once
    assert {k: v for k, v in ours.items() if k in valid} == valid
    only_quarantined = set(ours) - set(valid)
    assert all(ours[k] == 0 for k in only_quarantined)
    assert Decimal(data["total"]) == sum(ours.values()) == sum(valid.values())
    assert data["quarantined"]["groups"] == bad > 0 and "quarantined" in err
    assert data["quarantined"]["placement_groups"] >= 0
    q = {r["resource_id"]: r["quarantined_groups"] for r in data["resources"]}
    lost = {k for k, v in whole.items() if v != valid.get(k, Decimal(0))}
    assert lost and all(q[k] > 0 for k in lost)  # a resource whose money was quarantined says so
    assert set(whole) <= set(ours)  # every resource of the truth appears
    for r in data["resources"]:
        assert sum(Decimal(v) for v in r["categories"].values()) == Decimal(r["amount"])
        assert r["placed_by"] in ("billing-tag", "inventory-tag", "topology", "unattributed")
    kinds = {r["kind"] for r in data["resources"]}
    assert {"db-instance", "db-cluster", "table"} <= kinds
    assert Decimal(data["unattributed"]) > 0  # untagged clusters are unattributed without a topology
    # a second run within the freshness window sends nothing and says the same
    sent = emu.stats()["requests"]
    again, _ = await resources(emu, tmp_path / "s.duckdb")
    assert emu.stats()["requests"] == sent and again == data
    out = tmp_path / "r.csv"
    rc, _, err = await run_cli_async("resources", "--db", str(tmp_path / "s.duckdb"), "--endpoint-url", emu.url,
                                     "--format", "csv", "--output", str(out), "--today", TODAY_S)
    assert rc == 0 and emu.stats()["requests"] == sent, err
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [(r["resource_id"], r["amount"], r["placed_by"]) for r in rows] == [
        (r["resource_id"], r["amount"], r["placed_by"]) for r in data["resources"]]


async def test_topology_by_resource_id_gives_the_true_team_totals(emu: Emulator, tmp_path: Path) -> None:
    """With a topology file keyed by resource id (the truth's owners), each team's total equals the truth's and
    only spend no one owns (charges without a resource id) stays unattributed; attribute then shows what the
    resources placed of its unattributed spend."""
    valid, _, _, owners = expected(emu, sorted(DATABASE_SERVICES))
    topo = tmp_path / "topology.csv"
    topo.write_text("resource_id,cluster,team\n" + "".join(
        f"{r['resource_id']},{r['cluster']},{r['team']}\n" for r in owners if r["team"]))
    owner_of = {r["resource_id"]: r["team"] for r in owners if r["team"]}
    db = tmp_path / "s.duckdb"
    data, _ = await resources(emu, db, "--topology", str(topo))
    assert sorted(data["services"]) == sorted(DATABASE_SERVICES)
    want: dict[str, Decimal] = defaultdict(Decimal)
    for rid, amount in valid.items():
        if rid in owner_of:
            want[owner_of[rid]] += amount
    assert {t["team"]: Decimal(t["amount"]) for t in data["teams"]} == dict(want)
    assert Decimal(data["unattributed"]) == sum(a for rid, a in valid.items() if rid not in owner_of)
    assert {r["placed_by"] for r in data["resources"]} >= {"billing-tag", "topology"}
    for r in data["resources"]:
        if r["resource_id"] in owner_of:
            assert r["team"] == owner_of[r["resource_id"]], r
    assert sum(Decimal(c["amount"]) for c in data["clusters"]) == Decimal(data["total"])

    rc, out, err = await run_cli_async("attribute", "--month", "2026-11", "--db", str(db), "--endpoint-url", emu.url,
                                       "--format", "json", "--max-rps", "200", "--today", TODAY_S,
                                       "--topology", str(topo))
    assert rc == 0, err
    level = json.loads(out)["resource_level"]
    assert level["days"] == 14 and Decimal(level["placed"]) > 0
    assert Decimal(level["placed"]) + Decimal(level["still_unattributed"]) == Decimal(level["untagged"])
    assert level["costliest_untagged"] and all(r["add_tags"] for r in level["costliest_untagged"])
    rc, out, err = await run_cli_async("report", "--month", "2026-11", "--db", str(db), "--format", "json",
                                       "--today", TODAY_S, "--topology", str(topo))
    assert rc == 0, err
    assert json.loads(out)["resource_level"] == level  # the report says the same, from the store
    html = tmp_path / "r.html"
    rc, _, err = await run_cli_async("report", "--month", "2026-11", "--db", str(db), "--format", "html",
                                     "--output", str(html), "--today", TODAY_S, "--topology", str(topo))
    assert rc == 0, err
    page = html.read_text()
    assert 'id="resource-level"' in page and "Costliest resources without a team tag in billing" in page


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["resources", "--start", "2026-11-13"], "serves the last 14 days only (from 2026-11-14"),
        (["resources", "--end", "2026-11-29"], "after today"),
        (["resources", "--service", "Amazon Simple Storage Service"], "not a database service"),
        (["resources", "--format", "xml"], "--format"),
        (["resources", "--output", "/nonexistent/r.json"], "does not exist"),
        (["fetch", "--start", START, "--end", END, "--group-by", "RESOURCE_ID"],
         "RESOURCE_ID is a GroupBy of GetCostAndUsageWithResources only"),
        (["fetch", "--start", START, "--end", END, "--filter",
          '{"Dimensions": {"Key": "RESOURCE_ID", "Values": ["arn:aws:dynamodb:us-east-1:1:table/t"]}}'],
         "RESOURCE_ID is a Filter dimension of GetCostAndUsageWithResources only"),
    ],
)
async def test_the_operations_rules_are_refused_before_sending(emu: Emulator, tmp_path: Path, args: list[str],
                                                               fragment: str) -> None:
    """Each rule of resource-level data is one line and exit 2, and the emulator saw no request at all."""
    extra = ["--db", str(tmp_path / "s.duckdb"), "--today", TODAY_S] if args[0] == "resources" else []
    rc, _, err = await run_cli_async(*args, "--endpoint-url", emu.url, *extra)
    assert rc == 2, err
    assert fragment in err and len(err.strip().splitlines()) == 1, err
    assert emu.stats()["requests"] == 0
    assert not (tmp_path / "s.duckdb").exists()


async def test_a_payer_without_resource_level_data_is_one_line(tmp_path: Path) -> None:
    """Not opted in: exit 1 and one line naming the Cost Explorer setting to turn on."""
    cfg = EmulatorConfig(today=TODAY, resource_data_enabled=False, clusters=CLUSTERS)
    async with Emulator(cfg) as emu:
        _, err = await resources(emu, tmp_path / "s.duckdb", code=1)
        by_op = emu.stats()["by_operation"]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dbcost: failed: ") and \
        "Resource-level data at daily granularity" in lines[0], err
    assert by_op.get("GetCostAndUsageWithResources") == 1  # the probe: no unit of the run was started


async def test_sync_keeps_the_fourteen_day_window_current(tmp_path: Path) -> None:
    """Two days later, `sync --dataset all` re-reads each resource-level dataset over the last 14 days exactly
    (never before today - 14, which Cost Explorer would refuse), and `resources` then covers the new window."""
    import datetime as dt

    db = tmp_path / "s.duckdb"
    async with Emulator(EmulatorConfig(today=TODAY, clusters=CLUSTERS)) as emu:
        await resources(emu, db, "--service", "Amazon DynamoDB")
    later = TODAY + dt.timedelta(days=2)
    async with Emulator(EmulatorConfig(today=later, clusters=CLUSTERS)) as emu:
        rc, _, err = await run_cli_async("sync", "--dataset", "all", "--db", str(db), "--endpoint-url", emu.url,
                                         "--today", later.isoformat())
        assert rc == 0, err
        assert err.count(f"{later - dt.timedelta(days=14)} to {later}") == 3  # the money and the two tag datasets
        sent = emu.stats()["requests"]
        rc, out, err = await run_cli_async("resources", "--db", str(db), "--endpoint-url", emu.url, "--format", "json",
                                           "--service", "Amazon DynamoDB", "--today", later.isoformat())
        assert rc == 0, err
        assert emu.stats()["requests"] == sent  # the synced store is fresh for the new window: nothing sent
    data = json.loads(out)
    assert (data["start"], data["end"]) == ((later - dt.timedelta(days=14)).isoformat(), later.isoformat())
