"""Webhook delivery against a real local aiohttp server, and the Slack-compatible message it carries."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from dbcost.attribution.model import Attribution, DailySpend
from dbcost.clock import FakeClock
from dbcost.errors import ConfigError, NotifyError, TransientNotifyError
from dbcost.notify import post_webhook, safe_url, slack_message
from dbcost.quota import Policy, PoolPolicy, QuotaReport, evaluate, status_changes
from dbcost.retry import RetryPolicy
from tests.conftest import free_port

SECRET_PATH = "/services/T0001/B0002/s3cr3tT0k3n"


@dataclass
class Receiver:
    """A webhook receiver: answers each POST with the next planned action (a status, "hang" or "redirect")."""

    base: str = ""
    plan: list[int | str] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return self.base + SECRET_PATH + "?token=qs-secret"

    @property
    def attempts(self) -> int:
        return len(self.bodies)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        action = self.plan.pop(0) if self.plan else 200
        if action == "hang":
            await self.release.wait()  # held until the test ends: the client must time out
            return web.Response(status=200)
        if action == "redirect":
            raise web.HTTPFound("/elsewhere")
        assert isinstance(action, int)
        return web.Response(status=action, text="ok" if action < 300 else "invalid_payload")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real aiohttp server on 127.0.0.1, port 0."""
    rec = Receiver()
    app = web.Application()
    app.router.add_post(SECRET_PATH, rec.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.base = f"http://{host}:{port}"
    try:
        yield rec
    finally:
        rec.release.set()
        await runner.cleanup()


def sample_report() -> QuotaReport:
    rows = [DailySpend(dt.date(2026, 11, day), team, "compute", Decimal(amount), day == 9)
            for day in range(1, 10) for team, amount in (("payments", "10"), ("search", "1"), ("fraud", "3"))]
    attr = Attribution(month="2026-11", metric="UnblendedCost", total=Decimal(126), unattributed=Decimal(0),
                       teams=[], daily=rows)
    pools = tuple(PoolPolicy.model_validate({"name": n, "team": n, "monthly_budget_usd": b})
                  for n, b in (("payments", "50"), ("search", "1000"), ("fraud", "100")))
    return evaluate(Policy(pools=pools), attr, today=dt.date(2026, 11, 10))


PAYLOAD = {"text": "hello", "blocks": []}


# -------------------------------------------------------------------------------------- delivery


async def test_delivered_first_time(receiver: Receiver) -> None:
    """A 200 answer: one attempt, the receiver got the JSON payload as sent."""
    await post_webhook(receiver.url, PAYLOAD, policy=RetryPolicy.no_wait(3))
    assert receiver.bodies == [PAYLOAD]


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_retried_on_server_error_then_delivered(receiver: Receiver, status: int) -> None:
    """5xx and 429 are retried; the second attempt is delivered (the receiver counts two)."""
    receiver.plan = [status, 200]
    await post_webhook(receiver.url, PAYLOAD, policy=RetryPolicy.no_wait(3))
    assert receiver.attempts == 2


async def test_gives_up_after_bounded_attempts(receiver: Receiver) -> None:
    """A receiver that keeps failing gets exactly max_attempts tries, then TransientNotifyError."""
    receiver.plan = [500] * 10
    with pytest.raises(TransientNotifyError, match=r"gave up after 3 attempts.*HTTP 500") as info:
        await post_webhook(receiver.url, PAYLOAD, policy=RetryPolicy.no_wait(3))
    assert receiver.attempts == 3
    assert SECRET_PATH not in str(info.value) and "qs-secret" not in str(info.value)


async def test_backoff_sleeps_on_the_injected_clock(receiver: Receiver) -> None:
    """With a real backoff policy the waits go through the injected clock (no real sleeping)."""
    receiver.plan = [502, 502, 200]
    clock = FakeClock()
    await post_webhook(receiver.url, PAYLOAD, policy=RetryPolicy(max_attempts=4, base_s=30.0, cap_s=60.0),
                       clock=clock)
    assert receiver.attempts == 3 and len(clock.slept) == 2


@pytest.mark.parametrize("status", [400, 403, 404, 410])
async def test_client_error_is_not_retried(receiver: Receiver, status: int) -> None:
    """4xx other than 429 fails at once with NotifyError naming scheme://host:port and the status only."""
    receiver.plan = [status]
    with pytest.raises(NotifyError) as info:
        await post_webhook(receiver.url, PAYLOAD, policy=RetryPolicy.no_wait(5))
    assert not isinstance(info.value, TransientNotifyError)
    assert receiver.attempts == 1
    assert str(info.value) == f"webhook {receiver.base}: HTTP {status}: invalid_payload"


async def test_redirect_is_not_followed(receiver: Receiver) -> None:
    """A 3xx is a misconfigured URL: NotifyError, not retried, not followed (a POST must not become a GET)."""
    receiver.plan = ["redirect"]
    with pytest.raises(NotifyError, match="HTTP 302"):
        await post_webhook(receiver.url, PAYLOAD, policy=RetryPolicy.no_wait(5))
    assert receiver.attempts == 1


async def test_timeout_is_retried(receiver: Receiver) -> None:
    """An attempt that gets no answer within timeout_s is abandoned and retried."""
    receiver.plan = ["hang", 200]
    await post_webhook(receiver.url, PAYLOAD, timeout_s=0.2, policy=RetryPolicy.no_wait(3))
    assert receiver.attempts == 2


async def test_timeouts_exhaust_to_transient_error(receiver: Receiver) -> None:
    """Only timeouts: TransientNotifyError saying no answer came in time."""
    receiver.plan = ["hang", "hang"]
    with pytest.raises(TransientNotifyError, match=r"gave up after 2 attempts.*no answer within 0.1s"):
        await post_webhook(receiver.url, PAYLOAD, timeout_s=0.1, policy=RetryPolicy.no_wait(2))
    assert receiver.attempts == 2


async def test_connection_refused_is_retried_and_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """Nobody listening: retried as transient; neither the error nor the logs show the URL's path or query."""
    url = f"http://127.0.0.1:{free_port()}{SECRET_PATH}?token=qs-secret"
    with caplog.at_level(logging.DEBUG, logger="dbcost"), pytest.raises(TransientNotifyError) as info:
        await post_webhook(url, PAYLOAD, policy=RetryPolicy.no_wait(2))
    text = str(info.value) + "\n" + caplog.text
    assert "gave up after 2 attempts" in text and "ClientConnectorError" in text
    assert "attempt 1 failed" in caplog.text
    for secret in (SECRET_PATH, "s3cr3tT0k3n", "qs-secret"):
        assert secret not in text


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "hooks.slack.com/services/x",
                                 "http:///nohost", "http://[::1/x"])
