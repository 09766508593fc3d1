"""Every exception dbcost raises, in one tree.

Foreign exceptions (botocore, aiohttp, duckdb, aiokafka, asyncpg) are translated into this tree once, at
the seam that imports the foreign library (``dbcost.transport.aws`` and each sink), and chained with
``raise ... from exc``. Nothing above those seams catches a foreign exception.

Whether an error is worth retrying is a property of its class, not a string compared at the call site:
``Retryable`` and ``Throttle`` are marker bases that the retry layer and the governor test with
``isinstance``; ``NotSent`` marks an error raised before the request reached the wire (the client counts
no request for it: nothing was sent, nothing can be billed).

::

    DbcostError
    ├── UsageError                      bad input from the user: exit code 2, nothing sent
    │   ├── QueryError                  a CostQuery rule broken (field + rule in the message)
    │   └── ConfigError                 unreadable or invalid file: targets, policy, topology, sink URL
    ├── ApiError                        Cost Explorer (or another AWS API) answered with an error
    │   ├── ThrottledError              [Retryable, Throttle]  LimitExceededException, Throttling, ...
    │   ├── ServerError                 [Retryable]  HTTP 5xx
    │   ├── InvalidNextTokenError       the page token is bad or expired: restart the page chain
    │   ├── RequestChangedError         the request changed between pages: restart the page chain
    │   ├── AccessDeniedError           credentials valid but not allowed
    │   ├── ServiceValidationError      ValidationException (a date rule the client could not check)
    │   └── DataUnavailableError        DataUnavailable / BillExpiration / ResourceNotFound ...
    │       └── NotEnabledError         an opt-in Cost Explorer setting is off for the payer (names it)
    ├── TransportError                  [Retryable]  no HTTP answer: connection dropped, timeout, bad body
    ├── CredentialsError                no usable AWS credentials / profile not found
    │   └── NoCredentialsError          [NotSent]  none resolved on this machine: the request never left
    ├── MalformedResponseError          the page as a whole is not a Cost Explorer response
    ├── DataChangedError                the data was restated while a streamed query was paging
    ├── CircuitOpenError                the breaker is open: calls fail fast until a probe succeeds
    ├── RetryExhaustedError             attempts or the time budget ran out (the last error chained)
    ├── BudgetExhaustedError            --max-requests / --max-cost-usd reached: stopped cleanly
    ├── SinkError                       a sink failed to write
    │   └── TransientSinkError          [Retryable]  worth another try (broker unavailable, ...)
    ├── OutputError                     a file dbcost writes (--output, --metrics-file) could not be written
    ├── NotifyError                     a webhook (quota notification) could not be delivered
    │   └── TransientNotifyError        [Retryable]  5xx, timeout, connection refused
    └── StoreError                      the embedded DuckDB store failed or holds unexpected data
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "ApiError",
    "BudgetExhaustedError",
    "CircuitOpenError",
    "ConfigError",
    "CredentialsError",
    "DataChangedError",
    "DataUnavailableError",
    "DbcostError",
    "InvalidNextTokenError",
    "MalformedResponseError",
    "NoCredentialsError",
    "NotEnabledError",
    "NotSent",
    "NotifyError",
    "OutputError",
    "QueryError",
    "RequestChangedError",
    "RetryExhaustedError",
    "Retryable",
    "ServerError",
    "ServiceValidationError",
    "SinkError",
    "StoreError",
    "Throttle",
    "ThrottledError",
    "TransientNotifyError",
    "TransientSinkError",
    "TransportError",
    "UsageError",
    "is_retryable",
    "is_sent",
    "is_throttle",
]


class DbcostError(Exception):
    """Base of every error dbcost raises on purpose."""


class Retryable:
    """Marker: another attempt, after a backoff, may succeed."""


class Throttle(Retryable):
    """Marker: the service asked us to slow down; the governor cuts its rate."""


class NotSent:
    """Marker: the request never left this machine (nothing to sign it with): no request is counted for it."""


def is_sent(exc: BaseException) -> bool:
    """False when ``exc`` carries the ``NotSent`` marker (the request it ended never reached the wire)."""
    return not isinstance(exc, NotSent)


def is_retryable(exc: BaseException) -> bool:
    """True when ``exc`` carries the ``Retryable`` marker."""
    return isinstance(exc, Retryable)


def is_throttle(exc: BaseException) -> bool:
    """True when ``exc`` carries the ``Throttle`` marker."""
    return isinstance(exc, Throttle)


class UsageError(DbcostError):
    """The user's input is wrong; the CLI exits 2 and sends no request."""


