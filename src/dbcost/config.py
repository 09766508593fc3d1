"""Settings: one frozen tree for everything a run is told, every default in one place, and its loaders.

::

    Settings
      targets   tuple[TargetConfig]   the payer accounts read (default: one target, the AWS credential chain)
      rate      RateSettings          requests per second and in flight, per target; burst
      retry     RetryPolicy           attempts, backoff and time budget per call
      breaker   BreakerSettings       consecutive failures before a target's breaker opens; reset time
      store     StoreSettings         the DuckDB file, its memory cap and checkpoint threshold
      sinks     tuple[str]            ``--sink`` URLs (each sink parses and validates its own)
      credentials                     explicit keys for every target (the demo's emulator); None = the chain

The CLI and the library build the same objects: a command turns its options into a :class:`Settings` whose
fields it did not set keep the defaults below, and ``Settings()`` in a library gives the same defaults
(a test builds both and compares). :meth:`Settings.fetch_settings` resolves one target into the
:class:`FetchSettings` a client is opened with: the target's own ``max_rps``/``max_concurrency`` where the
targets file sets them, the run-wide ones otherwise. Environment variables are read here, at the edge
(:meth:`StoreSettings.from_env`), never deep inside a layer.

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
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dbcost._files import read_text_file
from dbcost.breaker import DEFAULT_FAILURE_THRESHOLD, DEFAULT_RESET_TIMEOUT_S
from dbcost.errors import ConfigError
from dbcost.governor import DEFAULT_BURST, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RPS
from dbcost.retry import RetryPolicy

__all__ = [
    "DEFAULT_DB",
    "BreakerSettings",
    "FetchSettings",
    "RateSettings",
    "Settings",
    "StoreSettings",
    "TargetConfig",
    "load_settings",
    "load_targets",
]

#: the store file a command uses when ``--db`` is not given
DEFAULT_DB = Path("dbcost.duckdb")
#: DuckDB's cache cap: its default is 80% of RAM; a bounded cache keeps a long backfill's memory flat
DEFAULT_DUCKDB_MEMORY_LIMIT = "64MB"
#: rows committed since the last checkpoint stay in memory: checkpoint more often than DuckDB's 16 MB
DEFAULT_DUCKDB_CHECKPOINT = "4MB"
_SIZE_RE = re.compile(r"\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)", re.IGNORECASE)

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

    def __post_init__(self) -> None:
        for name, value in (("memory_limit", self.memory_limit), ("checkpoint_threshold", self.checkpoint_threshold)):
            if not _SIZE_RE.fullmatch(value):
                raise ConfigError(f"store {name}: expected a size like 256MB, got {value!r}")

    @classmethod
    def from_env(cls, path: str | Path = DEFAULT_DB, environ: Mapping[str, str] | None = None) -> StoreSettings:
        """Settings for the store at ``path``, with ``DBCOST_DUCKDB_MEMORY_LIMIT`` honoured."""
        env = os.environ if environ is None else environ
        value = env.get("DBCOST_DUCKDB_MEMORY_LIMIT", DEFAULT_DUCKDB_MEMORY_LIMIT)
        if not _SIZE_RE.fullmatch(value):
            raise ConfigError(f"DBCOST_DUCKDB_MEMORY_LIMIT: expected a size like 256MB, got {value!r}")
        return cls(path=Path(path), memory_limit=value)


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
    max_requests: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker_threshold: int = DEFAULT_FAILURE_THRESHOLD
    breaker_reset_s: float = DEFAULT_RESET_TIMEOUT_S
    name: str = "default"


@dataclass(frozen=True)
class Settings:
    """Everything a run is told (see the module docstring for the tree)."""

    targets: tuple[TargetConfig, ...] = (DEFAULT_TARGET,)
    rate: RateSettings = field(default_factory=RateSettings)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    sinks: tuple[str, ...] = ()
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

    def fetch_settings(self, target: TargetConfig | None = None, *, max_requests: int | None = None) -> FetchSettings:
        """How to reach ``target`` (the first target by default): its own rate/concurrency where the targets
        file sets them, the run-wide ones otherwise."""
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
            max_requests=max_requests,
            retry=self.retry,
            breaker_threshold=self.breaker.failure_threshold,
            breaker_reset_s=self.breaker.reset_timeout_s,
            name=t.name,
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
) -> Settings:
    """The :class:`Settings` a command's options describe: the targets file's targets, or one target from
    ``endpoint_url``/``profile``/``region`` (not both: ConfigError); the store at ``db`` with the environment's
    DuckDB memory cap; what is not given keeps the :class:`Settings` defaults."""
    if targets_file:
        if endpoint_url or profile or region:
            raise ConfigError("--targets: give profiles/endpoints in the targets file, not also on the command line")
        targets = tuple(load_targets(targets_file))
    else:
        targets = (TargetConfig(name=DEFAULT_TARGET.name, profile=profile, region=region, endpoint_url=endpoint_url),)
    return Settings(
        targets=targets,
        rate=RateSettings(max_rps=max_rps, max_concurrency=max_concurrency),
        store=StoreSettings.from_env(db, environ),
        sinks=tuple(sinks),
    )
