"""The report's Advice section: the largest advisories and the savings per team in JSON (exact strings), rich
tables and HTML (escaped), and a note to run `dbcost advise` when the month has no advice stored."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from dbcost.advice import AdviceSet, Advisory, advisory_id
from dbcost.report import render_html, render_json
from dbcost.report.data import TOP_ADVISORIES, top_advisories
from tests.report.helpers import HOSTILE_CLUSTER, HOSTILE_TEAM, small_data, table_text

SEEN = dt.datetime(2024, 6, 1, 6, 0)


def adv(cluster: str, team: str, savings: str, kind: str = "graviton") -> Advisory:
    return Advisory(kind=kind, rule=kind, cluster=cluster, team=team, service="Amazon Relational Database Service",
                    account="111122223333", region="us-east-1", subject=cluster, monthly_cost=Decimal(1000),
                    savings=Decimal(savings), action=f"Move {cluster}", evidence={"ratio": "0.89"})


def advice(n: int = 3) -> AdviceSet:
    rows = [adv(f"db-{i}", ("payments", "search", "")[i % 3], f"{100 - i}.125") for i in range(n)]
    rows.append(adv(HOSTILE_CLUSTER, HOSTILE_TEAM, "0.5", kind="idle"))
    return AdviceSet("2024-05", "UnblendedCost|db-cluster", tuple(rows), {})


def test_json_carries_the_total_the_top_advisories_and_the_savings_per_team() -> None:
    """advice.total, count, top (the dbcost advise shape) and by_team (unattributed for no team), exact strings."""
    data = render_json(small_data(advice=advice(12)))["advice"]
    assert data["count"] == 13
    assert data["total_estimated_monthly_savings"] == "1136"  # 12 x 100.125 - (0 + 1 + ... + 11) + 0.5
    assert len(data["top"]) == TOP_ADVISORIES and data["top"][0]["estimated_monthly_savings"] == "100.125"
    assert list(data["top"][0]) == ["kind", "cluster", "team", "service", "account", "region", "monthly_cost",
                                    "estimated_monthly_savings", "action", "evidence", "first_seen"]
    by_team = {t["team"]: (t["advisories"], t["estimated_monthly_savings"]) for t in data["by_team"]}
    assert by_team["payments"] == (4, "382.5") and by_team["unattributed"] == (4, "374.5")
    assert by_team[HOSTILE_TEAM] == (1, "0.5")
    assert render_json(small_data())["advice"] is None


def test_table_lists_the_advice_and_prints_names_literally() -> None:
    """The Advice tables: savings with two decimals, kinds, clusters (markup printed), per-team totals."""
    text = table_text(small_data(advice=advice()))
    for needle in ("Advice: 4 advisories", "100.12", "graviton", "db-0", "Advice per team", "unattributed",
                   HOSTILE_TEAM, "idle"):
        assert needle in text, needle
    assert "run `dbcost advise --month 2024-05`" in table_text(small_data())


def test_html_has_an_advice_section_with_every_value_escaped() -> None:
    """section#advice lists the top advisories and the per-team totals; names from tags are escaped."""
    page = render_html(small_data(advice=advice()))
    section = page[page.index('<section id="advice">'):]
    section = section[:section.index("</section>")]
    assert "Advice: 4 advisories, estimated savings $297.88/month" in section  # every amount shows its currency
    assert HOSTILE_TEAM not in section and "&lt;script&gt;" in section
    assert "db-2" in section and "Advice per team" in section
    empty = render_html(small_data())
    assert "dbcost advise --month 2024-05" in empty[empty.index('<section id="advice">'):]


def test_top_advisories_keep_the_largest_first() -> None:
    """The set is sorted by savings; the section shows its head."""
    a = advice(15)
    assert top_advisories(a, 2) == list(a.advisories[:2])
    assert [x.cluster for x in top_advisories(a, 2)] == ["db-0", "db-1"]
    assert a.seen(a.advisories[0]) is None
    seen = AdviceSet(a.month, a.scope, a.advisories, {advisory_id(a.scope, a.advisories[0]): SEEN})
    assert render_json(small_data(advice=seen))["advice"]["top"][0]["first_seen"] == "2024-06-01T06:00:00Z"
