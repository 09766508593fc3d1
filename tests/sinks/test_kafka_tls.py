"""The Kafka sink over real TLS: Tansu brokers behind Debian's stunnel4 on 127.0.0.1 (each TLS port forwards
to a plaintext broker that advertises that TLS port), certificates made by ``tests/sinks/certs.py``.

What these prove: records go through ``kafka+ssl://`` (server auth, mutual TLS, ``check_hostname=false``)
and come back exactly; every TLS failure (expired certificate, unknown CA, host name mismatch, client
certificate missing or refused) is one SinkError line naming the cause, raised at once (not retried);
SASL over TLS reaches a real SASL server (Tansu ``--authentication``), whose refusal of a SCRAM login, an
OAUTHBEARER token and an AWS_MSK_IAM token is one line naming the mechanism, with no password in it; and a
backfill through the CLI with the wrong CA fails before any checkpoint, then ``--resume`` with the right
CA holds exactly the emulator's ground truth.

What the broker cannot show: a *successful* SASL login. Tansu 0.6.0's in-memory storage keeps no SCRAM
credentials (so every SCRAM user is unknown), its build here refuses PLAIN and OAUTHBEARER
(``NoSharedMechanism``), and it cannot check an MSK IAM token. The client side of those paths (what
aiokafka is given) is tested in ``test_kafka_security.py``, the MSK token itself in ``test_kafka_msk_iam.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl
import uuid
from pathlib import Path
from typing import Any

import pytest

from dbcost.emulator import Emulator, EmulatorConfig
from dbcost.errors import SinkError, TransientSinkError
from dbcost.sinks import SinkContext, open_sink
from dbcost.sinks._kafka_auth import MskIamTokenProvider
from dbcost.sinks.kafka import KafkaSink
from tests.conftest import run_cli_async
from tests.sinks.conftest import (
    GATE_PASSWORD,
    GATE_USER,
    TlsKafka,
    batches,
    collapse,
    expected,
    make_records,
    make_unit,
    tombstone,
)
from tests.sinks.test_e2e import check, truth
from tests.sinks.test_kafka import read_topic

FAST = "idempotence=false&retries=3&backoff_ms=10&timeout_ms=3000"


def tls_sink(bootstrap: str, topic: str, options: str, ctx: SinkContext | None = None) -> KafkaSink:
    sink = open_sink(f"kafka+ssl://{bootstrap}/{topic}?{FAST}&{options}", ctx)
    assert isinstance(sink, KafkaSink)
    return sink


def consumer_tls(tls: TlsKafka, *, client: bool = False) -> dict[str, Any]:
    """aiokafka security arguments for reading a topic back over TLS."""
    context = ssl.create_default_context(cafile=str(tls.pki.ca))
    if client:
        context.load_cert_chain(str(tls.pki.client.cert), str(tls.pki.client.key))
    return {"security_protocol": "SSL", "ssl_context": context}


async def settle() -> None:
    """Let closing TLS connections finish: aiokafka closes a refused connection without waiting for its TLS
    shutdown, and a transport still closing when the test's loop ends is an unclosed-socket warning later."""
    await asyncio.sleep(0.2)


async def open_fails(sink: KafkaSink) -> SinkError:
    """open() fails with a fatal SinkError (never a TransientSinkError) on one line."""
    with pytest.raises(SinkError) as info:
        await sink.open()
    await sink.close()
    await settle()
    assert not isinstance(info.value, TransientSinkError), info.value
    assert "\n" not in str(info.value) and str(info.value).startswith(sink.name)
    return info.value


async def test_records_go_through_tls_and_come_back_exactly(tls_kafka: TlsKafka, topic: str) -> None:
    """kafka+ssl:// with the test CA: two units (one restated, one tombstone) collapse to exactly what was sent."""
    unit = make_unit(days=5)
    v1, v2 = make_records(unit, version=1), make_records(unit, version=2, salt="restated")
    gone = v2.pop(3)
    v2.append(tombstone(gone, 2))
    sink = tls_sink(tls_kafka.bootstrap, topic, f"cafile={tls_kafka.pki.ca}")
    async with sink:
        assert await sink.write_unit(unit, batches(v1)) == len(v1)
        assert await sink.write_unit(unit, batches(v2)) == len(v2)
    got = await read_topic(tls_kafka.bootstrap, topic, **consumer_tls(tls_kafka))
    assert len(got) == len(v1) + len(v2)
    assert collapse(m for _, m in got) == expected(v1, v2)
    assert gone.key not in collapse(m for _, m in got)


