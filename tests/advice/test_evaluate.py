"""Each advisory rule at its boundary, with values: exact Decimal savings from the formulas of rules.toml, nothing
below the break-even, untagged spend said so, idle superseding compute advice, the savings floor and the order."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from dbcost.advice import AdviceOptions, Advisory, ClusterFacts, UsageLine, Window, evaluate

D = Decimal
D0 = dt.date(2026, 10, 1)
OCTOBER = Window("2026-10", D0, dt.date(2026, 11, 1))
RDS = "Amazon Relational Database Service"
CACHE = "Amazon ElastiCache"
DDB = "Amazon DynamoDB"
DOCDB = "Amazon DocumentDB (with MongoDB compatibility)"
TINY = D("1E-10")
FACTS = {"db-1": ClusterFacts("payments", "prod", "111122223333"),
         "db-2": ClusterFacts("search", "staging", "444455556666")}


def daily(usage_type: str, per_day: str | Decimal, *, cluster: str = "db-1", service: str = RDS, days: int = 31,
          start: dt.date = D0) -> list[UsageLine]:
    """One line per day of ``per_day`` for ``days`` days from ``start``."""
    return [UsageLine(start + dt.timedelta(days=i), service, usage_type, cluster, D(per_day)) for i in range(days)]


def one(usage_type: str, amount: str | Decimal, *, cluster: str = "db-1", service: str = RDS,
        day: dt.date = D0) -> list[UsageLine]:
    return [UsageLine(day, service, usage_type, cluster, D(amount))]


def advise(lines: list[UsageLine], window: Window = OCTOBER, **options: object) -> list[Advisory]:
    return evaluate(lines, FACTS, window, options=AdviceOptions(**options))  # type: ignore[arg-type]


def kinds(found: list[Advisory]) -> list[str]:
    return [a.kind for a in found]


# ---------------------------------------------------------------------------------------------- extended-support

def test_extended_support_saves_the_cost_of_the_usage_and_names_engine_and_version() -> None:
    """ExtendedSupport:Yr1-Yr2:PostgreSQL12 at 4.8/day for 31 days: savings = monthly cost = 148.8, eu-west-2."""
    (a,) = advise(daily("EUW2-ExtendedSupport:Yr1-Yr2:PostgreSQL12", "4.8"))
    assert (a.kind, a.cluster, a.team, a.account, a.region) == ("extended-support", "db-1", "payments",
                                                                "111122223333", "eu-west-2")
    assert a.savings == a.monthly_cost == D("148.8")
    assert "PostgreSQL 12" in a.action and "Yr1-Yr2" in a.action
    assert a.evidence["engine"] == "PostgreSQL" and a.evidence["version"] == "12"


def test_extended_support_of_one_version_across_years_is_one_advisory_and_nothing_costs_nothing() -> None:
    """Yr1-Yr2 and Yr3 lines of MySQL 5.7 sum into one advisory; another version is another; no cost, no advice."""
    lines = (daily("ExtendedSupport:Yr1-Yr2:MySQL5.7", "1", days=10)
             + daily("ExtendedSupport:Yr3:MySQL5.7", "2", days=21, start=D0 + dt.timedelta(days=10))
             + daily("ExtendedSupport:Yr3:MySQL8.0", "0.5", cluster="db-2"))
    found = advise(lines)
    assert [(a.cluster, a.subject, a.savings) for a in found] == [("db-1", "MySQL5.7", D(52)),
                                                                  ("db-2", "MySQL8.0", D("15.5"))]
    assert found[0].evidence["years"] == ["Yr1-Yr2", "Yr3"]
    assert advise(one("ExtendedSupport:Yr3:MySQL5.7", "0")) == []
    assert advise(one("ExtendedSupport:Yr3:MySQL5.7", "-1")) == []  # a credit is not a saving


def test_elasticache_extended_support_names_the_node_type() -> None:
    """The ElastiCache usage type names the node type, not the engine version: the advisory says so."""
    (a,) = advise(daily("EU-ExtendedSupportYr1_Yr2-NodeUsage:cache.r6g.xlarge", "2.5", service=CACHE))
    assert (a.subject, a.region, a.savings) == ("cache.r6g.xlarge", "eu-west-1", D("77.5"))
    assert "cache.r6g.xlarge" in a.action and "ElastiCache for Redis OSS" in a.action


def test_untagged_extended_support_is_advised_with_an_empty_cluster_that_says_so() -> None:
    """Spend without a cluster tag: cluster, team and account are "" and the action says it has no tag."""
    (a,) = advise(daily("ExtendedSupport:Yr3:PostgreSQL11", "1", cluster=""))
    assert (a.cluster, a.team, a.account, a.region) == ("", "", "", "us-east-1")
    assert a.action.startswith("Spend without a db-cluster tag (Amazon Relational Database Service, us-east-1")
    assert a.evidence["untagged"] is True
    # the rules that compare a cluster with itself do not judge the lump of untagged spend
    lump = one("InstanceUsage:db.r6g.large", "1", cluster="") + one("Aurora:StorageIOUsage", "1000", cluster="")
    assert advise(lump) == []


# ------------------------------------------------------------------------------------------- aurora-io-optimized

def _standard(compute: str, storage: str, io: str) -> list[UsageLine]:
    return (one("InstanceUsage:db.r6g.large", compute) + one("Aurora:StorageUsage", storage)
            + one("Aurora:StorageIOUsage", io) + one("Aurora:BackupUsage", "999"))


def test_aurora_standard_at_the_break_even_gets_no_advice_and_just_above_gets_the_difference() -> None:
    """C = 100, S = 40: break-even IO = 0.30 C + 1.25 S = 80. IO = 80: nothing; 80 + 1e-10: savings 1e-10;
    IO = 200: savings = 120, monthly cost = IO + C + S (backup is not part of it)."""
    assert advise(_standard("100", "40", "80")) == []
    (a,) = advise(_standard("100", "40", str(80 + TINY)))
    assert a.savings == TINY and a.subject == "standard-to-io-optimized"
    (b,) = advise(_standard("100", "40", "200"))
    assert (b.savings, b.monthly_cost) == (D(120), D(340))
    assert b.evidence["threshold"] == "80" and "I/O-Optimized" in b.action


def test_aurora_serverless_capacity_counts_as_compute() -> None:
    """Aurora:ServerlessV2Usage is compute C of the formula: ACUs cost 30 % more on I/O-Optimized too."""
    lines = one("Aurora:ServerlessV2Usage", "100") + one("Aurora:StorageUsage", "40") + one("Aurora:StorageIOUsage", "81")
    (a,) = advise(lines)
    assert a.savings == D(1)


def _switched(io_per_day: str) -> list[UsageLine]:
    """Standard for 10 days (I/O io_per_day a day), then I/O-Optimized for 21 days at C' = 13/day, S' = 2.25/day."""
    switch = D0 + dt.timedelta(days=10)
    return (daily("InstanceUsage:db.r6g.large", "10", days=10) + daily("Aurora:StorageUsage", "1", days=10)
            + daily("Aurora:StorageIOUsage", io_per_day, days=10)
            + daily("InstanceUsageIOOptimized:db.r6g.large", "13", days=21, start=switch)
            + daily("Aurora:IO-OptimizedStorageUsage", "2.25", days=21, start=switch))


def test_aurora_moved_to_io_optimized_with_little_io_is_advised_back_to_standard() -> None:
    """The reverse: C' = 273, S' = 47.25 over 21 days, IO 1/day on the 10 Standard days -> estimated 21:
    Standard would cost 273/1.30 + 47.25/2.25 + 21 = 252, savings 68.25. At 4.25/day the estimate is 89.25 and
    the savings exactly 0: no advice; at 4.2499999999 a little."""
    (a,) = advise(_switched("1"))
    assert (a.subject, a.savings, a.monthly_cost) == ("io-optimized-to-standard", D("68.25"), D("320.25"))
    assert a.evidence["standard_days"] == 10 and a.evidence["optimized_days"] == 21
    assert advise(_switched("4.25")) == []
    (b,) = advise(_switched("4.2499999999"))
    assert b.savings == D("0.0000000021")


def test_aurora_io_optimized_all_month_shows_no_io_and_gets_no_advice() -> None:
    """An I/O-Optimized cluster bills no I/O: with no Standard day in the window nothing shows the reverse."""
    lines = daily("InstanceUsageIOOptimized:db.r6g.large", "13") + daily("Aurora:IO-OptimizedStorageUsage", "9")
    assert advise(lines) == []


# --------------------------------------------------------------------------------------------- multi-az-non-prod

def _multi_az(cluster: str) -> list[UsageLine]:
    return (daily("Multi-AZUsage:db.r6g.large", "10.8", cluster=cluster)
            + daily("RDS:Multi-AZ-GP3-Storage", "2", cluster=cluster)
            + daily("RDS:ChargedBackupUsage", "5", cluster=cluster))


def test_multi_az_outside_production_saves_half_the_multi_az_usage() -> None:
    """db-2 is env=staging: savings = 0.50 x (334.8 + 62) = 198.4; backup is not Multi-AZ usage; db-1 (prod): none."""
    (a,) = advise(_multi_az("db-1") + _multi_az("db-2"))
    assert (a.kind, a.cluster, a.savings, a.monthly_cost) == ("multi-az-non-prod", "db-2", D("198.4"), D("396.8"))
    assert a.evidence["env"] == "staging" and "single-AZ" in a.action


def test_the_non_production_values_and_the_env_tag_are_options() -> None:
    """--non-prod decides (compared case-insensitively); a cluster without an env value is never advised."""
    lines = _multi_az("db-2")
    assert advise(lines, non_prod=("qa",)) == []
    assert kinds(advise(lines, non_prod=("STAGING",))) == ["multi-az-non-prod"]
    facts = {"db-2": ClusterFacts("search", "", "444455556666")}
    assert evaluate(lines, facts, OCTOBER) == []
    (a,) = advise(lines, env_tag="stage")
    assert a.evidence["env_tag"] == "stage" and "stage=staging" in a.action


# ------------------------------------------------------------------------------------ graviton / previous-generation

def test_graviton_saves_one_minus_the_price_ratio() -> None:
    """db.m5.large -> db.m6g.large at 0.89: 100 of instance hours save 11; cache.r5 at 0.95 saves 5; a
    Graviton class, a reserved-instance fee or an Oracle class with suffixes: no advice."""
    found = advise(one("InstanceUsage:db.m5.large", "100") + one("NodeUsage:cache.r5.large", "100", service=CACHE,
                                                                   cluster="db-2"))
    assert [(a.kind, a.subject, a.savings, a.evidence["target_class"]) for a in found] == [
        ("graviton", "db.m5.large", D(11), "db.m6g.large"), ("graviton", "cache.r5.large", D(5), "cache.r6g.large")]
    assert advise(one("InstanceUsage:db.m6g.large", "100") + one("HeavyUsage:db.m5.large", "100")
                  + one("InstanceUsage:db.r5.2xlarge.tpc2.mem4x", "100")) == []


def test_previous_generation_classes_move_to_the_current_generation() -> None:
    """db.m4.large -> db.m6g.large at 0.87 (13 saved of 100); Multi-AZ hours of db.t2.medium too (0.95), beside
    the staging cluster's Multi-AZ advice (the two overlap: each is stated on its own)."""
    found = advise(one("InstanceUsage:db.m4.large", "100") + one("Multi-AZUsage:db.t2.medium", "40", cluster="db-2"))
    assert [(a.kind, a.subject, a.savings) for a in found] == [("multi-az-non-prod", "multi-az", D(20)),
                                                               ("previous-generation", "db.m4.large", D(13)),
                                                               ("previous-generation", "db.t2.medium", D(2))]
    assert "previous generation" in found[1].action


