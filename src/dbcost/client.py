"""The Cost Explorer client: governor -> retry -> breaker -> transport, paging, and accounting.

One :class:`CostExplorer` serves one target (one payer account / credential set). Everything that talks
to that target shares its :class:`~dbcost.governor.Governor` and :class:`~dbcost.breaker.Breaker`.

Operations come from one table (:mod:`dbcost.operations`): :meth:`CostExplorer.pages` serves every
record-shaped operation (GetCostAndUsage, GetCostAndUsageWithResources: the query names its own), the list
operations page through one helper, and the request/response field names are the table's.

Paging (botocore ships no paginator for any Cost Explorer operation):

* follow ``NextPageToken``, resending the identical request with only the token added;
* refuse a token seen twice in one chain (a server bug would otherwise loop forever, $0.01 a turn);
* refuse a chain whose pages keep coming with fresh tokens but bring nothing new (``idle_pages`` pages in a
  row that are empty or repeat the groups of an earlier page: the same loop with a token that changes);
* stop a chain at ``max_chain_pages`` pages (:class:`~dbcost.errors.BudgetExhaustedError`): a server that
  never ends a chain, even with pages that look new, costs at most that much;
* refuse a page whose ``GroupDefinitions`` differ from the query's ``GroupBy``: its keys would be stored
  under the wrong names (one line naming both groupings, nothing of it kept);
* on ``InvalidNextTokenException`` / ``RequestChangedException`` restart the chain once from page one;
  the restarted first page is flagged (``ParsedPage.restarted``);
* a refused page is billed (``requests``, ``billed_requests``) but not counted as received (``pages``,
  ``records``, ``quarantined``): the counters say what a consumer was given;
* an attempt that never reached the wire (``NotSent``: no credentials to sign it with) is no request:
  neither ``requests`` nor the run's request budget counts it;
* with ``dedup=True`` (streaming consumers such as ``dbcost fetch``): records an earlier pass already
  yielded are not yielded again, and a group whose (period, keys) already appeared in the same pass is
  quarantined as a duplicate, so a server that repeats a group can never double a cent. This keeps one
  small tuple per group of the query in memory. Consumers that stage a chain and deduplicate on commit
  (the backfill pipeline's store) pass ``dedup=False`` and discard what they staged on a restart.

Time: one request (connect, headers, body) may take ``request_timeout_s`` and one call, its retries and
backoff included, the retry policy's ``budget_s``; both are wall-clock deadlines (``asyncio.timeout``), so
a server that trickles its answer cannot hold a request or a run past them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

import orjson

from dbcost.breaker import Breaker
from dbcost.clock import Clock, SystemClock
from dbcost.config import DEFAULT_IDLE_PAGES, DEFAULT_MAX_CHAIN_PAGES, DEFAULT_REQUEST_TIMEOUT_S, FetchSettings
from dbcost.errors import (
    ApiError,
    BudgetExhaustedError,
    DataChangedError,
    InvalidNextTokenError,
    MalformedResponseError,
    RequestChangedError,
    TransportError,
    is_retryable,
    is_sent,
    is_throttle,
)
from dbcost.governor import Governor, GovernorSettings
from dbcost.models import CostQuery, CostRecord, Quarantined
from dbcost.money import fmt
from dbcost.operations import COST_FORECAST, DIMENSION_VALUES, TAGS, Operation
from dbcost.parse import FastPage, ParsedPage, fast_decoder, parse_page
from dbcost.retry import RetryPolicy, retry
from dbcost.transport.base import Transport

__all__ = ["PRICE_PER_REQUEST_USD", "CostExplorer", "RequestBudget", "Stats"]

log = logging.getLogger("dbcost.client")

#: Cost Explorer API price: $0.01 per request, each page a separate request.
PRICE_PER_REQUEST_USD = Decimal("0.01")
#: a body -> result function a transport may apply to a page's 2xx body (``AwsTransport.call_decoded``)
_Decode = Callable[[bytes], Any]


@dataclass
class Stats:
    """Counters for one run (or one target). ``billed_requests`` are the successful ones."""

    requests: int = 0
    billed_requests: int = 0
    pages: int = 0
    retries: int = 0
    throttled: int = 0
    records: int = 0
    quarantined: int = 0
    restarts: int = 0
    replayed: int = 0

    @property
    def cost_usd(self) -> Decimal:
        return self.billed_requests * PRICE_PER_REQUEST_USD

    def add(self, other: Stats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["cost_usd"] = str(self.cost_usd)
        return out

    def summary_line(self) -> str:
        return (
            f"requests={self.requests} billed={self.billed_requests} (${self.cost_usd}) pages={self.pages} "
            f"retries={self.retries} throttled={self.throttled} records={self.records} "
            f"quarantined={self.quarantined}"
            + (f" restarts={self.restarts}" if self.restarts else "")
        )


@dataclass
class RequestBudget:
    """A cap on requests sent (every attempt counts: AWS does not document that failed ones are free)."""

    max_requests: int | None = None
    used: int = field(default=0)

    #: what the message adds when the cap is the default one (nobody asked for it, so say how to change it)
    hint: str = ""

    def take(self) -> None:
        if self.max_requests is not None and self.used >= self.max_requests:
            raise BudgetExhaustedError(
                f"request cap reached: {self.used} of {self.max_requests} requests used; stopped before "
                f"sending more{self.hint}"
            )
        self.used += 1

    def give_back(self) -> None:
        """Return one :meth:`take` whose request was never sent (``NotSent``): it cost nothing."""
        self.used = max(0, self.used - 1)

    @property
    def remaining(self) -> int | None:
        return None if self.max_requests is None else max(0, self.max_requests - self.used)


def _outside_window(parsed: ParsedPage, window: tuple[str, str]) -> None:
    """A record whose period lies outside the requested window is quarantined: stored, it would escape the
    unit's replace-by-window and be counted again by every rerun."""
    lo, hi = window
    cols = parsed.columns
    if cols is not None:
        if not cols.period_start or (lo <= min(cols.period_start) and max(cols.period_start) < hi):
            return  # the common case, decided without a record made (the periods are ISO strings)
    elif all(lo <= r.period_start < hi for r in parsed.records):
        return
    kept = []
    for rec in parsed.records:
        if lo <= rec.period_start < hi:
            kept.append(rec)
        else:
            parsed.quarantined.append(Quarantined(f"period {rec.period_start} is outside the requested {lo}..{hi}",
                                                  rec.period_start, rec.period_end, parsed.page, rec.to_json()))
    parsed.records = kept


