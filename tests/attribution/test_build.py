"""Attribution from rows (pure): owners by precedence, categories, unattributed shown, allocation exact."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbcost.attribution import (
    SHARED_CLUSTER,
    AccountRow,
    Topology,
    UsageRow,
    build_attribution,
    load_topology,
    resolve_teams,
)
from dbcost.attribution.pools import ClusterInfo
from dbcost.errors import ConfigError
from dbcost.money import sum_amounts

D1, D2 = dt.date(2026, 10, 1), dt.date(2026, 10, 2)
RDS = "Amazon Relational Database Service"
DDB = "Amazon DynamoDB"


def usage() -> list[UsageRow]:
    return [
        UsageRow(D1, RDS, "InstanceUsage:db.r6g.large", "db-1", Decimal("10.5")),
        UsageRow(D1, RDS, "RDS:GP3-Storage", "db-1", Decimal("2.25")),
        UsageRow(D1, RDS, "Aurora:StorageIOUsage", "db-2", Decimal("1")),
        UsageRow(D2, RDS, "Aurora:BackupUsage", "db-2", Decimal("0.75"), estimated=True),
        UsageRow(D1, DDB, "TimedStorage-ByteHrs", "db-3", Decimal("4")),
        UsageRow(D1, DDB, "ReadCapacityUnit-Hrs", "", Decimal("3")),  # untagged
        UsageRow(D1, RDS, "SomethingNew:Usage", "db-9", Decimal("0.5")),  # cluster with no team anywhere
    ]


def test_clusters_carry_what_their_usage_types_accounts_and_topology_say() -> None:
    """A cluster lists the regions and instance classes its classified usage types name, the accounts that
    bill it (from account rows) and its env (from the topology); nothing is invented for the others."""
    rows = [UsageRow(D1, RDS, "EUW1-InstanceUsage:db.r6g.large", "db-1", Decimal("1")),
            UsageRow(D1, RDS, "InstanceUsage:db.m5.large", "db-1", Decimal("1")),
            UsageRow(D1, RDS, "SomethingNew:Usage", "db-9", Decimal("1"))]
    owners = resolve_teams([("db-1", "payments", Decimal(1))], None)
    accounts = [AccountRow(D1, RDS, "111122223333", "db-1", Decimal("2")), AccountRow(D1, RDS, "444", "db-1", Decimal(0))]
    a = build_attribution("2026-10", "UnblendedCost", rows, owners, account_rows=accounts, envs={"db-1": "prod"})
    [db1] = a.team("payments").clusters  # type: ignore[union-attr]
    assert db1.regions == ("eu-west-1", "us-east-1") and db1.instance_classes == ("db.m5.large", "db.r6g.large")
    assert db1.accounts == ("111122223333",) and db1.env == "prod"
    [db9] = a.unattributed_clusters
    assert (db9.regions, db9.accounts, db9.instance_classes, db9.env) == ((), (), (), "")
    assert db1.to_json()["regions"] == ["eu-west-1", "us-east-1"] and db9.to_json()["env"] is None


def test_teams_clusters_and_categories_sum_exactly() -> None:
    """Spend lands on team -> cluster -> category; unattributed holds untagged and ownerless clusters."""
    owners = resolve_teams([("db-1", "payments", Decimal(1)), ("db-2", "search", Decimal(1)),
                            ("db-3", "payments", Decimal(1))], None)
    a = build_attribution("2026-10", "UnblendedCost", usage(), owners)
    assert a.total == Decimal("22.0")
    pay = a.team("payments")
    assert pay is not None and pay.amount == Decimal("16.75")
    db1 = next(c for c in pay.clusters if c.cluster == "db-1")
    assert db1.categories == {"compute": Decimal("10.5"), "storage": Decimal("2.25")}
    db2 = a.team("search").clusters[0]  # type: ignore[union-attr]
    assert db2.categories == {"io": Decimal("1"), "backup": Decimal("0.75")}
    assert a.unattributed == Decimal("3.5")
    assert {c.cluster for c in a.unattributed_clusters} == {"(untagged)", "db-9"}
    assert [u.usage_type for u in a.unclassified_usage_types] == ["SomethingNew:Usage"]
    assert a.estimated_amount == Decimal("0.75")
    assert a.to_json()["teams"][0]["clusters"][0]["categories"]["compute"] == "10.5"


def test_team_tag_beats_topology_and_topology_fills_missing_tags() -> None:
    """Precedence: the team tag first; the topology only for clusters without one."""
    topo = Topology({"db-1": ClusterInfo("db-1", "other-team"), "db-9": ClusterInfo("db-9", "platform")})
    owners = resolve_teams([("db-1", "payments", Decimal(1)), ("db-9", "", Decimal(1))], topo)
    assert owners["db-1"] == ("payments", "tag")
    assert owners["db-9"] == ("platform", "topology")


def test_retagged_cluster_belongs_to_the_team_with_most_spend() -> None:
    """A cluster with two team values in one month goes to the one carrying most of its spend."""
    owners = resolve_teams([("db-1", "a", Decimal(5)), ("db-1", "b", Decimal(7)), ("db-2", "a", Decimal(1)),
                            ("db-2", "b", Decimal(1))], None)
    assert owners["db-1"] == ("b", "tag") and owners["db-2"] == ("a", "tag")


def test_allocation_spreads_by_account_and_service_and_conserves_exactly() -> None:
    """Unattributed spend of an (account, service) goes to its teams by their spend there; total unchanged."""
    owners = {"db-1": ("payments", "tag"), "db-2": ("search", "tag")}
    rows = [UsageRow(D1, RDS, "InstanceUsage:db.r6g.large", "db-1", Decimal("30")),
            UsageRow(D1, RDS, "InstanceUsage:db.r6g.large", "db-2", Decimal("10")),
            UsageRow(D1, RDS, "RDS:GP3-Storage", "", Decimal("1"))]
    accounts = [AccountRow(D1, RDS, "111", "db-1", Decimal("30")), AccountRow(D1, RDS, "111", "db-2", Decimal("10")),
                AccountRow(D1, RDS, "111", "", Decimal("1"))]
    a = build_attribution("2026-10", "UnblendedCost", rows, owners, account_rows=accounts, allocate_shared=True)
    shares = {t.team: next(c.amount for c in t.clusters if c.cluster == SHARED_CLUSTER) for t in a.teams}
    assert shares == {"payments": Decimal("0.7500000000"), "search": Decimal("0.2500000000")}
    assert a.unattributed == 0 and a.total == Decimal("41") and a.allocated_shared == Decimal(1)


def test_allocation_leaves_spend_of_accounts_without_owners_unattributed() -> None:
    """An account whose service spend has no attributed part keeps its unattributed spend."""
    owners = {"db-1": ("payments", "tag")}
    rows = [UsageRow(D1, RDS, "InstanceUsage:db.r6g.large", "db-1", Decimal("5")),
            UsageRow(D1, DDB, "ReadCapacityUnit-Hrs", "", Decimal("2"))]
    accounts = [AccountRow(D1, RDS, "111", "db-1", Decimal("5")), AccountRow(D1, DDB, "222", "", Decimal("2"))]
    a = build_attribution("2026-10", "UnblendedCost", rows, owners, account_rows=accounts, allocate_shared=True)
    assert a.unattributed == Decimal("2") and a.allocated_shared == 0


amounts = st.decimals(min_value=0, max_value=10**6, places=10, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    attributed=st.lists(st.tuples(st.sampled_from(["111", "222", "333"]), st.sampled_from(["db-1", "db-2", "db-3"]),
                                  amounts), min_size=1, max_size=12),
    unowned=st.lists(st.tuples(st.sampled_from(["111", "222", "333"]), amounts), min_size=1, max_size=6),
)
def test_allocation_conserves_the_total_to_the_last_decimal(
    attributed: list[tuple[str, str, Decimal]], unowned: list[tuple[str, Decimal]]
) -> None:
    """Whatever the spend pattern, total before == total after allocation, and teams + unattributed == total."""
    owners = {"db-1": ("a", "tag"), "db-2": ("b", "tag"), "db-3": ("c", "tag")}
    rows = [UsageRow(D1, RDS, "InstanceUsage:db.r6g.large", c, amt) for _, c, amt in attributed]
    rows += [UsageRow(D1, RDS, "RDS:GP3-Storage", "", amt) for _, amt in unowned]
    accts = [AccountRow(D1, RDS, acct, c, amt) for acct, c, amt in attributed]
    accts += [AccountRow(D1, RDS, acct, "", amt) for acct, amt in unowned]
    plain = build_attribution("2026-10", "UnblendedCost", rows, owners)
    alloc = build_attribution("2026-10", "UnblendedCost", rows, owners, account_rows=accts, allocate_shared=True)
    assert alloc.total == plain.total == sum_amounts(r.amount for r in rows)
    assert sum_amounts(t.amount for t in alloc.teams) + alloc.unattributed == alloc.total
    assert alloc.unattributed + alloc.allocated_shared == plain.unattributed
    alloc.check()


def test_allocation_with_credits_does_not_crash() -> None:
    """Negative net spend (credits) in an account's weights is clamped instead of failing the attribution."""
    owners = {"db-1": ("a", "tag"), "db-2": ("b", "tag")}
    rows = [UsageRow(D1, RDS, "InstanceUsage:db.r6g.large", "db-1", Decimal("-2")),
            UsageRow(D1, RDS, "InstanceUsage:db.r6g.large", "db-2", Decimal("10")),
            UsageRow(D1, RDS, "RDS:GP3-Storage", "", Decimal("-5"))]
    accts = [AccountRow(D1, RDS, "111", "db-1", Decimal("-2")), AccountRow(D1, RDS, "222", "db-2", Decimal("10"))]
    a = build_attribution("2026-10", "UnblendedCost", rows, owners, account_rows=accts, allocate_shared=True)
    assert a.total == Decimal(3)