async def test_mutual_tls_with_a_client_certificate(tls_kafka: TlsKafka, topic: str) -> None:
    """A broker that requires a client certificate accepts certfile+keyfile, and a single PEM holding both."""
    unit = make_unit(days=2)
    records = make_records(unit)
    pki = tls_kafka.pki
    for options in (f"cafile={pki.ca}&certfile={pki.client.cert}&keyfile={pki.client.key}",
                    f"cafile={pki.ca}&certfile={pki.client_pem}"):
        async with tls_sink(tls_kafka.mtls_bootstrap, topic, options) as sink:
            await sink.write_unit(unit, batches(records))
    got = await read_topic(tls_kafka.mtls_bootstrap, topic, **consumer_tls(tls_kafka, client=True))
    assert len(got) == 2 * len(records) and collapse(m for _, m in got) == expected(records)


async def test_check_hostname_false_accepts_a_certificate_for_another_name(tls_kafka: TlsKafka, topic: str) -> None:
    """?check_hostname=false: a certificate for kafka.invalid is accepted on 127.0.0.1 (its chain still checked)."""
    unit = make_unit(days=1)
    records = make_records(unit)
    async with tls_sink(tls_kafka.wrong_host_bootstrap, topic, f"cafile={tls_kafka.pki.ca}&check_hostname=false") as s:
        await s.write_unit(unit, batches(records))
    assert collapse(m for _, m in await read_topic(tls_kafka.bootstrap, topic, **consumer_tls(tls_kafka))) == (
        expected(records))
    # the chain is still verified: the same name-blind sink with the wrong CA is refused
    refused = await open_fails(tls_sink(tls_kafka.wrong_host_bootstrap, topic,
                                        f"cafile={tls_kafka.pki.other_ca}&check_hostname=false"))
    assert "unknown CA" in str(refused)


@pytest.mark.parametrize(("case", "expect"), [
    ("expired", "TLS: the certificate of 127.0.0.1:{port} has expired (certificate has expired)"),
    ("unknown-ca", "TLS: the certificate of 127.0.0.1:{port} is signed by an unknown CA (unable to get local "
                   "issuer certificate); set ?cafile= to the CA that signed it"),
    ("wrong-host", "TLS: the certificate of 127.0.0.1:{port} does not match the host name '127.0.0.1' (IP address "
                   "mismatch, certificate is not valid for '127.0.0.1'); connect by a name the certificate holds, "
                   "or set ?check_hostname=false"),
    ("no-client-cert", "TLS: 127.0.0.1:{port} requires a client certificate; set ?certfile= (and ?keyfile=)"),
    ("stranger-cert", "TLS: 127.0.0.1:{port} refused the client certificate"),
])
async def test_each_tls_failure_is_one_line_naming_its_cause(tls_kafka: TlsKafka, topic: str, case: str,
                                                           expect: str) -> None:
    """Expired, unknown CA, host name mismatch, client certificate missing or refused: a SinkError at open,
    on one line naming the cause, without the retries a connection failure gets."""
    pki = tls_kafka.pki
    bootstrap, options = {
        "expired": (tls_kafka.expired_bootstrap, f"cafile={pki.ca}"),
        "unknown-ca": (tls_kafka.bootstrap, f"cafile={pki.other_ca}"),
        "wrong-host": (tls_kafka.wrong_host_bootstrap, f"cafile={pki.ca}"),
        "no-client-cert": (tls_kafka.mtls_bootstrap, f"cafile={pki.ca}"),
        "stranger-cert": (tls_kafka.mtls_bootstrap,
                          f"cafile={pki.ca}&certfile={pki.stranger.cert}&keyfile={pki.stranger.key}"),
    }[case]
    sink = tls_sink(bootstrap, topic, f"{options}&retries=5&backoff_ms=2000")
    started = dt.datetime.now()
    error = await open_fails(sink)
    assert (dt.datetime.now() - started).total_seconds() < 8  # not retried (5 attempts would wait >= 2 s each)
    port = bootstrap.rsplit(":", 1)[1]
    assert expect.format(port=port) in str(error)
    assert str(error).startswith(f"{sink.name}: create topics: TLS: ")


