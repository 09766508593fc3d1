"""Evaluate advisory rules over a month's database spend (pure: values in, advisories out).

Input: the :class:`~dbcost.advice.model.UsageLine` rows of the month (the attribution's per-service datasets),
the :class:`~dbcost.advice.model.ClusterFacts` per cluster tag value, the :class:`~dbcost.advice.model.Window`
and the options (cluster and env tag names, non-production env values, the minimum savings).

How, in order:

1. Rows are grouped per **(cluster, service, region)**; the region is the usage type's billing prefix read with
   dbcost.attribution's table (unprefixed = us-east-1), the usage type's *body* (without the prefix) is what a
   rule's ``pattern`` must match, whole. Each group keeps its total and its daily amounts per usage type.
2. Every rule whose ``services`` contain the SERVICE's family looks at the group; spend without a cluster tag
   (cluster ``""``) only by rules with ``untagged = true``, and its advisories say so in their action.
3. The kinds (formulas in ``rules.toml``, per rule):

   * ``extended-support``: savings = the cost of the matching usage, per engine version (or node type);
   * ``aurora-io-optimized``: on Standard, savings = IO - u_c C - u_s S when positive; on I/O-Optimized after a
     switch inside the window, the Standard days' I/O rate stands for the I/O-Optimized days and savings =
     C' - C'/(1+u_c) + S' - S'/(1+u_s) - IO x d_opt/d_std (rounded once to 10 places, half-even);
   * ``multi-az-non-prod``: savings = share x the Multi-AZ usage, when the env tag's value is non-production
     (compared case-insensitively);
   * ``graviton`` / ``previous-generation``: savings = the class's instance hours x (1 - ratio);
   * ``dynamodb-capacity-mode``: provisioned cost sized for the busiest day (see the rule), savings = on-demand
     minus that, when positive (each direction's provisioned cost rounded once to 10 places, half-even);
   * ``idle``: compute on every day the group has spend, steady, and no I/O or data transfer: savings = the
     compute cost; an idle group's advisories of the kinds its rule ``supersedes`` are dropped.

4. Advisories with savings <= 0 or below ``min_savings`` are left out; the rest are sorted, largest savings
   first (ties in a fixed order of their identity).

Every amount is a ``Decimal``: sums are exact, the two formulas that divide are rounded once, as stated.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any, Final

from dbcost.advice.model import Advisory, ClusterFacts, UsageLine, Window, amount_text
from dbcost.advice.rules import AdviceRule, AdviceRules, default_advice_rules
from dbcost.attribution import classify, split_usage_type
from dbcost.money import sum_amounts

__all__ = ["DEFAULT_NON_PROD", "QUANTUM", "AdviceOptions", "evaluate"]

#: The env tag values that are not production unless ``--non-prod`` says otherwise.
DEFAULT_NON_PROD: Final[tuple[str, ...]] = ("dev", "test", "staging", "qa")
#: The scale the dividing formulas round to (the store's: 10 decimal places).
QUANTUM: Final = Decimal("1E-10")
_DIVIDE: Final = Context(prec=60)
_SECONDS_PER_DAY: Final = Decimal(86400)
_HOURS_PER_DAY: Final = Decimal(24)


@dataclass(frozen=True)
class AdviceOptions:
    """What the command line decides: tag names, the non-production env values, the savings floor."""

    cluster_tag: str = "db-cluster"
    env_tag: str = "env"
    non_prod: tuple[str, ...] = DEFAULT_NON_PROD
    min_savings: Decimal = Decimal(0)


@dataclass
class _Group:
    cluster: str
    service: str
    region: str
    family: str
    totals: dict[str, Decimal] = field(default_factory=dict)
    daily: dict[str, dict[dt.date, Decimal]] = field(default_factory=dict)
    bodies: dict[str, str] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)

    def add(self, line: UsageLine, body: str, category: str) -> None:
        ut = line.usage_type
        self.totals[ut] = self.totals.get(ut, Decimal(0)) + line.amount
        days = self.daily.setdefault(ut, {})
        days[line.day] = days.get(line.day, Decimal(0)) + line.amount
        self.bodies[ut] = body
        self.categories[ut] = category

    def matching(self, pattern: Any) -> list[str]:
        """The group's usage types whose body the compiled ``pattern`` matches whole, in a fixed order."""
        return sorted(ut for ut, body in self.bodies.items() if pattern.fullmatch(body) is not None)

    def cost(self, usage_types: Iterable[str]) -> Decimal:
        return sum_amounts(self.totals[ut] for ut in usage_types)

    def days_with(self, usage_types: Iterable[str]) -> set[dt.date]:
        """Days on which any of ``usage_types`` has a non-zero amount."""
        return {d for ut in usage_types for d, a in self.daily.get(ut, {}).items() if a != 0}

    def per_day(self, usage_types: Iterable[str]) -> dict[dt.date, Decimal]:
        out: dict[dt.date, Decimal] = defaultdict(lambda: Decimal(0))
        for ut in usage_types:
            for d, a in self.daily.get(ut, {}).items():
                out[d] += a
        return dict(out)


