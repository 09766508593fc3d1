"""The Kafka sink's security options, without a broker: how each URL is read and refused, what aiokafka is
given (security protocol, SSL context, SASL mechanism and credentials, token provider), and that no
password, token or secret key reaches a message, a repr or the URL shown."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import pytest

from dbcost.errors import ConfigError, SinkError
from dbcost.sinks import SinkContext, open_sink, parse_sink_url, redact_url
from dbcost.sinks._kafka_auth import AwsCredentialChain, BearerTokenProvider, MskIamTokenProvider
from dbcost.sinks.kafka import KafkaOptions, KafkaSink
from tests.sinks.certs import Pki, make_pki

PASSWORD = "pa55-W0rd:with@odd/chars"
ENV = {"DBCOST_KAFKA_USERNAME": "svc-dbcost", "DBCOST_KAFKA_PASSWORD": PASSWORD}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def parse(url: str, environ: dict[str, str] | None = None) -> KafkaOptions:
    return KafkaSink.parse(url, environ if environ is not None else {})


def sink(url: str, environ: dict[str, str] | None = None, ctx: SinkContext | None = None) -> KafkaSink:
    """The sink of ``url`` built with ``ctx`` and only ``environ`` as its environment."""
    built = open_sink(url, dataclasses.replace(ctx or SinkContext(), environ=environ if environ is not None else {}))
    assert isinstance(built, KafkaSink)
    return built


# -- the protocol ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "protocol"), [
    ("kafka://h:9092/t", "PLAINTEXT"),
    ("kafka+ssl://h:9093/t", "SSL"),
    ("KAFKA+SSL://h:9093/t", "SSL"),
    ("kafka://h:9093/t?security_protocol=ssl", "SSL"),
    ("kafka://h:9092/t?sasl_mechanism=scram-sha-256", "SASL_PLAINTEXT"),
    ("kafka+ssl://h:9096/t?sasl_mechanism=PLAIN", "SASL_SSL"),
    ("kafka://h:9096/t?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-512", "SASL_SSL"),
    ("kafka://b-1.c.x.c2.kafka.eu-west-1.amazonaws.com:9098/t?sasl_mechanism=AWS_MSK_IAM", "SASL_SSL"),
    ("kafka://h:9098/t?sasl_mechanism=AWS_MSK_IAM&security_protocol=SASL_PLAINTEXT&region=us-east-1",
     "SASL_PLAINTEXT"),
])
def test_the_security_protocol_follows_the_scheme_and_the_mechanism(url: str, protocol: str) -> None:
    """security_protocol= wins; else kafka+ssl:// is SSL, kafka:// PLAINTEXT, a mechanism makes it SASL_* (SSL
    for AWS_MSK_IAM, which MSK serves over TLS only)."""
    o = parse(url, ENV)
    assert o.security_protocol == protocol
    assert o.tls is protocol.endswith("SSL")


@pytest.mark.parametrize(("url", "message"), [
    ("kafka+ssl://h:1/t?security_protocol=PLAINTEXT", "kafka+ssl:// is TLS: use security_protocol=SSL or SASL_SSL"),
    ("kafka://h:1/t?security_protocol=TLS", "?security_protocol='TLS' (use one of PLAINTEXT, SSL, SASL_PLAINTEXT, "
                                           "SASL_SSL)"),
    ("kafka://h:1/t?sasl_mechanism=GSSAPI", "?sasl_mechanism='GSSAPI' (use one of PLAIN, SCRAM-SHA-256, "
                                          "SCRAM-SHA-512, OAUTHBEARER, AWS_MSK_IAM)"),
    ("kafka+ssl://h:1/t?security_protocol=SASL_SSL", "security_protocol=SASL_SSL needs ?sasl_mechanism="),
    ("kafka+ssl://h:1/t?security_protocol=SSL&sasl_mechanism=PLAIN", "?sasl_mechanism= needs "
                                                                     "security_protocol=SASL_SSL or SASL_PLAINTEXT"),
    ("kafka://h:1/t?cafile=/etc/hostname", "?cafile= is a TLS option: use kafka+ssl:// or security_protocol="),
    ("kafka://h:1/t?check_hostname=false", "?check_hostname= is a TLS option"),
    ("kafka+ssl://h:1/t?cafile=/nonexistent/ca.pem", "?cafile=/nonexistent/ca.pem: no such file"),
    ("kafka+ssl://h:1/t?check_hostname=perhaps", "?check_hostname='perhaps' is not true/false"),
    ("kafka://h:1/t?region=us-east-1", "?region= applies to sasl_mechanism=AWS_MSK_IAM only"),
    ("kafka+ssl://h:1/t?sasl_mechanism=PLAIN&role_arn=arn:aws:iam::123456789012:role/r",
     "?role_arn= applies to sasl_mechanism=AWS_MSK_IAM only"),
    ("kafka://h:1/t?sasl_mechanism=AWS_MSK_IAM&region=Mars", "?region='Mars' is not an AWS region name"),
    ("kafka://h:1/t?sasl_mechanism=AWS_MSK_IAM&role_arn=admin", "?role_arn='admin' is not an IAM role ARN"),
    ("kafka://h:1/t?sasl_mechanism=AWS_MSK_IAM&external_id=x", "?external_id= needs ?role_arn="),
    ("kafka://h:1/t?password_file=/etc/hostname", "?password_file= needs sasl_mechanism=PLAIN, SCRAM-SHA-256, "
                                                  "SCRAM-SHA-512 or OAUTHBEARER"),
    ("kafka://h:1/t?sasl_mechanism=AWS_MSK_IAM&password_file=/etc/hostname", "?password_file= needs"),
])
def test_contradictory_or_malformed_security_options_are_one_line_errors(url: str, message: str) -> None:
    """Every refusal is a one-line ConfigError naming the option, raised before anything connects."""
    with pytest.raises(ConfigError) as info:
        parse_sink_url(url)
    assert message in str(info.value) and "\n" not in str(info.value)


# -- credentials -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "environ", "message"), [
    ("kafka+ssl://h:1/t?sasl_mechanism=PLAIN", {"DBCOST_KAFKA_PASSWORD": "x"},
     "SASL PLAIN needs a user name: kafka://USER@HOST:PORT/TOPIC or DBCOST_KAFKA_USERNAME"),
    ("kafka+ssl://h:1/t?sasl_mechanism=SCRAM-SHA-256", {"DBCOST_KAFKA_USERNAME": "u"},
     "SASL SCRAM-SHA-256 needs a password: DBCOST_KAFKA_PASSWORD or ?password_file=PATH"),
    ("kafka+ssl://h:1/t?sasl_mechanism=OAUTHBEARER", {},
     "SASL OAUTHBEARER needs a token: ?password_file=PATH (re-read at every authentication) or DBCOST_KAFKA_PASSWORD"),
])
def test_missing_credentials_are_refused_up_front(url: str, environ: dict[str, str], message: str) -> None:
    """PLAIN/SCRAM need a user name and a password, OAUTHBEARER a token: missing, the URL is refused at parse."""
    with pytest.raises(ConfigError, match="needs a") as info:
        parse(url, environ)
    assert message in str(info.value)


def test_a_password_in_the_url_is_refused_and_not_repeated() -> None:
    """kafka://user:password@... and ?password=-like options are refused; the message never holds the value."""
    for url in (f"kafka+ssl://svc:{PASSWORD.replace('@', '%40').replace('/', '%2F')}@h:9093/t?sasl_mechanism=PLAIN",
                "kafka+ssl://h:9093/t?sasl_mechanism=PLAIN&password=hunter2&port=x",
                "kafka+ssl://h:notaport/t?SASL_PLAIN_PASSWORD=hunter2",
                "kafka://h:1/t?token=hunter2"):
        with pytest.raises(ConfigError) as info:
            parse_sink_url(url)
        text = str(info.value)
        assert "hunter2" not in text and "pa55" not in text and "%40odd" not in text, text
        assert "DBCOST_KAFKA_PASSWORD or ?password_file=PATH" in text


