"""A local AWS Cost Explorer look-alike with a synthetic enterprise database fleet.

The project's tests, benchmarks and ``dbcost demo`` run against it: a real aiohttp server speaking AWS
JSON 1.1 that aioboto3 or boto3 reach with an endpoint override, backed by a deterministic fleet, able to
page, throttle, fail, drop connections and serve malformed groups on demand, and to tell a test the
exact ground truth (every cent) of any GetCostAndUsage query.

::

    async with Emulator(EmulatorConfig(today=date(2026, 11, 28), page_size=200)) as emu:
        client = session.client("ce", endpoint_url=emu.url, ...)
        ...
        assert collected == emu.truth(request)["metrics"]
"""

from __future__ import annotations

from dbcost.emulator.config import RUNTIME_KNOBS, EmulatorConfig
from dbcost.emulator.fleet import (
    DATABASE_SERVICES,
    METRICS,
    REGIONS,
    TAG_KEYS,
    Account,
    Cluster,
    Fleet,
    Line,
)
from dbcost.emulator.lookups import FORECAST_HISTORY_DAYS
from dbcost.emulator.query import MALFORMATIONS, AwsError, malformation, truth
from dbcost.emulator.server import Emulator

__all__ = [
    "DATABASE_SERVICES",
    "FORECAST_HISTORY_DAYS",
    "MALFORMATIONS",
    "METRICS",
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
    "malformation",
    "truth",
]
