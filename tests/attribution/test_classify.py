"""Tests for the database usage-type classifier and its rules file."""

from __future__ import annotations

import csv
import dataclasses
import importlib.resources
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbcost.attribution import (
    CATEGORIES,
    DEPLOYMENTS,
    FAMILIES,
    Classification,
    RuleSet,
    classify,
    database_families,
    default_rules,
    is_database_family,
    load_rules,
    prefix_for_region,
    region_for_prefix,
    split_usage_type,
    unclassified_spend,
)
from dbcost.errors import ConfigError

TABLE = Path(__file__).with_name("usage_types.csv")
RDS = "Amazon Relational Database Service"
DYNAMODB = "Amazon DynamoDB"
S3 = "Amazon Simple Storage Service"


def _rows() -> list[dict[str, str]]:
    with TABLE.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


ROWS = _rows()


def _none(text: str) -> str | None:
    return text or None


# --- the table of real usage types -----------------------------------------------------------------


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['service']}|{r['usage_type']}" for r in ROWS])
def test_real_usage_type(row: dict[str, str]) -> None:
    """Each real (service, usage type) pair in usage_types.csv classifies exactly as its row says."""
    got = classify(row["service"], row["usage_type"])
    expected = {
        "family": row["family"],
        "engine": _none(row["engine"]),
        "category": row["category"],
        "instance_class": _none(row["instance_class"]),
        "region": _none(row["region"]),
        "deployment": _none(row["deployment"]),
        "known": row["known"] == "true",
    }
    actual = {key: getattr(got, key) for key in expected}
    assert actual == expected


def test_table_is_large_sourced_and_covers_the_families() -> None:
    """The table has 80+ unique rows, each with a source, covering every family with confirmed strings."""
    pairs = {(r["service"], r["usage_type"]) for r in ROWS}
    assert len(ROWS) >= 80
    assert len(pairs) == len(ROWS)
    assert all(r["source"].strip() for r in ROWS)
    assert all(r["known"] in {"true", "false"} for r in ROWS)
    covered = {r["family"] for r in ROWS}
    # Timestream has no confirmed usage type, hence no rule and no row.
    assert covered >= set(FAMILIES) - {"timestream"}
    assert {r["category"] for r in ROWS} == set(CATEGORIES)
    assert {r["deployment"] for r in ROWS} - {""} == set(DEPLOYMENTS)


# --- families come from SERVICE ------------------------------------------------------------------------


def test_s3_timedstorage_is_not_dynamodb() -> None:
    """The same usage type is DynamoDB storage under DynamoDB and an unclassified non-database line under S3."""
    s3 = classify(S3, "TimedStorage-ByteHrs")
    ddb = classify(DYNAMODB, "TimedStorage-ByteHrs")
    assert (s3.family, s3.category, s3.known) == ("other", "other", False)
    assert (ddb.family, ddb.category, ddb.known) == ("dynamodb", "storage", True)


def test_unknown_usage_type_keeps_service_family() -> None:
    """An unrecognised usage type is category other and known False, with the family still from SERVICE."""
    got = classify(RDS, "EUW2-SomethingAWSInventsNextYear")
    assert got == Classification(family="rds", category="other", known=False, region="eu-west-2", region_prefix="EUW2")
    assert classify("Amazon Timestream", "USE2-Whatever").family == "timestream"


def test_unlisted_aurora_usage_type_is_aurora_but_unclassified() -> None:
    """A new Aurora:* usage type is recognised as Aurora but still reported as unclassified."""
    got = classify(RDS, "Aurora:LimitlessSomething")
    assert (got.family, got.category, got.known, got.rule) == ("aurora", "other", False, "aurora-unlisted")


