"""Headless Chromium driven through the DevTools protocol, for the report's browser tests and screenshots.

:func:`open_page` starts ``/usr/bin/chromium`` (headless, a fresh profile, no network services) on one file
with a remote-debugging port chosen by Chromium itself (read from ``DevToolsActivePort`` in the profile),
connects to the page's DevTools WebSocket with aiohttp and yields a :class:`Page`: evaluate JavaScript,
click an element with real mouse events, size the viewport, take a screenshot. Nothing beyond the
standard library, aiohttp (a dependency already) and Chromium.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

CHROMIUM = "/usr/bin/chromium"


def chromium() -> str:
    """The Chromium binary, or a failure that says how to install it."""
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if path is None:
        pytest.fail(f"headless Chromium not found at {CHROMIUM}: run `bash .ci/setup` once (it apt-installs "
                    "the Debian package `chromium`)")
    return path


class Page:
    """One page over its DevTools WebSocket: ``call`` sends a command and returns its result."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        await self._ws.send_json({"id": msg_id, "method": method, "params": params})
        async with asyncio.timeout(60):
            while True:
                msg = json.loads((await self._ws.receive()).data)
                if msg.get("id") == msg_id:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    result: dict[str, Any] = msg.get("result", {})
                    return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited), as JSON."""
        out = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in out:
            raise RuntimeError(f"javascript failed: {out['exceptionDetails']}")
        return out["result"].get("value")

    async def viewport(self, width: int, height: int) -> None:
        """Size the viewport (CSS pixels, scale 1) and wait for the layout to settle."""
        await self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                        mobile=False)
        await self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    async def click(self, selector: str) -> None:
        """Scroll the element into view and click its centre with real mouse events (press, release)."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView({{block: 'center'}});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        x, y = box
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        await self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    async def screenshot(self, path: Path, *, full_page: bool = False, clip: dict[str, float] | None = None) -> None:
        """A PNG of the viewport (or the whole page, or ``clip`` in page coordinates) into ``path``."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page or clip is not None}
        if full_page:
            size = await self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
        elif clip is not None:
            params["clip"] = {**clip, "scale": 1}
        data = (await self.call("Page.captureScreenshot", **params))["data"]
        path.write_bytes(base64.b64decode(data))


@contextlib.asynccontextmanager
async def open_page(html_file: Path, profile: Path, *, width: int = 1400, height: int = 900) -> AsyncIterator[Page]:
    """Chromium on ``html_file`` (offline: no network services, a fresh profile), as a DevTools :class:`Page`."""
    profile.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={profile}",
        f"--window-size={width},{height}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        async with asyncio.timeout(60):
            while not port_file.exists() or not port_file.read_text().strip():  # noqa: ASYNC110 - a file, no event
                await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(60):
                while True:
                    async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                        pages = [t for t in await resp.json() if t.get("type") == "page"]
                    if pages:
                        break
                    await asyncio.sleep(0.05)
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024) as ws:
                page = Page(ws)
                await page.viewport(width, height)
                await page.call("Page.navigate", url=html_file.as_uri())
                async with asyncio.timeout(60):  # until the file is the page and has loaded
                    while True:
                        with contextlib.suppress(RuntimeError):  # the blank page's context ends mid-call
                            if await page.evaluate(f"location.href === {json.dumps(html_file.as_uri())} && "
                                                   "document.readyState === 'complete'"):
                                break
                        await asyncio.sleep(0.05)
                await page.viewport(width, height)
                yield page
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
