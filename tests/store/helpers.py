"""Shared helpers for the store tests: one two-key dataset, records for it, a unit loaded end to end, and a
look at the raw tables.

Kept out of ``conftest.py`` so test modules can import them by name. :func:`sql` reads the store's tables
through its private connection: the store's own tests check what it wrote; nothing outside the store package
and its tests may do that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from dbcost.models import CostQuery, CostRecord, Metric, Quarantined
from dbcost.sinks.base import UnitRef
from dbcost.store import Store

QUERY = CostQuery.build(start="2026-09-01", end="2026-09-03", group_by=["SERVICE", "TAG:team"],
                        metrics=["UnblendedCost", "UsageQuantity"])
UNIT = UnitRef("", QUERY.fingerprint, "t1", dt.date(2026, 9, 1), dt.date(2026, 9, 3), "DAILY", QUERY.columns)
UID = "u1"


def rec(day: int, svc: str, team: str, amount: str, *, estimated: bool = False) -> CostRecord:
    return CostRecord(f"2026-09-0{day}", f"2026-09-0{day + 1}", "DAILY", {"SERVICE": svc, "TAG:team": team},
                      {"UnblendedCost": Metric(Decimal(amount), "USD"), "UsageQuantity": Metric(Decimal("1"), "Hrs")},
                      estimated)


def ref(run_id: str, target: str = UNIT.target) -> UnitRef:
    return UnitRef(run_id, UNIT.dataset, target, UNIT.start, UNIT.end, UNIT.granularity, UNIT.key_names)


def load(store: Store, records: list[CostRecord], quarantined: list[Quarantined] | None = None, *,
         target: str = UNIT.target, label: str | None = None) -> tuple[str, int]:
    """One run of one unit: begin, register, start, two pages staged, commit, checkpoint."""
    run_id, version = store.begin_run("backfill", plan_id="p", args={})
    unit = ref(run_id, target)
    store.register_dataset(QUERY, label)
    store.start_unit(run_id, unit, UID, fresh=True)
    half = len(records) // 2
    store.stage_page(run_id, UID, QUERY.columns, 1, records[:half], quarantined or [], "tok")
    store.stage_page(run_id, UID, QUERY.columns, 2, records[half:], [], None)
    store.commit_unit(run_id, version, unit, UID)
    store.checkpoint_unit(run_id, UID)
    return run_id, version


def sql(store: Store, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``text`` run on the store's own connection (the tests' look inside)."""
    return store._db.all(text, params)


def rows(store: Store) -> list[tuple[Any, ...]]:
    return sql(store, "SELECT period_start, key1, key2, metric, amount, version FROM records ORDER BY 1, 2, 3, 4")
