"""The advisory rules file: read, validated, typed. The rules themselves live in ``rules.toml`` beside this module.

A rules file is TOML with ``schema_version = 1`` and one ``[[rules]]`` table per rule (the packaged file's header
documents every key). :func:`load_advice_rules` turns it into an :class:`AdviceRules`; every mistake is one
:class:`~dbcost.errors.ConfigError` line naming the file and the rule: an unknown kind (the message lists the
known ones), a missing or unknown key or parameter, a bad regex, a pattern without the named groups its kind
reads, an example its pattern does not match, a number that is not an exact decimal string in range, a class
family listed by two rules. Numbers are decimal *strings* (``"0.30"``), never TOML floats, so what the file says
is exactly what the formula uses.

What each kind does with its parameters is :mod:`dbcost.advice.evaluate`; this module only guarantees that the
parameters it reads are there, typed and in range.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, cast, get_args

from dbcost._files import TomlTable, read_rules_toml
from dbcost.attribution import FAMILIES, split_usage_type
from dbcost.errors import ConfigError

__all__ = [
    "KINDS",
    "AdviceRule",
    "AdviceRules",
    "ClassMapping",
    "Kind",
    "default_advice_rules",
    "load_advice_rules",
]

Kind = Literal[
    "extended-support",
    "aurora-io-optimized",
    "multi-az-non-prod",
    "graviton",
    "previous-generation",
    "dynamodb-capacity-mode",
    "idle",
]
#: The advisory kinds, named exactly as the issue and the JSON output name them.
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)

_RESOURCE: Final = "rules.toml"
_RULE_KEYS: Final = frozenset({"name", "kind", "services", "pattern", "examples", "formula", "untagged", "confirmed",
                               "source", "params", "classes"})
_CLASS_KEYS: Final = frozenset({"family", "to", "ratio", "source"})
_CLASS_RE: Final = re.compile(r"(?:db|cache)\.[a-z0-9]+")

# parameter kinds: "regex", "text", "ratio" (0 < x <= 1), "factor" (x >= 0), "price" (x > 0), "days" (int >= 1),
# "kinds" (a list of advisory kinds)
_ParamType = Literal["regex", "text", "ratio", "factor", "price", "days", "kinds"]
#: kind -> parameter -> (type, required)
_PARAMS: Final[Mapping[str, Mapping[str, tuple[_ParamType, bool]]]] = {
    "extended-support": {"engine": ("text", False)},
    "aurora-io-optimized": {
        "compute": ("regex", True), "storage": ("regex", True), "optimized_compute": ("regex", True),
        "optimized_storage": ("regex", True), "compute_uplift": ("factor", True), "storage_uplift": ("factor", True),
    },
    "multi-az-non-prod": {"share": ("ratio", True)},
    "graviton": {"caveat": ("text", False)},
    "previous-generation": {"caveat": ("text", False)},
    "dynamodb-capacity-mode": {
        "read": ("regex", True), "write": ("regex", True), "read_price": ("price", True),
        "write_price": ("price", True), "read_capacity_price": ("price", True),
        "write_capacity_price": ("price", True), "target_utilization": ("ratio", True), "min_days": ("days", True),
    },
    "idle": {"steady_min_ratio": ("ratio", True), "min_days": ("days", True), "supersedes": ("kinds", True)},
}
#: named groups each kind's pattern must capture (any one of the alternatives)
_CAPTURES: Final[Mapping[str, tuple[frozenset[str], ...]]] = {
    "extended-support": (frozenset({"engine", "version"}), frozenset({"instance_class"})),
    "graviton": (frozenset({"instance_class"}),),
    "previous-generation": (frozenset({"instance_class"}),),
}
_WITH_CLASSES: Final = frozenset({"graviton", "previous-generation"})


@dataclass(frozen=True, slots=True)
class ClassMapping:
    """One ``[[rules.classes]]`` row: instances of ``family`` (``db.m5``) move to ``to`` (``db.m6g``) at ``ratio``
    (the target's list price / the source's, same size)."""

    family: str
    to: str
    ratio: Decimal
    source: str


@dataclass(frozen=True)
class AdviceRule:
    """One validated ``[[rules]]`` table. ``params`` holds typed values: compiled patterns, Decimals, ints."""

    name: str
    kind: Kind
    services: frozenset[str]
    pattern: re.Pattern[str]
    formula: str
    untagged: bool
    confirmed: bool
    source: str
    examples: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    classes: Mapping[str, ClassMapping] = field(default_factory=dict)

    def regex(self, name: str) -> re.Pattern[str]:
        return cast(re.Pattern[str], self.params[name])

    def decimal(self, name: str) -> Decimal:
        return cast(Decimal, self.params[name])

    def integer(self, name: str) -> int:
        return cast(int, self.params[name])

    def text(self, name: str, default: str = "") -> str:
        return cast(str, self.params.get(name, default))

    def kinds(self, name: str) -> tuple[str, ...]:
        return cast(tuple[str, ...], self.params.get(name, ()))


@dataclass(frozen=True)
class AdviceRules:
    """A validated rules file: its rules in file order, and where it came from."""

    rules: tuple[AdviceRule, ...]
    origin: str

    def of_kind(self, kind: str) -> tuple[AdviceRule, ...]:
        return tuple(r for r in self.rules if r.kind == kind)


def _compile(entry: TomlTable, key: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise entry.error(f"bad regex in {key!r} ({exc}): {pattern!r}") from None


def _decimal(entry: TomlTable, key: str, value: object, kind: _ParamType) -> Decimal:
    if not isinstance(value, str):
        raise entry.error(f"{key!r} must be a decimal string like \"0.30\" (exact), got {type(value).__name__}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise entry.error(f"{key!r}: {value!r} is not a decimal number") from None
    if not number.is_finite():
        raise entry.error(f"{key!r}: {value!r} is not a finite number")
    if kind == "ratio" and not 0 < number <= 1:
        raise entry.error(f"{key!r} must be > 0 and <= 1, got {value}")
    if kind == "factor" and number < 0:
        raise entry.error(f"{key!r} must be >= 0, got {value}")
    if kind == "price" and number <= 0:
        raise entry.error(f"{key!r} must be > 0, got {value}")
    return number


def _params(entry: TomlTable, kind: Kind, raw: object) -> dict[str, Any]:
    spec = _PARAMS[kind]
    table = TomlTable(entry.origin, f"{entry.where} [rules.params]", raw if raw is not None else {})
    table.only(frozenset(spec))
    out: dict[str, Any] = {}
    for key, (ptype, required) in spec.items():
        if key not in table.table:
            if required:
                raise table.error(f"missing parameter {key!r} (the {kind} kind needs: "
                                  f"{', '.join(k for k, (_, r) in spec.items() if r)})")
            continue
        value = table.table[key]
        if ptype == "regex":
            out[key] = _compile(table, key, table.text(key))
        elif ptype == "text":
            out[key] = table.text(key)
        elif ptype == "days":
            days = table.get(key, int)
            if days < 1:
                raise table.error(f"{key!r} must be an integer >= 1, got {days}")
            out[key] = days
        elif ptype == "kinds":
            names = table.strings(key)
            if unknown := sorted(set(names) - set(KINDS)):
                raise table.error(f"{key!r}: unknown kind(s) {', '.join(unknown)} (known: {', '.join(KINDS)})")
            out[key] = tuple(names)
        else:
            out[key] = _decimal(table, key, value, ptype)
    return out


def _classes(entry: TomlTable, kind: Kind, raw: object) -> dict[str, ClassMapping]:
    if kind not in _WITH_CLASSES:
        if raw is not None:
            raise entry.error(f"[[rules.classes]] is for the graviton and previous-generation kinds, not {kind}")
        return {}
    if not isinstance(raw, list) or not raw:
        raise entry.error(f"the {kind} kind needs [[rules.classes]] rows (family, to, ratio, source)")
    out: dict[str, ClassMapping] = {}
    for i, row in enumerate(raw, 1):
        table = TomlTable(entry.origin, f"{entry.where} [[rules.classes]] #{i}", row)
        table.only(_CLASS_KEYS)
        family, to = table.text("family"), table.text("to")
        for key, value in (("family", family), ("to", to)):
            if not _CLASS_RE.fullmatch(value):
                raise table.error(f"{key!r} must be a class family like 'db.m5' or 'cache.r6g', got {value!r}")
        if family in out:
            raise table.error(f"class family {family!r} is listed twice")
        if family.split(".")[0] != to.split(".")[0]:
            raise table.error(f"{family!r} and {to!r} are not the same service's classes")
        out[family] = ClassMapping(family, to, _decimal(table, "ratio", table.table.get("ratio"), "ratio"),
                                   table.text("source"))
    return out


def _rule(origin: str, index: int, raw: object) -> AdviceRule:
    entry = TomlTable(origin, f"[[rules]] #{index}", raw)
    name = entry.text("name")
    entry.where = f"rule {name!r}"
    kind = entry.text("kind")
    if kind not in KINDS:
        raise entry.error(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    kind = cast(Kind, kind)
    entry.only(_RULE_KEYS)
    services = entry.strings("services")
    if not services:
        raise entry.error("'services' must not be empty")
    if unknown := sorted(set(services) - set(FAMILIES)):
        raise entry.error(f"unknown service famil(ies) {', '.join(unknown)} (known: {', '.join(FAMILIES)})")
    pattern = _compile(entry, "pattern", entry.text("pattern"))
    needs = _CAPTURES.get(kind)
    if needs is not None and not any(alt <= set(pattern.groupindex) for alt in needs):
        wanted = " or ".join("+".join(sorted(alt)) for alt in needs)
        raise entry.error(f"the {kind} kind needs a pattern capturing (?P<...>) {wanted}")
    examples = tuple(entry.strings("examples", default=[]))
    for example in examples:
        if pattern.fullmatch(split_usage_type(example).body) is None:
            raise entry.error(f"example {example!r} does not match the pattern")
    return AdviceRule(
        name=name, kind=kind, services=frozenset(services), pattern=pattern, formula=entry.text("formula"),
        untagged=entry.get("untagged", bool), confirmed=entry.get("confirmed", bool), source=entry.text("source"),
        examples=examples, params=MappingProxyType(_params(entry, kind, entry.table.get("params"))),
        classes=MappingProxyType(_classes(entry, kind, entry.table.get("classes"))),
    )


def _build(data: dict[str, Any], origin: str) -> AdviceRules:
    top = TomlTable(origin, "top level", data)
    top.only(frozenset({"schema_version", "rules"}))
    version = top.get("schema_version", int)
    if version != 1:
        raise top.error(f"unsupported schema_version {version} (this dbcost reads 1)")
    raw_rules = top.get("rules", list)
    if not raw_rules:
        raise top.error("no [[rules]]")
    rules: list[AdviceRule] = []
    names: set[str] = set()
    families: dict[str, str] = {}
    for i, raw in enumerate(raw_rules, 1):
        rule = _rule(origin, i, raw)
        if rule.name in names:
            raise ConfigError(f"{origin}: rule {rule.name!r}: duplicate rule name")
        names.add(rule.name)
        for family in rule.classes:
            if family in families:
                raise ConfigError(f"{origin}: rule {rule.name!r}: class family {family!r} is already advised by rule "
                                  f"{families[family]!r} (one rule per class family)")
            families[family] = rule.name
        rules.append(rule)
    return AdviceRules(tuple(rules), origin)


def load_advice_rules(path: str | Path | None = None) -> AdviceRules:
    """Read and validate a rules file (default: the packaged ``rules.toml``); a ConfigError names what is wrong."""
    origin = f"dbcost.advice/{_RESOURCE}" if path is None else f"--rules {path}"
    return _build(read_rules_toml(path, origin, package="dbcost.advice", resource=_RESOURCE), origin)


@functools.cache
def default_advice_rules() -> AdviceRules:
    """The packaged rules, loaded and validated once."""
    return load_advice_rules()