class QueryError(UsageError):
    """A Cost Explorer query rule is broken. The message names the field and the rule."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class ConfigError(UsageError):
    """A file or URL the user gave cannot be read or is invalid; the message says which and where."""


class ApiError(DbcostError):
    """An AWS API answered with an error."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int | None = None,
        operation: str = "",
        request_id: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.operation = operation
        self.request_id = request_id

    def __str__(self) -> str:
        where = f"{self.operation}: " if self.operation else ""
        code = f"{self.code}: " if self.code else ""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{where}{code}{self.args[0]}{status}"


class ThrottledError(ApiError, Throttle):
    """The service throttled the request (Cost Explorer: ``LimitExceededException``)."""


class ServerError(ApiError, Retryable):
    """HTTP 5xx from the service."""


class InvalidNextTokenError(ApiError):
    """The NextPageToken is invalid or expired; the page chain must restart without a token."""


class RequestChangedError(ApiError):
    """The request differs from the one the token was issued for; the page chain must restart."""


class AccessDeniedError(ApiError):
    """The credentials are valid but not allowed to call the operation."""


class ServiceValidationError(ApiError):
    """The service rejected the request as invalid (``ValidationException``)."""


class DataUnavailableError(ApiError):
    """The service has no data for the request (data unavailable, bill expired, resource not found)."""


class NotEnabledError(DataUnavailableError):
    """The payer has not opted in to the data the operation serves (resource-level data); ``setting`` names the
    Cost Explorer setting to turn on, and the message is one line saying so."""

    def __init__(self, message: str, *, setting: str, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.setting = setting

    def __str__(self) -> str:
        return str(self.args[0])


class TransportError(DbcostError, Retryable):
    """No usable HTTP answer: connection refused or dropped, timeout, truncated or unparseable body."""


class CredentialsError(DbcostError):
    """No usable AWS credentials (no chain entry resolved, or the named profile does not exist)."""


class NoCredentialsError(CredentialsError, NotSent):
    """No credentials resolved on this machine (no chain entry, an unknown profile, SSO not logged in): the
    request could not be signed, so it was never sent."""


class MalformedResponseError(DbcostError):
    """A response that is not a Cost Explorer response at all (not a page with ResultsByTime)."""


class DataChangedError(DbcostError):
    """Cost Explorer's data changed between the pages of one streamed query (a page-chain restart found a
    different value for a group already written): the output would match neither version."""


class CircuitOpenError(DbcostError):
    """The circuit breaker is open: the target failed repeatedly; calls fail fast until a probe passes."""


class RetryExhaustedError(DbcostError):
    """Bounded attempts or the total time budget ran out; the last error is the ``__cause__``."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class BudgetExhaustedError(DbcostError):
    """The request or dollar cap was reached; the run stopped before spending more."""


class SinkError(DbcostError):
    """A sink failed to write a batch."""


class TransientSinkError(SinkError, Retryable):
    """A sink failure that another attempt may fix (broker or database temporarily unavailable)."""


class OutputError(DbcostError):
    """A file dbcost writes could not be written (disk full, read-only filesystem, no permission); the message
    names the file and the cause."""


class NotifyError(DbcostError):
    """A notification (webhook) could not be delivered."""


class TransientNotifyError(NotifyError, Retryable):
    """A notification failure another attempt may fix (HTTP 5xx, timeout, connection refused)."""


class StoreError(DbcostError):
    """The embedded store failed, or holds data this version cannot use."""
