"""Settings: one frozen tree for everything a run is told, every default in one place, and its loaders.

::

    Settings
      targets   tuple[TargetConfig]   the payer accounts read (default: one target, the AWS credential chain)
      rate      RateSettings          requests per second and in flight, per target; burst
      retry     RetryPolicy           attempts, backoff and time budget per call (``--retry-budget-s``)
      limits    LimitSettings         what one request may take and one run or page chain may spend
      breaker   BreakerSettings       consecutive failures before a target's breaker opens; reset time
      store     StoreSettings         the DuckDB file, its memory cap and checkpoint threshold
      inventory InventorySettings     the databases' own APIs (``--inventory``): their rate, page size, endpoint
      sinks     tuple[str]            ``--sink`` URLs (each sink parses and validates its own)
      credentials                     explicit keys for every target (the demo's emulator); None = the chain

The CLI and the library build the same objects: a command turns its options into a :class:`Settings` whose
fields it did not set keep the defaults below, and ``Settings()`` in a library gives the same defaults
(a test builds both and compares). :meth:`Settings.fetch_settings` resolves one target into the
:class:`FetchSettings` a client is opened with: the target's own ``max_rps``/``max_concurrency`` where the
targets file sets them, the run-wide ones otherwise. Environment variables are read here, at the edge
(:meth:`StoreSettings.from_env`), never deep inside a layer. The defaults the command line shows (the store
file, the limits) and the configuration file's resolution live in :mod:`dbcost.defaults`, which needs no
pydantic (the CLI mounts every command with it alone), and are re-exported here.

Targets file (TOML/YAML)::

    [[target]]
    name = "payer-eu"                 # required, unique; stored with every record
    profile = "billing-eu"            # an AWS profile, or:
    role_arn = "arn:aws:iam::111122223333:role/dbcost-read"   # a role to assume (from the default chain)
    external_id = "..."               # optional, with role_arn
    region = "us-east-1"              # optional
    endpoint_url = "http://127.0.0.1:4566"   # optional (e.g. the emulator)
    max_rps = 5                       # optional: this target's own rate
    max_concurrency = 8               # optional

Each target gets its own governor and breaker: one failing target does not stop the others.

Configuration file and environment (:func:`resolve_config`): the defaults of the command line's common
options — the store, the endpoint, the profile and region, the targets file, the tag keys, the policy and
topology files, the rate — may come from a file and from ``DBCOST_*`` variables, in this order of precedence:
a flag given to a command, then the environment, then the file, then the defaults below. The file is
``--config FILE`` (or ``DBCOST_CONFIG``), else ``dbcost.toml`` in the working directory, else the
``[tool.dbcost]`` table of its ``pyproject.toml``; it holds top-level keys (:data:`CONFIG_KEYS`), and a key
it does not know is refused in one line naming the key and the file. A relative path in the file is relative
to the file's directory::

    db = "costs/dbcost.duckdb"        # --db            DBCOST_DB
    endpoint_url = "http://127.0.0.1:4566"   # --endpoint-url  DBCOST_ENDPOINT_URL
    profile = "billing"               # --profile       DBCOST_PROFILE
    region = "us-east-1"              # --region        DBCOST_REGION
    targets = "targets.toml"          # --targets       DBCOST_TARGETS
    cluster_tag = "db-cluster"        # --cluster-tag   DBCOST_CLUSTER_TAG
    team_tag = "team"                 # --team-tag      DBCOST_TEAM_TAG
    policy = "policy.toml"            # --policy        DBCOST_POLICY
    topology = "topology.csv"         # --topology      DBCOST_TOPOLOGY
    max_rps = 5                       # --max-rps       DBCOST_MAX_RPS
    max_concurrency = 16              # --max-concurrency  DBCOST_MAX_CONCURRENCY

Limits (:class:`LimitSettings`): no run is unbounded unless it says so. By default a run sends at most
:data:`DEFAULT_MAX_REQUESTS` requests (every attempt counts), one page chain (one unit's pages, or a whole
``fetch``) at most :data:`DEFAULT_MAX_CHAIN_PAGES` pages, and a chain whose pages keep coming with fresh tokens
but no new groups is refused after :data:`DEFAULT_IDLE_PAGES` such pages. One request (connect, headers and
body) may take :data:`DEFAULT_REQUEST_TIMEOUT_S` seconds and one call, retries and backoff included,
``RetryPolicy.budget_s`` (300 s): both are wall-clock deadlines, which a server trickling its answer a byte at
a time cannot extend. ``None`` lifts a limit; the CLI's ``0`` means that, and only when given explicitly.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dbcost._files import read_text_file
from dbcost.breaker import DEFAULT_FAILURE_THRESHOLD, DEFAULT_RESET_TIMEOUT_S
from dbcost.defaults import (
    CONFIG_FILE,
    CONFIG_KEYS,
    DEFAULT_CLUSTER_TAG,
    DEFAULT_DB,
    DEFAULT_IDLE_PAGES,
    DEFAULT_MAX_CHAIN_PAGES,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_RETRY_BUDGET_S,
    DEFAULT_TEAM_TAG,
    REGION_RE,
    ConfigKey,
    ConfigValue,
    ResolvedConfig,
    check_endpoint_and_region,
    endpoint_problem,
    resolve_config,
)
from dbcost.errors import ConfigError
from dbcost.governor import DEFAULT_BURST, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RPS
from dbcost.retry import RetryPolicy

__all__ = [
    "CONFIG_FILE",
    "CONFIG_KEYS",
    "DEFAULT_CLUSTER_TAG",
    "DEFAULT_DB",
    "DEFAULT_IDLE_PAGES",
    "DEFAULT_MAX_CHAIN_PAGES",
    "DEFAULT_MAX_REQUESTS",
    "DEFAULT_REQUEST_TIMEOUT_S",
    "DEFAULT_RETRY_BUDGET_S",
    "DEFAULT_TEAM_TAG",
    "BreakerSettings",
    "ConfigKey",
    "ConfigValue",
    "FetchSettings",
    "InventorySettings",
    "LimitSettings",
    "RateSettings",
    "ResolvedConfig",
    "Settings",
    "StoreSettings",
    "TargetConfig",
    "check_endpoint_and_region",
    "load_settings",
    "load_targets",
    "resolve_config",
]

#: DuckDB's cache cap: its default is 80% of RAM; a bounded cache keeps a long backfill's memory flat. At 64MB a
#: 13-month DAILY backfill's peak RSS was ~30 MB above a 3-month one's (the cache filling with the growing
#: records table); at 32MB the two stay within a few MB of each other (bench/bench_cpu.py --long)
DEFAULT_DUCKDB_MEMORY_LIMIT = "32MB"
#: DuckDB's worker threads: one, because the store already runs on a thread of its own beside the event loop;
#: more made a backfill spend more CPU (coordination) and memory (per-thread buffers) for no gain in wall time
DEFAULT_DUCKDB_THREADS = 1
#: WAL size that triggers a checkpoint. A checkpoint rewrites the records table's last (growing) row group, so
#: frequent ones cost a long backfill dearly: at 4MB a 13-month DAILY backfill spent ~1 s more CPU than at 64MB
#: (6.9 s against 5.9 s; 3 months: ~60 ms of the store thread). Rows committed since the last checkpoint do not
#: grow the memory past the cache cap (memory_limit): DuckDB evicts them to <db>.tmp; peak RSS 3 months 171 -> 178
#: MB, 13 months 188 -> 186 MB (bench/bench_cpu.py --long)
DEFAULT_DUCKDB_CHECKPOINT = "64MB"
_SIZE_RE = re.compile(r"\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)", re.IGNORECASE)
_SIZE_UNITS = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
#: below this DuckDB cannot even upgrade a store's schema (it fails with "Out of Memory Error")
MIN_DUCKDB_MEMORY_LIMIT = "16MB"


def _size_bytes(text: str) -> float:
    """Bytes of a size that matched ``_SIZE_RE`` (``256MB``, ``1.5 GiB``)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)", text.strip())
    assert m is not None
    return float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]


