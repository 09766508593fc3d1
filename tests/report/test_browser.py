"""The HTML report in a real browser: headless Chromium opens the file offline and draws the charts; driven
through its DevTools protocol (:mod:`tests.report.cdp`), the budgets are above the fold at 1400x900, a
click on a column heading re-sorts its table, and every table's CSV link decodes to that table's rows.

Chromium is Debian's ``chromium`` at /usr/bin/chromium, installed by ``.ci/setup``. Its absence is a
failure, not a skip: the report's promise (one file that renders offline) is only checked here.
The screenshot is decoded by the small PNG reader below (zlib + the five PNG filters), so no imaging
library is needed.
"""

from __future__ import annotations

import csv
import io
import struct
import subprocess
import urllib.parse
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dbcost.report import CATEGORY_COLORS, TEAM_PALETTE, UNATTRIBUTED_COLOR, render_html
from tests.report import cdp
from tests.report.cdp import chromium, open_page
from tests.report.helpers import realistic_data

WIDTH, HEIGHT = 1400, 6000  # the whole page: the category charts come after the big tables
BACKGROUND = (0xF6, 0xF7, 0xF9)  # the page's --bg
WHITE = (0xFF, 0xFF, 0xFF)  # the cards' and sections' background

Pixel = tuple[int, int, int]


def screenshot(html_file: Path, png: Path, profile: Path) -> None:
    """Render ``html_file`` in headless Chromium (no network, fresh profile) into ``png``."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={png}",
           html_file.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and png.exists(), f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG into (width, height, rows of RGB bytes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), b""
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(bytes(idat))
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if ftype == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif ftype == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:  # Paeth
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                up_left = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, prev[i], up_left)) & 0xFF
        else:
            assert ftype == 0, f"bad PNG filter {ftype}"
        prev = line
        rows.append(bytes(line) if bpp == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
    return width, height, rows


def colour_counts(rows: list[bytes]) -> Counter[Pixel]:
    counts: Counter[Pixel] = Counter()
    for row in rows:
        counts.update(zip(row[0::3], row[1::3], row[2::3], strict=True))
    return counts


def rgb(hex_colour: str) -> Pixel:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))


def present(counts: Counter[Pixel], colour: str, minimum: int = 200) -> bool:
    """At least ``minimum`` pixels within 2 levels per channel of ``colour`` (solid chart fills)."""
    r, g, b = rgb(colour)
    near = sum(n for (pr, pg, pb), n in counts.items() if abs(pr - r) <= 2 and abs(pg - g) <= 2 and abs(pb - b) <= 2)
    return near >= minimum


def test_report_renders_offline_in_headless_chromium(tmp_path: Path) -> None:
    """Chromium draws the report file: the page is far from blank and the charts' palette colours show."""
    page = tmp_path / "report.html"
    page.write_text(render_html(realistic_data()), encoding="utf-8")
    png = tmp_path / "report.png"
    screenshot(page, png, tmp_path / "profile")

    width, height, rows = read_png(png)
    assert (width, height) == (WIDTH, HEIGHT)
    counts = colour_counts(rows)
    total = width * height
    assert counts[BACKGROUND] / total > 0.05, "the page's own background (its inline CSS) is not drawn"
    drawn = total - counts[BACKGROUND] - counts[WHITE]  # neither page nor card background: text, lines, charts
    assert drawn / total > 0.10, f"only {drawn / total:.1%} of the screenshot is drawn on"
    teams_seen = [c for c in TEAM_PALETTE if present(counts, c)]
    categories_seen = [c for c in CATEGORY_COLORS.values() if present(counts, c)]
    assert len(teams_seen) >= 6, f"team colours drawn: {teams_seen}"
    assert len(categories_seen) >= 5, f"category colours drawn: {categories_seen}"
    assert present(counts, UNATTRIBUTED_COLOR), "the unattributed series is not drawn"