def test_service_name_variants_match_by_pattern() -> None:
    """Renamed or suffixed service names still find their family; unrelated services are other."""
    assert classify("Amazon MemoryDB for Redis", "NodeUsage:db.r6g.large").family == "memorydb"
    assert classify("Amazon DocumentDB", "StorageUsage").family == "documentdb"
    assert classify("Amazon Timestream for InfluxDB", "X").family == "timestream"
    dax = classify("Amazon DynamoDB Accelerator (DAX)", "NodeUsage:dax-r5.large")
    assert (dax.family, dax.instance_class) == ("dynamodb", "dax-r5.large")
    assert classify("AmazonMCS", "ReadRequestUnits").family == "keyspaces"
    assert classify("Amazon Simple Queue Service", "Requests").family == "other"


def test_database_rules_do_not_apply_to_other_services() -> None:
    """An RDS-shaped usage type under a non-database service is not classified as a database charge."""
    got = classify("EC2 - Other", "InstanceUsage:db.r6g.large")
    assert (got.family, got.known, got.instance_class) == ("other", False, None)


def test_aurora_provisioned_instance_is_not_distinguishable() -> None:
    """InstanceUsage:db.* stays rds: Aurora provisioned instances bill with the same usage type."""
    assert classify(RDS, "InstanceUsage:db.r6g.large").family == "rds"
    assert classify(RDS, "InstanceUsageIOOptimized:db.r6g.large").family == "aurora"


def test_engine_only_when_written_in_the_usage_type() -> None:
    """Engines come from the usage type (serverless cache tokens, Extended Support) and are never guessed."""
    assert classify("Amazon ElastiCache", "USE1-CachedData:Memcached").engine == "memcached"
    assert classify("Amazon ElastiCache", "USE1-CachedData:SomeNewEngine").engine is None
    assert classify("Amazon ElastiCache", "NodeUsage:cache.r6g.large").engine is None
    assert classify(RDS, "Aurora:ServerlessV2Usage").engine is None
    support = classify(RDS, "ExtendedSupport:Yr1-Yr2:AuroraPostgreSQL11")
    assert (support.family, support.engine) == ("aurora", "aurora-postgresql")


def test_matching_is_case_sensitive() -> None:
    """Usage types are matched exactly as AWS writes them: a lower-cased one is not recognised."""
    got = classify(RDS, "euw2-aurora:storageusage")
    assert (got.family, got.known, got.region_prefix, got.region) == ("rds", False, None, "us-east-1")


# --- region prefixes ----------------------------------------------------------------------------------


def test_prefix_table_round_trips() -> None:
    """Every billing code maps to its region and back to the canonical code, and classify uses it."""
    rules = default_rules()
    assert len(rules.prefixes) >= 30
    for prefix, region in rules.prefixes.items():
        assert region_for_prefix(prefix) == region
        canonical = prefix_for_region(region)
        assert canonical is not None
        assert region_for_prefix(canonical) == region
        got = classify(DYNAMODB, f"{prefix}-TimedStorage-ByteHrs")
        assert (got.region, got.region_prefix, got.category) == (region, prefix, "storage")
    assert prefix_for_region("eu-west-1") == "EU"
    assert prefix_for_region("us-east-1") == "USE1"
    assert prefix_for_region("xx-nowhere-9") is None


