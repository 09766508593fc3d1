"""``dbcost report``: the month's attribution, its history, quarantine, freshness, quota and advice, rendered.

The advice is computed from the store (``dbcost advise``'s datasets, with its default options and rules; nothing
is fetched) with the first-seen times ``dbcost advise`` recorded; ``None`` when it never ran for the month."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from dbcost._files import write_text_atomic
from dbcost.attribution.model import Attribution
from dbcost.calendar import add_months
from dbcost.jobs.advise import AdviseSpec, advice_from_store
from dbcost.jobs.attribute import (
    AttributeSpec,
    attributed_months,
    attribution_datasets,
    attribution_from_store,
    month_range,
)
from dbcost.jobs.quota import _load_attribution, attribution_for
from dbcost.quota import Policy, QuotaReport, evaluate
from dbcost.report import Freshness, ReportData
from dbcost.store import Store

__all__ = ["build_report", "gather_report", "write_report"]


def build_report(spec: AttributeSpec, *, history_months: int | None = None, policy: Policy | None = None) -> ReportData:
    """What ``dbcost report`` shows: :func:`gather_report`, with the month's quota evaluated when a policy is
    given (the store only; nothing is sent)."""
    quota = evaluate(policy, attribution_for(spec), today=spec.today) if policy is not None else None
    return gather_report(spec, history_months=history_months, quota=quota)


def gather_report(spec: AttributeSpec, *, history_months: int | None = None,
                  quota: QuotaReport | None = None) -> ReportData:
    """Everything ``dbcost report`` shows for ``spec.month``, from the store. The trend holds every month
    ``dbcost attribute`` fetched up to ``spec.month`` (the last ``history_months`` of them when given)."""
    attribution, _ = _load_attribution(spec)
    start, end = month_range(spec.month, spec.today)
    history: list[Attribution] = []
    previous: Attribution | None = None
    before = add_months(start, -1).strftime("%Y-%m")
    with Store(spec.settings.store, read_only=True) as store:
        months = [m for m in attributed_months(spec, store) if m < spec.month]
        if history_months is not None:
            months = [m for m in months if m >= add_months(start, -(history_months - 1)).strftime("%Y-%m")]
        for month in months:
            past = attribution_from_store(spec, store, month)
            if past is not None:
                history.append(past)
                if month == before:
                    previous = past
        history.append(attribution)
        ds = attribution_datasets(attribution.services, start, end, metric=spec.metric, cluster_tag=spec.cluster_tag,
                                  team_tag=spec.team_tag, with_accounts=False)
        fingerprints = [q.fingerprint for q in ds.all()]
        reasons = store.quarantine_summary(fingerprints, start.isoformat(), end.isoformat())
        fresh = [Freshness(t, label, ts, we) for t, label, ts, we in store.freshness(fingerprints)]
        advice = advice_from_store(AdviseSpec(attribute=spec), store)
    return ReportData(
        month=spec.month, current=attribution, previous=previous, history=history,
        quarantined_total=sum(n for _, n in reasons), quarantined_by_reason=reasons, freshness=fresh,
        generated_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
        quota=quota, advice=advice,
    )


def write_report(data: ReportData, fmt: str, output: Path | None) -> str | None:
    """Render ``data`` as json/html into ``output`` (or return the text for stdout)."""
    import orjson

    from dbcost.report import render_html, render_json

    text = (orjson.dumps(render_json(data), option=orjson.OPT_INDENT_2).decode() + "\n" if fmt == "json"
            else render_html(data))
    if output is None:
        return text
    write_text_atomic(output, text)
    return None
