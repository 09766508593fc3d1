"""FOCUS rows from Cost Explorer records (pure: values in, values out, no I/O).

FOCUS (the FinOps Foundation's *FinOps Open Cost and Usage Specification*) is how FinOps tools exchange
cost data. This module maps one stored Cost Explorer record (one period and group of one dataset, with its
metrics) to one FOCUS row: the FOCUS 1.0 columns (what ``focus-validator`` 1.0.0 checks), the 1.1/1.2
column Cost Explorer can fill (``ServiceSubcategory``), and ``x_`` columns for what dbcost adds. A column
is filled only from what the record, its dataset's GroupBy keys or its dataset's Filter actually say, and
left null otherwise -- never guessed. Where each value comes from:

* **costs**: ``BilledCost`` is ``NetUnblendedCost`` when the dataset has it, else ``UnblendedCost`` (a
  dataset with neither cannot be exported as FOCUS); ``EffectiveCost`` is ``NetAmortizedCost``, else
  ``AmortizedCost``, else null. Cost Explorer has no list or contracted price (botocore's model lists
  BlendedCost, UnblendedCost, AmortizedCost, NetUnblendedCost, NetAmortizedCost, UsageQuantity and
  NormalizedUsageAmount only), so ``ListCost``, ``ListUnitPrice``, ``ContractedCost`` and
  ``ContractedUnitPrice`` are null. ``BillingCurrency`` is the billed metric's unit;
* **periods**: ``ChargePeriodStart``/``End`` are the record's period (UTC); ``BillingPeriodStart``/``End``
  the calendar month holding it (AWS bills by calendar month);
* **dimensions**: a GroupBy key or a Filter that pins one value (``{"Dimensions": {"Key": "SERVICE",
  "Values": ["Amazon RDS"]}}``, alone or inside ``And``) gives ``ServiceName`` (SERVICE), ``SubAccountId``
  (LINKED_ACCOUNT), ``RegionId`` (REGION; else the region of a classified usage type),
  ``AvailabilityZone`` (AZ), ``ResourceId`` (RESOURCE_ID, from GetCostAndUsageWithResources),
  ``BillingAccountId`` (PAYER_ACCOUNT), ``InvoiceIssuerName`` (INVOICING_ENTITY), ``ChargeCategory`` and
  ``ChargeFrequency`` (RECORD_TYPE, :data:`RECORD_TYPES`), ``PricingCategory`` (PURCHASE_TYPE) and
  ``Tags`` (every ``TAG:`` key with a value, as a JSON object);
* **service**: ``ServiceCategory`` is ``Databases`` and ``ServiceSubcategory`` the family's
  (:data:`SUBCATEGORIES`) when every service the row can be is a database service dbcost classifies; both
  are null for other services (dbcost classifies database services only). ``ProviderName`` is ``AWS``;
  ``PublisherName`` is ``AWS`` for those database services (a Marketplace seller otherwise, which Cost
  Explorer does not name);
* **quantities**: ``ConsumedQuantity``/``ConsumedUnit`` from ``UsageQuantity`` on a usage row of one usage
  type (summed over several usage types it mixes units); ``PricingQuantity``/``PricingUnit`` are null (Cost
  Explorer does not say how a charge was priced);
* **x_ columns**: ``x_UsageType``, ``x_Cluster`` (the cluster tag), ``x_Team`` (the team tag, else the owner
  the store's attribution data gives the cluster for that month), ``x_DbcostCategory`` (the classifier's
  compute/storage/io/backup/data_transfer/other), ``x_Estimated``, ``x_Source`` (the Cost Explorer
  operation), ``x_Dataset`` and ``x_Target``.

Amounts stay ``Decimal``; periods are aware UTC ``datetime`` values. The writer (``jobs/export``) turns a
row into CSV text or a typed Parquet row using :data:`COLUMNS`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

import orjson

from dbcost.attribution.classify import classify, is_database_family
from dbcost.calendar import add_months
from dbcost.errors import UsageError
from dbcost.models import CostQuery

__all__ = [
    "BILLED_METRICS",
    "COLUMNS",
    "EFFECTIVE_METRICS",
    "RECORD_TYPES",
    "SUBCATEGORIES",
    "FocusColumn",
    "FocusSource",
    "fixed_values",
    "focus_row",
]

Kind = Literal["decimal", "datetime", "string", "json", "bool"]


@dataclass(frozen=True)
class FocusColumn:
    """One output column: its FOCUS (or ``x_``) name and value kind."""

    name: str
    kind: Kind


def _cols(kind: Kind, *names: str) -> tuple[FocusColumn, ...]:
    return tuple(FocusColumn(n, kind) for n in names)


#: Every column of a FOCUS export, in order: the FOCUS 1.0 columns alphabetically, ServiceSubcategory (1.1),
#: then dbcost's own.
COLUMNS: Final[tuple[FocusColumn, ...]] = tuple(sorted(
    _cols("string", "AvailabilityZone", "BillingAccountId", "BillingAccountName", "BillingCurrency",
          "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "CommitmentDiscountCategory",
          "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountStatus", "CommitmentDiscountType",
          "ConsumedUnit", "InvoiceIssuerName", "PricingCategory", "PricingUnit", "ProviderName", "PublisherName",
          "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory",
          "ServiceName", "SkuId", "SkuPriceId", "SubAccountId", "SubAccountName")
    + _cols("decimal", "BilledCost", "ConsumedQuantity", "ContractedCost", "ContractedUnitPrice", "EffectiveCost",
            "ListCost", "ListUnitPrice", "PricingQuantity")
    + _cols("datetime", "BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart")
    + _cols("json", "Tags"),
    key=lambda c: c.name,
)) + _cols("string", "ServiceSubcategory") + _cols(
    "string", "x_UsageType", "x_Cluster", "x_Team", "x_DbcostCategory") + _cols("bool", "x_Estimated") + _cols(
    "string", "x_Source", "x_Dataset", "x_Target")

#: The Cost Explorer metric BilledCost is read from, first present wins.
BILLED_METRICS: Final = ("NetUnblendedCost", "UnblendedCost")
#: The metric EffectiveCost is read from, first present wins (none: null).
EFFECTIVE_METRICS: Final = ("NetAmortizedCost", "AmortizedCost")

#: RECORD_TYPE -> (ChargeCategory, ChargeFrequency); a record type not listed leaves both null.
RECORD_TYPES: Final[Mapping[str, tuple[str, str | None]]] = {
    "Usage": ("Usage", "Usage-Based"),
    "DiscountedUsage": ("Usage", "Usage-Based"),
    "SavingsPlanCoveredUsage": ("Usage", "Usage-Based"),
    "SavingsPlanNegation": ("Usage", "Usage-Based"),
    "RIFee": ("Purchase", "Recurring"),
    "SavingsPlanRecurringFee": ("Purchase", "Recurring"),
    "SavingsPlanUpfrontFee": ("Purchase", "One-Time"),
    "Fee": ("Purchase", "One-Time"),
    "Support": ("Purchase", "Recurring"),
    "Tax": ("Tax", None),
    "Credit": ("Credit", None),
    "Refund": ("Credit", None),
    "Enterprise Discount Program Discount": ("Credit", None),
    "Private Rate Discount": ("Credit", None),
    "Bundled Discount": ("Credit", None),
}

#: dbcost's database family -> FOCUS 1.1 ServiceSubcategory (of ServiceCategory "Databases").
SUBCATEGORIES: Final[Mapping[str, str]] = {
    "aurora": "Relational", "rds": "Relational", "redshift": "Data Warehouse", "dynamodb": "NoSQL",
    "documentdb": "NoSQL", "keyspaces": "NoSQL", "neptune": "Other (Databases)", "elasticache": "Caching",
    "memorydb": "Caching", "timestream": "Time Series",
}

#: PURCHASE_TYPE -> FOCUS PricingCategory.
_PRICING: Final[Mapping[str, str]] = {
    "On Demand Instances": "Standard", "Spot Instances": "Dynamic", "Standard Reserved Instances": "Committed",
    "Convertible Reserved Instances": "Committed", "Savings Plans": "Committed", "Dedicated Instances": "Standard",
}


def fixed_values(filter_api: Mapping[str, Any] | None) -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """What a Cost Explorer Filter pins for every row: (key -> its one value, key -> its allowed values), keys
    named as record keys are (``SERVICE``, ``TAG:team``). Only a plain match (no MatchOptions other than
    EQUALS) alone or under ``And`` pins anything; ``Or`` and ``Not`` pin nothing."""
    one: dict[str, str] = {}
    some: dict[str, frozenset[str]] = {}

    def walk(expr: Mapping[str, Any]) -> None:
        if "And" in expr:
            for e in expr["And"]:
                walk(e)
            return
        for kind, prefix in (("Dimensions", ""), ("Tags", "TAG:"), ("CostCategories", "COST_CATEGORY:")):
            spec = expr.get(kind)
            if spec is None or set(spec.get("MatchOptions") or ["EQUALS"]) != {"EQUALS"}:
                continue
            key, values = prefix + str(spec["Key"]), frozenset(spec.get("Values") or ())
            some[key] = some[key] & values if key in some else values
            if len(some[key]) == 1:
                one[key] = next(iter(some[key]))

    if filter_api:
        walk(filter_api)
    return one, some


@dataclass(frozen=True)
class FocusSource:
    """What one dataset says about every row it holds: its id, operation, metrics, GroupBy keys and what its
    Filter pins; and which tags name a cluster and a team."""

    dataset: str
    operation: str
    metrics: tuple[str, ...]
    key_names: tuple[str, ...]
    fixed: Mapping[str, str] = field(default_factory=dict)
    allowed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    cluster_tag: str = "db-cluster"
    team_tag: str = "team"

    @classmethod
    def of(cls, dataset: str, query: CostQuery, *, cluster_tag: str = "db-cluster",
           team_tag: str = "team") -> FocusSource:
        """The source of ``dataset`` fetched with ``query``; a UsageError when FOCUS cannot be made of it."""
        if not any(m in query.metrics for m in BILLED_METRICS):
            raise UsageError(f"--format focus: dataset {dataset} has no {' or '.join(BILLED_METRICS)} metric, so "
                             "BilledCost cannot be filled (backfill it with --metric UnblendedCost)")
        one, some = fixed_values(query.filter.to_api() if query.filter is not None else None)
        return cls(dataset, query.operation, tuple(query.metrics), query.columns, one, some, cluster_tag, team_tag)

    @property
    def billed_metric(self) -> str:
        return next(m for m in BILLED_METRICS if m in self.metrics)

    @property
    def effective_metric(self) -> str | None:
        return next((m for m in EFFECTIVE_METRICS if m in self.metrics), None)


def _instant(text: str) -> dt.datetime:
    """A Cost Explorer period bound (``2026-09-01`` or ``2026-09-01T05:00:00Z``) as an aware UTC datetime."""
    if len(text) == 10:
        return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def _amount(metrics: Mapping[str, Mapping[str, str]], name: str | None) -> Decimal | None:
    if name is None or name not in metrics:
        return None
    return Decimal(metrics[name]["amount"])


def focus_row(src: FocusSource, record: Mapping[str, Any], target: str,
              team_of: Callable[[str, dt.date], str | None] | None = None) -> dict[str, Any]:
    """The FOCUS row of one stored record (the ``dbcost export`` JSONL shape) of ``src``'s dataset and
    ``target``: every column of :data:`COLUMNS`, None where Cost Explorer does not say (module docstring).
    ``team_of(cluster, month start)`` is asked for a cluster's team when the dataset has no team tag key."""
    keys: Mapping[str, str] = record.get("keys") or {}
    metrics: Mapping[str, Mapping[str, str]] = record.get("metrics") or {}

    def value(key: str) -> str | None:
        v = keys.get(key) if key in src.key_names else src.fixed.get(key)
        return v or None  # "" is Cost Explorer's "no value" (an untagged group)

    start, end = _instant(record["period_start"]), _instant(record["period_end"])
    month = start.date().replace(day=1)
    service, usage_type = value("SERVICE"), value("USAGE_TYPE")
    services = {service} if service else set(src.allowed.get("SERVICE", ()))
    families = {classify(s, "").family for s in services}
    databases = bool(services) and all(is_database_family(f) for f in families)
    family = classify(service, usage_type or "").family if service else (
        next(iter(families)) if len(families) == 1 else None)
    cls = classify(service, usage_type) if service and usage_type else None
    record_type = value("RECORD_TYPE")
    category, frequency = RECORD_TYPES.get(record_type, (None, None)) if record_type else (None, None)
    billed = src.billed_metric
    quantity = None
    unit = None
    if usage_type and category == "Usage" and "UsageQuantity" in metrics:
        quantity = _amount(metrics, "UsageQuantity")
        unit = metrics["UsageQuantity"].get("unit") or None
        unit = None if unit == "N/A" else unit
    tags = {k[4:]: v for k, v in keys.items() if k.startswith("TAG:") and v and k in src.key_names}
    tags.update({k[4:]: v for k, v in src.fixed.items() if k.startswith("TAG:")})
    has_tags = any(k.startswith("TAG:") for k in (*src.key_names, *src.fixed))
    cluster = value(f"TAG:{src.cluster_tag}")
    team = value(f"TAG:{src.team_tag}")
    if team is None and cluster is not None and team_of is not None:
        team = team_of(cluster, month)
    region = value("REGION") or (cls.region if cls is not None and cls.known else None)
    purchase = value("PURCHASE_TYPE")
    return {
        "AvailabilityZone": value("AZ"),
        "BilledCost": _amount(metrics, billed),
        "BillingAccountId": value("PAYER_ACCOUNT"),
        "BillingAccountName": None,
        "BillingCurrency": (metrics.get(billed) or {}).get("unit"),
        "BillingPeriodEnd": dt.datetime.combine(add_months(month, 1), dt.time(), dt.UTC),
        "BillingPeriodStart": dt.datetime.combine(month, dt.time(), dt.UTC),
        "ChargeCategory": category,
        "ChargeClass": None,
        "ChargeDescription": f"{service} {usage_type}" if service and usage_type else None,
        "ChargeFrequency": frequency,
        "ChargePeriodEnd": end,
        "ChargePeriodStart": start,
        "CommitmentDiscountCategory": None,
        "CommitmentDiscountId": None,
        "CommitmentDiscountName": None,
        "CommitmentDiscountStatus": None,
        "CommitmentDiscountType": None,
        "ConsumedQuantity": quantity,
        "ConsumedUnit": unit,
        "ContractedCost": None,
        "ContractedUnitPrice": None,
        "EffectiveCost": _amount(metrics, src.effective_metric),
        "InvoiceIssuerName": value("INVOICING_ENTITY"),
        "ListCost": None,
        "ListUnitPrice": None,
        "PricingCategory": _PRICING.get(purchase) if purchase else None,
        "PricingQuantity": None,
        "PricingUnit": None,
        "ProviderName": "AWS",
        "PublisherName": "AWS" if databases else None,
        "RegionId": region,
        "RegionName": None,
        "ResourceId": value("RESOURCE_ID"),
        "ResourceName": None,
        "ResourceType": None,
        "ServiceCategory": "Databases" if databases else None,
        "ServiceName": service,
        "SkuId": None,
        "SkuPriceId": None,
        "SubAccountId": value("LINKED_ACCOUNT"),
        "SubAccountName": None,
        "Tags": orjson.dumps(dict(sorted(tags.items()))).decode() if has_tags else None,
        "ServiceSubcategory": SUBCATEGORIES.get(family) if databases and family else None,
        "x_UsageType": usage_type,
        "x_Cluster": cluster,
        "x_Team": team,
        "x_DbcostCategory": cls.category if cls is not None else None,
        "x_Estimated": bool(record.get("estimated")),
        "x_Source": f"AWS Cost Explorer {src.operation}",
        "x_Dataset": src.dataset,
        "x_Target": target,
    }
