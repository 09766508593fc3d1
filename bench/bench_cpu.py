"""CPU and memory benchmark: ``dbcost fetch`` and ``dbcost backfill`` against two reference clients.

Every contender is a child process talking to the same unthrottled emulator (no latency, no faults) for
the same query: DAILY UnblendedCost grouped by USAGE_TYPE x TAG:db-cluster over 92 days (2026-08-01 ..
2026-11-01, about 58,600 groups), pages of 1,000 groups (the emulator's ``--page-size``). Measured per
child from ``os.wait4``: process CPU (user + sys) and peak RSS (``ru_maxrss``); the emulator's own CPU is
not counted. The contenders:

* ``aioboto3``: a plain aioboto3 paging loop building one tuple (start, key, key, ``Decimal`` amount, unit)
  per group; what a user writes first;
* ``floor``: aiohttp + orjson doing the same; signing is omitted (a static, well-formed ``Authorization``
  header: the emulator checks its form, not the signature; SigV4 of ~60 requests costs milliseconds);
* ``fetch``: ``dbcost fetch`` to a JSONL file (the real CLI);
* ``backfill``: ``dbcost backfill`` into a fresh DuckDB store (the real CLI; the plan's units in parallel).

Every child imports compiled bytecode, as an installed package does (pip compiles it at install): the
checkout's ``src/`` and ``bench/`` are compiled once (``compileall``, into their ``__pycache__``, which git
ignores) before the rounds. Without that, a checkout run where ``PYTHONDONTWRITEBYTECODE`` is set (CI,
sandboxes) compiles every dbcost module in every child (about 0.1 s of a backfill's CPU) while the reference
clients' libraries come compiled from site-packages; ``--cold`` measures that way anyway.

Rounds take turns (each round runs every contender once), so a busy spell of a shared machine hits all of
them; the median of ``--rounds`` (3) is reported, with ratios in one table. ``--long`` adds the peak RSS of
a 13-month backfill of the same fleet (flat memory: it must stay at most 200 MB like the 3-month one);
``--imports`` adds the CPU and RSS of importing the heavy libraries alone, and all each contender loads (what
dominates what is left: a share of every figure is paid before the first request).

Targets (issue 12; benchmarks, not tests): backfill CPU <= 1.0x the aioboto3 loop and <= 2.5x the floor,
fetch lower; peak RSS <= 200 MB.

    python -m bench.bench_cpu [--rounds 3] [--long] [--imports] [--cold] [--json]
    python -m bench.bench_cpu --quick        # a smoke test: 3 days, small fleet, one round
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench._emulator import serve_emulator

TODAY = dt.date(2026, 11, 28)
START, END = "2026-08-01", "2026-11-01"  # 92 days
LONG_START = "2025-10-01"  # 13 months to END
GROUP_BY = ("USAGE_TYPE", "TAG:db-cluster")
PAGE_SIZE = 1000
ROOT = Path(__file__).resolve().parent.parent
ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
       # the children import this checkout (dbcost from src/, the reference clients from bench/), wherever run from
       "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


# ------------------------------------------------------------------------------- the reference clients


def _request(start: str, end: str) -> dict[str, Any]:
    return {"TimePeriod": {"Start": start, "End": end}, "Granularity": "DAILY", "Metrics": ["UnblendedCost"],
            "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}, {"Type": "TAG", "Key": "db-cluster"}]}


def _collect(page: dict[str, Any], rows: list[tuple[str, str, str, Decimal, str]]) -> None:
    """What each reference client does per group: one tuple (day, key, key, ``Decimal`` amount, unit)."""
    for result in page["ResultsByTime"]:
        day = result["TimePeriod"]["Start"]
        for g in result["Groups"]:
            m = g["Metrics"]["UnblendedCost"]
            rows.append((day, g["Keys"][0], g["Keys"][1], Decimal(m["Amount"]), m["Unit"]))


async def _aioboto3_loop(url: str, start: str, end: str) -> int:
    import aioboto3

    rows: list[tuple[str, str, str, Decimal, str]] = []
    session = aioboto3.Session()
    async with session.client("ce", endpoint_url=url, region_name="us-east-1") as ce:
        params = _request(start, end)
        while True:
            page = await ce.get_cost_and_usage(**params)
            _collect(page, rows)
            token = page.get("NextPageToken")
            if not token:
                return len(rows)
            params["NextPageToken"] = token


async def _aiohttp_loop(url: str, start: str, end: str) -> int:
    import aiohttp
    import orjson

    rows: list[tuple[str, str, str, Decimal, str]] = []
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSInsightsIndexService.GetCostAndUsage",
        "X-Amz-Date": now,
        # signing omitted: the form the emulator checks, not a signature
        "Authorization": f"AWS4-HMAC-SHA256 Credential=bench/{now[:8]}/us-east-1/ce/aws4_request, "
                         "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64,
    }
    async with aiohttp.ClientSession() as http:
        params = _request(start, end)
        while True:
            async with http.post(url + "/", data=orjson.dumps(params), headers=headers) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise SystemExit(f"floor: HTTP {resp.status}: {body[:200]!r}")
            page = orjson.loads(body)
            _collect(page, rows)
            token = page.get("NextPageToken")
            if not token:
                return len(rows)
            params["NextPageToken"] = token


# ------------------------------------------------------------------------------------- the harness


@dataclass
class Sample:
    cpu_s: float
    rss_mb: float
    wall_s: float
    groups: int


def start_emulator(quick: bool) -> tuple[subprocess.Popen[str], str]:
    options = ["--today", TODAY.isoformat(), "--page-size", str(PAGE_SIZE)]
    if quick:
        options += ["--clusters", "24"]
    return serve_emulator(*options, env={**os.environ, **ENV})


def measure(cmd: list[str], groups_from: Path | None = None) -> Sample:
    """Run ``cmd`` as a child process; its CPU (user + sys) and peak RSS come from ``wait4``."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env={**os.environ, **ENV})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code
        out.seek(0)
        err.seek(0)
        text = out.read()
        if code != 0:
            raise SystemExit(f"{' '.join(cmd[:4])}... failed ({code}): {err.read()[-2000:]}")
    if groups_from is not None:
        with groups_from.open("rb") as f:
            groups = sum(1 for _ in f)
    else:
        doc = json.loads(text)  # the reference clients' one line, backfill's --json summary
        groups = int(doc.get("groups", doc.get("records", 0)))
    return Sample(usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, wall, groups)


