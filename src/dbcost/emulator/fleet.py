"""The synthetic enterprise database fleet behind the emulator: who owns what, and what it costs each day.

Why it is built the way it is:

* **Order-independent determinism.** Every daily amount is a pure function of ``(seed, line, date)``
  (and the data version inside the restatement window), computed from a keyed BLAKE2 hash. No
  sequential RNG is consumed while serving, so the same seed gives the same cents whatever was queried
  before, in which order, over which windows. The layout (accounts, clusters, lifecycles) is fixed at
  construction from the seed and the *anchor month*, so any ``today`` inside that month sees one fleet.
* **Exact money without ``float``.** Amounts are Python integers in units of 10⁻¹⁰ (the scale Cost
  Explorer serves, ``"40.3527508453"``). Integer arithmetic is exact and several times faster than
  ``Decimal`` in the aggregation loop; everything that leaves this package (wire strings, truth) goes
  through :func:`units_to_str` / :func:`units_to_decimal`, which are lossless.
* **Packed sums.** A line item's ten numbers (seven metrics plus three unit-consistency counters) are
  packed into one non-negative integer, 96 bits a field. Summing packed integers sums every field at
  once, which keeps a 31-day, two-key GroupBy over the default fleet in the low milliseconds. Fields
  never overflow (96 bits hold 7.9e18 USD at 10⁻¹⁰) and no amount is negative, so no borrow crosses a
  field.
* **Unit consistency for free.** ``UsageQuantity`` has a unit only when every item of a group shares it
  (else ``N/A``). Each item adds ``1``, ``u`` and ``u²`` (``u`` its unit id) to three counter fields;
  a group is single-unit exactly when ``n·Σu² == (Σu)²``.
* **Right-sizing patterns, planted.** Every full block of 50 clusters carries each pattern ``dbcost advise``
  looks for once (:data:`PATTERNS`: Extended Support lines on old engine versions, also on untagged spend, an
  I/O-heavy Aurora Standard cluster, an Aurora cluster that moved to I/O-Optimized inside the anchor month or
  the one before, an idle Aurora cluster, Intel and previous-generation classes, steady and bursty on-demand
  DynamoDB tables), on a cluster chosen by a hash rank among the block's eligible ones (old enough, never
  retired). A fleet of fewer than 50 clusters has none, so small test fleets are exactly what they were. Each
  line records its role (:meth:`Fleet.role`), which is how :mod:`dbcost.emulator.advice` computes the
  advisories' ground truth without reading usage-type strings.
* **Resource ids, split exactly.** Every billing line also belongs to one or more resources
  (:attr:`Fleet.resource_lines`, :class:`Resource`), as GetCostAndUsageWithResources' ``RESOURCE_ID`` names
  them: RDS instances ``arn:aws:rds:<region>:<acct>:db:<name>``; an Aurora, DocumentDB or Neptune cluster's own
  charges (storage, I/O, backup) ``arn:aws:rds:<region>:<acct>:cluster:cluster-<26 chars>`` (its
  DbClusterResourceId, a hash of the seed and the cluster), its instance charges (compute, data transfer) on its
  ``<cluster>-instance-<k>`` instances; DynamoDB ``arn:aws:dynamodb:<region>:<acct>:table/<name>``; ElastiCache
  ``arn:aws:elasticache:<region>:<acct>:cluster:<id>``; Redshift ``arn:aws:redshift:<region>:<acct>:cluster:<name>``.
  A line on N instances is split into N exact integer parts (each field: the quotient, plus one for the first
  ``remainder`` parts), so the parts of every day sum to the line's amount to the 10⁻¹⁰ and every
  GetCostAndUsage answer stays what it was. Lines with no database resource (EC2, S3, Lambda, CloudWatch, Tax)
  carry :data:`NO_RESOURCE_ID` (inferred: what Cost Explorer names the group of charges without a resource).
* **Untagged clusters.** A fixed share of clusters (:data:`_UNTAGGED_SHARE_PM`, 5 %, chosen by a hash rank of the
  seed) carries no tags at all in billing, and the same share again ``db-cluster`` and ``env`` but no ``team``;
  every cluster still has its true owner (:attr:`Cluster.team`), which :class:`Resource` keeps for ground truth.
  The resources themselves carry their tags (:attr:`Resource.resource_tags`, what an inventory reads), except
  half of the untagged clusters (rounded down, the first by the same rank): *orphans*, tagged nowhere.
"""

from __future__ import annotations

import base64
import calendar
import dataclasses
import datetime as dt
import hashlib
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

__all__ = [
    "COST_METRICS",
    "DATABASE_SERVICES",
    "METRICS",
    "NO_RESOURCE_ID",
    "PATTERNS",
    "REGIONS",
    "SCALE",
    "TAG_KEYS",
    "Account",
    "Cluster",
    "Day",
    "Fleet",
    "Line",
    "Resource",
    "Role",
    "pack",
    "split_packed",
    "units_to_decimal",
    "units_to_str",
    "unpack",
]

# --------------------------------------------------------------------------------------- fixed point

SCALE: Final = 10
UNIT: Final = 10**SCALE

#: GetCostAndUsage metric names, in packed-field order.
METRICS: Final[tuple[str, ...]] = (
    "UnblendedCost",
    "BlendedCost",
    "AmortizedCost",
    "NetUnblendedCost",
    "NetAmortizedCost",
    "UsageQuantity",
    "NormalizedUsageAmount",
)
COST_METRICS: Final[frozenset[str]] = frozenset(METRICS[:5])
METRIC_INDEX: Final[Mapping[str, int]] = {m: i for i, m in enumerate(METRICS)}
F_QTY: Final = 5
F_COUNT: Final = 7
F_USUM: Final = 8
F_USQ: Final = 9
N_FIELDS: Final = 10
FIELD_BITS: Final = 96
FIELD_MASK: Final = (1 << FIELD_BITS) - 1


def pack(values: Sequence[int]) -> int:
    """Pack up to ten non-negative integers into one (field ``i`` at bit ``96·i``)."""
    out = 0
    for i, v in enumerate(values):
        if v < 0 or v > FIELD_MASK:
            raise ValueError(f"packed field {i} out of range: {v}")
        out |= v << (FIELD_BITS * i)
    return out


def unpack(packed: int) -> list[int]:
    """The ten fields of a packed sum."""
    return [(packed >> (FIELD_BITS * i)) & FIELD_MASK for i in range(N_FIELDS)]


