"""`dbcost attribute` against the emulator over real HTTP: per-team and per-cluster totals equal the
ground truth, unattributed equals the untagged database spend, allocation conserves the total, the
topology file fills missing team tags, and fresh data is not fetched twice."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dbcost.emulator import Emulator, EmulatorConfig
from tests.conftest import run_cli_async
from tests.scenarios.conftest import TODAY, TODAY_S

MONTH = "2026-10"


def truth_by(emu: Emulator, services: list[str], tag: str) -> dict[str, Decimal]:
    req = {"TimePeriod": {"Start": "2026-10-01", "End": "2026-11-01"}, "Granularity": "MONTHLY",
           "Metrics": ["UnblendedCost"], "GroupBy": [{"Type": "TAG", "Key": tag}],
           "Filter": {"Dimensions": {"Key": "SERVICE", "Values": services}}}
    return {r["keys"][f"TAG:{tag}"]: Decimal(r["metrics"]["UnblendedCost"]) for r in emu.truth(req)["by_keys"]}


async def attribute(emu: Emulator, db: Path, *extra: str) -> dict[str, Any]:
    code, out, err = await run_cli_async("attribute", "--month", MONTH, "--db", str(db), "--endpoint-url", emu.url,
                                         "--format", "json", "--max-rps", "100", "--today", TODAY_S, *extra)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


@pytest.fixture
async def emu() -> Any:
    async with Emulator(EmulatorConfig(today=TODAY, page_size=400, malformed_rate=0.0, fault_rate=0.02)) as e:
        yield e


async def test_team_and_cluster_totals_equal_ground_truth(emu: Emulator, tmp_path: Path) -> None:
    """Teams, clusters and unattributed equal the emulator's truth for the same services, exactly."""
    data = await attribute(emu, tmp_path / "s.duckdb")
    services = data["services"]
    assert "Amazon Relational Database Service" in services and "Amazon Simple Storage Service" not in services
    assert "Amazon Neptune" in services  # discovered, not hard-coded
    by_team, by_cluster = truth_by(emu, services, "team"), truth_by(emu, services, "db-cluster")
    assert {t["team"]: Decimal(t["amount"]) for t in data["teams"]} == {k: v for k, v in by_team.items() if k}
    assert Decimal(data["unattributed"]) == by_team[""]
    assert Decimal(data["total"]) == sum(by_team.values())
    ours = {c["cluster"]: Decimal(c["amount"]) for t in data["teams"] for c in t["clusters"]}
    ours.update({c["cluster"]: Decimal(c["amount"]) for c in data["unattributed_detail"] if c["cluster"] != "(untagged)"})
    assert ours == {k: v for k, v in by_cluster.items() if k}
    for t in data["teams"]:
        for c in t["clusters"]:
            assert sum(Decimal(v) for v in c["categories"].values()) == Decimal(c["amount"])
            assert set(c["categories"]) >= {"compute", "storage", "io", "backup"}
    assert isinstance(data["unclassified_usage_types"], list)


async def test_fresh_store_is_not_fetched_again(emu: Emulator, tmp_path: Path) -> None:
    """A second attribute of the same month uses the store: no request reaches Cost Explorer."""
    first = await attribute(emu, tmp_path / "s.duckdb")
    sent = emu.stats()["requests"]
    second = await attribute(emu, tmp_path / "s.duckdb")
    assert emu.stats()["requests"] == sent
    assert second == first
    third = await attribute(emu, tmp_path / "s.duckdb", "--refresh")
    assert emu.stats()["requests"] > sent and third["total"] == first["total"]