def contenders(url: str, start: str, end: str, work: Path) -> dict[str, tuple[list[str], Path | None]]:
    py = sys.executable
    common = ["--start", start, "--end", end, "--endpoint-url", url, "--max-rps", "10000",
              "--max-requests", "0", *(a for g in GROUP_BY for a in ("--group-by", g))]
    jsonl = work / "fetch.jsonl"
    return {
        "aioboto3": ([py, "-m", "bench.bench_cpu", "--client", "aioboto3", "--url", url, "--start", start,
                      "--end", end], None),
        "floor": ([py, "-m", "bench.bench_cpu", "--client", "aiohttp", "--url", url, "--start", start,
                   "--end", end], None),
        "fetch": ([py, "-m", "dbcost", "fetch", *common, "--output", str(jsonl)], jsonl),
        "backfill": ([py, "-m", "dbcost", "backfill", *common, "--db", str(work / "bench.duckdb"),
                      "--today", TODAY.isoformat(), "--json"], None),
    }


#: what a backfill's own code loads (the CLI, the command, the use-case); the libraries are imported by them lazily
_BACKFILL_OWN = "dbcost.cli, dbcost.cli.backfill, dbcost.jobs.backfill"
#: (label, modules imported, the contender whose start-up they are, if any). pyarrow is the Parquet sinks' and
#: exports' (the store stages through nanoarrow): not in a backfill's set
_IMPORT_SETS = (
    ("python", "", None), ("floor's (aiohttp, orjson)", "aiohttp, orjson", "floor"),
    ("aioboto3", "aioboto3", "aioboto3"), ("duckdb", "duckdb", None), ("nanoarrow", "nanoarrow", None),
    ("pyarrow", "pyarrow", None), ("dbcost cli", "dbcost.cli", None), ("dbcost backfill's own", _BACKFILL_OWN, None),
    ("all a backfill loads", f"aioboto3, duckdb, nanoarrow, {_BACKFILL_OWN}", "backfill"),
)


