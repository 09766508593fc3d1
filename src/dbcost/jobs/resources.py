"""``dbcost resources``: what each database instance, cluster and table cost over the last 14 days, and who owns it.

Resource-level data is GetCostAndUsageWithResources (opt-in per payer, the last 14 days, DAILY, a Filter
required, ``RESOURCE_ID`` a GroupBy only there). It is fetched **through the backfill pipeline into the store**,
as ``dbcost attribute`` fetches its datasets, rather than paged straight to an answer: the store is what lets
``attribute`` and ``report`` use the same data for the days it covers, lets ``sync`` keep the 14-day window
current (:func:`dbcost.jobs.backfill.sync_start`), keeps quarantined groups with their raw JSON, and makes a second
run within ``max_age`` send nothing. Every request passes the same client, governor, retry, breaker, paging and
parser; the datasets are their own because the fingerprint includes the operation.

The datasets, each DAILY over the window:

* per database service ``S``: GroupBy ``RESOURCE_ID`` + ``USAGE_TYPE``, Filter SERVICE = S (the money, with its
  category: the classifier needs the service and the usage type, and two GroupBys are the limit);
* once: GroupBy ``RESOURCE_ID`` + ``TAG:<cluster-tag>``, and ``RESOURCE_ID`` + ``TAG:<team-tag>``, Filter SERVICE
  in the services (the billing tags on each resource's cost: the first placement rule).

Database services are discovered with GetDimensionValues (SERVICE) over the window and kept when the classifier
knows them as a database family, unless ``services`` names them. A target that never completed these datasets is
probed first with one small request, so a payer that has not opted in is one ``NotEnabledError`` line.
``inventory`` reads the databases' own APIs for the regions the resource ids name
(:func:`dbcost.jobs.inventory.read_inventory`), so resources whose tags billing does not know are placed by their
own tags. Placement itself is pure
(:func:`dbcost.attribution.resources.place_resources`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dbcost.attribution.classify import classify, is_database_family
from dbcost.attribution.inventory import Inventory
from dbcost.attribution.pools import Topology
from dbcost.attribution.resources import (
    QuarantinedGroups,
    ResourceAttribution,
    ResourceUsageRow,
    TagRow,
    parse_resource_id,
    place_resources,
)
from dbcost.client import Stats, open_client
from dbcost.config import Settings
from dbcost.errors import NotEnabledError, UsageError
from dbcost.jobs.inventory import read_inventory
from dbcost.models import CostQuery
from dbcost.operations import COST_AND_USAGE_WITH_RESOURCES
from dbcost.pipeline import RunOutcome, RunSpec, check_run, run_pipeline
from dbcost.plan import check_range
from dbcost.store import AsyncStore, RunStatus, Store

__all__ = [
    "HISTORY_DAYS",
    "ResourceDatasets",
    "ResourcesResult",
    "ResourcesSpec",
    "default_window",
    "resource_datasets",
    "resources_from_store",
    "run_resources",
    "stored_resource_services",
]

log = logging.getLogger("dbcost.resources")

#: days of resource-level data Cost Explorer serves
HISTORY_DAYS: int = COST_AND_USAGE_WITH_RESOURCES.history_days or 14
LABEL_PREFIX = "resources"
_OPERATION = COST_AND_USAGE_WITH_RESOURCES.name


def default_window(today: dt.date) -> tuple[dt.date, dt.date]:
    """The last 14 complete days: ``[today - 14, today)``."""
    return today - dt.timedelta(days=HISTORY_DAYS), today


@dataclass(frozen=True)
class ResourceDatasets:
    """The queries of one resources run: the money per service, and the two billing-tag groupings."""

    usage: dict[str, CostQuery]  # service -> RESOURCE_ID x USAGE_TYPE
    clusters: CostQuery  # RESOURCE_ID x TAG:<cluster-tag>
    teams: CostQuery  # RESOURCE_ID x TAG:<team-tag>

    def all(self) -> list[CostQuery]:
        return [*self.usage.values(), self.clusters, self.teams]

    def labels(self, metric: str) -> dict[str, str]:
        out = {q.fingerprint: f"{LABEL_PREFIX} usage {s} {metric}" for s, q in self.usage.items()}
        out[self.clusters.fingerprint] = f"{LABEL_PREFIX} cluster tag {metric}"
        out[self.teams.fingerprint] = f"{LABEL_PREFIX} team tag {metric}"
        return out


def resource_datasets(services: Sequence[str], start: dt.date, end: dt.date, *, metric: str, cluster_tag: str,
                      team_tag: str, granularity: str = "DAILY") -> ResourceDatasets:
    """The WithResources queries for ``services`` over ``[start, end)`` (QueryError for a rule they break)."""
    def svc(values: list[str]) -> dict[str, Any]:
        return {"Dimensions": {"Key": "SERVICE", "Values": values}}

    def build(group_by: list[str], values: list[str]) -> CostQuery:
        return CostQuery.build(start=start, end=end, granularity=granularity, metrics=[metric], group_by=group_by,
                               filter=svc(values), operation=_OPERATION)

    names = sorted(services)
    return ResourceDatasets(
        usage={s: build(["RESOURCE_ID", "USAGE_TYPE"], [s]) for s in names},
        clusters=build(["RESOURCE_ID", f"TAG:{cluster_tag}"], names),
        teams=build(["RESOURCE_ID", f"TAG:{team_tag}"], names),
    )


@dataclass
class ResourcesSpec:
    """One ``dbcost resources`` run: the window, the services (None: discover), how to place, from where."""

    settings: Settings = field(default_factory=Settings)
    start: dt.date | None = None  # None: today - 14
    end: dt.date | None = None  # None: today
    metric: str = "UnblendedCost"
    services: list[str] | None = None
    cluster_tag: str = "db-cluster"
    team_tag: str = "team"
    topology: Topology | None = None
    inventory: bool = False
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())
    max_age: dt.timedelta = dt.timedelta(hours=6)
    max_requests: int | None = None

    @property
    def db(self) -> Path:
        return self.settings.store.path

    def window(self) -> tuple[dt.date, dt.date]:
        start, end = default_window(self.today)
        return self.start or start, self.end or end

    def check(self) -> None:
        """Everything refused before a request is sent (UsageError/QueryError): the window against today and
        the operation's rules, the services, the plan and its cap."""
        start, end = self.window()
        earliest = self.today - dt.timedelta(days=HISTORY_DAYS)
        if start < earliest:
            raise UsageError(f"--start: {_OPERATION} serves the last {HISTORY_DAYS} days only (from {earliest}, "
                             f"today is {self.today}, UTC), got {start}")
        if end <= start:
            raise UsageError(f"--end: must be after --start {start} (end is exclusive), got {end}")
        if end > self.today:
            raise UsageError(f"--end: {end} is after today ({self.today}, UTC); resource-level data ends today")
        if self.services is not None:
            for s in self.services:
                if not is_database_family(classify(s, "").family):
                    raise UsageError(f"--service {s!r}: not a database service the classifier knows (e.g. "
                                     "'Amazon Relational Database Service', 'Amazon DynamoDB')")
        probe = resource_datasets(self.services or ["Amazon Relational Database Service"], start, end,
                                  metric=self.metric, cluster_tag=self.cluster_tag, team_tag=self.team_tag)
        for q in probe.all():
            check_range(q, self.today)
        if self.services is not None:
            check_run(self._run_spec(probe))

    def _run_spec(self, ds: ResourceDatasets) -> RunSpec:
        queries = ds.all()
        return RunSpec(query=queries[0], extra_queries=queries[1:], settings=self.settings.replace(sinks=()),
                       command="resources", today=self.today, max_requests=self.max_requests,
                       labels=ds.labels(self.metric))


