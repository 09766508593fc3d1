"""``dbcost quota check``: the month's attribution against the quota policy, gated and notified.

Both read the month's attribution from the store (``dbcost attribute`` fetched it); neither spends a
request unless asked to cross-check the run-rate forecast with Cost Explorer's GetCostForecast.

Quota notifications are sent only when a pool's status changes: the last *notified* status of every
pool is kept in the store (``quota_state``), so a cron job running every hour does not repeat itself.
The state is written only after the webhook (or status topic) accepted the message; if delivery fails,
the next run tries again.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from dbcost.attribution.model import Attribution
from dbcost.calendar import add_months
from dbcost.client import open_client
from dbcost.errors import DbcostError, UsageError
from dbcost.jobs.attribute import AttributeSpec, attribution_datasets, attribution_from_store, month_range
from dbcost.notify import post_webhook, slack_message
from dbcost.quota import Policy, QuotaReport, StatusChange, evaluate, exit_code, status_changes
from dbcost.sinks import StatusPublisher, open_sink
from dbcost.store import Store

__all__ = ["QuotaCheckResult", "QuotaCheckSpec", "attribution_for", "run_quota_check"]

log = logging.getLogger("dbcost.checks")

_FORECAST_METRIC = {
    "UnblendedCost": "UNBLENDED_COST",
    "BlendedCost": "BLENDED_COST",
    "AmortizedCost": "AMORTIZED_COST",
    "NetUnblendedCost": "NET_UNBLENDED_COST",
    "NetAmortizedCost": "NET_AMORTIZED_COST",
}


@dataclass
class QuotaCheckSpec:
    attribute: AttributeSpec
    policy: Policy
    webhook: str | None = None
    sinks: list[str] = field(default_factory=list)
    aws_forecast: bool = False
    fail_on: Literal["warn", "breach"] | None = None


@dataclass
class QuotaCheckResult:
    report: QuotaReport
    changes: list[StatusChange]
    notified: list[str]
    notify_error: str | None
    exit_code: int
    data_age: dt.timedelta | None


def attribution_for(spec: AttributeSpec) -> Attribution:
    """The month's attribution from the store (UsageError if ``dbcost attribute`` never fetched it)."""
    return _load_attribution(spec)[0]


def _load_attribution(spec: AttributeSpec) -> tuple[Attribution, dt.timedelta | None]:
    if not spec.db.exists():
        raise UsageError(f"--db {spec.db}: no such store; run `dbcost attribute --month {spec.month}` first")
    with Store(spec.settings.store, read_only=True) as store:
        attribution = attribution_from_store(spec, store)
        if attribution is None:
            raise UsageError(f"--month {spec.month}: the store has no attribution data for this month; run "
                             f"`dbcost attribute --month {spec.month}` first")
        start, end = month_range(spec.month, spec.today)
        ds = attribution_datasets(attribution.services, start, end, metric=spec.metric, cluster_tag=spec.cluster_tag,
                                  team_tag=spec.team_tag, with_accounts=False)
        fresh = store.freshness([q.fingerprint for q in ds.all()])
    newest = min((f[2] for f in fresh if f[2] is not None), default=None)
    age = dt.datetime.now(dt.UTC).replace(tzinfo=None) - newest if newest is not None else None
    return attribution, age


async def _aws_forecasts(spec: QuotaCheckSpec, attribution: Attribution, report: QuotaReport) -> dict[str, Decimal]:
    """Full-month forecasts from GetCostForecast: month-to-date actual + Cost Explorer's rest of the month."""
    a = spec.attribute
    start, _ = month_range(a.month, a.today)
    month_end = add_months(start, 1)
    if a.today >= month_end:
        return {}
    metric = _FORECAST_METRIC.get(a.metric)
    if metric is None:
        raise UsageError(f"--aws-forecast: GetCostForecast has no forecast for {a.metric}")
    out: dict[str, Decimal] = {}
    for target in a.targets:
        async with open_client(a.settings.fetch_settings(target)) as ce:
            for pool in spec.policy.pools:
                flt = {"And": [{"Dimensions": {"Key": "SERVICE", "Values": attribution.services}},
                               {"Tags": {"Key": a.team_tag, "Values": [pool.team]}}]}
                resp = await ce.cost_forecast(a.today.isoformat(), month_end.isoformat(), metric=metric, filter=flt)
                total = (resp.get("Total") or {}).get("Amount")
                if total is not None:
                    out[pool.name] = out.get(pool.name, Decimal(0)) + Decimal(str(total))
    for pool in spec.policy.pools:
        ev = report.pool(pool.name)
        if pool.name in out and ev is not None:
            out[pool.name] += ev.actual
    return out


async def run_quota_check(spec: QuotaCheckSpec) -> QuotaCheckResult:
    a = spec.attribute
    attribution, age = _load_attribution(a)
    report = evaluate(spec.policy, attribution, today=a.today)
    if spec.aws_forecast:
        report = evaluate(spec.policy, attribution, today=a.today,
                          aws_forecasts=await _aws_forecasts(spec, attribution, report))
    with Store(a.settings.store, read_only=True) as store:
        previous = store.quota_states(a.month)
    changes = status_changes(report, previous)
    notified: list[str] = []
    error: str | None = None
    if changes and (spec.webhook or spec.sinks):
        try:
            if spec.webhook:
                await post_webhook(spec.webhook, slack_message(report, changes))
            for url in spec.sinks:
                async with open_sink(url) as sink:
                    if not isinstance(sink, StatusPublisher):
                        continue  # opened all the same: a sink that cannot work fails the check, as it did
                    for ch in changes:
                        await sink.publish_status({"pool": ch.pool, "month": a.month, "old": ch.old, "new": ch.new,
                                                   **ch.evaluation.to_json()})
        except DbcostError as exc:
            error = str(exc)
        else:
            with Store(a.db) as store:
                store.record_quota_states(a.month, {ch.pool: (ch.new, ch.evaluation.to_json()) for ch in changes})
            notified = [ch.pool for ch in changes]
    code = exit_code(report, spec.fail_on)
    if error is not None and code == 0:
        code = 1
    return QuotaCheckResult(report, changes, notified, error, code, age)
