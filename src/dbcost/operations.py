"""The Cost Explorer operations dbcost calls, as one table: name, how it pages, what it may be asked.

An :class:`Operation` is data, not code: the client sends ``name`` and pages on ``token_key``, the query model
checks a request against ``granularities``, ``history_days`` and ``filter_required`` before anything is sent,
and the planner keeps windows inside what the operation serves. Adding an operation is one row here (and, for
a record-shaped one, nothing else: :meth:`dbcost.client.CostExplorer.pages` serves every operation whose
``shape`` is ``"results_by_time"``). Facts from ``../shared/design/COST-EXPLORER-FACTS.md``:

* botocore ships no paginator for any of these: loop on ``NextPageToken``, resending the identical request;
* GetCostAndUsage: DAILY 13 months back, MONTHLY 38 (multi-year data), HOURLY 14 days (opt-in);
* GetCostAndUsageWithResources: the same request and response shape plus the ``RESOURCE_ID`` dimension;
  ``Filter`` required; last 14 days only (counted from today: the model checks the length of a window, the
  planner its start, :func:`dbcost.plan.check_range`); DAILY for every service, HOURLY only for EC2
  instances (the Filter must name exactly that SERVICE); opt-in per payer;
* GetDimensionValues and GetTags page a list (``DimensionValues``, ``Tags``); GetCostForecast does not page.

This module is pure (stdlib only): the models and the planner read it without importing the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "COST_AND_USAGE",
    "COST_AND_USAGE_WITH_RESOURCES",
    "COST_FORECAST",
    "DIMENSION_VALUES",
    "EC2_INSTANCES",
    "EXTRA_DIMENSIONS",
    "OPERATIONS",
    "TAGS",
    "Operation",
    "operation",
]

Shape = Literal["results_by_time", "list", "single"]

#: the SERVICE dimension value of EC2 instances (GetDimensionValues SERVICE; ../shared/samples/05_*)
EC2_INSTANCES = "Amazon Elastic Compute Cloud - Compute"


@dataclass(frozen=True, slots=True)
class Operation:
    """One Cost Explorer operation as dbcost uses it."""

    #: the wire name (``X-Amz-Target: AWSInsightsIndexService.<name>``)
    name: str
    #: how a response reads: pages of ResultsByTime (records), pages of a list, or one answer
    shape: Shape
    #: the request/response field that carries the page token (None: not paged)
    token_key: str | None = "NextPageToken"
    #: for ``shape == "list"``: the response field holding the page's items
    items_key: str | None = None
    #: granularities the operation accepts (empty: it takes none)
    granularities: frozenset[str] = frozenset()
    #: how far back it serves data, days (None: the granularity's own history rules apply)
    history_days: int | None = None
    #: the request must carry a Filter
    filter_required: bool = False
    #: dimensions valid in GroupBy/Filter only for this operation
    extra_dimensions: frozenset[str] = frozenset()
    #: the Cost Explorer setting to switch on when the payer has not opted in (None: always available)
    opt_in: str | None = None
    #: HOURLY only when the Filter restricts SERVICE to exactly these values (empty: HOURLY for any filter)
    hourly_services: frozenset[str] = frozenset()


COST_AND_USAGE = Operation(
    name="GetCostAndUsage",
    shape="results_by_time",
    granularities=frozenset({"DAILY", "MONTHLY", "HOURLY"}),
)
COST_AND_USAGE_WITH_RESOURCES = Operation(
    name="GetCostAndUsageWithResources",
    shape="results_by_time",
    granularities=frozenset({"DAILY", "HOURLY"}),
    history_days=14,
    filter_required=True,
    extra_dimensions=frozenset({"RESOURCE_ID"}),
    opt_in=(
        "Billing and Cost Management > Cost Management preferences > Multi-year and granular data > "
        "Resource-level data at daily granularity"
    ),
    hourly_services=frozenset({EC2_INSTANCES}),
)
DIMENSION_VALUES = Operation(name="GetDimensionValues", shape="list", items_key="DimensionValues")
TAGS = Operation(name="GetTags", shape="list", items_key="Tags")
COST_FORECAST = Operation(name="GetCostForecast", shape="single", token_key=None,
                          granularities=frozenset({"DAILY", "MONTHLY"}))

#: name -> operation, every operation dbcost sends
OPERATIONS: dict[str, Operation] = {
    op.name: op for op in (COST_AND_USAGE, COST_AND_USAGE_WITH_RESOURCES, DIMENSION_VALUES, TAGS, COST_FORECAST)
}


#: every operation-only dimension, valid in a GroupBy/Filter of the operations that list it and of no other
EXTRA_DIMENSIONS: frozenset[str] = frozenset().union(*(op.extra_dimensions for op in OPERATIONS.values()))


def operation(name: str) -> Operation:
    """The operation called ``name`` (KeyError naming the known ones otherwise)."""
    try:
        return OPERATIONS[name]
    except KeyError:
        raise KeyError(f"unknown Cost Explorer operation {name!r} (known: {', '.join(sorted(OPERATIONS))})") from None
