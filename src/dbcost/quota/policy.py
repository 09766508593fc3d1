"""Quota policies: the TOML file of monthly budgets per pool, read into frozen, validated models.

A *policy* file names pools; each pool matches one team of the attribution::

    [[pool]]
    name = "payments"                 # required, unique
    team = "payments"                 # the team, as the attribution names it ("unattributed" works too)
    monthly_budget_usd = 90000        # > 0; int, float or string, always read as an exact Decimal
    warn_at = 0.8                     # optional, 0 < warn_at <= 1 (default 0.8)
    metric = "UnblendedCost"          # optional; a Cost Explorer cost metric (default UnblendedCost)

    [pool.category_caps]              # optional: USD cap per category (any category but "shared")
    io = 8000

:func:`load_policy` reads such a file into a :class:`Policy`; every mistake in it is one
:class:`~dbcost.errors.ConfigError` line naming the file, the pool (index and name) and the field.
TOML floats are parsed as ``Decimal`` and a float given in code goes through ``str``, so ``0.1`` is
``Decimal("0.1")``, never a binary float. :func:`example_policy_text` is the packaged example
(``policy.example.toml`` beside this module), budgets for the emulator's fleet.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dbcost._files import read_text_file
from dbcost.attribution.model import CATEGORY_ORDER
from dbcost.errors import ConfigError
from dbcost.models import COST_METRICS
from dbcost.money import AmountError, fmt, parse_amount

__all__ = [
    "BUDGET_METRICS",
    "CAP_CATEGORIES",
    "Policy",
    "PoolPolicy",
    "example_policy_text",
    "load_policy",
]

#: Categories a pool may cap: the attribution's categories except allocated ``shared`` spend.
CAP_CATEGORIES: Final[tuple[str, ...]] = tuple(c for c in CATEGORY_ORDER if c != "shared")
#: Metrics a USD budget makes sense for: Cost Explorer's metrics minus the two usage quantities.
BUDGET_METRICS: Final[tuple[str, ...]] = tuple(
    m for m in COST_METRICS if m not in ("UsageQuantity", "NormalizedUsageAmount")
)
_METRIC_BY_LOWER: Final = {m.lower(): m for m in BUDGET_METRICS}
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_POOL_KEYS: Final = ("name", "team", "monthly_budget_usd", "warn_at", "metric", "category_caps")
_EXAMPLE: Final = "policy.example.toml"


def _decimal(value: object) -> Decimal:
    """An exact Decimal from a TOML int/float/string (floats through ``str``: ``0.1`` -> ``Decimal("0.1")``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"must be a number or a decimal string, got {type(value).__name__}")
    try:
        return parse_amount(value if isinstance(value, str) else str(value))
    except AmountError as exc:
        raise ValueError(str(exc)) from None


def _positive(value: object) -> Decimal:
    d = _decimal(value)
    if d <= 0:
        raise ValueError(f"must be greater than 0, got {fmt(d)}")
    return d


class PoolPolicy(BaseModel):
    """One budget: a pool name, the team it matches, a monthly budget in USD and optional category caps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    team: str = Field(min_length=1)
    monthly_budget_usd: Decimal
    warn_at: Decimal = Decimal("0.8")
    metric: str = "UnblendedCost"
    category_caps: dict[str, Decimal] = Field(default_factory=dict)

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: object) -> object:
        if isinstance(v, str) and _NAME_RE.fullmatch(v) is None:
            raise ValueError("must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
        return v

    @field_validator("monthly_budget_usd", mode="before")
    @classmethod
    def _budget(cls, v: object) -> Decimal:
        return _positive(v)

    @field_validator("warn_at", mode="before")
    @classmethod
    def _warn_at(cls, v: object) -> Decimal:
        d = _decimal(v)
        if not 0 < d <= 1:
            raise ValueError(f"must be > 0 and <= 1, got {fmt(d)}")
        return d

    @field_validator("metric", mode="before")
    @classmethod
    def _metric(cls, v: object) -> str:
        canonical = _METRIC_BY_LOWER.get(str(v).lower()) if isinstance(v, str) else None
        if canonical is None:
            raise ValueError(f"unknown cost metric {v!r} (valid: {', '.join(BUDGET_METRICS)})")
        return canonical

    @field_validator("category_caps", mode="before")
    @classmethod
    def _caps(cls, v: object) -> dict[str, Decimal]:
        if not isinstance(v, Mapping):
            raise ValueError("must be a table of category = USD cap")
        unknown = [str(k) for k in v if k not in CAP_CATEGORIES]
        if unknown:
            raise ValueError(f"unknown category {unknown[0]!r} (valid: {', '.join(CAP_CATEGORIES)})")
        caps: dict[str, Decimal] = {}
        for cat in CAP_CATEGORIES:  # canonical order, whatever the file's
            if cat in v:
                try:
                    caps[cat] = _positive(v[cat])
                except ValueError as exc:
                    raise ValueError(f"{cat}: {exc}") from None
        return caps


class Policy(BaseModel):
    """A validated policy: at least one pool, pool names unique."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pools: tuple[PoolPolicy, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        seen: set[str] = set()
        for p in self.pools:
            if p.name in seen:
                raise ValueError(f"duplicate pool name {p.name!r}")
            seen.add(p.name)
        return self

    def pool(self, name: str) -> PoolPolicy | None:
        return next((p for p in self.pools if p.name == name), None)


def _pool_error(origin: str, index: int, entry: object, exc: ValidationError) -> ConfigError:
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = ".".join(str(x) for x in err["loc"]) or "pool"
    if err["type"] == "extra_forbidden":
        msg = f"unknown key (valid: {', '.join(_POOL_KEYS)})"
    elif err["type"] == "missing":
        msg = "required"
    else:
        msg = re.sub(r"^Value error, ", "", err["msg"])
    more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return ConfigError(f"{origin}: {_pool_label(index, entry)}: {loc}: {msg}{more}")


def _pool_label(index: int, entry: object) -> str:
    name = entry.get("name") if isinstance(entry, Mapping) else None
    return f"pool #{index} {name!r}" if isinstance(name, str) else f"pool #{index} (no name)"


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; every error is one ``ConfigError`` line naming file, pool, field."""
    p = Path(path)
    origin = f"policy {p}"
    text = read_text_file(p, origin)
    try:
        # parse_float=Decimal: a TOML float never becomes a binary float on its way to a budget
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {str(exc).splitlines()[0]}") from None
    unknown = sorted(k for k in data if k != "pool")
    if unknown:
        raise ConfigError(f"{origin}: unknown top-level key {unknown[0]!r} (expected only [[pool]] tables)")
    entries = data.get("pool")
    if isinstance(entries, dict):
        raise ConfigError(f"{origin}: pool: write each pool as [[pool]] (an array of tables), not [pool]")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{origin}: no pools: expected at least one [[pool]] table")
    pools: list[PoolPolicy] = []
    first_index: dict[str, int] = {}
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ConfigError(f"{origin}: pool #{i}: expected a table")
        try:
            pool = PoolPolicy.model_validate(entry)
        except ValidationError as exc:
            raise _pool_error(origin, i, entry, exc) from None
        if pool.name in first_index:
            raise ConfigError(f"{origin}: {_pool_label(i, entry)}: name: duplicate pool name "
                              f"(already used by pool #{first_index[pool.name]})")
        first_index[pool.name] = i
        pools.append(pool)
    return Policy(pools=tuple(pools))


def example_policy_text() -> str:
    """The packaged example policy (budgets for the emulator's fleet), to copy and edit."""
    return files("dbcost.quota").joinpath(_EXAMPLE).read_text(encoding="utf-8")
