"""Resource-level attribution (pure): what each database instance, cluster and table costs, and who owns it.

Cost Explorer's resource-level data (GetCostAndUsageWithResources, grouped by ``RESOURCE_ID``) names the
resource behind each charge. This module turns those rows into one :class:`PlacedResource` per resource id and
places each on a cluster and a team.

**Identity** (:func:`parse_resource_id`). A resource id is an ARN, ``arn:<partition>:<service>:<region>:
<account>:<resource>``; the resource part says the kind and the name:

==================  ============================================  =======================
service namespace   resource part                                 kind
==================  ============================================  =======================
rds                 ``db:<name>``                                 ``db-instance``
rds                 ``cluster:<id>`` (Aurora, DocumentDB,         ``db-cluster``
                    Neptune; the id is the cluster *resource id*
                    ``cluster-ABC...`` for cluster-level charges)
rds                 ``snapshot:<n>`` / ``cluster-snapshot:<n>``   ``db-snapshot`` / ``db-cluster-snapshot``
dynamodb            ``table/<name>[/...]``                        ``table``
dynamodb            ``global-table/<name>``                       ``global-table``
elasticache         ``cluster:<id>``                              ``cache-cluster``
elasticache         ``replicationgroup:<id>``                     ``replication-group``
elasticache         ``serverlesscache:<name>``                    ``serverless-cache``
redshift            ``cluster:<name>``                            ``redshift-cluster``
redshift-serverless ``workgroup/<id>`` / ``namespace/<id>``       ``workgroup`` / ``namespace``
docdb-elastic       ``cluster/<id>``                              ``db-cluster``
memorydb            ``cluster/<name>``                            ``cache-cluster``
neptune-graph       ``graph/<id>``                                ``graph``
==================  ============================================  =======================

DocumentDB and Neptune clusters use the ``rds`` namespace; the Cost Explorer SERVICE of their charges tells
them apart (``family`` comes from the classifier). An id that is not an ARN, or an ARN of a resource type not
listed, is kept with kind ``unknown`` (the namespace, account and region still read from an ARN): nothing is
dropped. Charges billed to no resource (``NoResourceId``, or an empty id) are one entry of kind ``no-resource``:
a pool of unrelated charges, so no tag's dominance and no inventory places it; only a topology row naming that
id does, else it is ``unattributed`` (tag-based ``attribute`` still places what tags it carries).

**Cluster.** Cluster-level charges (Aurora storage, I/O, backup) are billed to the cluster's own id and belong
to the cluster; instance charges belong to the instance and, through it, to its cluster. A resource's cluster
is the first of: the cluster tag on its cost (billing), the cluster tag on the resource (inventory), its
topology row's ``cluster``, its membership in the inventory (``DBClusterIdentifier``, a cluster's own
identifier), and for a ``db-cluster`` id nothing else known, its parsed name.

**Placement**, first match wins; each resource says which rule placed it (``placed_by``):

``billing-tag``
    the team tag on the resource's cost in Cost Explorer (the tag was activated for cost allocation); or,
    with none, the team that the cluster tag on its cost maps to in the same data (the team tag carrying
    most of that cluster's spend).
``inventory-tag``
    the team tag on the resource itself, as its own API returns it (activated for billing or not); or the
    team tag of its cluster's inventory item (an instance through its Aurora cluster).
``topology``
    the topology file's row for the resource id (``resource_id,cluster,team``), else its row for the
    resource's cluster (``cluster,team``).
``unattributed``
    none of these: the resource's spend is in ``unattributed``, shown and never spread.

Every amount is a ``Decimal`` summed exactly; :meth:`ResourceAttribution.check` holds the invariants (a
resource is the sum of its categories; ``total`` = the resources = the teams + ``unattributed`` = the clusters).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

from dbcost.attribution.classify import classify
from dbcost.attribution.inventory import Inventory, InventoryItem
from dbcost.attribution.model import CATEGORY_ORDER, DailySpend, ResourceCoverage, UntaggedResource
from dbcost.attribution.model import UNATTRIBUTED as UNATTRIBUTED_POOL
from dbcost.attribution.pools import Topology
from dbcost.money import fmt, sum_amounts

__all__ = [
    "BILLING_TAG",
    "INVENTORY_TAG",
    "NO_RESOURCE",
    "NO_RESOURCE_IDS",
    "PLACED_BY",
    "TOPOLOGY",
    "UNATTRIBUTED",
    "ClusterTotal",
    "PlacedBy",
    "PlacedResource",
    "QuarantinedGroups",
    "ResourceAttribution",
    "ResourceIdentity",
    "ResourceUsageRow",
    "TagRow",
    "parse_resource_id",
    "place_resources",
    "resource_coverage",
    "short_id",
]

PlacedBy = Literal["billing-tag", "inventory-tag", "topology", "unattributed"]
BILLING_TAG: Final[PlacedBy] = "billing-tag"
INVENTORY_TAG: Final[PlacedBy] = "inventory-tag"
TOPOLOGY: Final[PlacedBy] = "topology"
UNATTRIBUTED: Final[PlacedBy] = "unattributed"
#: the placement rules in the order they are tried
PLACED_BY: Final[tuple[PlacedBy, ...]] = (BILLING_TAG, INVENTORY_TAG, TOPOLOGY, UNATTRIBUTED)

#: ids that name no resource: charges Cost Explorer bills to no resource (``NoResourceId`` is what the emulator
#: sends, inferred from the console's wording; an empty id is what a missing key reads as). They are one pool of
#: unrelated charges, not a resource: never placed by a tag's dominance or an inventory, only by a topology row
#: that names the id itself.
NO_RESOURCE_IDS: Final = frozenset({"", "NoResourceId"})
NO_RESOURCE: Final = "no-resource"

#: the categories of a resource, in output order (no ``shared``: nothing is allocated here)
RESOURCE_CATEGORIES: Final[tuple[str, ...]] = tuple(c for c in CATEGORY_ORDER if c != "shared")

_ARN_RE: Final = re.compile(r"arn:(?P<partition>aws[a-z-]*):(?P<ns>[a-z0-9-]+):(?P<region>[a-z0-9-]*):"
                            r"(?P<account>[0-9]*):(?P<resource>.+)")
#: (namespace, resource type, separator) -> kind; the type is the resource part up to its first ':' or '/'
_KINDS: Final[Mapping[tuple[str, str], str]] = {
    ("rds", "db"): "db-instance",
    ("rds", "cluster"): "db-cluster",
    ("rds", "snapshot"): "db-snapshot",
    ("rds", "cluster-snapshot"): "db-cluster-snapshot",
    ("dynamodb", "table"): "table",
    ("dynamodb", "global-table"): "global-table",
    ("elasticache", "cluster"): "cache-cluster",
    ("elasticache", "replicationgroup"): "replication-group",
    ("elasticache", "serverlesscache"): "serverless-cache",
    ("elasticache", "snapshot"): "cache-snapshot",
    ("redshift", "cluster"): "redshift-cluster",
    ("redshift", "snapshot"): "redshift-snapshot",
    ("redshift-serverless", "workgroup"): "workgroup",
    ("redshift-serverless", "namespace"): "namespace",
    ("docdb-elastic", "cluster"): "db-cluster",
    ("memorydb", "cluster"): "cache-cluster",
    ("neptune-graph", "graph"): "graph",
}
#: kinds that are a cluster themselves (their name is the cluster when nothing else names one)
_CLUSTER_KINDS: Final = frozenset({"db-cluster", "replication-group", "redshift-cluster", "cache-cluster"})
_TYPE_RE: Final = re.compile(r"(?P<type>[a-z-]+)(?P<sep>[:/])(?P<rest>.+)")


@dataclass(frozen=True, slots=True)
class ResourceIdentity:
    """What a resource id says by itself: the service namespace, account, region, kind and name."""

    resource_id: str
    namespace: str  # the ARN's service namespace ("rds", "dynamodb", ...); "" when not an ARN
    kind: str  # see the module table; "unknown" when the id does not say
    account: str
    region: str
    name: str


def parse_resource_id(resource_id: str) -> ResourceIdentity:
    """The identity of ``resource_id`` (never fails: an id it cannot read is kind ``unknown``, named itself)."""
    if resource_id in NO_RESOURCE_IDS:
        return ResourceIdentity(resource_id, "", NO_RESOURCE, "", "", resource_id)
    m = _ARN_RE.fullmatch(resource_id)
    if m is None:
        return ResourceIdentity(resource_id, "", "unknown", "", "", resource_id)
    ns, resource = m["ns"], m["resource"]
    t = _TYPE_RE.fullmatch(resource)
    kind = _KINDS.get((ns, t["type"])) if t is not None else None
    if t is None or kind is None:
        return ResourceIdentity(resource_id, ns, "unknown", m["account"], m["region"], resource)
    name = t["rest"]
    if kind == "table":
        name = name.split("/", 1)[0]  # table/<name>/backup/..., /stream/..., /index/...: the table's
    return ResourceIdentity(resource_id, ns, kind, m["account"], m["region"], name)


def short_id(resource_id: str) -> str:
    """The resource part of an ARN (``db:pay-1-a``, ``table/orders``), for tables; any other id unchanged."""
    m = _ARN_RE.fullmatch(resource_id)
    return m["resource"] if m is not None else (resource_id or "(no resource id)")


# ------------------------------------------------------------------------------------------------ input


@dataclass(frozen=True, slots=True)
class ResourceUsageRow:
    """One stored amount of resource-level data: a resource's spend on one usage type on one day."""

    day: dt.date
    service: str  # the Cost Explorer SERVICE the dataset was filtered on
    resource_id: str
    usage_type: str
    amount: Decimal
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class TagRow:
    """A resource's spend under one value of a billing tag (``""``: the tag is absent from that spend)."""

    resource_id: str
    value: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class QuarantinedGroups:
    """Groups of the resource-level data the parser quarantined: they carry no amount that can be trusted, so
    they are counted (per reason and per resource id where the raw group names one), never dropped."""

    groups: int = 0  # of the money (RESOURCE_ID x USAGE_TYPE): amounts missing from the total
    reasons: Mapping[str, int] = field(default_factory=dict)
    by_resource: Mapping[str, int] = field(default_factory=dict)
    placement_groups: int = 0  # of the billing-tag groupings: a tag hint lost, no money

    def to_json(self) -> dict[str, Any]:
        reasons = sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        return {"groups": self.groups, "reasons": [{"reason": r, "count": n} for r, n in reasons],
                "placement_groups": self.placement_groups}


