"""The CPU/RSS benchmark runs: its quick mode starts the emulator, runs the four contenders as child processes on
the same query and prints its table (a smoke test of the harness, not a measurement)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_cpu_benchmark_runs_in_quick_mode_and_prints_its_table(tmp_path: Path) -> None:
    """--quick: exit 0, one row per contender with its ratios, the targets line; every contender saw the same
    groups (the harness refuses otherwise)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-m", "bench.bench_cpu", "--quick"], check=False, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert "x aioboto3" in lines[1] and "x floor" in lines[1], proc.stdout
    rows = {line.split()[0]: line.split() for line in lines[2:6]}
    assert set(rows) == {"aioboto3", "floor", "fetch", "backfill"}, proc.stdout
    assert rows["aioboto3"][2] == "1.00x" and rows["floor"][3] == "1.00x", proc.stdout
    assert lines[-1].startswith("targets: "), proc.stdout