def _size_problem(value: str, minimum: str | None = None) -> str | None:
    """Why ``value`` is not a size DuckDB can use (None: it is)."""
    if not _SIZE_RE.fullmatch(value):
        return f"expected a size like 256MB, got {value!r}"
    if minimum is not None and _size_bytes(value) < _size_bytes(minimum):
        return f"at least {minimum} (DuckDB cannot run a store in less), got {value!r}"
    return None

_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class TargetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME_RE)
    profile: str | None = None
    role_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
    external_id: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    max_rps: float | None = Field(default=None, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not REGION_RE.fullmatch(value):
            raise ValueError(f"not a region name: {value!r}")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        why = endpoint_problem(value) if value is not None else None
        if why is not None:
            raise ValueError(why)
        return value


def load_targets(path: str | Path) -> list[TargetConfig]:
    """Read and validate a targets file (``.toml``, ``.yaml``/``.yml``); errors name the file and entry."""
    p = Path(path)
    text = read_text_file(p, f"--targets {p}")
    data: Any
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"--targets {p}: not valid {'YAML' if p.suffix.lower() in ('.yaml', '.yml') else 'TOML'}: "
                          f"{str(exc).splitlines()[0]}") from None
    entries = data.get("target", data.get("targets")) if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"--targets {p}: expected a list of [[target]] entries")
    out: list[TargetConfig] = []
    for i, entry in enumerate(entries, 1):
        try:
            out.append(TargetConfig.model_validate(entry))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            loc = ".".join(str(x) for x in err["loc"]) or "entry"
            msg = re.sub(r"^Value error, ", "", err["msg"])
            raise ConfigError(f"--targets {p}: target #{i}: {loc}: {msg}") from None
    names = [t.name for t in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"--targets {p}: duplicate target name(s): {', '.join(sorted(dup))}")
    return out


