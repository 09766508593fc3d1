"""A local AWS Cost Explorer look-alike with a synthetic enterprise database fleet.

The project's tests, benchmarks and ``dbcost demo`` run against it: a real aiohttp server speaking AWS
JSON 1.1 that aioboto3 or boto3 reach with an endpoint override, backed by a deterministic fleet, able to
page, throttle, fail, drop connections and serve malformed groups on demand, and to tell a test the
exact ground truth (every cent) of any GetCostAndUsage query, and of GetCostAndUsageWithResources per resource
(``emu.truth({"Operation": "GetCostAndUsageWithResources", ...})["resources"]``; the shape is in
:mod:`dbcost.emulator.server`).

::

    async with Emulator(EmulatorConfig(today=date(2026, 11, 28), page_size=200)) as emu:
        client = session.client("ce", endpoint_url=emu.url, ...)
        ...
        assert collected == emu.truth(request)["metrics"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbcost.emulator.config import RUNTIME_KNOBS, EmulatorConfig

if TYPE_CHECKING:
    from dbcost.emulator.errors import AwsError
    from dbcost.emulator.fleet import (
        DATABASE_SERVICES,
        METRICS,
        NO_RESOURCE_ID,
        REGIONS,
        TAG_KEYS,
        Account,
        Cluster,
        Fleet,
        Line,
        Resource,
    )
    from dbcost.emulator.lookups import FORECAST_HISTORY_DAYS
    from dbcost.emulator.query import MALFORMATIONS, malformation, truth
    from dbcost.emulator.server import Emulator

# The server, fleet and query engine load on first use (PEP 562): the dbcost CLI imports this package on
# every start to mount ``dbcost emulator``, and should not pay for aiohttp.web and the fleet then.
_LAZY = {
    "DATABASE_SERVICES": "fleet", "METRICS": "fleet", "REGIONS": "fleet", "TAG_KEYS": "fleet",
    "Account": "fleet", "Cluster": "fleet", "Fleet": "fleet", "Line": "fleet", "NO_RESOURCE_ID": "fleet",
    "Resource": "fleet",
    "FORECAST_HISTORY_DAYS": "lookups",
    "MALFORMATIONS": "query", "AwsError": "errors", "malformation": "query", "truth": "query",
    "Emulator": "server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dbcost.emulator' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"dbcost.emulator.{module}"), name)


__all__ = [
    "DATABASE_SERVICES",
    "FORECAST_HISTORY_DAYS",
    "MALFORMATIONS",
    "METRICS",
    "NO_RESOURCE_ID",
    "REGIONS",
    "RUNTIME_KNOBS",
    "TAG_KEYS",
    "Account",
    "AwsError",
    "Cluster",
    "Emulator",
    "EmulatorConfig",
    "Fleet",
    "Line",
    "Resource",
    "malformation",
    "truth",
]