# --------------------------------------------------------------------------------------- dynamodb-capacity-mode

def test_dynamodb_on_demand_at_the_break_even_gets_no_advice() -> None:
    """Provisioned = peak x days x 0.00013 x 24 / (0.000000125 x 86400 x 0.70) = peak x days x 26/63. Over 21
    days with a busiest day of 3 that is 26: on-demand reads of exactly 26 save nothing; 1e-10 more saves 1e-10."""
    window = Window("2026-10", D0, D0 + dt.timedelta(days=21))
    at_break_even = daily("ReadRequestUnits", "3", service=DDB, days=8) + one(
        "ReadRequestUnits", "2", service=DDB, day=D0 + dt.timedelta(days=8))
    assert advise(at_break_even, window) == []
    above = [*at_break_even, *one("ReadRequestUnits", TINY, service=DDB, day=D0 + dt.timedelta(days=9))]
    (a,) = advise(above, window)
    assert (a.kind, a.savings, a.monthly_cost) == ("dynamodb-capacity-mode", TINY, 26 + TINY)
    assert a.evidence["read"]["provisioned_estimate"] == "26" and a.evidence["assumptions"]


def test_dynamodb_steady_traffic_is_advised_and_bursty_or_short_windows_are_not() -> None:
    """Reads 1/day and writes 5/day all month: provisioned = 31 x 26/63 of each, savings = 186 - 76.761904... =
    rounded once per direction; a busy day at 12x a week's quiet ones: none; fewer than 7 days: none."""
    steady = daily("ReadRequestUnits", "1", service=DDB) + daily("USE1-WriteRequestUnits", "5", service=DDB)
    (a,) = advise(steady)
    read, write = D("12.7936507937"), D("63.9682539683")  # 31 x 26/63 and 5 x that, each rounded to 10 places
    assert a.savings == D(186) - read - write
    bursty = [UsageLine(D0 + dt.timedelta(days=i), DDB, "ReadRequestUnits", "db-1", D(12 if i % 7 == 0 else 1))
              for i in range(31)]
    assert advise(bursty) == []
    assert advise(steady, Window("2026-10", D0, D0 + dt.timedelta(days=6))) == []
    assert advise(daily("IA-ReadRequestUnits", "1", service=DDB)) == []  # Standard-IA has other prices


