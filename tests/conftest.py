"""Shared fixtures: fake AWS credentials, free ports, and real local servers (moto) on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: Real Cost Explorer responses from public sources (provenance in SOURCES.md there).
SAMPLES = Path(__file__).resolve().parent / "data" / "samples"

#: The emulator's "today" for in-process runs (the pipeline and job tests), so windows are reproducible.
TODAY = dt.date(2026, 11, 28)

#: Explicit keys for in-process runs against the emulator (it checks the signature's shape, not the keys),
#: so no run reads the credential chain.
CREDS = ("k", "s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test runs with fake credentials and no user AWS config, so nothing can reach real AWS."""
    empty = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_COST_EXPLORER", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's real HTTP server (``moto[server]``) on a free loopback port, for the whole session."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/moto-api/")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def moto(moto_url: str) -> str:
    """moto's server, reset to an empty state for this test."""
    req = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=5).close()
    return moto_url


async def run_cli_async(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180  # noqa: ASYNC109 - a subprocess deadline
) -> tuple[int, str, str]:
    """Run ``python -m dbcost ARGS`` as a subprocess without blocking the event loop (so an in-process
    emulator keeps serving). Returns (exit code, stdout, stderr)."""
    import asyncio

    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dbcost", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=full_env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def kill_after_pages(proc: Any, emu: Any, pages: int) -> bool:
    """SIGKILL ``proc`` once the in-process emulator ``emu`` has served ``pages`` more pages than when this
    was called; False if the process ended first. The kill point is a point of progress, not of wall time,
    so it lands mid-run on a fast machine as on a slow one."""
    import asyncio
    import signal

    target = emu.stats()["pages_served"] + pages
    while proc.returncode is None:
        if emu.stats()["pages_served"] >= target:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            return True
        await asyncio.sleep(0.005)
    return False
