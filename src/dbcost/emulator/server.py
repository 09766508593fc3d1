"""The emulator's HTTP face: AWS JSON 1.1 on ``POST /``, admin endpoints under ``/_emulator/``.

Why a real server rather than patched methods: the client's retry, throttle, breaker and paging code
only earns trust against the same wire behaviour botocore meets in production (signed requests, error
bodies with ``__type``, 400 vs 5xx, dropped sockets, latency). Any AWS SDK reaches it with an endpoint
override; nothing in the client knows it is talking to an emulator.

What happens to one AWS request, in order (the order is observable, so it is fixed):

1. counted (total and per operation);
2. the SigV4 ``Authorization`` header must be present and well formed (the signature itself cannot be
   checked: the secret is the caller's) -> else 403;
3. the token bucket (``max_rps``, ``burst``) admits it -> else 400 ``LimitExceededException``;
4. ``latency_ms`` passes;
5. one uniform draw decides a dropped connection (``drop_rate``) or a 500/503 (``fault_rate``);
6. the operation runs: validation, page token, aggregation (cached per request and data version), page.

Throttled, faulted and dropped requests are never "pages served".

GetCostAndUsage and GetCostAndUsageWithResources are one handler (:meth:`Emulator._results_by_time`) over the
operation table of :mod:`dbcost.emulator.query`: the same paging, tokens, throttling, faults and malformed
groups. With ``resource_data_enabled=False`` (``--no-resource-data``) the payer has not opted in to
resource-level data: every GetCostAndUsageWithResources request (after throttling and faults, before
validation) is answered ``400 DataUnavailableException`` with :data:`NOT_ENABLED_MESSAGE`. Inferred: botocore's
model lists DataUnavailableException ("The requested data is unavailable.") among the operation's errors and no
error specific to opting in; the real code and message of a payer that has not opted in are not confirmed.

Admin truth (``POST /_emulator/truth``), the request shape::

    {<a GetCostAndUsage body>}                                   -> truth_of (metrics, groups, by_keys, ...)
    {"Operation": "GetCostAndUsageWithResources", <its body>}    -> the same keys for that operation, plus
        "operation": "GetCostAndUsageWithResources",
        "resources": [{"resource_id", "kind", "service", "account", "region", "name", "cluster", "team",
                       "env", "engine", "billing_tags", "tagged_in_billing", "resource_tags", "orphan",
                       "cluster_resource_id", "instance_class",
                       "metrics": {metric: "exact decimal"}, "untagged_metrics": {...},
                       "categories": {"compute": {metric: ...}, ...}}, ...]   (sorted by resource_id)

``resources`` covers the window and Filter whatever the GroupBy, with no malformation taken out (``null`` for an
HOURLY request); date rules are not applied (a truth may be asked for any window). ``GET /_emulator/resources``
lists every resource of the fleet with its true owner (``cluster``, ``team``), whether billing carries its tags
and the tags the resource itself carries (``resource_tags``; none on an ``orphan``), for inventory tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

import orjson
from aiohttp import web

from dbcost.emulator.advice import DEFAULT_NON_PROD, summary
from dbcost.emulator.advice import advisories as advisories_truth
from dbcost.emulator.config import EmulatorConfig
from dbcost.emulator.errors import AwsError
from dbcost.emulator.fleet import Fleet, month_add
from dbcost.emulator.lookups import cost_forecast, dimension_values, tag_values
from dbcost.emulator.query import COST_AND_USAGE, WITH_RESOURCES, Engine, parse_cost_request, render_page, truth_for
from dbcost.emulator.tokens import TokenSigner, request_hash

__all__ = ["JSON_11", "NOT_ENABLED_MESSAGE", "TARGET_PREFIX", "Emulator", "TokenBucket"]

log = logging.getLogger("dbcost.emulator")

TARGET_PREFIX: Final = "AWSInsightsIndexService."
JSON_11: Final = "application/x-amz-json-1.1"
_AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s,]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*"
    r"Signature=(?P<sig>[0-9a-f]{64})"
)
_PAGED_OPS: Final = frozenset({COST_AND_USAGE, WITH_RESOURCES, "GetDimensionValues", "GetTags"})
#: what a payer that has not opted in to resource-level data is answered (inferred: see the module docstring)
NOT_ENABLED_MESSAGE: Final = (
    "Resource-level data is not enabled for this account. Enable it in Cost Management preferences "
    "(Resource-level data at daily granularity) from the management account."
)


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; one token per request. Time comes from the caller."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class _Stats:
    requests: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    succeeded: int = 0
    throttled: int = 0
    faults: int = 0
    dropped: int = 0
    auth_refused: int = 0
    validation_errors: int = 0
    invalid_tokens: int = 0
    request_changed: int = 0
    errors_by_code: Counter[str] = field(default_factory=Counter)
    pages_served: int = 0
    pages_by_operation: Counter[str] = field(default_factory=Counter)
    bytes_served: int = 0
    groups_served: int = 0
    malformed_groups_served: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_operation": dict(sorted(self.by_operation.items())),
            "succeeded": self.succeeded,
            "throttled": self.throttled,
            "faults": self.faults,
            "dropped": self.dropped,
            "auth_refused": self.auth_refused,
            "validation_errors": self.validation_errors,
            "invalid_tokens": self.invalid_tokens,
            "request_changed": self.request_changed,
            "errors_by_code": dict(sorted(self.errors_by_code.items())),
            "pages_served": self.pages_served,
            "pages_by_operation": dict(sorted(self.pages_by_operation.items())),
            "bytes_served": self.bytes_served,
            "groups_served": self.groups_served,
            "malformed_groups_served": self.malformed_groups_served,
        }


class _Drop(Exception):
    """Internal: close the connection without an answer."""


Handler = Callable[[Mapping[str, Any]], dict[str, Any]]


class Emulator:
    """A local Cost Explorer: ``async with Emulator(cfg) as emu: ... emu.url ...``.

    The fleet is laid out around ``cfg.today`` (or the real date) at construction. ``update()`` changes
    runtime knobs, ``restate()`` bumps the data version, ``truth()`` answers what a perfect client ends up
    with for a GetCostAndUsage request at the current knobs and version.
    """

    def __init__(self, config: EmulatorConfig | None = None, *, build_thread: bool = False) -> None:
        """``build_thread``: answers are built on one worker thread, so the event loop (which admits or throttles
        each request as it arrives) is never held up by another request's page; ``emulator serve`` uses it."""
        self._config = config if config is not None else EmulatorConfig()
        self._builds = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emulator-build") if build_thread else None
        cfg = self._config
        self.fleet = Fleet(
            seed=cfg.seed, clusters=cfg.clusters, accounts=cfg.accounts, anchor=cfg.today or _utc_today()
        )
        self.engine = Engine(self.fleet, estimated_through_day=cfg.estimated_through_day)
        self._account_names = {a.id: a.name for a in self.fleet.accounts}
        self._version = 0
        self._signer = TokenSigner(ttl_s=cfg.token_ttl_s)
        self._bucket: TokenBucket | None = None
        # faults are not data: a sequential RNG is fine here (seeded, so a run is repeatable)
        self._chaos = random.Random(f"chaos|{cfg.seed}")
        self._stats = _Stats()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._ops: dict[str, Handler] = {
            COST_AND_USAGE: lambda body: self._results_by_time(COST_AND_USAGE, body),
            WITH_RESOURCES: lambda body: self._results_by_time(WITH_RESOURCES, body),
            "GetDimensionValues": self._get_dimension_values,
            "GetTags": self._get_tags,
            "GetCostForecast": self._get_cost_forecast,
        }

    # ---------------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind and serve; ``url`` is set afterwards (port 0 picks a free port)."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._config.host, self._config.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._builds is not None:
            self._builds.shutdown(wait=True)

    async def _build(self, fn: Callable[[Any], Any], body: Any) -> Any:
        """``fn(body)``: on the build thread when there is one (one at a time, in arrival order), else inline."""
        if self._builds is None:
            return fn(body)
        return await asyncio.get_running_loop().run_in_executor(self._builds, fn, body)

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/", self._handle_aws)
        app.router.add_get("/_emulator/stats", self._admin(lambda _: self.stats()))
        app.router.add_get("/_emulator/fleet", self._admin(lambda _: self.fleet.to_json()))
        app.router.add_get("/_emulator/resources", self._admin(lambda _: {"resources": self.resources()}))
        app.router.add_post("/_emulator/truth", self._admin(self.truth))
        app.router.add_post("/_emulator/advisories", self._admin(lambda body: self.advisories(**body)))
        app.router.add_post("/_emulator/restate", self._admin(lambda _: {"data_version": self.restate()}))
        app.router.add_post("/_emulator/config", self._admin(lambda body: self.update(**body).to_json()))
        return app

    # ------------------------------------------------------------------------------ library API

    @property
    def config(self) -> EmulatorConfig:
        return self._config

    @property
    def today(self) -> dt.date:
        """The emulator's date: ``config.today`` or the real UTC date."""
        return self._config.today or _utc_today()

    @property
    def data_version(self) -> int:
        return self._version

    def stats(self) -> dict[str, Any]:
        out = self._stats.to_json()
        out["data_version"] = self._version
        out["today"] = self.today.isoformat()
        return out

    def restate(self) -> int:
        """Bump the data version: the days still estimated change (today's month, and last month through
        ``estimated_through_day``); older tokens become invalid."""
        self._version += 1
        return self._version

    def update(self, **knobs: Any) -> EmulatorConfig:
        """Change runtime knobs (``fault_rate``, ``drop_rate``, ``malformed_rate``, ``max_rps``, ``burst``,
        ``latency_ms``, ``page_size``, ``today``, ``token_ttl_s``, ``estimated_through_day``); ``ValueError`` for bad
        values."""
        new = self._config.with_knobs(knobs)
        if new.max_rps != self._config.max_rps or new.burst != self._config.burst:
            self._bucket = None
        self._signer.ttl_s = new.token_ttl_s
        self.engine.estimated_through_day = new.estimated_through_day
        self._config = new
        return new

    def truth(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The ground truth for a GetCostAndUsage body at the current today, version and malformed rate; with
        ``"Operation": "GetCostAndUsageWithResources"`` for that operation, plus ``resources`` (the module
        docstring has the shape)."""
        return truth_for(self.engine, request, today=self.today, version=self._version,
                         malformed_rate=self._config.malformed_rate)

    def resources(self) -> list[dict[str, Any]]:
        """Every resource of the fleet with its true owner, sorted by resource id (:class:`Resource`)."""
        return [self.fleet.resources[rid].to_json() for rid in sorted(self.fleet.resources)]

    def advisories(self, month: str, *, metric: str = "UnblendedCost", cluster_tag: str = "db-cluster",
                   team_tag: str = "team", env_tag: str = "env", non_prod: list[str] | None = None,
                   min_savings: str = "0") -> dict[str, Any]:
        """The advisories ``dbcost advise --month`` must find at the current today, version and malformed rate
        (:mod:`dbcost.emulator.advice`): ``{"month", "advisories": [...], "total_estimated_monthly_savings"}``."""
        from decimal import Decimal, InvalidOperation

        try:
            start = dt.date.fromisoformat(f"{month}-01")
            floor = Decimal(str(min_savings))
        except (ValueError, TypeError, InvalidOperation):
            raise ValueError(f"month must be YYYY-MM and min_savings a number, got {month!r}, {min_savings!r}") from None
        today = self.today
        end = min(month_add(start, 1), today)
        found = advisories_truth(
            self.fleet, start=start, end=end, today=today, version=self._version, metric=metric,
            cluster_tag=cluster_tag, team_tag=team_tag, env_tag=env_tag,
            non_prod=tuple(non_prod) if non_prod is not None else DEFAULT_NON_PROD, min_savings=floor,
            malformed_rate=self._config.malformed_rate,
        ) if end > start else []
        return summary(month, found)

    # ---------------------------------------------------------------------------------- HTTP: AWS

    def _respond(self, status: int, payload: Mapping[str, Any], rid: str, code: str | None = None) -> web.Response:
        body = orjson.dumps(payload)
        headers = {"x-amzn-RequestId": rid}
        if code is not None:
            headers["x-amzn-ErrorType"] = code
        self._stats.bytes_served += len(body)
        return web.Response(status=status, body=body, headers=headers, content_type=JSON_11)

    def _error(self, err: AwsError, rid: str) -> web.Response:
        st = self._stats
        st.errors_by_code[err.code] += 1
        if err.code == "ValidationException":
            st.validation_errors += 1
        elif err.code == "InvalidNextTokenException":
            st.invalid_tokens += 1
        elif err.code == "RequestChangedException":
            st.request_changed += 1
        return self._respond(err.status, {"__type": err.code, "Message": err.message}, rid, err.code)

    def _admit(self) -> bool:
        cfg = self._config
        if cfg.max_rps is None:
            return True
        now = asyncio.get_running_loop().time()
        if self._bucket is None:
            self._bucket = TokenBucket(cfg.max_rps, cfg.effective_burst, now)
        return self._bucket.take(now)

    @staticmethod
    def _check_auth(request: web.Request) -> None:
        auth = request.headers.get("Authorization")
        if not auth:
            raise AwsError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
        m = _AUTH_RE.fullmatch(auth.strip())
        if m is None:
            raise AwsError(
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters "
                "in AWS4-HMAC-SHA256 form",
                403,
            )
        if m.group("service") != "ce":
            raise AwsError(
                "IncompleteSignatureException", "Credential should be scoped to correct service: 'ce'.", 403
            )
        if "X-Amz-Date" not in request.headers and "Date" not in request.headers:
            raise AwsError(
                "IncompleteSignatureException",
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
                403,
            )

    async def _handle_aws(self, request: web.Request) -> web.StreamResponse:
        rid = str(uuid.uuid4())
        raw = await request.read()
        st = self._stats
        st.requests += 1
        target = request.headers.get("X-Amz-Target", "")
        op = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        st.by_operation[op or "(unknown)"] += 1
        cfg = self._config
        try:
            try:
                self._check_auth(request)
            except AwsError:
                st.auth_refused += 1
                raise
            if not self._admit():
                st.throttled += 1
                if cfg.latency_ms:
                    await asyncio.sleep(cfg.latency_ms / 1000)
                raise AwsError("LimitExceededException", "Rate limit exceeded")
            if cfg.latency_ms:
                await asyncio.sleep(cfg.latency_ms / 1000)
            draw = self._chaos.random()
            if draw < cfg.drop_rate:
                raise _Drop
            if draw < cfg.drop_rate + cfg.fault_rate:
                st.faults += 1
                if self._chaos.random() < 0.5:
                    raise AwsError("InternalServerError", "An internal error occurred.", 500)
                raise AwsError("ServiceUnavailable", "Service is temporarily unavailable.", 503)
            handler = self._ops.get(op)
            if handler is None:
                raise AwsError("UnknownOperationException", f"Unknown operation {target!r}")
            try:
                body = orjson.loads(raw or b"{}")
            except orjson.JSONDecodeError:
                raise AwsError("SerializationException", "The request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise AwsError("SerializationException", "The request body must be a JSON object")
            payload = await self._build(handler, body)
        except _Drop:
            st.dropped += 1
            transport = request.transport
            if transport is not None:
                transport.abort()
            # aiohttp finds the transport closed when it writes this and drops it quietly
            return web.Response(status=500)
        except AwsError as err:
            return self._error(err, rid)
        except Exception:
            log.exception("emulator: %s failed", op)
            return self._error(AwsError("InternalFailure", "The emulator failed on this request.", 500), rid)
        st.succeeded += 1
        if op in _PAGED_OPS:
            st.pages_served += 1
            st.pages_by_operation[op] += 1
        return self._respond(200, payload, rid)

    # --------------------------------------------------------------------------------- operations

    def _offset(self, op: str, body: Mapping[str, Any], today: dt.date) -> tuple[int, str]:
        rhash = request_hash(op, body)
        token = body.get("NextPageToken")
        if token is None:
            return 0, rhash
        return self._signer.verify(token, rhash=rhash, version=self._version, today=today), rhash

    def _results_by_time(self, op: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """GetCostAndUsage or GetCostAndUsageWithResources: validate, aggregate (cached), cut the page."""
        today = self.today
        if op == WITH_RESOURCES and not self._config.resource_data_enabled:
            raise AwsError("DataUnavailableException", NOT_ENABLED_MESSAGE)
        req = parse_cost_request(body, today=today, operation=op)
        offset, rhash = self._offset(op, body, today)
        result = self.engine.cost_and_usage(req, today=today, version=self._version)
        if offset and offset >= result.total_groups:
            raise AwsError("InvalidNextTokenException", "Try again without a pagination token.")
        cfg = self._config
        page = render_page(
            result,
            offset,
            cfg.page_size,
            seed=self.fleet.seed,
            malformed_rate=cfg.malformed_rate,
            account_names=self._account_names,
        )
        if page.next_offset is not None:
            page.payload["NextPageToken"] = self._signer.issue(
                operation=op, rhash=rhash, offset=page.next_offset, version=self._version,
                today=today,
            )
        self._stats.groups_served += page.groups
        self._stats.malformed_groups_served += page.malformed
        return page.payload

    def _paged_list(self, op: str, body: Mapping[str, Any], items: list[Any], key: str) -> dict[str, Any]:
        today = self.today
        size = body.get("MaxResults", self._config.page_size)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise AwsError("ValidationException", f"MaxResults must be a positive integer; got {size!r}")
        offset, rhash = self._offset(op, body, today)
        if offset and offset >= len(items):
            raise AwsError("InvalidNextTokenException", "Try again without a pagination token.")
        chunk = items[offset : offset + size]
        payload: dict[str, Any] = {key: chunk, "ReturnSize": len(chunk), "TotalSize": len(items)}
        if offset + size < len(items):
            payload["NextPageToken"] = self._signer.issue(
                operation=op, rhash=rhash, offset=offset + size, version=self._version, today=today
            )
        return payload

    def _get_dimension_values(self, body: Mapping[str, Any]) -> dict[str, Any]:
        items = dimension_values(self.engine, body, today=self.today, version=self._version)
        return self._paged_list("GetDimensionValues", body, items, "DimensionValues")

    def _get_tags(self, body: Mapping[str, Any]) -> dict[str, Any]:
        items = tag_values(self.engine, body, today=self.today)
        return self._paged_list("GetTags", body, items, "Tags")

    def _get_cost_forecast(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return cost_forecast(self.engine, body, today=self.today, version=self._version)

    # -------------------------------------------------------------------------------- HTTP: admin

    def _admin(
        self, fn: Callable[[dict[str, Any]], Mapping[str, Any]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            body: Any = {}
            if request.method == "POST":
                raw = await request.read()
                try:
                    body = orjson.loads(raw) if raw.strip() else {}
                except orjson.JSONDecodeError:
                    return _admin_error(400, "SerializationException", "the body is not valid JSON")
                if not isinstance(body, dict):
                    return _admin_error(400, "SerializationException", "the body must be a JSON object")
            try:
                result = await self._build(fn, body)
            except AwsError as err:
                return _admin_error(err.status, err.code, err.message)
            except (ValueError, TypeError) as exc:
                return _admin_error(400, "ValidationException", str(exc))
            return web.Response(
                body=orjson.dumps(result),
                content_type="application/json",
                headers={"x-amzn-RequestId": str(uuid.uuid4())},
            )

        return handler


def _admin_error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"__type": code, "Message": message}),
        content_type="application/json",
        headers={"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-ErrorType": code},
    )
