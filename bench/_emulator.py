"""The emulator as the benchmarks start it: ``dbcost emulator serve`` in a process of its own (its CPU is not the
client's), the URL read from the one line it prints."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

__all__ = ["serve_emulator"]


def serve_emulator(*options: str, env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """``dbcost emulator serve OPTIONS``; the process and its URL (SystemExit if it does not come up)."""
    proc = subprocess.Popen([sys.executable, "-m", "dbcost", "emulator", "serve", *options],
                            stdout=subprocess.PIPE, text=True, env=dict(env) if env is not None else None)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"emulator did not start: {url!r}")
    return proc, url
