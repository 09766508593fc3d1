"""Hostile servers on 127.0.0.1 and the helpers the hostile suite shares.

A :class:`Hostile` server speaks just enough AWS JSON 1.1 (``POST /`` with ``X-Amz-Target``) for botocore to
take its answers as Cost Explorer's, and answers every request with whatever its *behaviour* returns: an
endless chain of fresh tokens, a body trickled a byte at a time, the wrong GroupDefinitions, a truncated or
HTML body, a 429 with no error code. The CLI runs as a real subprocess (``python -m dbcost``), so what is
tested is what a user meets: exit codes, every stderr line, the files left behind.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson
import pytest
from aiohttp import web

from tests.conftest import run_cli_async

#: backfill/sync runs pretend today is this date (the emulator's too), so plans are reproducible
TODAY = dt.date(2026, 11, 28)
TODAY_S = TODAY.isoformat()

#: what the query in most hostile tests groups by, in API form
SERVICE_TEAM = [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "team"}]
Q = ["--group-by", "SERVICE", "--group-by", "TAG:team"]
#: fast enough that a test is never waiting on the governor
FAST = ["--max-rps", "1000"]

Behaviour = Callable[["Call"], Awaitable[web.StreamResponse]]


@dataclass
class Call:
    """One request as the behaviour sees it."""

    n: int  # 1-based, over the server's life
    operation: str
    body: dict[str, Any]
    request: web.Request

    @property
    def window(self) -> tuple[str, str]:
        period = self.body.get("TimePeriod") or {}
        return str(period.get("Start", "")), str(period.get("End", ""))

    @property
    def token(self) -> str | None:
        token = self.body.get("NextPageToken")
        return None if token is None else str(token)


def page(call: Call, groups: list[tuple[str, str, str]] | None = None, *, token: str | None = None,
         group_defs: list[dict[str, str]] | None = None, day: str | None = None) -> dict[str, Any]:
    """A well-formed GetCostAndUsage page for the call's window: ``groups`` are (service, team value, amount)
    on ``day`` (default: the window's first day)."""
    start, _ = call.window
    first = dt.date.fromisoformat(day or start)
    groups = [("Amazon RDS", "a", "1.25")] if groups is None else groups
    out: dict[str, Any] = {
        "GroupDefinitions": SERVICE_TEAM if group_defs is None else group_defs,
        "ResultsByTime": [{
            "TimePeriod": {"Start": first.isoformat(), "End": (first + dt.timedelta(days=1)).isoformat()},
            "Total": {},
            "Groups": [{"Keys": [svc, f"team${team}"], "Metrics": {"UnblendedCost": {"Amount": amt, "Unit": "USD"}}}
                       for svc, team, amt in groups],
            "Estimated": False,
        }],
        "DimensionValueAttributes": [],
    }
    if token is not None:
        out["NextPageToken"] = token
    return out


def answer(payload: dict[str, Any], status: int = 200, *, code: str | None = None) -> web.Response:
    """A JSON 1.1 response."""
    headers = {"x-amzn-RequestId": "hostile-0"}
    if code is not None:
        headers["x-amzn-ErrorType"] = code
    return web.Response(status=status, body=orjson.dumps(payload), headers=headers,
                        content_type="application/x-amz-json-1.1")


async def one_page(call: Call) -> web.StreamResponse:
    """A well-behaved server: one page per window, one group on its first day."""
    return answer(page(call))


class Hostile:
    """``async with Hostile(behaviour) as srv: ... srv.url ...``; ``srv.calls`` lists what it was asked."""

    def __init__(self, behaviour: Behaviour = one_page) -> None:
        self.behaviour = behaviour
        self.calls: list[Call] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    @property
    def requests(self) -> int:
        return len(self.calls)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        body = orjson.loads(raw or b"{}")
        call = Call(len(self.calls) + 1, target.rpartition(".")[2], body, request)
        self.calls.append(call)
        return await self.behaviour(call)


# ------------------------------------------------------------------------------------------- the CLI

async def cli(*args: str, timeout: float = 60) -> tuple[int, str, str]:  # noqa: ASYNC109 - subprocess deadline
    """``dbcost ARGS`` as a subprocess (backfill/sync pretend today is :data:`TODAY`)."""
    extra = ("--today", TODAY_S) if args and args[0] in ("backfill", "sync") else ()
    return await run_cli_async(*args, *extra, timeout=timeout)


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``dbcost ARGS`` in this process (typer's CliRunner: the same app, options and error handler, without an
    interpreter's start-up): for the tables of refusals, which never get as far as a request. Backfill/sync
    pretend today is :data:`TODAY`."""
    import logging

    from typer.testing import CliRunner

    from dbcost.cli import app

    extra = ("--today", TODAY_S) if args and args[0] in ("backfill", "sync") else ()
    try:
        result = CliRunner(env=env).invoke(app, [*args, *extra])
    finally:
        dbcost_log = logging.getLogger("dbcost")  # its handler wrote to the runner's stderr, now closed
        for handler in list(dbcost_log.handlers):
            dbcost_log.removeHandler(handler)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


class CountingServer:
    """A plain HTTP server on a thread that counts what reaches it and answers 500: for the in-process refusals,
    which must send nothing (``with CountingServer() as srv: ... srv.url ... srv.requests``)."""

    def __init__(self) -> None:
        import http.server
        import threading

        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                counter.requests += 1
                self.send_response(500)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.requests = 0
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


async def cli_each(*runs: tuple[str, ...], env: dict[str, str] | None = None,
                   timeout: float = 60) -> list[tuple[int, str, str]]:  # noqa: ASYNC109 - subprocess deadline
    """Several independent ``dbcost`` runs, two at a time (a run's cost is mostly its start-up, one core's
    worth): the refusal tables stay quick on a two-core machine."""
    gate = asyncio.Semaphore(2)

    async def one(args: tuple[str, ...]) -> tuple[int, str, str]:
        async with gate:
            extra = ("--today", TODAY_S) if args and args[0] in ("backfill", "sync") else ()
            return await run_cli_async(*args, *extra, env=env, timeout=timeout)

    return list(await asyncio.gather(*(one(r) for r in runs)))


async def spawn(*args: str) -> asyncio.subprocess.Process:
    """``dbcost ARGS`` started, not awaited (for the signal tests); stdout and stderr are pipes."""
    extra = ("--today", TODAY_S) if args and args[0] in ("backfill", "sync") else ()
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "dbcost", *args, *extra,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


def lines(err: str) -> list[str]:
    """stderr's lines, without blank ones."""
    return [line for line in err.splitlines() if line.strip()]


def assert_clean(err: str) -> None:
    """No traceback, no asyncio or aiohttp leak report, no rich box: what a user must never see."""
    for bad in ("Traceback", "Unclosed", "Task was destroyed", "Task exception was never retrieved",
                "was never awaited", "╭", "│", "ExceptionGroup"):
        assert bad not in err, f"{bad!r} in stderr:\n{err}"


def one_line(err: str, *needles: str) -> str:
    """stderr is exactly one line, clean, containing every needle; returns it."""
    assert_clean(err)
    got = lines(err)
    assert len(got) == 1, f"expected one line, got {len(got)}:\n{err}"
    for needle in needles:
        assert needle in got[0], f"{needle!r} not in {got[0]!r}"
    return got[0]


def resume_command(err: str) -> list[str]:
    """The ``--resume`` command a stopped run printed, as argv (``dbcost`` first)."""
    for line in lines(err):
        if "--resume" in line and "continue with: " in line:
            return shlex.split(line.split("continue with: ", 1)[1])
    raise AssertionError(f"no --resume command in:\n{err}")


# ------------------------------------------------------------------------------------- small filesystems

@dataclass
class Tmpfs:
    """A tmpfs mounted for one test (``size``); ``readonly()`` remounts it read-only."""

    path: Path

    def readonly(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True, capture_output=True)


def _mount(path: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` at ``path``; the reason when this machine does not allow it."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"mount failed: {exc}"
    if done.returncode != 0:
        return f"mount -t tmpfs failed: {done.stderr.strip() or done.returncode}"
    return None


@pytest.fixture
def tmpfs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Tmpfs]:
    """A small tmpfs (``@pytest.mark.parametrize('tmpfs', ['1m'], indirect=True)``; default 1m); skipped with
    the reason when mounting is not allowed here."""
    size = getattr(request, "param", "1m")
    path = tmp_path / "small"
    reason = _mount(path, size)
    if reason is not None:
        pytest.skip(reason)
    try:
        yield Tmpfs(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=10)


def fill(path: Path, leave: int = 0) -> None:
    """Fill the filesystem holding ``path`` until at most ``leave`` bytes are free."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    with (path / "filler").open("wb") as f:
        try:
            f.write(b"\0" * max(0, free - leave))
            f.flush()
        except OSError:
            pass


async def wait_for(pred: Callable[[], bool], timeout: float = 20.0) -> None:  # noqa: ASYNC109
    """Poll ``pred`` until true (or fail after ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def finish(proc: asyncio.subprocess.Process, timeout: float = 30) -> tuple[int, str, str]:  # noqa: ASYNC109
    """Wait for a spawned process; (exit code, stdout, stderr)."""
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
