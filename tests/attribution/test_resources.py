"""Resource identity and placement (pure): ARNs of every database service, and each placement rule at its turn."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from dbcost.attribution.inventory import Inventory, InventoryItem
from dbcost.attribution.pools import load_topology
from dbcost.attribution.resources import (
    PLACED_BY,
    QuarantinedGroups,
    ResourceUsageRow,
    TagRow,
    parse_resource_id,
    place_resources,
)
from dbcost.errors import ConfigError

RDS = "Amazon Relational Database Service"
DDB = "Amazon DynamoDB"
D1 = dt.date(2026, 11, 20)
START, END = dt.date(2026, 11, 14), dt.date(2026, 11, 28)
READ_AT = dt.datetime(2026, 11, 28, 12, 0)

INSTANCE = "arn:aws:rds:eu-west-1:111122223333:db:pay-1-a"
CLUSTER = "arn:aws:rds:eu-west-1:111122223333:cluster:cluster-ABCDEFGHIJ0123456789"
TABLE = "arn:aws:dynamodb:us-east-1:111122223333:table/orders"


@pytest.mark.parametrize(
    ("rid", "namespace", "kind", "account", "region", "name"),
    [
        (INSTANCE, "rds", "db-instance", "111122223333", "eu-west-1", "pay-1-a"),
        (CLUSTER, "rds", "db-cluster", "111122223333", "eu-west-1", "cluster-ABCDEFGHIJ0123456789"),
        ("arn:aws:rds:us-east-1:1:cluster:docs-1", "rds", "db-cluster", "1", "us-east-1", "docs-1"),  # DocumentDB
        (TABLE, "dynamodb", "table", "111122223333", "us-east-1", "orders"),
        ("arn:aws:dynamodb:us-east-1:1:table/orders/backup/01700000000000-abcdef", "dynamodb", "table", "1",
         "us-east-1", "orders"),
        ("arn:aws:elasticache:us-west-2:1:cluster:sessions-001", "elasticache", "cache-cluster", "1", "us-west-2",
         "sessions-001"),
        ("arn:aws:elasticache:us-west-2:1:replicationgroup:sessions", "elasticache", "replication-group", "1",
         "us-west-2", "sessions"),
        ("arn:aws:redshift:us-east-1:1:cluster:dwh", "redshift", "redshift-cluster", "1", "us-east-1", "dwh"),
        ("arn:aws:neptune-graph:us-east-1:1:graph/g-abc", "neptune-graph", "graph", "1", "us-east-1", "g-abc"),
        ("arn:aws-cn:rds:cn-north-1:1:db:x", "rds", "db-instance", "1", "cn-north-1", "x"),
        ("arn:aws:rds:us-east-1:1:og:default", "rds", "unknown", "1", "us-east-1", "og:default"),
        ("i-0123456789abcdef0", "", "unknown", "", "", "i-0123456789abcdef0"),
        ("", "", "no-resource", "", "", ""),
        ("NoResourceId", "", "no-resource", "", "", "NoResourceId"),
    ],
)
def test_resource_ids_parse_into_service_account_region_kind_and_name(
        rid: str, namespace: str, kind: str, account: str, region: str, name: str) -> None:
    """Each database ARN form gives its namespace, account, region, kind and name; anything else is kept as
    kind 'unknown', never refused."""
    ident = parse_resource_id(rid)
    assert (ident.resource_id, ident.namespace, ident.kind, ident.account, ident.region, ident.name) == (
        rid, namespace, kind, account, region, name)


def usage(rid: str, ut: str, amount: str, service: str = RDS, day: dt.date = D1) -> ResourceUsageRow:
    return ResourceUsageRow(day, service, rid, ut, Decimal(amount))


def item(arn: str, kind: str, name: str, *, cluster: str | None = None, tags: dict[str, str] | None = None,
         aliases: tuple[str, ...] = ()) -> InventoryItem:
    ident = parse_resource_id(arn)
    return InventoryItem(arn=arn, service=ident.namespace, kind=kind, account=ident.account, region=ident.region,
                         name=name, read_at=READ_AT, cluster=cluster, tags=tags or {}, aliases=aliases)


ROWS = [
    usage(INSTANCE, "EU-InstanceUsage:db.r6g.large", "10.0000000001"),
    usage(INSTANCE, "EU-InstanceUsage:db.r6g.large", "2", day=D1 + dt.timedelta(days=1)),
    usage(CLUSTER, "EU-Aurora:StorageUsage", "3.5"),
    usage(CLUSTER, "EU-Aurora:StorageIOUsage", "1.25"),
    usage(TABLE, "TimedStorage-ByteHrs", "0.0000000007", service=DDB),
]


def test_amounts_are_exact_per_resource_and_categories_add_up() -> None:
    """Each resource once, its amount the exact sum of its rows, split into the classifier's categories."""
    a = place_resources(ROWS, start=START, end=END)
    by = {r.resource_id: r for r in a.resources}
    assert set(by) == {INSTANCE, CLUSTER, TABLE}
    assert by[INSTANCE].amount == Decimal("12.0000000001")
    assert by[INSTANCE].categories["compute"] == Decimal("12.0000000001")
    assert (by[CLUSTER].categories["storage"], by[CLUSTER].categories["io"]) == (Decimal("3.5"), Decimal("1.25"))
    assert by[TABLE].amount == Decimal("0.0000000007") and by[TABLE].service == DDB and by[TABLE].kind == "table"
    assert a.total == Decimal("16.7500000008") == a.unattributed
    assert {r.placed_by for r in a.resources} == {"unattributed"}
    j = a.to_json()
    assert j["total"] == "16.7500000008" and j["teams"] == []
    assert j["resources"][0]["resource_id"] == INSTANCE and j["resources"][0]["categories"]["compute"] == "12.0000000001"
    assert set(j["resources"][0]) >= {"resource_id", "service", "kind", "account", "region", "cluster", "team",
                                      "placed_by", "amount", "categories"}
    assert j["placed_by"] == {p: ("16.7500000008" if p == "unattributed" else "0") for p in PLACED_BY}


