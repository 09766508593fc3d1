"""Attribution (layer L2, pure): rules that turn cost records into per-database spend.

* :mod:`~dbcost.attribution.classify` — (SERVICE, USAGE_TYPE) -> family, category, region, ...;
* :mod:`~dbcost.attribution.pools` — who owns a cluster (team tag, topology file, or nobody);
* :mod:`~dbcost.attribution.build` — rows -> :class:`~dbcost.attribution.model.Attribution`, with
  opt-in shared-cost allocation that conserves the total to the last decimal.
"""

from __future__ import annotations

from dbcost.attribution.build import AccountRow, UsageRow, build_attribution
from dbcost.attribution.classify import (
    CATEGORIES,
    DATABASE_FAMILIES,
    DEPLOYMENTS,
    FAMILIES,
    Category,
    Classification,
    Deployment,
    Family,
    RuleSet,
    UnclassifiedSpend,
    UsageTypeParts,
    classify,
    database_families,
    default_rules,
    is_database_family,
    load_rules,
    prefix_for_region,
    region_for_prefix,
    split_usage_type,
    unclassified_spend,
)
from dbcost.attribution.model import (
    CATEGORY_ORDER,
    SHARED_CLUSTER,
    UNATTRIBUTED,
    Attribution,
    ClusterSpend,
    DailySpend,
    TeamSpend,
)
from dbcost.attribution.pools import ClusterInfo, Topology, load_topology, resolve_teams

__all__ = [
    "CATEGORIES",
    "CATEGORY_ORDER",
    "DATABASE_FAMILIES",
    "DEPLOYMENTS",
    "FAMILIES",
    "SHARED_CLUSTER",
    "UNATTRIBUTED",
    "AccountRow",
    "Attribution",
    "Category",
    "Classification",
    "ClusterInfo",
    "ClusterSpend",
    "DailySpend",
    "Deployment",
    "Family",
    "RuleSet",
    "TeamSpend",
    "Topology",
    "UnclassifiedSpend",
    "UsageRow",
    "UsageTypeParts",
    "build_attribution",
    "classify",
    "database_families",
    "default_rules",
    "is_database_family",
    "load_rules",
    "load_topology",
    "prefix_for_region",
    "region_for_prefix",
    "resolve_teams",
    "split_usage_type",
    "unclassified_spend",
]
