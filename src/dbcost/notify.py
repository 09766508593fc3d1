"""Quota notifications: a Slack-compatible message for a run's status changes, and its webhook delivery.

:func:`slack_message` builds one message for every change of a run (``text`` is the fallback summary that
notifications and non-Block-Kit receivers show; ``blocks`` holds one section per pool and a context line).
:func:`post_webhook` POSTs it as JSON, each attempt bounded by ``asyncio.timeout``, retried through
:func:`dbcost.retry.retry` on HTTP 5xx, 429, connection errors and timeouts (``TransientNotifyError``) and
never on other 4xx or 3xx (``NotifyError``).

Webhook URLs are secrets (Slack's carries its token in the path), so messages, logs and errors show
``scheme://host[:port]`` only, and aiohttp's own exceptions (whose text may contain the full URL) are
summarised rather than chained.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import orjson

from dbcost.clock import Clock
from dbcost.errors import ConfigError, NotifyError, RetryExhaustedError, TransientNotifyError
from dbcost.quota import QuotaReport, StatusChange, format_usd
from dbcost.retry import RetryPolicy, retry

__all__ = ["DEFAULT_WEBHOOK_RETRY", "post_webhook", "safe_url", "slack_message"]

log = logging.getLogger("dbcost.notify")

#: Webhook retries: a few quick attempts inside a minute (a cron job runs again anyway).
DEFAULT_WEBHOOK_RETRY: Final = RetryPolicy(max_attempts=4, base_s=0.5, cap_s=5.0, budget_s=60.0)
#: Slack accepts at most 50 blocks per message; one is kept for the "and N more" line.
_MAX_POOL_BLOCKS: Final = 45
_EMOJI: Final = {"OK": ":large_green_circle:", "WARN": ":large_yellow_circle:", "BREACH": ":red_circle:"}
_BODY_SNIPPET: Final = 120


# ----------------------------------------------------------------------------------------- message


def _esc(text: str) -> str:
    """Slack mrkdwn escaping: ``&``, ``<`` and ``>`` are control characters there."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(report: QuotaReport, changes: Sequence[StatusChange]) -> dict[str, Any]:
    """One Slack-compatible message (``text`` + ``blocks``) for all status changes of a run."""
    month = report.month
    if not changes:
        text = f"dbcost quota {month}: no status changes (worst status {report.worst})"
        return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": _esc(text)}}]}
    summary = ", ".join(f"{c.pool} {c.old or 'new'} -> {c.new}" for c in changes)
    noun = "pool" if len(changes) == 1 else "pools"
    text = f"dbcost quota {month}: {len(changes)} {noun} changed status: {summary}"
    blocks: list[dict[str, Any]] = [{
        "type": "section",
        "text": {"type": "mrkdwn", "text": f"*Database budgets {month}*: {len(changes)} {noun} changed status "
                                           f"(as of {report.today.isoformat()}, metric {report.metric})"},
    }]
    for c in changes[:_MAX_POOL_BLOCKS]:
        e = c.evaluation
        used = e.pct_of_budget
        lines = [
            f"{_EMOJI[c.new]} *{_esc(c.pool)}* (team {_esc(e.team)}): {c.old or 'new'} \u2192 *{c.new}*",
            f"actual {format_usd(e.actual)} of {format_usd(e.budget)}" + (f" ({used}%)" if used is not None else "")
            + f" \u00b7 forecast {format_usd(e.forecast)}"
            + (f" \u00b7 AWS forecast {format_usd(e.aws_forecast)}" if e.aws_forecast is not None else ""),
        ]
        if e.projected_breach_date is not None:
            verb = "breached on" if e.actual >= e.budget else "projected breach"
            lines.append(f"{verb} {e.projected_breach_date.isoformat()}")
        if e.reasons:
            lines.append("; ".join(_esc(r) for r in e.reasons))
        if e.estimated:
            lines.append("_estimated: the month is still open in Cost Explorer_")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}})
    if len(changes) > _MAX_POOL_BLOCKS:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"and {len(changes) - _MAX_POOL_BLOCKS} more change(s): see `dbcost quota`"}]})
    flags = " \u00b7 amounts are estimated (open month)" if any(c.evaluation.estimated for c in changes) else ""
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"worst status: {report.worst} \u00b7 {len(report.pools)} pools checked{flags}"}]})
    return {"text": text, "blocks": blocks}


# ----------------------------------------------------------------------------------------- delivery


def safe_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what may be shown of a webhook URL (path and query are secret)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        raise ConfigError("webhook URL: not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ConfigError(f"webhook URL: must be http:// or https://, got {parts.scheme or 'no'} scheme")
    if not parts.hostname:
        raise ConfigError("webhook URL: no host")


def _scrub(text: str, url: str, shown: str) -> str:
    """``text`` without the URL's secret parts (an aiohttp message may quote the full URL)."""
    parts = urlsplit(url)
    text = text.replace(url, shown)
    for secret in (parts.path, parts.query, parts.fragment, parts.username, parts.password):
        if secret and len(secret) > 1:
            text = text.replace(secret, "...")
    return " ".join(text.split())


async def post_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    timeout_s: float = 10.0,
    policy: RetryPolicy | None = None,
    clock: Clock | None = None,
) -> None:
    """POST ``payload`` as JSON to ``url``; retried on 5xx, 429, connection errors and timeouts.

    Raises ``ConfigError`` for a non-http(s) URL (before any request), ``NotifyError`` for another 4xx
    (or a redirect), ``TransientNotifyError`` once the retry policy's attempts or time budget are spent.
    """
    _check_url(url)
    shown = safe_url(url)
    body = orjson.dumps(payload)
    headers = {"Content-Type": "application/json"}
    # the session's own timeouts are off: asyncio.timeout bounds each attempt
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))

    async def attempt() -> None:
        try:
            async with asyncio.timeout(timeout_s):
                async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                    status = resp.status
                    answer = (await resp.read())[:_BODY_SNIPPET].decode("utf-8", "replace")
        except TimeoutError:
            raise TransientNotifyError(f"webhook {shown}: no answer within {timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            # not chained: aiohttp's exception text and attributes may carry the full URL
            detail = _scrub(str(exc), url, shown)
            raise TransientNotifyError(f"webhook {shown}: {type(exc).__name__}" + (f": {detail}" if detail else "")
                                       ) from None
        if 200 <= status < 300:
            return
        said = _scrub(answer, url, shown)
        message = f"webhook {shown}: HTTP {status}" + (f": {said}" if said else "")
        if status >= 500 or status == 429:
            raise TransientNotifyError(message)
        raise NotifyError(message)

    def on_retry(n: int, exc: BaseException, delay: float) -> None:
        log.warning("webhook %s: attempt %d failed (%s), retrying in %.2fs", shown, n, exc, delay)

    async with session:
        try:
            await retry(attempt, policy or DEFAULT_WEBHOOK_RETRY, clock=clock, on_retry=on_retry,
                        what="webhook delivery")
        except RetryExhaustedError as exc:
            raise TransientNotifyError(str(exc)) from exc
    log.info("webhook %s: delivered", shown)
