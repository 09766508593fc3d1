"""The report as one HTML file: self-contained, escaped everywhere, charts whose segments carry exact amounts."""

from __future__ import annotations

import re
from decimal import Decimal
from importlib.resources import files

from dbcost.attribution.model import SHARED_CLUSTER, UNATTRIBUTED, ClusterSpend, UnclassifiedSpend
from dbcost.money import sum_amounts
from dbcost.report import (
    CATEGORY_COLORS,
    STATUS_COLORS,
    TEAM_PALETTE,
    UNATTRIBUTED_COLOR,
    Freshness,
    category_totals,
    render_html,
    render_json,
)
from tests.report.helpers import (
    HOSTILE_CLUSTER,
    HOSTILE_TEAM,
    attribution,
    cluster,
    quota_pool,
    quota_report,
    realistic_data,
    small_data,
    spread_month,
    svgs,
    table_text,
    team,
    title_amount,
)

D = Decimal


def test_html_is_self_contained() -> None:
    """The HTML references nothing outside itself: no URL, no stylesheet link, no import, no script file; its
    one script is the packaged report.js inlined; every link is to one of its own sections or a data: CSV."""
    page = render_html(realistic_data())
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>dbcost report 2025-06</title>" in page
    lower = page.lower()
    for forbidden in ("http://", "https://", "<link", "@import", "url(", "src=", "<img", "<iframe"):
        assert forbidden not in lower, forbidden
    js = files("dbcost.report").joinpath("report.js").read_text(encoding="utf-8")
    assert lower.count("<script") == 1 and f"<script>\n{js}</script>" in page
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert len(hrefs) > 10
    ids = set(re.findall(r' id="([^"]+)"', page))
    for href in hrefs:
        assert href.startswith("data:text/csv;charset=utf-8,") or (href.startswith("#") and href[1:] in ids), href


def test_html_escapes_hostile_names() -> None:
    """Team and cluster names from tags are escaped everywhere, in tables and inside the SVG charts."""
    may = attribution("2024-05", [team(HOSTILE_TEAM, cluster(HOSTILE_CLUSTER, compute="10", storage="2.5"))],
                      [cluster("<b>orphan</b>", source="none", compute="1")],
                      unclassified=[UnclassifiedSpend("svc<i>", "USE1-<x>", D("1"))])
    data = small_data(current=may, previous=None, history=[may],
                      quarantined_by_reason=[("<img src=x onerror=alert(1)>", 1)],
                      freshness=[Freshness("t<&>", "d\"s", None, None)],
                      quota=quota_report(quota_pool("<p>", "BREACH", team="<script>x</script>", budget="1",
                                                    actual="1", forecast="1", reasons=["<x> & <img src=x>"]),
                                         month="2024-05"))
    page = render_html(data)
    assert page.lower().count("<script") == 1  # the report's own, last; no name opened one
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
    assert set(charts) == {"history", "daily", "clusters", "categories"}
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
    data = small_data(quota=quota_report(quota_pool("pay", "BREACH", budget="60000", actual="48210.5",
                                                    forecast="58000"), month="2024-05"))
    page = render_html(data)
    donut = svgs(page)["categories"]
    segs = {p.attrib["data-category"]: title_amount(p) for p in donut.iter("path")}
    assert segs == dict(category_totals(data.current))
    for section in ("budgets", "teams", "team-details", "clusters", "movers", "unattributed", "quarantine",
                    "freshness", "quota"):
        assert f'<section id="{section}">' in page
    assert "<figcaption>" in page and "<figure" in page
    assert '<span class="st st-breach">BREACH</span>' in page and "80.4 %" in page
    assert "USE1-Mystery:Thing" in page and "group has no Keys" in page
    assert "$1,995.88" in page and "+$255.88" in page and "new" in page


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


def test_html_inlines_the_packaged_stylesheet() -> None:
    """The page's only style is report.css, shipped as package data and inlined whole into one <style>."""
    css = files("dbcost.report").joinpath("report.css").read_text(encoding="utf-8")
    assert css.startswith(":root {") and "@media print" in css
    page = render_html(small_data())
    assert page.count("<style>") == 1 and f"<style>\n{css}</style>" in page


def test_html_quota_columns_follow_the_pools() -> None:
    """The quota table shows Breach on and Reasons only when some pool has them; amounts are right-aligned."""
    quiet = quota_report(quota_pool("pay", "OK", budget="100", actual="10", forecast="20"), month="2024-05")
    page = render_html(small_data(quota=quiet))
    quota = page[page.index('<section id="quota">'):]
    assert '<th scope="col">Pool</th>' in quota and '<th class=num scope="col">Budget</th>' in quota
    assert '<td class="num" data-value="100">$100.00</td>' in quota
    assert "Breach on" not in quota and "Reasons" not in quota
    assert '<span class="st st-ok">OK</span>' in quota
    full = render_html(realistic_data())
    assert '<th scope="col">Breach on</th>' in full and "<td>2025-06-27</td>" in full
    assert '<th scope="col">Reasons</th>' in full


