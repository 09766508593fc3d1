"""``dbcost attribute``: database spend of a month per team, cluster and category.

Cost Explorer allows two GroupBy keys, but attribution needs three facts per dollar: its category (from
USAGE_TYPE), its cluster (a tag) and its team (another tag). And usage types collide across services
(DynamoDB and S3 both bill ``TimedStorage-ByteHrs``). So attribution fetches, through the backfill
pipeline (governor, retries, checkpoints, store):

* per database service ``S``: DAILY, GroupBy ``USAGE_TYPE`` + ``TAG:<cluster-tag>``, Filter SERVICE = S
  (the money, with its category and cluster);
* once: MONTHLY, GroupBy ``TAG:<cluster-tag>`` + ``TAG:<team-tag>``, Filter SERVICE in the database
  services (which team each cluster belongs to);
* with ``--allocate-shared`` or a topology file mapping accounts: per service, DAILY, GroupBy
  ``LINKED_ACCOUNT`` + ``TAG:<cluster-tag>`` (proportions per account).

When the store also holds resource-level data (``dbcost resources``, same metric and tags) for days of the
month, the attribution says what it adds for those days (``resource_level``: how much of the unattributed
spend the resources' own tags or the topology's resource rows place, and the costliest resources without a
team tag in billing with the tags to add); nothing more is fetched for it.

Database services are discovered with GetDimensionValues (SERVICE) for the month and kept when the
classifier knows them as a database family, rather than trusted from a hard-coded list. Nothing is
fetched when the store already holds every dataset for the month and it is fresh: completed within
``max_age`` or fetched after the month was final (5 days after its end).

**A range of months** (:func:`run_attribute_months`, ``attribute --start-month/--end-month`` or
``--months N``) is one pipeline run: the services are discovered once over the months that are not fresh,
each dataset's query spans them (the planner cuts it into monthly units, as for a backfill), and every
month is then attributed from the store. Each month is recorded with the same services, so a later
one-month ``attribute`` or ``report`` reads exactly these datasets; the report's trend is every
attributed month (:func:`attributed_months`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from dbcost.attribution.build import AccountRow, UsageRow, build_attribution
from dbcost.attribution.classify import classify, is_database_family
from dbcost.attribution.model import Attribution, ResourceCoverage
from dbcost.attribution.pools import Topology, resolve_teams
from dbcost.attribution.resources import resource_coverage
from dbcost.calendar import RESTATEMENT_GRACE_DAYS, add_months, daily_window_start
from dbcost.client import Stats, open_client
from dbcost.config import Settings, TargetConfig
from dbcost.errors import UsageError
from dbcost.jobs.resources import resources_from_store
from dbcost.models import CostQuery
from dbcost.pipeline import RunOutcome, RunSpec, run_pipeline
from dbcost.store import RunStatus, Store

__all__ = [
    "AttributeRangeResult",
    "AttributeResult",
    "AttributeSpec",
    "AttributionDatasets",
    "attributed_months",
    "attribution_datasets",
    "attribution_from_store",
    "month_range",
    "months_between",
    "run_attribute",
    "run_attribute_months",
]

log = logging.getLogger("dbcost.attribute")

LABEL_PREFIX = "attribution"


def month_range(month: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """[first day, exclusive end) of ``month`` (YYYY-MM), cut at ``today`` for the open month."""
    try:
        start = dt.date.fromisoformat(f"{month}-01")
    except ValueError:
        raise UsageError(f"--month: must be YYYY-MM, got {month!r}") from None
    if len(month) != 7:
        raise UsageError(f"--month: must be YYYY-MM, got {month!r}")
    end = min(add_months(start, 1), today)
    if end <= start:
        raise UsageError(f"--month: {month} has no data yet (today is {today})")
    return start, end


@dataclass(frozen=True)
class AttributionDatasets:
    usage: dict[str, CostQuery]  # service -> query
    teams: CostQuery
    accounts: dict[str, CostQuery]  # service -> query (empty unless needed)

    def all(self) -> list[CostQuery]:
        return [*self.usage.values(), self.teams, *self.accounts.values()]

    def labels(self, metric: str) -> dict[str, str]:
        out = {q.fingerprint: f"{LABEL_PREFIX} usage {s} {metric}" for s, q in self.usage.items()}
        out[self.teams.fingerprint] = f"{LABEL_PREFIX} teams {metric}"
        out.update({q.fingerprint: f"{LABEL_PREFIX} accounts {s} {metric}" for s, q in self.accounts.items()})
        return out


def attribution_datasets(
    services: list[str], start: dt.date, end: dt.date, *, metric: str, cluster_tag: str, team_tag: str,
    with_accounts: bool,
) -> AttributionDatasets:
    def svc_filter(values: list[str]) -> dict[str, Any]:
        return {"Dimensions": {"Key": "SERVICE", "Values": values}}

    usage = {
        s: CostQuery.build(start=start, end=end, granularity="DAILY", metrics=[metric],
                           group_by=["USAGE_TYPE", f"TAG:{cluster_tag}"], filter=svc_filter([s]))
        for s in services
    }
    teams = CostQuery.build(start=start, end=end, granularity="MONTHLY", metrics=[metric],
                            group_by=[f"TAG:{cluster_tag}", f"TAG:{team_tag}"], filter=svc_filter(sorted(services)))
    accounts = {
        s: CostQuery.build(start=start, end=end, granularity="DAILY", metrics=[metric],
                           group_by=["LINKED_ACCOUNT", f"TAG:{cluster_tag}"], filter=svc_filter([s]))
        for s in services
    } if with_accounts else {}
    return AttributionDatasets(usage, teams, accounts)


@dataclass
class AttributeSpec:
    """One month's attribution: what to attribute, how (tags, topology, allocation), from where
    (:class:`~dbcost.config.Settings`: targets, rate, retry, store) and how fresh the store must be."""

    month: str
    settings: Settings = field(default_factory=Settings)
    metric: str = "UnblendedCost"
    cluster_tag: str = "db-cluster"
    team_tag: str = "team"
    topology: Topology | None = None
    allocate_shared: bool = False
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())
    max_age: dt.timedelta = dt.timedelta(hours=6)
    refresh: bool = False
    offline: bool = False
    max_requests: int | None = None

    @property
    def db(self) -> Path:
        return self.settings.store.path

    def replace_month(self, month: str) -> AttributeSpec:
        """This spec for another month."""
        return dataclasses.replace(self, month=month)

    @property
    def targets(self) -> tuple[TargetConfig, ...]:
        return self.settings.targets


@dataclass
class AttributeResult:
    attribution: Attribution
    fetched: RunOutcome | None
    services: list[str]
    datasets: AttributionDatasets


def _fresh(store: Store, dataset: str, targets: list[str], start: dt.date, end: dt.date, now: dt.datetime,
           max_age: dt.timedelta) -> bool:
    """Every target has done units covering [start, end) of ``dataset``, each recent or fetched after final."""
    for target in targets:
        cursor = start
        for ws, we, updated in store.done_windows(dataset, target, start, end):
            if ws > cursor:
                return False
            final_after = we + dt.timedelta(days=RESTATEMENT_GRACE_DAYS)
            if not (now - updated <= max_age or updated.date() >= final_after):
                return False
            cursor = max(cursor, we)
        if cursor < end:
            return False
    return True


def _services_prefix(spec: AttributeSpec) -> str:
    return f"attribution-services|{spec.metric}|{spec.cluster_tag}|{spec.team_tag}|"


def _services_key(spec: AttributeSpec, month: str) -> str:
    return _services_prefix(spec) + month


def attributed_months(spec: AttributeSpec, store: Store) -> list[str]:
    """Every month (YYYY-MM, oldest first) ``dbcost attribute`` fetched with ``spec``'s metric and tags."""
    prefix = _services_prefix(spec)
    return sorted(k[len(prefix):] for k in store.meta_keys(prefix))


