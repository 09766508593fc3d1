"""``dbcost advise``: right-sizing advisories from a month's database spend, remembered, and sent when they change.

Data. Advice reads what ``dbcost attribute`` fetches (per database service, DAILY USAGE_TYPE x cluster tag; the
cluster tag x team tag owners), reusing it when the store holds it fresh (:func:`~dbcost.jobs.attribute.run_attribute`
decides, with its own freshness rule), and two MONTHLY datasets of its own, fetched through the same pipeline
(governor, retries, checkpoints, store) unless fresh by the same rule:

* cluster tag x env tag, Filter SERVICE in the database services: each cluster's env tag value;
* cluster tag x LINKED_ACCOUNT, same filter: each cluster's account.

Each is the value carrying the cluster's most spend in the month (ties: alphabetical). The pure evaluation is
:mod:`dbcost.advice`; the rules come from its packaged ``rules.toml`` or ``--rules FILE``.

Triggers. Every advisory has a stable identity (:func:`~dbcost.advice.advisory_id`: the metric and cluster tag,
kind, account, region, service, cluster, subject). The store keeps one row per identity (schema v3,
``advisories``: first seen, resolved at, version). A run compares its advisories with those rows
(:func:`~dbcost.advice.compare`): new and resolved ones are *events*. With ``--webhook`` and/or ``--sink``, the
events are delivered first (the webhook gets one Slack-compatible message per run that has events, with the
quota check's delivery rules: :func:`dbcost.notify.post_webhook`, retried on 5xx/429/timeouts; a Kafka sink
gets one message per event on ``<topic>.advisories``, key = the identity, value with a growing ``version`` and
``deleted: true`` for a resolved one) and the state is written only once all of them accepted: a failed
delivery writes nothing, exits 1 (unless ``--fail-on-new`` already says 6) and the next run sends again. A run
with no event sends nothing.

Exit codes: 6 with ``--fail-on-new`` when a new advisory appeared (:data:`EXIT_NEW`), else 1 when the delivery
failed or a fetch did not finish, else 0.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Final, cast
from urllib.parse import urlsplit

from dbcost.advice import (
    DEFAULT_NON_PROD,
    AdviceOptions,
    AdviceRules,
    AdviceSet,
    AdvisoryEvent,
    Changes,
    ClusterFacts,
    Known,
    UsageLine,
    Window,
    advice_message,
    compare,
    default_advice_rules,
    evaluate,
)
from dbcost.attribution.model import Attribution
from dbcost.errors import DbcostError, UsageError
from dbcost.jobs.attribute import (
    AttributeSpec,
    _fresh,
    attribution_datasets,
    attribution_from_store,
    month_range,
    run_attribute,
)
from dbcost.models import CostQuery
from dbcost.notify import post_webhook, safe_url
from dbcost.pipeline import RunOutcome, RunSpec, run_pipeline
from dbcost.sinks import AdvisoryPublisher, open_sink, parse_sink_url
from dbcost.sinks.registry import sink_class
from dbcost.store import RunStatus, Store
from dbcost.store.state import AdvisoryRow

__all__ = [
    "EXIT_NEW",
    "AdviseDatasets",
    "AdviseResult",
    "AdviseSpec",
    "advice_from_store",
    "advise_datasets",
    "check_advise_spec",
    "parse_min_savings",
    "parse_non_prod",
    "run_advise",
]

log = logging.getLogger("dbcost.advise")

#: ``--fail-on-new``: a new advisory appeared.
EXIT_NEW: Final = 6
_LABEL = "advice"
#: what a tag value may hold (AWS: letters, digits, spaces and + - = . _ : / @)
_TAG_VALUE_RE: Final = re.compile(r"[\w .:/=+@-]+")


def parse_non_prod(text: str) -> tuple[str, ...]:
    """``--non-prod dev,test,staging,qa`` -> the values; a UsageError for an empty list, an empty or repeated item
    or a character a tag value cannot hold."""
    items = [v.strip() for v in text.split(",")]
    if not text.strip() or any(not v for v in items):
        raise UsageError(f"--non-prod: a comma-separated list of env tag values without empty items, got {text!r}")
    for v in items:
        if not _TAG_VALUE_RE.fullmatch(v):
            raise UsageError(f"--non-prod: {v!r} is not a tag value (letters, digits, spaces and + - = . _ : / @)")
    folded = [v.casefold() for v in items]
    if len(set(folded)) != len(folded):
        raise UsageError(f"--non-prod: {text!r} lists a value twice (values are compared case-insensitively)")
    return tuple(items)


def parse_min_savings(text: str) -> Decimal:
    """``--min-savings-usd F`` as an exact Decimal >= 0 (a UsageError otherwise)."""
    try:
        value = Decimal(text.strip())
    except ArithmeticError:
        raise UsageError(f"--min-savings-usd: must be a number of USD >= 0, got {text!r}") from None
    if not value.is_finite() or value < 0:
        raise UsageError(f"--min-savings-usd: must be a number of USD >= 0, got {text!r}")
    return value


@dataclass(frozen=True)
class AdviseDatasets:
    """The two MONTHLY datasets advice fetches besides the attribution's."""

    env: CostQuery
    accounts: CostQuery

    def all(self) -> list[CostQuery]:
        return [self.env, self.accounts]

    def labels(self, metric: str) -> dict[str, str]:
        return {self.env.fingerprint: f"{_LABEL} env {metric}", self.accounts.fingerprint: f"{_LABEL} accounts {metric}"}