#: the target used when none is named: the AWS credential chain, the default region
DEFAULT_TARGET = TargetConfig(name="default")


@dataclass(frozen=True, slots=True)
class RateSettings:
    """How fast to talk to one target: the governor's ceiling and in-flight cap."""

    max_rps: float = DEFAULT_MAX_RPS
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    burst: float = DEFAULT_BURST


#: requests per second to one database API (RDS, DynamoDB or ElastiCache) of one target in one region
DEFAULT_INVENTORY_MAX_RPS = 5.0
#: requests in flight to one such API
DEFAULT_INVENTORY_MAX_CONCURRENCY = 4
#: a short burst before the steady rate (RDS allows 300 in a burst, 12 per second sustained)
DEFAULT_INVENTORY_BURST = 5.0
#: entries per page of DescribeDBInstances/DescribeDBClusters/DescribeCacheClusters (their maximum; 20 the
#: minimum) and of DynamoDB's ListTables (its maximum)
DEFAULT_INVENTORY_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class InventorySettings:
    """How the inventory (``--inventory``) reads the databases' own APIs: one governor per target, region and
    service, with these ceilings, not Cost Explorer's.

    The defaults are modest on purpose: these calls share the account's quota with everything else that
    describes its databases (the console, Terraform, monitoring). RDS documents, per account and region, a burst
    of 300 requests and 12 per second sustained (the RDS user guide, "Request throttling for the Amazon RDS
    API"); DynamoDB documents 5 per
    second per account for TagResource/UntagResource and a 2,500 per second control-plane ceiling, and nothing
    for ListTagsOfResource (inferred: the tagging calls' order of magnitude); ElastiCache publishes none. 5 per
    second, 4 in flight, a burst of 5 stays well inside all of them; a throttle answer cuts the rate further (the
    governor is adaptive) and is retried under the run's retry policy.

    ``endpoint_url`` is where these APIs are reached (moto's server in tests); ``None`` is botocore's own
    resolution (``AWS_ENDPOINT_URL_RDS`` / ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL_ELASTICACHE`` /
    ``AWS_ENDPOINT_URL``, else the public endpoints). A target's own ``endpoint_url`` is its Cost Explorer
    endpoint and is not used for them.
    """

    max_rps: float = DEFAULT_INVENTORY_MAX_RPS
    max_concurrency: int = DEFAULT_INVENTORY_MAX_CONCURRENCY
    burst: float = DEFAULT_INVENTORY_BURST
    page_size: int = DEFAULT_INVENTORY_PAGE_SIZE
    endpoint_url: str | None = None

    def __post_init__(self) -> None:
        if not self.max_rps > 0:
            raise ConfigError(f"inventory max_rps: must be more than 0, got {self.max_rps:g}")
        if self.max_concurrency < 1:
            raise ConfigError(f"inventory max_concurrency: must be at least 1, got {self.max_concurrency}")
        if self.burst < 1:
            raise ConfigError(f"inventory burst: must be at least 1, got {self.burst:g}")
        if not 20 <= self.page_size <= 100:  # what DescribeDBInstances & co. accept as MaxRecords
            raise ConfigError(f"inventory page_size: must be between 20 and 100, got {self.page_size}")
        if self.endpoint_url is not None:
            check_endpoint_and_region(self.endpoint_url, None, where="inventory ")


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a target's circuit breaker opens, and how long it stays open."""

    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    reset_timeout_s: float = DEFAULT_RESET_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """The embedded DuckDB store: where it is and how much memory it may hold."""

    path: Path = DEFAULT_DB
    memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT
    checkpoint_threshold: str = DEFAULT_DUCKDB_CHECKPOINT
    threads: int = DEFAULT_DUCKDB_THREADS

    def __post_init__(self) -> None:
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(f"store threads: expected a whole number of at least 1, got {self.threads!r}")
        for name, value, minimum in (("memory_limit", self.memory_limit, MIN_DUCKDB_MEMORY_LIMIT),
                                     ("checkpoint_threshold", self.checkpoint_threshold, None)):
            why = _size_problem(value, minimum)
            if why is not None:
                raise ConfigError(f"store {name}: {why}")

    @classmethod
    def from_env(cls, path: str | Path = DEFAULT_DB, environ: Mapping[str, str] | None = None) -> StoreSettings:
        """Settings for the store at ``path``, with ``DBCOST_DUCKDB_MEMORY_LIMIT`` and ``DBCOST_DUCKDB_THREADS``
        honoured."""
        env = os.environ if environ is None else environ
        value = env.get("DBCOST_DUCKDB_MEMORY_LIMIT", DEFAULT_DUCKDB_MEMORY_LIMIT)
        why = _size_problem(value, MIN_DUCKDB_MEMORY_LIMIT)
        if why is not None:
            raise ConfigError(f"DBCOST_DUCKDB_MEMORY_LIMIT: {why}")
        threads_text = env.get("DBCOST_DUCKDB_THREADS", str(DEFAULT_DUCKDB_THREADS)).strip()
        if not threads_text.isdigit() or int(threads_text) < 1:
            raise ConfigError(f"DBCOST_DUCKDB_THREADS: expected a whole number of at least 1, got {threads_text!r}")
        return cls(path=Path(path), memory_limit=value, threads=int(threads_text))


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """What one request may take and what one run or one page chain may spend (``None``: no limit)."""

    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    max_requests: int | None = DEFAULT_MAX_REQUESTS
    max_chain_pages: int | None = DEFAULT_MAX_CHAIN_PAGES
    idle_pages: int = DEFAULT_IDLE_PAGES

    def __post_init__(self) -> None:
        if not self.request_timeout_s > 0:
            raise ConfigError(f"--request-timeout-s: must be more than 0, got {self.request_timeout_s:g}")
        for name, value in (("--max-requests", self.max_requests), ("--max-pages-per-chain", self.max_chain_pages)):
            if value is not None and value < 1:
                raise ConfigError(f"{name}: must be at least 1 (0 on the command line: no limit), got {value}")
        if self.idle_pages < 1:
            raise ConfigError(f"limits idle_pages: must be at least 1, got {self.idle_pages}")