def months_between(start_month: str, end_month: str, *, limit: int = 24) -> list[str]:
    """The months from ``start_month`` to ``end_month`` inclusive (YYYY-MM each); a UsageError for a bad
    month, an end before the start or more than ``limit`` months."""
    bounds = []
    for name, month in (("--start-month", start_month), ("--end-month", end_month)):
        try:
            if len(month) != 7:
                raise ValueError
            bounds.append(dt.date.fromisoformat(f"{month}-01"))
        except ValueError:
            raise UsageError(f"{name}: must be YYYY-MM, got {month!r}") from None
    first, last = bounds
    if last < first:
        raise UsageError(f"--end-month: {end_month} is before --start-month {start_month}")
    out = []
    cursor = first
    while cursor <= last:
        out.append(cursor.strftime("%Y-%m"))
        cursor = add_months(cursor, 1)
    if len(out) > limit:
        raise UsageError(f"--end-month: {len(out)} months is more than {limit} in one run")
    return out


def _stored_services(store: Store, spec: AttributeSpec, month: str) -> list[str] | None:
    """The database services discovered for ``month`` by an earlier attribute run (None if never run)."""
    value = store.get_meta(_services_key(spec, month))
    return list(orjson.loads(value)) if value is not None else None


def _datasets_for(spec: AttributeSpec, services: list[str], start: dt.date, end: dt.date) -> AttributionDatasets:
    with_accounts = spec.allocate_shared or bool(spec.topology and spec.topology.business_units)
    return attribution_datasets(services, start, end, metric=spec.metric, cluster_tag=spec.cluster_tag,
                                team_tag=spec.team_tag, with_accounts=with_accounts)


