"""The report: movers and shares, JSON as decimal strings, rich tables, and a self-contained, escaped HTML file.

``small_data()`` is a hand-made three-month report whose figures are worked out in the tests;
``realistic_data()`` is a larger, seeded one (six months, eight teams) that the browser test screenshots.
"""

from __future__ import annotations

import datetime as dt
import io
import json
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
from dbcost.money import fmt, sum_amounts
from dbcost.report import (
    CATEGORY_COLORS,
    TEAM_PALETTE,
    UNATTRIBUTED_COLOR,
    Freshness,
    Mover,
    ReportData,
    category_totals,
    estimated_share,
    movers,
    render_html,
    render_json,
    render_table,
)

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


def small_data(**overrides: Any) -> ReportData:
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


def quota_pool(pool: str, status: str, *, budget: str, actual: str, forecast: str, breach: str | None = None,
               reasons: list[str] | None = None) -> dict[str, Any]:
    """One pool as ``dbcost.quota.PoolEvaluation.to_json()`` writes it."""
    return {"pool": pool, "team": pool, "metric": "UnblendedCost", "status": status, "budget": budget,
            "warn_at": "0.8", "warn_threshold": str(D(budget) * D("0.8")), "actual": actual,
            "pct_of_budget": str((D(actual) * 100 / D(budget)).quantize(D("0.1"))), "estimated": True,
            "burn_rate_per_day": "1000.00", "forecast": forecast,
            "forecast_pct_of_budget": str((D(forecast) * 100 / D(budget)).quantize(D("0.1"))),
            "aws_forecast": None, "forecast_delta_pct": None, "projected_breach_date": breach,
            "days_elapsed": 28, "days_remaining": 2, "reasons": reasons or [], "categories": []}


def realistic_data() -> ReportData:
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
        quota={"month": "2025-06", "worst": "BREACH", "pools": [  # the shape of dbcost.quota.QuotaReport.to_json()
            quota_pool("payments", "OK", budget="60000", actual="27127.70", forecast="29065.39"),
            quota_pool("analytics", "WARN", budget="7000", actual="6610.84", forecast="7082.19",
                       reasons=["forecast 101.2% of budget"]),
            quota_pool("identity", "BREACH", budget="30000", actual="30814.71", forecast="33015.76",
                       breach="2025-06-27", reasons=["actual 102.7% of budget"]),
        ]},
    )


# ----------------------------------------------------------------------------------------------- helpers


def svgs(page: str) -> dict[str, ET.Element]:
    """Every inline SVG of the page, parsed as XML (so it is well-formed), by its data-chart name."""
    out = {}
    for text in re.findall(r"<svg\b.*?</svg>", page, flags=re.DOTALL):
        root = ET.fromstring(text)
        out[root.attrib["data-chart"]] = root
    return out


def title_amount(elem: ET.Element) -> Decimal:
    """The exact amount at the end of an element's <title> ("name, month: 1,234.5600001")."""
    title = elem.find("title")
    assert title is not None and title.text
    return D(title.text.rsplit(": ", 1)[1].split(" ")[0].replace(",", ""))


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def table_text(data: ReportData) -> str:
    buf = io.StringIO()
    render_table(data, Console(file=buf, width=220, color_system=None))
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ movers


def test_movers_exact_deltas_and_order() -> None:
    """Movers are exact Decimal differences per team and cluster, by absolute delta, ties by name."""
    data = small_data()
    got = movers(data.current, data.previous)
    assert [(m.kind, m.name) for m in got] == [
        ("team", "analytics"), ("cluster", "warehouse"), ("team", "payments"), ("cluster", "pay-main"),
        ("team", "search"), ("cluster", "search-pg"), ("cluster", "legacy-db"), ("cluster", "orphan-db"),
        ("team", UNATTRIBUTED),
    ]
    by = {(m.kind, m.name): m for m in got}
    assert by["team", "payments"] == Mover("payments", "team", D("1740"), D("1995.875"), D("255.875"), D("14.71"),
                                           "payments")
    assert by["team", "search"].delta == D("-160") and by["team", "search"].delta_pct == D("-16.33")
    assert by["cluster", "pay-main"].delta == D("205.875")
    assert by["cluster", "legacy-db"] == Mover("legacy-db", "cluster", D("60"), D("0"), D("-60"), D("-100.00"),
                                               "search")
    assert by["team", UNATTRIBUTED].delta_pct == D("-20.00")