# ----------------------------------------------------------------------------------------------------------- idle

def _aurora_idle(compute_per_day: str = "10", *, days: int = 31) -> list[UsageLine]:
    return daily("InstanceUsage:db.r6g.large", compute_per_day, days=days) + daily("Aurora:StorageUsage", "1")


def test_an_aurora_cluster_with_steady_compute_and_no_io_is_idle() -> None:
    """Compute every day, no I/O, no transfer: savings = the compute (310), monthly cost = everything (341)."""
    (a,) = advise(_aurora_idle())
    assert (a.kind, a.savings, a.monthly_cost) == ("idle", D(310), D(341))
    assert a.evidence["days"] == 31 and "final snapshot" in a.action


def test_any_io_transfer_or_missing_compute_day_means_not_idle() -> None:
    """1e-10 of I/O or of data transfer, or a day without compute while storage is billed: not idle."""
    assert advise(_aurora_idle() + one("Aurora:StorageIOUsage", TINY)) == []
    assert advise(_aurora_idle() + one("DataTransfer-Out-Bytes", TINY)) == []
    assert advise(_aurora_idle(days=30)) == []


def test_idle_needs_steady_compute_at_the_ratio_boundary() -> None:
    """The smallest compute day must be >= 0.90 x the largest: 9 vs 10 is idle, 8.9999999999 vs 10 is not."""
    base = _aurora_idle()
    assert kinds(advise([*base[1:], *one("InstanceUsage:db.r6g.large", "9")])) == ["idle"]
    assert advise([*base[1:], *one("InstanceUsage:db.r6g.large", "8.9999999999")]) == []


