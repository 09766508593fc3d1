"""Build an :class:`~dbcost.attribution.model.Attribution` from plain rows (pure, no I/O).

Inputs, for one month and one metric:

* usage rows (day, service, usage type, cluster, amount, estimated): the spend of every database service,
  grouped by usage type and cluster tag — the money that is attributed;
* owners: cluster -> (team or None, source), from :func:`dbcost.attribution.pools.resolve_teams`;
* optionally account rows (day, service, account, cluster, amount): the same money grouped by linked
  account and cluster, used only for *proportions* (shared-cost allocation, business units).

Shared-cost allocation (opt-in) spreads, per day and service, the unattributed amount over the teams in
proportion to their attributed spend *of the same account and service*: first over the accounts in
proportion to each account's unattributed spend, then within each account over its teams. Each split
uses :func:`dbcost.money.allocate` (exact, deterministic remainder), so the moved money equals the
unattributed money to the last decimal; what cannot be placed (an account/service with no attributed
spend) stays unattributed.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from dbcost.attribution.classify import classify, unclassified_spend
from dbcost.attribution.model import (
    SHARED_CLUSTER,
    UNATTRIBUTED,
    Attribution,
    ClusterSpend,
    DailySpend,
    TeamSpend,
    UnclassifiedSpend,
)
from dbcost.money import allocate, sum_amounts

__all__ = ["AccountRow", "UsageRow", "build_attribution"]

UNTAGGED_CLUSTER = "(untagged)"


@dataclass(frozen=True, slots=True)
class UsageRow:
    day: dt.date
    service: str
    usage_type: str
    cluster: str
    amount: Decimal
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class AccountRow:
    day: dt.date
    service: str
    account: str
    cluster: str
    amount: Decimal
    estimated: bool = False


def _zero() -> Decimal:
    return Decimal(0)


def build_attribution(
    month: str,
    metric: str,
    usage_rows: Iterable[UsageRow],
    owners: Mapping[str, tuple[str | None, str]],
    *,
    account_rows: Iterable[AccountRow] | None = None,
    allocate_shared: bool = False,
    business_units: Mapping[str, str] | None = None,
    services: list[str] | None = None,
    through: dt.date | None = None,
    envs: Mapping[str, str] | None = None,
) -> Attribution:
    # (team|None, cluster) -> category -> amount ; per-day team/category series
    per_cluster: dict[tuple[str | None, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(_zero))
    families: dict[tuple[str | None, str], set[str]] = defaultdict(set)
    # what the usage types say of a cluster (region, engine, instance class), and which accounts bill it
    facts: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    sources: dict[tuple[str | None, str], str] = {}
    daily: dict[tuple[dt.date, str, str], Decimal] = defaultdict(_zero)
    daily_est: dict[tuple[dt.date, str, str], bool] = {}
    unclassified: list[tuple[str, str, Decimal]] = []
    unattributed_by_day_service: dict[tuple[dt.date, str], Decimal] = defaultdict(_zero)
    total = Decimal(0)
    estimated_amount = Decimal(0)

    for r in usage_rows:
        c = classify(r.service, r.usage_type)
        team, source = owners.get(r.cluster, (None, "none")) if r.cluster else (None, "none")
        key = (team, r.cluster or UNTAGGED_CLUSTER)
        per_cluster[key][c.category] += r.amount
        families[key].add(c.family)
        if r.cluster and c.known:
            for what, value in (("regions", c.region), ("engines", c.engine), ("classes", c.instance_class)):
                if value:
                    facts[r.cluster][what].add(value)
        sources[key] = source
        pool = team if team is not None else UNATTRIBUTED
        dkey = (r.day, pool, c.category)
        daily[dkey] += r.amount
        daily_est[dkey] = daily_est.get(dkey, False) or r.estimated
        if not c.known:
            unclassified.append((r.service, r.usage_type, r.amount))
        if team is None:
            unattributed_by_day_service[(r.day, r.service)] += r.amount
        total += r.amount
        if r.estimated:
            estimated_amount += r.amount

    shared: dict[str, Decimal] = defaultdict(_zero)
    moved = Decimal(0)
    bu_spend: dict[str, Decimal] = defaultdict(_zero)
    if account_rows is not None:
        # proportions by account: attributed weight per (day, service, account, team), unattributed per account
        weight: dict[tuple[dt.date, str], dict[str, dict[str, Decimal]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(_zero)))
        unowned: dict[tuple[dt.date, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(_zero))
        for a in account_rows:
            if a.cluster and a.account and a.amount != 0:
                facts[a.cluster]["accounts"].add(a.account)
            team, _ = owners.get(a.cluster, (None, "none")) if a.cluster else (None, "none")
            if team is None:
                unowned[(a.day, a.service)][a.account] += a.amount
            else:
                weight[(a.day, a.service)][a.account][team] += a.amount
            if business_units is not None:
                bu_spend[business_units.get(a.account, "(unmapped)")] += a.amount
        if allocate_shared:
            for (day, service), amount in sorted(unattributed_by_day_service.items()):
                if amount == 0:
                    continue
                accounts = weight.get((day, service), {})
                if not accounts:
                    continue  # nobody to spread over: stays unattributed
                acct_names = sorted(set(accounts) | set(unowned.get((day, service), {})))
                acct_w = [max(Decimal(0), unowned[(day, service)].get(n, Decimal(0))) for n in acct_names]
                if sum_amounts(acct_w) == 0:
                    # weights must not be negative (credits can make an account's net spend negative)
                    acct_w = [max(Decimal(0), sum_amounts(accounts.get(n, {}).values())) for n in acct_names]
                    if sum_amounts(acct_w) == 0:
                        continue
                for acct, part in zip(acct_names, allocate(amount, acct_w), strict=True):
                    teams_w = accounts.get(acct)
                    if not teams_w or part == 0 or sum_amounts(teams_w.values()) <= 0:
                        continue
                    names = sorted(teams_w)
                    for team, share in zip(names, allocate(part, [max(Decimal(0), teams_w[t]) for t in names]),
                                           strict=True):
                        if share == 0:
                            continue
                        shared[team] += share
                        moved += share
                        daily[(day, team, "shared")] += share
                        daily[(day, UNATTRIBUTED, "shared")] -= share
                        daily_est.setdefault((day, team, "shared"), False)
                        daily_est.setdefault((day, UNATTRIBUTED, "shared"), False)

    teams: dict[str, list[ClusterSpend]] = defaultdict(list)
    unattributed_clusters: list[ClusterSpend] = []
    for (team, cluster), cats in sorted(per_cluster.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        known = facts.get(cluster, {})
        cs = ClusterSpend(cluster, sum_amounts(cats.values()), dict(cats), tuple(sorted(families[(team, cluster)])),
                          sources.get((team, cluster), "none"), accounts=tuple(sorted(known.get("accounts", ()))),
                          regions=tuple(sorted(known.get("regions", ()))),
                          engines=tuple(sorted(known.get("engines", ()))),
                          instance_classes=tuple(sorted(known.get("classes", ()))),
                          env=(envs or {}).get(cluster, ""))
        if team is None:
            unattributed_clusters.append(cs)
        else:
            teams[team].append(cs)
    for team, amount in shared.items():
        teams[team].append(ClusterSpend(SHARED_CLUSTER, amount, {"shared": amount}, (), "allocated"))
    if moved:
        unattributed_clusters.append(ClusterSpend(SHARED_CLUSTER, -moved, {"shared": -moved}, (), "allocated"))

    team_list = [
        TeamSpend(name, sum_amounts(c.amount for c in cl), tuple(sorted(cl, key=lambda c: (-c.amount, c.cluster))))
        for name, cl in teams.items()
    ]
    team_list.sort(key=lambda t: (-t.amount, t.team))
    unattributed = sum_amounts(c.amount for c in unattributed_clusters)
    unattributed_clusters.sort(key=lambda c: (-c.amount, c.cluster))
    result = Attribution(
        month=month,
        metric=metric,
        total=total,
        unattributed=unattributed,
        teams=team_list,
        unclassified_usage_types=[UnclassifiedSpend(u.service, u.usage_type, u.amount)
                                  for u in unclassified_spend(unclassified, database_only=False)],
        unattributed_clusters=unattributed_clusters,
        daily=[DailySpend(d, t, c, a, daily_est.get((d, t, c), False)) for (d, t, c), a in sorted(daily.items())
               if a != 0],
        estimated_amount=estimated_amount,
        allocated_shared=moved,
        services=sorted(services or []),
        through=through,
        business_units=dict(sorted(bu_spend.items())),
    )
    result.check()
    return result