def attribution_from_store(spec: AttributeSpec, store: Store, month: str | None = None) -> Attribution | None:
    """The attribution of ``month`` (default ``spec.month``) from what the store holds, fresh or not;
    None when ``dbcost attribute`` never fetched that month (with these tags and metric)."""
    month = month or spec.month
    start, end = month_range(month, spec.today)
    services = _stored_services(store, spec, month)
    if services is None:
        return None
    ds = _datasets_for(spec, services, start, end)
    if ds.accounts and not _covered(store, ds.accounts.values(), [t.name for t in spec.targets], start, end):
        return None
    return _compute(spec, store, ds, start, end, month)


def _covered(store: Store, queries: Any, targets: list[str], start: dt.date, end: dt.date) -> bool:
    return all(store.has_done_units(q.fingerprint, t, start, end) for q in queries for t in targets)


async def _discover_services(spec: AttributeSpec, start: dt.date, end: dt.date) -> tuple[list[str], Stats]:
    """The database services with spend in ``[start, end)`` over every target (GetDimensionValues SERVICE, kept
    when the classifier knows them as a database family), and what asking cost."""
    discovered: set[str] = set()
    discovery = Stats()
    for target in spec.targets:
        async with open_client(spec.settings.fetch_settings(target), stats=discovery) as ce:
            values = await ce.dimension_values("SERVICE", start.isoformat(), end.isoformat())
        discovered |= {v for v in values if is_database_family(classify(v, "").family)}
    return sorted(discovered), discovery


async def run_attribute(spec: AttributeSpec) -> AttributeResult:
    start, end = month_range(spec.month, spec.today)
    daily_from = daily_window_start(spec.today)
    if start < daily_from:
        raise UsageError(f"--month {spec.month}: attribution uses DAILY data, which Cost Explorer keeps for 13 months "
                         f"plus the current one (from {daily_from})")
    target_names = [t.name for t in spec.targets]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)

    if spec.db.exists():
        with Store(spec.settings.store, read_only=True) as store:
            known = _stored_services(store, spec, spec.month)
            if known is not None and not spec.refresh:
                ds = _datasets_for(spec, known, start, end)
                if all(_fresh(store, q.fingerprint, target_names, q.start, q.end, now, spec.max_age)
                       for q in ds.all()):
                    log.info("attribution data for %s is in the store and fresh; nothing to fetch", spec.month)
                    return AttributeResult(_compute(spec, store, ds, start, end, spec.month), None, known, ds)
    if spec.offline:
        raise UsageError(f"--offline: the store has no fresh attribution data for {spec.month}; run without --offline")

    services, discovery = await _discover_services(spec, start, end)
    if not services:
        raise UsageError(f"--month {spec.month}: Cost Explorer reports no database service with spend")
    ds = _datasets_for(spec, services, start, end)
    queries = ds.all()
    run = RunSpec(
        query=queries[0], extra_queries=queries[1:], settings=spec.settings.replace(sinks=()), command="attribute",
        today=spec.today, max_requests=spec.max_requests, labels=ds.labels(spec.metric),
    )
    outcome = await run_pipeline(run)
    outcome.stats.add(discovery)
    if outcome.status != RunStatus.DONE:
        return AttributeResult(_empty(spec), outcome, services, ds)
    with Store(spec.settings.store) as store:
        store.put_meta(_services_key(spec, spec.month), orjson.dumps(services).decode())
        return AttributeResult(_compute(spec, store, ds, start, end, spec.month), outcome, services, ds)


@dataclass
class AttributeRangeResult:
    """The attribution of each month of a range (oldest first), and the one run that fetched what was not
    fresh (None when the store held it all)."""

    results: list[AttributeResult]
    fetched: RunOutcome | None
    services: list[str]

    @property
    def attributions(self) -> list[Attribution]:
        return [r.attribution for r in self.results]


