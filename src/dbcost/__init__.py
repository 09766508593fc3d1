"""dbcost: async ingestion of AWS Cost Explorer data for database cost attribution and quota automation.

The public API, in one place::

    import asyncio, dbcost

    async def main() -> None:
        query = dbcost.CostQuery.build(start="2026-09-01", end="2026-11-01", group_by=["SERVICE"])
        result = await dbcost.fetch(query, dbcost.FetchSettings(profile="billing"))
        print(len(result.records), result.stats.cost_usd)

    asyncio.run(main())

* queries and records: :class:`CostQuery`, :class:`CostRecord`, :class:`Metric`, :class:`Quarantined`;
* settings: :class:`Settings` (the whole tree: targets, rate, retry, breaker, store, sinks),
  :class:`FetchSettings` (one target, resolved), :class:`TargetConfig`, :func:`load_targets`;
* one query: :func:`fetch`, :func:`fetch_pages`, :func:`open_client` (requests, pages, dollars: :class:`Stats`);
* use-cases: :func:`run_backfill` (backfill and sync), :func:`run_attribute`, :func:`run_quota_check`,
  :func:`run_demo`, with their specs;
* the store: :func:`open_store`;
* errors: :class:`DbcostError` is the root of every error dbcost raises (:mod:`dbcost.errors` has the tree).

Every name loads lazily: ``import dbcost`` costs the standard library and pydantic-free code only, and
each use-case pulls in its own libraries (aioboto3, duckdb, pyarrow, aiohttp) when first touched. Deeper
modules (``dbcost.jobs.*``, ``dbcost.store``, ``dbcost.sinks``) are importable for those who need them, but
only the names below are the stable API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbcost.client import CostExplorer, Stats, open_client
    from dbcost.config import FetchSettings, Settings, TargetConfig, load_targets
    from dbcost.errors import DbcostError
    from dbcost.jobs.attribute import AttributeResult, AttributeSpec, run_attribute
    from dbcost.jobs.backfill import RunOutcome, RunSpec, run_backfill
    from dbcost.jobs.demo import DemoResult, run_demo
    from dbcost.jobs.fetch import FetchResult, fetch, fetch_pages
    from dbcost.jobs.quota import QuotaCheckResult, QuotaCheckSpec, run_quota_check
    from dbcost.models import CostQuery, CostRecord, Metric, Quarantined
    from dbcost.store import open_store

#: public name -> the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "CostQuery": "dbcost.models",
    "CostRecord": "dbcost.models",
    "Metric": "dbcost.models",
    "Quarantined": "dbcost.models",
    "Settings": "dbcost.config",
    "FetchSettings": "dbcost.config",
    "TargetConfig": "dbcost.config",
    "load_targets": "dbcost.config",
    "DbcostError": "dbcost.errors",
    "CostExplorer": "dbcost.client",
    "Stats": "dbcost.client",
    "open_client": "dbcost.client",
    "FetchResult": "dbcost.jobs.fetch",
    "fetch": "dbcost.jobs.fetch",
    "fetch_pages": "dbcost.jobs.fetch",
    "RunSpec": "dbcost.jobs.backfill",
    "RunOutcome": "dbcost.jobs.backfill",
    "run_backfill": "dbcost.jobs.backfill",
    "AttributeSpec": "dbcost.jobs.attribute",
    "AttributeResult": "dbcost.jobs.attribute",
    "run_attribute": "dbcost.jobs.attribute",
    "QuotaCheckSpec": "dbcost.jobs.quota",
    "QuotaCheckResult": "dbcost.jobs.quota",
    "run_quota_check": "dbcost.jobs.quota",
    "DemoResult": "dbcost.jobs.demo",
    "run_demo": "dbcost.jobs.demo",
    "open_store": "dbcost.store",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # importlib.metadata costs ~25 ms: read the version when asked for
        from importlib.metadata import PackageNotFoundError, version

        try:
            value: Any = version("dbcost")
        except PackageNotFoundError:  # pragma: no cover - a source tree without install
            value = "0.0.0"
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dbcost' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute lookup
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AttributeResult",
    "AttributeSpec",
    "CostExplorer",
    "CostQuery",
    "CostRecord",
    "DbcostError",
    "DemoResult",
    "FetchResult",
    "FetchSettings",
    "Metric",
    "Quarantined",
    "QuotaCheckResult",
    "QuotaCheckSpec",
    "RunOutcome",
    "RunSpec",
    "Settings",
    "Stats",
    "TargetConfig",
    "__version__",
    "fetch",
    "fetch_pages",
    "load_targets",
    "open_client",
    "open_store",
    "run_attribute",
    "run_backfill",
    "run_demo",
    "run_quota_check",
]