@dataclass
class ResourcesResult:
    """What a resources run placed, and the run that fetched it (None: the store was fresh)."""

    attribution: ResourceAttribution
    fetched: RunOutcome | None
    services: list[str]
    datasets: ResourceDatasets
    discovery: Stats | None = None
    #: the inventory's requests (None: not read)
    inventory: Stats | None = None


def _services_key(metric: str, cluster_tag: str, team_tag: str) -> str:
    return f"resources-services|{metric}|{cluster_tag}|{team_tag}"


def stored_resource_services(store: Store, metric: str, cluster_tag: str, team_tag: str) -> list[str] | None:
    """Every database service ``dbcost resources`` fetched with these tags and metric (None: it never ran)."""
    value = store.get_meta(_services_key(metric, cluster_tag, team_tag))
    return list(orjson.loads(value)) if value is not None else None


def _fresh(store: Store, ds: ResourceDatasets, targets: list[str], start: dt.date, end: dt.date,
           max_age: dt.timedelta) -> bool:
    """Every dataset has done units covering [start, end) for every target, each completed within ``max_age``
    (resource-level data is restated for days, so there is no "final" here)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for q in ds.all():
        for target in targets:
            cursor = start
            for ws, we, updated in store.done_windows(q.fingerprint, target, start, end):
                if ws > cursor or now - updated > max_age:
                    return False
                cursor = max(cursor, we)
            if cursor < end:
                return False
    return True


async def _discover(spec: ResourcesSpec, start: dt.date, end: dt.date) -> tuple[list[str], Stats]:
    found: set[str] = set()
    stats = Stats()
    for target in spec.settings.targets:
        async with open_client(spec.settings.fetch_settings(target), stats=stats) as ce:
            values = await ce.dimension_values("SERVICE", start.isoformat(), end.isoformat())
        found |= {v for v in values if is_database_family(classify(v, "").family)}
    return sorted(found), stats


async def run_resources(spec: ResourcesSpec) -> ResourcesResult:
    """Fetch what is not fresh in the store, then place every resource of the window (see the module doc).

    Without ``spec.services``, the services an earlier run stored are checked for freshness first (nothing is
    sent when they are fresh); otherwise they are discovered (one GetDimensionValues per target)."""
    spec.check()
    start, end = spec.window()
    targets = [t.name for t in spec.settings.targets]
    candidate = sorted(set(spec.services)) if spec.services is not None else None
    fresh = False
    if spec.db.exists():
        with Store(spec.settings.store, read_only=True) as store:
            if candidate is None:
                candidate = stored_resource_services(store, spec.metric, spec.cluster_tag, spec.team_tag)
            if candidate:
                known = resource_datasets(candidate, start, end, metric=spec.metric, cluster_tag=spec.cluster_tag,
                                          team_tag=spec.team_tag)
                fresh = _fresh(store, known, targets, start, end, spec.max_age)
    if candidate and fresh:
        log.info("resource-level data for %s..%s is in the store and fresh; nothing to fetch", start, end)
        inv_stats = Stats()
        placed = await _place(spec, known, start, end, inv_stats)
        return ResourcesResult(placed, None, candidate, known, inventory=inv_stats if spec.inventory else None)
    discovery: Stats | None = None
    if spec.services is None:
        services, discovery = await _discover(spec, start, end)
        if not services:
            raise UsageError(f"--service: Cost Explorer reports no database service with spend in {start}..{end}")
    else:
        services = sorted(set(spec.services))
    ds = resource_datasets(services, start, end, metric=spec.metric, cluster_tag=spec.cluster_tag,
                           team_tag=spec.team_tag)
    probed = await _probe_opt_in(spec, ds)
    outcome = await run_pipeline(spec._run_spec(ds))
    for extra in (discovery, probed):
        if extra is not None:
            outcome.stats.add(extra)
    if outcome.status != RunStatus.DONE:
        empty = ResourceAttribution(start, end, spec.metric, [], services=services)
        return ResourcesResult(empty, outcome, services, ds, discovery)
    with Store(spec.settings.store) as store:
        before = set(stored_resource_services(store, spec.metric, spec.cluster_tag, spec.team_tag) or ())
        store.put_meta(_services_key(spec.metric, spec.cluster_tag, spec.team_tag),
                       orjson.dumps(sorted(before | set(services))).decode())
    inv_stats = Stats()
    placed = await _place(spec, ds, start, end, inv_stats)
    return ResourcesResult(placed, outcome, services, ds, discovery, inv_stats if spec.inventory else None)


async def _probe_opt_in(spec: ResourcesSpec, ds: ResourceDatasets) -> Stats | None:
    """For a target that never completed resource-level data in this store, one small request first (the last
    day of one service, no GroupBy): a payer that has not opted in is then one :class:`NotEnabledError` line
    (exit 1) instead of every unit of the run failing with it. It costs one request ($0.01) on a target's first
    run only; once a unit of these datasets completed, the opt-in is known and nothing is probed."""
    first = next(iter(ds.usage.values()))
    if spec.db.exists():
        with Store(spec.settings.store, read_only=True) as store:
            unknown = [t for t in spec.settings.targets
                       if not any(store.done_windows(q.fingerprint, t.name) for q in ds.all())]
    else:
        unknown = list(spec.settings.targets)
    if not unknown:
        return None
    stats = Stats()
    day = first.end - dt.timedelta(days=1)
    request = {"TimePeriod": {"Start": day.isoformat(), "End": first.end.isoformat()}, "Granularity": "DAILY",
               "Metrics": list(first.metrics), "Filter": first.to_request()["Filter"]}
    for target in unknown:
        async with open_client(spec.settings.fetch_settings(target), stats=stats) as ce:
            try:
                await ce.call(_OPERATION, request)
            except NotEnabledError as exc:
                if len(spec.settings.targets) == 1:
                    raise
                raise NotEnabledError(f"{target.name}: {exc}", setting=exc.setting) from None
    return stats


def _rows(store: Store, ds: ResourceDatasets, metric: str, start: dt.date, end: dt.date,
          targets: list[str]) -> tuple[list[ResourceUsageRow], list[TagRow], list[TagRow]]:
    s, e = start.isoformat(), end.isoformat()
    usage = [
        ResourceUsageRow(dt.date.fromisoformat(day[:10]), service, rid or "", ut or "", amount, est)
        for service, q in ds.usage.items()
        for day, rid, ut, amount, est in store.metric_amounts(q.fingerprint, metric, s, e, targets)
    ]
    clusters = [TagRow(rid or "", v or "", a) for _, rid, v, a, _ in
                store.metric_amounts(ds.clusters.fingerprint, metric, s, e, targets)]
    teams = [TagRow(rid or "", v or "", a) for _, rid, v, a, _ in
             store.metric_amounts(ds.teams.fingerprint, metric, s, e, targets)]
    return usage, clusters, teams


def _quarantined(store: Store, ds: ResourceDatasets, start: dt.date, end: dt.date,
                 targets: list[str]) -> QuarantinedGroups:
    """The money datasets' quarantined groups, by reason and by the resource id their raw keys name; the
    billing-tag datasets' ones counted apart (they lose a tag hint, not money)."""
    money = {q.fingerprint for q in ds.usage.values()}
    s, e = start.isoformat(), end.isoformat()
    rows = [g for t in targets for g in store.quarantined_groups([q.fingerprint for q in ds.all()], target=t)
            if g["period_start"] is None or s <= g["period_start"][:10] < e]  # None: a whole result
    reasons: Counter[str] = Counter()
    by_resource: Counter[str] = Counter()
    placement = 0
    for g in rows:
        dataset, reason, raw = g["dataset"], g["reason"], g["raw"]
        if dataset not in money:
            placement += 1
            continue
        reasons[reason] += 1
        keys = raw.get("Keys") if isinstance(raw, dict) else None
        if isinstance(keys, list) and keys and isinstance(keys[0], str):
            by_resource[keys[0]] += 1
    return QuarantinedGroups(sum(reasons.values()), dict(reasons), dict(by_resource), placement)


