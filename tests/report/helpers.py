"""Builders and readers shared by the report tests (kept out of conftest so tests import them by name).

``small_data()`` is a hand-made three-month report whose figures are worked out in the tests;
``realistic_data()`` is a larger, seeded one (six months, eight teams) that the browser test screenshots.
``quota_pool()`` and ``quota_report()`` build the typed quota objects a report carries.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from rich.console import Console

from dbcost.attribution.model import (
    SHARED_CLUSTER,
    UNATTRIBUTED,
    Attribution,
    ClusterSpend,
    DailySpend,
    TeamSpend,
    UnclassifiedSpend,
)
from dbcost.money import sum_amounts
from dbcost.quota import PoolEvaluation, QuotaReport, Status
from dbcost.report import Freshness, ReportData, render_table

D = Decimal
HOSTILE_TEAM = "<script>alert(1)</script>"
HOSTILE_CLUSTER = "\"&'"
GENERATED = dt.datetime(2024, 6, 3, 8, 30, tzinfo=dt.UTC)

# ------------------------------------------------------------------------------------------------ builders


def cluster(name: str, *, source: str = "tag", families: tuple[str, ...] = ("rds",), **cats: str) -> ClusterSpend:
    """A cluster whose amount is the exact sum of its categories."""
    amounts = {c: D(v) for c, v in cats.items()}
    return ClusterSpend(name, sum_amounts(amounts.values()), amounts, families, source)


def team(name: str, *clusters: ClusterSpend) -> TeamSpend:
    """A team whose amount is the exact sum of its clusters."""
    return TeamSpend(name, sum_amounts(c.amount for c in clusters), tuple(clusters))


def attribution(month: str, teams: list[TeamSpend], unattributed: list[ClusterSpend] | None = None, *,
                unclassified: list[UnclassifiedSpend] | None = None, estimated: str = "0") -> Attribution:
    """A consistent Attribution (passes ``check()``): totals, shared and daily rows derived from the parts."""
    unatt = unattributed or []
    day = dt.date.fromisoformat(f"{month}-01")
    daily = [DailySpend(day, t.team, cat, amount, estimated=False)
             for t in teams for c in t.clusters for cat, amount in c.categories.items()]
    daily += [DailySpend(day, UNATTRIBUTED, cat, amount, estimated=False)
              for c in unatt for cat, amount in c.categories.items()]
    unatt_total = sum_amounts(c.amount for c in unatt)
    att = Attribution(
        month=month, metric="UnblendedCost",
        total=sum_amounts([*(t.amount for t in teams), unatt_total]),
        unattributed=unatt_total, teams=teams, unclassified_usage_types=unclassified or [],
        unattributed_clusters=unatt, daily=daily, estimated_amount=D(estimated),
        allocated_shared=sum_amounts(c.amount for t in teams for c in t.clusters if c.cluster == SHARED_CLUSTER),
        services=["Amazon Relational Database Service"], through=day + dt.timedelta(days=27),
    )
    att.check()
    return att


def small_history() -> list[Attribution]:
    """March, April, May 2024: payments grows, search shrinks, analytics and warehouse are new in May,
    legacy-db is gone in May, pay-replica is unchanged."""
    march = attribution("2024-03", [team("payments", cluster("pay-main", compute="900")),
                                    team("search", cluster("search-pg", compute="700"))],
                        [cluster("orphan-db", source="none", other="50")])
    april = attribution("2024-04", [
        team("payments", cluster("pay-main", compute="1000", storage="300", io="40"),
             cluster("pay-replica", compute="400")),
        team("search", cluster("search-pg", compute="900", backup="20"), cluster("legacy-db", compute="60")),
    ], [cluster("orphan-db", source="none", compute="100")])
    may = attribution("2024-05", [
        team("payments", cluster("pay-main", compute="1200.50", storage="300.25", io="45.125"),
             cluster("pay-replica", compute="400"), cluster(SHARED_CLUSTER, shared="50")),
        team("search", cluster("search-pg", compute="800", backup="20")),
        team("analytics", cluster("warehouse", families=("redshift",), compute="500.0000000001", storage="99.99")),
    ], [cluster("orphan-db", source="none", compute="75.5", other="4.5")],
        unclassified=[UnclassifiedSpend("Amazon Relational Database Service", "USE1-Mystery:Thing", D("4.5"))],
        estimated="100.00")
    return [march, april, may]


def spread_month(month: str, team_name: str, per_day: str, days: int) -> Attribution:
    """One team, one cluster, ``per_day`` of compute on each of the month's first ``days`` days (data through the
    day after), so month-to-date figures can be worked out by hand."""
    first = dt.date.fromisoformat(f"{month}-01")
    amount = D(per_day)
    c = cluster(f"{team_name}-db", compute=str(amount * days))
    t = team(team_name, c)
    att = Attribution(month=month, metric="UnblendedCost", total=c.amount, unattributed=D(0), teams=[t],
                      daily=[DailySpend(first + dt.timedelta(days=i), team_name, "compute", amount, False)
                             for i in range(days)],
                      services=["Amazon Relational Database Service"], through=first + dt.timedelta(days=days))
    att.check()
    return att


def small_data(**overrides: Any) -> ReportData:
    """May 2024 of ``small_history()`` against April, with quarantine and freshness rows; fields overridable."""
    history = small_history()
    fields: dict[str, Any] = {
        "month": "2024-05", "current": history[-1], "previous": history[-2], "history": history,
        "quarantined_total": 7, "quarantined_by_reason": [("amount 'NaN' is not a plain decimal number", 5),
                                                          ("group has no Keys", 2)],
        "freshness": [Freshness("prod", "cost-explorer daily", dt.datetime(2024, 6, 3, 6, 0, tzinfo=dt.UTC),
                                dt.date(2024, 6, 2)),
                      Freshness("staging", "cost-explorer daily", None, None)],
        "generated_at": GENERATED, "quota": None,
    }
    fields.update(overrides)
    return ReportData(**fields)


_TEAMS = {
    "payments": ["payments-pg-main", "payments-aurora-ledger", "payments-redis-sessions"],
    "search": ["search-opensearch-prod", "search-docdb-catalog"],
    "identity": ["identity-aurora-users", "identity-dynamo-tokens", "identity-pg-audit"],
    "analytics": ["analytics-redshift-dw", "analytics-aurora-etl"],
    "checkout": ["checkout-pg-orders", "checkout-redis-cart", "checkout-aurora-inventory"],
    "platform-data": ["platform-kafka-offsets-pg", "platform-mysql-legacy"],
    "growth": ["growth-pg-experiments"],
    "ml-features": ["ml-feature-store-dynamo", "ml-vector-aurora"],
}
_SHAPES = {"compute": 55, "storage": 20, "io": 10, "backup": 6, "data_transfer": 6, "other": 3}


def realistic_history(months: int = 6, seed: int = 7) -> list[Attribution]:
    """Six months of a plausible fleet: eight teams (one new in month 4), shared spend, orphans, estimates."""
    rng = random.Random(seed)
    base = {name: rng.randint(3, 40) * 1000 for name in _TEAMS}
    out = []
    for i in range(months):
        month = f"2025-{i + 1:02d}"
        teams = []
        for name, clusters in _TEAMS.items():
            if name == "ml-features" and i < 3:
                continue
            growth = 1 + 0.06 * i if name != "search" else 1 - 0.05 * i
            parts = []
            for k, cname in enumerate(clusters):
                weight = base[name] * growth / (k + 1) / 2
                cats = {cat: str(D(int(weight * share * rng.uniform(0.9, 1.1) * 10_000)).scaleb(-6))
                        for cat, share in _SHAPES.items() if cat not in ("io", "other") or rng.random() > 0.2}
                parts.append(cluster(cname, families=(cname.split("-")[1],), **cats))
            parts.append(cluster(SHARED_CLUSTER, source="allocation", shared=str(D(rng.randint(20_000, 90_000)) / 100)))
            teams.append(team(name, *parts))
        orphans = [cluster("orphan-rds-7f3a", source="none", compute=str(D(rng.randint(90_000, 300_000)) / 100),
                           storage="412.1234"),
                   cluster("db-snapshot-exports", source="none", backup=str(D(rng.randint(10_000, 80_000)) / 100))]
        unclassified = [UnclassifiedSpend("Amazon Relational Database Service", "USE1-RDS:NewFeature-Hours",
                                          D("123.456789")),
                        UnclassifiedSpend("Amazon DynamoDB", "EUW2-Mystery-Units", D("9.87"))]
        est = "0" if i < months - 1 else "14873.25"
        out.append(attribution(month, teams, orphans, unclassified=unclassified, estimated=est))
    return out


def quota_pool(pool: str, status: Status, *, budget: str, actual: str, forecast: str, breach: str | None = None,
               reasons: list[str] | None = None, team: str | None = None) -> PoolEvaluation:
    """One evaluated pool, as ``dbcost.quota.evaluate`` builds it (the used percentages follow from the amounts)."""
    return PoolEvaluation(
        pool=pool, team=team if team is not None else pool, metric="UnblendedCost", budget=D(budget),
        warn_at=D("0.8"), warn_threshold=D(budget) * D("0.8"), actual=D(actual), burn_rate_per_day=D("1000.00"),
        forecast=D(forecast), days_elapsed=28, days_remaining=2,
        projected_breach_date=dt.date.fromisoformat(breach) if breach is not None else None, status=status,
        estimated=True, categories=(), reasons=tuple(reasons or ()),
    )


def quota_report(*pools: PoolEvaluation, month: str = "2025-06") -> QuotaReport:
    """A quota report of ``pools`` for ``month``, as of its 29th (data through the 28th)."""
    return QuotaReport(month=month, metric="UnblendedCost", today=dt.date.fromisoformat(f"{month}-29"),
                       data_end=dt.date.fromisoformat(f"{month}-28"), days_in_month=30, pools=pools)


def realistic_data() -> ReportData:
    """June 2025 of ``realistic_history()`` with quarantine, freshness and a quota report of three pools."""
    history = realistic_history()
    return ReportData(
        month=history[-1].month, current=history[-1], previous=history[-2], history=history,
        quarantined_total=17,
        quarantined_by_reason=[("amount 'NaN' is not a plain decimal number", 9), ("group has no Keys", 5),
                               ("metric UsageQuantity missing", 3)],
        freshness=[Freshness("prod-payer", "Cost Explorer, daily, UnblendedCost",
                             dt.datetime(2025, 6, 29, 5, 12, tzinfo=dt.UTC), dt.date(2025, 6, 28)),
                   Freshness("sandbox", "Cost Explorer, monthly", dt.datetime(2025, 6, 20, 1, 0, tzinfo=dt.UTC),
                             dt.date(2025, 6, 19))],
        generated_at=dt.datetime(2025, 6, 29, 9, 0, tzinfo=dt.UTC),
        quota=quota_report(
            quota_pool("payments", "OK", budget="60000", actual="27127.70", forecast="29065.39"),
            quota_pool("analytics", "WARN", budget="7000", actual="6610.84", forecast="7082.19",
                       reasons=["forecast 101.2% of budget"]),
            quota_pool("identity", "BREACH", budget="30000", actual="30814.71", forecast="33015.76",
                       breach="2025-06-27", reasons=["actual 102.7% of budget"]),
        ),
    )


# ------------------------------------------------------------------------------------------------ readers


def svgs(page: str) -> dict[str, ET.Element]:
    """Every inline SVG of the page, parsed as XML (so it is well-formed), by its data-chart name."""
    out = {}
    for text in re.findall(r"<svg\b.*?</svg>", page, flags=re.DOTALL):
        root = ET.fromstring(text)
        out[root.attrib["data-chart"]] = root
    return out


def title_amount(elem: ET.Element) -> Decimal:
    """The exact amount at the end of an element's <title> ("name, month: $1,234.5600001")."""
    title = elem.find("title")
    assert title is not None and title.text
    text = title.text.rsplit(": ", 1)[1].split(" ")[0].replace(",", "")
    assert text.startswith(("$", "-$")), f"no currency on {title.text!r}"
    return D(text.replace("$", ""))


def walk(value: Any) -> Iterator[Any]:
    """Every value of a JSON document, containers and leaves, depth first."""
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def table_text(data: ReportData) -> str:
    """The rich tables of ``data`` as plain text (220 columns, no colour)."""
    buf = io.StringIO()
    render_table(data, Console(file=buf, width=220, color_system=None))
    return buf.getvalue()
