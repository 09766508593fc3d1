"""The embedded store: one DuckDB file holding records, quarantine, runs, checkpoints and change history.

The store package is the only owner of the store's SQL and the only importer of ``duckdb``. Its parts:

* ``_db``: the connection, its settings (:class:`~dbcost.config.StoreSettings`), transactions, and error
  translation: every DuckDB call leaves a ``duckdb.Error`` as :class:`~dbcost.errors.StoreError`;
* ``_schema``: the schema as numbered migrations (a store from an older release is upgraded in place, in
  one transaction) and the status values of runs and units (:class:`RunStatus`, :class:`UnitStatus`);
* ``records``: datasets, staging pages, committing a unit by replacement, reading records back;
* ``state``: runs and versions, units and page checkpoints, coverage, quota state, job metadata;
* ``reads``: named read models for the use-cases (attribution amounts, freshness, metrics, dataset
  summaries, exports);
* ``aio``: :class:`AsyncStore`, the store on one dedicated thread for async code.

:class:`Store` is those parts over one connection, a flat API (``store.commit_unit(...)``,
``store.freshness(...)``): callers need not know which part answers. Open one with :func:`open_store`.
"""

from __future__ import annotations

from pathlib import Path

from dbcost.config import DEFAULT_DB, StoreSettings
from dbcost.store._db import Rows
from dbcost.store._schema import SCHEMA_VERSION, RunStatus, UnitStatus
from dbcost.store._store import Store
from dbcost.store.aio import AsyncStore
from dbcost.store.reads import AmountRow, DatasetSummary, ExportSelection, LastSuccess, LatestRun
from dbcost.store.records import StageBatch, UnitDiff
from dbcost.store.state import DoneWindow, UnitProgress

__all__ = [
    "SCHEMA_VERSION",
    "AmountRow",
    "AsyncStore",
    "DatasetSummary",
    "DoneWindow",
    "ExportSelection",
    "LastSuccess",
    "LatestRun",
    "Rows",
    "RunStatus",
    "StageBatch",
    "Store",
    "UnitDiff",
    "UnitProgress",
    "UnitStatus",
    "open_store",
]


def open_store(store: StoreSettings | str | Path = DEFAULT_DB, *, read_only: bool = False) -> Store:
    """The store at ``store`` (a path or :class:`~dbcost.config.StoreSettings`), created or upgraded in place
    (``read_only``: upgraded, never created); use it as a context manager (``with dbcost.open_store(p) as s:``)."""
    return Store(store, read_only=read_only)