def test_prefix_table_holds_the_confirmed_codes() -> None:
    """Codes confirmed by AWS documents map as documented (note APS1 is Singapore, APS3 is Mumbai)."""
    expected = {
        "USE1": "us-east-1",
        "USE2": "us-east-2",
        "USW1": "us-west-1",
        "USW2": "us-west-2",
        "EU": "eu-west-1",
        "EUW2": "eu-west-2",
        "EUW3": "eu-west-3",
        "EUC1": "eu-central-1",
        "EUC2": "eu-central-2",
        "EUN1": "eu-north-1",
        "EUS1": "eu-south-1",
        "EUS2": "eu-south-2",
        "APN1": "ap-northeast-1",
        "APN2": "ap-northeast-2",
        "APN3": "ap-northeast-3",
        "APS1": "ap-southeast-1",
        "APS2": "ap-southeast-2",
        "APS3": "ap-south-1",
        "APS4": "ap-southeast-3",
        "APS5": "ap-south-2",
        "APS6": "ap-southeast-4",
        "APE1": "ap-east-1",
        "CAN1": "ca-central-1",
        "CAN2": "ca-west-1",
        "SAE1": "sa-east-1",
        "MES1": "me-south-1",
        "MEC1": "me-central-1",
        "AFS1": "af-south-1",
        "ILC1": "il-central-1",
        "UGW1": "us-gov-west-1",
        "UGE1": "us-gov-east-1",
    }
    assert {p: region_for_prefix(p) for p in expected} == expected
    inferred = {p.prefix for p in default_rules().region_prefixes if not p.confirmed}
    assert inferred == {"CNN1", "CNW1"}


def test_unprefixed_usage_type_is_us_east_1_by_convention() -> None:
    """No prefix means us-east-1, with region_prefix None so the convention is visible."""
    got = classify(RDS, "RDS:GP3-Storage")
    assert (got.region, got.region_prefix) == ("us-east-1", None)


def test_unknown_prefix_is_kept_without_a_region() -> None:
    """A prefix the table does not know gives region None, keeps the prefix, and still classifies."""
    got = classify(DYNAMODB, "XYZ9-TimedStorage-ByteHrs")
    assert (got.region, got.region_prefix, got.category, got.known) == (None, "XYZ9", "storage", True)


def test_inter_region_transfer_takes_the_source_region() -> None:
    """USE1-EUW2-AWS-Out-Bytes is data transfer billed in us-east-1 with peer eu-west-2."""
    got = classify(RDS, "USE1-EUW2-AWS-Out-Bytes")
    assert (got.category, got.region, got.region_prefix) == ("data_transfer", "us-east-1", "USE1")
    assert (got.peer_region, got.peer_region_prefix) == ("eu-west-2", "EUW2")
    assert split_usage_type("USE1-EUW2-AWS-Out-Bytes") == ("USE1", "EUW2", "AWS-Out-Bytes")


def test_body_tokens_that_look_like_prefixes_are_not_prefixes() -> None:
    """IA- (Standard-IA table class) and AWS- start usage-type bodies; RDS: is not a prefix either."""
    assert split_usage_type("IA-ReadRequestUnits") == (None, None, "IA-ReadRequestUnits")
    assert split_usage_type("EU-IA-ReadRequestUnits") == ("EU", None, "IA-ReadRequestUnits")
    assert split_usage_type("RDS:GP3-Storage") == (None, None, "RDS:GP3-Storage")
    assert split_usage_type("USE1:PI_LTR:T3") == ("USE1", None, "PI_LTR:T3")
    assert split_usage_type("CS:ra3.4xlarge") == (None, None, "CS:ra3.4xlarge")


def test_global_prefix_has_no_region() -> None:
    """Global-DataTransfer-Out-Bytes is data transfer in no single region."""
    got = classify("AWS Data Transfer", "Global-DataTransfer-Out-Bytes")
    assert (got.category, got.region, got.region_prefix) == ("data_transfer", None, "Global")


# --- families, caching, the value type -----------------------------------------------------------------


def test_database_families() -> None:
    """database_families() lists every family but other, and is_database_family agrees with it."""
    families = database_families()
    assert "other" not in families
    assert set(families) | {"other"} == set(FAMILIES)
    assert all(is_database_family(f) for f in families)
    assert not is_database_family("other")
    assert not is_database_family("s3")


def test_classification_is_a_frozen_slotted_value() -> None:
    """A Classification cannot be changed and has no __dict__."""
    got = classify(RDS, "RDS:GP3-Storage")
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.category = "io"  # type: ignore[misc]
    assert not hasattr(got, "__dict__")