def test_topology_csv_and_yaml(tmp_path: Path) -> None:
    """Topology files in CSV and YAML give the same clusters; accounts map to business units."""
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("cluster,team,env,owner\ndb-1,payments,prod,alice\ndb-2,search,dev,\n")
    yaml_path = tmp_path / "t.yaml"
    yaml_path.write_text("clusters:\n  - {cluster: db-1, team: payments, env: prod, owner: alice}\n"
                         "  - {cluster: db-2, team: search, env: dev}\n"
                         "accounts:\n  - {account: '111', business_unit: Retail}\n")
    a, b = load_topology(csv_path), load_topology(yaml_path)
    assert a.clusters == b.clusters and a.team_of("db-1") == "payments"
    assert b.business_units == {"111": "Retail"}


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("t.csv", "name,team\nx,y\n", "header"),
        ("t.csv", "cluster,team\ndb-1,\n", "'team' is empty"),
        ("t.csv", "cluster,team\ndb-1,a\ndb-1,b\n", "twice"),
        ("t.yaml", "clusters: [{cluster: db-1, team: a, colour: red}]", "unknown field"),
        ("t.yaml", "clusters: [db-1", "not valid YAML"),
    ],
)
def test_bad_topology_files_are_one_line_config_errors(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    """A broken topology file: one ConfigError line naming the file and what is wrong."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment) as info:
        load_topology(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_topology_file_is_a_config_error(tmp_path: Path) -> None:
    """An unreadable topology file is reported with its path."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_topology(tmp_path / "nope.csv")
