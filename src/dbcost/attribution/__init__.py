"""Attribution (layer L2, pure): rules that turn cost records into per-database spend.

Only the usage-type classifier lives here so far; see :mod:`dbcost.attribution.classify`.
"""

from __future__ import annotations

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

__all__ = [
    "CATEGORIES",
    "DATABASE_FAMILIES",
    "DEPLOYMENTS",
    "FAMILIES",
    "Category",
    "Classification",
    "Deployment",
    "Family",
    "RuleSet",
    "UnclassifiedSpend",
    "UsageTypeParts",
    "classify",
    "database_families",
    "default_rules",
    "is_database_family",
    "load_rules",
    "prefix_for_region",
    "region_for_prefix",
    "split_usage_type",
    "unclassified_spend",
]
