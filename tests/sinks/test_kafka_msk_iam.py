"""AWS_MSK_IAM: the token provider against AWS's real signer (``aws-msk-iam-sasl-signer-python``), with fake
static credentials (the signer only signs, it calls no service), a profile from a shared credentials file,
and a role assumed through moto's STS; token refresh timed on an injected clock.

No MSK cluster is reachable from here: that a broker *accepts* these tokens is not shown. What is shown:
the token is a SigV4 presigned ``kafka-cluster:Connect`` URL for the cluster's region, signed with the
chain's key (checked by recomputing the signature from the secret), valid 900 s, and refreshed at 80 % of
its life (sooner when the credentials expire first); concurrent connections share one token.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import time
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from dbcost.clock import FakeClock
from dbcost.errors import CredentialsError, SinkError
from dbcost.sinks import SinkContext, open_sink
from dbcost.sinks._kafka_auth import REFRESH_FACTOR, AwsCredentialChain, Credentials, MskIamTokenProvider
from dbcost.sinks.kafka import KafkaSink
from tests.sinks.conftest import TlsKafka
from tests.sinks.test_kafka_tls import settle

KEY, SECRET = "AKIDEXAMPLEMSK00001", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def decode(token: str) -> tuple[str, dict[str, str]]:
    """The presigned URL inside a token (base64url without padding) and its query."""
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    return url, dict(parse_qsl(urlsplit(url).query))


def signature_of(url: str, secret: str) -> str:
    """SigV4 of a presigned GET, recomputed from the secret key (the AWS spec, not the signer's code)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("X-Amz-Signature", "User-Agent")]
    q = dict(query)
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query))
    canonical = "\n".join(["GET", parts.path or "/", canonical_query, f"host:{parts.hostname}", "", "host",
                           hashlib.sha256(b"").hexdigest()])
    date, region, service, _ = q["X-Amz-Credential"].split("/")[1:]
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", q["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class Static:
    """A credential source returning fixed keys (the shape AwsCredentialChain returns), counting its calls."""

    def __init__(self, key: str = KEY, secret: str = SECRET, token: str | None = None,
                 expires: float | None = None) -> None:
        self.value: Credentials = ((key, secret, token), expires)
        self.calls = 0

    async def __call__(self) -> Credentials:
        self.calls += 1
        return self.value


async def test_the_token_is_a_presigned_kafka_connect_url_signed_with_the_chains_key() -> None:
    """The signer's token: https://kafka.REGION.amazonaws.com/?Action=kafka-cluster:Connect presigned with
    SigV4 (the signature recomputes from the secret), 900 s, the key id in its scope, the secret nowhere."""
    provider = MskIamTokenProvider("eu-west-1", AwsCredentialChain(credentials=(KEY, SECRET)), clock=FakeClock())
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    token = await provider.token()
    assert "=" not in token and "+" not in token and "/" not in token  # base64url, unpadded
    url, q = decode(token)
    assert url.startswith("https://kafka.eu-west-1.amazonaws.com/?")
    assert q["Action"] == "kafka-cluster:Connect"
    assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and q["X-Amz-SignedHeaders"] == "host"
    assert q["X-Amz-Expires"] == "900"
    signed = dt.datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert before - dt.timedelta(seconds=1) <= signed <= dt.datetime.now(dt.UTC)
    assert q["X-Amz-Credential"] == f"{KEY}/{signed:%Y%m%d}/eu-west-1/kafka-cluster/aws4_request"
    assert q["User-Agent"].startswith("aws-msk-iam-sasl-signer-python/")
    assert "X-Amz-Security-Token" not in q  # long-term keys carry no session token
    assert q["X-Amz-Signature"] == signature_of(url, SECRET)
    assert SECRET not in url and quote(SECRET, safe="") not in url
    assert provider.issued == 1 and provider.expires_at is not None and provider.refresh_at is not None
    assert 898 <= provider.expires_at <= 900  # on the injected clock, from when signing began (at 0)
    assert provider.refresh_at == pytest.approx(provider.expires_at * REFRESH_FACTOR)


async def test_session_credentials_put_their_token_in_the_url() -> None:
    """Temporary credentials (an assumed role, SSO) sign with their session token in the presigned URL."""
    provider = MskIamTokenProvider("us-east-1", Static("ASIATEMPKEY000000001", SECRET, token="FQoGZXIvYXdzE..."))
    _, q = decode(await provider.token())
    assert q["X-Amz-Security-Token"] == "FQoGZXIvYXdzE..." and q["X-Amz-Credential"].startswith("ASIATEMPKEY")


