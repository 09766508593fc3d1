"""The report as one HTML file: self-contained, escaped everywhere, charts whose segments carry exact amounts."""

from __future__ import annotations

import re
from decimal import Decimal
from importlib.resources import files

from dbcost.attribution.model import SHARED_CLUSTER, UNATTRIBUTED, UnclassifiedSpend
from dbcost.money import sum_amounts
from dbcost.report import (
    CATEGORY_COLORS,
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
    svgs,
    table_text,
    team,
    title_amount,
)

D = Decimal


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
                      quota=quota_report(quota_pool("<p>", "BREACH", team="<script>x</script>", budget="1",
                                                    actual="1", forecast="1", reasons=["<x> & <img src=x>"]),
                                         month="2024-05"))
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
    data = small_data(quota=quota_report(quota_pool("pay", "BREACH", budget="60000", actual="48210.5",
                                                    forecast="58000"), month="2024-05"))
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
    assert "<th>Pool</th>" in quota and "<th class=num>Budget</th>" in quota and "<td class=num>100.00</td>" in quota
    assert "Breach on" not in quota and "Reasons" not in quota
    assert '<span class="st st-ok">OK</span>' in quota
    full = render_html(realistic_data())
    assert "<th>Breach on</th>" in full and "<td>2025-06-27</td>" in full and "<th>Reasons</th>" in full
