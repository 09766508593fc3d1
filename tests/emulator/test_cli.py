"""``dbcost emulator serve`` as a process: one URL line, serves, exits 0 on a signal; bad options exit 2."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

import dbcost
from dbcost.emulator.cli import app

#: the child imports the same dbcost as this test process, wherever the checkout is
_SRC = str(Path(dbcost.__file__).resolve().parents[1])
_SERVE = [sys.executable, "-m", "dbcost.emulator.cli", "serve", "--port", "0", "--clusters", "12",
          "--today", "2026-11-28", "--page-size", "50"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_serve_prints_url_serves_and_exits_zero_on_signal(sig: signal.Signals) -> None:
    """The only stdout line is the bound URL; the server answers there; SIGINT/SIGTERM exit 0."""
    env = {**os.environ, "PYTHONPATH": _SRC}
    proc = await asyncio.create_subprocess_exec(
        *_SERVE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode().strip()
        assert line.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http, http.get(line + "/_emulator/fleet") as resp:
            assert resp.status == 200
            assert len((await resp.json())["clusters"]) == 12
        proc.send_signal(sig)
        async with asyncio.timeout(30):
            rest, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert rest == b""
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--fault-rate", "1.5"], "fault_rate must be a probability between 0 and 1"),
        (["--drop-rate", "-0.1"], "drop_rate must be a probability between 0 and 1"),
        (["--malformed-rate", "2"], "malformed_rate must be a probability"),
        (["--today", "2026-13-01"], "today must be a date YYYY-MM-DD"),
        (["--max-rps", "0"], "max_rps must be a number > 0"),
        (["--page-size", "0"], "page_size must be an integer >= 1"),
        (["--fault-rate", "0.6", "--drop-rate", "0.6"], "fault_rate + drop_rate must be <= 1"),
        (["--estimated-through-day", "-1"], "estimated_through_day must be an integer >= 0"),
        (["--estimated-through-day", "29"], "estimated_through_day must be <= 28"),
    ],
)
def test_bad_option_values_are_one_line_and_exit_2(args: list[str], fragment: str) -> None:
    """A bad knob is a single 'error: ...' line on stderr and exit code 2; nothing is served."""
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]
    assert result.stdout == ""


def test_help_lists_every_option() -> None:
    """``serve --help`` documents each knob by its exact option name."""
    result = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in ("--host", "--port", "--seed", "--clusters", "--accounts", "--today", "--max-rps", "--burst",
                   "--latency-ms", "--fault-rate", "--drop-rate", "--malformed-rate", "--page-size",
                   "--token-ttl-s", "--estimated-through-day", "--no-resource-data"):
        assert option in result.stdout


async def test_serve_no_resource_data_turns_the_opt_in_off() -> None:
    """``--no-resource-data`` reaches the running emulator's configuration (the not-enabled answer is on)."""
    env = {**os.environ, "PYTHONPATH": _SRC}
    proc = await asyncio.create_subprocess_exec(
        *_SERVE, "--no-resource-data", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            url = (await proc.stdout.readline()).decode().strip()
        async with aiohttp.ClientSession() as http, http.post(url + "/_emulator/config", json={}) as resp:
            assert resp.status == 200
            assert (await resp.json())["resource_data_enabled"] is False
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await proc.communicate()
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
