"""Triggers: which advisories are new or resolved since the last recorded run, the events that say so, and the
Slack-compatible message a webhook receives (pure: the clock's reading is an argument).

The store remembers, per advisory identity (:func:`~dbcost.advice.model.advisory_id`), the month it was last
evaluated for, when it was first seen, when it was resolved (``None`` while open) and its version. A run for
month ``M`` compares its advisories with that (:func:`compare`):

* an advisory the store does not know, or knows as resolved (and ``M`` is not older than the month that resolved
  it), is **new**: first seen now, a new version;
* an open advisory the run no longer finds, when ``M`` is not older than the month it was last evaluated for, is
  **resolved**: resolved now, a new version;
* everything else is unchanged (an older month's run neither opens nor resolves what a newer one found).

A version is ``max(now in epoch milliseconds, previous version + 1)``: it grows per identity whatever the clock
does, so a consumer that keeps, per key, the event with the highest version (and drops it when it says
``deleted``) holds exactly the open advisories, whatever was delivered twice, in whatever order. That is the rule
the record sinks follow (:mod:`dbcost.sinks.base`). One difference: nothing is recorded when a delivery fails,
so the next run sends the same change again with a new, higher version (the content is the same, and the
collapsed result too).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

from dbcost.advice.model import AdviceSet, Advisory, advisory_id, amount_text, timestamp_text
from dbcost.money import sum_amounts

__all__ = ["AdvisoryEvent", "Changes", "Known", "advice_message", "compare", "next_version"]

#: Slack accepts at most 50 blocks per message: the header, up to this many advisories, and the footers.
_MAX_BLOCKS: Final = 40


@dataclass(frozen=True)
class Known:
    """What the store remembers of one advisory identity."""

    id: str
    month: str
    first_seen: dt.datetime
    resolved_at: dt.datetime | None
    version: int
    payload: Mapping[str, Any]  # the advisory as last recorded (its JSON, without first_seen)


@dataclass(frozen=True)
class AdvisoryEvent:
    """One change: an advisory became ``new`` (opened) or ``resolved``. ``key`` is the advisory's identity."""

    event: Literal["new", "resolved"]
    key: str
    version: int
    month: str
    advisory: Mapping[str, Any]
    first_seen: dt.datetime
    resolved_at: dt.datetime | None = None

    def to_message(self) -> dict[str, Any]:
        """The event as a JSON object: the advisory's fields plus id, event, status, version, month (and
        ``deleted: true`` for a resolved one, as a record sink's tombstone)."""
        msg: dict[str, Any] = {"id": self.key, "event": self.event,
                               "status": "open" if self.event == "new" else "resolved", "version": self.version,
                               "month": self.month}
        msg.update({k: v for k, v in self.advisory.items() if k not in msg})
        msg["first_seen"] = timestamp_text(self.first_seen)
        msg["resolved_at"] = timestamp_text(self.resolved_at) if self.resolved_at is not None else None
        if self.event == "resolved":
            msg["deleted"] = True
        return msg


@dataclass
class Changes:
    """What a run changes: events to send, and the first-seen time of every advisory it shows."""

    events: list[AdvisoryEvent] = field(default_factory=list)
    first_seen: dict[str, dt.datetime] = field(default_factory=dict)
    #: the advisories whose stored row this run rewrites (id -> advisory JSON and its version)
    open_rows: dict[str, tuple[Mapping[str, Any], int]] = field(default_factory=dict)

    @property
    def new(self) -> list[AdvisoryEvent]:
        return [e for e in self.events if e.event == "new"]

    @property
    def resolved(self) -> list[AdvisoryEvent]:
        return [e for e in self.events if e.event == "resolved"]


def next_version(previous: int | None, now: dt.datetime) -> int:
    """``max(now in epoch milliseconds, previous + 1)``: strictly growing per identity."""
    stamp = now if now.tzinfo is not None else now.replace(tzinfo=dt.UTC)
    ms = int(stamp.timestamp() * 1000)
    return ms if previous is None else max(ms, previous + 1)


def _row(a: Advisory) -> dict[str, Any]:
    data = a.to_json(None)
    del data["first_seen"]
    return data


def compare(advice: AdviceSet, known: Mapping[str, Known], now: dt.datetime) -> Changes:
    """The events and first-seen times of ``advice`` against what the store ``known`` (see the module doc)."""
    out = Changes()
    month = advice.month
    current: dict[str, Advisory] = {advisory_id(advice.scope, a): a for a in advice.advisories}
    for key, a in current.items():
        k = known.get(key)
        if k is not None and month < k.month:
            out.first_seen[key] = k.first_seen  # an older month: shown as remembered, nothing changes
            continue
        if k is not None and k.resolved_at is None:
            out.first_seen[key] = k.first_seen
            out.open_rows[key] = (_row(a), k.version)
            continue
        version = next_version(k.version if k is not None else None, now)
        out.first_seen[key] = now
        out.open_rows[key] = (_row(a), version)
        out.events.append(AdvisoryEvent("new", key, version, month, _row(a), now))
    for key, k in sorted(known.items()):
        if key in current or k.resolved_at is not None or month < k.month:
            continue
        out.events.append(AdvisoryEvent("resolved", key, next_version(k.version, now), month, dict(k.payload),
                                        k.first_seen, now))
    return out


# -------------------------------------------------------------------------------------------------- webhook


def _esc(text: str) -> str:
    """Slack mrkdwn escaping: ``&``, ``<`` and ``>`` are control characters there."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _usd(text: object) -> str:
    return f"${Decimal(str(text)):,.2f}"


def _line(ev: AdvisoryEvent) -> str:
    a = ev.advisory
    where = a.get("cluster") or "(no cluster tag)"
    team = a.get("team") or "no team"
    return (f"*{_esc(str(a.get('kind')))}* on *{_esc(str(where))}* ({_esc(str(team))}, {_esc(str(a.get('region')))}): "
            f"{_usd(a.get('estimated_monthly_savings', 0))}/month \u00b7 {_esc(str(a.get('action', '')))}")


def advice_message(month: str, events: Sequence[AdvisoryEvent], advice: AdviceSet) -> dict[str, Any]:
    """One Slack-compatible message for the new and resolved advisories of a run: ``text`` (the summary),
    ``blocks`` (one section per change, up to 40) and ``events``, every change as the JSON object a Kafka sink
    receives (:meth:`AdvisoryEvent.to_message`), for receivers that are not Slack."""
    new = [e for e in events if e.event == "new"]
    resolved = [e for e in events if e.event == "resolved"]
    new_savings = sum_amounts(Decimal(str(e.advisory.get("estimated_monthly_savings", "0"))) for e in new)
    text = (f"dbcost advise {month}: {len(new)} new advisor{'y' if len(new) == 1 else 'ies'} "
            f"({_usd(amount_text(new_savings))}/month), {len(resolved)} resolved; "
            f"{len(advice.advisories)} open, {_usd(amount_text(advice.total_savings))}/month in all")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": _esc(text)}}]
    shown = 0
    for title, group in (("New", new), ("Resolved", resolved)):
        for ev in group:
            if shown >= _MAX_BLOCKS:
                break
            blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                       "text": f"{title}: {_line(ev)}"[:3000]}})
            shown += 1
    if len(events) > shown:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"and {len(events) - shown} more change(s): see `dbcost advise`"}]})
    return {"text": text, "blocks": blocks, "events": [e.to_message() for e in events]}