def advise_datasets(services: list[str], start: dt.date, end: dt.date, *, metric: str, cluster_tag: str,
                    env_tag: str) -> AdviseDatasets:
    flt = {"Dimensions": {"Key": "SERVICE", "Values": sorted(services)}}

    def monthly(second: str) -> CostQuery:
        return CostQuery.build(start=start, end=end, granularity="MONTHLY", metrics=[metric],
                               group_by=[f"TAG:{cluster_tag}", second], filter=flt)

    return AdviseDatasets(monthly(f"TAG:{env_tag}"), monthly("LINKED_ACCOUNT"))


@dataclass
class AdviseSpec:
    """One month's advice: the attribution it reads (:class:`AttributeSpec`: month, settings, metric, tags), the
    env tag and its non-production values, the rules, the savings floor, and where changes go."""

    attribute: AttributeSpec
    env_tag: str = "env"
    non_prod: tuple[str, ...] = DEFAULT_NON_PROD
    rules: AdviceRules | None = None
    min_savings: Decimal = Decimal(0)
    fail_on_new: bool = False
    sinks: list[str] = field(default_factory=list)
    webhook: str | None = None
    #: the clock first_seen, resolved_at and versions read (UTC); tests pass a fixed one
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))

    @property
    def scope(self) -> str:
        return f"{self.attribute.metric}|{self.attribute.cluster_tag}"

    @property
    def options(self) -> AdviceOptions:
        return AdviceOptions(cluster_tag=self.attribute.cluster_tag, env_tag=self.env_tag, non_prod=self.non_prod,
                             min_savings=self.min_savings)


@dataclass
class AdviseResult:
    advice: AdviceSet
    changes: Changes
    fetched: list[RunOutcome]
    notified: int = 0
    notify_error: str | None = None
    exit_code: int = 0
    failed: RunOutcome | None = None  # the fetch that did not finish (no advice then)

    @property
    def new(self) -> list[AdvisoryEvent]:
        return self.changes.new

    @property
    def resolved(self) -> list[AdvisoryEvent]:
        return self.changes.resolved


