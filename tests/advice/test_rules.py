"""The advisory rules file: the packaged rules load and say where every number comes from; every mistake in a
rules file is one ConfigError line naming the file and the rule."""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest

from dbcost.advice import KINDS, default_advice_rules, load_advice_rules
from dbcost.errors import ConfigError

PACKAGED = resources.files("dbcost.advice").joinpath("rules.toml").read_text(encoding="utf-8")

MINIMAL = '''schema_version = 1

[[rules]]
name = "es"
kind = "extended-support"
services = ["rds"]
pattern = 'ExtendedSupport:(?P<years>Yr[0-9A-Za-z-]+):(?P<engine>[A-Za-z]+)(?P<version>[0-9.]+)'
examples = ["USE1-ExtendedSupport:Yr1-Yr2:PostgreSQL12"]
formula = "savings = cost"
untagged = true
confirmed = true
source = "test"
'''


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_packaged_rules_cover_every_kind_with_formula_and_source() -> None:
    """Every kind of issue 10 has a rule; each rule states its formula and source and is marked confirmed or not."""
    rules = default_advice_rules()
    assert {r.kind for r in rules.rules} == set(KINDS)
    assert KINDS == ("extended-support", "aurora-io-optimized", "multi-az-non-prod", "graviton",
                     "previous-generation", "dynamodb-capacity-mode", "idle")
    for r in rules.rules:
        assert r.formula and r.source and r.examples, r.name
        for mapping in r.classes.values():
            assert mapping.source and Decimal(0) < mapping.ratio < Decimal(1), (r.name, mapping.family)
    inferred = {r.name for r in rules.rules if not r.confirmed}
    assert {"graviton", "previous-generation", "aurora-storage-configuration", "dynamodb-on-demand-to-provisioned",
            "idle-cluster"} <= inferred


def test_the_issue_formulas_are_the_packaged_numbers() -> None:
    """aurora: 0.30 x compute + 1.25 x storage; multi-az: 50 %; the DynamoDB prices quoted in the source."""
    rules = default_advice_rules()
    (aurora,) = rules.of_kind("aurora-io-optimized")
    assert (aurora.decimal("compute_uplift"), aurora.decimal("storage_uplift")) == (Decimal("0.30"), Decimal("1.25"))
    (maz,) = rules.of_kind("multi-az-non-prod")
    assert maz.decimal("share") == Decimal("0.50")
    (ddb,) = rules.of_kind("dynamodb-capacity-mode")
    # the break-even utilisation "roughly 30 %" of the facts: an RCU-hour / 3600 read request units
    ratio = ddb.decimal("read_capacity_price") / (3600 * ddb.decimal("read_price"))
    assert ratio == ddb.decimal("write_capacity_price") / (3600 * ddb.decimal("write_price"))
    assert Decimal("0.28") < ratio < Decimal("0.30")


def test_a_class_family_is_advised_by_one_rule_only() -> None:
    """graviton and previous-generation never both advise one line: their class tables are disjoint."""
    rules = default_advice_rules()
    (g,), (p,) = rules.of_kind("graviton"), rules.of_kind("previous-generation")
    assert not set(g.classes) & set(p.classes)
    assert {"db.m5", "db.r5", "cache.r5"} <= set(g.classes)
    assert {"db.m4", "db.r4", "db.t2", "cache.m4"} <= set(p.classes)


def test_a_minimal_file_loads(tmp_path: Path) -> None:
    """One rule with the keys its kind needs is a valid rules file."""
    rules = load_advice_rules(write(tmp_path, MINIMAL))
    assert [r.name for r in rules.rules] == ["es"]
    assert rules.origin == f"--rules {tmp_path / 'rules.toml'}"