def test_the_billing_tag_places_first_and_a_cluster_tag_carries_its_team() -> None:
    """The team tag on a resource's cost wins; a resource with only the cluster tag takes the team that tag's
    cluster carries in the billing data; the inventory and the topology are not consulted for them."""
    clusters = [TagRow(INSTANCE, "pay-1", Decimal(12)), TagRow(CLUSTER, "pay-1", Decimal("4.75"))]
    teams = [TagRow(INSTANCE, "payments", Decimal(12)), TagRow(CLUSTER, "", Decimal("4.75"))]
    inv = Inventory([item(INSTANCE, "db-instance", "pay-1-a", cluster="pay-1", tags={"team": "other"})])
    a = place_resources(ROWS, start=START, end=END, cluster_tags=clusters, team_tags=teams, inventory=inv)
    by = {r.resource_id: r for r in a.resources}
    assert (by[INSTANCE].team, by[INSTANCE].placed_by, by[INSTANCE].cluster) == ("payments", "billing-tag", "pay-1")
    assert (by[CLUSTER].team, by[CLUSTER].placed_by, by[CLUSTER].cluster) == ("payments", "billing-tag", "pay-1")
    assert by[TABLE].placed_by == "unattributed"
    assert a.teams() == [("payments", Decimal("16.7500000001"))]
    assert a.clusters()[0].cluster == "pay-1" and a.clusters()[0].amount == Decimal("16.7500000001")
    assert a.clusters()[-1].cluster is None and a.clusters()[-1].amount == Decimal("0.0000000007")


def test_inventory_tags_place_untagged_spend_and_an_instance_reaches_its_cluster() -> None:
    """With no billing tag, the resource's own tags place it; an untagged instance takes its Aurora cluster's
    team through its membership; the cluster-level charges (billed to the cluster resource id) join it."""
    inv = Inventory([
        item("arn:aws:rds:eu-west-1:111122223333:cluster:pay-1", "db-cluster", "pay-1", cluster="pay-1",
             tags={"team": "payments"}, aliases=(CLUSTER,)),
        item(INSTANCE, "db-instance", "pay-1-a", cluster="pay-1"),
        item(TABLE, "table", "orders", tags={"team": "checkout", "db-cluster": "orders-db"}),
    ])
    a = place_resources(ROWS, start=START, end=END, inventory=inv)
    by = {r.resource_id: r for r in a.resources}
    assert (by[CLUSTER].cluster, by[CLUSTER].team, by[CLUSTER].placed_by) == ("pay-1", "payments", "inventory-tag")
    assert (by[INSTANCE].cluster, by[INSTANCE].team, by[INSTANCE].placed_by) == ("pay-1", "payments", "inventory-tag")
    assert (by[TABLE].cluster, by[TABLE].team) == ("orders-db", "checkout")
    assert a.unattributed == 0 and a.to_json()["inventory"] is True


def test_topology_by_resource_id_then_by_cluster(tmp_path: Path) -> None:
    """A topology row for the resource id places it; else the cluster row of its (tagged) cluster; the rest stays
    unattributed."""
    topo = tmp_path / "t.csv"
    topo.write_text(f"resource_id,cluster,team,env,owner\n{TABLE},,checkout,prod,\n{CLUSTER},pay-1,payments,,\n"
                    ",pay-1,payments,,\n")
    t = load_topology(topo)
    a = place_resources(ROWS, start=START, end=END, topology=t,
                        cluster_tags=[TagRow(INSTANCE, "pay-1", Decimal(12))])
    by = {r.resource_id: r for r in a.resources}
    assert (by[TABLE].team, by[TABLE].placed_by, by[TABLE].cluster) == ("checkout", "topology", None)
    assert (by[CLUSTER].team, by[CLUSTER].cluster) == ("payments", "pay-1")
    assert (by[INSTANCE].team, by[INSTANCE].placed_by) == ("payments", "topology")  # through the cluster row
    assert a.unattributed == 0


