"""Advice (pure): right-sizing advisories from a month's database spend, as Cost Explorer bills it.

AWS's own database advice (Compute Optimizer, Cost Optimization Hub) needs other services; this package computes
advice from the data ``dbcost attribute`` already holds: per database service, DAILY cost per USAGE_TYPE and
cluster tag, plus each cluster's team, env tag and linked account. Its parts:

* :mod:`~dbcost.advice.rules` -- the rules file (``rules.toml`` beside it: kind, usage-type pattern, formula,
  parameters and source of every rule), read and validated;
* :mod:`~dbcost.advice.model` -- the rows, the facts per cluster, :class:`Advisory` and :class:`AdviceSet` (the
  ``dbcost advise`` JSON shape);
* :mod:`~dbcost.advice.evaluate` -- the rules applied to the rows: :func:`evaluate`;
* :mod:`~dbcost.advice.triggers` -- new and resolved advisories against the stored state, their events (stable
  key, growing version) and the webhook message.

Nothing here does I/O but reading a rules file; nothing reads a clock. Money is ``Decimal`` throughout.
"""

from __future__ import annotations

from dbcost.advice.evaluate import DEFAULT_NON_PROD, QUANTUM, AdviceOptions, evaluate
from dbcost.advice.model import (
    NO_TEAM,
    AdviceSet,
    Advisory,
    ClusterFacts,
    UsageLine,
    Window,
    advisory_id,
    amount_text,
    timestamp_text,
)
from dbcost.advice.rules import KINDS, AdviceRule, AdviceRules, ClassMapping, Kind, default_advice_rules, load_advice_rules
from dbcost.advice.triggers import AdvisoryEvent, Changes, Known, advice_message, compare, next_version

__all__ = [
    "DEFAULT_NON_PROD",
    "KINDS",
    "NO_TEAM",
    "QUANTUM",
    "AdviceOptions",
    "AdviceRule",
    "AdviceRules",
    "AdviceSet",
    "Advisory",
    "AdvisoryEvent",
    "Changes",
    "ClassMapping",
    "ClusterFacts",
    "Kind",
    "Known",
    "UsageLine",
    "Window",
    "advice_message",
    "advisory_id",
    "amount_text",
    "compare",
    "default_advice_rules",
    "evaluate",
    "load_advice_rules",
    "next_version",
    "timestamp_text",
]