def test_idle_is_judged_only_where_io_is_billed_per_request() -> None:
    """RDS gp3 bills no I/O request: an RDS cluster without I/O lines is not idle; DocumentDB's StorageUsage is."""
    rds = daily("InstanceUsage:db.r6g.large", "10") + daily("RDS:GP3-Storage", "1")
    assert advise(rds) == []
    docdb = daily("InstanceUsage:db.r6g.large", "10", service=DOCDB) + daily("StorageUsage", "1", service=DOCDB)
    assert kinds(advise(docdb)) == ["idle"]


def test_idle_supersedes_the_clusters_compute_advice_but_not_extended_support() -> None:
    """An idle db.r5 cluster: idle replaces graviton (deleting it saves more), Extended Support stays."""
    lines = (daily("InstanceUsage:db.r5.large", "10") + daily("Aurora:StorageUsage", "1")
             + daily("ExtendedSupport:Yr3:PostgreSQL11", "2"))
    assert sorted(kinds(advise(lines))) == ["extended-support", "idle"]


# ------------------------------------------------------------------------------------------- options and order

def test_the_savings_floor_keeps_advice_at_or_above_it() -> None:
    """--min-savings-usd 11 keeps a saving of exactly 11 and drops 10.9999999999."""
    lines = one("InstanceUsage:db.m5.large", "100") + one("InstanceUsage:db.m5.large", "99.999999999", cluster="db-2")
    assert [a.cluster for a in advise(lines, min_savings=D(11))] == ["db-1"]
    assert [a.cluster for a in advise(lines)] == ["db-1", "db-2"]


def test_advice_is_sorted_by_savings_and_does_not_depend_on_row_order() -> None:
    """Largest savings first; shuffled rows give the same advisories."""
    lines = (daily("ExtendedSupport:Yr3:MySQL5.7", "1") + _multi_az("db-2")
             + one("InstanceUsage:db.m5.large", "100", cluster="db-3"))
    found = advise(lines)
    assert [a.savings for a in found] == sorted((a.savings for a in found), reverse=True)
    random.Random(7).shuffle(lines)
    assert advise(lines) == found