# ----------------------------------------------------------------------------------------------- output


@dataclass(frozen=True)
class PlacedResource:
    """One resource's spend over the window and where it was placed."""

    identity: ResourceIdentity
    service: str  # the Cost Explorer SERVICE carrying most of its spend
    family: str  # the classifier's family (aurora, rds, documentdb, neptune, dynamodb, ...)
    region: str
    cluster: str | None
    team: str | None
    placed_by: PlacedBy
    amount: Decimal
    categories: Mapping[str, Decimal]
    estimated: Decimal = Decimal(0)
    billing_tagged: bool = False  # its cost carries the team tag in Cost Explorer
    billing_cluster: str | None = None  # the cluster tag on its cost in Cost Explorer
    billing_untagged: Decimal = Decimal(0)  # its spend without the team tag in Cost Explorer
    resource_tags: Mapping[str, str] = field(default_factory=dict)  # from the inventory, when read
    quarantined_groups: int = 0

    @property
    def resource_id(self) -> str:
        return self.identity.resource_id

    @property
    def kind(self) -> str:
        return self.identity.kind

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_id": self.resource_id, "service": self.service, "kind": self.identity.kind,
            "account": self.identity.account, "region": self.region, "cluster": self.cluster, "team": self.team,
            "placed_by": self.placed_by, "amount": fmt(self.amount),
            "categories": {c: fmt(self.categories.get(c, Decimal(0))) for c in RESOURCE_CATEGORIES},
            "name": self.identity.name, "family": self.family, "estimated": fmt(self.estimated),
            "quarantined_groups": self.quarantined_groups,
        }


