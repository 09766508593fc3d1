"""Estimate error on a fresh store: ``backfill --dry-run`` without and with ``--probe`` against what the run spends.

For each case the emulator runs in its own process (no throttling, so every request is a page), and on a fresh
store:

* ``--dry-run`` (sends nothing): its ``expected_requests`` against the requests of a plain run into another
  fresh store;
* ``--dry-run --probe``: what the probe spent (and its allowance, max(2, 2%) of the run), its
  ``expected_requests`` against the requests of the run that follows it in the same store (which continues the
  probe's run and reuses its pages), and probe + run against the fewest requests the data allows
  (``ceil(groups / page size)``: one chain over the whole range).

Requests are the emulator's own counter. Cases (issue 12): a 12-month DAILY backfill and the demo fleet over 18
months (a MONTHLY part before the 13-month daily window, DAILY after it), both SERVICE x TAG:db-cluster on the
default fleet (240 clusters, page size 500). ``--quick`` runs one small case (30 clusters, page size 50, 3 months).

Target: the estimate with ``--probe`` within +-10%; probe + run <= 1.05 x the fewest.

    python -m bench.bench_estimate [--quick] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

TODAY = dt.date(2026, 11, 28)
GROUP_BY = ["--group-by", "SERVICE", "--group-by", "TAG:db-cluster"]
#: (name, start, end, clusters, page size)
CASES = (("12-month DAILY", "2025-11-01", "2026-11-01", 240, 500),
         ("demo fleet, 18 months", "2025-06-01", TODAY.isoformat(), 240, 500))
QUICK = (("3-month DAILY (small fleet)", "2026-08-01", "2026-11-01", 30, 50),)


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parent.parent / "src")
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                PYTHONPATH=f"{src}{os.pathsep}{path}" if path else src)


class _Emulator:
    def __init__(self, clusters: int, page_size: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dbcost", "emulator", "serve", "--today", TODAY.isoformat(), "--clusters",
             str(clusters), "--page-size", str(page_size)], stdout=subprocess.PIPE, text=True, env=_env())
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.proc.kill()
            raise SystemExit(f"emulator did not start: {self.url!r}")

    def requests(self) -> int:
        with urllib.request.urlopen(f"{self.url}/_emulator/stats", timeout=10) as r:
            return int(json.load(r)["requests"])

    def groups(self, start: str, end: str) -> int:
        """The groups the whole range holds at DAILY granularity (what the run stores)."""
        body = json.dumps({"TimePeriod": {"Start": start, "End": end}, "Granularity": "DAILY",
                           "Metrics": ["UnblendedCost"],
                           "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"},
                                       {"Type": "TAG", "Key": "db-cluster"}]}).encode()
        req = urllib.request.Request(f"{self.url}/_emulator/truth", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return int(json.load(r)["groups"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _backfill(url: str, db: Path, start: str, end: str, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "dbcost", "backfill", "--start", start, "--end", end, *GROUP_BY, "--endpoint-url",
           url, "--db", str(db), "--today", TODAY.isoformat(), "--max-rps", "200", "--max-requests", "0", "--json",
           *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900, check=False)
    if res.returncode != 0:
        raise SystemExit(f"backfill {' '.join(extra)} failed ({res.returncode}): {res.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def run_case(name: str, start: str, end: str, clusters: int, page_size: int) -> dict[str, Any]:
    emu = _Emulator(clusters, page_size)
    try:
        with tempfile.TemporaryDirectory() as d:
            plain = _backfill(emu.url, Path(d) / "a.duckdb", start, end, "--dry-run")
            before = emu.requests()
            _backfill(emu.url, Path(d) / "a.duckdb", start, end)
            plain_run = emu.requests() - before
            before = emu.requests()
            probe = _backfill(emu.url, Path(d) / "b.duckdb", start, end, "--dry-run", "--probe")
            probe_sent = emu.requests() - before
            before = emu.requests()
            run = _backfill(emu.url, Path(d) / "b.duckdb", start, end)
            probed_run = emu.requests() - before
        fewest = math.ceil(emu.groups(start, end) / page_size)
    finally:
        emu.close()
    return {
        "case": name, "start": start, "end": end, "clusters": clusters, "page_size": page_size,
        "plain_expected": plain["expected_requests"], "plain_run": plain_run,
        "plain_error": round(plain["expected_requests"] / plain_run - 1, 4),
        "probe_requests": probe_sent, "probe_allowance": probe["probe_allowance"],
        "probe_share": round(probe_sent / max(1, probed_run), 4),
        "probe_expected": probe["expected_requests"], "probed_run": probed_run,
        "probe_error": round(probe["expected_requests"] / probed_run - 1, 4),
        "pages_reused": run["pages_reused"], "fewest": fewest,
        "over_fewest": round((probe_sent + probed_run) / fewest, 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one small case")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results = [run_case(*c) for c in (QUICK if args.quick else CASES)]
    if args.json:
        print(json.dumps({"cases": results}, indent=2))
        return 0
    print("case                          dry-run: expected  run  error | --probe: sent (allowance)  expected  run  "
          "error  reused | (probe+run)/fewest")
    for r in results:
        print(f"{r['case']:<30} {r['plain_expected']:>17} {r['plain_run']:>4} {r['plain_error'] * 100:>+6.1f}% | "
              f"{r['probe_requests']:>15} ({r['probe_allowance']:>3}) {r['probe_expected']:>9} {r['probed_run']:>4} "
              f"{r['probe_error'] * 100:>+6.1f}% {r['pages_reused']:>7} | {r['over_fewest']:>18}")
    ok = all(abs(r["probe_error"]) <= 0.10 and r["probe_requests"] <= max(2, 0.02 * r["probed_run"])
             and r["over_fewest"] <= 1.05 for r in results)
    print("targets (probe estimate within 10%, probe <= max(2, 2%), probe+run <= 1.05 x fewest):",
          "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
