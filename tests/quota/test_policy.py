"""Quota policies: the TOML file read into exact Decimals, one ConfigError line per mistake, the packaged example."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from dbcost.attribution.model import Attribution, DailySpend
from dbcost.emulator.fleet import TEAMS, Fleet, units_to_decimal, unpack
from dbcost.errors import ConfigError
from dbcost.money import sum_amounts
from dbcost.quota import Policy, PoolPolicy, evaluate, example_policy_text, load_policy
from tests.quota.helpers import EXAMPLE, NOV, d, pool


def write(tmp_path: Path, text: str) -> Path:
    """``text`` as tmp_path/policy.toml."""
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path

def test_example_policy_loads() -> None:
    """the packaged example policy is valid and budgets teams of the emulator's fleet."""
    pol = load_policy(EXAMPLE)
    assert len(pol.pools) >= 6
    assert {p.team for p in pol.pools} <= set(TEAMS)
    assert all(isinstance(p.monthly_budget_usd, Decimal) for p in pol.pools)
    assert any(p.category_caps for p in pol.pools)

@pytest.mark.parametrize(("literal", "expected"), [("0.1", "0.1"), ('"0.1"', "0.1"), ("100", "100"),
                                                   ("1_000.25", "1000.25"), ("2.5e3", "2.5E+3")])
def test_budget_is_an_exact_decimal(tmp_path: Path, literal: str, expected: str) -> None:
    """TOML floats, strings and ints all become exact Decimals: 0.1 is Decimal("0.1"), never a float."""
    pol = load_policy(write(tmp_path, f'[[pool]]\nname = "x"\nteam = "a"\nmonthly_budget_usd = {literal}\n'
                                      f"warn_at = 0.7\n[pool.category_caps]\nio = 0.3\n"))
    p = pol.pools[0]
    assert p.monthly_budget_usd == Decimal(expected) and str(p.monthly_budget_usd) == expected
    assert p.warn_at == Decimal("0.7") and p.category_caps == {"io": Decimal("0.3")}

def test_python_floats_go_through_str() -> None:
    """A float given in code is converted with Decimal(str(x)): 0.1 -> Decimal("0.1")."""
    p = PoolPolicy.model_validate({"name": "x", "team": "a", "monthly_budget_usd": 0.1, "warn_at": 0.9,
                                   "category_caps": {"io": 0.2}})
    assert (p.monthly_budget_usd, p.warn_at, p.category_caps["io"]) == (Decimal("0.1"), Decimal("0.9"),
                                                                          Decimal("0.2"))

def test_defaults_and_metric_case() -> None:
    """warn_at defaults to 0.8, metric to UnblendedCost; a metric name is matched case-insensitively."""
    p = pool()
    assert p.warn_at == Decimal("0.8") and p.metric == "UnblendedCost" and p.category_caps == {}
    assert pool(metric="amortizedcost").metric == "AmortizedCost"

GOOD = '[[pool]]\nname = "a"\nteam = "a"\nmonthly_budget_usd = 1\n'