async def test_scram_refused_by_a_real_sasl_server_is_one_line_without_the_password(tls_kafka: TlsKafka,
                                                                                   topic: str) -> None:
    """SASL_SSL + SCRAM-SHA-512 against Tansu --authentication (which knows no SCRAM user): the broker's
    'e=unknown-user' is named in one fatal line; the password appears nowhere."""
    ctx = SinkContext(environ={"DBCOST_KAFKA_USERNAME": "alice", "DBCOST_KAFKA_PASSWORD": "s3cret-Pw!"})
    sink = tls_sink(tls_kafka.sasl_bootstrap, topic, f"cafile={tls_kafka.pki.ca}&sasl_mechanism=SCRAM-SHA-512", ctx)
    assert sink.options.security_protocol == "SASL_SSL"
    error = await open_fails(sink)
    assert str(error) == (f"{sink.name}: create topics: SASL SCRAM-SHA-512 authentication as 'alice' failed: "
                          "the broker answered 'e=unknown-user'")
    assert "s3cret" not in repr(sink) + repr(sink.options) + str(error) + repr(error.__cause__)


async def test_oauthbearer_token_from_a_file_reaches_the_broker(tls_kafka: TlsKafka, topic: str,
                                                              tmp_path: Path) -> None:
    """OAUTHBEARER with ?password_file=: the token file is read at authentication, sent over TLS, and the
    broker's refusal (Tansu validates no token) is one line that does not show the token."""
    token = tmp_path / "token"
    token.write_text("header.payload.signature\n")
    sink = tls_sink(tls_kafka.sasl_bootstrap, topic,
                    f"cafile={tls_kafka.pki.ca}&sasl_mechanism=OAUTHBEARER&password_file={token}")
    error = await open_fails(sink)
    assert "SASL OAUTHBEARER authentication failed: SASL Authentication failed" in str(error)
    assert "payload" not in str(error)


async def test_msk_iam_token_is_signed_and_sent_over_tls(tls_kafka: TlsKafka, topic: str) -> None:
    """AWS_MSK_IAM: aiokafka asks the MSK token provider for a token (signed from the run's static
    credentials), sends it over TLS to a real SASL server; its refusal names the mechanism and the IAM hint."""
    ctx = SinkContext(credentials=("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"))
    sink = tls_sink(tls_kafka.sasl_bootstrap, topic,
                    f"cafile={tls_kafka.pki.ca}&sasl_mechanism=AWS_MSK_IAM&region=eu-west-1", ctx)
    error = await open_fails(sink)
    assert str(error).endswith("SASL AWS_MSK_IAM authentication failed: SASL Authentication failed. (does the IAM "
                               "policy allow kafka-cluster:Connect on this cluster?)")
    provider = sink.token_provider
    assert isinstance(provider, MskIamTokenProvider) and provider.issued == 1  # one token for every connection
    assert "wJalr" not in str(error)


# -- SASL logins checked: the gate (PLAIN, SCRAM-SHA-256/512) in front of Tansu, over TLS ----------------


