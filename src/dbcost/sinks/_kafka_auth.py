"""SASL/OAUTHBEARER token providers for the Kafka sink (imported when a sink opens: it imports aiokafka).

* :class:`BearerTokenProvider` (``sasl_mechanism=OAUTHBEARER``): the token is the sink's password, read
  from ``password_file=`` at every authentication (so a sidecar that rotates the file is picked up by the
  next connection) or, without a file, ``DBCOST_KAFKA_PASSWORD`` as read when the URL was parsed.
* :class:`MskIamTokenProvider` (``sasl_mechanism=AWS_MSK_IAM``): Amazon MSK's IAM access control. The token
  is what AWS's own signer library (``aws-msk-iam-sasl-signer-python``) makes: a SigV4-presigned
  ``https://kafka.REGION.amazonaws.com/?Action=kafka-cluster:Connect`` URL, base64url-encoded, valid 900 s
  from its signing time. The signer signs only, it calls no service. Its credentials come from
  :class:`AwsCredentialChain`.
* :class:`AwsCredentialChain`: the credentials the Cost Explorer calls use (``transport/aws.py``): static
  keys when the run has them, else botocore's chain for the profile (environment, shared files, SSO,
  container/instance role); with ``role_arn`` a role assumed from those through STS ``AssumeRole``
  (``ExternalId``, session name ``dbcost``), refreshed by aiobotocore before it expires.

Refresh: a token is reused until 80 % of its lifetime has passed (Kafka's own
``sasl.login.refresh.window.factor``), then the next authentication gets a new one; the lifetime is the
signer's expiry, cut short when the credentials it was signed with expire sooner (assumed-role
credentials), measured on the injected :class:`~dbcost.clock.Clock` from the moment signing began.
Concurrent authentications share one signing. aiokafka 0.14 does not re-authenticate an open connection
(KIP-368): a broker that ends a connection's session closes it and the reconnect authenticates with a fresh
token; a batch that was in flight on it is sent again (at-least-once, see :mod:`dbcost.sinks.kafka`).

Credential errors (none found, an unknown profile, AssumeRole refused) are :class:`~dbcost.errors.
CredentialsError`/:class:`~dbcost.errors.AccessDeniedError` from the transport's translation; aiokafka
lets them through its connect, and the sink names them in one line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka.abc import AbstractTokenProvider

from dbcost.clock import Clock, SystemClock

__all__ = [
    "REFRESH_FACTOR",
    "AwsCredentialChain",
    "BearerTokenProvider",
    "Credentials",
    "MskIamTokenProvider",
]

#: a token is replaced once this share of its lifetime has passed (Kafka's sasl.login.refresh.window.factor)
REFRESH_FACTOR = 0.8

#: (access key id, secret access key, session token or None) and the wall-clock time they expire (or None)
Credentials = tuple[tuple[str, str, str | None], float | None]


class BearerTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """``OAUTHBEARER`` with a token from a file (re-read at every authentication) or a fixed string."""

    def __init__(self, *, token: str | None = None, path: Path | None = None) -> None:
        if (token is None) == (path is None):
            raise ValueError("give exactly one of token and path")
        self._token = token
        self._path = path

    def __repr__(self) -> str:  # never the token
        return f"BearerTokenProvider(path={str(self._path) if self._path else None!r})"

    async def token(self) -> str:
        if self._path is None:
            assert self._token is not None
            return self._token
        text = await asyncio.to_thread(self._path.read_text)
        return text.rstrip("\r\n")


class AwsCredentialChain:
    """The Cost Explorer calls' credentials (see the module doc); resolved on first use, then refreshed by
    aiobotocore when they are refreshable (assumed role, SSO, instance role)."""

    def __init__(self, *, profile: str | None = None, region: str | None = None,
                 credentials: tuple[str, str] | None = None, role_arn: str | None = None,
                 external_id: str | None = None, role_session_name: str = "dbcost") -> None:
        self.profile = profile
        self.region = region
        self.role_arn = role_arn
        self.external_id = external_id
        self.role_session_name = role_session_name
        self._static = credentials
        self._resolved: Any = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never the keys
        return f"AwsCredentialChain(profile={self.profile!r}, role_arn={self.role_arn!r})"

    async def __call__(self) -> Credentials:
        """The current credentials and when they expire (wall-clock seconds; None = not known to expire)."""
        from dbcost.transport.aws import translate_errors

        with translate_errors("AWS credentials for AWS_MSK_IAM"):
            async with self._lock:
                if self._resolved is None:
                    self._resolved = await self._resolve()
            frozen = await self._resolved.get_frozen_credentials()
        expiry = getattr(self._resolved, "_expiry_time", None)  # refreshable credentials record it
        expires = expiry.timestamp() if isinstance(expiry, dt.datetime) else None
        return (frozen.access_key, frozen.secret_key, frozen.token or None), expires

    async def _resolve(self) -> Any:
        from aiobotocore.session import AioSession

        from dbcost.errors import CredentialsError

        session = AioSession(profile=self.profile)
        if self._static is not None:
            session.set_credentials(*self._static)
        base = await session.get_credentials()
        if base is None:
            raise CredentialsError("AWS_MSK_IAM: no AWS credentials found (environment, profile, SSO or role)")
        if not self.role_arn:
            return base
        region = self.region or session.get_config_variable("region") or "us-east-1"
        from dbcost.transport.aws import assume_role_credentials

        return assume_role_credentials(session, base, region, role_arn=self.role_arn,
                                       session_name=self.role_session_name, external_id=self.external_id)


class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """``AWS_MSK_IAM`` as an aiokafka OAUTHBEARER token provider; see the module doc for the refresh rule.

    ``credentials`` is an :class:`AwsCredentialChain` (or any async callable returning :data:`Credentials`);
    ``clock`` measures token age (tests inject a FakeClock); ``wall`` is the wall clock the signer's expiry
    is compared with.
    """

    def __init__(self, region: str, credentials: Callable[[], Awaitable[Credentials]], *,
                 clock: Clock | None = None, wall: Callable[[], float] = time.time,
                 refresh_factor: float = REFRESH_FACTOR) -> None:
        self.region = region
        self._credentials = credentials
        self._clock: Clock = clock or SystemClock()
        self._wall = wall
        self._factor = refresh_factor
        self._token: str | None = None
        self._lock = asyncio.Lock()
        #: clock times: when the current token expires and when the next authentication replaces it
        self.expires_at: float | None = None
        self.refresh_at: float | None = None
        #: tokens signed so far
        self.issued = 0

    def __repr__(self) -> str:  # never the token
        return f"MskIamTokenProvider(region={self.region!r}, issued={self.issued})"

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or self.refresh_at is None or self._clock.monotonic() >= self.refresh_at:
                await self._sign()
            assert self._token is not None
            return self._token

    async def _sign(self) -> None:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider as signer
        from botocore.credentials import CredentialProvider
        from botocore.credentials import Credentials as BotoCredentials

        started = self._clock.monotonic()
        (key, secret, session_token), creds_expire = await self._credentials()

        class _Given(CredentialProvider):  # type: ignore[misc]  # the signer takes a provider, not keys
            METHOD = "dbcost"

            def load(self) -> BotoCredentials:
                return BotoCredentials(key, secret, session_token)

        token, expiry_ms = signer.generate_auth_token_from_credentials_provider(self.region, _Given())
        now = self._wall()
        lifetime = expiry_ms / 1000 - now
        if creds_expire is not None:
            lifetime = min(lifetime, creds_expire - now)
        lifetime = max(lifetime, 1.0)  # a clock far off still gets one try; the broker has the last word
        self._token = token
        self.issued += 1
        self.expires_at = started + lifetime
        self.refresh_at = started + lifetime * self._factor
