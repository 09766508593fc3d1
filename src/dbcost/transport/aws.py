"""The only module that imports aioboto3 / aiobotocore / botocore.

* Client lifecycle as an async context manager (``async with AwsTransport(...) as t``).
* Credentials: the standard AWS chain (env, shared files, SSO, container/instance roles) via
  ``profile``; optionally a role to assume, with credentials refreshed before they expire.
* Endpoint: ``endpoint_url`` if given, else botocore's own ``AWS_ENDPOINT_URL_COST_EXPLORER`` /
  ``AWS_ENDPOINT_URL`` / config-file resolution, else the public endpoint.
* botocore's retries are set to a single attempt: ``dbcost.retry`` is the one retry layer.
* Every botocore / aiohttp exception is mapped here, once, into :mod:`dbcost.errors` (``from exc``).
  Messages never contain credentials: only codes, statuses, operation names and the service's message.
* Any AWS service: ``service`` is botocore's name (``ce`` by default; ``rds``, ``dynamodb``, ``elasticache``
  for the inventory, ``s3``/``kinesis`` for the sinks); :meth:`AwsTransport.call` takes the operation's API
  name (``DescribeDBInstances``) whatever the protocol (JSON, query/XML, REST).
* An access denial names the IAM action that is missing (``rds:DescribeDBInstances``: the service's signing
  name and the operation), in one line, so the fix is one line of policy; for Cost Explorer, RDS, DynamoDB,
  ElastiCache and Kinesis, whose actions are named after their operations (S3's are not).

The mapping, family by family (``tests/hostile/test_seams.py`` has a test for each):

==============================================  =========================================================
raised by botocore / aiohttp / the socket        becomes
==============================================  =========================================================
``ClientError`` (the service answered an error)  by code and status: Throttled (429 too), InvalidNextToken,
                                                 RequestChanged, Credentials (expired), AccessDenied (403
                                                 too), ServiceValidation, DataUnavailable, Server (5xx),
                                                 else ApiError; an operation with an opt-in setting that
                                                 answers "not enabled": NotEnabled (names the setting)
no/partial credentials, unknown profile, SSO     NoCredentialsError (a CredentialsError, marked NotSent)
``ParamValidationError``                         QueryError (exit 2)
``InvalidRegionError``, an endpoint URL botocore ConfigError naming ``--region`` / ``--endpoint-url``
cannot use (``ValueError`` when the client is    (exit 2)
made)
connect/read timeouts, connection refused,       TransportError (retried)
closed or reset, TLS, proxy; aiohttp's
``ClientError`` (a body cut short included);
``OSError``; ``TimeoutError``
``botocore.parsers.ResponseParserError``, a      TransportError (retried): a body that is not Cost
body that is not UTF-8, a 2xx body that is not   Explorer's JSON (a proxy's or a portal's page), refused
a JSON object                                    by a ``before-parse`` hook before botocore reads it as {}
any other ``BotoCoreError``                      ApiError
==============================================  =========================================================

The response path (where this module departs from botocore, and why). A 2xx answer to a record-shaped Cost
Explorer operation (GetCostAndUsage, GetCostAndUsageWithResources: ``raw_operations``) is decoded by orjson and
returned as decoded, without botocore's walk of the output shape: that walk calls a Python handler per field of
every group (about six per group), and it was most of the CPU of a backfill (``bench/bench_cpu.py``). The walk
adds nothing to these shapes: they hold only strings, booleans, lists and maps (no timestamp, blob or float to
convert), and :mod:`dbcost.parse` validates every field itself. What the walk did that the raw path does not: it
dropped keys the model does not know (a quarantined group's raw JSON now keeps them: it is what was received) and
members that are ``null`` (the parser treats a ``null`` as absent where it matters). Everything else is still
botocore's: credentials, SigV4, endpoints, the HTTP exchange, the ``before-parse`` guard below, every error answer
(status >= 300: botocore's error parser, then ``ClientError`` and the mapping above), every other operation and
service, and a 2xx body orjson cannot decode (botocore's own parser then, so such a body behaves exactly as
before). The parser is installed as the session's ``response_parser_factory`` component (a public botocore hook)
for the ``ce`` service only.

A caller that knows the page's shape can go one step further: :meth:`AwsTransport.call_decoded` hands the
parser a ``decode`` function (:func:`dbcost.parse.fast_decoder`, through a context variable, so it is this
task's call's alone) that turns the body straight into its result, with no dict per group. When ``decode``
answers None (a body of another shape) the body takes the orjson path above and the call returns the dict,
so what a page that is not of the common shape becomes is decided where it always was.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextlib import AsyncExitStack
from typing import Any

import aioboto3
import aiohttp
import orjson
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioDeferredRefreshableCredentials
from aiobotocore.parsers import AioJSONParser, AioResponseParserFactory
from botocore import exceptions as bce
from botocore import xform_name
from botocore.parsers import ResponseParserError

from dbcost.errors import (
    AccessDeniedError,
    ApiError,
    ConfigError,
    CredentialsError,
    DataUnavailableError,
    DbcostError,
    InvalidNextTokenError,
    NoCredentialsError,
    NotEnabledError,
    QueryError,
    RequestChangedError,
    ServerError,
    ServiceValidationError,
    ThrottledError,
    TransportError,
)
from dbcost.operations import OPERATIONS
from dbcost.sinks.base import redact_url

__all__ = ["THROTTLE_CODES", "AwsTransport", "assume_role_credentials", "chain_region", "translate_errors"]

#: Error codes that mean "slow down" (botocore's standard retry list + Cost Explorer's own).
THROTTLE_CODES = frozenset(
    {
        "LimitExceededException",  # Cost Explorer, HTTP 400 "Rate limit exceeded"
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "AuthFailure",
    }
)
#: services whose IAM action for an operation is the operation's own name (an access denial names it)
_ACTION_IS_OPERATION = frozenset({"ce", "rds", "dynamodb", "elasticache", "kinesis"})
_EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
_DATA_CODES = frozenset(
    {
        "DataUnavailableException",
        "BillExpirationException",
        "ResourceNotFoundException",
        "BillingViewHealthStatusException",
        "UnresolvableUsageUnitException",
    }
)
_SERVER_CODES = frozenset(
    {"InternalServerError", "InternalFailure", "ServiceUnavailable", "InternalError", "ServiceException"}
)


def _not_enabled(operation: str, code: str, message: str) -> str | None:
    """The opt-in setting to name when ``operation`` answered that the payer has not opted in, else None.

    Which answer that is, is inferred (not confirmed against AWS): botocore's model gives
    GetCostAndUsageWithResources no error of its own for it, only ``DataUnavailableException`` ("The requested
    data is unavailable."), so that code on an opt-in operation is read as "not enabled"; a Validation or
    AccessDenied answer whose message says the data is not enabled / opted in is read the same way.
    """
    op = OPERATIONS.get(operation)
    if op is None or op.opt_in is None:
        return None
    low = message.lower()
    says_so = any(w in low for w in ("not enabled", "opt-in", "opt in", "opted in", "not opted"))
    if code == "DataUnavailableException" or (says_so and code in ("ValidationException", "AccessDeniedException")):
        return op.opt_in
    return None


def _from_client_error(exc: bce.ClientError, operation: str, iam_action: str | None = None) -> DbcostError:
    err = exc.response.get("Error", {}) or {}
    meta = exc.response.get("ResponseMetadata", {}) or {}
    code = str(err.get("Code", "") or "")
    message = " ".join(str(err.get("Message", "") or "").split()) or "no message"  # one line, whatever it held
    status = meta.get("HTTPStatusCode")
    status = int(status) if isinstance(status, int | str) and str(status).isdigit() else None
    kw: dict[str, Any] = {
        "code": code,
        "status": status,
        "operation": operation,
        "request_id": str(meta.get("RequestId", "") or ""),
    }
    setting = _not_enabled(operation, code, message)
    if setting is not None:
        return NotEnabledError(
            f"{operation}: resource-level data is not enabled for this payer account; turn on {setting} "
            f"(in the management account; it covers the last 14 days) [{code}]",
            setting=setting, **kw)
    if code in THROTTLE_CODES or status == 429:
        return ThrottledError(message, **kw)
    if code == "InvalidNextTokenException":
        return InvalidNextTokenError(message, **kw)
    if code == "RequestChangedException":
        return RequestChangedError(message, **kw)
    if code in _EXPIRED_CODES:
        return CredentialsError(f"{operation}: {code}: AWS credentials have expired")
    if code in _ACCESS_CODES or status == 403:
        if iam_action:
            message = f"the credentials lack the IAM permission {iam_action} (add it to their policy): {message}"
        return AccessDeniedError(message, **kw)
    if code == "ValidationException":
        return ServiceValidationError(message, **kw)
    if code in _DATA_CODES:
        return DataUnavailableError(message, **kw)
    if code in _SERVER_CODES or (status is not None and status >= 500):
        return ServerError(message, **kw)
    return ApiError(message, **kw)


@contextlib.contextmanager
def translate_errors(operation: str, *, iam_action: str | None = None) -> Iterator[None]:
    """Map botocore/aiohttp exceptions raised inside the block into :mod:`dbcost.errors` (an access denial
    names ``iam_action`` when given)."""
    try:
        yield
    except DbcostError:
        raise
    except bce.ClientError as exc:
        raise _from_client_error(exc, operation, iam_action) from exc
    except (bce.NoCredentialsError, bce.PartialCredentialsError, bce.ProfileNotFound,
            bce.CredentialRetrievalError, bce.TokenRetrievalError, bce.SSOError,
            bce.UnauthorizedSSOTokenError) as exc:
        # raised while signing, before anything is sent: the client counts no request for it
        raise NoCredentialsError(f"{operation}: {exc}") from exc
    except bce.ParamValidationError as exc:
        raise QueryError("request", _one_line(exc)) from exc
    except bce.InvalidRegionError as exc:
        raise ConfigError(f"--region: {_one_line(exc)}") from exc
    except (bce.ConnectTimeoutError, bce.ReadTimeoutError) as exc:
        raise TransportError(f"{operation}: timed out ({type(exc).__name__})") from exc
    except (bce.ConnectionError, bce.ConnectionClosedError, bce.HTTPClientError) as exc:
        # ConnectionError covers EndpointConnectionError, SSLError and ProxyConnectionError
        raise TransportError(f"{operation}: connection failed ({type(exc).__name__})") from exc
    except ResponseParserError as exc:
        raise TransportError(f"{operation}: the response body could not be parsed: {_one_line(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise TransportError(f"{operation}: the response body is not UTF-8 text") from exc
    except aiohttp.ClientError as exc:
        raise TransportError(f"{operation}: {type(exc).__name__}: {_one_line(exc)}") from exc
    except TimeoutError as exc:
        raise TransportError(f"{operation}: timed out") from exc
    except OSError as exc:
        raise TransportError(f"{operation}: connection failed ({exc.strerror or type(exc).__name__})") from exc
    except bce.BotoCoreError as exc:
        raise ApiError(_one_line(exc), operation=operation) from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _refuse_a_body_that_is_not_json(response_dict: Mapping[str, Any], **_: Any) -> None:
    """botocore's ``before-parse`` hook: a 2xx body that is not a JSON object (a proxy's HTML page, a body whose
    Content-Length was met but whose JSON is cut) would be parsed into an empty result; refuse it instead. Only
    its first and last bytes are looked at, so a large page costs nothing more."""
    status = int(response_dict.get("status_code") or 0)
    body = response_dict.get("body")
    if not 200 <= status < 300 or not isinstance(body, bytes | bytearray):
        return
    if body[:64].lstrip()[:1] == b"{" and body[-64:].rstrip()[-1:] == b"}":
        return
    headers = response_dict.get("headers") or {}
    ctype = str(headers.get("content-type", "") or "").split(";")[0].strip() or "no Content-Type"
    raise ResponseParserError(f"the response body is not JSON ({ctype}, {len(body)} bytes)")


#: operations whose 2xx answers skip botocore's shape walk (see the module docstring): the record-shaped ones
RAW_OPERATIONS = frozenset(op.name for op in OPERATIONS.values() if op.shape == "results_by_time")


#: the decode function of the call in progress in this task (:meth:`AwsTransport.call_decoded`), else None
_DECODE: contextvars.ContextVar[Callable[[bytes], Any] | None] = contextvars.ContextVar("dbcost_decode",
                                                                                        default=None)
#: the key under which the parser hands a decoded result back to :meth:`AwsTransport.call_decoded`
_DECODED = "dbcost:decoded"


class _RawJSONParser(AioJSONParser):  # type: ignore[misc]  # aiobotocore ships no types
    """botocore's parser for the ``json`` protocol, except that a 2xx answer to one of ``raw_operations`` is
    returned as the call's ``decode`` function makes it, else as orjson decodes it (module docstring). Error
    answers never reach ``_do_parse``."""

    def __init__(self, raw_operations: frozenset[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._raw = raw_operations

    async def _do_parse(self, response: dict[str, Any], shape: Any) -> Any:
        context = response.get("context") or {}
        body = response.get("body")
        if context.get("operation_name") in self._raw and isinstance(body, bytes | bytearray) and body:
            decode = _DECODE.get()
            if decode is not None:
                decoded = decode(bytes(body))
                if decoded is not None:
                    return {_DECODED: decoded}
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None  # botocore's own parser decides what such a body is, as before
            if type(parsed) is dict:
                self._inject_response_metadata(parsed, response["headers"])
                return parsed
        return await super()._do_parse(response, shape)


class _ParserFactory(AioResponseParserFactory):  # type: ignore[misc]
    """aiobotocore's parser factory with :class:`_RawJSONParser` for the ``json`` protocol."""

    def __init__(self, raw_operations: frozenset[str]) -> None:
        super().__init__()
        self._raw = raw_operations

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "json":
            return _RawJSONParser(self._raw, **self._defaults)
        return super().create_parser(protocol_name)