@pytest.mark.parametrize(
    ("text", "where"),
    [
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\nbudget = 5\n',
         "pool #2 'b': budget: unknown key"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = -5\n',
         "pool #2 'b': monthly_budget_usd: must be greater than 0, got -5"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 0\n',
         "pool #2 'b': monthly_budget_usd: must be greater than 0"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = "12,50"\n',
         "pool #2 'b': monthly_budget_usd: amount '12,50' is not a plain decimal number"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = nan\n',
         "pool #2 'b': monthly_budget_usd: amount 'NaN' is not a plain decimal number"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = true\n',
         "pool #2 'b': monthly_budget_usd: must be a number or a decimal string, got bool"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\n[pool.category_caps]\ngpu = 3\n',
         "pool #2 'b': category_caps: unknown category 'gpu'"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\n[pool.category_caps]\nshared = 3\n',
         "pool #2 'b': category_caps: unknown category 'shared'"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\n[pool.category_caps]\nio = -3\n',
         "pool #2 'b': category_caps: io: must be greater than 0, got -3"),
        (GOOD + '[[pool]]\nname = "a"\nteam = "b"\nmonthly_budget_usd = 1\n',
         "pool #2 'a': name: duplicate pool name (already used by pool #1)"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\nwarn_at = 1.5\n',
         "pool #2 'b': warn_at: must be > 0 and <= 1, got 1.5"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\nwarn_at = 0\n',
         "pool #2 'b': warn_at: must be > 0 and <= 1, got 0"),
        (GOOD + '[[pool]]\nname = "b"\nteam = "b"\nmonthly_budget_usd = 1\nmetric = "UsageQuantity"\n',
         "pool #2 'b': metric: unknown cost metric 'UsageQuantity'"),
        (GOOD + '[[pool]]\nname = "b"\nmonthly_budget_usd = 1\n', "pool #2 'b': team: required"),
        (GOOD + '[[pool]]\nteam = "b"\nmonthly_budget_usd = 1\n', "pool #2 (no name): name: required"),
        (GOOD + '[[pool]]\nname = "b c"\nteam = "b"\nmonthly_budget_usd = 1\n', "pool #2 'b c': name: must be"),
        ('[pool]\nname = "a"\n', "pool: write each pool as [[pool]]"),
        ("# nothing\n", "no pools"),
        (GOOD + "[defaults]\nwarn_at = 0.5\n", "unknown top-level key 'defaults'"),
        (GOOD + "[[pool]\n", "not valid TOML"),
    ],
)
def test_bad_policy_is_one_config_error_line(tmp_path: Path, text: str, where: str) -> None:
    """Each kind of bad policy is one ConfigError line naming the file, the pool (index, name) and the field."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"policy {path}: ")
    assert where in message

def test_unreadable_policy(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming it."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"^policy .*nope\.toml: cannot read: No such file"):
        load_policy(missing)

def test_several_errors_in_one_pool_are_counted(tmp_path: Path) -> None:
    """Only the first error is spelled out; the line says how many more there are."""
    with pytest.raises(ConfigError, match=r"pool #1 'x': team: required \(and 1 more error\)$"):
        load_policy(write(tmp_path, '[[pool]]\nname = "x"\nmonthly_budget_usd = -1\n'))

def test_policy_models_are_frozen_and_unique() -> None:
    """Policy objects are immutable, and building one in code also refuses duplicate pool names."""
    p = pool()
    with pytest.raises(ValueError, match="frozen"):
        p.team = "b"  # type: ignore[misc]
    with pytest.raises(ValueError, match="duplicate pool name 'p'"):
        Policy(pools=(pool(), pool()))
    with pytest.raises(ValueError, match="at least 1"):
        Policy(pools=())

def test_example_policy_gives_a_mix_of_statuses_on_the_fleet() -> None:
    """On the emulator's default fleet (2026-11-28, database spend by team tag) the example policy yields
    OK, WARN and BREACH pools."""
    today = d(28)
    fleet = Fleet(seed=7, clusters=240, accounts=6, anchor=today)
    category_of = {"transfer": "data_transfer"}
    rows: list[DailySpend] = []
    day = d(1)
    while day < today:
        item = fleet.day(day)
        for tid, packed in zip(item.tids, item.packed, strict=True):
            line = fleet.lines[tid]
            team = line.tags.get("team")
            if line.cluster is None or team is None:
                continue
            rows.append(DailySpend(day, team, category_of.get(line.category, line.category),
                                   units_to_decimal(unpack(packed)[0]), False))
        day += dt.timedelta(days=1)
    attr = Attribution(month=NOV, metric="UnblendedCost", total=sum_amounts(r.amount for r in rows),
                       unattributed=Decimal(0), teams=[], daily=rows)
    report = evaluate(load_policy(EXAMPLE), attr, today=today)
    statuses = {p.pool: p.status for p in report.pools}
    assert set(statuses.values()) == {"OK", "WARN", "BREACH"}, statuses


def test_example_policy_text_is_the_packaged_file() -> None:
    """example_policy_text() is the example file shipped beside dbcost.quota.policy, byte for byte."""
    assert example_policy_text() == EXAMPLE.read_text(encoding="utf-8")
    assert "[[pool]]" in example_policy_text()