def _regions(usage: Iterable[ResourceUsageRow]) -> list[str]:
    return sorted({r for r in (parse_resource_id(u.resource_id).region for u in usage) if r})


async def _place(spec: ResourcesSpec, ds: ResourceDatasets, start: dt.date, end: dt.date,
                 stats: Stats | None = None) -> ResourceAttribution:
    """Read the window's rows from the store, read the inventory when asked (kept in the store), place."""
    targets = [t.name for t in spec.settings.targets]
    with Store(spec.settings.store, read_only=True) as store:
        usage, clusters, teams = _rows(store, ds, spec.metric, start, end, targets)
        quarantined = _quarantined(store, ds, start, end, targets)
    inventory: Inventory | None = None
    if spec.inventory:
        regions = _regions(usage)
        async with AsyncStore(spec.settings.store) as kept:
            inventory = await read_inventory(spec.settings, regions=regions or None, store=kept, stats=stats)
    return place_resources(usage, start=start, end=end, metric=spec.metric, cluster_tags=clusters,
                           team_tags=teams, inventory=inventory, topology=spec.topology,
                           cluster_tag=spec.cluster_tag, team_tag=spec.team_tag, quarantined=quarantined,
                           services=list(ds.usage))


def resources_from_store(store: Store, *, metric: str, cluster_tag: str, team_tag: str, start: dt.date,
                         end: dt.date, targets: list[str], topology: Topology | None = None,
                         ) -> tuple[ResourceAttribution, list[tuple[dt.date, dt.date]]] | None:
    """Resource-level placement of the days in ``[start, end)`` the store covers for every dataset and target
    (None: ``dbcost resources`` never stored data with these tags and metric, or none of those days), and the
    covered stretches. Used by ``attribute`` and ``report``; nothing is fetched, and the inventory is the latest
    reading ``dbcost resources --inventory`` kept in the store (none: not used)."""
    services = stored_resource_services(store, metric, cluster_tag, team_tag)
    if not services:
        return None
    ds = resource_datasets(services, dt.date(2000, 1, 1), dt.date(2000, 1, 2), metric=metric,
                           cluster_tag=cluster_tag, team_tag=team_tag)
    covered = _covered_days(store, ds, targets, start, end)
    if not covered:
        return None
    stretches = _stretches(covered)
    usage: list[ResourceUsageRow] = []
    clusters: list[TagRow] = []
    teams: list[TagRow] = []
    qs: list[QuarantinedGroups] = []
    for s, e in stretches:
        u, c, t = _rows(store, ds, metric, s, e, targets)
        usage += u
        clusters += c
        teams += t
        qs.append(_quarantined(store, ds, s, e, targets))
    q = QuarantinedGroups(sum(x.groups for x in qs),
                          dict(sum((Counter(x.reasons) for x in qs), Counter())),
                          dict(sum((Counter(x.by_resource) for x in qs), Counter())),
                          sum(x.placement_groups for x in qs))
    items = store.inventory_items(targets)  # the latest reading `resources --inventory` kept, if any
    placed = place_resources(usage, start=stretches[0][0], end=stretches[-1][1], metric=metric,
                             cluster_tags=clusters, team_tags=teams, inventory=Inventory(items) if items else None,
                             topology=topology, cluster_tag=cluster_tag, team_tag=team_tag, quarantined=q,
                             services=services)
    return placed, stretches


def _covered_days(store: Store, ds: ResourceDatasets, targets: list[str], start: dt.date,
                  end: dt.date) -> set[dt.date]:
    """The days of ``[start, end)`` that a done unit of every dataset covers for every target."""
    days: set[dt.date] | None = None
    for q in ds.all():
        for target in targets:
            mine: set[dt.date] = set()
            for ws, we, _ in store.done_windows(q.fingerprint, target, start, end):
                d = max(ws, start)
                while d < min(we, end):
                    mine.add(d)
                    d += dt.timedelta(days=1)
            days = mine if days is None else days & mine
    return days or set()


def _stretches(days: set[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Consecutive days as ``[start, end)`` stretches, oldest first."""
    out: list[tuple[dt.date, dt.date]] = []
    for d in sorted(days):
        if out and out[-1][1] == d:
            out[-1] = (out[-1][0], d + dt.timedelta(days=1))
        else:
            out.append((d, d + dt.timedelta(days=1)))
    return out