async def test_allocate_shared_conserves_the_total(emu: Emulator, tmp_path: Path) -> None:
    """--allocate-shared moves unattributed spend onto teams; teams + unattributed == the same total."""
    plain = await attribute(emu, tmp_path / "s.duckdb")
    alloc = await attribute(emu, tmp_path / "s.duckdb", "--allocate-shared")
    assert alloc["total"] == plain["total"]
    teams = sum(Decimal(t["amount"]) for t in alloc["teams"])
    assert teams + Decimal(alloc["unattributed"]) == Decimal(alloc["total"])
    assert Decimal(alloc["allocated_shared"]) > 0
    assert Decimal(alloc["unattributed"]) + Decimal(alloc["allocated_shared"]) == Decimal(plain["unattributed"])


async def test_topology_file_assigns_clusters_missing_their_team_tag(emu: Emulator, tmp_path: Path) -> None:
    """Clusters tagged with db-cluster but no team get their team from the topology file; the rest is unchanged."""
    teamless = [c for c in emu.fleet.clusters if "db-cluster" in c.tags and "team" not in c.tags]
    assert teamless
    topo = tmp_path / "topology.csv"
    topo.write_text("cluster,team,env,owner\n" + "".join(f"{c.id},{c.team},{c.env},dba@example.com\n" for c in teamless))
    plain = await attribute(emu, tmp_path / "s.duckdb")
    with_topo = await attribute(emu, tmp_path / "s.duckdb", "--topology", str(topo))
    by_cluster = {c["cluster"]: Decimal(c["amount"]) for c in plain["unattributed_detail"]}
    moved = {c.team: Decimal(0) for c in teamless}
    for c in teamless:
        moved[c.team] += by_cluster.get(c.id, Decimal(0))
    before = {t["team"]: Decimal(t["amount"]) for t in plain["teams"]}
    after = {t["team"]: Decimal(t["amount"]) for t in with_topo["teams"]}
    for team, amount in after.items():
        assert amount == before.get(team, Decimal(0)) + moved.get(team, Decimal(0))
    assert Decimal(with_topo["unattributed"]) == Decimal(plain["unattributed"]) - sum(moved.values())
    sources = {c["cluster"]: c["owner_source"] for t in with_topo["teams"] for c in t["clusters"]}
    assert all(sources[c.id] == "topology" for c in teamless if c.id in sources)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--month", "2026-13"], "--month"),
    (["--month", "2027-01"], "no data yet"),
    (["--month", MONTH, "--topology", "/nonexistent.csv"], "--topology"),
    (["--month", MONTH, "--metric", "Dollars"], "--metric"),
    (["--month", MONTH, "--format", "xml"], "--format"),
])
async def test_bad_attribute_input_exits_2(args: list[str], fragment: str, tmp_path: Path) -> None:
    """Bad month, topology, metric or format: exit 2, one line naming the option."""
    code, _, err = await run_cli_async("attribute", "--db", str(tmp_path / "s.duckdb"), "--today", TODAY_S, *args)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


async def test_a_range_of_months_through_the_cli_is_one_json_list(emu: Emulator, tmp_path: Path) -> None:
    """`attribute --months 2` prints a JSON list of both months (oldest first), the later one equal to a
    one-month `--offline` read of the same store; conflicting month options are exit 2, one line."""
    db = tmp_path / "s.duckdb"
    code, out, err = await run_cli_async("attribute", "--months", "2", "--db", str(db), "--endpoint-url", emu.url,
                                         "--format", "json", "--max-rps", "100", "--today", TODAY_S)
    assert code == 0, err
    months = json.loads(out)
    assert [m["month"] for m in months] == ["2026-10", "2026-11"]
    code, out, err = await run_cli_async("attribute", "--month", "2026-11", "--db", str(db), "--offline", "--format",
                                         "json", "--today", TODAY_S)
    assert code == 0, err
    assert json.loads(out)["total"] == months[1]["total"]
    for args in (["--month", MONTH, "--months", "2"], ["--end-month", MONTH], []):
        code, out, err = await run_cli_async("attribute", *args, "--db", str(db), "--offline", "--today", TODAY_S)
        assert code == 2 and not out, args
        assert len(err.strip().splitlines()) == 1 and ("--month" in err or "--end-month" in err), err