def test_classify_is_cached() -> None:
    """Repeated calls for the same pair return the very same object (functools.lru_cache)."""
    assert classify(RDS, "EUW2-Aurora:StorageUsage") is classify(RDS, "EUW2-Aurora:StorageUsage")


def test_unclassified_spend_lists_what_no_rule_knows() -> None:
    """Spend of unrecognised database usage types is summed per pair, largest first; known lines drop out."""
    rows = [
        (RDS, "Aurora:NewThing", Decimal("1.50")),
        (RDS, "RDS:GP3-Storage", Decimal("99")),
        (RDS, "Aurora:NewThing", Decimal("2.25")),
        ("Amazon Timestream", "USE1-Something", Decimal("5")),
        (S3, "TimedStorage-ByteHrs", Decimal("7")),
    ]
    got = unclassified_spend(rows)
    assert [(u.usage_type, u.family, u.amount, u.lines) for u in got] == [
        ("USE1-Something", "timestream", Decimal("5"), 1),
        ("Aurora:NewThing", "aurora", Decimal("3.75"), 2),
    ]
    everything = unclassified_spend(rows, database_only=False)
    assert everything[0].service == S3


# --- the rules file --------------------------------------------------------------------------------


def test_packaged_rules_file_validates() -> None:
    """rules.toml ships as package data and loads; every rule and prefix carries a source."""
    resource = importlib.resources.files("dbcost.attribution").joinpath("rules.toml")
    assert resource.is_file()
    rules = load_rules()
    assert isinstance(rules, RuleSet)
    assert len(rules.rules) >= 60
    assert len({r.name for r in rules.rules}) == len(rules.rules)
    assert all(r.source for r in rules.rules)
    assert all(p.source for p in rules.region_prefixes)


def test_every_rule_classifies_its_examples() -> None:
    """Each rule's examples are matched by that very rule (no earlier rule shadows it)."""
    rules = default_rules()
    for rule in rules.rules:
        assert rule.examples, f"rule {rule.name!r} has no examples"
        family = next(f for f in FAMILIES if rule.applies_to(f))
        service = _service_for(family)
        for example in rule.examples:
            got = rules.classify(service, example)
            assert got.rule == rule.name, (rule.name, example, got)
            assert got.category == rule.category


def _service_for(family: str) -> str:
    names = {
        "rds": RDS,
        "aurora": RDS,
        "dynamodb": DYNAMODB,
        "elasticache": "Amazon ElastiCache",
        "redshift": "Amazon Redshift",
        "documentdb": "Amazon DocumentDB (with MongoDB compatibility)",
        "neptune": "Amazon Neptune",
        "keyspaces": "Amazon Keyspaces (for Apache Cassandra)",
        "memorydb": "Amazon MemoryDB",
        "timestream": "Amazon Timestream",
        "other": S3,
    }
    return names[family]


MINIMAL = """
schema_version = 1
default_region = "us-east-1"

[prefix_syntax]
pattern = '[A-Z]{2,4}[0-9]?'

[[region_prefixes]]
prefix = "USE1"
region = "us-east-1"
confirmed = true
source = "test"

[[services]]
name = "Amazon DynamoDB"
family = "dynamodb"
confirmed = true
source = "test"

[[rules]]
name = "ddb-storage"
families = ["dynamodb"]
pattern = 'TimedStorage-ByteHrs'
category = "storage"
confirmed = true
source = "test"
"""


def _load(tmp_path: Path, text: str) -> RuleSet:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return load_rules(path)