def _grouping(defs: object) -> tuple[tuple[str, str], ...] | None:
    """``GroupDefinitions`` (or a request's ``GroupBy``) as ((type, key), ...); None when not that shape."""
    if not isinstance(defs, list):
        return None
    out = []
    for d in defs:
        if not isinstance(d, Mapping):
            return None
        out.append((str(d.get("Type", "")), str(d.get("Key", ""))))
    return tuple(out)


def _describe_grouping(grouping: tuple[tuple[str, str], ...]) -> str:
    if not grouping:
        return "nothing (totals only)"
    return " x ".join(key if kind == "DIMENSION" else f"{kind}:{key}" for kind, key in grouping)


def _check_grouping(payload: object, group_defs: list[dict[str, str]], page_no: int) -> None:
    """A page grouped otherwise than the query would store its keys under the query's names: refuse it."""
    if not isinstance(payload, Mapping) or payload.get("GroupDefinitions") is None:
        return  # the parser names the keys from the query, or refuses a page that is not a page
    served, asked = _grouping(payload["GroupDefinitions"]), _grouping(group_defs)
    if served is None or asked is None or served == asked:
        return  # a GroupDefinitions that is not a list of objects is the parser's to refuse
    raise MalformedResponseError(
        f"page {page_no}: the response is grouped by {_describe_grouping(served)} but the query asked for "
        f"{_describe_grouping(asked)}; refusing it (nothing of it is kept)"
    )