@dataclass(frozen=True)
class ClusterTotal:
    """A cluster's resources summed (``cluster`` None: the resources no rule put on a cluster)."""

    cluster: str | None
    team: str | None
    amount: Decimal
    categories: Mapping[str, Decimal]
    resources: int

    def to_json(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "team": self.team, "amount": fmt(self.amount),
                "categories": {c: fmt(self.categories.get(c, Decimal(0))) for c in RESOURCE_CATEGORIES},
                "resources": self.resources}


@dataclass
class ResourceAttribution:
    """Resource-level spend of ``[start, end)``: every resource once, its team totals and cluster totals."""

    start: dt.date
    end: dt.date
    metric: str
    resources: list[PlacedResource]
    quarantined: QuarantinedGroups = field(default_factory=QuarantinedGroups)
    services: list[str] = field(default_factory=list)
    inventory_read: bool = False

    @property
    def total(self) -> Decimal:
        return sum_amounts(r.amount for r in self.resources)

    @property
    def unattributed(self) -> Decimal:
        return sum_amounts(r.amount for r in self.resources if r.team is None)

    @property
    def estimated(self) -> Decimal:
        return sum_amounts(r.estimated for r in self.resources)

    def teams(self) -> list[tuple[str, Decimal]]:
        """(team, amount), largest first (ties by name); the unattributed pool is not a team."""
        acc: dict[str, list[Decimal]] = defaultdict(list)
        for r in self.resources:
            if r.team is not None:
                acc[r.team].append(r.amount)
        return sorted(((t, sum_amounts(v)) for t, v in acc.items()), key=lambda kv: (-kv[1], kv[0]))

    def clusters(self) -> list[ClusterTotal]:
        """Per cluster (a cluster's own charges and its instances'), largest first; None (no cluster) last."""
        groups: dict[str | None, list[PlacedResource]] = defaultdict(list)
        for r in self.resources:
            groups[r.cluster].append(r)
        out = []
        for cluster, members in groups.items():
            teams = {m.team for m in members if m.team is not None}
            team = max(teams, key=lambda t: (sum_amounts(m.amount for m in members if m.team == t), t)) \
                if teams else None
            out.append(ClusterTotal(cluster, team, sum_amounts(m.amount for m in members),
                                    _sum_categories(m.categories for m in members), len(members)))
        return sorted(out, key=lambda c: (c.cluster is None, -c.amount, c.cluster or ""))

    def placed_by_rule(self) -> dict[str, Decimal]:
        """The spend each placement rule placed (every rule listed, zero included)."""
        return {p: sum_amounts(r.amount for r in self.resources if r.placed_by == p) for p in PLACED_BY}

    def check(self) -> None:
        """Raise ``AssertionError`` if an invariant is broken (a bug, never user input)."""
        ids = [r.resource_id for r in self.resources]
        assert len(ids) == len(set(ids)), "a resource is listed twice"
        for r in self.resources:
            assert sum_amounts(r.categories.values()) == r.amount, r.resource_id
            assert (r.team is None) == (r.placed_by == UNATTRIBUTED), r.resource_id
        assert sum_amounts(a for _, a in self.teams()) + self.unattributed == self.total
        assert sum_amounts(c.amount for c in self.clusters()) == self.total

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "metric": self.metric,
            "total": fmt(self.total),
            "unattributed": fmt(self.unattributed),
            "resources": [r.to_json() for r in self.resources],
            "teams": [{"team": t, "amount": fmt(a)} for t, a in self.teams()],
            "clusters": [c.to_json() for c in self.clusters()],
            "placed_by": {p: fmt(a) for p, a in self.placed_by_rule().items()},
            "estimated": fmt(self.estimated),
            "quarantined": self.quarantined.to_json(),
            "services": self.services,
            "inventory": self.inventory_read,
        }