def test_minimal_rules_file_loads(tmp_path: Path) -> None:
    """A small hand-written rules file loads and classifies with its own rules."""
    rules = _load(tmp_path, MINIMAL)
    assert rules.classify("Amazon DynamoDB", "USE1-TimedStorage-ByteHrs").category == "storage"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('category = "storage"', 'category = "disk"', "rule 'ddb-storage': unknown category 'disk'"),
        ('families = ["dynamodb"]', 'families = ["mongo"]', "rule 'ddb-storage': unknown family 'mongo'"),
        ('family = "dynamodb"', 'family = "cassandra"', "service 'Amazon DynamoDB': unknown family"),
        ("'TimedStorage-ByteHrs'", "'TimedStorage-(ByteHrs'", "rule 'ddb-storage': bad regex"),
        ("'TimedStorage-ByteHrs'", "'<<nope>>'", "rule 'ddb-storage': unknown fragment <<nope>>"),
        ("'TimedStorage-ByteHrs'", "'(?P<color>x)'", "rule 'ddb-storage': pattern captures unknown group"),
        ('category = "storage"', 'category = "storage"\ncolour = "red"', "rule 'ddb-storage': unknown key"),
        ('prefix = "USE1"', 'prefix = "use1"', "region prefix 'use1': does not match"),
        ("schema_version = 1", "schema_version = 2", "unsupported schema_version 2"),
        ("confirmed = true", 'confirmed = "yes"', "'confirmed' must be bool"),
    ],
)
def test_invalid_rules_file_is_a_clear_error(tmp_path: Path, old: str, new: str, message: str) -> None:
    """A broken rules file raises ConfigError naming the entry and the problem."""
    assert old in MINIMAL
    text = MINIMAL.replace(old, new)
    with pytest.raises(ConfigError, match=r"rules\.toml: ") as excinfo:
        _load(tmp_path, text)
    assert message in str(excinfo.value)


def test_duplicate_rule_name_is_rejected(tmp_path: Path) -> None:
    """Two rules with the same name are an error naming the rule."""
    rule = MINIMAL[MINIMAL.index("[[rules]]") :]
    with pytest.raises(ConfigError, match="rule 'ddb-storage': duplicate rule name"):
        _load(tmp_path, MINIMAL + rule)


def test_unreadable_or_malformed_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing file or invalid TOML is a ConfigError, chained to the underlying error."""
    with pytest.raises(ConfigError, match="cannot read rules file") as missing:
        load_rules(tmp_path / "absent.toml")
    assert isinstance(missing.value.__cause__, OSError)
    with pytest.raises(ConfigError, match="not valid TOML"):
        _load(tmp_path, "[[rules]\n")


# --- properties ------------------------------------------------------------------------------------

_PREFIXES = sorted(default_rules().prefixes)
_SERVICES = sorted({r["service"] for r in ROWS} | {"", "Amazon Timestream", "EC2 - Other"})
_BODIES = sorted({split_usage_type(r["usage_type"]).body for r in ROWS})


@given(service=st.text(), usage_type=st.text())
def test_classify_never_raises_on_arbitrary_text(service: str, usage_type: str) -> None:
    """Any pair of strings classifies to a valid family and category without raising."""
    got = classify(service, usage_type)
    assert got.family in FAMILIES
    assert got.category in CATEGORIES
    assert got.deployment is None or got.deployment in DEPLOYMENTS
    assert got.known or got.category == "other"


@given(
    service=st.sampled_from(_SERVICES),
    prefix=st.sampled_from([*_PREFIXES, ""]),
    body=st.one_of(st.sampled_from(_BODIES), st.text(max_size=40)),
)
def test_prefix_never_changes_what_a_body_is(service: str, prefix: str, body: str) -> None:
    """Adding a known region prefix changes only the region: family, category and the rest stay the same."""
    rules = default_rules()
    bare = rules.classify(service, body)
    if bare.region_prefix is not None:  # the body itself starts with something prefix-like
        return
    prefixed = rules.classify(service, f"{prefix}-{body}" if prefix else body)
    assert prefixed.region == (rules.prefixes[prefix] if prefix else "us-east-1")
    assert dataclasses.replace(
        prefixed,
        region=bare.region,
        region_prefix=None,
        peer_region=bare.peer_region,
        peer_region_prefix=bare.peer_region_prefix,
    ) == dataclasses.replace(bare)
