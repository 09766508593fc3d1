"""Helpers for the scenario tests (the CLI end to end): an in-process emulator, CLI runs against it, and exported sums."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.conftest import run_cli_async

TODAY = dt.date(2026, 11, 28)
TODAY_S = TODAY.isoformat()


async def dbcost(*args: str, timeout: float = 240) -> tuple[int, str, str]:  # noqa: ASYNC109 - subprocess deadline
    return await run_cli_async(*args, "--today", TODAY_S, timeout=timeout) if args and args[0] in (
        "backfill", "sync") else await run_cli_async(*args, timeout=timeout)


def exported(path: Path) -> list[dict[str, Any]]:
    """Records from `dbcost export` JSONL, without the run bookkeeping (version, run_id)."""
    out = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        r.pop("version")
        r.pop("run_id")
        out.append(r)
    return out


def sums(records: list[dict[str, Any]], metric: str = "UnblendedCost") -> Decimal:
    return sum((Decimal(r["metrics"][metric]["amount"]) for r in records if metric in r["metrics"]), Decimal(0))


def by_keys(records: list[dict[str, Any]], metric: str = "UnblendedCost") -> dict[tuple[tuple[str, str], ...], Decimal]:
    out: dict[tuple[tuple[str, str], ...], Decimal] = {}
    for r in records:
        k = tuple(sorted(r["keys"].items()))
        out[k] = out.get(k, Decimal(0)) + Decimal(r["metrics"][metric]["amount"])
    return out