@dataclass(frozen=True)
class _Ctx:
    window: Window
    options: AdviceOptions
    facts: Mapping[str, ClusterFacts]
    non_prod: frozenset[str]

    def facts_of(self, cluster: str) -> ClusterFacts:
        return self.facts.get(cluster, ClusterFacts()) if cluster else ClusterFacts()


def _q(value: Decimal) -> Decimal:
    return value.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def _usd(value: Decimal) -> str:
    """An amount for an action's text (two decimals; the evidence keeps the exact amounts)."""
    return f"${value:,.2f}"


def _amounts(group: _Group, usage_types: Iterable[str]) -> dict[str, str]:
    return {ut: amount_text(group.totals[ut]) for ut in usage_types}


def _make(rule: AdviceRule, group: _Group, ctx: _Ctx, *, subject: str, cost: Decimal, savings: Decimal,
          action: str, evidence: dict[str, Any]) -> Advisory:
    facts = ctx.facts_of(group.cluster)
    if not group.cluster:
        action = (f"Spend without a {ctx.options.cluster_tag} tag ({group.service}, {group.region}; one or more "
                  f"clusters): {action[0].lower()}{action[1:]}")
        evidence = {**evidence, "untagged": True}
    return Advisory(kind=rule.kind, rule=rule.name, cluster=group.cluster, team=facts.team, service=group.service,
                    account=facts.account, region=group.region, subject=subject, monthly_cost=cost, savings=savings,
                    action=action, evidence={"rule": rule.name, **evidence})


# ------------------------------------------------------------------------------------------------- the kinds


def _extended_support(rule: AdviceRule, group: _Group, ctx: _Ctx) -> list[Advisory]:
    subjects: dict[str, list[str]] = {}
    captured: dict[str, dict[str, str]] = {}
    years: dict[str, set[str]] = {}
    for ut in group.matching(rule.pattern):
        parts = rule.pattern.fullmatch(group.bodies[ut])
        assert parts is not None
        gd = {k: v for k, v in parts.groupdict().items() if v is not None}
        subject = f"{gd['engine']}{gd['version']}" if "engine" in gd else gd["instance_class"]
        subjects.setdefault(subject, []).append(ut)
        captured[subject] = gd
        if "years" in gd:
            years.setdefault(subject, set()).add(gd["years"])
    out = []
    for subject, types in sorted(subjects.items()):
        cost = group.cost(types)
        if cost <= 0:
            continue
        gd = captured[subject]
        when = " and ".join(sorted(years.get(subject, ()))) or "Extended Support"
        if "engine" in gd:
            evidence: dict[str, Any] = {"engine": gd["engine"], "version": gd["version"]}
            action = (f"Upgrade {gd['engine']} {gd['version']} to a major version in standard support: its RDS "
                      f"Extended Support charge ({when}) stops")
        else:
            engine = rule.text("engine", "the engine")
            evidence = {"engine": engine, "instance_class": gd["instance_class"],
                        "note": "the usage type names the node type, not the engine version"}
            action = (f"Upgrade {engine} on the {gd['instance_class']} nodes to a version in standard support: "
                      f"their Extended Support charge ({when}) stops")
        evidence.update(years=sorted(years.get(subject, ())), usage_types=_amounts(group, types))
        out.append(_make(rule, group, ctx, subject=subject, cost=cost, savings=cost, action=action,
                         evidence=evidence))
    return out