def consumer_sasl(tls: TlsKafka, mechanism: str = "PLAIN") -> dict[str, Any]:
    """aiokafka security arguments for reading back through the SASL gate."""
    return {**consumer_tls(tls), "security_protocol": "SASL_SSL", "sasl_mechanism": mechanism,
            "sasl_plain_username": GATE_USER, "sasl_plain_password": GATE_PASSWORD}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_a_sasl_login_over_tls_delivers_exactly(tls_kafka: TlsKafka, topic: str, tmp_path: Path,
                                                    mechanism: str) -> None:
    """SASL_SSL with the right password (PLAIN and SCRAM-SHA-256 from DBCOST_KAFKA_PASSWORD, SCRAM-SHA-512 from
    ?password_file=): the gate accepts alice and the records come back exactly."""
    unit = make_unit(days=3)
    records = make_records(unit)
    secret = tmp_path / "password"
    secret.write_text(GATE_PASSWORD + "\n")
    options = f"cafile={tls_kafka.pki.ca}&sasl_mechanism={mechanism}"
    environ = {"DBCOST_KAFKA_USERNAME": GATE_USER}
    if mechanism == "SCRAM-SHA-512":
        options += f"&password_file={secret}"
    else:
        environ["DBCOST_KAFKA_PASSWORD"] = GATE_PASSWORD
    async with tls_sink(tls_kafka.gate_bootstrap, topic, options, SinkContext(environ=environ)) as sink:
        assert await sink.write_unit(unit, batches(records)) == len(records)
    assert (mechanism, GATE_USER, True) in tls_kafka.gate.attempts
    got = await read_topic(tls_kafka.gate_bootstrap, topic, **consumer_sasl(tls_kafka, mechanism))
    assert collapse(m for _, m in got) == expected(records)


@pytest.mark.parametrize(("mechanism", "said"), [
    ("PLAIN", "Authentication failed: Invalid username or password"),
    ("SCRAM-SHA-256", "Authentication failed during authentication due to invalid credentials with SASL "
                      "mechanism SCRAM-SHA-256"),
])
async def test_a_wrong_sasl_password_is_one_fatal_line_without_it(tls_kafka: TlsKafka, topic: str, mechanism: str,
                                                                 said: str) -> None:
    """A wrong password: the broker's refusal, quoted in one SinkError line naming mechanism and user, raised
    at once (no retries); neither the wrong password nor the right one appears in it."""
    ctx = SinkContext(environ={"DBCOST_KAFKA_USERNAME": GATE_USER, "DBCOST_KAFKA_PASSWORD": "Tr0ub4dor&3"})
    sink = tls_sink(tls_kafka.gate_bootstrap, topic,
                    f"cafile={tls_kafka.pki.ca}&sasl_mechanism={mechanism}&retries=5&backoff_ms=2000", ctx)
    error = await open_fails(sink)
    assert str(error) == f"{sink.name}: create topics: SASL {mechanism} authentication as 'alice' failed: {said}"
    assert "Tr0ub4dor" not in str(error) and GATE_PASSWORD not in str(error)
    assert (mechanism, GATE_USER, False) in tls_kafka.gate.attempts


# -- end to end: the CLI against the emulator -----------------------------------------------------------

TODAY = dt.date(2026, 11, 28)
START = "2026-09-01"
Q = ["--group-by", "SERVICE", "--group-by", "TAG:team"]  # the query test_e2e.truth() describes


async def test_backfill_through_tls_fails_on_a_wrong_ca_then_resumes_exactly(tls_kafka: TlsKafka,
                                                                           tmp_path: Path) -> None:
    """A backfill with --sink kafka+ssl://...?cafile=<another CA> exits 1 with one error line naming the
    unknown CA and checkpoints nothing (the topic stays empty); --resume with the right CA completes and the
    topic, collapsed, is exactly the emulator's ground truth."""
    topic = f"tls-e2e-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "s.duckdb"

    def sink(cafile: Path) -> str:
        return f"kafka+ssl://{tls_kafka.bootstrap}/{topic}?idempotence=false&retries=2&backoff_ms=10&cafile={cafile}"

    async with Emulator(EmulatorConfig(today=TODAY, page_size=200)) as emu:
        common = ["--start", START, *Q, "--endpoint-url", emu.url, "--db", str(db), "--max-rps", "100",
                  "--today", TODAY.isoformat()]
        code, _, err = await run_cli_async("backfill", *common, "--sink", sink(tls_kafka.pki.other_ca))
        assert code == 1, err
        # dbcost's own failure is one line, and aiokafka's logger adds no raw line of its own before it
        errors = [line for line in err.splitlines() if line.startswith(("dbcost: failed", "dbcost: error"))]
        assert len(errors) == 1, err
        assert "Unable connect" not in err, err
        assert "TLS: the certificate of" in errors[0] and "is signed by an unknown CA" in errors[0]
        assert await read_topic(tls_kafka.bootstrap, topic, **consumer_tls(tls_kafka)) == []  # nothing sent
        code, _, err = await run_cli_async("backfill", *common, "--sink", sink(tls_kafka.pki.ca), "--resume")
        assert code == 0, err
        assert re.search(r"\b\d+ unit\(s\), 0 already done", err), err  # the failed run checkpointed nothing
        t = truth(emu, START, TODAY.isoformat())
    check(list(collapse(m for _, m in await read_topic(tls_kafka.bootstrap, topic,
                                                        **consumer_tls(tls_kafka))).values()), t)