def test_movers_new_cluster_has_no_percentage() -> None:
    """A team or cluster with nothing last month has delta = its amount and delta_pct None."""
    data = small_data()
    by = {(m.kind, m.name): m for m in movers(data.current, data.previous)}
    assert by["cluster", "warehouse"] == Mover("warehouse", "cluster", D("0"), D("599.9900000001"),
                                               D("599.9900000001"), None, "analytics")
    assert by["team", "analytics"].delta_pct is None


def test_movers_leave_out_unchanged_and_shared_and_respect_top() -> None:
    """Unchanged clusters and the shared pseudo-cluster are not movers; ``top`` caps teams and clusters each."""
    data = small_data()
    names = {m.name for m in movers(data.current, data.previous)}
    assert "pay-replica" not in names and SHARED_CLUSTER not in names
    top1 = movers(data.current, data.previous, top=1)
    assert [(m.kind, m.name) for m in top1] == [("team", "analytics"), ("cluster", "warehouse")]


def test_movers_without_previous_month() -> None:
    """No previous month gives no movers."""
    assert movers(small_history()[-1], None) == []


def test_estimated_share() -> None:
    """estimated_share is estimated_amount / total (six places), and 0 when the month has no spend."""
    may = small_history()[-1]
    assert may.total == D("3495.8650000001")
    assert estimated_share(may) == (D("100") / may.total).quantize(D("0.000001"))
    assert estimated_share(may) == D("0.028605")
    empty = attribution("2024-06", [])
    assert estimated_share(empty) == 0


def test_category_totals_add_up_to_the_total() -> None:
    """Category totals cover teams, shared and unattributed spend, summing to the month's total exactly."""
    may = small_history()[-1]
    totals = category_totals(may)
    assert list(totals) == ["compute", "storage", "io", "backup", "other", "shared"]
    assert totals["compute"] == D("2976.0000000001")
    assert sum_amounts(totals.values()) == may.total


# -------------------------------------------------------------------------------------------------- JSON


def test_json_amounts_are_the_input_decimals_as_strings() -> None:
    """Every amount in the JSON is a decimal string equal to the input Decimal, at full precision."""
    data = small_data()
    out = render_json(data)
    may = data.current
    assert out["month"] == "2024-05" and out["metric"] == "UnblendedCost"
    assert out["total"] == "3495.8650000001" == fmt(may.total)
    assert out["unattributed"] == "80.0" and D(out["unattributed"]) == may.unattributed
    assert out["estimated_share"] == "0.028605"
    teams = {t["team"]: t for t in out["teams"]}
    assert [t["team"] for t in out["teams"]] == ["payments", "search", "analytics"]
    assert teams["analytics"]["amount"] == "599.9900000001"
    assert teams["payments"]["previous"] == "1740" and teams["payments"]["shared"] == "50"
    warehouse = teams["analytics"]["clusters"][0]
    assert warehouse["amount"] == "599.9900000001" and warehouse["categories"]["compute"] == "500.0000000001"
    assert {m["name"]: m["delta_pct"] for m in out["movers"]}["warehouse"] is None
    assert {m["name"]: m["delta"] for m in out["movers"]}["payments"] == "255.875"
    assert out["unclassified_usage_types"] == [{"service": "Amazon Relational Database Service",
                                                "usage_type": "USE1-Mystery:Thing", "amount": "4.5"}]
    assert out["quarantined"] == {"total": 7, "by_reason": [
        {"reason": "amount 'NaN' is not a plain decimal number", "count": 5},
        {"reason": "group has no Keys", "count": 2}]}
    assert out["freshness"][0] == {"target": "prod", "dataset": "cost-explorer daily",
                                   "last_success": "2024-06-03T06:00:00+00:00", "through": "2024-06-02"}
    assert out["freshness"][1]["last_success"] is None
    assert [h["month"] for h in out["history"]] == ["2024-03", "2024-04", "2024-05"]
    assert out["quota"] is None