def units_to_str(value: int) -> str:
    """A 10⁻¹⁰ integer as Cost Explorer writes amounts: plain decimal, trailing zeros dropped, ``"0"``."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), UNIT)
    if frac == 0:
        return f"{sign}{whole}" if whole else "0"
    return f"{sign}{whole}.{frac:0{SCALE}d}".rstrip("0")


def units_to_decimal(value: int) -> Decimal:
    """The exact ``Decimal`` of a 10⁻¹⁰ integer (built from its string: no context rounding)."""
    return Decimal(units_to_str(value))


def _units(text: str) -> int:
    """A price or quantity literal (at most 10 places) as a 10⁻¹⁰ integer, exactly."""
    d = Decimal(text)
    scaled = d.scaleb(SCALE)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{text!r} has more than {SCALE} decimal places")
    return int(scaled)


# ----------------------------------------------------------------------------------------- hashing


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _hp(seed: int, *parts: object) -> int:
    """A stable pseudo-random integer in ``[0, 1_000_000)`` from the seed and some labels."""
    return _digest("|".join([str(seed), *map(str, parts)]).encode()) % 1_000_000


def _pick(seed: int, options: Sequence[Any], *parts: object) -> Any:
    return options[_hp(seed, *parts) % len(options)]


def _between(seed: int, lo: int, hi: int, *parts: object) -> int:
    """A stable integer in ``[lo, hi]``."""
    return lo + _hp(seed, *parts) % (hi - lo + 1)


# ------------------------------------------------------------------------------------------ catalog

REGIONS: Final[tuple[str, ...]] = (
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-central-1",
    "ap-southeast-2",
)
#: Usage-type prefixes; us-east-1 is mostly unprefixed, as in real bills.
REGION_PREFIX: Final[Mapping[str, str]] = {
    "us-east-1": "",
    "us-west-2": "USW2-",
    "eu-west-1": "EU-",
    "eu-west-2": "EUW2-",
    "eu-central-1": "EUC1-",
    "ap-southeast-2": "APS2-",
}
_REGION_WEIGHTS: Final = (40, 15, 15, 10, 10, 10)
_REGION_PRICE_PM: Final[Mapping[str, int]] = {
    "us-east-1": 1000,
    "us-west-2": 1000,
    "eu-west-1": 1100,
    "eu-west-2": 1160,
    "eu-central-1": 1190,
    "ap-southeast-2": 1220,
}

RDS: Final = "Amazon Relational Database Service"
DYNAMODB: Final = "Amazon DynamoDB"
ELASTICACHE: Final = "Amazon ElastiCache"
REDSHIFT: Final = "Amazon Redshift"
DOCUMENTDB: Final = "Amazon DocumentDB (with MongoDB compatibility)"
NEPTUNE: Final = "Amazon Neptune"
EC2: Final = "Amazon Elastic Compute Cloud - Compute"
S3: Final = "Amazon Simple Storage Service"
LAMBDA: Final = "AWS Lambda"
CLOUDWATCH: Final = "AmazonCloudWatch"
TAX: Final = "Tax"
DATABASE_SERVICES: Final[frozenset[str]] = frozenset({RDS, DYNAMODB, ELASTICACHE, REDSHIFT, DOCUMENTDB, NEPTUNE})

TAG_KEYS: Final[tuple[str, ...]] = ("db-cluster", "env", "team")
TEAMS: Final[tuple[str, ...]] = (
    "payments",
    "search",
    "identity",
    "analytics",
    "platform",
    "checkout",
    "messaging",
    "catalog",
    "fraud",
    "growth",
)
_ACCOUNT_NAMES: Final[tuple[str, ...]] = (
    "payments-prod",
    "search-prod",
    "identity-prod",
    "analytics-prod",
    "platform-staging",
    "sandbox-dev",
    "checkout-prod",
    "messaging-staging",
    "catalog-prod",
    "ml-dev",
    "fraud-prod",
    "growth-staging",
)

# Engine mix per 50 clusters (the schedule is shuffled by the seed, then repeated).
_ENGINE_MIX: Final[tuple[tuple[str, int], ...]] = (
    ("aurora-postgresql", 11),
    ("aurora-mysql", 7),
    ("rds-postgresql", 7),
    ("rds-mysql", 6),
    ("dynamodb", 11),
    ("elasticache-redis", 4),
    ("redshift", 2),
    ("docdb", 1),
    ("neptune", 1),
)
_ENGINE_SERVICE: Final[Mapping[str, str]] = {
    "aurora-postgresql": RDS,
    "aurora-mysql": RDS,
    "rds-postgresql": RDS,
    "rds-mysql": RDS,
    "dynamodb": DYNAMODB,
    "elasticache-redis": ELASTICACHE,
    "redshift": REDSHIFT,
    "docdb": DOCUMENTDB,
    "neptune": NEPTUNE,
}
# (class, USD per hour in us-east-1); the normalization factor follows the size suffix.
_AURORA_CLASSES: Final = (
    ("db.r6g.large", "0.26"),
    ("db.r6g.xlarge", "0.519"),
    ("db.r6g.2xlarge", "1.038"),
    ("db.r7g.xlarge", "0.553"),
    ("db.r6g.4xlarge", "2.076"),
)
_RDS_CLASSES: Final = (
    ("db.m6g.large", "0.152"),
    ("db.m6g.xlarge", "0.304"),
    ("db.r6g.large", "0.225"),
    ("db.r6g.xlarge", "0.45"),
    ("db.t4g.medium", "0.065"),
)
_CACHE_CLASSES: Final = (
    ("cache.r6g.large", "0.206"),
    ("cache.r6g.xlarge", "0.411"),
    ("cache.m6g.large", "0.149"),
    ("cache.t4g.medium", "0.065"),
)
_REDSHIFT_CLASSES: Final = (("ra3.xlplus", "1.086"), ("ra3.4xlarge", "3.26"))
# only pattern clusters run these (us-east-1 list prices, the advice rules' DB-PRICES): Intel classes with a
# Graviton equivalent, and previous-generation classes
_INTEL_RDS_CLASSES: Final = (("db.m5.large", "0.171"), ("db.r5.xlarge", "0.50"))
_INTEL_CACHE_CLASSES: Final = (("cache.r5.large", "0.216"), ("cache.m5.large", "0.156"))
_OLD_RDS_CLASSES: Final = (("db.m4.large", "0.175"), ("db.t2.medium", "0.068"), ("db.r4.large", "0.24"))
_OLD_CACHE_CLASSES: Final = (("cache.m4.large", "0.156"), ("cache.r4.large", "0.228"))
_ALL_CLASSES: Final = (_AURORA_CLASSES + _RDS_CLASSES + _CACHE_CLASSES + _REDSHIFT_CLASSES + _INTEL_RDS_CLASSES
                       + _INTEL_CACHE_CLASSES + _OLD_RDS_CLASSES + _OLD_CACHE_CLASSES)
_DOCDB_CLASSES: Final = (("db.r6g.large", "0.277"), ("db.r6g.xlarge", "0.554"))
_NEPTUNE_CLASSES: Final = (("db.r6g.large", "0.348"), ("db.r6g.xlarge", "0.696"))
#: vCPUs per size, for RDS Extended Support (billed per vCPU-hour)
_VCPUS: Final[Mapping[str, int]] = {"medium": 2, "large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16}
_NORMALIZATION: Final[Mapping[str, int]] = {
    "medium": 2,
    "large": 4,
    "xlplus": 8,
    "xlarge": 8,
    "2xlarge": 16,
    "4xlarge": 32,
}

# weekday factors, per mille (Monday first): production load dips at the weekend
_WEEKDAY_PM: Final = (1050, 1080, 1080, 1060, 1000, 780, 750)

# shapes of a daily quantity
_FLAT: Final = 0  # the same every day (instance hours)
_WEEKLY: Final = 1  # weekday seasonality x slow trend x per-day noise (I/O, requests, transfer, ACUs)
_STORAGE: Final = 2  # GB growing with age, billed per GB-month: GB / days in month
_MONTHLY: Final = 3  # a per-month quantity spread over the days of the month (provisioned IOPS)
_TAX: Final = 4  # a fixed amount on the 1st of the month, no usage
_BURSTY: Final = 5  # one day a week at 12x the others (batch traffic), with per-day noise

_NEVER: Final = dt.date.max.toordinal() + 1

#: share of clusters without tags, and (the same share again) with db-cluster but no team, per mille
_UNTAGGED_SHARE_PM: Final = 50

#: the right-sizing patterns, in the order a block assigns them: (name, engines, on an untagged cluster)
PATTERNS: Final[tuple[tuple[str, tuple[str, ...], bool], ...]] = (
    ("es-untagged", ("rds-postgresql", "rds-mysql"), True),
    ("es-postgresql", ("rds-postgresql",), False),
    ("es-mysql", ("rds-mysql",), False),
    ("es-elasticache", ("elasticache-redis",), False),
    ("aurora-io-heavy", ("aurora-postgresql", "aurora-mysql"), False),
    ("aurora-switched", ("aurora-postgresql", "aurora-mysql"), False),
    ("aurora-idle", ("aurora-postgresql", "aurora-mysql"), False),
    ("intel-rds", ("rds-postgresql", "rds-mysql"), False),
    ("intel-cache", ("elasticache-redis",), False),
    ("old-rds", ("rds-postgresql", "rds-mysql"), False),
    ("old-cache", ("elasticache-redis",), False),
    ("dynamodb-steady", ("dynamodb",), False),
    ("dynamodb-bursty", ("dynamodb",), False),
)
_PATTERN_BLOCK: Final = 50
#: line categories an Aurora/DocumentDB/Neptune cluster is billed for itself; the others go to its instances
_CLUSTER_LEVEL: Final = frozenset({"storage", "io", "backup"})

#: restatement: how many of the items in the window change, and by how much at most (per mille)
_RESTATE_SHARE_PM: Final = 300
_RESTATE_MAX_PM: Final = 25


# -------------------------------------------------------------------------------------------- shapes


@dataclass(frozen=True, slots=True)
class Account:
    """A linked account: 12-digit id, a name like ``payments-prod``, its environment."""

    id: str
    name: str
    env: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "env": self.env}


@dataclass(frozen=True, slots=True, eq=False)
class Cluster:
    """One database cluster (or table, cache, warehouse) and the cost-allocation tags it carries."""

    id: str
    account: str
    region: str
    service: str
    engine: str
    deployment: str
    instance_class: str | None
    team: str
    env: str
    tags: Mapping[str, str]
    created: dt.date
    retired: dt.date | None
    engine_version: str | None = None
    pattern: str | None = None  # the right-sizing pattern planted on it (PATTERNS), if any
    switched: dt.date | None = None  # aurora-switched: the day it moved to I/O-Optimized

    def alive(self, day: dt.date) -> bool:
        return self.created <= day and (self.retired is None or day < self.retired)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "region": self.region,
            "service": self.service,
            "engine": self.engine,
            "deployment": self.deployment,
            "instance_class": self.instance_class,
            "team": self.team,
            "env": self.env,
            "tags": dict(self.tags),
            "tags_present": sorted(self.tags),
            "created": self.created.isoformat(),
            "retired": self.retired.isoformat() if self.retired else None,
            "engine_version": self.engine_version,
            "pattern": self.pattern,
            "switched": self.switched.isoformat() if self.switched else None,
        }


@dataclass(frozen=True, slots=True)
class Role:
    """What a line is, for the advisories' ground truth: ``kind`` (compute, storage, io, backup, transfer,
    extended-support, optimized-compute, optimized-storage, od-read, od-write, other), whether it is Multi-AZ
    usage, whether it is per-request I/O or storage that bills it (``io_billed``: Aurora Standard, DocumentDB,
    Neptune), the instance class and the Extended Support subject."""

    kind: str
    multi_az: bool = False
    io_billed: bool = False
    instance_class: str | None = None
    subject: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Line:
    """One billing line: the static attributes Cost Explorer groups and filters on.

    ``tid`` is the line's index in :attr:`Fleet.lines`; a :class:`Day` refers to lines by it.
    ``category`` (compute, storage, io, backup, transfer, other, tax) is ground truth for tests of the
    usage-type classifier; Cost Explorer itself has no such field.
    """

    tid: int
    account: str
    region: str
    service: str
    usage_type: str
    record_type: str
    unit: str
    tags: Mapping[str, str]
    cluster: str | None
    category: str
    #: the RESOURCE_ID of this line (GetCostAndUsageWithResources); set on :attr:`Fleet.resource_lines` only
    resource_id: str = ""


#: RESOURCE_ID of charges that name no resource (inferred: the wire value of such a group is not confirmed)
NO_RESOURCE_ID: Final = "NoResourceId"


@dataclass(frozen=True, slots=True)
class Resource:
    """One resource behind GetCostAndUsageWithResources' ``RESOURCE_ID``, with its true owner.

    ``kind``: ``db-instance``, ``db-cluster`` (an Aurora/DocumentDB/Neptune cluster's own charges), ``table``,
    ``cache-cluster`` or ``redshift-cluster``. ``name``: the instance identifier, the cluster identifier, the
    table name, the cache or Redshift cluster id. ``cluster`` and ``team`` are the owner whatever billing says;
    ``billing_tags`` are the cost allocation tags billing carries on the resource's own charges (empty for an
    untagged cluster; data transfer lines may carry none even when these are set); ``resource_tags`` the tags the
    resource itself carries, which its own API returns (``db-cluster``, ``team``, ``env``, whatever billing was
    told), for an inventory to find; an *orphan* (half of the untagged clusters) has none there either, so only a
    topology file can place it.
    """

    id: str
    kind: str
    service: str
    account: str
    region: str
    name: str
    cluster: str
    team: str
    env: str
    engine: str
    billing_tags: Mapping[str, str]
    cluster_resource_id: str | None = None
    instance_class: str | None = None
    orphan: bool = False

    @property
    def resource_tags(self) -> dict[str, str]:
        """The tags on the resource itself (its own API's answer), whatever billing carries; none on an orphan."""
        return {} if self.orphan else {"db-cluster": self.cluster, "env": self.env, "team": self.team}

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_id": self.id,
            "kind": self.kind,
            "service": self.service,
            "account": self.account,
            "region": self.region,
            "name": self.name,
            "cluster": self.cluster,
            "team": self.team,
            "env": self.env,
            "engine": self.engine,
            "billing_tags": dict(self.billing_tags),
            "tagged_in_billing": bool(self.billing_tags),
            "resource_tags": self.resource_tags,
            "orphan": self.orphan,
            "cluster_resource_id": self.cluster_resource_id,
            "instance_class": self.instance_class,
        }