async def run_attribute_months(spec: AttributeSpec, months: list[str]) -> AttributeRangeResult:
    """Attribute every month of ``months`` (YYYY-MM, consecutive, oldest first) in one pipeline run.

    ``spec`` gives everything but the month. Months the store holds fresh are not fetched; the others are
    fetched together: services discovered once over their span, each dataset's query over the span."""
    if not months:
        raise UsageError("--months: no month to attribute")
    ranges = {m: month_range(m, spec.today) for m in months}
    daily_from = daily_window_start(spec.today)
    if ranges[months[0]][0] < daily_from:
        raise UsageError(f"--start-month {months[0]}: attribution uses DAILY data, which Cost Explorer keeps for 13 "
                         f"months plus the current one (from {daily_from:%Y-%m})")
    target_names = [t.name for t in spec.targets]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    stale = list(months)
    if spec.db.exists() and not spec.refresh:
        with Store(spec.settings.store, read_only=True) as store:
            stale = [m for m in months if not _month_fresh(spec, store, m, ranges[m], target_names, now)]
    if stale and spec.offline:
        raise UsageError(f"--offline: the store has no fresh attribution data for {', '.join(stale)}; "
                         "run without --offline")
    outcome: RunOutcome | None = None
    services: list[str] = []
    if stale:
        first, last = ranges[stale[0]][0], ranges[stale[-1]][1]
        services, discovery = await _discover_services(spec, first, last)
        if not services:
            raise UsageError(f"--months {stale[0]}..{stale[-1]}: Cost Explorer reports no database service with spend")
        ds = _datasets_for(spec, services, first, last)
        queries = ds.all()
        run = RunSpec(
            query=queries[0], extra_queries=queries[1:], settings=spec.settings.replace(sinks=()),
            command="attribute", today=spec.today, max_requests=spec.max_requests, labels=ds.labels(spec.metric),
        )
        outcome = await run_pipeline(run)
        outcome.stats.add(discovery)
        if outcome.status != RunStatus.DONE:
            return AttributeRangeResult([], outcome, services)
    results = []
    with Store(spec.settings.store, read_only=not stale) as store:
        for m in months:
            if m in stale:
                store.put_meta(_services_key(spec, m), orjson.dumps(services).decode())
            known = _stored_services(store, spec, m)
            assert known is not None
            start, end = ranges[m]
            ds = _datasets_for(spec, known, start, end)
            month_spec = spec.replace_month(m)
            results.append(AttributeResult(_compute(month_spec, store, ds, start, end, m),
                                           outcome if m in stale else None, known, ds))
    return AttributeRangeResult(results, outcome, services or sorted({s for r in results for s in r.services}))


def _month_fresh(spec: AttributeSpec, store: Store, month: str, bounds: tuple[dt.date, dt.date],
                 targets: list[str], now: dt.datetime) -> bool:
    known = _stored_services(store, spec, month)
    if known is None:
        return False
    ds = _datasets_for(spec, known, *bounds)
    return all(_fresh(store, q.fingerprint, targets, q.start, q.end, now, spec.max_age) for q in ds.all())


def _empty(spec: AttributeSpec) -> Attribution:
    return Attribution(spec.month, spec.metric, Decimal(0), Decimal(0), [])


def _compute(spec: AttributeSpec, store: Store, ds: AttributionDatasets, start: dt.date, end: dt.date,
             month: str) -> Attribution:
    s, e = start.isoformat(), end.isoformat()
    # only the targets asked for: a store may hold several payers' data
    names = [t.name for t in spec.targets]
    usage: list[UsageRow] = []
    for service, q in ds.usage.items():
        for day, ut, cluster, amount, est in store.metric_amounts(q.fingerprint, spec.metric, s, e, names):
            usage.append(UsageRow(dt.date.fromisoformat(day[:10]), service, ut or "", cluster or "", amount, est))
    tag_rows = [
        (c or "", t or "", Decimal(a))
        for _, c, t, a, _ in store.metric_amounts(ds.teams.fingerprint, spec.metric, s, e, names)
    ]
    owners = resolve_teams(tag_rows, spec.topology)
    account_rows: list[AccountRow] | None = None
    if ds.accounts:
        account_rows = []
        for service, q in ds.accounts.items():
            for day, acct, cluster, amount, _ in store.metric_amounts(q.fingerprint, spec.metric, s, e, names):
                account_rows.append(AccountRow(dt.date.fromisoformat(day[:10]), service, acct or "", cluster or "",
                                               amount))
    attribution = build_attribution(
        month, spec.metric, usage, owners, account_rows=account_rows, allocate_shared=spec.allocate_shared,
        business_units=spec.topology.business_units if spec.topology and spec.topology.business_units else None,
        services=list(ds.usage), through=end,
        envs={c: i.env for c, i in spec.topology.clusters.items() if i.env} if spec.topology else None,
    )
    attribution.resource_level = _resource_level(spec, store, attribution, start, end, names)
    return attribution


def _resource_level(spec: AttributeSpec, store: Store, attribution: Attribution, start: dt.date, end: dt.date,
                    targets: list[str]) -> ResourceCoverage | None:
    """What the store's resource-level data (``dbcost resources``, same metric and tags) places of the month's
    unattributed spend on the days it covers; None when it covers none of them."""
    found = resources_from_store(store, metric=spec.metric, cluster_tag=spec.cluster_tag, team_tag=spec.team_tag,
                                 start=start, end=end, targets=targets, topology=spec.topology)
    if found is None:
        return None
    placed, stretches = found
    return resource_coverage(attribution.daily, placed, stretches, topology=spec.topology,
                             cluster_tag=spec.cluster_tag, team_tag=spec.team_tag)