def _aurora_io(rule: AdviceRule, group: _Group, ctx: _Ctx) -> list[Advisory]:
    io_types = group.matching(rule.pattern)
    compute, storage = group.matching(rule.regex("compute")), group.matching(rule.regex("storage"))
    o_compute = group.matching(rule.regex("optimized_compute"))
    o_storage = group.matching(rule.regex("optimized_storage"))
    cu, su = rule.decimal("compute_uplift"), rule.decimal("storage_uplift")
    std_days = group.days_with(io_types)
    opt_days = group.days_with([*o_compute, *o_storage]) - std_days
    if opt_days and (not std_days or max(opt_days) > max(std_days)):
        return _aurora_to_standard(rule, group, ctx, io_types, o_compute, o_storage, std_days, opt_days)
    io, c, s = group.cost(io_types), group.cost(compute), group.cost(storage)
    if io <= 0:
        return []
    threshold = sum_amounts((cu * c, su * s))
    savings = sum_amounts((io, -threshold))
    if savings <= 0:
        return []
    action = (f"Switch the cluster to Aurora I/O-Optimized: its I/O ({_usd(io)}) costs more than "
              f"{cu} x compute + {su} x storage ({_usd(threshold)}), and I/O-Optimized bills no I/O")
    evidence = {"direction": "standard-to-io-optimized", "io": amount_text(io), "compute": amount_text(c),
                "storage": amount_text(s), "threshold": amount_text(threshold), "compute_uplift": str(cu),
                "storage_uplift": str(su), "usage_types": _amounts(group, [*io_types, *compute, *storage])}
    return [_make(rule, group, ctx, subject="standard-to-io-optimized", cost=sum_amounts((io, c, s)),
                  savings=savings, action=action, evidence=evidence)]


def _aurora_to_standard(rule: AdviceRule, group: _Group, ctx: _Ctx, io_types: list[str], o_compute: list[str],
                        o_storage: list[str], std_days: set[dt.date], opt_days: set[dt.date]) -> list[Advisory]:
    """The reverse: I/O-Optimized now, Standard earlier in the window (whose days show the cluster's I/O)."""
    if not std_days:
        return []  # I/O-Optimized all along: no I/O is billed, so the data cannot show the reverse
    cu, su = rule.decimal("compute_uplift"), rule.decimal("storage_uplift")
    co = sum_amounts(a for d, a in group.per_day(o_compute).items() if d in opt_days)
    so = sum_amounts(a for d, a in group.per_day(o_storage).items() if d in opt_days)
    io = group.cost(io_types)
    with localcontext(_DIVIDE):
        io_est = io * len(opt_days) / len(std_days)
        standard = co / (1 + cu) + so / (1 + su) + io_est
        savings = _q(co + so - standard)
    if savings <= 0:
        return []
    action = (f"Switch the cluster back to Aurora Standard storage: at the I/O rate of its {len(std_days)} Standard "
              f"day(s) its {len(opt_days)} I/O-Optimized day(s) would cost {_usd(standard)}, not "
              f"{_usd(sum_amounts((co, so)))}")
    evidence = {"direction": "io-optimized-to-standard", "optimized_compute": amount_text(co),
                "optimized_storage": amount_text(so), "standard_io": amount_text(io), "standard_days": len(std_days),
                "optimized_days": len(opt_days), "estimated_io": amount_text(_q(io_est)),
                "standard_equivalent": amount_text(_q(standard)), "compute_uplift": str(cu),
                "storage_uplift": str(su)}
    return [_make(rule, group, ctx, subject="io-optimized-to-standard", cost=sum_amounts((co, so)), savings=savings,
                  action=action, evidence=evidence)]