def check_advise_spec(spec: AdviseSpec) -> None:
    """Every input problem a UsageError, before anything is sent or written: the month, the env tag, the non-prod
    values, the webhook URL, each ``--sink`` (its URL, and that it can carry advisory events)."""
    a = spec.attribute
    month_range(a.month, a.today)
    if not spec.env_tag.strip():
        raise UsageError("--env-tag: must not be empty")
    if spec.env_tag == a.cluster_tag:
        raise UsageError(f"--env-tag: {spec.env_tag!r} is also the cluster tag")
    parse_non_prod(",".join(spec.non_prod))
    if spec.min_savings < 0:
        raise UsageError("--min-savings-usd: must be >= 0")
    if spec.webhook is not None:
        try:
            parts = urlsplit(spec.webhook)
            _ = parts.port
        except ValueError:
            raise UsageError("--webhook: not a valid URL") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--webhook {safe_url(spec.webhook)}: must be an http:// or https:// URL with a host")
    for url in spec.sinks:
        options = parse_sink_url(url)
        if not issubclass(cast(type, sink_class(url)), AdvisoryPublisher):
            raise UsageError(f"--sink {options.display}: this sink cannot carry advisory events (use "
                             "kafka://HOST:PORT/TOPIC: events go to <topic>.advisories)")


# ----------------------------------------------------------------------------------------------------- reading


def _best(values: dict[str, Decimal]) -> str:
    """The non-empty value carrying the most spend (ties: alphabetical), or ""."""
    ranked = sorted((v for v in values.items() if v[0]), key=lambda kv: (-kv[1], kv[0]))
    return ranked[0][0] if ranked else ""


def _by_cluster(store: Store, query: CostQuery, metric: str, s: str, e: str, names: list[str]) -> dict[str, str]:
    spend: dict[str, dict[str, Decimal]] = {}
    for row in store.metric_amounts(query.fingerprint, metric, s, e, names):
        if row.key1:
            values = spend.setdefault(row.key1, {})
            values[row.key2 or ""] = values.get(row.key2 or "", Decimal(0)) + row.amount
    return {c: _best(v) for c, v in spend.items()}


def _teams(attribution: Attribution) -> dict[str, str]:
    return {c.cluster: t.team for t in attribution.teams for c in t.clusters}


def _advice(spec: AdviseSpec, store: Store, attribution: Attribution, ds: AdviseDatasets, window: Window) -> AdviceSet:
    a = spec.attribute
    s, e = window.start.isoformat(), window.end.isoformat()
    names = [t.name for t in a.targets]
    usage = attribution_datasets(attribution.services, window.start, window.end, metric=a.metric,
                                 cluster_tag=a.cluster_tag, team_tag=a.team_tag, with_accounts=False).usage
    lines = [UsageLine(dt.date.fromisoformat(row.period_start[:10]), service, row.key1 or "", row.key2 or "", row.amount)
             for service, q in usage.items() for row in store.metric_amounts(q.fingerprint, a.metric, s, e, names)]
    teams, envs = _teams(attribution), _by_cluster(store, ds.env, a.metric, s, e, names)
    accounts = _by_cluster(store, ds.accounts, a.metric, s, e, names)
    facts = {c: ClusterFacts(teams.get(c, ""), envs.get(c, ""), accounts.get(c, ""))
             for c in {*teams, *envs, *accounts}}
    found = evaluate(lines, facts, window, options=spec.options, rules=spec.rules or default_advice_rules())
    return AdviceSet(window.month, spec.scope, tuple(found))


def _known(store: Store, scope: str) -> dict[str, Known]:
    return {r.id: Known(r.id, r.month, r.first_seen, r.resolved_at, r.version, r.payload)
            for r in store.advisory_states(scope)}


def advice_from_store(spec: AdviseSpec, store: Store, month: str | None = None) -> AdviceSet | None:
    """The month's advice from what the store holds (nothing is fetched), with the first-seen times it
    remembers; None when ``dbcost advise`` (or attribute) never fetched that month with these tags and metric."""
    a = spec.attribute
    month = month or a.month
    start, end = month_range(month, a.today)
    attribution = attribution_from_store(a, store, month)
    if attribution is None:
        return None
    ds = advise_datasets(attribution.services, start, end, metric=a.metric, cluster_tag=a.cluster_tag,
                         env_tag=spec.env_tag)
    if not all(store.has_done_units(q.fingerprint, t.name, start, end) for q in ds.all() for t in a.targets):
        return None
    advice = _advice(spec, store, attribution, ds, Window(month, start, end))
    known = _known(store, spec.scope)
    return replace(advice, first_seen={k: v.first_seen for k, v in known.items() if v.resolved_at is None})