def _content_key(parsed: ParsedPage) -> int:
    """What a page brought, as one number: its groups' (period, keys) and its quarantined groups' reasons. A
    columnar page is read as its columns (a chain's pages are all columnar or all not, so its keys compare)."""
    cols = parsed.columns
    rows: tuple[Any, ...] = ((tuple(cols.period_start), tuple(cols.key1), tuple(cols.key2), tuple(cols.metric))
                             if cols is not None else tuple(r.identity for r in parsed.records))
    return hash((rows,
                 tuple((q.period_start, q.reason) for q in parsed.quarantined)))


def _canonical(text: str) -> str:
    """An amount in plain notation (what ``fmt`` writes) as one text per value: without the fraction's trailing
    zeros and without a negative zero's sign, so two texts are equal exactly when their ``Decimal`` values are
    (``1.50`` and ``1.5``, ``-0.0`` and ``0``). What a replayed record's value is compared by after a restart; a
    string op, several times cheaper per row than a ``Decimal`` and its hash."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


class CostExplorer:
    """Cost Explorer operations for one target, with rate governing, retries, a breaker and paging."""

    def __init__(
        self,
        transport: Transport,
        *,
        governor: Governor | None = None,
        breaker: Breaker | None = None,
        retry_policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        stats: Stats | None = None,
        budget: RequestBudget | None = None,
        name: str = "default",
        request_timeout_s: float | None = DEFAULT_REQUEST_TIMEOUT_S,
        max_chain_pages: int | None = DEFAULT_MAX_CHAIN_PAGES,
        idle_pages: int = DEFAULT_IDLE_PAGES,
    ) -> None:
        self.transport = transport
        self.clock = clock or SystemClock()
        self.governor = governor or Governor(clock=self.clock)
        self.breaker = breaker or Breaker(clock=self.clock, name=name)
        self.retry_policy = retry_policy or RetryPolicy()
        self.stats = stats if stats is not None else Stats()
        self.budget = budget if budget is not None else RequestBudget()
        self.name = name
        #: seconds one request may take, connect to the body's last byte (None: no limit)
        self.request_timeout_s = request_timeout_s
        #: pages one chain may take (None: no limit)
        self.max_chain_pages = max_chain_pages
        #: pages in a row with a fresh token and nothing new before a chain is refused
        self.idle_pages = idle_pages

    # ------------------------------------------------------------------------------------ one call

    async def _attempt(self, operation: str, params: Mapping[str, Any], decode: _Decode | None = None) -> Any:
        self.budget.take()  # before the breaker: a refused budget must not hold a half-open probe slot
        self.breaker.before_call()
        answered = False
        try:
            async with self.governor.slot() as sent_at:
                self.stats.requests += 1
                try:
                    response = await self._send(operation, params, decode)
                except Exception as exc:
                    answered = True
                    if not is_sent(exc):  # never left this machine (nothing to sign it with): not a request
                        self.stats.requests -= 1
                        self.budget.give_back()
                        self.breaker.on_neutral()
                        raise
                    if is_throttle(exc):
                        self.stats.throttled += 1
                        self.governor.on_throttle(sent_at)
                        self.breaker.on_neutral()
                    elif is_retryable(exc):
                        self.breaker.on_failure()
                    elif isinstance(exc, ApiError):
                        self.breaker.on_success()  # the service answered: it is up
                    else:
                        self.breaker.on_neutral()
                    raise
            answered = True
        finally:
            if not answered:  # cancelled while waiting or in flight: release a probe slot, learn nothing
                self.breaker.on_neutral()
        self.stats.billed_requests += 1
        self.governor.on_success(sent_at)
        self.breaker.on_success()
        return response

    async def _send(self, operation: str, params: Mapping[str, Any], decode: _Decode | None = None) -> Any:
        """One request under the request deadline: connect, headers and the whole body."""
        timeout = self.request_timeout_s
        try:
            async with asyncio.timeout(timeout) as timer:
                if decode is not None:
                    call_decoded = getattr(self.transport, "call_decoded", None)
                    if call_decoded is not None:  # a transport without it answers the dict, which is as good
                        return await call_decoded(operation, params, decode)
                return await self.transport.call(operation, params)
        except TimeoutError:
            if not timer.expired():
                raise
            raise TransportError(
                f"{operation}: timed out after {timeout:g}s (the whole request; --request-timeout-s)"
            ) from None

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One operation through governor, retry and breaker. Raises only :mod:`dbcost.errors`."""
        response: dict[str, Any] = await self._call(operation, params)
        return response

    async def _call(self, operation: str, params: Mapping[str, Any], decode: _Decode | None = None) -> Any:
        """:meth:`call`; with ``decode``, a page the transport decoded with it comes back as its result."""

        def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
            self.stats.retries += 1
            log.info("%s: %s attempt %d failed (%s); retrying in %.2fs", self.name, operation, attempt, exc, delay)

        return await retry(
            lambda: self._attempt(operation, params, decode),
            self.retry_policy,
            clock=self.clock,
            on_retry=on_retry,
            what=f"{self.name}: {operation}",
            deadline=True,
        )

    # -------------------------------------------------------------------------------------- paging

    async def pages(
        self,
        query: CostQuery,
        *,
        start: Any = None,
        end: Any = None,
        dedup: bool = True,
        resume_token: str | None = None,
        resume_page: int = 0,
        columnar: bool = False,
    ) -> AsyncIterator[ParsedPage]:
        """Every page of ``query`` (optionally of the sub-window ``start``..``end``), parsed.

        ``resume_token``/``resume_page`` continue a chain a killed run checkpointed after page
        ``resume_page``; if the token has expired meanwhile, the chain restarts from page one (and the
        first page is flagged ``restarted``). ``columnar``: pages hold their records as
        :class:`~dbcost.parse.PageColumns` where the query allows (what a backfill stages).
        """
        op = query.op
        token_key = op.token_key or "NextPageToken"
        request = query.to_request(start, end)
        window = (request["TimePeriod"]["Start"], request["TimePeriod"]["End"])
        group_defs = request.get("GroupBy", [])
        # a columnar chain's pages of the common shape are decoded straight into columns (parse.fast_decoder);
        # any other page, and every page of a transport without call_decoded, comes back as a dict for parse_page
        decode = fast_decoder(group_defs, query.metrics, query.granularity) if columnar else None
        # dedup bookkeeping: what was yielded (identity -> value signature) and which quarantine entries
        emitted: dict[tuple[str, tuple[str, ...]], int] = {}
        emitted_quarantine: set[int] = set()
        passes = 0
        while True:
            passes += 1
            seen: set[tuple[str, tuple[str, ...]]] = set()
            tokens: set[str] = set()
            token: str | None = resume_token if passes == 1 else None
            page_no = resume_page if passes == 1 and resume_token else 0
            restart = False
            contents: set[int] = set()
            idle = 0
            while True:
                page_no += 1
                if self.max_chain_pages is not None and page_no > self.max_chain_pages:
                    raise BudgetExhaustedError(
                        f"page chain limit reached: {page_no - 1} pages of {window[0]}..{window[1]} "
                        f"(${(page_no - 1) * PRICE_PER_REQUEST_USD}); stopped before sending more "
                        "(--max-pages-per-chain N raises it, 0 for no limit)"
                    )
                params = dict(request)
                if token is not None:
                    params[token_key] = token
                try:
                    payload = await self._call(query.operation, params, decode)
                except (InvalidNextTokenError, RequestChangedError) as exc:
                    if token is None or passes > 1:
                        raise
                    log.warning("%s: page %d: %s; restarting the page chain from page 1", self.name, page_no, exc)
                    self.stats.restarts += 1
                    restart = True
                    break
                if type(payload) is FastPage:  # every group valid, grouped as asked (the decoder checked)
                    parsed = ParsedPage(page=page_no, next_token=payload.next_token, columns=payload.columns)
                else:
                    _check_grouping(payload, group_defs, page_no)
                    parsed = parse_page(
                        payload, page=page_no, granularity=query.granularity, group_definitions=group_defs,
                        metrics=query.metrics, columnar=columnar,
                    )
                del payload  # the decoded page is garbage now: do not hold it while the consumer has the page
                parsed.restarted = passes > 1 and page_no == 1
                token = parsed.next_token
                if token is not None:
                    if token in tokens:
                        raise MalformedResponseError(
                            f"page {page_no}: NextPageToken repeats an earlier token; refusing to loop"
                        )
                    tokens.add(token)
                    key = _content_key(parsed)
                    idle = idle + 1 if key in contents or not (parsed.n_records or parsed.quarantined) else 0
                    contents.add(key)
                    if idle >= self.idle_pages:
                        raise MalformedResponseError(
                            f"page {page_no}: {idle} pages in a row brought no new groups, each with a fresh "
                            "NextPageToken; refusing to page on (a server that never ends a chain costs $0.01 "
                            "a page)"
                        )
                _outside_window(parsed, window)
                if dedup:
                    self._dedup(parsed, seen, emitted, emitted_quarantine)
                self.stats.pages += 1
                self.stats.records += parsed.n_records
                self.stats.quarantined += len(parsed.quarantined)
                yield parsed
                if token is None:
                    return
            if not restart:  # pragma: no cover - the inner loop either returns or breaks to restart
                return

    def _dedup(
        self,
        parsed: ParsedPage,
        seen: set[tuple[str, tuple[str, ...]]],
        emitted: dict[tuple[str, tuple[str, ...]], int],
        emitted_quarantine: set[int],
    ) -> None:
        """In-pass duplicates are quarantined; after a restart, what was already yielded is skipped if it
        is unchanged, and a changed value fails the query (the data was restated while paging: what was
        already written is partly stale, so the output would match neither version)."""
        if not self._dedup_columns(parsed, seen, emitted):
            self._dedup_records(parsed, seen, emitted)
        if parsed.quarantined:  # a restarted chain serves its malformed groups again: report each once
            fresh: list[Quarantined] = []
            for q in parsed.quarantined:
                key = hash((q.period_start, q.reason, orjson.dumps(q.raw, option=orjson.OPT_SORT_KEYS)))
                if key not in emitted_quarantine:
                    emitted_quarantine.add(key)
                    fresh.append(q)
            parsed.quarantined = fresh

    @staticmethod
    def _dedup_columns(parsed: ParsedPage, seen: set[tuple[str, tuple[str, ...]]],
                       emitted: dict[tuple[str, tuple[str, ...]], int]) -> bool:
        """:meth:`_dedup` of a columnar page with nothing to drop (no duplicate, no replay: every page of a
        first pass, nearly always), on its columns, so they stay columns. The identities and signatures are
        the records' own (a record's keys are its non-null key values; its signature is its metrics' texts as
        :func:`_canonical` writes them), so a later page deduplicated as records compares with these. False,
        having changed nothing, when the page is not columnar or has something to drop: :meth:`_dedup_records`
        then does it."""
        cols = parsed.columns
        if cols is None or cols.multi:
            return False
        nkeys = len(cols.names)
        if nkeys == 2 and None not in cols.key1 and None not in cols.key2:
            keys: list[tuple[str, ...]] = list(zip(cols.key1, cols.key2, strict=True))  # type: ignore[arg-type]
        elif nkeys == 1 and None not in cols.key1:
            keys = list(zip(cols.key1))  # type: ignore[arg-type]
        else:  # a Total-only record (no keys) or no GroupBy: the same rule, row by row
            keys = [tuple(k for k in pair[:nkeys] if k is not None) for pair in zip(cols.key1, cols.key2, strict=True)]
        idents = list(zip(cols.period_start, keys, strict=True))
        fresh = set(idents)
        # what this pass has seen was yielded (in this pass or an earlier one), so it is in ``emitted``: one
        # look there finds a duplicate and a replay alike (the keys view looks up the page's idents, not the
        # other way round)
        if len(fresh) != len(idents) or not emitted.keys().isdisjoint(fresh):
            return False
        seen |= fresh
        # a row's amount_text is what fmt writes of its amount: the records' signature, from the text as it is
        emitted.update(zip(idents, [hash(((m, _canonical(t), u),))
                                    for m, t, u in zip(cols.metric, cols.amount_text, cols.unit, strict=True)],
                           strict=True))
        return True

    def _dedup_records(self, parsed: ParsedPage, seen: set[tuple[str, tuple[str, ...]]],
                       emitted: dict[tuple[str, tuple[str, ...]], int]) -> None:
        """:meth:`_dedup` record by record: quarantines in-pass duplicates, skips unchanged replays."""
        kept: list[CostRecord] = []
        for rec in parsed.records:
            ident = rec.identity
            if ident in seen:
                parsed.quarantined.append(
                    Quarantined("duplicate group: same period and keys already received in this query",
                                rec.period_start, rec.period_end, parsed.page, rec.to_json())
                )
                continue
            seen.add(ident)
            signature = hash(tuple((name, _canonical(fmt(m.amount)), m.unit) for name, m in rec.metrics.items()))
            before = emitted.get(ident)
            if before is not None:
                if before != signature:
                    raise DataChangedError(
                        f"Cost Explorer's data changed while paging (a restatement): {rec.period_start} "
                        f"{rec.keys} differs from what an earlier page gave; what was written is partly "
                        "stale; run the query again"
                    )
                self.stats.replayed += 1
                continue
            emitted[ident] = signature
            kept.append(rec)
        parsed.records = kept

    async def records(self, query: CostQuery) -> AsyncIterator[CostRecord | Quarantined]:
        """Every record and quarantined entry of ``query``, in page order."""
        async for page in self.pages(query):
            for rec in page.records:
                yield rec
            for q in page.quarantined:
                yield q

    # ------------------------------------------------------------------------------ other operations

    async def _paged_list(self, op: Operation, params: dict[str, Any]) -> list[Any]:
        assert op.items_key is not None and op.token_key is not None, f"{op.name} does not page a list"
        return await self.paged_list(op.name, params, items=op.items_key, token_in=op.token_key)

    async def paged_list(self, operation: str, params: Mapping[str, Any], *, items: str, token_in: str,
                         token_out: str | None = None) -> list[Any]:
        """Every entry of a paged listing of any service this client calls: the request is resent with
        ``token_in`` set to the answer's ``token_out`` (default: the same name) until an answer has none. Each
        page passes the governor (botocore's paginators would not); a chain stops at ``max_chain_pages``; a
        repeated token, or ``idle_pages`` pages in a row that bring nothing new, is refused."""
        token_out = token_out or token_in
        entries: list[Any] = []
        tokens: set[str] = set()
        contents: set[int] = set()
        token: str | None = None
        pages = idle = 0
        while True:
            pages += 1
            if self.max_chain_pages is not None and pages > self.max_chain_pages:
                raise BudgetExhaustedError(f"{operation}: page chain limit reached: {pages - 1} pages; stopped "
                                           "before sending more (--max-pages-per-chain N raises it, 0 for no limit)")
            req = dict(params)
            if token is not None:
                req[token_in] = token
            payload = await self.call(operation, req)
            batch = payload.get(items, [])
            if not isinstance(batch, list):
                raise MalformedResponseError(f"{operation}: {items} is not a list")
            entries.extend(batch)
            nxt = payload.get(token_out)
            if not nxt:
                return entries
            if not isinstance(nxt, str) or nxt in tokens:
                raise MalformedResponseError(f"{operation}: {token_out} repeats an earlier token")
            tokens.add(nxt)
            key = hash(orjson.dumps(batch, option=orjson.OPT_SORT_KEYS))
            idle = idle + 1 if key in contents or not batch else 0
            contents.add(key)
            if idle >= self.idle_pages:
                raise MalformedResponseError(f"{operation}: {idle} pages in a row brought nothing new, each with a "
                                             f"fresh {token_out}; refusing to page on")
            token = nxt

    async def dimension_values(
        self,
        dimension: str,
        start: str,
        end: str,
        *,
        search: str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Every value of ``dimension`` with data in ``start``..``end`` (GetDimensionValues, all pages)."""
        params: dict[str, Any] = {
            "TimePeriod": {"Start": start, "End": end},
            "Dimension": dimension,
            "Context": "COST_AND_USAGE",
        }
        if search:
            params["SearchString"] = search
        if filter:
            params["Filter"] = dict(filter)
        items = await self._paged_list(DIMENSION_VALUES, params)
        values: list[str] = []
        for item in items:
            value = item.get("Value") if isinstance(item, Mapping) else None
            if not isinstance(value, str):
                raise MalformedResponseError(f"GetDimensionValues: entry without a Value: {item!r:.80}")
            values.append(value)
        return values

    async def tags(self, start: str, end: str, *, tag_key: str | None = None) -> list[str]:
        """Tag keys (or, with ``tag_key``, that key's values) with data in ``start``..``end`` (GetTags)."""
        params: dict[str, Any] = {"TimePeriod": {"Start": start, "End": end}}
        if tag_key:
            params["TagKey"] = tag_key
        items = await self._paged_list(TAGS, params)
        if not all(isinstance(t, str) for t in items):
            raise MalformedResponseError("GetTags: Tags holds a non-string")
        return items

    async def cost_forecast(
        self,
        start: str,
        end: str,
        *,
        metric: str = "UNBLENDED_COST",
        granularity: str = "MONTHLY",
        filter: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """GetCostForecast as returned (``Total`` and ``ForecastResultsByTime``)."""
        params: dict[str, Any] = {
            "TimePeriod": {"Start": start, "End": end},
            "Metric": metric,
            "Granularity": granularity,
        }
        if filter:
            params["Filter"] = dict(filter)
        return await self.call(COST_FORECAST.name, params)


@asynccontextmanager
async def open_client(
    settings: FetchSettings,
    *,
    stats: Stats | None = None,
    budget: RequestBudget | None = None,
    transport: Transport | None = None,
    clock: Clock | None = None,
    service: str = "ce",
) -> AsyncIterator[CostExplorer]:
    """A :class:`CostExplorer` for ``settings``; the AWS client is closed on exit.

    ``transport`` overrides the AWS transport (tests pass a ``MockTransport``). ``service`` opens another AWS
    API (``rds``, ``dynamodb``, ``elasticache``: the inventory) behind the same governor, retry, breaker and
    request deadline; only :meth:`CostExplorer.call` applies to it (the paging methods are Cost Explorer's).
    """
    clock = clock or SystemClock()
    governor = Governor(
        GovernorSettings(max_rps=settings.max_rps, max_concurrency=settings.max_concurrency, burst=settings.burst),
        clock=clock,
    )
    breaker = Breaker(
        failure_threshold=settings.breaker_threshold, reset_timeout_s=settings.breaker_reset_s, clock=clock,
        name=settings.name,
    )
    budget = budget if budget is not None else RequestBudget(settings.max_requests)

    def client(t: Transport) -> CostExplorer:
        return CostExplorer(t, governor=governor, breaker=breaker, retry_policy=settings.retry, clock=clock,
                            stats=stats, budget=budget, name=settings.name,
                            request_timeout_s=settings.request_timeout_s, max_chain_pages=settings.max_chain_pages,
                            idle_pages=settings.idle_pages)

    if transport is not None:
        yield client(transport)
        return
    from dbcost.transport.aws import AwsTransport

    async with AwsTransport(
        service=service,
        profile=settings.profile,
        region=settings.region,
        endpoint_url=settings.endpoint_url,
        role_arn=settings.role_arn,
        external_id=settings.external_id,
        credentials=settings.credentials,
        max_pool_connections=max(10, settings.max_concurrency * 2),
        # botocore's own timeouts restart with every byte; the client's deadline is the real one
        connect_timeout_s=min(10.0, settings.request_timeout_s),
        read_timeout_s=settings.request_timeout_s,
    ) as aws:
        yield client(aws)