def test_json_has_no_floats_and_serialises() -> None:
    """The JSON holds no float anywhere and round-trips through json.dumps; quota Decimals become strings."""
    data = small_data(quota={"pools": [{"pool": "p", "budget": D("10.50"), "actual": "9.1", "status": "ok"}]})
    out = render_json(data)
    assert not any(isinstance(v, float) for v in walk(out))
    assert json.loads(json.dumps(out)) == out
    assert out["quota"]["pools"][0]["budget"] == "10.50"


# ------------------------------------------------------------------------------------------------- table


def test_table_lists_teams_clusters_movers_and_the_rest() -> None:
    """The rich output names every team, cluster, mover, quarantine reason and freshness target."""
    text = table_text(small_data())
    for needle in ("payments", "search", "analytics", "pay-main", "warehouse", "orphan-db", "legacy-db",
                   "USE1-Mystery:Thing", "group has no Keys", "staging", "cost-explorer daily",
                   "1,995.88", "3,495.87", "+255.88", "+14.7 %", "new", "2.9 %"):
        assert needle in text, needle
    assert "1995.875" not in text  # display rounds to two places


def test_table_does_not_interpret_markup_in_names() -> None:
    """A team named like rich markup is printed literally, not interpreted."""
    may = attribution("2024-05", [team("[bold]ops[/bold]", cluster("[red]db[/red]", compute="1"))])
    text = table_text(small_data(current=may, previous=None, history=[may]))
    assert "[bold]ops[/bold]" in text and "[red]db[/red]" in text
    assert "No previous month" in text


def test_table_shows_the_quota_pools() -> None:
    """When a quota report is given, its pools are a table: amounts with two decimals, percentages, reasons."""
    text = table_text(realistic_data())
    assert "Quota" in text and "60,000.00" in text and "30,814.71" in text and "102.7 %" in text
    assert "BREACH" in text and "2025-06-27" in text and "actual 102.7% of budget" in text
    assert "days_elapsed" not in text and "warn_threshold" not in text  # internal fields are left out


# -------------------------------------------------------------------------------------------------- HTML


def test_html_is_self_contained() -> None:
    """The HTML references nothing outside itself: no URL, no script, no stylesheet link, no import."""
    page = render_html(realistic_data())
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>dbcost report 2025-06</title>" in page
    lower = page.lower()
    for forbidden in ("http://", "https://", "<script", "<link", "@import", "url(", "src=", "<img", "<iframe"):
        assert forbidden not in lower, forbidden
    assert re.search(r"href\s*=", lower) is None


def test_html_escapes_hostile_names() -> None:
    """Team and cluster names from tags are escaped everywhere, in tables and inside the SVG charts."""
    may = attribution("2024-05", [team(HOSTILE_TEAM, cluster(HOSTILE_CLUSTER, compute="10", storage="2.5"))],
                      [cluster("<b>orphan</b>", source="none", compute="1")],
                      unclassified=[UnclassifiedSpend("svc<i>", "USE1-<x>", D("1"))])
    data = small_data(current=may, previous=None, history=[may],
                      quarantined_by_reason=[("<img src=x onerror=alert(1)>", 1)],
                      freshness=[Freshness("t<&>", "d\"s", None, None)],
                      quota={"pools": [{"pool": "<p>", "status": "<script>x</script>", "budget": "1"}]})
    page = render_html(data)
    assert "<script" not in page.lower()
    assert "<b>orphan" not in page and "<img" not in page and "<x>" not in page and "<p>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&amp;&#x27;" in page
    charts = svgs(page)  # parses as XML: the escaping holds inside the SVG too
    seg = charts["history"].find(".//rect[@data-series='<script>alert(1)</script>']")
    assert seg is not None and title_amount(seg) == D("12.5")
    assert {r.attrib["data-cluster"] for r in charts["clusters"].iter("rect") if "data-cluster" in r.attrib} \
        == {HOSTILE_CLUSTER, "<b>orphan</b>"}


