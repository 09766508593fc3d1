"""Classify a Cost Explorer (SERVICE, USAGE_TYPE) pair for database cost attribution.

``classify("Amazon Relational Database Service", "EUW2-Aurora:ServerlessV2Usage")`` gives family
``aurora``, category ``compute``, deployment ``serverless``, region ``eu-west-2``. Spend can then be split
per cluster into compute / storage / I/O / backup / data transfer.

All knowledge lives in ``rules.toml`` next to this module (region billing codes, SERVICE names, ordered
usage-type rules, each marked confirmed or inferred with its source). This module only reads, validates
and applies it:

1. Region prefix(es) are split off the usage type (``USE1-EUW2-AWS-Out-Bytes``: billed in us-east-1,
   peer eu-west-2). Unprefixed usage types are us-east-1 by AWS's convention; ``region_prefix`` is then
   ``None`` so callers can tell a convention from a prefix. An unknown prefix gives ``region=None`` and
   keeps the prefix.
2. The family comes from SERVICE, never from the usage type alone: S3 and DynamoDB both bill
   ``TimedStorage-ByteHrs``, and only the SERVICE tells them apart.
3. The first rule (in file order) scoped to that family whose pattern matches the rest of the usage type
   decides category, deployment, engine and instance class, and may refine the family (RDS -> aurora).
4. No rule: ``known=False``, category ``other``. Nothing disappears; :func:`unclassified_spend` lists it.

Pure: no I/O except reading the packaged rules file once. :func:`classify` is cached (one call per record).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, cast, get_args

from dbcost._files import TomlTable, read_rules_toml
from dbcost.errors import ConfigError

__all__ = [
    "CATEGORIES",
    "DATABASE_FAMILIES",
    "DEPLOYMENTS",
    "FAMILIES",
    "Category",
    "Classification",
    "Deployment",
    "Family",
    "Rule",
    "RuleSet",
    "UnclassifiedSpend",
    "UsageTypeParts",
    "classify",
    "database_families",
    "default_rules",
    "is_database_family",
    "load_rules",
    "prefix_for_region",
    "region_for_prefix",
    "split_usage_type",
    "unclassified_spend",
]

Family = Literal[
    "aurora",
    "rds",
    "dynamodb",
    "elasticache",
    "redshift",
    "documentdb",
    "neptune",
    "keyspaces",
    "memorydb",
    "timestream",
    "other",
]
Category = Literal["compute", "storage", "io", "backup", "data_transfer", "other"]
Deployment = Literal["single-az", "multi-az", "serverless", "io-optimized"]

FAMILIES: Final[tuple[Family, ...]] = get_args(Family)
CATEGORIES: Final[tuple[Category, ...]] = get_args(Category)
DEPLOYMENTS: Final[tuple[Deployment, ...]] = get_args(Deployment)
#: Every family except ``other``, in declaration order.
DATABASE_FAMILIES: Final[tuple[Family, ...]] = tuple(f for f in FAMILIES if f != "other")

#: Named groups a rule pattern may capture.
_CAPTURES: Final = frozenset({"instance_class", "engine"})
_ANY_FAMILY: Final = "*"
_FRAGMENT_RE: Final = re.compile(r"<<([A-Za-z_][A-Za-z0-9_]*)>>")
_REGION_RE: Final = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]+")
_RULES_RESOURCE: Final = "rules.toml"


def database_families() -> tuple[Family, ...]:
    """The database families, i.e. every family except ``other``."""
    return DATABASE_FAMILIES


def is_database_family(family: str) -> bool:
    """True for a database family (``aurora``, ``rds``, ...); False for ``other`` and unknown names."""
    return family in DATABASE_FAMILIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Classification:
    """What one (SERVICE, USAGE_TYPE) pair is, as far as the usage type and SERVICE tell.

    ``known`` is False when no rule recognised the usage type (then ``category`` is ``other``); the family
    still comes from SERVICE. ``rule`` names the matching rule in ``rules.toml`` (``None`` when none did).
    """

    family: Family
    category: Category
    known: bool
    engine: str | None = None
    instance_class: str | None = None
    deployment: Deployment | None = None
    region: str | None = None
    region_prefix: str | None = None
    peer_region: str | None = None
    peer_region_prefix: str | None = None
    rule: str | None = None


class UsageTypeParts(NamedTuple):
    """A usage type split into its region prefix, an optional second (peer) prefix and the body."""

    prefix: str | None
    peer_prefix: str | None
    body: str


@dataclass(frozen=True, slots=True)
class Rule:
    """One validated ``[[rules]]`` entry."""

    name: str
    pattern: re.Pattern[str]
    category: Category
    families: frozenset[str]
    family: Family | None
    deployment: Deployment | None
    engine: str | None
    known: bool
    confirmed: bool
    source: str
    examples: tuple[str, ...] = ()

    def applies_to(self, family: str) -> bool:
        """True when the rule is scoped to ``family`` (or to every family)."""
        return _ANY_FAMILY in self.families or family in self.families


@dataclass(frozen=True, slots=True)
class RegionPrefix:
    """One ``[[region_prefixes]]`` entry."""

    prefix: str
    region: str
    canonical: bool
    confirmed: bool
    source: str


class RuleSet:
    """A validated rules file. :meth:`classify` applies it (uncached; the module-level one is cached)."""

    def __init__(
        self,
        *,
        default_region: str,
        prefix_re: re.Pattern[str],
        non_region_tokens: frozenset[str],
        colon_after_known_prefix: bool,
        non_regional_prefixes: tuple[str, ...],
        region_prefixes: tuple[RegionPrefix, ...],
        services: Mapping[str, Family],
        service_patterns: tuple[tuple[re.Pattern[str], Family], ...],
        engines: Mapping[str, str],
        engine_families: Mapping[str, Family],
        rules: tuple[Rule, ...],
    ) -> None:
        self.default_region = default_region
        self.region_prefixes = region_prefixes
        self.rules = rules
        self._prefix_re = prefix_re
        self._non_region_tokens = non_region_tokens
        self._colon_ok = colon_after_known_prefix
        self._non_regional = non_regional_prefixes
        self._regions: Mapping[str, str] = MappingProxyType({p.prefix: p.region for p in region_prefixes})
        self._canonical: Mapping[str, str] = MappingProxyType(
            {p.region: p.prefix for p in region_prefixes if p.canonical}
        )
        self._services = services
        self._service_patterns = service_patterns
        self._engines = engines
        self._engine_families = engine_families
        # Rules per family, order kept: the per-record loop then skips no rule it would have to test.
        self._by_family: Mapping[str, tuple[Rule, ...]] = MappingProxyType(
            {f: tuple(r for r in rules if r.applies_to(f)) for f in FAMILIES}
        )

    # -- regions -----------------------------------------------------------------------------------

    @property
    def prefixes(self) -> Mapping[str, str]:
        """Region billing code -> region (aliases included)."""
        return self._regions

    def region_for_prefix(self, prefix: str) -> str | None:
        """``EUW2`` -> ``eu-west-2``; ``None`` for a prefix the table does not know."""
        return self._regions.get(prefix)

    def prefix_for_region(self, region: str) -> str | None:
        """``eu-west-1`` -> ``EU`` (the canonical billing code); ``None`` for an unknown region."""
        return self._canonical.get(region)

    def split(self, usage_type: str) -> UsageTypeParts:
        """Split off the region prefix and, for inter-region transfer, the peer prefix."""
        for token in self._non_regional:
            if usage_type.startswith(token + "-"):
                return UsageTypeParts(token, None, usage_type[len(token) + 1 :])
        prefix, rest = self._take_prefix(usage_type, allow_colon=self._colon_ok)
        if prefix is None:
            return UsageTypeParts(None, None, usage_type)
        peer, body = self._take_prefix(rest, allow_colon=False)
        return UsageTypeParts(prefix, peer, body)

    def _take_prefix(self, text: str, *, allow_colon: bool) -> tuple[str | None, str]:
        match = self._prefix_re.match(text)
        if match is None:
            return None, text
        token, sep = match.group("tok"), match.group("sep")
        known = token in self._regions
        # ":" only after a known code, else "RDS:GP3-Storage" would lose "RDS"; "-" after anything that
        # has the shape and does not start a usage-type body ("IA-", "AWS-").
        if (sep == ":" and allow_colon and known) or (sep == "-" and (known or token not in self._non_region_tokens)):
            return token, text[match.end() :]
        return None, text

    # -- families ----------------------------------------------------------------------------------

    def service_family(self, service: str) -> Family:
        """The family SERVICE names (exact names first, then patterns); ``other`` when none."""
        family = self._services.get(service)
        if family is not None:
            return family
        for pattern, pattern_family in self._service_patterns:
            if pattern.search(service):
                return pattern_family
        return "other"

    # -- classification ----------------------------------------------------------------------------

    def classify(self, service: str, usage_type: str) -> Classification:
        """Classify one pair with these rules. Never raises for any pair of strings."""
        service_family = self.service_family(service)
        parts = self.split(usage_type)
        if parts.prefix is None:
            region: str | None = self.default_region
        else:
            region = self._regions.get(parts.prefix)
        peer_region = None if parts.peer_prefix is None else self._regions.get(parts.peer_prefix)
        for rule in self._by_family[service_family]:
            match = rule.pattern.fullmatch(parts.body)
            if match is None:
                continue
            captured = match.groupdict()
            engine = rule.engine
            token = captured.get("engine")
            if token is not None:
                engine = self._engines.get(token)
            family = rule.family or service_family
            if family == "rds" and engine is not None:
                family = self._engine_families.get(engine, family)
            return Classification(
                family=family,
                category=rule.category,
                known=rule.known,
                engine=engine,
                instance_class=captured.get("instance_class"),
                deployment=rule.deployment,
                region=region,
                region_prefix=parts.prefix,
                peer_region=peer_region,
                peer_region_prefix=parts.peer_prefix,
                rule=rule.name,
            )
        return Classification(
            family=service_family,
            category="other",
            known=False,
            region=region,
            region_prefix=parts.prefix,
            peer_region=peer_region,
            peer_region_prefix=parts.peer_prefix,
        )


# ---------------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------------


def _choice(reader: TomlTable, key: str, allowed: tuple[str, ...], *, optional: bool = False) -> str | None:
    value = reader.text(key, default=None if optional else ...)
    if value is not None and value not in allowed:
        raise reader.error(f"unknown {key} {value!r} (allowed: {', '.join(allowed)})")
    return cast(str | None, value)


def _compile(reader: TomlTable, key: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise reader.error(f"bad regex in {key!r} ({exc}): {pattern!r}") from exc


def _entries(origin: str, data: dict[str, Any], key: str) -> list[object]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{origin}: {key!r} must be an array of tables ([[{key}]])")
    return value


def _build(data: dict[str, Any], origin: str) -> RuleSet:
    top = TomlTable(origin, "top level", data)
    version = top.get("schema_version", int)
    if version != 1:
        raise top.error(f"unsupported schema_version {version} (this dbcost reads 1)")
    default_region = top.text("default_region")

    syntax = TomlTable(origin, "[prefix_syntax]", top.get("prefix_syntax", dict))
    token_pattern = syntax.text("pattern")
    prefix_re = _compile(syntax, "pattern", f"(?P<tok>{token_pattern})(?P<sep>[-:])")
    token_re = _compile(syntax, "pattern", token_pattern)
    non_region_tokens = frozenset(syntax.strings("non_region_tokens", default=[]))
    colon_ok = syntax.get("colon_after_known_prefix", bool, default=False)
    non_regional = tuple(syntax.strings("non_regional_prefixes", default=[]))
    syntax.done()

    prefixes: list[RegionPrefix] = []
    seen_prefix: set[str] = set()
    canonical_for: dict[str, str] = {}
    for i, raw in enumerate(_entries(origin, data, "region_prefixes")):
        entry = TomlTable(origin, f"[[region_prefixes]] #{i + 1}", raw)
        prefix = entry.text("prefix")
        entry.where = f"region prefix {prefix!r}"
        region = entry.text("region")
        canonical = entry.get("canonical", bool, default=True)
        item = RegionPrefix(prefix, region, canonical, entry.get("confirmed", bool), entry.text("source"))
        entry.done()
        if prefix in seen_prefix:
            raise entry.error("duplicate prefix")
        if not token_re.fullmatch(prefix):
            raise entry.error(f"does not match [prefix_syntax] pattern {token_pattern!r}")
        if prefix in non_region_tokens:
            raise entry.error("also listed in non_region_tokens")
        if not _REGION_RE.fullmatch(region):
            raise entry.error(f"{region!r} is not a region code like 'eu-west-2'")
        if canonical:
            if region in canonical_for:
                raise entry.error(f"second canonical prefix for {region} (first: {canonical_for[region]!r})")
            canonical_for[region] = prefix
        seen_prefix.add(prefix)
        prefixes.append(item)
    regions = {p.region for p in prefixes}
    if missing := sorted(regions - set(canonical_for)):
        raise top.error(f"no canonical prefix for region(s) {', '.join(missing)}")
    if default_region not in regions:
        raise top.error(f"default_region {default_region!r} has no entry in [[region_prefixes]]")

    services: dict[str, Family] = {}
    for i, raw in enumerate(_entries(origin, data, "services")):
        entry = TomlTable(origin, f"[[services]] #{i + 1}", raw)
        name = entry.text("name")
        entry.where = f"service {name!r}"
        family = cast(Family, _choice(entry, "family", FAMILIES))
        entry.get("confirmed", bool)
        entry.text("source")
        entry.done()
        if name in services:
            raise entry.error("duplicate service name")
        services[name] = family

    service_patterns: list[tuple[re.Pattern[str], Family]] = []
    for i, raw in enumerate(_entries(origin, data, "service_patterns")):
        entry = TomlTable(origin, f"[[service_patterns]] #{i + 1}", raw)
        pattern = entry.text("pattern")
        entry.where = f"service pattern {pattern!r}"
        family = cast(Family, _choice(entry, "family", FAMILIES))
        entry.get("confirmed", bool)
        entry.text("source")
        entry.done()
        service_patterns.append((_compile(entry, "pattern", pattern), family))

    fragments_reader = TomlTable(origin, "[fragments]", top.get("fragments", dict, default={}))
    fragments = {k: fragments_reader.text(k) for k in list(fragments_reader.table)}
    fragments_reader.done()

    engines_reader = TomlTable(origin, "[engines]", top.get("engines", dict, default={}))
    engines = {k: engines_reader.text(k) for k in list(engines_reader.table)}
    engines_reader.done()

    ef_reader = TomlTable(origin, "[engine_families]", top.get("engine_families", dict, default={}))
    engine_families: dict[str, Family] = {}
    for engine in list(ef_reader.table):
        engine_families[engine] = cast(Family, _choice(ef_reader, engine, FAMILIES))
    ef_reader.done()

    rules: list[Rule] = []
    names: set[str] = set()
    for i, raw in enumerate(_entries(origin, data, "rules")):
        entry = TomlTable(origin, f"[[rules]] #{i + 1}", raw)
        name = entry.text("name")
        entry.where = f"rule {name!r}"
        if name in names:
            raise entry.error("duplicate rule name")
        names.add(name)
        rules.append(_build_rule(entry, name, fragments, engines))
        entry.done()

    top.used.update({"region_prefixes", "services", "service_patterns", "rules"})
    top.done()
    return RuleSet(
        default_region=default_region,
        prefix_re=prefix_re,
        non_region_tokens=non_region_tokens,
        colon_after_known_prefix=colon_ok,
        non_regional_prefixes=non_regional,
        region_prefixes=tuple(prefixes),
        services=MappingProxyType(services),
        service_patterns=tuple(service_patterns),
        engines=MappingProxyType(engines),
        engine_families=MappingProxyType(engine_families),
        rules=tuple(rules),
    )


def _build_rule(entry: TomlTable, name: str, fragments: Mapping[str, str], engines: Mapping[str, str]) -> Rule:
    families = entry.strings("families")
    if not families:
        raise entry.error("'families' must not be empty")
    for family in families:
        if family != _ANY_FAMILY and family not in FAMILIES:
            raise entry.error(f"unknown family {family!r} in 'families' (allowed: *, {', '.join(FAMILIES)})")

    def expand(match: re.Match[str]) -> str:
        fragment = fragments.get(match.group(1))
        if fragment is None:
            raise entry.error(f"unknown fragment <<{match.group(1)}>> in 'pattern'")
        return fragment

    source_pattern = entry.text("pattern")
    pattern = _compile(entry, "pattern", _FRAGMENT_RE.sub(expand, source_pattern))
    if extra := sorted(set(pattern.groupindex) - _CAPTURES):
        raise entry.error(f"pattern captures unknown group(s) {extra} (allowed: {sorted(_CAPTURES)})")
    static_engine = entry.text("engine", default=None)
    if static_engine is not None and "engine" in pattern.groupindex:
        raise entry.error("set either 'engine' or an (?P<engine>...) capture, not both")
    if "engine" in pattern.groupindex and not engines:
        raise entry.error("captures an engine but [engines] is empty")
    return Rule(
        name=name,
        pattern=pattern,
        category=cast(Category, _choice(entry, "category", CATEGORIES)),
        families=frozenset(families),
        family=cast(Family | None, _choice(entry, "family", FAMILIES, optional=True)),
        deployment=cast(Deployment | None, _choice(entry, "deployment", DEPLOYMENTS, optional=True)),
        engine=static_engine,
        known=entry.get("known", bool, default=True),
        confirmed=entry.get("confirmed", bool),
        source=entry.text("source"),
        examples=tuple(entry.strings("examples", default=[])),
    )


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Read and validate a rules file (default: the packaged ``rules.toml``).

    Raises :class:`~dbcost.errors.ConfigError` naming the file and the offending entry: an unknown
    category or family, a bad regex, a duplicate name, an unknown key, ...
    """
    origin = f"dbcost.attribution/{_RULES_RESOURCE}" if path is None else str(path)
    return _build(read_rules_toml(path, origin, package="dbcost.attribution", resource=_RULES_RESOURCE), origin)