@pytest.mark.parametrize(("change", "fragment"), [
    (('kind = "extended-support"', 'kind = "cheaper-please"'),
     r"rule 'es': unknown kind 'cheaper-please' \(known: extended-support, aurora-io-optimized,"),
    (("pattern = 'Ext", "pattern = '(Ext"), "rule 'es': bad regex in 'pattern'"),
    (('examples = ["USE1-ExtendedSupport:Yr1-Yr2:PostgreSQL12"]', 'examples = ["InstanceUsage:db.r5.large"]'),
     "example 'InstanceUsage:db.r5.large' does not match the pattern"),
    (("services = [\"rds\"]", "services = [\"mainframe\"]"), r"unknown service famil\(ies\) mainframe"),
    (("untagged = true\n", "untagged = true\ncolour = \"red\"\n"), "unknown key\\(s\\) 'colour'"),
    (("formula = \"savings = cost\"\n", ""), "missing key 'formula'"),
    (("(?P<engine>[A-Za-z]+)(?P<version>[0-9.]+)", "[A-Za-z0-9.]+"),
     "needs a pattern capturing .* engine\\+version or instance_class"),
    (("schema_version = 1", "schema_version = 2"), "unsupported schema_version 2"),
])
def test_a_mistake_is_one_config_error_naming_the_rule(tmp_path: Path, change: tuple[str, str], fragment: str) -> None:
    """An unknown kind, a bad regex, an example that does not match, an unknown family or key, a missing key, a
    pattern without its kind's captures, another schema: one ConfigError line naming the file and the rule."""
    assert change[0] in MINIMAL
    path = write(tmp_path, MINIMAL.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_advice_rules(path)
    message = str(info.value)
    assert re.search(fragment, message), message
    assert message.startswith(f"--rules {path}: ") and "\n" not in message


def _packaged_with(old: str, new: str) -> str:
    assert old in PACKAGED
    return PACKAGED.replace(old, new, 1)


@pytest.mark.parametrize(("old", "new", "fragment"), [
    ('compute_uplift = "0.30"', "compute_uplift = 0.30", "must be a decimal string like \"0.30\""),
    ('share = "0.50"', 'share = "1.5"', "'share' must be > 0 and <= 1"),
    ('share = "0.50"', 'share = "half"', "'share': 'half' is not a decimal number"),
    ('storage_uplift = "1.25"\n', "", "missing parameter 'storage_uplift'"),
    ("min_days = 7\nsupersedes", "min_days = 0\nsupersedes", "'min_days' must be an integer >= 1"),
    ('supersedes = ["graviton"', 'supersedes = ["gravitas"', "unknown kind\\(s\\) gravitas"),
    ('family = "db.m4"', 'family = "db.m5"', "class family 'db.m5' is already advised by rule 'graviton'"),
    ('to = "db.m6g"\nratio = "0.89"', 'to = "cache.m6g"\nratio = "0.89"', "are not the same service's classes"),
    ('ratio = "0.89"', 'ratio = "0"', "'ratio' must be > 0 and <= 1"),
])
def test_a_bad_parameter_is_one_config_error(tmp_path: Path, old: str, new: str, fragment: str) -> None:
    """Numbers are exact decimal strings in range; every kind's parameters are there; a class family has one rule."""
    path = write(tmp_path, _packaged_with(old, new))
    with pytest.raises(ConfigError) as info:
        load_advice_rules(path)
    assert re.search(fragment, str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_or_broken_file_is_one_config_error(tmp_path: Path) -> None:
    """No such file, not TOML, no rules: one line each."""
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_advice_rules(tmp_path / "nope.toml")
    assert "\n" not in str(info.value)
    for text, fragment in (("[[rules", "not valid TOML"), ("schema_version = 1\n", "missing key 'rules'")):
        with pytest.raises(ConfigError, match=fragment) as info:
            load_advice_rules(write(tmp_path, text))
        assert "\n" not in str(info.value)


def test_the_packaged_file_is_valid_toml_with_sources_for_each_key() -> None:
    """Every source key a rule cites is defined in the file's header."""
    data = tomllib.loads(PACKAGED)
    header = PACKAGED.split("schema_version")[0]
    keys = set(re.findall(r"^#   ([A-Z][A-Z0-9-]+) ", header, re.MULTILINE))
    assert {"CE-REPORT", "PRICE-LIST", "AURORA-IOOPT", "DB-PRICES", "DDB-PRICES", "FACTS"} <= keys
    for rule in data["rules"]:
        cited = set(re.findall(r"\b([A-Z][A-Z]+(?:-[A-Z]+)+)\b", rule["source"]))
        assert cited <= keys, (rule["name"], cited - keys)