def test_html_history_chart_has_one_rect_per_month_and_team() -> None:
    """The trend chart draws one rect per (month, team) with spend, unattributed in grey, each titled exactly."""
    data = small_data()
    charts = svgs(render_html(data))
    assert set(charts) == {"history", "clusters", "categories"}
    segs = [r for r in charts["history"].iter("rect") if r.get("class") == "seg"]
    got = {(r.attrib["data-month"], r.attrib["data-series"]): title_amount(r) for r in segs}
    expected = {(a.month, t.team): t.amount for a in data.history for t in a.teams}
    expected |= {(a.month, UNATTRIBUTED): a.unattributed for a in data.history}
    assert got == expected
    assert len(segs) == len(expected) == 10
    assert got["2024-05", "analytics"] == D("599.9900000001")
    colors = {r.attrib["data-series"]: r.attrib["fill"] for r in segs}
    assert colors[UNATTRIBUTED] == UNATTRIBUTED_COLOR
    assert colors["payments"] == TEAM_PALETTE[0]  # the largest team over the months gets the first colour


def test_html_history_chart_groups_teams_beyond_the_palette() -> None:
    """More teams than colours: the smallest are drawn as one 'other teams' series whose amount is their sum."""
    teams = [team(f"t{i:02d}", cluster(f"c{i:02d}", compute=str(100 - i))) for i in range(13)]
    may = attribution("2024-05", teams)
    segs = [r for r in svgs(render_html(small_data(current=may, previous=None, history=[may])))["history"].iter("rect")
            if r.get("class") == "seg"]
    got = {r.attrib["data-series"]: title_amount(r) for r in segs}
    assert len(got) == len(TEAM_PALETTE)
    assert got["other teams"] == sum_amounts(D(100 - i) for i in range(9, 13))


def test_html_cluster_chart_splits_categories_exactly() -> None:
    """The cluster chart has one rect per (cluster, category) with spend, titled with the exact amount."""
    data = small_data()
    charts = svgs(render_html(data))
    segs = [r for r in charts["clusters"].iter("rect") if r.get("class") == "seg"]
    got = {(r.attrib["data-cluster"], r.attrib["data-category"]): title_amount(r) for r in segs}
    assert got[("pay-main", "io")] == D("45.125")
    assert got[("warehouse", "compute")] == D("500.0000000001")
    assert ("orphan-db", "other") in got
    assert all(r.attrib["fill"] == CATEGORY_COLORS[r.attrib["data-category"]] for r in segs)
    assert not any(c == SHARED_CLUSTER for c, _ in got)


def test_html_category_donut_and_tables() -> None:
    """The category donut has a titled segment per category; the page has the teams, movers and quota tables."""
    data = small_data(quota={"pools": [quota_pool("pay", "BREACH", budget="60000", actual="48210.5",
                                                  forecast="58000")]})
    page = render_html(data)
    donut = svgs(page)["categories"]
    segs = {p.attrib["data-category"]: title_amount(p) for p in donut.iter("path")}
    assert segs == dict(category_totals(data.current))
    for section in ("teams", "clusters", "movers", "unattributed", "quarantine", "freshness", "quota"):
        assert f'<section id="{section}">' in page
    assert "<figcaption>" in page and "<figure" in page
    assert '<span class="st st-breach">BREACH</span>' in page and "80.4 %" in page
    assert "USE1-Mystery:Thing" in page and "group has no Keys" in page
    assert "1,995.88" in page and "+255.88" in page and "new" in page


def test_html_renders_an_empty_month() -> None:
    """A month without spend, history or previous month still renders (zero shares, empty charts)."""
    empty = attribution("2024-06", [])
    data = small_data(current=empty, previous=None, history=[], quarantined_total=0, quarantined_by_reason=[],
                      freshness=[])
    page = render_html(data)
    charts = svgs(page)
    assert [r for r in charts["history"].iter("rect") if r.get("class") == "seg"] == []
    assert "No previous month" in page and "Nothing quarantined." in page
    out = render_json(data)
    assert out["estimated_share"] == "0.000000" and out["teams"] == []
    assert "No previous month" in table_text(data)