@functools.cache
def default_rules() -> RuleSet:
    """The packaged rules, loaded and validated once."""
    return load_rules()


@functools.lru_cache(maxsize=1 << 16)
def _classify_cached(service: str, usage_type: str) -> Classification:
    return default_rules().classify(service, usage_type)


def classify(service: str, usage_type: str) -> Classification:
    """Classify a Cost Explorer (SERVICE, USAGE_TYPE) pair with the packaged rules (cached)."""
    return _classify_cached(service, usage_type)


def split_usage_type(usage_type: str) -> UsageTypeParts:
    """``USE1-EUW2-AWS-Out-Bytes`` -> (``USE1``, ``EUW2``, ``AWS-Out-Bytes``), with the packaged rules."""
    return default_rules().split(usage_type)


def region_for_prefix(prefix: str) -> str | None:
    """Region billing code -> region with the packaged table (``None`` when unknown)."""
    return default_rules().region_for_prefix(prefix)


def prefix_for_region(region: str) -> str | None:
    """Region -> canonical region billing code with the packaged table (``None`` when unknown)."""
    return default_rules().prefix_for_region(region)


# ---------------------------------------------------------------------------------------------------
# Unclassified spend
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnclassifiedSpend:
    """Total spend of one (SERVICE, USAGE_TYPE) pair no rule recognised."""

    service: str
    usage_type: str
    family: Family
    amount: Decimal
    lines: int


def unclassified_spend(
    rows: Iterable[tuple[str, str, Decimal]], *, database_only: bool = True
) -> list[UnclassifiedSpend]:
    """Sum the spend of the (service, usage_type, amount) rows that :func:`classify` does not know.

    Largest amount first (then by name), so a report can show what the rules miss and what it costs.
    ``database_only`` (the default) leaves out families ``other``: unknown S3 or EC2 usage types are not
    a gap in the database rules.
    """
    totals: dict[tuple[str, str], tuple[Family, Decimal, int]] = {}
    for service, usage_type, amount in rows:
        found = classify(service, usage_type)
        if found.known or (database_only and not is_database_family(found.family)):
            continue
        family, total, lines = totals.get((service, usage_type), (found.family, Decimal(0), 0))
        totals[(service, usage_type)] = (family, total + amount, lines + 1)
    out = [UnclassifiedSpend(s, u, f, a, n) for (s, u), (f, a, n) in totals.items()]
    out.sort(key=lambda x: (-x.amount, x.service, x.usage_type))
    return out
