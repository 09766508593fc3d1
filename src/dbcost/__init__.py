"""dbcost: async ingestion of AWS Cost Explorer data for database cost attribution and quota automation."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from dbcost import attribution, checks, errors, jobs, logs, notify, quota, report, sinks
from dbcost.api import FetchResult, FetchSettings, fetch, fetch_pages, open_client
from dbcost.attribute import AttributeResult, AttributeSpec, month_range, run_attribute
from dbcost.checks import QuotaCheckResult, QuotaCheckSpec, run_quota_check
from dbcost.client import CostExplorer, RequestBudget, Stats
from dbcost.errors import DbcostError
from dbcost.governor import DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RPS
from dbcost.metrics import write_metrics_file
from dbcost.models import CostQuery, CostRecord, Metric, Quarantined
from dbcost.parse import ParsedPage, parse_page
from dbcost.pipeline import RunOutcome, RunSpec, make_plan, run_pipeline, sync_start
from dbcost.plan import Plan, WorkUnit, describe_units, parse_shard, plan_units
from dbcost.store import Store
from dbcost.targets import TargetConfig, load_targets

if TYPE_CHECKING:
    from dbcost.demo import DemoResult, run_demo


def __getattr__(name: str) -> Any:
    # the demo pulls in the emulator (aiohttp.web, the synthetic fleet): load it only when asked for
    if name in ("DemoResult", "run_demo"):
        from dbcost import demo

        return getattr(demo, name)
    raise AttributeError(f"module 'dbcost' has no attribute {name!r}")


try:
    __version__ = version("dbcost")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_RPS",
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
    "ParsedPage",
    "Plan",
    "Quarantined",
    "QuotaCheckResult",
    "QuotaCheckSpec",
    "RequestBudget",
    "RunOutcome",
    "RunSpec",
    "Stats",
    "Store",
    "TargetConfig",
    "WorkUnit",
    "__version__",
    "attribution",
    "checks",
    "describe_units",
    "errors",
    "fetch",
    "fetch_pages",
    "jobs",
    "load_targets",
    "logs",
    "make_plan",
    "month_range",
    "notify",
    "open_client",
    "parse_page",
    "parse_shard",
    "plan_units",
    "quota",
    "report",
    "run_attribute",
    "run_demo",
    "run_pipeline",
    "run_quota_check",
    "sinks",
    "sync_start",
    "write_metrics_file",
]