def _imports(rounds: int) -> dict[str, dict[str, float]]:
    """CPU (median of ``rounds``) and peak RSS of a child that only imports what is named: what each contender
    pays before its first request (the floor under its figures), and the heavy libraries one by one."""
    out: dict[str, dict[str, float]] = {}
    for label, modules, _ in _IMPORT_SETS:
        code = f"import {modules}; " if modules else ""
        runs = [measure([sys.executable, "-c", f"{code}print('{{}}')"]) for _ in range(rounds)]
        out[label] = {"cpu_s": round(statistics.median(r.cpu_s for r in runs), 3),
                      "peak_rss_mb": round(max(r.rss_mb for r in runs), 1)}
    return out


def _compile() -> None:
    """The checkout's bytecode, compiled once for every child (module docstring). Not a ``PYTHONPYCACHEPREFIX``:
    that would move the standard library's and site-packages' bytecode out of the children's reach too."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src"), str(ROOT / "bench")], check=True,
                   stdout=subprocess.DEVNULL, env=env)


def run(rounds: int, quick: bool, long: bool, imports: bool, cold: bool = False) -> dict[str, Any]:
    if not cold:
        _compile()
    start, end = ("2026-10-01", "2026-10-04") if quick else (START, END)
    emu, url = start_emulator(quick)
    samples: dict[str, list[Sample]] = {}
    try:
        for _ in range(rounds):
            for name in ("aioboto3", "floor", "fetch", "backfill"):
                with tempfile.TemporaryDirectory() as d:
                    cmd, groups_from = contenders(url, start, end, Path(d))[name]
                    samples.setdefault(name, []).append(measure(cmd, groups_from))
        long_rss: dict[str, float] = {}
        if long:
            for label, s in (("3 months", START), ("13 months", LONG_START)):
                with tempfile.TemporaryDirectory() as d:
                    cmd, _ = contenders(url, s, END, Path(d))["backfill"]
                    long_rss[label] = round(measure(cmd).rss_mb, 1)
    finally:
        emu.terminate()
        emu.wait(timeout=10)
    med = {name: Sample(statistics.median(s.cpu_s for s in ss), statistics.median(s.rss_mb for s in ss),
                        statistics.median(s.wall_s for s in ss), ss[0].groups) for name, ss in samples.items()}
    groups = {name: m.groups for name, m in med.items()}
    if len(set(groups.values())) != 1:
        raise SystemExit(f"the contenders did not see the same groups: {groups}")
    report: dict[str, Any] = {
        "query": {"start": start, "end": end, "group_by": list(GROUP_BY), "page_size": PAGE_SIZE,
                  "groups": med["floor"].groups},
        "rounds": rounds,
        "bytecode": "compiled in each child (--cold)" if cold else "compiled once, before the rounds",
        "median": {name: {"cpu_s": round(m.cpu_s, 3), "peak_rss_mb": round(m.rss_mb, 1), "wall_s": round(m.wall_s, 2)}
                   for name, m in med.items()},
        "ratios": {f"{a}/{b}": round(med[a].cpu_s / med[b].cpu_s, 2)
                   for a in ("fetch", "backfill") for b in ("aioboto3", "floor")},
    }
    if long_rss:
        report["backfill_peak_rss_mb"] = long_rss
    if imports:
        report["imports"] = imp = _imports(rounds)
        # each contender's CPU less what its imports alone cost: its work beyond start-up (a difference of two
        # noisy figures: read it as rough where the work is small, as the floor's is; the targets stay end to end)
        report["less_imports_cpu_s"] = {who: round(med[who].cpu_s - imp[label]["cpu_s"], 3)
                                        for label, _, who in _IMPORT_SETS if who is not None}
    r = report["ratios"]
    rss_ok = max(m.rss_mb for m in med.values()) <= 200 and all(v <= 200 for v in long_rss.values())
    report["targets_met"] = {
        "backfill <= 1.0x aioboto3": r["backfill/aioboto3"] <= 1.0,
        "backfill <= 2.5x floor": r["backfill/floor"] <= 2.5,
        "fetch < backfill": med["fetch"].cpu_s < med["backfill"].cpu_s,
        "peak RSS <= 200 MB": rss_ok,
    }
    return report


def print_table(report: dict[str, Any]) -> None:
    q = report["query"]
    print(f"{q['groups']} groups, {q['start']}..{q['end']} DAILY {' x '.join(q['group_by'])}, pages of "
          f"{q['page_size']}; median of {report['rounds']}; CPU = user + sys of the child process; bytecode "
          f"{report['bytecode']}")
    print("contender   cpu_s  x aioboto3  x floor  peak_rss_mb  wall_s")
    base, floor = report["median"]["aioboto3"]["cpu_s"], report["median"]["floor"]["cpu_s"]
    for name, m in report["median"].items():
        print(f"{name:<10} {m['cpu_s']:>6.2f}  {m['cpu_s'] / base:>9.2f}x  {m['cpu_s'] / floor:>6.2f}x  "
              f"{m['peak_rss_mb']:>11.1f}  {m['wall_s']:>6.2f}")
    for label, mb in report.get("backfill_peak_rss_mb", {}).items():
        print(f"backfill {label}: peak RSS {mb} MB")
    if "imports" in report:
        print("import alone (cpu_s, peak RSS MB): "
              + ", ".join(f"{k} {v['cpu_s']:.2f} s {v['peak_rss_mb']} MB" for k, v in report["imports"].items()))
        work = report["less_imports_cpu_s"]
        # a ratio to less than 0.1 s of work (the floor's in --quick) would be noise divided by noise
        ratios = [f"{work['backfill'] / work[b]:.2f}x {b}" for b in ("floor", "aioboto3") if work[b] >= 0.1]
        print("cpu_s less the imports alone: " + ", ".join(f"{k} {v:.2f}" for k, v in work.items())
              + (f"; backfill {', '.join(ratios)}" if ratios else ""))
    print("targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in report["targets_met"].items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a smoke test: 3 days of a small fleet, one round")
    ap.add_argument("--long", action="store_true", help="also the peak RSS of a 3- and a 13-month backfill")
    ap.add_argument("--imports", action="store_true", help="also the CPU and RSS of importing the heavy libraries alone")
    ap.add_argument("--cold", action="store_true",
                    help="no bytecode compiled beforehand (with PYTHONDONTWRITEBYTECODE, each child compiles dbcost)")
    ap.add_argument("--json", action="store_true")
    # the reference clients, run as children by the harness
    ap.add_argument("--client", choices=["aioboto3", "aiohttp"], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--start", default=START, help=argparse.SUPPRESS)
    ap.add_argument("--end", default=END, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.client:
        loop = _aioboto3_loop if args.client == "aioboto3" else _aiohttp_loop
        print(json.dumps({"groups": asyncio.run(loop(args.url, args.start, args.end))}))
        return 0
    report = run(1 if args.quick else args.rounds, args.quick, args.long, args.imports, args.cold)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
