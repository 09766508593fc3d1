"""Backfill benchmark: how close the pipeline runs to the allowed rate, and its memory.

Starts the emulator in its own process with a rate limit (``--max-rps``) and realistic latency
(``--latency-ms``, default 300), then runs ``dbcost backfill`` for 3 and 13 months as a subprocess with
the same ``--max-rps``, and reports, per range:

* achieved rate: successful requests per second of wall time, as a share of the emulator's limit;
* throttled share: attempts answered with LimitExceededException / all attempts;
* wall time against the ideal (requests / rate);
* peak RSS of the backfill process (from ``wait4``), which must not grow with the range.

Targets (issue 4): >= 90% of the allowed rate, < 2% throttled, peak RSS < 200 MB and flat.

    python -m bench.bench_backfill [--rps 20] [--latency-ms 300] [--page-size 100] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._emulator import serve_emulator

TODAY = dt.date(2026, 11, 28)


def start_emulator(rps: float, latency_ms: float, page_size: int) -> tuple[subprocess.Popen[str], str]:
    return serve_emulator("--today", TODAY.isoformat(), "--max-rps", str(rps), "--latency-ms", str(latency_ms),
                          "--page-size", str(page_size))


def run_backfill(url: str, start: str, rps: float, concurrency: int, db: Path) -> dict[str, Any]:
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    cmd = [sys.executable, "-m", "dbcost", "backfill", "--start", start, "--end", TODAY.isoformat(),
           "--group-by", "SERVICE", "--group-by", "TAG:db-cluster", "--endpoint-url", url, "--db", str(db),
           "--max-rps", str(rps), "--max-concurrency", str(concurrency), "--today", TODAY.isoformat(), "--json"]
    t0 = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"backfill failed ({proc.returncode}): {err.read()[-2000:]}")
        summary: dict[str, Any] = json.loads(out.read())
    summary["wall_s"] = wall
    summary["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rps", type=float, default=20.0, help="the emulator's limit, also the client's --max-rps")
    ap.add_argument("--latency-ms", type=float, default=300.0)
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--client-rps", type=float, default=None,
                    help="the client's --max-rps (default: the emulator's limit); above it, the adaptive governor "
                         "has to find the limit from throttles")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    emu, url = start_emulator(args.rps, args.latency_ms, args.page_size)
    results: list[dict[str, Any]] = []
    try:
        for months, start in ((3, "2026-09-01"), (13, "2025-11-01")):
            with tempfile.TemporaryDirectory() as d:
                s = run_backfill(url, start, args.client_rps or args.rps, args.concurrency, Path(d) / "bench.duckdb")
            ideal = s["billed_requests"] / args.rps
            results.append({
                "months": months,
                "units": s["units"],
                "requests": s["requests"],
                "billed_requests": s["billed_requests"],
                "throttled": s["throttled"],
                "records": s["records"],
                "wall_s": round(s["wall_s"], 2),
                "pipeline_s": round(s["elapsed_s"], 2),
                "ideal_s": round(ideal, 2),
                "achieved_rps": round(s["billed_requests"] / s["wall_s"], 2),
                "share_of_allowed_rate": round(s["billed_requests"] / s["wall_s"] / args.rps, 3),
                "share_of_allowed_rate_in_pipeline": round(s["billed_requests"] / s["elapsed_s"] / args.rps, 3),
                "throttled_share": round(s["throttled"] / max(1, s["requests"]), 4),
                "peak_rss_mb": round(s["peak_rss_mb"], 1),
            })
    finally:
        emu.terminate()
        emu.wait(timeout=10)
    if args.json:
        print(json.dumps({"rps": args.rps, "latency_ms": args.latency_ms, "results": results}, indent=2))
        return 0
    print(f"emulator limit {args.rps:g} req/s, client --max-rps {args.client_rps or args.rps:g}, "
          f"latency {args.latency_ms:g} ms, page size {args.page_size}")
    print("months  units  requests  throttled  records   wall_s  pipeline_s  ideal_s  rate/allowed (process, "
          "pipeline)  throttled%  peak_rss_mb")
    for r in results:
        print(f"{r['months']:>6}  {r['units']:>5}  {r['requests']:>8}  {r['throttled']:>9}  {r['records']:>7}  "
              f"{r['wall_s']:>7}  {r['pipeline_s']:>10}  {r['ideal_s']:>7}  "
              f"{r['share_of_allowed_rate'] * 100:>13.1f}%  {r['share_of_allowed_rate_in_pipeline'] * 100:>8.1f}%  "
              f"{r['throttled_share'] * 100:>9.2f}%  {r['peak_rss_mb']:>11}")
    ok = all(r["share_of_allowed_rate_in_pipeline"] >= 0.9 and r["throttled_share"] < 0.02 and r["peak_rss_mb"] < 200
             for r in results)
    print("targets (>=90% of rate, <2% throttled, <200 MB):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