def _multi_az(rule: AdviceRule, group: _Group, ctx: _Ctx) -> list[Advisory]:
    env = ctx.facts_of(group.cluster).env
    if not env or env.casefold() not in ctx.non_prod:
        return []
    types = group.matching(rule.pattern)
    cost = group.cost(types)
    if cost <= 0:
        return []
    share = rule.decimal("share")
    tag = ctx.options.env_tag
    action = (f"Run this {env} cluster single-AZ ({tag}={env} is not production): the Multi-AZ standby doubles "
              "its instance hours, storage and IOPS")
    evidence = {"env_tag": tag, "env": env, "non_prod": sorted(ctx.non_prod), "share": str(share),
                "usage_types": _amounts(group, types)}
    return [_make(rule, group, ctx, subject="multi-az", cost=cost, savings=share * cost, action=action,
                  evidence=evidence)]


def _instance_class(rule: AdviceRule, group: _Group, ctx: _Ctx) -> list[Advisory]:
    by_class: dict[str, list[str]] = {}
    for ut in group.matching(rule.pattern):
        parts = rule.pattern.fullmatch(group.bodies[ut])
        assert parts is not None
        by_class.setdefault(parts.group("instance_class"), []).append(ut)
    out = []
    for klass, types in sorted(by_class.items()):
        family, size = klass.rsplit(".", 1)
        mapping = rule.classes.get(family)
        if mapping is None:
            continue
        cost = group.cost(types)
        if cost <= 0:
            continue
        target = f"{mapping.to}.{size}"
        if rule.kind == "graviton":
            action = f"Move {klass} to {target} (Graviton): the same size lists at {mapping.ratio} x the price"
        else:
            action = (f"Move {klass} (previous generation) to {target}: the same size lists at {mapping.ratio} x "
                      "the price")
        evidence: dict[str, Any] = {"instance_class": klass, "target_class": target, "ratio": str(mapping.ratio),
                                    "ratio_source": mapping.source, "usage_types": _amounts(group, types)}
        if caveat := rule.text("caveat"):
            evidence["caveat"] = caveat
        out.append(_make(rule, group, ctx, subject=klass, cost=cost, savings=cost * (1 - mapping.ratio),
                         action=action, evidence=evidence))
    return out


def _dynamodb(rule: AdviceRule, group: _Group, ctx: _Ctx) -> list[Advisory]:
    days = ctx.window.days
    if days < rule.integer("min_days"):
        return []
    tu = rule.decimal("target_utilization")
    on_demand: list[Decimal] = []
    provisioned: list[Decimal] = []
    evidence: dict[str, Any] = {"days": days, "target_utilization": str(tu)}
    types = group.matching(rule.pattern)
    for direction in ("read", "write"):
        mine = [ut for ut in types if rule.regex(direction).fullmatch(group.bodies[ut])]
        daily = group.per_day(mine)
        od = sum_amounts(daily.values())
        if od <= 0:
            continue
        peak_day, peak = max(daily.items(), key=lambda kv: (kv[1], kv[0]))
        with localcontext(_DIVIDE):
            prov = _q(peak * days * rule.decimal(f"{direction}_capacity_price") * _HOURS_PER_DAY
                      / (rule.decimal(f"{direction}_price") * _SECONDS_PER_DAY * tu))
            mean = _q(od / days)
        on_demand.append(od)
        provisioned.append(prov)
        evidence[direction] = {"on_demand": amount_text(od), "busiest_day": peak_day.isoformat(),
                               "busiest_day_cost": amount_text(peak), "mean_day_cost": amount_text(mean),
                               "provisioned_estimate": amount_text(prov)}
    if not on_demand:
        return []
    od_total, prov_total = sum_amounts(on_demand), sum_amounts(provisioned)
    savings = sum_amounts((od_total, -prov_total))
    if savings <= 0:
        return []
    evidence["assumptions"] = [
        f"provisioned capacity sized for the busiest day's average rate at {tu} target utilisation, all window",
        "prices: the rule's us-east-1 list prices; their ratio is assumed in every region",
        "peaks inside a day are not in DAILY data; the Standard table class only",
    ]
    action = (f"Switch the table to provisioned capacity (with auto scaling): its request units are steady "
              f"enough that capacity for its busiest day costs {_usd(prov_total)}, not {_usd(od_total)} on demand")
    return [_make(rule, group, ctx, subject="on-demand-to-provisioned", cost=od_total, savings=savings,
                  action=action, evidence=evidence)]