def test_user_names_and_passwords_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    """The URL's USER@ wins over DBCOST_KAFKA_USERNAME; password_file= over DBCOST_KAFKA_PASSWORD, its line end
    stripped; PLAIN/SCRAM hand both to aiokafka."""
    o = parse("kafka+ssl://h:9093/t?sasl_mechanism=PLAIN", ENV)
    assert (o.username, o.password, o.password_file) == ("svc-dbcost", PASSWORD, None)
    o = parse("kafka+ssl://other%40corp@h:9093/t?sasl_mechanism=PLAIN", ENV)
    assert o.username == "other@corp"
    secret = tmp_path / "kafka.password"
    secret.write_text("from-the-file\n")
    s = sink(f"kafka+ssl://h:9093/t?sasl_mechanism=SCRAM-SHA-512&password_file={secret}", ENV)
    assert s.options.password is None and s.options.password_file == secret
    kw = s.client_options()
    assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == (
        "SCRAM-SHA-512", "svc-dbcost", "from-the-file")
    assert kw["security_protocol"] == "SASL_SSL" and isinstance(kw["ssl_context"], ssl.SSLContext)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match=r"\?password_file=.*empty: the file is empty"):
        parse(f"kafka+ssl://h:9093/t?sasl_mechanism=PLAIN&password_file={empty}", ENV)