# ------------------------------------------------------------------------------------------------------- the run


def _empty(spec: AdviseSpec) -> AdviceSet:
    return AdviceSet(spec.attribute.month, spec.scope, ())


async def _deliver(spec: AdviseSpec, events: list[AdvisoryEvent], advice: AdviceSet) -> None:
    if spec.webhook:
        await post_webhook(spec.webhook, advice_message(advice.month, events, advice))
    for url in spec.sinks:
        async with open_sink(url) as sink:
            assert isinstance(sink, AdvisoryPublisher)  # check_advise_spec refused the others
            await sink.publish_advisories([(ev.key, ev.to_message()) for ev in events])


def _rows(changes: Changes, month: str) -> list[AdvisoryRow]:
    rows = [AdvisoryRow(key, month, dict(payload), changes.first_seen[key], None, version)
            for key, (payload, version) in changes.open_rows.items()]
    rows += [AdvisoryRow(ev.key, ev.month, dict(ev.advisory), ev.first_seen, ev.resolved_at, ev.version)
             for ev in changes.resolved]
    return rows


def _fresh_all(spec: AdviseSpec, queries: Iterable[CostQuery]) -> bool:
    a = spec.attribute
    if not a.db.exists():
        return False
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with Store(a.settings.store, read_only=True) as store:
        return all(_fresh(store, q.fingerprint, [t.name for t in a.targets], q.start, q.end, now, a.max_age)
                   for q in queries)


async def run_advise(spec: AdviseSpec) -> AdviseResult:
    """Fetch what is missing or stale, evaluate the rules, compare with the stored state, deliver the changes,
    record them (see the module doc)."""
    check_advise_spec(spec)
    a = spec.attribute
    start, end = month_range(a.month, a.today)
    fetched: list[RunOutcome] = []
    attributed = await run_attribute(a)
    if attributed.fetched is not None:
        fetched.append(attributed.fetched)
        if attributed.fetched.status != RunStatus.DONE:
            return AdviseResult(_empty(spec), Changes(), fetched, exit_code=1, failed=attributed.fetched)
    ds = advise_datasets(attributed.services, start, end, metric=a.metric, cluster_tag=a.cluster_tag,
                         env_tag=spec.env_tag)
    if a.refresh or not _fresh_all(spec, ds.all()):
        if a.offline:
            raise UsageError(f"--offline: the store has no fresh advice data for {a.month}; run without --offline")
        run = RunSpec(query=ds.env, extra_queries=[ds.accounts], settings=a.settings.replace(sinks=()),
                      command="advise", today=a.today, max_requests=a.max_requests, labels=ds.labels(a.metric))
        outcome = await run_pipeline(run)
        fetched.append(outcome)
        if outcome.status != RunStatus.DONE:
            return AdviseResult(_empty(spec), Changes(), fetched, exit_code=1, failed=outcome)
    with Store(a.settings.store, read_only=True) as store:
        advice = _advice(spec, store, attributed.attribution, ds, Window(a.month, start, end))
        known = _known(store, spec.scope)
    now = spec.now()
    changes = compare(advice, known, now)
    advice = replace(advice, first_seen=changes.first_seen)
    result = AdviseResult(advice, changes, fetched)
    if changes.events and (spec.webhook or spec.sinks):
        try:
            await _deliver(spec, changes.events, advice)
        except DbcostError as exc:
            result.notify_error = str(exc)
        else:
            result.notified = len(changes.events)
    if result.notify_error is None:
        with Store(a.settings.store) as store:
            store.record_advisories(spec.scope, _rows(changes, advice.month))
    if spec.fail_on_new and changes.new:
        result.exit_code = EXIT_NEW
    elif result.notify_error is not None:
        result.exit_code = 1
    log.info("advise %s: %d advisories, %d new, %d resolved", a.month, len(advice.advisories), len(changes.new),
             len(changes.resolved))
    return result
