"""Triggers: new and resolved advisories against the stored state, growing versions per identity, events a
"highest version per key, drop deleted" consumer collapses to the open advisories, and the webhook message."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from dbcost.advice import AdviceSet, Advisory, Known, advice_message, advisory_id, compare, next_version

SCOPE = "UnblendedCost|db-cluster"
T0 = dt.datetime(2026, 11, 1, 6, 0)
T1 = dt.datetime(2026, 11, 2, 6, 0)


def adv(cluster: str, savings: str = "10", kind: str = "graviton", team: str = "payments") -> Advisory:
    return Advisory(kind=kind, rule=kind, cluster=cluster, team=team, service="Amazon Relational Database Service",
                    account="111122223333", region="us-east-1", subject="db.m5.large", monthly_cost=Decimal(100),
                    savings=Decimal(savings), action=f"Move {cluster}", evidence={"ratio": "0.89"})


def aset(*advisories: Advisory, month: str = "2026-11") -> AdviceSet:
    return AdviceSet(month, SCOPE, advisories)


def remember(advice: AdviceSet, now: dt.datetime) -> dict[str, Known]:
    """What the store holds after recording ``advice`` as the first run."""
    changes = compare(advice, {}, now)
    return {k: Known(k, advice.month, changes.first_seen[k], None, v, payload)
            for k, (payload, v) in changes.open_rows.items()}


def collapse(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for m in messages:
        if m["id"] not in best or m["version"] > best[m["id"]]["version"]:
            best[m["id"]] = m
    return {k: m for k, m in best.items() if not m.get("deleted")}


def test_the_first_run_makes_every_advisory_new_and_a_rerun_changes_nothing() -> None:
    """No state: every advisory is new, first seen now, with a version; the same advisories again: no event,
    first seen kept, amounts refreshed in the rows."""
    first = aset(adv("db-1"), adv("db-2"))
    changes = compare(first, {}, T0)
    assert [e.event for e in changes.events] == ["new", "new"]
    assert set(changes.first_seen.values()) == {T0}
    known = remember(first, T0)
    again = compare(aset(adv("db-1", "12"), adv("db-2")), known, T1)
    assert again.events == []
    assert set(again.first_seen.values()) == {T0}
    key = advisory_id(SCOPE, adv("db-1"))
    payload, version = again.open_rows[key]
    assert payload["estimated_monthly_savings"] == "12" and version == known[key].version


def test_a_vanished_advisory_is_resolved_and_a_returning_one_is_new_again() -> None:
    """db-2 gone: one resolved event (deleted, resolved_at now); back later: new, first seen then, higher version."""
    known = remember(aset(adv("db-1"), adv("db-2")), T0)
    changes = compare(aset(adv("db-1")), known, T1)
    (ev,) = changes.events
    key = advisory_id(SCOPE, adv("db-2"))
    assert (ev.event, ev.key, ev.resolved_at, ev.first_seen) == ("resolved", key, T1, T0)
    msg = ev.to_message()
    assert msg["deleted"] is True and msg["status"] == "resolved" and msg["cluster"] == "db-2"
    resolved = {**known, key: Known(key, "2026-11", T0, T1, ev.version, known[key].payload)}
    t2 = T1 + dt.timedelta(days=1)
    back = compare(aset(adv("db-1"), adv("db-2")), resolved, t2)
    (new,) = back.events
    assert (new.event, new.key, new.first_seen) == ("new", key, t2)
    assert new.version > ev.version > known[key].version


def test_an_older_month_neither_opens_nor_resolves() -> None:
    """State last evaluated for November: an October run without db-2 does not resolve it, nor open db-3."""
    known = remember(aset(adv("db-1"), adv("db-2")), T0)
    changes = compare(aset(adv("db-1"), adv("db-3"), month="2026-10"), known, T1)
    assert [(e.event, e.advisory["cluster"]) for e in changes.events] == [("new", "db-3")]


def test_versions_grow_per_identity_whatever_the_clock_says() -> None:
    """max(epoch ms, previous + 1): a clock that went back still gives a higher version."""
    assert next_version(None, T0) == int(T0.replace(tzinfo=dt.UTC).timestamp() * 1000)
    later = next_version(None, T1)
    assert next_version(later, T0) == later + 1


def test_a_consumer_keeping_the_highest_version_holds_the_open_advisories() -> None:
    """Every event of three runs, delivered twice and reversed: collapsing leaves exactly the open ones."""
    runs = [aset(adv("db-1"), adv("db-2")), aset(adv("db-1")), aset(adv("db-1"), adv("db-3"))]
    known: dict[str, Known] = {}
    sent: list[dict[str, Any]] = []
    now = T0
    for advice in runs:
        changes = compare(advice, known, now)
        sent += [e.to_message() for e in changes.events]
        for k, (payload, version) in changes.open_rows.items():
            known[k] = Known(k, advice.month, changes.first_seen[k], None, version, payload)
        for e in changes.resolved:
            known[e.key] = Known(e.key, e.month, e.first_seen, e.resolved_at, e.version, e.advisory)
        now += dt.timedelta(hours=1)
    open_now = collapse(list(reversed(sent + sent)))
    assert sorted(m["cluster"] for m in open_now.values()) == ["db-1", "db-3"]
    assert all(json.dumps(m) for m in sent)  # plain JSON: strings, numbers, booleans, None


def test_the_webhook_message_is_slack_compatible_and_carries_every_event() -> None:
    """text + blocks (mrkdwn escaped, one section per change) + events, one per change."""
    known = remember(aset(adv("db-<1>"), adv("db-2", team="a&b")), T0)
    advice = aset(adv("db-<1>"), adv("db-3", "7.5"))
    changes = compare(advice, known, T1)
    msg = advice_message("2026-11", changes.events, advice)
    assert msg["text"].startswith("dbcost advise 2026-11: 1 new advisory ($7.50/month), 1 resolved")
    sections = [b["text"]["text"] for b in msg["blocks"][1:]]
    assert sections[0].startswith("New: *graviton* on *db-3*") and sections[1].startswith("Resolved:")
    assert "a&amp;b" in sections[1]
    assert [e["event"] for e in msg["events"]] == ["new", "resolved"]
    big = compare(aset(*(adv(f"db-{i}") for i in range(60))), {}, T0)
    many = advice_message("2026-11", big.events, aset())
    assert len(many["blocks"]) <= 50 and len(many["events"]) == 60