def test_missing_chromium_fails_naming_the_setup_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without Chromium the browser test fails (never skips) and says to run .ci/setup."""
    monkeypatch.setattr(cdp, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"bash \.ci/setup"):
        chromium()


def _page(tmp_path: Path) -> Path:
    page = tmp_path / "report.html"
    page.write_text(render_html(realistic_data()), encoding="utf-8")
    return page


async def test_budgets_are_above_the_fold_at_1400x900(tmp_path: Path) -> None:
    """In a 1400x900 viewport the whole budgets section, with one drawn bar per pool, is visible unscrolled."""
    async with open_page(_page(tmp_path), tmp_path / "profile", width=1400, height=900) as page:
        box = await page.evaluate("(() => { const r = document.getElementById('budgets').getBoundingClientRect();"
                                  " return [r.top, r.bottom, scrollY, innerHeight]; })()")
        bars = await page.evaluate("Array.from(document.querySelectorAll('#budgets rect.actual'))"
                                   ".map(e => { const r = e.getBoundingClientRect(); return [r.width, r.bottom]; })")
    top, bottom, scrolled, viewport = box
    assert scrolled == 0 and viewport == 900
    assert 0 < top < bottom <= 900, f"budgets span {top}..{bottom} px"
    assert len(bars) == 3 and all(w > 0 and b <= 900 for w, b in bars)


_ROWS = """(name => Array.from(document.querySelectorAll(`table[data-table="${name}"] tbody tr`))
    .map(tr => tr.cells[0].textContent))"""


async def test_a_click_on_a_heading_sorts_its_table(tmp_path: Path) -> None:
    """A real mouse click on the Cluster heading sorts the cluster table alphabetically (it starts by amount);
    a second click reverses it; a click on Total sorts by the exact amounts, largest first."""
    async with open_page(_page(tmp_path), tmp_path / "profile") as page:
        before = await page.evaluate(f"{_ROWS}('clusters')")
        await page.click('table[data-table="clusters"] th:nth-child(1)')
        ascending = await page.evaluate(f"{_ROWS}('clusters')")
        await page.click('table[data-table="clusters"] th:nth-child(1)')
        descending = await page.evaluate(f"{_ROWS}('clusters')")
        await page.click('table[data-table="clusters"] th:last-child')
        totals = await page.evaluate("""Array.from(document.querySelectorAll('table[data-table="clusters"] tbody tr'))
            .map(tr => tr.cells[tr.cells.length - 1].dataset.value)""")
        marker = await page.evaluate("""document.querySelector('table[data-table="clusters"] th:last-child')
            .getAttribute('aria-sort')""")
    assert ascending != before and sorted(before, key=str.lower) == ascending
    assert descending == ascending[::-1]
    amounts = [float(v) for v in totals]
    assert amounts == sorted(amounts, reverse=True) and marker == "descending"


async def test_every_tables_csv_link_decodes_to_its_rows(tmp_path: Path) -> None:
    """Each table's CSV download is a data: URI whose CSV is the table's headings and body rows, with each
    numeric cell's exact value (data-value) and each text cell's text."""
    async with open_page(_page(tmp_path), tmp_path / "profile") as page:
        tables: list[dict[str, Any]] = await page.evaluate("""Array.from(document.querySelectorAll('table.sortable'))
            .map(t => [t, t.closest('.scroll') || t])
            .filter(([t, box]) => box.previousElementSibling && box.previousElementSibling.querySelector('a.csv'))
            .map(([t, box]) => ({name: t.dataset.table,
                        href: box.previousElementSibling.querySelector('a.csv').getAttribute('href'),
                        download: box.previousElementSibling.querySelector('a.csv').getAttribute('download'),
                        headers: Array.from(t.tHead.rows[0].cells).map(c => c.textContent),
                        rows: Array.from(t.tBodies[0].rows).map(r => Array.from(r.cells)
                            .map(c => c.hasAttribute('data-value') ? c.dataset.value : c.textContent))}))""")
    names = {t["name"] for t in tables}
    assert {"movers", "teams", "clusters", "unattributed", "quarantine", "freshness", "quota"} <= names
    assert any(n.startswith("team-") for n in names)  # each team's own cluster table
    for t in tables:
        prefix, _, payload = t["href"].partition(",")
        assert prefix == "data:text/csv;charset=utf-8", t["name"]
        decoded = list(csv.reader(io.StringIO(urllib.parse.unquote(payload))))
        assert decoded[0] == t["headers"], t["name"]
        assert decoded[1:] == t["rows"], t["name"]
        assert t["download"] == f"dbcost-2025-06-{t['name']}.csv"