async def test_non_http_url_rejected_up_front(url: str) -> None:
    """Only http(s) URLs with a host are accepted: ConfigError before any request, without echoing the URL."""
    with pytest.raises(ConfigError, match=r"^webhook URL: ") as info:
        await post_webhook(url, PAYLOAD)
    assert url not in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T/B/x?y=1", "https://hooks.slack.com"),
        ("http://user:pw@127.0.0.1:8080/a", "http://127.0.0.1:8080"),
        ("https://[::1]:9/p", "https://[::1]:9"),
    ],
)
def test_safe_url_keeps_scheme_and_host_only(url: str, shown: str) -> None:
    """safe_url drops credentials, path, query and fragment."""
    assert safe_url(url) == shown


# ---------------------------------------------------------------------------------------- message


def test_slack_message_shape_and_content() -> None:
    """One message for all changes: fallback text plus section/context blocks naming pool, old -> new,
    amounts, breach date and the estimated flag."""
    report = sample_report()
    changes = status_changes(report, {"payments": "OK", "fraud": "BREACH"})
    assert [(c.pool, c.old, c.new) for c in changes] == [("payments", "OK", "BREACH"), ("fraud", "BREACH", "OK")]
    msg = slack_message(report, changes)
    assert isinstance(msg["text"], str) and "payments OK -> BREACH" in msg["text"] and "fraud BREACH -> OK" in msg["text"]
    blocks = msg["blocks"]
    assert isinstance(blocks, list) and {b["type"] for b in blocks} <= {"section", "context"}
    for b in blocks:
        if b["type"] == "section":
            assert b["text"]["type"] == "mrkdwn" and 0 < len(b["text"]["text"]) <= 3000
        else:
            assert all(e["type"] == "mrkdwn" for e in b["elements"])
    payments = blocks[1]["text"]["text"]
    assert "*payments*" in payments and "OK \u2192 *BREACH*" in payments
    assert "actual $90.00 of $50.00 (180.00%)" in payments and "forecast $300.00" in payments
    assert "breached on 2026-11-05" in payments and "estimated" in payments
    assert "fraud" in blocks[2]["text"]["text"]
    assert "worst status: BREACH" in blocks[-1]["elements"][0]["text"]


def test_slack_message_escapes_and_truncates() -> None:
    """Team names are mrkdwn-escaped; more changes than Slack's block limit end in an "and N more" line."""
    rows = [DailySpend(dt.date(2026, 11, 1), "a<b>&c", "compute", Decimal(5), False)]
    attr = Attribution(month="2026-11", metric="UnblendedCost", total=Decimal(5), unattributed=Decimal(0),
                       teams=[], daily=rows)
    pools = tuple(PoolPolicy.model_validate({"name": f"p{i}", "team": "a<b>&c", "monthly_budget_usd": 1})
                  for i in range(60))
    report = evaluate(Policy(pools=pools), attr, today=dt.date(2026, 11, 2))
    msg = slack_message(report, status_changes(report, {}))
    assert len(msg["blocks"]) <= 50
    assert "team a&lt;b&gt;&amp;c" in msg["blocks"][1]["text"]["text"]
    assert "and 15 more change(s)" in msg["blocks"][-2]["elements"][0]["text"]


def test_slack_message_without_changes() -> None:
    """No changes still gives a valid message (the caller normally does not send it)."""
    msg = slack_message(sample_report(), [])
    assert "no status changes" in msg["text"] and msg["blocks"][0]["type"] == "section"


async def test_slack_message_delivered(receiver: Receiver) -> None:
    """The message posts as Slack-compatible JSON: the receiver sees `text` and a `blocks` list."""
    report = sample_report()
    msg = slack_message(report, status_changes(report, {}))
    await post_webhook(receiver.url, msg, policy=RetryPolicy.no_wait(2))
    (got,) = receiver.bodies
    assert got == msg and isinstance(got["text"], str) and isinstance(got["blocks"], list)
