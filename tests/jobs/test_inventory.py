"""The inventory reader against moto's real server on 127.0.0.1: resources the test creates through boto3 (Aurora
clusters with instances, a standalone RDS instance, DynamoDB tables, ElastiCache clusters, with and without tags)
come back through :func:`dbcost.jobs.inventory.read_inventory` (aioboto3, SigV4, the governor, the retry policy)
with cluster membership, the cluster-resource-id alias and their tags, from every target (an assumed role into a
second account included) and region; the store keeps the latest reading; the resources are placed by their own
tags. A private moto server evaluating IAM policies proves :data:`IAM_ACTIONS` is enough and each action in it
needed; AWS's own throttle and denial bodies (RDS query/XML, DynamoDB JSON), which moto does not send, come from a
small aiohttp server through the same client path."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp import web

from dbcost.attribution.inventory import InventoryItem, InventoryScope
from dbcost.attribution.resources import ResourceUsageRow, place_resources
from dbcost.client import Stats
from dbcost.config import InventorySettings, Settings, StoreSettings, TargetConfig
from dbcost.errors import AccessDeniedError, ConfigError, MalformedResponseError
from dbcost.jobs.inventory import (
    IAM_ACTIONS,
    elasticache_cluster_item,
    load_inventory,
    rds_cluster_item,
    read_inventory,
)
from dbcost.retry import RetryPolicy
from dbcost.store import AsyncStore, Store
from tests.conftest import free_port, wait_http

ACCOUNT = "123456789012"
MEMBER = "222233334444"
REGION = "eu-west-1"
#: fast enough for a test (the defaults, 5/s, would make the paging test take seconds)
FAST = InventorySettings(max_rps=1000.0, max_concurrency=8, burst=100.0)


def settings_for(endpoint: str, *targets: TargetConfig, page_size: int = 100, db: Path | None = None,
                 retry: RetryPolicy | None = None) -> Settings:
    return Settings(
        targets=targets or (TargetConfig(name="default"),),
        inventory=InventorySettings(max_rps=FAST.max_rps, max_concurrency=FAST.max_concurrency, burst=FAST.burst,
                                    page_size=page_size, endpoint_url=endpoint),
        retry=retry or RetryPolicy.no_wait(3),
        store=StoreSettings(path=db) if db is not None else StoreSettings(),
    )


def clients(moto: str, region: str = REGION, **creds: str) -> tuple[Any, Any, Any]:
    kw: dict[str, Any] = {"endpoint_url": moto, "region_name": region, **creds}
    return boto3.client("rds", **kw), boto3.client("dynamodb", **kw), boto3.client("elasticache", **kw)


def tags(**kv: str) -> list[dict[str, str]]:
    return [{"Key": k.replace("_", "-"), "Value": v} for k, v in kv.items()]


def create_table(ddb: Any, name: str, **kv: str) -> None:
    extra = {"Tags": tags(**kv)} if kv else {}
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST", **extra)


@pytest.fixture
def fleet(moto: str) -> dict[str, str]:
    """A small database fleet in moto: two Aurora clusters (one tagged, one with no tags at all) with instances,
    a standalone Multi-AZ instance, two tables, two cache clusters; one table in a second region. Returns the
    clusters' DbClusterResourceIds as moto made them."""
    rds, ddb, ec = clients(moto)
    made: dict[str, str] = {}
    for cluster, kv in (("orders", {"team": "payments", "db_cluster": "orders"}), ("ledger", {})):
        answer = rds.create_db_cluster(DBClusterIdentifier=cluster, Engine="aurora-postgresql", EngineVersion="15.4",
                                       MasterUsername="admin", MasterUserPassword="password123", Tags=tags(**kv))
        made[cluster] = answer["DBCluster"]["DbClusterResourceId"]
    rds.create_db_instance(DBInstanceIdentifier="orders-1", DBClusterIdentifier="orders", Engine="aurora-postgresql",
                           DBInstanceClass="db.r6g.large", Tags=tags(team="payments"))
    rds.create_db_instance(DBInstanceIdentifier="orders-2", DBClusterIdentifier="orders", Engine="aurora-postgresql",
                           DBInstanceClass="db.r6g.xlarge")  # untagged: its cluster carries the tags
    rds.create_db_instance(DBInstanceIdentifier="ledger-1", DBClusterIdentifier="ledger", Engine="aurora-postgresql",
                           DBInstanceClass="db.r6g.large")
    rds.create_db_instance(DBInstanceIdentifier="legacy", Engine="postgres", DBInstanceClass="db.m5.large",
                           AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="password123",
                           MultiAZ=True, Tags=tags(team="search", db_cluster="legacy"))
    create_table(ddb, "sessions", team="web")
    create_table(ddb, "audit")
    ec.create_cache_cluster(CacheClusterId="sess-cache", Engine="redis", CacheNodeType="cache.t3.micro",
                            NumCacheNodes=1, Tags=tags(team="web", db_cluster="sessions"))
    ec.create_cache_cluster(CacheClusterId="scratch", Engine="memcached", CacheNodeType="cache.t3.small",
                            NumCacheNodes=1)
    create_table(clients(moto, "us-east-1")[1], "events", team="data")
    return made