def split_packed(packed: int, n: int) -> list[int]:
    """``n`` packed parts of one item that sum, field by field, to ``packed`` exactly: each metric field is the
    quotient, plus one for the first ``remainder`` parts. Every part keeps the item's unit counters (one item of
    the same unit), so a group of parts has the unit its item had."""
    if n == 1:
        return [packed]
    f = unpack(packed)
    out: list[int] = []
    for k in range(n):
        fields = [f[i] // n + (1 if k < f[i] % n else 0) for i in range(F_COUNT)]
        out.append(pack(fields + f[F_COUNT:]))
    return out


@dataclass(frozen=True, slots=True)
class Day:
    """One day's line items: parallel lists of line ids and packed amounts."""

    date: dt.date
    tids: list[int]
    packed: list[int]


@dataclass(slots=True, eq=False)
class _Spec:
    """How one line's daily amounts are generated."""

    line: Line
    shape: int
    base: int  # quantity per day (FLAT/WEEKLY), GB (STORAGE), quantity per month (MONTHLY), USD (TAX)
    price: int  # 10^-10 USD per 1.0 of the usage unit
    born: int  # first day (ordinal)
    dies: int  # first day without it (ordinal)
    growth_pm: int = 0
    norm: int = 0
    ri: bool = False
    discount_pm: int = 0
    unit_id: int = 0
    hkey: bytes = b""
    age_from: int = 0  # storage growth counts from this day (the cluster's creation), not the line's birth
    phase: int = 0  # _BURSTY: which weekday is the busy one


@dataclass(frozen=True, slots=True)
class _DayCtx:
    ordinal: int
    weekday_pm: int
    trend_pm: int
    days_in_month: int
    first_of_month: bool
    key: bytes


# --------------------------------------------------------------------------------------------- fleet


class Fleet:
    """A deterministic fleet: accounts, clusters, billing lines, and each day's amounts on demand.

    ``anchor`` fixes the layout in time: clusters are created and retired relative to the first of the
    anchor's month, so the fleet looks alive whatever month the emulator runs in, and any ``today``
    within that month sees the same numbers.
    """

    def __init__(
        self,
        *,
        seed: int = 7,
        clusters: int = 240,
        accounts: int = 6,
        anchor: dt.date,
        day_cache_size: int = 480,
    ) -> None:
        if clusters < 0:
            raise ValueError("clusters must be >= 0")
        if accounts < 1:
            raise ValueError("accounts must be >= 1")
        self.seed = seed
        self.anchor = anchor.replace(day=1)
        self._anchor_ord = self.anchor.toordinal()
        self._day_cache: OrderedDict[tuple[int, int], Day] = OrderedDict()
        self._day_cache_size = day_cache_size
        self._units: list[str] = []
        self._unit_ids: dict[str, int] = {}
        self.accounts: tuple[Account, ...] = self._make_accounts(accounts)
        self._schedule = self._engine_schedule()
        self._account_by_id = {a.id: a for a in self.accounts}
        # exactly 5% of clusters (rounded) carry no tags, the next 5% db-cluster and env but no team;
        # which ones is decided by a hash rank, so it is stable for a seed and spread over the fleet
        share = round(clusters * _UNTAGGED_SHARE_PM / 1000)
        ranked = sorted(range(clusters), key=lambda i: _hp(seed, f"db-{i:04d}", "tagging"))
        self._untagged = frozenset(ranked[:share])
        self._teamless = frozenset(ranked[share : 2 * share])
        # half of the untagged (the first by the same rank) carry no tags on the resources themselves either
        self._orphans = frozenset(f"db-{i:04d}" for i in ranked[: share // 2])
        self._patterns = self._plan_patterns(clusters)
        self.clusters: tuple[Cluster, ...] = tuple(self._make_cluster(i) for i in range(clusters))
        self._specs: list[_Spec] = []
        self._roles: dict[int, Role] = {}
        for c in self.clusters:
            self._cluster_lines(c)
        for a in self.accounts:
            self._noise_lines(a)
        self.lines: tuple[Line, ...] = tuple(s.line for s in self._specs)
        self._tax_tids = frozenset(s.line.tid for s in self._specs if s.shape == _TAX)
        self._res_cache: OrderedDict[tuple[int, int], Day] = OrderedDict()
        self.resources: dict[str, Resource] = {}
        #: the billing lines split by resource: a line on N resources is N resource lines (same attributes)
        self.resource_lines: tuple[Line, ...] = ()
        #: billing line tid -> the tids of its resource lines
        self._parts: tuple[tuple[int, ...], ...] = ()
        self._resource_layout()

    # ------------------------------------------------------------------------------------ public

    @property
    def units(self) -> tuple[str, ...]:
        """Usage unit names by unit id (the id packed into the unit-consistency counters)."""
        return tuple(self._units)

    def role(self, tid: int) -> Role:
        """What line ``tid`` is (compute, storage, io, ...; see :class:`Role`): ground truth for advice."""
        return self._roles.get(tid, Role("other"))

    def account_name(self, account_id: str) -> str:
        acc = self._account_by_id.get(account_id)
        return acc.name if acc else account_id

    def day(self, date: dt.date, version: int = 0) -> Day:
        """The line items of ``date`` (restated by data ``version`` when it is > 0), cached."""
        key = (date.toordinal(), version)
        cached = self._day_cache.get(key)
        if cached is not None:
            self._day_cache.move_to_end(key)
            return cached
        day = self._generate(date) if version == 0 else self._restate(self.day(date, 0), version)
        self._day_cache[key] = day
        while len(self._day_cache) > self._day_cache_size:
            self._day_cache.popitem(last=False)
        return day

    def resource_day(self, date: dt.date, version: int = 0) -> Day:
        """The items of ``date`` per resource (ids into :attr:`resource_lines`): each billing item split over its
        line's resources with :func:`split_packed`, so they sum to :meth:`day` exactly."""
        key = (date.toordinal(), version)
        cached = self._res_cache.get(key)
        if cached is not None:
            self._res_cache.move_to_end(key)
            return cached
        base = self.day(date, version)
        tids: list[int] = []
        packed: list[int] = []
        parts = self._parts
        for tid, p in zip(base.tids, base.packed, strict=True):
            own = parts[tid]
            if len(own) == 1:
                tids.append(own[0])
                packed.append(p)
            else:
                tids.extend(own)
                packed.extend(split_packed(p, len(own)))
        day = Day(date, tids, packed)
        self._res_cache[key] = day
        while len(self._res_cache) > self._day_cache_size:
            self._res_cache.popitem(last=False)
        return day

    def instances(self, c: Cluster) -> tuple[str, ...]:
        """The instance identifiers of a cluster engine (Aurora, DocumentDB, Neptune): ``<id>-instance-<k>``, as
        many as its compute line counts (a serverless v2 cluster: one or two)."""
        if c.engine.startswith("aurora"):
            n = (_between(self.seed, 1, 2, c.id, "sv2-instances") if c.deployment == "serverless-v2"
                 else _between(self.seed, 2, 4, c.id, "instances"))
        elif c.engine in ("docdb", "neptune"):
            n = _between(self.seed, 1, 3, c.id, "instances")
        else:
            return ()
        return tuple(f"{c.id}-instance-{k}" for k in range(1, n + 1))

    def cluster_resource_id(self, c: Cluster) -> str:
        """A deterministic DbClusterResourceId: ``cluster-`` and 26 upper-case base32 characters."""
        raw = hashlib.blake2b(f"{self.seed}|cluster-resource-id|{c.id}".encode(), digest_size=20).digest()
        return "cluster-" + base64.b32encode(raw).decode()[:26]

    def lines_active(self, start: dt.date, end: dt.date) -> list[Line]:
        """Lines with at least one item on a day in ``[start, end)``, without generating any day."""
        s, e = start.toordinal(), end.toordinal()
        if s >= e:
            return []
        has_first = any(dt.date.fromordinal(o).day == 1 for o in range(s, min(e, s + 32)))
        out: list[Line] = []
        for spec in self._specs:
            if spec.shape == _TAX and not has_first:
                continue
            if spec.born < e and spec.dies > s:
                out.append(spec.line)
        return out

    def to_json(self) -> dict[str, Any]:
        """The fleet for ``GET /_emulator/fleet``: accounts and clusters with their tags and lifecycles."""
        return {
            "seed": self.seed,
            "anchor": self.anchor.isoformat(),
            "accounts": [a.to_json() for a in self.accounts],
            "clusters": [c.to_json() for c in self.clusters],
            "lines": len(self.lines),
            "resources": len(self.resources),
        }

    # ------------------------------------------------------------------------------------ layout

    def _unit_id(self, unit: str) -> int:
        uid = self._unit_ids.get(unit)
        if uid is None:
            uid = self._unit_ids[unit] = len(self._units) + 1  # 0 is never used: keeps Σu² informative
            self._units.append(unit)
        return uid

    def _make_accounts(self, n: int) -> tuple[Account, ...]:
        out: list[Account] = []
        used: set[str] = set()
        for i in range(n):
            name = _ACCOUNT_NAMES[i] if i < len(_ACCOUNT_NAMES) else f"workload-{i:02d}-prod"
            env = name.rsplit("-", 1)[-1]
            if env not in ("prod", "staging", "dev"):
                env = "prod"
            salt = 0
            while True:
                acc_id = str(100_000_000_000 + _digest(f"{self.seed}|account|{i}|{salt}".encode()) % 900_000_000_000)
                if acc_id not in used:
                    break
                salt += 1
            used.add(acc_id)
            out.append(Account(acc_id, name, env))
        return tuple(out)

    def _engine_schedule(self) -> list[str]:
        schedule = [engine for engine, n in _ENGINE_MIX for _ in range(n)]
        random.Random(self.seed).shuffle(schedule)  # layout only: fixed at construction
        return schedule

    def _plan_patterns(self, n: int) -> dict[int, str]:
        """Cluster index -> pattern: in every full block of 50, each pattern on one eligible cluster (its engine
        is one the pattern needs, it is old enough and never retired, tagged or untagged as the pattern says),
        the one with the lowest hash rank among those not yet given a pattern."""
        seed = self.seed
        out: dict[int, str] = {}
        for block in range(n // _PATTERN_BLOCK):
            for name, engines, untagged in PATTERNS:
                eligible = [
                    i for i in range(block * _PATTERN_BLOCK, (block + 1) * _PATTERN_BLOCK)
                    if i not in out and self._schedule[i % len(self._schedule)] in engines
                    and (i in self._untagged) == untagged
                    and _hp(seed, f"db-{i:04d}", "age") < 650_000 and _hp(seed, f"db-{i:04d}", "retire") >= 120_000
                ]
                ranks = {i: _hp(seed, f"db-{i:04d}", "pattern", name) for i in eligible}
                if ranks:
                    out[min(ranks, key=ranks.__getitem__)] = name
        return out

    def _make_cluster(self, i: int) -> Cluster:
        seed = self.seed
        cid = f"db-{i:04d}"
        engine = self._schedule[i % len(self._schedule)]
        account = self.accounts[_hp(seed, cid, "account") % len(self.accounts)]
        w = _hp(seed, cid, "region") % sum(_REGION_WEIGHTS)
        region = REGIONS[-1]
        for r, weight in zip(REGIONS, _REGION_WEIGHTS, strict=True):
            if w < weight:
                region = r
                break
            w -= weight
        own_team = account.name.split("-", 1)[0]
        team = own_team if own_team in TEAMS and _hp(seed, cid, "team-own") < 600000 else _pick(seed, TEAMS, cid, "team")
        u = _hp(seed, cid, "deployment")
        if engine.startswith("aurora"):
            deployment = "serverless-v2" if u < 250_000 else "io-optimized" if u < 450_000 else "provisioned"
        elif engine.startswith("rds"):
            deployment = "multi-az" if u < 500_000 else "single-az"
        elif engine == "dynamodb":
            deployment = "provisioned" if u < 600_000 else "on-demand"
        else:
            deployment = "provisioned"
        instance_class: str | None = None
        classes = {
            "aurora": _AURORA_CLASSES,
            "rds": _RDS_CLASSES,
            "elasticache": _CACHE_CLASSES,
            "redshift": _REDSHIFT_CLASSES,
            "docdb": _DOCDB_CLASSES,
            "neptune": _NEPTUNE_CLASSES,
        }.get(engine.split("-", 1)[0])
        if classes is not None and deployment != "serverless-v2":
            instance_class = _pick(seed, classes, cid, "class")[0]
        pattern = self._patterns.get(i)
        engine_version: str | None = None
        switched: dt.date | None = None
        if pattern is not None:
            deployment, instance_class, engine_version, switched = self._pattern_layout(
                pattern, cid, engine, deployment, instance_class, block=i // _PATTERN_BLOCK)
        tags: dict[str, str]
        if i in self._untagged:
            tags = {}
        elif i in self._teamless:
            tags = {"db-cluster": cid, "env": account.env}
        else:
            tags = {"db-cluster": cid, "env": account.env, "team": team}
        # lifecycle relative to the anchor month: most clusters are old, a third were created in the
        # last ~3 years, ~12% were retired since; so the set of groups changes from month to month
        anchor = self._anchor_ord
        if _hp(seed, cid, "age") < 650_000:
            created = anchor - 1200 - _between(seed, 0, 400, cid, "created")
        else:
            created = anchor - _between(seed, 10, 1200, cid, "created")
        retired: int | None = None
        if _hp(seed, cid, "retire") < 120_000:
            span = anchor - 3 - created
            if span > 60:
                retired = created + 60 + _hp(seed, cid, "retired") % (span - 60)
        return Cluster(
            id=cid,
            account=account.id,
            region=region,
            service=_ENGINE_SERVICE[engine],
            engine=engine,
            deployment=deployment,
            instance_class=instance_class,
            team=team,
            env=account.env,
            tags=tags,
            created=dt.date.fromordinal(created),
            retired=dt.date.fromordinal(retired) if retired is not None else None,
            engine_version=engine_version,
            pattern=pattern,
            switched=switched,
        )

    def _pattern_layout(self, pattern: str, cid: str, engine: str, deployment: str, klass: str | None, *,
                        block: int) -> tuple[str, str | None, str | None, dt.date | None]:
        """(deployment, instance class, engine version, switch day) of a pattern cluster."""
        seed = self.seed
        version: str | None = None
        switched: dt.date | None = None
        if pattern in ("es-untagged", "es-postgresql", "es-mysql"):
            version = "5.7" if engine == "rds-mysql" else ("11" if pattern == "es-untagged" else "12")
        elif pattern == "es-elasticache":
            version = "5.0.6"
        elif pattern in ("aurora-io-heavy", "aurora-idle"):
            deployment = "provisioned"
            klass = klass or _pick(seed, _AURORA_CLASSES, cid, "class")[0]
        elif pattern == "aurora-switched":
            deployment = "io-optimized"
            klass = klass or _pick(seed, _AURORA_CLASSES, cid, "class")[0]
            # inside the anchor month (even blocks) or the month before (odd blocks)
            switched = self.anchor + dt.timedelta(days=2 if block % 2 == 0 else -15)
        elif pattern in ("intel-rds", "old-rds"):
            deployment = "single-az"
            klass = _pick(seed, _INTEL_RDS_CLASSES if pattern == "intel-rds" else _OLD_RDS_CLASSES, cid, "class")[0]
        elif pattern in ("intel-cache", "old-cache"):
            klass = _pick(seed, _INTEL_CACHE_CLASSES if pattern == "intel-cache" else _OLD_CACHE_CLASSES, cid,
                          "class")[0]
        elif pattern in ("dynamodb-steady", "dynamodb-bursty"):
            deployment = "on-demand"
        return deployment, klass, version, switched

    def _add(
        self,
        *,
        account: Account,
        region: str,
        service: str,
        usage_type: str,
        unit: str,
        category: str,
        shape: int,
        base: int,
        price: str,
        tags: Mapping[str, str],
        cluster: Cluster | None = None,
        growth_pm: int = 0,
        norm: int = 0,
        ri: bool = False,
        record_type: str = "Usage",
        regional: bool = True,
        role: Role | None = None,
        born: dt.date | None = None,
        dies: dt.date | None = None,
        phase: int = 0,
    ) -> None:
        prefix = REGION_PREFIX.get(region, "") if regional else ""
        full_type = prefix + usage_type
        line = Line(
            tid=len(self._specs),
            account=account.id,
            region=region,
            service=service,
            usage_type=full_type,
            record_type=record_type,
            unit=unit,
            tags=dict(tags),
            cluster=cluster.id if cluster else None,
            category=category,
        )
        price_units = _units(price) * _REGION_PRICE_PM.get(region, 1000) // 1000
        created = cluster.created.toordinal() if cluster else 1
        life_end = cluster.retired.toordinal() if cluster and cluster.retired else _NEVER
        first = max(created, born.toordinal()) if born is not None else created
        last = min(life_end, dies.toordinal()) if dies is not None else life_end
        scope = cluster.id if cluster else f"{account.id}/{region}"
        self._roles[line.tid] = role if role is not None else Role(category)
        self._specs.append(
            _Spec(
                line=line,
                shape=shape,
                base=base,
                price=price_units,
                born=first,
                dies=last,
                growth_pm=growth_pm,
                norm=norm,
                ri=ri,
                discount_pm=30 if account.env == "prod" and shape != _TAX else 0,
                unit_id=self._unit_id(unit),
                hkey=f"{self.seed}|{scope}|{full_type}|{record_type}|".encode(),
                age_from=created,
                phase=phase,
            )
        )

    def _resource_layout(self) -> None:
        """Which resources each billing line belongs to (module docstring, "Resource ids"), and their owners."""
        by_id = {c.id: c for c in self.clusters}
        out_lines: list[Line] = []
        parts: list[tuple[int, ...]] = []
        resources = self.resources
        cluster_res: dict[str, list[Resource]] = {}  # cid -> [cluster-level, instance...] / [the one]
        for c in self.clusters:
            cluster_res[c.id] = self._resources_of(c)
            for r in cluster_res[c.id]:
                resources[r.id] = r
        for line in self.lines:
            owner = by_id.get(line.cluster) if line.cluster else None
            if owner is None:
                ids: tuple[str, ...] = (NO_RESOURCE_ID,)
            else:
                own = cluster_res[owner.id]
                if own[0].kind == "db-cluster" and line.category not in _CLUSTER_LEVEL:
                    ids = tuple(r.id for r in own[1:])  # instance charges (compute, transfer) on the instances
                else:
                    ids = (own[0].id,)
            mine: list[int] = []
            for rid in ids:
                mine.append(len(out_lines))
                out_lines.append(dataclasses.replace(line, tid=len(out_lines), resource_id=rid))
            parts.append(tuple(mine))
        self.resource_lines = tuple(out_lines)
        self._parts = tuple(parts)

    def _resources_of(self, c: Cluster) -> list[Resource]:
        """A cluster's resources: for a cluster engine the cluster-level one first, then its instances."""
        acct, region = c.account, c.region
        common: dict[str, Any] = {"service": c.service, "account": acct, "region": region, "cluster": c.id,
                                  "team": c.team, "env": c.env, "engine": c.engine, "billing_tags": c.tags,
                                  "instance_class": c.instance_class, "orphan": c.id in self._orphans}
        eng = c.engine
        if eng.startswith("aurora") or eng in ("docdb", "neptune"):
            crid = self.cluster_resource_id(c)
            out = [Resource(id=f"arn:aws:rds:{region}:{acct}:cluster:{crid}", kind="db-cluster", name=c.id,
                            cluster_resource_id=crid, **common)]
            out.extend(Resource(id=f"arn:aws:rds:{region}:{acct}:db:{name}", kind="db-instance", name=name,
                                cluster_resource_id=crid, **common) for name in self.instances(c))
            return out
        if eng.startswith("rds"):
            return [Resource(id=f"arn:aws:rds:{region}:{acct}:db:{c.id}", kind="db-instance", name=c.id, **common)]
        if eng == "dynamodb":
            return [Resource(id=f"arn:aws:dynamodb:{region}:{acct}:table/{c.id}", kind="table", name=c.id, **common)]
        if eng == "elasticache-redis":
            return [Resource(id=f"arn:aws:elasticache:{region}:{acct}:cluster:{c.id}", kind="cache-cluster",
                             name=c.id, **common)]
        return [Resource(id=f"arn:aws:redshift:{region}:{acct}:cluster:{c.id}", kind="redshift-cluster", name=c.id,
                         **common)]

    def _cluster_lines(self, c: Cluster) -> None:
        seed, cid = self.seed, c.id
        account = self._account_by_id[c.account]
        common: dict[str, Any] = {"account": account, "region": c.region, "service": c.service, "cluster": c,
                                  "tags": c.tags}
        price_of = dict(_DOCDB_CLASSES if c.engine == "docdb" else _NEPTUNE_CLASSES if c.engine == "neptune"
                        else _ALL_CLASSES)
        klass = c.instance_class or ""
        size = klass.rsplit(".", 1)[-1]
        norm = _NORMALIZATION.get(size, 0)
        ri = account.env == "prod" and _hp(seed, cid, "ri") < 300_000
        gb = _between(seed, 20, 4000, cid, "gb") * UNIT
        growth = _between(seed, 0, 3, cid, "growth")
        pattern = c.pattern

        def compute(usage_type: str, count: int, price: str, *, multi_az: bool = False, kind: str = "compute",
                    born: dt.date | None = None, dies: dt.date | None = None) -> None:
            self._add(**common, usage_type=usage_type, unit="Hrs", category="compute", shape=_FLAT,
                      base=count * 24 * UNIT, price=price, norm=norm, ri=ri, born=born, dies=dies,
                      role=Role(kind, multi_az=multi_az, instance_class=klass or None))

        def storage(usage_type: str, price: str, share_pm: int = 1000, unit: str = "GB-Mo",
                    category: str = "storage", *, role: Role | None = None, born: dt.date | None = None,
                    dies: dt.date | None = None) -> None:
            self._add(**common, usage_type=usage_type, unit=unit, category=category, shape=_STORAGE,
                      base=gb * share_pm // 1000, price=price, growth_pm=growth, role=role, born=born, dies=dies)

        def weekly(usage_type: str, unit: str, category: str, per_day: int, price: str,
                   tags: Mapping[str, str] | None = None, *, role: Role | None = None, shape: int = _WEEKLY,
                   dies: dt.date | None = None) -> None:
            kw = dict(common)
            if tags is not None:
                kw["tags"] = tags
            self._add(**kw, usage_type=usage_type, unit=unit, category=category, shape=shape,
                      base=per_day * UNIT, price=price, role=role, dies=dies,
                      phase=_hp(seed, cid, usage_type, "phase") % 7)

        def transfer() -> None:
            # data transfer is shared spend: half the clusters' transfer lines carry no tags at all
            if _hp(seed, cid, "dt") < 500_000:
                return
            dt_tags: Mapping[str, str] = c.tags if _hp(seed, cid, "dt-tags") < 500_000 else {}
            gb_day = _between(seed, 1, 200, cid, "dt-gb")
            weekly("DataTransfer-Out-Bytes", "GB", "transfer", gb_day, "0.09", dt_tags)

        def extended_support(multiplier: int) -> None:
            """RDS Extended Support of an old major version: vCPU-hours of every instance (standbys too)."""
            yr3 = pattern in {"es-mysql", "es-untagged"}
            token = f"{'MySQL' if c.engine == 'rds-mysql' else 'PostgreSQL'}{c.engine_version}"
            vcpu_hours = _VCPUS.get(size, 2) * multiplier * 24
            self._add(**common, usage_type=f"ExtendedSupport:{'Yr3' if yr3 else 'Yr1-Yr2'}:{token}",
                      unit="vCPU-Hours", category="other", shape=_FLAT, base=vcpu_hours * UNIT,
                      price="0.20" if yr3 else "0.10", role=Role("extended-support", subject=token))

        eng = c.engine
        if eng.startswith("aurora"):
            io_standard = Role("io", io_billed=True)
            if c.deployment == "serverless-v2":
                acu = _between(seed, 2, 32, cid, "acu")
                weekly("Aurora:ServerlessV2Usage", "ACU-Hr", "compute", acu * 24, "0.12", role=Role("compute"))
            else:
                count = _between(seed, 2, 4, cid, "instances")
                price = price_of[klass]
                if c.switched is not None:  # Standard until the switch, I/O-Optimized from it
                    compute(f"InstanceUsage:{klass}", count, price, dies=c.switched)
                    compute(f"InstanceUsageIOOptimized:{klass}", count, str(Decimal(price) * Decimal("1.3")),
                            kind="optimized-compute", born=c.switched)
                elif c.deployment == "io-optimized":
                    compute(f"InstanceUsageIOOptimized:{klass}", count, str(Decimal(price) * Decimal("1.3")),
                            kind="optimized-compute")
                else:
                    compute(f"InstanceUsage:{klass}", count, price)
            if c.switched is not None:
                storage("Aurora:StorageUsage", "0.10", role=Role("storage", io_billed=True), dies=c.switched)
                storage("Aurora:IO-OptimizedStorageUsage", "0.225", role=Role("optimized-storage"), born=c.switched)
                ios = _between(seed, 1, 10, cid, "ios") * 1_000_000
                weekly("Aurora:StorageIOUsage", "IOs", "io", ios, "0.0000002", role=io_standard, dies=c.switched)
            elif c.deployment == "io-optimized":
                storage("Aurora:IO-OptimizedStorageUsage", "0.225", role=Role("optimized-storage"))
            else:
                storage("Aurora:StorageUsage", "0.10", role=Role("storage", io_billed=True))
                if pattern == "aurora-io-heavy":
                    # I/O at 1.5x the break-even of its Standard bill (0.30 x compute + 1.25 x storage), so the
                    # weekend dip and the noise keep it above: IOs per day = 1.5 x that in USD / $0.20 per million
                    count = _between(seed, 2, 4, cid, "instances")
                    per_day = (Decimal("0.30") * count * 24 * Decimal(price_of[klass])
                               + Decimal("1.25") * Decimal("0.10") * (gb // UNIT) * 2 // 28)
                    weekly("Aurora:StorageIOUsage", "IOs", "io", int(per_day * Decimal("1.5") / Decimal("0.0000002")),
                           "0.0000002", role=io_standard)
                elif pattern != "aurora-idle":
                    ios = _between(seed, 5, 300, cid, "ios") * 1_000_000
                    weekly("Aurora:StorageIOUsage", "IOs", "io", ios, "0.0000002", role=io_standard)
            storage("Aurora:BackupUsage", "0.021", _between(seed, 200, 600, cid, "backup"), category="backup")
            if pattern != "aurora-idle":
                transfer()
        elif eng.startswith("rds"):
            price = price_of[klass]
            multi = c.deployment == "multi-az"
            if multi:
                compute(f"Multi-AZUsage:{klass}", 1, str(Decimal(price) * 2), multi_az=True)
                storage("RDS:Multi-AZ-GP3-Storage", "0.23", role=Role("storage", multi_az=True))
            else:
                compute(f"InstanceUsage:{klass}", 1, price)
                storage("RDS:GP3-Storage", "0.115")
            if _hp(seed, cid, "piops") < 300_000:
                iops = _between(seed, 3000, 20000, cid, "iops")
                self._add(**common, usage_type="RDS:Multi-AZ-GP3-PIOPS" if multi else "RDS:GP3-PIOPS",
                          unit="IOPS-Mo", category="io", shape=_MONTHLY, base=iops * UNIT,
                          price="0.04" if multi else "0.02", role=Role("io", multi_az=multi))
            storage("RDS:ChargedBackupUsage", "0.095", _between(seed, 100, 500, cid, "backup"), category="backup")
            if c.engine_version is not None:
                extended_support(2 if multi else 1)
            transfer()
        elif eng == "dynamodb":
            if c.deployment == "provisioned":
                rcu = _between(seed, 50, 5000, cid, "rcu")
                wcu = _between(seed, 10, 2000, cid, "wcu")
                weekly("ReadCapacityUnit-Hrs", "ReadCapacityUnit-Hrs", "compute", rcu * 24, "0.00013")
                weekly("WriteCapacityUnit-Hrs", "WriteCapacityUnit-Hrs", "compute", wcu * 24, "0.00065")
            else:
                rru = _between(seed, 1, 500, cid, "rru") * 1_000_000
                wru = _between(seed, 1, 100, cid, "wru") * 200_000
                shape = _BURSTY if pattern == "dynamodb-bursty" else _WEEKLY
                weekly("ReadRequestUnits", "ReadRequestUnits", "compute", rru, "0.000000125", role=Role("od-read"),
                       shape=shape)
                weekly("WriteRequestUnits", "WriteRequestUnits", "compute", wru, "0.000000625",
                       role=Role("od-write"), shape=shape)
            storage("TimedStorage-ByteHrs", "0.25")
            if _hp(seed, cid, "pitr") < 700_000:
                storage("TimedPITRStorage-ByteHrs", "0.20", 1000, category="backup")
            else:
                storage("TimedBackupStorage-ByteHrs", "0.10", _between(seed, 200, 900, cid, "bk"),
                        category="backup")
        elif eng == "elasticache-redis":
            nodes = _between(seed, 1, 6, cid, "nodes")
            compute(f"NodeUsage:{klass}", nodes, price_of[klass])
            if c.engine_version is not None:  # Redis OSS 5: Extended Support at +80 % of the node price
                self._add(**common, usage_type=f"ExtendedSupportYr1_Yr2-NodeUsage:{klass}", unit="Hrs",
                          category="other", shape=_FLAT, base=nodes * 24 * UNIT,
                          price=str(Decimal(price_of[klass]) * Decimal("0.8")),
                          role=Role("extended-support", subject=klass))
            gb_day = _between(seed, 5, 400, cid, "xaz")
            weekly("DataTransfer-xAZ-In-Bytes", "GB", "transfer", gb_day, "0.01")
            weekly("DataTransfer-xAZ-Out-Bytes", "GB", "transfer", gb_day, "0.01")
        elif eng == "redshift":
            nodes = _between(seed, 2, 4, cid, "nodes")
            compute(f"Node:{klass}", nodes, price_of[klass])
            storage("Redshift:PaidSnapshots", "0.024", _between(seed, 500, 3000, cid, "snap"), category="backup")
        else:  # docdb, neptune
            count = _between(seed, 1, 3, cid, "instances")
            compute(f"InstanceUsage:{klass}", count, price_of[klass])
            storage("StorageUsage", "0.10", role=Role("storage", io_billed=True))
            ios = _between(seed, 1, 80, cid, "ios") * 1_000_000
            weekly("StorageIOUsage", "IOs", "io", ios, "0.0000002", role=Role("io", io_billed=True))
            storage("BackupUsage", "0.021", _between(seed, 200, 600, cid, "backup"), category="backup")
            transfer()

    def _noise_lines(self, a: Account) -> None:
        """Non-database spend: EC2, S3 (whose storage usage type collides with DynamoDB's), Lambda,
        CloudWatch in two regions per account, plus the monthly Tax line."""
        seed = self.seed
        own_team = a.name.split("-", 1)[0]
        team = own_team if own_team in TEAMS else _pick(seed, TEAMS, a.id, "team")
        second = REGIONS[1 + _hp(seed, a.id, "region") % (len(REGIONS) - 1)]
        for region in ("us-east-1", second):
            scope = f"{a.id}/{region}"
            tagged = _hp(seed, scope, "tagged") < 700_000
            tags = {"team": team, "env": a.env} if tagged else {}
            common: dict[str, Any] = {"account": a, "region": region, "tags": tags}
            boxes = _between(seed, 4, 40, scope, "boxes")
            self._add(**common, service=EC2, usage_type="BoxUsage:m5.large", unit="Hrs", category="other",
                      shape=_FLAT, base=boxes * 24 * UNIT, price="0.096", norm=4)
            self._add(**common, service=S3, usage_type="TimedStorage-ByteHrs", unit="GB-Mo", category="other",
                      shape=_STORAGE, base=_between(seed, 1000, 200_000, scope, "s3gb") * UNIT, price="0.023",
                      growth_pm=1)
            self._add(**common, service=S3, usage_type="Requests-Tier1", unit="Requests", category="other",
                      shape=_WEEKLY, base=_between(seed, 1, 50, scope, "s3req") * 1_000_000 * UNIT,
                      price="0.000005")
            self._add(**common, service=LAMBDA, usage_type="Lambda-GB-Second", unit="Lambda-GB-Second",
                      category="other", shape=_WEEKLY,
                      base=_between(seed, 100, 5000, scope, "lambda") * 1000 * UNIT, price="0.0000166667")
            self._add(**common, service=CLOUDWATCH, usage_type="CW:MetricMonitorUsage", unit="Metrics",
                      category="other", shape=_MONTHLY,
                      base=_between(seed, 100, 5000, scope, "metrics") * UNIT, price="0.30")
        tax = _between(seed, 100, 3000, a.id, "tax") * UNIT + _between(seed, 0, 99, a.id, "tax-cents") * UNIT // 100
        self._add(account=a, region="NoRegion", service=TAX, usage_type="NoUsageType", unit="N/A", category="tax",
                  shape=_TAX, base=tax, price="0", tags={}, record_type="Tax", regional=False)

    # -------------------------------------------------------------------------------- generation

    def _ctx(self, date: dt.date) -> _DayCtx:
        o = date.toordinal()
        return _DayCtx(
            ordinal=o,
            weekday_pm=_WEEKDAY_PM[date.weekday()],
            # a slow upward trend: +0.3 per mille per day, anchored at the anchor month
            trend_pm=max(300, 1000 + (o - self._anchor_ord) * 3 // 10),
            days_in_month=calendar.monthrange(date.year, date.month)[1],
            first_of_month=date.day == 1,
            key=date.isoformat().encode(),
        )

    def _generate(self, date: dt.date) -> Day:
        ctx = self._ctx(date)
        o = ctx.ordinal
        tids: list[int] = []
        packed: list[int] = []
        for spec in self._specs:
            if not (spec.born <= o < spec.dies):
                continue
            if spec.shape == _TAX and not ctx.first_of_month:
                continue
            tids.append(spec.line.tid)
            packed.append(_amounts(spec, ctx))
        return Day(date, tids, packed)

    def _restate(self, base: Day, version: int) -> Day:
        """A deterministic revision of ``base``: ~30% of items move by up to ±2.5% of their cost."""
        vkey = f"restate|{version}|".encode()
        day_key = base.date.isoformat().encode()
        packed = list(base.packed)
        for i, tid in enumerate(base.tids):
            h = _digest(vkey + self._specs[tid].hkey + day_key)
            if h % 1000 >= _RESTATE_SHARE_PM:
                continue
            delta = (h // 1000) % (2 * _RESTATE_MAX_PM + 1) - _RESTATE_MAX_PM
            if delta == 0:
                continue
            f = unpack(packed[i])
            for m in range(5):
                f[m] = f[m] * (1000 + delta) // 1000
            packed[i] = pack(f)
        return Day(base.date, list(base.tids), packed)


def _amounts(spec: _Spec, ctx: _DayCtx) -> int:
    """One line item's packed amounts for one day."""
    shape = spec.shape
    if shape == _FLAT:
        qty = spec.base
    elif shape == _WEEKLY:
        noise = 900 + _digest(spec.hkey + ctx.key) % 201
        qty = spec.base * ctx.weekday_pm * ctx.trend_pm * noise // 1_000_000_000
    elif shape == _STORAGE:
        age = min(max(ctx.ordinal - spec.age_from, 0), 730)
        qty = spec.base * (1000 + age * spec.growth_pm) // 1000 // ctx.days_in_month
    elif shape == _MONTHLY:
        qty = spec.base // ctx.days_in_month
    elif shape == _BURSTY:
        noise = 900 + _digest(spec.hkey + ctx.key) % 201
        qty = spec.base * (12 if (ctx.ordinal + spec.phase) % 7 == 0 else 1) * noise // 1000
    else:  # _TAX
        cost = spec.base
        return (
            cost
            | cost << FIELD_BITS
            | cost << (2 * FIELD_BITS)
            | cost << (3 * FIELD_BITS)
            | cost << (4 * FIELD_BITS)
            | 1 << (F_COUNT * FIELD_BITS)
            | spec.unit_id << (F_USUM * FIELD_BITS)
            | spec.unit_id * spec.unit_id << (F_USQ * FIELD_BITS)
        )
    on_demand = qty * spec.price // UNIT
    if spec.ri:
        unblended = on_demand * 620 // 1000
        blended = on_demand * 640 // 1000
        amortized = on_demand * 660 // 1000
    else:
        unblended = blended = amortized = on_demand
    keep = 1000 - spec.discount_pm
    uid = spec.unit_id
    return (
        unblended
        | blended << FIELD_BITS
        | amortized << (2 * FIELD_BITS)
        | (unblended * keep // 1000) << (3 * FIELD_BITS)
        | (amortized * keep // 1000) << (4 * FIELD_BITS)
        | qty << (5 * FIELD_BITS)
        | (qty * spec.norm) << (6 * FIELD_BITS)
        | 1 << (F_COUNT * FIELD_BITS)
        | uid << (F_USUM * FIELD_BITS)
        | uid * uid << (F_USQ * FIELD_BITS)
    )


def month_add(day: dt.date, months: int) -> dt.date:
    """The first of the month ``months`` after (or before) ``day``'s month."""
    idx = day.year * 12 + day.month - 1 + months
    return dt.date(idx // 12, idx % 12 + 1, 1)
