"""The audit of the seams: every family of foreign exception that ``transport/aws.py`` and the store translate,
one test each, each landing on the dbcost error (and the retry decision) it must, in one line."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from botocore import exceptions as bce
from botocore.parsers import ResponseParserError

from dbcost.config import StoreSettings
from dbcost.errors import (
    AccessDeniedError,
    ApiError,
    ConfigError,
    CredentialsError,
    DataUnavailableError,
    DbcostError,
    InvalidNextTokenError,
    NoCredentialsError,
    QueryError,
    RequestChangedError,
    ServerError,
    ServiceValidationError,
    StoreError,
    ThrottledError,
    TransportError,
    is_retryable,
)
from dbcost.store import Store
from dbcost.store._db import Database
from dbcost.transport.aws import translate_errors


def client_error(code: str, status: int, message: str = "it went wrong") -> bce.ClientError:
    body = {"Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "r-1"}}
    return bce.ClientError(body, "GetCostAndUsage")


FAMILIES: list[tuple[str, Callable[[], BaseException], type[DbcostError], bool]] = [
    ("throttle code", lambda: client_error("LimitExceededException", 400), ThrottledError, True),
    ("429 without a code", lambda: client_error("429", 429, ""), ThrottledError, True),
    ("invalid token", lambda: client_error("InvalidNextTokenException", 400), InvalidNextTokenError, False),
    ("request changed", lambda: client_error("RequestChangedException", 400), RequestChangedError, False),
    ("expired credentials", lambda: client_error("ExpiredTokenException", 400), CredentialsError, False),
    ("access code", lambda: client_error("AccessDeniedException", 400), AccessDeniedError, False),
    ("403 without a code", lambda: client_error("403", 403), AccessDeniedError, False),
    ("validation", lambda: client_error("ValidationException", 400), ServiceValidationError, False),
    ("data unavailable", lambda: client_error("DataUnavailableException", 400), DataUnavailableError, False),
    ("5xx", lambda: client_error("InternalServerError", 500), ServerError, True),
    ("502 html page", lambda: client_error("502", 502, "Bad Gateway"), ServerError, True),
    ("unknown code", lambda: client_error("SomethingNewException", 400), ApiError, False),
    # raised while signing, before anything is sent: marked NotSent (the client counts no request for them)
    ("no credentials", bce.NoCredentialsError, NoCredentialsError, False),
    ("unknown profile", lambda: bce.ProfileNotFound(profile="nope"), NoCredentialsError, False),
    ("credential retrieval", lambda: bce.CredentialRetrievalError(provider="sso", error_msg="x"), NoCredentialsError,
     False),
    ("param validation", lambda: bce.ParamValidationError(report="Invalid type\nfor parameter X"), QueryError, False),
    ("bad region", lambda: bce.InvalidRegionError(region_name="bad region!"), ConfigError, False),
    ("connect timeout", lambda: bce.ConnectTimeoutError(endpoint_url="http://h"), TransportError, True),
    ("read timeout", lambda: bce.ReadTimeoutError(endpoint_url="http://h"), TransportError, True),
    ("connection refused", lambda: bce.EndpointConnectionError(endpoint_url="http://h"), TransportError, True),
    ("connection closed", lambda: bce.ConnectionClosedError(endpoint_url="http://h"), TransportError, True),
    ("http client", lambda: bce.HTTPClientError(error="reset"), TransportError, True),
    ("body not parsed", lambda: ResponseParserError("the response body is not JSON"), TransportError, True),
    ("body not UTF-8", lambda: UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), TransportError,
     True),
    ("aiohttp payload", lambda: aiohttp.ClientPayloadError("Response payload is not completed"), TransportError, True),
    ("timeout", TimeoutError, TransportError, True),
    ("socket reset", lambda: ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), TransportError, True),
    ("other botocore", lambda: bce.DataNotFoundError(data_path="x"), ApiError, False),
]


@pytest.mark.parametrize(("make", "expected", "retried"), [f[1:] for f in FAMILIES], ids=[f[0] for f in FAMILIES])
def test_each_foreign_exception_family_maps_to_its_dbcost_error(
    make: Callable[[], BaseException], expected: type[DbcostError], retried: bool
) -> None:
    """Raised inside translate_errors, each family leaves as its dbcost error, chained, on one line, and is
    retried exactly when it should be (the AttributeError of the missing bce.ResponseParserError is gone)."""
    with pytest.raises(DbcostError) as info, translate_errors("GetCostAndUsage"):
        raise make()
    exc = info.value
    assert type(exc) is expected, repr(exc)
    assert is_retryable(exc) is retried
    assert "\n" not in str(exc)
    assert exc.__cause__ is not None or isinstance(exc, CredentialsError)


def test_dbcost_errors_pass_through_unchanged() -> None:
    """An error already translated (a deadline's TransportError) is not wrapped again."""
    original = TransportError("GetCostAndUsage: timed out after 1s")
    with pytest.raises(TransportError) as info, translate_errors("GetCostAndUsage"):
        raise original
    assert info.value is original


def test_the_store_translates_an_oserror_under_it(tmp_path: Path) -> None:
    """An OSError raised inside a store operation (the filesystem under DuckDB) is a StoreError naming the store
    and the operation."""
    with Store(StoreSettings(path=tmp_path / "s.duckdb")) as store:
        db: Database = store._db
        with (pytest.raises(StoreError, match=r"store .*s\.duckdb: stage page: .*No space left on device"),
              db.doing_as("stage page")):
            raise OSError(errno.ENOSPC, "No space left on device")


def test_the_store_puts_duckdb_messages_on_one_line(tmp_path: Path) -> None:
    """DuckDB's multi-line messages (a blank line, 'LINE 1:') become one StoreError line."""
    with Store(StoreSettings(path=tmp_path / "s.duckdb")) as store, pytest.raises(StoreError) as info:
        store._db.run("SELECT no_such_column FROM runs")
    assert "\n" not in str(info.value) and "no_such_column" in str(info.value)


def test_a_store_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    """A store file that is not DuckDB: one StoreError line naming --db."""
    bad = tmp_path / "s.duckdb"
    bad.write_bytes(b"not a database\n" * 100)
    with pytest.raises(StoreError) as info:
        Store(StoreSettings(path=bad)).close()
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("operation", "code", "message", "not_enabled"),
    [
        ("GetCostAndUsageWithResources", "DataUnavailableException", "The requested data is unavailable.", True),
        ("GetCostAndUsageWithResources", "ValidationException", "Resource level data is not enabled", True),
        ("GetCostAndUsageWithResources", "AccessDeniedException", "User has not opted in to this feature", True),
        ("GetCostAndUsageWithResources", "ValidationException", "start date is too old for hourly", False),
        ("GetCostAndUsageWithResources", "AccessDeniedException", "not authorized to perform ce:Get", False),
        ("GetCostAndUsage", "DataUnavailableException", "The requested data is unavailable.", False),
    ],
)
def test_not_enabled_is_named_only_for_an_opt_in_operation(operation: str, code: str, message: str,
                                                            not_enabled: bool) -> None:
    """An opt-in operation's "not enabled" answer becomes NotEnabledError naming the setting (one line, not retried);
    the same code elsewhere, or another rule, keeps its own mapping."""
    from dbcost.errors import NotEnabledError
    from dbcost.operations import COST_AND_USAGE_WITH_RESOURCES

    with pytest.raises(DbcostError) as info, translate_errors(operation):
        raise bce.ClientError({"Error": {"Code": code, "Message": message},
                               "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "r-1"}}, operation)
    exc = info.value
    assert isinstance(exc, NotEnabledError) is not_enabled, repr(exc)
    assert not is_retryable(exc)
    if not_enabled:
        assert COST_AND_USAGE_WITH_RESOURCES.opt_in and COST_AND_USAGE_WITH_RESOURCES.opt_in in str(exc)
        assert "\n" not in str(exc)
