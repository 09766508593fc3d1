"""The HTML report in a real browser: headless Chromium opens the file offline and draws the charts.

Chromium is Debian's ``chromium`` at /usr/bin/chromium, installed by ``.ci/setup``. Its absence is a
failure, not a skip: the report's promise (one file that renders offline) is only checked here.
The screenshot is decoded by the small PNG reader below (zlib + the five PNG filters), so no imaging
library is needed.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest

from dbcost.report import CATEGORY_COLORS, TEAM_PALETTE, UNATTRIBUTED_COLOR, render_html
from tests.report.helpers import realistic_data

CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1400, 2200
BACKGROUND = (0xF6, 0xF7, 0xF9)  # the page's --bg
WHITE = (0xFF, 0xFF, 0xFF)  # the cards' and sections' background

Pixel = tuple[int, int, int]


def chromium() -> str:
    """The Chromium binary, or a failure that says how to install it."""
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if path is None:
        pytest.fail(f"headless Chromium not found at {CHROMIUM}: run `bash .ci/setup` once (it apt-installs "
                    "the Debian package `chromium`)")
    return path


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
    monkeypatch.setattr(f"{__name__}.CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"bash \.ci/setup"):
        chromium()
