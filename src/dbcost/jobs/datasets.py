"""``dbcost datasets``: what the store holds, one entry per dataset; and which datasets an export means.

A store holds several *datasets*: one per query fingerprint (the query minus its window), such as a
backfill's ``SERVICE x TAG:db-cluster`` and the per-service datasets ``attribute`` fetches for itself. They
overlap: the same dollar is in several of them, so summing across datasets counts it several times. This
module lists them (:func:`list_datasets`, the JSON of ``dbcost datasets --format json``) and turns an
export's ``--dataset`` into the datasets it names (:func:`select_datasets`), refusing to guess when the
store holds more than one.

The JSON of one dataset is exactly ``{"dataset", "label", "operation", "query", "start", "end", "records",
"fetched_at"}``: ``query`` is the Cost Explorer request the dataset was fetched with, without
``TimePeriod`` (``Granularity``, ``Metrics``, ``GroupBy``, ``Filter``, as the API spells them); ``start``
and ``end`` are the first period start and the last period end held (``end`` exclusive); ``records`` counts
rows, one per period, group and metric, as the CSV and Parquet exports have them; ``fetched_at`` is when
the newest was fetched (ISO 8601, UTC). The last three are null for a dataset with no records.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dbcost.config import StoreSettings
from dbcost.errors import UsageError
from dbcost.models import CostQuery
from dbcost.store import DatasetSummary, Store

__all__ = ["ALL", "DatasetInfo", "describe_query", "list_datasets", "select_datasets"]

#: ``--dataset all``: every dataset, each row naming its own (the one word that is never an id or a label)
ALL = "all"
#: the shortest id prefix ``--dataset`` accepts (ids are 16 hex digits)
_MIN_PREFIX = 6


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset of the store: its summary and the query it was fetched with (None if the stored query no
    longer validates, which only a hand-edited store can cause)."""

    summary: DatasetSummary
    query: CostQuery | None

    @property
    def dataset(self) -> str:
        return self.summary.dataset

    @property
    def label(self) -> str | None:
        return self.summary.label

    def request(self) -> dict[str, Any]:
        """The Cost Explorer request of the dataset, without ``TimePeriod``."""
        if self.query is None:
            return {k: v for k, v in self.summary.query.items() if k not in ("start", "end")}
        req = self.query.to_request()
        del req["TimePeriod"]
        return req

    def to_json(self) -> dict[str, Any]:
        """The dataset as ``dbcost datasets --format json`` prints it (see the module docstring)."""
        s = self.summary
        fetched = s.fetched_at.replace(tzinfo=dt.UTC).isoformat(timespec="seconds") if s.fetched_at else None
        return {"dataset": s.dataset, "label": s.label, "operation": s.operation, "query": self.request(),
                "start": s.start, "end": s.end, "records": s.records, "fetched_at": fetched}


def _query_of(summary: DatasetSummary) -> CostQuery | None:
    try:
        return CostQuery.model_validate(summary.query)
    except ValidationError:
        return None


def list_datasets(store: StoreSettings | Path | str) -> list[DatasetInfo]:
    """Every dataset of the store at ``store``, oldest first (read-only; a missing store is a ConfigError)."""
    with Store(store, read_only=True) as s:
        return [DatasetInfo(summary, _query_of(summary)) for summary in s.dataset_summaries()]


def describe_query(info: DatasetInfo) -> str:
    """One line saying what a dataset is: ``GetCostAndUsage DAILY UnblendedCost by SERVICE, TAG:team where
    SERVICE = Amazon RDS``, for a reader telling datasets apart (the ``--dataset all`` column, the table)."""
    req = info.request()
    groups = ", ".join(g["Key"] if g.get("Type") == "DIMENSION" else f"{g.get('Type')}:{g.get('Key')}"
                       for g in req.get("GroupBy", []))
    text = f"{info.summary.operation} {req.get('Granularity', info.summary.granularity)} " + ",".join(
        req.get("Metrics", info.summary.metrics))
    text += f" by {groups}" if groups else " (total)"
    if "Filter" in req:
        text += " where " + _describe_filter(req["Filter"])
    return text


def _describe_filter(expr: dict[str, Any]) -> str:
    for op, joiner in (("And", " and "), ("Or", " or ")):
        if op in expr:
            return "(" + joiner.join(_describe_filter(e) for e in expr[op]) + ")"
    if "Not" in expr:
        return "not " + _describe_filter(expr["Not"])
    for kind, prefix in (("Dimensions", ""), ("Tags", "TAG:"), ("CostCategories", "COST_CATEGORY:")):
        if kind in expr:
            values = expr[kind].get("Values", [])
            key = prefix + str(expr[kind].get("Key"))
            return f"{key} = {values[0]}" if len(values) == 1 else f"{key} in ({', '.join(values)})"
    return "?"


def select_datasets(infos: list[DatasetInfo], selector: str | None) -> list[DatasetInfo]:
    """The datasets ``--dataset selector`` names: ``all``, an id (or a unique prefix of at least six of its
    characters) or a label. With no selector, the store's only dataset; a store holding several is a
    UsageError listing them (an export of all of them would count every dollar once per dataset)."""
    if not infos:
        raise UsageError("--dataset: the store holds no datasets (run `dbcost backfill` first)")
    if selector is None:
        if len(infos) == 1:
            return infos
        listed = "; ".join(f"{i.dataset}" + (f" ({i.label})" if i.label else "") for i in infos)
        raise UsageError(f"--dataset: the store holds {len(infos)} datasets, which overlap (summing them counts "
                         f"the same spend several times); name one by id or label, or `all`: {listed} "
                         "(`dbcost datasets` describes them)")
    if selector == ALL:
        return infos
    for matches in ([i for i in infos if i.dataset == selector],
                    [i for i in infos if i.label == selector],
                    [i for i in infos if len(selector) >= _MIN_PREFIX and i.dataset.startswith(selector)]):
        if len(matches) == 1:
            return matches
        if len(matches) > 1:
            raise UsageError(f"--dataset {selector}: names {len(matches)} datasets "
                             f"({', '.join(i.dataset for i in matches)}); give the id")
    raise UsageError(f"--dataset {selector}: not in the store (`dbcost datasets` lists what is there)")