async def test_a_token_is_reused_until_80_percent_of_its_life_then_replaced() -> None:
    """On a FakeClock: the same token until 0.8 x 900 s after signing, a new one (new expiry) from then on."""
    clock = FakeClock(start=1000.0)
    source = Static()
    provider = MskIamTokenProvider("eu-west-1", source, clock=clock)
    first = await provider.token()
    assert provider.refresh_at is not None and provider.expires_at is not None
    refresh_at, expires_at = provider.refresh_at, provider.expires_at
    assert refresh_at - 1000 == pytest.approx(0.8 * (expires_at - 1000)) and 898 <= expires_at - 1000 <= 900
    clock.now = refresh_at - 0.001
    assert await provider.token() == first and provider.issued == 1 and source.calls == 1
    clock.now = refresh_at
    second = await provider.token()
    assert provider.issued == 2 and source.calls == 2
    assert provider.refresh_at is not None and provider.refresh_at > refresh_at + 700
    assert provider.expires_at is not None and provider.expires_at > expires_at + 700
    _, q = decode(second)
    assert q["X-Amz-Signature"] == signature_of(decode(second)[0], SECRET)


async def test_credentials_that_expire_first_shorten_the_token_life() -> None:
    """Assumed-role credentials with 5 minutes left: the token is replaced at 0.8 x 300 s, not 0.8 x 900 s."""
    clock = FakeClock()
    provider = MskIamTokenProvider("eu-west-1", Static(token="t", expires=time.time() + 300), clock=clock)
    await provider.token()
    assert provider.expires_at == pytest.approx(300, abs=2)
    assert provider.refresh_at == pytest.approx(240, abs=2)


async def test_concurrent_connections_share_one_signing() -> None:
    """Twenty connections authenticating at once get one token from one signing."""
    source = Static()
    provider = MskIamTokenProvider("eu-west-1", source, clock=FakeClock())
    tokens = await asyncio.gather(*(provider.token() for _ in range(20)))
    assert len(set(tokens)) == 1 and provider.issued == 1 and source.calls == 1


async def test_the_chain_reads_a_named_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """?profile=/--profile: the profile's keys sign the token (not the environment's)."""
    shared = tmp_path / "credentials"
    shared.write_text(f"[msk-writer]\naws_access_key_id = AKIAPROFILEKEY000001\naws_secret_access_key = {SECRET}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
    provider = MskIamTokenProvider("eu-west-1", AwsCredentialChain(profile="msk-writer"))
    url, q = decode(await provider.token())
    assert q["X-Amz-Credential"].startswith("AKIAPROFILEKEY000001/")
    assert q["X-Amz-Signature"] == signature_of(url, SECRET)


async def test_the_chain_assumes_a_role_once_and_signs_with_it(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> None:
    """role_arn= (+ external_id): STS AssumeRole (moto's) with the base keys; the token carries the role's
    temporary key and session token, and a refresh reuses the assumed credentials while they are fresh."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_url)
    chain = AwsCredentialChain(credentials=("AKIDBASE", "base-secret"), region="eu-west-1",
                               role_arn="arn:aws:iam::123456789012:role/msk-writer", external_id="ext-1")
    clock = FakeClock()
    provider = MskIamTokenProvider("eu-west-1", chain, clock=clock)
    _, first = decode(await provider.token())
    assert first["X-Amz-Credential"].startswith("ASIA") and first["X-Amz-Security-Token"]
    (key, _, session), expires = await chain()
    assert first["X-Amz-Credential"].startswith(f"{key}/") and first["X-Amz-Security-Token"] == session
    assert expires is not None and expires > time.time() + 600
    assert provider.refresh_at is not None
    clock.now = provider.refresh_at
    _, second = decode(await provider.token())
    assert provider.issued == 2 and second["X-Amz-Credential"].split("/")[0] == key  # same role session


async def test_missing_credentials_are_one_line_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials anywhere, or an unknown profile: a CredentialsError in one line, no traceback."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(CredentialsError, match="no AWS credentials found") as info:
        await MskIamTokenProvider("eu-west-1", AwsCredentialChain()).token()
    assert "\n" not in str(info.value)
    with pytest.raises(CredentialsError, match=r"nope") as info:
        await MskIamTokenProvider("eu-west-1", AwsCredentialChain(profile="nope")).token()
    assert "\n" not in str(info.value)


async def test_a_credential_failure_at_connect_names_aws_msk_iam(tls_kafka: TlsKafka, topic: str) -> None:
    """Against a real SASL server over TLS, an unknown profile surfaces from aiokafka's authentication as one
    fatal SinkError naming AWS_MSK_IAM and the profile."""
    sink = open_sink(f"kafka+ssl://{tls_kafka.sasl_bootstrap}/{topic}?idempotence=false&cafile={tls_kafka.pki.ca}"
                     "&sasl_mechanism=AWS_MSK_IAM&region=eu-west-1&profile=no-such-profile&retries=3",
                     SinkContext())
    assert isinstance(sink, KafkaSink)
    with pytest.raises(SinkError) as info:
        await sink.open()
    await sink.close()
    await settle()
    text = str(info.value)
    assert text.startswith(f"{sink.name}: create topics: AWS_MSK_IAM: ") and "no-such-profile" in text
    assert "\n" not in text and "gave up" not in text  # not retried
