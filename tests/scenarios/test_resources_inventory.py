"""`dbcost resources --inventory` end to end: Cost Explorer is the emulator, RDS/DynamoDB/ElastiCache are moto's
real server, the target assumes a role into the emulator's account (STS through moto). The resources billing
knows no team for are created in moto with their true owner's tags, and the inventory places them."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3

from dbcost.emulator import Emulator, EmulatorConfig
from tests.conftest import run_cli_async
from tests.scenarios.conftest import TODAY, TODAY_S


def _client(service: str, moto: str, region: str, creds: dict[str, str]) -> Any:
    return boto3.client(service, endpoint_url=moto, region_name=region, **creds)


def _create(moto: str, creds: dict[str, str], resources: list[dict[str, Any]]) -> None:
    """The emulator's untagged resources as moto resources: an Aurora cluster (tagged with its true team) with
    its instances (untagged: they reach the team through their cluster), a standalone instance, a table."""
    for r in resources:
        region, tags = r["region"], [{"Key": "team", "Value": r["team"]}]
        if r["kind"] == "db-cluster":
            _client("rds", moto, region, creds).create_db_cluster(
                DBClusterIdentifier=r["name"], Engine="aurora-postgresql", MasterUsername="admin",
                MasterUserPassword="password123", Tags=tags)
    for r in resources:
        region, tags = r["region"], [{"Key": "team", "Value": r["team"]}]
        if r["kind"] == "db-instance" and r["cluster_resource_id"]:
            _client("rds", moto, region, creds).create_db_instance(
                DBInstanceIdentifier=r["name"], DBInstanceClass="db.r6g.large", Engine="aurora-postgresql",
                DBClusterIdentifier=r["cluster"])
        elif r["kind"] == "db-instance":
            _client("rds", moto, region, creds).create_db_instance(
                DBInstanceIdentifier=r["name"], DBInstanceClass="db.m5.large", Engine="postgres",
                MasterUsername="admin", MasterUserPassword="password123", AllocatedStorage=20, Tags=tags)
        elif r["kind"] == "table":
            _client("dynamodb", moto, region, creds).create_table(
                TableName=r["name"], KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
                Tags=tags)


async def test_the_inventory_places_what_billing_leaves_untagged(moto: str, tmp_path: Path) -> None:
    """Resources without a team tag in billing, whose own tags (or their cluster's) name the team, are placed by
    'inventory-tag' with their true team; the inventory reading is kept in the store; nothing else moves."""
    async with Emulator(EmulatorConfig(today=TODAY, clusters=60)) as emu:
        untagged = [r for r in emu.resources() if not r["billing_tags"].get("team")]
        account = Counter(r["account"] for r in untagged).most_common(1)[0][0]
        mine = [r for r in untagged if r["account"] == account]
        role = f"arn:aws:iam::{account}:role/dbcost-read"
        c = boto3.client("sts", endpoint_url=moto, region_name="us-east-1").assume_role(
            RoleArn=role, RoleSessionName="setup")["Credentials"]
        creds = {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"],
                 "aws_session_token": c["SessionToken"]}
        _create(moto, creds, mine)
        targets = tmp_path / "targets.toml"
        targets.write_text(f'[[target]]\nname = "payer"\nendpoint_url = "{emu.url}"\nrole_arn = "{role}"\n')
        env = {f"AWS_ENDPOINT_URL_{s}": moto for s in ("STS", "RDS", "DYNAMODB", "ELASTICACHE")}
        db = tmp_path / "s.duckdb"
        base = ("resources", "--db", str(db), "--targets", str(targets), "--format", "json", "--max-rps", "200",
                "--today", TODAY_S)
        rc, out, err = await run_cli_async(*base, env=env)
        assert rc == 0, err
        before = {r["resource_id"]: r for r in json.loads(out)["resources"]}
        rc, out, err = await run_cli_async(*base, "--inventory", env=env)
        assert rc == 0, err
        assert "read the inventory (RDS, DynamoDB, ElastiCache)" in err
    data = json.loads(out)
    after = {r["resource_id"]: r for r in data["resources"]}
    assert data["inventory"] is True
    # moto invents its own DbClusterResourceId, so a cluster's own charges (billed to the emulator's id) join its
    # inventory item only through the cluster tag billing carries; a cluster with no tag at all cannot join here
    # (against AWS the alias is the billed id: tests/jobs/test_inventory.py checks the alias is read)
    mine = [r for r in mine if r["kind"] != "db-cluster" or r["billing_tags"].get("db-cluster")]
    assert {r["kind"] for r in mine} >= {"db-cluster", "db-instance"}
    for r in mine:
        got = after[r["resource_id"]]
        assert (got["placed_by"], got["team"]) == ("inventory-tag", r["team"]), got
        assert before[r["resource_id"]]["placed_by"] in ("unattributed", "topology")
    moved = {k for k in after if after[k]["placed_by"] != before[k]["placed_by"]}
    assert moved == {r["resource_id"] for r in mine}
    assert {k: v["amount"] for k, v in after.items()} == {k: v["amount"] for k, v in before.items()}
    assert Decimal(data["total"]) == sum(Decimal(r["amount"]) for r in data["resources"])
