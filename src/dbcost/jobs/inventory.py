"""The inventory join's reader: what RDS, DynamoDB and ElastiCache say about each database (``--inventory``).

For every target of the settings (its profile, its role to assume: the credentials Cost Explorer is read with)
and every region asked for, and for each service asked for, one client of that service's API, behind its own
governor (:class:`~dbcost.config.InventorySettings`: modest rates, not Cost Explorer's), the run's retry policy,
a breaker and the request deadline (:func:`dbcost.client.open_client` with ``service=``). Every call is
read-only:

==============  ==============================================================  ===================================
service         calls (paged)                                                   gives
==============  ==============================================================  ===================================
``rds``         DescribeDBClusters (Marker), DescribeDBInstances (Marker)       clusters (Aurora, Multi-AZ DB
                                                                                clusters, DocumentDB, Neptune) and
                                                                                instances: membership, engine,
                                                                                version, class, Multi-AZ, TagList
``dynamodb``    ListTables (ExclusiveStartTableName), then per table            tables and their tags
                DescribeTable and ListTagsOfResource (NextToken)
``elasticache`` DescribeCacheClusters (Marker), then per cluster                cache clusters (nodes of a
                ListTagsForResource                                             replication group name it as their
                                                                                ``cluster``) and their tags
==============  ==============================================================  ===================================

:data:`IAM_ACTIONS` lists the IAM actions these need (plus ``sts:AssumeRole`` for a target with a role); an
access denial is one line naming the missing action (``transport/aws.py`` maps it). Targets, regions and
services are read concurrently (``asyncio.TaskGroup``); the per-table and per-cluster calls too, as fast as the
governor lets them. A resource deleted between the listing and its describe call is left out (it is gone);
any other failure fails the whole reading: the first error is raised (one line, naming the target and region
for an API error) and nothing is written, so a stored reading is always a complete one.

Ids: an item's ``arn`` is the ARN its API returns; an Aurora (or DocumentDB, Neptune) cluster also gets the
alias ``arn:<partition>:rds:<region>:<account>:cluster:<DbClusterResourceId>``, the id Cost Explorer's
``RESOURCE_ID`` bills its storage, I/O and backup under (:mod:`dbcost.attribution.inventory`). The account and
region of an item are those of its ARN.

Kept: with ``store=``, the reading is written to the store (schema v4, ``inventory``): each (target, service,
region) that was read replaces its earlier reading, resources gone included; :func:`load_inventory` reads the
latest reading back, so a later run can place resources without calling the APIs again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from dbcost.attribution.inventory import Inventory, InventoryItem, InventoryScope
from dbcost.client import CostExplorer, Stats, open_client
from dbcost.clock import Clock
from dbcost.config import Settings, TargetConfig, check_endpoint_and_region
from dbcost.errors import ApiError, ConfigError, DbcostError, MalformedResponseError
from dbcost.store import AsyncStore

__all__ = [
    "IAM_ACTIONS",
    "INVENTORY_SERVICES",
    "InventoryScope",
    "dynamodb_table_item",
    "elasticache_cluster_item",
    "load_inventory",
    "rds_cluster_item",
    "rds_instance_item",
    "read_inventory",
]

log = logging.getLogger("dbcost.inventory")

#: the services the inventory reads, in the order they are described
INVENTORY_SERVICES: tuple[str, ...] = ("rds", "dynamodb", "elasticache")

#: every IAM action :func:`read_inventory` calls, per service (all read-only); a target with ``role_arn`` also
#: needs ``sts:AssumeRole`` on that role
IAM_ACTIONS: Mapping[str, tuple[str, ...]] = {
    "rds": ("rds:DescribeDBClusters", "rds:DescribeDBInstances"),
    "dynamodb": ("dynamodb:ListTables", "dynamodb:DescribeTable", "dynamodb:ListTagsOfResource"),
    "elasticache": ("elasticache:DescribeCacheClusters", "elasticache:ListTagsForResource"),
}

#: error codes that mean "this resource is gone" (deleted between the listing and the describe call)
_GONE_CODES = frozenset({"ResourceNotFoundException", "CacheClusterNotFound", "CacheClusterNotFoundFault"})

T = TypeVar("T")


# ----------------------------------------------------------------------------------------- parsing (pure)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _text(entry: Mapping[str, Any], key: str, operation: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedResponseError(f"{operation}: an entry without {key}: {str(dict(entry))[:80]}")
    return value


def _opt_text(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    return value if isinstance(value, str) and value else None


def _opt_bool(entry: Mapping[str, Any], key: str) -> bool | None:
    value = entry.get(key)
    return value if isinstance(value, bool) else None


def _arn_parts(arn: str, operation: str) -> tuple[str, str, str]:
    """(partition, region, account) of ``arn``; a string that is not an ARN is refused in one line."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[1] or not parts[3] or not parts[4]:
        raise MalformedResponseError(f"{operation}: {arn[:80]!r} is not an ARN with a region and an account")
    return parts[1], parts[3], parts[4]