@dataclass(frozen=True)
class FetchSettings:
    """Where and how fast to talk to Cost Explorer for one target (a resolved :class:`Settings` branch)."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    credentials: tuple[str, str] | None = field(default=None, repr=False)
    max_rps: float = DEFAULT_MAX_RPS
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    burst: float = DEFAULT_BURST
    #: requests this client may send in all (None: no limit); a run shares one budget across its clients
    max_requests: int | None = DEFAULT_MAX_REQUESTS
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker_threshold: int = DEFAULT_FAILURE_THRESHOLD
    breaker_reset_s: float = DEFAULT_RESET_TIMEOUT_S
    name: str = "default"
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    max_chain_pages: int | None = DEFAULT_MAX_CHAIN_PAGES
    idle_pages: int = DEFAULT_IDLE_PAGES


@dataclass(frozen=True)
class Settings:
    """Everything a run is told (see the module docstring for the tree)."""

    targets: tuple[TargetConfig, ...] = (DEFAULT_TARGET,)
    rate: RateSettings = field(default_factory=RateSettings)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: LimitSettings = field(default_factory=LimitSettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    sinks: tuple[str, ...] = ()
    inventory: InventorySettings = field(default_factory=InventorySettings)
    credentials: tuple[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.targets:
            raise ConfigError("settings: at least one target is needed")
        names = [t.name for t in self.targets]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"settings: duplicate target name(s): {', '.join(dup)}")

    @property
    def db(self) -> Path:
        return self.store.path

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return replace(self, **changes)

    def fetch_settings(self, target: TargetConfig | None = None) -> FetchSettings:
        """How to reach ``target`` (the first target by default): its own rate/concurrency where the targets
        file sets them, the run-wide ones otherwise; the run's limits."""
        t = target if target is not None else self.targets[0]
        return FetchSettings(
            endpoint_url=t.endpoint_url,
            profile=t.profile,
            region=t.region,
            role_arn=t.role_arn,
            external_id=t.external_id,
            credentials=self.credentials,
            max_rps=t.max_rps or self.rate.max_rps,
            max_concurrency=t.max_concurrency or self.rate.max_concurrency,
            burst=self.rate.burst,
            max_requests=self.limits.max_requests,
            retry=self.retry,
            breaker_threshold=self.breaker.failure_threshold,
            breaker_reset_s=self.breaker.reset_timeout_s,
            name=t.name,
            request_timeout_s=self.limits.request_timeout_s,
            max_chain_pages=self.limits.max_chain_pages,
            idle_pages=self.limits.idle_pages,
        )