#: the process's botocore data loader, once the first session made it (see :func:`_share_loader`)
_LOADER: list[Any] = []


def _share_loader(session: Any) -> None:
    """Give ``session`` the process's one botocore data loader. The loader caches what it parsed, so each service
    model and the endpoints file are read once per process instead of once per client: the RDS model alone takes
    about a tenth of a second to parse, and an inventory reading opens one client per target, region and
    service. The loader is only ever used from the event loop's thread."""
    base = session._session  # the AioSession aioboto3 wraps
    if not _LOADER:
        _LOADER.append(base.get_component("data_loader"))
    base.register_component("data_loader", _LOADER[0])
    session._loader = _LOADER[0]


def chain_region(profile: str | None = None) -> str:
    """The region a client of ``profile`` (None: the default chain) is made for when none is given: the
    environment's or the profile's, else ``us-east-1`` (what :class:`AwsTransport` uses)."""
    with translate_errors("read the AWS configuration"):
        session = aioboto3.Session(profile_name=profile)
        return str(session.region_name or "us-east-1")


def assume_role_credentials(session: Any, source: Any, region: str, *, role_arn: str, session_name: str,
                            external_id: str | None = None) -> Any:
    """Refreshable credentials of ``role_arn`` for an aiobotocore ``session``: each refresh calls
    ``sts:AssumeRole`` signed with ``source`` (the chain's own credentials, read before any swap: signing with
    the assumed-role credentials would make every refresh wait on itself). Used by :class:`AwsTransport` and
    the Kafka sink's MSK IAM signer."""
    params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": session_name}
    if external_id:
        params["ExternalId"] = external_id

    async def refresh() -> dict[str, Any]:
        frozen = await source.get_frozen_credentials()
        async with session.create_client("sts", region_name=region, aws_access_key_id=frozen.access_key,
                                         aws_secret_access_key=frozen.secret_key,
                                         aws_session_token=frozen.token) as sts:
            with translate_errors("AssumeRole"):
                creds = (await sts.assume_role(**params))["Credentials"]
        expiry = creds["Expiration"]
        return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": expiry.isoformat() if isinstance(expiry, dt.datetime) else expiry}

    return AioDeferredRefreshableCredentials(refresh_using=refresh, method="assume-role")