def _idle(rule: AdviceRule, group: _Group, ctx: _Ctx) -> list[Advisory]:
    proof = group.matching(rule.pattern)
    if not proof:
        return []
    active = [ut for ut, cat in group.categories.items() if cat in ("io", "data_transfer") and group.totals[ut] != 0]
    if active:
        return []
    compute = sorted(ut for ut, cat in group.categories.items() if cat == "compute")
    daily = group.per_day(compute)
    seen = group.days_with(group.totals)
    if len(seen) < rule.integer("min_days") or not seen <= {d for d, a in daily.items() if a > 0}:
        return []
    smallest, largest = min(daily[d] for d in seen), max(daily[d] for d in seen)
    ratio = rule.decimal("steady_min_ratio")
    if smallest < ratio * largest:
        return []
    cost = group.cost(compute)
    total = sum_amounts(group.totals.values())
    action = (f"Stop or delete the cluster (after a final snapshot): steady compute and no I/O or data transfer "
              f"in {len(seen)} day(s)")
    evidence = {"days": len(seen), "compute": amount_text(cost), "smallest_day": amount_text(smallest),
                "largest_day": amount_text(largest), "steady_min_ratio": str(ratio), "io": "0", "data_transfer": "0",
                "storage_usage_types": proof, "supersedes": list(rule.kinds("supersedes"))}
    return [_make(rule, group, ctx, subject="idle", cost=total, savings=cost, action=action, evidence=evidence)]


_KINDS: Final[Mapping[str, Callable[[AdviceRule, _Group, _Ctx], list[Advisory]]]] = {
    "extended-support": _extended_support,
    "aurora-io-optimized": _aurora_io,
    "multi-az-non-prod": _multi_az,
    "graviton": _instance_class,
    "previous-generation": _instance_class,
    "dynamodb-capacity-mode": _dynamodb,
    "idle": _idle,
}


# ---------------------------------------------------------------------------------------------------- evaluate


def _groups(lines: Iterable[UsageLine]) -> list[_Group]:
    groups: dict[tuple[str, str, str], _Group] = {}
    seen: dict[tuple[str, str], tuple[str, str, str]] = {}  # (service, usage type) -> region, body, category
    for line in lines:
        known = seen.get((line.service, line.usage_type))
        if known is None:
            c = classify(line.service, line.usage_type)
            known = seen[(line.service, line.usage_type)] = (
                c.region or c.region_prefix or "", split_usage_type(line.usage_type).body, c.category)
        region, body, category = known
        key = (line.cluster, line.service, region)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(line.cluster, line.service, region, classify(line.service, "").family)
        group.add(line, body, category)
    return [groups[k] for k in sorted(groups)]


def evaluate(lines: Iterable[UsageLine], facts: Mapping[str, ClusterFacts], window: Window, *,
             options: AdviceOptions | None = None, rules: AdviceRules | None = None) -> list[Advisory]:
    """Every advisory the rules give for the month's ``lines``, largest savings first (see the module doc)."""
    options = options or AdviceOptions()
    rules = rules or default_advice_rules()
    ctx = _Ctx(window, options, facts, frozenset(v.casefold() for v in options.non_prod))
    out: list[Advisory] = []
    for group in _groups(lines):
        found: list[Advisory] = []
        superseded: set[str] = set()
        for rule in rules.rules:
            if group.family not in rule.services or (not group.cluster and not rule.untagged):
                continue
            advisories = _KINDS[rule.kind](rule, group, ctx)
            if advisories and rule.kind == "idle":
                superseded.update(rule.kinds("supersedes"))
            found.extend(advisories)
        out.extend(a for a in found if a.kind not in superseded)
    kept = [a for a in out if a.savings > 0 and a.savings >= options.min_savings]
    return sorted(kept, key=Advisory.sort_key)
