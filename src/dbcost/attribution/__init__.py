"""Attribution (layer L2, pure): rules that turn cost records into per-database spend.

* :mod:`~dbcost.attribution.classify` — (SERVICE, USAGE_TYPE) -> family, category, region, ...;
* :mod:`~dbcost.attribution.pools` — who owns a cluster (team tag, topology file, or nobody);
* :mod:`~dbcost.attribution.build` — rows -> :class:`~dbcost.attribution.model.Attribution`, with
  opt-in shared-cost allocation that conserves the total to the last decimal.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# a name that is also a submodule's is bound here, before anything imports that submodule: importing a
# submodule binds its name in the package, and a lazy name would then give the module, not the function
from dbcost.attribution.classify import classify

if TYPE_CHECKING:
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

#: where each name lives: the package imports a module on first use of one of its names, so importing one module
#: (the store reads :mod:`~dbcost.attribution.inventory`) does not import the rules and the builder with it
_WHERE = {
    "AccountRow": "dbcost.attribution.build",
    "Attribution": "dbcost.attribution.model",
    "CATEGORIES": "dbcost.attribution.classify",
    "CATEGORY_ORDER": "dbcost.attribution.model",
    "Category": "dbcost.attribution.classify",
    "Classification": "dbcost.attribution.classify",
    "ClusterInfo": "dbcost.attribution.pools",
    "ClusterSpend": "dbcost.attribution.model",
    "DATABASE_FAMILIES": "dbcost.attribution.classify",
    "DEPLOYMENTS": "dbcost.attribution.classify",
    "DailySpend": "dbcost.attribution.model",
    "Deployment": "dbcost.attribution.classify",
    "FAMILIES": "dbcost.attribution.classify",
    "Family": "dbcost.attribution.classify",
    "RuleSet": "dbcost.attribution.classify",
    "SHARED_CLUSTER": "dbcost.attribution.model",
    "TeamSpend": "dbcost.attribution.model",
    "Topology": "dbcost.attribution.pools",
    "UNATTRIBUTED": "dbcost.attribution.model",
    "UnclassifiedSpend": "dbcost.attribution.classify",
    "UsageRow": "dbcost.attribution.build",
    "UsageTypeParts": "dbcost.attribution.classify",
    "build_attribution": "dbcost.attribution.build",
    "database_families": "dbcost.attribution.classify",
    "default_rules": "dbcost.attribution.classify",
    "is_database_family": "dbcost.attribution.classify",
    "load_rules": "dbcost.attribution.classify",
    "load_topology": "dbcost.attribution.pools",
    "prefix_for_region": "dbcost.attribution.classify",
    "region_for_prefix": "dbcost.attribution.classify",
    "resolve_teams": "dbcost.attribution.pools",
    "split_usage_type": "dbcost.attribution.classify",
    "unclassified_spend": "dbcost.attribution.classify",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