def _sum_categories(parts: Iterable[Mapping[str, Decimal]]) -> dict[str, Decimal]:
    acc: dict[str, list[Decimal]] = defaultdict(list)
    for p in parts:
        for c, a in p.items():
            acc[c].append(a)
    return {c: sum_amounts(acc[c]) for c in RESOURCE_CATEGORIES if c in acc}


# -------------------------------------------------------------------------------------------- placement


def _dominant(rows: Iterable[TagRow]) -> dict[str, str]:
    """resource id -> the non-empty tag value carrying most of its spend (ties: alphabetical)."""
    acc: dict[str, dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.value:
            acc[r.resource_id][r.value].append(r.amount)
    out = {}
    for rid, values in acc.items():
        sums = {v: sum_amounts(a) for v, a in values.items()}
        out[rid] = min(sums.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return out


@dataclass(frozen=True)
class _Evidence:
    """What is known of the resources, rule by rule."""

    billing_cluster: Mapping[str, str]
    billing_team: Mapping[str, str]
    billing_cluster_team: Mapping[str, str]
    inventory: Inventory | None
    inventory_cluster_team: Mapping[str, str]
    topology: Topology | None
    cluster_tag: str
    team_tag: str


def _inventory_cluster_teams(inventory: Inventory | None, team_tag: str) -> dict[str, str]:
    """cluster -> team from the inventory: a cluster item's own team tag, else the team tag most of its members
    carry (ties: alphabetical)."""
    if inventory is None:
        return {}
    own: dict[str, str] = {}
    members: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in inventory:
        team = item.tags.get(team_tag)
        if not item.cluster or not team:
            continue
        if item.kind in _CLUSTER_KINDS:
            own.setdefault(item.cluster, team)
        else:
            members[item.cluster][team] += 1
    for cluster, counts in members.items():
        own.setdefault(cluster, min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0])
    return own


def _cluster_of(ident: ResourceIdentity, ev: _Evidence, item: InventoryItem | None) -> str | None:
    rid = ident.resource_id
    if rid in ev.billing_cluster:
        return ev.billing_cluster[rid]
    if item is not None and item.tags.get(ev.cluster_tag):
        return item.tags[ev.cluster_tag]
    row = ev.topology.resources.get(rid) if ev.topology is not None else None
    if row is not None and row.cluster:
        return row.cluster
    if item is not None and item.cluster:
        return item.cluster
    if ident.kind in _CLUSTER_KINDS:
        return item.name if item is not None else ident.name
    return None


def _team_of(rid: str, cluster: str | None, ev: _Evidence, item: InventoryItem | None) -> tuple[str | None, PlacedBy]:
    """The first rule that names a team for the resource (itself, then through its cluster)."""
    if rid in ev.billing_team:
        return ev.billing_team[rid], BILLING_TAG
    if cluster is not None and cluster in ev.billing_cluster_team:
        return ev.billing_cluster_team[cluster], BILLING_TAG
    if item is not None and item.tags.get(ev.team_tag):
        return item.tags[ev.team_tag], INVENTORY_TAG
    if cluster is not None and cluster in ev.inventory_cluster_team:
        return ev.inventory_cluster_team[cluster], INVENTORY_TAG
    if ev.topology is not None:
        row = ev.topology.resources.get(rid)
        if row is not None:
            return row.team, TOPOLOGY
        if cluster is not None and ev.topology.team_of(cluster):
            return ev.topology.team_of(cluster), TOPOLOGY
    return None, UNATTRIBUTED


def place_resources(
    usage: Iterable[ResourceUsageRow],
    *,
    start: dt.date,
    end: dt.date,
    metric: str = "UnblendedCost",
    cluster_tags: Iterable[TagRow] = (),
    team_tags: Iterable[TagRow] = (),
    inventory: Inventory | None = None,
    topology: Topology | None = None,
    cluster_tag: str = "db-cluster",
    team_tag: str = "team",
    quarantined: QuarantinedGroups | None = None,
    services: Iterable[str] = (),
) -> ResourceAttribution:
    """One :class:`PlacedResource` per resource id in ``usage`` (and per id seen only in quarantined groups, at
    zero), placed by the rules of the module docstring; largest first, ties by id."""
    amounts: dict[str, dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    per_service: dict[str, dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    estimated: dict[str, list[Decimal]] = defaultdict(list)
    families: dict[str, dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    regions: dict[str, set[str]] = defaultdict(set)
    for row in usage:
        c = classify(row.service, row.usage_type)
        amounts[row.resource_id][c.category].append(row.amount)
        per_service[row.resource_id][row.service].append(row.amount)
        families[row.resource_id][c.family].append(row.amount)
        if c.region:
            regions[row.resource_id].add(c.region)
        if row.estimated:
            estimated[row.resource_id].append(row.amount)
    q = quarantined or QuarantinedGroups()
    cluster_rows, team_rows = list(cluster_tags), list(team_tags)
    billing_cluster, billing_team = _dominant(cluster_rows), _dominant(team_rows)
    no_team: dict[str, list[Decimal]] = defaultdict(list)
    for r in team_rows:
        if not r.value:
            no_team[r.resource_id].append(r.amount)
    # a cluster tag's team, from the billing data itself: the team tag on most of that cluster's spend
    spend: dict[str, dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    for r in team_rows:
        cl = billing_cluster.get(r.resource_id)
        if cl and r.value:
            spend[cl][r.value].append(r.amount)
    billing_cluster_team = {cl: min(((t, sum_amounts(a)) for t, a in teams.items()), key=lambda kv: (-kv[1], kv[0]))[0]
                            for cl, teams in spend.items()}
    ev = _Evidence(billing_cluster, billing_team, billing_cluster_team, inventory,
                   _inventory_cluster_teams(inventory, team_tag), topology, cluster_tag, team_tag)
    out: list[PlacedResource] = []
    for rid in sorted(set(amounts) | set(q.by_resource)):
        ident = parse_resource_id(rid)
        item = inventory.get(rid) if inventory is not None else None
        if rid in NO_RESOURCE_IDS:
            declared = topology.resources.get(rid) if topology is not None else None
            cluster = (declared.cluster or None) if declared is not None else None
            team, placed_by = (declared.team, TOPOLOGY) if declared is not None else (None, UNATTRIBUTED)
        else:
            cluster = _cluster_of(ident, ev, item)
            team, placed_by = _team_of(rid, cluster, ev, item)
        cats = {c: sum_amounts(v) for c, v in amounts[rid].items()}
        by_service = {s: sum_amounts(v) for s, v in per_service[rid].items()}
        service = min(by_service.items(), key=lambda kv: (-kv[1], kv[0]))[0] if by_service else ""
        fams = {f: sum_amounts(v) for f, v in families[rid].items()}
        family = min(fams.items(), key=lambda kv: (-kv[1], kv[0]))[0] if fams else ""
        if item is not None and ident.kind == "db-cluster":
            ident = dataclasses.replace(ident, name=item.name)  # the identifier, not the cluster resource id
        region = ident.region or (item.region if item is not None else "") or \
            (next(iter(regions[rid])) if len(regions[rid]) == 1 else "")
        out.append(PlacedResource(
            identity=ident, service=service, family=family, region=region, cluster=cluster, team=team,
            placed_by=placed_by, amount=sum_amounts(cats.values()),
            categories={c: cats.get(c, Decimal(0)) for c in RESOURCE_CATEGORIES},
            estimated=sum_amounts(estimated.get(rid, ())), billing_tagged=rid in billing_team,
            billing_cluster=billing_cluster.get(rid), billing_untagged=sum_amounts(no_team.get(rid, ())),
            resource_tags=dict(item.tags) if item is not None else {},
            quarantined_groups=q.by_resource.get(rid, 0),
        ))
    out.sort(key=lambda r: (-r.amount, r.resource_id))
    result = ResourceAttribution(start, end, metric, out, q, sorted(set(services)), inventory is not None)
    result.check()
    return result


# --------------------------------------------------------------------------------- attribution coverage


def _untagged_in_billing(r: PlacedResource, topology: Topology | None) -> bool:
    """Tag-based attribution leaves this resource's spend unattributed: no team tag reaches it in billing
    (itself or through its cluster tag), and the topology's cluster rows do not name its tagged cluster."""
    if r.placed_by == BILLING_TAG:
        return False
    return not (r.billing_cluster and topology is not None and topology.team_of(r.billing_cluster))


def _advice(r: PlacedResource, add: Mapping[str, str], team_tag: str) -> str:
    tags = ", ".join(f"{k}={v}" for k, v in add.items())
    if r.resource_tags.get(team_tag):
        return (f"the resource carries {team_tag}={r.resource_tags[team_tag]}; activate '{team_tag}' as a cost "
                "allocation tag in the payer account (billing sees it only from then on)")
    who = f"team {r.team}" if r.team else "its owning team"
    return f"{who} should tag it {tags} and activate the keys as cost allocation tags"


def resource_coverage(daily: Iterable[DailySpend], placed: ResourceAttribution,
                      stretches: Iterable[tuple[dt.date, dt.date]], *, topology: Topology | None = None,
                      cluster_tag: str = "db-cluster", team_tag: str = "team", top: int = 10) -> ResourceCoverage:
    """What ``placed`` (resource-level data of the covered ``stretches``) adds to an attribution whose per-day
    money is ``daily``: how much of its unattributed spend on those days the resources placed, and the
    costliest resources without a team tag in billing, with the tags that would place them."""
    spans = tuple(stretches)
    def covered(day: dt.date) -> bool:
        return any(s <= day < e for s, e in spans)

    unattributed = sum_amounts(d.amount for d in daily if d.team == UNATTRIBUTED_POOL and covered(d.day))
    # charges billed to no resource count with their part billing has no team tag on (tags place the rest)
    pool = [r for r in placed.resources if r.resource_id in NO_RESOURCE_IDS]
    untagged = [r for r in placed.resources if r.resource_id not in NO_RESOURCE_IDS
                and _untagged_in_billing(r, topology)]
    pool_untagged = sum_amounts(r.billing_untagged for r in pool)
    pool_placed = sum_amounts(r.billing_untagged for r in pool if r.team is not None)
    by_rule: dict[str, Decimal] = {p: sum_amounts(r.amount for r in untagged if r.placed_by == p)
                                   for p in (INVENTORY_TAG, TOPOLOGY)}
    by_rule[TOPOLOGY] = sum_amounts((by_rule[TOPOLOGY], pool_placed))
    costliest = []
    for r in sorted(untagged, key=lambda r: (-r.amount, r.resource_id))[:top]:
        add = {team_tag: r.team or "?"}
        if r.billing_cluster is None:
            add[cluster_tag] = r.cluster or "?"
        costliest.append(UntaggedResource(
            r.resource_id, r.kind, r.service, r.region, r.cluster, r.team, r.placed_by, r.amount, add,
            bool(r.resource_tags.get(team_tag)), _advice(r, add, team_tag)))
    return ResourceCoverage(
        stretches=spans, unattributed=unattributed, resource_total=placed.total,
        untagged=sum_amounts((*(r.amount for r in untagged), pool_untagged)),
        placed=sum_amounts(by_rule.values()), placed_by=by_rule,
        still_unattributed=sum_amounts((*(r.amount for r in untagged if r.team is None),
                                        sum_amounts((pool_untagged, -pool_placed)))),
        costliest_untagged=tuple(costliest), quarantined_groups=placed.quarantined.groups,
    )