def _tags(tag_list: object, operation: str) -> dict[str, str]:
    """A ``[{"Key": ..., "Value": ...}]`` tag list as a dict (a tag without a value has the value "")."""
    if tag_list is None:
        return {}
    if not isinstance(tag_list, list):
        raise MalformedResponseError(f"{operation}: the tag list is not a list")
    tags: dict[str, str] = {}
    for tag in tag_list:
        if not isinstance(tag, Mapping) or not isinstance(tag.get("Key"), str):
            raise MalformedResponseError(f"{operation}: a tag without a Key: {tag!r:.80}")
        value = tag.get("Value")
        tags[tag["Key"]] = value if isinstance(value, str) else ""
    return tags


def rds_cluster_item(entry: Mapping[str, Any], *, target: str, read_at: dt.datetime) -> InventoryItem:
    """One ``DescribeDBClusters`` entry as an item, with its cluster-resource-id alias."""
    op = "DescribeDBClusters"
    arn = _text(entry, "DBClusterArn", op)
    partition, region, account = _arn_parts(arn, op)
    name = _text(entry, "DBClusterIdentifier", op)
    resource_id = _opt_text(entry, "DbClusterResourceId")
    aliases = (f"arn:{partition}:rds:{region}:{account}:cluster:{resource_id}",) if resource_id else ()
    return InventoryItem(
        arn=arn, service="rds", kind="db-cluster", account=account, region=region, name=name, read_at=read_at,
        cluster=name, engine=_opt_text(entry, "Engine"), engine_version=_opt_text(entry, "EngineVersion"),
        instance_class=_opt_text(entry, "DBClusterInstanceClass"), multi_az=_opt_bool(entry, "MultiAZ"),
        tags=_tags(entry.get("TagList"), op), aliases=aliases, target=target,
    )


def rds_instance_item(entry: Mapping[str, Any], *, target: str, read_at: dt.datetime) -> InventoryItem:
    """One ``DescribeDBInstances`` entry as an item; ``cluster`` is its DB cluster (None when standalone)."""
    op = "DescribeDBInstances"
    arn = _text(entry, "DBInstanceArn", op)
    _, region, account = _arn_parts(arn, op)
    return InventoryItem(
        arn=arn, service="rds", kind="db-instance", account=account, region=region,
        name=_text(entry, "DBInstanceIdentifier", op), read_at=read_at,
        cluster=_opt_text(entry, "DBClusterIdentifier"), engine=_opt_text(entry, "Engine"),
        engine_version=_opt_text(entry, "EngineVersion"), instance_class=_opt_text(entry, "DBInstanceClass"),
        multi_az=_opt_bool(entry, "MultiAZ"), tags=_tags(entry.get("TagList"), op), target=target,
    )


def dynamodb_table_item(table: Mapping[str, Any], tags: object, *, target: str,
                        read_at: dt.datetime) -> InventoryItem:
    """One ``DescribeTable`` answer's ``Table`` and its ``ListTagsOfResource`` tags as an item."""
    op = "DescribeTable"
    arn = _text(table, "TableArn", op)
    _, region, account = _arn_parts(arn, op)
    return InventoryItem(
        arn=arn, service="dynamodb", kind="table", account=account, region=region,
        name=_text(table, "TableName", op), read_at=read_at, tags=_tags(tags, "ListTagsOfResource"), target=target,
    )


def elasticache_cluster_item(entry: Mapping[str, Any], tags: object, *, target: str,
                             read_at: dt.datetime) -> InventoryItem:
    """One ``DescribeCacheClusters`` entry and its ``ListTagsForResource`` tags as an item; ``cluster`` is its
    replication group (None for a cluster of its own)."""
    op = "DescribeCacheClusters"
    arn = _text(entry, "ARN", op)
    _, region, account = _arn_parts(arn, op)
    return InventoryItem(
        arn=arn, service="elasticache", kind="cache-cluster", account=account, region=region,
        name=_text(entry, "CacheClusterId", op), read_at=read_at, cluster=_opt_text(entry, "ReplicationGroupId"),
        engine=_opt_text(entry, "Engine"), engine_version=_opt_text(entry, "EngineVersion"),
        instance_class=_opt_text(entry, "CacheNodeType"), tags=_tags(tags, "ListTagsForResource"), target=target,
    )


