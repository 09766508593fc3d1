"""The database inventory: what the databases' own APIs say about each resource (pure data).

Cost Explorer's resource-level data (GetCostAndUsageWithResources, ``RESOURCE_ID``) names the resource behind
a charge; it carries a cost allocation tag only if that tag was activated in the payer account, and only from
then on. The resources themselves carry their tags (and cluster membership) whatever billing knows, so an
inventory read from RDS, DynamoDB and ElastiCache places spend that billing leaves ``unattributed``.

An :class:`InventoryItem` is one resource as its service describes it, keyed by the ARN that ``RESOURCE_ID``
uses for its charges. Some resources are billed under more than one id: an Aurora cluster's own charges
(storage, I/O, backup) come as ``arn:aws:rds:<region>:<account>:cluster:<cluster-resource-id>`` (the
``DbClusterResourceId``, ``cluster-ABC...``), while its ARN in the RDS API names the cluster identifier; both
are listed (``arn`` and ``aliases``) so :meth:`Inventory.get` finds the item by either.

``cluster`` is the database cluster a resource belongs to: for an RDS instance its ``DBClusterIdentifier``
(``None`` for a standalone instance), for an Aurora/DocumentDB/Neptune cluster its own identifier, for an
ElastiCache node its replication group id when it has one. ``read_at`` is when the API answered (the store keeps
it: tags change, and a placement says which reading it used). ``target`` is the targets-file entry whose
credentials read it (the store keeps one reading per target).

:meth:`Inventory.cluster_item` finds the cluster an instance belongs to (same account and region), so a rule can
fall back from an untagged instance to its cluster's tags.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["Inventory", "InventoryItem", "InventoryScope"]


class InventoryScope(NamedTuple):
    """What one reading covers: one target's resources of one service in one region (a new reading of a scope
    replaces the stored one, resources that are gone included)."""

    target: str
    service: str
    region: str


@dataclass(frozen=True, slots=True)
class InventoryItem:
    """One database resource as its own service's API describes it."""

    arn: str
    service: str  # "rds" | "dynamodb" | "elasticache"
    kind: str  # "db-instance" | "db-cluster" | "table" | "cache-cluster"
    account: str
    region: str
    name: str
    read_at: dt.datetime
    cluster: str | None = None
    engine: str | None = None
    engine_version: str | None = None
    instance_class: str | None = None
    multi_az: bool | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    target: str = "default"

    def ids(self) -> tuple[str, ...]:
        """Every ``RESOURCE_ID`` this resource may be billed under: its ARN, then its aliases."""
        return (self.arn, *self.aliases)


class Inventory:
    """Items indexed by every id they may be billed under (case-sensitive, as ARNs are)."""

    __slots__ = ("_by_id", "_clusters", "_items")

    def __init__(self, items: Iterable[InventoryItem] = ()) -> None:
        self._items: tuple[InventoryItem, ...] = tuple(items)
        self._by_id: dict[str, InventoryItem] = {}
        self._clusters: dict[tuple[str, str, str, str], InventoryItem] = {}
        for item in self._items:
            for rid in item.ids():
                self._by_id.setdefault(rid, item)
            if item.kind == "db-cluster":
                self._clusters.setdefault((item.service, item.account, item.region, item.name), item)

    def get(self, resource_id: str) -> InventoryItem | None:
        """The item billed under ``resource_id``, or ``None`` when no API described it."""
        return self._by_id.get(resource_id)

    def cluster_item(self, item: InventoryItem) -> InventoryItem | None:
        """The cluster ``item`` belongs to, as its service described it (an RDS instance's Aurora, DocumentDB or
        Neptune cluster); ``None`` for a cluster itself, a standalone resource, or a cluster not read."""
        if item.cluster is None or item.kind == "db-cluster":
            return None
        return self._clusters.get((item.service, item.account, item.region, item.cluster))

    def __iter__(self) -> Iterator[InventoryItem]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)