class AwsTransport:
    """An aioboto3 client for one AWS service, as a :class:`~dbcost.transport.base.Transport`."""

    def __init__(
        self,
        *,
        service: str = "ce",
        profile: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
        role_session_name: str = "dbcost",
        credentials: tuple[str, str] | None = None,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
        max_pool_connections: int = 32,
    ) -> None:
        self.service = service
        self.profile = profile
        self.region = region
        self.endpoint_url = endpoint_url
        self.role_arn = role_arn
        self.external_id = external_id
        self.role_session_name = role_session_name
        self._static_credentials = credentials
        self._config = AioConfig(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            max_pool_connections=max_pool_connections,
            user_agent_extra="dbcost",
        )
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    def __repr__(self) -> str:  # never shows credentials
        return (
            f"AwsTransport(service={self.service!r}, profile={self.profile!r}, region={self.region!r}, "
            f"endpoint_url={redact_url(self.endpoint_url) if self.endpoint_url else None!r}, "
            f"role_arn={self.role_arn!r})"
        )

    async def __aenter__(self) -> AwsTransport:
        stack = AsyncExitStack()
        try:
            with translate_errors("open session"):
                if self._static_credentials is not None:
                    key, secret = self._static_credentials
                    session = aioboto3.Session(aws_access_key_id=key, aws_secret_access_key=secret)
                else:
                    session = aioboto3.Session(profile_name=self.profile)
                _share_loader(session)
                region = self.region or session.region_name or "us-east-1"
                if self.service == "ce":  # before any client is made: the session's clients share the factory
                    session._session.register_component("response_parser_factory", _ParserFactory(RAW_OPERATIONS))
                if self.role_arn:
                    await self._assume_role(session, region)
                try:
                    # an http:// endpoint (the emulator, a local test server) has no TLS to verify: without
                    # verify=False aiobotocore still builds a verifying SSL context from the CA bundle, about
                    # 50 ms of CPU per client that nothing uses. botocore follows no redirect, so no request of
                    # this client goes elsewhere; https:// endpoints are verified as always
                    plain = (self.endpoint_url or "").lower().startswith("http://")
                    client = session.client(
                        self.service, region_name=region, endpoint_url=self.endpoint_url, config=self._config,
                        verify=False if plain else None,
                    )
                    self._client = await stack.enter_async_context(client)
                    if self.service == "ce":  # every Cost Explorer answer is a JSON object; S3 (XML) and
                        # Kinesis (some answers have an empty body) are not held to it
                        self._client.meta.events.register("before-parse", _refuse_a_body_that_is_not_json)
                except ValueError as exc:  # botocore: "Invalid endpoint: ..." (InvalidRegionError is mapped above)
                    if isinstance(exc, bce.InvalidRegionError):
                        raise
                    shown = redact_url(self.endpoint_url) if self.endpoint_url else "(from the environment)"
                    raise ConfigError(f"--endpoint-url {shown}: {_one_line(exc).replace(self.endpoint_url or '', shown)}"
                                      ) from exc
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            self._client = None
            await stack.aclose()

    async def _assume_role(self, session: Any, region: str) -> None:
        """Swap the session's credentials for refreshable ones from ``sts:AssumeRole``.

        The STS calls are signed with the chain's own credentials, read *before* the swap: signing them with the
        session's (refreshable, assumed-role) credentials would make every refresh wait on itself."""
        assert self.role_arn is not None  # only called with a role to assume
        base = session._session  # the AioSession aioboto3 wraps
        with translate_errors("AssumeRole"):
            source = await base.get_credentials()
        if source is None:
            raise CredentialsError(f"--role-arn {self.role_arn}: no credentials to assume it with (profile, "
                                   "environment or instance role)")
        base._credentials = assume_role_credentials(base, source, region, role_arn=self.role_arn,
                                                    session_name=self.role_session_name, external_id=self.external_id)

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if self._client is None:
            raise RuntimeError("AwsTransport used outside 'async with'")
        method = getattr(self._client, xform_name(operation))
        # the IAM action is the service's signing name and the operation (rds:DescribeDBInstances, ce:GetTags),
        # for the services whose actions are named so (S3's are not: ListObjectsV2 needs s3:ListBucket)
        action = None
        if self.service in _ACTION_IS_OPERATION:
            action = f"{self._client.meta.service_model.signing_name or self.service}:{operation}"
        with translate_errors(operation, iam_action=action):
            response: dict[str, Any] = await method(**params)
        response.pop("ResponseMetadata", None)
        return response

    async def call_decoded(self, operation: str, params: Mapping[str, Any], decode: Callable[[bytes], Any]) -> Any:
        """:meth:`call`, with a 2xx body of a record-shaped operation handed to ``decode`` first: its result
        when it is not None, else the dict :meth:`call` returns (module docstring, the response path)."""
        reset = _DECODE.set(decode)
        try:
            response = await self.call(operation, params)
        finally:
            _DECODE.reset(reset)
        return response.get(_DECODED, response) if len(response) == 1 else response