# ------------------------------------------------------------------------------------------------ calls


async def _each(fn: Callable[[Any], Coroutine[Any, Any, T | None]], entries: Iterable[Any]) -> list[T]:
    """``fn`` over ``entries`` concurrently (the governor paces them); results in order, ``None`` left out."""
    failure: DbcostError | None = None
    try:
        async with asyncio.TaskGroup() as tg:
            tasks: list[asyncio.Task[T | None]] = [tg.create_task(fn(e)) for e in entries]
    except BaseExceptionGroup as group:
        failure = _first_error(group)
        if failure is None:
            raise
    if failure is not None:  # raised outside the handler: the error keeps its own cause, not the group
        raise failure
    return [r for r in (t.result() for t in tasks) if r is not None]


async def _unless_gone(call: Awaitable[T]) -> T | None:
    """``call``'s answer, or None when the resource was deleted meanwhile."""
    try:
        return await call
    except ApiError as exc:
        if exc.code in _GONE_CODES:
            return None
        raise


async def _read_rds(api: CostExplorer, target: str, page_size: int) -> list[InventoryItem]:
    clusters = await api.paged_list("DescribeDBClusters", {"MaxRecords": page_size}, items="DBClusters",
                            token_in="Marker", token_out="Marker")
    clusters_at = _now()
    instances = await api.paged_list("DescribeDBInstances", {"MaxRecords": page_size}, items="DBInstances",
                             token_in="Marker", token_out="Marker")
    instances_at = _now()
    return ([rds_cluster_item(c, target=target, read_at=clusters_at) for c in _entries(clusters, "DBClusters")]
            + [rds_instance_item(i, target=target, read_at=instances_at)
               for i in _entries(instances, "DBInstances")])


async def _read_dynamodb(api: CostExplorer, target: str, page_size: int) -> list[InventoryItem]:
    names = await api.paged_list("ListTables", {"Limit": page_size}, items="TableNames",
                         token_in="ExclusiveStartTableName", token_out="LastEvaluatedTableName")
    if not all(isinstance(n, str) for n in names):
        raise MalformedResponseError("ListTables: TableNames holds a non-string")

    async def one(name: str) -> InventoryItem | None:
        answer = await _unless_gone(api.call("DescribeTable", {"TableName": name}))
        if answer is None:
            return None
        read_at = _now()
        table = answer.get("Table")
        if not isinstance(table, Mapping):
            raise MalformedResponseError(f"DescribeTable: no Table in the answer for {name!r}")
        arn = _text(table, "TableArn", "DescribeTable")
        tags = await _unless_gone(api.paged_list("ListTagsOfResource", {"ResourceArn": arn}, items="Tags",
                                         token_in="NextToken", token_out="NextToken"))
        if tags is None:
            return None
        return dynamodb_table_item(table, tags, target=target, read_at=read_at)

    return await _each(one, dict.fromkeys(names))


async def _read_elasticache(api: CostExplorer, target: str, page_size: int) -> list[InventoryItem]:
    clusters = await api.paged_list("DescribeCacheClusters", {"MaxRecords": page_size}, items="CacheClusters",
                            token_in="Marker", token_out="Marker")
    read_at = _now()

    async def one(entry: Mapping[str, Any]) -> InventoryItem | None:
        arn = _text(entry, "ARN", "DescribeCacheClusters")
        answer = await _unless_gone(api.call("ListTagsForResource", {"ResourceName": arn}))
        if answer is None:
            return None
        return elasticache_cluster_item(entry, answer.get("TagList"), target=target, read_at=read_at)

    return await _each(one, _entries(clusters, "CacheClusters"))


def _entries(batch: list[Any], key: str) -> list[Mapping[str, Any]]:
    if not all(isinstance(e, Mapping) for e in batch):
        raise MalformedResponseError(f"{key} holds an entry that is not an object")
    return batch


_READERS: Mapping[str, Callable[[CostExplorer, str, int], Awaitable[list[InventoryItem]]]] = {
    "rds": _read_rds,
    "dynamodb": _read_dynamodb,
    "elasticache": _read_elasticache,
}