def arn(service: str, resource: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


async def test_the_fleet_comes_back_with_membership_aliases_and_tags(moto: str, fleet: dict[str, str]) -> None:
    """Every resource created comes back once, from its region: clusters with their DbClusterResourceId alias,
    instances with their cluster (none for the standalone one), engine, version, class, Multi-AZ, and each
    resource's own tags (empty for the untagged ones); ``get`` finds a cluster by both of its ARN forms."""
    stats = Stats()
    inv = await read_inventory(settings_for(moto), regions=[REGION, "us-east-1"], stats=stats)
    by_arn = {item.arn: item for item in inv}
    assert sorted(by_arn) == sorted([
        arn("rds", "cluster:orders"), arn("rds", "cluster:ledger"), arn("rds", "db:orders-1"),
        arn("rds", "db:orders-2"), arn("rds", "db:ledger-1"), arn("rds", "db:legacy"),
        arn("dynamodb", "table/sessions"), arn("dynamodb", "table/audit"),
        arn("dynamodb", "table/events", region="us-east-1"),
        arn("elasticache", "cluster:sess-cache"), arn("elasticache", "cluster:scratch"),
    ])
    orders = by_arn[arn("rds", "cluster:orders")]
    assert fleet["orders"].startswith("cluster-")  # moto's form is the real one: "cluster-" + 26 characters
    assert orders.aliases == (arn("rds", f"cluster:{fleet['orders']}"),)
    assert (orders.kind, orders.name, orders.cluster, orders.engine, orders.engine_version) == \
        ("db-cluster", "orders", "orders", "aurora-postgresql", "15.4")
    assert dict(orders.tags) == {"team": "payments", "db-cluster": "orders"}
    assert inv.get(orders.aliases[0]) is orders and inv.get(orders.arn) is orders
    assert dict(by_arn[arn("rds", "cluster:ledger")].tags) == {}

    one, two = by_arn[arn("rds", "db:orders-1")], by_arn[arn("rds", "db:orders-2")]
    assert (one.kind, one.cluster, one.instance_class, dict(one.tags)) == \
        ("db-instance", "orders", "db.r6g.large", {"team": "payments"})
    assert (two.cluster, two.instance_class, dict(two.tags)) == ("orders", "db.r6g.xlarge", {})
    assert inv.cluster_item(two) is orders and inv.cluster_item(orders) is None
    legacy = by_arn[arn("rds", "db:legacy")]
    assert (legacy.cluster, legacy.engine, legacy.multi_az, dict(legacy.tags)) == \
        (None, "postgres", True, {"team": "search", "db-cluster": "legacy"})
    assert inv.cluster_item(legacy) is None

    sessions = by_arn[arn("dynamodb", "table/sessions")]
    assert (sessions.service, sessions.kind, sessions.name, dict(sessions.tags)) == \
        ("dynamodb", "table", "sessions", {"team": "web"})
    assert dict(by_arn[arn("dynamodb", "table/audit")].tags) == {}
    assert by_arn[arn("dynamodb", "table/events", region="us-east-1")].region == "us-east-1"
    cache = by_arn[arn("elasticache", "cluster:sess-cache")]
    assert (cache.kind, cache.engine, cache.instance_class, cache.cluster, dict(cache.tags)) == \
        ("cache-cluster", "redis", "cache.t3.micro", None, {"team": "web", "db-cluster": "sessions"})
    assert {(i.account, i.target) for i in inv} == {(ACCOUNT, "default")}
    assert all(i.read_at.tzinfo is dt.UTC and abs(dt.datetime.now(dt.UTC) - i.read_at) < dt.timedelta(minutes=1)
               for i in inv)
    # per region: 2 RDS listings, ListTables, then DescribeTable + ListTagsOfResource per table, one
    # DescribeCacheClusters, one ListTagsForResource per cache cluster; nothing retried
    assert stats.requests == (2 + 1 + 2 * 2 + 1 + 2) + (2 + 1 + 2 + 1) and stats.retries == 0


async def test_an_untagged_in_billing_resource_is_found_by_either_id_with_its_own_tags(
    moto: str, fleet: dict[str, str]
) -> None:
    """What the resource join needs for a charge billing left untagged: the cluster-level id Cost Explorer bills
    Aurora storage under and the instance ARN both lead to an item whose tags (its own, or its cluster's) name
    the team and cluster."""
    inv = await read_inventory(settings_for(moto), regions=[REGION], services=["rds"])
    storage = inv.get(arn("rds", f"cluster:{fleet['orders']}"))
    assert storage is not None and storage.tags["team"] == "payments" and storage.tags["db-cluster"] == "orders"
    instance = inv.get(arn("rds", "db:orders-2"))
    assert instance is not None and dict(instance.tags) == {}
    cluster = inv.cluster_item(instance)
    assert cluster is storage and cluster.tags["team"] == "payments"
    assert inv.get(arn("rds", "db:nope")) is None


async def test_resources_untagged_in_billing_are_placed_by_their_resource_tags(moto: str,
                                                                             fleet: dict[str, str]) -> None:
    """The Must-show of issue 11: resource-level charges whose cost carries no billing tag (an untagged Aurora
    instance, its cluster's storage under the cluster resource id, a table, a cache node) are placed on the team
    and cluster their own APIs' tags name (``inventory-tag``); what no tag names anywhere (a table without tags,
    a cluster without tags) stays ``unattributed``, on its cluster where membership says one. Without the
    inventory, all of it is unattributed."""
    inv = await read_inventory(settings_for(moto), regions=[REGION])
    day = dt.date(2026, 11, 20)
    rds, ddb, cache = "Amazon Relational Database Service", "Amazon DynamoDB", "Amazon ElastiCache"
    charges = {
        arn("rds", "db:orders-2"): (rds, "EU-InstanceUsage:db.r6g.xlarge", "12.5000000001"),
        arn("rds", f"cluster:{fleet['orders']}"): (rds, "EU-Aurora:StorageUsage", "3.10"),
        arn("rds", f"cluster:{fleet['ledger']}"): (rds, "EU-Aurora:StorageUsage", "1.05"),
        arn("rds", "db:ledger-1"): (rds, "EU-InstanceUsage:db.r6g.large", "6.00"),
        arn("dynamodb", "table/sessions"): (ddb, "EU-ReadRequestUnits", "0.75"),
        arn("dynamodb", "table/audit"): (ddb, "EU-ReadRequestUnits", "0.20"),
        arn("elasticache", "cluster:sess-cache"): (cache, "EU-NodeUsage:cache.t3.micro", "0.40"),
    }
    usage = [ResourceUsageRow(day, service, rid, usage_type, Decimal(amount))
             for rid, (service, usage_type, amount) in charges.items()]
    placed = place_resources(usage, start=day, end=day + dt.timedelta(days=1), inventory=inv)
    placed.check()
    got = {r.resource_id: (r.cluster, r.team, r.placed_by) for r in placed.resources}
    assert got == {
        arn("rds", "db:orders-2"): ("orders", "payments", "inventory-tag"),
        arn("rds", f"cluster:{fleet['orders']}"): ("orders", "payments", "inventory-tag"),
        arn("rds", f"cluster:{fleet['ledger']}"): ("ledger", None, "unattributed"),
        arn("rds", "db:ledger-1"): ("ledger", None, "unattributed"),
        arn("dynamodb", "table/sessions"): (None, "web", "inventory-tag"),
        arn("dynamodb", "table/audit"): (None, None, "unattributed"),
        arn("elasticache", "cluster:sess-cache"): ("sessions", "web", "inventory-tag"),
    }
    assert placed.unattributed == Decimal("7.25")
    assert dict(placed.teams()) == {"payments": Decimal("15.6000000001"), "web": Decimal("1.15")}
    blind = place_resources(usage, start=day, end=day + dt.timedelta(days=1))
    assert blind.unattributed == blind.total == sum(Decimal(a) for *_, a in charges.values())


async def test_every_listing_is_paged(moto: str) -> None:
    """With 20 entries a page, 21 instances, 21 tables and 21 cache clusters each take two pages (Marker,
    LastEvaluatedTableName) and all 63 come back."""
    rds, ddb, ec = clients(moto)
    for i in range(21):
        rds.create_db_instance(DBInstanceIdentifier=f"pg-{i}", Engine="postgres", DBInstanceClass="db.t3.micro",
                               AllocatedStorage=20, MasterUsername="admin", MasterUserPassword="password123")
        create_table(ddb, f"t-{i:02}")
        ec.create_cache_cluster(CacheClusterId=f"c-{i}", Engine="redis", CacheNodeType="cache.t3.micro",
                                NumCacheNodes=1)
    stats = Stats()
    inv = await read_inventory(settings_for(moto, page_size=20), regions=[REGION], stats=stats)
    kinds = [i.kind for i in inv]
    assert (kinds.count("db-instance"), kinds.count("table"), kinds.count("cache-cluster")) == (21, 21, 21)
    assert len({i.arn for i in inv}) == 63
    # RDS: 1 cluster page + 2 instance pages; DynamoDB: 2 pages + 42; ElastiCache: 2 pages + 21
    assert stats.requests == 3 + (2 + 42) + (2 + 21)


async def test_each_target_is_read_with_its_own_credentials_an_assumed_role_included(
    moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two targets: the chain's own account, and a role assumed in a member account (STS through moto); each
    reading holds that account's resources, under its target's name."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto)
    role = f"arn:aws:iam::{MEMBER}:role/dbcost-read"
    sts = boto3.client("sts", endpoint_url=moto, region_name=REGION)
    creds = sts.assume_role(RoleArn=role, RoleSessionName="setup")["Credentials"]
    member = {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
              "aws_session_token": creds["SessionToken"]}
    create_table(clients(moto)[1], "payer-table", team="finops")
    create_table(clients(moto, **member)[1], "member-table", team="web")
    settings = settings_for(moto, TargetConfig(name="payer"), TargetConfig(name="member", role_arn=role))
    inv = await read_inventory(settings, regions=[REGION], services=["dynamodb"])
    assert sorted((i.target, i.account, i.name) for i in inv) == [
        ("member", MEMBER, "member-table"), ("payer", ACCOUNT, "payer-table")]
    assert inv.get(arn("dynamodb", "table/member-table", account=MEMBER)) is not None


async def test_without_an_inventory_endpoint_botocore_finds_each_service_by_its_own_variable(
    moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no ``Settings.inventory.endpoint_url`` (what the CLI passes), AWS_ENDPOINT_URL_RDS / _DYNAMODB /
    _ELASTICACHE say where each API is; the target's own endpoint_url (its Cost Explorer, here one that refuses
    connections) is not used for them."""
    for service in ("RDS", "DYNAMODB", "ELASTICACHE"):
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", moto)
    create_table(clients(moto)[1], "sessions", team="web")
    ce_only = TargetConfig(name="payer", endpoint_url=f"http://127.0.0.1:{free_port()}")
    settings = Settings(targets=(ce_only,), inventory=FAST, retry=RetryPolicy.no_wait(1))
    inv = await read_inventory(settings, regions=[REGION])
    assert [(i.target, i.name, dict(i.tags)) for i in inv] == [("payer", "sessions", {"team": "web"})]


async def test_without_regions_each_target_reads_its_own_or_the_chains_region(moto: str) -> None:
    """No regions given: a target's own region is read, and a target naming none reads the credential chain's
    (AWS_DEFAULT_REGION here), as its Cost Explorer client would."""
    create_table(clients(moto)[1], "in-eu")
    create_table(clients(moto, "us-east-1")[1], "in-us")
    settings = settings_for(moto, TargetConfig(name="eu", region=REGION), TargetConfig(name="chain"))
    inv = await read_inventory(settings, services=["dynamodb"])
    assert sorted((i.target, i.name) for i in inv) == [("chain", "in-us"), ("eu", "in-eu")]


async def test_the_store_keeps_the_latest_reading_of_each_scope(moto: str, fleet: dict[str, str],
                                                                tmp_path: Path) -> None:
    """A reading kept in the store reads back equal (tags, aliases, read_at in UTC); a later reading replaces the
    scopes it read (a deleted table disappears) and leaves the others (RDS) as they were; load_inventory gives
    it back without calling any API."""
    db = tmp_path / "inv.duckdb"
    settings = settings_for(moto, db=db)
    async with AsyncStore(settings.store) as store:
        first = await read_inventory(settings, regions=[REGION], store=store)
        assert sorted(await store.inventory_items(), key=lambda i: i.arn) == sorted(first, key=lambda i: i.arn)
    loaded = await load_inventory(settings)
    assert {i.arn: i for i in loaded} == {i.arn: i for i in first}
    orders = loaded.get(arn("rds", f"cluster:{fleet['orders']}"))
    assert orders is not None and orders.tags == {"team": "payments", "db-cluster": "orders"}

    clients(moto)[1].delete_table(TableName="audit")
    async with AsyncStore(settings.store) as store:
        again = await read_inventory(settings, regions=[REGION], services=["dynamodb"], store=store)
    assert [i.name for i in again] == ["sessions"]
    latest = await load_inventory(settings)
    assert latest.get(arn("dynamodb", "table/audit")) is None
    table = latest.get(arn("dynamodb", "table/sessions"))
    assert table is not None and table.read_at == again.get(arn("dynamodb", "table/sessions")).read_at  # type: ignore[union-attr]
    rds_rows = [i for i in latest if i.service == "rds"]
    assert rds_rows == sorted((i for i in first if i.service == "rds"), key=lambda i: i.arn)
    assert len(await load_inventory(settings, targets=["someone-else"])) == 0


def test_the_store_round_trips_an_item_and_replaces_by_scope(tmp_path: Path) -> None:
    """The store keeps every field of an item (None, booleans, unicode tags, several aliases) and a new reading
    of a scope removes what that scope no longer has."""
    at = dt.datetime(2026, 12, 1, 23, 0, 5, 123456, tzinfo=dt.UTC)
    full = InventoryItem(arn=arn("rds", "cluster:a"), aliases=("x", "y"), service="rds", kind="db-cluster",
                         account=ACCOUNT, region=REGION, name="a", read_at=at, cluster="a", engine="aurora-mysql",
                         engine_version="8.0", instance_class=None, multi_az=False,
                         tags={"team": "équipe", "empty": ""}, target="t1")
    bare = InventoryItem(arn=arn("dynamodb", "table/b"), service="dynamodb", kind="table", account=ACCOUNT,
                         region=REGION, name="b", read_at=at, target="t1")
    with Store(tmp_path / "s.duckdb") as store:
        store.record_inventory([InventoryScope("t1", "rds", REGION), InventoryScope("t1", "dynamodb", REGION)],
                               [full, bare])
        assert store.inventory_items() == [bare, full]  # in (target, ARN) order
        store.record_inventory([InventoryScope("t1", "dynamodb", REGION)], [])
        assert store.inventory_items() == [full]
        assert store.inventory_items(["t2"]) == [] and store.inventory_items([]) == []


def test_the_parsers_take_what_moto_cannot_show() -> None:
    """A cache node of a replication group names the group as its cluster; a Multi-AZ DB cluster keeps its
    instance class; an entry without its ARN, or an ARN that is not one, is refused in one line."""
    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    node = elasticache_cluster_item({"ARN": arn("elasticache", "cluster:rg-0001-001"), "CacheClusterId": "rg-0001-001",
                                     "ReplicationGroupId": "rg", "Engine": "valkey", "EngineVersion": "8.0",
                                     "CacheNodeType": "cache.r7g.large"}, [{"Key": "team", "Value": "web"}],
                                    target="t", read_at=at)
    assert (node.cluster, node.engine_version, dict(node.tags)) == ("rg", "8.0", {"team": "web"})
    multi = rds_cluster_item({"DBClusterArn": "arn:aws-cn:rds:cn-north-1:123456789012:cluster:m",
                              "DBClusterIdentifier": "m", "DbClusterResourceId": "cluster-ABC",
                              "DBClusterInstanceClass": "db.m6gd.large", "MultiAZ": True, "Engine": "postgres"},
                             target="t", read_at=at)
    assert multi.aliases == ("arn:aws-cn:rds:cn-north-1:123456789012:cluster:cluster-ABC",)
    assert (multi.instance_class, multi.multi_az, multi.account, multi.region) == \
        ("db.m6gd.large", True, "123456789012", "cn-north-1")
    with pytest.raises(MalformedResponseError, match=r"^DescribeDBClusters: an entry without DBClusterArn"):
        rds_cluster_item({"DBClusterIdentifier": "m"}, target="t", read_at=at)
    with pytest.raises(MalformedResponseError, match="is not an ARN"):
        rds_cluster_item({"DBClusterArn": "orders", "DBClusterIdentifier": "m"}, target="t", read_at=at)
    with pytest.raises(MalformedResponseError, match="a tag without a Key"):
        rds_cluster_item({"DBClusterArn": arn("rds", "cluster:m"), "DBClusterIdentifier": "m",
                          "TagList": [{"Value": "x"}]}, target="t", read_at=at)


async def test_what_cannot_be_read_is_refused_before_anything_is_sent() -> None:
    """An unknown service, a bad region, an empty list of regions, a page size AWS refuses: one line each, and no
    request (the endpoint refuses connections: anything sent would have been a transport error)."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = settings_for(nowhere)
    with pytest.raises(ConfigError, match=r"^inventory: unknown service 'redshift' \(one of rds, dynamodb"):
        await read_inventory(settings, regions=[REGION], services=["rds", "redshift"])
    with pytest.raises(ConfigError, match=r"^inventory --region 'eu west'"):
        await read_inventory(settings, regions=["eu west"])
    with pytest.raises(ConfigError, match=r"^inventory: no region to read"):
        await read_inventory(settings, regions=[])
    with pytest.raises(ConfigError, match=r"^inventory page_size: must be between 20 and 100, got 500"):
        InventorySettings(page_size=500)


@pytest.fixture
def moto_iam() -> Iterator[tuple[str, dict[str, str]]]:
    """A private moto server that evaluates IAM policies (``INITIAL_NO_AUTH_ACTION_COUNT``: the first three
    requests make an admin user and its key, every later one is authorised against its caller's policy);
    yields its URL and the admin's credentials."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/moto-api/")
        iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1")
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        yield url, {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def reader_with(url: str, admin: dict[str, str], name: str, actions: list[str]) -> tuple[str, str]:
    """A user allowed exactly ``actions`` on every resource; its access key."""
    iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1", **admin)
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="inventory", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


async def test_the_iam_actions_listed_are_enough_and_each_is_needed(moto_iam: tuple[str, dict[str, str]]) -> None:
    """Against moto evaluating IAM policies: a user allowed exactly :data:`IAM_ACTIONS` reads every service; one
    without rds:DescribeDBInstances, or without dynamodb:ListTagsOfResource, is refused in one line naming that
    action, and nothing else is asked of it after the refusal."""
    url, admin = moto_iam
    rds, ddb, ec = (boto3.client(s, endpoint_url=url, region_name=REGION, **admin)
                    for s in ("rds", "dynamodb", "elasticache"))
    rds.create_db_cluster(DBClusterIdentifier="orders", Engine="aurora-postgresql", MasterUsername="admin",
                          MasterUserPassword="password123", Tags=tags(team="payments"))
    create_table(ddb, "sessions", team="web")
    ec.create_cache_cluster(CacheClusterId="sess-cache", Engine="redis", CacheNodeType="cache.t3.micro",
                            NumCacheNodes=1, Tags=tags(team="web"))
    every = [a for actions in IAM_ACTIONS.values() for a in actions]
    allowed = settings_for(url).replace(credentials=reader_with(url, admin, "reader", every))
    inv = await read_inventory(allowed, regions=[REGION])
    assert sorted((i.name, i.tags["team"]) for i in inv) == [
        ("orders", "payments"), ("sess-cache", "web"), ("sessions", "web")]
    for missing, service in (("rds:DescribeDBInstances", "rds"), ("dynamodb:ListTagsOfResource", "dynamodb")):
        short = settings_for(url).replace(credentials=reader_with(
            url, admin, f"no-{missing.split(':')[1]}", [a for a in every if a != missing]))
        with pytest.raises(AccessDeniedError) as caught:
            await read_inventory(short, regions=[REGION], services=[service])
        text = str(caught.value)
        assert "\n" not in text and f"lack the IAM permission {missing} (add it to their policy)" in text, text
        assert text.startswith(f"inventory of default in {REGION}: {missing.split(':')[1]}: ")


# -- the real wire answers moto cannot give --------------------------------------------------------------------

RDS_DENIED = """<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/">
  <Error>
    <Type>Sender</Type>
    <Code>AccessDenied</Code>
    <Message>User: arn:aws:iam::123456789012:user/dbcost is not authorized to perform: rds:DescribeDBClusters on
 resource: arn:aws:rds:eu-west-1:123456789012:cluster:* because no identity-based policy allows the
 rds:DescribeDBClusters action</Message>
  </Error>
  <RequestId>7f3c1f52-5b8f-4a5e-9d1e-1e0e2f2a9c11</RequestId>
</ErrorResponse>
"""


class FakeAws:
    """An aiohttp server answering the way AWS does when it refuses: RDS (query protocol, XML) and DynamoDB
    (JSON 1.0) by their real error bodies; ``throttle`` answers that many DynamoDB calls with a throttle first;
    with ``gone``, ListTables lists a table that DescribeTable then no longer finds, beside one it describes."""

    def __init__(self, *, throttle: int = 0) -> None:
        self.throttle = throttle
        self.gone = False
        self.calls: list[str] = []

    def _dynamodb_gone(self, op: str, body: dict[str, Any]) -> web.Response:
        ctype = "application/x-amz-json-1.0"
        if op == "ListTables":
            return web.json_response({"TableNames": ["dropped", "kept"]}, content_type=ctype)
        if op == "DescribeTable" and body["TableName"] == "dropped":
            return web.json_response({"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                                      "message": "Requested resource not found: Table: dropped not found"},
                                     status=400, content_type=ctype)
        if op == "DescribeTable":
            return web.json_response({"Table": {"TableName": "kept", "TableStatus": "ACTIVE",
                                                "TableArn": arn("dynamodb", "table/kept")}}, content_type=ctype)
        return web.json_response({"Tags": [{"Key": "team", "Value": "web"}]}, content_type=ctype)

    async def handle(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        if target.startswith("DynamoDB_20120810."):
            op = target.split(".", 1)[1]
            self.calls.append(op)
            if self.throttle > 0:
                self.throttle -= 1
                return web.json_response({"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                                          "message": "Rate exceeded"}, status=400,
                                         content_type="application/x-amz-json-1.0")
            if self.gone:
                return self._dynamodb_gone(op, json.loads(await request.read()))
            if op == "ListTables":
                return web.json_response({"TableNames": ["orders"]}, content_type="application/x-amz-json-1.0")
            return web.json_response(
                {"__type": "com.amazon.coral.service#AccessDeniedException",
                 "Message": f"User: arn:aws:iam::{ACCOUNT}:user/dbcost is not authorized to perform: dynamodb:{op}"},
                status=400, content_type="application/x-amz-json-1.0")
        form = await request.post()
        self.calls.append(str(form.get("Action")))
        return web.Response(text=RDS_DENIED, status=403, content_type="text/xml")


@pytest.fixture
async def fake_aws() -> AsyncIterator[tuple[str, FakeAws]]:
    server = FakeAws()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # botocore keeps its connections open until closed
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        await runner.cleanup()


async def test_an_access_denial_is_one_line_naming_the_missing_iam_action(fake_aws: tuple[str, FakeAws]) -> None:
    """RDS's real 403 AccessDenied (XML, its message over several lines) becomes one line that names the target,
    the region, the operation and the IAM action to grant; it is not retried."""
    url, server = fake_aws
    with pytest.raises(AccessDeniedError) as caught:
        await read_inventory(settings_for(url), regions=[REGION], services=["rds"])
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("inventory of default in eu-west-1: DescribeDBClusters: AccessDenied: the credentials "
                           "lack the IAM permission rds:DescribeDBClusters (add it to their policy): User: ")
    assert text.endswith("(HTTP 403)")
    assert server.calls == ["DescribeDBClusters"]
    assert "rds:DescribeDBClusters" in IAM_ACTIONS["rds"]


async def test_a_dynamodb_denial_names_its_action_too_and_a_throttle_is_retried(
    fake_aws: tuple[str, FakeAws],
) -> None:
    """DynamoDB's JSON ThrottlingException is retried under the run's retry policy (twice here); its
    AccessDeniedException (HTTP 400) on DescribeTable names dynamodb:DescribeTable and ends the reading."""
    url, server = fake_aws
    server.throttle = 2
    stats = Stats()
    with pytest.raises(AccessDeniedError) as caught:
        await read_inventory(settings_for(url), regions=[REGION], services=["dynamodb"], stats=stats)
    text = str(caught.value)
    assert "\n" not in text and "lack the IAM permission dynamodb:DescribeTable" in text
    assert text.startswith("inventory of default in eu-west-1: DescribeTable: AccessDeniedException: ")
    assert server.calls == ["ListTables", "ListTables", "ListTables", "DescribeTable"]
    assert (stats.throttled, stats.retries, stats.requests) == (2, 2, 4)


async def test_a_table_deleted_between_the_listing_and_its_description_is_left_out(
    fake_aws: tuple[str, FakeAws],
) -> None:
    """DynamoDB's real ResourceNotFoundException on DescribeTable (the table was dropped after ListTables listed
    it) leaves that table out, not retried; the other table is read with its tags."""
    url, server = fake_aws
    server.gone = True
    inv = await read_inventory(settings_for(url), regions=[REGION], services=["dynamodb"])
    assert [(i.name, dict(i.tags)) for i in inv] == [("kept", {"team": "web"})]
    assert sorted(server.calls) == ["DescribeTable", "DescribeTable", "ListTables", "ListTagsOfResource"]