def test_quarantined_groups_are_counted_and_their_resources_listed() -> None:
    """A resource seen only in quarantined groups is listed at zero with its count; the reasons are kept."""
    q = QuarantinedGroups(3, {"amount: not a number": 2, "keys: 3 keys": 1}, {TABLE: 1, "arn:aws:rds:x:1:db:lost": 2})
    a = place_resources(ROWS[:1], start=START, end=END, quarantined=q)
    by = {r.resource_id: r for r in a.resources}
    assert by["arn:aws:rds:x:1:db:lost"].amount == 0 and by["arn:aws:rds:x:1:db:lost"].quarantined_groups == 2
    assert by[TABLE].quarantined_groups == 1
    assert a.to_json()["quarantined"] == {"groups": 3, "reasons": [{"reason": "amount: not a number", "count": 2},
                                                                  {"reason": "keys: 3 keys", "count": 1}],
                                          "placement_groups": 0}


def test_topology_resource_rows_in_yaml_and_their_errors(tmp_path: Path) -> None:
    """YAML takes a resources list; a resource row without a team, or listed twice differently, is one line."""
    y = tmp_path / "t.yaml"
    y.write_text(f"clusters:\n  - {{cluster: pay-1, team: payments}}\nresources:\n  - {{resource_id: '{TABLE}', "
                 "team: checkout}\n")
    t = load_topology(y)
    assert t.resources[TABLE].team == "checkout" and t.team_of("pay-1") == "payments"
    bad = tmp_path / "b.csv"
    bad.write_text(f"resource_id,cluster,team\n{TABLE},,\n")
    with pytest.raises(ConfigError, match="'team' is empty"):
        load_topology(bad)
    bad.write_text(f"resource_id,team\n{TABLE},a\n{TABLE},b\n")
    with pytest.raises(ConfigError, match="listed twice"):
        load_topology(bad)


def test_coverage_says_what_the_resources_placed_of_the_unattributed_spend() -> None:
    """For the covered days: the attribution's unattributed spend, what resources without a billing team tag
    cost, how much the inventory and the topology placed, and the costliest ones with the tags to add."""
    from dbcost.attribution.model import DailySpend
    from dbcost.attribution.resources import resource_coverage

    inv = Inventory([item(TABLE, "table", "orders", tags={"team": "checkout"})])
    placed = place_resources(ROWS, start=START, end=END, inventory=inv,
                             team_tags=[TagRow(INSTANCE, "payments", Decimal(12))])
    daily = [DailySpend(D1, "unattributed", "storage", Decimal("4.75"), False),
             DailySpend(D1 - dt.timedelta(days=30), "unattributed", "storage", Decimal(100), False),
             DailySpend(D1, "payments", "compute", Decimal(12), False)]
    cov = resource_coverage(daily, placed, [(START, END)])
    assert cov.days == 14 and cov.unattributed == Decimal("4.75")  # the day outside the stretch is not counted
    assert cov.untagged == Decimal("4.7500000007") and cov.placed == Decimal("0.0000000007")
    assert cov.placed_by == {"inventory-tag": Decimal("0.0000000007"), "topology": Decimal(0)}
    assert cov.still_unattributed == Decimal("4.75")
    first, second = cov.costliest_untagged
    assert first.resource_id == CLUSTER and first.add_tags == {"team": "?", "db-cluster": "cluster-ABCDEFGHIJ0123456789"}
    assert second.resource_id == TABLE and second.has_tags and "activate 'team'" in second.advice
    assert cov.to_json()["placed"] == "0.0000000007"


def test_charges_billed_to_no_resource_are_a_pool_no_tag_places() -> None:
    """NoResourceId is one entry, never placed by the dominant billing tag (it is many unrelated charges); in the
    coverage only its part without a team tag counts as untagged."""
    from dbcost.attribution.resources import resource_coverage

    rows = [usage("NoResourceId", "EU-DataTransfer-Out-Bytes", "10"), usage(INSTANCE, "InstanceUsage:db.r6g.large", "5")]
    teams = [TagRow("NoResourceId", "payments", Decimal(7)), TagRow("NoResourceId", "", Decimal(3)),
             TagRow(INSTANCE, "payments", Decimal(5))]
    a = place_resources(rows, start=START, end=END, team_tags=teams)
    pool = next(r for r in a.resources if r.resource_id == "NoResourceId")
    assert (pool.kind, pool.team, pool.placed_by, pool.amount) == ("no-resource", None, "unattributed", Decimal(10))
    cov = resource_coverage([], a, [(START, END)])
    assert (cov.untagged, cov.placed, cov.still_unattributed) == (Decimal(3), Decimal(0), Decimal(3))