# -------------------------------------------------------------------------------------------------- job


def _regions(settings: Settings, regions: Sequence[str] | None) -> dict[str, tuple[str, ...]]:
    """The regions to read, per target: ``regions`` for all, else each target's own region (its profile's or the
    environment's when the targets file names none, as a Cost Explorer client of it would use)."""
    if regions is not None:
        if not regions:
            raise ConfigError("inventory: no region to read (give at least one --region)")
        for region in regions:
            check_endpoint_and_region(None, region, where="inventory ")
        chosen = tuple(dict.fromkeys(regions))
        return {t.name: chosen for t in settings.targets}
    from dbcost.transport.aws import chain_region  # botocore loads only when a reading is made

    return {t.name: (t.region or chain_region(t.profile),) for t in settings.targets}


def _services(services: Collection[str]) -> tuple[str, ...]:
    unknown = sorted(set(services) - set(INVENTORY_SERVICES))
    if unknown:
        raise ConfigError(f"inventory: unknown service {unknown[0]!r} (one of {', '.join(INVENTORY_SERVICES)})")
    if not services:
        raise ConfigError(f"inventory: no service to read (one or more of {', '.join(INVENTORY_SERVICES)})")
    return tuple(s for s in INVENTORY_SERVICES if s in services)


def _first_error(group: BaseExceptionGroup[BaseException]) -> DbcostError | None:
    """The first dbcost error in a (nested) exception group, depth first; None when there is another kind."""
    exc = group.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        return _first_error(exc)
    return exc if isinstance(exc, DbcostError) else None


async def _read_scope(settings: Settings, target: TargetConfig, service: str, region: str, *, stats: Stats,
                      clock: Clock | None) -> list[InventoryItem]:
    inv = settings.inventory
    fetch = replace(
        settings.fetch_settings(target), region=region, endpoint_url=inv.endpoint_url, max_rps=inv.max_rps,
        max_concurrency=inv.max_concurrency, burst=inv.burst, max_requests=None,
        name=f"{target.name}/{service}/{region}",
    )
    try:
        async with open_client(fetch, stats=stats, clock=clock, service=service) as api:
            items = await _READERS[service](api, target.name, inv.page_size)
    except ApiError as exc:
        exc.operation = f"inventory of {target.name} in {region}: {exc.operation}"  # where, in the one line
        raise
    log.info("%s: %d %s resources", fetch.name, len(items), service)
    return items


async def read_inventory(
    settings: Settings,
    *,
    regions: Sequence[str] | None = None,
    services: Collection[str] = INVENTORY_SERVICES,
    store: AsyncStore | None = None,
    stats: Stats | None = None,
    clock: Clock | None = None,
) -> Inventory:
    """The databases of every target in ``regions`` (default: each target's own region, else its profile's or the
    environment's, else us-east-1), as their APIs describe
    them now; with ``store``, also kept there (each scope read replaces its earlier reading).

    Raises :class:`~dbcost.errors.ConfigError` for a region or service it cannot read (before any request),
    else the first error of any scope (nothing is written then). ``stats`` counts the requests."""
    scopes_by_target = _regions(settings, regions)
    chosen = _services(services)
    stats = stats if stats is not None else Stats()
    scopes = [InventoryScope(t.name, s, r) for t in settings.targets for r in scopes_by_target[t.name] for s in chosen]
    targets = {t.name: t for t in settings.targets}
    failure: DbcostError | None = None
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(_read_scope(settings, targets[sc.target], sc.service, sc.region, stats=stats,
                                                clock=clock)) for sc in scopes]
    except BaseExceptionGroup as group:
        failure = _first_error(group)
        if failure is None:
            raise
    if failure is not None:  # raised outside the handler: the error keeps its own cause, not the group
        raise failure
    items = [item for task in tasks for item in task.result()]
    if store is not None:
        await store.record_inventory(scopes, items)
    return Inventory(items)


async def load_inventory(settings: Settings, *, store: AsyncStore | None = None,
                         targets: Collection[str] | None = None) -> Inventory:
    """The latest reading the store holds (of ``targets``, default all): what :func:`read_inventory` last kept
    for each target, service and region. ``store`` is an open store; default: the settings' store."""
    wanted = tuple(targets) if targets is not None else None
    if store is not None:
        return Inventory(await store.inventory_items(wanted))
    async with AsyncStore(settings.store) as opened:
        return Inventory(await opened.inventory_items(wanted))