def test_sections_follow_the_order_that_decides_action() -> None:
    """Cards, then budgets, then the trend and the daily chart, then advice and movers, then the big tables; the
    table of contents links every section the page has."""
    page = render_html(realistic_data())
    order = ["cards", "budgets", "trend", "daily", "advice", "movers", "teams", "team-details", "clusters", "composition",
             "unattributed", "quarantine", "freshness", "quota"]
    positions = [page.index(f'id="{name}"') for name in order]
    assert positions == sorted(positions)
    toc = page[page.index('<nav class="toc"'):page.index("</nav>")]
    assert re.findall(r'href="#([^"]+)"', toc) == [n for n in order if n not in ("cards",)]


def test_cards_lead_with_the_like_for_like_delta_and_label_the_whole_month() -> None:
    """The spend card compares the same days of the previous month; the whole-month delta is its own card,
    marked as not like for like while the month is open."""
    june, may = spread_month("2024-06", "pay", "10", 10), spread_month("2024-05", "pay", "20", 31)
    page = render_html(small_data(month="2024-06", current=june, previous=may, history=[may, june]))
    cards = page[page.index('id="cards"'):page.index('id="budgets"')]
    assert "Spend, month to date" in cards and "$100.00" in cards
    assert "-$100.00</span> (-50.0 %) vs the same 10 days of 2024-05" in cards
    assert "vs whole 2024-05" in cards and "-$520.00 (-83.9 %)" in cards and "10 of 30 days so far" in cards


def test_every_amount_carries_its_currency() -> None:
    """Amount cells of every table and every chart tooltip show the currency; a report in EUR says EUR."""
    page = render_html(realistic_data())
    amounts = re.findall(r'<td class="num" data-value="-?[0-9.]+">([^<]*(?:<span[^>]*>[^<]*</span>)?)</td>', page)
    money_cells = [a for a in amounts if "%" not in a and re.search(r"\d\.\d\d", a)]
    assert money_cells and all("$" in a for a in money_cells)
    for title in re.findall(r"<title>([^<]*: -?\$?[0-9][^<]*)</title>", page):
        assert "$" in title, title
    eur = render_html(small_data(currency="EUR"))
    assert "1,995.88 EUR" in eur and "$1,995.88" not in eur


def test_budgets_draw_one_bar_per_pool_with_exact_amounts() -> None:
    """The budgets chart has an actual bar, a forecast bar and a budget mark per pool, in the status colour,
    each titled with its exact amount; the breach date is printed; no policy says how to add one."""
    data = realistic_data()
    chart = svgs(render_html(data))["budgets"]
    assert data.quota is not None
    for pool in data.quota.pools:
        actual = chart.find(f".//rect[@class='actual'][@data-pool='{pool.pool}']")
        forecast = chart.find(f".//rect[@class='forecast'][@data-pool='{pool.pool}']")
        budget = chart.find(f".//line[@class='budget'][@data-pool='{pool.pool}']")
        assert actual is not None and forecast is not None and budget is not None
        assert (title_amount(actual), title_amount(forecast), title_amount(budget)) == (
            pool.actual, pool.forecast, pool.budget)
        assert actual.attrib["fill"] == STATUS_COLORS[pool.status]
    assert "breach 2025-06-27" in "".join(chart.itertext())
    page = render_html(small_data(quota=None))
    budgets = page[page.index('id="budgets"'):page.index('id="trend"')]
    assert "--policy FILE" in budgets and "<svg" not in budgets


def test_daily_chart_stacks_each_days_spend_and_shows_the_previous_month() -> None:
    """One rect per (day, team) with spend, summing to the month; the previous month is a dashed polyline."""
    june, may = spread_month("2024-06", "pay", "10", 10), spread_month("2024-05", "pay", "20", 31)
    chart = svgs(render_html(small_data(month="2024-06", current=june, previous=may, history=[may, june])))["daily"]
    segs = [r for r in chart.iter("rect") if r.get("class") == "seg"]
    assert len(segs) == 10 and sum_amounts(title_amount(r) for r in segs) == june.total
    line = chart.find(".//polyline[@class='previous']")
    assert line is not None and len(line.attrib["points"].split()) == 30  # May's days 1..30 under June's 30


def test_cluster_table_shows_account_region_engine_class_and_env_when_known() -> None:
    """The cluster table gains Env, Account, Region and Class columns when some cluster has them; each team
    has its own section with its clusters."""
    known = ClusterSpend("pay-main", D("10"), {"compute": D("10")}, ("rds",), "tag", accounts=("111122223333",),
                         regions=("eu-west-1",), engines=(), instance_classes=("db.r6g.large",), env="prod")
    may = attribution("2024-05", [team("payments", known)])
    page = render_html(small_data(current=may, previous=None, history=[may]))
    table = page[page.index('data-table="clusters"'):]
    table = table[:table.index("</table>")]
    heads = re.findall(r'scope="col">([^<]+)</th>', table)
    assert heads[:8] == ["Cluster", "Team", "Owner from", "Env", "Account", "Region", "Engine / family", "Class"]
    for value in ("prod", "111122223333", "eu-west-1", "rds", "db.r6g.large"):
        assert f"<td>{value}</td>" in table
    assert page.count('<details class="team"') == 1 and 'data-table="team-1-clusters"' in page
    plain = render_html(small_data())
    heads = re.findall(r'scope="col">([^<]+)</th>', plain[plain.index('data-table="clusters"'):])
    assert "Account" not in heads[:6] and "Env" not in heads[:6]
