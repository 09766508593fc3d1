"""Screenshots of the demo's HTML report for docs/ (``python -m tests.report.screenshots [DIR]``).

Runs ``dbcost demo`` (the emulator, a backfill, attribution of three months in one run, the example policy)
as of 2026-11-28, so the month is open (27 days of data: the like-for-like cards) and its history complete,
then opens ``report.html`` in headless Chromium through the DevTools protocol (:mod:`tests.report.cdp`) and
writes ``docs/report-top.png`` (the 1400x900 viewport: cards and budgets, above the fold),
``docs/report-trend.png`` (the trend, the daily chart and the movers) and ``docs/report-example.png`` (the
whole page at half scale).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
from pathlib import Path

from dbcost.jobs.demo import run_demo
from tests.report.cdp import open_page

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = await run_demo(Path(tmp) / "demo", today=dt.date(2026, 11, 28), say=print)
        assert result.exact and result.report_path is not None
        async with open_page(result.report_path, Path(tmp) / "profile", width=1400, height=900) as page:
            await page.screenshot(out / "report-top.png")
            top, bottom = await page.evaluate(
                "[document.getElementById('trend').getBoundingClientRect().top + scrollY - 12,"
                " document.getElementById('movers').getBoundingClientRect().top + scrollY + 420]")
            await page.screenshot(out / "report-trend.png", clip={"x": 0, "y": top, "width": 1400, "height": bottom - top})
            height = await page.evaluate("document.documentElement.scrollHeight")
            await page.call("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=0.5,
                            mobile=False)
            await page.screenshot(out / "report-example.png", clip={"x": 0, "y": 0, "width": 1400, "height": height})
    print(f"wrote report-top.png, report-trend.png and report-example.png into {out}")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS))
