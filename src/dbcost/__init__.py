"""dbcost: async ingestion of AWS Cost Explorer data for database cost attribution and quota automation."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from dbcost import errors, jobs, logs
from dbcost.api import FetchResult, FetchSettings, fetch, fetch_pages, open_client
from dbcost.client import CostExplorer, RequestBudget, Stats
from dbcost.errors import DbcostError
from dbcost.governor import DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RPS
from dbcost.models import CostQuery, CostRecord, Metric, Quarantined
from dbcost.parse import ParsedPage, parse_page

try:
    __version__ = version("dbcost")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_RPS",
    "CostExplorer",
    "CostQuery",
    "CostRecord",
    "DbcostError",
    "FetchResult",
    "FetchSettings",
    "Metric",
    "ParsedPage",
    "Quarantined",
    "RequestBudget",
    "Stats",
    "__version__",
    "errors",
    "fetch",
    "fetch_pages",
    "jobs",
    "logs",
    "open_client",
    "parse_page",
]