def stored_text(db: Path) -> str:
    """What the store keeps about runs and units as text (args, stats, errors), to look for secrets in."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT CAST(args AS VARCHAR), CAST(stats AS VARCHAR) FROM runs").fetchall()
        rows += con.execute("SELECT coalesce(error, ''), '' FROM units").fetchall()
    return "\n".join(f"{a} {b}" for a, b in rows)


async def test_backfill_with_a_wrong_sasl_password_then_resume_with_the_right_one(tls_kafka: TlsKafka,
                                                                                tmp_path: Path) -> None:
    """SASL_SSL + SCRAM-SHA-256 with a wrong DBCOST_KAFKA_PASSWORD: exit 1, one error line naming the refused
    login, nothing sent, the password in no output; --resume with ?password_file= holding the right one
    completes, and the topic holds exactly the emulator's ground truth."""
    topic = f"sasl-e2e-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "s.duckdb"
    secret = tmp_path / "kafka.password"
    secret.write_text(GATE_PASSWORD + "\n")
    secret.chmod(0o600)
    base = (f"kafka+ssl://{tls_kafka.gate_bootstrap}/{topic}?idempotence=false&retries=2&backoff_ms=10"
            f"&cafile={tls_kafka.pki.ca}&sasl_mechanism=SCRAM-SHA-256")
    env = {"DBCOST_KAFKA_USERNAME": GATE_USER, "DBCOST_KAFKA_PASSWORD": "wrong-Pa55word"}
    async with Emulator(EmulatorConfig(today=TODAY, page_size=200)) as emu:
        common = ["--start", START, *Q, "--endpoint-url", emu.url, "--db", str(db), "--max-rps", "100",
                  "--today", TODAY.isoformat()]
        code, out, err = await run_cli_async("backfill", *common, "--sink", base, env=env)
        assert code == 1, err
        errors = [line for line in err.splitlines() if line.startswith(("dbcost: failed", "dbcost: error"))]
        assert len(errors) == 1, err
        assert errors[0].endswith("SASL SCRAM-SHA-256 authentication as 'alice' failed: Authentication failed during "
                                  "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"), err
        assert "wrong-Pa55word" not in out + err
        assert await read_topic(tls_kafka.gate_bootstrap, topic, **consumer_sasl(tls_kafka)) == []
        code, out, err = await run_cli_async("backfill", *common, "--sink", f"{base}&password_file={secret}",
                                             "--resume", env=env)
        assert code == 0, err
        assert re.search(r"\b\d+ unit\(s\), 0 already done", err), err
        assert GATE_PASSWORD not in out + err and "wrong-Pa55word" not in out + err
        t = truth(emu, START, TODAY.isoformat())
    stored = stored_text(db)  # every run's arguments and stats, every unit's error
    assert f'"sinks":["{base}"]' in stored  # the run's sink URL as first given: it holds no password
    assert GATE_PASSWORD not in stored and "wrong-Pa55word" not in stored
    check(list(collapse(m for _, m in await read_topic(tls_kafka.gate_bootstrap, topic,
                                                        **consumer_sasl(tls_kafka))).values()), t)