def load_settings(
    *,
    targets_file: str | Path | None = None,
    endpoint_url: str | None = None,
    profile: str | None = None,
    region: str | None = None,
    db: str | Path = DEFAULT_DB,
    max_rps: float = DEFAULT_MAX_RPS,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    sinks: tuple[str, ...] | list[str] = (),
    environ: Mapping[str, str] | None = None,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    retry_budget_s: float = DEFAULT_RETRY_BUDGET_S,
    max_requests: int | None = DEFAULT_MAX_REQUESTS,
    max_chain_pages: int | None = DEFAULT_MAX_CHAIN_PAGES,
) -> Settings:
    """The :class:`Settings` a command's options describe: the targets file's targets, or one target from
    ``endpoint_url``/``profile``/``region`` (not both: ConfigError); the store at ``db`` with the environment's
    DuckDB memory cap; the limits (``None``: no limit); what is not given keeps the :class:`Settings` defaults."""
    if not retry_budget_s > 0:
        raise ConfigError(f"--retry-budget-s: must be more than 0, got {retry_budget_s:g}")
    if targets_file:
        if endpoint_url or profile or region:
            raise ConfigError("--targets: give profiles/endpoints in the targets file, not also on the command line")
        targets = tuple(load_targets(targets_file))
    else:
        check_endpoint_and_region(endpoint_url, region)
        targets = (TargetConfig(name=DEFAULT_TARGET.name, profile=profile, region=region, endpoint_url=endpoint_url),)
    return Settings(
        targets=targets,
        rate=RateSettings(max_rps=max_rps, max_concurrency=max_concurrency),
        retry=RetryPolicy(budget_s=retry_budget_s),
        limits=LimitSettings(request_timeout_s=request_timeout_s, max_requests=max_requests,
                             max_chain_pages=max_chain_pages),
        store=StoreSettings.from_env(db, environ),
        sinks=tuple(sinks),
    )