def test_a_sink_context_environment_replaces_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SinkContext.environ the process environment is read (at the edge); with it, only it."""
    monkeypatch.setenv("DBCOST_KAFKA_USERNAME", "from-process")
    monkeypatch.setenv("DBCOST_KAFKA_PASSWORD", "process-pw")
    assert KafkaSink.parse("kafka+ssl://h:9093/t?sasl_mechanism=PLAIN").username == "from-process"
    built = open_sink("kafka+ssl://h:9093/t?sasl_mechanism=PLAIN")
    assert isinstance(built, KafkaSink) and built.options.password == "process-pw"
    assert sink("kafka+ssl://h:9093/t?sasl_mechanism=PLAIN", ENV).options.username == "svc-dbcost"


async def test_oauthbearer_reads_its_token_file_at_every_authentication(tmp_path: Path) -> None:
    """OAUTHBEARER: aiokafka gets a token provider that re-reads password_file (a rotated token is used next
    time), or returns DBCOST_KAFKA_PASSWORD; neither repr shows the token."""
    token = tmp_path / "token"
    token.write_text("first-token\n")
    s = sink(f"kafka+ssl://h:9093/t?sasl_mechanism=OAUTHBEARER&password_file={token}")
    provider = s.client_options()["sasl_oauth_token_provider"]
    assert isinstance(provider, BearerTokenProvider) and s.client_options()["sasl_mechanism"] == "OAUTHBEARER"
    assert await provider.token() == "first-token"
    token.write_text("second-token\n")
    assert await provider.token() == "second-token"
    from_env = sink("kafka+ssl://h:9093/t?sasl_mechanism=OAUTHBEARER", {"DBCOST_KAFKA_PASSWORD": "env-token"})
    env_provider = from_env.token_provider
    assert isinstance(env_provider, BearerTokenProvider) and await env_provider.token() == "env-token"
    assert "token" not in repr(env_provider).lower().replace("bearertokenprovider", "")


# -- TLS files ---------------------------------------------------------------------------------------------


def test_tls_files_are_loaded_when_the_url_is_parsed(pki: Pki, tmp_path: Path) -> None:
    """cafile/certfile/keyfile become one verifying SSLContext (host names checked unless check_hostname=false,
    the chain always); a bad PEM, a key of another certificate, an encrypted key are one-line errors."""
    base = f"kafka+ssl://h:9093/t?cafile={pki.ca}"
    context = sink(f"{base}&certfile={pki.client.cert}&keyfile={pki.client.key}").client_options()["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "dbcost test CA"),),)]
    blind = sink(f"{base}&check_hostname=false").client_options()["ssl_context"]
    assert blind.verify_mode == ssl.CERT_REQUIRED and not blind.check_hostname
    system = sink("kafka+ssl://h:9093/t").client_options()["ssl_context"]
    assert system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname  # the system's CAs

    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    for options, message in [
        (f"cafile={not_pem}", f"cafile={not_pem}: "),
        (f"certfile={not_pem}", f"certfile={not_pem}: "),
        (f"certfile={pki.client.cert}&keyfile={pki.server.key}", "the key does not belong to the certificate"),
        (f"certfile={pki.client.cert}&keyfile={pki.encrypted_key}", "the key is encrypted"),
        (f"keyfile={pki.client.key}", "?keyfile= needs ?certfile="),
    ]:
        with pytest.raises(ConfigError) as info:
            parse_sink_url(f"kafka+ssl://h:9093/t?{options}")
        assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_a_file_gone_by_the_time_the_sink_opens_is_a_sink_error(tmp_path: Path) -> None:
    """A password file removed between parsing and opening: a one-line SinkError, not a traceback."""
    secret = tmp_path / "pw"
    secret.write_text("pw\n")
    s = sink(f"kafka+ssl://h:9093/t?sasl_mechanism=PLAIN&password_file={secret}", ENV)
    secret.unlink()
    with pytest.raises(SinkError, match=r"password_file=.*cannot read it"):
        s.client_options()


# -- AWS_MSK_IAM -------------------------------------------------------------------------------------------


def test_msk_iam_gives_aiokafka_an_oauthbearer_token_provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """AWS_MSK_IAM is OAUTHBEARER with the MSK token provider; the region comes from ?region=, else the MSK
    host name, else the run's; the profile from ?profile=, else the run's; the run's static keys are used."""
    host = "b-2.costs.a1b2c3.c2.kafka.ap-southeast-2.amazonaws.com"
    ctx = SinkContext(region="us-east-1", profile="run-profile", credentials=("AKID", "run-secret"))
    s = sink(f"kafka://{host}:9098/t?sasl_mechanism=AWS_MSK_IAM", ctx=ctx)
    kw = s.client_options()
    assert (kw["security_protocol"], kw["sasl_mechanism"]) == ("SASL_SSL", "OAUTHBEARER")
    assert "sasl_plain_password" not in kw
    provider = kw["sasl_oauth_token_provider"]
    assert isinstance(provider, MskIamTokenProvider) and provider.region == "ap-southeast-2"
    assert (s.aws_region, s.aws_profile) == ("ap-southeast-2", "run-profile")
    s = sink("kafka://boot-x.c1.kafka-serverless.eu-central-1.amazonaws.com:9098/t?sasl_mechanism=AWS_MSK_IAM")
    assert s.aws_region == "eu-central-1"
    s = sink(f"kafka://{host}:9098/t?sasl_mechanism=AWS_MSK_IAM&region=us-west-2&profile=msk"
             "&role_arn=arn:aws:iam::123456789012:role/msk-writer&external_id=ext-1", ctx=ctx)
    assert (s.aws_region, s.aws_profile, s.options.role_arn, s.options.external_id) == (
        "us-west-2", "msk", "arn:aws:iam::123456789012:role/msk-writer", "ext-1")
    chain = s.client_options()["sasl_oauth_token_provider"]._credentials
    assert isinstance(chain, AwsCredentialChain) and chain.role_arn == "arn:aws:iam::123456789012:role/msk-writer"
    assert "run-secret" not in repr(s) + repr(s.options) + repr(chain) + repr(provider)
    # no region anywhere (URL, host name, run, profile, environment): refused when the sink opens
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "aws-config"
    config.write_text("[profile other]\nregion = sa-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    s = sink("kafka://localhost:9098/t?sasl_mechanism=AWS_MSK_IAM", ctx=SinkContext())
    with pytest.raises(SinkError, match=r"AWS_MSK_IAM needs the cluster's region: add \?region="):
        s.client_options()
    s = sink("kafka://localhost:9098/t?sasl_mechanism=AWS_MSK_IAM&profile=other", ctx=SinkContext())
    assert s.token_provider is not None and s.aws_region == "sa-east-1"  # the profile's region, last


# -- redaction ---------------------------------------------------------------------------------------------


def test_no_secret_reaches_a_repr_a_name_or_the_stored_url(tmp_path: Path) -> None:
    """The environment's password is in no repr, name, display or redacted URL; the URL itself holds none,
    so what the runs table stores (redact_url) has nothing to hide."""
    url = "kafka+ssl://h:9093/t?sasl_mechanism=SCRAM-SHA-256"
    s = sink(url, ENV)
    seen = " ".join([repr(s), s.name, repr(s.options), s.options.display, redact_url(url), str(s.options)])
    assert PASSWORD not in seen
    assert s.client_options()["sasl_plain_password"] == PASSWORD  # it is there for aiokafka, and only there


# -- documentation -----------------------------------------------------------------------------------------


def test_every_kafka_option_is_documented_in_the_help_and_the_readme() -> None:
    """Each option the parser knows is named in --sink's help and in the README's Kafka option table."""
    import typing

    from dbcost.cli.options import SinkOpt
    from dbcost.sinks import kafka

    help_text = typing.get_args(SinkOpt)[1].help
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme[readme.index("#### Kafka: every URL option"):]
    table = table[:table.index("\n#")]
    for name in sorted(kafka._OPTIONS):
        assert f" {name}" in help_text, name
        assert f"`{name}`" in table, name
    for variable in (kafka.USERNAME_ENV, kafka.PASSWORD_ENV):
        assert variable in help_text and variable in table
